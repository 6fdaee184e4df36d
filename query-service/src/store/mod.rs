//! MongoDB: the read models ([`models`]) and their generations, the guarded write that keeps only the newest
//! version, the position (checkpoint) up to which every event has been applied, the gaps below it (dead-lettered
//! events), and the queries of each read model.

mod concerns;
pub mod customers;
pub mod daily;
pub mod gaps;
pub mod generations;
mod guarded;
pub mod models;
mod operation;
mod views;

pub use concerns::{parse_read, parse_write, Concerns};
pub use guarded::{keep_newest, ApplyOutcome, Guarded};
pub use operation::{StoreError, OPERATION_TIMEOUT};
pub use views::{
    apply_to, list_key, list_query, CatchUpMark, ListCursor, ListFilter, ReadFrom, ReadModelStore, RepairGuard,
    StoredView,
};

use anyhow::Context as _;
use mongodb::event::command::CommandEvent;
use mongodb::event::EventHandler;
use mongodb::options::ClientOptions;
use prometheus::IntCounterVec;
use std::time::Duration;

/// A client that fails fast (3 s) when the server is unreachable, so reads answer 503 instead of hanging.
pub async fn connect(uri: &str, database: &str, concerns: &Concerns) -> anyhow::Result<ReadModelStore> {
    connect_counted(uri, database, concerns, None).await
}

/// [`connect`], counting every command the driver sends, by name, in `commands` (`mongodb_commands_total`): what
/// each unit of work costs the read store, whatever the store's speed.
pub async fn connect_counted(
    uri: &str,
    database: &str,
    concerns: &Concerns,
    commands: Option<IntCounterVec>,
) -> anyhow::Result<ReadModelStore> {
    let mut options = ClientOptions::parse(uri).await.context("MONGODB_URI is not a valid MongoDB URI")?;
    if let Some(commands) = commands {
        options.command_event_handler = Some(EventHandler::callback(move |event| {
            if let CommandEvent::Started(started) = event {
                commands.with_label_values(&[started.command_name.as_str()]).inc();
            }
        }));
    }
    options.server_selection_timeout.get_or_insert(Duration::from_secs(3));
    options.connect_timeout.get_or_insert(Duration::from_secs(3));
    options.app_name.get_or_insert_with(|| "query-service".to_owned());
    let client = mongodb::Client::with_options(options).context("creating the MongoDB client")?;
    Ok(ReadModelStore::new(client.database_with_options(database, concerns.database_options())))
}
