//! The explorer's history checker: what the clients of a run saw ([`History`]), held against the event log the
//! write model kept ([`Log`]). Pure: no I/O, so that each invariant is tested on hand-made histories. The
//! invariants ([`check`]):
//!
//! - *reads never lie*: a 200 single read at `minVersion` v shows a version ≥ v whose content is the log's event at
//!   that version; a 200 list, summary or dashboard at `minPosition` p holds every event up to p (but those it names
//!   in `missingPositions`) and nothing the log never had;
//! - *versions never go backwards*: a client that saw a version of an order on a replica never sees an older one
//!   there later (single reads and view streams);
//! - *honest health*: no queue of a read model held events none of which left it, and no outbox row waited
//!   unpublished, for longer than [`Limits::stalled`] while a process responsible for it answered ready;
//! - *bad input is harmless*: no 5xx but a 503 with `Retry-After`;
//! - *answers keep the contract*: every status is one the contract (docs/api.md) gives to that request;
//! - *nothing lost*: every accepted command's event is in the log, and once the run has quiesced every read at the
//!   log's head answers 200 and every order's view is at its newest version.

use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;
use uuid::Uuid;

/// One event of the write model's log, as the checks need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    pub position: i64,
    pub order: Uuid,
    pub version: i64,
    /// `placed`, `confirmed`, `shipped` or `cancelled`: the step of the daily dashboard it counts in.
    pub step: String,
    pub customer: String,
    pub status: String,
    pub currency: String,
    pub total: Decimal,
    /// The UTC day the step counts on (`YYYY-MM-DD`).
    pub day: String,
    /// `placedAt` in milliseconds, the list's sort key with the id.
    pub placed_ms: i64,
}

impl Logged {
    /// The checks' view of a logged event.
    pub fn of(event: &shared_events::OrderEvent) -> Self {
        let state = &event.state;
        let step = event.event_type.as_str().trim_start_matches("Order").to_ascii_lowercase();
        let at = if step == "placed" { state.placed_at } else { state.updated_at };
        let day = at.to_offset(time::UtcOffset::UTC).date();
        Self {
            position: event.sequence,
            order: event.order_id,
            version: event.version,
            step,
            customer: state.customer.id.clone(),
            status: state.status.as_str().to_owned(),
            currency: state.currency.clone(),
            total: state.total.normalize(),
            day: format!("{:04}-{:02}-{:02}", day.year(), u8::from(day.month()), day.day()),
            placed_ms: (state.placed_at.unix_timestamp_nanos() / 1_000_000) as i64,
        }
    }
}

/// The log, indexed.
#[derive(Debug, Default)]
pub struct Log {
    /// By position.
    events: Vec<Logged>,
    by_order: HashMap<Uuid, Vec<usize>>,
}

impl Log {
    pub fn new(mut events: Vec<Logged>) -> Self {
        events.sort_by_key(|e| e.position);
        let mut by_order: HashMap<Uuid, Vec<usize>> = HashMap::new();
        for (index, event) in events.iter().enumerate() {
            by_order.entry(event.order).or_default().push(index);
        }
        for indexes in by_order.values_mut() {
            indexes.sort_by_key(|&i| events[i].version);
        }
        Self { events, by_order }
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    pub fn head(&self) -> i64 {
        self.events.last().map_or(0, |e| e.position)
    }

    fn of_order(&self, order: Uuid) -> impl Iterator<Item = &Logged> {
        self.by_order.get(&order).into_iter().flatten().map(|&i| &self.events[i])
    }

    /// The event of `order` at `version`.
    pub fn event(&self, order: Uuid, version: i64) -> Option<&Logged> {
        self.of_order(order).find(|e| e.version == version)
    }

    /// The newest event of `order` at a position ≤ `position` and not in `missing`.
    fn newest_by(&self, order: Uuid, position: i64, missing: &BTreeSet<i64>) -> Option<&Logged> {
        self.of_order(order).filter(|e| e.position <= position && !missing.contains(&e.position)).last()
    }

    /// The newest event of `order`.
    pub fn newest(&self, order: Uuid) -> Option<&Logged> {
        self.of_order(order).last()
    }

    /// Every order, once.
    pub fn orders(&self) -> impl Iterator<Item = Uuid> + '_ {
        self.by_order.keys().copied()
    }
}

/// An order's view as a read showed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewSeen {
    pub order: Uuid,
    pub version: i64,
    pub status: String,
    pub customer: String,
    pub currency: String,
    pub total: Decimal,
    pub placed_ms: i64,
}

impl ViewSeen {
    /// From the `data` of a single read, an element of a list's `data`, or a stream's event.
    pub fn of(data: &serde_json::Value) -> Option<Self> {
        let placed = data["placedAt"].as_str()?;
        let placed = time::OffsetDateTime::parse(placed, &time::format_description::well_known::Rfc3339).ok()?;
        Some(Self {
            order: Uuid::parse_str(data["orderId"].as_str()?).ok()?,
            version: data["version"].as_i64()?,
            status: data["status"].as_str()?.to_owned(),
            customer: data["customerId"].as_str()?.to_owned(),
            currency: data["currency"].as_str()?.to_owned(),
            total: data["total"].as_str()?.parse::<Decimal>().ok()?.normalize(),
            placed_ms: (placed.unix_timestamp_nanos() / 1_000_000) as i64,
        })
    }

