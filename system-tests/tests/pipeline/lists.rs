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
        let response = app.http.get(app.query_url(&format!("/queries/orders?{query}"))).send().await.expect("GET");
        assert_eq!(response.status(), 400, "{case}");
        assert_eq!(response.headers()["content-type"], "application/problem+json", "{case}");
    }
    let confirmed: Value = app
        .http
        .get(app.query_url("/queries/orders?status=Confirmed"))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    assert_eq!(confirmed["data"].as_array().map(Vec::len), Some(0));
    app.stop().await;
}
