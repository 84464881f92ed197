//! MongoDB only, where the exactly-once bookkeeping lives inside the product
//! documents: a reservation whose caller died part-way (stock taken and held
//! for one item, the reservation still pending, its lease run out) is
//! finished by the next caller without taking the held item twice; a release
//! of such a reservation gives back what the holds say; and a shipped order's
//! bookkeeping leaves the documents, so they do not grow with every order,
//! nor does a cancelled order's an hour later, while its sale stays
//! uncounted (a sale cancelled with no reservation leaves its id released,
//! as a release does); a release whose caller died part-way (stock given
//! back for one item of two) is finished, once, by the next sweep.

use std::sync::Arc;

use contract::orders::OrderStatus;
use mongodb::bson::{Document, doc};
use products::domain::{ProductId, ReservationId};
use products::store::{ProductStore, ReserveOutcome};
use testkit::mongo::TestMongo;

use crate::helpers::{Backend, held, product, store};

/// Leaves in `database` what a caller of reservation `id` leaves when it
/// dies right after taking `quantity` of `product`.
async fn die_after_taking(database: &TestMongo, id: &str, product: &str, quantity: i64) {
    let database = database.database();
    let hold = format!("holds.{id}");
    let taken = database
        .collection::<Document>("products")
        .update_one(doc! { "_id": product }, doc! { "$inc": { "stock": -quantity }, "$set": { &hold: quantity } })
        .await
        .unwrap();
    assert_eq!(taken.modified_count, 1);
    let epoch = mongodb::bson::DateTime::from_millis(0);
    database
        .collection::<Document>("reservations")
        .insert_one(doc! { "_id": id, "state": "pending", "owner": "died", "lease_until": epoch, "items": [] })
        .await
        .unwrap();
}

async fn stock_of(store: &Arc<dyn ProductStore>, id: &str) -> i32 {
    store.get(&ProductId::parse(id).unwrap()).await.unwrap().unwrap().stock
}

#[tokio::test]
async fn a_retry_finishes_a_dead_callers_reservation_without_taking_twice() {
    let Some((store, Some(database))) = store(Backend::Mongo, "takeover_finish").await else { return };
    store.insert(&product("apple", "Apple", 100, 5)).await.unwrap();
    store.insert(&product("pear", "Pear", 200, 5)).await.unwrap();
    die_after_taking(&database, "order-1", "apple", 2).await;

    let id = ReservationId::parse("order-1").unwrap();
    let items = [(ProductId::parse("apple").unwrap(), 2), (ProductId::parse("pear").unwrap(), 1)];
    let ReserveOutcome::Reserved(reservation) = store.reserve(&id, &items, held()).await.unwrap() else {
        panic!("the retry is refused")
    };
    let taken: Vec<(&str, i32, i64)> =
        reservation.items.iter().map(|i| (i.product_id.as_str(), i.quantity, i.unit_price.minor())).collect();
    assert_eq!(taken, [("apple", 2, 100), ("pear", 1, 200)]);
    assert_eq!(stock_of(&store, "apple").await, 3, "the held apples are not taken again");
    assert_eq!(stock_of(&store, "pear").await, 4);

    assert!(store.release(&id).await.unwrap());
    assert_eq!((stock_of(&store, "apple").await, stock_of(&store, "pear").await), (5, 5));
}

#[tokio::test]
async fn releasing_a_dead_callers_reservation_gives_back_its_holds() {
    let Some((store, Some(database))) = store(Backend::Mongo, "takeover_release").await else { return };
    store.insert(&product("plum", "Plum", 100, 5)).await.unwrap();
    die_after_taking(&database, "order-2", "plum", 3).await;
    assert_eq!(stock_of(&store, "plum").await, 2);

    store.release(&ReservationId::parse("order-2").unwrap()).await.unwrap();
    assert_eq!(stock_of(&store, "plum").await, 5, "the hold went back to stock");
}

/// The names of the fields of product `id` as stored.
async fn stored_fields(database: &TestMongo, id: &str, field: &str) -> Vec<String> {
    let stored = database.database().collection::<Document>("products").find_one(doc! { "_id": id }).await.unwrap();
    stored.unwrap().get_document(field).map(|map| map.keys().cloned().collect()).unwrap_or_default()
}

