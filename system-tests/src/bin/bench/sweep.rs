//! Freshness as work grows: the read store's capacity measured in the same run, then commands at 25, 50, 100 and
//! 150 % of it, and at 50 % with 10,000 and 100,000 views already in the collection; each point with freshness p50
//! and p99, CPU per event and MongoDB commands per event. Writes the curve to `docs/freshness.svg`.

use std::time::Instant;

use crate::freshness::{run_at, Floor, Load};
use crate::stats::{rate, Table};
use crate::Setup;

/// One measured point of the sweep.
#[derive(Debug, Clone)]
pub struct Point {
    pub label: String,
    pub per_second: u64,
    pub p50: f64,
    pub p99: f64,
}

/// Views written per `update` command when the capacity is measured (about what the projector batches at rates
/// near it).
const CAPACITY_BATCH: usize = 16;

/// Events per second the read store can take when each costs one bulk-upserted view (in `update` commands of
/// [`CAPACITY_BATCH`]) and one `find` (a read that arrives after its view was written): `1 / (1/W + 1/F)`.
async fn capacity(setup: &Setup, table: &mut Table) -> anyhow::Result<f64> {
    let client = mongodb::Client::with_uri_str(&setup.mongodb_uri).await?;
    let database = client.database(&format!("{}_capacity", setup.names.database));
    let samples = 2_000;
    let started = Instant::now();
    for first in (0..samples).step_by(CAPACITY_BATCH) {
        let views: Vec<_> = (first..first + CAPACITY_BATCH).map(|n| crate::sample_view(1_000_000 + n, 1)).collect();
        crate::throughput::raw_bulk_upsert(&database, "views", &views).await?;
    }
    let writes = rate(samples as u64, started.elapsed());
    let collection = database.collection::<mongodb::bson::Document>("views");
    let started = Instant::now();
    for n in 0..samples {
        collection.find_one(mongodb::bson::doc! { "_id": crate::sample_view(1_000_000 + n, 1).id }).await?;
    }
    let finds = rate(samples as u64, started.elapsed());
    let _ = database.drop().await;
    let capacity = 1.0 / (1.0 / writes + 1.0 / finds);
    table.add(
        "read store capacity (raw, this run)",
        format!("{capacity:.0} events/s"),
        format!("bulk upserts ({CAPACITY_BATCH} per update) {writes:.0}/s, find_one {finds:.0}/s"),
        None,
        "",
    );
    Ok(capacity)
}

/// Adds views to the active generation until it holds `target`.
async fn fill_to(setup: &Setup, target: u64) -> anyhow::Result<()> {
    let views = query_service::store::connect(&setup.mongodb_uri, &setup.names.database, &Default::default()).await?;
    let active = views.generations().current().await?.active;
    let have = views.count(&active).await?;
    let mut n = have as usize;
    while (n as u64) < target {
        let upto = (n + 5_000).min(target as usize);
        let batch = (n..upto).map(|n| crate::sample_view(2_000_000 + n, 1).guarded()).collect::<Result<Vec<_>, _>>()?;
        views.load(&active, &batch).await?;
        n = upto;
    }
    Ok(())
}

/// Waits until every read model has caught up with everything before (a probe order reaches the order views, the
/// customer summary and the dashboard, within 600 s), so that a point does not start behind the backlog the one
/// before it left.
pub(crate) async fn caught_up(setup: &Setup) -> anyhow::Result<()> {
    let body = serde_json::json!({"customerId": "probe", "items": [{"sku": "P", "quantity": 1, "unitPrice": 1}]});
    let placed: serde_json::Value =
        setup.http.post(setup.command.url("/commands/orders")).json(&body).send().await?.json().await?;
    let id = placed["orderId"].as_str().unwrap_or_default().to_owned();
    let position = placed["position"].as_i64().unwrap_or_default();
    let day = query_service::store::daily::day(time::OffsetDateTime::now_utc().date());
    let reads = [
        format!("/queries/orders/{id}?minVersion=1&waitMs=30000"),
        format!("/queries/customers/probe/summary?minPosition={position}&waitMs=30000"),
        format!("/queries/dashboard/daily?from={day}&to={day}&minPosition={position}&waitMs=30000"),
    ];
    let deadline = Instant::now() + std::time::Duration::from_secs(600);
    for read in reads {
        loop {
            anyhow::ensure!(Instant::now() < deadline, "the read models did not catch up within 600 s");
            if setup.http.get(setup.query.url(&read)).send().await?.status() == 200 {
                break;
            }
        }
    }
    Ok(())
}

