//! A batch's commit: its rows (and due snapshots) in one statement, or, when a wallet
//! was behind the log, in one transaction without it; then every caller answered.

use super::*;

impl Shard {
    /// After the commit: each caller gets its answer, refusals from the log when their
    /// transaction id was seen before, and the jobs that need the full state run through
    /// the straightforward path, in order. The jobs of wallets found `behind` the log
    /// (nothing of theirs was written) go back to the next batch, or, after
    /// [`ATTEMPTS_MAX`] rounds, through the straightforward path.
    pub(super) async fn answer_committed(
        &mut self,
        decided: Vec<Decided>,
        snapshots: &[(WalletId, i64, serde_json::Value)],
        full: &HashSet<WalletId>,
        behind: &HashSet<WalletId>,
    ) {
        for (id, sequence, _) in snapshots {
            if let Some(cached) = self.cache.get_mut(id) {
                cached.snapshot_at = *sequence as u64;
            }
        }
        for id in behind {
            self.cache.remove(id);
        }
        // A wallet whose job has had its rounds goes the straightforward way, all of it.
        let exhausted: HashSet<WalletId> = decided
            .iter()
            .map(Decided::job)
            .filter(|j| behind.contains(&j.wallet_id) && j.attempts + 1 >= ATTEMPTS_MAX)
            .map(|j| j.wallet_id)
            .collect();
        // Commands to run on the full state beside the shard, per wallet, in order.
        let mut beside: HashMap<WalletId, Vec<Job>> = HashMap::new();
        let mut refusals: Vec<(Job, WalletError, String)> = Vec::new();
        for d in decided {
            let wallet_id = d.job().wallet_id;
            if behind.contains(&wallet_id) {
                let mut job = d.into_job();
                if exhausted.contains(&wallet_id) {
                    beside.entry(wallet_id).or_default().push(job);
                } else {
                    job.attempts += 1;
                    self.again.push_back(job);
                }
                continue;
            }
            match d {
                Decided::Accepted { job, receipt, .. } => {
                    let _ = job.reply.send(Ok(receipt));
                }
                Decided::Refused {
                    job,
                    error,
                    request_sha256,
                    ..
                } => refusals.push((job, error, request_sha256)),
                Decided::Full { job } => beside.entry(job.wallet_id).or_default().push(job),
                Decided::Later { mut job } => {
                    // Looked up in the log first, as a job back from a stale round is.
                    job.attempts = job.attempts.saturating_add(1);
                    self.again.push_back(job);
                }
            }
        }
        self.answer_refusals(refusals).await;
        // The straightforward path writes to these wallets: reload them next time.
        for id in full.iter().chain(&exhausted) {
            self.cache.remove(id);
        }
        for (wallet_id, jobs) in beside {
            self.busy.insert(wallet_id, Vec::new());
            let (fallback, done) = (self.full_state.clone(), self.done.0.clone());
            let pool = self.pool.clone();
            tokio::spawn(async move {
                for job in jobs {
                    // A provider's retry of a win or rollback the cache no longer holds is
                    // answered from the log by one indexed lookup, not by folding the
                    // wallet's history (on a hot wallet, a third of a second).
                    let digest = idempotency::request_digest(&job.command.fingerprint());
                    let repeat =
                        idempotency::repeat_of(&pool, job.wallet_id, &job.command, &digest).await;
                    let answer = match repeat {
                        Ok(Repeat::Same(receipt)) => Ok(receipt),
                        _ => fallback.execute(job.wallet_id, job.command).await,
                    };
                    let _ = job.reply.send(answer);
                }
                let _ = done.send(wallet_id);
            });
        }
        if !behind.is_empty() {
            metrics::counter!("write_path_wallets_behind_log_total").increment(behind.len() as u64);
        }
    }

    /// Unknown whether the commit happened (the connection broke at COMMIT): forget the
    /// cached state; callers retry with the same transaction id.
    pub(super) fn answer_unknown(
        &mut self,
        decided: Vec<Decided>,
        wallets: &HashSet<WalletId>,
        e: &sqlx::Error,
    ) {
        for id in wallets {
            self.cache.remove(id);
        }
        fail_all(decided.into_iter().map(Decided::into_job), &e.to_string());
    }

