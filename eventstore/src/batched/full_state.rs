//! The straightforward path on a thread of its own, for the commands a cached state
//! cannot decide.

use super::*;

/// The straightforward path ([`CqrsWalletStore`]) on an OS thread, a runtime and two
/// connections of its own, one command at a time. A full-state command folds the wallet's
/// whole history: on a long one that is CPU work between awaits, which on the store's
/// runtime would take a worker thread (or, on a single-threaded runtime, every shard)
/// for as long as it lasts. Here it takes only this thread.
pub(super) struct FullStateThread {
    requests: mpsc::UnboundedSender<(WalletId, WalletCommand, Reply)>,
    /// Commands it was given.
    pub(super) runs: AtomicUsize,
}

impl FullStateThread {
    pub(super) fn start(pool: &PgPool) -> Self {
        let options = pool.connect_options().as_ref().clone();
        let (requests, mut rx) = mpsc::unbounded_channel::<(WalletId, WalletCommand, Reply)>();
        std::thread::Builder::new()
            .name("betledger-full-state".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the full-state thread");
                runtime.block_on(async move {
                    let pool = sqlx::postgres::PgPoolOptions::new()
                        .max_connections(2)
                        .connect_lazy_with(options);
                    let store = Arc::new(CqrsWalletStore::new(pool));
                    while let Some((wallet_id, command, reply)) = rx.recv().await {
                        // A task of its own, so that a panic in it is an answer, not the
                        // end of this thread.
                        let store = store.clone();
                        let run =
                            tokio::spawn(async move { store.execute(wallet_id, command).await });
                        let answer = run.await.unwrap_or_else(|e| {
                            Err(ExecuteError::Store(StoreError::Unavailable(
                                format!("deciding on the full state failed: {e}").into(),
                            )))
                        });
                        let _ = reply.send(answer);
                    }
                });
            })
            .expect("the full-state thread starts");
        FullStateThread {
            requests,
            runs: AtomicUsize::new(0),
        }
    }

    pub(super) async fn execute(
        &self,
        wallet_id: WalletId,
        command: WalletCommand,
    ) -> Result<CommandReceipt, ExecuteError> {
        let gone = || {
            ExecuteError::Store(StoreError::Unavailable(
                "the full-state thread stopped".into(),
            ))
        };
        self.runs.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("write_path_full_state_commands_total").increment(1);
        let (reply, answer) = oneshot::channel();
        self.requests
            .send((wallet_id, command, reply))
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}
