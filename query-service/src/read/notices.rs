//! "View changed" notices between query-service replicas.
//!
//! Only one replica projects a given event, but a waiting read may sit on any replica. After each view write the
//! projector publishes `{"kind": "viewChanged", orderId, version, view}`, and after each checkpoint
//! `{"kind": "position", position}` (with `partition` and `partitions` when the queue is split), to a fanout exchange
//! (`<AMQP_EXCHANGE>.view-changed`); a projecting replica also says it is alive there every second
//! (`{"kind": "projector", replica, partitions, projections, consuming}`, recorded in [`Projectors`]). Every replica
//! binds an
//! exclusive, auto-deleted queue of its own to it and announces each notice on its local [`VersionWaiters`] board.
//! The notice carries the view it announces (up to [`MAX_CARRIED_VIEW`] bytes of it), so that a read woken on any
//! replica answers with it instead of asking MongoDB again. Notices are a wake-up, not the truth: one that is lost
//! only delays a waiter until its next look at MongoDB (see [`crate::read`]). Every 2 s the listener binds its queue again (a no-op while the binding exists), so a replica
//! whose binding vanished — the exchange deleted by hand, a broker restored without it — hears notices again within
//! seconds instead of relying on those looks until it restarts.
//!
//! Every notice carries its deployment's scope (header `scope`: its `AMQP_QUEUE`, the queues it consumes), and a
//! listener ignores notices of another scope: two deployments on one events exchange (a second read side with
//! queues and a store of its own) share the exchange but never each other's positions or partitions. A notice
//! without the header (a replica of an earlier release) is heard. A position notice is also progress of that
//! partition's stage for this replica's watchdog: a standby replica that sees events wait in the queue does not
//! report a stall while the active one moves them.

use futures_util::StreamExt as _;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, ConnectionProperties, ExchangeKind};
use serde::{Deserialize, Serialize};
use service_runtime::watchdog::{StageId, Watchdog};
use service_runtime::{retry_until_shutdown, Backoff};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::projectors::{Heartbeat, Projectors};
use super::Boards;
use crate::store::models::ORDER_VIEWS;
use crate::store::StoredView;
use shared_events::Partition;
use std::sync::Arc;
use tokio::time::Instant;

/// Largest view a notice carries, as JSON; a larger one is announced by its version alone (and read where needed).
pub const MAX_CARRIED_VIEW: usize = 16 * 1024;

/// One notice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Notice {
    /// The view of `order_id` is now at `version`; `view` is that view, when it was small enough to carry.
    ViewChanged {
        order_id: Uuid,
        version: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        view: Option<Box<StoredView>>,
    },
    /// Every event up to `position` has been applied to the read model `projection` (the order views when absent)
    /// — of one partition, when its queue is split.
    Position {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        projection: Option<String>,
        position: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        partition: Option<u16>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        partitions: Option<u16>,
    },
    /// A projecting replica is alive (sent every [`HEARTBEAT_EVERY`]), with the split of its queues, the projections
    /// it runs and the partitions it consumes now: the replicas that run a projection share its partitions among
    /// the ones heard from (see `projection::partitions`), and any replica can tell a partition nobody consumes.
    Projector {
        replica: Uuid,
        #[serde(flatten)]
        heartbeat: Heartbeat,
    },
}

impl Notice {
    /// The notice of a view just written, carrying it.
    pub fn view_changed(view: &StoredView, order_id: Uuid) -> Self {
        Self::ViewChanged { order_id, version: view.version, view: Some(Box::new(view.clone())) }
    }

    /// The notice of `partition` of the read model `projection` having reached `position`.
    pub fn position(projection: &str, partition: Partition, position: i64) -> Self {
        let split = partition.is_split();
        Self::Position {
            projection: (projection != ORDER_VIEWS.name).then(|| projection.to_owned()),
            position,
            partition: split.then_some(partition.index),
            partitions: split.then_some(partition.count),
        }
    }

    /// Announces the notice on the local board of its read model (with its view, when it carries the one it
    /// names), or records the projector it is from.
    pub fn announce(self, heard: &Heard) {
        let name = self.projection().unwrap_or(ORDER_VIEWS.name).to_owned();
        let Some(waiters) = heard.boards.named(&name) else {
            return tracing::debug!("ignoring a notice of a read model this replica does not keep");
        };
        match self {
            Self::ViewChanged { order_id, version, view: Some(view) } if view.version == version => {
                waiters.announce_view(order_id, Arc::new(*view));
            }
            Self::ViewChanged { order_id, version, .. } => waiters.announce(order_id, version),
            Self::Position { position, partition: Some(index), partitions: Some(count), .. } if index < count => {
                waiters.announce_partition_position(Partition { index, count }, position);
                heard.watchdog.progressed_elsewhere(&StageId::projection(&name, index));
            }
            Self::Position { position, partition: None, .. } => {
                waiters.announce_position(position);
                heard.watchdog.progressed_elsewhere(&StageId::projection(&name, 0));
            }
            Self::Position { .. } => tracing::debug!("ignoring a position notice of no partition"),
            Self::Projector { replica, heartbeat } => heard.projectors.heard(replica, heartbeat, Instant::now()),
        }
    }

