//! Carrying out a step: each operator action or fault against the seed's deployment. An action the deployment
//! refuses (a rollback with nothing to roll back to, a rebuild already running) is fine; its answer is recorded,
//! and a 5xx other than a 503 with `Retry-After` is a finding like any client's.

use lapin::options::{BasicPublishOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use shared_events::Partition;
use std::time::Duration;
use system_tests::history::Seen;

use super::clients::{queue_in, queue_of, Recorder};
use super::plan::{Action, Exchange, Process};
use super::world::World;
use crate::suite::{binary, port_open};
use crate::POISON;

/// The history's client number of the steps.
pub const STEPS: u32 = 0;

pub async fn carry_out(world: &World, recorder: &Recorder, action: &Action) -> anyhow::Result<()> {
    match action {
        Action::Stop { process, kill, down_ms } => {
            let name = process.to_string();
            if *kill {
                world.kill(&name)?;
            } else {
                world.terminate(&name).await?;
            }
            tokio::time::sleep(Duration::from_millis(*down_ms)).await;
            world.spawn(*process)?;
        }
        Action::Reconfigure { replica, projections } => {
            let process = Process::Query(*replica);
            world.terminate(&process.to_string()).await?;
            world.set_projections(*replica, projections.clone());
            world.spawn(process)?;
        }
        Action::DeleteQueue { projection, partition } => {
            let queue = queue_of(world, projection, partition % world.partitions());
            broker(world, |channel| async move {
                channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await.map(|_| ())
            })
            .await?;
        }
        Action::DeleteExchange(which) => {
            let stem = &world.names.exchange;
            let exchange = match which {
                Exchange::Events => stem.clone(),
                Exchange::ReadModel(model) => shared_events::read_model::exchange_of(stem, model),
                Exchange::Projections => format!("{stem}.projections"),
                Exchange::ViewChanged => format!("{stem}.view-changed"),
            };
            broker(world, |channel| async move {
                channel.exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default()).await
            })
            .await?;
        }
        Action::Rebuild { projection, replica } | Action::Rollback { projection, replica } => {
            let verb = if matches!(action, Action::Rebuild { .. }) { "rebuild" } else { "rollback" };
            let path = format!("/admin/read-models/{projection}/{verb}");
            let url = world.url(Process::Query(*replica), &path);
            match world.http.post(url).bearer_auth(world.admin_token()).send().await {
                Ok(answer) => {
                    let (status, retry_after) =
                        (answer.status().as_u16(), answer.headers().contains_key("retry-after"));
                    recorder.record(STEPS, Seen::Command { path, status, retry_after, accepted: None });
                }
                Err(err) => recorder.record(STEPS, Seen::NoAnswer { what: format!("POST {path}: {err}") }),
            }
        }
        Action::Redrive => redrive(world).await?,
        Action::Poison => poison(world).await?,
        Action::Repartition { partitions } => repartition(world, *partitions).await?,
        Action::Silence { process, link, silent_ms } => {
            if let Some(proxy) = world.proxy(*process, *link) {
                proxy.go_silent();
                tokio::time::sleep(Duration::from_millis(*silent_ms)).await;
                proxy.speak_again();
            }
        }
        Action::BrokerDown { down_ms } => {
            world.servers.stop_broker()?;
            tokio::time::sleep(Duration::from_millis(*down_ms)).await;
            world.servers.start_broker().await?;
        }
        Action::PostgresRestart => world.servers.restart_postgres().await?,
        Action::MongoKill => world.restart_mongo().await?,
        Action::InvalidateSlot => invalidate_slot(world).await?,
        Action::DropSlot => drop_slot(world).await?,
    }
    Ok(())
}

/// Runs `work` on a channel of a connection of its own.
async fn broker<F, Fut>(world: &World, work: F) -> anyhow::Result<()>
where
    F: FnOnce(lapin::Channel) -> Fut,
    Fut: std::future::Future<Output = lapin::Result<()>>,
{
    broker_at(&world.servers.amqp_url(), BROKER_ACTION_WITHIN, work).await
}

/// How long a broker action may take before it is given up.
const BROKER_ACTION_WITHIN: Duration = Duration::from_secs(30);

/// Runs `work` on a channel of a connection of its own to the broker at `url`, given up after `within` (connecting,
/// the work and closing the connection included).
async fn broker_at<F, Fut>(url: &str, within: Duration, work: F) -> anyhow::Result<()>
where
    F: FnOnce(lapin::Channel) -> Fut,
    Fut: std::future::Future<Output = lapin::Result<()>>,
{
    let action = async {
        let connection = Connection::connect(url, ConnectionProperties::default()).await?;
        let result = work(connection.create_channel().await?).await;
        let _ = connection.close(200, "explorer action done".into()).await;
        result
    };
    given_up_after(within, "the broker action", async { Ok(action.await?) }).await
}

