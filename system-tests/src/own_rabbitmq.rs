//! A RabbitMQ node of a run's own, beside this machine's: for a run that stops and starts its broker (the explorer)
//! while other work uses the machine's. Started with the machine's `rabbitmq-server` as node
//! `orders-own-<port>@localhost`, listening on 127.0.0.1 on a free port, its configuration, data and logs in a
//! temporary folder owned by the `rabbitmq` user; stopped and removed when it drops.

use anyhow::{ensure, Context as _};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A running node of one run.
#[derive(Debug)]
pub struct OwnRabbitMq {
    node: String,
    dir: PathBuf,
    pub port: u16,
}

impl OwnRabbitMq {
    /// Starts a new node and waits until it has booted (a minute at most).
    pub fn start() -> anyhow::Result<Self> {
        let port = crate::free_port()?;
        let node = format!("orders-own-{port}@localhost");
        let dir = std::env::temp_dir().join(format!("own-rabbitmq-{port}"));
        for sub in ["mnesia", "log"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.local = 127.0.0.1:{port}\nloopback_users = none\n"),
        )?;
        std::fs::write(dir.join("enabled_plugins"), "[].\n")?;
        let _ = Command::new("chown").args(["-R", "rabbitmq:rabbitmq"]).arg(&dir).status();
        let server = Self { node, dir, port };
        let status = Command::new("rabbitmq-server")
            .arg("-detached")
            .env("RABBITMQ_NODENAME", &server.node)
            .env("RABBITMQ_CONFIG_FILE", server.dir.join("rabbitmq.conf"))
            .env("RABBITMQ_DIST_PORT", crate::free_port()?.to_string())
            .env("RABBITMQ_MNESIA_BASE", server.dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", server.dir.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", server.dir.join("enabled_plugins"))
            .env("RABBITMQ_PID_FILE", server.dir.join("pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("rabbitmq-server (scripts/dev-services installs it)")?;
        ensure!(status.success(), "rabbitmq-server -detached failed: {status}");
        // `await_startup` fails at once on a node that is not up yet: wait until it answers at all first.
        let until = Instant::now() + Duration::from_secs(60);
        while server.ctl(&["ping"]).is_err() {
            ensure!(Instant::now() < until, "node {} did not answer within 60 s", server.node);
            std::thread::sleep(Duration::from_millis(500));
        }
        server.ctl(&["await_startup", "--timeout", "60"])?;
        Ok(server)
    }

    /// The URL of the node's default vhost.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// `rabbitmqctl -q -n <node> args…`.
    pub fn ctl(&self, args: &[&str]) -> anyhow::Result<()> {
        let status = Command::new("rabbitmqctl")
            .args(["-q", "-n", &self.node])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("rabbitmqctl")?;
        ensure!(status.success(), "rabbitmqctl -n {} {} failed: {status}", self.node, args.join(" "));
        Ok(())
    }
}

impl Drop for OwnRabbitMq {
    fn drop(&mut self) {
        let _ = self.ctl(&["stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
