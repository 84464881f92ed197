//! The orders domain: ids, the status machine, orders and their money (in
//! integer minor units).

use std::str::FromStr;

use chrono::{DateTime, Utc};
pub use contract::money::Currency;
use uuid::Uuid;

platform::uuid_id!(
    /// An order id: a UUIDv7, so ids sort by creation time. It is also the
    /// stock reservation id at the products service.
    OrderId
);

/// A user id as the orders service sees it: a UUID (the users service's).
pub fn parse_user_id(raw: &str) -> Result<Uuid, &'static str> {
    platform::id::parse_uuid(raw)
}

/// PENDING -> PAID -> SHIPPED -> DELIVERED; CANCELLED from PENDING or PAID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    Pending,
    Paid,
    Shipped,
    Delivered,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Paid => "PAID",
            Self::Shipped => "SHIPPED",
            Self::Delivered => "DELIVERED",
            Self::Cancelled => "CANCELLED",
        }
    }

    /// Whether the machine allows `self -> next`.
    pub fn can_become(self, next: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!((self, next), (Pending, Paid) | (Paid, Shipped) | (Shipped, Delivered) | (Pending | Paid, Cancelled))
    }
}

impl FromStr for OrderStatus {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        [Self::Pending, Self::Paid, Self::Shipped, Self::Delivered, Self::Cancelled]
            .into_iter()
            .find(|status| status.as_str() == value)
            .ok_or_else(|| format!("unknown order status {value}"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderItem {
    pub product_id: String,
    pub product_name: String,
    pub quantity: i32,
    pub unit_price_minor: i64,
}

impl OrderItem {
    pub fn line_total_minor(&self) -> i64 {
        self.unit_price_minor * i64::from(self.quantity)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: OrderId,
    pub user_id: Uuid,
    pub items: Vec<OrderItem>,
    pub status: OrderStatus,
    /// Of every amount in the order (its items all share it).
    pub currency: Currency,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Order {
    pub fn total_minor(&self) -> i64 {
        self.items.iter().map(OrderItem::line_total_minor).sum()
    }
}

/// The current time at the precision both databases keep (microseconds).
pub fn now() -> DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderStatus::*;

    #[test]
    fn the_status_machine_allows_only_its_transitions() {
        let all = [Pending, Paid, Shipped, Delivered, Cancelled];
        let allowed: Vec<(OrderStatus, OrderStatus)> = all
            .iter()
            .flat_map(|from| all.iter().map(move |to| (*from, *to)))
            .filter(|(f, t)| f.can_become(*t))
            .collect();
        assert_eq!(
            allowed,
            [(Pending, Paid), (Pending, Cancelled), (Paid, Shipped), (Paid, Cancelled), (Shipped, Delivered)]
        );
    }

    #[test]
    fn statuses_round_trip_through_text() {
        for status in [Pending, Paid, Shipped, Delivered, Cancelled] {
            assert_eq!(status.as_str().parse::<OrderStatus>(), Ok(status));
        }
        assert!("LOST".parse::<OrderStatus>().is_err());
    }

    #[test]
    fn totals_are_summed_in_minor_units() {
        let item = |quantity, unit_price_minor| OrderItem {
            product_id: "p".to_owned(),
            product_name: "P".to_owned(),
            quantity,
            unit_price_minor,
        };
        let order = Order {
            id: OrderId::generate(),
            user_id: Uuid::now_v7(),
            items: vec![item(2, 2999), item(3, 10)],
            status: Pending,
            currency: Currency::default(),
            created_at: now(),
            updated_at: now(),
        };
        assert_eq!(order.total_minor(), 6028);
    }
}
