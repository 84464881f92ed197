//! An event on the bus: its id, its type (the protobuf message's full name,
//! which is also the routing key), its protobuf payload, and the W3C trace
//! context of the request that caused it.

use prost::{Message, Name};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Unique per event; the AMQP message id; what consumers dedupe on.
    pub id: Uuid,
    /// The message's full name, e.g. `shop.events.v1.OrderCreated`.
    pub kind: String,
    /// The protobuf encoding of the message.
    pub payload: Vec<u8>,
    /// `traceparent` of the span that produced the event.
    pub traceparent: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("expected a {expected} event, got {actual}")]
    WrongKind { expected: String, actual: String },
    #[error("undecodable {kind} payload: {reason}")]
    Payload { kind: String, reason: String },
}

impl Event {
    pub fn new<M: Message + Name>(id: Uuid, message: &M) -> Self {
        Self { id, kind: M::full_name(), payload: message.encode_to_vec(), traceparent: None }
    }

    pub fn with_traceparent(mut self, traceparent: Option<String>) -> Self {
        self.traceparent = traceparent;
        self
    }

    /// How long ago the event was made, read from its UUIDv7 id (`None`
    /// for another kind of id, or a clock that went backwards).
    pub fn age(&self) -> Option<std::time::Duration> {
        let (seconds, nanos) = self.id.get_timestamp()?.to_unix();
        let made = std::time::UNIX_EPOCH + std::time::Duration::new(seconds, nanos);
        std::time::SystemTime::now().duration_since(made).ok()
    }

    pub fn is<M: Name>(&self) -> bool {
        self.kind == M::full_name()
    }

    pub fn decode<M: Message + Name + Default>(&self) -> Result<M, DecodeError> {
        if !self.is::<M>() {
            return Err(DecodeError::WrongKind { expected: M::full_name(), actual: self.kind.clone() });
        }
        M::decode(self.payload.as_slice())
            .map_err(|e| DecodeError::Payload { kind: self.kind.clone(), reason: e.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contract::events::{OrderCancelled, OrderCreated};

    #[test]
    fn events_round_trip_and_know_their_kind() {
        let created = OrderCreated { order_id: "o-1".to_owned(), ..Default::default() };
        let event = Event::new(Uuid::now_v7(), &created);
        assert_eq!(event.kind, "shop.events.v1.OrderCreated");
        assert_eq!(event.decode::<OrderCreated>().unwrap(), created);
        assert!(matches!(event.decode::<OrderCancelled>(), Err(DecodeError::WrongKind { .. })));
    }
}
