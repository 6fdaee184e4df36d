//! The customer summary and the sales dashboard: a few hundred orders of three customers over several days, through
//! every transition; after a `minPosition` wait both read models equal the same aggregates computed in SQL over the
//! write model — and again after each is rebuilt on its own, and `query-service verify` checks all three.

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;
use system_tests::aggregates::{
    active_days, customers, dashboard_in_sql, dashboard_of, differences, summary_in_sql, summary_of, Orders,
};
use time::macros::datetime;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::helpers::{eventually, lose_documents_and_positions, mongodb_uri, TestApp, ADMIN_TOKEN};
use query_service::store::models::{CUSTOMER_SUMMARY, ORDER_VIEWS};

const CUSTOMERS: [&str; 3] = ["c-ada", "c-bo", "c-cy"];

/// The steps of order `i`'s life: all five paths an order can take, in turn.
fn life(i: usize) -> &'static [&'static str] {
    match i % 5 {
        0 => &["Placed"],
        1 => &["Placed", "Confirmed"],
        2 => &["Placed", "Confirmed", "Shipped"],
        3 => &["Placed", "Cancelled"],
        _ => &["Placed", "Confirmed", "Cancelled"],
    }
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339).expect("a time")
}

/// Writes `count` orders into the write model as the command side would have — the order row, its line and one
/// event per step in the outbox, in one transaction — placed over six days before 21 November 2026 and changed
/// hours later (some on the next day), so that the read models see several days.
async fn backdated_orders(app: &TestApp, count: usize) {
    let start = datetime!(2026-11-15 00:00 UTC);
    for i in 0..count {
        let id = Uuid::now_v7();
        let customer = CUSTOMERS[i % 3];
        let currency = if i % 4 == 3 { "USD" } else { "EUR" };
        let total = rust_decimal::Decimal::new(1_000 + (i as i64 * 37) % 9_000, 2);
        let placed_at = start + time::Duration::days((i % 6) as i64) + time::Duration::minutes((i * 53 % 1_440) as i64);
        let steps = life(i);
        let mut tx = app.pool.begin().await.expect("a transaction");
        let mut updated_at = placed_at;
        for (n, status) in steps.iter().enumerate() {
            updated_at = placed_at + time::Duration::hours(7 * n as i64);
            let mut payload = json!({
                "customer": {"id": customer, "segment": "standard"}, "currency": currency, "status": status,
                "items": [{"sku": "SKU-1", "quantity": 1, "unitPrice": total.to_string(), "lineTotal": total.to_string()}],
                "total": total.to_string(), "placedAt": rfc3339(placed_at), "updatedAt": rfc3339(updated_at),
            });
            if *status == "Cancelled" {
                payload["cancelReason"] = json!("changed my mind");
            }
            sqlx::query(
                "insert into outbox (event_id, event_type, schema_version, order_id, order_version, payload, occurred_at)
                 values ($1, $2, 2, $3, $4, $5, $6)",
            )
            .bind(Uuid::now_v7())
            .bind(format!("Order{status}"))
            .bind(id)
            .bind(n as i64 + 1)
            .bind(&payload)
            .bind(updated_at)
            .execute(&mut *tx)
            .await
            .expect("an event");
        }
        let status = steps[steps.len() - 1];
        sqlx::query(
            "insert into customer_order (id, customer_id, currency, status, total, version, placed_at, updated_at,
                                         cancel_reason)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(id)
        .bind(customer)
        .bind(currency)
        .bind(status)
        .bind(total)
        .bind(steps.len() as i64)
        .bind(placed_at)
        .bind(updated_at)
        .bind((status == "Cancelled").then_some("changed my mind"))
        .execute(&mut *tx)
        .await
        .expect("an order");
        sqlx::query(
            "insert into order_line (order_id, line_no, sku, quantity, unit_price, line_total)
             values ($1, 1, 'SKU-1', 1, $2, $2)",
        )
        .bind(id)
        .bind(total)
        .execute(&mut *tx)
        .await
        .expect("a line");
        tx.commit().await.expect("committed");
    }
}

