//! The `wal` mode (decision 0016): change data capture of the outbox. The leader streams committed outbox inserts
//! from a logical replication slot (`pgoutput`, publication [`store::slots::PUBLICATION`]), in commit order,
//! publishes them with publisher confirms and moves the slot past a transaction only once the broker confirmed its
//! events: a crash re-sends at most the unconfirmed tail. No polling, no `UPDATE` per event.
//!
//! Checkpoints: the slot gives commit order, but positions are sequences, drawn before commit. [`Closure`] keeps the
//! longest run of published sequences; when a gap stays open for [`GAP_GRACE`], a task asks the append barrier
//! which sequences are settled and writes a marker into the log ([`store::slots::emit_marker`]) that commits after
//! every transaction that could fill the gap. When the marker comes through the stream, what did not come is a hole.
//!
//! A slot is taken over only when `relay_progress` names it (it continues the published log). Otherwise — first
//! start, a switch from `notify` mode, a slot dropped by hand — it is created again and what committed before it
//! and is not yet published goes out the notify way (selected, published, marked) before streaming starts.

mod closure;
mod pgoutput;

use anyhow::Context as _;
use pgwire_replication::{Lsn, ReplicationClient, ReplicationConfig, ReplicationEvent};
use sqlx::postgres::PgConnectOptions;
use sqlx::{PgConnection, PgPool};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::notify::{drain, Drained};
use super::{heartbeat, settled, unroutable, Outcome, Publisher, RelaySettings, HEARTBEAT_INTERVAL, UNROUTABLE_RETRY};
use crate::store::{self, OutboxRow, StoreError};
use closure::Closure;
use pgoutput::{Change, Relation};

/// Session settings of the replication connection: the text form of timestamps the decoder reads.
const SESSION_OPTIONS: &str = "-c DateStyle=ISO -c TimeZone=UTC";

/// Prefix of the markers that say "every sequence up to the content is settled".
const MARKER_PREFIX: &str = "orders-relay.settled";

/// How long a gap may stay open before the barrier is asked about it: a commit in flight fills it sooner.
const GAP_GRACE: Duration = Duration::from_millis(20);

/// How soon the slot hears of what the broker confirmed: what a crash re-sends is at most this much of the stream.
const STATUS_INTERVAL: Duration = Duration::from_millis(250);

/// How long a marker written for a gap may take to come through the stream before the barrier is asked again.
const MARKER_PATIENCE: Duration = Duration::from_secs(5);

/// How often, at most, the published position is recorded in `relay_progress` (for a switch back to `notify`).
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// How to stream from Postgres: the slot, and the server of `DATABASE_URL` (replication connections take no URL).
#[derive(Clone)]
pub struct ReplicationTarget {
    pub slot: String,
    host: String,
    port: u16,
    user: String,
    password: Option<String>,
    database: String,
}

impl std::fmt::Debug for ReplicationTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicationTarget")
            .field("slot", &self.slot)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

impl ReplicationTarget {
    /// The server and database of `database_url`, and `slot` (default: derived from the database name).
    pub fn new(database_url: &str, slot: Option<&str>) -> anyhow::Result<Self> {
        let options: PgConnectOptions = database_url.parse().context("DATABASE_URL is not a valid Postgres URL")?;
        let database = options.get_database().unwrap_or(options.get_username()).to_owned();
        Ok(Self {
            slot: slot.filter(|s| !s.is_empty()).map_or_else(|| store::slots::default_name(&database), str::to_owned),
            host: options.get_host().to_owned(),
            port: options.get_port(),
            user: options.get_username().to_owned(),
            password: password_of(database_url).or_else(|| std::env::var("PGPASSWORD").ok()),
            database,
        })
    }

