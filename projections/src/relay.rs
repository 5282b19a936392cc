//! The relay: tails the event log in commit order and publishes every event to RabbitMQ,
//! advancing its checkpoint only after the broker confirmed the whole page.
//!
//! - **In batches**: a page becomes one message per partition it touches
//!   ([`publish_page`]), so RabbitMQ's cost follows pages, not events.
//! - **Never skips**: it reads with `eventstore::log::read_after`, which returns only
//!   events of finished transactions, in `(tx_id, global_position)` order.
//! - **Never loses**: messages are persistent, the queues durable (quorum), and the
//!   checkpoint moves after the confirms, in Postgres. A crash re-publishes the unconfirmed
//!   tail; workers drop the duplicates by sequence.
//! - **Wakes at once, and rests**: a trigger NOTIFYs on every insert; a wake takes every
//!   notification already queued, so a burst costs one read per page, not one per
//!   INSERT; when events are known to exist but an older transaction elsewhere still
//!   holds them back, it polls every few milliseconds until they are readable; otherwise
//!   it sleeps until the next notification (or a 1 s safety tick, in case one was lost
//!   while reconnecting).
//! - **Lingers under traffic**: after a page that was not full it waits until
//!   [`LINGER_DEFAULT`] after that page's read before the next, so a page carries what
//!   the commits of that time wrote, not the few events of one confirm's wait; a full page
//!   (the relay is behind) reads on at once.
//! - **One at a time**: a session-level advisory lock elects the active relay; others
//!   stand by and take over when its connection goes away.
//! - **Survives restarts** of RabbitMQ and Postgres: any failure ends the session, which
//!   starts again after a backoff from the stored checkpoint.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use amqprs::channel::{BasicPublishArguments, Channel, ConfirmSelectArguments};
use amqprs::connection::Connection;
use amqprs::{BasicProperties, FieldTable, FieldValue};
use eventstore::log::{self, LogCursor, LoggedEvent};
use sqlx::postgres::{PgConnection, PgListener};
use sqlx::{Connection as _, PgPool, Row};
use tracing::info;

use crate::amqp::{self, Confirms, Topology};
use crate::shutdown::{supervise, Shutdown};

/// How long the relay waits for the broker to confirm a page.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);
/// Notifications taken at most per wake (see `drain`).
pub const DRAIN_MAX: u64 = 100_000;
/// The safety tick: the longest the relay sleeps without a notification.
pub const IDLE_TICK: Duration = Duration::from_secs(1);
/// The production linger: under steady traffic a page then carries what 20 ms of commits
/// wrote, not the few events that arrived while the last page was being confirmed. Each
/// page costs a read, one message and one confirm per partition it touches, and a
/// checkpoint write, so fewer, fuller pages cost RabbitMQ, the workers and PostgreSQL less
/// per event; the price is up to that much more projection lag while traffic lasts. The
/// first event after a quiet spell is read at once (a notification wakes the relay).
pub const LINGER_DEFAULT: Duration = Duration::from_millis(20);

/// What a relay needs.
#[derive(Clone)]
pub struct RelayConfig {
    /// The checkpoint's name (one per relay deployment; tests use their own).
    pub name: String,
    pub amqp_url: String,
    pub topology: Topology,
    /// Events read and published per page (at most `eventstore::log::PAGE_SIZE_MAX`).
    pub page_size: u32,
    /// After a page that was not full, the least time from its read to the next one (see
    /// [`LINGER_DEFAULT`]); zero reads again at once.
    pub linger: Duration,
    /// What it did, for tests and benchmarks (the same figures go to `/metrics`).
    pub stats: Arc<RelayStats>,
}

/// Counters of a relay's work.
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Reads of the log (pages, full or empty).
    pub reads: AtomicU64,
}

impl RelayStats {
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }
}

/// Runs the relay until `shutdown`, reconnecting with backoff after any failure.
pub async fn run(pool: PgPool, config: RelayConfig, shutdown: Shutdown) {
    let what = format!("relay {}", config.name);
    supervise(&what, "relay_restarts_total", shutdown, |mut stop| {
        let (pool, config) = (pool.clone(), config.clone());
        async move { session(&pool, &config, &mut stop).await }
    })
    .await
}

/// Where relay `name` stands: its checkpoint, or the start of the log.
pub async fn checkpoint(pool: &PgPool, name: &str) -> Result<LogCursor, sqlx::Error> {
    let row = sqlx::query("SELECT tx_id, global_position FROM relay_checkpoints WHERE relay = $1")
        .bind(name)
        .fetch_optional(pool)
        .await?;
    Ok(row
        .map(|r| LogCursor {
            tx_id: r.get("tx_id"),
            global_position: r.get("global_position"),
        })
        .unwrap_or(LogCursor::START))
}