    /// Whether the view shows what `event` says.
    fn shows(&self, event: &Logged) -> bool {
        self.status == event.status
            && self.customer == event.customer
            && self.currency == event.currency
            && self.total == event.total
            && self.placed_ms == event.placed_ms
    }
}

/// A customer's summary as a read showed it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SummarySeen {
    pub orders: u64,
    pub by_status: BTreeMap<String, u64>,
    pub spent: BTreeMap<String, Decimal>,
}

impl SummarySeen {
    pub fn of(data: &serde_json::Value) -> Option<Self> {
        let by_status: Option<BTreeMap<String, u64>> =
            data["byStatus"].as_object()?.iter().map(|(k, v)| Some((k.clone(), v.as_u64()?))).collect();
        let spent: Option<BTreeMap<String, Decimal>> = data["spent"]
            .as_object()?
            .iter()
            .map(|(k, v)| Some((k.clone(), v.as_str()?.parse::<Decimal>().ok()?.normalize())))
            .collect();
        Some(Self { orders: data["orders"].as_u64()?, by_status: by_status?, spent: spent? })
    }
}

/// One (day, currency) row of the dashboard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayRow {
    pub placed: u64,
    pub confirmed: u64,
    pub shipped: u64,
    pub cancelled: u64,
    pub revenue: Decimal,
}

/// The dashboard's rows, by (day, currency).
pub type DashboardSeen = BTreeMap<(String, String), DayRow>;

/// The dashboard's `data.days` as rows.
pub fn dashboard_of(data: &serde_json::Value) -> Option<DashboardSeen> {
    data["days"]
        .as_array()?
        .iter()
        .map(|day| {
            let key = (day["day"].as_str()?.to_owned(), day["currency"].as_str()?.to_owned());
            let row = DayRow {
                placed: day["placed"].as_u64()?,
                confirmed: day["confirmed"].as_u64()?,
                shipped: day["shipped"].as_u64()?,
                cancelled: day["cancelled"].as_u64()?,
                revenue: day["revenue"].as_str()?.parse::<Decimal>().ok()?.normalize(),
            };
            Some((key, row))
        })
        .collect()
}

/// What one read at a position answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtPosition {
    pub min_position: i64,
    /// `metadata.missingPositions`.
    pub missing: BTreeSet<i64>,
}

/// What happened, as a client or a sampler saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// A command's answer; `accepted` = (order, version, position) of a 2xx.
    Command { path: String, status: u16, retry_after: bool, accepted: Option<(Uuid, i64, i64)> },
    /// `GET /queries/orders/{id}?minVersion=`.
    Order { replica: String, order: Uuid, min_version: i64, status: u16, retry_after: bool, view: Option<ViewSeen> },
    /// `GET /queries/orders?minPosition=` (`customer`: `customerId=`), `whole`: no next page.
    List {
        replica: String,
        customer: Option<String>,
        at: AtPosition,
        status: u16,
        retry_after: bool,
        views: Vec<ViewSeen>,
        whole: bool,
    },
    /// `GET /queries/customers/{id}/summary?minPosition=`; `summary` of a 200, `None` for a 404.
    Summary {
        replica: String,
        customer: String,
        at: AtPosition,
        status: u16,
        retry_after: bool,
        summary: Option<SummarySeen>,
    },
    /// `GET /queries/dashboard/daily?minPosition=` over every day of the run.
    Dashboard { replica: String, at: AtPosition, status: u16, retry_after: bool, rows: DashboardSeen },
    /// A view stream of one order: its status, and the views it sent, in order.
    Stream { replica: String, order: Uuid, status: u16, views: Vec<ViewSeen> },
    /// A request that got no answer (no connection, a timeout).
    NoAnswer { what: String },
    /// A process that ended on its own (it was started again, as a supervisor would).
    Exited { process: String, status: String },
    /// A process's `/health/ready`: `ready` when 200 with `status: ready` (not degraded); `runs` what it is
    /// responsible for: the projections a query-service replica runs, [`RELAY`] for a command-service running its
    /// relay.
    Ready { process: String, runs: Vec<String>, ready: bool },
    /// A read model's queue: the messages ready in it, and its consumers.
    Queue { queue: String, projection: String, messages: u32, consumers: u32 },
    /// The lowest outbox row not yet published, if any.
    Outbox { oldest_unpublished: Option<i64> },
    /// Everything is up again and the backlog has drained: reads at the head from here on must answer 200.
    Quiesced { head: i64 },
    /// The order views after the run quiesced: each order's version.
    FinalViews { versions: BTreeMap<Uuid, i64> },
}

/// One entry: when (milliseconds since the run began), which client or sampler, what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub at_ms: u64,
    pub client: u32,
    pub seen: Seen,
}

/// Everything the run's clients and samplers saw.
#[derive(Debug, Default, Clone)]
pub struct History {
    pub entries: Vec<Entry>,
}

/// How long a stage may be stuck while its process answers ready.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `STALL_AFTER_S` + 10 s.
    pub stalled: Duration,
}

