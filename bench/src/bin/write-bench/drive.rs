//! Driving a target with the shared mixed workload (`workload::Mix`, wallets picked with
//! a Zipf-like skew) for `--seconds`: at a fixed concurrency, or open-loop at a fixed rate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::{WalletCommand, WalletId};
use workload::{Mix, Pick};

use crate::figures::Figures;
use crate::targets::{Outcome, Target};
use crate::Args;

/// Runs one command and records it in `figures`; latency counts from `since`.
async fn record(
    target: &dyn Target,
    wallet: WalletId,
    command: WalletCommand,
    since: Instant,
    figures: &mut Figures,
) -> bool {
    let (outcome, retries) = target.run(wallet, command).await;
    figures
        .latencies_us
        .push(since.elapsed().as_micros().min(u32::MAX as u128) as u32);
    figures.retries += retries;
    match outcome {
        Outcome::Done => {
            figures.ops += 1;
            true
        }
        Outcome::Refused => {
            figures.refused += 1;
            false
        }
        Outcome::Failed => {
            figures.failed += 1;
            false
        }
    }
}

/// Drives the workload for `--seconds`: at a fixed concurrency (each task sends its next
/// command when the last is answered), or with `--rate`, at a fixed rate. A
/// `repeat_share` of the accepted commands is sent again at once, exactly, and counted
/// as a command of its own (a provider's retry is traffic the engine must serve).
pub async fn drive(
    args: &Args,
    target: Arc<dyn Target>,
    wallets: Arc<Vec<WalletId>>,
    repeat_share: f64,
) -> Figures {
    if let Some(rate) = args.rate {
        return drive_rate(args, rate, target, wallets).await;
    }
    let repeat_per_million = (repeat_share.clamp(0.0, 1.0) * 1e6) as u64;
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..args.concurrency {
        let (target, wallets) = (target.clone(), wallets.clone());
        tasks.spawn(async move {
            let mut mix = Mix::new(task as u64 + 1, format!("t{task}"), Pick::Zipf);
            let mut dice = workload::Rng::new(task as u64 + 1_000);
            let mut figures = Figures::default();
            while Instant::now() < deadline {
                let next = mix.next(&wallets);
                // The exact repeat to send, decided before the first is sent.
                let again =
                    (dice.below(1_000_000) < repeat_per_million).then(|| next.command.clone());
                let done = record(
                    target.as_ref(),
                    next.wallet,
                    next.command,
                    Instant::now(),
                    &mut figures,
                )
                .await;
                if let (true, Some(again)) = (done, again) {
                    figures.repeats += 1;
                    record(
                        target.as_ref(),
                        next.wallet,
                        again,
                        Instant::now(),
                        &mut figures,
                    )
                    .await;
                }
                if let (true, Some(bet)) = (done, next.places) {
                    mix.placed(bet);
                }
            }
            figures
        });
    }
    let mut total = Figures::default();
    while let Some(done) = tasks.join_next().await {
        total.merge(done.expect("a workload task"));
    }
    total.seconds = started.elapsed().as_secs_f64();
    total
}

/// Open-loop load: command i is due at start + i/rate, whatever happened to the others,
/// and its latency counts from when it was due, so a stall shows in the percentiles
/// instead of slowing the load down (no coordinated omission). At most `--concurrency`
/// commands are in flight; one that waits for room is late, and its wait counts.
async fn drive_rate(
    args: &Args,
    rate: u32,
    target: Arc<dyn Target>,
    wallets: Arc<Vec<WalletId>>,
) -> Figures {
    let mix = Arc::new(std::sync::Mutex::new(Mix::new(7, "rate", Pick::Zipf)));
    let figures = Arc::new(std::sync::Mutex::new(Figures::default()));
    let room = Arc::new(tokio::sync::Semaphore::new(args.concurrency.max(1)));
    let started = Instant::now();
    let total = u64::from(rate) * args.seconds;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let due = started + Duration::from_secs_f64(i as f64 / f64::from(rate));
        tokio::time::sleep_until(due.into()).await;
        let permit = room.clone().acquire_owned().await.expect("never closed");
        let (target, wallets, mix, figures) = (
            target.clone(),
            wallets.clone(),
            mix.clone(),
            figures.clone(),
        );
        tasks.spawn(async move {
            let next = mix.lock().expect("no panic").next(&wallets);
            let mut mine = Figures::default();
            let done = record(target.as_ref(), next.wallet, next.command, due, &mut mine).await;
            drop(permit);
            if let (true, Some(bet)) = (done, next.places) {
                mix.lock().expect("no panic").placed(bet);
            }
            figures.lock().expect("no panic").merge(mine);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let mut total = std::mem::take(&mut *figures.lock().expect("no panic"));
    total.seconds = started.elapsed().as_secs_f64();
    total
}
