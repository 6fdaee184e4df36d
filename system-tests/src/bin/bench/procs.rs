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

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
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
        let port = free_port();
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
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
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
