//! The errors of Jira calls, split by what the caller should do: retry
//! (`Unavailable`, a `429` with its `Retry-After`) or stop and tell a human
//! (everything else, with a hint; a refusal — `400`, `403`, `404`, an OAuth
//! refusal, a transition asking for fields — with Jira's own message in one
//! line). Display texts never contain tokens, secrets or key material.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::oauth1_signing::{KeyError, SignError};

/// How long to wait after a `429` without a usable `Retry-After`.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);
/// The longest `Retry-After` honoured: a Jira asking for more is asked again then.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);
/// The longest message of Jira's kept in an error, in characters.
const MAX_MESSAGE_CHARS: usize = 200;

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
        /// For a `429`: how long Jira asked callers to wait (its `Retry-After`,
        /// bounded; [`DEFAULT_RETRY_AFTER`] when it named none).
        retry_after: Option<Duration>,
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
        /// Jira's `errorMessages` and `errors` in one short sanitized line, else a
        /// short sanitized excerpt of the body (may be empty), prefixed by `: `.
        detail: String,
    },
    /// A workflow transition asks for fields jirasync cannot fill (required, with
    /// no default, and not a mapped resolution). Permanent: the workflow's screen
    /// or the status mapping must change.
    #[error("Jira's transition {transition} requires {fields}, which jirasync cannot fill")]
    FieldsRequired {
        /// The transition (its name and id), as Jira names it.
        transition: String,
        /// The fields (their names and ids), as Jira names them.
        fields: String,
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

    /// Whether Jira refused the request itself — `400`, `403`, `404`, an OAuth
    /// 1.0a refusal (`oauth_problem`), or a transition asking for fields jirasync
    /// cannot fill: sending it again fails the same way until a human fixes the
    /// workflow, the permission or the mapping.
    pub fn is_refusal(&self) -> bool {
        match self {
            Self::Refused { .. } | Self::FieldsRequired { .. } => true,
            Self::Unexpected { status, .. } => matches!(status, 400 | 403 | 404),
            _ => false,
        }
    }

    /// For a `429`: how long Jira asked to wait before the next call.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// What Jira said, in one short line without the status: its `errorMessages`
    /// and `errors` (or an excerpt of its answer), the `oauth_problem` of a
    /// refusal, the fields a transition asks for; `None` when it said nothing.
    pub fn jira_message(&self) -> Option<String> {
        match self {
            Self::Unexpected { detail, .. } => detail
                .strip_prefix(": ")
                .filter(|message| !message.is_empty())
                .map(str::to_owned),
            Self::Refused { problem, hint } => Some(format!("oauth_problem={problem}: {hint}")),
            Self::FieldsRequired { transition, fields } => {
                Some(format!("transition {transition} requires {fields}"))
            }
            _ => None,
        }
    }

    /// A transition of `transition` that asks for `fields`; both come from Jira
    /// and are kept short and printable.
    pub fn fields_required(transition: &str, fields: &str) -> Self {
        Self::FieldsRequired {
            transition: one_line(transition),
            fields: one_line(fields),
        }
    }

    /// `Unavailable` for a `429` whose `Retry-After` header is `header`, read at `now`.
    pub(crate) fn throttled(header: Option<&str>, now: DateTime<Utc>) -> Self {
        let wait = retry_after(header, now);
        Self::Unavailable {
            reason: format!(
                "HTTP 429 Too Many Requests, retry after {} s",
                wait.as_secs()
            ),
            source: None,
            retry_after: Some(wait),
        }
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
            retry_after: None,
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

    /// `Unexpected` for `status` with Jira's messages, else an excerpt of `body`,
    /// in a line that cannot carry credentials.
    pub(crate) fn unexpected(status: u16, body: &str) -> Self {
        let message = jira_messages(body).unwrap_or_else(|| one_line(body));
        let detail = if message.is_empty() {
            String::new()
        } else if message.contains("oauth_token") {
            ": [body withheld: it mentions OAuth tokens]".to_owned()
        } else {
            format!(": {message}")
        };
        Self::Unexpected { status, detail }
    }
}

/// `text` as one short printable line: control characters and runs of white
/// space become one space, at most [`MAX_MESSAGE_CHARS`] characters (`…` when cut).
fn one_line(text: &str) -> String {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|word| !word.is_empty())
        .collect();
    let line = words.join(" ");
    if line.chars().count() <= MAX_MESSAGE_CHARS {
        return line;
    }
    let mut cut: String = line.chars().take(MAX_MESSAGE_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// Jira's own account of a refusal — `{"errorMessages": […], "errors": {field: message}}`
/// — as one line: the messages, then `field: message` pairs, joined by `; `.
/// `None` when `body` is not such an answer or says nothing.
fn jira_messages(body: &str) -> Option<String> {
    let answer: serde_json::Value = serde_json::from_str(body).ok()?;
    let messages = answer.get("errorMessages").and_then(|m| m.as_array());
    let errors = answer.get("errors").and_then(|e| e.as_object());
    if messages.is_none() && errors.is_none() {
        return None;
    }
    let text = |value: &serde_json::Value| match value {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    // By field name, whatever order the map keeps.
    let mut fields: Vec<String> = errors
        .into_iter()
        .flatten()
        .map(|(field, message)| format!("{field}: {}", text(message)))
        .collect();
    fields.sort();
    let parts: Vec<String> = messages
        .into_iter()
        .flatten()
        .map(text)
        .chain(fields)
        .filter(|part| !part.trim().is_empty())
        .collect();
    Some(one_line(&parts.join("; ")))
}

/// How long a `429` asks to wait: its `Retry-After` in seconds or as an HTTP
/// date (from `now`), [`DEFAULT_RETRY_AFTER`] when absent or unreadable, at most
/// [`MAX_RETRY_AFTER`].
pub fn retry_after(header: Option<&str>, now: DateTime<Utc>) -> Duration {
    let Some(value) = header.map(str::trim).filter(|value| !value.is_empty()) else {
        return DEFAULT_RETRY_AFTER;
    };
    let wait = if value.bytes().all(|b| b.is_ascii_digit()) {
        // All digits: too many of them is "very long", not unreadable.
        Duration::from_secs(value.parse().unwrap_or(u64::MAX))
    } else {
        match DateTime::parse_from_rfc2822(value) {
            Ok(at) => (at.with_timezone(&Utc) - now)
                .to_std()
                .unwrap_or(Duration::ZERO),
            Err(_) => DEFAULT_RETRY_AFTER,
        }
    };
    wait.min(MAX_RETRY_AFTER)
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
        assert!(JiraError::throttled(Some("30"), Utc::now()).is_transient());
        assert!(!JiraError::unexpected(400, "").is_transient());
        assert!(!JiraError::InvalidResponse { reason: "x".into() }.is_transient());
    }

    #[test]
    fn refusals_are_400_403_404_oauth_problems_and_unfillable_fields() {
        let cases = [
            ("400", JiraError::unexpected(400, ""), true),
            ("403", JiraError::unexpected(403, ""), true),
            ("404", JiraError::unexpected(404, ""), true),
            ("oauth_problem", JiraError::refused("token_rejected"), true),
            (
                "fields",
                JiraError::fields_required("Close (2)", "Root cause"),
                true,
            ),
            ("401", JiraError::Unauthorized, false),
            ("409", JiraError::unexpected(409, ""), false),
            ("302", JiraError::unexpected(302, ""), false),
            ("503", JiraError::unavailable("HTTP 503", None), false),
            ("429", JiraError::throttled(None, Utc::now()), false),
        ];
        for (case, error, refusal) in cases {
            assert_eq!(error.is_refusal(), refusal, "case {case}");
            assert!(!(error.is_refusal() && error.is_transient()), "case {case}");
        }
    }

    #[test]
    fn jiras_error_messages_and_field_errors_make_one_line() {
        let body = r#"{"errorMessages":["Root cause is required","Second\nline"],
                       "errors":{"customfield_10100":"Pick a value","assignee":"User 'x' cannot be assigned"}}"#;
        let error = JiraError::unexpected(400, body);
        assert_eq!(
            error.jira_message().as_deref(),
            Some(
                "Root cause is required; Second line; assignee: User 'x' cannot be assigned; \
                 customfield_10100: Pick a value"
            )
        );
        assert_eq!(error.status(), Some(400));
        assert!(
            error
                .to_string()
                .starts_with("unexpected answer from Jira: HTTP 400: Root")
        );
        let empty = JiraError::unexpected(404, r#"{"errorMessages":[],"errors":{}}"#);
        assert_eq!(empty.jira_message(), None);
        let html = JiraError::unexpected(404, "<html>\n<body>Not Found</body></html>");
        assert_eq!(
            html.jira_message().as_deref(),
            Some("<html> <body>Not Found</body></html>")
        );
        let long = format!(r#"{{"errorMessages":["{}"]}}"#, "x".repeat(1000));
        let message = JiraError::unexpected(400, &long)
            .jira_message()
            .unwrap_or_default();
        assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS);
        assert!(message.ends_with('…'));
        let tokens = JiraError::unexpected(400, r#"{"errorMessages":["oauth_token=abc"]}"#);
        assert!(!tokens.to_string().contains("abc"), "{tokens}");
    }

    #[test]
    fn retry_after_is_read_in_seconds_or_as_a_date_and_bounded() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let cases = [
            ("absent", None, DEFAULT_RETRY_AFTER),
            ("empty", Some(" "), DEFAULT_RETRY_AFTER),
            ("seconds", Some("120"), Duration::from_secs(120)),
            ("zero", Some("0"), Duration::ZERO),
            ("too long", Some("86400"), MAX_RETRY_AFTER),
            ("huge", Some("99999999999999999999999"), MAX_RETRY_AFTER),
            (
                "date",
                Some("Wed, 21 Oct 2015 07:28:30 GMT"),
                Duration::from_secs(30),
            ),
            (
                "past date",
                Some("Wed, 21 Oct 2015 07:27:00 GMT"),
                Duration::ZERO,
            ),
            (
                "far date",
                Some("Thu, 22 Oct 2015 07:28:00 GMT"),
                MAX_RETRY_AFTER,
            ),
            ("negative", Some("-5"), DEFAULT_RETRY_AFTER),
            ("garbage", Some("soon"), DEFAULT_RETRY_AFTER),
        ];
        for (case, header, expected) in cases {
            assert_eq!(retry_after(header, now), expected, "case {case}");
        }
        let error = JiraError::throttled(Some("7"), now);
        assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
        assert!(error.to_string().contains("429"), "{error}");
        assert_eq!(JiraError::unavailable("HTTP 503", None).retry_after(), None);
    }

    proptest::proptest! {
        #[test]
        fn any_answer_gives_a_short_printable_message(body in ".{0,400}") {
            let error = JiraError::unexpected(400, &body);
            if let Some(message) = error.jira_message() {
                proptest::prop_assert!(message.chars().count() <= MAX_MESSAGE_CHARS);
                proptest::prop_assert!(!message.chars().any(char::is_control));
            }
        }

        #[test]
        fn any_retry_after_is_bounded(header in "\\PC{0,40}") {
            proptest::prop_assert!(retry_after(Some(&header), Utc::now()) <= MAX_RETRY_AFTER);
        }
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
