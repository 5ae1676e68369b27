//! What every handler of the ingress shares.

use std::sync::Arc;

use super::route_state::{KnownTokens, PublishMetrics};
use super::server::Admission;
use super::verdicts::Verdicts;
use crate::queue::publisher::Broker;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub(super) broker: Arc<Broker>,
    /// `JIRASYNC_MAX_BODY_BYTES`.
    pub(super) max_body_bytes: usize,
    /// The limits requests are admitted under (the webhook takes its body budget).
    pub(super) admission: Admission,
    /// Webhook tokens whose shape was checked lately.
    pub(super) tokens: Arc<KnownTokens>,
    /// The webhook route's publish metrics.
    pub(super) publishes: Arc<PublishMetrics>,
    /// The workers' verdicts on tokens, and the clients they count against.
    pub(super) verdicts: Arc<Verdicts>,
}
