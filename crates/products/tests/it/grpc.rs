//! The products service over real gRPC: every RPC and every error.

use contract::products::{
    AdjustStockRequest, CreateProductRequest, DeleteProductRequest, GetProductRequest, ListProductsRequest,
    ProductFilter, ReleaseStockRequest, ReserveStockRequest, SearchProductsRequest, StockItem, UpdateProductRequest,
};
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{Backend, TestApp, spawn_app};

fn template_product() -> CreateProductRequest {
    CreateProductRequest {
        id: "prod-123".to_owned(),
        name: "Widget".to_owned(),
        description: "A fine widget".to_owned(),
        price: 29.99,
        stock: 100,
        currency: String::new(),
    }
}

async fn create(app: &TestApp, request: CreateProductRequest) -> contract::products::Product {
    app.client.clone().create_product(request).await.unwrap().into_inner().product.unwrap()
}

fn violated_fields(status: &tonic::Status) -> Vec<String> {
    let details = status.get_error_details();
    let bad_request = details.bad_request().unwrap_or_else(|| panic!("no BadRequest details in {status:?}"));
    bad_request.field_violations.iter().map(|v| v.field.clone()).collect()
}

/// A reservation as the orders service sends it (an internal method: it
/// needs a service token).
fn reserve_request(reservation: &str, items: &[(&str, i32)]) -> tonic::Request<ReserveStockRequest> {
    testkit::as_service(
        "orders",
        ReserveStockRequest {
            reservation_id: reservation.to_owned(),
            items: items.iter().map(|(p, q)| StockItem { product_id: (*p).to_owned(), quantity: *q }).collect(),
        },
    )
}

