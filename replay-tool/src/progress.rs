//! Progress of long work: a bar with rate and ETA on a terminal, a plain line every few
//! seconds otherwise (a log file, a cron job), and nothing when asked to be quiet.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a plain progress line is written when stderr is not a terminal.
pub const LINE_INTERVAL: Duration = Duration::from_secs(5);

/// A progress reporter for one phase of work measured in `unit`s.
pub struct Progress {
    mode: Mode,
    phase: String,
    unit: &'static str,
    total: u64,
    done: u64,
    started: Instant,
    last_line: Instant,
}

enum Mode {
    Bar(ProgressBar),
    Lines,
    Quiet,
}

/// Where progress goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// A bar on a terminal, lines otherwise.
    Auto,
    /// Plain lines, even on a terminal.
    Lines,
    Quiet,
}

impl Progress {
    pub fn new(mode: ProgressMode, phase: &str, unit: &'static str, total: u64) -> Self {
        let mode = match mode {
            ProgressMode::Quiet => Mode::Quiet,
            ProgressMode::Auto if std::io::stderr().is_terminal() => {
                let bar = ProgressBar::new(total);
                bar.set_style(
                    ProgressStyle::with_template(&format!(
                        "{{msg}} [{{bar:30}}] {{human_pos}}/{{human_len}} {unit} {{per_sec}} ETA {{eta}}"
                    ))
                    .expect("a valid template")
                    .progress_chars("=> "),
                );
                bar.set_message(phase.to_string());
                Mode::Bar(bar)
            }
            _ => Mode::Lines,
        };
        let now = Instant::now();
        Progress {
            mode,
            phase: phase.to_string(),
            unit,
            total,
            done: 0,
            started: now,
            last_line: now,
        }
    }

    /// Records `n` more units done.
    pub fn advance(&mut self, n: u64) {
        self.done += n;
        match &self.mode {
            Mode::Bar(bar) => bar.inc(n),
            Mode::Lines if self.last_line.elapsed() >= LINE_INTERVAL => {
                self.last_line = Instant::now();
                eprintln!("{}", self.line());
            }
            _ => {}
        }
    }

    /// Ends the phase with a last line.
    pub fn finish(self) {
        match &self.mode {
            Mode::Bar(bar) => bar.finish_and_clear(),
            Mode::Lines => {}
            Mode::Quiet => return,
        }
        eprintln!("{} done", self.line());
    }

    fn line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        let rate = self.done as f64 / secs;
        let eta = if rate > 0.0 && self.total > self.done {
            format!(", ETA {:.0} s", (self.total - self.done) as f64 / rate)
        } else {
            String::new()
        };
        let pct = if self.total > 0 {
            format!(" ({:.0}%)", 100.0 * self.done as f64 / self.total as f64)
        } else {
            String::new()
        };
        format!(
            "{}: {}/{} {}{pct}, {rate:.0} {}/s{eta}, {secs:.1} s",
            self.phase, self.done, self.total, self.unit, self.unit
        )
    }
}

/// The process's peak resident memory in bytes (Linux `VmHWM`), for the figures a run
/// prints.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
