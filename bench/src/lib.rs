//! What the benchmarks share. The binaries: `write-bench` (the write paths against the
//! PostgreSQL ceiling), `read-side-bench` (relay throughput and projection lag),
//! `history-bench` (the replay tool and the round view on one long wallet against many
//! small ones), `backup-bench` (backup and restore time and size, RTO and RPO) and
//! `paced-load` (HTTP commands at a fixed rate, open loop, for `scripts/pipeline-bench.sh`'s
//! `RATE`); the workload they drive is the `betledger-workload` crate's, the same the
//! tests use.
//!
//! # Layout
//! - [`db`]: a fresh database per measured phase, beside the configured one.
//! - [`stats`]: percentiles of sorted samples.
//! - [`tools`]: the binaries beside the bench's own, and the Redis keys they leave.
#![forbid(unsafe_code)]

pub mod db {
    //! A database of a benchmark's own on the configured server, so a run never touches
    //! the deployment's data and leaves nothing behind.

    use sqlx::{Connection, PgConnection};

    /// `url` with its database name replaced by `db` (any query string kept).
    pub fn with_database(url: &str, db: &str) -> String {
        let (base, rest) = match url.find("://") {
            Some(scheme) => match url[scheme + 3..].find('/') {
                Some(slash) => url.split_at(scheme + 3 + slash),
                None => (url, ""),
            },
            None => (url, ""),
        };
        let query = rest.find('?').map(|q| &rest[q..]).unwrap_or("");
        format!("{base}/{db}{query}")
    }

    /// Creates database `name` through `admin`.
    pub async fn create(admin: &mut PgConnection, name: &str) -> Result<(), sqlx::Error> {
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(admin)
            .await
            .map(|_| ())
    }

    /// Drops database `name`, closing its connections.
    pub async fn drop(admin: &mut PgConnection, name: &str) -> Result<(), sqlx::Error> {
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(admin)
            .await
            .map(|_| ())
    }

    /// An administrative connection to `url`, with an error that says how to start the
    /// server.
    pub async fn admin(url: &str) -> anyhow::Result<PgConnection> {
        use anyhow::Context;
        PgConnection::connect(url).await.context(
            "connecting to PostgreSQL (BETLEDGER_DATABASE_URL); `scripts/services.sh up` starts it",
        )
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn the_database_name_is_replaced_and_the_query_kept() {
            use super::with_database;
            assert_eq!(
                with_database("postgres://u@h:5/main", "b1"),
                "postgres://u@h:5/b1"
            );
            assert_eq!(
                with_database("postgres://u@h:5/main?sslmode=disable", "b1"),
                "postgres://u@h:5/b1?sslmode=disable"
            );
            assert_eq!(
                with_database("postgres://u@h:5", "b1"),
                "postgres://u@h:5/b1"
            );
        }
    }
}

pub mod stats {
    //! Percentiles of sorted samples.

    /// The sample at percentile `p` (0 to 1) of `sorted` (ascending); `None` if empty.
    pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
        let last = sorted.len().checked_sub(1)?;
        Some(sorted[((sorted.len() as f64 * p) as usize).min(last)])
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn percentiles_of_a_hundred_samples() {
            let samples: Vec<u32> = (1..=100).collect();
            assert_eq!(super::percentile(&samples, 0.5), Some(51));
            assert_eq!(super::percentile(&samples, 0.99), Some(100));
            assert_eq!(super::percentile(&samples, 1.0), Some(100));
            assert_eq!(super::percentile::<u32>(&[], 0.5), None);
        }
    }
}

pub mod tools {
    //! The project's binaries a benchmark runs as an operator would (built beside it), and
    //! the cleanup of what they write.

    use std::path::PathBuf;
    use std::process::Command;

    use anyhow::{bail, Context};

    /// The binary `name` in the bench's own folder (`cargo build --release` puts them
    /// together), or an error saying how to build it.
    pub fn beside(name: &str, package: &str) -> anyhow::Result<PathBuf> {
        let path = std::env::current_exe()?
            .parent()
            .context("the bench's folder")?
            .join(name);
        if !path.exists() {
            bail!(
                "{} not found: build it beside this bench (cargo build --release -p {package})",
                path.display()
            );
        }
        Ok(path)
    }

    /// Runs the `betledger-replay` at `path` with `command` (progress as lines) over
    /// `database_url`, and Redis `redis_url` under `prefix`: what it printed (JSON) and the
    /// seconds it took, or an error with its stderr.
    pub fn replay(
        path: &std::path::Path,
        command: &[&str],
        database_url: &str,
        redis_url: &str,
        prefix: &str,
    ) -> anyhow::Result<(serde_json::Value, f64)> {
        let started = std::time::Instant::now();
        let output = Command::new(path)
            .args(["--progress", "lines"])
            .args(command)
            .env("BETLEDGER_DATABASE_URL", database_url)
            .env("BETLEDGER_REDIS_URL", redis_url)
            .env("BETLEDGER_REDIS_PREFIX", prefix)
            .output()
            .with_context(|| format!("running betledger-replay {}", command[0]))?;
        if !output.status.success() {
            bail!(
                "betledger-replay {} exited {}: {}",
                command[0],
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok((
            serde_json::from_slice(&output.stdout)?,
            started.elapsed().as_secs_f64(),
        ))
    }

    /// Deletes the Redis keys under `prefix` (what `rebuild` wrote for a benchmark).
    pub fn delete_redis_prefix(url: &str, prefix: &str) {
        let script = format!(
            "redis-cli -u '{url}' --scan --pattern '{prefix}:*' | xargs -r -n 1000 redis-cli -u '{url}' unlink >/dev/null"
        );
        let _ = Command::new("sh").args(["-c", &script]).status();
    }
}