/// `action`'s outcome, or an error naming `what` once `within` has passed without one.
async fn given_up_after<T>(
    within: Duration,
    what: &str,
    action: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(within, action).await {
        Ok(outcome) => outcome,
        Err(_) => anyhow::bail!("{what} did not finish within {within:?}"),
    }
}

/// `query-service dlq redrive` of the deployment (given up after 60 s).
async fn redrive(world: &World) -> anyhow::Result<()> {
    let mut command = tokio::process::Command::new(binary("query-service")?);
    command
        .args(["dlq", "redrive"])
        .env("PROJECTOR_PARTITIONS", world.partitions().to_string())
        .env("AMQP_URL", world.servers.amqp_url())
        .env("AMQP_EXCHANGE", &world.names.exchange)
        .env("AMQP_QUEUE", &world.names.queue)
        .env("RUST_LOG", "error")
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(60), command.output()).await;
    match output {
        Ok(output) => {
            anyhow::ensure!(output?.status.success() || !port_open(world.servers.amqp_port()), "dlq redrive failed")
        }
        Err(_) => eprintln!("explore: dlq redrive did not finish within 60 s"),
    }
    Ok(())
}

/// Messages no projector can read, published to the events exchange and to every read model's exchange (whichever
/// this release has), on the first partition's routing key; given up after [`BROKER_ACTION_WITHIN`].
async fn poison(world: &World) -> anyhow::Result<()> {
    given_up_after(BROKER_ACTION_WITHIN, "publishing the poison", publish_poison(world)).await
}

async fn publish_poison(world: &World) -> anyhow::Result<()> {
    let stem = &world.names.exchange;
    let exchanges = std::iter::once(stem.clone())
        .chain(shared_events::READ_MODELS.iter().map(|m| shared_events::read_model::exchange_of(stem, m)));
    let key = Partition { index: 0, count: world.partitions() }.routing_key("OrderPlaced");
    let connection = Connection::connect(&world.servers.amqp_url(), ConnectionProperties::default()).await?;
    for exchange in exchanges {
        // A missing exchange closes the channel it is looked for on: one channel per exchange.
        let channel = connection.create_channel().await?;
        let passive = ExchangeDeclareOptions { passive: true, ..ExchangeDeclareOptions::default() };
        let kind = lapin::ExchangeKind::Topic;
        if channel.exchange_declare(exchange.as_str().into(), kind, passive, FieldTable::default()).await.is_err() {
            continue;
        }
        for body in POISON {
            let properties = BasicProperties::default().with_type("OrderPlaced".into()).with_delivery_mode(2);
            let options = BasicPublishOptions::default();
            channel.basic_publish(exchange.as_str().into(), key.as_str().into(), options, body, properties).await?;
        }
        let _ = channel.close(200, "poison sent".into()).await;
    }
    let _ = connection.close(200, "poison sent".into()).await;
    Ok(())
}

