//! Domain values and rules of the write side. Everything here is pure: values parse, they don't validate, and
//! [`decide`] turns a command on an order into the event it records, or a refusal. A lifecycle command's rule
//! ([`ChangeRule`]) is what both `decide` and the store's single statement apply.

mod decide;
mod lifecycle;
mod order;
mod values;

pub use decide::{decide, Change, ChangeRule, Command, Current, Refusal};
pub use lifecycle::{parse_reason, Transition, MAX_REASON_CHARS};
pub use order::{FieldError, JsonInteger, NewOrder, NewOrderLine, PlaceOrder, PlaceOrderLine, PriceInput};
pub use values::{Currency, CustomerId, ItemName, Quantity, Segment, Sku, UnitPrice};

use time::OffsetDateTime;

/// The current time, truncated to whole milliseconds: the precision every store of the platform keeps
/// (MongoDB dates are milliseconds), so a timestamp reads back equal wherever it is stored.
pub fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1_000_000 * 1_000_000).unwrap_or(now)
}
