//! Protection from floods: a token bucket per client (bearer token or provider), and caps
//! on requests served at once, per principal and in all, so a burst cannot exhaust the
//! database pool and one caller cannot starve the others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::error::ApiError;
use crate::principal::Principal;

/// How long a request waits for a free slot before it is answered `503 UNAVAILABLE`.
pub const CONCURRENCY_WAIT: Duration = Duration::from_secs(2);

/// Token buckets per client, in this process (each API instance limits on its own).
pub struct RateLimiter {
    per_s: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    pub fn new(per_s: u32, burst: u32) -> Self {
        RateLimiter {
            per_s: f64::from(per_s.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token from `client`'s bucket, or says how long until one is there.
    pub fn check(&self, client: &str) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        let bucket = buckets.entry(client.to_string()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * self.per_s;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait_s = (1.0 - bucket.tokens) / self.per_s;
        metrics::counter!("http_rate_limited_total", "client" => client.to_string()).increment(1);
        Err(ApiError::RateLimited {
            retry_after_s: wait_s.ceil().max(1.0) as u64,
        })
    }
}

/// The request slots: at most `total` requests served at once, and at most `per_caller`
/// of them for any one principal (a client, a provider), so no caller can hold them all.
pub struct Slots {
    total: Arc<Semaphore>,
    per_caller: usize,
    callers: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Slots {
    /// `total` slots, a quarter of them (at least one) per principal.
    pub fn new(total: usize) -> Self {
        Slots {
            total: Arc::new(Semaphore::new(total.max(1))),
            per_caller: (total / 4).max(1),
            callers: Mutex::new(HashMap::new()),
        }
    }

    /// The most slots one principal may hold at once.
    pub fn per_caller(&self) -> usize {
        self.per_caller
    }

    fn of(&self, key: String) -> Arc<Semaphore> {
        let mut callers = self.callers.lock().expect("slots lock");
        callers
            .entry(key)
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_caller)))
            .clone()
    }
}

/// Middleware (after [`crate::gate::gate`]): a request takes one of its principal's slots,
/// then one of the server's; one that cannot get both within [`CONCURRENCY_WAIT`] is
/// answered 503 with `Retry-After`.
pub async fn admit(State(slots): State<Arc<Slots>>, request: Request, next: Next) -> Response {
    let principal = request.extensions().get::<Principal>();
    // A command another instance passes on holds a slot there already; waiting for one
    // here too could leave two instances each waiting on the other.
    if principal == Some(&Principal::Peer) {
        return next.run(request).await;
    }
    let key = principal
        .map(Principal::key)
        .unwrap_or_else(|| "public".into());
    let caller = slots.of(key);
    let permits = tokio::time::timeout(CONCURRENCY_WAIT, async {
        let mine = caller.acquire_owned().await.ok()?;
        let server = slots.total.clone().acquire_owned().await.ok()?;
        Some((mine, server))
    })
    .await;
    match permits {
        Ok(Some(_permits)) => next.run(request).await,
        _ => {
            metrics::counter!("http_overloaded_total").increment(1);
            crate::json::drain(request.into_body()).await;
            ApiError::Unavailable("the server is at its concurrency limit; retry".into())
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refuses_with_a_retry_time() {
        let limiter = RateLimiter::new(1, 3);
        for _ in 0..3 {
            assert!(limiter.check("a").is_ok());
        }
        match limiter.check("a") {
            Err(ApiError::RateLimited { retry_after_s }) => assert_eq!(retry_after_s, 1),
            other => panic!("expected RATE_LIMITED, got {other:?}"),
        }
        assert!(limiter.check("b").is_ok(), "buckets are per client");
    }
}
