//! List reads: newest first, stable cursor pages while orders keep arriving.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{eventually, TestApp};

#[tokio::test]
async fn pages_hold_every_order_once_in_order_while_new_orders_arrive() {
    let app = TestApp::spawn().await;
    let mut placed = Vec::new();
    for _ in 0..250 {
        placed.push(app.place_order("cust-pages").await.0);
    }
    app.place_order("someone-else").await;
    // Wait until all 250 views exist, then page through while new orders for the same customer arrive.
    eventually(Duration::from_secs(30), || async {
        let mut seen = 0;
        let mut cursor: Option<String> = None;
        loop {
            let mut url = app.query_url("/queries/orders?customerId=cust-pages&limit=100");
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let page: Value = app.http.get(url).send().await.ok()?.json().await.ok()?;
            seen += page["data"].as_array()?.len();
            match page["metadata"]["nextCursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        (seen == 250).then_some(())
    })
    .await;

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut url = app.query_url("/queries/orders?customerId=cust-pages&limit=40");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let response = app.http.get(url).send().await.expect("GET");
        assert_eq!(response.status(), 200);
        let page: Value = response.json().await.expect("json");
        let data = page["data"].as_array().expect("data");
        assert!(data.len() <= 40);
        seen.extend(data.iter().map(|v| v["orderId"].as_str().expect("orderId").to_owned()));
        assert!(data.iter().all(|v| v["customerId"] == "cust-pages"));
        pages += 1;
        // Newer orders placed meanwhile sort before the cursor: they must not shift or repeat later pages.
        app.place_order("cust-pages").await;
        match page["metadata"]["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let expected: Vec<String> = placed.iter().rev().map(|id| id.to_string()).collect();
    assert_eq!(seen.len(), 250, "every order exactly once");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 250);
    assert_eq!(seen, expected, "newest first");
    assert_eq!(pages, 7);

    for (query, case) in [
        ("limit=0", "limit zero"),
        ("limit=101", "limit too high"),
        ("limit=ten", "limit not a number"),
        ("status=Lost", "unknown status"),
        ("cursor=garbage", "foreign cursor"),
        ("customerId=", "empty customer"),
    ] {
        let response = app.list_orders(query).await;
        assert_eq!(response.status(), 400, "{case}");
        assert_eq!(response.headers()["content-type"], "application/problem+json", "{case}");
    }
    let confirmed: Value = app.get_json(app.query_url("/queries/orders?status=Confirmed")).await;
    assert_eq!(confirmed["data"].as_array().map(Vec::len), Some(0));
    app.stop().await;
}

fn ids(page: &Value) -> Vec<String> {
    page["data"].as_array().expect("data").iter().map(|v| v["orderId"].as_str().expect("orderId").to_owned()).collect()
}

#[tokio::test]
async fn a_list_read_right_after_a_post_includes_the_new_order_in_that_one_request() {
    let app = TestApp::spawn().await;
    for round in 0..20 {
        let customer = format!("cust-ryw-{round}");
        let placed = app.place_order_answer(&customer).await;
        let position = placed["position"].as_i64().expect("position");
        let url = app.query_url(&format!("/queries/orders?customerId={customer}&minPosition={position}"));
        let response = app.http.get(url).send().await.expect("GET");
        assert_eq!(response.status(), 200, "round {round}");
        let page: Value = response.json().await.expect("json");
        assert_eq!(ids(&page), [placed["orderId"].as_str().expect("orderId")], "round {round}");
        assert!(page["metadata"]["position"].as_i64().expect("position") >= position);
        assert_eq!(page["metadata"]["processing"], false);
    }
    for (query, case) in [("minPosition=-1", "negative"), ("minPosition=x", "not a number"), ("waitMs=30001", "wait")] {
        let response = app.list_orders(query).await;
        assert_eq!(response.status(), 400, "{case}");
        assert_eq!(response.headers()["content-type"], "application/problem+json", "{case}");
    }
    app.stop().await;
}

/// An order of `customer` placed as the command-service places one, inside a transaction left open: its sequence is
/// drawn, its commit (or rollback) is the test's.
///
/// The relay publishes before the transaction opens: in `wal` mode creating the replication slot waits for every
/// transaction in flight, so a transaction opened while the slot is made would hold the relay back until the test
/// ends it, and the test would wait on itself.
async fn placed_in_an_open_transaction(
    app: &TestApp,
    customer: &str,
) -> (sqlx::Transaction<'static, sqlx::Postgres>, command_service::store::Recorded) {
    use command_service::domain::{NewOrder, PlaceOrder};

    let (first, _) = app.place_order(&format!("{customer}-before")).await;
    let published = app.query_url(&format!("/queries/orders/{first}?minVersion=1&waitMs=10000"));
    assert_eq!(app.http.get(published).send().await.expect("GET").status(), 200, "the relay publishes");
    let command: PlaceOrder = serde_json::from_value(serde_json::json!({
        "customerId": customer, "currency": "EUR", "items": [{"sku": "SKU-1", "quantity": 1, "unitPrice": "1.00"}]
    }))
    .expect("a place-order command");
    let placing = command_service::domain::Command::Place(NewOrder::parse(command).expect("valid"));
    let change = command_service::domain::decide(None, &placing, time::OffsetDateTime::now_utc()).expect("placed");
    let mut open = app.pool.begin().await.expect("begin");
    match command_service::store::place(&mut open, uuid::Uuid::now_v7(), &change, None, None).await {
        Ok(command_service::store::Outcome::Recorded(held)) => (open, held),
        other => panic!("placed inside an open transaction: {other:?}"),
    }
}

/// A command that allocated a lower sequence but commits after a higher one must hold the position back until it
/// commits: otherwise a list read at the higher position would silently miss it.
#[tokio::test]
async fn the_position_waits_for_a_lower_sequence_that_commits_late() {
    let app = TestApp::spawn().await;
    let (late, held) = placed_in_an_open_transaction(&app, "cust-late").await;

    let placed = app.place_order_answer("cust-late").await;
    let position = placed["position"].as_i64().expect("position");
    assert!(position > held.sequence, "the open transaction holds the lower sequence");
    // The later order's view arrives; the position must not pass the open transaction's sequence.
    let own = app.query_url(&format!("/queries/orders/{}?minVersion=1", placed["orderId"].as_str().expect("id")));
    assert_eq!(app.http.get(own).send().await.expect("GET").status(), 200);
    let url = app.query_url(&format!("/queries/orders?customerId=cust-late&minPosition={position}"));
    let response = app.http.get(format!("{url}&waitMs=300")).send().await.expect("GET");
    assert_eq!(response.status(), 202);
    assert_eq!(response.headers()["retry-after"], "1");
    let page: Value = response.json().await.expect("json");
    assert!(page["metadata"]["position"].as_i64().expect("position") < held.sequence);
    assert_eq!(page["metadata"]["processing"], true);

    late.commit().await.expect("commit late");
    let response = app.http.get(url).send().await.expect("GET");
    assert_eq!(response.status(), 200);
    let page: Value = response.json().await.expect("json");
    let mut expected = vec![held.order_id.to_string(), placed["orderId"].as_str().expect("id").to_owned()];
    expected.sort();
    let mut seen = ids(&page);
    seen.sort();
    assert_eq!(seen, expected, "both orders, the late one included");
    app.stop().await;
}

#[tokio::test]
async fn a_sequence_that_is_never_committed_does_not_hold_the_position_back() {
    let app = TestApp::spawn().await;
    let (rolled_back, held) = placed_in_an_open_transaction(&app, "cust-hole").await;
    let hole = held.sequence;
    let placed = app.place_order_answer("cust-hole").await;
    rolled_back.rollback().await.expect("roll back");
    let position = placed["position"].as_i64().expect("position");
    assert!(position > hole, "the rolled-back transaction drew the lower sequence");

    let url = app.query_url(&format!("/queries/orders?customerId=cust-hole&minPosition={position}&waitMs=5000"));
    let response = app.http.get(url).send().await.expect("GET");
    assert_eq!(response.status(), 200, "the hole at {hole} closed");
    let page: Value = response.json().await.expect("json");
    assert_eq!(ids(&page), vec![placed["orderId"].as_str().expect("id").to_owned()]);
    assert!(page["metadata"]["position"].as_i64().expect("position") >= position);
    app.stop().await;
}

/// Every stage name in a query plan, with the index of each index scan.
fn stages(plan: &mongodb::bson::Document, found: &mut Vec<String>) {
    if let Ok(stage) = plan.get_str("stage") {
        found.push(match plan.get_str("indexName") {
            Ok(index) => format!("{stage}:{index}"),
            Err(_) => stage.to_owned(),
        });
    }
    for child in ["inputStage", "outerStage", "innerStage"] {
        if let Ok(child) = plan.get_document(child) {
            stages(child, found);
        }
    }
    if let Ok(children) = plan.get_array("inputStages") {
        for child in children.iter().filter_map(|c| c.as_document()) {
            stages(child, found);
        }
    }
}

/// The list reads, first pages and later ones, are served by an index scan, never a collection scan.
#[tokio::test]
async fn list_reads_are_served_by_their_indexes() {
    use mongodb::bson::doc;
    use query_service::store::{list_query, ListCursor, ListFilter};

    let app = TestApp::spawn().await;
    app.place_order("cust-explain").await;
    let (last, _) = app.place_order("cust-explain").await;
    let own = app.query_url(&format!("/queries/orders/{last}?minVersion=1"));
    assert_eq!(app.http.get(own).send().await.expect("GET").status(), 200);
    let cursor = ListCursor::decode(&format!("1764201600123_{last}")).expect("a cursor");
    let customer = ListFilter { customer_id: Some("cust-explain".to_owned()), status: None };
    let status = ListFilter { customer_id: None, status: Some("Placed".to_owned()) };
    for (filter, index) in [
        (&customer, "customerId_1_listKey_-1"),
        (&status, "status_1_listKey_-1"),
        (&ListFilter::default(), "listKey_-1"),
    ] {
        for after in [None, Some(&cursor)] {
            let (query, sort) = list_query(filter, after);
            let explain = doc! {
                "explain": { "find": "order_views", "filter": query, "sort": sort, "limit": 40 },
                "verbosity": "queryPlanner",
            };
            let answer = app.mongo.run_command(explain).await.expect("explain");
            let plan = answer.get_document("queryPlanner").and_then(|p| p.get_document("winningPlan")).expect("plan");
            let mut found = Vec::new();
            stages(plan, &mut found);
            assert!(found.contains(&format!("IXSCAN:{index}")), "{filter:?} after {after:?}: {found:?}");
            assert!(!found.iter().any(|s| s == "COLLSCAN"), "{filter:?} after {after:?}: {found:?}");
        }
    }
    app.stop().await;
}
