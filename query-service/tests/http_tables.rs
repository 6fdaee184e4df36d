//! The query side's HTTP table in process, before a store: every bad read gets its status as
//! `application/problem+json`, decided before the store was asked (a MongoDB nothing listens on would answer 503 to
//! any read that reached it). No server is needed.

use axum::http::Method;
use service_runtime::testing::{assert_problem, get, in_process, repeated_operation_ids, request};

/// The query side in process, in front of a MongoDB nothing listens on (and an event feed nobody serves): any read
/// that reached the store would answer 503, so every 4xx it gives was decided before the store was asked.
async fn query_app_without_store() -> axum::Router {
    use query_service::read::{Boards, ViewReader};
    let uri = "mongodb://127.0.0.1:1/?directConnection=true&serverSelectionTimeoutMS=200";
    let views =
        query_service::store::connect(uri, "none", &Default::default()).await.expect("a client (it connects lazily)");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let feed = query_service::feed::Feed::new("http://127.0.0.1:1/events".to_owned(), None).expect("feed");
    let boards = Boards::default();
    query_service::http::build_app(query_service::http::AppState {
        reader: ViewReader::new(views.clone()),
        rebuilders: query_service::projection::ALL
            .iter()
            .map(|p| {
                let views = views.for_model(p.model());
                query_service::rebuild::Rebuilder::new(*p, views, feed.clone(), 2, shutdown.clone())
            })
            .collect(),
        views,
        waiters: boards.orders(),
        boards,
        shutdown,
        admin: service_runtime::admin::AdminToken::new(None),
        metrics: query_service::metrics::QueryMetrics::new().expect("metrics"),
        readiness: query_service::http::Readiness {
            amqp_url: "amqp://guest:guest@127.0.0.1:1/%2f".to_owned(),
            consuming: Vec::new(),
            tasks: Default::default(),
            watchdog: Default::default(),
        },
        slowdown: None,
        demo: None,
        sampling: query_service::http::Sampling::default(),
        auth: service_runtime::auth::Auth::trusting(),
        slots: service_runtime::limits::Slots::new(100, 1_000),
    })
}

#[tokio::test]
async fn bad_reads_are_rejected_with_problem_json_before_the_store_is_read() {
    let app = query_app_without_store().await;
    let id = uuid::Uuid::now_v7();
    let cases = [
        ("/queries/orders/not-a-uuid".to_owned(), 400, "id not a uuid"),
        ("/queries/orders/1%27%20or%201%3D1".to_owned(), 400, "injection in the id"),
        (format!("/queries/orders/{id}?minVersion=-1"), 400, "negative minVersion"),
        (format!("/queries/orders/{id}?minVersion=abc"), 400, "minVersion not a number"),
        (format!("/queries/orders/{id}?minVersion=1.5"), 400, "fractional minVersion"),
        (format!("/queries/orders/{id}?minVersion=99999999999999999999"), 400, "minVersion out of range"),
        (format!("/queries/orders/{id}?minVersion=1&waitMs=30001"), 400, "waitMs above the maximum"),
        (format!("/queries/orders/{id}?minVersion=1&waitMs=-5"), 400, "negative waitMs"),
        (format!("/queries/orders/{id}?waitMs=soon"), 400, "waitMs not a number"),
        ("/queries/nothing".to_owned(), 404, "unknown route"),
        ("/queries/customers/c%27%20or%201%3D1/summary".to_owned(), 400, "injection in the customer id"),
        ("/queries/customers/c-1/summary?minPosition=x".to_owned(), 400, "summary minPosition not a number"),
        ("/queries/dashboard/daily".to_owned(), 400, "dashboard without dates"),
        ("/queries/dashboard/daily?from=2026-12-01".to_owned(), 400, "dashboard without to"),
        ("/queries/dashboard/daily?from=2026-12-01&to=2026-11-30".to_owned(), 400, "from after to"),
        ("/queries/dashboard/daily?from=2024-01-01&to=2025-01-01".to_owned(), 400, "367 days"),
        ("/queries/dashboard/daily?from=2026-12-1&to=2026-12-31".to_owned(), 400, "a date not written YYYY-MM-DD"),
        ("/queries/dashboard/daily?from=2026-12-01&to=2026-12-31&waitMs=30001".to_owned(), 400, "dashboard waitMs"),
    ];
    for (path, status, case) in cases {
        assert_problem(in_process(&app, get(&path)).await, status, case);
    }
    // The query string is read before the id, as it always was: its fault is the one named.
    let both =
        assert_problem(in_process(&app, get("/queries/orders/nope?minVersion=1&minVersion=2")).await, 400, "both");
    assert!(both["detail"].as_str().is_some_and(|d| d.contains("minVersion")), "{both}");
    let wrong_method = request(Method::DELETE, &format!("/queries/orders/{id}"), None, Vec::new());
    assert_problem(in_process(&app, wrong_method).await, 405, "DELETE on a view");
}

#[tokio::test]
async fn every_operation_of_the_document_has_an_operation_id_of_its_own() {
    let (status, _, document) = in_process(&query_app_without_store().await, get("/openapi.json")).await;
    assert_eq!(status, 200);
    assert_eq!(repeated_operation_ids(&document), Vec::<String>::new());
}
