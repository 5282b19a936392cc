//! RabbitMQ: the topology both sides declare, the messages' format, connecting, and
//! publisher confirms.
//!
//! ```text
//! {P}.log (topic, routing key partition.<n>)
//!    ├─ partition.0 ─▶ {P}.projection.0 (quorum, single active consumer) ─┐
//!    ├─ ...                                                               ├─ dead letters ─▶ {P}.dead-letter
//!    └─ partition.N-1 ─▶ {P}.projection.N-1                              ─┘
//! ```
//!
//! A message is a **batch**: the events of one relay page that fall in one partition, in
//! log order ([`encode_batch`]). The relay picks the partition ([`Topology::partition_of`],
//! a function of the wallet id alone), so every event of one wallet goes to the same
//! queue, and a partition has one active consumer at a time: a wallet's events reach
//! their worker in log order even when several workers run side by side. One message per
//! event cost RabbitMQ more than the whole write path (74-78% of a core at 3,000-4,000
//! events/s, `scripts/pipeline-bench.sh`); a batch costs what one message does. Other
//! consumers (an audit trail, a fraud feed) bind `{P}.log` with `partition.*` and read the
//! same batches; binding by event type is no longer possible.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use amqprs::callbacks::ChannelCallback;
use amqprs::channel::{
    Channel, ExchangeDeclareArguments, ExchangeDeleteArguments, ExchangeType, QueueBindArguments,
    QueueDeclareArguments, QueueDeleteArguments,
};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::{Ack, BasicProperties, Cancel, CloseChannel, FieldTable, FieldValue, Nack, Return};
use async_trait::async_trait;
use domain::WalletId;
use eventstore::log::LoggedEvent;
use tokio::sync::Notify;

/// Header with the partition a batch was routed to.
pub const HEADER_PARTITION: &str = "partition";
/// Header with the number of events in a batch.
pub const HEADER_EVENTS: &str = "events";
/// Headers with the log positions of a batch's first and last events.
pub const HEADER_FIRST_GLOBAL_POSITION: &str = "first_global_position";
pub const HEADER_LAST_GLOBAL_POSITION: &str = "last_global_position";

/// A message dead-lettered this many times by RabbitMQ itself (a worker that crashes on it
/// again and again) leaves the queue; the worker's own limit is usually reached first.
pub const DELIVERY_LIMIT: i32 = 50;

/// The names under one prefix, and the number of partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub prefix: String,
    pub partitions: u16,
}

impl Topology {
    pub fn new(prefix: impl Into<String>, partitions: u16) -> Self {
        Topology {
            prefix: prefix.into(),
            partitions: partitions.max(1),
        }
    }

