//! A consumer's session with the broker: connected, its lost queues recorded and its topology declared around the
//! queues found (or found declared otherwise), a lost queue caught up from the event feed, its chain of checkpoint
//! markers started, and its queue consumed with a single active consumer — once no loss recorded meanwhile waits
//! (decision 0032); with the channel its dead letters go through, the read model's open gaps and the partition's
//! stored position, to be announced (decision 0033).

use lapin::options::{BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::open_gaps::OpenGaps;
use super::retries::store_failed;
use super::settings::ConsumerSettings;
use super::topology::{declare_own_queue, declared_otherwise, record_and_declare};
use crate::read::notices::{self, NoticeRoute};
use crate::store::ReadModelStore;

/// What a consumer holds while it consumes.
pub struct Session {
    pub connection: Connection,
    /// Where deliveries come from and notices go.
    pub channel: Channel,
    /// In confirm mode, for dead letters.
    pub dead_letters: Channel,
    pub deliveries: lapin::Consumer,
    pub notice_route: NoticeRoute,
    pub gaps: OpenGaps,
    /// The partition's stored position as the session opened (after any catch-up from the event feed, which may
    /// have moved it, decision 0031), to be announced: a replica started while nothing is placed hears no marker
    /// that would announce it, and would take its partitions for behind the other read models' (decision 0033).
    pub stored: Option<i64>,
    /// Whether a catch-up from the event feed ran as the session opened (it may have moved the position).
    pub caught_up: bool,
}

impl Session {
    /// Opens the session of `settings`' partition. `None` when its queue exists with other arguments: redeclaring
    /// cannot change a queue's type or arguments, so it waits for `shutdown` instead of repeating the refusal.
    pub async fn open(
        settings: &ConsumerSettings,
        views: &ReadModelStore,
        shutdown: &CancellationToken,
    ) -> lapin::Result<Option<Self>> {
        let name = format!("projector {}", settings.projection.name());
        let properties = ConnectionProperties::default().with_connection_name(name.into());
        let connection = service_runtime::amqp::connect(&settings.amqp_url, properties).await?;
        let channel = connection.create_channel().await?;
        if let Err(err) = record_and_declare(&connection, &channel, settings, views).await {
            return refused(connection, settings, err, shutdown).await;
        }
        let (stored, caught_up) = start_chain(settings, views).await?;
        channel.basic_qos(settings.prefetch, BasicQosOptions::default()).await?;
        let notice_route = settings.notices();
        notices::declare(&channel, &notice_route.exchange).await?;
        let dead_letters = connection.create_channel().await?;
        dead_letters.confirm_select(ConfirmSelectOptions::default()).await?;
        let gaps = OpenGaps::load(views.gaps())
            .await
            .map_err(|err| store_failed(&format!("reading the read model's gaps: {err}")))?;
        // A queue (a partition's, or the unsplit one) is consumed by one replica at a time, which the broker
        // enforces: every queue has a single active consumer, the others registered are standbys. Not an exclusive
        // consumer: a quorum queue ignores the flag and a classic one with a single active consumer refuses it
        // (decision 0021).
        let queue = settings.partition_queue();
        let options = BasicConsumeOptions::default();
        let deliveries =
            channel.basic_consume(queue.as_str().into(), "".into(), options, FieldTable::default()).await?;
        if let Err(err) = declare_own_queue(&connection, settings).await {
            return refused(connection, settings, err, shutdown).await;
        }
        // A queue lost since the catch-up above looked is recorded before anyone declares it again, so a consumer
        // of the queue declared again finds the record here, and opens again to catch up first (decision 0032).
        if views.catch_up_pending(settings.partition).await.map_err(|err| store_failed(&err))? {
            service_runtime::amqp::close(&connection, "queue lost while the session opened").await;
            return Err(store_failed(&"the queue was lost while the session opened; opening again to catch up first"));
        }
        tracing::info!(%queue, partition = %settings.partition, projection = settings.projection.name(),
            "projector consuming");
        Ok(Some(Self { connection, channel, dead_letters, deliveries, notice_route, gaps, stored, caught_up }))
    }

    /// Whether the connection and the channel still stand.
    pub fn connected(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }

    /// Reads how many messages wait in the queue (a passive declare) into the queue-depth gauge, and returns it
    /// (`None` when the broker did not answer in time).
    pub async fn queue_depth(&self, settings: &ConsumerSettings) -> Option<u32> {
        let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
        let queue = settings.partition_queue();
        let declare = self.channel.queue_declare(queue.as_str().into(), passive, FieldTable::default());
        let Ok(Ok(queue)) = tokio::time::timeout(Duration::from_secs(2), declare).await else { return None };
        settings.metrics.queue_depth.set(i64::from(queue.message_count()));
        Some(queue.message_count())
    }
}

/// A declaration failed: when the broker refused it because a queue exists with other arguments, that is said, and
/// the session waits for `shutdown` (`None`) instead of repeating the refusal; any other failure is returned.
async fn refused(
    connection: Connection,
    settings: &ConsumerSettings,
    err: lapin::Error,
    shutdown: &CancellationToken,
) -> lapin::Result<Option<Session>> {
    let Some(refusal) = declared_otherwise(&err) else { return Err(err) };
    tracing::error!(queue = %settings.queue, queue_type = settings.queue_type.as_str(), %refusal,
        "the projector's queue exists with other arguments (created as another type?): set AMQP_QUEUE_TYPE \
         to the type it has, or move its messages to a new queue and delete it (docs/operations.md, \"Queue \
         types\"); the projector does not consume until then");
    service_runtime::amqp::close(&connection, "projector queue declared otherwise").await;
    shutdown.cancelled().await;
    Ok(None)
}

/// The markers this partition has handled: those up to its stored position (or, for a new split's, where the split
/// before it left off), those this process handled before it reconnected, and what a catch-up just wrote. Called
/// after the declaration: a queue found missing was recorded before it was created again, by this replica or
/// another one.
/// Returns the partition's stored position, to be announced: a catch-up may have moved it, now or in a session that
/// ended before announcing it (decision 0032), and a process that just started has announced nothing yet; and
/// whether a catch-up ran.
async fn start_chain(settings: &ConsumerSettings, views: &ReadModelStore) -> lapin::Result<(Option<i64>, bool)> {
    let caught_up = catch_up_if_lost(settings, views).await?;
    let stored = views.start_chain(settings.partition).await.map_err(|err| store_failed(&err))?;
    for through in [stored, caught_up].into_iter().flatten() {
        settings.handled.handled(settings.partition, through);
    }
    Ok((stored, caught_up.is_some()))
}

/// Catches the partition up from the event feed if its queue was lost while it may have held events (see
/// `catch_up`), before it consumes again; an error (the feed or the store failing, no token for the feed) keeps it
/// from consuming until the next attempt. Returns how far it caught up. The catch-up also moves the partition's
/// position as far as a stored marker vouches for: the lost queue may have missed the relay's last markers, and
/// with no more traffic no marker would come through it again (decision 0031).
async fn catch_up_if_lost(settings: &ConsumerSettings, views: &ReadModelStore) -> lapin::Result<Option<i64>> {
    let Some(mark) = views.catch_up_from(settings.partition).await.map_err(|err| store_failed(&err))? else {
        return Ok(None);
    };
    let after = mark.after;
    let (caught, vouched) = super::catch_up::vouched(settings, views, after).await.map_err(|err| store_failed(&err))?;
    views.caught_up(settings.partition, &mark).await.map_err(|err| store_failed(&err))?;
    tracing::info!(projection = settings.projection.name(), partition = %settings.partition, after,
        events = caught.events, through = caught.through, ?vouched, "caught a lost queue up from the event feed");
    Ok(Some(caught.through))
}
