//! `query-service dlq redrive`: moves the dead letters back to the projector's queue, once each.
//!
//! Meant for after a fix: a message dead-lettered because this build could not read it (a newer schema, a bug) is
//! applied once the projector can, with the same version guard as any delivery (so a redriven old event changes
//! nothing). One that still cannot be read goes back to the dead-letter queue with its reason and an
//! `x-redrive-count` one higher. Each message is republished, confirmed by the broker, and only then removed from
//! the dead-letter queue: a crash mid-way leaves at most a duplicate, never a loss. It moves at most as many
//! messages as the queue held when it started, so messages that fail again are not redriven in a loop.

use lapin::options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::ConnectionProperties;
use shared_events::Partition;

use super::settings::ConsumerSettings;

/// The header that counts how often a message was redriven.
pub const REDRIVE_COUNT: &str = "x-redrive-count";

/// Redrives the dead-letter queue of `settings.queue`; returns how many messages were moved.
/// Longest wait for the broker to confirm one redriven message.
const REDRIVE_CONFIRM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub async fn redrive(settings: &ConsumerSettings) -> anyhow::Result<u32> {
    let connection = service_runtime::amqp::connect(
        &settings.amqp_url,
        ConnectionProperties::default().with_connection_name("dlq-redrive".into()),
    )
    .await?;
    // The topology is the query-services' to declare (they record a queue found missing before they create it
    // again): a missing queue refuses the redrive, and the messages stay in the dead-letter queue.
    let channel = connection.create_channel().await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    let dead_letters = settings.dead_letter_queue();
    let mut moved = 0u32;
    let mut budget: Option<u32> = None;
    while budget.is_none_or(|left| moved < left) {
        let Some(message) = channel.basic_get(dead_letters.as_str().into(), BasicGetOptions::default()).await? else {
            break;
        };
        // The first get tells how many were waiting: that many, no more.
        budget.get_or_insert(message.message_count + 1);
        let delivery = message.delivery;
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        let count = match headers.inner().get(REDRIVE_COUNT) {
            Some(AMQPValue::LongLongInt(n)) => *n,
            _ => 0,
        };
        headers.insert(REDRIVE_COUNT.into(), AMQPValue::LongLongInt(count + 1));
        // Back to the partition it came from (its routing key names it), or the first one.
        let queue = settings.queue_of(back_to(&headers, settings.partition.count));
        let properties = delivery.properties.clone().with_headers(headers);
        // Mandatory: a partition's queue missing returns the message, which then stays in the dead-letter queue.
        let options = BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() };
        let confirm = service_runtime::amqp::publish_confirmed(
            &channel,
            "",
            &queue,
            options,
            &delivery.data,
            properties,
            REDRIVE_CONFIRM_TIMEOUT,
        )
        .await?;
        match confirm {
            lapin::Confirmation::Ack(None) => {}
            lapin::Confirmation::Ack(Some(_)) => {
                anyhow::bail!("queue {queue} does not exist; the message stays in {dead_letters}")
            }
            _ => anyhow::bail!("the broker refused a redriven message; it stays in {dead_letters}"),
        }
        delivery.acker.ack(BasicAckOptions::default()).await?;
        moved += 1;
    }
    service_runtime::amqp::close(&connection, "redrive done").await;
    Ok(moved)
}

/// The partition a dead letter goes back to: the one its original routing key names, or the first one (a message
/// that was no event of the log has no partition of its own).
fn back_to(headers: &FieldTable, count: u16) -> Partition {
    let original = match headers.inner().get("x-original-routing-key") {
        Some(AMQPValue::LongString(key)) => Partition::from_routing_key(&key.to_string(), count),
        _ => None,
    };
    original.unwrap_or(Partition { index: 0, count })
}