    fn config(&self) -> ReplicationConfig {
        ReplicationConfig::new(
            self.host.as_str(),
            self.user.as_str(),
            self.password.clone().unwrap_or_default(),
            self.database.as_str(),
            self.slot.as_str(),
            store::slots::PUBLICATION,
        )
        .with_port(self.port)
        .with_options(SESSION_OPTIONS)
        .with_status_interval(STATUS_INTERVAL)
        .with_wakeup_interval(Duration::from_secs(1))
        .with_application_name("orders-relay")
    }
}

/// The password of a `postgres://user:password@host/db` URL, percent-decoded.
fn password_of(url: &str) -> Option<String> {
    let authority = url.split_once("://")?.1.split(['/', '?']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    let password = userinfo.split_once(':')?.1;
    Some(percent_encoding::percent_decode_str(password).decode_utf8_lossy().into_owned())
}

/// `command-service relay drop-slot`: drops the slot (ending a stream still reading it when `force`), and says
/// what the next `wal` relay will do.
pub async fn drop_slot(pool: &PgPool, slot: &str, force: bool) -> anyhow::Result<bool> {
    if let (Some(found), false) = (store::slots::find(pool, slot).await?, force) {
        if let Some(pid) = found.active_pid {
            anyhow::bail!("slot {slot} is being read by backend {pid}: stop the wal relays first, or pass --force");
        }
    }
    Ok(store::slots::remove(pool, slot, force).await?)
}

/// Publishes as the leader until shutdown or the first error.
pub(super) async fn publish(
    pool: &PgPool,
    lock: &mut PgConnection,
    publisher: &Publisher,
    settings: &RelaySettings,
    shutdown: &CancellationToken,
    backoff: &service_runtime::Backoff,
) -> anyhow::Result<Outcome> {
    let slot = settings.replication.slot.as_str();
    store::slots::ensure_publication(pool).await.context("creating the outbox publication")?;
    if !take_slot(pool, lock, publisher, settings, shutdown).await? {
        return Ok(Outcome::Stopped);
    }
    let started = async {
        let mut client = ReplicationClient::connect(settings.replication.config()).await?;
        match tokio::time::timeout(Duration::from_secs(10), client.wait_started()).await {
            Ok(started) => started.map(|()| client),
            Err(_) => Err(pgwire_replication::PgWireError::Protocol("the stream did not start within 10 s".into())),
        }
    };
    let mut client = match started.await {
        Ok(client) => client,
        Err(err) => {
            if unreadable(&err.to_string()) {
                // A slot the server cannot read from again (invalidated meanwhile): the next term creates it anew.
                tracing::warn!(slot, error = %err, "the slot cannot be read; the next term creates it again");
                store::progress::hand_to(pool, None).await?;
            }
            return Err(anyhow::Error::new(err).context(format!("streaming from slot {slot}")));
        }
    };
    tracing::info!(slot, "streaming the outbox from the replication slot");
    let mut stream = Stream::new(pool.clone(), settings, shutdown.clone());
    let result = stream.run(&mut client, lock, publisher, backoff).await;
    stream.stop_resolving();
    client.stop();
    if tokio::time::timeout(Duration::from_secs(5), client.shutdown()).await.is_err() {
        client.abort();
    }
    result
}

/// Whether a failure to start streaming says the slot can never be read again (SQLSTATE 55000 of an invalidated
/// slot: "cannot read from logical replication slot", "can no longer get changes from replication slot").
fn unreadable(error: &str) -> bool {
    error.contains("cannot read from logical replication slot") || error.contains("can no longer get changes")
}

/// Makes the slot continue the published log, creating it (and publishing what it will not stream) when it does
/// not. `false` on shutdown.
async fn take_slot(
    pool: &PgPool,
    lock: &mut PgConnection,
    publisher: &Publisher,
    settings: &RelaySettings,
    shutdown: &CancellationToken,
) -> anyhow::Result<bool> {
    let slot = settings.replication.slot.as_str();
    let progress = store::progress::read(pool).await?;
    let found = store::slots::find(pool, slot).await?;
    if let Some(found) = found.as_ref().filter(|found| found.is_lost()) {
        // `max_slot_wal_keep_size` made the server give the slot up: it can never be read again. What it held is in
        // the outbox, so it is handled as a dropped slot: created again, and the rows not known published go out.
        tracing::warn!(
            slot,
            pid = found.active_pid,
            "the server invalidated the slot (wal_status lost, through \
            max_slot_wal_keep_size); creating it again and publishing from the outbox"
        );
    } else if let (Some(found), true) = (&found, progress.slot.as_deref() == Some(slot)) {
        if let Some(pid) = found.active_pid {
            // This relay holds the leader lock: whoever streams is an earlier leader that lost it.
            tracing::warn!(slot, pid, "an earlier leader still streams from the slot; ending its stream");
            store::slots::end_stream(pool, pid).await?;
        }
        return Ok(true);
    }
    if found.as_ref().is_some_and(|found| !found.is_lost()) {
        tracing::warn!(
            slot,
            "the slot does not continue the published log (the notify relay published after it); \
            creating it again"
        );
        store::slots::remove(pool, slot, true).await?;
    }
    // Until the catch-up below has finished, no slot continues the log: a relay that dies meanwhile leaves the next
    // one to start over, not to stream from a slot that began after rows still unpublished.
    if progress.slot.is_some() {
        store::progress::hand_to(pool, None).await?;
    }
    if found.as_ref().is_some_and(store::slots::Slot::is_lost) {
        store::slots::remove(pool, slot, true).await?;
    }
    store::slots::create(pool, slot).await.with_context(|| format!("creating replication slot {slot}"))?;
    catch_up_and_hand_over(pool, lock, publisher, settings, shutdown).await
}

/// Publishes, the notify way (marking them), the rows committed before the new slot's start and not yet published —
/// the ones committed since come through the slot too (published twice, applied once) — then hands the log to the
/// slot. `false` on shutdown.
async fn catch_up_and_hand_over(
    pool: &PgPool,
    lock: &mut PgConnection,
    publisher: &Publisher,
    settings: &RelaySettings,
    shutdown: &CancellationToken,
) -> anyhow::Result<bool> {
    let slot = settings.replication.slot.as_str();
    let (mut checkpoint, published_before) = (0, settings.metrics.published.get());
    loop {
        if drain(pool, lock, publisher, settings, shutdown, &mut checkpoint).await? == Drained::Empty {
            break;
        }
        if service_runtime::sleep_or_shutdown(UNROUTABLE_RETRY, shutdown).await {
            return Ok(false);
        }
    }
    if shutdown.is_cancelled() {
        return Ok(false);
    }
    store::progress::hand_to(pool, Some(slot)).await?;
    let caught_up = settings.metrics.published.get() - published_before;
    tracing::info!(slot, caught_up, "created the replication slot and published the outbox rows not known published");
    Ok(true)
}

/// Events received and not yet published, and where the last transaction completed among them ends in the log.
/// The stream sends a transaction only once it committed (protocol version 1), so its events may go out before its
/// `Commit` message arrives; only the slot waits for that.
#[derive(Debug, Default)]
struct Batch {
    rows: Vec<OutboxRow>,
    /// Markers: every sequence up to each is settled (applied after the rows before them are published).
    settled: Vec<i64>,
    end: Option<Lsn>,
}

/// One leadership term's stream.
struct Stream<'a> {
    pool: PgPool,
    settings: &'a RelaySettings,
    shutdown: CancellationToken,
    relations: HashMap<u32, Relation>,
    /// Whether a transaction is being received (its `Commit` not yet).
    in_transaction: bool,
    ready: Batch,
    closure: Closure,
    /// Since when a gap has been open, while one is.
    gap_since: Option<Instant>,
    resolving: Option<JoinHandle<Result<Option<i64>, StoreError>>>,
    /// The marker written last for a gap, and when, until it comes through the stream.
    awaited: Option<(i64, Instant)>,
    /// The last checkpoint published, and when it may be tried again after no queue took it.
    checkpoint: i64,
    checkpoint_retry: Option<tokio::time::Instant>,
    /// The last position recorded in `relay_progress`, and when.
    recorded: (i64, Instant),
}

