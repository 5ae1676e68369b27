//! The worker's periodic tasks, on one [`runner`]: job scheduling (reconcile,
//! Cloud webhook refresh), pruning, and sending held pushes again.

pub mod prune;
pub mod resume;
pub mod runner;
pub mod schedule;
