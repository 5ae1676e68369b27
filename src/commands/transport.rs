//! The warnings `integration add`, `oauth start` and `integration webhook-url`
//! print on stderr (docs/reference.md §1) when what they set up would carry
//! tokens and secrets unprotected: a Jira base URL or `JIRASYNC_PUBLIC_URL` that
//! is `http://` to a host other than this machine, or Jira's certificate not
//! verified (`--no-verify-ssl`). One line each: the risk, and what to do.

use std::net::IpAddr;

use reqwest::Url;

use crate::config::redact_url;

/// The warnings for a Jira at `base_url` (certificate checked unless not
/// `verify_ssl`) and webhook and callback URLs built on `public_url`.
pub fn warnings(base_url: &str, verify_ssl: bool, public_url: Option<&str>) -> Vec<String> {
    let mut warnings = Vec::new();
    if cleartext_to_another_host(base_url) {
        warnings.push(format!(
            "warning: the Jira base URL {} is http:// to another host: jirasync's tokens and \
             Jira's answers (emails included) cross the network unencrypted; use Jira's https:// URL",
            redact_url(base_url)
        ));
    }
    if !verify_ssl {
        warnings.push(
            "warning: Jira's TLS certificate is not verified (--no-verify-ssl), so whoever is on \
             the path can pose as Jira and take jirasync's tokens; make jirasync trust Jira's \
             certificate (its CA in the system's trust store) and connect without --no-verify-ssl"
                .to_owned(),
        );
    }
    if let Some(public_url) = public_url.filter(|url| cleartext_to_another_host(url)) {
        warnings.push(format!(
            "warning: JIRASYNC_PUBLIC_URL {} is http:// to another host: the webhook URL's token \
             and OAuth codes cross the network unencrypted; serve jirasync over https:// and set \
             JIRASYNC_PUBLIC_URL to that address",
            redact_url(public_url)
        ));
    }
    warnings
}

/// Prints [`warnings`] on stderr.
pub fn warn(base_url: &str, verify_ssl: bool, public_url: Option<&str>) {
    for warning in warnings(base_url, verify_ssl, public_url) {
        eprintln!("{warning}");
    }
}

/// Whether `url` is `http://` to a host that is not this machine (`localhost`,
/// 127.0.0.0/8, `::1`). An unparsable URL is no warning: its own check says why.
fn cleartext_to_another_host(url: &str) -> bool {
    let Ok(url) = Url::parse(url.trim()) else {
        return false;
    };
    if url.scheme() != "http" {
        return false;
    }
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(ip) => !ip.to_canonical().is_loopback(),
        Err(_) => {
            let name = host.trim_end_matches('.').to_ascii_lowercase();
            name != "localhost" && !name.ends_with(".localhost")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_cleartext_to_another_host_is_warned_about() {
        for (url, warned) in [
            ("http://jira.example.com", true),
            ("http://jira.example.com:8080/jira", true),
            ("http://10.0.0.5", true),
            ("http://[2001:db8::1]:8080", true),
            ("HTTP://Jira.Example.com", true),
            ("https://jira.example.com", false),
            ("http://localhost:8080", false),
            ("http://LOCALHOST.", false),
            ("http://jira.localhost", false),
            ("http://127.0.0.1:8080", false),
            ("http://127.1.2.3", false),
            ("http://[::1]:8080", false),
            ("http://[::ffff:127.0.0.1]", false),
            ("not a url", false),
        ] {
            assert_eq!(cleartext_to_another_host(url), warned, "{url}");
        }
    }

    #[test]
    fn each_risk_is_one_line_naming_what_to_do() {
        assert!(
            warnings(
                "https://jira.example.com",
                true,
                Some("https://sync.example.com")
            )
            .is_empty()
        );
        let all = warnings(
            "http://user:pw@jira.example.com",
            false,
            Some("http://sync.example.com"),
        );
        assert_eq!(all.len(), 3, "{all:?}");
        assert!(
            all.iter()
                .all(|line| !line.contains('\n') && !line.contains("pw@")),
            "{all:?}"
        );
        assert!(all[0].contains("use Jira's https:// URL"), "{}", all[0]);
        assert!(all[1].contains("without --no-verify-ssl"), "{}", all[1]);
        assert!(all[2].contains("JIRASYNC_PUBLIC_URL"), "{}", all[2]);
    }
}
