//! Where webhooks may be sent (SSRF rules). A webhook URL is chosen by a
//! customer and fetched by our servers, so it must never reach our own
//! network: these rules run when an endpoint is registered and again at every
//! delivery, on each address the host resolves to then (see `deliver`), so a
//! name that resolves somewhere harmless at registration and to 10.0.0.1 later
//! (DNS rebinding) is still refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use reqwest::Url;

/// The longest URL an endpoint may have.
pub const MAX_URL_CHARS: usize = 2048;

/// An address range webhooks may not reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForbiddenRange {
    Loopback,
    Private,
    LinkLocal,
    SharedAddressSpace,
    Unspecified,
    Multicast,
    Broadcast,
    Reserved,
    UniqueLocal,
}

impl ForbiddenRange {
    pub fn describe(self) -> &'static str {
        match self {
            ForbiddenRange::Loopback => "a loopback address (127.0.0.0/8, ::1, localhost)",
            ForbiddenRange::Private => "a private address (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)",
            ForbiddenRange::LinkLocal => "a link-local address (169.254.0.0/16, fe80::/10)",
            ForbiddenRange::SharedAddressSpace => "a carrier-grade NAT address (100.64.0.0/10)",
            ForbiddenRange::Unspecified => "an unspecified address (0.0.0.0/8, ::)",
            ForbiddenRange::Multicast => "a multicast address (224.0.0.0/4, ff00::/8)",
            ForbiddenRange::Broadcast => "the broadcast address (255.255.255.255)",
            ForbiddenRange::Reserved => "a reserved address (240.0.0.0/4)",
            ForbiddenRange::UniqueLocal => "an IPv6 unique local address (fc00::/7)",
        }
    }
}

/// Why a URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefusal {
    #[error("is not an absolute URL")]
    NotAUrl,
    #[error("is longer than {MAX_URL_CHARS} characters")]
    TooLong,
    #[error("must use https (http is allowed in sandbox mode only)")]
    NotHttps,
    #[error("must not contain a user name or password")]
    Credentials,
    #[error("must not contain a fragment (#…)")]
    Fragment,
    #[error("must name a host")]
    NoHost,
    #[error("{host} is {}: webhooks may not be sent there", .range.describe())]
    Forbidden { host: String, range: ForbiddenRange },
}

/// The range `ip` lies in, if webhooks may never reach it. IPv4 addresses
/// embedded in IPv6 ones (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`,
/// NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are judged as the IPv4 address
/// they carry.
pub fn forbidden_range(ip: IpAddr) -> Option<ForbiddenRange> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => forbidden_v4(v4),
            None => forbidden_v6(v6),
        },
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<ForbiddenRange> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some(ForbiddenRange::Loopback)
    } else if ip.is_private() {
        Some(ForbiddenRange::Private)
    } else if ip.is_link_local() {
        Some(ForbiddenRange::LinkLocal)
    } else if a == 100 && (64..128).contains(&b) {
        Some(ForbiddenRange::SharedAddressSpace)
    } else if a == 0 {
        Some(ForbiddenRange::Unspecified)
    } else if ip.is_broadcast() {
        Some(ForbiddenRange::Broadcast)
    } else if ip.is_multicast() {
        Some(ForbiddenRange::Multicast)
    } else if a >= 240 {
        Some(ForbiddenRange::Reserved)
    } else {
        None
    }
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<ForbiddenRange> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some(ForbiddenRange::Loopback)
    } else if ip.is_unspecified() {
        Some(ForbiddenRange::Unspecified)
    } else if first & 0xfe00 == 0xfc00 {
        Some(ForbiddenRange::UniqueLocal)
    } else if first & 0xffc0 == 0xfe80 {
        Some(ForbiddenRange::LinkLocal)
    } else if ip.is_multicast() {
        Some(ForbiddenRange::Multicast)
    } else {
        None
    }
}

