//! Limits per client: one client cannot take every view-stream and waiting-read slot nor send commands without
//! bound (429 with `Retry-After`, while other clients and the health endpoints are still served), and a flood of
//! readiness checks costs the broker no connection per request.

use serde_json::json;
use std::time::Duration;

use crate::auth::{place, placed, spawn_jwt, Idp};
use crate::helpers::{amqp_url, mongodb_uri, Names, TestApp};

async fn open_stream(app: &TestApp, token: &str, order: uuid::Uuid) -> reqwest::Response {
    let url = app.query_url(&format!("/queries/orders/{order}/stream"));
    app.http.get(url).bearer_auth(token).send().await.expect("GET answers")
}

#[tokio::test]
async fn a_client_over_its_stream_cap_gets_429_while_others_and_health_are_served() {
    let idp = Idp::start().await;
    let app = spawn_jwt(
        &idp,
        |_| {},
        |query| {
            query.reads_per_client = 3;
            query.reads_max = 5;
        },
    )
    .await;
    let (a, b, c) = (idp.token("cust-a", json!({})), idp.token("cust-b", json!({})), idp.token("cust-c", json!({})));
    let (order, _) = placed(&app, &a).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let stream = open_stream(&app, &a, order).await;
        assert_eq!(stream.status(), 200);
        held.push(stream);
    }
    let over = open_stream(&app, &a, order).await;
    assert_eq!(over.status(), 429, "A's fourth stream");
    assert_eq!(over.headers()["content-type"], "application/problem+json");
    assert!(over.headers()["retry-after"].to_str().is_ok_and(|s| s.parse::<u64>().is_ok_and(|n| n >= 1)));
    // A waiting read counts too.
    let wait = app.query_url(&format!("/queries/orders/{order}?minVersion=9&waitMs=100"));
    assert_eq!(app.http.get(&wait).bearer_auth(&a).send().await.expect("answers").status(), 429);
    // Another client is still served, up to the total...
    for _ in 0..2 {
        let stream = open_stream(&app, &b, order).await;
        assert_eq!(stream.status(), 200, "B is served while A is at its cap");
        held.push(stream);
    }
    // ...past which everyone waits, and health still answers.
    assert_eq!(open_stream(&app, &c, order).await.status(), 429, "the total is reached");
    assert_eq!(app.http.get(app.query_url("/health/live")).send().await.expect("answers").status(), 200);
    // A slot given back can be taken again.
    held.truncate(2);
    let (mut freed, deadline) = (false, tokio::time::Instant::now() + Duration::from_secs(10));
    while !freed && tokio::time::Instant::now() < deadline {
        freed = open_stream(&app, &a, order).await.status() == 200;
        if !freed {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert!(freed, "a closed stream frees its slot");
    app.stop().await;
}

#[tokio::test]
async fn commands_over_a_clients_rate_get_429_with_retry_after_and_others_go_on() {
    let idp = Idp::start().await;
    let app = spawn_jwt(
        &idp,
        |command| {
            command.command_rate_per_client = Some(0.5);
            command.command_burst_per_client = Some(2.0);
        },
        |_| {},
    )
    .await;
    let (a, b) = (idp.token("cust-a", json!({})), idp.token("cust-b", json!({})));
    assert_eq!(place(&app, &a, None).await.status(), 201);
    assert_eq!(place(&app, &a, None).await.status(), 201);
    let over = place(&app, &a, None).await;
    assert_eq!(over.status(), 429, "the burst of 2 is spent");
    assert_eq!(over.headers()["content-type"], "application/problem+json");
    let retry: u64 = over.headers()["retry-after"].to_str().ok().and_then(|s| s.parse().ok()).expect("Retry-After");
    assert!((1..=2).contains(&retry), "one token in 2 s: {retry}");
    assert_eq!(place(&app, &b, None).await.status(), 201, "another client has its own bucket");
    assert_eq!(app.count("customer_order").await, 3, "the refused command wrote nothing");
    app.stop().await;
}

/// Connections the broker holds in `vhost` now.
fn connections_in(vhost: &str) -> usize {
    let output = std::process::Command::new("rabbitmqctl")
        .args(["-q", "list_connections", "vhost"])
        .output()
        .expect("rabbitmqctl runs");
    String::from_utf8_lossy(&output.stdout).lines().filter(|line| line.trim() == vhost).count()
}

fn rabbitmqctl(args: &[&str]) {
    let status = std::process::Command::new("rabbitmqctl").args(args).status().expect("rabbitmqctl runs");
    assert!(status.success(), "rabbitmqctl {args:?}");
}

/// Deletes the test's vhost however the test ends.
struct Vhost(String);

impl Drop for Vhost {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl").args(["-q", "delete_vhost", &self.0]).status();
    }
}

#[tokio::test]
async fn a_flood_of_readiness_checks_opens_no_broker_connection_per_request() {
    let names = Names::new("ready");
    let vhost = Vhost(names.database.clone());
    rabbitmqctl(&["-q", "add_vhost", &vhost.0]);
    rabbitmqctl(&["-q", "set_permissions", "-p", &vhost.0, "guest", ".*", ".*", ".*"]);
    let base = amqp_url();
    let url = format!("{}/{}", base.rsplit_once('/').map_or(base.as_str(), |(server, _)| server), vhost.0);
    let app = TestApp::spawn_with(names, &url, &mongodb_uri(), true).await;
    let before = connections_in(&vhost.0);
    // 32 clients ask both services for readiness as fast as they are answered, while the broker is asked, now and
    // then, how many connections the vhost has.
    let flooding = tokio_util::sync::CancellationToken::new();
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let clients: Vec<_> = (0..32)
        .map(|n| {
            let (http, stop, answered) = (app.http.clone(), flooding.clone(), answered.clone());
            let url = if n % 2 == 0 { app.command_url("/health/ready") } else { app.query_url("/health/ready") };
            tokio::spawn(async move {
                while !stop.is_cancelled() {
                    if http.get(&url).send().await.is_ok_and(|r| r.status() == 200) {
                        answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let sampled = {
        let vhost = vhost.0.clone();
        tokio::task::spawn_blocking(move || (0..4).map(|_| connections_in(&vhost)).max().unwrap_or_default())
    };
    let most = sampled.await.expect("sampled");
    flooding.cancel();
    for client in clients {
        let _ = client.await;
    }
    let answered = answered.load(std::sync::atomic::Ordering::Relaxed);
    println!("broker connections in the vhost: {before} before the flood, at most {most} during {answered} checks");
    assert!(answered > 100, "the flood was answered: {answered}");
    assert!(most <= before + 2, "one kept readiness connection per service: {before} before, {most} during");
    app.stop().await;
}
