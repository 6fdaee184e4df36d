//! The write model in SQL, one statement per command: a place or a lifecycle change is a single data-modifying
//! statement — the `Idempotency-Key` looked up, the append barrier joined, the order written with its outbox event and
//! the key recorded — so a command costs one round trip to Postgres and commits on its own (no `BEGIN`/`COMMIT`).
//!
//! What a command may do is decided in [`crate::domain`]; a lifecycle change is handed the domain's rule
//! ([`ChangeRule`]: the statuses it moves from, the change it makes, the version expected), applies it to the row it
//! locks and, when it changes nothing, returns the order as it found it, so the rule can say why
//! ([`ChangeRule::admit`]). A change's event payload is the previous event's payload with the rule's
//! [`shared_events::StatusChange`] written over it.
//!
//! A statement that loses a race is run again: a concurrent request with the same key commits first (unique key:
//! the retry replays it), or a concurrent change commits the previous event after this statement's snapshot (its
//! payload reads as missing and the `not null` on `outbox.payload` refuses the event: nothing is written). A key whose
//! earlier use expired is deleted, then the command runs again.
//!
//! Parameters are named: a statement takes one JSON object, serialized from its own struct ([`PlaceParams`],
//! [`ChangeParams`]) and read into typed columns (`params`, by `jsonb_to_record`), so reordering a field changes
//! nothing and a statement names each value it uses. Its one row is typed the same way: the event it appended, the
//! order a change found and the key's earlier use, each a JSON object read into a struct ([`OutcomeRow`]).

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use shared_events::{OrderState, OrderStatus, StatusChange};
use sqlx::types::Json;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::outbox::APPEND_BARRIER_KEY;
use super::StoreError;
use crate::domain::{Change, ChangeRule};

/// What a command recorded, as its answer tells it: read back from the event it appended (or, for a replay, from
/// the event the first request appended).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub order_id: Uuid,
    /// The order's version after the command.
    pub version: i64,
    /// The event's global position in the log.
    pub sequence: i64,
    pub status: OrderStatus,
    /// The order's total, as the event carries it.
    pub total: String,
    pub currency: String,
}

/// The `Idempotency-Key` a command came with, and what its answer will be stored as.
#[derive(Debug, Clone, Copy)]
pub struct KeyUse<'a> {
    /// Whose key it is: the same key from two callers is two keys.
    pub caller: &'a str,
    pub key: &'a str,
    /// What identifies the request (route and canonical body).
    pub fingerprint: &'a str,
    /// The status code and `Location` of the answer when the command is recorded.
    pub status_code: u16,
    pub location: Option<&'a str>,
}

/// The stored use of a key, found instead of running the command again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EarlierUse {
    pub fingerprint: String,
    pub status_code: i32,
    pub location: Option<String>,
    /// The answer recorded as text (keys stored before answers were read from the log); empty otherwise.
    pub response_body: String,
    /// The event the first request recorded.
    pub recorded: Option<Recorded>,
}

/// How a command's statement ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The order and its event are written (and the key, if any).
    Recorded(Recorded),
    /// A lifecycle change changed nothing: the order as found (version, status), or `None` when there is no such
    /// order that the caller may change.
    Unchanged(Option<(i64, OrderStatus)>),
    /// The key was used before: nothing ran.
    KeyUsed(EarlierUse),
}

/// A lifecycle change as the statement applies it: the domain's rule, to one order.
#[derive(Debug, Clone)]
pub struct LifecycleChange<'a> {
    pub order_id: Uuid,
    /// Only the orders of this customer may be changed (`None`: any order).
    pub owner: Option<&'a str>,
    pub rule: &'a ChangeRule,
}

/// A command statement's parameters arrive as one JSON object (`$1`), read into a row of named, typed columns
/// (`params`): each statement names what it uses (`p.order_id`), and the Rust side is one struct per statement
/// ([`PlaceParams`], [`ChangeParams`]), serialized by its field names. The columns every statement takes first:
/// the key's use and the append barrier.
macro_rules! key_params {
    () => {
        "caller text, key text, fingerprint text, status_code int4, location text, barrier int8"
    };
}

