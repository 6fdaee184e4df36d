//! Read models: the read side of the order platform — order views, customer summaries, a daily sales dashboard.
//!
//! # Layout
//! An event walks through these folders in this order:
//! - [`projection`]: where an event becomes documents of each read model — one projection per read model
//!   ([`projection::Projection`]: the order views in `projection/order_views.rs`, `customer_summary.rs`,
//!   `daily_sales.rs`), each consuming its own queue, writing with the version guard, acking only after the write,
//!   dead-lettering what it cannot parse; the order views' projection announces every new view version.
//! - [`store`]: MongoDB storage only: the read models (`store/models.rs`), their generations, the guarded write,
//!   positions and gaps, and the aggregates of the summary and the dashboard.
//! - [`read`]: where a read waits (`read/wait.rs`): a request that needs `minVersion` or `minPosition` parks on
//!   the [`read::VersionWaiters`] board until that version or position is announced (or its wait runs out).
//! - [`http`]: the axum routes; `application/problem+json` on every failure.
//! - [`rebuild`]: replays the event log into a new generation of a read model and switches reads to it.
//! - [`verify`]: checks the read models against the event log (the `verify` command, and a sampler of the order
//!   views while serving).

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
