//! The catalog half of the store suite, run against SQLite and MongoDB.

use products::domain::{Currency, Price, ProductChanges, ProductFilter, ProductId, ProductName, search_words};
use products::store::{AdjustError, StoreError};

use crate::helpers::{Backend, product, store};

async fn inserted_product_reads_back(backend: Backend, test: &str) {
    let Some((store, _db)) = store(backend, test).await else { return };
    let widget = product("prod-123", "Widget", 2999, 100);
    store.insert(&widget).await.unwrap();
    assert_eq!(store.get(&widget.id).await.unwrap(), Some(widget));
    assert_eq!(store.get(&ProductId::parse("prod-404").unwrap()).await.unwrap(), None);
}

async fn second_product_with_an_id_is_refused(backend: Backend, test: &str) {
    let Some((store, _db)) = store(backend, test).await else { return };
    store.insert(&product("prod-1", "First", 100, 1)).await.unwrap();
    let error = store.insert(&product("prod-1", "Second", 100, 1)).await.unwrap_err();
    assert!(matches!(error, StoreError::DuplicateId), "{error:?}");
}

async fn filters_and_search_agree_with_the_reference(backend: Backend, test: &str) {
    let Some((store, _db)) = store(backend, test).await else { return };
    let mut catalog = vec![
        product("p01", "Blue Widget", 2999, 100),
        product("p02", "Red Widget", 1999, 0),
        product("p03", "Gadget Pro", 4999, 5),
        product("p04", "C++ Handbook", 3999, 2),
        product("p05", "100% Cotton Shirt", 1500, 7),
        product("p06", "Widget_Deluxe", 9999, 1),
        product("p07", "ÉCLAIR Mould", 2500, 3),
        product("p08", "Euro Widget", 2999, 4),
    ];
    catalog[2].description = products::domain::Description::parse("The widget of widgets").unwrap();
    catalog[7].currency = Currency::parse("EUR").unwrap();
    for item in &catalog {
        store.insert(item).await.unwrap();
    }
    let price = |minor| Some(Price::from_minor(minor));
    let currency = |code| Some(Currency::parse(code).unwrap());
    let filters = [
        ProductFilter::default(),
        ProductFilter { min_price: price(2000), ..Default::default() },
        ProductFilter { max_price: price(2999), ..Default::default() },
        ProductFilter { min_price: price(1999), max_price: price(3999), ..Default::default() },
        ProductFilter { in_stock: Some(true), ..Default::default() },
        ProductFilter { in_stock: Some(false), ..Default::default() },
        ProductFilter { words: search_words("WIDGET"), ..Default::default() },
        ProductFilter { words: search_words("widget blue"), ..Default::default() },
        ProductFilter {
            words: search_words("widget"),
            in_stock: Some(true),
            max_price: price(5000),
            ..Default::default()
        },
        ProductFilter { words: search_words("c++"), ..Default::default() },
        ProductFilter { words: search_words("100%"), ..Default::default() },
        ProductFilter { words: search_words("t_d"), ..Default::default() },
        ProductFilter { words: search_words("éclair"), ..Default::default() },
        ProductFilter { words: search_words(".*"), ..Default::default() },
        ProductFilter { currency: currency("EUR"), ..Default::default() },
        ProductFilter { currency: currency("USD"), min_price: price(2000), ..Default::default() },
        ProductFilter { currency: currency("EUR"), max_price: price(3000), ..Default::default() },
        ProductFilter { currency: currency("GBP"), ..Default::default() },
    ];
    for filter in filters {
        let expected: Vec<&str> = catalog.iter().filter(|p| filter.matches(p)).map(|p| p.id.as_str()).collect();
        let listed = store.list(&filter, None, 100).await.unwrap();
        let listed_ids: Vec<&str> = listed.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(listed_ids, expected, "{filter:?}");
    }
}

/// MongoDB documents written before prices had a currency have none, and are
/// in US dollars: a filter in US dollars finds them, one in another currency
/// does not.
async fn a_product_from_before_currencies_is_listed_in_us_dollars(backend: Backend, test: &str) {
    let Some((store, database)) = store(backend, test).await else { return };
    let old = product("old", "Old Widget", 1500, 1);
    store.insert(&old).await.unwrap();
    if let Some(database) = &database {
        let products = database.database().collection::<mongodb::bson::Document>("products");
        let unset = mongodb::bson::doc! { "$unset": { "currency": "" } };
        let changed = products.update_one(mongodb::bson::doc! { "_id": "old" }, unset).await.unwrap();
        assert_eq!(changed.modified_count, 1, "the document loses its currency, as one written before them");
    }
    let listed = |code| {
        let filter = ProductFilter { currency: Some(Currency::parse(code).unwrap()), ..Default::default() };
        let store = store.clone();
        async move { store.list(&filter, None, 10).await.unwrap().into_iter().map(|p| p.id).collect::<Vec<_>>() }
    };
    assert_eq!(listed("USD").await, [old.id]);
    assert!(listed("EUR").await.is_empty());
}

