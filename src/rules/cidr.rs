//! Address ranges for the `from` matcher: `10.20.0.0/16`, `2001:db8::/32`, or one address.
//! IPv4 peers that reach an IPv6 socket show up as v4-mapped (`::ffff:10.20.1.2`); both the
//! address and a v4-mapped range are folded to IPv4 first, so either spelling matches.
#![forbid(unsafe_code)]

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::Deserialize;

/// A network: its first address and the prefix length. Host bits are always zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `addr` lies inside. A v4-mapped address counts as the IPv4 address it carries.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.network, canonical(addr)) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                mask_v4(a, self.prefix) == u32::from(net) && self.prefix <= 32
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => mask_v6(a, self.prefix) == u128::from(net),
            _ => false,
        }
    }
}

/// A v4-mapped IPv6 address (`::ffff:a.b.c.d`) as the IPv4 address it stands for.
pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

fn mask_v4(a: Ipv4Addr, prefix: u8) -> u32 {
    let bits = u32::from(a);
    match prefix {
        0 => 0,
        p if p >= 32 => bits,
        p => bits & (u32::MAX << (32 - p)),
    }
}

fn mask_v6(a: Ipv6Addr, prefix: u8) -> u128 {
    let bits = u128::from(a);
    match prefix {
        0 => 0,
        p if p >= 128 => bits,
        p => bits & (u128::MAX << (128 - p)),
    }
}

/// Why a `from` entry was refused; the text names the entry and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidrError(pub String);

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Cidr {
    type Error = CidrError;

    fn try_from(text: String) -> Result<Self, CidrError> {
        text.parse()
    }
}

impl Cidr {
    /// Whether the range holds every address of its family (`0.0.0.0/0`, `::/0`).
    pub fn is_everything(&self) -> bool {
        self.prefix == 0
    }

    /// Whether every address of `other` is in this range too.
    pub fn covers(&self, other: &Cidr) -> bool {
        self.prefix <= other.prefix && self.contains(other.network)
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// `ADDR` or `ADDR/PREFIX`. Host bits beyond the prefix are refused (`10.20.1.0/16` is
    /// most likely a typo for a narrower or a wider range, and which one is the admin's call).
    fn from_str(text: &str) -> Result<Self, CidrError> {
        let bad = |why: &str| CidrError(format!("\"{text}\" {why}"));
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| {
            bad("is not an IPv4 or IPv6 address or network (10.20.0.0/16, 2001:db8::/32)")
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .map_err(|_| bad("has a prefix that is not a number"))?,
            Some(_) => return Err(bad("has a prefix that is not a number")),
        };
        if prefix > max {
            return Err(bad(&format!("has a prefix longer than {max} bits")));
        }
        let cidr = fold_mapped(addr, prefix);
        let network_bits = match cidr.network {
            IpAddr::V4(a) => u128::from(mask_v4(a, cidr.prefix)) == u128::from(u32::from(a)),
            IpAddr::V6(a) => mask_v6(a, cidr.prefix) == u128::from(a),
        };
        if !network_bits {
            return Err(bad(
                "has bits set after the prefix (write the network's first address)",
            ));
        }
        Ok(cidr)
    }
}

/// `::ffff:10.0.0.0/104` is the IPv4 network `10.0.0.0/8`; a shorter v4-mapped prefix reaches
/// beyond the mapped space and stays IPv6 (it then matches no IPv4 peer: documented).
fn fold_mapped(addr: IpAddr, prefix: u8) -> Cidr {
    match addr {
        IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
            Some(v4) => Cidr {
                network: IpAddr::V4(v4),
                prefix: prefix - 96,
            },
            None => Cidr {
                network: addr,
                prefix,
            },
        },
        _ => Cidr {
            network: addr,
            prefix,
        },
    }
}

