//! Order views: the read side of the order platform.
//!
//! # Layout
//! An event walks through these folders in this order:
//! - [`projection`]: consumes order events from RabbitMQ, applies each to its view (guarded by version), acks only
//!   after the view is written, dead-letters what it cannot parse, and announces every new view version.
//! - [`store`]: the MongoDB collection of order views.
//! - [`read`]: waiting reads: a request that needs `minVersion` parks on the [`read::VersionWaiters`] board until
//!   the projector announces that version (or its wait runs out).
//! - [`http`]: the axum routes; `application/problem+json` on every failure.
//! - [`rebuild`]: replays the event log into a new generation of views and switches reads to it.
//! - [`verify`]: checks the views against the event log (the `verify` command, and a sampler while serving).

pub mod config;
pub mod feed;
pub mod http;
pub mod metrics;
pub mod projection;
pub mod read;
pub mod rebuild;
pub mod run;
pub mod store;
pub mod verify;