    /// The read model a position notice is about (`None`: the order views).
    fn projection(&self) -> Option<&str> {
        match self {
            Self::Position { projection, .. } => projection.as_deref(),
            _ => None,
        }
    }

    /// The notice as sent: its JSON, without the view when that is larger than [`MAX_CARRIED_VIEW`].
    fn body(self) -> serde_json::Result<Vec<u8>> {
        let body = serde_json::to_vec(&self)?;
        match self {
            Self::ViewChanged { order_id, version, view: Some(_) } if body.len() > MAX_CARRIED_VIEW => {
                serde_json::to_vec(&Self::ViewChanged { order_id, version, view: None })
            }
            _ => Ok(body),
        }
    }
}

/// The AMQP header that names a notice's deployment.
pub const SCOPE_HEADER: &str = "scope";

/// Where a deployment's notices go: the notice exchange of its events exchange, and its scope (`AMQP_QUEUE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeRoute {
    pub exchange: String,
    pub scope: String,
}

impl NoticeRoute {
    /// The route of the deployment that consumes the queues named after `queue_stem` from `events_exchange`.
    pub fn new(events_exchange: &str, queue_stem: &str) -> Self {
        Self { exchange: notice_exchange(events_exchange), scope: queue_stem.to_owned() }
    }

    /// Whether a notice with these headers is this deployment's (or of a release that did not say).
    fn hears(&self, headers: Option<&FieldTable>) -> bool {
        match headers.and_then(|headers| headers.inner().get(SCOPE_HEADER)) {
            Some(AMQPValue::LongString(scope)) => scope.as_bytes() == self.scope.as_bytes(),
            Some(_) => false,
            None => true,
        }
    }
}

/// The fanout exchange of notices that goes with an events exchange.
pub fn notice_exchange(events_exchange: &str) -> String {
    format!("{events_exchange}.view-changed")
}

/// Declares the notice exchange (idempotent).
pub async fn declare(channel: &Channel, exchange: &str) -> lapin::Result<()> {
    service_runtime::amqp::declare_exchange(channel, exchange, ExchangeKind::Fanout).await
}

/// Publishes a notice without waiting for a confirm (a lost notice costs a waiter its wait, nothing more). Bounded:
/// a publish on a channel the broker is closing can otherwise wait forever, and with it the projector.
pub async fn publish(channel: &Channel, route: &NoticeRoute, notice: Notice) -> lapin::Result<()> {
    let body = notice.body().map_err(|e| lapin::Error::from(std::io::Error::other(e)))?;
    let mut headers = FieldTable::default();
    headers.insert(SCOPE_HEADER.into(), AMQPValue::LongString(route.scope.as_str().into()));
    let send = channel.basic_publish(
        route.exchange.as_str().into(),
        "".into(),
        BasicPublishOptions::default(),
        &body,
        BasicProperties::default().with_headers(headers),
    );
    service_runtime::amqp::within(Duration::from_secs(2), "sending a notice", send).await.map(drop)
}

/// Listens for notices until shutdown and announces them locally; reconnects with backoff. `bound` is true while
/// this replica's queue is bound, i.e. while it hears every notice.
pub async fn listen(
    amqp_url: String,
    route: NoticeRoute,
    heard: Heard,
    bound: watch::Sender<bool>,
    shutdown: CancellationToken,
) {
    let backoff = Backoff::default();
    retry_until_shutdown("view-changed listener", &backoff, &shutdown, || async {
        let result = listen_once(&amqp_url, &route, &heard, &bound, &shutdown, &backoff).await;
        bound.send_replace(false);
        result
    })
    .await;
}

/// Where the notices heard go: the boards of waiting reads, the projecting replicas, and the watchdog.
#[derive(Debug, Clone)]
pub struct Heard {
    pub boards: Boards,
    pub projectors: Projectors,
    pub watchdog: Watchdog,
}

/// Listens on one connection until shutdown or its first failure: a private queue bound to the view-changed
/// exchange, bound again every 2 s (an exchange deleted and declared again has lost its bindings), every notice
/// heard that is of this deployment announced.
async fn listen_once(
    amqp_url: &str,
    route: &NoticeRoute,
    heard: &Heard,
    bound: &watch::Sender<bool>,
    shutdown: &CancellationToken,
    backoff: &Backoff,
) -> lapin::Result<()> {
    let properties = ConnectionProperties::default().with_connection_name("view-notices".into());
    let connection = service_runtime::amqp::connect(amqp_url, properties).await?;
    let channel = connection.create_channel().await?;
    let result = match PrivateQueue::bind(&channel, &route.exchange).await {
        Ok(queue) => {
            bound.send_replace(true);
            backoff.reset();
            queue.hear(&connection, route, heard, shutdown).await
        }
        Err(err) => Err(err),
    };
    service_runtime::amqp::close(&connection, "listener stopping").await;
    result
}

