//! Push: `GET /queries/orders/{id}/stream` as Server-Sent Events, read by a real HTTP client.

use serde_json::Value;
use std::time::Duration;
use uuid::Uuid;

use crate::helpers::{eventually, TestApp, TEST_ORIGIN};

/// One server-sent event.
#[derive(Debug)]
pub struct SseEvent {
    pub event: String,
    pub id: String,
    pub data: Value,
}

/// Reads a `text/event-stream` body event by event, skipping comments (keep-alives).
pub struct EventReader {
    response: reqwest::Response,
    buffer: String,
}

impl EventReader {
    pub fn new(response: reqwest::Response) -> Self {
        Self { response, buffer: String::new() }
    }

    /// The next event, or `None` when the stream ended.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent { event: String::new(), id: String::new(), data: Value::Null };
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        event.event = value.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("id:") {
                        event.id = value.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // a comment
                }
                event.data = serde_json::from_str(&data).expect("event data is JSON");
                return Some(event);
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.response.chunk())
                .await
                .expect("the stream sends within 10 s")
                .expect("the stream reads");
            self.buffer.push_str(std::str::from_utf8(&chunk?).expect("UTF-8"));
        }
    }
}

async fn open(app: &TestApp, id: Uuid, query: &str) -> reqwest::Response {
    let response = app
        .http
        .get(app.query_url(&format!("/queries/orders/{id}/stream{query}")))
        .header("origin", TEST_ORIGIN)
        .send()
        .await
        .expect("GET stream");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["access-control-allow-origin"], TEST_ORIGIN, "an EventSource on the shop's page");
    response
}

#[tokio::test]
async fn a_stream_sends_the_view_at_the_token_version_then_every_change() {
    let app = TestApp::spawn().await;
    let (id, version) = app.place_order("cust-stream").await;
    let mut events = EventReader::new(open(&app, id, &format!("?minVersion={version}")).await);

    let first = events.next().await.expect("the placed view");
    assert_eq!((first.event.as_str(), first.id.as_str()), ("view", "1"));
    assert_eq!(first.data["data"]["status"], "Placed");
    assert_eq!(first.data["metadata"]["version"], 1);
    let single: Value = app.get_json(app.query_url(&format!("/queries/orders/{id}?minVersion=1"))).await;
    assert_eq!(first.data, single, "the same JSON as the single read");

    let confirmed = app.command(id, "confirm", None).await;
    assert_eq!(confirmed.status(), 200);
    let second = events.next().await.expect("the confirmed view");
    assert_eq!(second.id, "2");
    assert_eq!(second.data["data"]["status"], "Confirmed");

    app.command(id, "ship", None).await;
    let third = events.next().await.expect("the shipped view");
    assert_eq!((third.id.as_str(), &third.data["data"]["status"]), ("3", &Value::from("Shipped")));

    // Stopping the service ends the stream cleanly instead of holding the shutdown up.
    let waiters = app.waiters.clone();
    app.stop().await;
    assert!(events.next().await.is_none(), "the stream ends with the service");
    assert_eq!(waiters.watched_orders(), 0);
}

#[tokio::test]
async fn a_stream_waits_for_a_future_version_resumes_after_last_event_id_and_forgets_gone_clients() {
    let app = TestApp::spawn().await;
    let (id, _) = app.place_order("cust-stream-wait").await;
    // Version 2 does not exist yet: nothing may arrive until the order is confirmed.
    let mut events = EventReader::new(open(&app, id, "?minVersion=2").await);
    let early = tokio::time::timeout(Duration::from_millis(300), events.next()).await;
    assert!(early.is_err(), "version 1 must not be sent to a stream that asked for 2: {early:?}");
    app.command(id, "confirm", None).await;
    assert_eq!(events.next().await.expect("version 2").id, "2");

    // A reconnecting EventSource sends Last-Event-ID and gets only what is newer.
    let resumed = app
        .http
        .get(app.query_url(&format!("/queries/orders/{id}/stream")))
        .header("last-event-id", "2")
        .send()
        .await
        .expect("GET stream");
    let mut resumed = EventReader::new(resumed);
    app.command(id, "cancel", None).await;
    let cancelled = resumed.next().await.expect("version 3");
    assert_eq!((cancelled.id.as_str(), &cancelled.data["data"]["status"]), ("3", &Value::from("Cancelled")));

    // Clients that go away leave nothing behind on the board.
    drop(events);
    drop(resumed);
    eventually(Duration::from_secs(5), || async { (app.waiters.watched_orders() == 0).then_some(()) }).await;

    for (path, case) in [
        (format!("/queries/orders/{id}/stream?minVersion=-1"), "negative version"),
        ("/queries/orders/not-a-uuid/stream".to_owned(), "bad id"),
    ] {
        let response = app.http.get(app.query_url(&path)).send().await.expect("GET");
        assert_eq!(response.status(), 400, "{case}");
        assert_eq!(response.headers()["content-type"], "application/problem+json", "{case}");
    }
    app.stop().await;
}

