//! Several query-service replicas: one projects, every one answers waiting reads at once.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::helpers::{amqp_url, mongodb_uri, query_config, TestApp};

#[tokio::test]
async fn a_replica_that_does_not_project_answers_a_waiting_read_in_one_request() {
    let app = TestApp::spawn().await;
    let mut config = query_config(&app.names, &amqp_url(), &mongodb_uri());
    config.projector_enabled = false;
    let shutdown = CancellationToken::new();
    let reader = query_service::run::start(config, shutdown.clone()).await.expect("second replica starts");
    // The replica binds its notice queue as it starts; wait until it serves views before timing anything.
    let (warm_up, _) = app.place_order("cust-warm-up").await;
    let http = &app.http;
    crate::helpers::eventually(Duration::from_secs(20), || async {
        let url = format!("http://{}/queries/orders/{warm_up}?minVersion=1&waitMs=0", reader.addr);
        (http.get(url).send().await.ok()?.status() == 200).then_some(())
    })
    .await;

    for n in 0..20 {
        let (id, version) = app.place_order(&format!("cust-replica-{n}")).await;
        let url = format!("http://{}/queries/orders/{id}?minVersion={version}&waitMs=5000", reader.addr);
        let response = app.http.get(url).send().await.expect("GET answers");
        assert_eq!(response.status(), 200, "order {n} not readable on the non-projecting replica in one request");
    }
    assert_eq!(reader.waiters.watched_orders(), 0, "finished waits leave nothing behind");
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(15), reader.task).await;
    app.stop().await;
}
