//! The explorer (`scripts/chaos --explore SEED`, `--seeds A..B`): for each seed, a deployment drawn at random
//! ([`plan::topology`]: relay mode, command-services, partitions, query-service replicas with subsets of the
//! projections, auth), clients writing and reading throughout ([`clients`]), and a list of operator actions and faults
//! ([`plan::steps`], carried out by [`actions`]); then everything is started again and drained ([`finish`]), and the
//! history the clients saw is checked against the log by the checker of `system_tests::history`, which knows nothing
//! of how the history was made. Prints one line per seed; for a seed with violations, the violations, the steps and
//! the history around each. The same seed draws the same deployment and steps again.

mod actions;
mod clients;
mod finish;
mod plan;
mod servers;
mod world;

use anyhow::{bail, ensure, Context as _};
use std::sync::Arc;
use std::time::{Duration, Instant};
use system_tests::history::{check, History, Limits, Violation};

use self::clients::{Counts, Recorder};
use self::servers::Servers;
use self::world::World;

/// What to explore.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub seeds: Vec<u64>,
    pub steps: usize,
    /// No seed starts, and no step, once this long has passed since the start.
    pub minutes: Option<f64>,
    /// `--own-servers`: a RabbitMQ node and a PostgreSQL server of the run's own, not this machine's.
    pub own_servers: bool,
}

/// Clients writing (and reading what they wrote) at once.
const WRITERS: u32 = 2;

impl Options {
    /// `--explore SEED[,SEED…]` or `--seeds A..B` (A to B, both included), with `--steps N` (30), `--minutes M` and
    /// `--own-servers`; `None` when neither form is given.
    pub fn parse(args: &[String]) -> anyhow::Result<Option<Self>> {
        let value = |flag: &str| args.iter().position(|a| a == flag).map(|i| args.get(i + 1));
        let seeds = match (value("--explore"), value("--seeds")) {
            (None, None) => return Ok(None),
            (_, Some(Some(range))) => {
                let (from, to) = range.split_once("..").context("--seeds takes A..B")?;
                let (from, to): (u64, u64) = (from.parse()?, to.parse()?);
                (from..=to).collect()
            }
            (Some(Some(seeds)), None) => {
                let seeds: Result<Vec<u64>, _> = seeds.split(',').map(str::parse).collect();
                seeds.context("--explore takes a seed, or seeds separated by commas")?
            }
            _ => bail!("--explore takes a seed, --seeds a range A..B"),
        };
        ensure!(!seeds.is_empty(), "no seed to explore");
        let steps = match value("--steps") {
            Some(steps) => steps.context("--steps takes a number")?.parse()?,
            None => 30,
        };
        let minutes = match value("--minutes") {
            Some(minutes) => Some(minutes.context("--minutes takes a number")?.parse()?),
            None => None,
        };
        let own_servers = args.iter().any(|a| a == "--own-servers");
        Ok(Some(Self { seeds, steps, minutes, own_servers }))
    }
}

/// Explores every seed of `options`; an error if any seed broke an invariant.
pub async fn explore(options: Options) -> anyhow::Result<()> {
    let deadline = options.minutes.map(|m| Instant::now() + Duration::from_secs_f64(m * 60.0));
    let (mut explored, mut steps, mut failed) = (0, 0, Vec::new());
    // Interrupted (SIGINT, SIGTERM), the run ends at once: its processes are killed and its own servers removed as
    // the runtime drops what holds them.
    let interrupted = service_runtime::shutdown_on_signal();
    let servers = Arc::new(Servers::start(options.own_servers).await?);
    for seed in options.seeds.clone() {
        if deadline.is_some_and(|d| Instant::now() > d) {
            break;
        }
        let run = tokio::select! {
            run = run_seed(&servers, seed, options.steps, deadline) => run,
            () = interrupted.cancelled() => bail!("interrupted during seed {seed}"),
        };
        let outcome = match run {
            Ok(outcome) => outcome,
            Err(err) => {
                println!("seed {seed}: the run could not be completed: {err:#}");
                failed.push(seed);
                continue;
            }
        };
        explored += 1;
        steps += outcome.steps_done;
        outcome.print(seed);
        if !outcome.violations.is_empty() {
            failed.push(seed);
        }
    }
    println!("explore: {explored} seed(s), {steps} steps, violations in {} seed(s) {failed:?}", failed.len());
    ensure!(failed.is_empty(), "seeds with violations: {failed:?}");
    Ok(())
}

/// What one seed's run did and found.
struct Outcome {
    topology: plan::Topology,
    steps: Vec<(u64, String)>,
    steps_done: usize,
    counts: Counts,
    history: History,
    violations: Vec<Violation>,
}

