//! What a projection is: a read model ([`ReadModel`]) and what each event writes into it. Every projection gets
//! the same machinery — its own queue, the guarded write, its position and gaps, generations, rebuild, checks and
//! metrics — so adding one is one module implementing [`Projection`] and a line in [`super::ALL`]
//! (`docs/projections.md`).

use shared_events::OrderEvent;

use crate::store::models::ReadModel;
use crate::store::Guarded;

/// One projection of the order events.
pub trait Projection: std::fmt::Debug + Send + Sync {
    /// The read model it keeps.
    fn model(&self) -> &'static ReadModel;

    /// The documents `event` writes, each with the version guard (only over an older version of itself, so a
    /// duplicated, reordered or redelivered event changes nothing). Empty for an event it does not take. An error
    /// is a reason to dead-letter the event.
    fn apply(&self, event: &OrderEvent) -> Result<Vec<Guarded>, String>;

    /// Whether its documents are the order views that single reads wait for (their writes are announced to
    /// waiting reads and view streams).
    fn announces_views(&self) -> bool {
        false
    }

    /// Its name: its read model's.
    fn name(&self) -> &'static str {
        self.model().name
    }
}

/// The UTC day of `at`, as `YYYY-MM-DD`.
pub fn day_of(at: time::OffsetDateTime) -> String {
    crate::store::daily::day(at.to_offset(time::UtcOffset::UTC).date())
}

/// A BSON date of `at` (millisecond precision).
pub fn bson_date(at: time::OffsetDateTime) -> mongodb::bson::DateTime {
    mongodb::bson::DateTime::from_millis((at.unix_timestamp_nanos() / 1_000_000) as i64)
}

#[cfg(test)]
pub(super) mod given {
    //! Events for the projections' given/when/then tests, and the guarded write applied in memory.

    use shared_events::{Customer, EventType, OrderEvent, OrderLine, OrderState, OrderStatus};
    use std::collections::HashMap;
    use time::macros::datetime;
    use uuid::Uuid;

    use super::Projection;
    use crate::store::{keep_newest, Guarded};

    /// The events of one order of `customer` (`total`, in `currency`) going through `steps`, placed on 1 December
    /// 2026 at 23:00 UTC and changed one day later per step.
    pub fn order_life(
        order: u128,
        customer: &str,
        currency: &str,
        total: &str,
        steps: &[EventType],
    ) -> Vec<OrderEvent> {
        let placed_at = datetime!(2026-12-01 23:00 UTC);
        let total: rust_decimal::Decimal = total.parse().expect("a decimal");
        steps
            .iter()
            .enumerate()
            .map(|(i, step)| {
                let status = match step {
                    EventType::OrderPlaced => OrderStatus::Placed,
                    EventType::OrderConfirmed => OrderStatus::Confirmed,
                    EventType::OrderShipped => OrderStatus::Shipped,
                    EventType::OrderCancelled => OrderStatus::Cancelled,
                };
                let updated_at = placed_at + time::Duration::days(i as i64);
                OrderEvent {
                    event_id: Uuid::from_u128(order * 100 + i as u128),
                    event_type: *step,
                    order_id: Uuid::from_u128(order),
                    version: i as i64 + 1,
                    sequence: (order * 100 + i as u128) as i64,
                    occurred_at: updated_at,
                    traceparent: None,
                    state: OrderState {
                        customer: Customer { id: customer.to_owned(), segment: "standard".to_owned() },
                        currency: currency.to_owned(),
                        status,
                        items: vec![OrderLine {
                            sku: "sku".to_owned(),
                            name: None,
                            quantity: 1,
                            unit_price: total,
                            line_total: total,
                        }],
                        total,
                        placed_at,
                        updated_at,
                        cancel_reason: None,
                    },
                }
            })
            .collect()
    }

    /// The read model `projection` holds after `events`, in the order given.
    pub fn applied(projection: &dyn Projection, events: &[OrderEvent]) -> HashMap<String, Guarded> {
        let mut stored = HashMap::new();
        for event in events {
            for document in projection.apply(event).expect("an event the projection takes") {
                keep_newest(&mut stored, document);
            }
        }
        stored
    }
}
