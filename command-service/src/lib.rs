//! Order commands: the write side of the order platform.
//!
//! # Layout
//! An order walks through these folders in this order:
//! - [`http`]: the axum routes; JSON in, `application/problem+json` out on every failure.
//! - [`domain`]: parses a request into a valid order (or a list of field errors). Pure, no I/O.
//! - [`store`]: writes the order and its event to Postgres in one transaction; reads the outbox.
//! - [`relay`]: publishes unpublished outbox rows to RabbitMQ with publisher confirms, then marks them published.
//!
//! [`config`] reads the environment once; [`metrics`] counts what happens; [`run`] wires the pieces together under
//! one shutdown signal.

pub mod config;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod relay;
pub mod run;
pub mod store;
