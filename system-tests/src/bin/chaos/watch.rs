//! What the services say about themselves, held against what the broker shows, all through the run: a partition's
//! queue of a read model that holds events and has had no consumer for longer than the watchdog allows
//! (`STALL_AFTER_S`, 30 s by default, + 10 s) while a replica that runs its projection answers readiness `ready` —
//! not `degraded` — is a finding: a stage stuck while its process said it was fine. Also counts the stalled stages
//! the services did report.

use lapin::options::QueueDeclareOptions;
use lapin::{Connection, ConnectionProperties};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::suite::Suite;
use crate::{AMQP, PARTITIONS, QUERY2_PROJECTIONS};

/// Longest a queue with events may stay without a consumer while a replica running it says `ready`.
const UNCONSUMED_LIMIT: Duration = Duration::from_secs(40);

/// What the watch saw.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    pub findings: Vec<String>,
    /// Readiness answers that named a stalled stage, by service.
    pub stalls_reported: BTreeMap<&'static str, u32>,
    /// Queue samples the broker answered, and of those, queues holding events without a consumer.
    pub samples: (u32, u32),
}

pub struct Watch {
    task: tokio::task::JoinHandle<()>,
    seen: Arc<Mutex<Seen>>,
}

impl Watch {
    pub fn start(suite: &Suite) -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let services = [("query", suite.query_url("query", "")), ("query2", suite.query_url("query2", ""))];
        let (queue, http, shared) = (suite.names.queue.clone(), suite.http.clone(), seen.clone());
        let task = tokio::spawn(async move {
            let mut unconsumed_since: BTreeMap<String, Instant> = BTreeMap::new();
            let mut reported = BTreeSet::new();
            let mut broker = Broker::new(AMQP);
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let mut ready = BTreeMap::new();
                for (which, base) in &services {
                    let answer = http.get(format!("{base}/health/ready")).timeout(Duration::from_secs(5)).send().await;
                    let Ok(body) = (match answer {
                        Ok(answer) => answer.json::<Value>().await,
                        Err(err) => Err(err),
                    }) else {
                        continue;
                    };
                    ready.insert(*which, body["status"] == "ready");
                    if body["reasons"]["stalled"].is_string() {
                        if let Ok(mut seen) = shared.lock() {
                            *seen.stalls_reported.entry(*which).or_insert(0) += 1;
                        }
                    }
                }
                for model in shared_events::READ_MODELS {
                    for partition in 0..PARTITIONS {
                        let name = queue_of(&queue, model, partition);
                        let Some(waiting) = broker.unconsumed(&name).await else {
                            unconsumed_since.remove(&name);
                            continue;
                        };
                        if let Ok(mut seen) = shared.lock() {
                            seen.samples.0 += 1;
                            seen.samples.1 += u32::from(waiting);
                        }
                        if !waiting {
                            unconsumed_since.remove(&name);
                            continue;
                        }
                        let since = *unconsumed_since.entry(name.clone()).or_insert_with(Instant::now);
                        let says_ready = ready.iter().any(|(which, ready)| *ready && runs(which, model));
                        if since.elapsed() > UNCONSUMED_LIMIT && says_ready && reported.insert(name.clone()) {
                            if let Ok(mut seen) = shared.lock() {
                                seen.findings.push(format!(
                                    "{name} held events without a consumer for {:.0} s while a replica running \
                                     {model} answered ready",
                                    since.elapsed().as_secs_f64()
                                ));
                            }
                        }
                    }
                }
            }
        });
        Self { task, seen }
    }

    pub fn stop(self) -> Seen {
        self.task.abort();
        self.seen.lock().map(|seen| seen.clone()).unwrap_or_default()
    }
}

/// Whether replica `which` runs the projection of `model`.
fn runs(which: &str, model: &str) -> bool {
    which == "query" || QUERY2_PROJECTIONS.split(',').any(|p| p == model)
}

/// The queue of `partition` of `model` under `AMQP_QUEUE` = `stem`.
fn queue_of(stem: &str, model: &str, partition: u16) -> String {
    match query_service::projection::named(model) {
        Some(projection) => format!("{}.{partition}", query_service::projection::projection_queue(stem, projection)),
        None => format!("{stem}.{model}.{partition}"),
    }
}

/// The broker as the watch sees it: a connection and a channel, each opened again when lost (a passive declare of
/// a missing queue closes the channel; a broker outage, both).
pub struct Broker {
    url: String,
    connection: Option<Connection>,
    channel: Option<lapin::Channel>,
}

impl Broker {
    /// The broker at `url`, not connected to yet.
    pub fn new(url: &str) -> Self {
        Self { url: url.to_owned(), connection: None, channel: None }
    }

    /// Whether `queue` holds messages and has no consumer; `None` when that cannot be told now (the queue is
    /// missing, the broker is down).
    pub async fn unconsumed(&mut self, queue: &str) -> Option<bool> {
        let (messages, consumers) = self.depth(queue).await?;
        Some(messages > 0 && consumers == 0)
    }

    /// How many messages `queue` holds; `None` when that cannot be told now.
    pub async fn messages(&mut self, queue: &str) -> Option<u32> {
        self.depth(queue).await.map(|(messages, _)| messages)
    }

    /// (messages ready, consumers) of `queue`, by a passive declare; `None` when that cannot be told now.
    pub async fn depth(&mut self, queue: &str) -> Option<(u32, u32)> {
        if !self.connection.as_ref().is_some_and(|c| c.status().connected()) {
            self.channel = None;
            self.connection = Some(Connection::connect(&self.url, ConnectionProperties::default()).await.ok()?);
        }
        if !self.channel.as_ref().is_some_and(|c| c.status().connected()) {
            self.channel = Some(self.connection.as_ref()?.create_channel().await.ok()?);
        }
        let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
        let declared = self.channel.as_ref()?.queue_declare(queue.into(), passive, Default::default()).await.ok()?;
        Some((declared.message_count(), declared.consumer_count()))
    }
}