/// The deployment's replication slot dropped by hand: its walsender terminated, then the slot dropped before the
/// relay takes it again (tried a few times).
async fn drop_slot(world: &World) -> anyhow::Result<()> {
    let pool = sqlx::PgPool::connect(&world.names.database_url()).await?;
    for _ in 0..20 {
        let slots: Vec<(String, Option<i32>)> =
            sqlx::query_as("select slot_name::text, active_pid from pg_replication_slots where database = $1")
                .bind(&world.names.database)
                .fetch_all(&pool)
                .await?;
        let Some((slot, active)) = slots.into_iter().next() else { break };
        if let Some(pid) = active {
            sqlx::query("select pg_terminate_backend($1)").bind(pid).execute(&pool).await?;
        }
        if sqlx::query("select pg_drop_replication_slot($1)").bind(&slot).execute(&pool).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pool.close().await;
    Ok(())
}

/// Every relay stopped (SIGKILL), the slot invalidated by `max_slot_wal_keep_size`, the relays started again.
async fn invalidate_slot(world: &World) -> anyhow::Result<()> {
    let commands: Vec<Process> = world.processes().into_iter().filter(|p| matches!(p, Process::Command(_))).collect();
    for process in &commands {
        world.kill(&process.to_string())?;
    }
    let invalidated = crate::faults::invalidate_slots_of(&world.names.database_url(), &world.names.database).await;
    for process in &commands {
        world.spawn(*process)?;
    }
    invalidated
}

/// The documented procedure (docs/operations.md) for changing `PROJECTOR_PARTITIONS` (every projection made to run
/// somewhere first): the relays stopped (the command-services started again with `RELAY_ENABLED=false`: commands
/// are still taken), every queue of the split drained, the query-services stopped and started on the new split, the
/// queues it does not use deleted once empty, and the command-services started again with the new split and their
/// relays.
async fn repartition(world: &World, partitions: u16) -> anyhow::Result<()> {
    let changed = change_the_split(world, partitions).await;
    if !world.relays() {
        // Given up half way: the relays run again, as an operator would have them.
        world.set_relays(true);
        for process in world.processes().into_iter().filter(|p| matches!(p, Process::Command(_))) {
            world.terminate(&process.to_string()).await?;
            world.spawn(process)?;
        }
    }
    changed
}

async fn change_the_split(world: &World, partitions: u16) -> anyhow::Result<()> {
    let before = world.partitions();
    if partitions == before {
        return Ok(());
    }
    let (commands, replicas): (Vec<Process>, Vec<Process>) =
        world.processes().into_iter().partition(|p| matches!(p, Process::Command(_)));
    // Only projectors drain their queues: an operator changing the split runs every projection somewhere first.
    if !world.every_projection_runs() {
        world.terminate(&Process::Query(0).to_string()).await?;
        world.set_projections(0, super::plan::PROJECTIONS.to_vec());
        world.spawn(Process::Query(0))?;
    }
    world.set_relays(false);
    for process in &commands {
        world.terminate(&process.to_string()).await?;
        world.spawn(*process)?;
    }
    let every = |split: u16| {
        let queues = super::plan::PROJECTIONS.iter().flat_map(move |p| (0..split).map(move |i| (*p, i)));
        queues.map(|(projection, partition)| queue_in(world, split, projection, partition)).collect::<Vec<_>>()
    };
    // Not drained: the change is given up, as an operator following the procedure would.
    wait_until_empty(world, &every(before), Duration::from_secs(60)).await?;
    for process in &replicas {
        world.terminate(&process.to_string()).await?;
    }
    world.set_partitions(partitions);
    for process in &replicas {
        world.spawn(*process)?;
    }
    for process in &replicas {
        world.wait_for(*process, "/health/live").await?;
    }
    let kept = every(partitions);
    let unused: Vec<String> = every(before).into_iter().filter(|q| !kept.contains(q)).collect();
    if wait_until_empty(world, &unused, Duration::from_secs(30)).await.is_ok() {
        for queue in unused {
            broker(world, |channel| async move {
                channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await.map(|_| ())
            })
            .await?;
        }
    }
    world.set_relays(true);
    for process in &commands {
        world.terminate(&process.to_string()).await?;
        world.spawn(*process)?;
    }
    Ok(())
}

/// Waits until every one of `queues` that exists holds no message.
async fn wait_until_empty(world: &World, queues: &[String], deadline: Duration) -> anyhow::Result<()> {
    let until = std::time::Instant::now() + deadline;
    let mut broker = crate::watch::Broker::new(&world.servers.amqp_url());
    loop {
        let mut waiting = Vec::new();
        for queue in queues {
            if broker.messages(queue).await.is_some_and(|n| n > 0) {
                waiting.push(queue.as_str());
            }
        }
        if waiting.is_empty() {
            return Ok(());
        }
        anyhow::ensure!(std::time::Instant::now() < until, "{} still hold messages", waiting.join(", "));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A broker that takes the connection and never answers: the action is given up, not waited on for ever (the
    /// deletion of an exchange once hung a long run for half an hour).
    #[tokio::test]
    async fn a_broker_action_that_gets_no_answer_is_given_up() {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a listener");
        let url = format!("amqp://guest:guest@{}/%2f", silent.local_addr().expect("an address"));
        let held = tokio::spawn(async move {
            let mut taken = Vec::new();
            while let Ok((stream, _)) = silent.accept().await {
                taken.push(stream);
            }
        });
        let action = broker_at(&url, Duration::from_millis(500), |_| async { Ok(()) });
        let outcome = tokio::time::timeout(Duration::from_secs(10), action).await;
        held.abort();
        let err = outcome.expect("given up within its deadline").expect_err("no answer is a failure");
        assert!(err.to_string().contains("did not finish within"), "{err:#}");
    }
}
