//! What a seed draws, before anything runs: the topology of the deployment and the list of steps (operator actions
//! and faults), so that `--explore SEED` runs the same deployment through the same steps again.

use std::fmt;

use crate::clients::Dice;

/// The read models' projections, as `PROJECTIONS` names them.
pub const PROJECTIONS: [&str; 3] = ["orders", "customer-summary", "daily-sales"];

/// The deployment a seed runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// `RELAY_MODE`: `notify` or `wal`.
    pub relay_mode: &'static str,
    /// Command-service processes, each with its relay (one publishes, the others stand by).
    pub commands: usize,
    /// `PROJECTOR_PARTITIONS` of every process.
    pub partitions: u16,
    /// Each query-service replica's `PROJECTIONS`; together they run every projection.
    pub replicas: Vec<Vec<&'static str>>,
    /// `AUTH_MODE=jwt` (else `none`).
    pub jwt: bool,
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let replicas: Vec<String> = self.replicas.iter().map(|r| r.join("+")).collect();
        write!(
            f,
            "relay={} commands={} partitions={} replicas=[{}] auth={}",
            self.relay_mode,
            self.commands,
            self.partitions,
            replicas.join(" | "),
            if self.jwt { "jwt" } else { "none" }
        )
    }
}

/// A process of the deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    /// The command-service of that index (from 0).
    Command(usize),
    /// The query-service replica of that index (from 0).
    Query(usize),
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Command(i) => write!(f, "command-{}", i + 1),
            Self::Query(i) => write!(f, "query-{}", i + 1),
        }
    }
}

/// A connection of a process to a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Link {
    Broker,
    Mongo,
}

/// An exchange an operator may delete (the services declare theirs again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exchange {
    /// `AMQP_EXCHANGE` itself.
    Events,
    /// The exchange of one read model's copies.
    ReadModel(&'static str),
    /// `<AMQP_EXCHANGE>.projections`, where a release has one.
    Projections,
    /// `<AMQP_EXCHANGE>.view-changed`: the notices waiting reads wake on.
    ViewChanged,
}

/// One operator action or fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// SIGKILL (`kill`) or SIGTERM, then started again after `down_ms`.
    Stop {
        process: Process,
        kill: bool,
        down_ms: u64,
    },
    /// A replica stopped and started again with other `PROJECTIONS` (possibly leaving a projection run nowhere
    /// for a while, or adding one to the deployment).
    Reconfigure {
        replica: usize,
        projections: Vec<&'static str>,
    },
    /// A read model's queue of one partition deleted by hand, with what it held (`partition` modulo the split of
    /// the moment).
    DeleteQueue {
        projection: &'static str,
        partition: u16,
    },
    DeleteExchange(Exchange),
    /// A rebuild asked of a replica.
    Rebuild {
        projection: &'static str,
        replica: usize,
    },
    /// A rollback asked of a replica.
    Rollback {
        projection: &'static str,
        replica: usize,
    },
    /// `query-service dlq redrive`.
    Redrive,
    /// Messages no projector can read, published to every exchange.
    Poison,
    /// `PROJECTOR_PARTITIONS` changed to `partitions` by the documented procedure (relays stopped, queues drained,
    /// query side restarted on the new split, the queues it does not use deleted, relays started).
    Repartition {
        partitions: u16,
    },
    /// Every connection of `process` to the server of `link` stops moving bytes (a network partition) for
    /// `silent_ms`; connections it opens afterwards work.
    Silence {
        process: Process,
        link: Link,
        silent_ms: u64,
    },
    /// RabbitMQ `stop_app`, `start_app` after `down_ms`.
    BrokerDown {
        down_ms: u64,
    },
    /// PostgreSQL restarted (fast shutdown).
    PostgresRestart,
    /// The MongoDB-wire server SIGKILLed and started again on its data.
    MongoKill,
    /// The `wal` relay's slot invalidated by `max_slot_wal_keep_size`.
    InvalidateSlot,
    /// The `wal` relay's slot dropped by hand (its walsender terminated first).
    DropSlot,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stop { process, kill, down_ms } => {
                write!(f, "{} {process}, {down_ms} ms down", if *kill { "SIGKILL" } else { "SIGTERM" })
            }
            Self::Reconfigure { replica, projections } => {
                write!(f, "restart query-{} with PROJECTIONS={}", replica + 1, projections.join(","))
            }
            Self::DeleteQueue { projection, partition } => write!(f, "delete the queue of {projection}.{partition}"),
            Self::DeleteExchange(exchange) => write!(f, "delete the exchange {exchange:?}"),
            Self::Rebuild { projection, replica } => write!(f, "rebuild {projection} on query-{}", replica + 1),
            Self::Rollback { projection, replica } => write!(f, "roll back {projection} on query-{}", replica + 1),
            Self::Redrive => write!(f, "redrive the dead letters"),
            Self::Poison => write!(f, "publish poison"),
            Self::Repartition { partitions } => write!(f, "change PROJECTOR_PARTITIONS to {partitions}"),
            Self::Silence { process, link, silent_ms } => {
                write!(f, "the {link:?} connections of {process} go silent for {silent_ms} ms")
            }
            Self::BrokerDown { down_ms } => write!(f, "RabbitMQ stop_app for {down_ms} ms"),
            Self::PostgresRestart => write!(f, "restart PostgreSQL"),
            Self::MongoKill => write!(f, "SIGKILL the MongoDB server"),
            Self::InvalidateSlot => write!(f, "invalidate the replication slot"),
            Self::DropSlot => write!(f, "drop the replication slot"),
        }
    }
}

/// One step: an action, then a pause while the clients go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub action: Action,
    pub pause_ms: u64,
}

