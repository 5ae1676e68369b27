//! The worker's periodic tasks, on one [`runner`]: reconcile scheduling and
//! pruning.

pub mod prune;
pub mod reconcile_schedule;
pub mod runner;
