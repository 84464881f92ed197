//! The outbox, the relay and the products consumer against the real
//! RabbitMQ under faults: no order and no event is ever lost, and none is
//! applied twice.

use std::sync::Arc;
use std::time::Duration;

use contract::events::OrderCreated;
use contract::orders::CreateOrderRequest;
use contract::orders::order_service_client::OrderServiceClient;
use events::rabbitmq::{RabbitConfig, RabbitPublisher, run_consumer};
use events::{Event, Publisher};
use orders::relay::OutboxRelay;
use platform::CancellationToken;
use testkit::amqp::TestBroker;
use testkit::proxy::TcpProxy;

use crate::helpers::{Backend, channel, dependencies, order_store, orders_service, orders_service_without_relay};

/// Names of the products consumer's queues under `config`, for cleanup.
fn track_consumer(broker: &TestBroker, config: &RabbitConfig) {
    let name = products::consumer::CONSUMER;
    broker.track(config.queue(name));
    broker.track(config.retry_queue(name));
    broker.track(config.dead_letter_queue(name));
}

/// The shop with the orders service publishing to, and the products
/// consumer reading from, RabbitMQ at `bus`.
struct RabbitShop {
    orders: OrderServiceClient<tonic::transport::Channel>,
    products: contract::products::product_service_client::ProductServiceClient<tonic::transport::Channel>,
    users: contract::users::user_service_client::UserServiceClient<tonic::transport::Channel>,
    order_store: Arc<dyn orders::store::OrderStore>,
    upstreams: orders::start::Upstreams,
    shutdown: CancellationToken,
}

impl Drop for RabbitShop {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Whether the shop's own orders service relays its outbox.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Relay {
    Running,
    /// Left to a process the test starts itself.
    None,
}

async fn rabbit_shop(
    backend: Backend,
    test: &str,
    broker: &TestBroker,
    bus: RabbitConfig,
    relay: Relay,
) -> Option<(RabbitShop, Option<testkit::postgres::TestDatabase>)> {
    let (order_store, database) = order_store(backend, test).await?;
    let shutdown = CancellationToken::new();
    let (upstreams, product_store) = dependencies(&shutdown).await;
    track_consumer(broker, &bus);
    let subscription = products::consumer::OrderEvents::subscription(product_store)
        .retry_delay(Duration::from_millis(100))
        .max_attempts(3);
    tokio::spawn(run_consumer(bus.clone(), subscription, shutdown.clone()));
    broker.wait_for_queue(&bus.queue(products::consumer::CONSUMER)).await;
    let address = match relay {
        Relay::Running => {
            let publisher = Arc::new(RabbitPublisher::new(bus));
            orders_service(order_store.clone(), &upstreams, publisher, &shutdown).await
        }
        Relay::None => orders_service_without_relay(order_store.clone(), &upstreams, &shutdown).await,
    };
    let connect =
        |url: String| async move { tonic::transport::Channel::from_shared(url).unwrap().connect().await.unwrap() };
    Some((
        RabbitShop {
            orders: OrderServiceClient::new(channel(address).await),
            products: contract::products::product_service_client::ProductServiceClient::new(
                connect(upstreams.products.to_string()).await,
            ),
            users: contract::users::user_service_client::UserServiceClient::new(
                connect(upstreams.users.to_string()).await,
            ),
            order_store,
            upstreams,
            shutdown,
        },
        database,
    ))
}

impl RabbitShop {
    async fn user(&self) -> String {
        let request = contract::users::CreateUserRequest {
            email: format!("{}@example.com", uuid::Uuid::new_v4().simple()),
            name: "Buyer".to_owned(),
            password: None,
        };
        self.users.clone().create_user(request).await.unwrap().into_inner().user.unwrap().id
    }

    async fn product(&self, id: &str, stock: i32) {
        let request = contract::products::CreateProductRequest {
            id: id.to_owned(),
            name: id.to_owned(),
            description: String::new(),
            price: 1.0,
            stock,
            currency: String::new(),
        };
        self.products.clone().create_product(request).await.unwrap();
    }

    async fn units_sold(&self, id: &str) -> i64 {
        let request = contract::products::GetProductRequest { id: id.to_owned() };
        self.products.clone().get_product(request).await.unwrap().into_inner().product.unwrap().units_sold
    }
}

