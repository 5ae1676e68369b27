//! The acks of one consume channel, sent together (docs/reference.md §4): a
//! delivery handled is noted here rather than acked on its own, and one task
//! per channel acks what was noted meanwhile — the deliveries settled from the
//! last one acked onwards with one `basic.ack` with `multiple`, any other at
//! once on its own. A batch of webhooks committed together is acked with one
//! frame, not one each, and a delivery that takes long (a reconciliation, a
//! push waiting on Jira) holds back no other's ack.
//!
//! `multiple` acks every delivery up to its tag that is still unsettled, so it
//! is sent only up to a tag below which every delivery of the channel (tags are
//! the channel's, counted from 1) was noted: acked here, or rejected on its own
//! first (a retry's requeue, a dead letter by rejection) and noted after. A
//! delivery never noted (a task that never settled it) stops the run there; the
//! ones after it are acked on their own.

use std::collections::BTreeSet;

use futures_util::future::join_all;
use lapin::options::{BasicAckOptions, BasicRejectOptions};
use lapin::types::DeliveryTag;
use lapin::{Acker, Channel};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Deliveries settled on their own above the last tag acked with `multiple`
/// that the channel remembers at most; past them (a delivery held for very
/// long while thousands pass) it acks each delivery on its own.
const MAX_APART: usize = 65_536;

/// A delivery settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Note {
    /// Handled: to ack.
    Ack(DeliveryTag),
    /// Rejected (or requeued) on its own, the frame sent: nothing to ack.
    Settled(DeliveryTag),
}

/// The acker task of one channel.
pub(super) struct Acks {
    task: JoinHandle<()>,
}

/// Where the channel's deliveries are noted.
#[derive(Clone)]
pub(super) struct Noter(mpsc::UnboundedSender<Note>);

impl Acks {
    /// Starts the task that acks on `channel`, and where to note to it.
    pub(super) fn start(channel: Channel) -> (Self, Noter) {
        let (notes, received) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(channel, received));
        (Self { task }, Noter(notes))
    }

    /// Acks what was noted, once every [`Noter`] and [`Ticket`] is gone; gives
    /// up after `deadline` (the broker then redelivers what was not acked).
    pub(super) async fn finish(mut self, deadline: std::time::Duration) {
        if tokio::time::timeout(deadline, &mut self.task)
            .await
            .is_err()
        {
            tracing::warn!(
                "acks still waited at shutdown; the broker will redeliver those messages"
            );
            self.task.abort();
        }
    }
}

impl Noter {
    /// Where the delivery `tag`, its `acker`, is settled.
    pub(super) fn ticket(&self, acker: Acker, tag: DeliveryTag) -> Ticket {
        Ticket {
            acker,
            tag,
            notes: self.0.clone(),
        }
    }
}

/// How one delivery is settled.
pub(super) struct Ticket {
    acker: Acker,
    tag: DeliveryTag,
    notes: mpsc::UnboundedSender<Note>,
}

impl Ticket {
    /// Acks the delivery, with the others settled at the same time.
    pub(super) async fn ack(&self) {
        if self.notes.send(Note::Ack(self.tag)).is_err() {
            // The task is gone (shutting down): on its own, as it can.
            if let Err(error) = self.acker.ack(BasicAckOptions::default()).await {
                tracing::warn!(%error, "ack failed; the message will be redelivered");
            }
        }
    }

    /// Rejects the delivery, back to its queue when `requeue` (else RabbitMQ
    /// dead-letters it), then notes it settled.
    pub(super) async fn reject(&self, requeue: bool) -> lapin::Result<bool> {
        let rejected = self.acker.reject(BasicRejectOptions { requeue }).await;
        let _ = self.notes.send(Note::Settled(self.tag));
        rejected
    }
}

/// Acks what is noted, each time together with what was noted meanwhile.
async fn run(channel: Channel, mut notes: mpsc::UnboundedReceiver<Note>) {
    let mut window = Window::default();
    // Made once: `counter!` looks its key up in the registry at every call.
    let frames = metrics::counter!("jirasync_worker_ack_frames_total");
    while let Some(note) = notes.recv().await {
        window.note(note);
        // The tasks settled by the same commit note theirs right after: let
        // them run, for as long as they keep noting.
        loop {
            tokio::task::yield_now().await;
            let mut noted = false;
            while let Ok(note) = notes.try_recv() {
                window.note(note);
                noted = true;
            }
            if !noted {
                break;
            }
        }
        let (upto, apart) = window.take();
        let multiple = upto.map(|tag| (tag, true));
        let acks = multiple
            .into_iter()
            .chain(apart.into_iter().map(|tag| (tag, false)));
        // Sent in this order (each frame is queued when first polled).
        let sent = join_all(acks.map(|(tag, multiple)| {
            frames.increment(1);
            channel.basic_ack(tag, BasicAckOptions { multiple })
        }))
        .await;
        if let Some(Err(error)) = sent.into_iter().find(Result::is_err) {
            // The broker redelivers what was not acked; handlers are idempotent.
            tracing::warn!(%error, "ack failed; the messages will be redelivered");
        }
    }
}