/// Orders placed through the API today, one per path of life, for each customer: the live command path too.
async fn orders_of_today(app: &TestApp) {
    for (i, customer) in CUSTOMERS.iter().cycle().take(10).enumerate() {
        let (id, _) = app.place_order(customer).await;
        for step in life(i).iter().skip(1) {
            let (path, body) = match *step {
                "Confirmed" => ("confirm", json!({})),
                "Shipped" => ("ship", json!({})),
                _ => ("cancel", json!({"reason": "changed my mind"})),
            };
            let url = app.command_url(&format!("/commands/orders/{id}/{path}"));
            let answer = app.http.post(url).json(&body).send().await.expect("a command");
            assert_eq!(answer.status(), StatusCode::OK, "{path} {id}");
        }
    }
}

async fn head(app: &TestApp) -> i64 {
    sqlx::query_scalar("select coalesce(max(sequence), 0) from outbox").fetch_one(&app.pool).await.expect("head")
}

/// Reads `path` at `minPosition` `position` (waiting up to 30 s): its JSON `data`.
async fn read_at(app: &TestApp, path: &str, position: i64) -> Value {
    let separator = if path.contains('?') { '&' } else { '?' };
    let url = app.query_url(&format!("{path}{separator}minPosition={position}&waitMs=30000"));
    let response = app.http.get(url).send().await.expect("a read");
    assert_eq!(response.status(), StatusCode::OK, "{path} at {position}");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["metadata"]["processing"], false, "{body}");
    assert_eq!(body["metadata"]["missingPositions"], json!([]), "{body}");
    body["data"].clone()
}

/// Every customer's summary and the dashboard of every active day equal the SQL aggregates; how many were compared.
async fn assert_read_models_equal_the_write_model(app: &TestApp) -> usize {
    let position = head(app).await;
    let customers = customers(&app.pool).await.expect("customers");
    for customer in &customers {
        let answered = summary_of(&read_at(app, &format!("/queries/customers/{customer}/summary"), position).await);
        let expected = summary_in_sql(&app.pool, Orders::Current, customer).await.expect("the SQL summary");
        assert_eq!(answered.expect("a summary"), expected, "{customer}");
    }
    let (from, to) = active_days(&app.pool).await.expect("days").expect("orders");
    let answered = read_at(app, &format!("/queries/dashboard/daily?from={from}&to={to}"), position).await;
    let answered = dashboard_of(&answered).expect("a dashboard");
    let expected = dashboard_in_sql(&app.pool, Orders::Current, &from, &to).await.expect("the SQL dashboard");
    let diff = differences(&expected, &answered);
    assert!(diff.is_empty(), "{} differences:\n{}", diff.len(), diff.join("\n"));
    assert!(expected.len() >= 8, "several days and two currencies: {expected:?}");
    customers.len()
}

