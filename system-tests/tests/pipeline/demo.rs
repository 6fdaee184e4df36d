//! The demo page at `/` of the query-service, and the projector slowdown it toggles: driven in headless Chromium
//! (system-tests/e2e/demo.mjs) and checked over HTTP.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::helpers::{amqp_url, mongodb_uri, query_config, TestApp, ADMIN_TOKEN};

const SLOWDOWN: &str = "/admin/projector/slowdown";

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("system-tests sits in the repository")
}

/// The browser driver, with its dependencies installed (`npm ci --prefix system-tests/e2e`, done by scripts/test).
fn driver() -> PathBuf {
    let e2e = repo_root().join("system-tests/e2e");
    assert!(
        e2e.join("node_modules/playwright-core").exists(),
        "playwright-core is missing: run `npm ci --prefix system-tests/e2e` (scripts/test does, and installs Chromium)"
    );
    e2e.join("demo.mjs")
}

/// Runs the browser driver against `app`'s page; its JSON summary.
async fn drive(app: &TestApp, admin_token: &str, screenshot: &Path, bearer: Option<&str>) -> Value {
    let run = tokio::process::Command::new("node")
        .arg(driver())
        .arg(app.query_url("/"))
        .arg(admin_token)
        .arg(screenshot)
        .args(bearer)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(150), run)
        .await
        .expect("the browser run ends within 150 s")
        .expect("node runs (is Node.js installed?)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the browser run failed:\n{stderr}\n{stdout}");
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("a JSON summary");
    println!("{result}");
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_an_order_shows_pending_then_confirmed_and_a_racing_tab_sees_the_conflict() {
    let app = TestApp::spawn_for_browser(|_| {}, |_| {}).await;
    let screenshot = repo_root().join("docs/demo.png");
    let result = drive(&app, ADMIN_TOKEN, &screenshot, None).await;

    // What the user saw: pending first, then confirmed at version 1.
    let badges: Vec<&str> = result["badges"].as_array().expect("badges").iter().filter_map(Value::as_str).collect();
    let confirmed = badges.iter().position(|b| *b == "confirmed in read model (version 1)");
    assert_eq!(badges.first(), Some(&"pending"), "{badges:?}");
    assert!(confirmed.is_some(), "never confirmed at version 1: {badges:?}");
    assert!(result["tookMs"].as_u64().is_some(), "the milliseconds are shown: {result}");

    // What the system holds: placed, confirmed, cancelled; the racing cancel changed nothing.
    let id = result["orderId"].as_str().expect("orderId");
    let view: Value = app.get_json(app.query_url(&format!("/queries/orders/{id}?minVersion=3&waitMs=10000"))).await;
    assert_eq!(view["data"]["status"], "Cancelled");
    assert_eq!(view["metadata"]["version"], 3);
    assert_eq!(view["data"]["cancelReason"], "cancelled on the demo page");
    let events: i64 = sqlx::query_scalar("select count(*) from outbox where order_id = $1::uuid")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(events, 3, "placed, confirmed, cancelled: the conflicting cancel wrote nothing");
    let png = std::fs::read(&screenshot).expect("the screenshot was saved");
    assert!(png.starts_with(b"\x89PNG"), "docs/demo.png is a PNG");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_jwt_mode_the_page_sends_the_users_token_and_opens_streams_with_tickets() {
    let idp = crate::auth::Idp::start().await;
    let config = idp.config();
    let app = TestApp::spawn_for_browser(
        |command| command.auth = config.clone(),
        |query| {
            query.auth = config.clone();
            query.event_feed_token = None;
        },
    )
    .await;
    // A staff token that may place for the page's customers and slow the projector down.
    let staff = idp.token("staff-demo", json!({"scope": "orders:read:any orders:write:any orders:admin"}));
    let screenshot = std::env::temp_dir().join(format!("demo-jwt-{}.png", uuid::Uuid::new_v4().simple()));
    let result = drive(&app, &staff, &screenshot, Some(&staff)).await;
    let _ = std::fs::remove_file(&screenshot);
    let badges: Vec<&str> = result["badges"].as_array().expect("badges").iter().filter_map(Value::as_str).collect();
    assert!(badges.contains(&"confirmed in read model (version 1)"), "{badges:?}");
    let id = result["orderId"].as_str().expect("orderId");
    let view = app
        .http
        .get(app.query_url(&format!("/queries/orders/{id}?minVersion=3&waitMs=10000")))
        .bearer_auth(&staff)
        .send()
        .await
        .expect("GET answers");
    let view: Value = view.json().await.expect("json");
    assert_eq!(view["data"]["status"], "Cancelled", "the page's commands carried the token");
    app.stop().await;
}

#[tokio::test]
async fn the_page_and_its_files_are_served_and_can_be_switched_off() {
    let app = TestApp::spawn_for_browser(|_| {}, |_| {}).await;
    let page = app.http.get(app.query_url("/")).send().await.expect("GET /");
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert!(page.headers()["content-security-policy"].to_str().expect("ascii").contains("default-src 'self'"));
    let html = page.text().await.expect("html");
    assert!(html.contains(r#"<script type="module" src="/demo/app.js">"#), "{html}");
    let script = "text/javascript; charset=utf-8";
    for (path, content_type) in [
        ("/demo/app.js", script),
        ("/demo/style.css", "text/css; charset=utf-8"),
        ("/demo/lib/index.js", script),
        ("/demo/lib/errors.js", script),
        ("/demo/lib/stream.js", script),
        ("/demo/lib/transport.js", script),
    ] {
        let file = app.http.get(app.query_url(path)).send().await.expect("GET");
        assert_eq!(file.status(), 200, "{path}");
        assert_eq!(file.headers()["content-type"], content_type, "{path}");
        assert_eq!(file.headers()["x-content-type-options"], "nosniff", "{path}");
    }
    let config: Value = app.get_json(app.query_url("/demo/config.json")).await;
    assert_eq!(config["commandUrl"], format!("http://{}", app.command_addr));
    // The page is no API operation.
    let spec: Value = app.get_json(app.query_url("/openapi.json")).await;
    assert!(spec["paths"].get("/").is_none());

    let shutdown = CancellationToken::new();
    let mut config = query_config(&app.names, &amqp_url(), &mongodb_uri());
    config.demo_page = false;
    config.projector_enabled = false;
    let query = query_service::run::start(config, shutdown.clone()).await.expect("starts");
    let unknown = app.http.get(app.query_url("/demo/lib/other.js")).send().await.expect("GET");
    assert_eq!(unknown.status(), 404, "a module the library does not have");
    for path in ["/", "/demo/app.js", "/demo/style.css", "/demo/config.json", "/demo/lib/index.js"] {
        let response = app.http.get(format!("http://{}{path}", query.addr)).send().await.expect("GET");
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(response.headers()["content-type"], "application/problem+json", "{path}");
    }
    // A replica without a projector has nothing to slow down.
    let url = format!("http://{}{SLOWDOWN}?delayMs=1000", query.addr);
    let response = app.http.post(url).bearer_auth(ADMIN_TOKEN).send().await.expect("POST");
    assert_eq!(response.status(), 409);
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(15), query.task).await;
    app.stop().await;
}

#[tokio::test]
async fn the_slowdown_holds_events_back_until_it_is_switched_off_and_refuses_bad_delays() {
    let app = TestApp::spawn().await;
    let slowdown = |query: &str| app.http.post(app.query_url(&format!("{SLOWDOWN}{query}"))).bearer_auth(ADMIN_TOKEN);
    for bad in ["", "?delayMs=", "?delayMs=-1", "?delayMs=10001", "?delayMs=1.5", "?delayMs=abc"] {
        let response = slowdown(bad).send().await.expect("POST");
        assert_eq!(response.status(), 400, "{bad}");
        assert_eq!(response.headers()["content-type"], "application/problem+json", "{bad}");
    }

    let set: Value = slowdown("?delayMs=10000").send().await.expect("POST").json().await.expect("json");
    assert_eq!(set["delayMs"], 10_000);
    assert!(set["endsAt"].as_str().is_some(), "{set}");
    let read = app.http.get(app.query_url(SLOWDOWN)).bearer_auth(ADMIN_TOKEN).send().await.expect("GET");
    let read: Value = read.json().await.expect("json");
    assert_eq!(read, set);
    let status: Value = app.get_json(app.query_url("/queries/_status")).await;
    assert_eq!(status["projector"]["slowdown"], set);

    // Held for 10 s: not in the read model a moment later.
    let (id, version) = app.place_order("cust-slowdown").await;
    let url = app.query_url(&format!("/queries/orders/{id}?minVersion={version}&waitMs=300"));
    assert_eq!(app.http.get(&url).send().await.expect("GET").status(), 202, "the slowdown held the event");

    let off: Value = slowdown("?delayMs=0").send().await.expect("POST").json().await.expect("json");
    assert_eq!(off, serde_json::json!({ "delayMs": 0, "endsAt": null }));
    let url = app.query_url(&format!("/queries/orders/{id}?minVersion={version}&waitMs=20000"));
    assert_eq!(app.http.get(&url).send().await.expect("GET").status(), 200, "released");
    app.stop().await;
}
