//! The read models of the query side, as the store knows them: each one's name, the collection of its first
//! generation (later ones add `_v<n>`), where its gaps are kept and which indexes every generation gets. What a
//! read model holds for an event is its projection's business ([`crate::projection`]).

use mongodb::bson::{doc, Document};

/// One read model.
#[derive(Debug)]
pub struct ReadModel {
    /// Its name in URLs (`/admin/read-models/{name}/…`), in the `projection` label of the metrics, in the name of
    /// its queue, and the `_id` of its generation pointer.
    pub name: &'static str,
    /// The collection of its first generation; also the `_id` of its position document.
    pub collection: &'static str,
    /// The collection of its gaps (events of the log it dead-lettered).
    pub gaps: &'static str,
    /// The keys of the indexes every generation gets.
    indexes: fn() -> Vec<Document>,
}

impl PartialEq for ReadModel {
    /// One read model is one name.
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for ReadModel {}

impl ReadModel {
    /// The indexes every generation of this read model gets.
    pub fn indexes(&self) -> Vec<Document> {
        (self.indexes)()
    }

    /// The name of its generation number `created` (0: the first).
    pub fn generation_name(&self, created: i64) -> String {
        match created {
            0 => self.collection.to_owned(),
            n => format!("{}_v{n}", self.collection),
        }
    }

    /// The number of the generation a collection named `name` holds, if it holds one of this read model's.
    pub fn generation_number(&self, name: &str) -> Option<i64> {
        let number = match name.strip_prefix(self.collection)? {
            "" => 0,
            suffix => suffix.strip_prefix("_v")?.parse().ok().filter(|number: &i64| *number > 0)?,
        };
        (self.generation_name(number) == name).then_some(number)
    }
}

/// One view per order, for single reads and lists (newest first, by customer or status).
pub const ORDER_VIEWS: ReadModel = ReadModel {
    name: "orders",
    collection: "order_views",
    gaps: "read_model_gaps",
    indexes: || {
        vec![doc! { "customerId": 1, "listKey": -1 }, doc! { "status": 1, "listKey": -1 }, doc! { "listKey": -1 }]
    },
};

/// Each order's contribution to its customer's summary (`GET /queries/customers/{id}/summary`).
pub const CUSTOMER_SUMMARY: ReadModel = ReadModel {
    name: "customer-summary",
    collection: "customer_orders",
    gaps: "customer_orders_gaps",
    indexes: || vec![doc! { "customerId": 1, "placedAt": -1 }],
};

/// One fact per order and step of its life, by day (`GET /queries/dashboard/daily`).
pub const DAILY_SALES: ReadModel = ReadModel {
    name: "daily-sales",
    collection: "daily_sales",
    gaps: "daily_sales_gaps",
    indexes: || vec![doc! { "day": 1 }],
};

/// Every read model, the order views first.
pub const ALL: [&ReadModel; 3] = [&ORDER_VIEWS, &CUSTOMER_SUMMARY, &DAILY_SALES];

/// The read model called `name`.
pub fn named(name: &str) -> Option<&'static ReadModel> {
    ALL.into_iter().find(|model| model.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_read_model_has_its_own_name_collections_and_gaps() {
        let mut names: Vec<&str> = ALL.iter().flat_map(|m| [m.name, m.collection, m.gaps]).collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count, "shared: {names:?}");
        assert_eq!(named("daily-sales"), Some(&DAILY_SALES));
        assert_eq!(named("nope"), None);
        assert_eq!(ORDER_VIEWS.generation_name(0), "order_views");
        assert_eq!(CUSTOMER_SUMMARY.generation_name(2), "customer_orders_v2");
    }

    #[test]
    fn a_generation_number_is_read_back_only_from_a_name_the_read_model_gives() {
        for number in [0, 1, 12] {
            assert_eq!(ORDER_VIEWS.generation_number(&ORDER_VIEWS.generation_name(number)), Some(number));
        }
        for other in ["order_views_v", "order_views_v01", "order_views_v-1", "order_views_vx", "order_views2", "orders"]
        {
            assert_eq!(ORDER_VIEWS.generation_number(other), None, "{other}");
        }
        assert_eq!(CUSTOMER_SUMMARY.generation_number("order_views_v1"), None);
    }
}
