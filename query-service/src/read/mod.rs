//! Waiting reads: read-your-writes on an eventually consistent store, without polling, on every replica.

pub mod notices;
mod waiters;

pub use waiters::{Announced, Subscription, VersionWaiters};