/// Rebuilds the read model `projection` on its own and waits until reads switched to the new generation.
async fn rebuild(app: &TestApp, projection: &str) {
    let status_path = format!("/admin/read-models/{projection}");
    let url = app.query_url(&format!("{status_path}/rebuild"));
    let started = app.http.post(url).bearer_auth(ADMIN_TOKEN).send().await.expect("rebuild answers");
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    assert_eq!(started.headers()["location"], status_path.as_str());
    let generation = started.json::<Value>().await.expect("json")["generation"].as_str().expect("name").to_owned();
    assert!(generation.starts_with(if projection == "daily-sales" { "daily_sales_v" } else { "customer_orders_v" }));
    eventually(Duration::from_secs(120), || async {
        let status: Value =
            app.http.get(app.query_url(&status_path)).bearer_auth(ADMIN_TOKEN).send().await.ok()?.json().await.ok()?;
        (status["active"] == generation.as_str() && status["building"].is_null()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summary_and_the_dashboard_equal_the_sql_aggregates_of_the_write_model_and_survive_their_rebuilds() {
    let app = TestApp::spawn().await;
    backdated_orders(&app, 300).await;
    orders_of_today(&app).await;
    let compared = assert_read_models_equal_the_write_model(&app).await;
    assert_eq!(compared, CUSTOMERS.len());

    for projection in ["customer-summary", "daily-sales"] {
        rebuild(&app, projection).await;
    }
    assert_read_models_equal_the_write_model(&app).await;

    // Every read model agrees with the log, document by document.
    let out = crate::verify::run_verify(&app, &[], 1).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let checked: Vec<(String, u64)> = stdout
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("a JSON line"))
        .map(|summary| {
            (summary["projection"].as_str().unwrap_or_default().to_owned(), summary["checked"].as_u64().unwrap_or(0))
        })
        .collect();
    let names: Vec<&str> = checked.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["orders", "customer-summary", "daily-sales"]);
    assert!(checked.iter().all(|(_, n)| *n >= 310), "{checked:?}");
    app.stop().await;
}

#[tokio::test]
async fn bad_ranges_are_400_an_unknown_customer_404_and_an_unknown_read_model_404() {
    let app = TestApp::spawn().await;
    let (_, _) = app.place_order("c-known").await;
    let get = |path: &str| app.http.get(app.query_url(path)).send();
    for bad in [
        "/queries/dashboard/daily?from=2026-12-02&to=2026-12-01",
        "/queries/dashboard/daily?from=2024-01-01&to=2025-01-01",
        "/queries/dashboard/daily?to=2026-12-01",
        "/queries/dashboard/daily?from=2026-12-01",
        "/queries/dashboard/daily?from=2026-02-30&to=2026-03-01",
        "/queries/dashboard/daily?from=2026-12-01&to=2026-12-01&minPosition=-1",
        "/queries/customers/not%20an%20id/summary",
        "/queries/customers/c-known/summary?waitMs=30001",
    ] {
        let response = get(bad).await.expect("answers");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(response.headers()["content-type"], "application/problem+json", "{bad}");
    }
    let unknown = get("/queries/customers/c-nobody/summary?minPosition=1&waitMs=10000").await.expect("answers");
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(unknown.headers()["content-type"], "application/problem+json");
    let known = read_at(&app, "/queries/customers/c-known/summary", head(&app).await).await;
    assert_eq!(known["orders"], 1);
    let a_year = get("/queries/dashboard/daily?from=2025-12-01&to=2026-12-01").await.expect("answers");
    assert_eq!(a_year.status(), StatusCode::OK, "366 days may be asked");
    let url = app.query_url("/admin/read-models/no-such-model/rebuild");
    let response = app.http.post(url).bearer_auth(ADMIN_TOKEN).send().await.expect("answers");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    // A path segment that is not UTF-8 is a bad request like any other, as problem+json.
    for (method, path) in [
        (reqwest::Method::GET, "/admin/read-models/%ff"),
        (reqwest::Method::POST, "/admin/read-models/%ff/rebuild"),
        (reqwest::Method::POST, "/admin/read-models/%ff/rollback"),
        (reqwest::Method::GET, "/queries/customers/%ff/summary"),
    ] {
        let response =
            app.http.request(method, app.query_url(path)).bearer_auth(ADMIN_TOKEN).send().await.expect("answers");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(response.headers()["content-type"], "application/problem+json", "{path}");
    }
    app.stop().await;
}

/// A replica that runs only the order views still declares every projection's queue, bound before any event can
/// reach one of them: what is published meanwhile waits in the other projections' queues for a replica that projects
/// them, instead of being routed past them to the order views alone.
#[tokio::test]
async fn events_published_while_only_the_order_views_are_projected_wait_in_the_other_projections_queues() {
    let orders_only = |query: &mut query_service::config::Config, _| {
        query.projections = vec![query_service::projection::named("orders").expect("the order views")];
    };
    let app = TestApp::spawn_tuned(
        crate::helpers::Names::new("test"),
        &crate::helpers::amqp_url(),
        &mongodb_uri(),
        |_| {},
        orders_only,
    )
    .await;
    for n in 0..3 {
        let (id, version) = app.place_order(&format!("c-early-{n}")).await;
        let url = app.query_url(&format!("/queries/orders/{id}?minVersion={version}&waitMs=10000"));
        assert_eq!(app.http.get(url).send().await.expect("a read").status(), StatusCode::OK);
    }
    let connection = lapin::Connection::connect(&crate::helpers::amqp_url(), Default::default()).await.expect("amqp");
    let channel = connection.create_channel().await.expect("a channel");
    for projection in ["customer-summary", "daily-sales"] {
        let queue = format!("{}.{projection}", app.names.queue);
        let passive = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
        let declared = channel.queue_declare(queue.as_str().into(), passive, Default::default()).await;
        let declared = declared.unwrap_or_else(|err| panic!("{queue} exists: {err}"));
        assert!(declared.message_count() >= 3, "{queue} holds the three events: {}", declared.message_count());
    }
    let _ = connection.close(200, "checked".into()).await;
    app.stop().await;
}

/// Reads `url` until it answers 200, checking that no 200 on the way lies: `complete` says whether a body holds
/// everything the position covers. Returns the first 200's body.
async fn first_answer_vouched_for(
    app: &TestApp,
    url: &str,
    complete: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    crate::helpers::eventually(std::time::Duration::from_secs(90), || async {
        let response = app.http.get(url).send().await.ok()?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.ok()?;
        assert!(status == StatusCode::OK || status == StatusCode::ACCEPTED, "{status}: {body}");
        if status == StatusCode::OK {
            assert!(complete(&body), "a 200 at the position must hold every event up to it: {body}");
            return Some(body);
        }
        None
    })
    .await
}

/// Places three orders of `customer` and waits until its summary at the last one's position holds them; returns
/// that position.
async fn three_orders_in_the_summary(app: &TestApp, customer: &str) -> i64 {
    let mut last = 0;
    for _ in 0..3 {
        last = app.place_order_answer(customer).await["position"].as_i64().expect("position");
    }
    let url = app.query_url(&format!("/queries/customers/{customer}/summary?minPosition={last}&waitMs=20000"));
    let summary = app.get_json(&url).await;
    assert_eq!(summary["data"]["orders"], 3, "{summary}");
    last
}

/// Waits until the read model whose position document is `id` has stored `field` (`position`, or
/// `partitions.<index>of<count>`) at `position` or past it: the consumer has settled, and is idle from then on.
async fn stored_through(app: &TestApp, id: &str, field: &str, position: i64) {
    let positions = app.mongo.collection::<mongodb::bson::Document>("read_model_positions");
    crate::helpers::eventually(std::time::Duration::from_secs(30), || async {
        let found = positions.find_one(mongodb::bson::doc! { "_id": id }).await.ok()??;
        let stored = match field.split_once('.') {
            Some((outer, inner)) => found.get_document(outer).ok()?.get_i64(inner).ok()?,
            None => found.get_i64(field).ok()?,
        };
        (stored >= position).then_some(())
    })
    .await;
}

/// Loses the customer summary's store: every generation (and its gaps), its pointer and its position.
async fn lose_the_summary_store(app: &TestApp) {
    for name in app.mongo.list_collection_names().await.expect("collections") {
        if name.starts_with("customer_orders") {
            app.mongo.collection::<mongodb::bson::Document>(&name).drop().await.expect("dropped");
        }
    }
    for (collection, id) in
        [("read_model_generations", "customer-summary"), ("read_model_positions", "customer_orders")]
    {
        let filter = mongodb::bson::doc! { "_id": id };
        app.mongo.collection::<mongodb::bson::Document>(collection).delete_many(filter).await.expect("deleted");
    }
}

/// A read model whose store lost what it held (its database restored empty, its collections dropped) while the log
/// goes on: its position would jump to the next checkpoint. It must not vouch for positions until it is built again
/// from the log, and it builds itself.
#[tokio::test]
async fn a_read_model_that_lost_its_documents_answers_202_until_it_has_built_itself_from_the_log() {
    let app = TestApp::spawn().await;
    three_orders_in_the_summary(&app, "lost-store").await;

    lose_the_summary_store(&app).await;
    // The pointer is cached for a second: the projector reads it again before the next order.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let last = app.place_order_answer("lost-store").await["position"].as_i64().expect("position");
    let url = app.query_url(&format!("/queries/customers/lost-store/summary?minPosition={last}&waitMs=2000"));
    let summary = first_answer_vouched_for(&app, &url, |body| body["data"]["orders"] == 4).await;
    assert_eq!(summary["metadata"]["missingPositions"], serde_json::json!([]), "{summary}");
    app.stop().await;
}

/// The same loss, read right away: the replica's cached pointer, read a moment before the loss, still says the
/// store holds the whole log, while the position the projector writes anew has jumped past the lost events. A read
/// that vouches for a position must look at the pointer as it is now.
#[tokio::test]
async fn a_read_right_after_its_store_was_lost_does_not_vouch_from_a_cached_pointer() {
    let app = TestApp::spawn().await;
    three_orders_in_the_summary(&app, "lost-now").await;

    lose_the_summary_store(&app).await;
    let last = app.place_order_answer("lost-now").await["position"].as_i64().expect("position");
    let url = app.query_url(&format!("/queries/customers/lost-now/summary?minPosition={last}&waitMs=2000"));
    let summary = first_answer_vouched_for(&app, &url, |body| body["data"]["orders"] == 4).await;
    assert_eq!(summary["metadata"]["missingPositions"], serde_json::json!([]), "{summary}");
    app.stop().await;
}

/// A deployment upgraded from a release that had only the order views: the log holds orders whose events reached
/// the order views' old store and no queue of the customer summary or the dashboard. The read models without that
/// history answer 202 (never a 200 without it) until they have built themselves from the log; nobody asks for it.
#[tokio::test]
async fn read_models_added_to_a_log_that_already_holds_events_build_themselves_and_never_answer_without_them() {
    use crate::helpers::{amqp_url, spawn_relay_process, CommandFirst, Names};
    let names = Names::new("test");
    let command = CommandFirst::spawn(names.clone(), &amqp_url(), |c| c.relay_enabled = false).await;
    let http = command.http();
    let orders = command.command_url("/commands/orders");
    for _ in 0..3 {
        crate::helpers::place_order_at(&http, &orders, "upgraded").await;
    }
    // What the earlier release left: the three events published (to read models whose stores are not these) and the
    // relay's record of the read models as the upgrade's migration makes it for a log that is not empty.
    let pool = sqlx::PgPool::connect(&names.database_url()).await.expect("pool");
    sqlx::query("update outbox set published_at = now()").execute(&pool).await.expect("marked");
    sqlx::query("update read_model_delivery set whole_log_pending = false").execute(&pool).await.expect("recorded");
    let _relay = spawn_relay_process(&names, &names.database_url(), system_tests::relay_mode_name(), 100);
    let app = command.then_query(&mongodb_uri(), |_, _| {}).await;
    let last = app.place_order_answer("upgraded").await["position"].as_i64().expect("position");

    let url = app.query_url(&format!("/queries/customers/upgraded/summary?minPosition={last}&waitMs=2000"));
    first_answer_vouched_for(&app, &url, |body| body["data"]["orders"] == 4).await;
    let url = app.query_url(&format!("/queries/orders?customerId=upgraded&minPosition={last}&waitMs=2000"));
    first_answer_vouched_for(&app, &url, |body| body["data"].as_array().is_some_and(|d| d.len() == 4)).await;
    let (today, tomorrow) = {
        let today = time::OffsetDateTime::now_utc().date();
        (today.previous_day().expect("a day"), today.next_day().expect("a day"))
    };
    let url =
        app.query_url(&format!("/queries/dashboard/daily?from={today}&to={tomorrow}&minPosition={last}&waitMs=2000"));
    first_answer_vouched_for(&app, &url, |body| {
        body["data"]["totals"]
            .as_array()
            .is_some_and(|t| t.iter().filter_map(|t| t["placed"].as_i64()).sum::<i64>() == 4)
    })
    .await;
    pool.close().await;
    app.stop().await;
}

/// A new deployment whose command side takes orders before its relay first starts (the compose file starts them
/// apart; the relay may be slow or down): the log holds events, but none went out, so every read model's queue will
/// get them all. No read model needs a rebuild, and none records that its first generation misses history.
#[tokio::test]
async fn read_models_of_a_log_that_nothing_was_published_from_yet_hold_it_whole_without_a_rebuild() {
    use crate::helpers::{amqp_url, spawn_relay_process, CommandFirst, Names};
    let names = Names::new("test");
    let command = CommandFirst::spawn(names.clone(), &amqp_url(), |c| c.relay_enabled = false).await;
    let http = command.http();
    let orders = command.command_url("/commands/orders");
    for _ in 0..3 {
        crate::helpers::place_order_at(&http, &orders, "early").await;
    }
    let _relay = spawn_relay_process(&names, &names.database_url(), system_tests::relay_mode_name(), 100);
    let app = command.then_query(&mongodb_uri(), |_, _| {}).await;
    let last = app.place_order_answer("early").await["position"].as_i64().expect("position");
    let url = app.query_url(&format!("/queries/customers/early/summary?minPosition={last}&waitMs=20000"));
    let summary = first_answer_vouched_for(&app, &url, |body| body["data"]["orders"] == 4).await;
    assert_eq!(summary["metadata"]["missingPositions"], serde_json::json!([]), "{summary}");

    let pointers = app.mongo.collection::<mongodb::bson::Document>("read_model_generations");
    for read_model in ["orders", "customer-summary", "daily-sales"] {
        let pointer = crate::helpers::eventually(std::time::Duration::from_secs(30), || async {
            let pointer = pointers.find_one(mongodb::bson::doc! { "_id": read_model }).await.ok()??;
            pointer.contains_key("firstComplete").then_some(pointer)
        })
        .await;
        assert_eq!(pointer.get_bool("firstComplete").ok(), Some(true), "{read_model}: {pointer}");
        assert_eq!(pointer.get_i64("created").ok(), Some(0), "{read_model} was rebuilt: {pointer}");
    }
    app.stop().await;
}

/// With the queues split, each partition gets a copy of the marker that tells a read model its queue holds the whole
/// log. A partition's queue purged before any replica consumed it lost its copy and its events; the other partition's
/// copy must not vouch for the whole store: the summary builds itself and never answers 200 without them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_purged_before_it_was_first_consumed_does_not_hold_the_whole_log_for_the_other() {
    use crate::helpers::{amqp_url, free_port, query_service_command, ChildProcess, CommandFirst, Names};
    let names = Names::new("test");
    let command = CommandFirst::spawn(names.clone(), &amqp_url(), |c| c.projector_partitions = 2).await;
    // A replica that runs the order views alone declares every read model's queues: the summary's fill unconsumed.
    let _views = query_service_command(&names, free_port())
        .env("PROJECTIONS", "orders")
        .env("PROJECTOR_PARTITIONS", "2")
        .spawn()
        .map(ChildProcess)
        .expect("query-service starts");
    let (http, orders) = (command.http(), command.command_url("/commands/orders"));
    for _ in 0..6 {
        crate::helpers::place_order_at(&http, &orders, "purged").await;
    }
    // Once the relay has told the summary that its queues hold the whole log, the marker saying so is in both.
    let pool = sqlx::PgPool::connect(&names.database_url()).await.expect("pool");
    eventually(Duration::from_secs(30), || async {
        let told: bool =
            sqlx::query_scalar("select not whole_log_pending from read_model_delivery where name = 'customer-summary'")
                .fetch_one(&pool)
                .await
                .ok()?;
        told.then_some(())
    })
    .await;
    pool.close().await;
    let connection =
        lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default()).await.expect("amqp");
    let queue = format!("{}.customer-summary.1", names.queue);
    // A passive declare of a queue not declared yet closes its channel: a new one each time.
    let channel = eventually(Duration::from_secs(30), || async {
        let channel = connection.create_channel().await.ok()?;
        let passive = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
        let declared = channel.queue_declare(queue.as_str().into(), passive, Default::default()).await.ok()?;
        (declared.message_count() > 0).then_some(channel)
    })
    .await;
    channel.queue_purge(queue.as_str().into(), Default::default()).await.expect("purged");
    let _ = connection.close(200, "purged".into()).await;

    let app = command.then_query(&mongodb_uri(), |query, _| query.projector_partitions = 2).await;
    // Partition 0 handles the marker that says "whole log" first: partition 1 has nothing until the next order.
    let positions = app.mongo.collection::<mongodb::bson::Document>("read_model_positions");
    eventually(Duration::from_secs(30), || async {
        let found = positions.find_one(mongodb::bson::doc! { "_id": "customer_orders" }).await.ok()??;
        found.get_document("partitions").ok()?.contains_key("0of2").then_some(())
    })
    .await;
    let last = app.place_order_answer("purged").await["position"].as_i64().expect("position");
    let url = app.query_url(&format!("/queries/customers/purged/summary?minPosition={last}&waitMs=2000"));
    first_answer_vouched_for(&app, &url, |body| body["data"]["orders"] == 7).await;
    app.stop().await;
}

