//! Publishing with publisher confirms: `publish` returns only after the
//! broker has acknowledged the (persistent) message, or fails within the
//! configured step timeout. A broken connection is dropped and re-opened on
//! the next publish.

use async_trait::async_trait;
use lapin::Confirmation;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use tokio::sync::Mutex;

use super::{RabbitConfig, bounded, connect, properties, unavailable};
use crate::{BusError, Event, Publisher};

pub struct RabbitPublisher {
    config: RabbitConfig,
    /// One connection and confirming channel, opened on first use.
    open: Mutex<Option<(Connection, Channel)>>,
}

impl RabbitPublisher {
    pub fn new(config: RabbitConfig) -> Self {
        Self { config, open: Mutex::new(None) }
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
        // One publish at a time: confirms then map one-to-one to events, and
        // the outbox relay publishes in order anyway.
        let mut open = self.open.lock().await;
        let channel = self.channel(&mut open).await?;
        let outcome = bounded(&self.config, "a publish and its confirm", async {
            channel
                .basic_publish(
                    self.config.exchange().into(),
                    event.kind.clone().into(),
                    BasicPublishOptions::default(),
                    &event.payload,
                    properties(event, FieldTable::default()),
                )
                .await
                .map_err(unavailable)?
                .await
                .map_err(unavailable)
        })
        .await;
        match outcome {
            Ok(Confirmation::Ack(_)) => Ok(()),
            Ok(Confirmation::Nack(_)) => Err(BusError::Refused(format!("broker nacked event {}", event.id))),
            Ok(Confirmation::NotRequested) => Err(BusError::Refused("publisher confirms are off".to_owned())),
            Err(error) => {
                *open = None;
                Err(error)
            }
        }
    }
}
