//! `command-service`: the HTTP command API with the outbox relay (`serve`, the default), the relay alone
//! (`relay`), or only the schema migrations (`migrate`).

use clap::{Parser, Subcommand};
use command_service::{config::Config, run, store};

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
    Relay,
    /// Create the database if needed, apply migrations, exit.
    Migrate,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    service_runtime::run_process(|shutdown| run_role(cli, shutdown)).await
}

async fn run_role(cli: Cli, shutdown: tokio_util::sync::CancellationToken) -> anyhow::Result<()> {
    match cli.role.unwrap_or(Role::Serve) {
        Role::Serve => run::start(cli.config, shutdown).await?.task.await?,
        Role::Relay => run::relay_only(cli.config, shutdown).await,
        Role::Migrate => {
            let pool = store::pool(cli.config.database_url.parse()?, 1);
            store::prepare(&cli.config.database_url, &pool).await
        }
    }
}
