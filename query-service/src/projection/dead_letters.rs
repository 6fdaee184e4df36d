//! Dead-lettering: a copy of a message the projector cannot handle, with its reason, confirmed in the dead-letter
//! queue before the original is acked.

use lapin::message::Delivery;
use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, LongString};
use lapin::{BasicProperties, Channel};
use service_runtime::amqp;
use std::time::Duration;

/// Longest wait for the broker to confirm a dead letter.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// Copies a message to the dead-letter queue with its reason, and waits for the broker to confirm that the queue has
/// it.
pub async fn dead_letter(channel: &Channel, queue: &str, delivery: &Delivery, reason: &str) -> lapin::Result<()> {
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    headers.insert("x-dead-letter-reason".into(), AMQPValue::LongString(LongString::from(reason)));
    headers.insert(
        "x-original-routing-key".into(),
        AMQPValue::LongString(LongString::from(delivery.routing_key.as_str())),
    );
    let properties: BasicProperties = delivery.properties.clone().with_headers(headers).with_delivery_mode(2);
    // Mandatory: with the dead-letter queue missing the broker returns the copy, and the original stays unacked (the
    // consumer reconnects, declares its topology again and gets it back) instead of being acked after a copy that
    // went nowhere.
    let options = BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() };
    let confirm =
        amqp::publish_confirmed(channel, "", queue, options, &delivery.data, properties, CONFIRM_TIMEOUT).await?;
    match confirm {
        lapin::Confirmation::Ack(None) => Ok(()),
        lapin::Confirmation::Ack(Some(_)) => {
            Err(lapin::Error::from(std::io::Error::other(format!("the dead-letter queue {queue} does not exist"))))
        }
        _ => Err(amqp::refused("a dead letter")),
    }
}
