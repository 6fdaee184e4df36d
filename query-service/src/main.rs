//! `query-service`: serves the read models and runs the projections that keep them up to date (`serve`, the
//! default), or rebuilds a read model from the event log (`rebuild`, with a progress bar), rolls it back
//! (`rollback`), checks them against the log (`verify`, optionally `--repair`), or moves the projections' dead
//! letters back to their queues (`dlq redrive`). `--projection` names the read model (`orders`, the default,
//! `customer-summary`, `daily-sales`); `verify` and `dlq redrive` take every one unless it is given.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use query_service::projection::Projection;
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
    /// Rebuild a read model into a new generation from the event feed, switch reads to it, exit.
    Rebuild {
        #[arg(long, default_value = "orders", value_parser = projection)]
        projection: &'static dyn Projection,
    },
    /// Make the previous generation of a read model active again (caught up from the event feed first), exit.
    Rollback {
        #[arg(long, default_value = "orders", value_parser = projection)]
        projection: &'static dyn Projection,
    },
    /// Compare every document of the active generation of each read model with what the log says it should be;
    /// print a summary per read model (JSON lines on stdout, findings on stderr) and exit non-zero if any differs
    /// (after `--repair`: if any is left).
    Verify {
        /// Write each differing document over with what the log says, guarded so that no logged version is lowered.
        #[arg(long)]
        repair: bool,
        /// Check this read model only.
        #[arg(long, value_parser = projection)]
        projection: Option<&'static dyn Projection>,
    },
    /// The projections' dead-letter queues.
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
    },
}

#[derive(Debug, Subcommand)]
enum DlqAction {
    /// Move every dead letter back to its projection's queue once (after a fix), exit.
    Redrive {
        /// This projection's dead letters only.
        #[arg(long, value_parser = projection)]
        projection: Option<&'static dyn Projection>,
    },
}

/// A projection, by name.
fn projection(name: &str) -> Result<&'static dyn Projection, String> {
    query_service::config::projection_named(name)
}

/// The projections `only` names: that one, or every one.
fn chosen(only: Option<&'static dyn Projection>) -> Vec<&'static dyn Projection> {
    only.map_or_else(|| query_service::projection::ALL.to_vec(), |one| vec![one])
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    service_runtime::run_process(|shutdown| run_role(cli, shutdown)).await
}

async fn run_role(cli: Cli, shutdown: tokio_util::sync::CancellationToken) -> anyhow::Result<()> {
    let config = cli.config;
    match cli.role.unwrap_or(Role::Serve) {
        Role::Serve => run::start(config, shutdown).await?.task.await?,
        Role::Rebuild { projection } => rebuild(&config, projection, shutdown).await,
        Role::Dlq { action: DlqAction::Redrive { projection } } => redrive(&config, projection).await,
        Role::Verify { repair, projection } => verify(&config, projection, repair).await,
        Role::Rollback { projection } => {
            let views = config.views(None).await?;
            let (pointer, report) = config.rebuilder(projection, &views, shutdown)?.roll_back().await?;
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

/// `query-service rebuild`: builds a new generation from the log, with a progress bar, and switches to it.
async fn rebuild(
    config: &Config,
    projection: &'static dyn Projection,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let views = config.views(None).await?;
    let rebuilder = config.rebuilder(projection, &views, shutdown)?;
    let generation = rebuilder.claim().await.context("starting the rebuild")?;
    eprintln!("rebuilding into {generation}");
    let (progress, updates) = watch::channel(Progress::default());
    let bar = tokio::spawn(show_progress(updates));
    let report = rebuilder.run(&generation, &progress).await;
    drop(progress);
    let _ = bar.await;
    let report = report?;
    eprintln!(
        "switched to {}: {} events ({} documents) replayed in {:.1} s, {:.0} events/s",
        report.generation,
        report.events,
        report.views,
        report.replay.as_secs_f64(),
        report.events_per_second()
    );
    Ok(())
}

/// `query-service dlq redrive`: moves the dead letters of the chosen projections back to their queues.
async fn redrive(config: &Config, projection: Option<&'static dyn Projection>) -> anyhow::Result<()> {
    let metrics = query_service::metrics::QueryMetrics::new()?;
    for projection in chosen(projection) {
        let settings = run::consumer_settings(
            config,
            projection,
            metrics.projector(projection.name()),
            Default::default(),
            Default::default(),
            config.watchdog.watchdog(),
        );
        let moved = query_service::projection::redrive(&settings).await?;
        eprintln!("redrove {moved} message(s) from {} to {}", settings.dead_letter_queue(), settings.queue);
    }
    Ok(())
}

/// `query-service verify`: checks the chosen read models against the log (with `repair`, writes the findings
/// over); fails when a document still differs.
async fn verify(config: &Config, projection: Option<&'static dyn Projection>, repair: bool) -> anyhow::Result<()> {
    let views = config.views(None).await?;
    let feed = config.feed()?;
    let mut left = 0;
    for projection in chosen(projection) {
        let views = views.for_model(projection.model());
        let report = query_service::verify::walk::verify(projection, &views, &feed, repair).await?;
        left += print_report(&report, repair)?;
    }
    anyhow::ensure!(left == 0, "{left} document(s) differ from the event log");
    Ok(())
}

/// Prints what a check of one read model found (findings on stderr, the summary as a JSON line on stdout); returns
/// how many findings are left.
fn print_report(report: &query_service::verify::walk::Report, repair: bool) -> anyhow::Result<u64> {
    for finding in &report.findings {
        eprintln!(
            "{} {:<8} {}  stored version {}, log version {}",
            report.projection,
            finding.kind.as_str(),
            finding.order_id,
            finding.view_version.map_or("-".to_owned(), |v| v.to_string()),
            finding.log_version.map_or("-".to_owned(), |v| v.to_string()),
        );
    }
    let summary = &report.summary;
    eprintln!(
        "{} ({}): {} documents checked at position {}: {} missing, {} behind, {} diverged, {} ahead \
         ({} in flight, {} unreadable events){}",
        report.projection,
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
    let mut line = serde_json::to_value(summary)?;
    line["projection"] = report.projection.into();
    println!("{line}");
    Ok(summary.findings().saturating_sub(if repair { summary.repaired } else { 0 }))
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