    /// The exchange the relay publishes batches to.
    pub fn log_exchange(&self) -> String {
        format!("{}.log", self.prefix)
    }

    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dead-letter", self.prefix)
    }

    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dead-letter", self.prefix)
    }

    pub fn partition_queue(&self, partition: u16) -> String {
        format!("{}.projection.{partition}", self.prefix)
    }

    /// The partition of a wallet: its id (a UUID, uniformly spread: docs/0004) modulo the
    /// number of partitions. The same on every relay and across releases.
    pub fn partition_of(&self, wallet_id: &WalletId) -> u16 {
        (wallet_id.as_uuid().as_u128() % u128::from(self.partitions)) as u16
    }

    /// The routing key of a partition's batches.
    pub fn routing_key(partition: u16) -> String {
        format!("partition.{partition}")
    }

    /// Declares everything (idempotent; both the relay and the workers call it, so either
    /// may start first and no message is published to an exchange without queues).
    pub async fn declare(&self, channel: &Channel) -> Result<(), amqprs::error::Error> {
        channel
            .exchange_declare(
                ExchangeDeclareArguments::of_type(&self.log_exchange(), ExchangeType::Topic)
                    .durable(true)
                    .finish(),
            )
            .await?;
        channel
            .exchange_declare(
                ExchangeDeclareArguments::of_type(
                    &self.dead_letter_exchange(),
                    ExchangeType::Fanout,
                )
                .durable(true)
                .finish(),
            )
            .await?;
        let mut dlq_args = FieldTable::new();
        dlq_args.insert(name("x-queue-type"), FieldValue::from("quorum"));
        channel
            .queue_declare(
                QueueDeclareArguments::durable_client_named(&self.dead_letter_queue())
                    .arguments(dlq_args)
                    .finish(),
            )
            .await?;
        channel
            .queue_bind(QueueBindArguments::new(
                &self.dead_letter_queue(),
                &self.dead_letter_exchange(),
                "",
            ))
            .await?;
        for partition in 0..self.partitions {
            let queue = self.partition_queue(partition);
            channel
                .queue_declare(
                    QueueDeclareArguments::durable_client_named(&queue)
                        .arguments(self.partition_queue_arguments())
                        .finish(),
                )
                .await?;
            channel
                .queue_bind(QueueBindArguments::new(
                    &queue,
                    &self.log_exchange(),
                    &Self::routing_key(partition),
                ))
                .await?;
        }
        Ok(())
    }

    /// Deletes every queue and exchange of this topology, messages and all: for tests and
    /// benchmarks that made their own. Never run against a deployment's prefix.
    pub async fn delete(&self, channel: &Channel) {
        let mut queues: Vec<String> = (0..self.partitions)
            .map(|p| self.partition_queue(p))
            .collect();
        queues.push(self.dead_letter_queue());
        for queue in queues {
            let _ = channel
                .queue_delete(QueueDeleteArguments::new(&queue))
                .await;
        }
        for exchange in [self.log_exchange(), self.dead_letter_exchange()] {
            let _ = channel
                .exchange_delete(ExchangeDeleteArguments::new(&exchange))
                .await;
        }
    }

    /// Empties the partition queues (the dead letters are kept for the operators), after
    /// checking that nobody consumes them: what a point-in-time restore needs before the
    /// relay and workers start again, since a message of an event the restore undid would
    /// be applied over the rebuilt read models (docs/operate/backup.md). Returns each
    /// queue's name and the messages it dropped.
    pub async fn purge(&self, channel: &Channel) -> Result<Vec<(String, u32)>, PurgeError> {
        let queues: Vec<String> = (0..self.partitions)
            .map(|p| self.partition_queue(p))
            .collect();
        for queue in &queues {
            let args = QueueDeclareArguments::new(queue).passive(true).finish();
            match channel.queue_declare(args).await? {
                Some((_, _, consumers)) if consumers > 0 => {
                    return Err(PurgeError::Consumed(queue.clone(), consumers))
                }
                _ => {}
            }
        }
        let mut purged = Vec::new();
        for queue in queues {
            let dropped = channel
                .queue_purge(amqprs::channel::QueuePurgeArguments::new(&queue))
                .await?
                .unwrap_or(0);
            purged.push((queue, dropped));
        }
        Ok(purged)
    }

    fn partition_queue_arguments(&self) -> FieldTable {
        let mut args = FieldTable::new();
        args.insert(name("x-queue-type"), FieldValue::from("quorum"));
        args.insert(name("x-single-active-consumer"), FieldValue::from(true));
        args.insert(
            name("x-dead-letter-exchange"),
            FieldValue::from(self.dead_letter_exchange()),
        );
        args.insert(name("x-delivery-limit"), FieldValue::I(DELIVERY_LIMIT));
        args
    }
}

/// Why [`Topology::purge`] did not empty the queues.
#[derive(Debug, thiserror::Error)]
pub enum PurgeError {
    #[error("queue {0} has {1} consumer(s): stop every projection worker first")]
    Consumed(String, u32),
    #[error("RabbitMQ: {0}")]
    Amqp(#[from] amqprs::error::Error),
}

fn name(s: &str) -> amqprs::FieldName {
    s.try_into().expect("header names are short literals")
}

/// The body of a batch: a JSON array of log rows (`eventstore::log::LoggedEvent`).
pub fn encode_batch(events: &[&LoggedEvent]) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(events)
}

/// The events of a message's body, in order: a batch, or the single JSON row that the
/// relay published per event before batches (still read, so queues left from before an
/// upgrade drain).
pub fn decode_batch(body: &[u8]) -> Result<Vec<LoggedEvent>, serde_json::Error> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => serde_json::from_slice(body),
        _ => serde_json::from_slice(body).map(|event| vec![event]),
    }
}

