//! `integration_credentials`: how jirasync authenticates to an integration's
//! Jira, and the [`Auth`] built from it.

use std::fmt;

use crate::jira::{Auth, KeyError, Signer};

/// The credentials of an integration: an OAuth 1.0a application link's consumer
/// key and private key, and the access token once there is one. Secret: `Debug`
/// shows the consumer key only.
#[derive(Clone)]
pub struct Credentials {
    /// Consumer key of the application link.
    pub consumer_key: String,
    /// PEM private key.
    pub private_key: String,
    /// OAuth access token, once there is one.
    pub access_token: Option<String>,
    /// Its secret.
    pub access_token_secret: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("consumer_key", &self.consumer_key)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// The auth method these credentials give: OAuth 1.0a with the consumer key,
    /// and the access token when it is there (an empty one counts as none).
    pub fn auth(&self) -> Result<Auth, KeyError> {
        let auth = Auth::oauth1(Signer::from_pem(
            self.consumer_key.clone(),
            &self.private_key,
        )?);
        Ok(match self.access_token.as_deref() {
            Some(token) if !token.is_empty() => auth.with_access_token(token),
            _ => auth,
        })
    }
}
