//! Partitions of the event stream: which projector queue an order's events travel in.
//!
//! With `PROJECTOR_PARTITIONS=N` the relay routes every event of an order to partition
//! `u128::from_be_bytes(order id) mod N` — the order id's 16 bytes read as one big-endian unsigned integer — so an
//! order's events stay in order in one queue, and N queues are projected in parallel. The rule is part of the wire
//! contract (decision 0015): any tool may compute it. Checkpoint markers go to every partition.
//!
//! An event's routing key is its type, followed by `.<partition>` when N > 1 (`OrderPlaced.3`); a consumer that
//! wants one type whatever N is binds `OrderPlaced.#`.

use uuid::Uuid;

/// Most partitions a deployment may have.
pub const MAX_PARTITIONS: u16 = 256;

/// One partition of a stream split into `count`: `index` is in `0..count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Partition {
    pub index: u16,
    pub count: u16,
}

impl Partition {
    /// The only partition of an unsplit stream.
    pub const WHOLE: Self = Self { index: 0, count: 1 };

    /// The partition `order_id`'s events travel in, of `count` (at least 1).
    pub fn of(order_id: Uuid, count: u16) -> Self {
        let count = count.max(1);
        let index = u128::from_be_bytes(*order_id.as_bytes()) % u128::from(count);
        Self { index: index as u16, count }
    }

    /// Every partition of a stream split into `count`.
    pub fn all(count: u16) -> impl Iterator<Item = Self> {
        let count = count.max(1);
        (0..count).map(move |index| Self { index, count })
    }

    /// Whether the stream is split at all.
    pub fn is_split(self) -> bool {
        self.count > 1
    }

    /// The routing key of an event of `event_type` in this partition.
    pub fn routing_key(self, event_type: &str) -> String {
        if self.is_split() {
            format!("{event_type}.{}", self.index)
        } else {
            event_type.to_owned()
        }
    }

    /// The binding that takes this partition's events off the exchange (checkpoints are bound apart).
    pub fn binding(self) -> String {
        if self.is_split() {
            format!("*.{}", self.index)
        } else {
            "#".to_owned()
        }
    }

    /// The partition as a stored key names it, `<index>of<count>` (the count in the key, so that a changed split
    /// starts afresh).
    pub fn key(self) -> String {
        format!("{}of{}", self.index, self.count)
    }

    /// The partition a routing key names, when it ends in `.<index>` with an index below `count`.
    pub fn from_routing_key(key: &str, count: u16) -> Option<Self> {
        let (_, index) = key.rsplit_once('.')?;
        let index: u16 = index.parse().ok()?;
        (index < count).then_some(Self { index, count })
    }
}

impl std::fmt::Display for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} of {}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_orders_partition_is_its_id_read_as_a_big_endian_integer_modulo_the_count() {
        let id = Uuid::parse_str("00000000-0000-0000-0000-00000000000b").expect("uuid");
        assert_eq!(Partition::of(id, 4), Partition { index: 3, count: 4 });
        assert_eq!(Partition::of(id, 1), Partition::WHOLE);
        assert_eq!(Partition::of(id, 0), Partition::WHOLE, "no partitions is one");
        // The high bytes count too: 2^120 mod 3 = 1.
        let high = Uuid::parse_str("01000000-0000-0000-0000-000000000000").expect("uuid");
        assert_eq!(Partition::of(high, 3).index, 1);
        // Stable: the same id, the same partition, every time.
        let random = Uuid::new_v4();
        assert_eq!(Partition::of(random, 6), Partition::of(random, 6));
    }

    #[test]
    fn the_orders_of_a_run_spread_over_every_partition() {
        let mut counts = [0u32; 6];
        for _ in 0..6_000 {
            counts[usize::from(Partition::of(Uuid::now_v7(), 6).index)] += 1;
        }
        assert!(counts.iter().all(|&n| (800..1_200).contains(&n)), "{counts:?}");
    }

    #[test]
    fn routing_keys_carry_the_partition_only_when_the_stream_is_split() {
        assert_eq!(Partition::WHOLE.routing_key("OrderPlaced"), "OrderPlaced");
        assert_eq!(Partition::WHOLE.binding(), "#");
        let third = Partition { index: 2, count: 6 };
        assert_eq!(third.routing_key("OrderPlaced"), "OrderPlaced.2");
        assert_eq!(third.binding(), "*.2");
        assert_eq!(Partition::from_routing_key("OrderPlaced.2", 6), Some(third));
        assert_eq!(Partition::from_routing_key("OrderPlaced.6", 6), None, "beyond the count");
        assert_eq!(Partition::from_routing_key("OrderPlaced", 6), None);
        assert_eq!(Partition::all(3).map(|p| p.index).collect::<Vec<_>>(), [0, 1, 2]);
    }
}