/// The previous use of the key, and its answer's event, ahead of every command statement (as `earlier`).
macro_rules! earlier_use {
    () => {
        "earlier as (
             select k.fingerprint, k.created_at < now() - interval '24 hours' as expired, k.status_code, k.location,
                    k.response_body,
                    case when e.payload ?& array['status', 'total', 'currency'] then jsonb_build_object(
                        'order_id', e.order_id, 'order_version', e.order_version, 'sequence', e.sequence,
                        'status', e.payload ->> 'status', 'total', e.payload ->> 'total',
                        'currency', e.payload ->> 'currency') end as event
             from params p join idempotency_key k on k.caller = p.caller and k.key = p.key
                 left join outbox e on e.sequence = k.event_sequence
         ),"
    };
}

/// The key's row for the event just appended, then the statement's one row: the event it appended (`recorded`),
/// the order a change found (`found`, given as `$current`) and the key's earlier use (`earlier`), each a JSON object
/// or null.
macro_rules! record_use_and_answer {
    ($current:literal) => {
        concat!(
            "key_use as (
                 insert into idempotency_key (caller, key, fingerprint, status_code, location, response_body,
                                              event_sequence)
                 select p.caller, p.key, p.fingerprint, p.status_code, p.location, '', e.sequence
                 from params p, event e where p.key is not null
             )
             select (select to_jsonb(e) from event e) as recorded, ",
            $current,
            " as found, (select to_jsonb(k) from earlier k) as earlier"
        )
    };
}

const PLACE: &str = concat!(
    "with params as materialized (
         select * from jsonb_to_record($1) as p(",
    key_params!(),
    ", order_id uuid, customer_id text, segment text, currency text, status text, total numeric, version int8,
           placed_at timestamptz, updated_at timestamptz, lines jsonb, event_id uuid, event_type text,
           schema_version int4, payload jsonb, traceparent text)
     ),",
    earlier_use!(),
    "barrier as materialized (
         select pg_advisory_xact_lock_shared(p.barrier) from params p where not exists (select from earlier)
     ),
     new_order as (
         insert into customer_order (id, customer_id, customer_segment, currency, status, total, version, placed_at,
                                     updated_at)
         select p.order_id, p.customer_id, p.segment, p.currency, p.status, p.total, p.version, p.placed_at,
                p.updated_at
         from params p, barrier
         returning id
     ),
     lines as (
         insert into order_line (order_id, line_no, sku, name, quantity, unit_price, line_total)
         select n.id, l.line_no, l.sku, l.name, l.quantity, l.unit_price, l.line_total
         from new_order n, params p,
             jsonb_to_recordset(p.lines) as l(line_no int4, sku text, name text, quantity int4, unit_price numeric,
                                              line_total numeric)
     ),
     event as (
         insert into outbox (event_id, event_type, schema_version, order_id, order_version, payload, traceparent,
                             occurred_at)
         select p.event_id, p.event_type, p.schema_version, n.id, p.version, p.payload, p.traceparent, p.updated_at
         from new_order n, params p
         returning order_id, order_version, sequence, payload ->> 'status' as status, payload ->> 'total' as total,
                   payload ->> 'currency' as currency
     ),",
    record_use_and_answer!("null::jsonb")
);

const CHANGE: &str = concat!(
    "with params as materialized (
         select * from jsonb_to_record($1) as p(",
    key_params!(),
    ", order_id uuid, owner text, expected_version int8, sources text[], status text, updated_at timestamptz,
           cancel_reason text, event_id uuid, event_type text, patch jsonb, traceparent text)
     ),",
    earlier_use!(),
    "current as materialized (
         select o.id, o.version, o.status from customer_order o, params p
         where o.id = p.order_id and (p.owner is null or o.customer_id = p.owner) and not exists (select from earlier)
         for update of o
     ),
     changed as (
         update customer_order o set status = p.status, version = o.version + 1, updated_at = p.updated_at,
                                     cancel_reason = p.cancel_reason
         from current c, params p
         where o.id = c.id and c.status = any(p.sources)
           and (p.expected_version is null or c.version = p.expected_version)
         returning o.id, o.version
     ),
     barrier as materialized (select pg_advisory_xact_lock_shared(p.barrier) from changed, params p),
     event as (
         insert into outbox (event_id, event_type, schema_version, order_id, order_version, payload, traceparent,
                             occurred_at)
         select p.event_id, p.event_type, prev.schema_version, ch.id, ch.version,
                (prev.payload - 'cancelReason') || p.patch, p.traceparent, p.updated_at
         from changed ch cross join barrier cross join params p
             left join outbox prev on prev.order_id = ch.id and prev.order_version = ch.version - 1
         returning order_id, order_version, sequence, payload ->> 'status' as status, payload ->> 'total' as total,
                   payload ->> 'currency' as currency
     ),",
    record_use_and_answer!("(select jsonb_build_object('version', c.version, 'status', c.status) from current c)")
);

