//! The run's processes and names: the services and the MongoDB-wire server as child processes it can kill, and
//! the helpers that wait for them.

use anyhow::{ensure, Context as _};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use system_tests::{free_port, Names};

use crate::{ADMIN_TOKEN, AMQP, PARTITIONS, QUERY2_PROJECTIONS};

/// Names, processes and clients of one run.
pub struct Suite {
    /// The run's Postgres and Mongo database, exchange and queue.
    pub names: Names,
    pub mongo_dir: PathBuf,
    pub mongo_port: u16,
    pub command_port: u16,
    pub query_port: u16,
    pub query2_port: u16,
    pub procs: Mutex<HashMap<&'static str, Child>>,
    /// `RELAY_MODE` of the command-service and relay processes.
    pub relay_mode: &'static str,
    pub http: reqwest::Client,
}

/// A service binary: beside the chaos binary, or in `CHAOS_BIN_DIR` (to run another build's services, such as an
/// earlier release's).
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let dir = match std::env::var_os("CHAOS_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::current_exe()?.parent().context("the chaos binary has a directory")?.to_owned(),
    };
    let path = dir.join(name);
    ensure!(path.exists(), "{} is missing: build the workspace's binaries first", path.display());
    Ok(path)
}

pub fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

pub async fn wait_until(what: &str, deadline: Duration, mut ready: impl FnMut() -> bool) -> anyhow::Result<()> {
    let until = Instant::now() + deadline;
    while !ready() {
        ensure!(Instant::now() < until, "{what} within {} s", deadline.as_secs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// SIGTERM to `child`, then SIGKILL if it has not exited within 30 s (at once if the signal cannot be sent).
pub async fn terminate(mut child: Child) -> anyhow::Result<()> {
    if let Err(err) = run_tool("kill", &["-TERM", &child.id().to_string()]) {
        child.kill()?;
        child.wait()?;
        return Err(err);
    }
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

/// RabbitMQ's application started (again), waited for until it takes connections.
pub async fn broker_up() -> anyhow::Result<()> {
    run_tool("rabbitmqctl", &["-q", "start_app"])?;
    wait_until("RabbitMQ accepts connections again", Duration::from_secs(60), || port_open(5672)).await
}

/// This machine's PostgreSQL cluster restarted (fast shutdown), waited for until it takes connections.
pub async fn restart_postgres() -> anyhow::Result<()> {
    let version = std::fs::read_dir("/etc/postgresql")?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .context("no cluster under /etc/postgresql")?;
    run_tool("pg_ctlcluster", &["--skip-systemctl-redirect", &version, "main", "restart", "-m", "fast"])?;
    wait_until("PostgreSQL accepts connections again", Duration::from_secs(60), || port_open(5432)).await
}

pub fn run_tool(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new(program).args(args).stdout(Stdio::null()).status().with_context(|| program.to_owned())?;
    ensure!(status.success(), "{program} {} failed: {status}", args.join(" "));
    Ok(())
}

impl Suite {
    pub async fn start(id: &str, relay_mode: &'static str) -> anyhow::Result<Self> {
        let mongo_dir = std::env::temp_dir().join(format!("chaos-mongo-{id}"));
        std::fs::create_dir_all(&mongo_dir)?;
        let suite = Self {
            names: Names::new("chaos"),
            mongo_dir,
            mongo_port: free_port()?,
            command_port: free_port()?,
            query_port: free_port()?,
            query2_port: free_port()?,
            procs: Mutex::new(HashMap::new()),
            relay_mode,
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
    pub async fn deploy_query_side(&self) -> anyhow::Result<()> {
        self.spawn("query")?;
        self.spawn("query2")?;
        self.wait_ready(self.query_port).await?;
        self.wait_ready(self.query2_port).await
    }

    pub fn query_url(&self, which: &str, path: &str) -> String {
        let port = if which == "query2" { self.query2_port } else { self.query_port };
        format!("http://127.0.0.1:{port}{path}")
    }

    pub fn mongodb_uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true&retryWrites=false", self.mongo_port)
    }

    /// Starts (or restarts) one process of the run.
    pub fn spawn(&self, which: &'static str) -> anyhow::Result<()> {
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
                c.env("HTTP_ADDR", format!("127.0.0.1:{}", self.command_port))
                    .env("RELAY_ENABLED", "false")
                    .env("RELAY_MODE", self.relay_mode);
                c
            }
            _ => {
                let port = if which == "query2" { self.query2_port } else { self.query_port };
                let mut c = Command::new(binary("query-service")?);
                if which == "query2" {
                    c.env("PROJECTIONS", QUERY2_PROJECTIONS);
                }
                c.env("HTTP_ADDR", format!("127.0.0.1:{port}"))
                    .env("MONGODB_URI", self.mongodb_uri())
                    .env("MONGODB_DATABASE", &self.names.database)
                    .env("AMQP_QUEUE", &self.names.queue)
                    .env("EVENT_FEED_URL", format!("{command_url}/events"));
                c
            }
        };
        command
            .env("DATABASE_URL", self.names.database_url())
            .env("AMQP_URL", AMQP)
            .env("AMQP_EXCHANGE", &self.names.exchange)
            .env("PROJECTOR_PARTITIONS", PARTITIONS.to_string())
            .env("ADMIN_TOKEN", ADMIN_TOKEN)
            .stdout(Stdio::null());
        // `CHAOS_LOG_DIR`: every process's output appended to `<dir>/<process>.log` (`RUST_LOG` as set, `info` if
        // not).
        match std::env::var_os("CHAOS_LOG_DIR") {
            Some(dir) => {
                std::fs::create_dir_all(&dir)?;
                let path = std::path::Path::new(&dir).join(format!("{which}.log"));
                let log = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
                let level = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned());
                command.env("RUST_LOG", level).stdout(log.try_clone()?).stderr(log);
            }
            None => {
                command.env("RUST_LOG", "error").stderr(Stdio::null());
            }
        }
        let child = command.spawn().with_context(|| format!("starting {which}"))?;
        self.procs.lock().map_err(|_| anyhow::anyhow!("process table poisoned"))?.insert(which, child);
        Ok(())
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill(&self, which: &'static str) -> anyhow::Result<()> {
        let mut procs = self.procs.lock().map_err(|_| anyhow::anyhow!("process table poisoned"))?;
        if let Some(mut child) = procs.remove(which) {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// SIGTERM, as a rolling deployment stops a replica: it drains and exits (SIGKILL after 30 s).
    pub async fn stop_gracefully(&self, which: &'static str) -> anyhow::Result<()> {
        let child = self.procs.lock().map_err(|_| anyhow::anyhow!("process table poisoned"))?.remove(which);
        match child {
            Some(child) => terminate(child).await,
            None => Ok(()),
        }
    }

    pub async fn wait_live(&self, port: u16) -> anyhow::Result<()> {
        self.wait_status(port, "/health/live").await
    }

    pub async fn wait_ready(&self, port: u16) -> anyhow::Result<()> {
        self.wait_status(port, "/health/ready").await
    }

    pub async fn wait_status(&self, port: u16, path: &str) -> anyhow::Result<()> {
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

    pub async fn stop(&self) {
        for which in ["relay", "query", "query2", "command"] {
            let _ = self.kill(which);
        }
        // The run's own MongoDB-wire server goes with its data directory; the rest is removed by name.
        let _ = self.kill("mongo");
        self.names.remove(AMQP, "mongodb://127.0.0.1:9/?directConnection=true&serverSelectionTimeoutMS=100").await;
        let _ = std::fs::remove_dir_all(&self.mongo_dir);
    }

    pub fn command_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.command_port)
    }

    /// Places an order for the suite itself (not one of the clients'), retrying while the command side is not back.
    pub async fn place(&self, customer: &str) -> anyhow::Result<Value> {
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
    pub async fn feed(&self, after: i64, limit: u32) -> anyhow::Result<Value> {
        let url = self.command_url(&format!("/events?after={after}&limit={limit}"));
        Ok(self.http.get(url).bearer_auth(ADMIN_TOKEN).send().await?.json().await?)
    }
}
