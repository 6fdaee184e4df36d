//! The board on which waiting reads park until the projector announces a version of their order.
//!
//! A waiter subscribes *before* it reads the view, so an announcement between its read and its wait is not missed.
//! The board holds one `watch` channel per order that somebody is waiting for, created by the first waiter and
//! removed with the last one (a waiter that times out or whose client disconnects drops its subscription), so it
//! costs nothing for orders nobody waits on. Waiters are plain futures: no task, no timer loop, no polling.
//!
//! The projector announces the view it has just written with its version, so a waiter on the projecting replica
//! answers with it instead of reading MongoDB again; a notice from another replica carries only the version.
//!
//! Beside the orders, the board holds the read model's *position*: the checkpoint up to which every event has been
//! applied. List reads with `minPosition` wait on it the same way. When the projector's queue is split, each
//! partition reaches its own checkpoints; the read model's position is the lowest of them (every event up to it is
//! applied in every partition), so the board keeps the newest position announced for each partition.
//!
//! Each read model has its own board ([`Boards`]): its own position, reached by its own projection. Only the order
//! views' board has orders waiting on it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::watch;
use uuid::Uuid;

use crate::store::models::{self, ReadModel};
use crate::store::StoredView;
use shared_events::Partition;

/// The board of every read model, by name.
#[derive(Debug, Clone)]
pub struct Boards {
    boards: Arc<Vec<(&'static str, VersionWaiters)>>,
}

impl Default for Boards {
    /// A board for each of [`models::ALL`].
    fn default() -> Self {
        Self { boards: Arc::new(models::ALL.iter().map(|m| (m.name, VersionWaiters::default())).collect()) }
    }
}

impl Boards {
    /// The board of the read model called `name`.
    pub fn named(&self, name: &str) -> Option<&VersionWaiters> {
        self.boards.iter().find(|(board, _)| *board == name).map(|(_, waiters)| waiters)
    }

    /// The board of `model`; a new one, that nothing announces on, for a read model this service does not keep.
    pub fn of(&self, model: &ReadModel) -> VersionWaiters {
        self.named(model.name).cloned().unwrap_or_default()
    }

    /// The order views' board.
    pub fn orders(&self) -> VersionWaiters {
        self.of(&models::ORDER_VIEWS)
    }

    /// Every board, by name.
    pub fn all(&self) -> impl Iterator<Item = (&'static str, &VersionWaiters)> {
        self.boards.iter().map(|(name, waiters)| (*name, waiters))
    }
}

/// Shared by the projector (which announces) and the read handlers (which wait).
#[derive(Debug, Clone)]
pub struct VersionWaiters {
    orders: Arc<Mutex<HashMap<Uuid, watch::Sender<Announced>>>>,
    position: watch::Sender<i64>,
    /// The newest position announced for each partition of a split queue (empty until one is).
    partitions: Arc<Mutex<Vec<i64>>>,
}

impl Default for VersionWaiters {
    fn default() -> Self {
        Self { orders: Arc::default(), position: watch::channel(0).0, partitions: Arc::default() }
    }
}

/// The newest version announced for an order, and its view when the announcer had it.
#[derive(Debug, Clone, Default)]
pub struct Announced {
    pub version: i64,
    pub view: Option<Arc<StoredView>>,
}

/// Raises `current` to `value`; true when it moved.
fn raise(current: &mut i64, value: i64) -> bool {
    let higher = value > *current;
    if higher {
        *current = value;
    }
    higher
}

impl VersionWaiters {
    /// Starts listening for versions of `order_id`.
    pub fn subscribe(&self, order_id: Uuid) -> Subscription {
        let mut orders = self.orders.lock().unwrap_or_else(PoisonError::into_inner);
        let receiver = orders.entry(order_id).or_insert_with(|| watch::channel(Announced::default()).0).subscribe();
        Subscription { board: self.clone(), order_id, receiver: Some(receiver) }
    }

