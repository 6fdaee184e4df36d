//! `GET /queries/dashboard/daily?from=YYYY-MM-DD&to=YYYY-MM-DD&minPosition=&waitMs=`: sales per day (UTC) and
//! currency — orders placed, confirmed, shipped and cancelled that day, and revenue (the totals of the orders
//! shipped that day) — from the daily sales read model, with the range's totals. Both dates are required, `from` ≤
//! `to`, at most 366 days (400 otherwise). `minPosition` waits as list reads do (202 + `processing` while behind).
//! The dashboard covers every customer: staff only (a customer token is 403).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use service_runtime::auth::Caller;
use service_runtime::extract::Params;
use std::collections::BTreeMap;
use time::Date;
use utoipa::IntoParams;

use super::params::{parse_min, parse_wait};
use super::positioned::AtPosition;
use super::responses::{
    BadRequest, Dashboard, DashboardRead, DayRow, Forbidden, TooManyRequests, Unauthenticated, Unavailable,
};
use super::{ApiError, AppState};
use crate::store::daily::{self, day, DayFigures, MAX_DAYS};
use crate::store::models::DAILY_SALES;

pub fn router() -> Router<AppState> {
    Router::new().route("/queries/dashboard/daily", get(daily_dashboard))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(super) struct DashboardParams {
    /// The first day, `YYYY-MM-DD` (UTC).
    #[param(value_type = String, format = Date, required = true)]
    from: Option<String>,
    /// The last day, `YYYY-MM-DD` (UTC), at most 365 days after `from`.
    #[param(value_type = String, format = Date, required = true)]
    to: Option<String>,
    /// Wait until every event up to this position (the `position` a command answered) is applied.
    #[param(value_type = Option<i64>, minimum = 0)]
    min_position: Option<String>,
    /// How long to wait for `minPosition`, in ms (default 2000).
    #[param(value_type = Option<i64>, minimum = 0, maximum = 30000)]
    wait_ms: Option<String>,
}

/// Sales per day and currency; with `minPosition`, waits until the figures include the client's writes.
#[utoipa::path(get, path = "/queries/dashboard/daily", tag = "queries", params(DashboardParams),
    responses(
        (status = 200, description = "The days of the range with any activity, and its totals", body = DashboardRead),
        (status = 202, description = "The read model is not at `minPosition` within `waitMs`: the figures so far",
            body = DashboardRead, headers(("Retry-After" = i64))),
        (status = 400, response = BadRequest), (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden), (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable)),
    security((), ("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub(super) async fn daily_dashboard(
    State(state): State<AppState>,
    caller: Caller,
    Params(params): Params<DashboardParams>,
) -> Result<Response, ApiError> {
    let (from, to) = range(params.from.as_deref(), params.to.as_deref()).map_err(ApiError::BadRequest)?;
    let min_position = parse_min("minPosition", params.min_position.as_deref())?;
    let wait = parse_wait(params.wait_ms.as_deref())?;
    if caller.list_filter(None)?.is_some() {
        return Err(ApiError::Forbidden(
            "the sales dashboard covers every customer: a customer token may not read it".to_owned(),
        ));
    }
    let views = state.read_model(&DAILY_SALES);
    let at = AtPosition::wait(&state, &views, &caller, None, min_position, wait).await?;
    let (from, to) = (day(from), day(to));
    let facts = daily::facts(&views, &from, &to, at.read_from()).await.map_err(ApiError::Unavailable)?;
    let figures = daily::figures(&facts);
    let mut totals: BTreeMap<String, DayFigures> = BTreeMap::new();
    for ((_, currency), day) in &figures {
        let total = totals.entry(currency.clone()).or_default();
        total.placed += day.placed;
        total.confirmed += day.confirmed;
        total.shipped += day.shipped;
        total.cancelled += day.cancelled;
        total.revenue += day.revenue;
    }
    let days = figures.into_iter().map(|((day, currency), figures)| row(Some(day), currency, figures)).collect();
    let totals = totals.into_iter().map(|(currency, figures)| row(None, currency, figures)).collect();
    let behind = at.behind();
    let read = DashboardRead { data: Dashboard { from, to, days, totals }, metadata: at.metadata() };
    Ok(if behind {
        (StatusCode::ACCEPTED, [(header::RETRY_AFTER, "1")], Json(read)).into_response()
    } else {
        Json(read).into_response()
    })
}

fn row(day: Option<String>, currency: String, figures: DayFigures) -> DayRow {
    DayRow {
        day,
        currency,
        placed: figures.placed,
        confirmed: figures.confirmed,
        shipped: figures.shipped,
        cancelled: figures.cancelled,
        revenue: super::responses::money(figures.revenue),
    }
}

/// The range `from`..=`to`: both given, each a date written `YYYY-MM-DD`, `from` not after `to`, at most
/// [`MAX_DAYS`] days; else why not.
fn range(from: Option<&str>, to: Option<&str>) -> Result<(Date, Date), String> {
    let parse = |name: &str, raw: Option<&str>| {
        let raw = raw.ok_or_else(|| format!("{name} is required: a date written YYYY-MM-DD"))?;
        let format = time::macros::format_description!("[year]-[month]-[day]");
        match Date::parse(raw, &format) {
            Ok(date) if raw.len() == 10 => Ok(date),
            _ => Err(format!("{name} {raw:?} is not a date written YYYY-MM-DD")),
        }
    };
    let (from, to) = (parse("from", from)?, parse("to", to)?);
    if from > to {
        return Err(format!("from {} is after to {}", day(from), day(to)));
    }
    let days = (to - from).whole_days() + 1;
    if days > MAX_DAYS {
        return Err(format!("the range covers {days} days; at most {MAX_DAYS} may be asked at once"));
    }
    Ok((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_amount_has_two_decimals_even_a_day_without_revenue() {
        let figures =
            |revenue: &str| DayFigures { revenue: revenue.parse().expect("a decimal"), ..DayFigures::default() };
        let revenue = |amount: &str| row(None, "EUR".to_owned(), figures(amount)).revenue;
        assert_eq!(revenue("0"), "0.00");
        assert_eq!(revenue("19.99"), "19.99");
        assert_eq!(revenue("20.1"), "20.10");
        assert_eq!(revenue("1000000"), "1000000.00");
    }

    #[test]
    fn a_range_is_two_dates_in_order_and_at_most_366_days() {
        let ok = |from, to| range(Some(from), Some(to)).map(|(f, t)| (day(f), day(t)));
        assert_eq!(ok("2026-12-01", "2026-12-01"), Ok(("2026-12-01".to_owned(), "2026-12-01".to_owned())));
        assert!(ok("2024-01-01", "2024-12-31").is_ok(), "366 days of a leap year");
        assert!(ok("2025-01-01", "2026-01-01").is_ok(), "366 days");
        assert!(ok("2024-01-01", "2025-01-01").is_err(), "367 days");
        assert!(ok("2026-12-02", "2026-12-01").is_err(), "reversed");
        for bad in ["2026-13-01", "2026-02-30", "26-12-01", "2026-1-01", "2026-12-01T00:00", "", "today", "+2026-12-01"]
        {
            assert!(ok(bad, "2026-12-31").is_err(), "{bad:?}");
        }
        assert!(range(None, Some("2026-12-01")).is_err());
        assert!(range(Some("2026-12-01"), None).is_err());
    }
}
