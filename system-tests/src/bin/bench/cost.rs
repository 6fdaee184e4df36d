//! What one unit of work costs, in units that do not depend on how fast or busy the machine is: round trips to
//! Postgres (counted on the wire, [`system_tests::wire`]), MongoDB commands (the query-service's
//! `mongodb_commands_total`), and CPU time of the service process (from `/proc`) next to the CPU the bench itself
//! spends on the same hops done raw. CPU time is counted in 10 ms ticks, so every figure is over a thousand units.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use system_tests::wire::{PgRoundTrips, RoundTrips};

use crate::procs::{own_cpu_seconds, Service};
use crate::stats::Table;
use crate::Setup;

/// Commands of each kind the counting runs send, one after the other.
const UNITS: usize = 1_000;

/// The query-service's `mongodb_commands_total`, by command, and its `projector_batch_views` count and sum.
pub async fn mongo_counters(http: &reqwest::Client, service: &Service) -> BTreeMap<String, f64> {
    let Ok(response) = http.get(service.url("/metrics")).send().await else { return BTreeMap::new() };
    let text = response.text().await.unwrap_or_default();
    let mut counters = BTreeMap::new();
    for line in text.lines() {
        let Some((name, value)) = line.rsplit_once(' ') else { continue };
        let Ok(value) = value.parse::<f64>() else { continue };
        if let Some(command) =
            name.strip_prefix("mongodb_commands_total{command=\"").and_then(|rest| rest.strip_suffix("\"}"))
        {
            counters.insert(command.to_owned(), value);
        } else if let Some(metric) = ["projector_batch_views_count", "projector_batch_views_sum"]
            .into_iter()
            .find(|metric| name.strip_prefix(metric).is_some_and(|labels| labels.starts_with('{')))
        {
            // Summed over the projections.
            *counters.entry(metric.to_owned()).or_default() += value;
        }
    }
    counters
}

/// `after - before`, per key.
pub fn delta(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect()
}

/// `find 1.00, update 0.02` per unit.
pub fn per_unit(commands: &BTreeMap<String, f64>, units: f64) -> String {
    let parts: Vec<String> = commands
        .iter()
        .filter(|(name, _)| !name.starts_with("projector_"))
        .map(|(name, n)| format!("{name} {:.2}", n / units.max(1.0)))
        .collect();
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}

/// Sum of the MongoDB commands in `commands` (the batch histogram left out).
pub fn total(commands: &BTreeMap<String, f64>) -> f64 {
    commands.iter().filter(|(name, _)| !name.starts_with("projector_")).map(|(_, n)| n).sum()
}

/// The URL of read `n`.
type UrlOf<'a> = &'a dyn Fn(usize) -> String;

/// One kind of command for the counting run: its name and the request for unit `n`.
type Kind<'a> = (&'a str, Box<dyn Fn(usize) -> (String, Option<String>, Value) + 'a>);