/// An invariant broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub at_ms: u64,
    pub invariant: &'static str,
    pub detail: String,
}

/// What a command-service running its relay is responsible for (in [`Seen::Ready`]).
pub const RELAY: &str = "relay";

pub const LIES: &str = "reads never lie";
pub const BACKWARDS: &str = "versions never go backwards";
pub const HEALTH: &str = "honest health";
pub const HARMLESS: &str = "bad input is harmless";
pub const CONTRACT: &str = "answers keep the contract";
pub const LOST: &str = "nothing lost";

/// Every invariant over the whole history.
pub fn check(history: &History, log: &Log, limits: Limits) -> Vec<Violation> {
    let mut violations = Vec::new();
    reads_never_lie(history, log, &mut violations);
    versions_never_go_backwards(history, &mut violations);
    honest_health(history, limits, &mut violations);
    harmless(history, &mut violations);
    answers_keep_the_contract(history, &mut violations);
    nothing_lost(history, log, &mut violations);
    violations.sort_by_key(|v| v.at_ms);
    violations
}

fn reads_never_lie(history: &History, log: &Log, out: &mut Vec<Violation>) {
    for entry in &history.entries {
        let mut lie = |detail: String| out.push(Violation { at_ms: entry.at_ms, invariant: LIES, detail });
        match &entry.seen {
            Seen::Order { replica, order, min_version, status: 200, view, .. } => match view {
                None => lie(format!("{replica}: 200 without a view of {order} at minVersion {min_version}")),
                Some(view) => {
                    if view.order != *order || view.version < *min_version {
                        lie(format!("{replica}: {order} at minVersion {min_version} answered v{}", view.version));
                    }
                    view_as_logged(replica, view, log, &mut lie);
                }
            },
            Seen::Stream { replica, order, views, .. } => {
                for view in views {
                    if view.order != *order {
                        lie(format!("{replica}: the stream of {order} sent a view of {}", view.order));
                    }
                    view_as_logged(replica, view, log, &mut lie);
                }
            }
            Seen::List { replica, customer, at, status: 200, views, whole, .. } => {
                list_holds_its_position(replica, customer.as_deref(), at, views, *whole, log, &mut lie);
            }
            Seen::Summary { replica, customer, at, status, summary, .. } if *status == 200 || *status == 404 => {
                summary_holds_its_position(replica, customer, at, summary.as_ref(), log, &mut lie);
            }
            Seen::Dashboard { replica, at, status: 200, rows, .. } => {
                dashboard_holds_its_position(replica, at, rows, log, &mut lie);
            }
            _ => {}
        }
    }
}

/// A view shown must be the log's event at its version.
fn view_as_logged(replica: &str, view: &ViewSeen, log: &Log, lie: &mut impl FnMut(String)) {
    match log.event(view.order, view.version) {
        Some(event) if view.shows(event) => {}
        Some(event) => {
            lie(format!("{replica}: view of {} v{} is {view:?}, the log says {event:?}", view.order, view.version))
        }
        None => lie(format!("{replica}: view of {} at v{}, a version the log never had", view.order, view.version)),
    }
}

fn list_holds_its_position(
    replica: &str,
    customer: Option<&str>,
    at: &AtPosition,
    views: &[ViewSeen],
    whole: bool,
    log: &Log,
    lie: &mut impl FnMut(String),
) {
    let what = customer.map_or_else(|| "the list".to_owned(), |c| format!("the list of {c}"));
    let shown: HashMap<Uuid, &ViewSeen> = views.iter().map(|v| (v.order, v)).collect();
    for view in views {
        view_as_logged(replica, view, log, lie);
        if customer.is_some_and(|c| c != view.customer) {
            lie(format!("{replica}: {what} shows {} of {}", view.order, view.customer));
        }
    }
    // Newest first by (placedAt, id): a page that is not the whole list covers the orders from its last one up.
    let last = views.iter().map(|v| (v.placed_ms, v.order.to_string())).min();
    for order in log.orders() {
        let Some(due) = log.newest_by(order, at.min_position, &at.missing) else { continue };
        if customer.is_some_and(|c| c != due.customer) {
            continue;
        }
        if !whole && last.as_ref().is_none_or(|last| (due.placed_ms, order.to_string()) < *last) {
            continue;
        }
        match shown.get(&order) {
            None => lie(format!(
                "{replica}: {what} at minPosition {} lacks {order} (v{} at position {})",
                at.min_position, due.version, due.position
            )),
            Some(view) if view.version < due.version => lie(format!(
                "{replica}: {what} at minPosition {} shows {order} at v{}, v{} is at position {}",
                at.min_position, view.version, due.version, due.position
            )),
            Some(_) => {}
        }
    }
}

/// The customer's summary as the newest events up to `position` (and not `missing`) make it.
fn summary_at(log: &Log, customer: &str, position: i64, missing: &BTreeSet<i64>) -> SummarySeen {
    let mut summary = SummarySeen {
        by_status: ["Placed", "Confirmed", "Shipped", "Cancelled"].into_iter().map(|s| (s.to_owned(), 0)).collect(),
        ..SummarySeen::default()
    };
    for order in log.orders() {
        let Some(event) = log.newest_by(order, position, missing) else { continue };
        if event.customer != customer {
            continue;
        }
        summary.orders += 1;
        *summary.by_status.entry(event.status.clone()).or_default() += 1;
        if event.status != "Cancelled" {
            *summary.spent.entry(event.currency.clone()).or_default() += event.total;
        }
    }
    for amount in summary.spent.values_mut() {
        *amount = amount.normalize();
    }
    summary
}

