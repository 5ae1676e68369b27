//! The parts of Jira Cloud's OAuth 2.0 (3LO) install that are rules rather than
//! calls (docs/reference.md §11; CONTRACT §11.3b): the authorize URL an admin
//! opens, the scopes a grant must hold, and which of the sites the token reaches
//! is the one to connect.

use serde::Deserialize;

/// The scopes jirasync asks for, in the order the authorize URL lists them:
/// read users and issues, write issues, manage its dynamic webhook, and a
/// refresh token.
pub const SCOPES: [&str; 5] = [
    "read:jira-user",
    "read:jira-work",
    "write:jira-work",
    "manage:jira-webhook",
    "offline_access",
];

/// `<AUTH>/authorize?audience=api.atlassian.com&client_id=…&scope=…&redirect_uri=…&state=…&response_type=code&prompt=consent`
/// (spaces in the scope written `%20`; no PKCE: Atlassian documents none).
pub fn authorize_url(auth_url: &str, client_id: &str, redirect_uri: &str, state: &str) -> String {
    let scope = SCOPES.map(encode).join("%20");
    format!(
        "{}/authorize?audience=api.atlassian.com&client_id={}&scope={scope}&redirect_uri={}&state={}&response_type=code&prompt=consent",
        auth_url.trim_end_matches('/'),
        encode(client_id),
        encode(redirect_uri),
        encode(state),
    )
}

/// `value` percent-encoded as a query value (RFC 3986 unreserved kept).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// The first of [`SCOPES`] a granted `scope` (space-separated, as the token
/// endpoint answers it) lacks; `None` when it holds them all.
pub fn missing_scope(granted: &str) -> Option<&'static str> {
    let granted: Vec<&str> = granted.split_whitespace().collect();
    SCOPES.into_iter().find(|scope| !granted.contains(scope))
}

/// One site `GET <API>/oauth/token/accessible-resources` lists.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Resource {
    /// The site's cloudId.
    pub id: String,
    /// The site, `https://acme.atlassian.net`.
    pub url: String,
    /// Its name, e.g. `acme`.
    #[serde(default)]
    pub name: String,
}

/// The site to connect among those the token reaches: the one whose `url` is
/// `site` (when given), else the only one; else a line naming them.
pub fn choose_site<'a>(
    resources: &'a [Resource],
    site: Option<&str>,
) -> Result<&'a Resource, String> {
    let urls = || {
        let urls: Vec<&str> = resources.iter().map(|r| r.url.as_str()).collect();
        if urls.is_empty() {
            "none".to_owned()
        } else {
            urls.join(", ")
        }
    };
    match site.map(|site| site.trim().trim_end_matches('/')) {
        Some(site) => resources
            .iter()
            .find(|resource| resource.url.trim_end_matches('/').eq_ignore_ascii_case(site))
            .ok_or_else(|| {
                format!(
                    "the authorization does not reach {site}; it reaches: {}. Authorize as a user of that site, or start again with its --site",
                    urls()
                )
            }),
        None => match resources {
            [only] => Ok(only),
            _ => Err(format!(
                "the authorization reaches {} sites ({}); start again with --site naming the one to connect",
                resources.len(),
                urls()
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authorize_url_is_atlassians_with_every_scope_and_encoded_values() {
        let url = authorize_url(
            "https://auth.atlassian.com/",
            "cid 1",
            "https://sync.example.org/extensions/jira-cloud/oauth2/callback",
            "st+ate",
        );
        assert_eq!(
            url,
            "https://auth.atlassian.com/authorize?audience=api.atlassian.com&client_id=cid%201\
             &scope=read%3Ajira-user%20read%3Ajira-work%20write%3Ajira-work%20manage%3Ajira-webhook%20offline_access\
             &redirect_uri=https%3A%2F%2Fsync.example.org%2Fextensions%2Fjira-cloud%2Foauth2%2Fcallback\
             &state=st%2Bate&response_type=code&prompt=consent"
        );
    }

    #[test]
    fn a_grant_missing_a_scope_names_it() {
        assert_eq!(missing_scope(&SCOPES.join(" ")), None);
        assert_eq!(
            missing_scope("read:jira-user read:jira-work write:jira-work offline_access"),
            Some("manage:jira-webhook")
        );
        assert_eq!(missing_scope(""), Some("read:jira-user"));
    }

    #[test]
    fn the_site_is_the_one_named_else_the_only_one() {
        let acme = Resource {
            id: "1".into(),
            url: "https://acme.atlassian.net".into(),
            name: "acme".into(),
        };
        let beta = Resource {
            id: "2".into(),
            url: "https://beta.atlassian.net".into(),
            name: "beta".into(),
        };
        let both = [acme.clone(), beta.clone()];
        assert_eq!(
            choose_site(&both, Some("https://BETA.atlassian.net/")),
            Ok(&beta)
        );
        assert_eq!(choose_site(std::slice::from_ref(&acme), None), Ok(&acme));
        let several = choose_site(&both, None).expect_err("two sites");
        assert!(
            several.contains("2 sites") && several.contains("beta"),
            "{several}"
        );
        let none = choose_site(&[], None).expect_err("no site");
        assert!(none.contains("none"), "{none}");
        let elsewhere =
            choose_site(&both, Some("https://gamma.atlassian.net")).expect_err("not reached");
        assert!(elsewhere.contains("gamma"), "{elsewhere}");
    }
}
