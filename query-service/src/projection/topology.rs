//! The broker topology of the projections: every read model's exchange, queues (one per partition) and dead-letter
//! queue, declared by every projecting replica when a consumer connects and again every [`TOPOLOGY_EVERY`] while it
//! runs ([`keep`]), so that a binding lost with an exchange deleted and declared again by hand comes back within
//! seconds instead of at the next restart (decision 0018).

use lapin::options::{QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ConnectionProperties, ExchangeKind};
use service_runtime::{retry_until_shutdown, Backoff};
use shared_events::{Partition, CHECKPOINT_TYPE};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::settings::ConsumerSettings;
use crate::store::{ReadModelStore, StoreError};

/// Declares the topology of every projection (not only this consumer's): for each, its exchange
/// (`<exchange>.<projection>`, topic: the relay publishes a copy of every event there), its durable queue of every
/// partition (all of them: an event is never routed to a partition that has no queue yet) and its dead-letter queue,
/// all of [`ConsumerSettings::queue_type`], each queue bound to its projection's exchange (an unsplit queue to every
/// message; a partition's queue to its events and to the checkpoint markers). A read model whose queue is missing
/// returns its copy to the relay, which keeps the event until the queue is back (decision 0018); every replica
/// declares every projection's topology, whatever `PROJECTIONS` it runs, so that a projection run nowhere yet keeps
/// its events in its queue rather than in the outbox. Idempotent: the projector runs it again every
/// [`TOPOLOGY_EVERY`] while it consumes, so that a binding lost with an exchange deleted by hand comes back.
pub async fn declare_topology(channel: &Channel, settings: &ConsumerSettings) -> lapin::Result<()> {
    declare_around(channel, settings, &BTreeSet::new()).await
}

/// Records every queue found lost ([`record_lost_queues`]), then declares the topology around the queues found
/// there ([`declare_around`]): no queue deleted after it was looked at is created again without its loss recorded
/// (decision 0032). What a session opens with, and what [`keep`] does every [`TOPOLOGY_EVERY`].
pub async fn record_and_declare(
    connection: &lapin::Connection,
    channel: &Channel,
    settings: &ConsumerSettings,
    views: &ReadModelStore,
) -> lapin::Result<()> {
    let existing = record_lost_queues(connection, settings, views).await?;
    declare_around(channel, settings, &existing).await
}

/// [`declare_topology`], but the queues of `existing` (found there a moment ago) are only bound, never declared: a
/// queue deleted since is not created again here, by a declaration that did not look for it first; the next round
/// finds it missing, records the loss and creates it ([`record_lost_queues`]).
async fn declare_around(
    channel: &Channel,
    settings: &ConsumerSettings,
    existing: &BTreeSet<String>,
) -> lapin::Result<()> {
    let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
    let (typed, single_active) = queue_arguments(settings);
    for projection in super::ALL {
        let of = settings.for_projection(projection);
        let exchange = of.exchange();
        service_runtime::amqp::declare_exchange(channel, &exchange, ExchangeKind::Topic).await?;
        channel.queue_declare(of.dead_letter_queue().as_str().into(), durable, typed.clone()).await?;
        for partition in Partition::all(settings.partition.count) {
            let queue = of.queue_of(partition);
            if !existing.contains(&queue) {
                channel.queue_declare(queue.as_str().into(), durable, single_active.clone()).await?;
            }
            let checkpoints = partition.is_split().then_some(CHECKPOINT_TYPE.to_owned());
            for key in std::iter::once(partition.binding()).chain(checkpoints) {
                let bind = QueueBindOptions::default();
                channel
                    .queue_bind(
                        queue.as_str().into(),
                        exchange.as_str().into(),
                        key.into(),
                        bind,
                        FieldTable::default(),
                    )
                    .await?;
            }
        }
    }
    Ok(())
}

/// The arguments of a dead-letter queue (its type) and of a projection's queue (its type, and one consumer at a
/// time, in queue order: more projecting replicas are hot standbys, and a checkpoint marker is handled only after
/// every event published before it).
fn queue_arguments(settings: &ConsumerSettings) -> (FieldTable, FieldTable) {
    let mut typed = FieldTable::default();
    typed.insert("x-queue-type".into(), AMQPValue::LongString(settings.queue_type.as_str().into()));
    let mut single_active = typed.clone();
    single_active.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
    (typed, single_active)
}

/// Declares the consumer's own queue with the arguments it must have, on a channel of its own (a refusal closes
/// it): `PRECONDITION_FAILED` when the queue exists with others (see [`declared_otherwise`]). Called once the
/// consumer is subscribed to the queue, so that a declaration cannot create again, unrecorded, a queue deleted
/// since it was looked at: deleted now, it cancels the consumer, which records the loss (decision 0032).
pub(super) async fn declare_own_queue(
    connection: &lapin::Connection,
    settings: &ConsumerSettings,
) -> lapin::Result<()> {
    let channel = connection.create_channel().await?;
    let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
    let (_, single_active) = queue_arguments(settings);
    channel.queue_declare(settings.partition_queue().as_str().into(), durable, single_active).await?;
    let _ = tokio::time::timeout(service_runtime::amqp::CLOSE_TIMEOUT, channel.close(200, "declared".into())).await;
    Ok(())
}

