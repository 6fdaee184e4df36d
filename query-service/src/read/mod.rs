//! Waiting reads: read-your-writes on an eventually consistent store, without polling, on every replica.

pub mod notices;
pub mod projectors;
mod shared;
mod wait;
mod waiters;

pub use shared::{SharedReads, ViewRead, ViewReader};
pub use wait::{Waited, Waiting};
pub use waiters::{Announced, Boards, Subscription, VersionWaiters};
