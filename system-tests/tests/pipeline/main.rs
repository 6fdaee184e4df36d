//! The order pipeline end to end: HTTP command → Postgres (order + outbox) → relay → RabbitMQ → projector →
//! MongoDB view → waiting read, on the real services.

mod auth;
mod bad_input;
mod cluster;
mod delivery;
mod demo;
mod deployments;
mod endpoints;
mod faults;
mod helpers;
mod hostile;
mod lifecycle;
mod limits;
mod lists;
mod observability;
mod partitions;
mod prying;
mod read_models;
mod read_your_writes;
mod rebuild;
mod replicas;
mod round_trips;
mod routing;
mod streams;
mod verify;
mod view_writes;
mod wal;
mod watchdog;

use system_tests::proxy as proxies;
