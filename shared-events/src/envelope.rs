//! The envelope around every event, and decoding of what arrives from the broker.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::upcast::UpcastError;
use crate::OrderState;

/// The kinds of event an order produces. The name is the AMQP `type` and routing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    OrderPlaced,
    OrderConfirmed,
    OrderShipped,
    OrderCancelled,
}

impl EventType {
    /// Every event type, in the order of an order's life.
    pub const ALL: [Self; 4] = [Self::OrderPlaced, Self::OrderConfirmed, Self::OrderShipped, Self::OrderCancelled];

    /// Every payload is the order's state, so all event types share one schema version; see [`crate::upcast`].
    pub const fn current_schema_version(self) -> u32 {
        match self {
            Self::OrderPlaced | Self::OrderConfirmed | Self::OrderShipped | Self::OrderCancelled => {
                crate::upcast::CURRENT_SCHEMA_VERSION
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrderPlaced => "OrderPlaced",
            Self::OrderConfirmed => "OrderConfirmed",
            Self::OrderShipped => "OrderShipped",
            Self::OrderCancelled => "OrderCancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// What travels on the broker and what the event log feed returns.
///
/// `payload` stays raw JSON here so that an envelope can be read (and dead-lettered with a reason) even when its
/// payload is of an unknown type or schema version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub order_id: Uuid,
    /// The order's version after this event: 1 for `OrderPlaced`, then +1 per change.
    pub version: i64,
    /// Global position in the event log (the outbox's `sequence`).
    pub sequence: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub occurred_at: OffsetDateTime,
    /// W3C `traceparent` of the request that caused the event, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The order's whole state after the change, in the event's schema version.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

impl Envelope {
    /// The trace id of the `traceparent` (`00-<trace id>-<span id>-<flags>`), when there is one.
    pub fn trace_id(&self) -> Option<&str> {
        trace_id(self.traceparent.as_deref()?)
    }
}

/// The trace id part of a W3C `traceparent`.
pub fn trace_id(traceparent: &str) -> Option<&str> {
    traceparent.split('-').nth(1).filter(|id| id.len() == 32)
}

/// An envelope whose type and payload have been checked.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderEvent {
    pub event_id: Uuid,
    pub event_type: EventType,
    pub order_id: Uuid,
    pub version: i64,
    pub sequence: i64,
    pub occurred_at: OffsetDateTime,
    pub traceparent: Option<String>,
    pub state: OrderState,
}

/// Why a message is not an event this consumer can apply. Such a message is dead-lettered, never retried.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not an event envelope: {0}")]
    Envelope(serde_json::Error),
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("unknown schema version {schema_version} of {event_type:?}")]
    UnknownSchemaVersion { event_type: EventType, schema_version: u32 },
    #[error("payload does not match its event type: {0}")]
    Payload(serde_json::Error),
    #[error("order version {0} is not positive")]
    BadVersion(i64),
}

/// Parses a message body into an [`OrderEvent`].
pub fn decode(body: &[u8]) -> Result<OrderEvent, DecodeError> {
    decode_envelope(serde_json::from_slice(body).map_err(DecodeError::Envelope)?)
}

/// Checks an envelope (from the broker or the event feed) and reads its payload as the current schema.
pub fn decode_envelope(envelope: Envelope) -> Result<OrderEvent, DecodeError> {
    let event_type =
        EventType::parse(&envelope.event_type).ok_or_else(|| DecodeError::UnknownType(envelope.event_type.clone()))?;
    if envelope.version < 1 {
        return Err(DecodeError::BadVersion(envelope.version));
    }
    let payload = crate::upcast::to_current(envelope.schema_version, envelope.payload).map_err(|err| match err {
        UpcastError::UnknownVersion(schema_version) => DecodeError::UnknownSchemaVersion { event_type, schema_version },
        UpcastError::Shape(err) => DecodeError::Payload(err),
    })?;
    let state: OrderState = serde_json::from_value(payload).map_err(DecodeError::Payload)?;
    Ok(OrderEvent {
        event_id: envelope.event_id,
        event_type,
        order_id: envelope.order_id,
        version: envelope.version,
        sequence: envelope.sequence,
        occurred_at: envelope.occurred_at,
        traceparent: envelope.traceparent,
        state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn envelope(event_type: &str, schema_version: u32, payload: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "eventId": "0190b4b0-0000-7000-8000-000000000001",
            "eventType": event_type,
            "schemaVersion": schema_version,
            "orderId": "0190b4b0-0000-7000-8000-000000000002",
            "version": 1,
            "sequence": 7,
            "occurredAt": "2026-11-27T10:00:00.123Z",
            "payload": payload,
        }))
        .expect("test envelope serialises")
    }

    fn placed_payload() -> serde_json::Value {
        json!({
            "customerId": "cust-42", "currency": "EUR", "status": "Placed",
            "items": [{"sku": "SKU-1", "quantity": 2, "unitPrice": "19.99", "lineTotal": "39.98"}],
            "total": "39.98",
            "placedAt": "2026-11-27T10:00:00.123Z", "updatedAt": "2026-11-27T10:00:00.123Z",
        })
    }

    #[test]
    fn decodes_a_known_event_with_exact_money() {
        let event = decode(&envelope("OrderPlaced", 1, placed_payload())).expect("decodes");
        assert_eq!(event.event_type, EventType::OrderPlaced);
        assert_eq!(event.state.customer.id, "cust-42");
        assert_eq!(event.state.customer.segment, crate::DEFAULT_SEGMENT);
        assert_eq!(event.sequence, 7);
        assert_eq!(event.state.total.to_string(), "39.98");
        assert_eq!(event.state.items[0].unit_price.to_string(), "19.99");
    }

    #[test]
    fn rejects_unknown_types_schema_versions_and_payloads() {
        assert!(matches!(decode(b"{not json"), Err(DecodeError::Envelope(_))));
        assert!(matches!(
            decode(&envelope("OrderTeleported", 1, placed_payload())),
            Err(DecodeError::UnknownType(t)) if t == "OrderTeleported"
        ));
        assert!(matches!(
            decode(&envelope("OrderPlaced", 99, placed_payload())),
            Err(DecodeError::UnknownSchemaVersion { schema_version: 99, .. })
        ));
        assert!(matches!(decode(&envelope("OrderPlaced", 1, json!({"customerId": 5}))), Err(DecodeError::Payload(_))));
        assert!(matches!(decode(&envelope("OrderPlaced", 2, placed_payload())), Err(DecodeError::Payload(_))));
    }

    #[test]
    fn envelope_round_trips_through_json() {
        let bytes = envelope("OrderPlaced", 1, placed_payload());
        let parsed: Envelope = serde_json::from_slice(&bytes).expect("parses");
        let again: Envelope =
            serde_json::from_slice(&serde_json::to_vec(&parsed).expect("serialises")).expect("parses");
        assert_eq!(parsed, again);
    }
}