fn summary_holds_its_position(
    replica: &str,
    customer: &str,
    at: &AtPosition,
    summary: Option<&SummarySeen>,
    log: &Log,
    lie: &mut impl FnMut(String),
) {
    let due = summary_at(log, customer, at.min_position, &at.missing);
    let all = summary_at(log, customer, i64::MAX, &BTreeSet::new());
    let p = at.min_position;
    let Some(seen) = summary else {
        if due.orders > 0 {
            lie(format!("{replica}: summary of {customer} at minPosition {p} is 404, {} orders are due", due.orders));
        }
        return;
    };
    // Events of the customer after the position may be in it or not, order by order; with none, it is exact.
    let later = log.events.iter().any(|e| e.position > p && e.customer == customer);
    if !later && at.missing.is_empty() && *seen != due {
        lie(format!("{replica}: summary of {customer} at minPosition {p} is {seen:?}, the log says {due:?}"));
    } else if seen.orders < due.orders || seen.orders > all.orders {
        lie(format!(
            "{replica}: summary of {customer} at minPosition {p} counts {} orders, {} are due and {} exist",
            seen.orders, due.orders, all.orders
        ));
    }
}

/// The dashboard's facts (one per event) up to `position`, not `missing`.
fn dashboard_at(log: &Log, position: i64, missing: &BTreeSet<i64>) -> DashboardSeen {
    let mut rows = DashboardSeen::new();
    for event in log.events.iter().filter(|e| e.position <= position && !missing.contains(&e.position)) {
        let row = rows.entry((event.day.clone(), event.currency.clone())).or_default();
        match event.step.as_str() {
            "placed" => row.placed += 1,
            "confirmed" => row.confirmed += 1,
            "shipped" => {
                row.shipped += 1;
                row.revenue += event.total;
            }
            _ => row.cancelled += 1,
        }
    }
    for row in rows.values_mut() {
        row.revenue = row.revenue.normalize();
    }
    rows
}

fn dashboard_holds_its_position(
    replica: &str,
    at: &AtPosition,
    rows: &DashboardSeen,
    log: &Log,
    lie: &mut impl FnMut(String),
) {
    // Facts are only ever added: every counter lies between the facts due and all the facts.
    let due = dashboard_at(log, at.min_position, &at.missing);
    let all = dashboard_at(log, i64::MAX, &BTreeSet::new());
    let p = at.min_position;
    let keys: BTreeSet<&(String, String)> = due.keys().chain(rows.keys()).collect();
    for key in keys {
        let zero = DayRow::default();
        let (seen, low, high) =
            (rows.get(key).unwrap_or(&zero), due.get(key).unwrap_or(&zero), all.get(key).unwrap_or(&zero));
        let within = |f: fn(&DayRow) -> u64| f(low) <= f(seen) && f(seen) <= f(high);
        let counts = within(|r| r.placed)
            && within(|r| r.confirmed)
            && within(|r| r.shipped)
            && within(|r| r.cancelled)
            && low.revenue <= seen.revenue
            && seen.revenue <= high.revenue;
        if !counts {
            lie(format!("{replica}: dashboard {key:?} at minPosition {p} is {seen:?}, due {low:?}, at most {high:?}"));
        }
    }
}

fn versions_never_go_backwards(history: &History, out: &mut Vec<Violation>) {
    let mut newest: HashMap<(u32, &str, Uuid), i64> = HashMap::new();
    for entry in &history.entries {
        let seen: Vec<(&str, &ViewSeen)> = match &entry.seen {
            Seen::Order { replica, status: 200, view: Some(view), .. } => vec![(replica.as_str(), view)],
            Seen::Stream { replica, views, .. } => views.iter().map(|v| (replica.as_str(), v)).collect(),
            _ => continue,
        };
        for (replica, view) in seen {
            let before = newest.entry((entry.client, replica, view.order)).or_insert(view.version);
            if view.version < *before {
                out.push(Violation {
                    at_ms: entry.at_ms,
                    invariant: BACKWARDS,
                    detail: format!("{replica}: {} went from v{before} back to v{}", view.order, view.version),
                });
            }
            *before = (*before).max(view.version);
        }
    }
}

/// A stretch of samples in which something waited and nothing moved: since when, and the last sample's value.
#[derive(Debug, Clone, Copy)]
struct Stuck {
    since: u64,
    last: u64,
}

/// Samples further apart than this (the sampled server was down) do not count as one stretch.
const GAP_MS: u64 = 5_000;

