//! What one path did in its measured phase: commands per second and latency percentiles,
//! printed for people and as JSON for tools.

use betledger_bench::stats::percentile;
use serde_json::json;

/// What one path did in its measured phase.
#[derive(Debug, Default, Clone)]
pub struct Figures {
    pub ops: u64,
    pub refused: u64,
    pub failed: u64,
    pub retries: u64,
    /// Commands that were exact repeats of one just accepted (counted in `ops` too).
    pub repeats: u64,
    pub seconds: f64,
    pub latencies_us: Vec<u32>,
}

impl Figures {
    pub fn per_s(&self) -> f64 {
        self.ops as f64 / self.seconds
    }

    /// The latency at percentile `p` (0 to 1) in milliseconds; the latencies must be
    /// sorted ([`Figures::report`] sorts them).
    fn pct_ms(&self, p: f64) -> f64 {
        percentile(&self.latencies_us, p).map_or(f64::NAN, |us| f64::from(us) / 1000.0)
    }

    pub fn merge(&mut self, other: Figures) {
        self.ops += other.ops;
        self.refused += other.refused;
        self.failed += other.failed;
        self.retries += other.retries;
        self.repeats += other.repeats;
        self.latencies_us.extend(other.latencies_us);
    }

    /// Prints one line for people and returns the figures as JSON.
    pub fn report(&mut self, name: &str, unit: &str) -> serde_json::Value {
        self.latencies_us.sort_unstable();
        println!(
            "{name:>10}: {:>9.0} {unit}/s  p50 {:.2} ms  p99 {:.2} ms  p999 {:.2} ms  ({} refused by the rules, {} failed, {} conflict retries, {} exact repeats)",
            self.per_s(),
            self.pct_ms(0.50),
            self.pct_ms(0.99),
            self.pct_ms(0.999),
            self.refused,
            self.failed,
            self.retries,
            self.repeats
        );
        json!({"per_s": self.per_s(), "p50_ms": self.pct_ms(0.5), "p99_ms": self.pct_ms(0.99),
               "p999_ms": self.pct_ms(0.999), "ops": self.ops, "refused": self.refused,
               "failed": self.failed, "retries": self.retries, "repeats": self.repeats})
    }
}
