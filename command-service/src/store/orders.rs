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

use rust_decimal::Decimal;
use shared_events::OrderStatus;
use sqlx::PgConnection;
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

/// The previous use of the key, and its answer's event, ahead of every command statement. Parameters: `$1` caller,
/// `$2` key.
macro_rules! earlier_use {
    () => {
        "with earlier as (
             select k.fingerprint as key_fingerprint, k.created_at < now() - interval '24 hours' as key_expired,
                    k.status_code as key_status_code, k.location as key_location,
                    k.response_body as key_response_body, e.order_id as key_order_id,
                    e.order_version as key_order_version, e.sequence as key_sequence,
                    e.payload ->> 'status' as key_status, e.payload ->> 'total' as key_total,
                    e.payload ->> 'currency' as key_currency
             from idempotency_key k left join outbox e on e.sequence = k.event_sequence
             where k.caller = $1 and k.key = $2
         ),"
    };
}

/// The key's row for the event just appended, then one row telling how the statement ended. Parameters: `$1`–`$3`
/// caller, key, fingerprint; `$4` status code, `$5` location. `current` is the order a change found.
macro_rules! record_use_and_answer {
    ($current:literal) => {
        concat!(
            "key_use as (
                 insert into idempotency_key (caller, key, fingerprint, status_code, location, response_body,
                                              event_sequence)
                 select $1, $2, $3, $4, $5, '', sequence from event where $2::text is not null
             )
             select e.order_id, e.order_version, e.sequence, e.status, e.total, e.currency, ",
            $current,
            ", k.*
             from (values (1)) as one left join event e on true left join earlier k on true"
        )
    };
}

const PLACE: &str = concat!(
    earlier_use!(),
    "barrier as materialized (select pg_advisory_xact_lock_shared($6) where not exists (select from earlier)),
     new_order as (
         insert into customer_order (id, customer_id, customer_segment, currency, status, total, version, placed_at,
                                     updated_at)
         select $7, $8, $9, $10, $11, $12, $13, $14, $15 from barrier
         returning id
     ),
     lines as (
         insert into order_line (order_id, line_no, sku, name, quantity, unit_price, line_total)
         select n.id, l.* from new_order n,
             unnest($16::int4[], $17::text[], $18::text[], $19::int4[], $20::numeric[], $21::numeric[]) as l
     ),
     event as (
         insert into outbox (event_id, event_type, schema_version, order_id, order_version, payload, traceparent,
                             occurred_at)
         select $22, $23, $24, n.id, $13, $25, $26, $15 from new_order n
         returning order_id, order_version, sequence, payload ->> 'status' as status, payload ->> 'total' as total,
                   payload ->> 'currency' as currency
     ),",
    record_use_and_answer!("null::int8 as current_version, null::text as current_status")
);

const CHANGE: &str = concat!(
    earlier_use!(),
    "current as materialized (
         select o.id, o.version, o.status from customer_order o
         where o.id = $7 and ($8::text is null or o.customer_id = $8) and not exists (select from earlier)
         for update of o
     ),
     changed as (
         update customer_order o set status = $11, version = o.version + 1, updated_at = $12, cancel_reason = $13
         from current c
         where o.id = c.id and c.status = any($10::text[]) and ($9::int8 is null or c.version = $9)
         returning o.id, o.version
     ),
     barrier as materialized (select pg_advisory_xact_lock_shared($6) from changed),
     event as (
         insert into outbox (event_id, event_type, schema_version, order_id, order_version, payload, traceparent,
                             occurred_at)
         select $14, $15, p.schema_version, ch.id, ch.version, (p.payload - 'cancelReason') || $16::jsonb, $17, $12
         from changed ch cross join barrier
             left join outbox p on p.order_id = ch.id and p.order_version = ch.version - 1
         returning order_id, order_version, sequence, payload ->> 'status' as status, payload ->> 'total' as total,
                   payload ->> 'currency' as currency
     ),",
    record_use_and_answer!("c.version as current_version, c.status as current_status"),
    " left join current c on true"
);

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
    let payload = serde_json::to_value(state).map_err(|e| StoreError::Other(sqlx::Error::Encode(Box::new(e))))?;
    let line_numbers: Vec<i32> = (1..).take(state.items.len()).collect();
    let skus: Vec<&str> = state.items.iter().map(|l| l.sku.as_str()).collect();
    let names: Vec<Option<&str>> = state.items.iter().map(|l| l.name.as_deref()).collect();
    let quantities: Vec<i32> = state.items.iter().map(|l| l.quantity as i32).collect();
    let prices: Vec<Decimal> = state.items.iter().map(|l| l.unit_price).collect();
    let totals: Vec<Decimal> = state.items.iter().map(|l| l.line_total).collect();
    run(conn, key, || {
        bind_key(sqlx::query_as(PLACE), key)
            .bind(order_id)
            .bind(&state.customer.id)
            .bind(&state.customer.segment)
            .bind(&state.currency)
            .bind(state.status.as_str())
            .bind(state.total)
            .bind(change.version)
            .bind(state.placed_at)
            .bind(state.updated_at)
            .bind(&line_numbers)
            .bind(&skus)
            .bind(&names)
            .bind(&quantities)
            .bind(&prices)
            .bind(&totals)
            .bind(Uuid::now_v7())
            .bind(change.event_type.as_str())
            .bind(change.event_type.current_schema_version() as i32)
            .bind(&payload)
            .bind(traceparent)
    })
    .await
}