/// The IPv4 address an IPv6 address carries, for the forms that route to it.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(mapped) = ip.to_ipv4_mapped() {
        return Some(mapped);
    }
    // ::a.b.c.d (deprecated "compatible" form); :: and ::1 are IPv6's own.
    if s[..6] == [0; 6] && !(s[6] == 0 && s[7] <= 1) {
        return Some(low);
    }
    // NAT64 well-known prefix.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(low);
    }
    // 6to4: 2002:AABB:CCDD::/48 carries AA.BB.CC.DD.
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8));
    }
    None
}

/// Whether a delivery may connect to `ip`: never to a forbidden range, except
/// loopback in sandbox mode (tests and local development run the receiver on
/// the same machine).
pub fn check_address(ip: IpAddr, sandbox: bool) -> Result<(), ForbiddenRange> {
    match forbidden_range(ip) {
        None => Ok(()),
        Some(ForbiddenRange::Loopback) if sandbox => Ok(()),
        Some(range) => Err(range),
    }
}

/// Checks a webhook URL as written: absolute, `https` (or `http` in sandbox
/// mode), no credentials or fragment, and a host that is not a forbidden
/// address or a `localhost` name. A host name is resolved later (at
/// registration where it resolves, and at every delivery).
pub fn check_url(raw: &str, sandbox: bool) -> Result<Url, UrlRefusal> {
    if raw.chars().count() > MAX_URL_CHARS {
        return Err(UrlRefusal::TooLong);
    }
    let url = Url::parse(raw.trim()).map_err(|_| UrlRefusal::NotAUrl)?;
    match url.scheme() {
        "https" => {}
        "http" if sandbox => {}
        _ => return Err(UrlRefusal::NotHttps),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlRefusal::Credentials);
    }
    if url.fragment().is_some() {
        return Err(UrlRefusal::Fragment);
    }
    let forbidden = |range| UrlRefusal::Forbidden { host: url.host_str().unwrap_or_default().to_string(), range };
    match url.host() {
        None => return Err(UrlRefusal::NoHost),
        Some(url::Host::Ipv4(ip)) => check_address(IpAddr::V4(ip), sandbox).map_err(forbidden)?,
        Some(url::Host::Ipv6(ip)) => check_address(IpAddr::V6(ip), sandbox).map_err(forbidden)?,
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            // RFC 6761: every localhost name is loopback, whatever DNS says.
            if (name == "localhost" || name.ends_with(".localhost")) && !sandbox {
                return Err(forbidden(ForbiddenRange::Loopback));
            }
            if name.is_empty() {
                return Err(UrlRefusal::NoHost);
            }
        }
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(ip: &str) -> Option<ForbiddenRange> {
        forbidden_range(ip.parse().expect("an address"))
    }

    #[test]
    fn every_internal_ipv4_range_is_forbidden() {
        use ForbiddenRange::*;
        for (ip, expected) in [
            ("127.0.0.1", Loopback),
            ("127.255.0.9", Loopback),
            ("10.1.2.3", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.168.1.1", Private),
            ("169.254.169.254", LinkLocal),
            ("100.64.0.1", SharedAddressSpace),
            ("100.127.255.254", SharedAddressSpace),
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Unspecified),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("255.255.255.255", Broadcast),
            ("240.0.0.1", Reserved),
        ] {
            assert_eq!(range(ip), Some(expected), "{ip}");
        }
    }

    #[test]
    fn public_addresses_next_to_the_ranges_are_allowed() {
        for ip in ["8.8.8.8", "172.15.255.255", "172.32.0.0", "100.63.255.255", "100.128.0.0", "169.253.0.1", "1.1.1.1"]
        {
            assert_eq!(range(ip), None, "{ip}");
        }
        for ip in ["2001:4860:4860::8888", "2606:4700::1111"] {
            assert_eq!(range(ip), None, "{ip}");
        }
    }

    #[test]
    fn internal_ipv6_and_ipv4_carried_in_ipv6_are_forbidden() {
        use ForbiddenRange::*;
        for (ip, expected) in [
            ("::1", Loopback),
            ("::", Unspecified),
            ("fc00::1", UniqueLocal),
            ("fd12:3456::1", UniqueLocal),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("ff02::1", Multicast),
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:10.0.0.1", Private),
            ("::ffff:169.254.169.254", LinkLocal),
            ("::10.0.0.1", Private),
            ("64:ff9b::192.168.0.1", Private),
            ("2002:a00:1::", Private),
            ("2002:7f00:1::", Loopback),
        ] {
            assert_eq!(range(ip), Some(expected), "{ip}");
        }
        assert_eq!(range("::ffff:8.8.8.8"), None);
        assert_eq!(range("64:ff9b::8.8.8.8"), None);
    }

    #[test]
    fn sandbox_mode_allows_loopback_and_nothing_else_private() {
        assert_eq!(check_address("127.0.0.1".parse().expect("ip"), true), Ok(()));
        assert_eq!(check_address("::1".parse().expect("ip"), true), Ok(()));
        assert_eq!(check_address("127.0.0.1".parse().expect("ip"), false), Err(ForbiddenRange::Loopback));
        assert_eq!(check_address("10.0.0.1".parse().expect("ip"), true), Err(ForbiddenRange::Private));
        assert_eq!(check_address("169.254.169.254".parse().expect("ip"), true), Err(ForbiddenRange::LinkLocal));
    }

    #[test]
    fn only_https_outside_sandbox_mode() {
        assert_eq!(check_url("http://hooks.example.com/x", false), Err(UrlRefusal::NotHttps));
        assert!(check_url("http://hooks.example.com/x", true).is_ok());
        assert_eq!(check_url("ftp://hooks.example.com/x", true), Err(UrlRefusal::NotHttps));
        assert_eq!(check_url("file:///etc/passwd", true), Err(UrlRefusal::NotHttps));
        assert_eq!(
            check_url("https://hooks.example.com/gpuhour?x=1", false).map(|u| u.to_string()),
            Ok("https://hooks.example.com/gpuhour?x=1".to_string())
        );
    }

    #[test]
    fn urls_naming_internal_hosts_are_refused() {
        let refused = |raw: &str| match check_url(raw, false) {
            Err(UrlRefusal::Forbidden { range, .. }) => Some(range),
            _ => None,
        };
        assert_eq!(refused("https://127.0.0.1/"), Some(ForbiddenRange::Loopback));
        // The URL parser reads these as 127.0.0.1, as a resolver would.
        assert_eq!(refused("https://0x7f.1/"), Some(ForbiddenRange::Loopback));
        assert_eq!(refused("https://2130706433/"), Some(ForbiddenRange::Loopback));
        assert_eq!(refused("https://localhost:8443/"), Some(ForbiddenRange::Loopback));
        assert_eq!(refused("https://api.LOCALHOST./"), Some(ForbiddenRange::Loopback));
        assert_eq!(refused("https://[::ffff:10.0.0.1]/"), Some(ForbiddenRange::Private));
        assert_eq!(refused("https://[fd00::1]/"), Some(ForbiddenRange::UniqueLocal));
        assert_eq!(refused("https://169.254.169.254/latest/meta-data"), Some(ForbiddenRange::LinkLocal));
        assert_eq!(refused("https://100.100.100.100/"), Some(ForbiddenRange::SharedAddressSpace));
        assert_eq!(refused("https://0.0.0.0/"), Some(ForbiddenRange::Unspecified));
        assert!(check_url("http://127.0.0.1:9000/hook", true).is_ok());
        assert!(check_url("http://localhost:9000/hook", true).is_ok());
    }

    #[test]
    fn malformed_urls_are_refused_with_their_reason() {
        assert_eq!(check_url("not a url", false), Err(UrlRefusal::NotAUrl));
        assert_eq!(check_url("/relative/path", false), Err(UrlRefusal::NotAUrl));
        assert_eq!(check_url("https://user:pw@hooks.example.com/", false), Err(UrlRefusal::Credentials));
        assert_eq!(check_url("https://hooks.example.com/#x", false), Err(UrlRefusal::Fragment));
        let long = format!("https://hooks.example.com/{}", "a".repeat(MAX_URL_CHARS));
        assert_eq!(check_url(&long, false), Err(UrlRefusal::TooLong));
        assert_eq!(
            check_url("https://10.0.0.1/", false).map_err(|e| e.to_string()),
            Err("10.0.0.1 is a private address (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16): \
                 webhooks may not be sent there"
                .to_string())
        );
    }
}
