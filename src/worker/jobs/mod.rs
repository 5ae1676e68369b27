//! The worker's jobs, each in a file of its own with its message struct (what
//! its producers publish) and its handler (as crates.io's `worker::jobs`); the
//! webhook's message is the raw body Jira posted; `outbound`'s is the relay's
//! `outbound::message::Push`. `install` is the step the
//! OAuth code exchanges share (save, register the webhook, mark installed).

pub mod cloud_oauth2_token;
mod install;
pub mod oauth2_token;
pub mod oauth_access_token;
pub mod oauth_request_token;
pub mod outbound;
pub mod reconcile;
pub mod webhook;
pub mod webhook_refresh;

pub use cloud_oauth2_token::CloudOauth2Token;
pub use oauth_access_token::OauthAccessToken;
pub use oauth_request_token::OauthRequestToken;
pub use oauth2_token::Oauth2Token;
pub use outbound::Push;
pub use reconcile::Reconcile;
pub use webhook_refresh::WebhookRefresh;