/// A seed's dice: the same seed, the same draws.
pub fn dice(seed: u64) -> Dice {
    // SplitMix64 of the seed: neighbouring seeds start far apart, and never at the generator's fixed point 0.
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    Dice((z ^ (z >> 31)) | 1)
}

/// A non-empty subset of the projections.
fn subset(dice: &mut Dice) -> Vec<&'static str> {
    let mask = 1 + dice.roll(7);
    PROJECTIONS.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, p)| *p).collect()
}

/// The topology of `seed`: every projection runs on some replica.
pub fn topology(seed: u64) -> Topology {
    let mut dice = dice(seed);
    let relay_mode = if dice.roll(2) == 0 { "notify" } else { "wal" };
    let commands = 1 + dice.roll(2) as usize;
    let partitions = 1 + dice.roll(4) as u16;
    let mut replicas: Vec<Vec<&'static str>> = (0..1 + dice.roll(3)).map(|_| subset(&mut dice)).collect();
    for projection in PROJECTIONS {
        if !replicas.iter().any(|r| r.contains(&projection)) {
            let replica = dice.roll(replicas.len() as u64) as usize;
            replicas[replica].push(projection);
            replicas[replica].sort_by_key(|p| PROJECTIONS.iter().position(|q| q == p));
        }
    }
    let jwt = dice.roll(2) == 0;
    Topology { relay_mode, commands, partitions, replicas, jwt }
}

/// The `steps` steps of `seed` on `topology`.
pub fn steps(seed: u64, topology: &Topology, steps: usize) -> Vec<Step> {
    // Drawn apart from the topology, so that more steps do not change the deployment.
    let mut dice = dice(seed ^ 0x5EED_5EED);
    (0..steps).map(|_| Step { action: action(&mut dice, topology), pause_ms: 500 + dice.roll(1500) }).collect()
}

fn action(dice: &mut Dice, topology: &Topology) -> Action {
    let projection = |dice: &mut Dice| PROJECTIONS[dice.roll(3) as usize];
    let replica = |dice: &mut Dice| dice.roll(topology.replicas.len() as u64) as usize;
    let process = |dice: &mut Dice| {
        let n = (topology.commands + topology.replicas.len()) as u64;
        let pick = dice.roll(n) as usize;
        if pick < topology.commands {
            Process::Command(pick)
        } else {
            Process::Query(pick - topology.commands)
        }
    };
    loop {
        let action = match dice.roll(19) {
            0..=2 => Action::Stop { process: process(dice), kill: dice.roll(2) == 0, down_ms: dice.roll(3000) },
            3 => Action::Reconfigure { replica: replica(dice), projections: subset(dice) },
            4 | 5 => Action::DeleteQueue { projection: projection(dice), partition: dice.roll(4) as u16 },
            6 => Action::DeleteExchange(match dice.roll(4) {
                0 => Exchange::Events,
                1 => Exchange::ReadModel(projection(dice)),
                2 => Exchange::Projections,
                _ => Exchange::ViewChanged,
            }),
            7 => Action::Rebuild { projection: projection(dice), replica: replica(dice) },
            8 => Action::Rollback { projection: projection(dice), replica: replica(dice) },
            9 => Action::Redrive,
            10 => Action::Poison,
            11 => Action::BrokerDown { down_ms: 500 + dice.roll(3000) },
            12 => Action::PostgresRestart,
            13 => Action::MongoKill,
            14 => Action::InvalidateSlot,
            15 => Action::DropSlot,
            16 => Action::Repartition { partitions: 1 + dice.roll(4) as u16 },
            _ => {
                let process = process(dice);
                let link = match process {
                    Process::Query(_) if dice.roll(2) == 0 => Link::Mongo,
                    _ => Link::Broker,
                };
                Action::Silence { process, link, silent_ms: 2000 + dice.roll(8000) }
            }
        };
        let needs_wal = matches!(action, Action::InvalidateSlot | Action::DropSlot);
        if !needs_wal || topology.relay_mode == "wal" {
            return action;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_topology_runs_every_projection_within_the_bounds() {
        for seed in 0..500 {
            let t = topology(seed);
            assert!((1..=2).contains(&t.commands), "{seed}: {t}");
            assert!((1..=4).contains(&t.partitions), "{seed}: {t}");
            assert!((1..=3).contains(&t.replicas.len()), "{seed}: {t}");
            assert!(t.replicas.iter().all(|r| !r.is_empty()), "{seed}: {t}");
            for projection in PROJECTIONS {
                assert!(t.replicas.iter().any(|r| r.contains(&projection)), "{seed}: {t} lacks {projection}");
            }
        }
    }

    #[test]
    fn seeds_cover_every_kind_of_topology_and_repeat_themselves() {
        let all: Vec<Topology> = (0..200).map(topology).collect();
        assert!(all.iter().any(|t| t.relay_mode == "wal") && all.iter().any(|t| t.relay_mode == "notify"));
        assert!(all.iter().any(|t| t.jwt) && all.iter().any(|t| !t.jwt));
        assert!((1..=4).all(|n| all.iter().any(|t| t.partitions == n)));
        assert!(all.iter().any(|t| t.replicas.iter().any(|r| r.len() < PROJECTIONS.len())));
        assert_eq!(topology(7), topology(7));
        assert_eq!(steps(7, &topology(7), 30), steps(7, &topology(7), 30));
        assert_ne!(steps(7, &topology(7), 30), steps(8, &topology(7), 30));
    }

    #[test]
    fn slot_actions_are_drawn_only_for_a_wal_relay() {
        for seed in 0..100 {
            let t = topology(seed);
            let slots =
                steps(seed, &t, 50).iter().any(|s| matches!(s.action, Action::InvalidateSlot | Action::DropSlot));
            assert!(!slots || t.relay_mode == "wal", "{seed}: {t}");
        }
    }
}
