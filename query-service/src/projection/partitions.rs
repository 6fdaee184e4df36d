//! Sharing the partitions of a split queue (`PROJECTOR_PARTITIONS` > 1) among the projecting replicas.
//!
//! Which replica consumes a partition is the broker's to enforce: every partition's queue has a *single active
//! consumer*, so two replicas never project one partition at once, whatever either of them believes (not an
//! exclusive consumer: a quorum queue ignores that flag, and a classic queue with a single active consumer refuses
//! it; decision 0021). Who *should* consume it is this module's, so that N partitions over M replicas are projected
//! in parallel: every projecting replica says it is alive on the notice exchange every second, with the projections
//! it runs and the partitions it consumes ([`Notice::Projector`]); of each projection, the replicas that run it
//! heard from within [`GONE_AFTER`](crate::read::projectors::GONE_AFTER), sorted by id, take the partitions in turn
//! ([`owned`]). A replica that joins or leaves changes every replica's share alike: the one that no longer owns a
//! partition settles what it wrote and lets it go (its unacked deliveries return to the queue, in order), and the
//! new owner, registered as the standby until then, becomes the active consumer. A replica killed outright loses its
//! connection and with it its consumers; the others stop counting it after
//! [`GONE_AFTER`](crate::read::projectors::GONE_AFTER) and share its partitions. A replica that hears nobody (its
//! notice listener down) takes itself for alone and registers on every partition: a standby where another is
//! active. A registered consumer that the broker keeps waiting while events wait is what the watchdog reports
//! ([`super::watch`]).
//!
//! Every projection's queue is split alike; a replica's projections share its one heartbeat ([`Replica`]). Replicas
//! may run different projections (`PROJECTIONS`): the partitions of each projection are shared among the replicas
//! that run it, so none is left to a replica that does not consume it.

use lapin::ConnectionProperties;
use service_runtime::{retry_until_shutdown, Backoff};
use shared_events::Partition;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::consumer;
use super::settings::ConsumerSettings;
use super::settings::Consuming;
use crate::read::notices::{self, Notice};
use crate::read::projectors::{Heartbeat, Projectors, HEARTBEAT_EVERY};
use crate::read::VersionWaiters;
use crate::store::ReadModelStore;

/// How often the share is worked out again (and replicas gone found out).
const REASSIGN_EVERY: Duration = Duration::from_millis(500);

/// The partitions (indexes of `count`) that `me` owns among the `alive` replicas (sorted, `me` among them): the
/// replicas take them in turn, so each owns `count / alive.len()` of them, give or take one.
pub fn owned(alive: &[Uuid], me: Uuid, count: u16) -> Vec<u16> {
    let Some(rank) = alive.iter().position(|replica| *replica == me) else { return Vec::new() };
    (0..count).filter(|index| usize::from(*index) % alive.len() == rank).collect()
}

/// This projecting replica, as the others hear of it.
#[derive(Debug, Clone)]
pub struct Replica {
    pub id: Uuid,
    /// True while its heartbeat is sent.
    alive: Arc<AtomicBool>,
}

impl Default for Replica {
    fn default() -> Self {
        Self { id: Uuid::new_v4(), alive: Arc::default() }
    }
}

/// Projects until `shutdown`: the whole queue as before when it is not split, else the partitions `replica` owns,
/// taken and let go as replicas come and go (heard through [`heartbeat`]).
pub async fn project(
    settings: ConsumerSettings,
    views: ReadModelStore,
    waiters: VersionWaiters,
    projectors: Projectors,
    replica: Replica,
    shutdown: CancellationToken,
) {
    if !settings.partition.is_split() {
        return consumer::run(settings, views, waiters, shutdown).await;
    }
    let (me, alive) = (replica.id, replica.alive);
    let count = settings.partition.count;
    tracing::info!(replica = %me, partitions = count, projection = settings.projection.name(),
        "projecting a split queue");
    let mut tasks = Vec::new();
    let mut shares = Vec::new();
    for partition in Partition::all(count) {
        let (share, owned) = watch::channel(false);
        let settings = settings.for_partition(partition);
        shares.push((share, settings.consuming.clone()));
        let task = consume_while_owned(settings, views.clone(), waiters.clone(), owned, shutdown.clone());
        tasks.push(tokio::spawn(task));
    }
    let mut changes = projectors.changes();
    loop {
        let sharing = projectors.alive(me, settings.projection.name(), count, Instant::now());
        let mine = owned(&sharing, me, count);
        let mut ready = alive.load(Ordering::Relaxed);
        for (index, (share, consuming)) in shares.iter().enumerate() {
            let owns = mine.iter().any(|owned| usize::from(*owned) == index);
            share.send_if_modified(|current| std::mem::replace(current, owns) != owns);
            ready &= !owns || consuming.is_ready();
        }
        // Ready once this replica is heard and consumes every partition it owns.
        settings.consuming.set_ready(ready);
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = changes.changed() => {}
            () = tokio::time::sleep(REASSIGN_EVERY) => {}
        }
    }
    settings.consuming.set_ready(false);
    drop(shares);
    for task in tasks {
        let _ = task.await;
    }
}

