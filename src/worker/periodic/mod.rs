//! The worker's periodic tasks, on one [`runner`]: reconcile scheduling,
//! pruning, and sending held pushes again.

pub mod prune;
pub mod reconcile_schedule;
pub mod resume;
pub mod runner;
