//! Work that arrives at about the same moment, done once for all of it, with no
//! task of its own: the first item to arrive while nobody gathers leads. It
//! lets the others arrive — a few turns of the scheduler, for as long as more
//! keep coming — then takes every item waiting and does the work for them; the
//! others wait for their answers. An item that arrives meanwhile leads the next
//! gathering, which runs beside this one.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Turns of the scheduler a leader waits at most for more items.
pub const TURNS: usize = 4;

/// Items waiting to be taken by their leader.
pub struct Combine<T> {
    waiting: Mutex<Waiting<T>>,
}

impl<T> Default for Combine<T> {
    fn default() -> Self {
        Self {
            waiting: Mutex::new(Waiting {
                items: Vec::new(),
                gathering: false,
            }),
        }
    }
}

struct Waiting<T> {
    items: Vec<T>,
    /// Whether a leader is gathering.
    gathering: bool,
}

impl<T> Combine<T> {
    fn waiting(&self) -> MutexGuard<'_, Waiting<T>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `item`. To its leader, every item gathered with it (its own among
    /// them), to do the work for; to any other, `None`: its leader answers it.
    pub async fn join(&self, item: T) -> Option<Vec<T>> {
        let leads = {
            let mut waiting = self.waiting();
            waiting.items.push(item);
            !std::mem::replace(&mut waiting.gathering, true)
        };
        if !leads {
            return None;
        }
        // A leader dropped while it gathers leaves the items to the next one.
        let leading = Leading(self);
        let mut seen = 1;
        for _ in 0..TURNS {
            tokio::task::yield_now().await;
            let now = self.waiting().items.len();
            if now == seen {
                break;
            }
            seen = now;
        }
        let items = std::mem::take(&mut self.waiting().items);
        drop(leading);
        Some(items)
    }
}

/// A leader gathering; none once it is dropped.
struct Leading<'a, T>(&'a Combine<T>);

impl<T> Drop for Leading<'_, T> {
    fn drop(&mut self) {
        self.0.waiting().gathering = false;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn items_that_arrive_together_go_to_one_leader_and_later_ones_to_the_next() {
        let combine = Arc::new(Combine::default());
        let tasks: Vec<_> = (0..5)
            .map(|n| {
                let combine = Arc::clone(&combine);
                tokio::spawn(async move { combine.join(n).await })
            })
            .collect();
        let mut led = Vec::new();
        for task in tasks {
            led.push(task.await.expect("task"));
        }
        let leaders: Vec<&Vec<i32>> = led.iter().flatten().collect();
        assert_eq!(
            leaders.len(),
            1,
            "one leader for items that arrive together: {led:?}"
        );
        let mut items = leaders[0].clone();
        items.sort_unstable();
        assert_eq!(items, vec![0, 1, 2, 3, 4], "every item gathered once");

        let later = combine.join(9).await;
        assert_eq!(
            later,
            Some(vec![9]),
            "an item alone leads its own gathering"
        );

        // A leader dropped while it gathers: the next item leads, and takes
        // what the dropped one left.
        let mut dropped = Box::pin(combine.join(10));
        assert!(
            futures_util::poll!(dropped.as_mut()).is_pending(),
            "the leader gathers"
        );
        drop(dropped);
        assert_eq!(combine.join(11).await, Some(vec![10, 11]));
    }
}