    /// The snapshots this batch brings due: `(wallet id, sequence, aggregate JSON)`.
    pub(super) fn due_snapshots(
        &self,
        wallets: &HashSet<WalletId>,
    ) -> Vec<(WalletId, i64, serde_json::Value)> {
        if self.snapshot_every == 0 {
            return Vec::new();
        }
        wallets
            .iter()
            .filter_map(|id| {
                let cached = self.cache.get(id)?;
                if cached.sequence < cached.snapshot_at + self.snapshot_every {
                    return None;
                }
                // The batch compacts its wallets once it is decided (before this), so the
                // snapshot is compacted, as `reconcile` expects it.
                debug_assert_eq!(cached.wallet, cached.wallet.compacted());
                let payload = serde_json::to_value(&cached.wallet).ok()?;
                Some((*id, cached.sequence as i64, payload))
            })
            .collect()
    }

    /// Writes `rows`, and the `snapshots` they bring due, atomically (one statement, or
    /// one transaction when there are refusals or a key is taken), but for the wallets it
    /// finds behind the log: a row of theirs met a key already taken (another
    /// writer appended, or the command repeats a transaction id), or a wallet `refused`
    /// does not end at the sequence given (the refusal was decided on an old state).
    /// Their rows and snapshots are left out; returns them. Long because it holds the
    /// two ways of writing (one statement; the transaction that checks) side by side.
    pub(super) async fn commit(
        &self,
        rows: &[&Row],
        refused: &HashMap<WalletId, u64>,
        unheld: &[(WalletId, &RoundId)],
        snapshots: &[(WalletId, i64, serde_json::Value)],
    ) -> Result<HashSet<WalletId>, sqlx::Error> {
        let mut behind: HashSet<WalletId> = HashSet::new();
        if rows.is_empty() && refused.is_empty() {
            return Ok(behind);
        }
        // The usual batch (accepted commands, and the snapshots they bring due): one
        // statement, which commits on its own, all of it or, when a key is taken, none of
        // it. One round trip instead of three or four (BEGIN, INSERT, the snapshots,
        // COMMIT); on a loaded machine each costs a wake of the backend and of this task.
        // A taken key (a repeat the cache did not remember, another instance's append) is
        // rare: the batch then goes the way below, which finds the wallets behind and
        // commits the rest. So does a batch with a refusal, which must be checked against
        // the log in the transaction that commits it.
        if refused.is_empty() && unheld.is_empty() && !rows.is_empty() {
            match insert_rows(&self.pool, rows, Write::Whole { snapshots }).await {
                Ok(_) => {
                    self.one_statement_batches.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("write_path_batches_one_statement_total").increment(1);
                    return Ok(behind);
                }
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    self.taken_key_batches.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("write_path_batches_taken_key_total").increment(1);
                }
                Err(e) => return Err(e),
            }
        }
        let mut tx = self.pool.begin().await?;
        if !rows.is_empty() {
            let inserted = insert_rows(&mut *tx, rows, Write::SkippingTaken).await?;
            if inserted != rows.len() as u64 {
                // Rare: which wallets lost a row? Those with fewer rows written by this
                // transaction than sent.
                let mut sent: HashMap<&str, i64> = HashMap::new();
                for row in rows {
                    *sent.entry(row.wallet_id.as_str()).or_default() += 1;
                }
                let written: HashMap<String, i64> = sqlx::query_as(
                    "SELECT aggregate_id, count(*) FROM events
                      WHERE tx_id = pg_current_xact_id() GROUP BY aggregate_id",
                )
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .collect();
                for (id, count) in sent {
                    if written.get(id) != Some(&count) {
                        behind.insert(id.parse().expect("a wallet id we wrote"));
                    }
                }
            }
        }
        if !refused.is_empty() {
            let ids: Vec<String> = refused.keys().map(|id| id.to_string()).collect();
            let last: Vec<(String, i64)> = sqlx::query_as(
                "SELECT m.id, coalesce(
                        (SELECT max(e.sequence) FROM events e
                          WHERE e.aggregate_type = $1 AND e.aggregate_id = m.id), 0)
                   FROM UNNEST($2::text[]) AS m(id)",
            )
            .bind(WALLET_AGGREGATE_TYPE)
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?;
            for (id, sequence) in last {
                let id: WalletId = id.parse().expect("a wallet id we asked for");
                if refused.get(&id).copied() != Some(sequence as u64) {
                    behind.insert(id);
                }
            }
        }
        if !unheld.is_empty() {
            // Rounds the log opened (through the key of their opening event): a refusal
            // in one of them was decided without knowing it.
            let known: Vec<String> = sqlx::query_scalar(
                "SELECT m.id FROM UNNEST($2::text[], $3::text[]) AS m(id, round)
                  WHERE EXISTS (
                        SELECT 1 FROM events e
                         WHERE e.aggregate_type = $1 AND e.aggregate_id = m.id
                           AND e.metadata ? 'round_opened'
                           AND e.metadata ->> 'round_opened' = m.round)",
            )
            .bind(WALLET_AGGREGATE_TYPE)
            .bind(
                unheld
                    .iter()
                    .map(|(id, _)| id.to_string())
                    .collect::<Vec<_>>(),
            )
            .bind(unheld.iter().map(|(_, r)| r.as_str()).collect::<Vec<_>>())
            .fetch_all(&mut *tx)
            .await?;
            for id in known {
                behind.insert(id.parse().expect("a wallet id we asked for"));
            }
        }
        if !behind.is_empty() {
            // What this transaction wrote for them: take it out again.
            let ids: Vec<String> = behind.iter().map(|id| id.to_string()).collect();
            sqlx::query(
                "DELETE FROM events
                  WHERE tx_id = pg_current_xact_id()
                    AND aggregate_type = $1 AND aggregate_id = ANY($2)",
            )
            .bind(WALLET_AGGREGATE_TYPE)
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        }
        let snapshots: Vec<(WalletId, i64, serde_json::Value)> = snapshots
            .iter()
            .filter(|(id, _, _)| !behind.contains(id))
            .cloned()
            .collect();
        crate::snapshots::save_many(&mut tx, &snapshots).await?;
        tx.commit().await?;
        Ok(behind)
    }

    /// Answers the batch's refusals: from the log when a refused command's transaction id
    /// was seen before (its first answer, or `IDEMPOTENCY_CONFLICT`), else with the
    /// refusal and the current balance. One query for all of them.
    pub(super) async fn answer_refusals(&self, refusals: Vec<(Job, WalletError, String)>) {
        if refusals.is_empty() {
            return;
        }
        let requests: Vec<(WalletId, &WalletCommand, &str)> = refusals
            .iter()
            .map(|(job, _, digest)| (job.wallet_id, &job.command, digest.as_str()))
            .collect();
        let repeats = idempotency::repeats_of(&self.pool, &requests).await;
        let repeats = match repeats {
            Ok(repeats) => repeats,
            Err(e) => {
                fail_all(refusals.into_iter().map(|(job, ..)| job), &e.to_string());
                return;
            }
        };
        for ((job, error, _), repeat) in refusals.into_iter().zip(repeats) {
            let current = self
                .cache
                .get(&job.wallet_id)
                .and_then(|c| c.wallet.balance());
            let answer = repeat.answer(current).unwrap_or(Err(ExecuteError::Refused {
                error,
                balance: current,
            }));
            let _ = job.reply.send(answer);
        }
    }
}

