//! Any string as the token in the ingress's URL: `is_jwt_shaped` classifies it
//! without panicking, exactly as its docs say (three base64url parts, the first two
//! non-empty, at most 4096 bytes), and never passes one the worker refuses as too long;
//! `could_be_ours` passes only shaped tokens.

#![no_main]

use jirasync::integration::token::{self, MAX_TOKEN_LEN, Rejected, is_jwt_shaped};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    for token in [
        token.to_owned(),
        token.repeat(4096 / token.len().max(1) + 1),
    ] {
        let shaped = is_jwt_shaped(&token);
        let parts: Vec<&str> = token.split('.').collect();
        let expected = token.len() <= MAX_TOKEN_LEN
            && parts.len() == 3
            && !parts[0].is_empty()
            && !parts[1].is_empty()
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        assert_eq!(shaped, expected, "{token:?}");
        if shaped {
            assert_ne!(token::external_id(&token), Err(Rejected::TooLong));
        }
        // The structural check refines the shape one and never panics.
        assert!(!token::could_be_ours(&token) || shaped, "{token:?}");
    }
});