#[tokio::test]
async fn a_shipped_orders_holds_and_sale_markers_leave_the_product() {
    let Some((store, Some(database))) = store(Backend::Mongo, "settle_markers").await else { return };
    store.insert(&product("a", "A", 100, 10)).await.unwrap();
    let handler = products::consumer::OrderEvents::new(store.clone());
    crate::sales::place(&store, &handler, "order-1", 3).await;
    crate::sales::place(&store, &handler, "order-2", 1).await;
    assert_eq!(stored_fields(&database, "a", "holds").await, ["order-1", "order-2"]);
    assert_eq!(stored_fields(&database, "a", "sold").await, ["order-1", "order-2"]);

    use events::Handler;
    handler.handle(&crate::sales::status_changed("order-1", OrderStatus::Paid)).await.unwrap();
    assert_eq!(stored_fields(&database, "a", "holds").await.len(), 2, "a paid order may still be cancelled");
    handler.handle(&crate::sales::status_changed("order-1", OrderStatus::Shipped)).await.unwrap();
    assert_eq!(stored_fields(&database, "a", "holds").await, ["order-2"]);
    assert_eq!(stored_fields(&database, "a", "sold").await, ["order-2"]);
    let product = store.get(&ProductId::parse("a").unwrap()).await.unwrap().unwrap();
    assert_eq!((product.stock, product.units_sold), (6, 4));
    // An event from before the status enum, still queued, names the status.
    handler.handle(&crate::sales::status_named("order-2", "SHIPPED")).await.unwrap();
    assert!(stored_fields(&database, "a", "holds").await.is_empty());
}

#[tokio::test]
async fn a_release_interrupted_part_way_is_finished_by_the_sweep_once() {
    let Some((store, Some(database))) = store(Backend::Mongo, "takeover_releasing").await else { return };
    store.insert(&product("fig", "Fig", 100, 5)).await.unwrap();
    store.insert(&product("date", "Date", 100, 5)).await.unwrap();
    let id = ReservationId::parse("order-4").unwrap();
    let items = [(ProductId::parse("fig").unwrap(), 2), (ProductId::parse("date").unwrap(), 3)];
    assert!(matches!(store.reserve(&id, &items, held()).await.unwrap(), ReserveOutcome::Reserved(_)));

    // What a release leaves when its process dies after giving back the
    // figs: marked releasing (its lease run out), the dates still held.
    let db = database.database();
    let epoch = mongodb::bson::DateTime::from_millis(0);
    db.collection::<Document>("reservations")
        .update_one(doc! { "_id": "order-4" }, doc! { "$set": { "state": "releasing", "lease_until": epoch } })
        .await
        .unwrap();
    db.collection::<Document>("products")
        .update_one(doc! { "_id": "fig" }, doc! { "$inc": { "stock": 2 }, "$unset": { "holds.order-4": "" } })
        .await
        .unwrap();
    assert_eq!((stock_of(&store, "fig").await, stock_of(&store, "date").await), (5, 2));
    assert!(!store.confirm(&id).await.unwrap(), "a release under way cannot be confirmed");
    assert!(matches!(store.reserve(&id, &items, held()).await.unwrap(), ReserveOutcome::Refused(_)));

    assert_eq!(store.finish_interrupted_releases(products::domain::now(), 10).await.unwrap(), 1);
    assert_eq!((stock_of(&store, "fig").await, stock_of(&store, "date").await), (5, 5), "every unit is back, once");
    assert_eq!(store.finish_interrupted_releases(products::domain::now(), 10).await.unwrap(), 0, "and it is done");
    assert!(!store.release(&id).await.unwrap(), "released before");
    assert_eq!((stock_of(&store, "fig").await, stock_of(&store, "date").await), (5, 5));
}

/// The names of the `sold` markers of product `id`, sorted.
async fn sale_markers(database: &TestMongo, id: &str) -> Vec<String> {
    let mut markers = stored_fields(database, id, "sold").await;
    markers.sort();
    markers
}

