//! What operators see: metrics that match what happened, readiness that names what is down, and one trace id
//! from the POST to the view.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::faults::PrivateRabbit;
use crate::helpers::{eventually, free_port, mongodb_uri, service_binary, ChildProcess, Names, TestApp};

/// The samples of a Prometheus text exposition: `name{labels}` → value.
pub fn samples(exposition: &str) -> HashMap<String, f64> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

pub async fn scrape(app: &TestApp, url: String) -> String {
    let response = app.http.get(url).send().await.expect("scrape");
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().expect("ascii").starts_with("text/plain; version=0.0.4"));
    response.text().await.expect("text")
}

/// `promtool check metrics` on an exposition (the Debian `prometheus` package; `scripts/dev-services` installs it).
fn promtool_accepts(exposition: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (apt-get install prometheus)");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), exposition.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("promtool runs");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && report.trim().is_empty(), "promtool: {report}");
}

#[tokio::test]
async fn metrics_count_what_happened_and_promtool_accepts_them() {
    const ORDERS: usize = 500;
    let app = TestApp::spawn().await;
    futures_util::StreamExt::for_each_concurrent(futures_util::stream::iter(0..ORDERS), 16, |n| {
        let app = &app;
        async move {
            app.place_order(&format!("cust-metrics-{}", n % 10)).await;
        }
    })
    .await;
    let head: i64 = sqlx::query_scalar("select max(sequence) from outbox").fetch_one(&app.pool).await.expect("head");
    let url = app.query_url(&format!("/queries/orders?limit=1&minPosition={head}&waitMs=30000"));
    assert_eq!(app.http.get(url).send().await.expect("GET").status(), 200, "every event applied");

    let command = scrape(&app, app.command_url("/metrics")).await;
    let query = scrape(&app, app.query_url("/metrics")).await;
    let (c, q) = (samples(&command), samples(&query));
    assert_eq!(c[r#"commands_total{command="place",outcome="accepted"}"#], ORDERS as f64, "{command}");
    assert_eq!(c[r#"command_duration_seconds_count{command="place"}"#], ORDERS as f64);
    assert_eq!(c["relay_events_published_total"], ORDERS as f64);
    assert_eq!(c["outbox_backlog"], 0.0);
    assert_eq!(c["outbox_oldest_unpublished_age_seconds"], 0.0);
    assert_eq!(c["relay_leader"], 1.0);
    assert_eq!(c["relay_publish_failures_total"], 0.0);
    assert!(c["relay_batch_size_count"] >= 1.0);
    assert_eq!(
        c[r#"http_requests_total{method="POST",route="/commands/orders",status="201"}"#], ORDERS as f64,
        "requests by route template and status"
    );
    for projection in ["orders", "customer-summary", "daily-sales"] {
        let applied = format!(
            r#"projector_events_total{{event_type="OrderPlaced",outcome="applied",projection="{projection}"}}"#
        );
        assert_eq!(q[&applied], ORDERS as f64, "{query}");
        let labelled = |name: &str| format!(r#"{name}{{projection="{projection}"}}"#);
        assert_eq!(q[&labelled("projector_freshness_lag_seconds_count")], ORDERS as f64);
        assert_eq!(q[&labelled("projector_last_applied_sequence")], head as f64);
        assert_eq!(q[&labelled("read_model_position")], head as f64, "{projection}: {query}");
    }
    assert!(!q.keys().any(|k| k.contains(r#"outcome="duplicate""#) || k.contains("dead_lettered")), "{query}");
    assert_eq!(
        q[r#"read_waits_total{outcome="reached"}"#] + q.get(r#"read_waits_total{outcome="timed_out"}"#).unwrap_or(&0.0),
        1.0
    );
    assert_eq!(q["reads_waiting"], 0.0);

    let status: serde_json::Value =
        app.http.get(app.query_url("/queries/_status")).send().await.expect("GET").json().await.expect("json");
    assert_eq!(status["position"], head);
    assert_eq!(status["activeGeneration"], "order_views");
    assert_eq!(status["projector"]["lastAppliedSequence"], head);
    assert_eq!(status["projector"]["consuming"], true);

    promtool_accepts(&command);
    promtool_accepts(&query);
    dashboard_matches(&format!("{command}{query}"));
    app.stop().await;
}

/// The Grafana dashboard's queries are valid PromQL (promtool checks them as recording rules) and every metric they
/// name is one the services expose.
fn dashboard_matches(exposition: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../observability/grafana/dashboards/orders.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("dashboard file")).expect("dashboard JSON");
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|target| target["expr"].as_str().map(str::to_owned))
        .collect();
    assert!(exprs.len() >= 10, "{exprs:?}");
    let rules: Vec<serde_json::Value> = exprs
        .iter()
        .enumerate()
        .map(|(i, expr)| serde_json::json!({"record": format!("dashboard:q{i}"), "expr": expr}))
        .collect();
    let file = std::env::temp_dir().join(format!("dashboard-rules-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&file, serde_json::json!({"groups": [{"name": "dashboard", "rules": rules}]}).to_string())
        .expect("rules file");
    let out = Command::new("promtool").args(["check", "rules"]).arg(&file).output().expect("promtool runs");
    let _ = std::fs::remove_file(&file);
    assert!(out.status.success(), "promtool check rules: {}", String::from_utf8_lossy(&out.stdout));
    let known = [
        "le",
        "rate",
        "increase",
        "sum",
        "by",
        "histogram_quantile",
        "job",
        "command",
        "outcome",
        "event_type",
        "projection",
        "status",
        "kind",
    ];
    for expr in &exprs {
        // Label values are quoted: leave them out, keep identifiers.
        let unquoted: String = expr.split('"').step_by(2).collect::<Vec<_>>().join(" ");
        let names = unquoted
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.contains('_') || w.ends_with("backlog"));
        for name in names.filter(|n| !known.contains(n) && !n.starts_with(|c: char| c.is_ascii_digit())) {
            assert!(
                exposition.contains(&format!("\n{name}")),
                "the dashboard queries {name}, which no service exposes"
            );
        }
    }
}

async fn ready(app: &TestApp, url: String) -> (u16, serde_json::Value) {
    let response = app.http.get(url).send().await.expect("GET /health/ready");
    (response.status().as_u16(), response.json().await.expect("json"))
}

#[tokio::test]
async fn readiness_turns_503_naming_rabbitmq_while_it_is_stopped_and_recovers() {
    let rabbit = PrivateRabbit::start().await;
    let app = TestApp::spawn_with(Names::new("test"), &rabbit.url(), &mongodb_uri(), true).await;
    let urls = [app.command_url("/health/ready"), app.query_url("/health/ready")];
    for url in &urls {
        eventually(Duration::from_secs(20), || async {
            let (status, body) = ready(&app, url.clone()).await;
            (status == 200 && body["status"] == "ready").then_some(())
        })
        .await;
    }
    let all_up = [
        serde_json::json!({
            "postgres": "up", "rabbitmq": "up", "relay": "up", "replication_slot": "up", "routing": "up",
            "stalled": "up", "tasks": "up"
        }),
        serde_json::json!({
            "mongodb": "up", "rabbitmq": "up", "projector": "up", "customer-summary": "up", "daily-sales": "up",
            "building": "up", "stalled": "up", "tasks": "up"
        }),
    ];
    for (url, checks) in urls.iter().zip(&all_up) {
        assert_eq!(&ready(&app, url.clone()).await.1["checks"], checks, "{url}");
    }

    rabbit.stop_app();
    for url in &urls {
        let body = eventually(Duration::from_secs(20), || async {
            let (status, body) = ready(&app, url.clone()).await;
            (status == 503).then_some(body)
        })
        .await;
        assert_eq!(body["status"], "unavailable");
        assert!(body["down"].as_array().expect("down").contains(&"rabbitmq".into()), "{url}: {body}");
        assert!(!body["down"].as_array().expect("down").iter().any(|d| d == "postgres" || d == "mongodb"), "{body}");
    }
    rabbit.start_app().await;
    // Back: every check it names is up again, not only the status.
    for (url, checks) in urls.iter().zip(&all_up) {
        eventually(Duration::from_secs(30), || async {
            let (status, body) = ready(&app, url.clone()).await;
            (status == 200 && body["status"] == "ready" && &body["checks"] == checks).then_some(())
        })
        .await;
    }
    app.stop().await;
}

#[tokio::test]
async fn one_trace_id_runs_from_the_post_through_the_relay_to_the_projector() {
    let names = Names::new("test");
    let (command_port, query_port) = (free_port(), free_port());
    let spawn = |binary: &str, port: u16| {
        Command::new(service_binary(binary))
            .env("DATABASE_URL", names.database_url())
            .env("AMQP_URL", crate::helpers::amqp_url())
            .env("AMQP_EXCHANGE", &names.exchange)
            .env("AMQP_QUEUE", &names.queue)
            .env("MONGODB_URI", mongodb_uri())
            .env("MONGODB_DATABASE", &names.database)
            .env("HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info,command_service::relay=debug,query_service::projection=debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map(ChildProcess)
            .expect("service starts")
    };
    let mut query = spawn("query-service", query_port);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let live = |port: u16| {
        let http = http.clone();
        async move { http.get(format!("http://127.0.0.1:{port}/health/live")).send().await.ok().map(drop) }
    };
    eventually(Duration::from_secs(30), || live(query_port)).await;
    crate::helpers::wait_for_queue(&crate::helpers::amqp_url(), &names.queue).await;
    let mut command = spawn("command-service", command_port);
    eventually(Duration::from_secs(30), || live(command_port)).await;

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let placed: serde_json::Value = http
        .post(format!("http://127.0.0.1:{command_port}/commands/orders"))
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .json(&serde_json::json!({"customerId": "cust-trace", "items": [{"sku": "S", "quantity": 1, "unitPrice": 1}]}))
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("json");
    let id = placed["orderId"].as_str().expect("orderId");
    let read = http.get(format!("http://127.0.0.1:{query_port}/queries/orders/{id}?minVersion=1")).send().await;
    assert_eq!(read.expect("GET").status(), 200);

    // Stop both (SIGTERM: they shut down gracefully and flush their logs), then read what they logged.
    for child in [&command, &query] {
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    }
    let lines = |child: &mut ChildProcess| -> Vec<serde_json::Value> {
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout).lines().map_while(Result::ok).filter_map(|l| serde_json::from_str(&l).ok()).collect()
    };
    let (command_log, query_log) = (lines(&mut command), lines(&mut query));
    let _ = (command.wait(), query.wait());
    let with_trace = |log: &[serde_json::Value], message: &str| {
        log.iter().any(|line| line["message"] == message && line.to_string().contains(trace_id))
    };
    assert!(with_trace(&command_log, "order placed"), "the command's log line carries the trace id");
    assert!(with_trace(&command_log, "event published"), "the relay's publish carries it");
    assert!(with_trace(&query_log, "event applied"), "the projector's apply carries it");

    names.remove(&crate::helpers::amqp_url(), &mongodb_uri()).await;
}
