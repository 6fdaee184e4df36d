//! The AMQP side of the relay: one connection, one channel in confirm mode, publishing envelopes in order.
//!
//! Every event goes to every read model: one copy to each read model's exchange ([`shared_events::read_model`]),
//! `mandatory`. RabbitMQ acks a message that no queue is bound for just as it acks a delivered one, but it first
//! returns a mandatory one, and lapin hands the return over with a confirm — not necessarily that copy's: the broker
//! acknowledges several publishes in one frame, and the return rides on any one of them. So a return is held against
//! the copy it names itself (its exchange, and the `sequence` header of the event), never the confirm it came with;
//! every confirm of a batch is awaited before the next publish, so every return of a batch comes with one of its
//! confirms. An event counts as published only when no copy came back: otherwise its row stays in the outbox, the
//! outcome names the read model that has no queue for it, and the event goes out again (to every read model: the
//! others apply it once more, idempotently) once that queue is bound (decision 0018).

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind};
use shared_events::{
    read_model, Checkpoint, Partition, CHECKPOINT_TYPE, CONTENT_TYPE, READ_MODELS, SEQUENCE_HEADER, SPLIT_HEADER,
    WHOLE_LOG_HEADER,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, PoisonError};

use crate::store::OutboxRow;

/// What the broker did with a checkpoint.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CheckpointOutcome {
    /// The read models no queue of which took it.
    pub missing: BTreeSet<String>,
    /// The read models it told, for the first time, that their queue holds the whole log.
    pub told_whole_log: Vec<String>,
    /// The read models a queue of which took it: the next marker to each names this one (`previous`).
    pub routed: Vec<String>,
}

/// What the broker did with a batch.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Sequences confirmed and routed to a queue of every read model.
    pub routed: Vec<i64>,
    /// Sequences whose copy for some read model the broker confirmed but routed to no queue (returned).
    pub unroutable: Vec<i64>,
    /// The read models (and partitions) that returned a copy: where a queue is missing.
    pub missing: BTreeSet<String>,
    /// Sequences the broker nacked.
    pub nacked: Vec<i64>,
}

/// The delivery options of every publish: persistent properties are set per message; `mandatory` makes the broker
/// return what no queue takes.
const MANDATORY: BasicPublishOptions = BasicPublishOptions { mandatory: true, immediate: false };