/// Follows one stuck-or-not series: `waiting` (something waits) with `value` (what waits); a sample where nothing
/// waits, or less than before, or after a gap in the samples, ends the stretch.
fn follow(stuck: &mut Option<Stuck>, last_sample: &mut Option<u64>, at: u64, waiting: bool, value: u64, same: bool) {
    let gap = last_sample.replace(at).is_some_and(|last| at - last > GAP_MS);
    *stuck = match *stuck {
        _ if !waiting => None,
        Some(s) if !gap && same && value >= s.last => Some(Stuck { last: value, ..s }),
        _ => Some(Stuck { since: at, last: value }),
    };
}

fn honest_health(history: &History, limits: Limits, out: &mut Vec<Violation>) {
    let limit = limits.stalled.as_millis() as u64;
    // Each process's readiness: since when it has answered ready without a break while responsible for the same
    // things, and what those are.
    let mut ready: BTreeMap<&str, (Option<u64>, &[String])> = BTreeMap::new();
    let mut queues: BTreeMap<&str, (Option<Stuck>, Option<u64>)> = BTreeMap::new();
    let mut outbox: (Option<Stuck>, Option<u64>, Option<i64>) = (None, None, None);
    let mut reported = BTreeSet::new();
    // A stretch counts from when a process responsible for it began answering ready, if that was later.
    let blamed =
        |ready: &BTreeMap<&str, (Option<u64>, &[String])>, at: u64, since: u64, runs: &dyn Fn(&[String]) -> bool| {
            ready.iter().find_map(|(process, (ready_since, what))| {
                let from = since.max((*ready_since)?);
                (runs(what) && at - from > limit).then(|| ((*process).to_owned(), (at - from) / 1000))
            })
        };
    for entry in &history.entries {
        let at = entry.at_ms;
        match &entry.seen {
            Seen::Ready { process, runs, ready: is } => {
                // A process now responsible for something else (started again with it) is ready for it from now.
                let before = ready.get(process.as_str()).filter(|(_, what)| *what == runs.as_slice());
                let since = before.and_then(|(since, _)| *since);
                ready.insert(process, (is.then(|| since.unwrap_or(at)), runs));
            }
            Seen::Queue { queue, projection, messages, .. } => {
                let (stuck, last_sample) = queues.entry(queue).or_default();
                follow(stuck, last_sample, at, *messages > 0, u64::from(*messages), true);
                let Some(Stuck { since, .. }) = *stuck else { continue };
                let runs = |what: &[String]| what.contains(projection);
                if let Some((process, seconds)) = blamed(&ready, at, since, &runs) {
                    if reported.insert(queue.clone()) {
                        out.push(Violation {
                            at_ms: at,
                            invariant: HEALTH,
                            detail: format!(
                                "{queue} held events and none left it for {seconds} s while {process}, which runs \
                                 {projection}, answered ready"
                            ),
                        });
                    }
                }
            }
            Seen::Outbox { oldest_unpublished } => {
                let (stuck, last_sample, row) = &mut outbox;
                let same = *row == *oldest_unpublished;
                *row = *oldest_unpublished;
                follow(stuck, last_sample, at, oldest_unpublished.is_some(), 0, same);
                let (Some(Stuck { since, .. }), Some(row)) = (*stuck, *row) else { continue };
                let runs = |what: &[String]| what.iter().any(|r| r == RELAY);
                if let Some((process, seconds)) = blamed(&ready, at, since, &runs) {
                    if reported.insert(format!("outbox row {row}")) {
                        out.push(Violation {
                            at_ms: at,
                            invariant: HEALTH,
                            detail: format!(
                                "outbox row {row} waited unpublished for {seconds} s while {process} answered ready"
                            ),
                        });
                    }
                }
            }
            _ => {}
        }
    }
}

fn harmless(history: &History, out: &mut Vec<Violation>) {
    for entry in &history.entries {
        let (what, status, retry_after) = match &entry.seen {
            Seen::Command { path, status, retry_after, .. } => (path.clone(), *status, *retry_after),
            Seen::Order { order, status, retry_after, .. } => (format!("read of {order}"), *status, *retry_after),
            Seen::List { status, retry_after, .. } => ("a list".to_owned(), *status, *retry_after),
            Seen::Summary { customer, status, retry_after, .. } => {
                (format!("summary of {customer}"), *status, *retry_after)
            }
            Seen::Dashboard { status, retry_after, .. } => ("the dashboard".to_owned(), *status, *retry_after),
            // A stream's error is an answer without its headers here: only a 5xx at all counts.
            Seen::Stream { order, status, .. } => (format!("the stream of {order}"), *status, true),
            _ => continue,
        };
        if status >= 500 && !(status == 503 && retry_after) {
            out.push(Violation {
                at_ms: entry.at_ms,
                invariant: HARMLESS,
                detail: format!("{what} answered {status}{}", if retry_after { "" } else { " without Retry-After" }),
            });
        }
    }
}

