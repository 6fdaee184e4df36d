//! The explorer's clients and samplers, all recording what they saw into one history: writers that send commands
//! of every kind and then read what each returned (single reads at `minVersion`, lists, summaries and the dashboard at
//! `minPosition`, on a random replica), view streams, and samplers of readiness, the read models' queues and the
//! outbox.

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use system_tests::history::{dashboard_of, AtPosition, Entry, History, Seen, SummarySeen, ViewSeen};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::plan::{dice, Process, PROJECTIONS};
use super::world::{World, CUSTOMERS};
use crate::clients::Dice;
use crate::watch::Broker;

/// The history as it is written, with the run's clock.
pub struct Recorder {
    started: Instant,
    history: Mutex<History>,
}

impl Recorder {
    pub fn new() -> Self {
        Self { started: Instant::now(), history: Mutex::new(History::default()) }
    }

    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub fn record(&self, client: u32, seen: Seen) {
        let at_ms = self.now_ms();
        if let Ok(mut history) = self.history.lock() {
            history.entries.push(Entry { at_ms, client, seen });
        }
    }

    pub fn history(&self) -> History {
        self.history.lock().map(|h| h.clone()).unwrap_or_default()
    }
}

/// Counts per kind of what the clients did, for the summary line.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub commands: u64,
    pub accepted: u64,
    pub orders: u64,
    pub lists: u64,
    pub summaries: u64,
    pub dashboards: u64,
    pub streams: u64,
}

impl Counts {
    pub fn of(history: &History) -> Self {
        let mut counts = Self::default();
        for entry in &history.entries {
            match &entry.seen {
                Seen::Command { accepted, .. } => {
                    counts.commands += 1;
                    counts.accepted += u64::from(accepted.is_some());
                }
                Seen::Order { status: 200, .. } => counts.orders += 1,
                Seen::List { status: 200, .. } => counts.lists += 1,
                Seen::Summary { status: 200 | 404, .. } => counts.summaries += 1,
                Seen::Dashboard { status: 200, .. } => counts.dashboards += 1,
                Seen::Stream { views, .. } if !views.is_empty() => counts.streams += 1,
                _ => {}
            }
        }
        counts
    }
}

/// Orders the clients know, per customer: (order, status, version).
type Known = Mutex<Vec<Vec<(Uuid, String, i64)>>>;

/// The history's client number of the view streams.
pub const STREAMS: u32 = 800;
/// The history's client number of the samplers (from here on, not clients).
pub const SAMPLER: u32 = 900;

/// The clients and samplers of a run: the writers stop first, the stream client and the samplers once the run has
/// quiesced and been read at the end.
pub struct Running {
    writers: (tokio::task::JoinSet<()>, CancellationToken),
    background: (tokio::task::JoinSet<()>, CancellationToken),
}

impl Running {
    /// Stops the writers and waits for them.
    pub async fn stop_writers(&mut self) {
        self.writers.1.cancel();
        while self.writers.0.join_next().await.is_some() {}
    }

    /// Stops everything and waits for it.
    pub async fn stop(mut self) {
        self.stop_writers().await;
        self.background.1.cancel();
        while self.background.0.join_next().await.is_some() {}
    }
}

/// Starts `writers` writing clients, a stream client and the samplers.
pub fn start(world: &Arc<World>, recorder: &Arc<Recorder>, seed: u64, writers: u32) -> Running {
    let known: Arc<Known> = Arc::new(Mutex::new(vec![Vec::new(); CUSTOMERS]));
    let (mut writing, writers_stop) = (tokio::task::JoinSet::new(), CancellationToken::new());
    for client in 1..=writers {
        let (world, recorder, known, stop) = (world.clone(), recorder.clone(), known.clone(), writers_stop.clone());
        let dice = dice(seed ^ (u64::from(client) << 32));
        writing.spawn(async move { write_and_read(&world, &recorder, &known, client, dice, &stop).await });
    }
    let (mut background, background_stop) = (tokio::task::JoinSet::new(), CancellationToken::new());
    let (w, r, k, s) = (world.clone(), recorder.clone(), known.clone(), background_stop.clone());
    background.spawn(async move { stream(&w, &r, &k, STREAMS, dice(seed ^ 0x57AE), &s).await });
    let (w, r, s) = (world.clone(), recorder.clone(), background_stop.clone());
    background.spawn(async move { sample(&w, &r, SAMPLER, &s).await });
    Running { writers: (writing, writers_stop), background: (background, background_stop) }
}

