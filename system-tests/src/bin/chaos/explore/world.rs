//! The deployment of one seed: its MongoDB-wire server and service processes (children it can stop and start), its
//! names, and the credentials its clients use.

use anyhow::{ensure, Context as _};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use system_tests::proxy::Proxy;
use system_tests::Names;

use super::plan::{Link, Process, Topology, PROJECTIONS};
use super::servers::Servers;
use crate::suite::{binary, port_open, terminate, wait_until};
use crate::ADMIN_TOKEN;
use system_tests::free_port;

/// The customers the clients order for (each has a token of its own with `AUTH_MODE=jwt`).
pub const CUSTOMERS: usize = 8;

/// `STALL_AFTER_S` of every process: short, so that a short run can see a stall reported.
pub const STALL_AFTER_S: u64 = 10;

const SECRET: &str = "explorer-hs256-secret-of-at-least-32-bytes";
const ISSUER: &str = "http://explorer";
const AUDIENCE: &str = "orders";

pub struct World {
    pub servers: Arc<Servers>,
    pub names: Names,
    pub topology: Topology,
    mongo_dir: PathBuf,
    mongo_port: u16,
    command_ports: Vec<u16>,
    query_ports: Vec<u16>,
    /// Each replica's `PROJECTIONS` now (an action may change them).
    projections: Mutex<Vec<Vec<&'static str>>>,
    /// `PROJECTOR_PARTITIONS` now (the topology's, until an action changes the split).
    partitions: AtomicU16,
    /// `RELAY_ENABLED` of the command-services started from now on.
    relays: AtomicBool,
    procs: Mutex<HashMap<String, Child>>,
    /// What each service process was started responsible for: the projections of a replica, `relay` for a
    /// command-service running its relay.
    runs: Mutex<HashMap<String, Vec<String>>>,
    /// Each process's connections to the broker and (a replica's) to the MongoDB server go through a proxy of its
    /// own, which an action can make go silent.
    proxies: HashMap<(String, Link), Proxy>,
    pub http: reqwest::Client,
    /// With `AUTH_MODE=jwt`: a staff token (every scope) and one token per customer.
    staff: Option<String>,
    customer_tokens: Vec<String>,
}

impl World {
    /// Starts the MongoDB-wire server and every process of `topology`, and waits until each serves.
    pub async fn start(servers: Arc<Servers>, seed: u64, topology: Topology) -> anyhow::Result<Self> {
        let names = Names { postgres: servers.postgres_url(), ..Names::new("explore") };
        let mongo_dir = std::env::temp_dir().join(format!("explore-mongo-{}", names.database));
        std::fs::create_dir_all(&mongo_dir)?;
        let (staff, customer_tokens) = if topology.jwt { tokens()? } else { (None, Vec::new()) };
        let mongo_port = free_port()?;
        let mut proxies = HashMap::new();
        for process in processes(&topology) {
            let broker = ([127, 0, 0, 1], servers.amqp_port()).into();
            proxies.insert((process.to_string(), Link::Broker), Proxy::start(broker).await);
            if matches!(process, Process::Query(_)) {
                proxies.insert(
                    (process.to_string(), Link::Mongo),
                    Proxy::start(([127, 0, 0, 1], mongo_port).into()).await,
                );
            }
        }
        let world = Self {
            servers,
            names,
            mongo_dir,
            mongo_port,
            command_ports: (0..topology.commands).map(|_| free_port()).collect::<Result<_, _>>()?,
            query_ports: topology.replicas.iter().map(|_| free_port()).collect::<Result<_, _>>()?,
            projections: Mutex::new(topology.replicas.clone()),
            partitions: AtomicU16::new(topology.partitions),
            relays: AtomicBool::new(true),
            topology,
            procs: Mutex::new(HashMap::new()),
            runs: Mutex::new(HashMap::new()),
            proxies,
            http: reqwest::Client::builder().timeout(Duration::from_secs(20)).build()?,
            staff,
            customer_tokens,
        };
        eprintln!("explore: seed {seed}: {}", world.topology);
        world.spawn_mongo()?;
        wait_until("the MongoDB-wire server listens", Duration::from_secs(60), || port_open(world.mongo_port)).await?;
        for process in world.processes() {
            world.spawn(process)?;
            if process == Process::Command(0) {
                world.wait_for(process, "/health/live").await?;
            }
        }
        for process in world.processes() {
            world.wait_for(process, "/health/live").await?;
        }
        Ok(world)
    }

