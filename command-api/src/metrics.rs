//! Prometheus metrics: a request counter and a latency histogram per route, method and
//! status, and a counter of wallet commands per command and outcome. The recorder is
//! process-global (the `metrics` crate's design), installed once.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets, in seconds: from a cached read to a provider's timeout.
const LATENCY_BUCKETS_S: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The process's Prometheus handle, installing the recorder on first use.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("duration_seconds".into()),
                    LATENCY_BUCKETS_S,
                )
                .expect("the bucket list is not empty")
                .install_recorder()
                .expect("the recorder is installed once, by this OnceLock")
        })
        .clone()
}

/// Middleware: counts and times every request by its route template.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().to_string();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [("route", route), ("method", method), ("status", status)];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Counts one wallet command by name and outcome (`accepted`, `replayed` or an error code).
pub fn command_outcome(command: &'static str, outcome: &'static str) {
    metrics::counter!("wallet_commands_total", "command" => command, "outcome" => outcome)
        .increment(1);
}

/// Registers, at zero, the counters operators alert on that count rare things (refusals
/// for want of a slot or of the rate, bad signatures): a series that has never moved would
/// be absent, and `rate()` over it empty rather than zero.
pub fn register_at_zero(config: &crate::Config) {
    metrics::counter!("http_overloaded_total").increment(0);
    metrics::gauge!("api_unclustered_instances").set(0.0);
    for client in &config.clients {
        metrics::counter!("http_rate_limited_total", "client" => client.name().to_string())
            .increment(0);
    }
    let providers = config.providers.iter().map(|p| p.id.clone());
    let operators = config.hub88.iter().map(|o| crate::hub88::scope(&o.id));
    for provider in providers.chain(operators) {
        metrics::counter!("provider_bad_signatures_total", "provider" => provider).increment(0);
    }
    for operator in &config.hub88 {
        for status in ["RS_OK", "RS_ERROR_UNKNOWN"] {
            metrics::counter!("hub88_responses_total", "operator" => operator.id.clone(), "status" => status)
                .increment(0);
        }
    }
}
