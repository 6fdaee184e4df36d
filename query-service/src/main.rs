//! `query-service`: serves order views and runs the projector that keeps them up to date.

use clap::Parser;
use query_service::{config::Config, run};

#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    config: Config,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    service_runtime::init_tracing();
    let shutdown = service_runtime::shutdown_on_signal();
    run::start(cli.config, shutdown).await?.task.await?
}