impl<'a> Stream<'a> {
    fn new(pool: PgPool, settings: &'a RelaySettings, shutdown: CancellationToken) -> Self {
        Self {
            pool,
            settings,
            shutdown,
            relations: HashMap::new(),
            in_transaction: false,
            ready: Batch::default(),
            closure: Closure::default(),
            gap_since: None,
            resolving: None,
            awaited: None,
            checkpoint: 0,
            checkpoint_retry: None,
            recorded: (0, Instant::now()),
        }
    }

    async fn run(
        &mut self,
        client: &mut ReplicationClient,
        lock: &mut PgConnection,
        publisher: &Publisher,
        backoff: &service_runtime::Backoff,
    ) -> anyhow::Result<Outcome> {
        let batch_size = usize::try_from(self.settings.batch_size).unwrap_or(1);
        let mut next_heartbeat = tokio::time::Instant::now();
        loop {
            if tokio::time::Instant::now() >= next_heartbeat {
                heartbeat(lock).await?;
                next_heartbeat = tokio::time::Instant::now() + HEARTBEAT_INTERVAL;
            }
            let wake = [Some(next_heartbeat), self.resolve_at(), self.checkpoint_retry, self.record_at()]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(next_heartbeat);
            tokio::select! {
                () = self.shutdown.cancelled() => {
                    self.stop().await?;
                    return Ok(Outcome::Stopped);
                }
                event = client.recv() => self.receive_batch(client, event, batch_size).await?,
                resolved = resolution(&mut self.resolving) => {
                    self.resolving = None;
                    match resolved {
                        Ok(marked) => self.awaited = marked.map(|through| (through, Instant::now())),
                        Err(err) => {
                            tracing::warn!(error = %err, "asking the append barrier about a gap failed; asking again");
                        }
                    }
                }
                () = tokio::time::sleep_until(wake) => {}
            }
            if !self.publish_ready(client, lock, publisher).await? {
                return Ok(Outcome::Stopped);
            }
            backoff.reset();
            self.settings.status.term_ok();
            self.checkpoint(publisher).await?;
            self.record().await?;
            if self.resolve_at().is_some_and(|at| at <= tokio::time::Instant::now()) {
                self.resolving = Some(tokio::spawn(settle_and_mark(self.pool.clone(), self.shutdown.clone())));
            }
        }
    }

