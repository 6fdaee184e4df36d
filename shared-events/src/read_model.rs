//! The read models every event must reach, and where the relay delivers each one's copy.
//!
//! Each read model has an exchange of its own, `<AMQP_EXCHANGE>.<read model>` (topic, durable): the relay publishes
//! every event (and every checkpoint) once to each, `mandatory`, and the query side binds that read model's queues
//! to it. A copy the broker returns names the read model that has no queue for it, so the relay can keep the event
//! in the outbox until *every* read model has it (decision 0018).

/// Every read model the platform keeps, by the name its projection, queue, metrics and admin paths use. Adding a
/// projection adds its name here (`docs/projections.md`).
pub const READ_MODELS: [&str; 3] = ["orders", "customer-summary", "daily-sales"];

/// The exchange the copies of events for `read_model` are published to, under the events exchange `stem`.
pub fn exchange_of(stem: &str, read_model: &str) -> String {
    format!("{stem}.{read_model}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_read_model_has_an_exchange_of_its_own_under_the_events_exchange() {
        let exchanges: Vec<String> = READ_MODELS.iter().map(|name| exchange_of("orders.events", name)).collect();
        assert_eq!(exchanges, ["orders.events.orders", "orders.events.customer-summary", "orders.events.daily-sales"]);
    }
}