async fn save_checkpoint(
    conn: &mut PgConnection,
    name: &str,
    at: LogCursor,
    events: usize,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO relay_checkpoints (relay, tx_id, global_position, events_relayed)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (relay) DO UPDATE
           SET tx_id = EXCLUDED.tx_id, global_position = EXCLUDED.global_position,
               events_relayed = relay_checkpoints.events_relayed + EXCLUDED.events_relayed,
               updated_at = now()",
    )
    .bind(name)
    .bind(at.tx_id)
    .bind(at.global_position)
    .bind(events as i64)
    .execute(conn)
    .await?;
    Ok(())
}

/// One connected stretch: leadership, LISTEN, AMQP; then pages until shutdown or failure.
async fn session(
    pool: &PgPool,
    config: &RelayConfig,
    shutdown: &mut Shutdown,
) -> anyhow::Result<()> {
    // Leadership: a dedicated connection holds the lock (and writes the checkpoint, so a
    // relay that lost its connection, and with it the lock, cannot move it any more).
    let mut leader = PgConnection::connect_with(&pool.connect_options()).await?;
    // A checkpoint lost with the last moments before a crash (or a failover) is taken
    // again from an older one: the relay re-publishes, the workers skip the duplicates. So
    // its commit need not wait for the WAL flush (nor a synchronous standby): one fsync
    // less per page.
    sqlx::query("SET synchronous_commit = off")
        .execute(&mut leader)
        .await?;
    let lock_key = format!("betledger-relay:{}", config.name);
    let mut standing_by = false;
    loop {
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
            .bind(&lock_key)
            .fetch_one(&mut leader)
            .await?;
        if got {
            break;
        }
        if !standing_by {
            info!(relay = %config.name, "another relay is active; standing by");
            standing_by = true;
        }
        if !shutdown.sleep(Duration::from_secs(1)).await {
            return Ok(());
        }
    }
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(log::NOTIFY_CHANNEL).await?;

    let connection = amqp::connect(
        &config.amqp_url,
        &format!("betledger-relay-{}", config.name),
    )
    .await?;
    let result = publish_loop(
        pool,
        config,
        shutdown,
        &mut leader,
        &mut listener,
        &connection,
    )
    .await;
    let _ = connection.close().await;
    result
}

async fn publish_loop(
    pool: &PgPool,
    config: &RelayConfig,
    shutdown: &mut Shutdown,
    leader: &mut PgConnection,
    listener: &mut PgListener,
    connection: &Connection,
) -> anyhow::Result<()> {
    let channel = connection.open_channel(None).await?;
    let confirms = Confirms::default();
    channel.register_callback(confirms.clone()).await?;
    channel
        .confirm_select(ConfirmSelectArguments::default())
        .await?;
    config.topology.declare(&channel).await?;
    let mut next_tag: u64 = 1;
    let mut cursor = checkpoint(pool, &config.name).await?;
    info!(relay = %config.name, tx_id = cursor.tx_id, global_position = cursor.global_position, "relay active");
    let mut pending_polls: u32 = 0;
    loop {
        if shutdown.is_set() {
            return Ok(());
        }
        if !connection.is_open() || !channel.is_open() {
            anyhow::bail!("AMQP connection lost");
        }
        let read_at = tokio::time::Instant::now();
        let page = log::read_after(pool, cursor, config.page_size).await?;
        config.stats.reads.fetch_add(1, Ordering::Relaxed);
        if let Some(last) = page.last() {
            pending_polls = 0;
            // Each tag noted before its message goes out: a confirm that arrived before
            // the note would be lost, and the page would wait out CONFIRM_TIMEOUT.
            let messages = publish_page(&channel, &config.topology, &page, || {
                confirms.published(next_tag);
                next_tag += 1;
            })
            .await?;
            confirms
                .wait_all(CONFIRM_TIMEOUT, || {
                    connection.is_open() && channel.is_open()
                })
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            save_checkpoint(leader, &config.name, last.cursor(), page.len()).await?;
            cursor = last.cursor();
            metrics::counter!("relay_events_published_total").increment(page.len() as u64);
            metrics::counter!("relay_messages_published_total").increment(messages as u64);
            metrics::gauge!("relay_checkpoint_global_position").set(last.global_position as f64);
            let lag = (chrono::Utc::now() - last.recorded_at)
                .num_milliseconds()
                .max(0);
            metrics::gauge!("relay_lag_seconds").set(lag as f64 / 1000.0);
            // A page that was not full: the log's head is reached, so let the next one
            // gather (a full page means the relay is behind: read on at once).
            let full = config.page_size.min(log::PAGE_SIZE_MAX) as usize;
            if page.len() < full && !config.linger.is_zero() {
                let wait = (read_at + config.linger)
                    .saturating_duration_since(tokio::time::Instant::now());
                if !wait.is_zero() && !shutdown.sleep(wait).await {
                    return Ok(());
                }
            }
            continue;
        }
        metrics::gauge!("relay_lag_seconds").set(0.0);
        if log::has_pending(pool, cursor).await? {
            // Committed events wait behind an older transaction still running somewhere
            // in the cluster: look again soon, backing off to 50 ms.
            pending_polls += 1;
            let delay = Duration::from_millis(u64::from(pending_polls.min(50)));
            if !shutdown.sleep(delay).await {
                return Ok(());
            }
            continue;
        }
        pending_polls = 0;
        tokio::select! {
            n = listener.recv() => { n?; }
            _ = tokio::time::sleep(IDLE_TICK) => {}
            _ = shutdown.wait() => return Ok(()),
            _ = connection.listen_network_io_failure() => anyhow::bail!("AMQP connection lost"),
        }
        drain(listener).await?;
    }
}