/// A customer whose only order the summary's projection dead-lettered: "no orders" would hide the gap. The read
/// at the order's position names it instead.
#[tokio::test]
async fn a_summary_whose_only_order_was_dead_lettered_names_the_gap_instead_of_answering_404() {
    let app = TestApp::spawn().await;
    let first = app.place_order_answer("someone-else").await["position"].as_i64().expect("position");
    let url = app.query_url(&format!("/queries/customers/someone-else/summary?minPosition={first}&waitMs=20000"));
    assert_eq!(app.http.get(&url).send().await.expect("answers").status(), StatusCode::OK);
    // One contribution per currency: MongoDB refuses the next one in EUR, whoever's it is.
    let unique = mongodb::IndexModel::builder()
        .keys(mongodb::bson::doc! { "currency": 1 })
        .options(mongodb::options::IndexOptions::builder().unique(true).build())
        .build();
    app.mongo.collection::<mongodb::bson::Document>("customer_orders").create_index(unique).await.expect("index");
    let position = app.place_order_answer("lonely").await["position"].as_i64().expect("position");
    let url = app.query_url(&format!("/queries/customers/lonely/summary?minPosition={position}&waitMs=30000"));
    let response = app.http.get(&url).send().await.expect("answers");
    let status = response.status();
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["orders"], 0, "{body}");
    assert_eq!(body["metadata"]["missingPositions"], serde_json::json!([position]), "{body}");
    app.stop().await;
}

