//! What each projection costs: one backlog of `OrderPlaced` events projected by one query-service running each
//! projection alone (`PROJECTIONS=<name>`), then all of them together: events/s, MongoDB `update` commands and
//! query-service CPU per event, each against the order views' own figures — the cost of adding a projection.

use lapin::options::ConfirmSelectOptions;
use lapin::{Connection, ConnectionProperties};
use query_service::projection::{Projection, ALL};
use std::time::{Duration, Instant};

use crate::procs::Service;
use crate::stats::{rate, Table};
use crate::throughput::{declare, publish_batches};
use crate::Setup;

/// What one run measured.
struct Run {
    events_per_second: f64,
    updates_per_event: f64,
    cpu_ms_per_event: f64,
}

/// Projects `events` queued events with the `projections` given, in a database and queues of their own.
async fn run(
    setup: &Setup,
    label: &str,
    projections: &[&'static dyn Projection],
    events: usize,
) -> anyhow::Result<Run> {
    let database = format!("{}_{label}", setup.names.database);
    let exchange = format!("{}.{label}", setup.names.exchange);
    let queue = format!("{}.{label}", setup.names.queue);
    let queues: Vec<(String, String)> =
        projections.iter().map(|p| (query_service::projection::projection_queue(&queue, *p), "#".to_owned())).collect();
    let connection = Connection::connect(&setup.amqp_url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    declare(&channel, &exchange, &queues, true).await?;
    let messages: Vec<(String, Vec<u8>)> = (0..events)
        .map(|n| Ok(("OrderPlaced".to_owned(), serde_json::to_vec(&crate::sample_envelope(n, n as i64 + 1))?)))
        .collect::<anyhow::Result<_>>()?;
    publish_batches(&channel, &exchange, &messages, 1_000).await?;

    let names: Vec<&str> = projections.iter().map(|p| p.name()).collect();
    let env = [
        ("AMQP_URL", setup.amqp_url.clone()),
        ("AMQP_EXCHANGE", exchange.clone()),
        ("AMQP_QUEUE", queue.clone()),
        ("MONGODB_URI", setup.mongodb_uri.clone()),
        ("MONGODB_DATABASE", database.clone()),
        ("PROJECTIONS", names.join(",")),
    ];
    let watcher = mongodb::Client::with_uri_str(&setup.mongodb_uri).await?;
    let collections: Vec<_> = projections
        .iter()
        .map(|p| watcher.database(&database).collection::<mongodb::bson::Document>(p.model().collection))
        .collect();
    let started = Instant::now();
    let service = Service::start(label, "query-service", &[], &env).await?;
    let deadline = Instant::now() + Duration::from_secs(1_800);
    'drained: loop {
        anyhow::ensure!(Instant::now() < deadline, "{label}: not drained in 30 minutes");
        tokio::time::sleep(Duration::from_millis(200)).await;
        for collection in &collections {
            if collection.estimated_document_count().await? < events as u64 {
                continue 'drained;
            }
        }
        break;
    }
    let events_per_second = rate(events as u64, started.elapsed());
    let counters = crate::cost::mongo_counters(&setup.http, &service).await;
    let cpu_ms_per_event = service.cpu_seconds() * 1000.0 / events as f64;
    service.stop();
    let updates_per_event = counters.get("update").copied().unwrap_or(0.0) / events as f64;

    crate::throughput::remove_topology(&channel, &exchange, &queue, 1).await;
    let _ = connection.close(200, "projections measured".into()).await;
    let _ = watcher.database(&database).drop().await;
    Ok(Run { events_per_second, updates_per_event, cpu_ms_per_event })
}

/// Adds a row per projection run alone and one for all together, each against the order views alone.
pub async fn measure(setup: &Setup, table: &mut Table, events: usize) -> anyhow::Result<()> {
    // The stages before may have left the read store a backlog to project: measure on a quiet one.
    crate::sweep::caught_up(setup).await?;
    let mut alone = Vec::new();
    for projection in ALL {
        alone.push((
            projection.name(),
            run(setup, &format!("alone_{}", projection.name().replace('-', "_")), &[projection], events).await?,
        ));
    }
    let together = run(setup, "together", &ALL, events).await?;
    let Some((_, views)) = alone.first() else { return Ok(()) };
    let (views_updates, views_cpu) = (views.updates_per_event, views.cpu_ms_per_event);
    for (name, measured) in &alone {
        table.add(
            &format!("projection {name} alone, {events} queued events"),
            format!(
                "{:.0} events/s; {:.3} update/event; CPU {:.3} ms/event",
                measured.events_per_second, measured.updates_per_event, measured.cpu_ms_per_event
            ),
            format!("order views alone: {:.0} events/s, CPU {views_cpu:.3} ms/event", views.events_per_second),
            Some(measured.cpu_ms_per_event / views_cpu.max(1e-9)),
            "CPU ≤ 1.0× the order views'",
        );
    }
    let extra = ALL.len().saturating_sub(1).max(1) as f64;
    let alone_cpu: f64 = alone.iter().map(|(_, run)| run.cpu_ms_per_event).sum();
    table.add(
        &format!("all {} projections, {events} queued events", ALL.len()),
        format!(
            "{:.0} events/s; {:.3} update/event; CPU {:.3} ms/event; each extra projection +{:.3} update, +{:.3} ms CPU per event",
            together.events_per_second,
            together.updates_per_event,
            together.cpu_ms_per_event,
            (together.updates_per_event - views_updates) / extra,
            (together.cpu_ms_per_event - views_cpu) / extra,
        ),
        format!(
            "order views alone: {views_updates:.3} update/event, CPU {views_cpu:.3} ms/event; the {} alone, summed: CPU {alone_cpu:.3} ms/event",
            ALL.len()
        ),
        Some(together.cpu_ms_per_event / alone_cpu.max(1e-9)),
        "CPU ≤ 1.0× the projections alone, summed (no overhead for running them together)",
    );
    Ok(())
}
