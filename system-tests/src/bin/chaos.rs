//! The fault suite (`scripts/chaos`): drives commands at a steady rate against the real services, run as processes
//! of their own, while it kills and restarts them and the servers under them; then, once the backlog has drained,
//! checks that nothing was lost, duplicated or invented, and prints a summary table. Exits non-zero on any finding.
//!
//! The command side is deployed first and takes orders before any query-service exists; then two query-service
//! replicas (both projecting, one active at a time) start. Faults, in order, repeated until the commands are sent:
//! SIGKILL the relay; SIGKILL a query-service; RabbitMQ `stop_app` / `start_app`; restart PostgreSQL; SIGKILL the
//! MongoDB-wire server (restarted on its data directory); duplicate and reordered copies of logged events published
//! to the exchange; poison messages; a rebuild during a rolling restart of both replicas with a MongoDB SIGKILL in
//! the middle; the view-changed exchange deleted (its notices dropped) under waiting reads; an event of an unknown
//! schema version committed by a "newer writer". At the end, `query-service verify` checks every view against the
//! log too.
//!
//! `chaos` sends 1,000 commands at 40/s (CI); `chaos --full` 10,000 at 100/s. Loopback only. It stops RabbitMQ and
//! PostgreSQL of this machine for a few seconds: run it alone, not beside the tests.