/// Applies a lifecycle change to an order, with its event and the key's use, in one statement: the order is changed
/// only if it is in a status the transition moves from (and at the expected version, when one is given).
#[tracing::instrument(skip_all, fields(order_id = %change.order_id, transition = change.rule.transition.as_str()))]
pub async fn change(
    conn: &mut PgConnection,
    change: &LifecycleChange<'_>,
    traceparent: Option<&str>,
    key: Option<KeyUse<'_>>,
) -> Result<Outcome, StoreError> {
    let rule = change.rule;
    let from: Vec<&str> = rule.sources().into_iter().map(OrderStatus::as_str).collect();
    let patch = serde_json::to_value(&rule.change).map_err(|e| StoreError::Other(sqlx::Error::Encode(Box::new(e))))?;
    run(conn, key, || {
        bind_key(sqlx::query_as(CHANGE), key)
            .bind(change.order_id)
            .bind(change.owner)
            .bind(rule.expected_version)
            .bind(&from)
            .bind(rule.change.status.as_str())
            .bind(rule.change.updated_at)
            .bind(&rule.change.cancel_reason)
            .bind(Uuid::now_v7())
            .bind(rule.transition.event_type().as_str())
            .bind(&patch)
            .bind(traceparent)
    })
    .await
}

type Query<'q> = sqlx::query::QueryAs<'q, sqlx::Postgres, OutcomeRow, sqlx::postgres::PgArguments>;

/// Binds `$1`–`$6`: the key's caller, key, fingerprint, status code and location, and the append barrier.
fn bind_key<'q>(query: Query<'q>, key: Option<KeyUse<'q>>) -> Query<'q> {
    query
        .bind(key.map(|k| k.caller))
        .bind(key.map(|k| k.key))
        .bind(key.map(|k| k.fingerprint))
        .bind(key.map(|k| i32::from(k.status_code)))
        .bind(key.and_then(|k| k.location))
        .bind(APPEND_BARRIER_KEY)
}

/// How many times a statement that lost a race (see the module's documentation) is run.
const ATTEMPTS: usize = 3;

/// Runs the statement `query` builds until it did not lose a race, and reads how it ended.
async fn run<'q>(
    conn: &mut PgConnection,
    key: Option<KeyUse<'_>>,
    query: impl Fn() -> Query<'q>,
) -> Result<Outcome, StoreError> {
    for attempt in 1..=ATTEMPTS {
        match query().fetch_one(&mut *conn).await {
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
    order_id: Option<Uuid>,
    order_version: Option<i64>,
    sequence: Option<i64>,
    status: Option<String>,
    total: Option<String>,
    currency: Option<String>,
    current_version: Option<i64>,
    current_status: Option<String>,
    key_fingerprint: Option<String>,
    key_expired: Option<bool>,
    key_status_code: Option<i32>,
    key_location: Option<String>,
    key_response_body: Option<String>,
    key_order_id: Option<Uuid>,
    key_order_version: Option<i64>,
    key_sequence: Option<i64>,
    key_status: Option<String>,
    key_total: Option<String>,
    key_currency: Option<String>,
}

impl OutcomeRow {
    /// How the statement ended; `None` when it found the key's earlier use expired (and so did nothing).
    fn outcome(self) -> Result<Option<Outcome>, StoreError> {
        if let Some(recorded) =
            recorded(self.order_id, self.order_version, self.sequence, self.status, self.total, self.currency)?
        {
            return Ok(Some(Outcome::Recorded(recorded)));
        }
        if let Some(fingerprint) = self.key_fingerprint {
            if self.key_expired.unwrap_or(false) {
                return Ok(None);
            }
            return Ok(Some(Outcome::KeyUsed(EarlierUse {
                fingerprint,
                status_code: self.key_status_code.unwrap_or(0),
                location: self.key_location,
                response_body: self.key_response_body.unwrap_or_default(),
                recorded: recorded(
                    self.key_order_id,
                    self.key_order_version,
                    self.key_sequence,
                    self.key_status,
                    self.key_total,
                    self.key_currency,
                )?,
            })));
        }
        let found = match (self.current_version, self.current_status) {
            (Some(version), Some(status)) => Some((version, parse_status(&status)?)),
            _ => None,
        };
        Ok(Some(Outcome::Unchanged(found)))
    }
}

/// The recorded event, when the columns hold one.
fn recorded(
    order_id: Option<Uuid>,
    version: Option<i64>,
    sequence: Option<i64>,
    status: Option<String>,
    total: Option<String>,
    currency: Option<String>,
) -> Result<Option<Recorded>, StoreError> {
    let (Some(order_id), Some(version), Some(sequence), Some(status), Some(total), Some(currency)) =
        (order_id, version, sequence, status, total, currency)
    else {
        return Ok(None);
    };
    Ok(Some(Recorded { order_id, version, sequence, status: parse_status(&status)?, total, currency }))
}

fn parse_status(status: &str) -> Result<OrderStatus, StoreError> {
    OrderStatus::parse(status)
        .ok_or_else(|| StoreError::Other(sqlx::Error::Decode(format!("unknown status {status:?}").into())))
}
