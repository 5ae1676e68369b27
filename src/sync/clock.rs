//! Bounded event times (docs/reference.md §5.6): Jira's clock, or a forged body,
//! may put an event far in the future, and a watermark set there would make every
//! later change of the issue stale for good. An event time later than the receive
//! time plus `JIRASYNC_MAX_EVENT_SKEW` is replaced by the receive time; a stored
//! watermark later than the [`horizon`] (set by a version without this bound) does
//! not bind. The worker's webhook and reconcile handlers bound event times with
//! [`bound`]; the ordering guard (`sync::admitted`, `sync::rekey`) asks
//! [`binding`].

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// An event time as the ordering guard takes it: Jira's, or the receive time when
/// Jira's lay too far ahead of it (then Jira's in `clamped_from`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventTime {
    /// The time the guard orders by (`None`: unknown; the guard does nothing).
    pub at: Option<DateTime<Utc>>,
    /// Jira's time, when it was replaced (`sync_events.detail.event_time_clamped_from`).
    pub clamped_from: Option<DateTime<Utc>>,
}

/// Beyond the skew, the margin a stored watermark may lie ahead of the guard's
/// clock and still bind: the clocks of the ingress's host (receive times) and the
/// worker's (the guard) may differ a little.
pub const HORIZON_MARGIN: Duration = Duration::from_secs(60);

/// `jira`, or `received` when `jira` is later than `received` + `skew`.
pub fn bound(jira: Option<DateTime<Utc>>, received: DateTime<Utc>, skew: Duration) -> EventTime {
    match jira {
        Some(at) if at > plus(received, skew) => EventTime {
            at: Some(received),
            clamped_from: Some(at),
        },
        at => EventTime {
            at,
            clamped_from: None,
        },
    }
}

/// The latest watermark a change bounded by `skew` can have set by now: now +
/// `skew` + [`HORIZON_MARGIN`]. Take it once the rows are locked, so that
/// every change committed before counts as received before it.
pub fn horizon(skew: Duration) -> DateTime<Utc> {
    plus(plus(Utc::now(), skew), HORIZON_MARGIN)
}

/// The stored watermark, if it binds: one later than `horizon` was set from an
/// unbounded event time (a version before the bound) and binds nothing.
pub fn binding(stored: Option<DateTime<Utc>>, horizon: DateTime<Utc>) -> Option<DateTime<Utc>> {
    stored.filter(|stored| *stored <= horizon)
}

/// `at` + `span`, saturating at the latest time chrono represents.
fn plus(at: DateTime<Utc>, span: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(span)
        .ok()
        .and_then(|span| at.checked_add_signed(span))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("a time")
            .with_timezone(&Utc)
    }

    const SKEW: Duration = Duration::from_secs(300);

    #[test]
    fn an_event_time_beyond_the_skew_is_replaced_by_the_receive_time() {
        let received = t("2024-01-01T10:00:00Z");
        let far = t("9999-12-31T23:59:59Z");
        assert_eq!(
            bound(Some(far), received, SKEW),
            EventTime {
                at: Some(received),
                clamped_from: Some(far)
            }
        );
        let just_over = t("2024-01-01T10:05:00.001Z");
        assert_eq!(bound(Some(just_over), received, SKEW).at, Some(received));
    }

    #[test]
    fn an_event_time_within_the_skew_or_in_the_past_is_kept() {
        let received = t("2024-01-01T10:00:00Z");
        for at in [
            t("2024-01-01T10:05:00Z"),
            t("2024-01-01T10:00:00Z"),
            t("2020-01-01T00:00:00Z"),
        ] {
            assert_eq!(
                bound(Some(at), received, SKEW),
                EventTime {
                    at: Some(at),
                    clamped_from: None
                }
            );
        }
        assert_eq!(bound(None, received, SKEW), EventTime::default());
    }

    #[test]
    fn a_huge_skew_saturates_instead_of_overflowing() {
        let received = t("2024-01-01T10:00:00Z");
        let far = t("9999-12-31T23:59:59Z");
        assert_eq!(bound(Some(far), received, Duration::MAX).at, Some(far));
        assert_eq!(horizon(Duration::MAX), DateTime::<Utc>::MAX_UTC);
    }

    #[test]
    fn a_watermark_beyond_the_horizon_does_not_bind() {
        let horizon = horizon(SKEW);
        let near = Utc::now() + TimeDelta::minutes(4);
        assert_eq!(binding(Some(near), horizon), Some(near));
        assert_eq!(binding(Some(t("9999-01-01T00:00:00Z")), horizon), None);
        assert_eq!(binding(None, horizon), None);
    }
}
