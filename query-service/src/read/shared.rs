//! Shared reads: readers of the same order that arrive together share one MongoDB read.
//!
//! A thousand clients waiting on one popular order wake together, and a thousand clients asking for it at once
//! would otherwise queue a thousand identical `find`s behind the driver's pool. Here the reads of one order run one
//! at a time, and a reader that finds a read already done *which started after it arrived* takes that result
//! instead of reading again. So a burst costs about two reads, not one per client.
//!
//! "Started after it arrived" is what keeps read-your-writes: a reader arrives after subscribing to the waiters
//! board, so any version that was announced before it could subscribe was written before that read started.
//! A read that started earlier may predate such a version, and is never shared with a later arrival. Arrival and
//! start are ordered by one counter.
//!
//! Cancel-safe: a reader dropped mid-read (its client went away) releases the order's turn, and the next reader
//! in line reads for itself. Orders nobody is reading take no memory.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use uuid::Uuid;

use crate::store::{ReadModelStore, StoreError, StoredView};

/// One order's view as read from the active generation.
pub type ViewLookup = Result<Option<Arc<StoredView>>, StoreError>;

/// Reads order views from MongoDB, sharing reads between readers of the same order.
#[derive(Debug, Clone)]
pub struct ViewReader {
    views: ReadModelStore,
    shared: SharedReads<ViewLookup>,
}

impl ViewReader {
    pub fn new(views: ReadModelStore) -> Self {
        Self { views, shared: SharedReads::default() }
    }

    /// The order's view, from a read that started after this call.
    pub async fn get(&self, id: Uuid) -> ViewLookup {
        self.shared.read(id, || async { Ok(self.views.get(id).await?.map(Arc::new)) }).await
    }
}

/// Per-order turns and the newest result, shared by every reader of a replica.
#[derive(Debug)]
pub struct SharedReads<T> {
    orders: Arc<Mutex<HashMap<Uuid, Arc<Turn<T>>>>>,
    clock: Arc<AtomicU64>,
}

impl<T> Clone for SharedReads<T> {
    fn clone(&self) -> Self {
        Self { orders: Arc::clone(&self.orders), clock: Arc::clone(&self.clock) }
    }
}

impl<T> Default for SharedReads<T> {
    fn default() -> Self {
        Self { orders: Arc::default(), clock: Arc::default() }
    }
}

/// One order's turn to read, holding the newest read's start tick and what it returned.
#[derive(Debug)]
struct Turn<T> {
    newest: tokio::sync::Mutex<Option<(u64, T)>>,
}

impl<T: Clone> SharedReads<T> {
    /// The result of `read` for `id`, or of a read of `id` that started after this call did.
    pub async fn read<F>(&self, id: Uuid, read: impl FnOnce() -> F) -> T
    where
        F: Future<Output = T>,
    {
        let arrived = self.tick();
        let entry = self.enter(id);
        let Some(turn) = entry.turn.as_deref() else { return read().await };
        let mut newest = turn.newest.lock().await;
        if let Some((started, result)) = newest.as_ref() {
            if *started > arrived {
                return result.clone();
            }
        }
        let started = self.tick();
        let result = read().await;
        *newest = Some((started, result.clone()));
        result
    }

    /// Orders being read right now (for tests).
    pub fn orders_in_flight(&self) -> usize {
        self.orders.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::SeqCst)
    }

    fn enter(&self, id: Uuid) -> Entry<T> {
        let mut orders = self.orders.lock().unwrap_or_else(PoisonError::into_inner);
        let turn = Arc::clone(orders.entry(id).or_insert_with(|| Arc::new(Turn { newest: Default::default() })));
        Entry { reads: self.clone(), id, turn: Some(turn) }
    }
}

/// A reader's hold on an order's turn; the last one out removes it.
struct Entry<T> {
    reads: SharedReads<T>,
    id: Uuid,
    /// Always present until dropped (taken in `drop`, so that it goes under the lock).
    turn: Option<Arc<Turn<T>>>,
}

impl<T> Drop for Entry<T> {
    fn drop(&mut self) {
        // Every clone and drop of a turn happens under the lock, so the count seen here is exact.
        let mut orders = self.reads.orders.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(turn) = self.turn.take() {
            if Arc::strong_count(&turn) == 2 {
                orders.remove(&self.id);
            }
            drop(turn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;
    use tokio::sync::Notify;

    /// Returns once a read is in flight (the tests' runtime is single-threaded: a spawned reader runs while this
    /// yields).
    async fn under_way<T: Clone>(reads: &SharedReads<T>) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while reads.orders_in_flight() == 0 {
            assert!(tokio::time::Instant::now() < deadline, "the first read never started");
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_burst_of_readers_shares_a_couple_of_reads() {
        let reads = SharedReads::default();
        let performed = Arc::new(AtomicUsize::new(0));
        let order = Uuid::new_v4();
        let readers: Vec<_> = (0..100)
            .map(|_| {
                let (reads, performed) = (reads.clone(), Arc::clone(&performed));
                tokio::spawn(async move {
                    reads
                        .read(order, || async {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            performed.fetch_add(1, Ordering::SeqCst) + 1
                        })
                        .await
                })
            })
            .collect();
        for reader in readers {
            reader.await.expect("no panic");
        }
        let performed = performed.load(Ordering::SeqCst);
        assert!(performed <= 2, "100 readers arriving together performed {performed} reads");
        assert_eq!(reads.orders_in_flight(), 0, "nothing is left behind");
    }

    #[tokio::test]
    async fn a_reader_never_takes_a_read_that_started_before_it_arrived() {
        let reads = SharedReads::default();
        let order = Uuid::new_v4();
        let release = Arc::new(Notify::new());
        let early = {
            let (reads, release) = (reads.clone(), Arc::clone(&release));
            tokio::spawn(async move {
                reads
                    .read(order, || async move {
                        release.notified().await;
                        "before"
                    })
                    .await
            })
        };
        // Arrive once the early read is under way.
        under_way(&reads).await;
        let late = {
            let reads = reads.clone();
            tokio::spawn(async move { reads.read(order, || async { "after" }).await })
        };
        release.notify_one();
        assert_eq!(early.await.expect("no panic"), "before");
        assert_eq!(late.await.expect("no panic"), "after", "the late reader read for itself");
    }

    #[tokio::test]
    async fn a_reader_that_goes_away_mid_read_hands_the_turn_on() {
        let reads = SharedReads::default();
        let order = Uuid::new_v4();
        let abandoned = {
            let reads = reads.clone();
            tokio::spawn(async move { reads.read(order, std::future::pending::<&str>).await })
        };
        under_way(&reads).await;
        let next = {
            let reads = reads.clone();
            tokio::spawn(async move { reads.read(order, || async { "mine" }).await })
        };
        abandoned.abort();
        let answered = tokio::time::timeout(Duration::from_secs(5), next).await.expect("not stuck behind it");
        assert_eq!(answered.expect("no panic"), "mine");
        assert_eq!(reads.orders_in_flight(), 0);
    }
}