fn order(user: &str, product: &str) -> CreateOrderRequest {
    CreateOrderRequest { user_id: user.to_owned(), product_id: product.to_owned(), quantity: 1, ..Default::default() }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_orders_through_dropped_broker_connections_are_each_applied_once() {
    let test = "two_hundred_orders_through_dropped_connections";
    let Some(broker) = TestBroker::create(test) else { return };
    let proxy = TcpProxy::start(broker.address().await).await;
    let bus = RabbitConfig::new(broker.url_via(proxy.address())).with_prefix(&broker.prefix);
    let Some((shop, _db)) = rabbit_shop(Backend::Postgres, test, &broker, bus.clone(), Relay::Running).await else {
        return;
    };
    let user = shop.user().await;
    shop.product("hot", 1000).await;

    let mut created = Vec::new();
    for i in 0..200 {
        if i == 50 || i == 130 {
            // The broker drops every connection, then comes back.
            proxy.cut();
            tokio::time::sleep(Duration::from_millis(300)).await;
            proxy.restore();
        }
        created
            .push(shop.orders.clone().create_order(order(&user, "hot")).await.unwrap().into_inner().order.unwrap().id);
    }
    assert_eq!(created.iter().collect::<std::collections::HashSet<_>>().len(), 200);

    testkit::eventually("every OrderCreated published", Duration::from_secs(60), || async {
        shop.order_store.unsent(1).await.unwrap().is_empty()
    })
    .await;
    let queue = bus.queue(products::consumer::CONSUMER);
    testkit::eventually("every OrderCreated applied", Duration::from_secs(60), || async {
        shop.units_sold("hot").await >= 200 && broker.queue_len(&queue).await == 0
    })
    .await;
    assert_eq!(shop.units_sold("hot").await, 200, "each order counted exactly once");
    assert!(broker.drain(&bus.dead_letter_queue(products::consumer::CONSUMER)).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poison_event_is_dead_lettered_and_the_events_behind_it_applied() {
    let test = "a_poison_event_is_dead_lettered";
    let Some(broker) = TestBroker::create(test) else { return };
    let bus = RabbitConfig::new(broker.url.clone()).with_prefix(&broker.prefix);
    let Some((shop, _db)) = rabbit_shop(Backend::Sqlite, test, &broker, bus.clone(), Relay::Running).await else {
        return;
    };
    let user = shop.user().await;
    shop.product("hot", 10).await;

    // An OrderCreated whose payload is not one: it can never be applied.
    let poison = Event {
        id: uuid::Uuid::now_v7(),
        kind: <OrderCreated as prost::Name>::full_name(),
        payload: vec![0xff, 0xff, 0xff],
        traceparent: None,
    };
    RabbitPublisher::new(bus.clone()).publish(&poison).await.unwrap();
    for _ in 0..3 {
        shop.orders.clone().create_order(order(&user, "hot")).await.unwrap();
    }
    testkit::eventually("the orders behind the poison applied", Duration::from_secs(30), || async {
        shop.units_sold("hot").await == 3
    })
    .await;
    let dead_letters = bus.dead_letter_queue(products::consumer::CONSUMER);
    let dead = Arc::new(std::sync::Mutex::new(Vec::new()));
    testkit::eventually("the poison in the dead-letter queue", Duration::from_secs(30), || async {
        let drained = broker.drain(&dead_letters).await;
        dead.lock().unwrap().extend(drained);
        !dead.lock().unwrap().is_empty()
    })
    .await;
    let dead = dead.lock().unwrap();
    let ids: Vec<String> =
        dead.iter().map(|m| m.delivery.properties.message_id().as_ref().unwrap().to_string()).collect();
    assert_eq!(ids, [poison.id.to_string()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_committed_before_a_crash_goes_out_after_the_restart() {
    let test = "an_event_committed_before_a_crash";
    let Some(broker) = TestBroker::create(test) else { return };
    let bus = RabbitConfig::new(broker.url.clone()).with_prefix(&broker.prefix);
    let Some((shop, _db)) = rabbit_shop(Backend::Postgres, test, &broker, bus.clone(), Relay::None).await else {
        return;
    };
    let user = shop.user().await;
    shop.product("hot", 10).await;

    // A first orders process whose broker is unreachable: the order commits,
    // its event stays in the outbox; then the process stops.
    let crashed = CancellationToken::new();
    let nowhere = Arc::new(RabbitPublisher::new(RabbitConfig::new("amqp://guest:guest@127.0.0.1:1/%2f")));
    let address = orders_service(shop.order_store.clone(), &shop.upstreams, nowhere, &crashed).await;
    let mut first = OrderServiceClient::new(channel(address).await);
    let id = first.create_order(order(&user, "hot")).await.unwrap().into_inner().order.unwrap().id;
    crashed.cancel();
    let unsent = shop.order_store.unsent(10).await.unwrap();
    assert!(unsent.iter().any(|entry| entry.event.decode::<OrderCreated>().is_ok_and(|e| e.order_id == id)));
    assert_eq!(shop.units_sold("hot").await, 0);

    // The restarted process's relay publishes what the first one left.
    let restarted = CancellationToken::new();
    let relay = OutboxRelay::new(
        shop.order_store.clone(),
        Arc::new(RabbitPublisher::new(bus)),
        Arc::new(tokio::sync::Notify::new()),
    );
    tokio::spawn(relay.run(restarted.clone()));
    testkit::eventually("the left-over event applied", Duration::from_secs(30), || async {
        shop.units_sold("hot").await == 1
    })
    .await;
    restarted.cancel();
}
