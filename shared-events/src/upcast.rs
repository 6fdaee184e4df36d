//! Schema evolution of event payloads: every payload is read as the current schema, whatever version it was
//! written in.
//!
//! The log is never rewritten: an event keeps the `schemaVersion` it was written with, and readers (the projector,
//! a rebuild) turn older payloads into the current shape on read, one version step at a time. Each step is pure,
//! total on well-formed input and tested on its own.
//!
//! | version | payload (the order's state) |
//! | --- | --- |
//! | 1 | `customerId: "…"`; lines `{sku, quantity, unitPrice, lineTotal}` |
//! | 2 | `customer: {id, segment}`; lines may carry a `name` |

use serde_json::{Map, Value};

use crate::DEFAULT_SEGMENT;

/// Schema version of payloads written now.
pub const CURRENT_SCHEMA_VERSION: u32 = 2;

/// Why a payload could not be brought to the current schema.
#[derive(Debug, thiserror::Error)]
pub enum UpcastError {
    #[error("unknown schema version {0}")]
    UnknownVersion(u32),
    #[error("payload does not match its schema version: {0}")]
    Shape(serde_json::Error),
}

/// Brings a payload written at `schema_version` to [`CURRENT_SCHEMA_VERSION`].
pub fn to_current(schema_version: u32, payload: Value) -> Result<Value, UpcastError> {
    match schema_version {
        1 => v1_to_v2(payload),
        CURRENT_SCHEMA_VERSION => Ok(payload),
        other => Err(UpcastError::UnknownVersion(other)),
    }
}

/// The customer a payload names, read as far as it can be whatever its schema version: `customer.id` (v2),
/// `customerId` (v1), and the same places in a payload of a version this release cannot read. `None` when it names
/// none there (or an empty one): whose order it is cannot be told.
pub fn customer_named(payload: &Value) -> Option<&str> {
    let named = payload.get("customer").and_then(|customer| customer.get("id")).or_else(|| payload.get("customerId"));
    named.and_then(Value::as_str).filter(|id| !id.is_empty())
}

/// v1 → v2: the customer id becomes `customer: {id, segment}`, with the default segment (v1 had none). Lines are
/// unchanged: v2's `name` is optional.
pub fn v1_to_v2(payload: Value) -> Result<Value, UpcastError> {
    let shape = |message: &str| UpcastError::Shape(serde::de::Error::custom(message));
    let Value::Object(mut state) = payload else { return Err(shape("a v1 payload is an object")) };
    let id = match state.remove("customerId") {
        Some(Value::String(id)) => id,
        _ => return Err(shape("a v1 payload has a string customerId")),
    };
    let mut customer = Map::new();
    customer.insert("id".to_owned(), Value::String(id));
    customer.insert("segment".to_owned(), Value::String(DEFAULT_SEGMENT.to_owned()));
    state.insert("customer".to_owned(), Value::Object(customer));
    Ok(Value::Object(state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OrderState;
    use serde_json::json;

    fn v1() -> Value {
        json!({
            "customerId": "cust-42", "currency": "EUR", "status": "Confirmed",
            "items": [{"sku": "SKU-1", "quantity": 2, "unitPrice": "19.99", "lineTotal": "39.98"}],
            "total": "39.98", "placedAt": "2026-11-27T10:00:00Z", "updatedAt": "2026-11-27T10:05:00Z",
        })
    }

    #[test]
    fn a_v1_payload_becomes_the_v2_payload_of_the_same_order() {
        let expected = json!({
            "customer": {"id": "cust-42", "segment": "standard"}, "currency": "EUR", "status": "Confirmed",
            "items": [{"sku": "SKU-1", "quantity": 2, "unitPrice": "19.99", "lineTotal": "39.98"}],
            "total": "39.98", "placedAt": "2026-11-27T10:00:00Z", "updatedAt": "2026-11-27T10:05:00Z",
        });
        assert_eq!(to_current(1, v1()).expect("upcasts"), expected);
        let state: OrderState = serde_json::from_value(expected).expect("a valid v2 state");
        assert_eq!(state.customer.segment, DEFAULT_SEGMENT);
        assert_eq!(state.items[0].name, None);
    }

    #[test]
    fn current_payloads_pass_through_untouched() {
        let v2 = json!({"customer": {"id": "c", "segment": "vip"}, "anything": [1, 2]});
        assert_eq!(to_current(2, v2.clone()).expect("current"), v2);
    }

    #[test]
    fn unknown_versions_and_broken_v1_payloads_are_errors() {
        assert!(matches!(to_current(0, v1()), Err(UpcastError::UnknownVersion(0))));
        assert!(matches!(to_current(3, v1()), Err(UpcastError::UnknownVersion(3))));
        for broken in [json!([]), json!({"customerId": 7}), json!({"currency": "EUR"})] {
            assert!(matches!(to_current(1, broken.clone()), Err(UpcastError::Shape(_))), "{broken}");
        }
    }

    #[test]
    fn the_customer_a_payload_names_is_read_in_any_version() {
        assert_eq!(customer_named(&json!({"customer": {"id": "cust-2", "segment": "vip"}})), Some("cust-2"));
        assert_eq!(customer_named(&json!({"customerId": "cust-1"})), Some("cust-1"));
        assert_eq!(customer_named(&json!({"customerId": "cust-9", "future": true})), Some("cust-9"));
        for none in
            [json!({}), json!({"customerId": ""}), json!({"customerId": 7}), json!({"customer": "x"}), json!([])]
        {
            assert_eq!(customer_named(&none), None, "{none}");
        }
    }
}