/// Longest wait for the confirms of one batch.
pub const CONFIRM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Declares the durable topic exchange of every read model under `stem` (idempotent; the query side declares them
/// too).
pub async fn declare_exchanges(channel: &Channel, stem: &str) -> lapin::Result<()> {
    for name in READ_MODELS {
        service_runtime::amqp::declare_exchange(channel, &read_model::exchange_of(stem, name), ExchangeKind::Topic)
            .await?;
    }
    Ok(())
}

/// A channel with publisher confirms on, publishing to every read model's exchange.
#[derive(Debug)]
pub struct Publisher {
    connection: Connection,
    channel: Channel,
    /// Each read model's name and exchange.
    exchanges: Vec<(&'static str, ShortString)>,
    partitions: u16,
    /// The read models still to be told, with a checkpoint, that their queue holds the whole log.
    whole_log: Mutex<BTreeSet<String>>,
    /// The `closed_through` of the marker last routed to each read model (decision 0023).
    last_markers: Mutex<BTreeMap<String, i64>>,
}

impl Publisher {
    /// Connects to publish to the read models' exchanges under `stem`, routing each event to its order's partition
    /// of `partitions`.
    pub async fn connect(amqp_url: &str, stem: &str, partitions: u16) -> lapin::Result<Self> {
        let connection = service_runtime::amqp::connect(
            amqp_url,
            ConnectionProperties::default().with_connection_name("outbox-relay".into()),
        )
        .await?;
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        declare_exchanges(&channel, stem).await?;
        let exchanges = READ_MODELS.iter().map(|name| (*name, read_model::exchange_of(stem, name).into())).collect();
        Ok(Self {
            connection,
            channel,
            exchanges,
            partitions,
            whole_log: Mutex::default(),
            last_markers: Mutex::default(),
        })
    }

    /// The read models the next checkpoints tell that their queue holds the whole log, until one reaches them.
    pub fn tell_whole_log(&self, read_models: BTreeSet<String>) {
        *self.whole_log.lock().unwrap_or_else(PoisonError::into_inner) = read_models;
    }

    /// The markers last routed to each read model, as recorded: the next marker to each names its own (decision
    /// 0023).
    pub fn chain_from(&self, last_markers: BTreeMap<String, i64>) {
        *self.last_markers.lock().unwrap_or_else(PoisonError::into_inner) = last_markers;
    }

    /// Publishes every row (in the given order) and waits for the broker's confirms, for at most
    /// [`CONFIRM_TIMEOUT`]: a connection the broker closed mid-batch must not leave the relay waiting forever.
    /// Says which rows the broker routed; a nacked or returned row stays unpublished and is tried again.
    pub async fn publish(&self, rows: &[OutboxRow]) -> lapin::Result<Outcome> {
        service_runtime::amqp::within(CONFIRM_TIMEOUT, "a batch of publishes", self.publish_unbounded(rows)).await
    }

    async fn publish_unbounded(&self, rows: &[OutboxRow]) -> lapin::Result<Outcome> {
        let mut sent = Vec::with_capacity(rows.len());
        let mut envelopes = Vec::with_capacity(rows.len());
        let mut confirms = Vec::with_capacity(rows.len() * self.exchanges.len());
        for row in rows {
            let envelope = row.clone().into_envelope();
            let body = serde_json::to_vec(&envelope).map_err(|e| lapin::Error::from(std::io::Error::other(e)))?;
            let partition = Partition::of(envelope.order_id, self.partitions);
            let key: ShortString = partition.routing_key(&envelope.event_type).into();
            for (_, exchange) in &self.exchanges {
                let confirm = self
                    .channel
                    .basic_publish(exchange.clone(), key.clone(), MANDATORY, &body, properties(&envelope))
                    .await?;
                confirms.push((row.sequence, confirm));
            }
            sent.push(Sent { sequence: row.sequence, partition });
            envelopes.push(envelope);
        }
        let (mut returned, mut nacked) = (Vec::new(), BTreeSet::new());
        for (sequence, confirm) in confirms {
            let (message, refused) = match confirm.await? {
                Confirmation::Ack(message) => (message, false),
                Confirmation::Nack(message) => (message, true),
                Confirmation::NotRequested => (None, true),
            };
            if refused {
                nacked.insert(sequence);
            }
            if let Some(message) = message {
                returned.push(self.returned(&message));
            }
        }
        let outcome = settle(&sent, &returned, &nacked);
        for sequence in &outcome.nacked {
            tracing::warn!(sequence, "broker nacked an event; it will be published again");
        }
        let routed: BTreeSet<i64> = if tracing::enabled!(tracing::Level::DEBUG) {
            outcome.routed.iter().copied().collect()
        } else {
            BTreeSet::new()
        };
        for envelope in envelopes.iter().filter(|envelope| routed.contains(&envelope.sequence)) {
            tracing::debug!(sequence = envelope.sequence, order_id = %envelope.order_id, event_id = %envelope.event_id,
                trace_id = envelope.trace_id().unwrap_or_default(), "event published");
        }
        Ok(outcome)
    }

    /// Which copy a returned message is: the read model whose exchange it went to, and the event's sequence.
    fn returned(&self, message: &lapin::message::BasicReturnMessage) -> Returned {
        let read_model =
            self.exchanges.iter().find(|(_, exchange)| *exchange == message.exchange).map(|(name, _)| *name);
        let sequence = match message.properties.headers().as_ref().and_then(|h| h.inner().get(SEQUENCE_HEADER)) {
            Some(AMQPValue::LongLongInt(sequence)) => Some(*sequence),
            _ => None,
        };
        Returned { read_model, sequence }
    }

    /// Publishes a checkpoint marker to every read model, after everything published so far on this channel, and
    /// waits for the confirms. Every partition's queue binds the marker's routing key, so one publish per read model
    /// reaches them all. A read model still to be told that its queue holds the whole log gets the marker with the
    /// [`WHOLE_LOG_HEADER`] (decision 0019). Each marker names the one last routed to its read model (`previous`,
    /// decision 0023) and the split it closes the log for ([`SPLIT_HEADER`], decision 0028). Says which read models
    /// no queue of which took it (the next round publishes one again), which did, and which were told about the
    /// whole log.
    pub async fn publish_checkpoint(&self, closed_through: i64) -> lapin::Result<CheckpointOutcome> {
        let last_markers = self.last_markers.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let telling = self.whole_log.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let mut told = Vec::with_capacity(self.exchanges.len());
        let mut confirms = Vec::with_capacity(self.exchanges.len());
        for (name, exchange) in &self.exchanges {
            let previous = last_markers.get(*name).copied();
            let body = serde_json::to_vec(&Checkpoint { closed_through, previous })
                .map_err(|e| lapin::Error::from(std::io::Error::other(e)))?;
            let whole_log = telling.contains(*name);
            let properties = checkpoint_properties(self.partitions, whole_log);
            let confirm = self
                .channel
                .basic_publish(exchange.clone(), CHECKPOINT_TYPE.into(), MANDATORY, &body, properties)
                .await?;
            told.push((*name, whole_log));
            confirms.push(confirm);
        }
        let missing = service_runtime::amqp::within(CONFIRM_TIMEOUT, "a checkpoint", self.unrouted(confirms)).await?;
        let mut outcome = CheckpointOutcome::default();
        for (name, whole_log) in told {
            if missing.contains(name) {
                outcome.missing.insert(name.to_owned());
            } else {
                outcome.routed.push(name.to_owned());
                if whole_log {
                    outcome.told_whole_log.push(name.to_owned());
                }
            }
        }
        self.record(&outcome, closed_through);
        Ok(outcome)
    }

    /// The read models no queue of which took their marker, as the `confirms` say. A return names its marker by its
    /// exchange, whichever confirm it came with (see the module's notes).
    async fn unrouted(&self, confirms: Vec<lapin::PublisherConfirm>) -> lapin::Result<BTreeSet<&'static str>> {
        let mut missing = BTreeSet::new();
        for confirm in confirms {
            match confirm.await? {
                Confirmation::Ack(None) => {}
                Confirmation::Ack(Some(message)) => match self.returned(&message).read_model {
                    Some(name) => {
                        missing.insert(name);
                    }
                    None => missing.extend(self.exchanges.iter().map(|(name, _)| *name)),
                },
                Confirmation::Nack(_) | Confirmation::NotRequested => {
                    return Err(service_runtime::amqp::refused("a checkpoint"))
                }
            }
        }
        Ok(missing)
    }

    /// Remembers what a round of markers did: the read models told about the whole log are told no more, and each
    /// routed marker is the one the next names.
    fn record(&self, outcome: &CheckpointOutcome, closed_through: i64) {
        let mut still = self.whole_log.lock().unwrap_or_else(PoisonError::into_inner);
        for told in &outcome.told_whole_log {
            still.remove(told);
        }
        let mut last_markers = self.last_markers.lock().unwrap_or_else(PoisonError::into_inner);
        for routed in &outcome.routed {
            last_markers.insert(routed.clone(), closed_through);
        }
    }

    /// Closes the connection; a broker that went away may never answer the close, so it is bounded too.
    pub async fn close(self) {
        service_runtime::amqp::close(&self.connection, "relay stopping").await;
    }
}

/// An event published in a batch, and the partition its copies went to.
#[derive(Debug, Clone, Copy)]
struct Sent {
    sequence: i64,
    partition: Partition,
}

/// A copy the broker returned, as it names itself: the read model whose exchange it went to (`None`: one this relay
/// does not know) and the sequence of its event (`None`: unreadable). What it does not name, it is held against: an
/// unreadable copy counts against every event of its batch, an unknown exchange against every read model.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Returned {
    read_model: Option<&'static str>,
    sequence: Option<i64>,
}

