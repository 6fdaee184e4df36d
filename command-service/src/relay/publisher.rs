//! The AMQP side of the relay: one connection, one channel in confirm mode, publishing envelopes in order.
//!
//! Every message is published `mandatory`: RabbitMQ acks a message that no queue is bound for just as it acks a
//! delivered one, but it first returns a mandatory one, and lapin hands the return over with the confirm. A
//! returned event is not published: its row stays in the outbox and goes out once a queue is bound
//! (decision 0010).

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind};
use shared_events::{Checkpoint, Partition, CHECKPOINT_TYPE, CONTENT_TYPE};

use crate::store::OutboxRow;

/// What the broker did with a batch.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Sequences confirmed and routed to at least one queue.
    pub routed: Vec<i64>,
    /// Sequences the broker confirmed but routed to no queue (returned).
    pub unroutable: Vec<i64>,
    /// Sequences the broker nacked.
    pub nacked: Vec<i64>,
}

/// The delivery options of every publish: persistent properties are set per message; `mandatory` makes the broker
/// return what no queue takes.
const MANDATORY: BasicPublishOptions = BasicPublishOptions { mandatory: true, immediate: false };

/// Longest wait for the confirms of one batch.
pub const CONFIRM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Declares the durable topic exchange every event is published to (idempotent; the query side declares it too).
pub async fn declare_exchange(channel: &Channel, exchange: &str) -> lapin::Result<()> {
    service_runtime::amqp::declare_exchange(channel, exchange, ExchangeKind::Topic).await
}

/// A channel with publisher confirms on, bound to one exchange.
#[derive(Debug)]
pub struct Publisher {
    connection: Connection,
    channel: Channel,
    exchange: ShortString,
    partitions: u16,
}

impl Publisher {
    /// Connects to publish to `exchange`, routing each event to its order's partition of `partitions`.
    pub async fn connect(amqp_url: &str, exchange: &str, partitions: u16) -> lapin::Result<Self> {
        let connection = service_runtime::amqp::connect(
            amqp_url,
            ConnectionProperties::default().with_connection_name("outbox-relay".into()),
        )
        .await?;
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        declare_exchange(&channel, exchange).await?;
        Ok(Self { connection, channel, exchange: exchange.into(), partitions })
    }

    /// Publishes every row (in the given order) and waits for the broker's confirms, for at most
    /// [`CONFIRM_TIMEOUT`]: a connection the broker closed mid-batch must not leave the relay waiting forever.
    /// Says which rows the broker routed; a nacked or returned row stays unpublished and is tried again.
    pub async fn publish(&self, rows: &[OutboxRow]) -> lapin::Result<Outcome> {
        service_runtime::amqp::within(CONFIRM_TIMEOUT, "a batch of publishes", self.publish_unbounded(rows)).await
    }

    async fn publish_unbounded(&self, rows: &[OutboxRow]) -> lapin::Result<Outcome> {
        let mut pending = Vec::with_capacity(rows.len());
        for row in rows {
            let sequence = row.sequence;
            let envelope = row.clone().into_envelope();
            let body = serde_json::to_vec(&envelope).map_err(|e| lapin::Error::from(std::io::Error::other(e)))?;
            let confirm = self
                .channel
                .basic_publish(
                    self.exchange.clone(),
                    Partition::of(envelope.order_id, self.partitions).routing_key(&envelope.event_type).into(),
                    MANDATORY,
                    &body,
                    properties(&envelope),
                )
                .await?;
            pending.push((sequence, envelope, confirm));
        }
        let mut outcome = Outcome { routed: Vec::with_capacity(pending.len()), ..Outcome::default() };
        for (sequence, envelope, confirm) in pending {
            match confirm.await? {
                Confirmation::Ack(None) => {
                    tracing::debug!(sequence, order_id = %envelope.order_id, event_id = %envelope.event_id,
                        trace_id = envelope.trace_id().unwrap_or_default(), "event published");
                    outcome.routed.push(sequence);
                }
                Confirmation::Ack(Some(_)) => outcome.unroutable.push(sequence),
                Confirmation::Nack(_) | Confirmation::NotRequested => {
                    tracing::warn!(sequence, "broker nacked an event; it will be published again");
                    outcome.nacked.push(sequence);
                }
            }
        }
        Ok(outcome)
    }

    /// Publishes a checkpoint marker after everything published so far on this channel, and waits for its confirm.
    /// Every partition's queue binds the marker's routing key, so one publish reaches them all. `false` when no
    /// queue took it (the next round publishes one again).
    pub async fn publish_checkpoint(&self, closed_through: i64) -> lapin::Result<bool> {
        let body = serde_json::to_vec(&Checkpoint { closed_through })
            .map_err(|e| lapin::Error::from(std::io::Error::other(e)))?;
        let properties = BasicProperties::default()
            .with_type(CHECKPOINT_TYPE.into())
            .with_content_type(CONTENT_TYPE.into())
            .with_delivery_mode(2);
        let confirm = service_runtime::amqp::publish_confirmed(
            &self.channel,
            self.exchange.as_str(),
            CHECKPOINT_TYPE,
            MANDATORY,
            &body,
            properties,
            CONFIRM_TIMEOUT,
        )
        .await?;
        match confirm {
            Confirmation::Ack(None) => Ok(true),
            Confirmation::Ack(Some(_)) => Ok(false),
            Confirmation::Nack(_) | Confirmation::NotRequested => Err(service_runtime::amqp::refused("a checkpoint")),
        }
    }

    /// Closes the connection; a broker that went away may never answer the close, so it is bounded too.
    pub async fn close(self) {
        let _ = tokio::time::timeout(CONFIRM_TIMEOUT, self.connection.close(200, "relay stopping".into())).await;
    }
}

fn properties(envelope: &shared_events::Envelope) -> BasicProperties {
    let mut headers = FieldTable::default();
    if let Some(traceparent) = &envelope.traceparent {
        headers.insert("traceparent".into(), AMQPValue::LongString(LongString::from(traceparent.as_str())));
    }
    headers.insert("sequence".into(), AMQPValue::LongLongInt(envelope.sequence));
    BasicProperties::default()
        .with_message_id(envelope.event_id.to_string().into())
        .with_type(envelope.event_type.as_str().into())
        .with_content_type(CONTENT_TYPE.into())
        .with_timestamp(envelope.occurred_at.unix_timestamp().max(0) as u64)
        .with_delivery_mode(2)
        .with_headers(headers)
}
