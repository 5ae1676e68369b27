//! The one reconnect loop: connect, and after each failure warn (not every
//! time) and wait 200 ms doubling up to 5 s (backon's [`ExponentialBuilder`]),
//! until it connects or shutdown cuts a wait short. Used by the worker's consumer
//! loop, the confirming publisher's and the fanout's supervisors (`queue/`) and
//! by [`crate::db::connect_waiting`].

use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::shutdown::Shutdown;

/// The waits between tries: 200 ms doubling up to 5 s, never giving up.
const DELAYS: ExponentialBuilder = ExponentialBuilder::new()
    .with_min_delay(Duration::from_millis(200))
    .with_factor(2.0)
    .with_max_delay(Duration::from_secs(5))
    .without_max_times();

/// How a reconnect loop waits and warns.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Whether each wait is given or taken a quarter (`jittered`).
    jitter: bool,
    /// When a failure is worth a warning.
    warn: Warn,
}

#[derive(Debug, Clone, Copy)]
enum Warn {
    /// When its text differs from the last one warned about.
    WhenChanged,
    /// The first, then at most once per this long.
    Every(Duration),
}

/// RabbitMQ: jittered waits, a warning whenever the error changes.
pub const BROKER: Policy = Policy {
    jitter: true,
    warn: Warn::WhenChanged,
};

/// Postgres at startup: plain waits, a warning at most once a minute.
pub const DATABASE: Policy = Policy {
    jitter: false,
    warn: Warn::Every(Duration::from_secs(60)),
};

/// Calls `attempt` until it succeeds. After each failure, `warn` gets the
/// error's text (`{error:#}`) when `policy` says it is worth a warning, then the
/// loop waits the next delay; `None` when `shutdown` comes during a wait.
/// Shutdown does not interrupt an attempt: one that should stop then says so in
/// its own result.
pub async fn until_ok<T, F>(
    policy: Policy,
    shutdown: &Shutdown,
    mut attempt: impl FnMut() -> F,
    mut warn: impl FnMut(&str),
) -> Option<T>
where
    F: Future<Output = anyhow::Result<T>>,
{
    let mut delays = DELAYS.build();
    let mut warned = Warned::default();
    loop {
        match attempt().await {
            Ok(value) => return Some(value),
            Err(error) => {
                let text = format!("{error:#}");
                if warned.is_due(policy.warn, &text) {
                    warn(&text);
                }
            }
        }
        // `without_max_times`: the delays never run out.
        let delay = delays.next().unwrap_or(Duration::from_secs(5));
        let delay = if policy.jitter {
            jittered(delay)
        } else {
            delay
        };
        tokio::select! {
            () = shutdown.cancelled() => return None,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// What was last warned about, and when.
#[derive(Default)]
struct Warned {
    text: String,
    at: Option<Instant>,
}

impl Warned {
    /// Whether a failure reading `text` is worth a warning now (recording it if so).
    fn is_due(&mut self, warn: Warn, text: &str) -> bool {
        let due = match warn {
            Warn::WhenChanged => text != self.text,
            Warn::Every(every) => self.at.is_none_or(|at| at.elapsed() >= every),
        };
        if due {
            text.clone_into(&mut self.text);
            self.at = Some(Instant::now());
        }
        due
    }
}

/// `delay` give or take a quarter, so that processes that lost one RabbitMQ node
/// do not all come back to the next at the same moment.
fn jittered(delay: Duration) -> Duration {
    delay.mul_f64(rand::random_range(0.75..1.25))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_waits_double_from_200_ms_up_to_5_s_and_never_run_out() {
        let millis: Vec<u128> = DELAYS
            .build()
            .take(9)
            .map(|delay| delay.as_millis())
            .collect();
        assert_eq!(millis, [200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000]);
        assert!(DELAYS.build().nth(10_000).is_some());
    }

    #[test]
    fn the_broker_warns_when_the_error_changes_and_the_database_once_a_minute() {
        let mut warned = Warned::default();
        let due: Vec<bool> = ["a", "a", "b", "b", "a"]
            .into_iter()
            .map(|text| warned.is_due(BROKER.warn, text))
            .collect();
        assert_eq!(due, [true, false, true, false, true]);
        let mut warned = Warned::default();
        assert!(warned.is_due(DATABASE.warn, "a"));
        assert!(!warned.is_due(DATABASE.warn, "b"));
        warned.at = Instant::now().checked_sub(Duration::from_secs(61));
        assert!(warned.is_due(DATABASE.warn, "b"));
    }

    #[test]
    fn a_jittered_wait_is_within_a_quarter() {
        for _ in 0..1000 {
            let delay = jittered(Duration::from_millis(400));
            assert!((300..500).contains(&delay.as_millis()), "{delay:?}");
        }
    }

    #[tokio::test]
    async fn it_tries_until_ok_and_shutdown_ends_a_wait() {
        let shutdown = Shutdown::new();
        let (mut tries, mut warnings) = (0, Vec::new());
        let got = until_ok(
            BROKER,
            &shutdown,
            || {
                tries += 1;
                let tries = tries;
                async move {
                    anyhow::ensure!(tries >= 3, "down");
                    Ok(tries)
                }
            },
            |text| warnings.push(text.to_owned()),
        )
        .await;
        assert_eq!(got, Some(3));
        assert_eq!(warnings, ["down"]);

        shutdown.cancel();
        let got: Option<()> = until_ok(
            DATABASE,
            &shutdown,
            || async { anyhow::bail!("down") },
            |_| {},
        )
        .await;
        assert_eq!(got, None);
    }
}
