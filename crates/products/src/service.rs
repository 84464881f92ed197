//! The products service's use cases over the store port: validation, ids,
//! money conversion, reservations. Transport-free.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use platform::pagination::PageRequest;
use platform::validation::{Violations, violation};

use crate::domain::{
    Currency, Description, Price, Product, ProductChanges, ProductFilter, ProductId, ProductName, Reservation,
    ReservationId, now, parse_stock, search_words,
};
use crate::error::ProductError;
use crate::store::{ProductStore, ReserveOutcome, StoreError};

/// A new product as received; an empty id means "generate one".
#[derive(Debug, Default)]
pub struct NewProduct {
    pub id: String,
    pub name: String,
    pub description: String,
    pub price: f64,
    pub stock: i32,
    /// ISO 4217; empty for the default.
    pub currency: String,
}

/// Changes as received; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct ChangesInput {
    pub name: Option<String>,
    pub description: Option<String>,
    pub price: Option<f64>,
    pub stock: Option<i32>,
}

/// List filters as received (field paths are reported under `filter.`).
#[derive(Debug, Default, Clone)]
pub struct FilterInput {
    pub min_price: Option<f64>,
    pub max_price: Option<f64>,
    pub in_stock: Option<bool>,
    pub currency: Option<String>,
}

/// The most units one line of a reservation may ask for.
const MAX_RESERVE_QUANTITY: i32 = 1_000_000;
/// The most lines one reservation may list, all held in one transaction
/// (an order lists at most as many: the orders service's `MAX_ITEMS`).
const MAX_RESERVE_LINES: usize = 100;

#[derive(Clone)]
pub struct Products {
    store: Arc<dyn ProductStore>,
    hold_ttl: Duration,
}

impl Products {
    /// Holds last [`crate::config::DEFAULT_HOLD_TTL`] unless [`Self::with_hold_ttl`] says otherwise.
    pub fn new(store: Arc<dyn ProductStore>) -> Self {
        Self { store, hold_ttl: crate::config::DEFAULT_HOLD_TTL }
    }

    /// How long reserved stock stays held unless an order confirms it.
    pub fn with_hold_ttl(mut self, hold_ttl: Duration) -> Self {
        self.hold_ttl = hold_ttl;
        self
    }

    pub fn hold_ttl(&self) -> Duration {
        self.hold_ttl
    }

    pub fn store(&self) -> &Arc<dyn ProductStore> {
        &self.store
    }

    pub async fn create(&self, input: NewProduct) -> Result<Product, ProductError> {
        let mut violations = Violations::new();
        let id = if input.id.is_empty() {
            Some(ProductId::generate())
        } else {
            violations.check("id", ProductId::parse(&input.id))
        };
        let name = violations.check("name", ProductName::parse(&input.name));
        let description = violations.check("description", Description::parse(&input.description));
        let price = violations.check("price", Price::from_decimal(input.price));
        let currency = violations.check("currency", Currency::parse(&input.currency));
        let stock = violations.check("stock", parse_stock(input.stock));
        violations.into_result()?;
        let at = now();
        let product = Product {
            id: id.expect("validated"),
            name: name.expect("validated"),
            description: description.expect("validated"),
            price: price.expect("validated"),
            currency: currency.expect("validated"),
            stock: stock.expect("validated"),
            units_sold: 0,
            created_at: at,
            updated_at: at,
        };
        match self.store.insert(&product).await {
            Ok(()) => {
                tracing::info!(product_id = %product.id.as_str(), "product created");
                Ok(product)
            }
            Err(StoreError::DuplicateId) => Err(ProductError::DuplicateId(product.id.as_str().to_owned())),
            Err(error) => Err(error.into()),
        }
    }

    pub async fn get(&self, id: &str) -> Result<Product, ProductError> {
        let id = parse_id("id", id)?;
        self.store.get(&id).await?.ok_or_else(|| ProductError::NotFound(id.as_str().to_owned()))
    }

    pub async fn list(
        &self,
        page_size: i32,
        page_token: &str,
        filter: FilterInput,
    ) -> Result<(Vec<Product>, String), ProductError> {
        let filter = parse_filter(filter, Vec::new())?;
        self.page(page_size, page_token, filter).await
    }

    pub async fn search(
        &self,
        query: &str,
        page_size: i32,
        page_token: &str,
        filter: FilterInput,
    ) -> Result<(Vec<Product>, String), ProductError> {
        let words = search_words(query);
        if words.is_empty() {
            return Err(violation("q", "is required: the words to search for").into());
        }
        if query.chars().count() > 200 {
            return Err(violation("q", "must be at most 200 characters").into());
        }
        let filter = parse_filter(filter, words)?;
        self.page(page_size, page_token, filter).await
    }

    async fn page(
        &self,
        page_size: i32,
        page_token: &str,
        filter: ProductFilter,
    ) -> Result<(Vec<Product>, String), ProductError> {
        let page = PageRequest::parse(page_size, page_token)?;
        let after = match &page.after {
            Some(cursor) => Some(
                ProductId::parse(cursor).map_err(|_| violation("page_token", "is not a token from a previous page"))?,
            ),
            None => None,
        };
        let products = self.store.list(&filter, after.as_ref(), page.fetch_limit()).await?;
        Ok(page.finish(products, |product: &Product| product.id.as_str().to_owned()))
    }

