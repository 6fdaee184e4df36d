//! The AMQP side of the relay: one connection, one channel in confirm mode, publishing envelopes in order.

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use shared_events::{Checkpoint, CHECKPOINT_TYPE, CONTENT_TYPE};

use crate::store::OutboxRow;

/// Longest wait for the confirms of one batch.
pub const CONFIRM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Declares the durable topic exchange every event is published to (idempotent; the query side declares it too).
pub async fn declare_exchange(channel: &Channel, exchange: &str) -> lapin::Result<()> {
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() },
            FieldTable::default(),
        )
        .await
}

/// A channel with publisher confirms on, bound to one exchange.
#[derive(Debug)]
pub struct Publisher {
    connection: Connection,
    channel: Channel,
    exchange: ShortString,
}

impl Publisher {
    pub async fn connect(amqp_url: &str, exchange: &str) -> lapin::Result<Self> {
        let connection =
            Connection::connect(amqp_url, ConnectionProperties::default().with_connection_name("outbox-relay".into()))
                .await?;
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        declare_exchange(&channel, exchange).await?;
        Ok(Self { connection, channel, exchange: exchange.into() })
    }

    /// Publishes every row (in the given order) and waits for the broker's confirms, for at most
    /// [`CONFIRM_TIMEOUT`]: a connection the broker closed mid-batch must not leave the relay waiting forever.
    /// Returns the sequences the broker acknowledged; a nacked row stays unpublished and is tried again.
    pub async fn publish(&self, rows: Vec<OutboxRow>) -> lapin::Result<Vec<i64>> {
        tokio::time::timeout(CONFIRM_TIMEOUT, self.publish_unbounded(rows))
            .await
            .map_err(|_| lapin::Error::from(std::io::Error::other("no publisher confirms within the timeout")))?
    }

    async fn publish_unbounded(&self, rows: Vec<OutboxRow>) -> lapin::Result<Vec<i64>> {
        let mut pending = Vec::with_capacity(rows.len());
        for row in rows {
            let sequence = row.sequence;
            let envelope = row.into_envelope();
            let body = serde_json::to_vec(&envelope).map_err(|e| lapin::Error::from(std::io::Error::other(e)))?;
            let confirm = self
                .channel
                .basic_publish(
                    self.exchange.clone(),
                    envelope.event_type.as_str().into(),
                    BasicPublishOptions::default(),
                    &body,
                    properties(&envelope),
                )
                .await?;
            pending.push((sequence, envelope, confirm));
        }
        let mut acked = Vec::with_capacity(pending.len());
        for (sequence, envelope, confirm) in pending {
            if confirm.await?.is_ack() {
                tracing::debug!(sequence, order_id = %envelope.order_id, event_id = %envelope.event_id,
                    trace_id = envelope.trace_id().unwrap_or_default(), "event published");
                acked.push(sequence);
            } else {
                tracing::warn!(sequence, "broker nacked an event; it will be published again");
            }
        }
        Ok(acked)
    }

    /// Publishes a checkpoint marker after everything published so far on this channel, and waits for its confirm.
    pub async fn publish_checkpoint(&self, closed_through: i64) -> lapin::Result<()> {
        let body = serde_json::to_vec(&Checkpoint { closed_through })
            .map_err(|e| lapin::Error::from(std::io::Error::other(e)))?;
        let properties = BasicProperties::default()
            .with_type(CHECKPOINT_TYPE.into())
            .with_content_type(CONTENT_TYPE.into())
            .with_delivery_mode(2);
        let publish = async {
            self.channel
                .basic_publish(
                    self.exchange.clone(),
                    CHECKPOINT_TYPE.into(),
                    BasicPublishOptions::default(),
                    &body,
                    properties,
                )
                .await?
                .await
        };
        let confirm = tokio::time::timeout(CONFIRM_TIMEOUT, publish).await.map_err(|_| {
            lapin::Error::from(std::io::Error::other("no confirm for a checkpoint within the timeout"))
        })??;
        if confirm.is_ack() {
            Ok(())
        } else {
            Err(lapin::Error::from(std::io::Error::other("the broker refused a checkpoint")))
        }
    }

    pub async fn close(self) {
        let _ = self.connection.close(200, "relay stopping".into()).await;
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