/// A read model's pointer lost while no order comes: its reads at a position answer 202 (nothing says its first
/// generation holds the log), so readiness must not say "ready" meanwhile.
#[tokio::test]
async fn a_read_model_that_cannot_vouch_for_its_position_is_named_by_readiness_while_nothing_flows() {
    let app = TestApp::spawn().await;
    let last = app.place_order_answer("idle").await["position"].as_i64().expect("position");
    let url = app.query_url(&format!("/queries/customers/idle/summary?minPosition={last}&waitMs=20000"));
    assert_eq!(app.get_json(&url).await["data"]["orders"], 1);
    let pointers = app.mongo.collection::<mongodb::bson::Document>("read_model_generations");
    pointers.delete_one(mongodb::bson::doc! { "_id": "customer-summary" }).await.expect("deleted");

    let ready = app.query_url("/health/ready");
    let body = eventually(Duration::from_secs(20), || async {
        let body: Value = app.http.get(&ready).send().await.ok()?.json().await.ok()?;
        body["reasons"]["building"].as_str().is_some_and(|r| r.contains("customer-summary")).then_some(body)
    })
    .await;
    assert_eq!(body["status"], "degraded", "{body}");
    app.stop().await;
}

/// The summary's documents and positions lost while its generation pointer survives (a restore of some collections
/// and not others): the pointer still says its generation holds the whole log, and the position written anew would
/// vouch for it. A read does not vouch while a partition's stored position is gone, and the consumer that finds it
/// gone records the generation as lacking events before it writes the position again: the read model builds itself.
#[tokio::test]
async fn documents_and_positions_lost_under_a_surviving_pointer_are_built_again_before_a_read_answers_200() {
    let app = TestApp::spawn().await;
    three_orders_in_the_summary(&app, "half-lost").await;

    lose_documents_and_positions(&app.mongo, &CUSTOMER_SUMMARY).await;
    let last = app.place_order_answer("half-lost").await["position"].as_i64().expect("position");
    let url = app.query_url(&format!("/queries/customers/half-lost/summary?minPosition={last}&waitMs=2000"));
    first_answer_vouched_for(&app, &url, |body| body["data"]["orders"] == 4).await;
    app.stop().await;
}