#[tokio::test]
async fn browsers_from_the_allowed_origin_may_call_both_apis_and_others_get_no_cors_headers() {
    let app = TestApp::spawn().await;
    let preflight = app
        .http
        .request(reqwest::Method::OPTIONS, app.command_url("/commands/orders"))
        .header("origin", TEST_ORIGIN)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type,idempotency-key")
        .send()
        .await
        .expect("preflight");
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(preflight.headers()["access-control-allow-origin"], TEST_ORIGIN);
    let allowed = preflight.headers()["access-control-allow-headers"].to_str().expect("ascii").to_owned();
    assert!(allowed.contains("idempotency-key") && allowed.contains("content-type"), "{allowed}");

    let (id, _) = app.place_order("cust-cors").await;
    for (origin, allowed) in [(TEST_ORIGIN, true), ("http://evil.test", false)] {
        let response = app
            .http
            .get(app.query_url(&format!("/queries/orders/{id}?minVersion=1")))
            .header("origin", origin)
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers().contains_key("access-control-allow-origin"), allowed, "{origin}");
    }
    app.stop().await;
}

/// Moves an order's view to `version` in MongoDB directly: as if the projector wrote it and its notice was lost.
async fn write_without_notice(app: &TestApp, id: Uuid, version: i64) {
    let views = app.mongo.collection::<mongodb::bson::Document>("order_views");
    let update = mongodb::bson::doc! { "$set": { "version": version, "status": "Confirmed" } };
    let done = views.update_one(mongodb::bson::doc! { "_id": id.to_string() }, update).await.expect("update");
    assert_eq!(done.matched_count, 1);
}

/// How many `find` commands the query-service has sent to MongoDB.
async fn finds(app: &TestApp) -> u64 {
    let metrics = app.http.get(app.query_url("/metrics")).send().await.expect("GET").text().await.expect("text");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(r#"mongodb_commands_total{command="find"} "#))
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_notice_ahead_of_the_store_the_replica_reads_keeps_the_read_waiting_until_the_store_has_the_version() {
    let app = TestApp::spawn().await;
    let (id, version) = app.place_order("cust-lagging-secondary").await;
    let first = app.get_json(app.query_url(&format!("/queries/orders/{id}?minVersion={version}"))).await;
    assert_eq!(first["metadata"]["version"], version);

    let url = app.query_url(&format!("/queries/orders/{id}?minVersion={}&waitMs=20000", version + 1));
    let waiting = tokio::spawn(app.http.get(url).send());
    eventually(Duration::from_secs(10), || async { (app.waiters.waiting_reads() >= 1).then_some(()) }).await;
    // A notice that the next version was written, carrying no view, while the store this replica reads (a
    // secondary that lags) still has the older one: the woken read finds the older version...
    let before = finds(&app).await;
    app.waiters.announce(id, version + 1);
    eventually(Duration::from_secs(10), || async { (finds(&app).await > before).then_some(()) }).await;
    // ...and must keep waiting for the store to catch up, not answer 202 while its wait has time left.
    write_without_notice(&app, id, version + 1).await;
    let read = waiting.await.expect("read task").expect("GET answers");
    assert_eq!(read.status(), 200, "the store caught up well within waitMs");
    let body: serde_json::Value = read.json().await.expect("json");
    assert_eq!(body["metadata"]["version"], version + 1);
    app.stop().await;
}

#[tokio::test]
async fn a_waiting_read_and_a_stream_see_a_version_whose_notice_was_lost() {
    let app = TestApp::spawn().await;
    let (id, version) = app.place_order("cust-lost-notice").await;
    let mut stream = EventReader::new(open(&app, id, &format!("?minVersion={version}")).await);
    assert_eq!(stream.next().await.expect("the first view").id, version.to_string());

    let url = app.query_url(&format!("/queries/orders/{id}?minVersion={}&waitMs=20000", version + 1));
    let waiting = tokio::spawn(app.http.get(url).send());
    // Let the read start waiting (it subscribes before it reads), then store the version with no notice at all.
    eventually(Duration::from_secs(10), || async { (app.waiters.waiting_reads() >= 2).then_some(()) }).await;
    write_without_notice(&app, id, version + 1).await;

    let read = waiting.await.expect("read task").expect("GET answers");
    assert_eq!(read.status(), 200, "MongoDB holds the version: the wait must find it without a notice");
    let event = stream.next().await.expect("the stream goes on");
    assert_eq!(event.id, (version + 1).to_string(), "the stream sends the version whose notice was lost");
    app.stop().await;
}
