//! `command-service`: the HTTP command API with the outbox relay (`serve`, the default), the relay alone
//! (`relay`), dropping the `wal` relay's replication slot (`relay drop-slot`), or only the schema migrations
//! (`migrate`).

use clap::{Parser, Subcommand};
use command_service::{config::Config, relay, run, store};

#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    role: Option<Role>,
    #[command(flatten)]
    config: Config,
}

#[derive(Debug, Subcommand)]
enum Role {
    /// Serve the HTTP API (and the relay unless RELAY_ENABLED=false).
    Serve,
    /// Run only the outbox relay; several may run, one publishes at a time.
    Relay {
        #[command(subcommand)]
        action: Option<RelayAction>,
    },
    /// Create the database if needed, apply migrations, exit.
    Migrate,
    /// Print a development token for a customer (HS256, signed with AUTH_HS256_SECRET, for AUTH_ISSUER and
    /// AUTH_AUDIENCE): for AUTH_MODE=jwt on a development machine, never for production.
    DevToken {
        /// The customer the token is for.
        #[arg(long)]
        customer: String,
        /// A scope to grant besides the customer's own orders (repeatable): orders:read:any, orders:write:any,
        /// orders:admin, events:read.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// How long the token lasts, in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl_secs: u64,
    },
}

#[derive(Debug, Subcommand)]
enum RelayAction {
    /// Drop the replication slot of `RELAY_MODE=wal` (RELAY_SLOT, or the one derived from the database), so that it
    /// stops retaining write-ahead log. A `wal` relay started later creates it again and first publishes what is
    /// not yet known published; events only streamed (never marked) since the last recorded checkpoint go out again.
    DropSlot {
        /// End a stream still reading the slot (a running relay: it reconnects and creates the slot again).
        #[arg(long)]
        force: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    service_runtime::run_process(|shutdown| run_role(cli, shutdown)).await
}

async fn run_role(cli: Cli, shutdown: tokio_util::sync::CancellationToken) -> anyhow::Result<()> {
    match cli.role.unwrap_or(Role::Serve) {
        Role::Serve => run::start(cli.config, shutdown).await?.task.await?,
        Role::Relay { action: None } => run::relay_only(cli.config, shutdown).await,
        Role::Relay { action: Some(RelayAction::DropSlot { force }) } => {
            let slot = cli.config.replication_target()?.slot;
            let pool = store::pool(cli.config.database_url.parse()?, 1);
            if relay::drop_slot(&pool, &slot, force).await? {
                println!("dropped replication slot {slot}");
            } else {
                println!("no replication slot {slot} in this database");
            }
            Ok(())
        }
        Role::Migrate => {
            let pool = store::pool(cli.config.database_url.parse()?, 1);
            store::prepare(&cli.config.database_url, &pool).await
        }
        Role::DevToken { customer, scopes, ttl_secs } => {
            let token = service_runtime::auth::jwt::dev_token(&cli.config.auth, &customer, &scopes, ttl_secs)?;
            println!("{token}");
            Ok(())
        }
    }
}
