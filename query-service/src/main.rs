//! `query-service`: serves order views and runs the projector that keeps them up to date.

use clap::Parser;
use query_service::{config::Config, run, telemetry};

#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    config: Config,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init();
    let shutdown = telemetry::shutdown_on_signal();
    run::start(cli.config, shutdown).await?.task.await?
}
