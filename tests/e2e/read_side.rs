//! The read side end to end: write path -> log -> relay -> RabbitMQ -> workers -> Redis ->
//! read API, on real services, with faults injected on purpose. Every test ends by
//! checking the read models against a fold of the log with the domain's own aggregate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use amqprs::channel::{BasicGetArguments, BasicPublishArguments};
use amqprs::BasicProperties;
use betledger_tests::readside::{logged_events, ReadSide};
use betledger_tests::workload::{open_funded, run_mixed};
use betledger_tests::{spawn_app_reading, unique_prefix};
use eventstore::{CqrsWalletStore, WalletStore};
use serde_json::json;
use sqlx::PgPool;

const MIGRATOR: &sqlx::migrate::Migrator = &eventstore_migrations::MIGRATOR;

fn store(pool: &PgPool) -> Arc<dyn WalletStore> {
    Arc::new(CqrsWalletStore::new(pool.clone()))
}

async fn events_relayed(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT coalesce(sum(events_relayed), 0)::bigint FROM relay_checkpoints")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !done().await {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn thousands_of_mixed_commands_end_in_read_models_equal_to_the_log(pool: PgPool) {
    let mut side = ReadSide::new(pool.clone(), &unique_prefix("mixed"), 4).await;
    side.start_relay();
    side.start_worker();
    side.start_worker(); // a second worker side by side: partitions keep one active consumer
    let store = store(&pool);
    let wallets = open_funded(store.as_ref(), "mixed", 40).await;
    let accepted = run_mixed(store, &wallets, 3_000, 8, 1).await;
    assert!(
        accepted > 2_500,
        "only {accepted} of 3000 commands were accepted"
    );
    side.wait_projected().await;
    side.assert_matches_log().await;
    assert_eq!(side.stats.dead_lettered(), 0);

    // The read API serves the same: one wallet against the write side, and a leaderboard.
    let app = spawn_app_reading(pool.clone(), &side.prefix).await;
    let w = wallets[0].to_string();
    let read = app.get(&format!("/v1/read/wallets/{w}")).await;
    let write = app.get(&format!("/v1/wallets/{w}")).await;
    assert_eq!(read.status, 200, "{:?}", read.body);
    assert_eq!(read.body["balance"], write.body["balance"]);
    assert_eq!(read.body["sequence"], write.body["sequence"]);
    assert_eq!(read.body["player_id"], "mixed-p0");
    let board = app
        .get("/v1/read/leaderboards/g0?period=all&limit=100")
        .await;
    assert_eq!(board.status, 200, "{:?}", board.body);
    let entries = board.body["boards"][0]["entries"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(board.body["boards"][0]["currency"], "EUR");
    assert!(!entries.is_empty());
    let expected = betledger_tests::readside::fold_log(&pool, &side.keys.generation(0)).await;
    let key = side
        .keys
        .generation(0)
        .leaderboard(domain::Currency::Eur, "all", "g0");
    let want = &expected.boards[&key];
    assert_eq!(entries.len(), want.len().min(100));
    let mut last = i64::MAX;
    for entry in &entries {
        let player = entry["player_id"].as_str().unwrap();
        let net: rust_decimal::Decimal = entry["net_win"].as_str().unwrap().parse().unwrap();
        let minor = readmodel::model::to_minor(net, domain::Currency::Eur).unwrap();
        assert_eq!(minor, want[player], "net win of {player}");
        assert!(minor <= last, "ranked by net win, highest first");
        last = minor;
    }
    let day = app
        .get("/v1/read/leaderboards/g0?period=day&currency=EUR")
        .await;
    assert_eq!(day.status, 200);
    assert_eq!(
        day.body["boards"][0]["entries"].as_array().unwrap().len(),
        want.len().min(10)
    );
    app.stop().await;
    side.teardown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn read_api_answers_with_the_contracts_errors(pool: PgPool) {
    let side = ReadSide::new(pool.clone(), &unique_prefix("readapi"), 1).await;
    let app = spawn_app_reading(pool.clone(), &side.prefix).await;
    let unknown = uuid::Uuid::new_v4();
    let r = app.get(&format!("/v1/read/wallets/{unknown}")).await;
    assert_eq!((r.status, r.code()), (404, "WALLET_NOT_FOUND"));
    let r = app.get("/v1/read/wallets/not-a-uuid").await;
    assert_eq!((r.status, r.code()), (400, "INVALID_REQUEST"));
    let r = app
        .send_get_with_token(&format!("/v1/read/wallets/{unknown}"), None)
        .await;
    assert_eq!((r.status, r.code()), (401, "UNAUTHORIZED"));
    let r = app.get("/v1/read/leaderboards/g0?period=month").await;
    assert_eq!((r.status, r.code()), (400, "INVALID_REQUEST"));
    let r = app.get("/v1/read/leaderboards/g0?limit=0").await;
    assert_eq!((r.status, r.code()), (400, "INVALID_REQUEST"));
    let r = app.get("/v1/read/leaderboards/g0?currency=XXX").await;
    assert_eq!((r.status, r.code()), (400, "UNKNOWN_CURRENCY"));
    let r = app.get("/v1/read/leaderboards/g0").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["boards"], json!([]));
    app.stop().await;
    side.teardown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_long_transaction_that_commits_late_is_relayed_too(pool: PgPool) {
    let mut side = ReadSide::new(pool.clone(), &unique_prefix("late"), 2).await;
    side.start();
    let store = store(&pool);
    let wallets = open_funded(store.as_ref(), "late", 2).await;
    side.wait_projected().await;

    // A transaction takes its position in the log early and commits late...
    let mut late = pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version,
                             payload, metadata)
         VALUES ('wallet', $1, 3, 'FundsDeposited', '1.0', $2, $3)",
    )
    .bind(wallets[1].to_string())
    .bind(json!({"FundsDeposited": {"transaction_id": "late-1", "amount": "5.00"}}))
    .bind(
        json!({"command": "deposit", "transaction_id": "late-1", "request_sha256": "x",
                 "available": "1005.00", "reserved": "0.00", "currency": "EUR"}),
    )
    .execute(&mut *late)
    .await
    .unwrap();
    // ...while short ones commit after it started.
    run_mixed(store, &wallets[..1], 50, 1, 7).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    late.commit().await.unwrap();

    side.wait_projected().await;
    side.assert_matches_log().await;
    let w1 = side.applier.last_sequence(wallets[1]).await.unwrap();
    assert_eq!(w1, 3, "the late commit reached the read model");
    side.teardown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_relay_killed_mid_stream_resumes_from_its_checkpoint(pool: PgPool) {
    let mut side = ReadSide::new(pool.clone(), &unique_prefix("relaykill"), 2).await;
    let store = store(&pool);
    let wallets = open_funded(store.as_ref(), "relaykill", 20).await;
    run_mixed(store.clone(), &wallets, 1_500, 4, 2).await;
    side.start_worker();
    side.start_relay();
    wait_for("the relay to publish a first page", async || {
        events_relayed(&pool).await > 0
    })
    .await;
    side.kill_relay().await;
    let at_kill = events_relayed(&pool).await;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        at_kill < total,
        "the relay was killed mid-stream ({at_kill} of {total})"
    );
    run_mixed(store, &wallets, 300, 4, 3).await;
    side.start_relay();
    side.wait_projected().await;
    side.assert_matches_log().await;
    side.teardown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_worker_killed_with_unacked_messages_loses_and_doubles_nothing(pool: PgPool) {
    let mut side = ReadSide::new(pool.clone(), &unique_prefix("workerkill"), 2).await;
    let store = store(&pool);
    let wallets = open_funded(store.as_ref(), "workerkill", 20).await;
    run_mixed(store.clone(), &wallets, 1_500, 4, 4).await;
    side.start_relay();
    side.start_worker();
    let stats = side.stats.clone();
    wait_for("the worker to apply some events", async || {
        stats.applied.load(std::sync::atomic::Ordering::Relaxed) > 100
    })
    .await;
    side.kill_worker().await;
    run_mixed(store, &wallets, 300, 4, 5).await;
    side.start_worker();
    side.wait_projected().await;
    side.assert_matches_log().await;
    side.teardown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn duplicate_and_out_of_order_messages_change_nothing(pool: PgPool) {
    let mut side = ReadSide::new(pool.clone(), &unique_prefix("reorder"), 2).await;
    let store = store(&pool);
    let wallets = open_funded(store.as_ref(), "reorder", 4).await;
    run_mixed(store.clone(), &wallets, 200, 2, 6).await;
    side.start_worker();
    // No relay: the test is the publisher. First every event in reverse log order, each in
    // a batch of its own (each wallet's last event arrives first: a gap, filled from the
    // log)...
    let (connection, channel) = side.amqp().await;
    let topology = side.topology.clone();
    let mut events = logged_events(&pool).await;
    events.reverse();
    for event in &events {
        let partition = topology.partition_of(&event.wallet_id);
        projections::relay::publish_batch(&channel, &topology, partition, &[event])
            .await
            .unwrap();
    }
    side.wait_projected().await;
    side.assert_matches_log().await;
    // ...then the whole log twice more, in order, as the relay's pages (one batch per
    // partition, many wallets in each), and one event in the single-event body relays
    // published before batches.
    events.reverse();
    for _ in 0..2 {
        projections::relay::publish_page(&channel, &topology, &events, || {})
            .await
            .unwrap();
    }
    let legacy = &events[events.len() / 2];
    channel
        .basic_publish(
            BasicProperties::default().with_persistence(true).finish(),
            serde_json::to_vec(legacy).unwrap(),
            BasicPublishArguments::new(
                &topology.log_exchange(),
                &projections::Topology::routing_key(topology.partition_of(&legacy.wallet_id)),
            ),
        )
        .await
        .unwrap();
    let stats = side.stats.clone();
    let expected_duplicates = (events.len() * 3 + 1) as u64
        - stats.applied.load(std::sync::atomic::Ordering::Relaxed)
        - stats.gap_filled.load(std::sync::atomic::Ordering::Relaxed);
    wait_for("every duplicate to be skipped", async || {
        stats.duplicates.load(std::sync::atomic::Ordering::Relaxed) >= expected_duplicates
    })
    .await;
    assert!(stats.gap_filled.load(std::sync::atomic::Ordering::Relaxed) > 0);
    side.assert_matches_log().await;
    let _ = connection.close().await;
    side.teardown().await;
}

/// One batch (one partition: the whole log in one message) with an event of one wallet
/// that this code cannot read: the other wallets' events are all applied, that wallet
/// stops just before it, and the batch goes to the dead letters whole.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_poison_event_in_a_batch_holds_only_its_own_wallet(pool: PgPool) {
    let mut side = ReadSide::new(pool.clone(), &unique_prefix("poisonbatch"), 1).await;
    let store = store(&pool);
    let wallets = open_funded(store.as_ref(), "poisonbatch", 6).await;
    run_mixed(store, &wallets, 120, 2, 9).await;
    side.start_worker();
    let (connection, channel) = side.amqp().await;
    let mut events = logged_events(&pool).await;
    let bad_at = events.len() / 2;
    events[bad_at].event_version = "99.0".into();
    let bad = events[bad_at].clone();
    projections::relay::publish_page(&channel, &side.topology, &events, || {})
        .await
        .unwrap();
    let stats = side.stats.clone();
    wait_for("the batch to be dead-lettered", async || {
        stats.dead_lettered() == 1
    })
    .await;
    let heads: Vec<(String, i64)> =
        sqlx::query_as("SELECT aggregate_id, max(sequence) FROM events GROUP BY aggregate_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(heads.len() >= 6);
    for (wallet, head) in heads {
        let seen = side
            .applier
            .last_sequence(wallet.parse().unwrap())
            .await
            .unwrap();
        if wallet == bad.wallet_id.to_string() {
            assert_eq!(
                seen,
                bad.sequence - 1,
                "the poison event's wallet stops before it"
            );
        } else {
            assert_eq!(
                seen, head as u64,
                "wallet {wallet} is projected to its head"
            );
        }
    }
    // The broker routes a rejected message to the dead letters after the reject returns.
    let started = Instant::now();
    let dead = loop {
        let got = channel
            .basic_get(BasicGetArguments::new(&side.topology.dead_letter_queue()).finish())
            .await
            .unwrap();
        if let Some(dead) = got {
            break dead;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the batch never reached the dead-letter queue"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let dead_events = projections::amqp::decode_batch(&dead.2).unwrap();
    assert_eq!(dead_events.len(), events.len(), "the whole batch");
    assert_eq!(dead_events[bad_at].event_version, "99.0");
    let _ = connection.close().await;
    side.teardown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_poison_message_is_dead_lettered_and_the_worker_goes_on(pool: PgPool) {
    // The process's metrics, as /metrics renders them: the dead letter is counted.
    let metrics = command_api::metrics::handle();
    let dead_letters = |text: String| -> f64 {
        text.lines()
            .find(|l| l.starts_with("projection_dead_letters_total"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let before = dead_letters(metrics.render());
    let mut side = ReadSide::new(pool.clone(), &unique_prefix("poison"), 1).await;
    side.start_worker();
    let (connection, channel) = side.amqp().await;
    let mut props = BasicProperties::default();
    props.with_persistence(true);
    channel
        .basic_publish(
            props.finish(),
            b"{ this is not an event".to_vec(),
            BasicPublishArguments::new(
                &side.topology.log_exchange(),
                &projections::Topology::routing_key(0),
            ),
        )
        .await
        .unwrap();
    side.start_relay();
    let store = store(&pool);
    let wallets = open_funded(store.as_ref(), "poison", 5).await;
    run_mixed(store, &wallets, 200, 2, 8).await;
    side.wait_projected().await;
    side.assert_matches_log().await;
    assert_eq!(side.stats.dead_lettered(), 1);
    assert!(
        dead_letters(metrics.render()) >= before + 1.0,
        "projection_dead_letters_total counts it"
    );
    let dead = channel
        .basic_get(BasicGetArguments::new(&side.topology.dead_letter_queue()).finish())
        .await
        .unwrap()
        .expect("the poison message waits in the dead-letter queue");
    assert_eq!(dead.2, b"{ this is not an event".to_vec());
    let _ = connection.close().await;
    side.teardown().await;
}

/// After a burst, the relay rests (issue 13): each INSERT statement sends a notification,
/// and a burst used to leave thousands queued, each waking the relay for a read of the log
/// that found nothing, for minutes after the traffic stopped. Here 1,500 notifications
/// queue while a long transaction holds the log back; once it ends, the relay catches up
/// in a few pages and then reads no more than its safety tick asks.
#[sqlx::test(migrator = "MIGRATOR")]
async fn after_a_burst_the_relay_reads_a_page_per_wake_not_one_per_notification(pool: PgPool) {
    let mut side = ReadSide::new(pool.clone(), &unique_prefix("rest"), 1).await;
    side.start_relay();
    let store = store(&pool);
    let wallets = open_funded(store.as_ref(), "rest", 20).await;
    // Hold the log back: a transaction with an id, left open.
    let mut hold = pool.begin().await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *hold)
        .await
        .unwrap();
    run_mixed(store, &wallets, 1_500, 4, 11).await;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    let reads_before = side.relay_stats.reads();
    hold.rollback().await.unwrap();
    wait_for("the relay to catch up", async || {
        events_relayed(&pool).await == total
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let reads = side.relay_stats.reads() - reads_before;
    println!("relay: {reads} reads of the log for {total} events after the hold ended");
    // 1,500+ events in pages of 200, an empty read, and a few ticks: a few dozen at most.
    assert!(
        reads < 60,
        "{reads} reads of the log to relay {total} events after the hold ended"
    );
    side.teardown().await;
}

/// `BETLEDGER_AMQP_URL` may list a cluster's nodes: a dead node in the list is skipped
/// (where a connect starts in the list rotates, so the loop starts at the dead one at
/// least once unless other tests connect between), and a list of dead nodes is tried
/// through, each named with what it answered.
#[tokio::test]
async fn a_list_of_amqp_nodes_connects_past_a_dead_one() {
    let live = betledger_tests::amqp_url();
    let dead = "amqp://guest:guest@127.0.0.1:1/%2f";
    let list = format!("{dead},{live}");
    for _ in 0..3 {
        let connection = projections::amqp::connect(&list, "node-list-test")
            .await
            .expect("the live node of the list");
        assert!(connection.is_open());
        let _ = connection.close().await;
    }
    let e = projections::amqp::connect(&format!("{dead},amqp://guest:guest@127.0.0.1:2/%2f"), "t")
        .await
        .err()
        .expect("no node answers");
    let message = e.to_string();
    assert!(
        message.contains("no AMQP node answered")
            && message.contains("127.0.0.1:1/")
            && message.contains("127.0.0.1:2/"),
        "{message}"
    );
}

/// After a restore (docs/operate/backup.md) the partition queues are emptied before the
/// workers start: `purge` refuses while a worker consumes, and drops what waits otherwise.
#[sqlx::test(migrator = "MIGRATOR")]
async fn purge_refuses_while_a_worker_consumes_and_empties_the_queues_otherwise(pool: PgPool) {
    let mut side = ReadSide::new(pool.clone(), &unique_prefix("purge"), 2).await;
    let (connection, channel) = side.amqp().await;
    side.start_worker();
    let mut refused = None;
    wait_for("a worker consuming", async || {
        match side.topology.purge(&channel).await {
            Err(e @ projections::amqp::PurgeError::Consumed(..)) => {
                refused = Some(e.to_string());
                true
            }
            _ => false,
        }
    })
    .await;
    assert!(
        refused
            .unwrap()
            .contains("stop every projection worker first"),
        "the refusal says what to do"
    );
    side.stop_workers().await;
    // Events published while no worker consumes wait in the queues.
    side.start_relay();
    let app = spawn_app_reading(pool.clone(), &side.prefix).await;
    let wallet = app.open_wallet("purged", "EUR").await;
    app.deposit(&wallet, "d1", "10").await;
    let depth = |channel: &amqprs::channel::Channel, queue: String| {
        let channel = channel.clone();
        async move {
            channel
                .queue_declare(
                    amqprs::channel::QueueDeclareArguments::new(&queue)
                        .passive(true)
                        .finish(),
                )
                .await
                .unwrap()
                .map_or(0, |(_, messages, _)| messages)
        }
    };
    let queue = side
        .topology
        .partition_queue(side.topology.partition_of(&wallet.parse().unwrap()));
    wait_for("the events in the queue", async || {
        depth(&channel, queue.clone()).await > 0
    })
    .await;
    let purged = side.topology.purge(&channel).await.unwrap();
    assert!(purged.iter().map(|(_, n)| n).sum::<u32>() > 0, "{purged:?}");
    assert_eq!(depth(&channel, queue).await, 0);
    let _ = connection.close().await;
    app.stop().await;
    side.teardown().await;
}
