//! `JIRASYNC_TRUSTED_PROXIES` (docs/reference.md §2, §3): the CIDR blocks of the
//! reverse proxies whose `X-Forwarded-For` names the client; the ingress's
//! `client` module asks [`TrustedProxies::contains`] of each hop.

use std::str::FromStr;

/// One CIDR block of `JIRASYNC_TRUSTED_PROXIES`: an address and a prefix length
/// (`10.0.0.0/8`, `::1/128`; a bare address is a block of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: std::net::IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `address` lies in the block (an IPv4-mapped IPv6 address counts as
    /// its IPv4 address).
    pub fn contains(&self, address: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, address) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(network) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(network) & mask == u128::from(address) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (address, prefix) = s.split_once('/').map_or((s, None), |(a, p)| (a, Some(p)));
        let network: std::net::IpAddr = address
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR block (e.g. 10.0.0.0/8)"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|prefix| *prefix <= max)
                .ok_or_else(|| format!("{s:?} has a prefix length that is not 0-{max}"))?,
        };
        Ok(Self { network, prefix })
    }
}

/// `JIRASYNC_TRUSTED_PROXIES`: the CIDR blocks whose `X-Forwarded-For` names the
/// client; empty: the header is ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(pub Vec<Cidr>);

impl TrustedProxies {
    /// Whether `address` is a trusted proxy.
    pub fn contains(&self, address: std::net::IpAddr) -> bool {
        self.0.iter().any(|cidr| cidr.contains(address))
    }
}

impl FromStr for TrustedProxies {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .filter(|part| !part.trim().is_empty())
            .map(Cidr::from_str)
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

impl std::fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for cidr in &self.0 {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{cidr}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_proxies_take_blocks_and_bare_addresses_of_both_families() {
        let proxies: TrustedProxies = "10.0.0.0/8, 192.168.1.7,::1/128,fd00::/8"
            .parse()
            .expect("valid blocks");
        let ip = |s: &str| s.parse::<std::net::IpAddr>().expect("an address");
        for (address, trusted) in [
            ("10.1.2.3", true),
            ("11.0.0.1", false),
            ("192.168.1.7", true),
            ("192.168.1.8", false),
            ("::1", true),
            ("fd12::1", true),
            ("fe80::1", false),
            ("::ffff:10.9.9.9", true),
        ] {
            assert_eq!(proxies.contains(ip(address)), trusted, "{address}");
        }
        assert_eq!(
            proxies.to_string(),
            "10.0.0.0/8,192.168.1.7/32,::1/128,fd00::/8"
        );
        assert!(
            "0.0.0.0/0"
                .parse::<Cidr>()
                .expect("all")
                .contains(ip("8.8.8.8"))
        );
        assert_eq!("".parse::<TrustedProxies>(), Ok(TrustedProxies::default()));
        for bad in ["10.0.0.0/33", "proxy.local", "10.0.0.0/x", "::/129"] {
            assert!(bad.parse::<TrustedProxies>().is_err(), "{bad}");
        }
    }
}
