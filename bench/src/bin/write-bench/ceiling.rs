//! The PostgreSQL ceiling: the same database with nothing but INSERTs into an
//! events-shaped table, single-row and 100-row transactions, at the run's concurrency.

use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::figures::Figures;
use crate::{Args, Phase};

/// The same PostgreSQL with nothing but INSERTs into an events-shaped table.
pub async fn ceiling(args: &Args, pool: &PgPool) -> anyhow::Result<Phase> {
    sqlx::query(
        "CREATE TABLE ceiling_events (aggregate_type text NOT NULL, aggregate_id text NOT NULL,
           sequence bigint NOT NULL, event_type text NOT NULL, event_version text NOT NULL,
           payload jsonb NOT NULL, metadata jsonb NOT NULL,
           PRIMARY KEY (aggregate_type, aggregate_id, sequence))",
    )
    .execute(pool)
    .await?;
    let mut single = None;
    let mut batched = None;
    for rows in [1i64, 100] {
        let deadline = Instant::now() + Duration::from_secs(args.seconds);
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for task in 0..args.concurrency {
            let pool = pool.clone();
            tasks.spawn(async move {
                let mut figures = Figures::default();
                let mut seq = 0i64;
                while Instant::now() < deadline {
                    let t0 = Instant::now();
                    let done = sqlx::query(
                        "INSERT INTO ceiling_events
                         SELECT 'wallet', $1, s, 'FundsDeposited', '1.0',
                                '{\"FundsDeposited\": {\"transaction_id\": \"t\", \"amount\": \"1.00\"}}',
                                '{\"transaction_id\": \"t\", \"available\": \"1.00\", \"reserved\": \"0.00\", \"currency\": \"EUR\"}'
                           FROM generate_series($2::bigint, $3::bigint) AS s",
                    )
                    .bind(format!("{rows}-{task}"))
                    .bind(seq + 1)
                    .bind(seq + rows)
                    .execute(&pool)
                    .await;
                    seq += rows;
                    figures.latencies_us.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    match done {
                        Ok(_) => figures.ops += 1,
                        Err(_) => figures.failed += 1,
                    }
                }
                figures
            });
        }
        let mut total = Figures::default();
        while let Some(done) = tasks.join_next().await {
            total.merge(done.expect("an insert task"));
        }
        total.seconds = started.elapsed().as_secs_f64();
        if rows == 1 {
            single = Some(total);
        } else {
            batched = Some(total);
        }
    }
    Ok(Phase::Ceiling(
        single.expect("measured"),
        batched.expect("measured"),
    ))
}