    /// A clean stop records how far it got: a switch to `notify` then publishes nothing twice.
    async fn stop(&self) -> anyhow::Result<()> {
        if self.checkpoint > self.recorded.0 {
            let slot = &self.settings.replication.slot;
            store::progress::published_through(&self.pool, slot, self.checkpoint).await?;
        }
        Ok(())
    }

    /// Takes `event`, then whatever else has arrived, into the batch, up to `batch_size` events.
    async fn receive_batch(
        &mut self,
        client: &mut ReplicationClient,
        event: pgwire_replication::Result<Option<ReplicationEvent>>,
        batch_size: usize,
    ) -> anyhow::Result<()> {
        self.receive(client, event)?;
        while self.ready.rows.len() < batch_size {
            match tokio::time::timeout(Duration::ZERO, client.recv()).await {
                Ok(event) => self.receive(client, event)?,
                Err(_) => break,
            }
        }
        Ok(())
    }

    /// Takes one event of the stream into the batch.
    fn receive(
        &mut self,
        client: &ReplicationClient,
        event: pgwire_replication::Result<Option<ReplicationEvent>>,
    ) -> anyhow::Result<()> {
        let slot = &self.settings.replication.slot;
        let event = event
            .with_context(|| format!("streaming from slot {slot}"))?
            .with_context(|| format!("the stream from slot {slot} ended"))?;
        match event {
            ReplicationEvent::Begin { .. } => self.in_transaction = true,
            ReplicationEvent::XLogData { data, .. } => match pgoutput::decode(&data)? {
                Change::Relation(relation) => {
                    self.relations.insert(relation.id, relation);
                }
                Change::Insert { relation, values } => {
                    let relation =
                        self.relations.get(&relation).ok_or(pgoutput::DecodeError::UnknownRelation(relation))?;
                    if relation.is_outbox() {
                        self.ready.rows.push(relation.outbox_row(&values)?);
                    }
                }
                Change::Other => {}
            },
            ReplicationEvent::Message { prefix, content, .. } if prefix == MARKER_PREFIX => {
                if let Some(through) = std::str::from_utf8(&content).ok().and_then(|text| text.parse().ok()) {
                    self.ready.settled.push(through);
                }
            }
            ReplicationEvent::Commit { end_lsn, .. } => {
                self.in_transaction = false;
                self.ready.end = Some(end_lsn);
            }
            ReplicationEvent::KeepAlive { wal_end, .. } => {
                // Nothing received is unpublished: the slot may move to where the server is (commits of other
                // databases, or of nothing published, would otherwise keep it where it was).
                let idle = self.ready.rows.is_empty() && self.ready.end.is_none() && !self.in_transaction;
                if idle && wal_end > Lsn(0) {
                    client.update_applied_lsn(wal_end);
                }
            }
            ReplicationEvent::Message { .. } | ReplicationEvent::StoppedAt { .. } => {}
        }
        Ok(())
    }

