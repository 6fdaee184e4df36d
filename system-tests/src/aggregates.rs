//! The customer summaries and the daily sales dashboard as SQL computes them over the write model (the orders and
//! the event log beside them), and as the query-service answers them: what the read models must equal once caught
//! up. Money is compared as decimals (`10.3` = `10.30`), times to the millisecond (what the read store keeps).

use rust_decimal::Decimal;
use serde_json::Value;
use sqlx::PgPool;
use std::collections::BTreeMap;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A customer's summary, as compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub orders: u64,
    pub by_status: BTreeMap<String, u64>,
    pub spent: BTreeMap<String, Decimal>,
    pub first_order_at: Option<OffsetDateTime>,
    pub last_order_at: Option<OffsetDateTime>,
    pub recent_order_ids: Vec<String>,
}

/// One day's figures in one currency, as compared: placed, confirmed, shipped, cancelled, revenue.
pub type Day = (u64, u64, u64, u64, Decimal);

/// The dashboard, as compared: `(day, currency)` → figures (days without activity absent).
pub type Dashboard = BTreeMap<(String, String), Day>;

/// Which state of the write model the aggregates are computed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Orders {
    /// The orders as the write model has them now (`customer_order`).
    Current,
    /// Each order as its newest event of at most this schema version says (what a build that reads no newer one
    /// can have projected), and only such events.
    ReadableUpTo(i32),
}

impl Orders {
    /// The `orders` table expression (`id`, `customer_id`, `currency`, `status`, `total`, `placed_at`).
    fn table(self) -> String {
        match self {
            Self::Current => "select id::text as id, customer_id, currency::text as currency, status, total, placed_at
                              from customer_order"
                .to_owned(),
            Self::ReadableUpTo(version) => format!(
                "select distinct on (order_id) order_id::text as id,
                        coalesce(payload->'customer'->>'id', payload->>'customerId') as customer_id,
                        payload->>'currency' as currency, payload->>'status' as status,
                        (payload->>'total')::numeric as total, (payload->>'placedAt')::timestamptz as placed_at
                 from outbox where schema_version <= {version} order by order_id, order_version desc"
            ),
        }
    }

    /// The newest schema version of the events counted.
    fn newest_schema(self) -> i32 {
        match self {
            Self::Current => i32::MAX,
            Self::ReadableUpTo(version) => version,
        }
    }
}

/// The summary of `customer` over the write model.
pub async fn summary_in_sql(pool: &PgPool, orders: Orders, customer: &str) -> sqlx::Result<Summary> {
    let table = orders.table();
    let statuses: Vec<(String, i64)> = sqlx::query_as(&format!(
        "with o as ({table}) select status, count(*) from o where customer_id = $1 group by status"
    ))
    .bind(customer)
    .fetch_all(pool)
    .await?;
    let spent: Vec<(String, Decimal)> = sqlx::query_as(&format!(
        "with o as ({table}) select currency, sum(total) from o where customer_id = $1 and status <> 'Cancelled'
         group by currency"
    ))
    .bind(customer)
    .fetch_all(pool)
    .await?;
    let (count, first, last): (i64, Option<OffsetDateTime>, Option<OffsetDateTime>) = sqlx::query_as(&format!(
        "with o as ({table}) select count(*), date_trunc('milliseconds', min(placed_at)),
                date_trunc('milliseconds', max(placed_at))
         from o where customer_id = $1"
    ))
    .bind(customer)
    .fetch_one(pool)
    .await?;
    let recent: Vec<String> = sqlx::query_scalar(&format!(
        "with o as ({table}) select id from o where customer_id = $1
         order by date_trunc('milliseconds', placed_at) desc, id desc limit 5"
    ))
    .bind(customer)
    .fetch_all(pool)
    .await?;
    let mut by_status: BTreeMap<String, u64> =
        ["Placed", "Confirmed", "Shipped", "Cancelled"].into_iter().map(|s| (s.to_owned(), 0)).collect();
    by_status.extend(statuses.into_iter().map(|(status, n)| (status, n.unsigned_abs())));
    Ok(Summary {
        orders: count.unsigned_abs(),
        by_status,
        spent: spent.into_iter().map(|(currency, amount)| (currency, amount.normalize())).collect(),
        first_order_at: first,
        last_order_at: last,
        recent_order_ids: recent,
    })
}

