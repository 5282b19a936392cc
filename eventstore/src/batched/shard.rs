//! A shard's loop: take the commands waiting (a batch), answer exact repeats, put back
//! what compacted states forgot, decide every command on its wallet's cached state,
//! commit, answer. See the module above for the rules.

use super::*;

impl Shard {
    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        loop {
            while let Ok(wallet_id) = self.done.1.try_recv() {
                self.release(wallet_id);
            }
            // Jobs sent back by the last batch go first, in their order.
            let mut jobs: Vec<Job> = self.again.drain(..).collect();
            if jobs.is_empty() {
                tokio::select! {
                    job = rx.recv() => match job {
                        Some(first) => jobs.push(first),
                        None => break,
                    },
                    Some(wallet_id) = self.done.1.recv() => {
                        self.release(wallet_id);
                        continue;
                    }
                }
            }
            let deadline = tokio::time::Instant::now() + self.batch_window;
            while jobs.len() < self.batch_max {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        match tokio::time::timeout_at(deadline, rx.recv()).await {
                            Ok(Some(job)) => jobs.push(job),
                            _ => break,
                        }
                    }
                }
            }
            self.batch(jobs).await;
        }
    }

    /// One batch, in named steps: load what is not cached, answer the repeats the log
    /// already holds, decide every other job, commit the accepted events in one
    /// transaction (leaving out the wallets found behind the log), then answer. Long
    /// because each step's failure is answered where it happens, so no job is dropped.
    pub(super) async fn batch(&mut self, jobs: Vec<Job>) {
        // A busy wallet's commands wait for its full-state run, in order.
        let jobs: Vec<Job> = jobs
            .into_iter()
            .filter_map(|job| match self.busy.get_mut(&job.wallet_id) {
                Some(waiting) => {
                    waiting.push(job);
                    None
                }
                None => Some(job),
            })
            .collect();
        if jobs.is_empty() {
            return;
        }
        let deciding_started = std::time::Instant::now();
        let wallets: HashSet<WalletId> = jobs.iter().map(|j| j.wallet_id).collect();
        let loaded = self.load_missing(&wallets).await;
        let jobs = match loaded {
            Ok(()) => self.answer_repeats(jobs).await,
            Err(e) => Err((jobs, e)),
        };
        let jobs = match jobs {
            Ok(jobs) => jobs,
            Err((jobs, e)) => {
                fail_all(jobs, &e.to_string());
                return;
            }
        };
        let restored = match self.restore(&jobs).await {
            Ok(restored) => restored,
            Err(e) => {
                fail_all(jobs, &e.to_string());
                return;
            }
        };
        let decided = self.decide_all(jobs, &restored.full);
        // What the batch closed, and what was put back for it, leave the cache again.
        for id in &wallets {
            if let Some(cached) = self.cache.get_mut(id) {
                if cached.compact_due || restored.looked_up.contains(id) {
                    cached.compact_due = false;
                    cached.wallet.compact();
                }
            }
        }
        let mut rows: Vec<&Row> = decided
            .iter()
            .filter_map(|d| match d {
                Decided::Accepted { row, .. } => Some(row),
                Decided::Refused { .. } | Decided::Full { .. } | Decided::Later { .. } => None,
            })
            .collect();
        // One order of keys for every writer, so two instances' batches cannot deadlock.
        rows.sort_unstable_by(|a, b| (&a.wallet_id, a.sequence).cmp(&(&b.wallet_id, b.sequence)));
        // A refusal must hold against the log: the wallets refused, at the sequence the
        // cache says is last once this batch is in.
        let refused: HashMap<WalletId, u64> = decided
            .iter()
            .filter_map(|d| match d {
                Decided::Refused { job, .. } => Some(job.wallet_id),
                Decided::Accepted { .. } | Decided::Full { .. } | Decided::Later { .. } => None,
            })
            .map(|id| (id, self.cache.get(&id).map_or(0, |c| c.sequence)))
            .collect();
        // And a refusal in a round the cache does not hold, against the log's rounds.
        let unheld: Vec<(WalletId, &RoundId)> = decided
            .iter()
            .filter_map(|d| match d {
                Decided::Refused {
                    job,
                    unheld_round: Some(round),
                    ..
                } => Some((job.wallet_id, round)),
                _ => None,
            })
            .collect();
        let snapshots = self.due_snapshots(&wallets);
        metrics::histogram!("write_path_batch_commands").record(decided.len() as f64);
        let commit_started = std::time::Instant::now();
        metrics::histogram!("write_path_decide_duration_seconds")
            .record((commit_started - deciding_started).as_secs_f64());
        let committed = self.commit(&rows, &refused, &unheld, &snapshots).await;
        let answer_started = std::time::Instant::now();
        metrics::histogram!("write_path_commit_duration_seconds")
            .record((answer_started - commit_started).as_secs_f64());
        match committed {
            Ok(behind) => {
                self.answer_committed(decided, &snapshots, &restored.full, &behind)
                    .await
            }
            Err(e) => self.answer_unknown(decided, &wallets, &e),
        }
        metrics::histogram!("write_path_answer_duration_seconds")
            .record(answer_started.elapsed().as_secs_f64());
        // A wallet no command opened is not kept: it may be opened elsewhere. (Only this
        // batch's wallets can be such: a pass over the whole cache per batch would cost
        // what the cache holds, up to `cache_max` wallets.)
        for id in &wallets {
            if self.cache.get(id).is_some_and(|c| c.sequence == 0) {
                self.cache.remove(id);
            }
        }
        self.trim_cache();
    }

    /// Decides every job against the cached state itself, in arrival order: if the batch
    /// does not commit, every wallet it touched leaves the cache and is reloaded from the
    /// log. The jobs of the `full` wallets (see [`Shard::restore`]) go to the full state.
    /// Returns what each job led to.
    pub(super) fn decide_all(&mut self, jobs: Vec<Job>, full: &HashSet<WalletId>) -> Vec<Decided> {
        let mut seen: HashSet<(WalletId, String)> = HashSet::new();
        let mut later: HashSet<WalletId> = HashSet::new();
        let mut decided = Vec::with_capacity(jobs.len());
        for job in jobs {
            self.tick += 1;
            let state = self.cache.entry(job.wallet_id).or_default();
            state.used = self.tick;
            if later.contains(&job.wallet_id) {
                decided.push(Decided::Later { job });
                continue;
            }
            // No `Wallet::holds` here: `restore` put back what the batch's commands name,
            // and nothing is compacted before the batch is decided.
            if full.contains(&job.wallet_id) {
                decided.push(Decided::Full { job });
                continue;
            }
            let request_sha256 = idempotency::request_digest(&job.command.fingerprint());
            // A second command under one transaction id in one batch is a repeat: it, and
            // the wallet's later commands, wait for the next batch, where it is answered
            // from the log once the first has committed.
            if let Some(tx) = job.command.transaction_id() {
                if !seen.insert((job.wallet_id, tx.to_string())) {
                    later.insert(job.wallet_id);
                    decided.push(Decided::Later { job });
                    continue;
                }
            }
            match state.wallet.decide(job.command.clone()) {
                Err(error) => {
                    let unheld_round = state.wallet.unheld_round(&job.command).cloned();
                    decided.push(Decided::Refused {
                        job,
                        error,
                        request_sha256,
                        unheld_round,
                    })
                }
                Ok(event) => match accept(state, &job, event, &request_sha256) {
                    Ok((receipt, row)) => decided.push(Decided::Accepted { job, receipt, row }),
                    Err(e) => {
                        let _ = job.reply.send(Err(e.into()));
                    }
                },
            }
        }
        decided
    }

    /// Puts back, as the log knows them, what the cache forgot and this batch's commands
    /// need, so that they are decided here as on the full state, without folding the
    /// wallet's history:
    /// - for a command its wallet's cached state does not hold (a late win, a rollback of
    ///   a settled bet, a refund of a reservation refunded or never made), the reservation
    ///   and round it names and the round of that reservation (one query for the
    ///   reservations, [`payload::closed_reservations`]);
    /// - for the commands of a wallet back from a stale round, the rounds they name that
    ///   the cache forgot: the log refused to open such a round again, or a refusal in it
    ///   was decided without it. The wallet's new commands in this batch are looked up
    ///   too, so one forgotten round after another cannot keep it behind.
    ///
    /// The rounds come in one query ([`payload::round_states`]); the cache changes only
    /// once both queries have answered, so a failed one leaves it as it was. Nothing is
    /// compacted until the batch is decided ([`Cached::compact_due`]), so every command of
    /// the batch is then decided on its wallet's state as on the full state: what it
    /// names was held when the batch began, or is put back here, or was made by an
    /// earlier command of the batch.
    ///
    /// Returns the wallets looked up (compacted once the batch is decided), and those
    /// that go to the full state instead: a round put back whose opening event named no
    /// game may have been given one by a later event (the full state keeps the first game
    /// any event of the round names), which the round index does not tell.
    pub(super) async fn restore(&mut self, jobs: &[Job]) -> Result<Restored, StoreError> {
        let mut restored = Restored::default();
        let mut reservations: Vec<(WalletId, &domain::ReservationId, u64)> = Vec::new();
        let mut rounds: HashSet<(WalletId, RoundId)> = HashSet::new();
        let again: HashSet<WalletId> = jobs
            .iter()
            .filter(|job| job.attempts > 0)
            .map(|job| job.wallet_id)
            .collect();
        for job in jobs {
            let Some(cached) = self.cache.get(&job.wallet_id) else {
                continue;
            };
            if cached.wallet.balance().is_none() {
                // Not opened: its state, if this batch opens it, is its whole history.
                continue;
            }
            if cached.wallet.needs_full_state(&job.command) {
                restored.full.insert(job.wallet_id);
                continue;
            }
            if !cached.wallet.holds(&job.command) {
                let (reservation, round) = Wallet::named(&job.command);
                if let Some(reservation) = reservation {
                    reservations.push((job.wallet_id, reservation, cached.sequence));
                }
                if let Some(round) = round {
                    rounds.insert((job.wallet_id, round.clone()));
                }
                restored.looked_up.insert(job.wallet_id);
            } else if again.contains(&job.wallet_id) {
                if let Some(round) = cached.wallet.unheld_round(&job.command) {
                    rounds.insert((job.wallet_id, round.clone()));
                    restored.looked_up.insert(job.wallet_id);
                }
            }
        }
        if restored.looked_up.is_empty() {
            return Ok(restored);
        }
        let closed = if reservations.is_empty() {
            Vec::new()
        } else {
            payload::closed_reservations(&self.pool, &reservations).await?
        };
        for (wallet_id, _, bet) in &closed {
            rounds.insert((*wallet_id, bet.round_id.clone()));
        }
        // A round the state holds is already as the full state has it.
        rounds.retain(|(w, r)| {
            self.cache
                .get(w)
                .is_none_or(|c| c.wallet.round(r).is_none())
        });
        let known = if rounds.is_empty() {
            Vec::new()
        } else {
            let asked: Vec<(WalletId, &RoundId)> = rounds.iter().map(|(w, r)| (*w, r)).collect();
            payload::round_states(&self.pool, &asked).await?
        };
        metrics::counter!("write_path_reservations_restored_total").increment(closed.len() as u64);
        metrics::counter!("write_path_rounds_restored_total").increment(known.len() as u64);
        for (wallet_id, id, bet) in closed {
            if let Some(cached) = self.cache.get_mut(&wallet_id) {
                cached.wallet.restore_reservation(id, bet);
            }
        }
        for round in known {
            if round.game_id.is_none() {
                restored.full.insert(round.wallet_id);
            } else if let Some(cached) = self.cache.get_mut(&round.wallet_id) {
                cached
                    .wallet
                    .restore_round(&round.round_id, round.game_id, round.closed);
            }
        }
        Ok(restored)
    }
}