/// Every answer is one the contract (docs/api.md) gives to that request (the clients send only well-formed requests, for orders and
/// customers they may see); a 2xx to a command says what it accepted.
fn answers_keep_the_contract(history: &History, out: &mut Vec<Violation>) {
    for entry in &history.entries {
        let (what, status, allowed): (String, u16, &[u16]) = match &entry.seen {
            Seen::Command { path, status, .. } if path.starts_with("/admin/") => {
                (path.clone(), *status, &[202, 409, 503])
            }
            Seen::Command { path, status, accepted, .. } => {
                if (200..300).contains(status) && accepted.is_none() {
                    out.push(Violation {
                        at_ms: entry.at_ms,
                        invariant: CONTRACT,
                        detail: format!("{path} answered {status} without its order, version and position"),
                    });
                }
                (path.clone(), *status, &[200, 201, 409, 429, 503])
            }
            Seen::Order { order, status, .. } => (format!("the read of {order}"), *status, &[200, 202, 429, 503]),
            Seen::List { status, .. } => ("a list".to_owned(), *status, &[200, 202, 429, 503]),
            Seen::Summary { customer, status, .. } => {
                (format!("the summary of {customer}"), *status, &[200, 202, 404, 429, 503])
            }
            Seen::Dashboard { status, .. } => ("the dashboard".to_owned(), *status, &[200, 202, 429, 503]),
            Seen::Stream { order, status, .. } => (format!("the stream of {order}"), *status, &[200, 429, 503]),
            _ => continue,
        };
        if !allowed.contains(&status) {
            out.push(Violation {
                at_ms: entry.at_ms,
                invariant: CONTRACT,
                detail: format!("{what} answered {status}, which the contract does not give it"),
            });
        }
    }
}

