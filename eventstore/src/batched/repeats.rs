//! Exact repeats of accepted commands (provider retries), recognised before they are
//! decided and answered from the log beside the shard.

use super::*;

impl Shard {
    /// Answers from the log the jobs that may repeat a transaction id it holds, in one
    /// query per kind, and returns the others, in order. A job whose wallet remembers its
    /// id (a provider's retry) leaves the batch: it is looked up beside the shard, which
    /// goes on, and comes back through the queue in the rare case it is new after all. A
    /// job back from a stale round is looked up here, before its wallet is decided.
    pub(super) async fn answer_repeats(
        &mut self,
        jobs: Vec<Job>,
    ) -> Result<Vec<Job>, (Vec<Job>, StoreError)> {
        let remembered = |shard: &Self, job: &Job| {
            !job.checked
                && job.attempts == 0
                && job.command.transaction_id().is_some_and(|id| {
                    shard
                        .cache
                        .get(&job.wallet_id)
                        .is_some_and(|c| c.remembers(id.as_str()))
                })
        };
        let stale = |job: &Job| job.attempts > 0 && job.command.transaction_id().is_some();
        // Per job: 1 a retry the wallet remembers, 2 back from a stale round, 0 neither.
        let kinds: Vec<u8> = jobs
            .iter()
            .map(|j| {
                if remembered(self, j) {
                    1
                } else if stale(j) {
                    2
                } else {
                    0
                }
            })
            .collect();
        if kinds.iter().all(|k| *k == 0) {
            return Ok(jobs);
        }
        let mut retries = Vec::new();
        let mut suspects = Vec::new();
        let mut rest = Vec::with_capacity(jobs.len());
        for (i, (job, kind)) in jobs.into_iter().zip(kinds).enumerate() {
            match kind {
                1 => retries.push(job),
                2 => suspects.push((i, job)),
                _ => rest.push((i, job)),
            }
        }
        if !retries.is_empty() {
            let balances: Vec<Option<domain::Balance>> = retries
                .iter()
                .map(|j| {
                    self.cache
                        .get(&j.wallet_id)
                        .and_then(|c| c.wallet.balance())
                })
                .collect();
            tokio::spawn(answer_retries(
                self.pool.clone(),
                retries,
                balances,
                self.resubmit.clone(),
            ));
        }
        if suspects.is_empty() {
            return Ok(rest.into_iter().map(|(_, j)| j).collect());
        }
        let repeats = match repeats_of_jobs(&self.pool, suspects.iter().map(|(_, j)| j)).await {
            Ok(repeats) => repeats,
            Err(e) => {
                rest.extend(suspects);
                rest.sort_unstable_by_key(|(i, _)| *i);
                return Err((rest.into_iter().map(|(_, j)| j).collect(), e));
            }
        };
        for ((i, job), repeat) in suspects.into_iter().zip(repeats) {
            let current = self
                .cache
                .get(&job.wallet_id)
                .and_then(|c| c.wallet.balance());
            match repeat.answer(current) {
                Some(answer) => {
                    let _ = job.reply.send(answer);
                }
                None => rest.push((i, job)),
            }
        }
        rest.sort_unstable_by_key(|(i, _)| *i);
        Ok(rest.into_iter().map(|(_, j)| j).collect())
    }
}

/// What the log says of each of `jobs` as a possible repeat, in one query.
pub(super) async fn repeats_of_jobs<'a>(
    pool: &PgPool,
    jobs: impl Iterator<Item = &'a Job>,
) -> Result<Vec<Repeat>, StoreError> {
    let jobs: Vec<&Job> = jobs.collect();
    let digests: Vec<String> = jobs
        .iter()
        .map(|j| idempotency::request_digest(&j.command.fingerprint()))
        .collect();
    let requests: Vec<(WalletId, &WalletCommand, &str)> = jobs
        .iter()
        .zip(&digests)
        .map(|(j, d)| (j.wallet_id, &j.command, d.as_str()))
        .collect();
    idempotency::repeats_of(pool, &requests).await
}

/// Answers `retries` (commands whose wallet remembers their transaction id) from the log,
/// in one query; one that is new after all (a digest collision) goes back to its shard's
/// queue, marked so that it is decided this time.
pub(super) async fn answer_retries(
    pool: PgPool,
    retries: Vec<Job>,
    balances: Vec<Option<domain::Balance>>,
    resubmit: mpsc::WeakSender<Job>,
) {
    let repeats = repeats_of_jobs(&pool, retries.iter()).await;
    let repeats = match repeats {
        Ok(repeats) => repeats,
        Err(e) => {
            fail_all(retries, &e.to_string());
            return;
        }
    };
    for ((mut job, repeat), balance) in retries.into_iter().zip(repeats).zip(balances) {
        match repeat.answer(balance) {
            Some(answer) => {
                let _ = job.reply.send(answer);
            }
            None => {
                job.checked = true;
                let job = match resubmit.upgrade() {
                    Some(queue) => match queue.send(job).await {
                        Ok(()) => continue,
                        Err(mpsc::error::SendError(job)) => job,
                    },
                    None => job,
                };
                fail_all([job], "the wallet's owner task stopped");
            }
        }
    }
}
