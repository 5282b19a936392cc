//! The `betledger-projections` binary as an operator runs it (`all`: relay and workers):
//! an event written to the log reaches Redis, a poison message is dead-lettered and
//! counted on `/metrics`, and SIGTERM stops it with exit 0. Needs `DATABASE_URL` and the
//! Redis and RabbitMQ of `scripts/services.sh` (scripts/test.sh sets their URLs).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use amqprs::channel::BasicPublishArguments;
use amqprs::BasicProperties;
use projections::Topology;
use readmodel::{Applier, Keys};

const BIN: &str = env!("CARGO_BIN_EXE_betledger-projections");

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_binary_projects_dead_letters_poison_and_stops_on_sigterm() {
    let server = std::env::var("DATABASE_URL")
        .expect("DATABASE_URL must name the test PostgreSQL; scripts/test.sh sets it");
    let redis_url = env_or("BETLEDGER_REDIS_URL", "redis://127.0.0.1:56379");
    let amqp_url = env_or(
        "BETLEDGER_AMQP_URL",
        "amqp://guest:guest@127.0.0.1:55672/%2f",
    );
    let admin = sqlx::PgPool::connect(&server).await.unwrap();
    let name = format!("projbin_{}", std::process::id());
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&admin)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .unwrap();
    let (base, _) = server.rsplit_once('/').unwrap();
    let db_url = format!("{base}/{name}");
    let port = free_port();
    let mut child = Command::new(BIN)
        .arg("all")
        .env("BETLEDGER_DATABASE_URL", &db_url)
        .env("BETLEDGER_REDIS_URL", &redis_url)
        .env("BETLEDGER_AMQP_URL", &amqp_url)
        .env("BETLEDGER_AMQP_PREFIX", &name)
        .env("BETLEDGER_REDIS_PREFIX", &name)
        .env("BETLEDGER_PARTITIONS", "1")
        .env("BETLEDGER_PROJECTIONS_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("the binary starts");

    let http = reqwest::Client::new();
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    eventually("the binary serves /health", async || {
        http.get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;

    // It migrated: the log exists. An event written to it reaches Redis.
    let pool = sqlx::PgPool::connect(&db_url).await.unwrap();
    let wallet = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version,
                             payload, metadata)
         VALUES ('wallet', $1, 1, 'WalletOpened', '1.0', $2, $3)",
    )
    .bind(&wallet)
    .bind(serde_json::json!({"WalletOpened": {"wallet_id": wallet, "player_id": "bin", "currency": "EUR"}}))
    .bind(serde_json::json!({"command": "open", "request_sha256": "x", "available": "0.00",
                             "reserved": "0.00", "currency": "EUR"}))
    .execute(&pool)
    .await
    .unwrap();
    let redis = readmodel::connect(&redis_url).await.unwrap();
    readmodel::wait_connected(&redis, Duration::from_secs(5))
        .await
        .expect("Redis of scripts/services.sh");
    let applier = Applier::new(redis.clone(), Keys::new(&name));
    eventually("the event reaches Redis", async || {
        applier
            .last_sequence(wallet.parse().unwrap())
            .await
            .unwrap_or(0)
            == 1
    })
    .await;

    // A poison message is dead-lettered and counted.
    let topology = Topology::new(&name, 1);
    let connection = projections::amqp::connect(&amqp_url, "binary-test")
        .await
        .unwrap();
    let channel = connection.open_channel(None).await.unwrap();
    let mut props = BasicProperties::default();
    props.with_persistence(true);
    channel
        .basic_publish(
            props.finish(),
            b"not json".to_vec(),
            BasicPublishArguments::new(&topology.log_exchange(), &Topology::routing_key(0)),
        )
        .await
        .unwrap();
    eventually("/metrics counts the dead letter", async || {
        let text = match http.get(&metrics_url).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => return false,
        };
        text.lines().any(|l| l == "projection_dead_letters_total 1")
    })
    .await;

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit within 15 s of SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status}");

    // Clean up what the run created.
    topology.delete(&channel).await;
    let _ = connection.close().await;
    let _ = readmodel::query::delete_prefix(&redis, &name).await;
    pool.close().await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&admin)
        .await
        .unwrap();
}