impl Outcome {
    fn print(&self, seed: u64) {
        let c = &self.counts;
        println!(
            "seed {seed}: {} | {} steps | {} commands ({} accepted) | reads checked: {} single, {} lists, {} \
             summaries, {} dashboards, {} streams | {} violation(s)",
            self.topology,
            self.steps_done,
            c.commands,
            c.accepted,
            c.orders,
            c.lists,
            c.summaries,
            c.dashboards,
            c.streams,
            self.violations.len()
        );
        if self.violations.is_empty() {
            return;
        }
        println!("  steps (replay: scripts/chaos --explore {seed} --steps {}):", self.steps_done);
        for (at_ms, step) in &self.steps {
            println!("    t={:>6.1} s  {step}", *at_ms as f64 / 1000.0);
        }
        for violation in self.violations.iter().take(10) {
            let at = violation.at_ms as f64 / 1000.0;
            println!("  VIOLATION at t={at:.1} s, {}: {}", violation.invariant, violation.detail);
            // What the clients saw nearest to it (the samplers' entries are in the history file).
            let mut near: Vec<_> = self.history.entries.iter().filter(|e| e.client < clients::SAMPLER).collect();
            near.sort_by_key(|e| e.at_ms.abs_diff(violation.at_ms));
            near.truncate(6);
            near.sort_by_key(|e| e.at_ms);
            for entry in near {
                let seen: String = format!("{:?}", entry.seen).chars().take(300).collect();
                println!("      t={:>6.1} s client {}: {seen}", entry.at_ms as f64 / 1000.0, entry.client);
            }
        }
        if self.violations.len() > 10 {
            println!("  … and {} more", self.violations.len() - 10);
        }
        let path = std::env::temp_dir().join(format!("explore-{seed}.history"));
        let lines: Vec<String> = self
            .history
            .entries
            .iter()
            .map(|e| format!("t={:.3} client {}: {:?}", e.at_ms as f64 / 1000.0, e.client, e.seen))
            .collect();
        match std::fs::write(&path, lines.join("\n")) {
            Ok(()) => println!("  the whole history: {}", path.display()),
            Err(err) => println!("  the history could not be written to {}: {err}", path.display()),
        }
    }
}

async fn run_seed(
    servers: &Arc<Servers>,
    seed: u64,
    steps: usize,
    deadline: Option<Instant>,
) -> anyhow::Result<Outcome> {
    let topology = plan::topology(seed);
    let plan = plan::steps(seed, &topology, steps);
    let world = Arc::new(World::start(Arc::clone(servers), seed, topology.clone()).await?);
    let outcome = drive(&world, seed, &plan, deadline).await;
    world.stop().await;
    let (steps, steps_done, history, violations) = outcome?;
    let counts = Counts::of(&history);
    Ok(Outcome { topology, steps, steps_done, counts, history, violations })
}

type Driven = (Vec<(u64, String)>, usize, History, Vec<Violation>);

async fn drive(
    world: &Arc<World>,
    seed: u64,
    plan: &[plan::Step],
    deadline: Option<Instant>,
) -> anyhow::Result<Driven> {
    for process in world.processes() {
        world.wait_for(process, "/health/ready").await?;
    }
    let recorder = Arc::new(Recorder::new());
    let mut running = clients::start(world, &recorder, seed, WRITERS);
    let mut done = Vec::new();
    tokio::time::sleep(Duration::from_secs(2)).await;
    for step in plan {
        if deadline.is_some_and(|d| Instant::now() > d) {
            break;
        }
        let at = recorder.now_ms();
        eprintln!("explore: seed {seed} t={:>6.1} s  {}", at as f64 / 1000.0, step.action);
        if let Err(err) = actions::carry_out(world, &recorder, &step.action).await {
            eprintln!("explore: seed {seed}: {} could not be carried out: {err:#}", step.action);
        }
        done.push((at, step.action.to_string()));
        tokio::time::sleep(Duration::from_millis(step.pause_ms)).await;
    }
    // The samplers watch the drain too: a stage stuck then, while its process says ready, is found as well.
    running.stop_writers().await;
    let ended = async {
        let mut violations = finish::quiesce(world, &recorder).await?;
        let log = finish::log(world).await?;
        finish::read_at_the_head(world, &recorder, &log).await?;
        violations.extend(finish::verify(world, &recorder).await?);
        anyhow::Ok((violations, log))
    }
    .await;
    running.stop().await;
    let (mut violations, log) = ended?;
    let history = recorder.history();
    let limits = Limits { stalled: Duration::from_secs(world::STALL_AFTER_S + 10) };
    violations.extend(check(&history, &log, limits));
    violations.sort_by_key(|v| v.at_ms);
    let steps_done = done.len();
    Ok((done, steps_done, history, violations))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Option<Options> {
        let args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        Options::parse(&args).expect("parses")
    }

    #[test]
    fn one_seed_a_range_of_seeds_steps_and_minutes() {
        assert_eq!(parse("chaos --full"), None);
        let one = parse("chaos --explore 7");
        assert_eq!(one, Some(Options { seeds: vec![7], steps: 30, minutes: None, own_servers: false }));
        let list = parse("chaos --explore 2,5,1 --steps 12");
        assert_eq!(list, Some(Options { seeds: vec![2, 5, 1], steps: 12, minutes: None, own_servers: false }));
        let long = parse("chaos --explore --seeds 1..200 --steps 40 --minutes 90 --own-servers");
        let expected = Options { seeds: (1..=200).collect(), steps: 40, minutes: Some(90.0), own_servers: true };
        assert_eq!(long, Some(expected));
        for bad in
            ["chaos --explore", "chaos --seeds 5", "chaos --seeds 9..3", "chaos --explore x", "chaos --explore 1,,2"]
        {
            let args: Vec<String> = bad.split_whitespace().map(str::to_owned).collect();
            assert!(Options::parse(&args).is_err(), "{bad}");
        }
    }
}
