//! The MongoDB adapter (official driver). No multi-document transactions,
//! so it runs on a standalone server too; instead:
//!
//! - each product decrement is one conditional update (`stock >= quantity`)
//!   that also records a hold, `holds.<reservation id>: quantity`, in the
//!   same document, so a product is never decremented twice for one
//!   reservation and a release restores exactly what was held, once;
//! - a reservation document (`_id` = reservation id) is claimed by one caller
//!   at a time, with a lease a retry may take over if that caller died; a
//!   reservation refused part-way gives back what it took before answering;
//! - a reservation is held until its `expires_at` unless an order confirms
//!   it (state `confirmed`); `expired_holds` finds the ones that ran out;
//! - an order's sale is counted in each product with a marker,
//!   `sold.<order id>: quantity`, so it is counted and taken back once; a
//!   cancelled order's marker (0) is dropped an hour later, and the order's
//!   reservation document, which says when its sale was cancelled, keeps a
//!   late creation from counting it after that (see `cancel_sale`); so does
//!   a shipped order's, whose markers go when it ships (`settle_order`).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use mongodb::bson::{self, Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, IndexOptions, ReturnDocument};
use mongodb::{Client, Collection, Database, IndexModel};
use platform::db_trace::{DbCall as _, DbSystem};
use serde::{Deserialize, Serialize};

use super::{AdjustError, ProductStore, ReserveOutcome, StoreError};
use crate::domain::{
    Currency, Description, MAX_STOCK, Price, Product, ProductChanges, ProductFilter, ProductId, ProductName,
    Reservation, ReservationId, ReservationRefused, ReservedItem, stock_from_stored,
};

/// Every command runs in its CLIENT span (`platform::db_trace`).
const MONGO: DbSystem = DbSystem::Mongodb;