    /// Publishes the events received, then lets the slot move past the last transaction completed among them. `false` on shutdown while
    /// no queue took an event.
    async fn publish_ready(
        &mut self,
        client: &ReplicationClient,
        lock: &mut PgConnection,
        publisher: &Publisher,
    ) -> anyhow::Result<bool> {
        let Batch { rows, settled, end } = std::mem::take(&mut self.ready);
        let metrics = &self.settings.metrics;
        let mut waiting: Vec<OutboxRow> = rows;
        while !waiting.is_empty() {
            let sent = Instant::now();
            let outcome = publisher.publish(&waiting).await?;
            metrics.confirm_duration.observe(sent.elapsed().as_secs_f64());
            metrics.batch_size.observe(waiting.len() as f64);
            metrics.published.inc_by(outcome.routed.len() as u64);
            self.closure.published(outcome.routed.iter().copied());
            if !outcome.nacked.is_empty() {
                anyhow::bail!("the broker refused {} of {} events", outcome.nacked.len(), waiting.len());
            }
            let Some(first) = outcome.unroutable.first() else {
                self.settings.status.set_unroutable(None);
                break;
            };
            metrics.unroutable.inc_by(outcome.unroutable.len() as u64);
            unroutable(self.settings, &format!("event {first}"), &outcome.missing);
            waiting.retain(|row| outcome.unroutable.contains(&row.sequence));
            // The slot stays before these events until a queue takes them.
            heartbeat(lock).await?;
            if service_runtime::sleep_or_shutdown(UNROUTABLE_RETRY, &self.shutdown).await {
                return Ok(false);
            }
        }
        let before = self.closure.through();
        for through in settled {
            self.closure.settled_through(through);
            if self.awaited.is_some_and(|(awaited, _)| through >= awaited) {
                self.awaited = None;
            }
        }
        // The grace runs from when the lowest open gap opened: one that closed and another that opened are two.
        self.gap_since = match (self.closure.has_gap(), self.gap_since) {
            (false, _) => None,
            (true, Some(since)) if self.closure.through() == before => Some(since),
            (true, _) => Some(Instant::now()),
        };
        if let Some(end) = end {
            client.update_applied_lsn(end);
        }
        Ok(true)
    }

