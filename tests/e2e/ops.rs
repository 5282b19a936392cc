//! What operators watch (issue 18): after a short run through the API with the read side
//! on, `/metrics` exports every metric that the Grafana dashboard and the alert rules name,
//! and the new ones move where they should: a refused signature, an open transaction
//! holding the log back, queue depths, Redis, the last reconcile.

use std::collections::BTreeSet;
use std::time::Duration;

use betledger_tests::readside::ReadSide;
use betledger_tests::{spawn_app_reading, unique_prefix, PROVIDER_A as A};
use serde_json::json;
use sqlx::PgPool;

const MIGRATOR: &sqlx::migrate::Migrator = &eventstore_migrations::MIGRATOR;

/// The metric names an expression selects (`name{...}`: every selector in these files
/// names its job).
fn selected(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    for (i, _) in text.match_indices('{') {
        let start = bytes[..i]
            .iter()
            .rposition(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
            .map_or(0, |p| p + 1);
        let name = &text[start..i];
        if !name.is_empty() && name.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
            names.insert(name.to_string());
        }
    }
    names
}

/// The sample value of `name` with `labels` (a substring of its label set) in `metrics`.
fn value(metrics: &str, name: &str, labels: &str) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            (l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
                && l.contains(labels)
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_dashboard_and_the_alerts_name_only_exported_metrics_and_the_new_ones_move(
    pool: PgPool,
) {
    let mut side = ReadSide::new(pool.clone(), &unique_prefix("ops"), 2).await;
    side.start_relay();
    side.start_worker();
    let app = spawn_app_reading(pool.clone(), &side.prefix).await;
    let wallet = app.open_wallet("watched", "EUR").await;
    app.deposit(&wallet, "fund", "100").await;
    let token = app.session("watched", A, "g1").await;
    let bet = json!({"token": token, "transaction_id": "b1", "round_id": "r1", "game_id": "g1",
                     "amount": "5"});
    assert_eq!(
        app.provider(A, A_SECRET, "bet", bet.clone()).await.status,
        200
    );
    // A refused signature counts.
    let r = app.provider(A, "not-the-secret-0000000", "bet", bet).await;
    assert_eq!(r.status, 401);
    side.wait_projected().await;
    // A reconcile and a verify leave their outcomes for the gauges: a row each in
    // replay_runs, kept.
    let summary = side.reconcile(false).await;
    assert!(summary.ok, "{summary:?}");
    let verified = replay_tool::verify::verify(
        &pool,
        &replay_tool::verify::VerifyConfig {
            page_size: 100,
            listed_max: 10,
            progress: replay_tool::progress::ProgressMode::Quiet,
        },
    )
    .await
    .unwrap();
    assert!(verified.ok);
    let runs: Vec<(String, bool, i64, i64, i64)> = sqlx::query_as(
        "SELECT command, ok, events, wallets_checked, differences FROM replay_runs ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(
        (runs[0].0.as_str(), runs[0].1, runs[0].3, runs[0].4),
        ("reconcile", true, 1, 0)
    );
    assert_eq!(
        (runs[1].0.as_str(), runs[1].1, runs[1].3, runs[1].4),
        ("verify", true, 1, 0)
    );
    assert_eq!(runs[0].2, runs[1].2, "both read the whole log");
    assert_eq!(runs[1].2, 3, "an open, a deposit and a bet");

    // An open transaction (another session's) holds back the events committed after it.
    let mut open = pool.begin().await.unwrap();
    let _: i64 = sqlx::query_scalar("SELECT txid_current()")
        .fetch_one(&mut *open)
        .await
        .unwrap();
    app.deposit(&wallet, "d-held", "1").await;
    let watch = projections::watch::WatchConfig {
        interval: Duration::from_secs(60),
        amqp_url: betledger_tests::amqp_url(),
        topology: side.topology.clone(),
        relay_name: side.prefix.clone(),
        redis: side.redis.clone(),
        keys: side.keys.clone(),
    };
    // A backup as scripts/backup.sh records it (migration 0014).
    sqlx::query(
        "INSERT INTO backups (label, kind, started_at, finished_at, size_bytes,
                              repository_bytes, wal_start, wal_stop)
         VALUES ('20261208-101500F', 'full', now() - interval '90 seconds', now(), 52428800,
                 4194304, '000000010000000000000003', '000000010000000000000004')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let mut amqp = None;
    projections::watch::sample(&pool, &watch, &mut amqp).await;
    let response = reqwest::get(app.url("/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    open.rollback().await.unwrap();

    let alpha = format!("provider=\"{A}\"");
    assert!(
        value(&text, "provider_bad_signatures_total", &alpha) >= Some(1.0),
        "{text}"
    );
    assert!(
        value(&text, "log_held_back_events", "") >= Some(1.0),
        "an open transaction holds the log back"
    );
    assert_eq!(value(&text, "redis_up", ""), Some(1.0));
    assert_eq!(value(&text, "rabbitmq_up", ""), Some(1.0));
    assert_eq!(value(&text, "postgres_up", ""), Some(1.0));
    assert_eq!(value(&text, "reconcile_last_ok", ""), Some(1.0));
    assert_eq!(value(&text, "verify_last_ok", ""), Some(1.0));
    assert_eq!(value(&text, "verify_last_violations", ""), Some(0.0));
    assert!(value(&text, "redis_used_memory_bytes", "") > Some(0.0));
    let full = "kind=\"full\"";
    assert!(value(&text, "backup_last_success_timestamp_seconds", full) > Some(1.7e9));
    assert_eq!(
        value(&text, "backup_last_duration_seconds", full),
        Some(90.0)
    );
    assert_eq!(
        value(&text, "backup_last_size_bytes", full),
        Some(52428800.0)
    );
    // The test cluster does not archive.
    assert_eq!(value(&text, "postgres_wal_archiving", ""), Some(0.0));
    assert_eq!(value(&text, "postgres_wal_archive_failures", ""), Some(0.0));
    let queue = format!("queue=\"{}\"", side.topology.partition_queue(0));
    assert!(
        value(&text, "amqp_queue_messages", &queue).is_some(),
        "{text}"
    );
    assert!(
        value(&text, "write_path_cached_wallets", "").is_some()
            || std::env::var("BETLEDGER_WRITE_PATH").as_deref() == Ok("cqrs")
    );

    // Every metric the dashboard and the rules name is exported (`up` is Prometheus's).
    let exported: BTreeSet<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next().map(str::to_string))
        .collect();
    let dashboard = include_str!("../../ops/grafana/betledger.json");
    let rules = include_str!("../../ops/prometheus/rules.yml");
    let mut named = selected(dashboard);
    named.extend(selected(rules));
    named.remove("up");
    assert!(named.len() > 20, "{named:?}");
    // The write path's own metrics exist only on the batched path.
    let batched_only = [
        "write_path_batch_commands",
        "write_path_commit_duration_seconds_bucket",
        "write_path_cached_wallets",
        "write_path_cache_evictions_total",
    ];
    let missing: Vec<&String> = named
        .iter()
        .filter(|n| !exported.contains(*n))
        .filter(|n| {
            !(batched_only.contains(&n.as_str())
                && std::env::var("BETLEDGER_WRITE_PATH").as_deref() == Ok("cqrs"))
        })
        .collect();
    assert!(missing.is_empty(), "named but not exported: {missing:?}");
    app.stop().await;
    side.teardown().await;
}

const A_SECRET: &str = betledger_tests::PROVIDER_A_SECRET;