/// The same loss while no order comes after it: no consumer stores a position that would find its own gone. Reads
/// at the last position must not wait for the next order to be answered: the read model finds the loss and builds
/// itself.
#[tokio::test]
async fn documents_and_positions_lost_while_nothing_flows_are_built_again_without_waiting_for_an_event() {
    let app = TestApp::spawn().await;
    let last = three_orders_in_the_summary(&app, "idle-lost").await;
    stored_through(&app, "customer_orders", "position", last).await;

    lose_documents_and_positions(&app.mongo, &CUSTOMER_SUMMARY).await;
    let url = app.query_url(&format!("/queries/customers/idle-lost/summary?minPosition={last}&waitMs=2000"));
    first_answer_vouched_for(&app, &url, |body| body["data"]["orders"] == 3).await;
    app.stop().await;
}

/// Places orders of `customer` until one falls into `partition` of two, counting them into `placed`; returns the
/// last one's id and position.
async fn order_in_partition(app: &TestApp, customer: &str, partition: u16, placed: &mut usize) -> (String, i64) {
    loop {
        let answer = app.place_order_answer(customer).await;
        *placed += 1;
        let id = answer["orderId"].as_str().expect("orderId").to_owned();
        if shared_events::Partition::of(id.parse().expect("a uuid"), 2).index == partition {
            return (id, answer["position"].as_i64().expect("position"));
        }
    }
}