fn nothing_lost(history: &History, log: &Log, out: &mut Vec<Violation>) {
    let accepted = history.entries.iter().any(|e| matches!(e.seen, Seen::Command { accepted: Some(_), .. }));
    let ended = history.entries.iter().any(|e| matches!(e.seen, Seen::Quiesced { .. }));
    if ended && !accepted {
        let at_ms = history.entries.last().map_or(0, |e| e.at_ms);
        out.push(Violation { at_ms, invariant: LOST, detail: "no command was accepted: nothing was checked".into() });
    }
    let mut quiesced = false;
    for entry in &history.entries {
        let mut lost = |detail: String| out.push(Violation { at_ms: entry.at_ms, invariant: LOST, detail });
        match &entry.seen {
            Seen::Command { path, accepted: Some((order, version, position)), .. }
                if log.event(*order, *version).is_none_or(|e| e.position != *position) =>
            {
                lost(format!("{path} accepted {order} v{version} at {position}: not so in the log"));
            }
            Seen::Quiesced { .. } => quiesced = true,
            Seen::NoAnswer { what } if quiesced => {
                lost(format!("{what} got no answer after the run quiesced"));
            }
            Seen::Order { replica, order, status, .. } if quiesced && *status != 200 => {
                lost(format!("{replica}: the read of {order} after the run quiesced answered {status}"));
            }
            Seen::List { replica, status, .. } if quiesced && *status != 200 => {
                lost(format!("{replica}: a list after the run quiesced answered {status}"));
            }
            Seen::Summary { replica, status, customer, .. } if quiesced && *status != 200 && *status != 404 => {
                lost(format!("{replica}: the summary of {customer} after the run quiesced answered {status}"));
            }
            Seen::Dashboard { replica, status, .. } if quiesced && *status != 200 => {
                lost(format!("{replica}: the dashboard after the run quiesced answered {status}"));
            }
            Seen::FinalViews { versions } => {
                for order in log.orders() {
                    let newest = log.newest(order).map_or(0, |e| e.version);
                    match versions.get(&order) {
                        Some(version) if *version == newest => {}
                        other => {
                            lost(format!("the view of {order} is at {other:?} after the run, the log at v{newest}"))
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn event(position: i64, n: u128, version: i64, step: &str, customer: &str) -> Logged {
        let status = match step {
            "placed" => "Placed",
            "confirmed" => "Confirmed",
            "shipped" => "Shipped",
            _ => "Cancelled",
        };
        Logged {
            position,
            order: order(n),
            version,
            step: step.to_owned(),
            customer: customer.to_owned(),
            status: status.to_owned(),
            currency: "EUR".to_owned(),
            total: Decimal::new(250 * n as i64, 2),
            day: "2026-12-06".to_owned(),
            placed_ms: 1_000 * n as i64,
        }
    }

    fn view_of(e: &Logged) -> ViewSeen {
        ViewSeen {
            order: e.order,
            version: e.version,
            status: e.status.clone(),
            customer: e.customer.clone(),
            currency: e.currency.clone(),
            total: e.total,
            placed_ms: e.placed_ms,
        }
    }

    /// Orders 1 and 2 of alice, 3 of bob; order 1 confirmed at position 4 and shipped at 5.
    fn log() -> Log {
        Log::new(vec![
            event(1, 1, 1, "placed", "alice"),
            event(2, 2, 1, "placed", "alice"),
            event(3, 3, 1, "placed", "bob"),
            event(4, 1, 2, "confirmed", "alice"),
            event(5, 1, 3, "shipped", "alice"),
        ])
    }

    fn history(seen: Vec<Seen>) -> History {
        let entries = seen.into_iter().enumerate().map(|(i, seen)| Entry { at_ms: i as u64 * 1000, client: 1, seen });
        History { entries: entries.collect() }
    }

    fn limits() -> Limits {
        Limits { stalled: Duration::from_secs(20) }
    }

    fn invariants(history: &History) -> Vec<&'static str> {
        check(history, &log(), limits()).into_iter().map(|v| v.invariant).collect()
    }

    fn at(min_position: i64) -> AtPosition {
        AtPosition { min_position, missing: BTreeSet::new() }
    }

    fn list(customer: Option<&str>, min_position: i64, views: Vec<ViewSeen>) -> Seen {
        let customer = customer.map(str::to_owned);
        Seen::List {
            replica: "q1".into(),
            customer,
            at: at(min_position),
            status: 200,
            retry_after: false,
            views,
            whole: true,
        }
    }

    fn read(n: u128, min_version: i64, view: Option<ViewSeen>) -> Seen {
        Seen::Order { replica: "q1".into(), order: order(n), min_version, status: 200, retry_after: false, view }
    }

    impl Seen {
        fn with_status(mut self, new: u16) -> Self {
            if let Seen::Order { status, .. } = &mut self {
                *status = new;
            }
            self
        }
    }

    fn logged(position: i64) -> Logged {
        log().events.into_iter().find(|e| e.position == position).expect("logged")
    }

    #[test]
    fn truthful_reads_break_nothing() {
        let log = log();
        let views: Vec<ViewSeen> = [5, 2].into_iter().map(|p| view_of(&logged(p))).collect();
        let all = dashboard_at(&log, 5, &BTreeSet::new());
        let seen = history(vec![
            read(1, 2, Some(view_of(&logged(4)))),
            read(1, 2, Some(view_of(&logged(5)))),
            list(Some("alice"), 4, views),
            Seen::Summary {
                replica: "q2".into(),
                customer: "bob".into(),
                at: at(3),
                status: 200,
                retry_after: false,
                summary: Some(summary_at(&log, "bob", 3, &BTreeSet::new())),
            },
            Seen::Dashboard { replica: "q1".into(), at: at(2), status: 200, retry_after: false, rows: all },
            Seen::Command { path: "/commands/orders".into(), status: 503, retry_after: true, accepted: None },
        ]);
        assert_eq!(invariants(&seen), Vec::<&str>::new());
    }

    #[test]
    fn a_lost_event_is_found() {
        // The view of order 1 stayed at its confirmation: the shipment (position 5) never reached it.
        let finals = [(order(1), 2), (order(2), 1), (order(3), 1)].into_iter().collect();
        let accepted = Some((order(1), 3, 5));
        let shipped = Seen::Command { path: "/x".into(), status: 200, retry_after: false, accepted };
        let seen = history(vec![shipped, Seen::Quiesced { head: 5 }, Seen::FinalViews { versions: finals }]);
        assert_eq!(invariants(&seen), vec![LOST]);
        // A read at the head that gets no answer once everything is up again.
        let seen = history(vec![Seen::Quiesced { head: 5 }, Seen::NoAnswer { what: "the list".into() }]);
        assert_eq!(invariants(&seen), vec![LOST, LOST], "no answer, and nothing accepted");
        // And an accepted command whose event the log does not hold.
        let accepted = Some((order(2), 2, 6));
        let seen = history(vec![Seen::Command { path: "/x".into(), status: 200, retry_after: false, accepted }]);
        assert_eq!(invariants(&seen), vec![LOST]);
    }

    #[test]
    fn a_list_that_lies_is_found() {
        // At position 4 the list of alice must show order 1 confirmed (v2) and order 2; it lacks order 2.
        let seen = history(vec![list(Some("alice"), 4, vec![view_of(&logged(4))])]);
        assert_eq!(invariants(&seen), vec![LIES]);
        // It shows order 1 placed (v1), older than position 4 allows.
        let seen = history(vec![list(Some("alice"), 4, vec![view_of(&logged(1)), view_of(&logged(2))])]);
        assert_eq!(invariants(&seen), vec![LIES]);
        // Unless position 4 is named missing (its event was dead-lettered).
        let mut missing = list(Some("alice"), 4, vec![view_of(&logged(1)), view_of(&logged(2))]);
        if let Seen::List { at, .. } = &mut missing {
            at.missing.insert(4);
        }
        assert_eq!(invariants(&history(vec![missing])), Vec::<&str>::new());
        // A summary and a dashboard that miss what is due.
        let short = SummarySeen { orders: 1, ..summary_at(&log(), "alice", 1, &BTreeSet::new()) };
        let summary = Seen::Summary {
            replica: "q1".into(),
            customer: "alice".into(),
            at: at(2),
            status: 200,
            retry_after: false,
            summary: Some(short),
        };
        let rows = dashboard_at(&log(), 3, &BTreeSet::new());
        let dashboard = Seen::Dashboard { replica: "q1".into(), at: at(4), status: 200, retry_after: false, rows };
        assert_eq!(invariants(&history(vec![summary, dashboard])), vec![LIES, LIES]);
    }

    #[test]
    fn a_state_the_log_never_had_is_found() {
        let mut invented = view_of(&logged(4));
        invented.status = "Shipped".into();
        assert_eq!(invariants(&history(vec![read(1, 2, Some(invented))])), vec![LIES]);
        let mut unknown = view_of(&logged(5));
        unknown.version = 9;
        assert_eq!(invariants(&history(vec![read(1, 1, Some(unknown))])), vec![LIES]);
    }

    #[test]
    fn a_version_going_backwards_is_found() {
        let seen = history(vec![read(1, 1, Some(view_of(&logged(5)))), read(1, 1, Some(view_of(&logged(4))))]);
        assert_eq!(invariants(&seen), vec![BACKWARDS]);
        // On another replica, it is another history.
        let mut other = read(1, 1, Some(view_of(&logged(4))));
        if let Seen::Order { replica, .. } = &mut other {
            *replica = "q2".into();
        }
        assert_eq!(invariants(&history(vec![read(1, 1, Some(view_of(&logged(5)))), other])), Vec::<&str>::new());
    }

    #[test]
    fn a_stalled_stage_reported_ready_is_found() {
        let ready = |ready| Seen::Ready { process: "query-1".into(), runs: vec!["daily-sales".into()], ready };
        let queue = |messages, consumers| Seen::Queue {
            queue: "x.views.daily-sales.1".into(),
            projection: "daily-sales".into(),
            messages,
            consumers,
        };
        // 30 samples a second apart: the queue without a consumer all along while its replica says ready.
        let mut seen: Vec<Seen> = vec![ready(true)];
        seen.extend((0..30).map(|_| queue(3, 0)));
        assert_eq!(invariants(&history(seen)), vec![HEALTH]);
        // With a consumer that takes nothing (its connection dead): growing, never shrinking.
        let mut seen: Vec<Seen> = vec![ready(true)];
        seen.extend((0..30).map(|n| queue(n, 1)));
        assert_eq!(invariants(&history(seen)), vec![HEALTH]);
        // Said degraded: honest.
        let mut seen: Vec<Seen> = vec![ready(false)];
        seen.extend((0..30).map(|_| queue(3, 0)));
        assert_eq!(invariants(&history(seen)), Vec::<&str>::new());
        // Taken from now and then: no stall.
        let mut seen: Vec<Seen> = vec![ready(true)];
        seen.extend((0..30).map(|n| queue(if n % 15 == 14 { 0 } else { 2 }, 1)));
        assert_eq!(invariants(&history(seen)), Vec::<&str>::new());
        // Ready only for the last few seconds of a long stall: the stall counts from then.
        let mut seen: Vec<Seen> = vec![ready(false)];
        seen.extend((0..25).map(|_| queue(3, 0)));
        seen.push(ready(true));
        seen.extend((0..10).map(|_| queue(3, 0)));
        assert_eq!(invariants(&history(seen)), Vec::<&str>::new());
        // An outbox row that stays unpublished while the command side says ready.
        let relay = |runs: &[&str]| Seen::Ready {
            process: "command-1".into(),
            runs: runs.iter().map(|r| (*r).to_owned()).collect(),
            ready: true,
        };
        let mut seen = vec![relay(&[RELAY])];
        seen.extend((0..30).map(|_| Seen::Outbox { oldest_unpublished: Some(7) }));
        assert_eq!(invariants(&history(seen)), vec![HEALTH]);
        // Its relay turned off (`RELAY_ENABLED=false`, as the documented change of the split does): not its stall.
        let mut seen = vec![relay(&[])];
        seen.extend((0..30).map(|_| Seen::Outbox { oldest_unpublished: Some(7) }));
        assert_eq!(invariants(&history(seen)), Vec::<&str>::new());
        // Found by the explorer (seed 12): the relay turned on again after rows waited for a minute, the process
        // ready all along. The rows are its from when its relay runs, not from when the process became ready.
        let mut seen = vec![relay(&[])];
        seen.extend((0..60).map(|_| Seen::Outbox { oldest_unpublished: Some(7) }));
        seen.push(relay(&[RELAY]));
        seen.extend((0..10).map(|_| Seen::Outbox { oldest_unpublished: Some(7) }));
        assert_eq!(invariants(&history(seen)), Vec::<&str>::new());
        // Rows moving on: no stall.
        let mut seen = vec![relay(&[RELAY])];
        seen.extend((0..30).map(|n| Seen::Outbox { oldest_unpublished: Some(7 + n / 10) }));
        assert_eq!(invariants(&history(seen)), Vec::<&str>::new());
    }

    #[test]
    fn an_answer_outside_the_contract_is_found() {
        let seen = history(vec![
            read(1, 1, None).with_status(404),
            Seen::Command { path: "/commands/orders".into(), status: 201, retry_after: false, accepted: None },
            Seen::Command { path: "/commands/orders".into(), status: 400, retry_after: false, accepted: None },
            Seen::Stream { replica: "q1".into(), order: order(2), status: 200, views: vec![view_of(&logged(1))] },
        ]);
        assert_eq!(invariants(&seen), vec![CONTRACT, CONTRACT, CONTRACT, LIES]);
    }

    #[test]
    fn a_5xx_without_retry_after_is_found() {
        let seen = history(vec![
            Seen::Command { path: "/commands/orders".into(), status: 500, retry_after: false, accepted: None },
            Seen::Command { path: "/commands/orders".into(), status: 503, retry_after: false, accepted: None },
        ]);
        // A 500 is no answer the contract gives either.
        assert_eq!(invariants(&seen), vec![HARMLESS, CONTRACT, HARMLESS]);
    }
}