async fn catalog_lifecycle_create_get_update_adjust_delete(backend: Backend, test: &str) {
    let Some(app) = spawn_app(backend, test).await else { return };
    let mut client = app.client.clone();

    let created = create(&app, template_product()).await;
    assert_eq!(
        (created.id.as_str(), created.name.as_str(), created.price, created.stock),
        ("prod-123", "Widget", 29.99, 100)
    );
    let fetched = client.get_product(GetProductRequest { id: "prod-123".to_owned() }).await.unwrap().into_inner();
    assert_eq!(fetched.product, Some(created.clone()));

    assert_eq!(created.currency, "USD", "the default");
    let generated = create(&app, CreateProductRequest { id: String::new(), ..template_product() }).await;
    assert!(generated.id.starts_with("prod-") && generated.id != "prod-123", "{}", generated.id);
    // What Python and JavaScript compute for 0.1 + 0.2 is 30 cents.
    let euro = CreateProductRequest {
        id: "prod-eur".to_owned(),
        price: 0.1 + 0.2,
        currency: "EUR".to_owned(),
        ..template_product()
    };
    let euro = create(&app, euro).await;
    assert_eq!((euro.price, euro.currency.as_str()), (0.3, "EUR"));
    let fetched = client.get_product(GetProductRequest { id: "prod-eur".to_owned() }).await.unwrap().into_inner();
    assert_eq!(fetched.product.unwrap().currency, "EUR", "stored");

    let updated = client
        .update_product(UpdateProductRequest { id: "prod-123".to_owned(), price: Some(19.5), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .product
        .unwrap();
    assert_eq!((updated.price, updated.name.as_str()), (19.5, "Widget"));

    let adjusted = client
        .adjust_stock(AdjustStockRequest { id: "prod-123".to_owned(), delta: -30 })
        .await
        .unwrap()
        .into_inner()
        .product
        .unwrap();
    assert_eq!(adjusted.stock, 70);

    client.delete_product(DeleteProductRequest { id: "prod-123".to_owned() }).await.unwrap();
    let gone = client.get_product(GetProductRequest { id: "prod-123".to_owned() }).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    assert!(gone.message().contains("prod-123"));
}

async fn bad_fields_are_reported_as_field_violations(backend: Backend, test: &str) {
    let Some(app) = spawn_app(backend, test).await else { return };
    let mut client = app.client.clone();
    let bad = CreateProductRequest {
        id: "bad id!".to_owned(),
        name: String::new(),
        description: String::new(),
        price: 1.999,
        stock: -1,
        currency: "usd".to_owned(),
    };
    let status = client.create_product(bad).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["id", "name", "price", "currency", "stock"]);
    let yen = CreateProductRequest { currency: "JPY".to_owned(), ..template_product() };
    let status = client.create_product(yen).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["currency"]);
    assert!(status.message().contains("JPY has 0 decimals"), "{status:?}");

    for price in [f64::NAN, f64::INFINITY, -0.01] {
        let status = client.create_product(CreateProductRequest { price, ..template_product() }).await.unwrap_err();
        assert_eq!(violated_fields(&status), ["price"], "price {price}");
    }
    let long = CreateProductRequest { name: "n".repeat(201), ..template_product() };
    assert_eq!(violated_fields(&client.create_product(long).await.unwrap_err()), ["name"]);
    let long_id = CreateProductRequest { id: "x".repeat(65), ..template_product() };
    assert_eq!(violated_fields(&client.create_product(long_id).await.unwrap_err()), ["id"]);

    for id in ["", "has space", "../etc"] {
        let status = client.get_product(GetProductRequest { id: id.to_owned() }).await.unwrap_err();
        assert_eq!(violated_fields(&status), ["id"], "{id:?}");
    }
    let status = client
        .update_product(UpdateProductRequest { id: "p".to_owned(), stock: Some(-5), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["stock"]);
}

async fn duplicate_id_already_exists(backend: Backend, test: &str) {
    let Some(app) = spawn_app(backend, test).await else { return };
    create(&app, template_product()).await;
    let status = app.client.clone().create_product(template_product()).await.unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    assert!(status.message().contains("prod-123"));
}

async fn unknown_products_are_not_found(backend: Backend, test: &str) {
    let Some(app) = spawn_app(backend, test).await else { return };
    let mut client = app.client.clone();
    let id = "prod-404".to_owned();
    let statuses = [
        client.get_product(GetProductRequest { id: id.clone() }).await.unwrap_err(),
        client
            .update_product(UpdateProductRequest { id: id.clone(), name: Some("X".to_owned()), ..Default::default() })
            .await
            .unwrap_err(),
        client.delete_product(DeleteProductRequest { id: id.clone() }).await.unwrap_err(),
        client.adjust_stock(AdjustStockRequest { id: id.clone(), delta: 1 }).await.unwrap_err(),
    ];
    for status in statuses {
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        assert!(status.message().contains("prod-404"), "{status:?}");
    }
}

async fn search_finds_a_word_of_the_name_in_any_case_with_filters(backend: Backend, test: &str) {
    let Some(app) = spawn_app(backend, test).await else { return };
    let mut client = app.client.clone();
    create(&app, template_product()).await;
    create(
        &app,
        CreateProductRequest {
            id: "prod-2".to_owned(),
            name: "Tiny Widget".to_owned(),
            price: 5.0,
            stock: 0,
            ..template_product()
        },
    )
    .await;
    create(
        &app,
        CreateProductRequest {
            id: "prod-3".to_owned(),
            name: "Gadget".to_owned(),
            description: "not a WIDGET at all".to_owned(),
            ..template_product()
        },
    )
    .await;
    create(
        &app,
        CreateProductRequest {
            id: "prod-4".to_owned(),
            name: "Sprocket".to_owned(),
            description: String::new(),
            ..template_product()
        },
    )
    .await;

    let search = |q: &str, filter: Option<ProductFilter>| SearchProductsRequest {
        q: q.to_owned(),
        filter,
        ..Default::default()
    };
    let ids = |response: contract::products::SearchProductsResponse| -> Vec<String> {
        response.products.into_iter().map(|p| p.id).collect()
    };
    let found = client.search_products(search("wIdGeT", None)).await.unwrap().into_inner();
    assert_eq!(ids(found), ["prod-123", "prod-2", "prod-3"]);
    let in_stock = ProductFilter { in_stock: Some(true), ..Default::default() };
    let found = client.search_products(search("widget", Some(in_stock))).await.unwrap().into_inner();
    assert_eq!(ids(found), ["prod-123", "prod-3"]);
    let cheap = ProductFilter { max_price: Some(10.0), ..Default::default() };
    let found = client.search_products(search("widget", Some(cheap))).await.unwrap().into_inner();
    assert_eq!(ids(found), ["prod-2"]);

    let paged = client
        .search_products(SearchProductsRequest { q: "widget".to_owned(), page_size: 2, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(paged.products.len(), 2);
    let rest = client
        .search_products(SearchProductsRequest {
            q: "widget".to_owned(),
            page_size: 2,
            page_token: paged.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(rest.clone()), ["prod-3"]);
    assert!(rest.next_page_token.is_empty());

    let status = client.search_products(search("   ", None)).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["q"]);
}

async fn list_filters_by_price_range_and_stock(backend: Backend, test: &str) {
    let Some(app) = spawn_app(backend, test).await else { return };
    let mut client = app.client.clone();
    for (id, price, stock) in [("a", 1.0, 0), ("b", 10.0, 5), ("c", 20.0, 5), ("d", 30.0, 0)] {
        create(
            &app,
            CreateProductRequest {
                id: id.to_owned(),
                name: id.to_owned(),
                description: String::new(),
                price,
                stock,
                currency: String::new(),
            },
        )
        .await;
    }
    let list = |filter: ProductFilter| ListProductsRequest { filter: Some(filter), ..Default::default() };
    let ids =
        |r: contract::products::ListProductsResponse| -> Vec<String> { r.products.into_iter().map(|p| p.id).collect() };
    let range = ProductFilter { min_price: Some(10.0), max_price: Some(20.0), ..Default::default() };
    assert_eq!(ids(client.list_products(list(range)).await.unwrap().into_inner()), ["b", "c"]);
    let out = ProductFilter { in_stock: Some(false), ..Default::default() };
    assert_eq!(ids(client.list_products(list(out)).await.unwrap().into_inner()), ["a", "d"]);

    // A price in euros is not compared with bounds in dollars.
    let euros = CreateProductRequest {
        id: "e".to_owned(),
        name: "e".to_owned(),
        description: String::new(),
        price: 15.0,
        stock: 5,
        currency: "EUR".to_owned(),
    };
    create(&app, euros).await;
    let range = ProductFilter { min_price: Some(10.0), max_price: Some(20.0), ..Default::default() };
    assert_eq!(ids(client.list_products(list(range.clone())).await.unwrap().into_inner()), ["b", "c"], "USD bounds");
    let in_euros = ProductFilter { currency: Some("EUR".to_owned()), ..range };
    assert_eq!(ids(client.list_products(list(in_euros)).await.unwrap().into_inner()), ["e"]);
    let only_euros = ProductFilter { currency: Some("EUR".to_owned()), ..Default::default() };
    assert_eq!(ids(client.list_products(list(only_euros)).await.unwrap().into_inner()), ["e"]);
    let unpriced = ProductFilter { in_stock: Some(true), ..Default::default() };
    assert_eq!(ids(client.list_products(list(unpriced)).await.unwrap().into_inner()), ["b", "c", "e"], "any currency");
    let yen = ProductFilter { currency: Some("JPY".to_owned()), ..Default::default() };
    assert_eq!(violated_fields(&client.list_products(list(yen)).await.unwrap_err()), ["filter.currency"]);

    let inverted = ProductFilter { min_price: Some(20.0), max_price: Some(10.0), ..Default::default() };
    let status = client.list_products(list(inverted)).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["filter.max_price"]);
    let bad = ProductFilter { min_price: Some(-1.0), ..Default::default() };
    assert_eq!(violated_fields(&client.list_products(list(bad)).await.unwrap_err()), ["filter.min_price"]);
}

async fn reserve_and_release_over_grpc(backend: Backend, test: &str) {
    let Some(app) = spawn_app(backend, test).await else { return };
    let mut client = app.client.clone();
    create(&app, template_product()).await;

    let reserved = client.reserve_stock(reserve_request("order-1", &[("prod-123", 2)])).await.unwrap().into_inner();
    assert_eq!(reserved.reservation_id, "order-1");
    let line = &reserved.items[0];
    assert_eq!(
        (
            line.product_id.as_str(),
            line.quantity,
            line.unit_price_minor,
            line.currency.as_str(),
            line.product_name.as_str()
        ),
        ("prod-123", 2, 2999, "USD", "Widget")
    );
    #[allow(deprecated)]
    let decimal = line.unit_price;
    assert_eq!(decimal, 29.99, "still sent for an orders service from before minor units");
    let held_for =
        |r: &contract::products::ReserveStockResponse| std::time::Duration::try_from(r.held_for.unwrap()).unwrap();
    let first_hold = held_for(&reserved);
    assert!(first_hold > std::time::Duration::from_secs(290) && first_hold <= products::config::DEFAULT_HOLD_TTL);
    let again = client.reserve_stock(reserve_request("order-1", &[("prod-123", 2)])).await.unwrap().into_inner();
    assert_eq!(
        (&again.reservation_id, &again.items),
        (&reserved.reservation_id, &reserved.items),
        "a retried reservation returns the first result"
    );
    assert!(held_for(&again) <= first_hold, "the retry does not extend the hold");
    let stock = |p: contract::products::GetProductResponse| p.product.unwrap().stock;
    assert_eq!(
        stock(client.get_product(GetProductRequest { id: "prod-123".to_owned() }).await.unwrap().into_inner()),
        98
    );

    let short = client.reserve_stock(reserve_request("order-2", &[("prod-123", 99)])).await.unwrap_err();
    assert_eq!(short.code(), Code::FailedPrecondition);
    assert!(short.message().contains("prod-123"), "{short:?}");
    let unknown = client.reserve_stock(reserve_request("order-3", &[("prod-404", 1)])).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    assert!(unknown.message().contains("prod-404"));

    let released = client
        .release_stock(testkit::as_service("orders", ReleaseStockRequest { reservation_id: "order-1".to_owned() }))
        .await
        .unwrap();
    assert!(released.into_inner().released);
    let twice = client
        .release_stock(testkit::as_service("orders", ReleaseStockRequest { reservation_id: "order-1".to_owned() }))
        .await
        .unwrap();
    assert!(!twice.into_inner().released);
    assert_eq!(
        stock(client.get_product(GetProductRequest { id: "prod-123".to_owned() }).await.unwrap().into_inner()),
        100
    );

    let status = client.reserve_stock(reserve_request("", &[])).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["reservation_id", "items"]);
    let status = client.reserve_stock(reserve_request("r", &[("prod-123", 0), ("bad id", 1)])).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["items[0].quantity", "items[1].product_id"]);
    // 100 lines are read, and their 200 faults told by the first 20.
    let status = client.reserve_stock(reserve_request("r", &[("bad id", 0); 100])).await.unwrap_err();
    assert_eq!(violated_fields(&status).len(), 20);
    assert!(status.message().ends_with("items[9].quantity must be between 1 and 1000000; and 180 more"), "{status:?}");
    let long: Vec<(&str, i32)> = vec![("bad id", 0); 101];
    let status = client.reserve_stock(reserve_request("r", &long)).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["items"], "refused unread");
    assert!(status.message().contains("at most 100 lines, not 101"), "{status:?}");
    let status = client
        .release_stock(testkit::as_service("orders", ReleaseStockRequest { reservation_id: "a.b".to_owned() }))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["reservation_id"]);
}