async fn list_pages_in_id_order(backend: Backend, test: &str) {
    let Some((store, _db)) = store(backend, test).await else { return };
    for i in (0..9).rev() {
        store.insert(&product(&format!("p{i}"), "Thing", 100, 1)).await.unwrap();
    }
    let filter = ProductFilter::default();
    let first = store.list(&filter, None, 4).await.unwrap();
    let second = store.list(&filter, Some(&first[3].id), 4).await.unwrap();
    let third = store.list(&filter, Some(&second[3].id), 4).await.unwrap();
    let ids: Vec<&str> = first.iter().chain(&second).chain(&third).map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8"]);
}

async fn update_changes_only_the_given_fields(backend: Backend, test: &str) {
    let Some((store, _db)) = store(backend, test).await else { return };
    let original = product("prod-1", "Widget", 2999, 10);
    store.insert(&original).await.unwrap();
    let changes = ProductChanges { name: Some(ProductName::parse("Gizmo").unwrap()), ..Default::default() };
    let updated = store.update(&original.id, &changes).await.unwrap().unwrap();
    assert_eq!(updated.name.as_str(), "Gizmo");
    assert_eq!((updated.price, updated.stock), (original.price, original.stock));
    assert_eq!(store.get(&original.id).await.unwrap(), Some(updated));

    let search = ProductFilter { words: search_words("gizmo"), ..Default::default() };
    assert_eq!(store.list(&search, None, 10).await.unwrap().len(), 1, "search text follows the new name");

    let changes = ProductChanges { price: Some(Price::from_minor(1)), stock: Some(3), ..Default::default() };
    let updated = store.update(&original.id, &changes).await.unwrap().unwrap();
    assert_eq!((updated.price.minor(), updated.stock, updated.name.as_str()), (1, 3, "Gizmo"));
    assert!(store.update(&ProductId::parse("ghost").unwrap(), &changes).await.unwrap().is_none());
}

async fn delete_removes_the_product_once(backend: Backend, test: &str) {
    let Some((store, _db)) = store(backend, test).await else { return };
    let item = product("prod-1", "Widget", 2999, 10);
    store.insert(&item).await.unwrap();
    assert!(store.delete(&item.id).await.unwrap());
    assert!(!store.delete(&item.id).await.unwrap());
    assert_eq!(store.get(&item.id).await.unwrap(), None);
}

async fn stock_adjusts_but_never_below_zero(backend: Backend, test: &str) {
    let Some((store, _db)) = store(backend, test).await else { return };
    let item = product("prod-1", "Widget", 2999, 10);
    store.insert(&item).await.unwrap();
    assert_eq!(store.adjust_stock(&item.id, 5).await.unwrap().stock, 15);
    assert_eq!(store.adjust_stock(&item.id, -15).await.unwrap().stock, 0);
    let refused = store.adjust_stock(&item.id, -1).await.unwrap_err();
    assert!(matches!(refused, AdjustError::WouldGoNegative { stock: 0, delta: -1 }), "{refused:?}");
    let missing = store.adjust_stock(&ProductId::parse("ghost").unwrap(), 1).await.unwrap_err();
    assert!(matches!(missing, AdjustError::NotFound), "{missing:?}");
}

async fn ping_answers_while_the_database_is_up(backend: Backend, test: &str) {
    let Some((store, _db)) = store(backend, test).await else { return };
    store.ping().await.unwrap();
}

testkit::backend_tests!(crate::helpers::Backend { sqlite => Sqlite, mongo => Mongo }: [
    inserted_product_reads_back,
    second_product_with_an_id_is_refused,
    filters_and_search_agree_with_the_reference,
    a_product_from_before_currencies_is_listed_in_us_dollars,
    list_pages_in_id_order,
    update_changes_only_the_given_fields,
    delete_removes_the_product_once,
    stock_adjusts_but_never_below_zero,
    ping_answers_while_the_database_is_up,
]);
