//! What every RabbitMQ client of the platform does the same way: declare a durable exchange, bound an operation in
//! time (a channel the broker is closing can otherwise leave a publish or an ack waiting forever), and publish one
//! message and wait for its confirm.

use lapin::options::{BasicPublishOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, ExchangeKind};
use std::future::Future;
use std::time::Duration;

/// Declares a durable exchange of `kind` (idempotent: every client that needs it declares it).
pub async fn declare_exchange(channel: &Channel, name: &str, kind: ExchangeKind) -> lapin::Result<()> {
    let durable = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
    channel.exchange_declare(name.into(), kind, durable, FieldTable::default()).await
}

/// `operation`, or an error saying that `what` got no answer within `timeout`.
pub async fn within<T>(
    timeout: Duration,
    what: &str,
    operation: impl Future<Output = lapin::Result<T>>,
) -> lapin::Result<T> {
    tokio::time::timeout(timeout, operation).await.map_err(|_| {
        lapin::Error::from(std::io::Error::other(format!("no answer to {what} within {} s", timeout.as_secs())))
    })?
}

/// Publishes one message on a channel in confirm mode and waits, at most `timeout`, for the broker's confirm.
pub async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    options: BasicPublishOptions,
    body: &[u8],
    properties: BasicProperties,
    timeout: Duration,
) -> lapin::Result<Confirmation> {
    let publish =
        async { channel.basic_publish(exchange.into(), routing_key.into(), options, body, properties).await?.await };
    within(timeout, "a publish", publish).await
}

/// An error for a confirm that is not a plain ack (`what` names the message).
pub fn refused(what: &str) -> lapin::Error {
    lapin::Error::from(std::io::Error::other(format!("the broker refused {what}")))
}
