//! `query-service`: serves order views and runs the projector that keeps them up to date (`serve`, the default),
//! or rebuilds the views from the event log (`rebuild`, with a progress bar), rolls them back (`rollback`), checks
//! them against the log (`verify`, optionally `--repair`), or moves the projector's dead letters back to its queue
//! (`dlq redrive`).

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use query_service::rebuild::Progress;
use query_service::{config::Config, run};
use std::io::Write as _;
use std::time::Duration;
use tokio::sync::watch;

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
    /// Serve the HTTP API (and the projector unless PROJECTOR_ENABLED=false).
    Serve,
    /// Rebuild the views into a new generation from the event feed, switch reads to it, exit.
    Rebuild,
    /// Make the previous generation of the views active again (caught up from the event feed first), exit.
    Rollback,
    /// Compare every view of the active generation with its order's newest logged event; print a summary (JSON on
    /// stdout, findings on stderr) and exit non-zero if any view differs (after `--repair`: if any is left).
    Verify {
        /// Write each differing view over with what the log says, guarded so that no logged version is lowered.
        #[arg(long)]
        repair: bool,
    },
    /// The projector's dead-letter queue.
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
    },
}

#[derive(Debug, Subcommand)]
enum DlqAction {
    /// Move every dead letter back to the projector's queue once (after a fix), exit.
    Redrive,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    service_runtime::run_process(|shutdown| run_role(cli, shutdown)).await
}

async fn run_role(cli: Cli, shutdown: tokio_util::sync::CancellationToken) -> anyhow::Result<()> {
    match cli.role.unwrap_or(Role::Serve) {
        Role::Serve => run::start(cli.config, shutdown).await?.task.await?,
        Role::Rebuild => {
            let views = cli.config.views(None).await?;
            let rebuilder = cli.config.rebuilder(views, shutdown)?;
            let generation = rebuilder.claim().await.context("starting the rebuild")?;
            eprintln!("rebuilding into {generation}");
            let (progress, updates) = watch::channel(Progress::default());
            let bar = tokio::spawn(show_progress(updates));
            let report = rebuilder.run(&generation, &progress).await;
            drop(progress);
            let _ = bar.await;
            let report = report?;
            eprintln!(
                "switched to {}: {} events ({} views) replayed in {:.1} s, {:.0} events/s",
                report.generation,
                report.events,
                report.views,
                report.replay.as_secs_f64(),
                report.events_per_second()
            );
            Ok(())
        }
        Role::Dlq { action: DlqAction::Redrive } => {
            let metrics = query_service::metrics::QueryMetrics::new()?;
            let settings = run::consumer_settings(&cli.config, metrics, Default::default(), Default::default());
            let moved = query_service::projection::redrive(&settings).await?;
            eprintln!("redrove {moved} message(s) from {} to {}", settings.dead_letter_queue(), settings.queue);
            Ok(())
        }
        Role::Verify { repair } => {
            let views = cli.config.views(None).await?;
            let report = query_service::verify::walk::verify(&views, &cli.config.feed()?, repair).await?;
            for finding in &report.findings {
                eprintln!(
                    "{:<8} {}  view version {}, log version {}",
                    finding.kind.as_str(),
                    finding.order_id,
                    finding.view_version.map_or("-".to_owned(), |v| v.to_string()),
                    finding.log_version.map_or("-".to_owned(), |v| v.to_string()),
                );
            }
            let summary = &report.summary;
            eprintln!(
                "{}: {} orders checked at position {}: {} missing, {} behind, {} diverged, {} ahead \
                 ({} in flight, {} unreadable events){}",
                report.generation,
                summary.checked,
                report.position,
                summary.missing,
                summary.behind,
                summary.diverged,
                summary.ahead,
                summary.in_flight,
                summary.unreadable_events,
                if repair { format!(", {} repaired", summary.repaired) } else { String::new() },
            );
            println!("{}", serde_json::to_string(summary)?);
            let left = summary.findings().saturating_sub(if repair { summary.repaired } else { 0 });
            anyhow::ensure!(left == 0, "{left} view(s) differ from the event log");
            Ok(())
        }
        Role::Rollback => {
            let views = cli.config.views(None).await?;
            let (pointer, report) = cli.config.rebuilder(views, shutdown)?.roll_back().await?;
            eprintln!(
                "active generation: {} (previous: {}), caught up with {} events",
                pointer.active,
                pointer.previous.join(", "),
                report.events
            );
            Ok(())
        }
    }
}

/// Draws `[#####     ] 45%  45000/100000 events  3400/s  ETA 16 s` on stderr until the rebuild ends.
async fn show_progress(mut updates: watch::Receiver<Progress>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            changed = updates.changed() => if changed.is_err() { break },
            _ = tick.tick() => {}
        }
        let p = updates.borrow().clone();
        let fraction = if p.total > 0 { (p.replayed as f64 / p.total as f64).min(1.0) } else { 0.0 };
        let filled = (fraction * 30.0).round() as usize;
        let eta = if p.events_per_second > 0.0 {
            format!("ETA {:.0} s", (p.total - p.replayed).max(0) as f64 / p.events_per_second)
        } else {
            "ETA -".to_owned()
        };
        eprint!(
            "\r[{}{}] {:>3.0}%  {}/{} events  {:.0}/s  {eta}   ",
            "#".repeat(filled),
            " ".repeat(30 - filled),
            fraction * 100.0,
            p.replayed,
            p.total,
            p.events_per_second
        );
        let _ = std::io::stderr().flush();
        if p.done {
            break;
        }
    }
    eprintln!();
}