/// PAM_RHOST as an address: sshd (UseDNS no) passes the peer's address text; an IPv6 zone
/// (`fe80::1%eth0`) is dropped. None for names and anything else: a name never matches `from`.
pub fn parse_peer(rhost: &str) -> Option<IpAddr> {
    let text = rhost.split_once('%').map_or(rhost, |(addr, _)| addr);
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_ipv6_and_v4_mapped() {
        let office = cidr("10.20.0.0/16");
        assert!(office.contains(ip("10.20.0.0")) && office.contains(ip("10.20.255.255")));
        assert!(!office.contains(ip("10.21.0.0")) && !office.contains(ip("10.19.255.255")));
        assert!(office.contains(ip("::ffff:10.20.3.4")), "v4-mapped peer");
        assert!(
            !office.contains(ip("::10.20.3.4")),
            "v4-compatible is not v4-mapped"
        );
        let mapped = cidr("::ffff:10.20.0.0/112");
        assert_eq!(mapped, office, "a v4-mapped range is the IPv4 range");
        let v6 = cidr("2001:db8::/32");
        assert!(v6.contains(ip("2001:db8:ffff::1")) && !v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("10.20.0.1")) && !office.contains(ip("2001:db8::1")));
        assert!(cidr("127.0.0.1").contains(ip("127.0.0.1")));
        assert!(!cidr("127.0.0.1").contains(ip("127.0.0.2")));
        assert!(cidr("0.0.0.0/0").contains(ip("::ffff:1.2.3.4")));
        assert!(!cidr("0.0.0.0/0").contains(ip("::1")));
        assert!(cidr("::/0").contains(ip("::1")) && !cidr("::/0").contains(ip("1.2.3.4")));
    }

    #[test]
    fn malformed_ranges_are_refused() {
        for bad in [
            "",
            "10.20.0.0/",
            "10.20.0.0/33",
            "2001:db8::/129",
            "10.20.1.0/16",
            "10.20.0.0/+8",
            "10.20.0.0/0x8",
            "office",
            "10.20.0.0/16/8",
            "[::1]",
            "10.20.0.0 /16",
            "10.20.0.0/ 16",
            "10.20.0.0/0016",
            "1.2.3.4.5",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn peers_are_addresses_only() {
        assert_eq!(parse_peer("fe80::1%eth0"), Some(ip("fe80::1")));
        assert_eq!(parse_peer("host.example"), None);
        assert_eq!(parse_peer("10.0.0.1:22"), None);
        assert_eq!(parse_peer(""), None);
    }

    /// The reference: compare the first `prefix` bits one by one.
    fn reference(net: u128, addr: u128, prefix: u8, width: u8) -> bool {
        (0..prefix).all(|i| {
            let bit = width - 1 - i;
            (net >> bit) & 1 == (addr >> bit) & 1
        })
    }

    proptest! {
        #[test]
        fn v4_matches_the_bitwise_reference(net in any::<u32>(), addr in any::<u32>(), prefix in 0u8..=32) {
            let network = mask_v4(Ipv4Addr::from(net), prefix);
            let text = format!("{}/{prefix}", Ipv4Addr::from(network));
            let c: Cidr = text.parse().unwrap();
            let expected = reference(u128::from(network), u128::from(addr), prefix, 32);
            prop_assert_eq!(c.contains(IpAddr::V4(Ipv4Addr::from(addr))), expected);
            // The same peer, v4-mapped, and the same range, v4-mapped, agree.
            let mapped = IpAddr::V6(Ipv4Addr::from(addr).to_ipv6_mapped());
            prop_assert_eq!(c.contains(mapped), expected);
            let mapped_range: Cidr = format!("::ffff:{}/{}", Ipv4Addr::from(network), prefix + 96).parse().unwrap();
            prop_assert_eq!(mapped_range.contains(IpAddr::V4(Ipv4Addr::from(addr))), expected);
        }

        #[test]
        fn v6_matches_the_bitwise_reference(net in any::<u128>(), addr in any::<u128>(), prefix in 0u8..=128) {
            let network = mask_v6(Ipv6Addr::from(net), prefix);
            let c: Cidr = format!("{}/{prefix}", Ipv6Addr::from(network)).parse().unwrap();
            let a = Ipv6Addr::from(addr);
            let expected = if a.to_ipv4_mapped().is_some() && c.network.is_ipv6() {
                false // a mapped peer is an IPv4 peer; only IPv4 (or mapped, folded) ranges hold it
            } else {
                reference(network, addr, prefix, 128)
            };
            if c.network.is_ipv6() {
                prop_assert_eq!(c.contains(IpAddr::V6(a)), expected);
            }
        }

        #[test]
        fn an_address_in_its_own_network(addr in any::<u128>(), prefix in 0u8..=128) {
            let a = Ipv6Addr::from(addr);
            // A v4-mapped peer is an IPv4 peer: only ranges inside ::ffff:0:0/96 hold it.
            prop_assume!(a.to_ipv4_mapped().is_none() || prefix >= 96);
            let c: Cidr = format!("{}/{prefix}", Ipv6Addr::from(mask_v6(a, prefix))).parse().unwrap();
            prop_assert!(c.contains(IpAddr::V6(a)));
        }

        #[test]
        fn parsing_never_panics(text in "\\PC{0,60}") {
            let _ = text.parse::<Cidr>();
            let _ = parse_peer(&text);
        }
    }
}
