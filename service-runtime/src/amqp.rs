//! What every RabbitMQ client of the platform does the same way: connect to the first node of `AMQP_URL` that
//! answers (it may list a cluster's nodes, comma-separated) with a short heartbeat, declare a durable exchange, bound
//! an operation in time (a channel the broker is closing can otherwise leave a publish or an ack waiting forever),
//! publish one message and wait for its confirm, and close a connection without waiting on a broker that no longer
//! answers.

use lapin::options::{BasicPublishOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, ExchangeKind};
use std::future::Future;
use std::time::Duration;

/// Longest wait for one node to accept a connection before the next is tried.
pub const NODE_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The nodes an `AMQP_URL` names: one URL, or several separated by commas (a cluster's nodes, tried in order).
pub fn nodes(amqp_url: &str) -> impl Iterator<Item = &str> {
    amqp_url.split(',').map(str::trim).filter(|node| !node.is_empty())
}

/// The AMQP heartbeat, in seconds, of a node URL that names none. A connection that stops moving bytes while its TCP
/// connection stays up (a network partition, a peer that froze) is given up by both sides after about two of them:
/// with the broker's default of 60 s a consumer on such a connection stayed its queue's single active consumer for
/// minutes, and the consumer its process opened afresh got nothing meanwhile.
pub const HEARTBEAT_SECS: u16 = 10;

/// `node` with `heartbeat=`[`HEARTBEAT_SECS`] added, unless it names a heartbeat of its own.
pub fn with_heartbeat(node: &str) -> String {
    let query = node.split_once('?').map_or("", |(_, query)| query);
    if query.split('&').any(|pair| pair.starts_with("heartbeat=")) {
        return node.to_owned();
    }
    let separator = if node.contains('?') { '&' } else { '?' };
    format!("{node}{separator}heartbeat={HEARTBEAT_SECS}")
}

/// Connects to the first of `amqp_url`'s [`nodes`] that accepts within [`NODE_CONNECT_TIMEOUT`], with the node's
/// heartbeat or [`HEARTBEAT_SECS`]; the error of the last one when none does. Callers reconnect through here after a
/// loss, so a node that went away is skipped.
pub async fn connect(amqp_url: &str, properties: lapin::ConnectionProperties) -> lapin::Result<lapin::Connection> {
    let mut last = None;
    for node in nodes(amqp_url) {
        let node = with_heartbeat(node);
        match tokio::time::timeout(NODE_CONNECT_TIMEOUT, lapin::Connection::connect(&node, properties.clone())).await {
            Ok(Ok(connection)) => return Ok(connection),
            Ok(Err(err)) => last = Some(err),
            Err(_) => last = Some(lapin::Error::from(std::io::Error::other("the node did not answer in time"))),
        }
        tracing::warn!(error = ?last, "a RabbitMQ node refused the connection; trying the next");
    }
    Err(last.unwrap_or_else(|| lapin::Error::from(std::io::Error::other("AMQP_URL names no node"))))
}

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

/// Longest a connection is given to close: a broker that no longer answers (a silent network) would otherwise hold
/// a stopping process until the heartbeat gives the connection up.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Closes `connection` politely, giving up after [`CLOSE_TIMEOUT`]: whatever it held unacknowledged goes back to its
/// queues once the broker gives the connection up.
pub async fn close(connection: &lapin::Connection, reason: &str) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, connection.close(200, reason.into())).await;
}

/// An error for a confirm that is not a plain ack (`what` names the message).
pub fn refused(what: &str) -> lapin::Error {
    lapin::Error::from(std::io::Error::other(format!("the broker refused {what}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_amqp_url_names_one_node_or_several_separated_by_commas() {
        let one = "amqp://guest:guest@127.0.0.1:5672/%2f?heartbeat=10";
        assert_eq!(nodes(one).collect::<Vec<_>>(), [one]);
        let three = "amqp://a:5672/%2f, amqp://b:5672/%2f,,amqp://c:5672/%2f ";
        assert_eq!(nodes(three).collect::<Vec<_>>(), ["amqp://a:5672/%2f", "amqp://b:5672/%2f", "amqp://c:5672/%2f"]);
        assert_eq!(nodes("").count(), 0);
    }

    #[test]
    fn a_node_without_a_heartbeat_gets_the_short_one_and_one_with_its_own_keeps_it() {
        let short = format!("heartbeat={HEARTBEAT_SECS}");
        assert_eq!(with_heartbeat("amqp://h:5672/%2f"), format!("amqp://h:5672/%2f?{short}"));
        assert_eq!(
            with_heartbeat("amqp://h:5672/%2f?frame_max=8192"),
            format!("amqp://h:5672/%2f?frame_max=8192&{short}")
        );
        assert_eq!(with_heartbeat("amqp://h:5672/%2f?heartbeat=30"), "amqp://h:5672/%2f?heartbeat=30");
        assert_eq!(with_heartbeat("amqp://h/%2f?a=1&heartbeat=0"), "amqp://h/%2f?a=1&heartbeat=0");
    }
}