/// Applies an accepted command's `event` to the cached `state` and makes the answer and
/// the row to write: the event and its metadata as JSON text.
pub(super) fn accept(
    state: &mut Cached,
    job: &Job,
    event: WalletEvent,
    request_sha256: &str,
) -> Result<(CommandReceipt, Row), StoreError> {
    let event_type = event.name().to_string();
    let payload = serde_json::to_string(&event).map_err(|e| StoreError::Corrupt(Box::new(e)))?;
    let rounds = idempotency::RoundKeys::of(&state.wallet, &event);
    let closes = event.leaves_to_forget();
    let funded_bonus = event.funded_bonus();
    state.wallet.apply(event);
    state.compact_due |= closes;
    state.sequence += 1;
    let balance = state
        .wallet
        .balance()
        .expect("an accepted command leaves an opened wallet");
    let transaction_id = job.command.transaction_id();
    if let Some(id) = &transaction_id {
        state.remember(id.as_str());
    }
    let metadata = idempotency::metadata(
        job.command.name(),
        transaction_id.as_ref(),
        request_sha256,
        &balance,
        &rounds,
        state.wallet.protection(),
        funded_bonus,
    );
    let row = Row {
        wallet_id: job.wallet_id.to_string(),
        sequence: state.sequence as i64,
        event_type,
        payload,
        metadata: serde_json::to_string(&metadata).expect("a string map"),
    };
    let receipt = CommandReceipt {
        wallet_id: job.wallet_id,
        transaction_id,
        balance,
        sequence: state.sequence,
        replayed: false,
        funded_bonus,
    };
    Ok((receipt, row))
}