    /// Tells every waiter of `order_id` that its view is now at `version`.
    pub fn announce(&self, order_id: Uuid, version: i64) {
        self.publish(order_id, Announced { version, view: None });
    }

    /// Tells every waiter of the view's order that this view (just written) is its newest.
    pub fn announce_view(&self, order_id: Uuid, view: Arc<StoredView>) {
        self.publish(order_id, Announced { version: view.version, view: Some(view) });
    }

    fn publish(&self, order_id: Uuid, announced: Announced) {
        let orders = self.orders.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = orders.get(&order_id) {
            sender.send_if_modified(|current| {
                let newer = announced.version > current.version;
                if newer {
                    *current = announced;
                }
                newer
            });
        }
    }

    /// Tells list waiters that every event up to `position` has been applied.
    pub fn announce_position(&self, position: i64) {
        self.position.send_if_modified(|current| raise(current, position));
    }

    /// Tells list waiters that every event of `partition` up to `position` has been applied: the read model's
    /// position rises to the lowest of the partitions' once each has announced one. A partition of another split
    /// than the one announced before starts the count over (the split was changed).
    pub fn announce_partition_position(&self, partition: Partition, position: i64) {
        if !partition.is_split() {
            return self.announce_position(position);
        }
        let lowest = {
            let mut partitions = self.partitions.lock().unwrap_or_else(PoisonError::into_inner);
            if partitions.len() != usize::from(partition.count) {
                *partitions = vec![0; usize::from(partition.count)];
            }
            let slot = &mut partitions[usize::from(partition.index)];
            *slot = (*slot).max(position);
            partitions.iter().copied().min().unwrap_or(0)
        };
        self.announce_position(lowest);
    }

    /// What has been announced of `partition`: its own position when the queue is split (0 before any, or when
    /// the partitions announced are of another split), the read model's otherwise.
    pub fn partition_position(&self, partition: Partition) -> i64 {
        if !partition.is_split() {
            return self.position();
        }
        let partitions = self.partitions.lock().unwrap_or_else(PoisonError::into_inner);
        match partitions.get(usize::from(partition.index)) {
            Some(position) if partitions.len() == usize::from(partition.count) => *position,
            _ => 0,
        }
    }

    /// The newest position announced of any partition (or of the read model): how far the log has reached it.
    pub fn newest(&self) -> i64 {
        let partitions = self.partitions.lock().unwrap_or_else(PoisonError::into_inner);
        partitions.iter().copied().max().unwrap_or(0).max(self.position())
    }

    /// The highest position announced so far.
    pub fn position(&self) -> i64 {
        *self.position.borrow()
    }

    /// Resolves once a position ≥ `min_position` has been announced. Cancel-safe: wrap it in a timeout.
    pub async fn position_reached(&self, min_position: i64) {
        // Err means the sender is gone, which cannot happen while `self` holds it.
        let _ = self.position.subscribe().wait_for(|position| *position >= min_position).await;
    }

    /// Reads waiting right now, over all orders (for tests and metrics).
    pub fn waiting_reads(&self) -> usize {
        let orders = self.orders.lock().unwrap_or_else(PoisonError::into_inner);
        orders.values().map(watch::Sender::receiver_count).sum::<usize>() + self.position.receiver_count()
    }

