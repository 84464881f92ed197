//! The RabbitMQ adapter (lapin). Topology, under a configurable name prefix
//! (one per deployment, or per test):
//!
//! - `{prefix}events`: a durable topic exchange; the routing key of an event
//!   is its kind (`shop.events.v1.OrderCreated`);
//! - per subscription `{prefix}{name}`: a durable queue bound to its kinds;
//!   `{prefix}{name}.retry`: a delay queue whose messages expire back into
//!   the main queue; `{prefix}{name}.dlq`: where events go after
//!   `max_attempts` failed deliveries.
//!
//! Messages are persistent, carry the event id as AMQP message id, the kind
//! as AMQP type and the trace context as a `traceparent` header.

mod consumer;
mod publisher;

pub use consumer::run_consumer;
pub use publisher::RabbitPublisher;

use std::future::Future;
use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

use crate::{BusError, Event};

/// Where the bus is and what its names start with.
#[derive(Debug, Clone)]
pub struct RabbitConfig {
    pub url: String,
    /// Prefix of every exchange and queue name, e.g. `meshwork.`.
    pub prefix: String,
    /// Unacknowledged deliveries a consumer holds at once: enough to keep
    /// every lane of a subscription busy.
    pub prefetch: u16,
    /// The longest one step with the broker may take: connecting (with the
    /// topology declared), or a publish until its confirm.
    pub step_timeout: Duration,
}

impl RabbitConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), prefix: "meshwork.".to_owned(), prefetch: 64, step_timeout: Duration::from_secs(10) }
    }

    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    pub fn exchange(&self) -> String {
        format!("{}events", self.prefix)
    }

    pub fn queue(&self, subscription: &str) -> String {
        format!("{}{subscription}", self.prefix)
    }

    pub fn retry_queue(&self, subscription: &str) -> String {
        format!("{}{subscription}.retry", self.prefix)
    }

    pub fn dead_letter_queue(&self, subscription: &str) -> String {
        format!("{}{subscription}.dlq", self.prefix)
    }

    /// [`Self::probe`] as a readiness check (`platform::Server::readiness_check`).
    pub fn readiness_check(
        &self,
    ) -> impl Fn() -> futures::future::BoxFuture<'static, Result<(), String>> + Send + Sync + 'static {
        let broker = self.clone();
        move || {
            let broker = broker.clone();
            Box::pin(async move { broker.probe().await })
        }
    }

    /// Whether the broker answers now: connects and closes, within 2 s. For
    /// readiness; the publisher and consumers keep connections of their own.
    pub async fn probe(&self) -> Result<(), String> {
        let connect = Connection::connect(&self.url, ConnectionProperties::default());
        match tokio::time::timeout(Duration::from_secs(2), connect).await {
            Ok(Ok(connection)) => {
                let _ = connection.close(200, "readiness probe".into()).await;
                Ok(())
            }
            Ok(Err(error)) => Err(format!("RabbitMQ unreachable: {error}")),
            Err(_) => Err("RabbitMQ did not answer within 2 s".to_owned()),
        }
    }
}

/// The header counting deliveries of an event to one subscription.
const ATTEMPTS_HEADER: &str = "x-meshwork-attempts";
const TRACEPARENT_HEADER: &str = "traceparent";
/// Why a dead-lettered event was given up on.
const ERROR_HEADER: &str = "x-meshwork-error";
/// AMQP delivery mode 2: written to disk by the broker.
const PERSISTENT: u8 = 2;

fn unavailable(error: lapin::Error) -> BusError {
    BusError::Unavailable(error.to_string())
}

/// Runs one step with the broker within `config.step_timeout`. lapin can
/// wait forever on a connection that died part-way through its handshake,
/// and a bus adapter must fail instead, so that its caller retries.
async fn bounded<T>(
    config: &RabbitConfig,
    what: &str,
    step: impl Future<Output = Result<T, BusError>>,
) -> Result<T, BusError> {
    match tokio::time::timeout(config.step_timeout, step).await {
        Ok(outcome) => outcome,
        Err(_) => Err(BusError::Unavailable(format!("{what} took longer than {:?}", config.step_timeout))),
    }
}

async fn connect(config: &RabbitConfig) -> Result<(Connection, Channel), BusError> {
    let connection = Connection::connect(&config.url, ConnectionProperties::default()).await.map_err(unavailable)?;
    let channel = connection.create_channel().await.map_err(unavailable)?;
    channel
        .exchange_declare(
            config.exchange().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions { durable: true, ..Default::default() },
            FieldTable::default(),
        )
        .await
        .map_err(unavailable)?;
    Ok((connection, channel))
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions { durable: true, ..Default::default() }
}

/// Declares a subscription's three queues and binds the main one.
async fn declare_subscription(
    channel: &Channel,
    config: &RabbitConfig,
    name: &str,
    kinds: &[String],
    retry_delay_ms: u64,
) -> Result<(), BusError> {
    let main = config.queue(name);
    channel.queue_declare(main.clone().into(), durable(), FieldTable::default()).await.map_err(unavailable)?;
    let mut retry_arguments = FieldTable::default();
    retry_arguments.insert("x-message-ttl".into(), AMQPValue::LongLongInt(retry_delay_ms as i64));
    retry_arguments.insert("x-dead-letter-exchange".into(), AMQPValue::LongString("".into()));
    retry_arguments.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(main.clone().into()));
    channel.queue_declare(config.retry_queue(name).into(), durable(), retry_arguments).await.map_err(unavailable)?;
    channel
        .queue_declare(config.dead_letter_queue(name).into(), durable(), FieldTable::default())
        .await
        .map_err(unavailable)?;
    for kind in kinds {
        channel
            .queue_bind(
                main.clone().into(),
                config.exchange().into(),
                kind.clone().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(unavailable)?;
    }
    Ok(())
}

/// The message's properties; `traceparent` is the context of the span that
/// publishes it (the consumer's parent).
fn properties(event: &Event, traceparent: Option<String>) -> BasicProperties {
    let mut headers = FieldTable::default();
    if let Some(traceparent) = traceparent {
        headers.insert(TRACEPARENT_HEADER.into(), AMQPValue::LongString(traceparent.into()));
    }
    BasicProperties::default()
        .with_message_id(event.id.to_string().into())
        .with_type(event.kind.clone().into())
        .with_content_type("application/x-protobuf".into())
        .with_delivery_mode(PERSISTENT)
        .with_headers(headers)
}

/// Rebuilds the event from a delivery; `None` if it lacks an id or a kind.
fn event_from(properties: &BasicProperties, payload: &[u8]) -> Option<Event> {
    let id = properties.message_id().as_ref().and_then(|id| uuid::Uuid::parse_str(id.as_str()).ok())?;
    let kind = properties.kind().as_ref().map(ShortString::to_string)?;
    let traceparent = header(properties, TRACEPARENT_HEADER).and_then(|value| match value {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    });
    Some(Event { id, kind, payload: payload.to_vec(), traceparent })
}

fn header<'a>(properties: &'a BasicProperties, name: &str) -> Option<&'a AMQPValue> {
    properties.headers().as_ref()?.inner().get(name)
}

fn attempts(properties: &BasicProperties) -> u32 {
    match header(properties, ATTEMPTS_HEADER) {
        Some(AMQPValue::LongLongInt(n)) => u32::try_from(*n).unwrap_or(u32::MAX),
        Some(AMQPValue::LongInt(n)) => u32::try_from(*n).unwrap_or(u32::MAX),
        _ => 1,
    }
}
