//! Node attributes of the SMTP listener (SPEC §11) and of DKIM signing (SPEC §12): the
//! structs `NodeAttrs` holds for each feature and the parsers of their values. Their names,
//! defaults and text forms are rows of the one node attribute table (`attrs/table.rs`).

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// `Default` is blank: the listener's defaults are the table's (`NodeAttrs::default()`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListenAttrs {
    /// Addresses to accept SMTP on; empty: no listener.
    pub listen: Vec<SocketAddr>,
    /// Clients that may relay without authenticating.
    pub relay_clients: Vec<IpNet>,
    /// Largest message accepted, in bytes; 0: no limit.
    pub message_size_limit: u64,
    pub listen_tls_cert: Option<String>,
    pub listen_tls_key: Option<String>,
    pub listen_users_file: Option<String>,
}

fn text<'a>(name: &str, value: &'a [u8]) -> Result<&'a str> {
    let s = std::str::from_utf8(value).map_err(|_| Error::invalid(name, "not UTF-8"))?;
    if s.chars().any(|c| c.is_control() && c != '\t') {
        return Err(Error::invalid(name, "control characters are not allowed"));
    }
    Ok(s)
}

/// Entries of a list value: separated by commas or white space.
fn entries(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
}

pub fn optional_path(name: &str, value: &[u8]) -> Result<Option<String>> {
    let s = text(name, value)?;
    if s.is_empty() {
        return Ok(None);
    }
    if !s.starts_with('/') {
        return Err(Error::invalid(name, "must be an absolute path"));
    }
    Ok(Some(s.to_string()))
}

/// `IP:PORT` or `[IPv6]:PORT` entries.
pub fn parse_listen(name: &str, value: &[u8]) -> Result<Vec<SocketAddr>> {
    let mut out: Vec<SocketAddr> = Vec::new();
    for e in entries(text(name, value)?) {
        let a: SocketAddr = e
            .parse()
            .map_err(|_| Error::invalid(name, format!("{e:?} is not IP:PORT (IPv6 as [ADDRESS]:PORT)")))?;
        if a.port() == 0 {
            return Err(Error::invalid(name, format!("{e:?}: port 0")));
        }
        if !out.contains(&a) {
            out.push(a);
        }
    }
    Ok(out)
}

/// CIDR entries; a bare address is a network of one.
pub fn parse_cidrs(name: &str, value: &[u8]) -> Result<Vec<IpNet>> {
    entries(text(name, value)?)
        .map(|e| {
            e.parse::<IpNet>()
                .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                .map(|n| n.trunc())
                .map_err(|_| Error::invalid(name, format!("{e:?} is not an address or CIDR network")))
        })
        .collect()
}

/// `message_size_limit`: bytes, 0 for no limit.
pub fn parse_size(name: &str, value: &[u8]) -> Result<u64> {
    let s = text(name, value)?.trim();
    s.parse()
        .map_err(|_| Error::invalid(name, format!("{s:?} is not a number of bytes")))
}

impl ListenAttrs {
    /// Whether a client at `ip` may relay without authenticating.
    pub fn may_relay(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.relay_clients.iter().any(|n| n.contains(&ip))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DkimAttrs {
    pub dkim_domain: Option<String>,
    pub dkim_selector: Option<String>,
    pub dkim_key_file: Option<String>,
}

pub fn dns_name(name: &str, value: &[u8]) -> Result<Option<String>> {
    let s = text(name, value)?
        .trim()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if s.is_empty() {
        return Ok(None);
    }
    let ok = s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if !ok {
        return Err(Error::invalid(name, format!("{s:?} is not a domain name")));
    }
    Ok(Some(s))
}

impl DkimAttrs {
    /// Domain, selector and key file, when all three are set.
    pub fn configured(&self) -> Option<(&str, &str, &str)> {
        Some((
            self.dkim_domain.as_deref()?,
            self.dkim_selector.as_deref()?,
            self.dkim_key_file.as_deref()?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use crate::model::attrs::NodeAttrs;

    #[test]
    fn listen_values() {
        let mut a = NodeAttrs::default();
        let get = |a: &NodeAttrs, k| a.get(k, "/s").unwrap();
        assert_eq!(get(&a, "listen").as_deref(), Some(""));
        assert_eq!(get(&a, "relay_clients").as_deref(), Some("127.0.0.0/8,::1/128"));
        a.set("listen", b"127.0.0.1:2525, [::1]:2526").unwrap();
        assert_eq!(a.listener.listen.len(), 2);
        assert!(a.set("listen", b"localhost:25").is_err());
        assert!(a.set("listen", b"127.0.0.1").is_err());
        assert_eq!(a.listener.listen.len(), 2, "a refused value changes nothing");
        a.set("listen", b"").unwrap();
        assert!(a.listener.listen.is_empty());
        let l = &a.listener;
        assert!(l.may_relay("127.0.0.2".parse().unwrap()));
        assert!(l.may_relay("::ffff:127.0.0.1".parse().unwrap()));
        a.set("relay_clients", b"10.1.2.3/8 192.0.2.7").unwrap();
        assert_eq!(
            get(&a, "relay_clients").as_deref(),
            Some("10.0.0.0/8,192.0.2.7/32")
        );
        assert!(!a.listener.may_relay("127.0.0.1".parse().unwrap()));
        assert!(a.listener.may_relay("10.9.9.9".parse().unwrap()));
        assert!(a.set("relay_clients", b"10.0.0.0/33").is_err());
        assert!(a.set("message_size_limit", b"-1").is_err());
        a.set("message_size_limit", b"1000").unwrap();
        assert!(a.set("listen_tls_cert", b"relative.pem").is_err());
        a.reset("relay_clients").unwrap();
        assert!(a.listener.may_relay("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn dkim_values() {
        let mut a = NodeAttrs::default();
        assert!(a.dkim.configured().is_none());
        a.set("dkim_domain", b"Example.ORG.").unwrap();
        assert_eq!(a.dkim.dkim_domain.as_deref(), Some("example.org"));
        assert!(a.set("dkim_selector", b"bad selector").is_err());
        a.set("dkim_selector", b"mail2026").unwrap();
        a.set("dkim_key_file", b"/k.pem").unwrap();
        assert!(a.dkim.configured().is_some());
        a.reset("dkim_key_file").unwrap();
        assert!(a.dkim.configured().is_none());
    }
}