/// The deliveries of a channel settled since the last tag acked with
/// `multiple` (`base`: every delivery up to it is settled).
#[derive(Debug)]
struct Window {
    base: DeliveryTag,
    /// Noted to ack, not acked yet.
    waiting: BTreeSet<DeliveryTag>,
    /// Above `base`, settled already (acked or rejected on their own).
    apart: BTreeSet<DeliveryTag>,
    /// Whether acks are still sent together (not after [`MAX_APART`]).
    together: bool,
}

impl Default for Window {
    fn default() -> Self {
        Self {
            base: 0,
            waiting: BTreeSet::new(),
            apart: BTreeSet::new(),
            together: true,
        }
    }
}

impl Window {
    fn note(&mut self, note: Note) {
        match note {
            Note::Ack(tag) => {
                self.waiting.insert(tag);
            }
            Note::Settled(tag) if self.together => {
                self.apart.insert(tag);
            }
            Note::Settled(_) => {}
        }
    }

    /// The acks to send now: the tag up to which one ack with `multiple`
    /// settles the run of deliveries from `base`, if it holds one to ack; and
    /// every other delivery waiting, each on its own.
    fn take(&mut self) -> (Option<DeliveryTag>, Vec<DeliveryTag>) {
        if !self.together {
            return (
                None,
                std::mem::take(&mut self.waiting).into_iter().collect(),
            );
        }
        let mut upto = None;
        loop {
            let next = self.base + 1;
            if self.waiting.remove(&next) {
                upto = Some(next);
            } else if !self.apart.remove(&next) {
                break;
            }
            self.base = next;
        }
        let apart: Vec<DeliveryTag> = std::mem::take(&mut self.waiting).into_iter().collect();
        self.apart.extend(&apart);
        if self.apart.len() > MAX_APART {
            tracing::debug!("a delivery held for long: acks are sent one by one on this channel");
            self.together = false;
            self.apart.clear();
        }
        (upto, apart)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(notes: &[Note]) -> Window {
        let mut window = Window::default();
        for note in notes {
            window.note(*note);
        }
        window
    }

    #[test]
    fn a_run_from_the_last_acked_is_acked_with_one_multiple() {
        let mut w = window(&[Note::Ack(2), Note::Ack(1), Note::Ack(3)]);
        assert_eq!(w.take(), (Some(3), vec![]));
        assert_eq!(w.base, 3);
        w.note(Note::Ack(4));
        assert_eq!(w.take(), (Some(4), vec![]));
    }

    #[test]
    fn a_delivery_not_settled_holds_back_no_other_and_is_never_covered() {
        // 2 is still in flight: 3 and 4 are acked on their own, 1 up to 1.
        let mut w = window(&[Note::Ack(1), Note::Ack(3), Note::Ack(4)]);
        assert_eq!(w.take(), (Some(1), vec![3, 4]));
        // Then 5 alone: 2 still stops the run.
        w.note(Note::Ack(5));
        assert_eq!(w.take(), (None, vec![5]));
        // 2 settles: the run reaches past what was acked apart, up to 2.
        w.note(Note::Ack(2));
        assert_eq!(w.take(), (Some(2), vec![]));
        assert_eq!(w.base, 5);
        assert!(w.apart.is_empty());
    }

    #[test]
    fn a_rejected_delivery_is_passed_over_and_never_the_multiple_tag() {
        let mut w = window(&[
            Note::Ack(1),
            Note::Settled(2),
            Note::Ack(3),
            Note::Settled(4),
        ]);
        assert_eq!(w.take(), (Some(3), vec![]));
        assert_eq!(w.base, 4);
        // Only rejected ones: nothing to send.
        w.note(Note::Settled(5));
        assert_eq!(w.take(), (None, vec![]));
        assert_eq!(w.base, 5);
    }

    #[test]
    fn past_the_limit_of_deliveries_apart_every_ack_goes_on_its_own() {
        let mut w = window(&[]);
        let tags: Vec<DeliveryTag> = (2..=(MAX_APART as u64 + 2)).collect();
        for tag in &tags {
            w.note(Note::Ack(*tag));
        }
        assert_eq!(w.take(), (None, tags));
        assert!(!w.together);
        w.note(Note::Ack(1));
        w.note(Note::Ack(100_000));
        assert_eq!(w.take(), (None, vec![1, 100_000]));
    }
}
