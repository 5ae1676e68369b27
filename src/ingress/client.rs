//! Who a request comes from (docs/reference.md §3): the client every per-client
//! limit and verdict counts against. The accept loop tags each request with it as
//! an extension; handlers and layers read it with [`Client::of`].

use std::net::{IpAddr, Ipv4Addr};

use axum::extract::Request;

/// The client of a request: the TCP peer's address.
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
}