/// The key's use and the append barrier, as every command statement takes them.
#[derive(Debug, Serialize)]
struct KeyParams<'a> {
    caller: Option<&'a str>,
    key: Option<&'a str>,
    fingerprint: Option<&'a str>,
    status_code: Option<u16>,
    location: Option<&'a str>,
    barrier: i64,
}

impl<'a> KeyParams<'a> {
    fn of(key: Option<KeyUse<'a>>) -> Self {
        Self {
            caller: key.map(|k| k.caller),
            key: key.map(|k| k.key),
            fingerprint: key.map(|k| k.fingerprint),
            status_code: key.map(|k| k.status_code),
            location: key.and_then(|k| k.location),
            barrier: APPEND_BARRIER_KEY,
        }
    }
}

/// [`PLACE`]'s parameters.
#[derive(Debug, Serialize)]
struct PlaceParams<'a> {
    #[serde(flatten)]
    key: KeyParams<'a>,
    order_id: Uuid,
    customer_id: &'a str,
    segment: &'a str,
    currency: &'a str,
    status: &'a str,
    total: Decimal,
    version: i64,
    #[serde(with = "time::serde::rfc3339")]
    placed_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
    lines: Vec<LineParams<'a>>,
    event_id: Uuid,
    event_type: &'a str,
    schema_version: u32,
    payload: &'a OrderState,
    traceparent: Option<&'a str>,
}

/// One order line of [`PlaceParams`].
#[derive(Debug, Serialize)]
struct LineParams<'a> {
    line_no: usize,
    sku: &'a str,
    name: Option<&'a str>,
    quantity: u32,
    unit_price: Decimal,
    line_total: Decimal,
}

/// [`CHANGE`]'s parameters.
#[derive(Debug, Serialize)]
struct ChangeParams<'a> {
    #[serde(flatten)]
    key: KeyParams<'a>,
    order_id: Uuid,
    owner: Option<&'a str>,
    expected_version: Option<i64>,
    /// The statuses the rule moves an order from.
    sources: Vec<&'static str>,
    status: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
    cancel_reason: Option<&'a str>,
    event_id: Uuid,
    event_type: &'a str,
    /// What the change writes over the previous event's payload.
    patch: &'a StatusChange,
    traceparent: Option<&'a str>,
}

/// Places a new order: the order, its lines and its `OrderPlaced` event (the [`Change`] placing it decided), and
/// the key's use, in one statement (which commits, unless `conn` is in a transaction).
#[tracing::instrument(skip_all, fields(order_id = %order_id))]
pub async fn place(
    conn: &mut PgConnection,
    order_id: Uuid,
    change: &Change,
    traceparent: Option<&str>,
    key: Option<KeyUse<'_>>,
) -> Result<Outcome, StoreError> {
    let state = &change.state;
    let lines = state.items.iter().enumerate().map(|(index, line)| LineParams {
        line_no: index + 1,
        sku: &line.sku,
        name: line.name.as_deref(),
        quantity: line.quantity,
        unit_price: line.unit_price,
        line_total: line.line_total,
    });
    let params = PlaceParams {
        key: KeyParams::of(key),
        order_id,
        customer_id: &state.customer.id,
        segment: &state.customer.segment,
        currency: &state.currency,
        status: state.status.as_str(),
        total: state.total,
        version: change.version,
        placed_at: state.placed_at,
        updated_at: state.updated_at,
        lines: lines.collect(),
        event_id: Uuid::now_v7(),
        event_type: change.event_type.as_str(),
        schema_version: change.event_type.current_schema_version(),
        payload: state,
        traceparent,
    };
    run(conn, PLACE, &params, key).await
}

/// Applies a lifecycle change to an order, with its event and the key's use, in one statement: the order is changed
/// only if it is in a status the rule moves from (and at the expected version, when one is given).
#[tracing::instrument(skip_all, fields(order_id = %change.order_id, transition = change.rule.transition.as_str()))]
pub async fn change(
    conn: &mut PgConnection,
    change: &LifecycleChange<'_>,
    traceparent: Option<&str>,
    key: Option<KeyUse<'_>>,
) -> Result<Outcome, StoreError> {
    let rule = change.rule;
    let params = ChangeParams {
        key: KeyParams::of(key),
        order_id: change.order_id,
        owner: change.owner,
        expected_version: rule.expected_version,
        sources: rule.sources().into_iter().map(OrderStatus::as_str).collect(),
        status: rule.change.status.as_str(),
        updated_at: rule.change.updated_at,
        cancel_reason: rule.change.cancel_reason.as_deref(),
        event_id: Uuid::now_v7(),
        event_type: rule.transition.event_type().as_str(),
        patch: &rule.change,
        traceparent,
    };
    run(conn, CHANGE, &params, key).await
}

