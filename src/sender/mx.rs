//! Direct delivery's routing (SPEC §6, RFC 5321 §5.1): a recipient domain's mail exchangers
//! through hickory-resolver, lowest preference first, equal preferences in random order, at
//! most [`MAX_HOSTS`] hosts and [`MAX_ADDRS`] addresses each (one IPv4 and one IPv6 when both
//! exist), port 25. No MX: the domain's own addresses (implicit MX). A null MX (RFC 7505) or a
//! domain that does not exist is permanent; any other DNS trouble is temporary.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;

use super::client::Target;
use super::transport::RcptOutcome;

/// Exchangers tried per attempt (Postfix: smtp_mx_address_limit counts addresses; here hosts).
pub const MAX_HOSTS: usize = 5;
/// Addresses tried per exchanger.
pub const MAX_ADDRS: usize = 2;
pub const SMTP_PORT: u16 = 25;

pub struct Resolver {
    /// What it was built from (`None`: the system's resolv.conf).
    pub servers: Option<Vec<SocketAddr>>,
    inner: TokioResolver,
}

/// A DNS failure as an outcome: a name that does not exist is permanent, anything else
/// (SERVFAIL, timeout, refused) may pass.
fn dns_failure(what: &str, e: &NetError) -> RcptOutcome {
    if e.is_nx_domain() {
        RcptOutcome::PermFail(format!("550 5.1.2 {what}: domain does not exist"))
    } else {
        RcptOutcome::TempFail(format!("DNS lookup of {what} failed: {e}"))
    }
}

/// A random number per call, from the standard library's per-process random keys.
fn random() -> u64 {
    RandomState::new().hash_one(std::time::SystemTime::now())
}

impl Resolver {
    pub fn new(servers: Option<Vec<SocketAddr>>, timeout: Duration) -> Result<Resolver, String> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = match &servers {
            None => TokioResolver::builder(provider)
                .map_err(|e| format!("reading the system's DNS configuration: {e}"))?,
            Some(list) => {
                let ns = list
                    .iter()
                    .map(|a| {
                        let mut c = NameServerConfig::udp_and_tcp(a.ip());
                        for conn in &mut c.connections {
                            conn.port = a.port();
                        }
                        c
                    })
                    .collect();
                TokioResolver::builder_with_config(ResolverConfig::from_name_servers(ns), provider)
            }
        };
        let opts: &mut ResolverOpts = builder.options_mut();
        opts.timeout = timeout.min(Duration::from_secs(10));
        opts.attempts = 2;
        // Names are looked up as given (fully qualified), never with a search suffix.
        opts.ndots = 0;
        let inner = builder.build().map_err(|e| format!("DNS resolver: {e}"))?;
        Ok(Resolver { servers, inner })
    }

    /// The hosts to try for `domain`, in order.
    pub async fn exchangers(&self, domain: &str) -> Result<Vec<Target>, RcptOutcome> {
        if domain.starts_with('[') {
            return match literal(domain) {
                Some(ip) => Ok(vec![target(domain, ip)]),
                None => Err(RcptOutcome::PermFail(format!(
                    "553 5.1.2 {domain} is not an address literal (RFC 5321 §4.1.3)"
                ))),
            };
        }
        let fqdn = format!("{}.", domain.trim_end_matches('.'));
        let mut hosts: Vec<(u16, u64, String)> = Vec::new();
        match self.inner.mx_lookup(fqdn.as_str()).await {
            Ok(l) => {
                for r in l.answers() {
                    if let RData::MX(mx) = &r.data {
                        let name = mx.exchange.to_ascii();
                        let name = name.trim_end_matches('.');
                        if mx.exchange.is_root() || name.is_empty() {
                            // RFC 7505: this domain takes no mail.
                            return Err(RcptOutcome::PermFail(format!(
                                "556 5.1.10 {domain} accepts no mail (null MX)"
                            )));
                        }
                        hosts.push((mx.preference, random(), name.to_string()));
                    }
                }
            }
            Err(e) if e.is_no_records_found() && !e.is_nx_domain() => {}
            Err(e) => return Err(dns_failure(domain, &e)),
        }
        if hosts.is_empty() {
            // Implicit MX (RFC 5321 §5.1): the domain itself, preference 0.
            let addrs = self.addresses(&fqdn).await.map_err(|e| {
                if e.is_no_records_found() && !e.is_nx_domain() {
                    RcptOutcome::PermFail(format!("550 5.1.2 {domain} has no MX and no address"))
                } else {
                    dns_failure(domain, &e)
                }
            })?;
            return Ok(addrs.into_iter().map(|ip| target(domain, ip)).collect());
        }
        // Lowest preference first; equal preferences in random order (RFC 5321 §5.1).
        hosts.sort();
        hosts.dedup_by(|a, b| a.2.eq_ignore_ascii_case(&b.2));
        hosts.truncate(MAX_HOSTS);
        let mut out = Vec::new();
        let mut last_err = None;
        for (_, _, h) in &hosts {
            match self.addresses(&format!("{h}.")).await {
                Ok(a) => out.extend(a.into_iter().map(|ip| target(h, ip))),
                Err(e) => {
                    log::info!("{domain}: exchanger {h}: {e}");
                    last_err = Some(format!("{h}: {e}"));
                }
            }
        }
        if out.is_empty() {
            return Err(RcptOutcome::TempFail(format!(
                "no address for any exchanger of {domain}{}",
                last_err.map(|e| format!(" ({e})")).unwrap_or_default()
            )));
        }
        Ok(out)
    }

    /// At most [`MAX_ADDRS`] addresses of a host: an IPv4 and an IPv6 one when it has both.
    async fn addresses(&self, fqdn: &str) -> Result<Vec<IpAddr>, NetError> {
        let found: Vec<IpAddr> = self.inner.lookup_ip(fqdn).await?.iter().collect();
        let mut picked: Vec<IpAddr> = Vec::new();
        for want_v4 in [true, false] {
            if let Some(ip) = found.iter().find(|ip| ip.is_ipv4() == want_v4) {
                picked.push(*ip);
            }
        }
        for ip in &found {
            if picked.len() >= MAX_ADDRS {
                break;
            }
            if !picked.contains(ip) {
                picked.push(*ip);
            }
        }
        picked.truncate(MAX_ADDRS);
        Ok(picked)
    }
}

/// The address of an address literal (RFC 5321 §4.1.3: `[192.0.2.1]`, `[IPv6:2001:db8::1]`),
/// which names its host itself: mail to `user@[192.0.2.1]` goes there, with no DNS.
pub fn literal(domain: &str) -> Option<IpAddr> {
    let inner = domain.strip_prefix('[')?.strip_suffix(']')?;
    match inner.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("ipv6:") => {
            inner[5..].parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)
        }
        _ => inner.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4),
    }
}

fn target(host: &str, ip: IpAddr) -> Target {
    Target {
        host: host.to_string(),
        port: SMTP_PORT,
        addr: Some(SocketAddr::new(ip, SMTP_PORT)),
    }
}

#[cfg(test)]
mod literal_tests {
    use super::literal;

    #[test]
    fn address_literals_name_their_host() {
        assert_eq!(literal("[127.0.25.71]"), Some("127.0.25.71".parse().unwrap()));
        assert_eq!(literal("[IPv6:::1]"), Some("::1".parse().unwrap()));
        assert_eq!(
            literal("[ipv6:2001:db8::1]"),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(literal("[::1]"), None, "an IPv6 literal carries its tag");
        assert_eq!(literal("[300.1.1.1]"), None);
        assert_eq!(literal("example.org"), None);
    }
}
