//! The orders service's use cases. CreateOrder is a small saga: check the
//! user, reserve the stock (the order id is the reservation id), price the
//! items from what the products service reserved, then write the order and
//! its OrderCreated event in one transaction, while the stock hold has at
//! least half its time left; if that write fails, release the reservation.
//! Every status change writes its event the same way.

use std::collections::BTreeMap;
use std::sync::Arc;

use contract::events::{OrderCancelled, OrderCreated, OrderLine, OrderStatusChanged};
use events::Event;
use platform::access::Caller;
use platform::pagination::PageRequest;
use platform::validation::{Violations, violation};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::dependencies::{Dependencies, DependencyError, HeldItem, Refusal, ReserveError};
use crate::domain::{Currency, Order, OrderId, OrderItem, OrderStatus, now, parse_user_id};
use crate::error::OrderError;
use crate::store::{OrderQuery, OrderStore, StoreError};

/// A new order as received: the template's single product, a list of
/// items, or both.
#[derive(Debug, Default, Clone)]
pub struct NewOrder {
    pub user_id: String,
    pub product_id: String,
    pub quantity: i32,
    pub items: Vec<(String, i32)>,
    pub idempotency_key: Option<String>,
    /// Who asks: a signed-in user places orders only for themselves.
    pub caller: Caller,
}

/// The roles that handle every customer's orders (administrators too):
/// they read, list and cancel any order, and alone record payment,
/// shipping and delivery (the contract's rules for PayOrder, ShipOrder and
/// DeliverOrder).
const STAFF: &[&str] = &["fulfilment"];

const MAX_QUANTITY: i32 = 1_000_000;
const MAX_KEY_LEN: usize = 200;
/// Lines one order may list (the contract's `items`). Past it the request
/// is refused before its lines are read: each would be checked, merged and
/// held, and reserved in one transaction of the products store.
const MAX_ITEMS: usize = 100;

#[derive(Clone)]
pub struct Orders {
    store: Arc<dyn OrderStore>,
    dependencies: Arc<dyn Dependencies>,
    relay_wake: Arc<Notify>,
}

impl Orders {
    pub fn new(store: Arc<dyn OrderStore>, dependencies: Arc<dyn Dependencies>, relay_wake: Arc<Notify>) -> Self {
        Self { store, dependencies, relay_wake }
    }

    pub fn store(&self) -> &Arc<dyn OrderStore> {
        &self.store
    }

    /// Places an order. Once begun, the saga runs to a consistent end on a
    /// task of its own whatever its caller does (goes away, runs out of
    /// time): the order is written, or the stock it reserved is released at
    /// once; the expiry of holds is only the last resort. Its calls to other
    /// services still get no more than the caller's time.
    pub async fn create(&self, input: NewOrder) -> Result<Order, OrderError> {
        let orders = self.clone();
        let deadline = resilience::deadline::remaining().map(|left| tokio::time::Instant::now() + left);
        let saga = async move {
            match deadline {
                Some(deadline) => resilience::deadline::within(deadline, orders.place(input)).await,
                None => orders.place(input).await,
            }
        };
        // In the request's span, so its logs and the trace it propagates
        // downstream stay the request's.
        let saga = tokio::spawn(tracing::Instrument::instrument(saga, tracing::Span::current()));
        saga.await.map_err(|error| OrderError::Store(StoreError::Other(format!("the order saga failed: {error}"))))?
    }

