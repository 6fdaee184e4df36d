//! The services under test, as real processes (release binaries), so that each one's memory can be read.

use anyhow::Context as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running service process.
#[derive(Debug)]
pub struct Service {
    pub name: String,
    child: Child,
    pub port: u16,
}

/// A binary built beside this one (`cargo build --release --workspace --bins`).
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.parent().context("the bench binary has a directory")?.join(name);
    anyhow::ensure!(path.exists(), "{} is missing: run scripts/bench (it builds the services first)", path.display());
    Ok(path)
}

impl Service {
    /// Starts `binary args` with `env`; waits for `/health/live` when it serves HTTP.
    pub async fn start(name: &str, binary_name: &str, args: &[&str], env: &[(&str, String)]) -> anyhow::Result<Self> {
        let port = system_tests::free_port()?;
        let mut command = Command::new(binary(binary_name)?);
        command.args(args).env("HTTP_ADDR", format!("127.0.0.1:{port}")).env("RUST_LOG", "warn");
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.stdout(Stdio::null()).stderr(Stdio::inherit()).spawn()?;
        let service = Self { name: name.to_owned(), child, port };
        if args.is_empty() {
            let http = reqwest::Client::new();
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let live = http.get(service.url("/health/live")).send().await;
                if live.is_ok_and(|r| r.status().is_success()) {
                    break;
                }
                anyhow::ensure!(Instant::now() < deadline, "{name} did not start within 60 s");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(service)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Peak resident set size so far (`VmHWM`), in MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        self.status_kib("VmHWM:") / 1024.0
    }

    /// Resident set size now (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> f64 {
        self.status_kib("VmRSS:")
    }

    /// A `kB` field of `/proc/<pid>/status` (0 when it cannot be read).
    fn status_kib(&self, field: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    }

    /// The process's `/proc/<pid>/stat`.
    pub fn stat_path(&self) -> String {
        format!("/proc/{}/stat", self.child.id())
    }

    /// User + system CPU time the process has used so far, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(&format!("/proc/{}/stat", self.child.id()))
    }

    /// SIGTERM, then wait (graceful shutdown).
    pub fn stop(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`: 100 on every Linux the services run on).
const TICKS_PER_SECOND: f64 = 100.0;

/// User + system CPU time of the process whose `stat` file is at `path`, in seconds (0 when it cannot be read).
pub fn cpu_seconds(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // The fields after the command name (which may hold spaces) start after its closing parenthesis; utime and
    // stime are the 14th and 15th fields of the line.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / TICKS_PER_SECOND
}

/// CPU time this bench process has used so far (the raw baselines run in it), in seconds.
pub fn own_cpu_seconds() -> f64 {
    cpu_seconds("/proc/self/stat")
}

/// The first process whose command line contains `needle` (not this one).
pub fn find_process(needle: &str) -> Option<u32> {
    let own = std::process::id();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        (pid != own && String::from_utf8_lossy(&cmdline).contains(needle)).then_some(pid)
    })
}