/// How long a reservation claim is exclusive before a retry may take it over.
const CLAIM_LEASE: Duration = Duration::from_secs(30);
/// How long a call waits for another call's claim on the same reservation.
const CLAIM_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct MongoProductStore {
    database: Database,
    products: Collection<ProductDoc>,
    reservations: Collection<ReservationDoc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ProductDoc {
    #[serde(rename = "_id")]
    id: String,
    name: String,
    description: String,
    price_minor: i64,
    /// Documents from before currencies were priced in US dollars.
    #[serde(default = "usd")]
    currency: String,
    stock: i64,
    units_sold: i64,
    search_text: String,
    created_at: bson::DateTime,
    updated_at: bson::DateTime,
    // Also stored, never read with the product: `holds.<reservation id>`
    // (see `HoldView`) and `sold.<order id>` (see `record_sale`), both
    // dropped when the order ships (`settle_order`); a cancelled order's
    // `sold` marker is dropped later (`drop_cancelled_sale_markers`).
}

/// A product seen from one reservation: what `take` answers with and the
/// hold, if any, that the reservation has on it. Read with a projection, so
/// the other reservations' holds never leave the server.
#[derive(Debug, Deserialize)]
struct HoldView {
    #[serde(rename = "_id")]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    price_minor: i64,
    #[serde(default = "usd")]
    currency: String,
    #[serde(default)]
    stock: i64,
    #[serde(default)]
    holds: HashMap<String, i64>,
}

/// Leaves out the per-reservation holds and per-order sale markers: a
/// product sold many times carries many, and no read of the product needs them.
fn without_markers() -> Document {
    doc! { "holds": 0, "sold": 0 }
}

/// Just the fields `take` answers with, and the hold `hold` (`holds.<id>`).
fn with_hold(hold: &str) -> Document {
    doc! { "name": 1, "price_minor": 1, "currency": 1, "stock": 1, hold: 1 }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ReservationDoc {
    #[serde(rename = "_id")]
    id: String,
    state: ReservationState,
    #[serde(default)]
    owner: String,
    #[serde(default = "epoch")]
    lease_until: bson::DateTime,
    /// When the hold ends unless confirmed; holds from before this field
    /// existed read as long expired, so the next sweep reconciles them.
    #[serde(default = "epoch")]
    expires_at: bson::DateTime,
    #[serde(default)]
    items: Vec<ReservedItemDoc>,
    /// The products that still carry the order's cancelled-sale marker,
    /// until the sweep drops them (see `note_cancelled_sale`). Written only
    /// by updates, never with the document.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    sale_markers: Vec<String>,
}

impl ReservationDoc {
    /// What a release of an id never reserved leaves: released, holding
    /// nothing, so that a later reserve of the id is refused.
    fn never_reserved(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            state: ReservationState::Released,
            owner: String::new(),
            lease_until: epoch(),
            expires_at: epoch(),
            items: Vec::new(),
            sale_markers: Vec::new(),
        }
    }

    fn reservation_id(&self) -> Result<ReservationId, StoreError> {
        ReservationId::parse(&self.id)
            .map_err(|why| StoreError::Other(format!("stored reservation {:?}: {why}", self.id)))
    }
}

fn epoch() -> bson::DateTime {
    bson::DateTime::from_millis(0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ReservationState {
    Pending,
    Reserved,
    /// Reserved, and an order holds it: it no longer expires.
    Confirmed,
    /// Being given back (see `finish_release`).
    Releasing,
    Released,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ReservedItemDoc {
    product_id: String,
    product_name: String,
    quantity: i64,
    unit_price_minor: i64,
    #[serde(default = "usd")]
    currency: String,
}

fn usd() -> String {
    contract::money::DEFAULT_CURRENCY.to_owned()
}

impl MongoProductStore {
    /// Connects lazily (the driver connects on first use) to the database
    /// named in the URL (default `shop`), and creates the indexes.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let mut options = ClientOptions::parse(url).await.map_err(from_mongo)?;
        options.server_selection_timeout = Some(Duration::from_secs(3));
        options.connect_timeout = Some(Duration::from_secs(2));
        options.app_name = Some("meshwork-products".to_owned());
        super::mongo_pool::report(&mut options);
        let database_name = options.default_database.clone().unwrap_or_else(|| "shop".to_owned());
        let client = Client::with_options(options).map_err(from_mongo)?;
        Ok(Self::with_database(client.database(&database_name)))
    }

    pub fn with_database(database: Database) -> Self {
        Self { products: database.collection("products"), reservations: database.collection("reservations"), database }
    }

    /// Creates the indexes the queries use, and brings documents written
    /// before a field existed up to date (idempotent).
    pub async fn create_indexes(&self) -> Result<(), StoreError> {
        for keys in [doc! { "price_minor": 1 }, doc! { "stock": 1 }] {
            self.products
                .create_index(IndexModel::builder().keys(keys).build())
                .db_call(MONGO, "createIndexes", "products")
                .await
                .map_err(from_mongo)?;
        }
        let expiry = IndexModel::builder().keys(doc! { "state": 1, "expires_at": 1 }).build();
        // Only orders whose markers are still to drop have the field: the
        // index holds those alone, not every order ever cancelled.
        let markers = IndexModel::builder()
            .keys(doc! { "sale_markers_since": 1 })
            .options(IndexOptions::builder().sparse(true).build())
            .build();
        for index in [expiry, markers] {
            self.reservations
                .create_index(index)
                .db_call(MONGO, "createIndexes", "reservations")
                .await
                .map_err(from_mongo)?;
        }
        self.inbox()
            .create_index(IndexModel::builder().keys(doc! { "at": 1 }).build())
            .db_call(MONGO, "createIndexes", "inbox")
            .await
            .map_err(from_mongo)?;
        // Products from before currencies existed were in US dollars; they
        // read as such anyway (`usd`), this makes the stored data say so.
        self.products
            .update_many(doc! { "currency": { "$exists": false } }, doc! { "$set": { "currency": usd() } })
            .db_call(MONGO, "update", "products")
            .await
            .map_err(from_mongo)?;
        self.note_cancelled_sales_from_before().await
    }

    async fn product_doc(&self, id: &str) -> Result<Option<ProductDoc>, StoreError> {
        self.products
            .find_one(doc! { "_id": id })
            .projection(without_markers())
            .db_call(MONGO, "find", "products")
            .await
            .map_err(from_mongo)
    }

    async fn reservation(&self, id: &ReservationId) -> Result<Option<ReservationDoc>, StoreError> {
        self.reservations
            .find_one(doc! { "_id": id.as_str() })
            .db_call(MONGO, "find", "reservations")
            .await
            .map_err(from_mongo)
    }

    /// Records on the reservation of `order_id` that its sale was cancelled
    /// (for good: `sale_cancelled_at`) and that `products` carry its marker
    /// (until the sweep drops them: `sale_markers`, `sale_markers_since`).
    /// The first times stand.
    async fn note_cancelled_sale(&self, order_id: &str, products: &[&str]) -> Result<(), StoreError> {
        let now = bson::DateTime::now();
        // No reservation yet: written as `release` writes an id never reserved.
        let mut never_reserved = bson::to_document(&ReservationDoc::never_reserved(order_id))
            .map_err(|error| StoreError::Other(error.to_string()))?;
        never_reserved.remove("_id");
        self.reservations
            .update_one(
                doc! { "_id": order_id },
                doc! {
                    "$min": { "sale_cancelled_at": now, "sale_markers_since": now },
                    "$addToSet": { "sale_markers": { "$each": products } },
                    "$setOnInsert": never_reserved,
                },
            )
            .upsert(true)
            .db_call(MONGO, "update", "reservations")
            .await
            .map_err(from_mongo)?;
        Ok(())
    }

    /// Notes the cancelled sales whose markers were written before
    /// `note_cancelled_sale` existed, so that the sweep drops them too. A
    /// marker of 0 is a cancelled sale's: a counted one holds its quantity.
    /// Once per database: it reads every product ever sold.
    async fn note_cancelled_sales_from_before(&self) -> Result<(), StoreError> {
        const DONE: &str = "cancelled-sales-noted";
        let migrations = self.database.collection::<Document>("migrations");
        let done =
            migrations.find_one(doc! { "_id": DONE }).db_call(MONGO, "find", "migrations").await.map_err(from_mongo)?;
        if done.is_some() {
            return Ok(());
        }
        #[derive(Deserialize)]
        struct SaleMarkers {
            #[serde(rename = "_id")]
            product: String,
            #[serde(default)]
            sold: HashMap<String, i64>,
        }
        let mut marked = self
            .products
            .clone_with_type::<SaleMarkers>()
            .find(doc! { "sold": { "$exists": true } })
            .projection(doc! { "sold": 1 })
            .db_call(MONGO, "find", "products")
            .await
            .map_err(from_mongo)?;
        while let Some(product) = marked.try_next().await.map_err(from_mongo)? {
            for (order_id, _) in product.sold.iter().filter(|(_, quantity)| **quantity == 0) {
                self.note_cancelled_sale(order_id, &[product.product.as_str()]).await?;
            }
        }
        // Two replicas starting together both get here: each note is idempotent.
        match migrations
            .insert_one(doc! { "_id": DONE, "at": bson::DateTime::now() })
            .db_call(MONGO, "insert", "migrations")
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if is_duplicate_key(&error) => Ok(()),
            Err(error) => Err(from_mongo(error)),
        }
    }

    /// Whether the sale of `order_id` was cancelled (see `cancel_sale`) or
    /// settled (`settle_order`).
    async fn sale_closed(&self, order_id: &str) -> Result<bool, StoreError> {
        let filter = doc! {
            "_id": order_id,
            "$or": [{ "sale_cancelled_at": { "$exists": true } }, { "sale_settled_at": { "$exists": true } }],
        };
        let closed = self
            .reservations
            .clone_with_type::<Document>()
            .find_one(filter)
            .projection(doc! { "_id": 1 })
            .db_call(MONGO, "find", "reservations")
            .await
            .map_err(from_mongo)?;
        Ok(closed.is_some())
    }

    /// The events applied, `{_id: "<consumer>:<event id>", at}`.
    fn inbox(&self) -> Collection<Document> {
        self.database.collection("inbox")
    }

    fn hold_views(&self) -> Collection<HoldView> {
        self.products.clone_with_type()
    }

    /// Claims `id` for this call, or returns what an earlier call settled.
    async fn claim(
        &self,
        id: &ReservationId,
        owner: &str,
        expires_at: bson::DateTime,
    ) -> Result<Option<ReserveOutcome>, StoreError> {
        let deadline = tokio::time::Instant::now() + CLAIM_WAIT;
        loop {
            let claim = ReservationDoc {
                id: id.as_str().to_owned(),
                state: ReservationState::Pending,
                owner: owner.to_owned(),
                lease_until: lease_from_now(),
                expires_at,
                items: Vec::new(),
                sale_markers: Vec::new(),
            };
            match self.reservations.insert_one(&claim).db_call(MONGO, "insert", "reservations").await {
                Ok(_) => return Ok(None),
                Err(error) if !is_duplicate_key(&error) => return Err(from_mongo(error)),
                Err(_) => {}
            }
            let Some(existing) = self.reservation(id).await? else {
                continue; // a refused attempt removed its claim just now
            };
            match existing.state {
                ReservationState::Reserved | ReservationState::Confirmed => {
                    return Ok(Some(ReserveOutcome::Reserved(to_reservation(id, &existing))));
                }
                ReservationState::Releasing | ReservationState::Released => {
                    let refused = ReservationRefused::AlreadyReleased(id.as_str().to_owned());
                    return Ok(Some(ReserveOutcome::Refused(refused)));
                }
                ReservationState::Pending if existing.lease_until < bson::DateTime::now() => {
                    // Its owner died mid-way: take over; the holds show what it took.
                    let takeover = self
                        .reservations
                        .update_one(
                            doc! { "_id": id.as_str(), "state": "pending", "owner": &existing.owner },
                            doc! { "$set": { "owner": owner, "lease_until": lease_from_now() } },
                        )
                        .db_call(MONGO, "update", "reservations")
                        .await
                        .map_err(from_mongo)?;
                    if takeover.modified_count == 1 {
                        return Ok(None);
                    }
                }
                ReservationState::Pending => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError::ReservationBusy(id.as_str().to_owned()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Takes `quantity` of one product for `id`, or says why not. A hold
    /// already present (from a previous owner of the claim) counts as taken.
    async fn take(
        &self,
        id: &ReservationId,
        product: &ProductId,
        quantity: i32,
    ) -> Result<Result<ReservedItem, ReservationRefused>, StoreError> {
        let hold = format!("holds.{}", id.as_str());
        let taken = self
            .hold_views()
            .find_one_and_update(
                doc! { "_id": product.as_str(), "stock": { "$gte": i64::from(quantity) }, &hold: { "$exists": false } },
                doc! {
                    "$inc": { "stock": -i64::from(quantity) },
                    "$set": { &hold: i64::from(quantity), "updated_at": bson::DateTime::now() },
                },
            )
            .projection(with_hold(&hold))
            .return_document(ReturnDocument::After)
            .db_call(MONGO, "findAndModify", "products")
            .await
            .map_err(from_mongo)?;
        let doc = match taken {
            Some(doc) => doc,
            None => {
                let current = self
                    .hold_views()
                    .find_one(doc! { "_id": product.as_str() })
                    .projection(with_hold(&hold))
                    .db_call(MONGO, "find", "products")
                    .await
                    .map_err(from_mongo)?;
                match current {
                    None => return Ok(Err(ReservationRefused::UnknownProduct(product.as_str().to_owned()))),
                    Some(doc) if doc.holds.contains_key(id.as_str()) => doc,
                    Some(doc) => {
                        return Ok(Err(ReservationRefused::InsufficientStock {
                            product: product.as_str().to_owned(),
                            requested: quantity,
                            available: i32::try_from(doc.stock).unwrap_or(i32::MAX),
                        }));
                    }
                }
            }
        };
        let quantity = doc.holds.get(id.as_str()).copied().unwrap_or(i64::from(quantity));
        Ok(Ok(ReservedItem {
            product_id: product.clone(),
            product_name: doc.name,
            quantity: i32::try_from(quantity).unwrap_or(i32::MAX),
            unit_price: Price::from_minor(doc.price_minor),
            currency: Currency::from_stored(doc.currency),
        }))
    }

    /// Up to `limit` reservations matching `filter`, in `order` if given.
    async fn find_reservations(
        &self,
        filter: Document,
        order: Option<Document>,
        limit: u32,
    ) -> Result<Vec<ReservationDoc>, StoreError> {
        let mut find = self.reservations.find(filter).limit(i64::from(limit));
        if let Some(order) = order {
            find = find.sort(order);
        }
        find.db_call(MONGO, "find", "reservations").await.map_err(from_mongo)?.try_collect().await.map_err(from_mongo)
    }

    /// The end of a release marked `releasing`: gives back the holds (those
    /// of `items`, or wherever they are for a claim that died before
    /// recording its items), then marks it `released`. Each step is
    /// idempotent, so a call that dies part-way is finished by another.
    async fn finish_release(&self, id: &ReservationId, items: &[ReservedItemDoc]) -> Result<(), StoreError> {
        if items.is_empty() {
            self.give_back_everywhere(id).await?;
        }
        for item in items {
            self.give_back(id, &item.product_id, item.quantity).await?;
        }
        self.reservations
            .update_one(doc! { "_id": id.as_str(), "state": "releasing" }, doc! { "$set": { "state": "released" } })
            .db_call(MONGO, "update", "reservations")
            .await
            .map_err(from_mongo)?;
        Ok(())
    }

    /// Returns a hold to stock; a no-op when the hold is already gone.
    async fn give_back(&self, id: &ReservationId, product: &str, quantity: i64) -> Result<(), StoreError> {
        let hold = format!("holds.{}", id.as_str());
        self.products
            .update_one(
                doc! { "_id": product, &hold: { "$exists": true } },
                doc! { "$inc": { "stock": quantity }, "$unset": { &hold: "" }, "$set": { "updated_at": bson::DateTime::now() } },
            )
            .db_call(MONGO, "update", "products")
            .await
            .map_err(from_mongo)?;
        Ok(())
    }

    /// Gives back every hold of `id`, wherever it is: for a reservation whose
    /// claim died before recording its items.
    async fn give_back_everywhere(&self, id: &ReservationId) -> Result<(), StoreError> {
        let hold = format!("holds.{}", id.as_str());
        let held: Vec<HoldView> = self
            .hold_views()
            .find(doc! { &hold: { "$exists": true } })
            .projection(with_hold(&hold))
            .db_call(MONGO, "find", "products")
            .await
            .map_err(from_mongo)?
            .try_collect()
            .await
            .map_err(from_mongo)?;
        for product in held {
            let quantity = product.holds.get(id.as_str()).copied().unwrap_or(0);
            self.give_back(id, &product.id, quantity).await?;
        }
        Ok(())
    }
}

fn lease_from_now() -> bson::DateTime {
    bson::DateTime::from_millis(bson::DateTime::now().timestamp_millis() + CLAIM_LEASE.as_millis() as i64)
}

fn from_chrono(at: DateTime<Utc>) -> bson::DateTime {
    bson::DateTime::from_millis(at.timestamp_millis())
}

fn to_chrono(at: bson::DateTime) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or_default()
}

fn to_reservation(id: &ReservationId, doc: &ReservationDoc) -> Reservation {
    let items = doc
        .items
        .iter()
        .map(|item| ReservedItem {
            product_id: ProductId::parse(&item.product_id).unwrap_or_else(|_| ProductId::generate()),
            product_name: item.product_name.clone(),
            quantity: i32::try_from(item.quantity).unwrap_or(i32::MAX),
            unit_price: Price::from_minor(item.unit_price_minor),
            currency: Currency::from_stored(item.currency.clone()),
        })
        .collect();
    Reservation { id: id.clone(), items, expires_at: to_chrono(doc.expires_at) }
}

fn to_doc(product: &Product) -> ProductDoc {
    ProductDoc {
        id: product.id.as_str().to_owned(),
        name: product.name.as_str().to_owned(),
        description: product.description.as_str().to_owned(),
        price_minor: product.price.minor(),
        currency: product.currency.to_string(),
        stock: i64::from(product.stock),
        units_sold: product.units_sold,
        search_text: product.search_text(),
        created_at: bson::DateTime::from_millis(product.created_at.timestamp_millis()),
        updated_at: bson::DateTime::from_millis(product.updated_at.timestamp_millis()),
    }
}

fn from_doc(doc: ProductDoc) -> Result<Product, StoreError> {
    let corrupt =
        |field: &str, why: &str| StoreError::Other(format!("stored product {} has a bad {field}: {why}", doc.id));
    let time = |at: bson::DateTime| chrono::DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or_default();
    Ok(Product {
        id: ProductId::parse(&doc.id).map_err(|why| corrupt("id", why))?,
        name: ProductName::parse(&doc.name).map_err(|why| corrupt("name", why))?,
        description: Description::parse(&doc.description).map_err(|why| corrupt("description", why))?,
        price: Price::from_minor(doc.price_minor),
        currency: Currency::from_stored(doc.currency),
        stock: stock_from_stored(doc.stock),
        units_sold: doc.units_sold,
        created_at: time(doc.created_at),
        updated_at: time(doc.updated_at),
    })
}

/// The query for `filter`, after `after` in id order.
fn filter_doc(filter: &ProductFilter, after: Option<&ProductId>) -> Document {
    let mut query = Document::new();
    if let Some(after) = after {
        query.insert("_id", doc! { "$gt": after.as_str() });
    }
    let mut price = Document::new();
    if let Some(min) = filter.min_price {
        price.insert("$gte", min.minor());
    }
    if let Some(max) = filter.max_price {
        price.insert("$lte", max.minor());
    }
    if !price.is_empty() {
        query.insert("price_minor", price);
    }
    if let Some(currency) = &filter.currency {
        let code = currency.as_str();
        if code == contract::money::DEFAULT_CURRENCY {
            // A document from before currencies has none: it is in US dollars.
            query.insert("currency", doc! { "$in": [code, bson::Bson::Null] });
        } else {
            query.insert("currency", code);
        }
    }
    match filter.in_stock {
        Some(true) => query.insert("stock", doc! { "$gt": 0_i64 }),
        Some(false) => query.insert("stock", doc! { "$lte": 0_i64 }),
        None => None,
    };
    // Plain substring matches on the stored lowercase text: no text index
    // needed (SecantusDB has none), and the words are escaped, not patterns.
    let words: Vec<Document> =
        filter.words.iter().map(|word| doc! { "search_text": { "$regex": regex_escape(word) } }).collect();
    if !words.is_empty() {
        query.insert("$and", words);
    }
    query
}

fn regex_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\^$.|?*+()[]{}-/".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

fn is_duplicate_key(error: &mongodb::error::Error) -> bool {
    match &*error.kind {
        ErrorKind::Write(WriteFailure::WriteError(e)) => e.code == 11000,
        ErrorKind::Command(e) => e.code == 11000,
        _ => false,
    }
}

fn from_mongo(error: mongodb::error::Error) -> StoreError {
    if is_duplicate_key(&error) {
        return StoreError::DuplicateId;
    }
    match &*error.kind {
        ErrorKind::ServerSelection { .. } | ErrorKind::Io(_) | ErrorKind::ConnectionPoolCleared { .. } => {
            StoreError::Unavailable(error.to_string())
        }
        _ => StoreError::Other(error.to_string()),
    }
}

#[async_trait]
impl ProductStore for MongoProductStore {
    async fn insert(&self, product: &Product) -> Result<(), StoreError> {
        self.products.insert_one(to_doc(product)).db_call(MONGO, "insert", "products").await.map_err(from_mongo)?;
        Ok(())
    }

    async fn get(&self, id: &ProductId) -> Result<Option<Product>, StoreError> {
        self.product_doc(id.as_str()).await?.map(from_doc).transpose()
    }

    async fn list(
        &self,
        filter: &ProductFilter,
        after: Option<&ProductId>,
        limit: u32,
    ) -> Result<Vec<Product>, StoreError> {
        let cursor = self
            .products
            .find(filter_doc(filter, after))
            .projection(without_markers())
            .sort(doc! { "_id": 1 })
            .limit(i64::from(limit))
            .db_call(MONGO, "find", "products")
            .await
            .map_err(from_mongo)?;
        let docs: Vec<ProductDoc> = cursor.try_collect().await.map_err(from_mongo)?;
        docs.into_iter().map(from_doc).collect()
    }

    async fn update(&self, id: &ProductId, changes: &ProductChanges) -> Result<Option<Product>, StoreError> {
        let Some(current) = self.get(id).await? else { return Ok(None) };
        let mut set = doc! { "updated_at": bson::DateTime::from_millis(crate::domain::now().timestamp_millis()) };
        if let Some(name) = &changes.name {
            set.insert("name", name.as_str());
        }
        if let Some(description) = &changes.description {
            set.insert("description", description.as_str());
        }
        if changes.name.is_some() || changes.description.is_some() {
            let mut preview = current.clone();
            preview.name = changes.name.clone().unwrap_or(current.name);
            preview.description = changes.description.clone().unwrap_or(current.description);
            set.insert("search_text", preview.search_text());
        }
        if let Some(price) = changes.price {
            set.insert("price_minor", price.minor());
        }
        if let Some(stock) = changes.stock {
            set.insert("stock", i64::from(stock));
        }
        let updated = self
            .products
            .find_one_and_update(doc! { "_id": id.as_str() }, doc! { "$set": set })
            .projection(without_markers())
            .return_document(ReturnDocument::After)
            .db_call(MONGO, "findAndModify", "products")
            .await
            .map_err(from_mongo)?;
        updated.map(from_doc).transpose()
    }

    async fn delete(&self, id: &ProductId) -> Result<bool, StoreError> {
        let result = self
            .products
            .delete_one(doc! { "_id": id.as_str() })
            .db_call(MONGO, "delete", "products")
            .await
            .map_err(from_mongo)?;
        Ok(result.deleted_count == 1)
    }

    async fn adjust_stock(&self, id: &ProductId, delta: i32) -> Result<Product, AdjustError> {
        let mut filter = doc! { "_id": id.as_str() };
        if delta < 0 {
            filter.insert("stock", doc! { "$gte": -i64::from(delta) });
        } else {
            filter.insert("stock", doc! { "$lte": i64::from(MAX_STOCK) - i64::from(delta) });
        }
        let update = doc! { "$inc": { "stock": i64::from(delta) }, "$set": { "updated_at": bson::DateTime::now() } };
        let updated = self
            .products
            .find_one_and_update(filter, update)
            .projection(without_markers())
            .return_document(ReturnDocument::After)
            .db_call(MONGO, "findAndModify", "products")
            .await
            .map_err(from_mongo)?;
        match updated {
            Some(doc) => Ok(from_doc(doc)?),
            None => match self.get(id).await? {
                None => Err(AdjustError::NotFound),
                Some(product) if delta < 0 => Err(AdjustError::WouldGoNegative { stock: product.stock, delta }),
                Some(product) => Err(AdjustError::WouldExceedMax { stock: product.stock, delta }),
            },
        }
    }

    async fn reserve(
        &self,
        id: &ReservationId,
        items: &[(ProductId, i32)],
        expires_at: DateTime<Utc>,
    ) -> Result<ReserveOutcome, StoreError> {
        let owner = uuid::Uuid::new_v4().to_string();
        if let Some(settled) = self.claim(id, &owner, from_chrono(expires_at)).await? {
            return Ok(settled);
        }
        let mut taken = Vec::with_capacity(items.len());
        for (product, quantity) in items {
            match self.take(id, product, *quantity).await? {
                Ok(item) => taken.push(item),
                Err(refused) => {
                    for item in &taken {
                        self.give_back(id, item.product_id.as_str(), i64::from(item.quantity)).await?;
                    }
                    self.reservations
                        .delete_one(doc! { "_id": id.as_str(), "owner": &owner })
                        .db_call(MONGO, "delete", "reservations")
                        .await
                        .map_err(from_mongo)?;
                    return Ok(ReserveOutcome::Refused(refused));
                }
            }
        }
        let items_doc: Vec<Document> = taken
            .iter()
            .map(|item| {
                doc! {
                    "product_id": item.product_id.as_str(),
                    "product_name": &item.product_name,
                    "quantity": i64::from(item.quantity),
                    "unit_price_minor": item.unit_price.minor(),
                    "currency": item.currency.as_str(),
                }
            })
            .collect();
        let settled = self
            .reservations
            .update_one(
                doc! { "_id": id.as_str(), "owner": &owner, "state": "pending" },
                doc! { "$set": { "state": "reserved", "items": items_doc } },
            )
            .db_call(MONGO, "update", "reservations")
            .await
            .map_err(from_mongo)?;
        if settled.modified_count == 1 {
            Ok(ReserveOutcome::Reserved(Reservation { id: id.clone(), items: taken, expires_at }))
        } else {
            // The lease ran out and another call took over; it reports the result.
            Err(StoreError::ReservationBusy(id.as_str().to_owned()))
        }
    }

    async fn confirm(&self, id: &ReservationId) -> Result<bool, StoreError> {
        let confirmed = self
            .reservations
            .update_one(doc! { "_id": id.as_str(), "state": "reserved" }, doc! { "$set": { "state": "confirmed" } })
            .db_call(MONGO, "update", "reservations")
            .await
            .map_err(from_mongo)?;
        if confirmed.modified_count == 1 {
            return Ok(true);
        }
        let current = self.reservation(id).await?;
        Ok(current.is_some_and(|reservation| reservation.state == ReservationState::Confirmed))
    }

    async fn expired_holds(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<ReservationId>, StoreError> {
        let now = from_chrono(now);
        // A pending claim counts once its reserving call is surely gone.
        let filter = doc! {
            "expires_at": { "$lt": now },
            "$or": [{ "state": "reserved" }, { "state": "pending", "lease_until": { "$lt": now } }],
        };
        let expired = self.find_reservations(filter, Some(doc! { "expires_at": 1 }), limit).await?;
        expired.iter().map(ReservationDoc::reservation_id).collect()
    }

    async fn release(&self, id: &ReservationId) -> Result<bool, StoreError> {
        let deadline = tokio::time::Instant::now() + CLAIM_WAIT;
        loop {
            let Some(existing) = self.reservation(id).await? else {
                // Never reserved: leave a tombstone so a late reserve is refused.
                let tombstone = ReservationDoc::never_reserved(id.as_str());
                match self.reservations.insert_one(&tombstone).db_call(MONGO, "insert", "reservations").await {
                    Ok(_) => return Ok(false),
                    Err(error) if is_duplicate_key(&error) => continue,
                    Err(error) => return Err(from_mongo(error)),
                }
            };
            match existing.state {
                ReservationState::Pending if existing.lease_until >= bson::DateTime::now() => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(StoreError::ReservationBusy(id.as_str().to_owned()));
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                ReservationState::Pending | ReservationState::Reserved | ReservationState::Confirmed => {
                    // Marked first, so that nothing confirms it meanwhile;
                    // a crash before the end leaves it `releasing`, which
                    // `finish_interrupted_releases` finishes.
                    let mut filter = match existing.state {
                        // Its reserving call died: release whatever it held.
                        ReservationState::Pending => doc! { "state": "pending", "owner": &existing.owner },
                        _ => doc! { "state": { "$in": ["reserved", "confirmed"] } },
                    };
                    filter.insert("_id", id.as_str());
                    let started = self
                        .reservations
                        .update_one(filter, doc! { "$set": { "state": "releasing", "lease_until": lease_from_now() } })
                        .db_call(MONGO, "update", "reservations")
                        .await
                        .map_err(from_mongo)?;
                    if started.modified_count == 0 {
                        continue; // another call changed it since it was read: look again
                    }
                    self.finish_release(id, &existing.items).await?;
                    return Ok(true);
                }
                ReservationState::Releasing => {
                    // Another call is at it, or died at it: holds make
                    // finishing it here exactly-once.
                    self.finish_release(id, &existing.items).await?;
                    return Ok(false);
                }
                ReservationState::Released => {
                    // Released before `releasing` existed, a give-back may be
                    // missing: holds make giving back again a no-op otherwise.
                    for item in &existing.items {
                        self.give_back(id, &item.product_id, item.quantity).await?;
                    }
                    return Ok(false);
                }
            }
        }
    }

    async fn finish_interrupted_releases(&self, now: DateTime<Utc>, limit: u32) -> Result<u32, StoreError> {
        let filter = doc! { "state": "releasing", "lease_until": { "$lt": from_chrono(now) } };
        let interrupted = self.find_reservations(filter, None, limit).await?;
        for reservation in &interrupted {
            self.finish_release(&reservation.reservation_id()?, &reservation.items).await?;
        }
        Ok(interrupted.len() as u32)
    }

    async fn record_sale(&self, order_id: &str, items: &[(ProductId, i32)]) -> Result<(), StoreError> {
        // A sale cancelled or settled is never counted (again), however long
        // ago: its markers may be gone from the products by now.
        if self.sale_closed(order_id).await? {
            return Ok(());
        }
        let sold = format!("sold.{order_id}");
        for (product_id, quantity) in items {
            self.products
                .update_one(
                    doc! { "_id": product_id.as_str(), &sold: { "$exists": false } },
                    doc! { "$inc": { "units_sold": i64::from(*quantity) }, "$set": { &sold: i64::from(*quantity) } },
                )
                .db_call(MONGO, "update", "products")
                .await
                .map_err(from_mongo)?;
        }
        Ok(())
    }

    async fn cancel_sale(&self, order_id: &str, items: &[(ProductId, i32)]) -> Result<(), StoreError> {
        // Said on the order's reservation first: a creation applied after
        // this counts nothing, and the sweep knows which products carry a
        // marker. The first cancellation's time stands: a redelivered one
        // does not put the sweep off.
        let products: Vec<&str> = items.iter().map(|(product_id, _)| product_id.as_str()).collect();
        self.note_cancelled_sale(order_id, &products).await?;
        let sold = format!("sold.{order_id}");
        for (product_id, quantity) in items {
            // A tombstone first, so that a sale not counted yet never is...
            self.products
                .update_one(
                    doc! { "_id": product_id.as_str(), &sold: { "$exists": false } },
                    doc! { "$set": { &sold: 0_i64 } },
                )
                .db_call(MONGO, "update", "products")
                .await
                .map_err(from_mongo)?;
            // ...then take back a counted one, exactly once.
            self.products
                .update_one(
                    doc! { "_id": product_id.as_str(), &sold: { "$gt": 0_i64 } },
                    doc! { "$inc": { "units_sold": -i64::from(*quantity) }, "$set": { &sold: 0_i64 } },
                )
                .db_call(MONGO, "update", "products")
                .await
                .map_err(from_mongo)?;
        }
        Ok(())
    }

    async fn drop_cancelled_sale_markers(&self, before: DateTime<Utc>, limit: u32) -> Result<u32, StoreError> {
        let filter = doc! { "sale_markers_since": { "$lt": from_chrono(before) } };
        let cancelled = self.find_reservations(filter, None, limit).await?;
        for order in &cancelled {
            let sold = format!("sold.{}", order.id);
            for product in &order.sale_markers {
                // Only a cancelled sale's marker (0) goes.
                self.products
                    .update_one(doc! { "_id": product, &sold: 0_i64 }, doc! { "$unset": { &sold: "" } })
                    .db_call(MONGO, "update", "products")
                    .await
                    .map_err(from_mongo)?;
            }
            // Just the products swept: a cancellation redelivered meanwhile
            // may have added one, for the next round. Done when none is left.
            self.reservations
                .update_one(doc! { "_id": &order.id }, doc! { "$pullAll": { "sale_markers": &order.sale_markers } })
                .db_call(MONGO, "update", "reservations")
                .await
                .map_err(from_mongo)?;
            self.reservations
                .update_one(
                    doc! { "_id": &order.id, "sale_markers": { "$size": 0 } },
                    doc! { "$unset": { "sale_markers": "", "sale_markers_since": "" } },
                )
                .db_call(MONGO, "update", "reservations")
                .await
                .map_err(from_mongo)?;
        }
        Ok(cancelled.len() as u32)
    }

    async fn settle_order(&self, order_id: &str) -> Result<(), StoreError> {
        let reserved = self
            .reservations
            .find_one(doc! { "_id": order_id, "state": { "$in": ["reserved", "confirmed"] } })
            .db_call(MONGO, "find", "reservations")
            .await
            .map_err(from_mongo)?;
        let Some(reservation) = reserved else { return Ok(()) };
        // Said on the reservation first: once the markers are gone, a
        // duplicate of the order's creation finds this (see `record_sale`).
        self.reservations
            .update_one(doc! { "_id": order_id }, doc! { "$min": { "sale_settled_at": bson::DateTime::now() } })
            .db_call(MONGO, "update", "reservations")
            .await
            .map_err(from_mongo)?;
        let (hold, sold) = (format!("holds.{order_id}"), format!("sold.{order_id}"));
        for item in &reservation.items {
            self.products
                .update_one(doc! { "_id": &item.product_id }, doc! { "$unset": { &hold: "", &sold: "" } })
                .db_call(MONGO, "update", "products")
                .await
                .map_err(from_mongo)?;
        }
        Ok(())
    }

    async fn inbox_contains(&self, consumer: &str, event_id: &str) -> Result<bool, StoreError> {
        let found = self
            .inbox()
            .find_one(doc! { "_id": format!("{consumer}:{event_id}") })
            .db_call(MONGO, "find", "inbox")
            .await
            .map_err(from_mongo)?;
        Ok(found.is_some())
    }

    async fn inbox_record(&self, consumer: &str, event_id: &str) -> Result<(), StoreError> {
        match self
            .inbox()
            .insert_one(doc! { "_id": format!("{consumer}:{event_id}"), "at": bson::DateTime::now() })
            .db_call(MONGO, "insert", "inbox")
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if is_duplicate_key(&error) => Ok(()),
            Err(error) => Err(from_mongo(error)),
        }
    }

    async fn forget_applied_events(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let forgotten = self
            .inbox()
            .delete_many(doc! { "at": { "$lt": from_chrono(before) } })
            .db_call(MONGO, "delete", "inbox")
            .await
            .map_err(from_mongo)?;
        Ok(forgotten.deleted_count)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.database.run_command(doc! { "ping": 1 }).db_call(MONGO, "ping", "").await.map_err(from_mongo)?;
        Ok(())
    }
}
