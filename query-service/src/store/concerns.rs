//! How durable a write must be before it counts, and how settled a read must be: `MONGODB_WRITE_CONCERN` and
//! `MONGODB_READ_CONCERN`, applied to the database every store of this service uses.
//!
//! View writes, pointer switches and gaps are acknowledged at the write concern *and* journaled: the projector acks
//! an event only after its view write, so a write a primary could still lose in a crash or a failover would lose the
//! event for the read model. The default, `majority`, survives a failover; `1` is for a single server. Bulk loads of
//! a rebuild and the position (which only ever trails the views it stands for) need no journal of their own.

use mongodb::options::{
    Acknowledgment, CollectionOptions, DatabaseOptions, ReadConcern, ReadConcernLevel, ReadPreference,
    SelectionCriteria, WriteConcern,
};
use mongodb::Database;

/// Most members a numeric write concern may name.
const MAX_MEMBERS: u32 = 50;

/// The write and read concerns of the read store.
#[derive(Debug, Clone, PartialEq)]
pub struct Concerns {
    pub write: Acknowledgment,
    pub read: ReadConcernLevel,
}

impl Default for Concerns {
    fn default() -> Self {
        Self { write: Acknowledgment::Majority, read: ReadConcernLevel::Local }
    }
}

impl Concerns {
    /// The concern of writes that must outlive a crash: acknowledged as set, and journaled.
    pub fn durable(&self) -> WriteConcern {
        durable(Some(self.write.clone()))
    }

    /// The concern of writes that may be redone: acknowledged as set, journaled as the server does anyway.
    pub fn redoable(&self) -> WriteConcern {
        redoable(Some(self.write.clone()))
    }

    /// The database options: durable writes, the read concern, and reads from the primary, for every collection
    /// unless it says otherwise. A read that may go where `MONGODB_URI`'s read preference says asks for it
    /// ([`super::ReadFrom::Preferred`]): positions, pointers, gaps and catch-up marks read from a lagging secondary
    /// could hide a loss just recorded or name a generation that no longer takes writes.
    pub fn database_options(&self) -> DatabaseOptions {
        DatabaseOptions::builder()
            .write_concern(self.durable())
            .read_concern(ReadConcern::from(self.read.clone()))
            .selection_criteria(SelectionCriteria::ReadPreference(ReadPreference::Primary))
            .build()
    }
}

fn durable(acknowledged: Option<Acknowledgment>) -> WriteConcern {
    WriteConcern::builder().w(acknowledged).journal(true).build()
}

fn redoable(acknowledged: Option<Acknowledgment>) -> WriteConcern {
    WriteConcern::builder().w(acknowledged).build()
}

/// The options of a collection of `database` whose writes must outlive a crash: acknowledged as the database asks
/// (`MONGODB_WRITE_CONCERN`, or the server's default for a database opened without it), and journaled.
pub(super) fn durable_in(database: &Database) -> CollectionOptions {
    CollectionOptions::builder().write_concern(durable_of(database)).build()
}

/// The options of a collection of `database` whose writes may be redone: acknowledged as the database asks, no
/// journal asked.
pub(super) fn redoable_in(database: &Database) -> CollectionOptions {
    CollectionOptions::builder().write_concern(redoable(acknowledgment(database))).build()
}

/// The concern of writes to `database` that must outlive a crash, for a command sent whole (`run_command` applies no
/// concern of the database's own): acknowledged as the database asks, and journaled.
pub(super) fn durable_of(database: &Database) -> WriteConcern {
    durable(acknowledgment(database))
}

fn acknowledgment(database: &Database) -> Option<Acknowledgment> {
    database.write_concern().and_then(|concern| concern.w.clone())
}

/// `MONGODB_WRITE_CONCERN`: `majority`, or how many members (1 to 50) must acknowledge.
pub fn parse_write(value: &str) -> Result<Acknowledgment, String> {
    match value.trim() {
        "majority" => Ok(Acknowledgment::Majority),
        number => match number.parse::<u32>() {
            Ok(n) if (1..=MAX_MEMBERS).contains(&n) => Ok(Acknowledgment::Nodes(n)),
            _ => Err(format!("`majority` or a number of members from 1 to {MAX_MEMBERS}, not {value:?}")),
        },
    }
}

/// `MONGODB_READ_CONCERN`: `local`, `available`, `majority` or `linearizable`.
pub fn parse_read(value: &str) -> Result<ReadConcernLevel, String> {
    match value.trim() {
        "local" => Ok(ReadConcernLevel::Local),
        "available" => Ok(ReadConcernLevel::Available),
        "majority" => Ok(ReadConcernLevel::Majority),
        "linearizable" => Ok(ReadConcernLevel::Linearizable),
        _ => Err(format!("one of local, available, majority, linearizable, not {value:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_concerns_are_majority_or_a_number_of_members_and_durable_ones_are_journaled() {
        assert_eq!(parse_write("majority"), Ok(Acknowledgment::Majority));
        assert_eq!(parse_write("2"), Ok(Acknowledgment::Nodes(2)));
        for bad in ["0", "51", "-1", "all", ""] {
            assert!(parse_write(bad).is_err(), "{bad:?}");
        }
        let concerns = Concerns::default();
        assert_eq!(concerns.durable().w, Some(Acknowledgment::Majority));
        assert_eq!(concerns.durable().journal, Some(true));
        assert_eq!(concerns.redoable().journal, None);
    }

    #[test]
    fn read_concerns_are_the_levels_a_view_read_may_use() {
        assert_eq!(parse_read("majority"), Ok(ReadConcernLevel::Majority));
        assert_eq!(parse_read("local"), Ok(ReadConcernLevel::Local));
        assert!(parse_read("snapshot").is_err(), "a snapshot needs a transaction");
        assert!(parse_read("Majority").is_err());
    }
}