async fn stock_stays_between_zero_and_its_maximum(backend: Backend, test: &str) {
    let Some(app) = spawn_app(backend, test).await else { return };
    create(&app, template_product()).await;
    let status = app
        .client
        .clone()
        .adjust_stock(AdjustStockRequest { id: "prod-123".to_owned(), delta: -101 })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("prod-123"), "{status:?}");

    for delta in [i32::MAX, products::domain::MAX_STOCK - 99] {
        let request = AdjustStockRequest { id: "prod-123".to_owned(), delta };
        let status = app.client.clone().adjust_stock(request).await.unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert!(status.message().contains("cannot go above 1000000000"), "{status:?}");
    }
    let request = AdjustStockRequest { id: "prod-123".to_owned(), delta: products::domain::MAX_STOCK - 100 };
    let product = app.client.clone().adjust_stock(request).await.unwrap().into_inner().product.unwrap();
    assert_eq!(product.stock, products::domain::MAX_STOCK, "up to the maximum is fine");
}

testkit::backend_tests!(crate::helpers::Backend { sqlite => Sqlite, mongo => Mongo }: [
    catalog_lifecycle_create_get_update_adjust_delete,
    bad_fields_are_reported_as_field_violations,
    duplicate_id_already_exists,
    unknown_products_are_not_found,
    search_finds_a_word_of_the_name_in_any_case_with_filters,
    list_filters_by_price_range_and_stock,
    reserve_and_release_over_grpc,
    stock_stays_between_zero_and_its_maximum,
]);
