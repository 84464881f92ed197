//! The products domain: validated values, the product, and stock
//! reservations. Money is integer minor units (`contract::money`).

use chrono::{DateTime, Utc};
pub use contract::money::Currency;

/// A product id: 1 to 64 characters of `[A-Za-z0-9._-]` (the template's
/// `prod-123`), chosen by the client or generated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProductId(String);

impl ProductId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.is_empty() {
            Err("is required")
        } else if raw.len() > Self::MAX_LEN {
            Err("must be at most 64 characters")
        } else if !raw.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
            Err("may contain only letters, digits, '.', '_' and '-'")
        } else {
            Ok(Self(raw.to_owned()))
        }
    }

    /// A new id for a product created without one.
    pub fn generate() -> Self {
        Self(format!("prod-{}", uuid::Uuid::now_v7().simple()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// 1 to 200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductName(String);

impl ProductName {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let name = raw.trim();
        match name.chars().count() {
            0 => Err("is required"),
            n if n > 200 => Err("must be at most 200 characters"),
            _ if name.chars().any(char::is_control) => Err("must not contain control characters"),
            _ => Ok(Self(name.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Free text, at most 2000 characters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Description(String);

impl Description {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let text = raw.trim();
        if text.chars().count() > 2000 { Err("must be at most 2000 characters") } else { Ok(Self(text.to_owned())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A price in minor units, from the API's decimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Price(i64);

impl Price {
    pub fn from_decimal(amount: f64) -> Result<Self, String> {
        contract::money::to_minor(amount).map(Self).map_err(|e| e.to_string())
    }

    pub fn from_minor(minor: i64) -> Self {
        Self(minor)
    }

    pub fn minor(self) -> i64 {
        self.0
    }

    pub fn to_decimal(self) -> f64 {
        contract::money::to_major(self.0)
    }
}

/// Units in stock: never negative.
/// The most units a product may have on the shelf: a billion, leaving room
/// below `i32::MAX` for held units that come back when holds are released.
pub const MAX_STOCK: i32 = 1_000_000_000;

pub fn parse_stock(raw: i32) -> Result<i32, &'static str> {
    match raw {
        ..0 => Err("must not be negative"),
        1_000_000_001.. => Err("must be at most 1000000000"),
        _ => Ok(raw),
    }
}

/// A stored stock as the contract's `int32`: never out of range, even if
/// released holds have pushed it past [`MAX_STOCK`].
pub fn stock_from_stored(stored: i64) -> i32 {
    i32::try_from(stored.clamp(0, i64::from(i32::MAX))).unwrap_or(i32::MAX)
}

/// A reservation id, chosen by the caller (orders use the order id). It
/// becomes a document key in MongoDB, hence the narrow charset.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReservationId(String);

impl ReservationId {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.is_empty() {
            Err("is required")
        } else if raw.len() > 64 {
            Err("must be at most 64 characters")
        } else if !raw.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-')) {
            Err("may contain only letters, digits, '_' and '-'")
        } else {
            Ok(Self(raw.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub id: ProductId,
    pub name: ProductName,
    pub description: Description,
    pub price: Price,
    /// The price's currency; fixed when the product is created.
    pub currency: Currency,
    pub stock: i32,
    pub units_sold: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Product {
    /// The lowercase text searched by SearchProducts (name and description).
    pub fn search_text(&self) -> String {
        format!("{} {}", self.name.as_str(), self.description.as_str()).to_lowercase()
    }
}

/// Fields to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductChanges {
    pub name: Option<ProductName>,
    pub description: Option<Description>,
    pub price: Option<Price>,
    pub stock: Option<i32>,
}

/// List and search filters; `None` means no filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductFilter {
    pub min_price: Option<Price>,
    pub max_price: Option<Price>,
    pub in_stock: Option<bool>,
    /// Only products priced in it: the price bounds are in this currency.
    pub currency: Option<Currency>,
    /// Lowercase words that must each appear in name or description.
    pub words: Vec<String>,
}

impl ProductFilter {
    /// Whether `product` passes the filter: the reference both stores'
    /// queries must agree with.
    pub fn matches(&self, product: &Product) -> bool {
        let text = product.search_text();
        self.min_price.is_none_or(|min| product.price >= min)
            && self.max_price.is_none_or(|max| product.price <= max)
            && self.in_stock.is_none_or(|in_stock| (product.stock > 0) == in_stock)
            && self.currency.as_ref().is_none_or(|currency| product.currency == *currency)
            && self.words.iter().all(|word| text.contains(word.as_str()))
    }
}

/// Splits a search query into lowercase words.
pub fn search_words(query: &str) -> Vec<String> {
    query.split_whitespace().map(str::to_lowercase).collect()
}

/// One line of a reservation: what was taken, at the price then in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservedItem {
    pub product_id: ProductId,
    pub product_name: String,
    pub quantity: i32,
    pub unit_price: Price,
    pub currency: Currency,
}

/// Stock taken for one reservation id, held until `expires_at` unless an
/// order confirms it first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub id: ReservationId,
    pub items: Vec<ReservedItem>,
    pub expires_at: DateTime<Utc>,
}

/// Why a reservation was refused; stored, so a retry gets the same answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReservationRefused {
    #[error("product {0} does not exist")]
    UnknownProduct(String),
    #[error("insufficient stock for product {product}: requested {requested}, available {available}")]
    InsufficientStock { product: String, requested: i32, available: i32 },
    #[error("reservation {0} was already released")]
    AlreadyReleased(String),
}

/// The current time at the precision both stores keep (MongoDB: milliseconds).
pub fn now() -> DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_charset_and_length() {
        assert!(ProductId::parse("prod-123").is_ok());
        assert!(ProductId::parse("a.b_c-9").is_ok());
        for bad in ["", "has space", "slash/es", "dollar$", "ünïcode"] {
            assert!(ProductId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(ProductId::parse(&"x".repeat(65)).is_err());
        assert!(ProductId::parse(ProductId::generate().as_str()).is_ok());
    }

    #[test]
    fn stock_is_between_zero_and_a_billion() {
        assert_eq!(parse_stock(0), Ok(0));
        assert_eq!(parse_stock(MAX_STOCK), Ok(MAX_STOCK));
        assert_eq!(parse_stock(-1), Err("must not be negative"));
        assert_eq!(parse_stock(MAX_STOCK + 1), Err("must be at most 1000000000"));
        assert_eq!(stock_from_stored(i64::from(i32::MAX) + 5), i32::MAX, "read back without a 500");
    }

    #[test]
    fn prices_are_non_negative_with_two_decimals() {
        assert_eq!(Price::from_decimal(29.99).unwrap().minor(), 2999);
        assert!(Price::from_decimal(-1.0).is_err());
        assert!(Price::from_decimal(1.234).is_err());
        assert!(Price::from_decimal(f64::NAN).is_err());
    }

    #[test]
    fn reservation_ids_are_safe_document_keys() {
        assert!(ReservationId::parse("01a2-b3_c4").is_ok());
        for bad in ["", "a.b", "$x", "a b"] {
            assert!(ReservationId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn filter_matches_every_condition() {
        let product = Product {
            id: ProductId::parse("prod-123").unwrap(),
            name: ProductName::parse("Blue Widget").unwrap(),
            description: Description::parse("A sturdy gadget").unwrap(),
            price: Price::from_minor(2999),
            currency: Currency::default(),
            stock: 0,
            units_sold: 0,
            created_at: now(),
            updated_at: now(),
        };
        assert!(ProductFilter::default().matches(&product));
        assert!(ProductFilter { words: search_words("WIDGET sturdy"), ..Default::default() }.matches(&product));
        assert!(!ProductFilter { words: search_words("widget red"), ..Default::default() }.matches(&product));
        assert!(!ProductFilter { in_stock: Some(true), ..Default::default() }.matches(&product));
        assert!(ProductFilter { min_price: Some(Price::from_minor(2999)), ..Default::default() }.matches(&product));
        assert!(!ProductFilter { max_price: Some(Price::from_minor(2998)), ..Default::default() }.matches(&product));
    }
}
