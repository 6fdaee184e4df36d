//! Acks held back until the read model's position they carry is stored: the position is written to MongoDB at most
//! every [`SETTLE_EVERY`] instead of once per batch, and a batch is acked only once the position it carried is
//! stored, so a crash in between gives the batch (and its checkpoint) back to the broker rather than leaving the
//! stored position behind. Waiting reads do not wait for this: the projector announces the views and the position
//! as soon as the views are written.

use lapin::options::BasicAckOptions;
use lapin::Acker;
use std::time::Duration;
use tokio::time::Instant;

/// Longest a written batch waits for its ack (and its position for MongoDB).
pub const SETTLE_EVERY: Duration = Duration::from_secs(1);

/// The written batches not acked yet: the last delivery of the newest (`A`, its acker: an ack of it acks them all)
/// and the newest position they carry.
#[derive(Debug)]
pub struct HeldAcks<A> {
    last: Option<A>,
    position: Option<i64>,
    deliveries: usize,
    since: Option<Instant>,
}

impl<A> Default for HeldAcks<A> {
    fn default() -> Self {
        Self { last: None, position: None, deliveries: 0, since: None }
    }
}

impl<A> HeldAcks<A> {
    /// Holds a written batch of `deliveries`, whose last delivery is `last`, carrying `position` (if a checkpoint).
    pub fn hold(&mut self, last: A, deliveries: usize, position: Option<i64>, now: Instant) {
        self.last = Some(last);
        self.position = self.position.max(position);
        self.deliveries += deliveries;
        self.since.get_or_insert(now);
    }

    /// When the held batches are due to be settled, if any are held.
    pub fn due_at(&self) -> Option<Instant> {
        self.since.map(|since| since + SETTLE_EVERY)
    }

    /// Whether they must be settled now: held for [`SETTLE_EVERY`], or holding `limit` deliveries (half the prefetch,
    /// so the broker never stops delivering for want of acks).
    pub fn due(&self, now: Instant, limit: usize) -> bool {
        self.deliveries >= limit.max(1) || self.due_at().is_some_and(|at| now >= at)
    }

    /// The position to store before acking, and the ack that then settles everything held; empties the hold.
    pub fn take(&mut self) -> (Option<i64>, Option<A>) {
        let taken = (self.position.take(), self.last.take());
        (self.deliveries, self.since) = (0, None);
        taken
    }
}

/// The ack of everything up to and including `last`.
pub async fn ack_through(last: &Acker) -> lapin::Result<()> {
    let multiple = BasicAckOptions { multiple: true };
    service_runtime::amqp::within(Duration::from_secs(5), "an ack", last.ack(multiple)).await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_batches_are_due_after_a_second_or_at_the_limit_and_carry_their_newest_position() {
        let start = Instant::now();
        let mut held = HeldAcks::<u32>::default();
        assert!(!held.due(start, 32) && held.due_at().is_none(), "nothing held, nothing due");
        held.hold(1, 1, Some(7), start);
        held.hold(2, 1, None, start + Duration::from_millis(300));
        assert!(!held.due(start + Duration::from_millis(999), 32));
        assert!(held.due(start + SETTLE_EVERY, 32), "a second after the first batch");
        held.hold(3, 30, Some(5), start + Duration::from_millis(400));
        assert!(held.due(start, 32), "32 deliveries held");
        let (position, ack) = held.take();
        assert_eq!(position, Some(7), "the newest position, never an older one");
        assert_eq!(ack, Some(3), "the newest batch's last delivery acks them all");
        assert!(held.due_at().is_none() && held.take().0.is_none(), "emptied");
    }
}
