//! Where Atlassian's own servers are for Jira Cloud (docs/reference.md §11.1):
//! the authorization server `<AUTH>` and the API gateway `<API>`. Changed only
//! for tests or an egress proxy; like `--site`, each must be `https://` unless
//! its host is a loopback address.

use clap::Args;
use std::net::IpAddr;
use std::time::Duration;

use reqwest::Url;

/// Atlassian's authorization server and API gateway.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Jira Cloud")]
pub struct AtlassianSettings {
    /// `<AUTH>`, Atlassian's authorization server (OAuth 2.0 tokens); change it
    /// only for tests or an egress proxy.
    #[arg(
        id = "atlassian_auth_url",
        long = "atlassian-auth-url",
        value_name = "URL",
        env = "JIRASYNC_ATLASSIAN_AUTH_URL",
        default_value = "https://auth.atlassian.com",
        value_parser = parse_auth_url
    )]
    pub auth_url: String,

    /// `<API>`, Atlassian's API gateway (`<API>/ex/jira/<cloudId>`); change it
    /// only for tests or an egress proxy.
    #[arg(
        id = "atlassian_api_url",
        long = "atlassian-api-url",
        value_name = "URL",
        env = "JIRASYNC_ATLASSIAN_API_URL",
        default_value = "https://api.atlassian.com",
        value_parser = parse_api_url
    )]
    pub api_url: String,

    /// How often a 3LO integration's dynamic webhook is refreshed (Atlassian
    /// lets one expire after 30 days); at least `1s`.
    #[arg(
        long = "cloud-webhook-refresh-interval",
        value_name = "DURATION",
        env = "JIRASYNC_CLOUD_WEBHOOK_REFRESH_INTERVAL",
        default_value = "7d",
        value_parser = parse_refresh_interval
    )]
    pub webhook_refresh_interval: Duration,

    /// The `jqlFilter` of the dynamic webhooks a 3LO integration registers
    /// (Atlassian allows `=`, `!=`, `IN`, `NOT IN` on a few fields).
    #[arg(
        long = "cloud-webhook-jql",
        value_name = "JQL",
        env = "JIRASYNC_CLOUD_WEBHOOK_JQL",
        default_value = "project != NULL",
        value_parser = parse_jql
    )]
    pub webhook_jql: String,
}

impl AtlassianSettings {
    /// The gateway base of the site `cloud_id`: `<API>/ex/jira/<cloudId>`.
    pub fn gateway(&self, cloud_id: &str) -> String {
        format!("{}/ex/jira/{cloud_id}", self.api_url)
    }

    /// `<AUTH>/oauth/token`.
    pub fn token_url(&self) -> String {
        token_url(&self.auth_url)
    }
}

/// `<auth_url>/oauth/token`: where OAuth 2.0 tokens are obtained.
pub fn token_url(auth_url: &str) -> String {
    format!("{}/oauth/token", auth_url.trim_end_matches('/'))
}

fn parse_refresh_interval(s: &str) -> Result<Duration, String> {
    let every = super::values::parse_duration(s)?;
    if every < Duration::from_secs(1) {
        return Err(format!(
            "JIRASYNC_CLOUD_WEBHOOK_REFRESH_INTERVAL {s:?} must be at least 1s (the default, 7d, \
             refreshes a webhook four times before Atlassian would let it expire)"
        ));
    }
    Ok(every)
}

fn parse_jql(s: &str) -> Result<String, String> {
    let jql = s.trim();
    if jql.is_empty() || jql.len() > 1000 || jql.chars().any(char::is_control) {
        return Err(
            "JIRASYNC_CLOUD_WEBHOOK_JQL must be a JQL filter of 1 to 1000 characters on one line, \
             such as `project != NULL` or `project IN (ACME, OPS)`"
                .to_owned(),
        );
    }
    Ok(jql.to_owned())
}

fn parse_auth_url(s: &str) -> Result<String, String> {
    secure_url("JIRASYNC_ATLASSIAN_AUTH_URL", s)
}

fn parse_api_url(s: &str) -> Result<String, String> {
    secure_url("JIRASYNC_ATLASSIAN_API_URL", s)
}

/// `s` without trailing slashes, once it is an `https://` URL (or `http://` to a
/// loopback host: a test's fake) with a host and without credentials, query or
/// fragment; else a refusal naming `what`. Used for the two settings and `--site`.
pub fn secure_url(what: &str, s: &str) -> Result<String, String> {
    let trimmed = s.trim().trim_end_matches('/');
    let url = Url::parse(trimmed).map_err(|e| format!("{what} {trimmed:?} is not a URL: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{what} must not contain credentials"));
    }
    let Some(host) = url.host_str() else {
        return Err(format!("{what} {trimmed:?} has no host"));
    };
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{what} {trimmed:?} must not have a query or fragment"
        ));
    }
    let ip = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || ip.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => Ok(trimmed.to_owned()),
        "http" if loopback => Ok(trimmed.to_owned()),
        "http" => Err(format!(
            "{what} {trimmed:?} must be https:// (plain http:// is allowed only to a loopback \
             address, for tests): credentials would cross the network in the clear"
        )),
        other => Err(format!(
            "{what} {trimmed:?} must be an https:// URL, not {other}://"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atlassian_urls_must_be_https_unless_their_host_is_loopback() {
        let cases = [
            ("https://auth.atlassian.com", true),
            ("https://acme.atlassian.net/", true),
            ("http://127.0.0.1:4000", true),
            ("http://[::1]:4000", true),
            ("http://localhost:4000", true),
            ("http://acme.atlassian.net", false),
            ("http://10.0.0.1", false),
            ("ftp://acme.atlassian.net", false),
            ("https://user:pw@acme.atlassian.net", false),
            ("https://acme.atlassian.net/?x=1", false),
            ("acme.atlassian.net", false),
        ];
        for (url, ok) in cases {
            let got = secure_url("--site", url);
            assert_eq!(got.is_ok(), ok, "case {url}: {got:?}");
            if let Err(why) = got {
                assert!(why.starts_with("--site"), "case {url}: {why}");
                assert!(!why.contains("pw"), "case {url}: {why}");
            }
        }
        assert_eq!(
            secure_url("--site", "https://acme.atlassian.net/").as_deref(),
            Ok("https://acme.atlassian.net")
        );
    }

    #[test]
    fn the_refresh_interval_is_at_least_a_second_and_the_jql_one_line() {
        assert_eq!(
            parse_refresh_interval("7d"),
            Ok(Duration::from_secs(7 * 86_400))
        );
        assert_eq!(parse_refresh_interval("1s"), Ok(Duration::from_secs(1)));
        for short in ["0", "500ms"] {
            let refused = parse_refresh_interval(short).expect_err(short);
            assert!(refused.contains("at least 1s"), "{refused}");
        }
        assert_eq!(
            parse_jql(" project IN (ACME) ").as_deref(),
            Ok("project IN (ACME)")
        );
        for bad in ["", "  ", "project = A\nOR 1", &"x".repeat(1001)] {
            assert!(parse_jql(bad).is_err(), "{bad:?}");
        }
    }
}