/// Postgres round trips and CPU per command, for each kind of command, on a command-service of its own (no relay)
/// whose Postgres connections pass through a counting proxy; the limit is the one statement issued raw.
pub async fn commands(setup: &Setup, table: &mut Table) -> anyhow::Result<()> {
    let upstream = setup.postgres.rsplit_once('@').and_then(|(_, host)| host.parse().ok());
    let upstream = upstream.ok_or_else(|| anyhow::anyhow!("TEST_POSTGRES_URL must name host:port"))?;
    let proxy = PgRoundTrips::start(upstream).await?;
    let env = [
        ("DATABASE_URL", proxy.url(&format!("{}/{}", setup.postgres, setup.names.database))),
        ("AMQP_URL", setup.amqp_url.clone()),
        ("AMQP_EXCHANGE", setup.names.exchange.clone()),
        ("RELAY_ENABLED", "false".to_owned()),
    ];
    let service = Service::start("command-service (counted)", "command-service", &[], &env).await?;
    let post = async |path: &str, key: Option<&str>, body: &Value| -> anyhow::Result<Value> {
        let mut request = setup.http.post(service.url(path)).json(body);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        Ok(request.send().await?.json().await?)
    };
    let order = |n: usize| json!({"customerId": format!("cost-{}", n % 50), "currency": "EUR", "items": [{"sku": "A", "quantity": 1 + n % 3, "unitPrice": "4.20"}]});
    let mut placed = Vec::with_capacity(3 * UNITS);
    for n in 0..3 * UNITS {
        let answer = post("/commands/orders", None, &order(n)).await?;
        placed.push(answer["orderId"].as_str().unwrap_or_default().to_owned());
    }
    let tag = &setup.names.queue;
    let kinds: Vec<Kind> = vec![
        ("place", Box::new(|n| ("/commands/orders".to_owned(), None, order(n)))),
        ("place with a key", Box::new(|n| ("/commands/orders".to_owned(), Some(format!("{tag}-k{n}")), order(n)))),
        ("place replayed", Box::new(|n| ("/commands/orders".to_owned(), Some(format!("{tag}-k{n}")), order(n)))),
        ("confirm", Box::new(|n| (format!("/commands/orders/{}/confirm", placed[n]), None, json!({})))),
        (
            "ship with a key",
            Box::new(|n| (format!("/commands/orders/{}/ship", placed[n]), Some(format!("{tag}-s{n}")), json!({}))),
        ),
        (
            "cancel",
            Box::new(|n| (format!("/commands/orders/{}/cancel", placed[UNITS + n]), None, json!({"reason": "r"}))),
        ),
        ("refused (409)", Box::new(|n| (format!("/commands/orders/{}/ship", placed[2 * UNITS + n]), None, json!({})))),
    ];
    for (kind, request) in &kinds {
        let (trips_before, cpu_before, started) = (proxy.seen(), service.cpu_seconds(), Instant::now());
        for n in 0..UNITS {
            let (path, key, body) = request(n);
            post(&path, key.as_deref(), &body).await?;
        }
        let trips: RoundTrips = proxy.seen() - trips_before;
        let cpu_ms = (service.cpu_seconds() - cpu_before) * 1000.0 / UNITS as f64;
        let wall_ms = started.elapsed().as_secs_f64() * 1000.0 / UNITS as f64;
        let units = UNITS as f64;
        table.add(
            &format!("cost per command: {kind} ({UNITS})"),
            format!(
                "{:.2} statements + {:.2} pool checks to Postgres; CPU {cpu_ms:.3} ms (wall {wall_ms:.2} ms)",
                trips.statements as f64 / units,
                (trips.pings + trips.prepares) as f64 / units,
            ),
            "1 statement".to_owned(),
            Some(trips.statements as f64 / units),
            "1 statement",
        );
    }
    service.stop();

    // The limit's CPU: the one statement issued raw through sqlx from this process (no proxy in the way).
    let pool = command_service::store::pool(format!("{}/{}", setup.postgres, setup.names.database).parse()?, 16);
    let (cpu_before, started) = (own_cpu_seconds(), Instant::now());
    for n in 0..UNITS {
        let command = serde_json::from_value(order(n))?;
        let order = command_service::domain::NewOrder::parse(command).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let change = command_service::domain::decide(
            None,
            &command_service::domain::Command::Place(order),
            time::OffsetDateTime::now_utc(),
        )?;
        let mut conn = pool.acquire().await?;
        command_service::store::place(&mut conn, uuid::Uuid::now_v7(), &change, None, None).await?;
    }
    let cpu_ms = (own_cpu_seconds() - cpu_before) * 1000.0 / UNITS as f64;
    let wall_ms = started.elapsed().as_secs_f64() * 1000.0 / UNITS as f64;
    table.add(
        &format!("cost per command: the place statement raw, from the bench ({UNITS})"),
        format!("CPU {cpu_ms:.3} ms in the bench (wall {wall_ms:.2} ms)"),
        "".to_owned(),
        None,
        "",
    );
    pool.close().await;
    Ok(())
}