/// Opens a connection named `connection_name` (for RabbitMQ's management view) to the
/// broker at `urls`: one `amqp://user:pass@host:port/vhost`, or the nodes of a cluster
/// separated by commas. Each call tries them in turn from the one after the node the last
/// call started at, so a process whose node died reconnects to another at once and
/// reconnecting processes spread over the nodes. amqprs does not reconnect: callers watch
/// `listen_network_io_failure` and call this again.
pub async fn connect(
    urls: &str,
    connection_name: &str,
) -> Result<Connection, amqprs::error::Error> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nodes: Vec<&str> = urls
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect();
    if nodes.is_empty() {
        return Err(amqprs::error::Error::UriError(
            "no AMQP address (BETLEDGER_AMQP_URL is empty)".into(),
        ));
    }
    // One address may take as long as a busy broker needs; a cluster's dead node must not
    // hold up the live ones.
    let within = if nodes.len() == 1 {
        Duration::from_secs(10)
    } else {
        Duration::from_secs(3)
    };
    let first = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut failures = Vec::new();
    for k in 0..nodes.len() {
        let node = nodes[(first + k) % nodes.len()];
        match connect_one(node, connection_name, within).await {
            Ok(connection) => return Ok(connection),
            Err(e @ amqprs::error::Error::UriError(_)) => return Err(e),
            // The address without its credentials.
            Err(e) => failures.push(format!("{}: {e}", node.rsplit('@').next().unwrap_or(""))),
        }
    }
    Err(amqprs::error::Error::NetworkError(format!(
        "no AMQP node answered: {}",
        failures.join("; ")
    )))
}

async fn connect_one(
    url: &str,
    connection_name: &str,
    within: Duration,
) -> Result<Connection, amqprs::error::Error> {
    let mut args = OpenConnectionArguments::try_from(url)?;
    // amqprs keeps the vhost percent-encoded ("%2f" for "/"); the URI spec decodes it.
    let vhost = percent_decode(args.get_virtual_host());
    args.virtual_host(&vhost)
        .connection_name(connection_name)
        .heartbeat(10);
    tokio::time::timeout(within, Connection::open(&args))
        .await
        .map_err(|_| {
            amqprs::error::Error::NetworkError(format!(
                "no AMQP connection to {}:{} within {within:?}",
                args.get_host(),
                args.get_port()
            ))
        })?
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Publisher confirms for one channel: the relay notes each tag it publishes and waits
/// until the broker acked all of them. Any nack, or the channel closing, fails the wait,
/// and the relay starts over from its checkpoint.
#[derive(Clone, Default)]
pub struct Confirms {
    state: Arc<Mutex<ConfirmState>>,
    changed: Arc<Notify>,
}

#[derive(Default)]
struct ConfirmState {
    outstanding: BTreeSet<u64>,
    failed: Option<String>,
}

impl Confirms {
    /// Notes that the message with delivery tag `tag` was published.
    pub fn published(&self, tag: u64) {
        self.state
            .lock()
            .expect("confirm state")
            .outstanding
            .insert(tag);
    }

    /// Waits until every published message is confirmed, at most `within`, and only while
    /// `open()` (looked at every 200 ms) says the connection is up: a connection reset
    /// by a dying node closes no channel, so no callback would say the confirms are gone.
    pub async fn wait_all(&self, within: Duration, open: impl Fn() -> bool) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.changed.notified();
            {
                let state = self.state.lock().expect("confirm state");
                if let Some(reason) = &state.failed {
                    return Err(reason.clone());
                }
                if state.outstanding.is_empty() {
                    return Ok(());
                }
            }
            if !open() {
                return Err("the AMQP connection closed before the publisher confirms".into());
            }
            let look_again =
                (tokio::time::Instant::now() + Duration::from_millis(200)).min(deadline);
            if tokio::time::timeout_at(look_again, notified).await.is_err()
                && tokio::time::Instant::now() >= deadline
            {
                return Err(format!("no publisher confirm within {within:?}"));
            }
        }
    }

    fn settle(&self, tag: u64, multiple: bool, failure: Option<String>) {
        let mut state = self.state.lock().expect("confirm state");
        if multiple {
            state.outstanding = state.outstanding.split_off(&(tag + 1));
        } else {
            state.outstanding.remove(&tag);
        }
        if failure.is_some() {
            state.failed = failure;
        }
        drop(state);
        self.changed.notify_waiters();
    }

    fn fail(&self, reason: String) {
        self.state.lock().expect("confirm state").failed = Some(reason);
        self.changed.notify_waiters();
    }
}

#[async_trait]
impl ChannelCallback for Confirms {
    async fn close(
        &mut self,
        _channel: &Channel,
        close: CloseChannel,
    ) -> Result<(), amqprs::error::Error> {
        self.fail(format!("channel closed by the broker: {close}"));
        Ok(())
    }

    async fn cancel(
        &mut self,
        _channel: &Channel,
        _cancel: Cancel,
    ) -> Result<(), amqprs::error::Error> {
        Ok(())
    }