/// How many times a statement that lost a race (see the module's documentation) is run.
const ATTEMPTS: usize = 3;

/// Runs `statement` with `params` until it did not lose a race, and reads how it ended.
async fn run(
    conn: &mut PgConnection,
    statement: &'static str,
    params: &impl Serialize,
    key: Option<KeyUse<'_>>,
) -> Result<Outcome, StoreError> {
    let params = serde_json::to_value(params).map_err(|e| StoreError::Other(sqlx::Error::Encode(Box::new(e))))?;
    for attempt in 1..=ATTEMPTS {
        match sqlx::query_as::<_, OutcomeRow>(statement).bind(&params).fetch_one(&mut *conn).await {
            Ok(row) => match (row.outcome()?, key) {
                (Some(outcome), _) => return Ok(outcome),
                // The key's earlier use expired: forget it, then run the command.
                (None, Some(key)) => super::idempotency::forget_expired(&mut *conn, key.caller, key.key).await?,
                (None, None) => break,
            },
            Err(sqlx::Error::Database(db)) if lost_a_race(&*db) => {
                tracing::debug!(error = %db, attempt, "a command lost a race; running it again");
            }
            Err(err) => return Err(err.into()),
        }
    }
    Err(StoreError::Other(sqlx::Error::Protocol(format!("a command did not settle in {ATTEMPTS} attempts"))))
}

/// A concurrent request with the same key committed first, or a concurrent change committed the previous event.
fn lost_a_race(db: &dyn sqlx::error::DatabaseError) -> bool {
    match db.code().as_deref() {
        Some("23505") => db.constraint() == Some("idempotency_key_pkey"),
        Some("23502") => db.table() == Some("outbox"),
        _ => false,
    }
}

/// The statement's one row: the event it appended, the order a change found, and the key's earlier use.
#[derive(Debug, sqlx::FromRow)]
struct OutcomeRow {
    recorded: Option<Json<EventRow>>,
    found: Option<Json<FoundRow>>,
    earlier: Option<Json<EarlierRow>>,
}

/// An appended event, as a command's answer tells it.
#[derive(Debug, Deserialize)]
struct EventRow {
    order_id: Uuid,
    order_version: i64,
    sequence: i64,
    status: String,
    total: String,
    currency: String,
}

/// The order a change found.
#[derive(Debug, Deserialize)]
struct FoundRow {
    version: i64,
    status: String,
}

/// The key's earlier use.
#[derive(Debug, Deserialize)]
struct EarlierRow {
    fingerprint: String,
    expired: bool,
    status_code: i32,
    location: Option<String>,
    response_body: String,
    event: Option<EventRow>,
}

impl EventRow {
    fn recorded(self) -> Result<Recorded, StoreError> {
        let status = parse_status(&self.status)?;
        let (order_id, version, sequence) = (self.order_id, self.order_version, self.sequence);
        Ok(Recorded { order_id, version, sequence, status, total: self.total, currency: self.currency })
    }
}

impl OutcomeRow {
    /// How the statement ended; `None` when it found the key's earlier use expired (and so did nothing).
    fn outcome(self) -> Result<Option<Outcome>, StoreError> {
        if let Some(Json(event)) = self.recorded {
            return Ok(Some(Outcome::Recorded(event.recorded()?)));
        }
        if let Some(Json(earlier)) = self.earlier {
            if earlier.expired {
                return Ok(None);
            }
            return Ok(Some(Outcome::KeyUsed(EarlierUse {
                fingerprint: earlier.fingerprint,
                status_code: earlier.status_code,
                location: earlier.location,
                response_body: earlier.response_body,
                recorded: earlier.event.map(EventRow::recorded).transpose()?,
            })));
        }
        let found = self.found.map(|Json(found)| Ok::<_, StoreError>((found.version, parse_status(&found.status)?)));
        Ok(Some(Outcome::Unchanged(found.transpose()?)))
    }
}

fn parse_status(status: &str) -> Result<OrderStatus, StoreError> {
    OrderStatus::parse(status)
        .ok_or_else(|| StoreError::Other(sqlx::Error::Decode(format!("unknown status {status:?}").into())))
}