#[tokio::test]
async fn a_cancelled_orders_sale_marker_leaves_the_product_an_hour_later() {
    use events::Handler;
    use products::holds::CANCELLED_SALE_MARKERS_KEPT;

    use crate::sales::{cancelled, created};

    let Some((store, Some(database))) = store(Backend::Mongo, "cancelled_markers").await else { return };
    store.insert(&product("a", "A", 100, 10)).await.unwrap();
    let handler = products::consumer::OrderEvents::new(store.clone());
    crate::sales::place(&store, &handler, "order-1", 3).await;
    crate::sales::place(&store, &handler, "order-2", 1).await;
    handler.handle(&cancelled("order-1", 3)).await.unwrap();
    handler.handle(&cancelled("never-created", 2)).await.unwrap();
    assert_eq!(sale_markers(&database, "a").await, ["never-created", "order-1", "order-2"]);

    let hour_ago = products::domain::now() - CANCELLED_SALE_MARKERS_KEPT;
    assert_eq!(store.drop_cancelled_sale_markers(hour_ago, 10).await.unwrap(), 0, "kept for an hour");
    assert_eq!(sale_markers(&database, "a").await.len(), 3);

    let hour_on = products::domain::now() + chrono::TimeDelta::seconds(1);
    assert_eq!(store.drop_cancelled_sale_markers(hour_on, 10).await.unwrap(), 2);
    assert_eq!(sale_markers(&database, "a").await, ["order-2"], "the live order keeps its marker");
    assert_eq!(store.drop_cancelled_sale_markers(hour_on, 10).await.unwrap(), 0, "and it is done");

    // Late creations (new event ids) still count nothing; a cancellation
    // delivered again takes nothing back twice, and its marker goes too.
    handler.handle(&created("order-1", 3)).await.unwrap();
    handler.handle(&created("never-created", 2)).await.unwrap();
    handler.handle(&cancelled("order-1", 3)).await.unwrap();
    let product = store.get(&ProductId::parse("a").unwrap()).await.unwrap().unwrap();
    assert_eq!((product.stock, product.units_sold), (9, 1));
    assert_eq!(store.drop_cancelled_sale_markers(hour_on, 10).await.unwrap(), 1);
    assert_eq!(sale_markers(&database, "a").await, ["order-2"]);
    let reservations = database.database().collection::<Document>("reservations");
    let still_to_sweep = reservations.count_documents(doc! { "sale_markers_since": { "$exists": true } }).await;
    assert_eq!(still_to_sweep.unwrap(), 0, "the sweep's index no longer holds them");
}

#[tokio::test]
async fn sale_markers_cancelled_before_the_sweep_existed_are_found_at_start() {
    let Some((store, Some(database))) = store(Backend::Mongo, "legacy_markers").await else { return };
    store.insert(&product("a", "A", 100, 10)).await.unwrap();
    // As a cancellation left it before: the marker at 0, the reservation
    // released with no word of the sale.
    let db = database.database();
    db.collection::<Document>("products")
        .update_one(doc! { "_id": "a" }, doc! { "$set": { "sold.old-1": 0_i64, "sold.live-1": 2_i64 } })
        .await
        .unwrap();
    db.collection::<Document>("reservations")
        .insert_one(doc! { "_id": "old-1", "state": "released", "items": [] })
        .await
        .unwrap();
    // A database from before has no record of the markers being noted.
    db.collection::<Document>("migrations").delete_many(doc! {}).await.unwrap();

    let restarted = products::store::MongoProductStore::with_database(db.clone());
    restarted.create_indexes().await.unwrap();
    let hour_on = products::domain::now() + chrono::TimeDelta::seconds(1);
    assert_eq!(restarted.drop_cancelled_sale_markers(hour_on, 10).await.unwrap(), 1);
    assert_eq!(sale_markers(&database, "a").await, ["live-1"], "a counted sale keeps its marker");
    assert!(!store.release(&ReservationId::parse("old-1").unwrap()).await.unwrap());

    // Noted once: a marker like it written now is no longer looked for.
    db.collection::<Document>("products")
        .update_one(doc! { "_id": "a" }, doc! { "$set": { "sold.old-2": 0_i64 } })
        .await
        .unwrap();
    restarted.create_indexes().await.unwrap();
    assert_eq!(restarted.drop_cancelled_sale_markers(hour_on, 10).await.unwrap(), 0);
}

#[tokio::test]
async fn a_sale_cancelled_with_no_reservation_leaves_the_id_released() {
    let Some((store, Some(_database))) = store(Backend::Mongo, "cancel_unreserved").await else { return };
    store.insert(&product("a", "A", 100, 10)).await.unwrap();
    let items = [(ProductId::parse("a").unwrap(), 2)];
    store.cancel_sale("lonely", &items).await.unwrap();
    store.record_sale("lonely", &items).await.unwrap();
    let id = ReservationId::parse("lonely").unwrap();
    let late = store.reserve(&id, &items, held()).await.unwrap();
    assert!(matches!(late, ReserveOutcome::Refused(_)), "as after a release: {late:?}");
    let product = store.get(&ProductId::parse("a").unwrap()).await.unwrap().unwrap();
    assert_eq!((product.stock, product.units_sold), (10, 0));
}
