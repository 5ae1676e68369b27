//! The integration's routes on the ingress (docs/reference.md §3) and the URLs
//! built from them under `JIRASYNC_PUBLIC_URL`: the router and every URL handed to
//! Jira are made from these constants, so they cannot drift apart.

/// The webhook route, before its token: Sentry's path, so webhooks registered
/// against Sentry keep working.
pub const WEBHOOK_PATH: &str = "/extensions/jira-server/issue-updated/";

/// Where Jira redirects after the user authorizes (OAuth 1.0a).
pub const OAUTH_CALLBACK_PATH: &str = "/extensions/jira-server/oauth/callback";

/// Where Jira redirects after the user authorizes (OAuth 2.0).
pub const OAUTH2_CALLBACK_PATH: &str = "/extensions/jira-server/oauth2/callback";

/// The Jira Cloud webhook route, before its token (docs/reference.md §11.4): a
/// path of its own, so the ingress knows the provider without a database.
pub const CLOUD_WEBHOOK_PATH: &str = "/extensions/jira-cloud/issue-updated/";

/// Where Atlassian redirects after the user authorizes a Cloud OAuth 2.0 (3LO) app.
pub const CLOUD_OAUTH2_CALLBACK_PATH: &str = "/extensions/jira-cloud/oauth2/callback";

/// The webhook route with its `{token}` segment, without and with the trailing
/// slash (both are served).
pub fn webhook_routes() -> [String; 2] {
    routes_of(WEBHOOK_PATH)
}

/// The Jira Cloud webhook route with its `{token}` segment, as [`webhook_routes`].
pub fn cloud_webhook_routes() -> [String; 2] {
    routes_of(CLOUD_WEBHOOK_PATH)
}

fn routes_of(path: &str) -> [String; 2] {
    let route = format!("{path}{{token}}");
    [route.clone(), format!("{route}/")]
}

/// `JIRASYNC_PUBLIC_URL` + `/extensions/jira-cloud/issue-updated/<token>/`.
pub fn cloud_webhook_url(public_url: &str, token: &str) -> String {
    format!(
        "{}{CLOUD_WEBHOOK_PATH}{token}/",
        public_url.trim_end_matches('/')
    )
}

/// `JIRASYNC_PUBLIC_URL` + the Cloud OAuth 2.0 callback route: the `redirect_uri`.
pub fn cloud_oauth2_callback_url(public_url: &str) -> String {
    format!(
        "{}{CLOUD_OAUTH2_CALLBACK_PATH}",
        public_url.trim_end_matches('/')
    )
}

/// `JIRASYNC_PUBLIC_URL` + `/extensions/jira-server/issue-updated/<token>/`.
pub fn webhook_url(public_url: &str, token: &str) -> String {
    format!("{}{WEBHOOK_PATH}{token}/", public_url.trim_end_matches('/'))
}

/// `JIRASYNC_PUBLIC_URL` + the OAuth callback route.
pub fn oauth_callback_url(public_url: &str) -> String {
    format!("{}{OAUTH_CALLBACK_PATH}", public_url.trim_end_matches('/'))
}

/// `JIRASYNC_PUBLIC_URL` + the OAuth 2.0 callback route: the `redirect_uri`.
pub fn oauth2_callback_url(public_url: &str) -> String {
    format!("{}{OAUTH2_CALLBACK_PATH}", public_url.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_the_routes_under_the_public_url() {
        assert_eq!(
            webhook_url("https://sync.example.org/", "a.b.c"),
            "https://sync.example.org/extensions/jira-server/issue-updated/a.b.c/"
        );
        assert_eq!(
            oauth_callback_url("http://127.0.0.1:8080"),
            "http://127.0.0.1:8080/extensions/jira-server/oauth/callback"
        );
        assert_eq!(
            webhook_routes(),
            [
                "/extensions/jira-server/issue-updated/{token}".to_owned(),
                "/extensions/jira-server/issue-updated/{token}/".to_owned()
            ]
        );
        assert_eq!(
            cloud_webhook_url("https://sync.example.org/", "a.b.c"),
            "https://sync.example.org/extensions/jira-cloud/issue-updated/a.b.c/"
        );
        assert_eq!(
            cloud_webhook_routes()[1],
            "/extensions/jira-cloud/issue-updated/{token}/"
        );
    }
}