/// MongoDB commands and CPU per read: cold reads, waiting reads woken on the projecting replica and on a replica
/// that does not project, and list reads. Needs the views of the orders in `ids`.
pub async fn reads(setup: &Setup, table: &mut Table, ids: &[String]) -> anyhow::Result<()> {
    anyhow::ensure!(!ids.is_empty(), "no orders to read");
    let env = setup.replica_env("replica");
    let replica = Service::start("query-service replica", "query-service", &[], &env).await?;
    let http = &setup.http;
    let measure = async |service: &Service,
                         units: usize,
                         read: &dyn Fn(usize) -> String|
           -> anyhow::Result<(BTreeMap<String, f64>, f64)> {
        let (before, cpu_before) = (mongo_counters(http, service).await, service.cpu_seconds());
        for n in 0..units {
            let response = http.get(read(n)).send().await?;
            anyhow::ensure!(response.status() == 200, "a read answered {}", response.status());
        }
        let cpu_ms = (service.cpu_seconds() - cpu_before) * 1000.0 / units as f64;
        Ok((delta(&before, &mongo_counters(http, service).await), cpu_ms))
    };
    let query = &setup.query;
    let cold = |n: usize| query.url(&format!("/queries/orders/{}", ids[n % ids.len()]));
    let list = |n: usize| query.url(&format!("/queries/orders?customerId=bench-{}&limit=20", n % 100));
    let kinds: [(&str, UrlOf, &str); 2] = [("cold, by id", &cold, "1 command"), ("list page of 20", &list, "")];
    for (kind, read, target) in kinds {
        let (commands, cpu_ms) = measure(query, UNITS, read).await?;
        table.add(
            &format!("cost per read: {kind} ({UNITS})"),
            format!("MongoDB {} per read; CPU {cpu_ms:.3} ms", per_unit(&commands, UNITS as f64)),
            "1 find".to_owned(),
            Some(total(&commands) / UNITS as f64),
            target,
        );
    }

    // Woken reads: each order placed while the read waits for it, on the projecting replica and on the other one.
    let woken = 300;
    for (name, service) in [("the projecting replica", query), ("a replica that does not project", &replica)] {
        let (before, cpu_before) = (mongo_counters(http, service).await, service.cpu_seconds());
        let mut waited = 0;
        for n in 0..woken {
            let body = json!({"customerId": format!("woken-{}", n % 10), "items": [{"sku": "W", "quantity": 1, "unitPrice": 1}]});
            let placed: Value =
                http.post(setup.command.url("/commands/orders")).json(&body).send().await?.json().await?;
            let id = placed["orderId"].as_str().unwrap_or_default();
            let read = http.get(service.url(&format!("/queries/orders/{id}?minVersion=1&waitMs=5000"))).send();
            let response = read.await?;
            anyhow::ensure!(response.status() == 200, "a waiting read answered {}", response.status());
            waited += 1;
        }
        let commands = delta(&before, &mongo_counters(http, service).await);
        let cpu_ms = (service.cpu_seconds() - cpu_before) * 1000.0 / waited as f64;
        let finds = commands.get("find").copied().unwrap_or(0.0);
        // A waiting read looks at MongoDB once before it parks (the view may be there already); being woken must
        // cost nothing more: 1 find per read in all.
        table.add(
            &format!("cost per read: waiting for its order's event, on {name} ({waited})"),
            format!(
                "MongoDB {} per read (the projection's writes included where it projects); CPU {cpu_ms:.3} ms",
                per_unit(&commands, waited as f64)
            ),
            "1 find: the first look, none on waking".to_owned(),
            Some(finds / waited as f64),
            "1 find",
        );
    }
    replica.stop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(())
}