/// Confirms order `id`; returns the position of the event (in the order's partition alone).
async fn confirm(app: &TestApp, id: &str) -> i64 {
    let url = app.command_url(&format!("/commands/orders/{id}/confirm"));
    let answer: serde_json::Value = app.http.post(url).send().await.expect("confirm").json().await.expect("json");
    answer["position"].as_i64().expect("position")
}

/// A split read model's store loses its documents and positions while its pointer survives. Every partition finds
/// the loss (the relay's markers reach each of them): the read model builds itself once, and then vouches for the
/// events of both partitions, before and after the loss.
#[tokio::test]
async fn a_split_store_that_lost_its_documents_and_positions_is_built_again_once() {
    let split = |partitions: &mut u16| *partitions = 2;
    let app = TestApp::spawn_tuned(
        crate::helpers::Names::new("test"),
        &crate::helpers::amqp_url(),
        &crate::helpers::mongodb_uri(),
        |command| split(&mut command.projector_partitions),
        |query, _| split(&mut query.projector_partitions),
    )
    .await;
    let list = |position: i64| {
        app.query_url(&format!("/queries/orders?customerId=split-lost&minPosition={position}&waitMs=2000&limit=100"))
    };
    let every = |placed: usize| move |page: &serde_json::Value| page["data"].as_array().map(Vec::len) == Some(placed);
    let mut placed = 0;
    let (in_0, first) = order_in_partition(&app, "split-lost", 0, &mut placed).await;
    let (in_1, last) = order_in_partition(&app, "split-lost", 1, &mut placed).await;
    first_answer_vouched_for(&app, &list(last), every(placed)).await;
    stored_through(&app, "order_views", "partitions.0of2", first).await;
    stored_through(&app, "order_views", "partitions.1of2", last).await;

    lose_documents_and_positions(&app.mongo, &ORDER_VIEWS).await;
    let found = confirm(&app, &in_0).await;
    first_answer_vouched_for(&app, &list(found), every(placed)).await;
    let later = confirm(&app, &in_1).await;
    first_answer_vouched_for(&app, &list(later), every(placed)).await;
    let pointers = app.mongo.collection::<mongodb::bson::Document>("read_model_generations");
    let pointer = pointers.find_one(mongodb::bson::doc! { "_id": "orders" }).await.expect("read").expect("pointer");
    assert_eq!(pointer.get_i64("created").ok(), Some(1), "built once: {pointer}");
    app.stop().await;
}

