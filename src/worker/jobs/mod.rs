//! The worker's jobs, each in a file of its own with its message struct (what
//! its producers publish) and its handler (as crates.io's `worker::jobs`).

pub mod oauth2_token;
pub mod oauth_access_token;
pub mod oauth_request_token;
pub mod reconcile;

pub use oauth_access_token::OauthAccessToken;
pub use oauth_request_token::OauthRequestToken;
pub use oauth2_token::Oauth2Token;
pub use reconcile::Reconcile;
