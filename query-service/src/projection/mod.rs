//! The projector: order events from RabbitMQ into MongoDB read models, one projection each ([`Projection`],
//! [`ALL`]): the order views (`order_views`), the customer summary (`customer_summary`) and the sales dashboard
//! (`daily_sales`).
//!
//! Each projection has its own durable queue — `AMQP_QUEUE` for the order views, `<AMQP_QUEUE>.<projection>` for the
//! others — bound to its own exchange, where the relay publishes a copy of every event (`topology`), so a projection
//! that fails or falls behind holds back its own queue alone, and an event one of them has no queue for waits in the
//! outbox. What follows holds for each. The queue, with a single active consumer, takes every event. The deliveries
//! that have
//! already arrived form one batch: each is decoded, their views are written with the version guard in one write per
//! live generation, announced to waiting reads, and only then acknowledged (one ack for the batches written, once the
//! position they carry is stored: at most once a second, see `acks`). A message that is
//! not an event this service knows goes to the dead-letter queue `<queue>.dlq` with the reason in its headers, and
//! is acked, so it never blocks the queue. When MongoDB is down the batch stays unacked and is retried with
//! backoff: nothing is lost, and a crash returns it to the queue.
//!
//! What a batch means — events, checkpoint, dead letters, and after each write which views are done — is decided
//! without I/O in `batch`; the loop around it is `consumer`, with its session with the broker (`session`) and the
//! handling of a batch (`handle`).
//!
//! What an event makes of its view is [`StoredView::from_event`](crate::store::StoredView::from_event), defined here
//! (`order_views`): the event carries the order's whole state, so the view is a function of the newest event alone.
//!
//! An operator (or the demo page) may slow the projector down on purpose: [`Slowdown`].
//!
//! `query-service dlq redrive` ([`redrive`]) moves dead letters back to the queue after a fix.
//!
//! With `PROJECTOR_PARTITIONS` > 1 the queue is split: the relay routes each order's events to one partition's queue
//! (`<queue>.<index>`), and the projecting replicas share the partitions (`partitions`), each consumed by one
//! replica at a time.
//!
//! The relay's checkpoint markers travel in the same queue (in every partition's); handling one announces the read
//! model's position (every
//! event up to it applied) to list reads waiting for `minPosition` at once, and stores it in MongoDB before the
//! batch is acked.

mod acks;
mod batch;
mod catch_up;
mod consumer;
mod customer_summary;
mod daily_sales;
mod dead_letters;
mod handle;
mod open_gaps;
mod order_views;
mod partitions;
mod projections;
mod redrive;
mod retries;
mod session;
mod settings;
mod slowdown;
mod topology;
mod watch;

pub use partitions::{heartbeat, project, Replica};
pub use projections::Projection;
pub use settings::{projection_queue, ConsumerSettings, Consuming, QueueType};
pub use topology::{declare_topology, keep as keep_topology};
pub use watch::watch;

/// Every projection, the order views first.
pub static ALL: [&dyn Projection; 3] =
    [&order_views::OrderViews, &customer_summary::CustomerSummary, &daily_sales::DailySales];

/// The projection called `name`.
pub fn named(name: &str) -> Option<&'static dyn Projection> {
    ALL.iter().copied().find(|projection| projection.name() == name)
}
pub use redrive::{redrive, REDRIVE_COUNT};
pub use slowdown::{Setting as SlowdownSetting, Slowdown, MAX_DELAY as MAX_SLOWDOWN};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_read_model_is_kept_by_exactly_one_projection_in_the_same_order() {
        let projected: Vec<&str> = ALL.iter().map(|projection| projection.model().name).collect();
        let models: Vec<&str> = crate::store::models::ALL.iter().map(|model| model.name).collect();
        assert_eq!(projected, models);
        assert!(ALL[0].announces_views() && ALL.iter().skip(1).all(|p| !p.announces_views()), "the views first, alone");
        assert_eq!(named("customer-summary").map(|p| p.name()), Some("customer-summary"));
        assert!(named("order_views").is_none(), "by name, not by collection");
        let names: Vec<&str> = ALL.iter().map(|projection| projection.name()).collect();
        assert_eq!(names, shared_events::READ_MODELS, "the relay delivers to every read model, and to no other");
    }
}