use anyhow::{bail, ensure, Context as _};
use lapin::options::{BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use query_service::store::OrderView;
use serde_json::{json, Value};
use shared_events::OrderEvent;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

const ADMIN_TOKEN: &str = "chaos-admin-token";
const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";
const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// Statuses a client may see: the documented answers, and 503 while PostgreSQL restarts.
const DOCUMENTED: [u16; 5] = [200, 201, 409, 422, 503];
/// Poison messages published per poison fault.
const POISON: [&[u8]; 4] = [b"not json at all", b"{}", b"\xff\xfe\x00garbage", br#"{"eventType":"OrderPlaced"}"#];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let full = std::env::args().any(|a| a == "--full");
    let (commands, rate) = if full { (10_000, 100.0) } else { (1_000, 40.0) };
    let id = Uuid::new_v4().simple().to_string()[..10].to_owned();
    let suite = Suite::start(&id).await?;
    let outcome = run(&suite, commands, rate).await;
    suite.stop().await;
    let report = outcome?;
    report.print();
    ensure!(report.findings.is_empty(), "{} finding(s): {}", report.findings.len(), report.findings.join("; "));
    Ok(())
}

/// Names, processes and clients of one run.
struct Suite {
    database: String,
    exchange: String,
    queue: String,
    mongo_dir: PathBuf,
    mongo_port: u16,
    command_port: u16,
    query_port: u16,
    query2_port: u16,
    procs: Mutex<HashMap<&'static str, Child>>,
    http: reqwest::Client,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.parent().context("the chaos binary has a directory")?.join(name);
    ensure!(path.exists(), "{} is missing: build the workspace's binaries first", path.display());
    Ok(path)
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

async fn wait_until(what: &str, deadline: Duration, mut ready: impl FnMut() -> bool) -> anyhow::Result<()> {
    let until = Instant::now() + deadline;
    while !ready() {
        ensure!(Instant::now() < until, "{what} within {} s", deadline.as_secs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

fn run_tool(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new(program).args(args).stdout(Stdio::null()).status().with_context(|| program.to_owned())?;
    ensure!(status.success(), "{program} {} failed: {status}", args.join(" "));
    Ok(())
}

impl Suite {
    async fn start(id: &str) -> anyhow::Result<Self> {
        let mongo_dir = std::env::temp_dir().join(format!("chaos-mongo-{id}"));
        std::fs::create_dir_all(&mongo_dir)?;
        let suite = Self {
            database: format!("chaos_{id}"),
            exchange: format!("chaos.{id}.events"),
            queue: format!("chaos.{id}.views"),
            mongo_dir,
            mongo_port: free_port(),
            command_port: free_port(),
            query_port: free_port(),
            query2_port: free_port(),
            procs: Mutex::new(HashMap::new()),
            http: reqwest::Client::builder().timeout(Duration::from_secs(15)).build()?,
        };
        suite.spawn("mongo")?;
        wait_until("the MongoDB-wire server listens", Duration::from_secs(60), || port_open(suite.mongo_port)).await?;
        // The command side alone, as a deployment that starts it first: until a query-service declares its queue,
        // the broker routes events nowhere and they wait in the outbox (the first "fault" deploys the query side).
        suite.spawn("command")?;
        suite.wait_live(suite.command_port).await?;
        suite.spawn("relay")?;
        Ok(suite)
    }

    /// Starts both query-service replicas and waits until they serve and consume.
    async fn deploy_query_side(&self) -> anyhow::Result<()> {
        self.spawn("query")?;
        self.spawn("query2")?;
        self.wait_ready(self.query_port).await?;
        self.wait_ready(self.query2_port).await
    }

    fn query_url(&self, which: &str, path: &str) -> String {
        let port = if which == "query2" { self.query2_port } else { self.query_port };
        format!("http://127.0.0.1:{port}{path}")
    }

    fn mongodb_uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true&retryWrites=false", self.mongo_port)
    }

    /// Starts (or restarts) one process of the run.
    fn spawn(&self, which: &'static str) -> anyhow::Result<()> {
        let command_url = format!("http://127.0.0.1:{}", self.command_port);
        let mut command = match which {
            "mongo" => {
                let secantusd = std::env::var("SECANTUSD").unwrap_or_else(|_| ".venv/bin/secantusd-py".to_owned());
                let mut c = Command::new(secantusd);
                c.args(["--host", "127.0.0.1", "--port", &self.mongo_port.to_string(), "--log-level", "WARNING"])
                    .arg("--storage-path")
                    .arg(&self.mongo_dir);
                c
            }
            "command" | "relay" => {
                let mut c = Command::new(binary("command-service")?);
                if which == "relay" {
                    c.arg("relay");
                }
                c.env("HTTP_ADDR", format!("127.0.0.1:{}", self.command_port)).env("RELAY_ENABLED", "false");
                c
            }
            _ => {
                let port = if which == "query2" { self.query2_port } else { self.query_port };
                let mut c = Command::new(binary("query-service")?);
                c.env("HTTP_ADDR", format!("127.0.0.1:{port}"))
                    .env("MONGODB_URI", self.mongodb_uri())
                    .env("MONGODB_DATABASE", &self.database)
                    .env("AMQP_QUEUE", &self.queue)
                    .env("EVENT_FEED_URL", format!("{command_url}/events"));
                c
            }
        };
        command
            .env("DATABASE_URL", format!("{POSTGRES}/{}", self.database))
            .env("AMQP_URL", AMQP)
            .env("AMQP_EXCHANGE", &self.exchange)
            .env("ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = command.spawn().with_context(|| format!("starting {which}"))?;
        self.procs.lock().map_err(|_| anyhow::anyhow!("process table poisoned"))?.insert(which, child);
        Ok(())
    }

    /// SIGKILL: no shutdown, no flush.
    fn kill(&self, which: &'static str) -> anyhow::Result<()> {
        let mut procs = self.procs.lock().map_err(|_| anyhow::anyhow!("process table poisoned"))?;
        if let Some(mut child) = procs.remove(which) {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// SIGTERM, as a rolling deployment stops a replica: it drains and exits (SIGKILL after 30 s).
    async fn stop_gracefully(&self, which: &'static str) -> anyhow::Result<()> {
        let child = self.procs.lock().map_err(|_| anyhow::anyhow!("process table poisoned"))?.remove(which);
        let Some(mut child) = child else { return Ok(()) };
        run_tool("kill", &["-TERM", &child.id().to_string()])?;
        let until = Instant::now() + Duration::from_secs(30);
        while child.try_wait()?.is_none() {
            if Instant::now() > until {
                child.kill()?;
                child.wait()?;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    async fn wait_live(&self, port: u16) -> anyhow::Result<()> {
        self.wait_status(port, "/health/live").await
    }

    async fn wait_ready(&self, port: u16) -> anyhow::Result<()> {
        self.wait_status(port, "/health/ready").await
    }

    async fn wait_status(&self, port: u16, path: &str) -> anyhow::Result<()> {
        let until = Instant::now() + Duration::from_secs(90);
        loop {
            let answer = self.http.get(format!("http://127.0.0.1:{port}{path}")).send().await;
            if answer.is_ok_and(|r| r.status() == 200) {
                return Ok(());
            }
            ensure!(Instant::now() < until, "port {port}{path} not 200 within 90 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn stop(&self) {
        for which in ["relay", "query", "query2", "command", "mongo"] {
            let _ = self.kill(which);
        }
        system_tests::drop_postgres(POSTGRES, &self.database).await;
        if let Ok(connection) = Connection::connect(AMQP, ConnectionProperties::default()).await {
            if let Ok(channel) = connection.create_channel().await {
                for queue in [self.queue.clone(), format!("{}.dlq", self.queue)] {
                    let _ = channel.queue_delete(queue.as_str().into(), Default::default()).await;
                }
                for exchange in [self.exchange.clone(), format!("{}.view-changed", self.exchange)] {
                    let _ = channel.exchange_delete(exchange.as_str().into(), Default::default()).await;
                }
            }
            let _ = connection.close(200, "chaos done".into()).await;
        }
        let _ = std::fs::remove_dir_all(&self.mongo_dir);
    }

    fn command_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.command_port)
    }

    /// Places an order for the suite itself (not one of the clients'), retrying while the command side is not back.
    async fn place(&self, customer: &str) -> anyhow::Result<Value> {
        let order = json!({"customerId": customer, "currency": "EUR",
            "items": [{"sku": "SKU-S", "quantity": 1, "unitPrice": "1.00"}]});
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            let answer = self.http.post(self.command_url("/commands/orders")).json(&order).send().await;
            match answer {
                Ok(answer) if answer.status() == 201 => return Ok(answer.json().await?),
                other => ensure!(Instant::now() < until, "placing the suite's own order: {other:?}"),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// A page of the event log (the command-service's admin feed): `{data: [envelopes], metadata: {nextAfter}}`.
    async fn feed(&self, after: i64, limit: u32) -> anyhow::Result<Value> {
        let url = self.command_url(&format!("/events?after={after}&limit={limit}"));
        Ok(self.http.get(url).bearer_auth(ADMIN_TOKEN).send().await?.json().await?)
    }
}

/// What the clients saw and did.
#[derive(Default)]
struct Clients {
    sent: u64,
    statuses: BTreeMap<u16, u64>,
    /// Requests that got no answer (connection failures, timeouts), with what happened.
    unanswered: Vec<String>,
    retries: u64,
    replays_checked: u64,
    /// Every (order, version) a 2xx answered.
    accepted: Vec<(Uuid, i64)>,
    /// The newest known (status, version) of each order, for choosing the next command.
    orders: Vec<(Uuid, String, i64)>,
    findings: Vec<String>,
}

/// A small deterministic generator (xorshift), so that a run can be repeated.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % sides.max(1)
    }
}

struct Report {
    commands: u64,
    clients: Clients,
    faults: BTreeMap<&'static str, u32>,
    checked: Checked,
    dead_letters: u32,
    redriven: u32,
    max_lag_ms: f64,
    drain: Duration,
    notice_reads: (u32, u32),
    /// The active generation of the views at the end (`order_views` unless a rebuild switched).
    generation: String,
    verify: Value,
    findings: Vec<String>,
}

/// What comparing the write store, the log and the views found.
struct Checked {
    orders: usize,
    views: usize,
    events: usize,
    lost: usize,
    mismatched: usize,
    invented: usize,
    /// Orders whose newest event came from a newer writer (their views stay at the last readable version).
    held_back: usize,
    findings: Vec<String>,
}

impl Report {
    fn print(&self) {
        let accepted: u64 = self.clients.statuses.iter().filter(|(s, _)| **s < 300).map(|(_, n)| n).sum();
        let statuses: Vec<String> = self.clients.statuses.iter().map(|(s, n)| format!("{s}×{n}")).collect();
        let faults: Vec<String> = self.faults.iter().map(|(f, n)| format!("{f} {n}")).collect();
        println!("\n| fault suite | |\n| --- | --- |");
        println!(
            "| commands sent | {} ({} requests incl. {} retries) |",
            self.commands, self.clients.sent, self.clients.retries
        );
        println!("| accepted (2xx) | {accepted} |");
        println!("| statuses seen | {} |", statuses.join(", "));
        println!("| unanswered (timeouts, connection errors) | {} |", self.clients.unanswered.len());
        println!("| idempotent replays checked | {} |", self.clients.replays_checked);
        println!("| faults injected | {} |", faults.join(", "));
        let checked = &self.checked;
        println!(
            "| orders / events in the log / views | {} / {} / {} |",
            checked.orders, checked.events, checked.views
        );
        println!("| lost (accepted, not in log, unpublished or not in its view) | {} |", checked.lost);
        println!("| mismatched views (not equal to the write model) | {} |", checked.mismatched);
        println!("| views at a version not in the log | {} |", checked.invented);
        println!("| orders held at their last readable version by a newer writer's event | {} |", checked.held_back);
        println!("| unreadable messages dead-lettered / redriven | {} / {} |", self.dead_letters, self.redriven);
        println!(
            "| waiting reads answered 200 with the notice exchange gone | {} / {} |",
            self.notice_reads.0, self.notice_reads.1
        );
        println!("| active generation at the end | {} |", self.generation);
        let v = &self.verify;
        println!(
            "| `query-service verify`: checked / missing / behind / diverged / ahead (unreadable events) | {} / {} / {} / {} / {} ({}) |",
            v["checked"], v["missing"], v["behind"], v["diverged"], v["ahead"], v["unreadableEvents"]
        );
        println!("| max projector lag seen | {:.0} ms |", self.max_lag_ms);
        println!("| drained after the last command in | {:.1} s |", self.drain.as_secs_f64());
        for finding in &self.findings {
            println!("FINDING: {finding}");
        }
    }
}

async fn run(suite: &Suite, commands: u64, rate: f64) -> anyhow::Result<Report> {
    let clients = Arc::new(Mutex::new(Clients::default()));
    let started = Instant::now();
    let driving = Duration::from_secs_f64(commands as f64 / rate);
    eprintln!("chaos: {commands} commands at {rate}/s over {:.0} s, faults in between", driving.as_secs_f64());

    let max_lag = Arc::new(Mutex::new(0f64));
    let lag_probe = {
        // Whichever replica projects now: both are asked.
        let urls = ["query", "query2"].map(|which| suite.query_url(which, "/queries/_status"));
        let (http, max_lag) = (suite.http.clone(), max_lag.clone());
        tokio::spawn(async move {
            loop {
                for url in &urls {
                    if let Ok(answer) = http.get(url).send().await {
                        if let Ok(status) = answer.json::<Value>().await {
                            let lag = status["projector"]["lagMs"].as_f64().unwrap_or(0.0);
                            if let Ok(mut max) = max_lag.lock() {
                                *max = max.max(lag);
                            }
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };

    let driver = drive(suite, clients.clone(), commands, rate);
    let faults = inject(suite, driving);
    let (driven, injected) = tokio::join!(driver, faults);
    driven?;
    let mut injected = injected?;
    let faults = std::mem::take(&mut injected.faults);
    let last_command = Instant::now();
    eprintln!("chaos: commands sent in {:.0} s; waiting for the backlog to drain", started.elapsed().as_secs_f64());

    // Everything back up, then the backlog drains.
    suite.wait_ready(suite.command_port).await?;
    suite.wait_ready(suite.query_port).await?;
    suite.wait_ready(suite.query2_port).await?;
    let pool = sqlx::PgPool::connect(&format!("{POSTGRES}/{}", suite.database)).await?;
    let mongo = mongodb::Client::with_uri_str(suite.mongodb_uri()).await?.database(&suite.database);
    let until = Instant::now() + Duration::from_secs(300);
    loop {
        let unpublished: i64 =
            sqlx::query_scalar("select count(*) from outbox where published_at is null").fetch_one(&pool).await?;
        let behind = match active_views(&mongo).await {
            Ok(views) => views_behind(&pool, &views).await.unwrap_or(usize::MAX),
            Err(_) => usize::MAX,
        };
        let building = rebuilding(&mongo).await.unwrap_or(true);
        if unpublished == 0 && behind == 0 && !building {
            break;
        }
        if Instant::now() > until {
            eprintln!(
                "chaos: not drained after 300 s: {unpublished} unpublished, {behind} views behind, rebuilding {building}"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let drain = last_command.elapsed();
    lag_probe.abort();

    let mut clients = std::mem::take(&mut *clients.lock().map_err(|_| anyhow::anyhow!("clients poisoned"))?);
    let unreadable = faults.get("poison").copied().unwrap_or(0) * (POISON.len() as u32 + 1)
        + faults.get("newer writer's event").copied().unwrap_or(0);
    let (dead_letters, redriven, mut dlq_findings) = dead_letter_checks(suite, unreadable).await?;
    let views = active_views(&mongo).await?;
    let generation = views.name().to_owned();
    let mut checked = check(suite, &pool, &views, &clients).await?;
    pool.close().await;
    let (verify, mut verify_findings) = verify(suite).await?;
    let mut findings = std::mem::take(&mut checked.findings);
    findings.append(&mut clients.findings);
    findings.append(&mut dlq_findings);
    findings.append(&mut injected.findings);
    findings.append(&mut verify_findings);
    for (status, count) in &clients.statuses {
        if !DOCUMENTED.contains(status) {
            findings.push(format!("{count} answer(s) with undocumented status {status}"));
        }
    }
    if !clients.unanswered.is_empty() {
        findings.push(format!(
            "{} request(s) without an answer, e.g. {}",
            clients.unanswered.len(),
            clients.unanswered.first().map_or("", String::as_str)
        ));
    }
    Ok(Report {
        commands,
        clients,
        faults,
        checked,
        dead_letters,
        redriven,
        max_lag_ms: max_lag.lock().map(|m| *m).unwrap_or(0.0),
        drain,
        notice_reads: injected.notice_reads,
        generation,
        verify,
        findings,
    })
}

/// Whether the pointer names a generation being built.
async fn rebuilding(mongo: &mongodb::Database) -> anyhow::Result<bool> {
    let pointer =
        mongo.collection::<mongodb::bson::Document>("read_model_generations").find_one(mongodb::bson::doc! {}).await?;
    Ok(pointer.is_some_and(|p| p.get_document("building").is_ok()))
}

/// The active generation of the views, as the pointer names it (the first one before any rebuild).
async fn active_views(mongo: &mongodb::Database) -> anyhow::Result<mongodb::Collection<OrderView>> {
    let pointer =
        mongo.collection::<mongodb::bson::Document>("read_model_generations").find_one(mongodb::bson::doc! {}).await?;
    let active = pointer.as_ref().and_then(|p| p.get_str("active").ok()).unwrap_or("order_views");
    Ok(mongo.collection::<OrderView>(active))
}

/// `query-service verify` against the run's services: its JSON summary, and a finding if it found anything.
async fn verify(suite: &Suite) -> anyhow::Result<(Value, Vec<String>)> {
    let output = Command::new(binary("query-service")?)
        .arg("verify")
        .env("MONGODB_URI", suite.mongodb_uri())
        .env("MONGODB_DATABASE", &suite.database)
        .env("EVENT_FEED_URL", suite.command_url("/events"))
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("RUST_LOG", "error")
        .output()?;
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    let mut findings = Vec::new();
    if !output.status.success() || summary.is_null() {
        findings.push(format!("query-service verify: {summary} {}", String::from_utf8_lossy(&output.stderr).trim()));
    }
    Ok((summary, findings))
}

/// How many orders' views are not yet at the newest version this build can read (the write model's, but for an
/// order whose newest event came from a newer writer).
async fn views_behind(pool: &sqlx::PgPool, views: &mongodb::Collection<OrderView>) -> anyhow::Result<usize> {
    use futures_util::TryStreamExt as _;
    let written: Vec<(Uuid, i64)> =
        sqlx::query_as("select order_id, max(order_version) from outbox where schema_version <= $1 group by order_id")
            .bind(shared_events::upcast::CURRENT_SCHEMA_VERSION as i32)
            .fetch_all(pool)
            .await?;
    let seen: HashMap<String, i64> =
        views.find(mongodb::bson::doc! {}).await?.map_ok(|v| (v.id, v.version)).try_collect().await?;
    Ok(written.iter().filter(|(id, version)| seen.get(&id.to_string()) != Some(version)).count())
}

/// Sends `commands` commands at `rate` per second, each on a schedule of its own (open loop).
async fn drive(suite: &Suite, clients: Arc<Mutex<Clients>>, commands: u64, rate: f64) -> anyhow::Result<()> {
    let mut dice = Dice(0x9E37_79B9_7F4A_7C15);
    let started = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..commands {
        tokio::time::sleep_until(started + Duration::from_secs_f64(n as f64 / rate)).await;
        let known = clients.lock().map(|c| c.orders.len()).unwrap_or(0);
        // Half the commands move a known order on; the rest place new ones.
        let target = (known > 0 && dice.roll(2) == 0).then(|| {
            let pick = dice.roll(known as u64) as usize;
            clients.lock().ok().and_then(|c| c.orders.get(pick).cloned())
        });
        let (path, body) = match target.flatten() {
            Some((id, status, _)) => {
                let action = match (status.as_str(), dice.roll(5)) {
                    (_, 0) => "cancel",
                    ("Placed", _) => "confirm",
                    _ => "ship",
                };
                let body = if action == "cancel" { json!({"reason": "chaos"}) } else { json!({}) };
                (format!("/commands/orders/{id}/{action}"), body)
            }
            None => {
                let lines: Vec<Value> = (0..=dice.roll(3))
                    .map(|l| json!({"sku": format!("SKU-{}", dice.roll(50)), "name": format!("Item {l}"),
                        "quantity": 1 + dice.roll(5), "unitPrice": format!("{}.{:02}", 1 + dice.roll(99), dice.roll(100))}))
                    .collect();
                let body = json!({"customerId": format!("cust-{}", dice.roll(200)), "currency": "EUR", "items": lines});
                ("/commands/orders".to_owned(), body)
            }
        };
        // Two in three commands carry an idempotency key, are retried on 503 or no answer, and one in ten of those
        // is sent once more after its answer, which must be the same answer.
        let key = (dice.roll(3) > 0).then(|| Uuid::new_v4().to_string());
        let replay = key.is_some() && dice.roll(10) == 0;
        let (http, url, clients) = (suite.http.clone(), suite.command_url(&path), clients.clone());
        tasks.spawn(async move { send(&http, &url, &body, key.as_deref(), replay, &clients).await });
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

async fn send(
    http: &reqwest::Client,
    url: &str,
    body: &Value,
    key: Option<&str>,
    replay: bool,
    clients: &Mutex<Clients>,
) {
    let attempts = if key.is_some() { 20 } else { 1 };
    let mut first: Option<(u16, Value)> = None;
    for attempt in 0..attempts {
        let mut request = http.post(url).json(body);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let answer = request.send().await;
        let status = answer.as_ref().ok().map(|r| r.status().as_u16());
        {
            let Ok(mut c) = clients.lock() else { return };
            c.sent += 1;
            if attempt > 0 {
                c.retries += 1;
            }
            match (&answer, status) {
                (Ok(_), Some(status)) => *c.statuses.entry(status).or_default() += 1,
                (Err(err), _) if err.is_timeout() || attempt + 1 == attempts => {
                    c.unanswered.push(format!("{url}: {err}"));
                    return;
                }
                _ => {}
            }
        }
        if let (Ok(response), Some(status)) = (answer, status) {
            let json: Value = response.json().await.unwrap_or(Value::Null);
            if status != 503 || attempt + 1 == attempts {
                if (200..300).contains(&status) {
                    record(clients, &json);
                }
                first = Some((status, json));
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (Some((status, json)), true, Some(key)) = (first, replay, key) else { return };
    if !(200..300).contains(&status) {
        return;
    }
    let again = http.post(url).json(body).header("idempotency-key", key).send().await;
    let answer = match again {
        Ok(response) => {
            let same_status = response.status().as_u16();
            Ok((same_status, response.json::<Value>().await.unwrap_or(Value::Null)))
        }
        Err(err) => Err(err),
    };
    let Ok(mut c) = clients.lock() else { return };
    c.sent += 1;
    match answer {
        Ok((same_status, same)) => {
            *c.statuses.entry(same_status).or_default() += 1;
            c.replays_checked += 1;
            if same_status != status || same != json {
                c.findings.push(format!("replay of {url} answered {same_status} {same}, first {status} {json}"));
            }
        }
        Err(err) => c.unanswered.push(format!("{url} (replay): {err}")),
    }
}

fn record(clients: &Mutex<Clients>, answer: &Value) {
    let (Some(id), Some(version), Some(status)) = (
        answer["orderId"].as_str().and_then(|id| Uuid::parse_str(id).ok()),
        answer["sequenceId"].as_i64(),
        answer["status"].as_str(),
    ) else {
        return;
    };
    let Ok(mut c) = clients.lock() else { return };
    c.accepted.push((id, version));
    match c.orders.iter_mut().find(|(known, _, _)| *known == id) {
        Some(order) if order.2 < version => *order = (id, status.to_owned(), version),
        Some(_) => {}
        None => c.orders.push((id, status.to_owned(), version)),
    }
}

/// What the faults did, besides striking.
#[derive(Default)]
struct Injected {
    faults: BTreeMap<&'static str, u32>,
    /// Waiting reads made while the view-changed exchange was gone: (answered 200, made).
    notice_reads: (u32, u32),
    findings: Vec<String>,
}

/// Deploys the query side once the command side has taken orders alone for a while, then injects the faults one
/// after another, spread over `driving`, at least once each.
async fn inject(suite: &Suite, driving: Duration) -> anyhow::Result<Injected> {
    const FAULTS: [&str; 10] = [
        "relay SIGKILL",
        "query-service SIGKILL",
        "rabbitmq stop_app",
        "postgres restart",
        "mongo SIGKILL",
        "duplicates+reorder",
        "poison",
        "rebuild+rolling restart+mongo SIGKILL",
        "notice exchange deleted",
        "newer writer's event",
    ];
    let mut injected = Injected::default();
    let started = Instant::now();
    // Spread over a short run; every 4 s in a long one, so that each fault strikes again and again.
    let gap = (driving / (FAULTS.len() as u32 + 2)).clamp(Duration::from_secs(2), Duration::from_secs(4));
    tokio::time::sleep(gap).await;
    eprintln!(
        "chaos: t={:>5.1} s  query side deployed (the command side took orders alone)",
        started.elapsed().as_secs_f64()
    );
    suite.deploy_query_side().await?;
    injected.faults.insert("query side deployed late", 1);
    let mut round = 0usize;
    loop {
        let fault = FAULTS[round % FAULTS.len()];
        if round >= FAULTS.len() && started.elapsed() + gap > driving {
            break;
        }
        tokio::time::sleep(gap).await;
        eprintln!("chaos: t={:>5.1} s  {fault}", started.elapsed().as_secs_f64());
        match fault {
            "relay SIGKILL" => {
                suite.kill("relay")?;
                tokio::time::sleep(Duration::from_millis(500)).await;
                suite.spawn("relay")?;
            }
            "query-service SIGKILL" => {
                suite.kill("query")?;
                tokio::time::sleep(Duration::from_millis(500)).await;
                suite.spawn("query")?;
                suite.wait_live(suite.query_port).await?;
            }
            "rabbitmq stop_app" => {
                run_tool("rabbitmqctl", &["-q", "stop_app"])?;
                tokio::time::sleep(Duration::from_secs(3)).await;
                run_tool("rabbitmqctl", &["-q", "start_app"])?;
                wait_until("RabbitMQ accepts connections again", Duration::from_secs(60), || port_open(5672)).await?;
            }
            "postgres restart" => {
                let version = std::fs::read_dir("/etc/postgresql")?
                    .filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .next()
                    .context("no cluster under /etc/postgresql")?;
                run_tool("pg_ctlcluster", &["--skip-systemctl-redirect", &version, "main", "restart", "-m", "fast"])?;
                wait_until("PostgreSQL accepts connections again", Duration::from_secs(60), || port_open(5432)).await?;
            }
            "mongo SIGKILL" => restart_mongo(suite).await?,
            "duplicates+reorder" => publish_duplicates(suite).await?,
            "poison" => publish_poison(suite).await?,
            "rebuild+rolling restart+mongo SIGKILL" => rebuild_while_rolling(suite, &mut injected.findings).await?,
            "notice exchange deleted" => {
                let (reached, made) = reads_without_notices(suite).await?;
                injected.notice_reads.0 += reached;
                injected.notice_reads.1 += made;
                if reached < made {
                    injected.findings.push(format!(
                        "{} waiting read(s) answered 202 while the notice exchange was gone",
                        made - reached
                    ));
                }
            }
            _ => commit_as_newer_writer(suite).await?,
        }
        *injected.faults.entry(fault).or_insert(0) += 1;
        round += 1;
    }
    Ok(injected)
}

async fn restart_mongo(suite: &Suite) -> anyhow::Result<()> {
    suite.kill("mongo")?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    suite.spawn("mongo")?;
    wait_until("the MongoDB-wire server listens again", Duration::from_secs(60), || port_open(suite.mongo_port)).await
}

/// A rebuild started on the second replica; then a rolling restart: the first replica stopped (SIGTERM) and started
/// again, MongoDB SIGKILLed and restarted, the second replica (the rebuild's builder) stopped and started. That
/// rebuild either switches or is given up; then another is started (once the first is cleared) and left to run
/// beside the faults that follow, so that the run usually ends on a rebuilt generation, which the checks then read.
async fn rebuild_while_rolling(suite: &Suite, findings: &mut Vec<String>) -> anyhow::Result<()> {
    let rebuild = suite.query_url("query2", "/admin/read-models/orders/rebuild");
    let answer = suite.http.post(&rebuild).bearer_auth(ADMIN_TOKEN).send().await?;
    if ![202, 409].contains(&answer.status().as_u16()) {
        findings.push(format!("starting a rebuild answered {}", answer.status()));
    }
    suite.stop_gracefully("query").await?;
    suite.spawn("query")?;
    suite.wait_ready(suite.query_port).await?;
    restart_mongo(suite).await?;
    suite.stop_gracefully("query2").await?;
    suite.spawn("query2")?;
    suite.wait_ready(suite.query2_port).await?;
    let until = Instant::now() + Duration::from_secs(90);
    loop {
        let status = suite.http.post(&rebuild).bearer_auth(ADMIN_TOKEN).send().await.map(|a| a.status().as_u16());
        match status {
            Ok(202) => return Ok(()),
            // The interrupted rebuild is still claimed until it is given up, or the janitor clears it.
            Ok(409 | 503) | Err(_) if Instant::now() < until => tokio::time::sleep(Duration::from_secs(2)).await,
            other => {
                findings.push(format!("a rebuild after the rolling restart could not start: {other:?}"));
                return Ok(());
            }
        }
    }
}

/// Deletes the view-changed exchange (every replica's binding goes with it, and the notices sent meanwhile are
/// dropped), places an order and reads it on both replicas with `minVersion` (at least one of them does not project
/// it, so only a notice or its own look at MongoDB can wake it). Returns (answered 200, reads made).
async fn reads_without_notices(suite: &Suite) -> anyhow::Result<(u32, u32)> {
    let connection = Connection::connect(AMQP, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    let notices = query_service::read::notices::notice_exchange(&suite.exchange);
    channel.exchange_delete(notices.as_str().into(), Default::default()).await?;
    let _ = connection.close(200, "notices deleted".into()).await;
    let placed = suite.place("chaos-notice").await?;
    let (id, version) = (placed["orderId"].as_str().unwrap_or_default(), placed["sequenceId"].as_i64().unwrap_or(1));
    let read = |which: &'static str| {
        let url = suite.query_url(which, &format!("/queries/orders/{id}?minVersion={version}&waitMs=15000"));
        let http = suite.http.clone();
        async move { http.get(url).timeout(Duration::from_secs(20)).send().await.map(|r| r.status().as_u16()) }
    };
    let (first, second) = tokio::join!(read("query"), read("query2"));
    let reached = [first, second].iter().filter(|status| matches!(status, Ok(200))).count() as u32;
    Ok((reached, 2))
}

/// Commits, as a newer command-service deployed first would, a change to an order with its event in schema
/// version 3 (which this build cannot read): the projector dead-letters it and records a gap, and the order's view
/// stays at its last readable version.
async fn commit_as_newer_writer(suite: &Suite) -> anyhow::Result<()> {
    let placed = suite.place("chaos-newer").await?;
    let id = Uuid::parse_str(placed["orderId"].as_str().unwrap_or_default())?;
    let pool = sqlx::PgPool::connect(&format!("{POSTGRES}/{}", suite.database)).await?;
    let mut tx = pool.begin().await?;
    // The append barrier, as every writer of the outbox takes it (0x61707064, "appd").
    sqlx::query("select pg_advisory_xact_lock_shared(1634758756)").execute(&mut *tx).await?;
    let version: i64 = sqlx::query_scalar(
        "update customer_order set version = version + 1, status = 'Confirmed', updated_at = now()
         where id = $1 returning version",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "insert into outbox (event_id, event_type, schema_version, order_id, order_version, payload, occurred_at)
         select $1, 'OrderConfirmed', 3, order_id, $2,
                payload || jsonb_build_object('status', 'Confirmed', 'loyaltyTier', 'gold'), now()
         from outbox where order_id = $3 and order_version = 1",
    )
    .bind(Uuid::now_v7())
    .bind(version)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    pool.close().await;
    Ok(())
}

async fn channel_with_confirms() -> anyhow::Result<(Connection, lapin::Channel)> {
    let connection = Connection::connect(AMQP, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    Ok((connection, channel))
}

async fn publish(channel: &lapin::Channel, exchange: &str, kind: &str, body: &[u8]) -> anyhow::Result<()> {
    let properties = BasicProperties::default()
        .with_type(kind.into())
        .with_content_type("application/json".into())
        .with_delivery_mode(2);
    let confirm = channel
        .basic_publish(exchange.into(), kind.into(), BasicPublishOptions::default(), body, properties)
        .await?
        .await?;
    ensure!(confirm.is_ack(), "the broker refused a message");
    Ok(())
}

/// The newest 100 logged events, published again twice each, newest first (duplicates, out of order).
async fn publish_duplicates(suite: &Suite) -> anyhow::Result<()> {
    let feed = suite.feed(0, 5000).await?;
    let events = feed["data"].as_array().cloned().unwrap_or_default();
    let (connection, channel) = channel_with_confirms().await?;
    for envelope in events.iter().rev().take(100).chain(events.iter().rev().take(100)) {
        let kind = envelope["eventType"].as_str().unwrap_or("OrderPlaced");
        publish(&channel, &suite.exchange, kind, &serde_json::to_vec(envelope)?).await?;
    }
    let _ = connection.close(200, "duplicates sent".into()).await;
    Ok(())
}

/// Messages no projector can read, plus one of a schema version from the future.
async fn publish_poison(suite: &Suite) -> anyhow::Result<()> {
    let (connection, channel) = channel_with_confirms().await?;
    for body in POISON {
        publish(&channel, &suite.exchange, "OrderPlaced", body).await?;
    }
    let mut future = system_tests::sample_envelope(Uuid::new_v4(), 1, 1);
    future["schemaVersion"] = json!(99);
    publish(&channel, &suite.exchange, "OrderPlaced", &serde_json::to_vec(&future)?).await?;
    let _ = connection.close(200, "poison sent".into()).await;
    Ok(())
}

/// Every unreadable message (poison, and the newer writer's events) is in the dead-letter queue with its reason; `query-service dlq redrive` moves them back
/// once, together with logged events dead-lettered by an earlier build (put there here, as such a build would
/// have): those are applied (changing nothing, their views are newer) and leave the queue, the poison returns with
/// `x-redrive-count` 1. Returns (dead letters found, redriven, findings).
async fn dead_letter_checks(suite: &Suite, expected: u32) -> anyhow::Result<(u32, u32, Vec<String>)> {
    let mut findings = Vec::new();
    let dlq = format!("{}.dlq", suite.queue);
    let (connection, channel) = channel_with_confirms().await?;
    let (count, reasons) = inspect_dead_letters(&connection, &dlq).await?;
    if count != expected {
        findings.push(format!("{count} dead letters, {expected} unreadable messages published or logged"));
    }
    if reasons.iter().any(|(reason, _)| reason.is_empty()) {
        findings.push("a dead letter without x-dead-letter-reason".to_owned());
    }
    // Logged events an earlier build could not read.
    let feed = suite.feed(0, 3).await?;
    let readable = feed["data"].as_array().cloned().unwrap_or_default();
    for envelope in &readable {
        let mut headers = FieldTable::default();
        headers.insert("x-dead-letter-reason".into(), AMQPValue::LongString(LongString::from("unsupported schema")));
        let properties = BasicProperties::default()
            .with_type(envelope["eventType"].as_str().unwrap_or("OrderPlaced").into())
            .with_headers(headers)
            .with_delivery_mode(2);
        channel
            .basic_publish(
                "".into(),
                dlq.as_str().into(),
                BasicPublishOptions::default(),
                &serde_json::to_vec(envelope)?,
                properties,
            )
            .await?
            .await?;
    }
    let output = Command::new(binary("query-service")?)
        .args(["dlq", "redrive"])
        .env("AMQP_URL", AMQP)
        .env("AMQP_EXCHANGE", &suite.exchange)
        .env("AMQP_QUEUE", &suite.queue)
        .env("RUST_LOG", "error")
        .output()?;
    ensure!(output.status.success(), "dlq redrive failed: {}", String::from_utf8_lossy(&output.stderr));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let redriven: u32 = stderr
        .lines()
        .find_map(|line| line.strip_prefix("redrove "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if redriven != count + readable.len() as u32 {
        findings.push(format!("redrive moved {redriven}, the queue held {}", count + readable.len() as u32));
    }
    // The poison comes back (once the projector has seen it again), redriven once; the readable events do not.
    let until = Instant::now() + Duration::from_secs(60);
    let (after, reasons) = loop {
        let (after, reasons) = inspect_dead_letters(&connection, &dlq).await?;
        if after >= count || Instant::now() > until {
            break (after, reasons);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (settled, _) = inspect_dead_letters(&connection, &dlq).await?;
    if after != count || settled != count {
        findings.push(format!("after the redrive {settled} dead letters, expected the {count} poison messages"));
    }
    if reasons.iter().any(|(_, redrives)| *redrives != 1) {
        findings.push("a redriven poison message without x-redrive-count 1".to_owned());
    }
    let _ = connection.close(200, "dlq checked".into()).await;
    Ok((count, redriven, findings))
}

/// The dead letters' count and (reason, redrive count) of each, leaving them in the queue.
async fn inspect_dead_letters(connection: &Connection, dlq: &str) -> anyhow::Result<(u32, Vec<(String, i64)>)> {
    let inspector = connection.create_channel().await?;
    let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
    let count = inspector.queue_declare(dlq.into(), passive, FieldTable::default()).await?.message_count();
    let mut reasons = Vec::new();
    while let Some(message) = inspector.basic_get(dlq.into(), BasicGetOptions::default()).await? {
        let headers = message.delivery.properties.headers().clone().unwrap_or_default();
        let reason = match headers.inner().get("x-dead-letter-reason") {
            Some(AMQPValue::LongString(reason)) => reason.to_string(),
            _ => String::new(),
        };
        let redrives = match headers.inner().get(query_service::projection::REDRIVE_COUNT) {
            Some(AMQPValue::LongLongInt(n)) => n.to_owned(),
            _ => 0,
        };
        reasons.push((reason, redrives));
        if reasons.len() as u32 >= count {
            break;
        }
    }
    // Closing the channel returns every unacked message to the queue.
    inspector.close(200, "inspected".into()).await?;
    Ok((count, reasons))
}

/// Compares the write store, the log and the views, order by order.
async fn check(
    suite: &Suite,
    pool: &sqlx::PgPool,
    views: &mongodb::Collection<OrderView>,
    clients: &Clients,
) -> anyhow::Result<Checked> {
    use futures_util::TryStreamExt as _;
    let mut findings = Vec::new();
    // The log, through the event feed: (order, version) → (event, published).
    let published: HashMap<i64, bool> =
        sqlx::query_as::<_, (i64, bool)>("select sequence, published_at is not null from outbox")
            .fetch_all(pool)
            .await?
            .into_iter()
            .collect();
    let mut log: HashMap<(Uuid, i64), OrderEvent> = HashMap::new();
    // Logged events this build cannot read (a newer writer's): (order, version).
    let mut unreadable: Vec<(Uuid, i64)> = Vec::new();
    let mut after = 0i64;
    loop {
        let page = suite.feed(after, 5000).await?;
        let events = page["data"].as_array().cloned().unwrap_or_default();
        if events.is_empty() {
            break;
        }
        for envelope in events {
            let event = match shared_events::decode(&serde_json::to_vec(&envelope)?) {
                Ok(event) => event,
                Err(shared_events::DecodeError::UnknownSchemaVersion { .. }) => {
                    let order = envelope["orderId"].as_str().and_then(|id| Uuid::parse_str(id).ok());
                    unreadable.push((order.context("orderId")?, envelope["version"].as_i64().context("version")?));
                    continue;
                }
                Err(err) => bail!("a logged event does not decode: {err}"),
            };
            if log.insert((event.order_id, event.version), event).is_some() {
                findings.push("two logged events for one (order, version)".to_owned());
            }
        }
        after = page["metadata"]["nextAfter"].as_i64().context("nextAfter")?;
    }
    let written: Vec<(Uuid, i64, String)> =
        sqlx::query_as("select id, version, status from customer_order").fetch_all(pool).await?;
    let stored: HashMap<String, OrderView> =
        views.find(mongodb::bson::doc! {}).await?.map_ok(|v| (v.id.clone(), v)).try_collect().await?;

    let mut lost = 0;
    for (id, version) in &clients.accepted {
        let event = log.get(&(*id, *version));
        let is_published = event.is_some_and(|e| published.get(&e.sequence).copied().unwrap_or(false));
        let in_view = stored.get(&id.to_string()).is_some_and(|v| v.version >= *version);
        if !is_published || !in_view {
            lost += 1;
            findings.push(format!(
                "accepted {id} v{version}: logged {}, published {is_published}, in view {in_view}",
                event.is_some()
            ));
        }
    }
    let mut mismatched = 0;
    let mut held_back = 0;
    for (id, version, status) in &written {
        // An order whose newest event this build cannot read keeps the view of its newest readable one.
        let readable = (1..=*version).rev().find(|v| !unreadable.contains(&(*id, *v)));
        if readable != Some(*version) {
            held_back += 1;
            let newest = readable.and_then(|v| log.get(&(*id, v)));
            if newest.map(OrderView::from_event).as_ref() != stored.get(&id.to_string()) {
                mismatched += 1;
                findings.push(format!("view of {id} is not its newest readable event (v{readable:?})"));
            }
            continue;
        }
        let newest = log.get(&(*id, *version));
        let expected = newest.map(OrderView::from_event);
        let view = stored.get(&id.to_string());
        if newest.is_none_or(|e| e.state.status.as_str() != status) || expected.as_ref() != view {
            mismatched += 1;
            if mismatched <= 5 {
                findings
                    .push(format!("view of {id} (write model v{version} {status}) is {view:?}, expected {expected:?}"));
            }
        }
    }
    let mut invented = 0;
    for view in stored.values() {
        let logged = Uuid::parse_str(&view.id).ok().and_then(|id| log.get(&(id, view.version)));
        if logged.is_none_or(|e| e.sequence != view.last_sequence) {
            invented += 1;
            findings.push(format!("view {} at v{} matches no logged event", view.id, view.version));
        }
    }
    if stored.len() != written.len() {
        findings.push(format!("{} views for {} orders", stored.len(), written.len()));
    }
    if clients.accepted.is_empty() {
        bail!("no command was accepted: the suite did not run");
    }
    let events = log.len() + unreadable.len();
    Ok(Checked { orders: written.len(), views: stored.len(), events, lost, mismatched, invented, held_back, findings })
}