/// Consumes `settings.partition` whenever this replica owns it, letting it go (settled) when it no longer does.
async fn consume_while_owned(
    settings: ConsumerSettings,
    views: ReadModelStore,
    waiters: VersionWaiters,
    mut owned: watch::Receiver<bool>,
    shutdown: CancellationToken,
) {
    let backoff = Backoff::default();
    loop {
        // A partition owned elsewhere may stay so until shutdown: the wait for it must end there too.
        tokio::select! {
            () = shutdown.cancelled() => return,
            owns = owned.wait_for(|owns| *owns) => if owns.is_err() { return },
        }
        // Letting the partition go is a shutdown of its consumer alone: it settles what it wrote, then stops.
        let release = shutdown.child_token();
        let let_go = async {
            let _ = owned.wait_for(|owns| !*owns).await;
            release.cancel();
            std::future::pending::<std::convert::Infallible>().await
        };
        let result = tokio::select! {
            result = consumer::consume(&settings, &views, &waiters, &release, &backoff) => result,
            never = let_go => match never {},
        };
        let wait = match result {
            _ if shutdown.is_cancelled() => return,
            Ok(()) => {
                tracing::info!(partition = %settings.partition, "let a partition go to another replica");
                continue;
            }
            Err(err) => {
                let wait = backoff.failed();
                tracing::warn!(partition = %settings.partition, error = %err, retry_in_ms = wait.as_millis() as u64,
                    "projector consumer failed");
                wait
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Says on the notice exchange, every [`HEARTBEAT_EVERY`], that `replica` is alive, which projections it runs
/// (`consuming`, by name) and which of their partitions it consumes now; it counts as alive while it can.
pub async fn heartbeat(
    settings: ConsumerSettings,
    replica: Replica,
    consuming: Vec<(&'static str, Consuming)>,
    shutdown: CancellationToken,
) {
    let (me, alive) = (replica.id, replica.alive);
    let backoff = Backoff::default();
    let route = settings.notices();
    let count = settings.partition.count;
    let said = || Heartbeat {
        partitions: count,
        projections: Some(consuming.iter().map(|(name, _)| (*name).to_owned()).collect()),
        consuming: Some(
            consuming.iter().map(|(name, of)| ((*name).to_owned(), super::watch::consumed(of, count))).collect(),
        ),
    };
    retry_until_shutdown("projector heartbeat", &backoff, &shutdown, || async {
        let result = async {
            let connection = service_runtime::amqp::connect(
                &settings.amqp_url,
                ConnectionProperties::default().with_connection_name("projector-heartbeat".into()),
            )
            .await?;
            let channel = connection.create_channel().await?;
            notices::declare(&channel, &route.exchange).await?;
            backoff.reset();
            let mut every = tokio::time::interval(HEARTBEAT_EVERY);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = every.tick() => {}
                }
                notices::publish(&channel, &route, Notice::Projector { replica: me, heartbeat: said() }).await?;
                alive.store(true, Ordering::Relaxed);
            }
            service_runtime::amqp::close(&connection, "projector stopping").await;
            Ok::<(), lapin::Error>(())
        }
        .await;
        alive.store(false, Ordering::Relaxed);
        result
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_take_the_partitions_in_turn_and_share_them_again_when_one_goes() {
        let replicas: Vec<Uuid> = (1..=3).map(Uuid::from_u128).collect();
        let shares: Vec<Vec<u16>> = replicas.iter().map(|r| owned(&replicas, *r, 6)).collect();
        assert_eq!(shares, [vec![0, 3], vec![1, 4], vec![2, 5]]);
        let left = [replicas[0], replicas[2]];
        assert_eq!(owned(&left, replicas[0], 6), [0, 2, 4]);
        assert_eq!(owned(&left, replicas[2], 6), [1, 3, 5], "every partition has exactly one owner");
        assert_eq!(owned(&[replicas[1]], replicas[1], 6), [0, 1, 2, 3, 4, 5], "alone, all of them");
        assert!(owned(&left, replicas[1], 6).is_empty(), "one not counted owns nothing");
        assert_eq!(owned(&replicas, replicas[2], 2), Vec::<u16>::new(), "more replicas than partitions: standbys");
    }
}
