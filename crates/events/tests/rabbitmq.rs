//! The RabbitMQ adapter against the real broker at MESHWORK_TEST_AMQP_URL,
//! each test under its own exchange and queue prefix.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use contract::events::{OrderCancelled, OrderCreated};
use events::rabbitmq::{RabbitConfig, RabbitPublisher, run_consumer};
use events::{Event, Handler, HandlerError, Publisher, Subscription};
use platform::CancellationToken;
use prost::Name;
use testkit::amqp::TestBroker;
use tokio::sync::mpsc;

/// A broker prefix of the test's own, and the consumers it started.
struct TestBus {
    broker: TestBroker,
    config: RabbitConfig,
    shutdown: CancellationToken,
}

impl TestBus {
    fn new(test: &str) -> Option<Self> {
        let broker = TestBroker::create(test)?;
        platform::telemetry::init_for_tests();
        let config = RabbitConfig::new(broker.url.clone()).with_prefix(broker.prefix.clone());
        Some(Self { broker, config, shutdown: CancellationToken::new() })
    }

    /// Starts consuming `subscription` and waits until its queues exist.
    async fn consume(&mut self, config: RabbitConfig, subscription: Subscription) {
        let name = subscription.name.clone();
        for queue in [self.config.queue(&name), self.config.retry_queue(&name), self.config.dead_letter_queue(&name)] {
            self.broker.track(queue);
        }
        tokio::spawn(run_consumer(config, subscription, self.shutdown.clone()));
        self.broker.wait_for_queue(&self.config.queue(&name)).await;
    }

    async fn drain(&self, queue: &str) -> Vec<lapin::message::BasicGetMessage> {
        self.broker.drain(queue).await
    }
}

impl Drop for TestBus {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Records the events it applies; fails the ids it was told to fail, each a
/// given number of times (or forever).
#[derive(Default)]
struct Recorder {
    applied: Mutex<Vec<Event>>,
    failures: Mutex<Vec<(uuid::Uuid, u32)>>,
    seen: Mutex<Vec<uuid::Uuid>>,
    notify: Mutex<Option<mpsc::UnboundedSender<uuid::Uuid>>>,
}

impl Recorder {
    fn new() -> (Arc<Self>, mpsc::UnboundedReceiver<uuid::Uuid>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        (Arc::new(Self { notify: Mutex::new(Some(sender)), ..Default::default() }), receiver)
    }

    fn fail(&self, id: uuid::Uuid, times: u32) {
        self.failures.lock().unwrap().push((id, times));
    }
}

#[async_trait]
impl Handler for Recorder {
    async fn handle(&self, event: &Event) -> Result<(), HandlerError> {
        self.seen.lock().unwrap().push(event.id);
        if let Some((_, remaining)) = self.failures.lock().unwrap().iter_mut().find(|(id, _)| *id == event.id)
            && *remaining > 0
        {
            *remaining -= 1;
            return Err(HandlerError::retryable("told to fail"));
        }
        self.applied.lock().unwrap().push(event.clone());
        if let Some(notify) = self.notify.lock().unwrap().as_ref() {
            let _ = notify.send(event.id);
        }
        Ok(())
    }
}

async fn next(receiver: &mut mpsc::UnboundedReceiver<uuid::Uuid>) -> uuid::Uuid {
    tokio::time::timeout(Duration::from_secs(15), receiver.recv()).await.expect("an event in time").unwrap()
}

fn created(order: &str) -> Event {
    Event::new(uuid::Uuid::now_v7(), &OrderCreated { order_id: order.to_owned(), ..Default::default() })
}

fn subscription(name: &str, handler: Arc<Recorder>) -> Subscription {
    Subscription::new(name, vec![OrderCreated::full_name()], handler)
        .retry_delay(Duration::from_millis(100))
        .max_attempts(3)
}

#[tokio::test(flavor = "multi_thread")]
async fn published_events_arrive_with_their_id_kind_and_trace_context() {
    let Some(mut bus) = TestBus::new("published_events_arrive") else { return };
    let (recorder, mut received) = Recorder::new();
    bus.consume(bus.config.clone(), subscription("products", recorder.clone())).await;

    let publisher = RabbitPublisher::new(bus.config.clone());
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned();
    let event = created("o-1").with_traceparent(Some(traceparent.clone()));
    publisher.publish(&event).await.unwrap();
    // Not subscribed: routed nowhere, and no error for the publisher.
    publisher.publish(&Event::new(uuid::Uuid::now_v7(), &OrderCancelled::default())).await.unwrap();

    assert_eq!(next(&mut received).await, event.id);
    let applied = recorder.applied.lock().unwrap().clone();
    assert_eq!(applied.len(), 1);
    assert_eq!((applied[0].id, &applied[0].kind, &applied[0].payload), (event.id, &event.kind, &event.payload));
    // The same trace; the message's parent is the publisher's PRODUCER span,
    // a child of the span that made the event.
    let carried = applied[0].traceparent.as_deref().expect("the trace context travels");
    let (trace, parent) = (&carried[3..35], &carried[36..52]);
    assert_eq!(trace, &traceparent[3..35], "{carried}");
    assert_ne!(parent, &traceparent[36..52], "{carried}: the PRODUCER span is the parent");
}

/// A batch goes out with its confirms; the consumer applies it in lanes,
/// and every order's events arrive in the order they were published.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_arrives_whole_and_each_key_in_order_across_lanes() {
    let Some(mut bus) = TestBus::new("a_batch_arrives_whole") else { return };
    let (recorder, mut received) = Recorder::new();
    let order_of = |event: &Event| event.decode::<OrderCreated>().ok().map(|created| created.order_id);
    bus.consume(bus.config.clone(), subscription("products", recorder.clone()).ordered_by(8, order_of)).await;