    async fn flow(
        &mut self,
        _channel: &Channel,
        active: bool,
    ) -> Result<bool, amqprs::error::Error> {
        Ok(active)
    }

    async fn publish_ack(&mut self, _channel: &Channel, ack: Ack) {
        self.settle(ack.delivery_tag(), ack.mutiple(), None);
    }

    async fn publish_nack(&mut self, _channel: &Channel, nack: Nack) {
        self.settle(
            nack.delivery_tag(),
            nack.multiple(),
            Some(format!(
                "broker nacked delivery tag {}",
                nack.delivery_tag()
            )),
        );
    }

    async fn publish_return(
        &mut self,
        _channel: &Channel,
        ret: Return,
        _basic_properties: BasicProperties,
        _content: Vec<u8>,
    ) {
        self.fail(format!("broker returned a message: {ret}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vhosts_are_percent_decoded() {
        assert_eq!(percent_decode("%2f"), "/");
        assert_eq!(percent_decode("%2Fprod"), "/prod");
        assert_eq!(percent_decode("plain"), "plain");
        assert_eq!(percent_decode("bad%zz"), "bad%zz");
    }

    /// The partition is a function of the wallet id and the count alone: fixed values,
    /// so a release that changed it (and reordered in-flight events) fails here.
    #[test]
    fn partitions_are_the_wallet_id_modulo_the_count() {
        let id: WalletId = "0f8fad5b-d9cb-469f-a165-70867728950e".parse().unwrap();
        assert_eq!(Topology::new("p", 4).partition_of(&id), 2);
        assert_eq!(Topology::new("p", 3).partition_of(&id), 2);
        assert_eq!(Topology::new("p", 1).partition_of(&id), 0);
        let spread = (0..4_000u32)
            .map(|i| {
                let player = domain::PlayerId::new(format!("p{i}")).unwrap();
                let id = WalletId::for_player(&player, domain::Currency::Eur);
                Topology::new("p", 4).partition_of(&id)
            })
            .fold([0u32; 4], |mut n, p| {
                n[usize::from(p)] += 1;
                n
            });
        assert!(spread.iter().all(|n| (850..1150).contains(n)), "{spread:?}");
    }

    #[test]
    fn batches_and_single_event_bodies_both_decode() {
        let event: LoggedEvent = serde_json::from_value(serde_json::json!({
            "wallet_id": "0f8fad5b-d9cb-469f-a165-70867728950e", "sequence": 1,
            "event_type": "WalletOpened", "event_version": "1.0", "payload": {},
            "metadata": {}, "global_position": 7, "tx_id": 3,
            "recorded_at": "2026-12-01T00:00:00Z"
        }))
        .unwrap();
        let batch = encode_batch(&[&event, &event]).unwrap();
        assert_eq!(decode_batch(&batch).unwrap().len(), 2);
        let single = serde_json::to_vec(&event).unwrap();
        let decoded = decode_batch(&single).unwrap();
        assert_eq!((decoded.len(), decoded[0].global_position), (1, 7));
        assert!(decode_batch(b"{ not json").is_err());
        assert!(decode_batch(b"").is_err());
    }

    #[tokio::test]
    async fn confirms_settle_single_and_multiple_acks_and_fail_on_nack() {
        let confirms = Confirms::default();
        for tag in 1..=5 {
            confirms.published(tag);
        }
        confirms.settle(3, true, None);
        assert!(confirms
            .wait_all(Duration::from_millis(20), || true)
            .await
            .is_err());
        confirms.settle(5, false, None);
        confirms.settle(4, false, None);
        assert_eq!(
            confirms.wait_all(Duration::from_millis(20), || true).await,
            Ok(())
        );
        confirms.published(6);
        confirms.settle(6, false, Some("nacked".into()));
        assert_eq!(
            confirms.wait_all(Duration::from_millis(20), || true).await,
            Err("nacked".into())
        );
    }

    /// A connection reset closes no channel: the wait ends on the connection's state,
    /// long before its timeout, and says why.
    #[tokio::test]
    async fn confirms_stop_waiting_when_the_connection_closes() {
        let confirms = Confirms::default();
        confirms.published(1);
        let open = std::sync::atomic::AtomicBool::new(true);
        let started = std::time::Instant::now();
        let wait = confirms.wait_all(Duration::from_secs(30), || open.load(Ordering::Relaxed));
        let close = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            open.store(false, Ordering::Relaxed);
        };
        let (result, ()) = tokio::join!(wait, close);
        assert_eq!(
            result,
            Err("the AMQP connection closed before the publisher confirms".into())
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
}
