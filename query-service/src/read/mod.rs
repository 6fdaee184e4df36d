//! Waiting reads: read-your-writes on an eventually consistent store, without polling.

mod waiters;

pub use waiters::{Subscription, VersionWaiters};