/// Takes every notification that has already arrived: one INSERT statement sends one, so
/// a burst leaves thousands queued, and each would otherwise wake the relay for a read
/// that finds nothing new (the page it read after the first has them all). Each step polls
/// the listener once, without a timer (a zero timeout still waits for the next timer
/// tick, and under steady commits would keep finding one more); at most
/// [`DRAIN_MAX`] at a time, so the relay gets back to reading even under a flood.
async fn drain(listener: &mut PgListener) -> Result<(), sqlx::Error> {
    use futures::FutureExt;
    let mut drained: u64 = 0;
    while drained < DRAIN_MAX {
        match listener.recv().now_or_never() {
            Some(notification) => {
                notification?;
                drained += 1;
            }
            None => break,
        }
    }
    if drained > 0 {
        metrics::counter!("relay_notifications_coalesced_total").increment(drained);
    }
    Ok(())
}

/// A page split as the relay publishes it: per partition that has events in it, in
/// partition order, that partition's events in log order.
pub fn batches<'a>(
    topology: &Topology,
    page: &'a [LoggedEvent],
) -> Vec<(u16, Vec<&'a LoggedEvent>)> {
    let mut by_partition: Vec<Vec<&LoggedEvent>> = vec![Vec::new(); topology.partitions.into()];
    for event in page {
        by_partition[usize::from(topology.partition_of(&event.wallet_id))].push(event);
    }
    by_partition
        .into_iter()
        .enumerate()
        .filter(|(_, events)| !events.is_empty())
        .map(|(partition, events)| (partition as u16, events))
        .collect()
}

/// Publishes a page as the relay does: one persistent message per partition that has
/// events in it ([`batches`], [`amqp::encode_batch`]), calling `before_each` just before
/// each message goes out (the relay notes its confirm tag there). Returns how many
/// messages it published.
pub async fn publish_page(
    channel: &Channel,
    topology: &Topology,
    page: &[LoggedEvent],
    mut before_each: impl FnMut(),
) -> anyhow::Result<usize> {
    let batches = batches(topology, page);
    for (partition, events) in &batches {
        before_each();
        publish_batch(channel, topology, *partition, events).await?;
    }
    Ok(batches.len())
}

/// Publishes `events` (in log order, all of `partition`) as one batch.
pub async fn publish_batch(
    channel: &Channel,
    topology: &Topology,
    partition: u16,
    events: &[&LoggedEvent],
) -> anyhow::Result<()> {
    let (Some(first), Some(last)) = (events.first(), events.last()) else {
        return Ok(());
    };
    let body = amqp::encode_batch(events)?;
    let mut headers = FieldTable::new();
    let mut put = |k: &str, v: FieldValue| {
        headers.insert(k.try_into().expect("short header name"), v);
    };
    put(amqp::HEADER_PARTITION, FieldValue::l(i64::from(partition)));
    put(amqp::HEADER_EVENTS, FieldValue::l(events.len() as i64));
    put(
        amqp::HEADER_FIRST_GLOBAL_POSITION,
        FieldValue::l(first.global_position),
    );
    put(
        amqp::HEADER_LAST_GLOBAL_POSITION,
        FieldValue::l(last.global_position),
    );
    let mut props = BasicProperties::default();
    props
        .with_content_type("application/json")
        .with_persistence(true)
        .with_message_id(&format!(
            "{}:{}-{}",
            partition, first.global_position, last.global_position
        ))
        .with_timestamp(last.recorded_at.timestamp() as u64)
        .with_headers(headers);
    channel
        .basic_publish(
            props.finish(),
            body,
            BasicPublishArguments::new(&topology.log_exchange(), &Topology::routing_key(partition)),
        )
        .await?;
    Ok(())
}
