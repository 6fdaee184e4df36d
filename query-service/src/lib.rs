//! Order views: the read side of the order platform.
//!
//! # Layout
//! An event walks through these folders in this order:
//! - [`projection`]: where an event becomes a view — consumes order events from RabbitMQ, maps each to its view
//!   (`projection/mapping.rs`), writes it with the version guard, acks only after the view is written,
//!   dead-letters what it cannot parse, and announces every new view version.
//! - [`store`]: MongoDB storage only: the generations of views, the guarded write, positions and gaps.
//! - [`read`]: where a read waits (`read/wait.rs`): a request that needs `minVersion` or `minPosition` parks on
//!   the [`read::VersionWaiters`] board until that version or position is announced (or its wait runs out).
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