/// How [`insert_rows`] writes a batch's rows.
pub(super) enum Write<'a> {
    /// All of them, and these `snapshots` with them, or, when a key is taken, nothing:
    /// the statement fails with a unique violation.
    Whole {
        snapshots: &'a [(WalletId, i64, serde_json::Value)],
    },
    /// Each row whose key is free; a row whose key is taken is left out (`ON CONFLICT DO
    /// NOTHING`).
    SkippingTaken,
}

/// Inserts `rows` (sorted by key: one order for every writer, so two instances' batches
/// cannot deadlock) in one statement, as `write` says. Returns how many rows were written.
pub(super) async fn insert_rows<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    rows: &[&Row],
    write: Write<'_>,
) -> Result<u64, sqlx::Error> {
    const INSERT: &str = "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type,
                                 event_version, payload, metadata)
             SELECT $1, id, seq, ty, $2, p::jsonb, m::jsonb
               FROM UNNEST($3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[])
                    WITH ORDINALITY AS r(id, seq, ty, p, m, n)
              ORDER BY n";
    static WITH_SNAPSHOTS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static SKIPPING_TAKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql: &str = match &write {
        Write::Whole { snapshots: [] } => INSERT,
        Write::Whole { .. } => {
            // The snapshots' parameters after the INSERT's seven.
            WITH_SNAPSHOTS.get_or_init(|| format!("WITH {} {INSERT}", crate::snapshots::saving(8)))
        }
        Write::SkippingTaken => {
            SKIPPING_TAKEN.get_or_init(|| format!("{INSERT} ON CONFLICT DO NOTHING"))
        }
    };
    let query = sqlx::query(sql)
        .bind(WALLET_AGGREGATE_TYPE)
        .bind(domain::wallet::EVENT_VERSION)
        .bind(
            rows.iter()
                .map(|r| r.wallet_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.sequence).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.event_type.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.payload.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.metadata.as_str()).collect::<Vec<_>>());
    let query = match write {
        Write::Whole { snapshots } if !snapshots.is_empty() => {
            crate::snapshots::bind_saved(query, snapshots)
        }
        _ => query,
    };
    Ok(query.execute(executor).await?.rows_affected())
}