    pub async fn update(&self, id: &str, input: ChangesInput) -> Result<Product, ProductError> {
        let mut violations = Violations::new();
        let id = violations.check("id", ProductId::parse(id));
        let changes = ProductChanges {
            name: violations.check_optional("name", input.name.as_deref().map(ProductName::parse)).flatten(),
            description: violations
                .check_optional("description", input.description.as_deref().map(Description::parse))
                .flatten(),
            price: violations.check_optional("price", input.price.map(Price::from_decimal)).flatten(),
            stock: violations.check_optional("stock", input.stock.map(parse_stock)).flatten(),
        };
        violations.into_result()?;
        let id = id.expect("validated");
        self.store.update(&id, &changes).await?.ok_or_else(|| ProductError::NotFound(id.as_str().to_owned()))
    }

    pub async fn delete(&self, id: &str) -> Result<(), ProductError> {
        let id = parse_id("id", id)?;
        if self.store.delete(&id).await? { Ok(()) } else { Err(ProductError::NotFound(id.as_str().to_owned())) }
    }

    pub async fn adjust_stock(&self, id: &str, delta: i32) -> Result<Product, ProductError> {
        let id = parse_id("id", id)?;
        self.store.adjust_stock(&id, delta).await.map_err(|error| ProductError::from_adjust(id.as_str(), error))
    }

    /// Reserves every item or none, held for the hold TTL; lines naming one
    /// product are merged.
    pub async fn reserve(&self, reservation_id: &str, items: &[(String, i32)]) -> Result<Reservation, ProductError> {
        let mut violations = Violations::new();
        let id = violations.check("reservation_id", ReservationId::parse(reservation_id));
        if items.is_empty() {
            violations.add("items", "must name at least one product");
        }
        let listed = violations.at_most("items", items, MAX_RESERVE_LINES, "lines");
        let mut merged: BTreeMap<ProductId, i32> = BTreeMap::new();
        for (index, (product_id, quantity)) in listed.iter().enumerate() {
            let product = violations.check(&format!("items[{index}].product_id"), ProductId::parse(product_id));
            if *quantity <= 0 || *quantity > MAX_RESERVE_QUANTITY {
                violations.add(format!("items[{index}].quantity"), "must be between 1 and 1000000");
            } else if let Some(product) = product {
                let total = merged.entry(product).or_default();
                *total = total.saturating_add(*quantity);
            }
        }
        violations.into_result()?;
        let id = id.expect("validated");
        let items: Vec<(ProductId, i32)> = merged.into_iter().collect();
        let expires_at = now() + self.hold_ttl;
        let store = self.store.clone();
        let reserved = to_completion(async move { store.reserve(&id, &items, expires_at).await }).await?;
        match reserved {
            ReserveOutcome::Reserved(reservation) => Ok(reservation),
            ReserveOutcome::Refused(refused) => Err(refused.into()),
        }
    }

    /// True if this call released the reservation.
    pub async fn release(&self, reservation_id: &str) -> Result<bool, ProductError> {
        let id = ReservationId::parse(reservation_id).map_err(|why| violation("reservation_id", why))?;
        let store = self.store.clone();
        Ok(to_completion(async move { store.release(&id).await }).await?)
    }
}

/// Runs a change to stock to its end even if the call that asked for it
/// goes away (its client disconnects, or dies, and the server drops the
/// call's future): on MongoDB a reservation or a release is several writes,
/// and one stopped between them would leave stock held for nothing. The
/// change runs in the caller's span, so its database calls stay in the
/// call's trace.
async fn to_completion<T: Send + 'static>(
    change: impl Future<Output = Result<T, StoreError>> + Send + 'static,
) -> Result<T, StoreError> {
    match tokio::spawn(tracing::Instrument::in_current_span(change)).await {
        Ok(outcome) => outcome,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(_) => Err(StoreError::Unavailable("the service is stopping".to_owned())),
    }
}

fn parse_id(field: &str, raw: &str) -> Result<ProductId, ProductError> {
    ProductId::parse(raw).map_err(|why| violation(field, why).into())
}

fn parse_filter(input: FilterInput, words: Vec<String>) -> Result<ProductFilter, Violations> {
    let mut violations = Violations::new();
    let min_price = violations.check_optional("filter.min_price", input.min_price.map(Price::from_decimal)).flatten();
    let max_price = violations.check_optional("filter.max_price", input.max_price.map(Price::from_decimal)).flatten();
    if let (Some(min), Some(max)) = (min_price, max_price)
        && min > max
    {
        violations.add("filter.max_price", "must not be less than filter.min_price");
    }
    // Amounts in two currencies do not compare: bounds are in the filter's
    // currency (USD when not given, as a price's is) and match only
    // products priced in it.
    let currency = match input.currency {
        Some(code) => violations.check("filter.currency", Currency::parse(&code)),
        None if min_price.is_some() || max_price.is_some() => Some(Currency::default()),
        None => None,
    };
    violations.into_result()?;
    Ok(ProductFilter { min_price, max_price, in_stock: input.in_stock, currency, words })
}