/// Records every queue of a read model that is missing although that read model consumed it (a position of its
/// partition is stored): it was deleted, with what it may have held, and the relay had counted those events
/// delivered. Whoever declares the topology calls this first, so that no queue is created again without its loss
/// recorded; the partition is then caught up from the event feed before it consumes ([`super::catch_up`], decision
/// 0018). A queue deleted while no query-service ran is found the same way when one starts.
pub async fn record_lost_queues(
    connection: &lapin::Connection,
    settings: &ConsumerSettings,
    views: &ReadModelStore,
) -> lapin::Result<BTreeSet<String>> {
    let failed = |err: StoreError| lapin::Error::from(std::io::Error::other(err.to_string()));
    let mut existing = BTreeSet::new();
    let mut channel = connection.create_channel().await?;
    for projection in super::ALL {
        let of = settings.for_projection(projection);
        let store = views.for_model(projection.model());
        for partition in Partition::all(settings.partition.count) {
            let queue = of.queue_of(partition);
            let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
            match channel.queue_declare(queue.as_str().into(), passive, FieldTable::default()).await {
                Ok(_) => {
                    existing.insert(queue);
                    continue;
                }
                Err(err) if is_not_found(&err) => {
                    // The broker closed the channel with its answer.
                    channel = connection.create_channel().await?;
                }
                Err(err) => return Err(err),
            }
            if store.consumed(partition).await.map_err(failed)? {
                store.mark_catch_up(partition).await.map_err(failed)?;
                tracing::warn!(%queue, projection = projection.name(), %partition,
                    "a read model's queue is missing although it was consumed (deleted?): its partition is caught \
                     up from the event feed before it consumes again");
            }
        }
    }
    let _ =
        tokio::time::timeout(service_runtime::amqp::CLOSE_TIMEOUT, channel.close(200, "queues looked at".into())).await;
    Ok(existing)
}

/// Whether `err` is the broker saying that the queue does not exist (`NOT_FOUND`).
fn is_not_found(err: &lapin::Error) -> bool {
    use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
    matches!(err.kind(), lapin::ErrorKind::ProtocolError(amqp)
        if matches!(amqp.kind(), AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND)))
}

/// How often a consuming projector declares the topology again.
pub const TOPOLOGY_EVERY: Duration = Duration::from_secs(2);

/// Declares the topology of every projection again every [`TOPOLOGY_EVERY`] until `shutdown`, on a connection of
/// its own (reconnecting with backoff). A queue found declared with other arguments is logged once; the consumer of
/// that queue reports it (it does not consume).
pub async fn keep(settings: ConsumerSettings, views: ReadModelStore, shutdown: CancellationToken) {
    let backoff = Backoff::default();
    retry_until_shutdown("projector topology", &backoff, &shutdown, || async {
        let connection = service_runtime::amqp::connect(
            &settings.amqp_url,
            ConnectionProperties::default().with_connection_name("projector-topology".into()),
        )
        .await?;
        let result = redeclare(&connection, &settings, &views, &shutdown, &backoff).await;
        service_runtime::amqp::close(&connection, "projector stopping").await;
        result
    })
    .await;
}

async fn redeclare(
    connection: &lapin::Connection,
    settings: &ConsumerSettings,
    views: &ReadModelStore,
    shutdown: &CancellationToken,
    backoff: &Backoff,
) -> lapin::Result<()> {
    let mut channel = connection.create_channel().await?;
    let mut refused: Option<String> = None;
    loop {
        if !channel.status().connected() {
            channel = connection.create_channel().await?;
        }
        match record_and_declare(connection, &channel, settings, views).await {
            Ok(()) => {
                refused = None;
                backoff.reset();
            }
            Err(err) => match declared_otherwise(&err) {
                Some(refusal) => {
                    if refused.as_ref() != Some(&refusal) {
                        tracing::error!(%refusal, "a projection's queue exists with other arguments; see \
                            docs/operations.md, \"Queue types\"");
                    }
                    refused = Some(refusal);
                }
                None => return Err(err),
            },
        }
        if service_runtime::sleep_or_shutdown(TOPOLOGY_EVERY, shutdown).await {
            return Ok(());
        }
    }
}

/// The broker's refusal to declare a queue that exists with other arguments (`PRECONDITION_FAILED`), if that is
/// what `err` is.
pub(super) fn declared_otherwise(err: &lapin::Error) -> Option<String> {
    use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
    match err.kind() {
        lapin::ErrorKind::ProtocolError(amqp)
            if matches!(amqp.kind(), AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED)) =>
        {
            Some(amqp.get_message().to_string())
        }
        _ => None,
    }
}