    let orders = ["o-1", "o-2", "o-3", "o-4", "o-5"];
    let batch: Vec<Event> = (0..20).flat_map(|_| orders.map(created)).collect();
    RabbitPublisher::new(bus.config.clone()).publish_batch(&batch).await.unwrap();
    for _ in &batch {
        next(&mut received).await;
    }

    let applied = recorder.applied.lock().unwrap().clone();
    assert_eq!(applied.len(), batch.len(), "each once");
    for order in orders {
        let published: Vec<uuid::Uuid> =
            batch.iter().filter(|e| order_of(e).as_deref() == Some(order)).map(|e| e.id).collect();
        let arrived: Vec<uuid::Uuid> =
            applied.iter().filter(|e| order_of(e).as_deref() == Some(order)).map(|e| e.id).collect();
        assert_eq!(arrived, published, "{order}'s events in order");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_event_is_retried_through_the_delay_queue() {
    let Some(mut bus) = TestBus::new("a_failing_event_is_retried") else { return };
    let (recorder, mut received) = Recorder::new();
    let event = created("o-1");
    recorder.fail(event.id, 2);
    bus.consume(bus.config.clone(), subscription("products", recorder.clone())).await;
    RabbitPublisher::new(bus.config.clone()).publish(&event).await.unwrap();

    assert_eq!(next(&mut received).await, event.id);
    assert_eq!(*recorder.seen.lock().unwrap(), [event.id, event.id, event.id], "two failures, then applied");
    assert!(bus.drain(&bus.config.dead_letter_queue("products")).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poison_event_is_dead_lettered_without_blocking_the_events_behind_it() {
    let Some(mut bus) = TestBus::new("a_poison_event_is_dead_lettered") else { return };
    let (recorder, mut received) = Recorder::new();
    let poison = created("poison");
    recorder.fail(poison.id, u32::MAX);
    bus.consume(bus.config.clone(), subscription("products", recorder.clone())).await;
    let publisher = RabbitPublisher::new(bus.config.clone());
    publisher.publish(&poison).await.unwrap();
    let behind: Vec<Event> = (0..5).map(|i| created(&format!("o-{i}"))).collect();
    for event in &behind {
        publisher.publish(event).await.unwrap();
    }

    // The five behind it are applied while the poison waits in the delay queue.
    let mut applied = Vec::new();
    for _ in 0..5 {
        applied.push(next(&mut received).await);
    }
    assert_eq!(applied, behind.iter().map(|e| e.id).collect::<Vec<_>>());

    let dead_letter_queue = bus.config.dead_letter_queue("products");
    testkit::eventually("the poison event in the dead-letter queue", Duration::from_secs(15), || async {
        let seen = recorder.seen.lock().unwrap().iter().filter(|id| **id == poison.id).count();
        seen == 3
    })
    .await;
    let dead = Arc::new(Mutex::new(Vec::new()));
    testkit::eventually("the dead letter to be readable", Duration::from_secs(10), || async {
        let drained = bus.drain(&dead_letter_queue).await;
        dead.lock().unwrap().extend(drained);
        !dead.lock().unwrap().is_empty()
    })
    .await;
    let dead = dead.lock().unwrap();
    assert_eq!(dead.len(), 1);
    let message_id = dead[0].delivery.properties.message_id().as_ref().unwrap().to_string();
    assert_eq!(message_id, poison.id.to_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_publisher_connected_ahead_publishes_over_that_connection() {
    let Some(bus) = TestBus::new("connected_ahead") else { return };
    let proxy = testkit::proxy::TcpProxy::start(bus.broker.address().await).await;
    let via_proxy = RabbitConfig { url: bus.broker.url_via(proxy.address()), ..bus.config.clone() };
    let publisher = RabbitPublisher::new(via_proxy);
    assert_eq!(proxy.accepted(), 0, "nothing until asked");
    publisher.connect().await.unwrap();
    assert_eq!(proxy.accepted(), 1);
    publisher.publish(&created("first")).await.unwrap();
    assert_eq!(proxy.accepted(), 1, "the first publish used the connection opened ahead");

    let nowhere = RabbitConfig::new("amqp://guest:guest@127.0.0.1:1/%2f");
    assert!(RabbitPublisher::new(nowhere).connect().await.is_err(), "no broker: an error, not a hang");
}

#[tokio::test(flavor = "multi_thread")]
async fn publisher_and_consumer_survive_a_dropped_connection() {
    let Some(mut bus) = TestBus::new("survive_a_dropped_connection") else { return };
    let proxy = testkit::proxy::TcpProxy::start(bus.broker.address().await).await;
    let via_proxy = RabbitConfig { url: bus.broker.url_via(proxy.address()), ..bus.config.clone() };

    let (recorder, mut received) = Recorder::new();
    bus.consume(via_proxy.clone(), subscription("products", recorder.clone())).await;
    let publisher = RabbitPublisher::new(via_proxy);
    let first = created("before");
    publisher.publish(&first).await.unwrap();
    assert_eq!(next(&mut received).await, first.id);

    proxy.cut();
    let during = created("during");
    assert!(publisher.publish(&during).await.is_err(), "no broker, no confirm");
    proxy.restore();

    // The publisher reconnects on its next publish; the consumer on its own.
    let mut published = false;
    for _ in 0..50 {
        if publisher.publish(&during).await.is_ok() {
            published = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(published, "the publisher reconnected");
    // An ack lost with the connection brings the first event back (at least
    // once): skip redeliveries until the new event arrives.
    loop {
        let id = next(&mut received).await;
        if id == during.id {
            break;
        }
        assert_eq!(id, first.id, "only the first event may come again");
    }
}

/// Forwards to `upstream`, cutting each connection after a lifetime that
/// varies from 0 to 40 ms: across many connections, at every step of the
/// AMQP handshake and of a publish.
async fn short_lived_connections(upstream: std::net::SocketAddr) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for n in 0u64.. {
            let Ok((mut client, _)) = listener.accept().await else { return };
            let lifetime = Duration::from_micros(n * 7919 % 40_000);
            tokio::spawn(async move {
                let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else { return };
                let _ = tokio::time::timeout(lifetime, tokio::io::copy_bidirectional(&mut client, &mut server)).await;
            });
        }
    });
    address
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_cut_at_any_step_fails_the_publish_instead_of_hanging_it() {
    let Some(bus) = TestBus::new("connection_cut_at_any_step") else { return };
    let flaky = short_lived_connections(bus.broker.address().await).await;
    let config =
        RabbitConfig { url: bus.broker.url_via(flaky), step_timeout: Duration::from_millis(500), ..bus.config.clone() };
    let publisher = RabbitPublisher::new(config);
    let event = Event { id: uuid::Uuid::now_v7(), kind: OrderCreated::full_name(), payload: vec![], traceparent: None };
    for attempt in 0..300 {
        // Far beyond the step timeout: only a publish that hangs trips it.
        let outcome = tokio::time::timeout(Duration::from_secs(30), publisher.publish(&event)).await;
        assert!(outcome.is_ok(), "publish {attempt} hung");
    }
}