/// A bearer token, if any, on a request.
fn with_token(request: reqwest::RequestBuilder, token: Option<&str>) -> reqwest::RequestBuilder {
    match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    }
}

async fn write_and_read(
    world: &World,
    recorder: &Recorder,
    known: &Known,
    client: u32,
    mut dice: Dice,
    stop: &CancellationToken,
) {
    while !stop.is_cancelled() {
        let customer = dice.roll(CUSTOMERS as u64) as usize;
        if let Some((order, version, position)) = command(world, recorder, known, client, customer, &mut dice).await {
            read(world, recorder, client, customer, (order, version, position), &mut dice).await;
        }
        tokio::time::sleep(Duration::from_millis(100 + dice.roll(300))).await;
    }
}

/// One command for `customer` (a new order, or a step of one of its orders), sent until answered: with an
/// idempotency key (two in three) again on 503 or no answer, with the same key. Returns what a 2xx accepted.
async fn command(
    world: &World,
    recorder: &Recorder,
    known: &Known,
    client: u32,
    customer: usize,
    dice: &mut Dice,
) -> Option<(Uuid, i64, i64)> {
    let target = known.lock().ok().and_then(|k| {
        let orders = &k[customer];
        let open: Vec<_> = orders.iter().filter(|(_, s, _)| s == "Placed" || s == "Confirmed").cloned().collect();
        (!open.is_empty() && dice.roll(2) == 0).then(|| open[dice.roll(open.len() as u64) as usize].clone())
    });
    let (path, body) = match target {
        Some((id, status, _)) => {
            let step = match (status.as_str(), dice.roll(4)) {
                (_, 0) => "cancel",
                ("Placed", _) => "confirm",
                _ => "ship",
            };
            (format!("/commands/orders/{id}/{step}"), json!({}))
        }
        None => {
            let items: Vec<Value> = (0..=dice.roll(2))
                .map(|l| {
                    json!({"sku": format!("SKU-{}", dice.roll(20)), "name": format!("Item {l}"),
                        "quantity": 1 + dice.roll(3), "unitPrice": format!("{}.{:02}", 1 + dice.roll(50), dice.roll(100))})
                })
                .collect();
            let currency = if dice.roll(3) == 0 { "USD" } else { "EUR" };
            let body = json!({"customerId": world.customer(customer), "currency": currency, "items": items});
            ("/commands/orders".to_owned(), body)
        }
    };
    let key = (dice.roll(3) > 0).then(|| Uuid::new_v4().to_string());
    let process = Process::Command(dice.roll(world.topology.commands as u64) as usize);
    let attempts = if key.is_some() { 12 } else { 1 };
    for _ in 0..attempts {
        let mut request = with_token(world.http.post(world.url(process, &path)), world.customer_token(customer));
        if let Some(key) = &key {
            request = request.header("idempotency-key", key);
        }
        let answer = match request.json(&body).send().await {
            Ok(answer) => answer,
            Err(err) => {
                recorder.record(client, Seen::NoAnswer { what: format!("POST {path}: {err}") });
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let status = answer.status().as_u16();
        let retry_after = answer.headers().contains_key("retry-after");
        let json: Value = answer.json().await.unwrap_or(Value::Null);
        let accepted = (200..300).contains(&status).then(|| accepted(&json)).flatten();
        recorder.record(client, Seen::Command { path: path.clone(), status, retry_after, accepted });
        if let (Some((order, version, _)), Some(status)) = (accepted, json["status"].as_str()) {
            if let Ok(mut k) = known.lock() {
                let orders = &mut k[customer];
                match orders.iter_mut().find(|(id, _, _)| *id == order) {
                    Some(known) if known.2 < version => *known = (order, status.to_owned(), version),
                    Some(_) => {}
                    None => orders.push((order, status.to_owned(), version)),
                }
            }
        }
        if status != 503 {
            return accepted;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    None
}

/// (order, version, position) of a command's 2xx answer.
fn accepted(answer: &Value) -> Option<(Uuid, i64, i64)> {
    let order = Uuid::parse_str(answer["orderId"].as_str()?).ok()?;
    Some((order, answer["sequenceId"].as_i64()?, answer["position"].as_i64()?))
}

/// An answer's status, `Retry-After`, and body; `None`, recorded as such, when there is no answer.
async fn get(
    world: &World,
    recorder: &Recorder,
    client: u32,
    url: String,
    token: Option<&str>,
) -> Option<(u16, bool, Value)> {
    let answer = match with_token(world.http.get(&url), token).send().await {
        Ok(answer) => answer,
        Err(err) => {
            recorder.record(client, Seen::NoAnswer { what: format!("GET {url}: {err}") });
            return None;
        }
    };
    let status = answer.status().as_u16();
    let retry_after = answer.headers().contains_key("retry-after");
    Some((status, retry_after, answer.json().await.unwrap_or(Value::Null)))
}

fn at_position(min_position: i64, body: &Value) -> AtPosition {
    let missing: BTreeSet<i64> =
        body["metadata"]["missingPositions"].as_array().into_iter().flatten().filter_map(Value::as_i64).collect();
    AtPosition { min_position, missing }
}

/// One read of what a command returned, of a random kind, on a random replica.
async fn read(
    world: &World,
    recorder: &Recorder,
    client: u32,
    customer: usize,
    (order, version, position): (Uuid, i64, i64),
    dice: &mut Dice,
) {
    let replica = Process::Query(dice.roll(world.topology.replicas.len() as u64) as usize);
    let name = replica.to_string();
    let mine = world.customer_token(customer);
    let who = world.customer(customer);
    let seen = match dice.roll(5) {
        0 => {
            let url = world.url(replica, &format!("/queries/orders/{order}?minVersion={version}&waitMs=3000"));
            let Some((status, retry_after, body)) = get(world, recorder, client, url, mine).await else { return };
            let view = ViewSeen::of(&body["data"]);
            Seen::Order { replica: name, order, min_version: version, status, retry_after, view }
        }
        kind @ (1 | 2) => {
            let (filter, token, customer) = if kind == 1 {
                (format!("customerId={who}&limit=100"), mine, Some(who))
            } else {
                ("limit=50".to_owned(), world.staff_token(), None)
            };
            let url = world.url(replica, &format!("/queries/orders?{filter}&minPosition={position}&waitMs=3000"));
            let Some((status, retry_after, body)) = get(world, recorder, client, url, token).await else { return };
            let views = body["data"].as_array().into_iter().flatten().filter_map(ViewSeen::of).collect();
            let whole = body["metadata"]["nextCursor"].is_null();
            Seen::List { replica: name, customer, at: at_position(position, &body), status, retry_after, views, whole }
        }
        3 => {
            let url =
                world.url(replica, &format!("/queries/customers/{who}/summary?minPosition={position}&waitMs=3000"));
            let Some((status, retry_after, body)) = get(world, recorder, client, url, mine).await else { return };
            let summary = SummarySeen::of(&body["data"]);
            let at = at_position(position, &body);
            Seen::Summary { replica: name, customer: who, at, status, retry_after, summary }
        }
        _ => {
            let today = time::OffsetDateTime::now_utc().date();
            let day = |d: Option<time::Date>| d.map(|d| d.to_string()).unwrap_or_default();
            let (from, to) = (day(today.previous_day()), day(today.next_day()));
            let path = format!("/queries/dashboard/daily?from={from}&to={to}&minPosition={position}&waitMs=3000");
            let Some((status, retry_after, body)) =
                get(world, recorder, client, world.url(replica, &path), world.staff_token()).await
            else {
                return;
            };
            let rows = dashboard_of(&body["data"]).unwrap_or_default();
            Seen::Dashboard { replica: name, at: at_position(position, &body), status, retry_after, rows }
        }
    };
    recorder.record(client, seen);
}

/// Every few seconds, a known order's view stream on a random replica, read for three seconds.
async fn stream(
    world: &World,
    recorder: &Recorder,
    known: &Known,
    client: u32,
    mut dice: Dice,
    stop: &CancellationToken,
) {
    while !stop.is_cancelled() {
        tokio::time::sleep(Duration::from_millis(1000 + dice.roll(3000))).await;
        let customer = dice.roll(CUSTOMERS as u64) as usize;
        let order = known.lock().ok().and_then(|k| {
            let orders = &k[customer];
            (!orders.is_empty()).then(|| orders[dice.roll(orders.len() as u64) as usize].0)
        });
        let Some(order) = order else { continue };
        let replica = Process::Query(dice.roll(world.topology.replicas.len() as u64) as usize);
        let url = world.url(replica, &format!("/queries/orders/{order}/stream?minVersion=1"));
        let request = with_token(world.http.get(url), world.customer_token(customer)).timeout(Duration::from_secs(4));
        let mut answer = match request.send().await {
            Ok(answer) => answer,
            Err(err) => {
                recorder.record(client, Seen::NoAnswer { what: format!("the stream of {order}: {err}") });
                continue;
            }
        };
        let status = answer.status().as_u16();
        if status != 200 {
            let views = Vec::new();
            recorder.record(client, Seen::Stream { replica: replica.to_string(), order, status, views });
            continue;
        }
        let mut text = String::new();
        let until = tokio::time::Instant::now() + Duration::from_secs(3);
        while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(until, answer.chunk()).await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        // Only whole events: the last one may have been cut off when the reading stopped.
        let whole = text.rfind("\n\n").map_or("", |end| &text[..end]);
        let views = whole
            .split("\n\n")
            .filter(|event| event.lines().any(|l| l == "event: view"))
            .filter_map(|event| event.lines().find_map(|l| l.strip_prefix("data: ")))
            .filter_map(|data| serde_json::from_str::<Value>(data).ok())
            .filter_map(|body| ViewSeen::of(&body["data"]))
            .collect();
        recorder.record(client, Seen::Stream { replica: replica.to_string(), order, status, views });
    }
}

/// Every second: each process's readiness (asked of all at once), each read model queue's depth, and the oldest
/// unpublished outbox row; and, as a supervisor would, a process that ended on its own is started again.
async fn sample(world: &World, recorder: &Recorder, client: u32, stop: &CancellationToken) {
    let mut broker = Broker::new(&world.servers.amqp_url());
    let Ok(pool) = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy(&world.names.database_url())
    else {
        return;
    };
    while !stop.is_cancelled() {
        tokio::time::sleep(Duration::from_secs(1)).await;
        for (process, status) in world.ended() {
            recorder.record(client, Seen::Exited { process: process.to_string(), status });
            if let Err(err) = world.spawn(process) {
                eprintln!("explore: {process} could not be started again: {err:#}");
            }
        }
        let probes = world.processes().into_iter().map(|process| async move {
            let runs = world.runs(process);
            let url = world.url(process, "/health/ready");
            let answer = world.http.get(url).timeout(Duration::from_secs(3)).send().await;
            let ready = match answer {
                Ok(answer) if answer.status() == 200 => {
                    answer.json::<Value>().await.is_ok_and(|body| body["status"] == "ready")
                }
                _ => false,
            };
            Seen::Ready { process: process.to_string(), runs, ready }
        });
        for seen in futures_util::future::join_all(probes).await {
            recorder.record(client, seen);
        }
        for projection in PROJECTIONS {
            for partition in 0..world.partitions() {
                let queue = queue_of(world, projection, partition);
                if let Some((messages, consumers)) = broker.depth(&queue).await {
                    let projection = projection.to_owned();
                    recorder.record(client, Seen::Queue { queue, projection, messages, consumers });
                }
            }
        }
        let oldest: Result<Option<i64>, _> =
            sqlx::query_scalar("select min(sequence) from outbox_backlog").fetch_one(&pool).await;
        if let Ok(oldest_unpublished) = oldest {
            recorder.record(client, Seen::Outbox { oldest_unpublished });
        }
    }
    pool.close().await;
}

/// The queue of `partition` of `projection` in the split now (the projector's naming: the order views' queue is the
/// stem).
pub fn queue_of(world: &World, projection: &str, partition: u16) -> String {
    queue_in(world, world.partitions(), projection, partition)
}

/// The queue of `partition` of `projection` in a split into `partitions`.
pub fn queue_in(world: &World, partitions: u16, projection: &str, partition: u16) -> String {
    let stem = &world.names.queue;
    let queue = if projection == "orders" { stem.clone() } else { format!("{stem}.{projection}") };
    if partitions > 1 {
        format!("{queue}.{partition}")
    } else {
        queue
    }
}
