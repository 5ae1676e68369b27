//! The worker's one runner of periodic tasks (reconcile scheduling, pruning):
//! a task runs at its first time and then every period, one run at a time (a
//! run that overruns delays the next instead of piling runs up), until shutdown.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::shutdown::Shutdown;

/// When a periodic task first runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum First {
    /// At once, at start.
    AtStart,
    /// One period after start.
    AfterOnePeriod,
}

/// Runs `run` at `first` and then every `every`, until `shutdown`; a run in
/// progress when shutdown comes finishes first (each task checks `shutdown`
/// inside long runs itself).
pub fn spawn<F, Fut>(
    first: First,
    every: Duration,
    shutdown: Shutdown,
    mut run: F,
) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let start = match first {
            First::AtStart => Instant::now(),
            First::AfterOnePeriod => Instant::now() + every,
        };
        let mut ticks = tokio::time::interval_at(start, every);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = ticks.tick() => {}
            }
            run().await;
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    async fn runs_after(first: First, wait: Duration) -> u32 {
        let shutdown = Shutdown::new();
        let runs = Arc::new(AtomicU32::new(0));
        let counted = Arc::clone(&runs);
        let task = spawn(
            first,
            Duration::from_secs(60),
            shutdown.clone(),
            move || {
                let counted = Arc::clone(&counted);
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
            },
        );
        tokio::time::sleep(wait).await;
        shutdown.cancel();
        task.await.expect("the runner stops on shutdown");
        runs.load(Ordering::SeqCst)
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_runs_at_its_first_time_then_every_period_until_shutdown() {
        assert_eq!(runs_after(First::AtStart, Duration::from_secs(1)).await, 1);
        assert_eq!(
            runs_after(First::AtStart, Duration::from_secs(121)).await,
            3
        );
        assert_eq!(
            runs_after(First::AfterOnePeriod, Duration::from_secs(59)).await,
            0
        );
        assert_eq!(
            runs_after(First::AfterOnePeriod, Duration::from_secs(61)).await,
            1
        );
    }
}