    async fn place(&self, mut input: NewOrder) -> Result<Order, OrderError> {
        match &input.caller {
            Caller::User(user) if input.user_id.is_empty() => input.user_id = user.id.clone(),
            Caller::User(user) if input.user_id != user.id => {
                return Err(OrderError::NotYours("orders are placed for the signed-in user"));
            }
            Caller::User(_) | Caller::Trusted => {}
            Caller::Anonymous => return Err(OrderError::NotYours("orders are placed by signed-in users")),
        }
        let ValidOrder { user_id, items, idempotency_key: key } = validate(&input)?;
        if let Some(key) = &key
            && let Some(order) = self.store.find_by_idempotency_key(user_id, key).await?
        {
            return replayed(order, &items, key);
        }
        let exists = self.dependencies.user_exists(&user_id.to_string()).await.map_err(OrderError::Dependency)?;
        if !exists {
            return Err(OrderError::UnknownUser(user_id.to_string()));
        }

        let id = OrderId::generate();
        let reservation_id = id.to_string();
        let reserving = tokio::time::Instant::now();
        let hold = match self.dependencies.reserve(&reservation_id, &items).await {
            Ok(hold) => hold,
            Err(ReserveError::Refused(refusal)) => return Err(OrderError::Reservation(refusal)),
            Err(ReserveError::Failed(error)) => {
                // The reservation may or may not have happened: undo it.
                self.release_quietly(&reservation_id).await;
                return Err(OrderError::Dependency(error));
            }
        };
        // Half the hold is the last moment to write: the other half is the
        // write's margin before products may release a hold no order confirms.
        if let Some(held_for) = hold.held_for
            && reserving.elapsed() > held_for / 2
        {
            self.release_quietly(&reservation_id).await;
            let why = "the stock hold ran short before the order could be written".to_owned();
            return Err(OrderError::Dependency(DependencyError::Unavailable { service: "products", why }));
        }
        let currency = match one_currency(&hold.items) {
            Ok(currency) => currency,
            Err(refusal) => {
                self.release_quietly(&reservation_id).await;
                return Err(OrderError::Reservation(refusal));
            }
        };
        let order_items: Vec<OrderItem> = hold
            .items
            .into_iter()
            .map(|item| OrderItem {
                product_id: item.product_id,
                product_name: item.product_name,
                quantity: item.quantity,
                unit_price_minor: item.unit_price_minor,
            })
            .collect();
        let at = now();
        let order = Order {
            id,
            user_id,
            items: order_items,
            status: OrderStatus::Pending,
            currency,
            created_at: at,
            updated_at: at,
        };
        // The decimal total is still sent for consumers written before total_minor.
        #[allow(deprecated)]
        let event = event(|event_id, occurred_at| OrderCreated {
            event_id,
            occurred_at,
            order_id: order.id.to_string(),
            user_id: order.user_id.to_string(),
            items: lines(&order),
            total: contract::money::to_major(order.total_minor()),
            total_minor: order.total_minor(),
            currency: order.currency.to_string(),
        });
        match self.store.create(&order, key.as_deref(), &event).await {
            Ok(()) => {
                self.relay_wake.notify_one();
                metrics::counter!("orders_created_total").increment(1);
                tracing::info!(order_id = %order.id, total_minor = order.total_minor(), "order created");
                Ok(order)
            }
            Err(StoreError::DuplicateKey) => {
                // A concurrent request with the same key won: answer with its order.
                self.release_quietly(&reservation_id).await;
                let key = key.expect("a duplicate needs a key");
                let order = self.store.find_by_idempotency_key(user_id, &key).await?;
                replayed(order.ok_or(OrderError::Store(StoreError::DuplicateKey))?, &items, &key)
            }
            Err(error) => {
                self.release_quietly(&reservation_id).await;
                Err(error.into())
            }
        }
    }

    /// Another user's order is NOT_FOUND to a signed-in customer: its
    /// existence is not theirs to learn. Staff see every order.
    pub async fn get(&self, id: &str, caller: &Caller) -> Result<Order, OrderError> {
        let id = OrderId::parse(id).map_err(|why| violation("id", why))?;
        self.store.get(id).await?.filter(|order| owned_by(order, caller)).ok_or(OrderError::NotFound(id))
    }

    /// Newest first, optionally one status or one user.
    /// A signed-in customer lists only their own orders; staff any.
    pub async fn list(
        &self,
        user_id: Option<&str>,
        status: Option<OrderStatus>,
        page_size: i32,
        page_token: &str,
        caller: &Caller,
    ) -> Result<(Vec<Order>, String), OrderError> {
        let user_id = match (user_id, caller) {
            (_, caller) if caller.has_any_role(STAFF) => user_id,
            (Some(user), Caller::User(caller)) if user != caller.id => {
                return Err(OrderError::NotYours("a user lists only their own orders"));
            }
            (_, Caller::User(caller)) => Some(caller.id.as_str()),
            (_, _) => return Err(OrderError::NotYours("orders are listed by signed-in users")),
        };
        let user_id = match user_id {
            Some(raw) => Some(parse_user_id(raw).map_err(|why| violation("user_id", why))?),
            None => None,
        };
        let page = PageRequest::parse(page_size, page_token)?;
        let before = match &page.after {
            Some(cursor) => Some(
                OrderId::parse(cursor).map_err(|_| violation("page_token", "is not a token from a previous page"))?,
            ),
            None => None,
        };
        let orders = self.store.list(&OrderQuery { status, user_id, before, limit: page.fetch_limit() }).await?;
        Ok(page.finish(orders, |order: &Order| order.id.to_string()))
    }