    /// Publishes a checkpoint through the closed sequences when they moved on.
    async fn checkpoint(&mut self, publisher: &Publisher) -> anyhow::Result<()> {
        let through = self.closure.through();
        if through <= self.checkpoint || self.checkpoint_retry.is_some_and(|at| at > tokio::time::Instant::now()) {
            return Ok(());
        }
        if super::checkpoint(&self.pool, publisher, self.settings, through).await? {
            self.checkpoint = through;
            self.checkpoint_retry = None;
        } else {
            self.checkpoint_retry = Some(tokio::time::Instant::now() + UNROUTABLE_RETRY);
        }
        Ok(())
    }

    /// When the published position is next due in `relay_progress`, if it moved.
    fn record_at(&self) -> Option<tokio::time::Instant> {
        let (recorded, at) = self.recorded;
        (self.checkpoint > recorded).then(|| tokio::time::Instant::from_std(at + PROGRESS_EVERY))
    }

    async fn record(&mut self) -> anyhow::Result<()> {
        if self.record_at().is_some_and(|at| at <= tokio::time::Instant::now()) {
            store::progress::published_through(&self.pool, &self.settings.replication.slot, self.checkpoint).await?;
            self.recorded = (self.checkpoint, Instant::now());
        }
        Ok(())
    }

    /// When to ask the barrier about the open gap, unless it is being asked or its answer is on its way.
    fn resolve_at(&self) -> Option<tokio::time::Instant> {
        let since = self.gap_since.filter(|_| self.resolving.is_none())?;
        let at = match self.awaited {
            Some((_, marked)) => (since + GAP_GRACE).max(marked + MARKER_PATIENCE),
            None => since + GAP_GRACE,
        };
        Some(tokio::time::Instant::from_std(at))
    }

    fn stop_resolving(&mut self) {
        if let Some(task) = self.resolving.take() {
            task.abort();
        }
    }
}

/// The running barrier question's end (never, when none runs).
async fn resolution(task: &mut Option<JoinHandle<Result<Option<i64>, StoreError>>>) -> anyhow::Result<Option<i64>> {
    match task {
        Some(task) => Ok(task.await.context("the barrier task panicked")??),
        None => std::future::pending().await,
    }
}

/// Waits until every appender that may hold a sequence up to the newest one drawn has ended, then writes a marker
/// saying so: it commits after all of them, so the stream brings it after every event among them that committed.
/// Returns the marker's sequence, if it wrote one.
async fn settle_and_mark(pool: PgPool, shutdown: CancellationToken) -> Result<Option<i64>, StoreError> {
    let Some(watermark) = store::Watermark::read(&pool).await? else { return Ok(None) };
    if !settled(&pool, &watermark, None, &shutdown).await? {
        return Ok(None);
    }
    store::slots::emit_marker(&pool, MARKER_PREFIX, &watermark.through.to_string()).await?;
    Ok(Some(watermark.through))
}

#[cfg(test)]
mod tests {
    use super::{password_of, unreadable};

    #[test]
    fn an_invalidated_slot_is_told_from_other_failures_to_start_streaming() {
        assert!(unreadable(r#"ERROR: cannot read from logical replication slot "orders_relay_x" (55000)"#));
        assert!(unreadable("can no longer get changes from replication slot \"s\""));
        assert!(!unreadable("connection refused"));
        assert!(!unreadable(r#"replication slot "s" is active for PID 42"#));
    }

    #[test]
    fn the_password_is_read_from_the_url_and_percent_decoded() {
        assert_eq!(password_of("postgres://postgres:postgres@db:5432/orders").as_deref(), Some("postgres"));
        assert_eq!(password_of("postgres://u:p%40ss%3Aw@db/orders?sslmode=disable").as_deref(), Some("p@ss:w"));
        assert_eq!(password_of("postgres://u@db/orders"), None);
        assert_eq!(password_of("postgres://db/orders"), None);
        assert_eq!(password_of("postgres://u:x@y@db/orders").as_deref(), Some("x@y"));
    }
}
