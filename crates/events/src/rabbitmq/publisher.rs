//! Publishing with publisher confirms: `publish` returns only after the
//! broker has acknowledged the (persistent) message, or fails within the
//! configured step timeout. The connection is opened ahead of the first
//! publish where the owner asks (`connect`), else by it; a broken one is
//! dropped and re-opened on the next publish.

use async_trait::async_trait;
use lapin::Confirmation;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{Channel, Connection};
use tokio::sync::Mutex;

use super::{RabbitConfig, bounded, connect, properties, unavailable};
use crate::{BusError, Event, PartialPublish, Publisher};

pub struct RabbitPublisher {
    config: RabbitConfig,
    /// One connection and confirming channel, opened on first use.
    open: Mutex<Option<(Connection, Channel)>>,
}

impl RabbitPublisher {
    pub fn new(config: RabbitConfig) -> Self {
        Self { config, open: Mutex::new(None) }
    }

    /// Opens the connection now, so the first publish does not pay for it
    /// (about 40 ms of the first order's trace); the publishes after it
    /// reuse it. A failure here is only logged by callers: publishing
    /// connects again.
    pub async fn connect(&self) -> Result<(), BusError> {
        let mut open = self.open.lock().await;
        self.channel(&mut open).await.map(drop)
    }

    async fn channel(&self, open: &mut Option<(Connection, Channel)>) -> Result<Channel, BusError> {
        if let Some((connection, channel)) = open.as_ref()
            && connection.status().connected()
            && channel.status().connected()
        {
            return Ok(channel.clone());
        }
        let (connection, channel) = bounded(&self.config, "connecting to RabbitMQ", async {
            let (connection, channel) = connect(&self.config).await?;
            channel.confirm_select(ConfirmSelectOptions::default()).await.map_err(unavailable)?;
            Ok((connection, channel))
        })
        .await?;
        tracing::info!(exchange = %self.config.exchange(), "connected to RabbitMQ for publishing");
        *open = Some((connection, channel.clone()));
        Ok(channel)
    }
}

#[async_trait]
impl Publisher for RabbitPublisher {
    async fn publish(&self, event: &Event) -> Result<(), BusError> {
        self.publish_batch(std::slice::from_ref(event)).await.map_err(|partial| partial.error)
    }

    /// Publishes every event, then awaits their confirms in order: one
    /// round trip to the broker per batch instead of one per event. One
    /// batch at a time, so the confirms of a batch are its own.
    async fn publish_batch(&self, events: &[Event]) -> Result<(), PartialPublish> {
        let mut open = self.open.lock().await;
        let channel = self.channel(&mut open).await.map_err(|error| PartialPublish { taken: 0, error })?;
        let mut taken = 0;
        let outcome = bounded(&self.config, "a batch of publishes and their confirms", async {
            let mut confirms = Vec::with_capacity(events.len());
            let exchange = self.config.exchange();
            for event in events {
                // Open until the broker confirms the event.
                let span = crate::trace::producer(crate::trace::RABBITMQ, &exchange, event);
                let confirm = channel
                    .basic_publish(
                        exchange.as_str().into(),
                        event.kind.clone().into(),
                        BasicPublishOptions::default(),
                        &event.payload,
                        properties(event, crate::trace::carried(&span, event)),
                    )
                    .await
                    .map_err(unavailable)?;
                confirms.push((event, confirm, span));
            }
            for (event, confirm, span) in confirms {
                let confirmed = confirm.await;
                crate::trace::end(&span);
                match confirmed.map_err(unavailable)? {
                    Confirmation::Ack(_) => taken += 1,
                    Confirmation::Nack(_) => {
                        return Err(BusError::Refused(format!("broker nacked event {}", event.id)));
                    }
                    Confirmation::NotRequested => {
                        return Err(BusError::Refused("publisher confirms are off".to_owned()));
                    }
                }
            }
            Ok(())
        })
        .await;
        outcome.map_err(|error| {
            if matches!(error, BusError::Unavailable(_)) {
                // Reconnect at the next publish.
                *open = None;
            }
            PartialPublish { taken, error }
        })
    }
}