    pub async fn cancel(&self, id: &str, reason: &str, caller: &Caller) -> Result<Order, OrderError> {
        self.change_status(id, caller, OrderStatus::Cancelled, |order| {
            event(|event_id, occurred_at| OrderCancelled {
                event_id,
                occurred_at,
                order_id: order.id.to_string(),
                user_id: order.user_id.to_string(),
                reason: reason.to_owned(),
                items: lines(order),
            })
        })
        .await
    }

    pub async fn pay(&self, id: &str, caller: &Caller) -> Result<Order, OrderError> {
        self.change_status(id, caller, OrderStatus::Paid, |order| status_changed(order, OrderStatus::Paid)).await
    }

    pub async fn ship(&self, id: &str, caller: &Caller) -> Result<Order, OrderError> {
        self.change_status(id, caller, OrderStatus::Shipped, |order| status_changed(order, OrderStatus::Shipped)).await
    }

    pub async fn deliver(&self, id: &str, caller: &Caller) -> Result<Order, OrderError> {
        let delivered = |order: &Order| status_changed(order, OrderStatus::Delivered);
        self.change_status(id, caller, OrderStatus::Delivered, delivered).await
    }

    /// Moves an order along the status machine, writing `event_for` the
    /// order in the same transaction. Compare-and-set: a concurrent change
    /// makes this one re-read and re-check.
    async fn change_status(
        &self,
        id: &str,
        caller: &Caller,
        to: OrderStatus,
        event_for: impl Fn(&Order) -> Event,
    ) -> Result<Order, OrderError> {
        let id = OrderId::parse(id).map_err(|why| violation("id", why))?;
        for _ in 0..3 {
            let found = self.store.get(id).await?.filter(|order| owned_by(order, caller));
            let mut order = found.ok_or(OrderError::NotFound(id))?;
            if !order.status.can_become(to) {
                return Err(OrderError::invalid_transition(id, order.status, to));
            }
            let at = now();
            let event = event_for(&order);
            if self.store.change_status(id, order.status, to, at, &event).await? {
                self.relay_wake.notify_one();
                tracing::info!(order_id = %id, from = order.status.as_str(), to = to.as_str(), "order status changed");
                order.status = to;
                order.updated_at = at;
                return Ok(order);
            }
        }
        Err(OrderError::Store(StoreError::Other(format!("order {id} keeps changing; try again"))))
    }

    async fn release_quietly(&self, reservation_id: &str) {
        // Undoing must not inherit a deadline that may already have passed.
        let released = resilience::deadline::apart(self.dependencies.release(reservation_id)).await;
        if let Err(error) = released {
            // Its hold expires (PRODUCTS_HOLD_TTL) if no order confirms it.
            tracing::warn!(%reservation_id, %error, "could not release the stock of a failed order; its hold will expire");
        }
    }
}

/// Whether `caller` may see and change `order`: its owner, staff, or a
/// trusted caller.
fn owned_by(order: &Order, caller: &Caller) -> bool {
    caller.may_act_for(&order.user_id.to_string(), STAFF)
}

/// The order `key` already names, when it is this request's again: the
/// same products in the same quantities (`items`, merged and in product
/// order). Another request under a used key is refused rather than
/// answered with the first order, which its caller would take for theirs.
fn replayed(order: Order, items: &[(String, i32)], key: &str) -> Result<Order, OrderError> {
    let mut placed: Vec<(&str, i32)> =
        order.items.iter().map(|item| (item.product_id.as_str(), item.quantity)).collect();
    placed.sort_unstable();
    if placed.into_iter().eq(items.iter().map(|(product, quantity)| (product.as_str(), *quantity))) {
        Ok(order)
    } else {
        Err(OrderError::KeyReused { key: key.to_owned(), order: order.id })
    }
}

