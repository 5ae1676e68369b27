//! Who a request comes from (docs/reference.md §3): the client every per-client
//! limit and verdict counts against. The accept loop (`server::serve`) tags each
//! request with it as an extension; handlers and layers read it with [`Client::of`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::Request;
use axum::http::HeaderMap;
use axum::http::header::HeaderName;

use crate::config::TrustedProxies;

/// The header a reverse proxy names its client in.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The client of a request: the TCP peer's address, or, for a peer in
/// `JIRASYNC_TRUSTED_PROXIES`, the address its `X-Forwarded-For` names
/// ([`Client::resolve`]). An IPv4 address reached over IPv6 (`::ffff:a.b.c.d`)
/// is its IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Client(pub IpAddr);

impl Client {
    /// The client `request` was tagged with; a request that did not come through
    /// the accept loop (a test calling the router directly) counts as one
    /// unspecified client.
    pub fn of(request: &Request) -> Self {
        request
            .extensions()
            .get::<Self>()
            .copied()
            .unwrap_or(Self(IpAddr::V4(Ipv4Addr::UNSPECIFIED)))
    }

    /// The client of a request from `peer` with `headers`: the peer, unless it is
    /// in `trusted`; then the right-most `X-Forwarded-For` address not in
    /// `trusted` (each proxy appends its own peer, so the addresses right of that
    /// one were written by proxies we trust and it is the first a client could not
    /// forge). When every address is trusted, the left-most one. When an entry is
    /// not an address (`unknown`, garbage), the trusted hop that wrote it: the
    /// proxy right of it, the peer for the right-most entry. Those requests then
    /// share that proxy's limits rather than trusting anything left of the entry.
    pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> Self {
        let peer = peer.to_canonical();
        // The hot path: no proxies configured, no header read.
        if trusted.0.is_empty() || !trusted.contains(peer) {
            return Self(peer);
        }
        let mut hop = peer;
        // Several header lines are one list, in order.
        for value in headers.get_all(&X_FORWARDED_FOR).iter().rev() {
            let Ok(text) = value.to_str() else {
                return Self(hop);
            };
            for entry in text.rsplit(',') {
                let entry = entry.trim();
                if entry.is_empty() {
                    continue;
                }
                let Some(address) = parse_hop(entry) else {
                    return Self(hop);
                };
                if !trusted.contains(address) {
                    return Self(address);
                }
                hop = address;
            }
        }
        Self(hop)
    }
}

/// One `X-Forwarded-For` entry: an address, also with a port (`1.2.3.4:80`,
/// `[2001:db8::1]:443`) or in brackets, as some proxies write it.
fn parse_hop(entry: &str) -> Option<IpAddr> {
    let address = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|socket| socket.ip()))
        .or_else(|| {
            entry
                .strip_prefix('[')
                .and_then(|rest| rest.strip_suffix(']'))
                .and_then(|inner| inner.parse().ok())
        })?;
    Some(address.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    fn resolve(peer: &str, forwarded: &[&str], trusted: &str) -> IpAddr {
        let mut headers = HeaderMap::new();
        for value in forwarded {
            headers.append(&X_FORWARDED_FOR, value.parse().expect("a header value"));
        }
        let trusted: TrustedProxies = trusted.parse().expect("valid blocks");
        Client::resolve(ip(peer), &headers, &trusted).0
    }

    #[test]
    fn the_client_is_the_right_most_forwarded_address_no_trusted_proxy_wrote() {
        let proxies = "10.0.0.0/8";
        for (case, peer, forwarded, client) in [
            (
                "no proxies configured",
                "1.2.3.4",
                &["9.9.9.9"][..],
                "1.2.3.4",
            ),
            (
                "an untrusted peer's header is ignored",
                "8.8.8.8",
                &["9.9.9.9"],
                "8.8.8.8",
            ),
            (
                "a trusted peer without the header",
                "10.0.0.1",
                &[],
                "10.0.0.1",
            ),
            ("one hop", "10.0.0.1", &["9.9.9.9"], "9.9.9.9"),
            (
                "a forged left part is skipped",
                "10.0.0.1",
                &["6.6.6.6, 9.9.9.9"],
                "9.9.9.9",
            ),
            (
                "trusted hops are skipped",
                "10.0.0.1",
                &["6.6.6.6, 9.9.9.9, 10.2.2.2"],
                "9.9.9.9",
            ),
            (
                "several header lines",
                "10.0.0.1",
                &["6.6.6.6", "9.9.9.9, 10.2.2.2"],
                "9.9.9.9",
            ),
            (
                "all trusted: the left-most",
                "10.0.0.1",
                &["10.3.3.3, 10.2.2.2"],
                "10.3.3.3",
            ),
            ("with a port", "10.0.0.1", &["9.9.9.9:5555"], "9.9.9.9"),
            (
                "IPv6 in brackets with a port",
                "10.0.0.1",
                &["[2001:db8::1]:443"],
                "2001:db8::1",
            ),
            ("IPv6 bare", "10.0.0.1", &["2001:db8::1"], "2001:db8::1"),
            (
                "an IPv4-mapped entry",
                "10.0.0.1",
                &["::ffff:9.9.9.9"],
                "9.9.9.9",
            ),
            (
                "an IPv4-mapped peer",
                "::ffff:10.0.0.1",
                &["9.9.9.9"],
                "9.9.9.9",
            ),
            (
                "empty entries are skipped",
                "10.0.0.1",
                &["9.9.9.9, ,"],
                "9.9.9.9",
            ),
            (
                "malformed right-most: the peer",
                "10.0.0.1",
                &["9.9.9.9, unknown"],
                "10.0.0.1",
            ),
            (
                "malformed after a trusted hop: that hop",
                "10.0.0.1",
                &["junk, 10.2.2.2"],
                "10.2.2.2",
            ),
            (
                "malformed left of the client: not reached",
                "10.0.0.1",
                &["junk, 9.9.9.9"],
                "9.9.9.9",
            ),
        ] {
            let trusted = if case == "no proxies configured" {
                ""
            } else {
                proxies
            };
            assert_eq!(resolve(peer, forwarded, trusted), ip(client), "{case}");
        }
    }

    #[test]
    fn a_header_that_is_not_text_names_the_trusted_hop() {
        let mut headers = HeaderMap::new();
        headers.append(
            &X_FORWARDED_FOR,
            axum::http::HeaderValue::from_bytes(b"9.9.9.9\xff").expect("opaque bytes"),
        );
        let trusted: TrustedProxies = "10.0.0.0/8".parse().expect("valid");
        assert_eq!(
            Client::resolve(ip("10.0.0.1"), &headers, &trusted).0,
            ip("10.0.0.1")
        );
    }
}