/// A split store's positions lost under a surviving pointer: partition 0 finds the loss, the read model is built
/// again and switched to the new generation, and only then does partition 1 store a position (its replica was
/// restarting meanwhile). That is the loss already found, not a new one: the generation built since holds every
/// event, and must not be recorded as lacking (another rebuild, reads answering 202 throughout).
#[tokio::test]
async fn a_loss_found_by_one_partition_is_not_found_again_by_another_after_the_rebuild() {
    let names = crate::helpers::Names::new("test");
    let _cleanup = crate::helpers::RemoveOnDrop(names.clone());
    let views = query_service::store::connect(&mongodb_uri(), &names.database, &Default::default())
        .await
        .expect("mongo")
        .with_partitions(2);
    let generations = views.generations();
    let [first, second] = [0, 1].map(|index| shared_events::Partition { index, count: 2 });
    for (partition, position) in [(first, 10), (second, 12)] {
        generations.settle_first(partition, true, false).await.expect("first checkpoint");
        views.store_position(partition, position).await.expect("stored");
    }
    assert!(generations.active_complete(&generations.load().await.expect("pointer")));

    let positions = views.database().collection::<mongodb::bson::Document>("read_model_positions");
    positions.delete_one(mongodb::bson::doc! { "_id": "order_views" }).await.expect("lost");
    views.store_position(first, 20).await.expect("stored");
    let pointer = generations.load().await.expect("pointer");
    assert!(!generations.active_complete(&pointer), "the loss is found: {pointer:?}");

    let claimed = generations.begin_build(0, 0).await.expect("claimed");
    let rebuilt = claimed.building.expect("building").name;
    generations.switch(&rebuilt, 2, 20).await.expect("switched");
    views.store_position(second, 22).await.expect("stored");
    let pointer = generations.load().await.expect("pointer");
    assert!(generations.active_complete(&pointer), "the rebuilt generation holds the log: {pointer:?}");
}
