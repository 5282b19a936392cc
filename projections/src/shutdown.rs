//! A shutdown signal every long-running task watches.

use tokio::sync::watch;

/// Cloneable; `wait` resolves once `Trigger::fire` was called (or the trigger dropped).
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// Fires the shutdown.
pub struct Trigger(watch::Sender<bool>);

/// A new signal and its trigger.
pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Shutdown(rx))
}

impl Trigger {
    pub fn fire(&self) {
        let _ = self.0.send(true);
    }
}

impl Shutdown {
    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    /// Sleeps for `d` unless shut down first; returns false if shut down.
    pub async fn sleep(&mut self, d: std::time::Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = self.wait() => false,
        }
    }
}

/// Exponential backoff between reconnect attempts: 250 ms doubling to 10 s.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: std::time::Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: Self::MIN }
    }
}

impl Backoff {
    const MIN: std::time::Duration = std::time::Duration::from_millis(250);
    const MAX: std::time::Duration = std::time::Duration::from_secs(10);

    pub fn next_delay(&mut self) -> std::time::Duration {
        let d = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        d
    }

    pub fn reset(&mut self) {
        self.next = Self::MIN;
    }
}

/// Runs `session` again and again until `shutdown`: a session that fails (a lost
/// connection, a dependency down) is logged, counted in the `restarts` metric and started
/// again after a backoff, reset once a session has run for 30 s. amqprs and the relay's
/// dedicated Postgres connections do not reconnect on their own; this is where they do.
pub async fn supervise<F, Fut>(
    what: &str,
    restarts: &'static str,
    mut shutdown: Shutdown,
    mut session: F,
) where
    F: FnMut(Shutdown) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut backoff = Backoff::default();
    while !shutdown.is_set() {
        let started = std::time::Instant::now();
        match session(shutdown.clone()).await {
            Ok(()) => return,
            Err(e) => {
                metrics::counter!(restarts).increment(1);
                if started.elapsed() > std::time::Duration::from_secs(30) {
                    backoff.reset();
                }
                let delay = backoff.next_delay();
                tracing::warn!(what, error = %e, retry_in_ms = delay.as_millis() as u64, "session ended; reconnecting");
                if !shutdown.sleep(delay).await {
                    return;
                }
            }
        }
    }
}
