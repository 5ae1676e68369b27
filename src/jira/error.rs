//! The errors of Jira calls, split by what the caller should do: retry
//! (`Unavailable`) or stop and tell a human (everything else, with a hint).
//! Display texts never contain tokens, secrets or key material.

use super::oauth1_signing::{KeyError, SignError};

/// A failed call to Jira.
#[derive(Debug, thiserror::Error)]
pub enum JiraError {
    /// Jira refused the OAuth request (`oauth_problem=…`). Permanent.
    #[error("Jira refused the OAuth request (oauth_problem={problem}): {hint}")]
    Refused {
        /// The `oauth_problem` Jira reported, e.g. `consumer_key_unknown`.
        problem: String,
        /// What to check or do about it.
        hint: &'static str,
    },
    /// Jira could not be reached or answered 5xx / 429, or timed out. Transient.
    #[error("Jira is unavailable: {reason}")]
    Unavailable {
        /// What happened, e.g. `HTTP 503` or `timed out`.
        reason: String,
        /// The transport error, when there was one.
        #[source]
        source: Option<reqwest::Error>,
    },
    /// Jira refused the credentials of a REST call (`401` without an
    /// `oauth_problem`): an expired or revoked bearer token. Permanent, but an
    /// OAuth 2.0 token is refreshed and the call tried once more.
    #[error("Jira refused the credentials (HTTP 401): the token is expired or revoked")]
    Unauthorized,
    /// Jira's OAuth 2.0 token endpoint refused a grant (`{"error": …}`). Permanent.
    #[error("Jira refused the OAuth 2.0 request (error={error}): {hint}")]
    OAuth2Refused {
        /// The OAuth 2.0 error code, e.g. `invalid_grant`.
        error: String,
        /// What to check or do about it.
        hint: &'static str,
    },
    /// Jira answered with a status this client does not expect (3xx, 4xx). Permanent.
    #[error("unexpected answer from Jira: HTTP {status}{detail}")]
    Unexpected {
        /// The HTTP status code.
        status: u16,
        /// A short, sanitized excerpt of the body (may be empty), prefixed by `: `.
        detail: String,
    },
    /// A success answer that cannot be understood. Permanent.
    #[error("Jira sent an answer jirasync cannot read: {reason}")]
    InvalidResponse {
        /// What is wrong with it (never the body itself).
        reason: String,
    },
    /// The client is misconfigured (base URL, TLS setup). Permanent.
    #[error("invalid Jira client configuration: {0}")]
    Config(String),
    /// The private key is unusable. Permanent.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The request could not be signed. Permanent.
    #[error("failed to sign the request to Jira")]
    Sign(#[from] SignError),
}

impl JiraError {
    /// Whether trying again later may succeed: network errors, timeouts, 5xx and 429.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    /// A refusal for `problem` with its hint.
    pub fn refused(problem: &str) -> Self {
        // The value comes from the remote side: keep it short and printable.
        let problem: String = problem
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(64)
            .collect();
        let hint = hint_for(&problem);
        Self::Refused { problem, hint }
    }

    pub(crate) fn unavailable(reason: impl Into<String>, source: Option<reqwest::Error>) -> Self {
        Self::Unavailable {
            reason: reason.into(),
            source,
        }
    }

    /// An OAuth 2.0 refusal for `error` with its hint.
    pub fn oauth2_refused(error: &str) -> Self {
        let error: String = error
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(64)
            .collect();
        let hint = oauth2_hint(&error);
        Self::OAuth2Refused { error, hint }
    }

    /// Whether Jira said the grant (a code or a refresh token) is no longer valid.
    pub fn is_invalid_grant(&self) -> bool {
        matches!(self, Self::OAuth2Refused { error, .. } if error == "invalid_grant")
    }

    /// The HTTP status of an unexpected answer, if that is what this is.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Unexpected { status, .. } => Some(*status),
            Self::Unauthorized => Some(401),
            _ => None,
        }
    }

    /// `Unexpected` for `status` with an excerpt of `body` that cannot carry credentials.
    pub(crate) fn unexpected(status: u16, body: &str) -> Self {
        let excerpt: String = body
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(200)
            .collect();
        let excerpt = excerpt.trim();
        let detail = if excerpt.is_empty() {
            String::new()
        } else if excerpt.contains("oauth_token") {
            ": [body withheld: it mentions OAuth tokens]".to_owned()
        } else {
            format!(": {excerpt}")
        };
        Self::Unexpected { status, detail }
    }
}