/// The dashboard of the days `from` to `to` (`YYYY-MM-DD`, UTC) over the write model: orders placed by their
/// `placed_at`, each other step by the time its event says the order changed, revenue the shipped orders' totals.
pub async fn dashboard_in_sql(pool: &PgPool, orders: Orders, from: &str, to: &str) -> sqlx::Result<Dashboard> {
    type Row = (String, String, i64, i64, i64, i64, Decimal);
    // An order placed is one the read model can know of: all of them now, or those whose placement is readable.
    let placed = match orders {
        Orders::Current => "select placed_at, currency::text as currency, total from customer_order".to_owned(),
        Orders::ReadableUpTo(version) => format!(
            "select (payload->>'placedAt')::timestamptz, payload->>'currency', (payload->>'total')::numeric
             from outbox where event_type = 'OrderPlaced' and schema_version <= {version}"
        ),
    };
    let newest_schema = orders.newest_schema();
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "with placed (placed_at, currency, total) as ({placed}), steps as (
             select to_char(placed_at at time zone 'UTC', 'YYYY-MM-DD') as day, currency, 'placed' as step,
                    total as amount
             from placed
             union all
             select to_char((payload->>'updatedAt')::timestamptz at time zone 'UTC', 'YYYY-MM-DD'),
                    payload->>'currency', lower(substr(event_type, 6)), (payload->>'total')::numeric
             from outbox where event_type <> 'OrderPlaced' and schema_version <= {newest_schema}
         )
         select day, currency,
                count(*) filter (where step = 'placed'), count(*) filter (where step = 'confirmed'),
                count(*) filter (where step = 'shipped'), count(*) filter (where step = 'cancelled'),
                coalesce(sum(amount) filter (where step = 'shipped'), 0)
         from steps where day between $1 and $2 group by day, currency"
    ))
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(day, currency, placed, confirmed, shipped, cancelled, revenue)| {
            let count = i64::unsigned_abs;
            ((day, currency), (count(placed), count(confirmed), count(shipped), count(cancelled), revenue.normalize()))
        })
        .collect())
}

/// The customers of the write model.
pub async fn customers(pool: &PgPool) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("select distinct customer_id from customer_order order by 1").fetch_all(pool).await
}

/// The first and last day (UTC) anything happened in the write model, or `None` before any order.
pub async fn active_days(pool: &PgPool) -> sqlx::Result<Option<(String, String)>> {
    sqlx::query_as(
        "select to_char(min(at) at time zone 'UTC', 'YYYY-MM-DD'), to_char(max(at) at time zone 'UTC', 'YYYY-MM-DD')
         from (select occurred_at as at from outbox
               union all select (payload->>'updatedAt')::timestamptz from outbox
               union all select placed_at from customer_order) times having count(*) > 0",
    )
    .fetch_optional(pool)
    .await
}

/// A customer summary as the query-service answered it (`data` of its JSON).
pub fn summary_of(data: &Value) -> Result<Summary, String> {
    let count = |v: &Value| v.as_u64().ok_or_else(|| format!("not a count: {v}"));
    let time = |v: &Value| match v.as_str() {
        Some(t) => OffsetDateTime::parse(t, &Rfc3339).map(Some).map_err(|e| format!("{t}: {e}")),
        None => Ok(None),
    };
    let object = |field: &str| data[field].as_object().ok_or_else(|| format!("no {field} in {data}"));
    Ok(Summary {
        orders: count(&data["orders"])?,
        by_status: object("byStatus")?
            .iter()
            .map(|(s, n)| Ok((s.clone(), count(n)?)))
            .collect::<Result<_, String>>()?,
        spent: object("spent")?.iter().map(|(c, a)| Ok((c.clone(), decimal(a)?))).collect::<Result<_, String>>()?,
        first_order_at: time(&data["firstOrderAt"])?,
        last_order_at: time(&data["lastOrderAt"])?,
        recent_order_ids: data["recentOrderIds"]
            .as_array()
            .ok_or("no recentOrderIds")?
            .iter()
            .map(|id| id.as_str().map(str::to_owned).ok_or_else(|| format!("not an id: {id}")))
            .collect::<Result<_, String>>()?,
    })
}

/// A dashboard as the query-service answered it (`data` of its JSON).
pub fn dashboard_of(data: &Value) -> Result<Dashboard, String> {
    let rows = data["days"].as_array().ok_or_else(|| format!("no days in {data}"))?;
    rows.iter()
        .map(|row| {
            let text = |f: &str| row[f].as_str().map(str::to_owned).ok_or_else(|| format!("no {f} in {row}"));
            let count = |f: &str| row[f].as_u64().ok_or_else(|| format!("no {f} in {row}"));
            let figures = (
                count("placed")?,
                count("confirmed")?,
                count("shipped")?,
                count("cancelled")?,
                decimal(&row["revenue"])?,
            );
            Ok(((text("day")?, text("currency")?), figures))
        })
        .collect()
}

fn decimal(value: &Value) -> Result<Decimal, String> {
    let text = value.as_str().ok_or_else(|| format!("not a decimal string: {value}"))?;
    text.parse::<Decimal>().map(|d| d.normalize()).map_err(|e| format!("{text}: {e}"))
}

/// The differences between what SQL computed and what the service answered, one line each (empty: equal).
pub fn differences<K: Ord + std::fmt::Debug, V: PartialEq + std::fmt::Debug>(
    expected: &BTreeMap<K, V>,
    answered: &BTreeMap<K, V>,
) -> Vec<String> {
    let keys: std::collections::BTreeSet<&K> = expected.keys().chain(answered.keys()).collect();
    keys.into_iter()
        .filter(|k| expected.get(k) != answered.get(k))
        .map(|k| format!("{k:?}: expected {:?}, answered {:?}", expected.get(k), answered.get(k)))
        .collect()
}
