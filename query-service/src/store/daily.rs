//! The sales dashboard read model: one fact per order and step of its life (`placed`, `confirmed`, `shipped`,
//! `cancelled`) in `daily_sales`, `{_id: "<order id>:<step>", day, currency, step, amount}`, written once by the one
//! event of that step; the dashboard of a range of days is derived from the facts of those days when it is read. A
//! fact is a function of its event alone and each step happens at most once per order, so a duplicated, reordered
//! or redelivered event writes the same fact again, never a second one: the figures are exact.

use mongodb::bson::{doc, Document};
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::str::FromStr as _;

use super::operation::StoreError;
use super::{ReadFrom, ReadModelStore};

/// A day as the facts and the dashboard write it: `YYYY-MM-DD`.
pub fn day(date: time::Date) -> String {
    format!("{:04}-{:02}-{:02}", date.year(), u8::from(date.month()), date.day())
}

/// Most days one dashboard read covers.
pub const MAX_DAYS: i64 = 366;

/// A step of an order's life, as the dashboard counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Placed,
    Confirmed,
    Shipped,
    Cancelled,
}

impl Step {
    pub const ALL: [Self; 4] = [Self::Placed, Self::Confirmed, Self::Shipped, Self::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Placed => "placed",
            Self::Confirmed => "confirmed",
            Self::Shipped => "shipped",
            Self::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|step| step.as_str() == s)
    }
}

/// One day's figures in one currency.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayFigures {
    pub placed: u64,
    pub confirmed: u64,
    pub shipped: u64,
    pub cancelled: u64,
    /// The totals of the orders shipped that day.
    pub revenue: Decimal,
}

impl DayFigures {
    fn count(&mut self, step: Step, amount: Decimal) {
        match step {
            Step::Placed => self.placed += 1,
            Step::Confirmed => self.confirmed += 1,
            Step::Shipped => {
                self.shipped += 1;
                self.revenue += amount;
            }
            Step::Cancelled => self.cancelled += 1,
        }
    }
}

/// A fact as read back: its day (`YYYY-MM-DD`, UTC), currency, step and the order's total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    pub day: String,
    pub currency: String,
    pub step: Step,
    pub amount: Decimal,
}

/// The figures of `facts` by day and currency, in that order.
pub fn figures(facts: &[Fact]) -> BTreeMap<(String, String), DayFigures> {
    let mut days: BTreeMap<(String, String), DayFigures> = BTreeMap::new();
    for fact in facts {
        days.entry((fact.day.clone(), fact.currency.clone())).or_default().count(fact.step, fact.amount);
    }
    days
}

/// The facts of the days `from` to `to` (inclusive, `YYYY-MM-DD`) in the active generation of `views` (the daily
/// sales read model), read from the members `read_from` names.
pub async fn facts(views: &ReadModelStore, from: &str, to: &str, read_from: ReadFrom) -> Result<Vec<Fact>, StoreError> {
    let fields = doc! { "_id": 0, "day": 1, "currency": 1, "step": 1, "amount": 1 };
    let found = views.find_active(doc! { "day": { "$gte": from, "$lte": to } }, fields, read_from).await?;
    found.iter().map(fact).collect()
}

fn fact(document: &Document) -> Result<Fact, StoreError> {
    let unreadable = || StoreError::Refused(format!("an unreadable sales fact: {document}"));
    let text = |field| document.get_str(field).map_err(|_| unreadable());
    Ok(Fact {
        day: text("day")?.to_owned(),
        currency: text("currency")?.to_owned(),
        step: Step::parse(text("step")?).ok_or_else(unreadable)?,
        amount: Decimal::from_str(text("amount")?).map_err(|_| unreadable())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact(day: &str, currency: &str, step: Step, amount: &str) -> Fact {
        let amount = Decimal::from_str(amount).expect("a decimal");
        Fact { day: day.to_owned(), currency: currency.to_owned(), step, amount }
    }

    #[test]
    fn figures_count_each_step_on_its_day_and_currency_and_revenue_is_what_shipped() {
        let days = figures(&[
            fact("2026-12-01", "EUR", Step::Placed, "10.00"),
            fact("2026-12-01", "EUR", Step::Placed, "2.50"),
            fact("2026-12-02", "EUR", Step::Shipped, "10.00"),
            fact("2026-12-02", "EUR", Step::Confirmed, "10.00"),
            fact("2026-12-02", "EUR", Step::Cancelled, "2.50"),
            fact("2026-12-01", "USD", Step::Shipped, "0.10"),
            fact("2026-12-01", "USD", Step::Shipped, "0.20"),
        ]);
        let key = |day: &str, currency: &str| (day.to_owned(), currency.to_owned());
        assert_eq!(
            days.keys().cloned().collect::<Vec<_>>(),
            [key("2026-12-01", "EUR"), key("2026-12-01", "USD"), key("2026-12-02", "EUR")]
        );
        assert_eq!(days[&key("2026-12-01", "EUR")], DayFigures { placed: 2, ..DayFigures::default() });
        let usd = &days[&key("2026-12-01", "USD")];
        assert_eq!((usd.shipped, usd.revenue.to_string()), (2, "0.30".to_owned()), "exact decimals");
        let second = &days[&key("2026-12-02", "EUR")];
        assert_eq!((second.confirmed, second.shipped, second.cancelled), (1, 1, 1));
        assert_eq!(second.revenue.to_string(), "10.00");
    }
}
