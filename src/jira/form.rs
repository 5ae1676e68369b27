//! Decoding of `application/x-www-form-urlencoded` text, the format of Jira's
//! OAuth endpoint answers (`oauth_token=…&oauth_token_secret=…`, `oauth_problem=…`).

/// Decodes `text` into name/value pairs: `&`-separated, `+` is a space, `%XX`
/// is a byte; a pair without `=` has an empty value; invalid UTF-8 is replaced.
pub fn parse(text: &str) -> Vec<(String, String)> {
    text.trim()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(name), decode(value))
        })
        .collect()
}

/// The first value of `name` in decoded `pairs`.
pub fn get<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// Percent-decodes one component, with `+` as a space.
pub fn decode(component: &str) -> String {
    let bytes = component.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = match bytes.get(index + 1..index + 3) {
                    Some(&[high, low]) => hex_value(high).zip(hex_value(low)),
                    _ => None,
                };
                if let Some((high, low)) = hex {
                    out.push(high << 4 | low);
                    index += 2;
                } else {
                    out.push(b'%');
                }
            }
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jira_token_answers_decode_to_pairs() {
        let pairs =
            parse("oauth_token=abc%2F1&oauth_token_secret=d+e&oauth_callback_confirmed=true\n");
        assert_eq!(get(&pairs, "oauth_token"), Some("abc/1"));
        assert_eq!(get(&pairs, "oauth_token_secret"), Some("d e"));
        assert_eq!(get(&pairs, "oauth_callback_confirmed"), Some("true"));
        assert_eq!(get(&pairs, "missing"), None);
    }

    #[test]
    fn odd_input_decodes_without_panicking() {
        let cases = [
            ("", vec![]),
            ("c2&a3=2+q", vec![("c2", ""), ("a3", "2 q")]),
            ("a=%", vec![("a", "%")]),
            (
                "a=%zz&b=%4&c=%+1",
                vec![("a", "%zz"), ("b", "%4"), ("c", "% 1")],
            ),
            ("a=%C3%B6&&b==", vec![("a", "ö"), ("b", "=")]),
            ("a=%FF", vec![("a", "\u{fffd}")]),
        ];
        for (text, expected) in cases {
            let expected: Vec<(String, String)> = expected
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            assert_eq!(parse(text), expected, "case {text:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_decodes_without_panicking(text in ".*") {
            let _ = parse(&text);
        }
    }
}