/// A request that passed validation.
struct ValidOrder {
    user_id: Uuid,
    /// One line per product, quantities merged.
    items: Vec<(String, i32)>,
    idempotency_key: Option<String>,
}

fn validate(input: &NewOrder) -> Result<ValidOrder, Violations> {
    let mut violations = Violations::new();
    let user_id = violations.check("user_id", parse_user_id(&input.user_id));
    let listed = violations.at_most("items", &input.items, MAX_ITEMS, "lines");
    let mut lines: Vec<(String, String, i32)> = Vec::new();
    if !input.product_id.is_empty() || input.quantity != 0 {
        lines.push(("product_id".to_owned(), input.product_id.clone(), input.quantity));
    }
    for (index, (product_id, quantity)) in listed.iter().enumerate() {
        lines.push((format!("items[{index}]"), product_id.clone(), *quantity));
    }
    if lines.is_empty() && input.items.is_empty() {
        violations.add("items", "must name at least one product when product_id and quantity are not given");
    }
    let mut merged: BTreeMap<String, i32> = BTreeMap::new();
    for (field, product_id, quantity) in lines {
        let (product_field, quantity_field) = if field == "product_id" {
            ("product_id".to_owned(), "quantity".to_owned())
        } else {
            (format!("{field}.product_id"), format!("{field}.quantity"))
        };
        if product_id.is_empty() {
            violations.add(product_field, "is required");
        }
        if !(1..=MAX_QUANTITY).contains(&quantity) {
            violations.add(quantity_field, "must be between 1 and 1000000");
        } else if !product_id.is_empty() {
            let total = merged.entry(product_id).or_default();
            *total = total.saturating_add(quantity);
        }
    }
    let key = input.idempotency_key.clone().filter(|key| !key.is_empty());
    if key.as_ref().is_some_and(|key| key.len() > MAX_KEY_LEN) {
        violations.add("idempotency_key", "must be at most 200 characters");
    }
    violations.into_result()?;
    Ok(ValidOrder { user_id: user_id.expect("validated"), items: merged.into_iter().collect(), idempotency_key: key })
}

/// The one currency of a hold's items; an order cannot mix them.
fn one_currency(items: &[HeldItem]) -> Result<Currency, Refusal> {
    let mut currencies: Vec<&str> = items.iter().map(|item| item.currency.as_str()).collect();
    currencies.sort_unstable();
    currencies.dedup();
    match currencies.as_slice() {
        [] => Ok(Currency::default()),
        [_] => Ok(items[0].currency.clone()),
        several => Err(Refusal::MixedCurrencies(several.join(", "))),
    }
}

/// The decimal prices are still sent for consumers written before the minor units.
#[allow(deprecated)]
fn lines(order: &Order) -> Vec<OrderLine> {
    order
        .items
        .iter()
        .map(|item| OrderLine {
            product_id: item.product_id.clone(),
            quantity: item.quantity,
            unit_price: contract::money::to_major(item.unit_price_minor),
            unit_price_minor: item.unit_price_minor,
        })
        .collect()
}

/// The statuses' names are still sent for consumers written before the enum.
#[allow(deprecated)]
fn status_changed(order: &Order, to: OrderStatus) -> Event {
    event(|event_id, occurred_at| OrderStatusChanged {
        event_id,
        occurred_at,
        order_id: order.id.to_string(),
        user_id: order.user_id.to_string(),
        from_status: order.status.as_str().to_owned(),
        to_status: to.as_str().to_owned(),
        old_status: crate::grpc::status_to_proto(order.status) as i32,
        new_status: crate::grpc::status_to_proto(to) as i32,
    })
}

/// An event with a fresh id (in the envelope and in the message), the
/// current time, and the current trace context.
fn event<M: prost::Message + prost::Name>(make: impl FnOnce(String, Option<prost_types::Timestamp>) -> M) -> Event {
    let id = Uuid::now_v7();
    let at = now();
    let occurred_at = prost_types::Timestamp { seconds: at.timestamp(), nanos: at.timestamp_subsec_nanos() as i32 };
    let mut headers = http::HeaderMap::new();
    platform::telemetry::inject_current_context(&mut headers);
    let traceparent = headers.get("traceparent").and_then(|v| v.to_str().ok()).map(str::to_owned);
    Event::new(id, &make(id.to_string(), Some(occurred_at))).with_traceparent(traceparent)
}