    /// Every service process of the topology.
    pub fn processes(&self) -> Vec<Process> {
        processes(&self.topology)
    }

    /// The proxy between `process` and the server of `link`, if it has one.
    pub fn proxy(&self, process: Process, link: Link) -> Option<&Proxy> {
        self.proxies.get(&(process.to_string(), link))
    }

    /// The port `process` reaches the server of `link` on: its proxy's.
    fn port_of(&self, process: Process, link: Link) -> u16 {
        let direct = match link {
            Link::Broker => self.servers.amqp_port(),
            Link::Mongo => self.mongo_port,
        };
        self.proxy(process, link).map_or(direct, |proxy| proxy.port)
    }

    pub fn customer(&self, n: usize) -> String {
        format!("cust-{}", n % CUSTOMERS)
    }

    /// The bearer token of a customer's requests (`None` without auth).
    pub fn customer_token(&self, n: usize) -> Option<&str> {
        self.customer_tokens.get(n % CUSTOMERS).map(String::as_str)
    }

    /// The bearer token of requests about every customer (`None` without auth).
    pub fn staff_token(&self) -> Option<&str> {
        self.staff.as_deref()
    }

    /// The bearer token of the admin endpoints.
    pub fn admin_token(&self) -> &str {
        self.staff.as_deref().unwrap_or(ADMIN_TOKEN)
    }

