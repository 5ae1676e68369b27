//! The signature base string of RFC 5849 §3.4.1: percent-encoding (§3.6), the
//! base string URI (§3.4.1.2) and parameter normalization (§3.4.1.3.2).
//! Used by the signer in `oauth1_signing/mod.rs`; pure functions, no I/O.

use reqwest::Url;

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Percent-encodes `value` as RFC 5849 §3.6 requires: UTF-8 bytes, every byte
/// except the unreserved `ALPHA / DIGIT / "-" / "." / "_" / "~"` as `%XX` with
/// uppercase hex. (Not `application/x-www-form-urlencoded`: a space is `%20`.)
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for &byte in value.as_bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
    out
}

/// The base string URI of §3.4.1.2: lowercase scheme and host, the port only
/// when it is not the scheme's default, the path, and neither query nor fragment.
/// `None` when the URL has no host.
pub fn base_string_uri(url: &Url) -> Option<String> {
    let scheme = url.scheme().to_ascii_lowercase();
    let host = url.host_str()?.to_ascii_lowercase();
    // `Url` already drops a default port when parsing; this keeps the rule
    // explicit for the two schemes the RFC names.
    let port = match (scheme.as_str(), url.port()) {
        ("http", Some(80)) | ("https", Some(443)) | (_, None) => String::new(),
        (_, Some(port)) => format!(":{port}"),
    };
    let path = match url.path() {
        "" => "/",
        path => path,
    };
    Some(format!("{scheme}://{host}{port}{path}"))
}

/// The normalized request parameters of §3.4.1.3.2: every name and value
/// percent-encoded, sorted by encoded name and then encoded value (byte order),
/// joined as `name=value` pairs with `&`.
pub fn normalize_parameters<'a, I>(parameters: I) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut encoded: Vec<(String, String)> = parameters
        .into_iter()
        .map(|(name, value)| (percent_encode(name), percent_encode(value)))
        .collect();
    encoded.sort_unstable();
    encoded
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The signature base string of §3.4.1.1: uppercase method, encoded base
/// string URI and encoded normalized parameters, joined with `&`.
pub fn signature_base_string(method: &str, base_uri: &str, normalized: &str) -> String {
    format!(
        "{}&{}&{}",
        method.to_ascii_uppercase(),
        percent_encode(base_uri),
        percent_encode(normalized)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_keeps_only_unreserved_characters() {
        let cases = [
            ("abcXYZ019-._~", "abcXYZ019-._~"),
            ("a b", "a%20b"),
            ("a+b", "a%2Bb"),
            ("=%3D", "%3D%253D"),
            ("c@", "c%40"),
            ("jörg", "j%C3%B6rg"),
            ("*'()!", "%2A%27%28%29%21"),
            ("", ""),
        ];
        for (raw, expected) in cases {
            assert_eq!(percent_encode(raw), expected, "case {raw:?}");
        }
    }

    #[test]
    fn base_string_uri_lowercases_and_drops_default_ports_and_query() {
        let cases = [
            (
                "HTTP://EXAMPLE.COM:80/r%20v/X?id=123",
                "http://example.com/r%20v/X",
            ),
            (
                "https://www.example.net:8080/?q=1",
                "https://www.example.net:8080/",
            ),
            ("https://Jira.Example.COM:443", "https://jira.example.com/"),
            (
                "http://jira.local:8443/jira/rest#frag",
                "http://jira.local:8443/jira/rest",
            ),
            ("https://[::1]:8080/x", "https://[::1]:8080/x"),
        ];
        for (raw, expected) in cases {
            let url = Url::parse(raw).expect("test URL parses");
            assert_eq!(
                base_string_uri(&url).as_deref(),
                Some(expected),
                "case {raw}"
            );
        }
    }

    #[test]
    fn parameters_sort_by_encoded_name_then_encoded_value() {
        // Raw order would put "~" before "é" and "a b" after "a!"; encoded order differs.
        let normalized = normalize_parameters([
            ("é", "1"),
            ("~", "1"),
            ("a", "z"),
            ("a", "b c"),
            ("a", "b"),
            ("a!", ""),
        ]);
        assert_eq!(normalized, "%C3%A9=1&a=b&a=b%20c&a=z&a%21=&~=1");
    }

    #[test]
    fn rfc5849_section_3_4_1_3_2_example_normalizes_as_published() {
        let normalized = normalize_parameters([
            ("b5", "=%3D"),
            ("a3", "a"),
            ("c@", ""),
            ("a2", "r b"),
            ("oauth_consumer_key", "9djdj82h48djs9d2"),
            ("oauth_token", "kkk9d7dh3k39sjv7"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "137131201"),
            ("oauth_nonce", "7d8f3e4a"),
            ("c2", ""),
            ("a3", "2 q"),
        ]);
        assert_eq!(
            normalized,
            "a2=r%20b&a3=2%20q&a3=a&b5=%3D%253D&c%40=&c2=&oauth_consumer_key=9dj\
             dj82h48djs9d2&oauth_nonce=7d8f3e4a&oauth_signature_method=HMAC-SHA1\
             &oauth_timestamp=137131201&oauth_token=kkk9d7dh3k39sjv7"
        );
    }
}
