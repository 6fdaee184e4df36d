//! The end of a seed's run: everything started again (the broker, the stores, every process, every projection run
//! somewhere), the backlog drained, reads at the log's head recorded, the order views and the log read, and
//! `query-service verify` run.

use anyhow::Context as _;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use system_tests::history::{dashboard_of, AtPosition, Log, Logged, Seen, SummarySeen, ViewSeen, Violation, LOST};
use uuid::Uuid;

use super::clients::Recorder;
use super::plan::{Process, PROJECTIONS};
use super::world::World;
use crate::checks::{active_views, backlog};
use crate::suite::{binary, port_open, wait_until};
use crate::ADMIN_TOKEN;

/// The history's client number of the reads at the end.
pub const FINAL: u32 = 700;

/// How long the backlog may take to drain once everything is up again.
const DRAIN: Duration = Duration::from_secs(180);

/// Starts whatever is down, then waits for the backlog to drain and every process to answer ready with nothing
/// stalled or building; a violation if that does not come within [`DRAIN`].
pub async fn quiesce(world: &World, recorder: &Recorder) -> anyhow::Result<Vec<Violation>> {
    if !port_open(world.servers.amqp_port()) {
        world.servers.start_broker().await?;
    }
    let postgres = world.servers.postgres_port();
    wait_until("PostgreSQL accepts connections", Duration::from_secs(60), || port_open(postgres)).await?;
    if !world.relays() {
        // A change of the split that did not finish: its command-services run without relays.
        world.set_relays(true);
        for process in world.processes().into_iter().filter(|p| matches!(p, Process::Command(_))) {
            world.terminate(&process.to_string()).await?;
        }
    }
    if !world.every_projection_runs() {
        world.terminate(&Process::Query(0).to_string()).await?;
        world.set_projections(0, PROJECTIONS.to_vec());
    }
    for process in world.processes() {
        if !world.running(process) {
            world.spawn(process)?;
        }
    }
    for process in world.processes() {
        world.wait_for(process, "/health/live").await?;
    }
    let pool = sqlx::PgPool::connect(&world.names.database_url()).await?;
    let mongo = mongodb::Client::with_uri_str(world.mongodb_uri()).await?.database(&world.names.database);
    let until = Instant::now() + DRAIN;
    let mut violations = Vec::new();
    loop {
        let (unpublished, behind, building) = backlog(&pool, &mongo).await?;
        let mut unready = Vec::new();
        for process in world.processes() {
            if let Some(why) = not_ready(world, process).await {
                unready.push(format!("{process}: {why}"));
            }
        }
        if unpublished == 0 && behind == 0 && !building && unready.is_empty() {
            break;
        }
        if Instant::now() > until {
            violations.push(Violation {
                at_ms: recorder.now_ms(),
                invariant: LOST,
                detail: format!(
                    "not drained {} s after everything was up again: {unpublished} events unpublished, {behind} \
                     order views behind, rebuilding {building}, not ready: {}",
                    DRAIN.as_secs(),
                    unready.join("; ")
                ),
            });
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let head: i64 = sqlx::query_scalar("select coalesce(max(sequence), 0) from outbox").fetch_one(&pool).await?;
    pool.close().await;
    recorder.record(FINAL, Seen::Quiesced { head });
    Ok(violations)
}

/// Why `process` is not ready with nothing stalled or building, if it is not: its readiness answer.
async fn not_ready(world: &World, process: Process) -> Option<String> {
    let answer = world.http.get(world.url(process, "/health/ready")).timeout(Duration::from_secs(5)).send().await;
    let (status, body) = match answer {
        Ok(answer) => (answer.status().as_u16(), answer.json::<Value>().await.unwrap_or(Value::Null)),
        Err(err) => return Some(err.to_string()),
    };
    let stuck = ["stalled", "building"].iter().any(|reason| body["reasons"][reason].is_string());
    (status != 200 || stuck).then(|| format!("{status} {body}"))
}

/// Reads at the head on every replica: each customer's list and summary, the dashboard; then the order views as
/// stored.
pub async fn read_at_the_head(world: &World, recorder: &Recorder, log: &Log) -> anyhow::Result<()> {
    let head = log.head();
    let replicas = world.topology.replicas.len();
    // The first reads may still wait for the summary and the dashboard to catch up with the order views; once a
    // read on a replica has answered 202, the rest there do not wait (that replica is behind: a violation already).
    let get = |process: Process, path: String, token: Option<&str>, wait_ms: u32| {
        let separator = if path.contains('?') { '&' } else { '?' };
        let url = world.url(process, &format!("{path}{separator}minPosition={head}&waitMs={wait_ms}"));
        let request = world.http.get(url).timeout(Duration::from_secs(45));
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        async move {
            let answer = match request.send().await {
                Ok(answer) => answer,
                Err(err) => {
                    recorder.record(FINAL, Seen::NoAnswer { what: format!("a read at the head on {process}: {err}") });
                    return None;
                }
            };
            let status = answer.status().as_u16();
            let retry_after = answer.headers().contains_key("retry-after");
            Some((status, retry_after, answer.json::<Value>().await.unwrap_or(Value::Null)))
        }
    };
    for replica in (0..replicas).map(Process::Query) {
        let name = replica.to_string();
        let mut wait_ms = 30_000;
        let at = |body: &Value| AtPosition {
            min_position: head,
            missing: body["metadata"]["missingPositions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_i64)
                .collect(),
        };
        for n in 0..super::world::CUSTOMERS {
            let customer = world.customer(n);
            let token = world.customer_token(n);
            let path = format!("/queries/orders?customerId={customer}&limit=100");
            if let Some((status, retry_after, body)) = get(replica, path, token, wait_ms).await {
                wait_ms = if status == 200 { wait_ms } else { 0 };
                let views = body["data"].as_array().into_iter().flatten().filter_map(ViewSeen::of);
                let whole = body["metadata"]["nextCursor"].is_null();
                let (at, views) = (at(&body), views.collect());
                let customer = Some(customer.clone());
                recorder.record(
                    FINAL,
                    Seen::List { replica: name.clone(), customer, at, status, retry_after, views, whole },
                );
            }
            let path = format!("/queries/customers/{customer}/summary");
            if let Some((status, retry_after, body)) = get(replica, path, token, wait_ms).await {
                wait_ms = if status == 200 || status == 404 { wait_ms } else { 0 };
                let summary = SummarySeen::of(&body["data"]);
                let at = at(&body);
                recorder
                    .record(FINAL, Seen::Summary { replica: name.clone(), customer, at, status, retry_after, summary });
            }
        }
        let today = time::OffsetDateTime::now_utc().date();
        let day = |d: Option<time::Date>| d.map(|d| d.to_string()).unwrap_or_default();
        let (from, to) = (day(today.previous_day()), day(today.next_day()));
        let path = format!("/queries/dashboard/daily?from={from}&to={to}");
        if let Some((status, retry_after, body)) = get(replica, path, world.staff_token(), wait_ms).await {
            let rows = dashboard_of(&body["data"]).unwrap_or_default();
            recorder.record(FINAL, Seen::Dashboard { replica: name.clone(), at: at(&body), status, retry_after, rows });
        }
    }
    let mongo = mongodb::Client::with_uri_str(world.mongodb_uri()).await?.database(&world.names.database);
    use futures_util::TryStreamExt as _;
    let views = active_views(&mongo).await?;
    let versions: BTreeMap<Uuid, i64> = views
        .find(mongodb::bson::doc! {})
        .await?
        .try_collect::<Vec<_>>()
        .await?
        .into_iter()
        .filter_map(|v| Some((Uuid::parse_str(&v.id).ok()?, v.version)))
        .collect();
    recorder.record(FINAL, Seen::FinalViews { versions });
    Ok(())
}

/// The whole log, through the event feed of the first command-service.
pub async fn log(world: &World) -> anyhow::Result<Log> {
    let mut events = Vec::new();
    let mut after = 0i64;
    loop {
        let url = world.url(Process::Command(0), &format!("/events?after={after}&limit=5000"));
        let page: Value = world.http.get(url).bearer_auth(world.admin_token()).send().await?.json().await?;
        let data = page["data"].as_array().context("the feed's data")?;
        if data.is_empty() {
            break;
        }
        for envelope in data {
            let event = shared_events::decode(&serde_json::to_vec(envelope)?)?;
            events.push(Logged::of(&event));
        }
        after = page["metadata"]["nextAfter"].as_i64().context("nextAfter")?;
    }
    Ok(Log::new(events))
}

/// `query-service verify` of every read model: a violation if it finds anything.
pub async fn verify(world: &World, recorder: &Recorder) -> anyhow::Result<Option<Violation>> {
    let mut command = tokio::process::Command::new(binary("query-service")?);
    command
        .arg("verify")
        .env("PROJECTOR_PARTITIONS", world.partitions().to_string())
        .env("MONGODB_URI", world.mongodb_uri())
        .env("MONGODB_DATABASE", &world.names.database)
        .env("EVENT_FEED_URL", world.url(Process::Command(0), "/events"))
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("RUST_LOG", "error")
        .env("RUST_BACKTRACE", "0")
        .kill_on_drop(true);
    if let Some(staff) = world.staff_token() {
        command.env("EVENT_FEED_TOKEN", staff);
    }
    let output =
        tokio::time::timeout(Duration::from_secs(300), command.output()).await.context("verify ran 300 s")??;
    Ok((!output.status.success()).then(|| Violation {
        at_ms: recorder.now_ms(),
        invariant: LOST,
        detail: format!(
            "query-service verify: {} {}",
            String::from_utf8_lossy(&output.stdout).trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        ),
    }))
}
