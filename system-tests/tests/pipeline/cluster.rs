//! Both services on a three-node RabbitMQ cluster (`scripts/rabbitmq-cluster`), quorum queues: orders flow for a
//! minute while the node leading the projector's queue is stopped (and started again), and later another node is
//! killed with SIGKILL. Every accepted order must end in its view at version 1; the pauses of publishing and of
//! projecting at each fault are printed. Run by `scripts/cluster-test` (ignored otherwise: it needs the cluster).

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::TryStreamExt as _;
use mongodb::bson::Document;
use uuid::Uuid;

use crate::helpers::{eventually, mongodb_uri, place_order_at, Names, TestApp};

/// The cluster's AMQP_URL, as `scripts/rabbitmq-cluster start` printed it.
fn cluster_url() -> String {
    std::env::var("TEST_AMQP_CLUSTER_URL").expect("TEST_AMQP_CLUSTER_URL: run this test with scripts/cluster-test")
}

/// Runs `scripts/rabbitmq-cluster` with `args`; its standard output.
fn cluster(args: &[&str]) -> String {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/rabbitmq-cluster");
    let out = Command::new(script).args(args).output().expect("scripts/rabbitmq-cluster runs");
    assert!(out.status.success(), "rabbitmq-cluster {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Progress over time: the newest sequence the relay has published, and the read model's position.
#[derive(Default)]
struct Progress {
    samples: Vec<(Instant, i64, i64)>,
}

impl Progress {
    /// The longest time, from `from` on, during which `pick` did not move while there was something to move.
    fn longest_stall(&self, from: Instant, until: Instant, pick: impl Fn(&(Instant, i64, i64)) -> i64) -> Duration {
        let window: Vec<_> = self.samples.iter().filter(|s| s.0 >= from && s.0 <= until).collect();
        let mut longest = Duration::ZERO;
        let mut since = window.first().map(|s| (s.0, pick(s)));
        for sample in &window {
            let value = pick(sample);
            match since {
                Some((at, seen)) if value == seen => longest = longest.max(sample.0 - at),
                _ => since = Some((sample.0, value)),
            }
        }
        longest
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the three-node cluster: scripts/cluster-test"]
async fn orders_flow_through_a_stopped_queue_leader_and_a_killed_node_and_all_reach_their_views() {
    let url = cluster_url();
    let names = Names::new("cluster");
    let app = TestApp::spawn_with(names.clone(), &url, &mongodb_uri(), true).await;

    let stop = Arc::new(AtomicBool::new(false));
    let placed = Arc::new(Mutex::new(Vec::<Uuid>::new()));
    let rate_per_worker = 25.0;
    let writers: Vec<_> = (0..8)
        .map(|worker| {
            let (http, command, placed, stop) =
                (app.http.clone(), app.command_url("/commands/orders"), placed.clone(), stop.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate_per_worker));
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let answer = place_order_at(&http, &command, &format!("cust-{worker}-{n}")).await;
                    n += 1;
                    let id = answer["orderId"].as_str().and_then(|id| id.parse().ok()).expect("orderId");
                    placed.lock().expect("not poisoned").push(id);
                }
            })
        })
        .collect();
    let progress = Arc::new(Mutex::new(Progress::default()));
    let sampler = {
        let (pool, waiters, progress, stop) = (app.pool.clone(), app.waiters.clone(), progress.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let published: i64 =
                    sqlx::query_scalar("select coalesce(max(sequence), 0) from outbox where published_at is not null")
                        .fetch_one(&pool)
                        .await
                        .unwrap_or(0);
                progress.lock().expect("not poisoned").samples.push((Instant::now(), published, waiters.position()));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let leader = cluster(&["leader", &names.queue]);
    println!("stopping {leader}, the leader of {}", names.queue);
    let stopped_at = Instant::now();
    cluster(&["stop-node", &leader]);
    tokio::time::sleep(Duration::from_secs(15)).await;
    cluster(&["start-node", &leader]);
    let restarted_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let victim = ["orders-r1@localhost", "orders-r2@localhost", "orders-r3@localhost"]
        .into_iter()
        .find(|node| *node != leader)
        .expect("another node");
    println!("killing {victim}");
    let killed_at = Instant::now();
    cluster(&["kill-node", victim]);
    tokio::time::sleep(Duration::from_secs(60).saturating_sub(started.elapsed())).await;
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.expect("a writer ran to its end");
    }
    let placed = placed.lock().expect("not poisoned").clone();
    let ended_at = Instant::now();
    sampler.await.expect("the sampler ran");
    cluster(&["start-node", victim]);

    // Every accepted order in its view, at version 1.
    let views = query_service::store::ReadModelStore::new(app.mongo.clone());
    let active = views.generations().current().await.expect("the pointer").active;
    let collection = app.mongo.collection::<Document>(&active);
    let found = eventually(Duration::from_secs(300), || async {
        let docs: Vec<Document> = collection.find(mongodb::bson::doc! {}).await.ok()?.try_collect().await.ok()?;
        (docs.len() >= placed.len()).then_some(docs)
    })
    .await;
    let versions: std::collections::HashMap<String, i64> = found
        .iter()
        .filter_map(|doc| Some((doc.get_str("_id").ok()?.to_owned(), doc.get_i64("version").ok()?)))
        .collect();
    let lost: Vec<&Uuid> = placed.iter().filter(|id| !versions.contains_key(&id.to_string())).collect();
    let mismatched: Vec<&Uuid> =
        placed.iter().filter(|id| versions.get(&id.to_string()).is_some_and(|v| *v != 1)).collect();
    let caught_up = ended_at.elapsed();

    let progress = std::mem::take(&mut *progress.lock().expect("not poisoned"));
    let published = |s: &(Instant, i64, i64)| s.1;
    let projected = |s: &(Instant, i64, i64)| s.2;
    println!(
        "{} orders in {:.0} s ({:.0}/s), lost {}, mismatched {}; all in their views {:.1} s after the load stopped",
        placed.len(),
        (ended_at - started).as_secs_f64(),
        placed.len() as f64 / (ended_at - started).as_secs_f64(),
        lost.len(),
        mismatched.len(),
        caught_up.as_secs_f64()
    );
    for (fault, from, until) in [
        (format!("leader {leader} stopped"), stopped_at, restarted_at),
        (format!("leader {leader} started again"), restarted_at, killed_at),
        (format!("{victim} killed (SIGKILL)"), killed_at, ended_at),
    ] {
        println!(
            "{fault}: publishing paused {} ms, projecting paused {} ms",
            progress.longest_stall(from, until, published).as_millis(),
            progress.longest_stall(from, until, projected).as_millis()
        );
    }
    assert!(lost.is_empty(), "{} orders never reached their views: {:?}", lost.len(), &lost[..lost.len().min(10)]);
    assert!(mismatched.is_empty(), "views at another version: {mismatched:?}");
    app.stop().await;
}
