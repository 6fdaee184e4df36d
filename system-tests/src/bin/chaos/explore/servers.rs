//! The broker and the PostgreSQL server a run uses. By default this machine's: the faults stop and restart them, so
//! such a run must be alone. With `--own-servers`, a RabbitMQ node and a PostgreSQL server the run starts for itself
//! on free ports (set up as `scripts/dev-services` sets up the machine's) and removes at the end: such a run may go
//! on beside the tests, or beside another explorer.

use system_tests::own_postgres::OwnPostgres;
use system_tests::own_rabbitmq::OwnRabbitMq;

use crate::suite::{broker_up, port_open, restart_postgres, run_tool, wait_until};
use crate::AMQP;
use std::time::Duration;

/// The settings the relay's `wal` mode needs (`scripts/dev-services` gives the machine's server the same).
const POSTGRES_SETTINGS: [&str; 4] =
    ["wal_level=logical", "max_replication_slots=64", "max_wal_senders=64", "max_connections=200"];

pub enum Servers {
    Machine,
    Own { rabbitmq: OwnRabbitMq, postgres: OwnPostgres },
}

impl Servers {
    /// This machine's servers, or (`own`) new ones, started and taking connections.
    pub async fn start(own: bool) -> anyhow::Result<Self> {
        if !own {
            return Ok(Self::Machine);
        }
        let rabbitmq = tokio::task::spawn_blocking(OwnRabbitMq::start).await??;
        let postgres = tokio::task::block_in_place(|| OwnPostgres::start(&POSTGRES_SETTINGS))?;
        postgres.ready().await?;
        eprintln!("explore: own servers: RabbitMQ on {}, PostgreSQL on {}", rabbitmq.port, postgres.port);
        Ok(Self::Own { rabbitmq, postgres })
    }

    pub fn amqp_port(&self) -> u16 {
        match self {
            Self::Machine => 5672,
            Self::Own { rabbitmq, .. } => rabbitmq.port,
        }
    }

    /// The broker's URL (the default vhost).
    pub fn amqp_url(&self) -> String {
        match self {
            Self::Machine => AMQP.to_owned(),
            Self::Own { rabbitmq, .. } => rabbitmq.url(),
        }
    }

    pub fn postgres_port(&self) -> u16 {
        match self {
            Self::Machine => 5432,
            Self::Own { postgres, .. } => postgres.port,
        }
    }

    /// The PostgreSQL server's URL, without a database.
    pub fn postgres_url(&self) -> String {
        match self {
            Self::Machine => system_tests::postgres_server(),
            Self::Own { postgres, .. } => postgres.url(),
        }
    }

    /// RabbitMQ `stop_app` (its worker thread given up to it while `rabbitmqctl` runs): the node runs on, its listeners closed and every connection dropped.
    pub fn stop_broker(&self) -> anyhow::Result<()> {
        match self {
            Self::Machine => tokio::task::block_in_place(|| run_tool("rabbitmqctl", &["-q", "stop_app"])),
            Self::Own { rabbitmq, .. } => tokio::task::block_in_place(|| rabbitmq.ctl(&["stop_app"])),
        }
    }

    /// RabbitMQ `start_app`, waited for until it takes connections.
    pub async fn start_broker(&self) -> anyhow::Result<()> {
        match self {
            Self::Machine => broker_up().await,
            Self::Own { rabbitmq, .. } => {
                tokio::task::block_in_place(|| rabbitmq.ctl(&["start_app"]))?;
                let port = rabbitmq.port;
                wait_until("RabbitMQ accepts connections again", Duration::from_secs(60), || port_open(port)).await
            }
        }
    }

    /// PostgreSQL restarted (fast shutdown), waited for until it takes connections.
    pub async fn restart_postgres(&self) -> anyhow::Result<()> {
        match self {
            Self::Machine => restart_postgres().await,
            Self::Own { postgres, .. } => {
                tokio::task::block_in_place(|| postgres.restart())?;
                postgres.ready().await
            }
        }
    }
}
