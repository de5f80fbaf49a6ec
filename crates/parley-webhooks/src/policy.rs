//! Which addresses webhooks may reach (`PARLEY_WEBHOOK_ALLOW`, `PARLEY_WEBHOOK_DENY`).
//!
//! Webhook URLs are chosen by whoever can configure a service, so without a policy they can make
//! the server call anything it can reach (its own admin ports, cloud metadata at
//! 169.254.169.254, the database). The policy is checked on the *resolved* addresses: a resolver
//! wrapper drops every address the policy refuses before the HTTP client connects, and IP-literal
//! hosts (which skip DNS) are checked before the request. So a host name pointing at a denied
//! address, or re-pointed after a check, cannot get through.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Environment variable: comma-separated CIDR blocks webhooks may reach (unset or empty = any).
pub const ALLOW_ENV: &str = "PARLEY_WEBHOOK_ALLOW";
/// Environment variable: comma-separated CIDR blocks webhooks may never reach (wins over allow).
pub const DENY_ENV: &str = "PARLEY_WEBHOOK_DENY";

/// A bad entry in an allow or deny list.
#[derive(Debug, thiserror::Error)]
#[error("{var}: '{entry}' is not an IP address or CIDR block (e.g. 10.0.0.0/8, fd00::/8)")]
pub struct PolicyError {
    /// Which list.
    pub var: &'static str,
    /// The entry.
    pub entry: String,
}

/// Allowed and denied address blocks. An address is permitted when no allow list is set or it
/// is inside an allowed block, and it is inside no denied block. The default permits everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DestinationPolicy {
    /// When non-empty, only these blocks are reachable.
    pub allow: Vec<IpNet>,
    /// Never reachable.
    pub deny: Vec<IpNet>,
}

impl DestinationPolicy {
    /// From `PARLEY_WEBHOOK_ALLOW` and `PARLEY_WEBHOOK_DENY` (unset = empty).
    pub fn from_env() -> Result<Self, PolicyError> {
        let var = |name| std::env::var(name).unwrap_or_default();
        Self::parse(&var(ALLOW_ENV), &var(DENY_ENV))
    }

    /// From the two comma-separated lists. Entries are CIDR blocks (`10.0.0.0/8`, `fd00::/8`)
    /// or single addresses (`127.0.0.1` = `/32`); blanks around entries and empty entries are
    /// ignored.
    pub fn parse(allow: &str, deny: &str) -> Result<Self, PolicyError> {
        Ok(Self {
            allow: parse_list(ALLOW_ENV, allow)?,
            deny: parse_list(DENY_ENV, deny)?,
        })
    }

    /// Whether webhooks may connect to `ip`. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are
    /// judged as the IPv4 address too, so they cannot dodge an IPv4 block.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let forms: &[IpAddr] = &match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => vec![ip, IpAddr::V4(v4)],
                None => vec![ip],
            },
            IpAddr::V4(_) => vec![ip],
        };
        let inside = |nets: &[IpNet]| nets.iter().any(|n| forms.iter().any(|a| n.contains(a)));
        (self.allow.is_empty() || inside(&self.allow)) && !inside(&self.deny)
    }

    /// Whether the policy can refuse anything (false for the default).
    pub fn is_restrictive(&self) -> bool {
        !self.allow.is_empty() || !self.deny.is_empty()
    }
}

fn parse_list(var: &'static str, list: &str) -> Result<Vec<IpNet>, PolicyError> {
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.parse::<IpNet>()
                .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| PolicyError {
                    var,
                    entry: e.to_owned(),
                })
        })
        .collect()
}

/// Every resolved address of a host was refused by the policy (or the IP-literal host is).
#[derive(Debug, thiserror::Error)]
#[error("destination {host} is refused by PARLEY_WEBHOOK_ALLOW/PARLEY_WEBHOOK_DENY")]
pub struct Refused {
    /// The host name or address.
    pub host: String,
}

/// A DNS resolver that resolves with the system resolver and keeps only permitted addresses.
#[derive(Clone, Debug)]
pub(crate) struct FilteringResolver {
    pub(crate) policy: Arc<DestinationPolicy>,
}

impl Resolve for FilteringResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| policy.permits(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(Box::new(Refused { host }) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_default_permits_everything() {
        let p = DestinationPolicy::default();
        assert!(!p.is_restrictive());
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "::1",
            "169.254.169.254",
            "93.184.216.34",
        ] {
            assert!(p.permits(ip(a)), "{a}");
        }
    }

    #[test]
    fn deny_refuses_its_blocks_only() {
        let p = DestinationPolicy::parse("", "127.0.0.0/8, ::1 ,169.254.0.0/16").unwrap();
        assert!(!p.permits(ip("127.0.0.1")));
        assert!(!p.permits(ip("127.9.9.9")));
        assert!(!p.permits(ip("::1")));
        assert!(!p.permits(ip("169.254.169.254")));
        assert!(p.permits(ip("10.0.0.1")));
        assert!(p.permits(ip("::2")));
    }

    #[test]
    fn allow_limits_to_its_blocks_and_deny_wins() {
        let p = DestinationPolicy::parse("10.0.0.0/8,fd00::/8", "10.9.0.0/16").unwrap();
        assert!(p.permits(ip("10.1.2.3")));
        assert!(p.permits(ip("fd12::1")));
        assert!(!p.permits(ip("10.9.1.1")), "deny wins over allow");
        assert!(!p.permits(ip("192.168.1.1")));
        assert!(!p.permits(ip("::1")));
    }

    #[test]
    fn ipv4_mapped_ipv6_cannot_dodge_an_ipv4_block() {
        let p = DestinationPolicy::parse("", "127.0.0.0/8").unwrap();
        assert!(!p.permits(ip("::ffff:127.0.0.1")));
        let p = DestinationPolicy::parse("10.0.0.0/8", "").unwrap();
        assert!(p.permits(ip("::ffff:10.0.0.1")));
    }

    #[test]
    fn bad_entries_are_errors_naming_the_variable() {
        let e = DestinationPolicy::parse("10.0.0.0/8,nonsense", "").unwrap_err();
        assert_eq!(e.var, ALLOW_ENV);
        assert_eq!(e.entry, "nonsense");
        let e = DestinationPolicy::parse("", "10.0.0.0/33").unwrap_err();
        assert_eq!(e.var, DENY_ENV);
        assert!(e.to_string().contains("PARLEY_WEBHOOK_DENY"));
        assert_eq!(
            DestinationPolicy::parse(" , ", ",").unwrap(),
            DestinationPolicy::default()
        );
    }

    #[tokio::test]
    async fn the_resolver_drops_refused_addresses() {
        let deny_all_loopback = Arc::new(DestinationPolicy::parse("", "127.0.0.0/8,::1").unwrap());
        let r = FilteringResolver {
            policy: deny_all_loopback,
        };
        let err = match r.resolve("localhost".parse().unwrap()).await {
            Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e,
        };
        assert!(err.downcast_ref::<Refused>().is_some(), "{err}");
        let r = FilteringResolver {
            policy: Arc::new(DestinationPolicy::default()),
        };
        let addrs: Vec<_> = r
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(addrs.iter().any(|a| a.ip().is_loopback()));
    }
}