    /// A replica's `PROJECTIONS` now.
    pub fn projections_of(&self, replica: usize) -> Vec<&'static str> {
        self.projections.lock().map(|p| p.get(replica).cloned().unwrap_or_default()).unwrap_or_default()
    }

    pub fn set_projections(&self, replica: usize, projections: Vec<&'static str>) {
        if let Ok(mut all) = self.projections.lock() {
            if let Some(now) = all.get_mut(replica) {
                *now = projections;
            }
        }
    }

    /// `PROJECTOR_PARTITIONS` now.
    pub fn partitions(&self) -> u16 {
        self.partitions.load(Ordering::SeqCst)
    }

    /// `PROJECTOR_PARTITIONS` of the processes started from now on.
    pub fn set_partitions(&self, partitions: u16) {
        self.partitions.store(partitions, Ordering::SeqCst);
    }

    /// Whether the command-services started from now on run their relays.
    pub fn relays(&self) -> bool {
        self.relays.load(Ordering::SeqCst)
    }

    /// `RELAY_ENABLED` of the command-services started from now on.
    pub fn set_relays(&self, enabled: bool) {
        self.relays.store(enabled, Ordering::SeqCst);
    }

    /// Whether every projection runs on some replica now.
    pub fn every_projection_runs(&self) -> bool {
        PROJECTIONS.iter().all(|p| (0..self.query_ports.len()).any(|r| self.projections_of(r).contains(p)))
    }

    pub fn url(&self, process: Process, path: &str) -> String {
        let port = match process {
            Process::Command(i) => self.command_ports[i],
            Process::Query(i) => self.query_ports[i],
        };
        format!("http://127.0.0.1:{port}{path}")
    }

    pub fn mongodb_uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true&retryWrites=false", self.mongo_port)
    }

    fn spawn_mongo(&self) -> anyhow::Result<()> {
        let secantusd = std::env::var("SECANTUSD").unwrap_or_else(|_| ".venv/bin/secantusd-py".to_owned());
        let mut command = Command::new(secantusd);
        command
            .args(["--host", "127.0.0.1", "--port", &self.mongo_port.to_string(), "--log-level", "WARNING"])
            .arg("--storage-path")
            .arg(&self.mongo_dir);
        self.launch("mongo", command)
    }

    /// SIGKILLs the MongoDB-wire server and starts it again on its data.
    pub async fn restart_mongo(&self) -> anyhow::Result<()> {
        self.kill("mongo")?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.spawn_mongo()?;
        wait_until("the MongoDB-wire server listens again", Duration::from_secs(60), || port_open(self.mongo_port))
            .await
    }

    /// What `process` was started responsible for (see [`World::spawn`]).
    pub fn runs(&self, process: Process) -> Vec<String> {
        self.runs.lock().map(|runs| runs.get(&process.to_string()).cloned().unwrap_or_default()).unwrap_or_default()
    }

    /// Starts (or starts again) a service process.
    pub fn spawn(&self, process: Process) -> anyhow::Result<()> {
        let runs = match process {
            Process::Command(_) if self.relays() => vec![system_tests::history::RELAY.to_owned()],
            Process::Command(_) => Vec::new(),
            Process::Query(i) => self.projections_of(i).iter().map(|p| (*p).to_owned()).collect(),
        };
        if let Ok(mut all) = self.runs.lock() {
            all.insert(process.to_string(), runs);
        }
        let mut command = match process {
            Process::Command(i) => {
                let mut c = Command::new(binary("command-service")?);
                c.env("HTTP_ADDR", format!("127.0.0.1:{}", self.command_ports[i]))
                    .env("RELAY_MODE", self.topology.relay_mode)
                    .env("RELAY_ENABLED", self.relays.load(Ordering::SeqCst).to_string());
                c
            }
            Process::Query(i) => {
                let mut c = Command::new(binary("query-service")?);
                c.env("HTTP_ADDR", format!("127.0.0.1:{}", self.query_ports[i]))
                    .env("PROJECTIONS", self.projections_of(i).join(","))
                    .env(
                        "MONGODB_URI",
                        format!(
                            "mongodb://127.0.0.1:{}/?directConnection=true&retryWrites=false",
                            self.port_of(process, Link::Mongo)
                        ),
                    )
                    .env("MONGODB_DATABASE", &self.names.database)
                    .env("AMQP_QUEUE", &self.names.queue)
                    .env("EVENT_FEED_URL", self.url(Process::Command(0), "/events"));
                if let Some(staff) = &self.staff {
                    c.env("EVENT_FEED_TOKEN", staff);
                }
                c
            }
        };
        command
            .env("DATABASE_URL", self.names.database_url())
            .env("AMQP_URL", format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port_of(process, Link::Broker)))
            .env("AMQP_EXCHANGE", &self.names.exchange)
            .env("PROJECTOR_PARTITIONS", self.partitions().to_string())
            .env("ADMIN_TOKEN", ADMIN_TOKEN)
            .env("STALL_AFTER_S", STALL_AFTER_S.to_string());
        if self.topology.jwt {
            auth_env(&mut command);
        }
        self.launch(&process.to_string(), command)
    }

    /// Spawns `command` as `name`, its output in `CHAOS_LOG_DIR/<database>/<name>.log` if that is set.
    fn launch(&self, name: &str, mut command: Command) -> anyhow::Result<()> {
        command.stdout(Stdio::null());
        match std::env::var_os("CHAOS_LOG_DIR") {
            Some(dir) => {
                let dir = std::path::Path::new(&dir).join(&self.names.database);
                std::fs::create_dir_all(&dir)?;
                let log =
                    std::fs::OpenOptions::new().create(true).append(true).open(dir.join(format!("{name}.log")))?;
                let level = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned());
                command.env("RUST_LOG", level).stdout(log.try_clone()?).stderr(log);
            }
            None => {
                command.env("RUST_LOG", "error").stderr(Stdio::null());
            }
        }
        let child = command.spawn().with_context(|| format!("starting {name}"))?;
        self.procs.lock().map_err(|_| anyhow::anyhow!("process table poisoned"))?.insert(name.to_owned(), child);
        Ok(())
    }

    /// Whether `process` is running (started, not stopped since, and not ended on its own).
    pub fn running(&self, process: Process) -> bool {
        let Ok(mut procs) = self.procs.lock() else { return false };
        procs.get_mut(&process.to_string()).is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// The service processes that ended on their own since they were started, with how; each is forgotten (a
    /// supervisor starts it again).
    pub fn ended(&self) -> Vec<(Process, String)> {
        let Ok(mut procs) = self.procs.lock() else { return Vec::new() };
        let mut ended = Vec::new();
        for process in self.processes() {
            let name = process.to_string();
            if let Some(Ok(Some(status))) = procs.get_mut(&name).map(Child::try_wait) {
                procs.remove(&name);
                ended.push((process, status.to_string()));
            }
        }
        ended
    }

    /// SIGKILL.
    pub fn kill(&self, name: &str) -> anyhow::Result<()> {
        let child = self.procs.lock().map_err(|_| anyhow::anyhow!("process table poisoned"))?.remove(name);
        if let Some(mut child) = child {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// SIGTERM, then SIGKILL if it has not exited within 30 s.
    pub async fn terminate(&self, name: &str) -> anyhow::Result<()> {
        let child = self.procs.lock().map_err(|_| anyhow::anyhow!("process table poisoned"))?.remove(name);
        match child {
            Some(child) => terminate(child).await,
            None => Ok(()),
        }
    }

    /// Waits until `path` of `process` answers 200 (90 s at most).
    pub async fn wait_for(&self, process: Process, path: &str) -> anyhow::Result<()> {
        let until = Instant::now() + Duration::from_secs(90);
        loop {
            let answer = self.http.get(self.url(process, path)).send().await;
            if answer.is_ok_and(|r| r.status() == 200) {
                return Ok(());
            }
            ensure!(Instant::now() < until, "{process}{path} not 200 within 90 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops every process and removes what the run made.
    pub async fn stop(&self) {
        for process in self.processes() {
            let _ = self.kill(&process.to_string());
        }
        let _ = self.kill("mongo");
        self.names
            .remove(
                &self.servers.amqp_url(),
                "mongodb://127.0.0.1:9/?directConnection=true&serverSelectionTimeoutMS=100",
            )
            .await;
        let _ = std::fs::remove_dir_all(&self.mongo_dir);
    }
}

/// Every service process of `topology`.
fn processes(topology: &Topology) -> Vec<Process> {
    let commands = (0..topology.commands).map(Process::Command);
    commands.chain((0..topology.replicas.len()).map(Process::Query)).collect()
}

impl Drop for World {
    /// No process, and not the MongoDB-wire server's folder, outlives the run, however it ends (interrupted too).
    fn drop(&mut self) {
        if let Ok(procs) = self.procs.get_mut() {
            for child in procs.values_mut() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.mongo_dir);
    }
}

/// `AUTH_MODE=jwt` with an HS256 secret, the same on every process.
fn auth_env(command: &mut Command) {
    command
        .env("AUTH_MODE", "jwt")
        .env("AUTH_HS256_SECRET", SECRET)
        .env("AUTH_ISSUER", ISSUER)
        .env("AUTH_AUDIENCE", AUDIENCE)
        .env("AUTH_TICKET_SECRET", SECRET)
        // The clients are few and busy: the per-client command rate is not what is explored.
        .env("COMMAND_RATE_PER_CLIENT", "1000")
        .env("COMMAND_BURST_PER_CLIENT", "1000");
}

/// A staff token with every scope and a token of each customer, from `command-service dev-token`.
fn tokens() -> anyhow::Result<(Option<String>, Vec<String>)> {
    let token = |customer: &str, scopes: &[&str]| -> anyhow::Result<String> {
        let mut command = Command::new(binary("command-service")?);
        command.args(["dev-token", "--customer", customer, "--ttl-secs", "86400"]);
        for scope in scopes {
            command.args(["--scope", scope]);
        }
        auth_env(&mut command);
        let output = command.env("RUST_LOG", "error").output()?;
        ensure!(output.status.success(), "dev-token: {}", String::from_utf8_lossy(&output.stderr));
        Ok(String::from_utf8(output.stdout)?.trim().to_owned())
    };
    let staff = token("explorer-staff", &["orders:read:any", "orders:write:any", "orders:admin", "events:read"])?;
    let customers = (0..CUSTOMERS).map(|n| token(&format!("cust-{n}"), &[])).collect::<anyhow::Result<_>>()?;
    Ok((Some(staff), customers))
}