/// Binds `queue` to `exchange`. The exchange gone, the broker answers 404 and closes the channel: the listener
/// starts over, declaring it again.
async fn bind_queue(channel: &Channel, queue: &ShortString, exchange: &str) -> lapin::Result<()> {
    let bind = channel.queue_bind(
        queue.clone(),
        exchange.into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    );
    service_runtime::amqp::within(Duration::from_secs(5), "binding the notice queue", bind).await
}

/// This replica's queue of notices: exclusive, deleted with its connection, bound to the view-changed exchange.
struct PrivateQueue<'a> {
    channel: &'a Channel,
    exchange: &'a str,
    name: ShortString,
    notices: lapin::Consumer,
}

impl<'a> PrivateQueue<'a> {
    /// Declares the exchange and a private queue bound to it, and consumes the queue.
    async fn bind(channel: &'a Channel, exchange: &'a str) -> lapin::Result<Self> {
        declare(channel, exchange).await?;
        let private = QueueDeclareOptions { exclusive: true, auto_delete: true, ..QueueDeclareOptions::default() };
        let name = channel.queue_declare("".into(), private, FieldTable::default()).await?.name().clone();
        bind_queue(channel, &name, exchange).await?;
        let no_ack = BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() };
        let notices = channel.basic_consume(name.clone(), "".into(), no_ack, FieldTable::default()).await?;
        Ok(Self { channel, exchange, name, notices })
    }

    async fn bind_again(&self) -> lapin::Result<()> {
        bind_queue(self.channel, &self.name, self.exchange).await
    }

    /// Announces every notice of this deployment heard, until shutdown or a failure.
    async fn hear(
        mut self,
        connection: &lapin::Connection,
        route: &NoticeRoute,
        heard: &Heard,
        shutdown: &CancellationToken,
    ) -> lapin::Result<()> {
        let mut health = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                _ = health.tick() => {
                    if !connection.status().connected() {
                        return Err(lapin::Error::from(std::io::Error::other("connection to RabbitMQ lost")));
                    }
                    self.bind_again().await?;
                }
                next = self.notices.next() => match next {
                    Some(Ok(delivery)) if !route.hears(delivery.properties.headers().as_ref()) => {}
                    Some(Ok(delivery)) => match serde_json::from_slice::<Notice>(&delivery.data) {
                        Ok(notice) => notice.announce(heard),
                        Err(err) => tracing::warn!(error = %err, "ignoring a malformed view-changed notice"),
                    },
                    Some(Err(err)) => return Err(err),
                    None => return Err(lapin::Error::from(std::io::Error::other("notice consumer cancelled"))),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(version: i64, name_length: usize) -> StoredView {
        let mut view = StoredView::from_event(&system_event(version));
        view.items[0].name = Some("n".repeat(name_length));
        view
    }

    fn system_event(version: i64) -> shared_events::OrderEvent {
        let envelope = serde_json::json!({
            "eventId": Uuid::nil(), "eventType": "OrderPlaced", "schemaVersion": 2, "orderId": Uuid::nil(),
            "version": version, "sequence": 7, "occurredAt": "2026-12-01T10:00:00.123Z",
            "payload": {"customer": {"id": "c", "segment": "standard"}, "currency": "EUR", "status": "Placed",
                "total": "1", "placedAt": "2026-12-01T10:00:00.123Z", "updatedAt": "2026-12-01T10:00:00.123Z",
                "items": [{"sku": "s", "quantity": 1, "unitPrice": "1", "lineTotal": "1"}]},
        });
        shared_events::decode(&serde_json::to_vec(&envelope).expect("json")).expect("an event")
    }

    #[test]
    fn a_notice_carries_its_view_exactly_unless_the_view_is_too_large() {
        let small = Notice::view_changed(&view(2, 10), Uuid::nil());
        let sent: Notice = serde_json::from_slice(&small.clone().body().expect("a body")).expect("parses");
        assert_eq!(sent, small, "dates, decimals and the list key survive the trip");
        let large = Notice::view_changed(&view(3, MAX_CARRIED_VIEW), Uuid::nil());
        let sent: Notice = serde_json::from_slice(&large.body().expect("a body")).expect("parses");
        assert_eq!(sent, Notice::ViewChanged { order_id: Uuid::nil(), version: 3, view: None });
    }

    #[test]
    fn notices_round_trip_as_camel_case_json() {
        let notice = Notice::ViewChanged { order_id: Uuid::nil(), version: 3, view: None };
        let json = serde_json::to_string(&notice).expect("serialises");
        assert_eq!(json, r#"{"kind":"viewChanged","orderId":"00000000-0000-0000-0000-000000000000","version":3}"#);
        assert_eq!(serde_json::from_str::<Notice>(&json).expect("parses"), notice);
        let position = Notice::position("orders", Partition::WHOLE, 9);
        let json = serde_json::to_string(&position).expect("serialises");
        assert_eq!(json, r#"{"kind":"position","position":9}"#, "as before partitions and projections");
        assert_eq!(serde_json::from_str::<Notice>(&json).expect("parses"), position);
        let position = Notice::position("orders", Partition { index: 2, count: 6 }, 9);
        let json = serde_json::to_string(&position).expect("serialises");
        assert_eq!(json, r#"{"kind":"position","position":9,"partition":2,"partitions":6}"#);
        assert_eq!(serde_json::from_str::<Notice>(&json).expect("parses"), position);
        let position = Notice::position("daily-sales", Partition::WHOLE, 9);
        let json = serde_json::to_string(&position).expect("serialises");
        assert_eq!(json, r#"{"kind":"position","projection":"daily-sales","position":9}"#);
        assert_eq!(serde_json::from_str::<Notice>(&json).expect("parses"), position);
        let earlier = r#"{"kind":"projector","replica":"00000000-0000-0000-0000-000000000000","partitions":6}"#;
        let alive =
            Notice::Projector { replica: Uuid::nil(), heartbeat: Heartbeat { partitions: 6, ..Heartbeat::default() } };
        assert_eq!(serde_json::to_string(&alive).expect("serialises"), earlier, "a replica of an earlier release's");
        assert_eq!(serde_json::from_str::<Notice>(earlier).expect("parses"), alive);
        let heartbeat = Heartbeat {
            partitions: 2,
            projections: Some(vec!["orders".to_owned()]),
            consuming: Some(std::collections::BTreeMap::from([("orders".to_owned(), vec![1])])),
        };
        let alive = Notice::Projector { replica: Uuid::nil(), heartbeat };
        let json = serde_json::to_string(&alive).expect("serialises");
        assert_eq!(
            json,
            r#"{"kind":"projector","replica":"00000000-0000-0000-0000-000000000000","partitions":2,"projections":["orders"],"consuming":{"orders":[1]}}"#
        );
        assert_eq!(serde_json::from_str::<Notice>(&json).expect("parses"), alive);
        assert_eq!(notice_exchange("orders.events"), "orders.events.view-changed");
    }

    #[test]
    fn a_position_notice_raises_the_board_of_its_own_read_model_only() {
        let heard =
            Heard { boards: Boards::default(), projectors: Projectors::default(), watchdog: Watchdog::default() };
        Notice::position("customer-summary", Partition::WHOLE, 7).announce(&heard);
        Notice::position("orders", Partition::WHOLE, 3).announce(&heard);
        let position = |name: &str| heard.boards.named(name).map(|board| board.position());
        assert_eq!(
            (position("orders"), position("customer-summary"), position("daily-sales")),
            (Some(3), Some(7), Some(0))
        );
        Notice::position("unknown", Partition::WHOLE, 99).announce(&heard);
        assert_eq!(position("orders"), Some(3), "a read model this replica does not keep raises nothing");
    }

    #[test]
    fn a_position_notice_is_progress_of_a_stage_this_replica_watches_and_adds_none() {
        let heard =
            Heard { boards: Boards::default(), projectors: Projectors::default(), watchdog: Watchdog::default() };
        let watched = StageId::projection("orders", 0);
        let cause = service_runtime::watchdog::Cause { says: "events wait", answered_by_progress: true };
        heard.watchdog.holds(&watched, cause, true);
        Notice::position("orders", Partition::WHOLE, 3).announce(&heard);
        Notice::position("daily-sales", Partition::WHOLE, 3).announce(&heard);
        let stages: Vec<StageId> = heard.watchdog.stages();
        assert_eq!(stages, vec![watched], "a stage this replica does not watch is not added");
    }

    #[test]
    fn a_notice_of_another_deployment_is_not_heard() {
        let route = NoticeRoute::new("orders.events", "blue.order-views");
        let scoped = |scope: &str| {
            let mut headers = FieldTable::default();
            headers.insert(SCOPE_HEADER.into(), AMQPValue::LongString(scope.into()));
            headers
        };
        assert!(route.hears(Some(&scoped("blue.order-views"))));
        assert!(!route.hears(Some(&scoped("green.order-views"))));
        assert!(route.hears(None), "a replica of an earlier release sends no scope");
    }
}
