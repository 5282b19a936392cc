//! The shard's cache of wallets: loading the missing ones (latest snapshot plus the
//! events after it, forgotten rounds put back), releasing one, and trimming it to its
//! bound.

use super::*;

impl Shard {
    /// A full-state run on `wallet_id` is done: the commands that waited for it go first
    /// into the next batch, in order.
    pub(super) fn release(&mut self, wallet_id: WalletId) {
        if let Some(waiting) = self.busy.remove(&wallet_id) {
            self.again.extend(waiting);
        }
    }

    /// Loads the batch's wallets that are not cached (see [`load`]).
    pub(super) async fn load_missing(
        &mut self,
        wallets: &HashSet<WalletId>,
    ) -> Result<(), StoreError> {
        let missing: Vec<WalletId> = wallets
            .iter()
            .filter(|id| !self.cache.contains_key(id))
            .copied()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        for (wallet_id, mut cached) in load(&self.pool, &missing).await? {
            cached.wallet.compact();
            self.cache.insert(wallet_id, cached);
        }
        Ok(())
    }

    /// Keeps the cache under its cap: past it, the least recently used wallets leave, a
    /// tenth of the cap at a time (one pass over the cache per tenth).
    pub(super) fn trim_cache(&mut self) {
        if self.cache.len() > self.cache_max {
            let mut by_use: Vec<(u64, WalletId)> =
                self.cache.iter().map(|(id, c)| (c.used, *id)).collect();
            let drop = (self.cache.len() - self.cache_max + self.cache_max / 10).min(by_use.len());
            if drop > 0 && drop < by_use.len() {
                by_use.select_nth_unstable(drop);
            }
            for (_, id) in by_use.into_iter().take(drop) {
                self.cache.remove(&id);
            }
            metrics::counter!("write_path_cache_evictions_total").increment(drop as u64);
        }
        let len = self.cache.len();
        if len >= self.counted {
            self.cached.fetch_add(len - self.counted, Ordering::Relaxed);
        } else {
            self.cached.fetch_sub(self.counted - len, Ordering::Relaxed);
        }
        self.counted = len;
        metrics::gauge!("write_path_cached_wallets")
            .set(self.cached.load(Ordering::Relaxed) as f64);
    }
}

/// Wallets as the log has them now: each one's latest snapshot, then the events after it,
/// each step one query for all of `wallets`. A wallet with neither is not in the answer
/// (not opened).
///
/// A snapshot is a compacted state: an event after it may name a round it forgot,
/// decided on a state that held the round (`Wallet::apply_logged`). Those rounds are put
/// back as the log knows them, in one more query ([`payload::round_states`]); a wallet
/// with such a round whose opening event named no game (a later event may have given it
/// one, which the round index does not tell) is folded again from its first event.
pub(super) async fn load(
    pool: &PgPool,
    wallets: &[WalletId],
) -> Result<HashMap<WalletId, Cached>, StoreError> {
    let snapshots = crate::snapshots::latest(pool, wallets).await?;
    let mut loaded: HashMap<WalletId, Cached> = HashMap::with_capacity(wallets.len());
    for id in wallets {
        let from_snapshot = snapshots.get(id).and_then(|s| match s.wallet() {
            Ok(wallet) => Some(Cached {
                wallet,
                sequence: s.sequence,
                snapshot_at: s.sequence,
                ..Cached::default()
            }),
            Err(e) => {
                // Unreadable by this build: the log alone is enough.
                tracing::warn!(wallet_id = %id, error = %e, "ignoring a snapshot");
                None
            }
        });
        loaded.insert(*id, from_snapshot.unwrap_or_default());
    }
    let mut forgotten = fold_after(pool, &mut loaded).await?;
    // A wallet folded from its first event knows every round (an older log's events may
    // lack the opening key: nothing to put back).
    forgotten.retain(|(w, _)| loaded.get(w).is_some_and(|c| c.snapshot_at > 0));
    if !forgotten.is_empty() {
        let asked: Vec<(WalletId, &RoundId)> = forgotten.iter().map(|(w, r)| (*w, r)).collect();
        let known = payload::round_states(pool, &asked).await?;
        let mut again: HashSet<WalletId> = forgotten.iter().map(|(w, _)| *w).collect();
        let mut told: HashSet<(WalletId, &RoundId)> = HashSet::new();
        for round in &known {
            if round.game_id.is_some() {
                told.insert((round.wallet_id, &round.round_id));
            }
        }
        // A wallet all of whose forgotten rounds the log tells is put right in place.
        again.retain(|w| {
            forgotten
                .iter()
                .any(|(fw, r)| fw == w && !told.contains(&(*w, r)))
        });
        for round in &known {
            if !again.contains(&round.wallet_id) {
                if let Some(cached) = loaded.get_mut(&round.wallet_id) {
                    cached.wallet.restore_round(
                        &round.round_id,
                        round.game_id.clone(),
                        round.closed,
                    );
                }
            }
        }
        metrics::counter!("write_path_loads_refolded_total").increment(again.len() as u64);
        if !again.is_empty() {
            let mut whole: HashMap<WalletId, Cached> =
                again.iter().map(|w| (*w, Cached::default())).collect();
            fold_after(pool, &mut whole).await?;
            for (id, mut cached) in whole {
                if let Some(old) = loaded.get(&id) {
                    cached.snapshot_at = old.snapshot_at;
                }
                loaded.insert(id, cached);
            }
        }
    }
    Ok(loaded
        .into_iter()
        .filter(|(_, cached)| cached.sequence > 0)
        .collect())
}

/// Folds into each of `wallets` the events after its `sequence`, in one query. Returns
/// the forgotten rounds they named (see [`load`]).
pub(super) async fn fold_after(
    pool: &PgPool,
    wallets: &mut HashMap<WalletId, Cached>,
) -> Result<HashSet<(WalletId, RoundId)>, StoreError> {
    let (ids, after): (Vec<String>, Vec<i64>) = wallets
        .iter()
        .map(|(id, cached)| (id.to_string(), cached.sequence as i64))
        .unzip();
    let rows: Vec<(
        String,
        i64,
        String,
        String,
        payload::StoredJson,
        Option<String>,
    )> = sqlx::query_as(
        "SELECT e.aggregate_id, e.sequence, e.event_type, e.event_version, e.payload,
                    e.metadata ->> 'round_opened'
               FROM UNNEST($2::text[], $3::bigint[]) AS m(id, after)
               JOIN events e ON e.aggregate_type = $1 AND e.aggregate_id = m.id
                            AND e.sequence > m.after
              ORDER BY e.aggregate_id, e.sequence",
    )
    .bind(WALLET_AGGREGATE_TYPE)
    .bind(&ids)
    .bind(&after)
    .fetch_all(pool)
    .await
    .map_err(unavailable)?;
    let mut forgotten = HashSet::new();
    for (id, sequence, event_type, event_version, payload, opened) in rows {
        let event = payload::decode(&event_type, &event_version, payload.get()).map_err(|e| {
            StoreError::Corrupt(format!("wallet {id} sequence {sequence}: {e}").into())
        })?;
        let wallet_id: WalletId = id.parse().expect("queried for these ids only");
        let entry = wallets
            .get_mut(&wallet_id)
            .expect("queried for these ids only");
        if let Some(round) = entry.wallet.apply_logged(event, opened.as_deref()) {
            forgotten.insert((wallet_id, round));
        }
        entry.sequence = sequence as u64;
    }
    Ok(forgotten)
}