/// What the broker did with the events `sent` in one batch, given the copies it `returned` and the sequences a copy of
/// which it `nacked`: an event is routed only when no copy of it was either.
fn settle(sent: &[Sent], returned: &[Returned], nacked: &BTreeSet<i64>) -> Outcome {
    // The read models each event's copies came back from; `None`: from every event.
    let mut by_event: BTreeMap<Option<i64>, Vec<Option<&'static str>>> = BTreeMap::new();
    for copy in returned {
        by_event.entry(copy.sequence).or_default().push(copy.read_model);
    }
    let unreadable = by_event.get(&None).map(Vec::as_slice).unwrap_or_default();
    let mut outcome = Outcome { routed: Vec::with_capacity(sent.len()), ..Outcome::default() };
    for event in sent {
        let own = by_event.get(&Some(event.sequence)).map(Vec::as_slice).unwrap_or_default();
        let missing: BTreeSet<&str> = own
            .iter()
            .chain(unreadable)
            .flat_map(|read_model| match read_model {
                Some(name) => std::slice::from_ref(name),
                None => &READ_MODELS[..],
            })
            .copied()
            .collect();
        if nacked.contains(&event.sequence) {
            outcome.nacked.push(event.sequence);
        } else if missing.is_empty() {
            outcome.routed.push(event.sequence);
        } else {
            outcome.unroutable.push(event.sequence);
            outcome.missing.extend(missing.into_iter().map(|name| where_missing(name, event.partition)));
        }
    }
    outcome
}

