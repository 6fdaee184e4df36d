//! The clients: commands on a fixed schedule (open loop), with idempotency keys, retries and replays.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

use crate::suite::Suite;

/// What the clients saw and did.
#[derive(Default)]
pub struct Clients {
    pub sent: u64,
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no answer (connection failures, timeouts), with what happened.
    pub unanswered: Vec<String>,
    pub retries: u64,
    pub replays_checked: u64,
    /// Every (order, version) a 2xx answered.
    pub accepted: Vec<(Uuid, i64)>,
    /// The newest known (status, version) of each order, for choosing the next command.
    pub orders: Vec<(Uuid, String, i64)>,
    pub findings: Vec<String>,
}

/// A small deterministic generator (xorshift), so that a run can be repeated.
pub struct Dice(pub u64);

impl Dice {
    pub fn roll(&mut self, sides: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % sides.max(1)
    }
}

/// Sends `commands` commands at `rate` per second, each on a schedule of its own (open loop).
pub async fn drive(suite: &Suite, clients: Arc<Mutex<Clients>>, commands: u64, rate: f64) -> anyhow::Result<()> {
    let mut dice = Dice(0x9E37_79B9_7F4A_7C15);
    let started = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..commands {
        tokio::time::sleep_until(started + Duration::from_secs_f64(n as f64 / rate)).await;
        let known = clients.lock().map(|c| c.orders.len()).unwrap_or(0);
        // Half the commands move a known order on; the rest place new ones.
        let target = (known > 0 && dice.roll(2) == 0).then(|| {
            let pick = dice.roll(known as u64) as usize;
            clients.lock().ok().and_then(|c| c.orders.get(pick).cloned())
        });
        let (path, body) = match target.flatten() {
            Some((id, status, _)) => {
                let action = match (status.as_str(), dice.roll(5)) {
                    (_, 0) => "cancel",
                    ("Placed", _) => "confirm",
                    _ => "ship",
                };
                let body = if action == "cancel" { json!({"reason": "chaos"}) } else { json!({}) };
                (format!("/commands/orders/{id}/{action}"), body)
            }
            None => {
                let lines: Vec<Value> = (0..=dice.roll(3))
                    .map(|l| json!({"sku": format!("SKU-{}", dice.roll(50)), "name": format!("Item {l}"),
                        "quantity": 1 + dice.roll(5), "unitPrice": format!("{}.{:02}", 1 + dice.roll(99), dice.roll(100))}))
                    .collect();
                let body = json!({"customerId": format!("cust-{}", dice.roll(200)), "currency": "EUR", "items": lines});
                ("/commands/orders".to_owned(), body)
            }
        };
        // Two in three commands carry an idempotency key, are retried on 503 or no answer, and one in ten of those
        // is sent once more after its answer, which must be the same answer.
        let key = (dice.roll(3) > 0).then(|| Uuid::new_v4().to_string());
        let replay = key.is_some() && dice.roll(10) == 0;
        let (http, url, clients) = (suite.http.clone(), suite.command_url(&path), clients.clone());
        tasks.spawn(async move { send(&http, &url, &body, key.as_deref(), replay, &clients).await });
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

pub async fn send(
    http: &reqwest::Client,
    url: &str,
    body: &Value,
    key: Option<&str>,
    replay: bool,
    clients: &Mutex<Clients>,
) {
    let attempts = if key.is_some() { 20 } else { 1 };
    let mut first: Option<(u16, Value)> = None;
    for attempt in 0..attempts {
        let mut request = http.post(url).json(body);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let answer = request.send().await;
        let status = answer.as_ref().ok().map(|r| r.status().as_u16());
        {
            let Ok(mut c) = clients.lock() else { return };
            c.sent += 1;
            if attempt > 0 {
                c.retries += 1;
            }
            match (&answer, status) {
                (Ok(_), Some(status)) => *c.statuses.entry(status).or_default() += 1,
                (Err(err), _) if err.is_timeout() || attempt + 1 == attempts => {
                    c.unanswered.push(format!("{url}: {err}"));
                    return;
                }
                _ => {}
            }
        }
        if let (Ok(response), Some(status)) = (answer, status) {
            let json: Value = response.json().await.unwrap_or(Value::Null);
            if status != 503 || attempt + 1 == attempts {
                if (200..300).contains(&status) {
                    record(clients, &json);
                }
                first = Some((status, json));
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (Some((status, json)), true, Some(key)) = (first, replay, key) else { return };
    if !(200..300).contains(&status) {
        return;
    }
    let again = http.post(url).json(body).header("idempotency-key", key).send().await;
    let answer = match again {
        Ok(response) => {
            let same_status = response.status().as_u16();
            Ok((same_status, response.json::<Value>().await.unwrap_or(Value::Null)))
        }
        Err(err) => Err(err),
    };
    let Ok(mut c) = clients.lock() else { return };
    c.sent += 1;
    match answer {
        Ok((same_status, same)) => {
            *c.statuses.entry(same_status).or_default() += 1;
            c.replays_checked += 1;
            if same_status != status || same != json {
                c.findings.push(format!("replay of {url} answered {same_status} {same}, first {status} {json}"));
            }
        }
        Err(err) => c.unanswered.push(format!("{url} (replay): {err}")),
    }
}

pub fn record(clients: &Mutex<Clients>, answer: &Value) {
    let (Some(id), Some(version), Some(status)) = (
        answer["orderId"].as_str().and_then(|id| Uuid::parse_str(id).ok()),
        answer["sequenceId"].as_i64(),
        answer["status"].as_str(),
    ) else {
        return;
    };
    let Ok(mut c) = clients.lock() else { return };
    c.accepted.push((id, version));
    match c.orders.iter_mut().find(|(known, _, _)| *known == id) {
        Some(order) if order.2 < version => *order = (id, status.to_owned(), version),
        Some(_) => {}
        None => c.orders.push((id, status.to_owned(), version)),
    }
}