/// What to check for each `oauth_problem` of the OAuth Problem Reporting
/// extension, as Jira reports them.
pub fn hint_for(problem: &str) -> &'static str {
    match problem {
        "consumer_key_unknown" => {
            "check the consumer key of the application link in Jira \
             (Administration > Application links > incoming authentication)"
        }
        "consumer_key_rejected" | "consumer_key_refused" => {
            "Jira knows the consumer key but does not accept it: check that incoming \
             authentication of the application link is enabled"
        }
        "signature_invalid" => {
            "check that the public key in Jira's application link matches the private key"
        }
        "signature_method_rejected" => {
            "Jira application links accept only RSA-SHA1; check the application link's \
             incoming authentication settings"
        }
        "timestamp_refused" => {
            "the clocks of this host and Jira differ too much: check NTP on both"
        }
        "nonce_used" => {
            "Jira saw this nonce before; a replayed request was rejected, start the step again"
        }
        "token_rejected" => {
            "Jira does not know this token: start the OAuth flow again \
             (jirasync oauth start), or re-install the integration if it was an access token"
        }
        "token_expired" => {
            "the token expired (request tokens live about 10 minutes): start the OAuth flow again"
        }
        "token_used" => "the request token was already exchanged: start the OAuth flow again",
        "token_revoked" => {
            "the access was revoked in Jira: start the OAuth flow again to re-authorize"
        }
        "permission_denied" | "permission_unknown" | "user_refused" => {
            "the Jira user did not grant access, or lacks permission: authorize again \
             as a user allowed to (a Jira administrator for webhooks)"
        }
        "additional_authorization_required" => {
            "the token lacks an authorization Jira needs: start the OAuth flow again"
        }
        "parameter_absent" | "parameter_rejected" | "version_rejected" => {
            "Jira rejected an OAuth parameter; this is a jirasync bug, report it with the \
             oauth_problem"
        }
        _ => "see Jira's log and the application link's settings",
    }
}

/// What to check for each error of Jira's OAuth 2.0 token endpoint (RFC 6749 §5.2).
pub fn oauth2_hint(error: &str) -> &'static str {
    match error {
        "invalid_client" | "unauthorized_client" => {
            "check the client id and the client secret of the application link in Jira \
             (Administration > Applications > Application links, External application)"
        }
        "invalid_grant" => {
            "the authorization code or refresh token is expired, used or revoked: \
             connect again with `jirasync oauth start --client-id …`"
        }
        "invalid_request" => {
            "check that the application link's redirect URL is JIRASYNC_PUBLIC_URL + \
             /extensions/jira-server/oauth2/callback"
        }
        "invalid_scope" => "the application link does not allow the scope asked for: check --scope",
        "access_denied" => "the Jira user did not allow access: authorize again",
        _ => "see Jira's log and the application link's settings",
    }
}

/// The `oauth_problem` of a `WWW-Authenticate: OAuth realm="…", oauth_problem="…"`
/// header, which Jira's REST resources send with a 401.
pub(crate) fn problem_from_www_authenticate(header: &str) -> Option<String> {
    let parameters = header.trim().strip_prefix("OAuth")?;
    parameters.split(',').find_map(|part| {
        let (name, value) = part.trim().split_once('=')?;
        (name.trim() == "oauth_problem")
            .then(|| super::form::decode(value.trim().trim_matches('"')))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_problem_has_a_specific_hint() {
        let generic = hint_for("something_new");
        for problem in [
            "consumer_key_unknown",
            "consumer_key_rejected",
            "consumer_key_refused",
            "signature_invalid",
            "signature_method_rejected",
            "timestamp_refused",
            "nonce_used",
            "token_rejected",
            "token_expired",
            "token_used",
            "token_revoked",
            "permission_denied",
            "permission_unknown",
            "user_refused",
            "additional_authorization_required",
            "parameter_absent",
            "parameter_rejected",
            "version_rejected",
        ] {
            assert_ne!(hint_for(problem), generic, "case {problem}");
            let error = JiraError::refused(problem);
            assert!(!error.is_transient(), "case {problem}");
            assert!(error.to_string().contains(problem), "case {problem}");
        }
    }

    #[test]
    fn only_unavailable_is_transient() {
        assert!(JiraError::unavailable("HTTP 503", None).is_transient());
        assert!(!JiraError::unexpected(400, "").is_transient());
        assert!(!JiraError::InvalidResponse { reason: "x".into() }.is_transient());
    }

    #[test]
    fn unexpected_bodies_are_shortened_and_never_echo_tokens() {
        let error = JiraError::unexpected(400, "oauth_token=abc&oauth_token_secret=def");
        assert!(!error.to_string().contains("abc"), "{error}");
        let error = JiraError::unexpected(400, &"x".repeat(1000));
        assert!(error.to_string().len() < 300, "{error}");
    }

    #[test]
    fn remote_problem_values_are_sanitized() {
        let error =
            JiraError::refused("evil\nvalue with spaces and more than sixty-four characters in it");
        let JiraError::Refused { problem, .. } = error else {
            panic!("not Refused");
        };
        assert!(problem.len() <= 64 && !problem.contains('\n'), "{problem}");
    }

    #[test]
    fn problems_are_read_from_www_authenticate() {
        let header =
            r#"OAuth realm="https%3A%2F%2Fjira.example.com", oauth_problem="token_rejected""#;
        assert_eq!(
            problem_from_www_authenticate(header).as_deref(),
            Some("token_rejected")
        );
        assert_eq!(problem_from_www_authenticate("Basic realm=\"x\""), None);
        assert_eq!(problem_from_www_authenticate(r#"OAuth realm="x""#), None);
    }
}
