//! Which sequences the `wal` relay may checkpoint: every sequence up to a point published or never to be committed.
//!
//! The slot hands events over in commit order, but a command draws its sequence before it commits: an event with
//! sequence 6 may arrive while the one with 5 is still being committed, or 5 may never come (its statement failed
//! after drawing it). A checkpoint through 6 then would let a `minPosition=5` read pass before event 5 is applied.
//! So the relay checkpoints the longest run of published sequences ([`Closure::published`]), and when a gap stays
//! open it asks the append barrier which sequences are settled and closes them once every commit before that
//! answer has come through the stream ([`Closure::settled_through`]): what did not come is a hole.

use std::collections::BTreeSet;

/// The sequences known published (or holes), as a closed prefix and the published ones above it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Closure {
    /// Every sequence up to it is published or was never committed; unknown before the first settlement (0).
    through: i64,
    /// Published sequences above `through`.
    above: BTreeSet<i64>,
}

impl Closure {
    /// Every sequence up to this one is published or a hole.
    pub fn through(&self) -> i64 {
        self.through
    }

    /// Whether a published sequence waits above a gap (a commit in flight, or a hole).
    pub fn has_gap(&self) -> bool {
        !self.above.is_empty()
    }

    /// Records sequences the broker confirmed.
    pub fn published(&mut self, sequences: impl IntoIterator<Item = i64>) {
        self.above.extend(sequences.into_iter().filter(|&sequence| sequence > self.through));
        self.advance();
    }

    /// Records that every sequence up to `through` has been committed or rolled back, and that every commit among
    /// them has been published: the ones not seen are holes.
    pub fn settled_through(&mut self, through: i64) {
        if through > self.through {
            self.through = through;
            self.above = self.above.split_off(&(through + 1));
        }
        self.advance();
    }

    fn advance(&mut self) {
        while self.above.first() == Some(&(self.through + 1)) {
            self.above.pop_first();
            self.through += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Closure;

    fn settled(through: i64) -> Closure {
        let mut closure = Closure::default();
        closure.settled_through(through);
        closure
    }

    #[test]
    fn nothing_is_closed_before_the_first_settlement() {
        let mut closure = Closure::default();
        closure.published([7, 8, 9]);
        assert_eq!(closure.through(), 0, "sequences before 7 may still be unpublished");
        assert!(closure.has_gap());
        closure.settled_through(6);
        assert_eq!(closure.through(), 9, "once 1..=6 are settled, 7..=9 follow");
        assert!(!closure.has_gap());
    }

    #[test]
    fn sequences_committed_out_of_order_close_only_once_the_lower_one_arrives() {
        let mut closure = settled(4);
        closure.published([6]);
        assert_eq!(closure.through(), 4, "5 is still being committed");
        closure.published([7]);
        assert_eq!(closure.through(), 4);
        closure.published([5]);
        assert_eq!(closure.through(), 7);
        assert!(!closure.has_gap());
    }

    #[test]
    fn a_hole_closes_when_the_barrier_settles_past_it() {
        let mut closure = settled(4);
        closure.published([6, 8]);
        closure.settled_through(6);
        assert_eq!(closure.through(), 6, "5 was never committed");
        assert!(closure.has_gap(), "7 is still open");
        closure.settled_through(7);
        assert_eq!(closure.through(), 8);
    }

    #[test]
    fn duplicates_old_sequences_and_older_settlements_change_nothing() {
        let mut closure = settled(10);
        closure.published([3, 10, 10]);
        assert_eq!(closure, settled(10));
        closure.settled_through(8);
        assert_eq!(closure, settled(10));
        closure.published([11, 11]);
        assert_eq!(closure.through(), 11);
    }
}
