//! Consuming with manual acknowledgements, in lanes (see
//! [`crate::Subscription::ordering_key`]). Each delivery is handled, then:
//! acknowledged on success; on failure re-published to the delay queue with
//! its attempt count raised (and only then acknowledged, so it is never
//! lost); after `max_attempts`, or at once for a permanent failure,
//! re-published to the dead-letter queue. A failing event therefore never
//! blocks the ones behind it. The consumer reconnects after any connection
//! loss until shut down.

use futures::StreamExt;
use lapin::Confirmation;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};
use platform::CancellationToken;
use resilience::Backoff;
use tokio::sync::mpsc;
use tracing::Instrument;

use super::{
    ATTEMPTS_HEADER, ERROR_HEADER, RabbitConfig, attempts, bounded, connect, declare_subscription, event_from,
    unavailable,
};
use crate::{BusError, Subscription};

/// Consumes `subscription` until `shutdown` is cancelled, reconnecting with
/// backoff whenever the broker is unreachable or drops the connection.
pub async fn run_consumer(config: RabbitConfig, subscription: Subscription, shutdown: CancellationToken) {
    crate::metrics::register(&subscription.name);
    let backoff = Backoff::default();
    let mut failures = 0;
    while !shutdown.is_cancelled() {
        let session = tokio::select! {
            outcome = consume(&config, &subscription, &mut failures) => outcome,
            () = shutdown.cancelled() => return,
        };
        if let Err(error) = session {
            tracing::warn!(subscription = %subscription.name, %error, "consumer lost the broker; reconnecting");
        }
        let delay = backoff.ceiling(failures);
        failures = failures.saturating_add(1);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// One connection's worth of consuming; returns when the connection ends.
async fn consume(config: &RabbitConfig, subscription: &Subscription, failures: &mut u32) -> Result<(), BusError> {
    let (_connection, channel, mut deliveries) = bounded(config, "connecting to RabbitMQ", async {
        let (connection, channel) = connect(config).await?;
        let delay_ms = subscription.retry_delay.as_millis() as u64;
        declare_subscription(&channel, config, &subscription.name, &subscription.kinds, delay_ms).await?;
        channel.basic_qos(config.prefetch, BasicQosOptions::default()).await.map_err(unavailable)?;
        // Confirms on this channel make re-publishing to the delay and
        // dead-letter queues safe to acknowledge.
        channel.confirm_select(ConfirmSelectOptions::default()).await.map_err(unavailable)?;
        let deliveries = channel
            .basic_consume(
                config.queue(&subscription.name).into(),
                format!("{}-{}", subscription.name, uuid::Uuid::new_v4().simple()).into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(unavailable)?;
        Ok((connection, channel, deliveries))
    })
    .await?;
    tracing::info!(queue = %config.queue(&subscription.name), lanes = subscription.lanes(), "consuming");
    *failures = 0;
    // One lane per unit of concurrency, each applying its deliveries in
    // the order they came; a delivery's lane follows its ordering key, so
    // the events of one key stay in order while other keys overlap. The
    // prefetch bounds how many wait in the lanes unacknowledged.
    let (lanes, queued): (Vec<_>, Vec<_>) =
        (0..subscription.lanes()).map(|_| mpsc::channel::<Delivery>(usize::from(config.prefetch.max(1)))).unzip();
    let workers = queued.into_iter().map(|mut queued| {
        let channel = &channel;
        async move {
            while let Some(delivery) = queued.recv().await {
                handle(config, subscription, channel, delivery).await?;
            }
            Ok::<(), BusError>(())
        }
    });
    let dispatch = async {
        while let Some(delivery) = deliveries.next().await {
            let delivery = delivery.map_err(unavailable)?;
            let lane = event_from(&delivery.properties, &delivery.data).map_or(0, |event| subscription.lane(&event));
            if lanes[lane].send(delivery).await.is_err() {
                break;
            }
        }
        Err(BusError::Unavailable("the consumer was cancelled by the broker".to_owned()))
    };
    // Whichever ends first ends the session; unacknowledged deliveries go
    // back to the queue with the connection, to be delivered again.
    tokio::select! {
        outcome = dispatch => outcome,
        outcome = futures::future::try_join_all(workers) => outcome.and(Err(BusError::Unavailable("the lanes stopped".to_owned()))),
    }
}

async fn handle(
    config: &RabbitConfig,
    subscription: &Subscription,
    channel: &Channel,
    delivery: Delivery,
) -> Result<(), BusError> {
    let attempt = attempts(&delivery.properties);
    if attempt > 1 || delivery.redelivered {
        crate::metrics::redelivered(&subscription.name);
    }
    let outcome = match event_from(&delivery.properties, &delivery.data) {
        None => Err(crate::HandlerError::permanent("message without an event id or type")),
        Some(event) => {
            let producer = event.traceparent.as_deref();
            let exchange = config.exchange();
            let span = crate::trace::consumer(
                crate::trace::RABBITMQ,
                &exchange,
                &subscription.name,
                (&event, producer),
                attempt,
            );
            let outcome = subscription.handler.handle(&event).instrument(span.clone()).await;
            match &outcome {
                Ok(()) => crate::metrics::applied(&subscription.name, &event),
                Err(_) => crate::trace::failed(&span),
            }
            outcome
        }
    };
    if let Err(error) = outcome {
        let (queue, next_attempt) = if error.permanent || attempt >= subscription.max_attempts {
            tracing::error!(subscription = %subscription.name, attempt, %error, "event dead-lettered");
            crate::metrics::dead_lettered(&subscription.name);
            (config.dead_letter_queue(&subscription.name), attempt)
        } else {
            tracing::warn!(subscription = %subscription.name, attempt, %error, "event handler failed; retrying later");
            (config.retry_queue(&subscription.name), attempt + 1)
        };
        let copy = republish(channel, &queue, &delivery, next_attempt, &error.message);
        bounded(config, "re-publishing a failed event", copy).await?;
    }
    bounded(config, "acknowledging an event", async {
        delivery.ack(BasicAckOptions::default()).await.map_err(unavailable)
    })
    .await?;
    Ok(())
}

/// Sends a copy of `delivery` straight to `queue` (through the default
/// exchange), waiting for the broker's confirm.
async fn republish(
    channel: &Channel,
    queue: &str,
    delivery: &Delivery,
    attempt: u32,
    error: &str,
) -> Result<(), BusError> {
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    headers.insert(ATTEMPTS_HEADER.into(), AMQPValue::LongLongInt(i64::from(attempt)));
    headers.insert(ERROR_HEADER.into(), AMQPValue::LongString(error.into()));
    let properties: BasicProperties = delivery.properties.clone().with_headers(headers);
    let confirmation = channel
        .basic_publish("".into(), queue.into(), BasicPublishOptions::default(), &delivery.data, properties)
        .await
        .map_err(unavailable)?
        .await
        .map_err(unavailable)?;
    match confirmation {
        Confirmation::Ack(_) => Ok(()),
        other => Err(BusError::Refused(format!("broker did not take the retry copy: {other:?}"))),
    }
}