    /// Orders with at least one waiter (for tests and metrics).
    pub fn watched_orders(&self) -> usize {
        self.orders.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// One waiter's interest in one order; dropping it cleans the board up.
#[derive(Debug)]
pub struct Subscription {
    board: VersionWaiters,
    order_id: Uuid,
    receiver: Option<watch::Receiver<Announced>>,
}

impl Subscription {
    /// Resolves once a version ≥ `min_version` has been announced, with its view when the announcer had it.
    /// Cancel-safe: wrap it in a timeout.
    pub async fn reached(&mut self, min_version: i64) -> Option<Arc<StoredView>> {
        let receiver = self.receiver.as_mut()?;
        // Err means the sender is gone, which cannot happen while this subscription is registered.
        let announced = receiver.wait_for(|announced| announced.version >= min_version).await.ok()?;
        announced.view.clone()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        drop(self.receiver.take());
        let mut orders = self.board.orders.lock().unwrap_or_else(PoisonError::into_inner);
        if orders.get(&self.order_id).is_some_and(|sender| sender.receiver_count() == 0) {
            orders.remove(&self.order_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_partition_and_the_newest_position_announced_are_known() {
        let board = VersionWaiters::default();
        let part = |index| Partition { index, count: 2 };
        board.announce_partition_position(part(0), 40);
        assert_eq!((board.partition_position(part(0)), board.partition_position(part(1))), (40, 0));
        assert_eq!(board.newest(), 40);
        assert_eq!(board.partition_position(Partition { index: 0, count: 3 }), 0, "another split");
    }

    #[test]
    fn the_position_of_a_split_queue_is_the_lowest_of_its_partitions() {
        let board = VersionWaiters::default();
        let part = |index| Partition { index, count: 3 };
        board.announce_partition_position(part(0), 40);
        board.announce_partition_position(part(2), 30);
        assert_eq!(board.position(), 0, "partition 1 has announced nothing yet");
        board.announce_partition_position(part(1), 35);
        assert_eq!(board.position(), 30);
        board.announce_partition_position(part(2), 50);
        assert_eq!(board.position(), 35);
        board.announce_partition_position(part(2), 10);
        assert_eq!(board.position(), 35, "a partition never moves back");
        // A stored position (the lowest of the stored ones) raises it too, and nothing lowers it.
        board.announce_position(45);
        board.announce_partition_position(Partition { index: 0, count: 2 }, 60);
        assert_eq!(board.position(), 45, "another split starts over without lowering what was reached");
    }
    use std::time::Duration;

    #[tokio::test]
    async fn a_waiter_wakes_on_the_version_it_needs_and_not_before() {
        let board = VersionWaiters::default();
        let order = Uuid::new_v4();
        let mut sub = board.subscribe(order);
        board.announce(order, 1);
        let early = tokio::time::timeout(Duration::from_millis(20), sub.reached(2)).await;
        assert!(early.is_err(), "version 1 must not release a waiter for version 2");
        board.announce(order, 2);
        tokio::time::timeout(Duration::from_secs(5), sub.reached(2)).await.expect("released by version 2");
    }

    #[tokio::test]
    async fn an_announcement_before_the_wait_is_not_missed() {
        let board = VersionWaiters::default();
        let order = Uuid::new_v4();
        let mut sub = board.subscribe(order);
        board.announce(order, 3);
        tokio::time::timeout(Duration::from_secs(5), sub.reached(3)).await.expect("already reached");
    }

    #[tokio::test]
    async fn a_position_waiter_wakes_once_the_position_is_reached() {
        let board = VersionWaiters::default();
        board.announce_position(5);
        board.announce_position(3);
        assert_eq!(board.position(), 5, "positions never go back");
        let waiting = board.clone();
        let waiter = tokio::spawn(async move { waiting.position_reached(7).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "position 5 must not release a waiter for 7");
        board.announce_position(7);
        tokio::time::timeout(Duration::from_secs(5), waiter).await.expect("released by 7").expect("no panic");
        assert_eq!(board.waiting_reads(), 0);
    }

    #[tokio::test]
    async fn the_board_forgets_orders_nobody_waits_for() {
        let board = VersionWaiters::default();
        let order = Uuid::new_v4();
        board.announce(order, 1);
        assert_eq!(board.watched_orders(), 0);
        let first = board.subscribe(order);
        let second = board.subscribe(order);
        assert_eq!(board.watched_orders(), 1);
        assert_eq!(board.waiting_reads(), 2);
        drop(first);
        assert_eq!(board.watched_orders(), 1);
        drop(second);
        assert_eq!(board.watched_orders(), 0);
    }
}