/// One point: commands at `per_second` for `seconds`, with what it cost.
async fn point(setup: &Setup, table: &mut Table, label: &str, per_second: u64, seconds: u64, floor: Floor) -> Point {
    let (before, cpu) = (crate::cost::mongo_counters(&setup.http, &setup.query).await, setup.query.cpu_seconds());
    let command_cpu = setup.command.cpu_seconds();
    let load = Load::start(setup);
    let (_, fresh, ok, total) = run_at(setup, per_second, seconds).await;
    let busiest = load.busiest();
    let events = total.max(1) as f64;
    let commands = crate::cost::delta(&before, &crate::cost::mongo_counters(&setup.http, &setup.query).await);
    let query_ms = (setup.query.cpu_seconds() - cpu) * 1000.0 / events;
    let command_ms = (setup.command.cpu_seconds() - command_cpu) * 1000.0 / events;
    table.add(
        &format!("{label}: {per_second} commands/s ({total})"),
        format!(
            "freshness {:.2} / {:.2} ms (p50 / p99), {:.1} % in one read; per event: CPU query {query_ms:.3} ms, command {command_ms:.3} ms; MongoDB {}; busiest: {busiest}",
            fresh.ms(0.5),
            fresh.ms(0.99),
            ok as f64 * 100.0 / events,
            crate::cost::per_unit(&commands, events),
        ),
        format!("{:.2} / {:.2} ms (p50 / p99 of hops)", floor.p50, floor.p99),
        Some(fresh.ms(0.99) / floor.p99),
        if label.starts_with("50 %") { "p99 ≤ 3× hops" } else { "" },
    );
    Point { label: label.to_owned(), per_second, p50: fresh.ms(0.5), p99: fresh.ms(0.99) }
}

pub async fn measure(setup: &Setup, table: &mut Table, seconds: u64, floor: Floor) -> anyhow::Result<Vec<Point>> {
    let capacity = capacity(setup, table).await?;
    let mut points = Vec::new();
    for share in [25, 50, 100, 150] {
        let per_second = ((capacity * share as f64 / 100.0).round() as u64).max(1);
        caught_up(setup).await?;
        points.push(point(setup, table, &format!("{share} % of capacity"), per_second, seconds, floor).await);
    }
    let half = ((capacity / 2.0).round() as u64).max(1);
    for views in [10_000, 100_000] {
        fill_to(setup, views).await?;
        caught_up(setup).await?;
        points.push(
            point(setup, table, &format!("50 % of capacity, {}k views", views / 1_000), half, seconds, floor).await,
        );
    }
    Ok(points)
}

/// Draws freshness p50 and p99 against the command rate (the rate sweep as lines, the view-count points as marks)
/// into `path` as SVG.
pub fn plot(points: &[Point], path: &str) -> anyhow::Result<()> {
    use plotters::prelude::*;
    let (sweep, views): (Vec<&Point>, Vec<&Point>) = points.iter().partition(|p| !p.label.contains("views"));
    let max_rate = points.iter().map(|p| p.per_second).max().unwrap_or(1) as f64 * 1.1;
    let max_ms = points.iter().map(|p| p.p99).fold(1.0, f64::max) * 1.2;
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Freshness (POST answered → waiting read answered) against command rate", ("sans-serif", 18))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_rate, (0.5..max_ms).log_scale())?;
    chart.configure_mesh().x_desc("commands per second").y_desc("ms (log)").draw()?;
    for (name, pick, colour) in [("p50", 0, BLUE), ("p99", 1, RED)] {
        let value = move |p: &&Point| if pick == 0 { p.p50 } else { p.p99 };
        let line: Vec<(f64, f64)> = sweep.iter().map(|p| (p.per_second as f64, value(p).max(0.5))).collect();
        chart
            .draw_series(LineSeries::new(line.clone(), colour.stroke_width(2)))?
            .label(format!("{name}, rate sweep"))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2)));
        chart.draw_series(line.iter().map(|&(x, y)| Circle::new((x, y), 4, colour.filled())))?;
        chart
            .draw_series(
                views.iter().map(|p| TriangleMarker::new((p.per_second as f64, value(p).max(0.5)), 6, colour)),
            )?
            .label(format!("{name}, 10k and 100k views at 50 %"))
            .legend(move |(x, y)| TriangleMarker::new((x + 10, y), 6, colour));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}
