//! The wire contract between `command-service` and `query-service`.
//!
//! Every change of an order becomes one [`Envelope`]: ids, versions, time and trace context around a payload that
//! carries the order's whole state after the change ([`OrderState`]). Because the payload is a snapshot, a consumer
//! applies events idempotently and in any arrival order: it keeps the state with the highest `version`.
//!
//! The command side writes the payload into its outbox; the relay wraps it in the envelope and publishes it as JSON.
//! The query side calls [`decode`], which accepts only event types and schema versions it knows, and answers reads
//! with [`OrderView`]s.

mod checkpoint;
mod envelope;
mod feed;
pub mod identifier;
mod order;
mod partition;
pub mod read_model;
pub mod upcast;
mod view;

pub use checkpoint::{Checkpoint, CHECKPOINT_TYPE, SPLIT_HEADER, WHOLE_LOG_HEADER};
pub use envelope::{decode, decode_envelope, trace_id, DecodeError, Envelope, EventType, OrderEvent};
pub use feed::{FeedMetadata, FeedPage};
pub use order::{Customer, OrderLine, OrderState, OrderStatus, StatusChange, DEFAULT_SEGMENT};
pub use partition::{Partition, MAX_PARTITIONS};
pub use read_model::READ_MODELS;
pub use view::{OrderView, ViewLine};

/// AMQP `content_type` of every published event.
pub const CONTENT_TYPE: &str = "application/json";

/// AMQP header (long long) of every published event: its `sequence`, readable without its body (by the projector
/// for a body it cannot read, by the relay for a copy the broker returned).
pub const SEQUENCE_HEADER: &str = "sequence";
