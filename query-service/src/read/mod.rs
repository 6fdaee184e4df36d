//! Waiting reads: read-your-writes on an eventually consistent store, on every replica. A waiting read is woken by
//! notices; a re-read every 2 s (streams: 5 s) is the safety net for a notice that was lost.

pub mod notices;
pub mod projectors;
mod shared;
mod wait;
mod waiters;

pub use shared::{SharedReads, ViewLookup, ViewReader};
pub use wait::{Waited, Waiting};
pub use waiters::{Announced, Boards, Subscription, VersionWaiters};
