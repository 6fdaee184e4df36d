//! The faults that take a read model's history from it: its store lost while orders flow, and what an upgrade from
//! a release that kept only the order views leaves (the summary's and the dashboard's stores and queues without the
//! log's history). Each such read model must answer 202 at a position until it has built itself from the event feed
//! (decision 0019) — never 200 without an event the position covers.

use lapin::{Connection, ConnectionProperties};
use mongodb::bson::{doc, Document};
use query_service::store::models::{ReadModel, CUSTOMER_SUMMARY, DAILY_SALES};
use std::time::{Duration, Instant};

use crate::suite::Suite;
use crate::{AMQP, PARTITIONS};

/// The customer whose orders only the suite places, so that how many it has is known at any position.
const CUSTOMER: &str = "chaos-history";

/// Drops everything the store of `model` holds: every generation and its gaps, its pointer, its position.
async fn drop_store(suite: &Suite, model: &ReadModel) -> anyhow::Result<()> {
    let mongo = mongodb::Client::with_uri_str(suite.mongodb_uri()).await?.database(&suite.names.database);
    for name in mongo.list_collection_names().await? {
        if name.starts_with(model.collection) {
            mongo.collection::<Document>(&name).drop().await?;
        }
    }
    mongo.collection::<Document>("read_model_generations").delete_many(doc! { "_id": model.name }).await?;
    mongo.collection::<Document>("read_model_positions").delete_many(doc! { "_id": model.collection }).await?;
    Ok(())
}

/// The customer summary's store dropped while orders flow (a database restored empty, collections dropped by
/// hand). Returns the findings of the reads made right after.
pub async fn lose_the_summary_store(suite: &Suite) -> anyhow::Result<Vec<String>> {
    suite.place(CUSTOMER).await?;
    drop_store(suite, &CUSTOMER_SUMMARY).await?;
    reads_at_a_position(suite).await
}

/// Both query-services SIGKILLed; the customer summary's and the dashboard's queues (every partition) deleted with
/// what they hold and their stores dropped, as a deployment upgraded from a release that had only the order views
/// finds them; both started again. Returns the findings of the reads made right after.
pub async fn upgrade_from_the_order_views_alone(suite: &Suite) -> anyhow::Result<Vec<String>> {
    suite.place(CUSTOMER).await?;
    suite.kill("query")?;
    suite.kill("query2")?;
    let connection = Connection::connect(AMQP, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    for model in [&CUSTOMER_SUMMARY, &DAILY_SALES] {
        for partition in 0..PARTITIONS {
            let queue = format!("{}.{}.{partition}", suite.names.queue, model.name);
            channel.queue_delete(queue.as_str().into(), Default::default()).await?;
        }
        drop_store(suite, model).await?;
    }
    let _ = connection.close(200, "queues deleted".into()).await;
    suite.spawn("query")?;
    suite.spawn("query2")?;
    suite.wait_live(suite.query_port).await?;
    suite.wait_live(suite.query2_port).await?;
    reads_at_a_position(suite).await
}

/// Places an order of [`CUSTOMER`] and reads the summary at its position for up to 20 s: every 200 must hold every
/// order of the customer (the suite placed them all; the write model counts them).
async fn reads_at_a_position(suite: &Suite) -> anyhow::Result<Vec<String>> {
    let position = suite.place(CUSTOMER).await?["position"].as_i64().unwrap_or_default();
    let pool = sqlx::PgPool::connect(&suite.names.database_url()).await?;
    let placed: i64 = sqlx::query_scalar("select count(*) from customer_order where customer_id = $1")
        .bind(CUSTOMER)
        .fetch_one(&pool)
        .await?;
    pool.close().await;
    let url =
        suite.query_url("query", &format!("/queries/customers/{CUSTOMER}/summary?minPosition={position}&waitMs=2000"));
    let mut findings = Vec::new();
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        let Ok(answer) = suite.http.get(&url).send().await else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        let status = answer.status().as_u16();
        let body: serde_json::Value = answer.json().await.unwrap_or_default();
        if status == 200 {
            if body["data"]["orders"].as_i64() != Some(placed) {
                findings.push(format!(
                    "the summary of {CUSTOMER} at position {position} answered 200 with {} of {placed} orders, \
                     its store lost: {}",
                    body["data"]["orders"], body["metadata"]
                ));
            }
            break;
        }
        if status != 202 {
            findings.push(format!("the summary at {position}, its store lost, answered {status}: {body}"));
            break;
        }
    }
    Ok(findings)
}