/// How a returned copy names where its queue is missing: the read model, and the partition when the stream is
/// split.
fn where_missing(read_model: &str, partition: Partition) -> String {
    if partition.is_split() {
        format!("{read_model} (partition {})", partition.index)
    } else {
        read_model.to_owned()
    }
}

fn properties(envelope: &shared_events::Envelope) -> BasicProperties {
    let mut headers = FieldTable::default();
    if let Some(traceparent) = &envelope.traceparent {
        headers.insert("traceparent".into(), AMQPValue::LongString(LongString::from(traceparent.as_str())));
    }
    headers.insert(SEQUENCE_HEADER.into(), AMQPValue::LongLongInt(envelope.sequence));
    BasicProperties::default()
        .with_message_id(envelope.event_id.to_string().into())
        .with_type(envelope.event_type.as_str().into())
        .with_content_type(CONTENT_TYPE.into())
        .with_timestamp(envelope.occurred_at.unix_timestamp().max(0) as u64)
        .with_delivery_mode(2)
        .with_headers(headers)
}

/// A checkpoint marker's properties: persistent, typed, naming the split it closes the log for, with the
/// [`WHOLE_LOG_HEADER`] when it tells its read model that its queue holds the whole log.
fn checkpoint_properties(partitions: u16, whole_log: bool) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(SPLIT_HEADER.into(), AMQPValue::ShortUInt(partitions));
    if whole_log {
        headers.insert(WHOLE_LOG_HEADER.into(), AMQPValue::Boolean(true));
    }
    BasicProperties::default()
        .with_type(CHECKPOINT_TYPE.into())
        .with_content_type(CONTENT_TYPE.into())
        .with_delivery_mode(2)
        .with_headers(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(sequences: &[i64]) -> Vec<Sent> {
        sequences.iter().map(|&sequence| Sent { sequence, partition: Partition { index: 0, count: 1 } }).collect()
    }

    fn copy(read_model: &'static str, sequence: i64) -> Returned {
        Returned { read_model: Some(read_model), sequence: Some(sequence) }
    }

    #[test]
    fn a_return_counts_against_the_event_it_names_not_the_confirm_it_came_with() {
        // The returns of events 2 and 3 came with the confirms of event 1's copies: 2 and 3 stay unpublished.
        let outcome = settle(&sent(&[1, 2, 3, 4]), &[copy("orders", 2), copy("orders", 3)], &BTreeSet::new());
        assert_eq!(outcome.routed, [1, 4]);
        assert_eq!(outcome.unroutable, [2, 3]);
        assert_eq!(outcome.missing, BTreeSet::from(["orders".to_owned()]));
        assert!(outcome.nacked.is_empty());
    }

    #[test]
    fn what_a_return_does_not_name_it_is_held_against() {
        let unreadable = Returned { read_model: Some("daily-sales"), sequence: None };
        let outcome = settle(&sent(&[1, 2]), &[unreadable], &BTreeSet::new());
        assert!(outcome.routed.is_empty(), "a copy without its sequence counts against every event of the batch");
        assert_eq!(outcome.missing, BTreeSet::from(["daily-sales".to_owned()]));

        let unknown = Returned { read_model: None, sequence: Some(2) };
        let outcome = settle(&sent(&[1, 2]), &[unknown], &BTreeSet::new());
        assert_eq!(outcome.routed, [1]);
        assert_eq!(outcome.missing.len(), READ_MODELS.len(), "an unknown exchange counts against every read model");
    }

    #[test]
    fn a_nacked_event_is_neither_routed_nor_unroutable_and_partitions_are_named() {
        let split = |sequence| Sent { sequence, partition: Partition { index: 1, count: 2 } };
        let outcome = settle(&[split(5), split(6)], &[copy("orders", 6)], &BTreeSet::from([5]));
        assert_eq!(outcome.nacked, [5]);
        assert!(outcome.routed.is_empty());
        assert_eq!(outcome.unroutable, [6]);
        assert_eq!(outcome.missing, BTreeSet::from(["orders (partition 1)".to_owned()]));
    }
}
