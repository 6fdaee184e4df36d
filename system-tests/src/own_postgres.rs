//! A PostgreSQL server of a test's own, for what cannot be tried on the shared one: server settings that would hurt
//! the other tests (a replication slot invalidated by `max_slot_wal_keep_size`). Made with the machine's `initdb`
//! in a temporary folder, on a free port, trusting local connections; stopped and removed when it drops.

use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A running server of one test.
#[derive(Debug)]
pub struct OwnPostgres {
    bin: PathBuf,
    data: PathBuf,
    pub port: u16,
}

/// The folder of the machine's PostgreSQL server programs (the newest version's).
fn bin_dir() -> anyhow::Result<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("no PostgreSQL under /usr/lib/postgresql (scripts/dev-services installs it)")?
        .filter_map(|entry| entry.ok().map(|entry| entry.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().context("no initdb under /usr/lib/postgresql/*/bin")
}

/// Runs a server program as `postgres` (the programs refuse to run as root).
fn as_postgres(program: &Path, args: &[&str]) -> anyhow::Result<()> {
    let root = Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
    let mut command = if root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    };
    let output = command.args(args).output().with_context(|| format!("running {}", program.display()))?;
    anyhow::ensure!(
        output.status.success(),
        "{} failed: {}",
        program.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

impl OwnPostgres {
    /// Starts a new server with `settings` (`name=value`, as `postgres -c` takes them).
    pub fn start(settings: &[&str]) -> anyhow::Result<Self> {
        let bin = bin_dir()?;
        let data = std::env::temp_dir().join(format!("own-postgres-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&data)?;
        let _ = Command::new("chown").args(["postgres:postgres"]).arg(&data).status();
        let data_arg = data.to_string_lossy().into_owned();
        as_postgres(&bin.join("initdb"), &["-D", &data_arg, "-A", "trust", "-U", "postgres", "--no-sync"])?;
        let port = crate::free_port()?;
        let mut options = format!("-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={data_arg}");
        for setting in settings {
            options.push_str(&format!(" -c {setting}"));
        }
        let log = data.join("server.log").to_string_lossy().into_owned();
        let server = Self { bin, data, port };
        as_postgres(&server.bin.join("pg_ctl"), &["-D", &data_arg, "-o", &options, "-l", &log, "-w", "start"])?;
        Ok(server)
    }

    /// The URL of this server, without a database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    /// Restarts the server (fast shutdown: sessions are ended, as a crash or an operator's restart ends them) with
    /// the settings it was started with; returns once it takes connections.
    pub fn restart(&self) -> anyhow::Result<()> {
        let data = self.data.to_string_lossy().into_owned();
        // Its output to the log, as at the start: the server would otherwise hold this call's pipes open.
        let log = self.data.join("server.log").to_string_lossy().into_owned();
        as_postgres(&self.bin.join("pg_ctl"), &["-D", &data, "-l", &log, "-m", "fast", "-w", "restart"])
    }

    /// Waits until the server takes connections (it does once `start` returned; after a restart, soon).
    pub async fn ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if sqlx::PgPool::connect(&format!("{}/postgres", self.url())).await.is_ok() {
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "the server on port {} did not answer", self.port);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let data = self.data.to_string_lossy().into_owned();
        let _ = as_postgres(&self.bin.join("pg_ctl"), &["-D", &data, "-m", "immediate", "-w", "stop"]);
        let _ = std::fs::remove_dir_all(&self.data);
    }
}
