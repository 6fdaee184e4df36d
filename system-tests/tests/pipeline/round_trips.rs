//! A command is one round trip to Postgres: counted on the wire between the command-service and the server, for
//! every kind of command and answer.

use reqwest::StatusCode;
use serde_json::{json, Value};
use system_tests::wire::{PgRoundTrips, RoundTrips};

use crate::helpers::*;

/// Sends `count` commands built by `request` one after the other and returns the round trips they took.
async fn trips_of(
    proxy: &PgRoundTrips,
    count: u64,
    mut request: impl AsyncFnMut(u64) -> StatusCode,
    expected: StatusCode,
) -> RoundTrips {
    let before = proxy.seen();
    for n in 0..count {
        assert_eq!(request(n).await, expected, "command {n}");
    }
    proxy.seen() - before
}

#[tokio::test]
async fn every_command_is_one_statement_whether_it_is_recorded_replayed_or_refused() {
    let upstream = system_tests::postgres_server()
        .rsplit_once('@')
        .and_then(|(_, host)| host.parse().ok())
        .expect("TEST_POSTGRES_URL names host:port");
    let proxy = PgRoundTrips::start(upstream).await.expect("a proxy");
    let app = TestApp::spawn_tuned(
        Names::new("test"),
        &amqp_url(),
        &mongodb_uri(),
        |command| {
            command.database_url = proxy.url(&command.database_url);
            command.relay_enabled = false;
        },
        |_, _| {},
    )
    .await;
    let post = |path: String, key: Option<String>, body: Value| {
        let mut request = app.http.post(app.command_url(&path)).json(&body);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        async move { request.send().await.expect("POST answers").status() }
    };
    let order =
        json!({"customerId": "c-trips", "currency": "EUR", "items": [{"sku": "A", "quantity": 1, "unitPrice": 2}]});
    let place = async |key: Option<String>| {
        let response = app.http.post(app.command_url("/commands/orders")).json(&order);
        let response = match key {
            Some(key) => response.header("idempotency-key", key),
            None => response,
        };
        let body: Value = response.send().await.expect("POST answers").json().await.expect("json");
        body["orderId"].as_str().expect("orderId").to_owned()
    };
    // Every kind once first, so each connection has its statements prepared.
    let mut ids = Vec::new();
    for _ in 0..40 {
        ids.push(place(None).await);
    }
    for id in &ids[..4] {
        for step in ["confirm", "ship"] {
            post(format!("/commands/orders/{id}/{step}"), Some(format!("{id}-{step}")), json!({})).await;
        }
    }
    let n = 8;
    let kinds: Vec<(&str, RoundTrips)> = vec![
        ("place", trips_of(&proxy, n, async |_| post("/commands/orders".into(), None, order.clone()).await, StatusCode::CREATED).await),
        ("place with a key", trips_of(&proxy, n, async |k| post("/commands/orders".into(), Some(format!("p-{k}")), order.clone()).await, StatusCode::CREATED).await),
        ("place replayed", trips_of(&proxy, n, async |k| post("/commands/orders".into(), Some(format!("p-{k}")), order.clone()).await, StatusCode::CREATED).await),
        ("key reused for another body", trips_of(&proxy, n, async |k| post("/commands/orders".into(), Some(format!("p-{k}")), json!({"customerId": "x", "currency": "EUR", "items": [{"sku": "B", "quantity": 1, "unitPrice": 1}]})).await, StatusCode::UNPROCESSABLE_ENTITY).await),
        ("confirm", trips_of(&proxy, n, async |k| post(format!("/commands/orders/{}/confirm", ids[8 + k as usize]), None, json!({})).await, StatusCode::OK).await),
        ("ship with a key", trips_of(&proxy, n, async |k| post(format!("/commands/orders/{}/ship", ids[8 + k as usize]), Some(format!("s-{k}")), json!({})).await, StatusCode::OK).await),
        ("cancel", trips_of(&proxy, n, async |k| post(format!("/commands/orders/{}/cancel", ids[24 + k as usize]), None, json!({"reason": "r"})).await, StatusCode::OK).await),
        ("refused (409)", trips_of(&proxy, n, async |k| post(format!("/commands/orders/{}/ship", ids[24 + k as usize]), None, json!({})).await, StatusCode::CONFLICT).await),
        ("stale version (409)", trips_of(&proxy, n, async |k| post(format!("/commands/orders/{}/cancel", ids[8 + k as usize]), None, json!({"expectedVersion": 1})).await, StatusCode::CONFLICT).await),
        ("no such order (404)", trips_of(&proxy, n, async |_| post(format!("/commands/orders/{}/confirm", uuid::Uuid::now_v7()), None, json!({})).await, StatusCode::NOT_FOUND).await),
    ];
    for (kind, trips) in &kinds {
        println!("{kind}: {trips:?} for {n} commands");
        assert_eq!(trips.statements, n, "{kind}: one statement per command ({trips:?})");
        // A connection that had not run this kind before prepares it on its first use (the warm-up cannot choose
        // the connections the pool hands out); none prepares a statement twice.
        assert_eq!(trips.prepared_again, 0, "{kind}: prepared once per connection, not per command ({trips:?})");
        // The pool checks a connection when it takes it back (sqlx pings on release), never on taking it out.
        assert!(trips.pings <= n, "{kind}: at most the release check per command ({trips:?})");
    }
    app.stop().await;
}
