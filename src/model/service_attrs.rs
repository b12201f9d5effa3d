//! Node attributes of the SMTP listener (SPEC §11) and of DKIM signing (SPEC §12): their
//! defaults, parsing and text form. Kept out of `attrs.rs` so that each feature's attributes
//! are one small table; `NodeAttrs` holds one struct per feature and delegates by name.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The listener's attributes, in the order `getfattr -d` lists them.
pub const LISTEN_ATTRS: &[&str] = &[
    "listen",
    "relay_clients",
    "message_size_limit",
    "listen_tls_cert",
    "listen_tls_key",
    "listen_users_file",
];

/// DKIM's attributes, in the order `getfattr -d` lists them.
pub const DKIM_ATTRS: &[&str] = &["dkim_domain", "dkim_selector", "dkim_key_file"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

impl Default for ListenAttrs {
    fn default() -> Self {
        ListenAttrs {
            listen: Vec::new(),
            relay_clients: default_relay_clients(),
            message_size_limit: 10_240_000,
            listen_tls_cert: None,
            listen_tls_key: None,
            listen_users_file: None,
        }
    }
}

fn default_relay_clients() -> Vec<IpNet> {
    ["127.0.0.0/8", "::1/128"]
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect()
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

fn optional_path(name: &str, value: &[u8]) -> Result<Option<String>> {
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

fn join<T: std::fmt::Display>(v: &[T]) -> String {
    v.iter().map(T::to_string).collect::<Vec<_>>().join(",")
}

impl ListenAttrs {
    pub fn get(&self, name: &str) -> Result<Option<String>> {
        Ok(match name {
            "listen" => Some(join(&self.listen)),
            "relay_clients" => Some(join(&self.relay_clients)),
            "message_size_limit" => Some(self.message_size_limit.to_string()),
            "listen_tls_cert" => self.listen_tls_cert.clone(),
            "listen_tls_key" => self.listen_tls_key.clone(),
            "listen_users_file" => self.listen_users_file.clone(),
            _ => return Err(Error::NoAttr(format!("user.{name}"))),
        })
    }

    pub fn set(&mut self, name: &str, value: &[u8]) -> Result<()> {
        match name {
            "listen" => self.listen = parse_listen(name, value)?,
            "relay_clients" => self.relay_clients = parse_cidrs(name, value)?,
            "message_size_limit" => {
                let s = text(name, value)?.trim();
                self.message_size_limit = s
                    .parse()
                    .map_err(|_| Error::invalid(name, format!("{s:?} is not a number of bytes")))?;
            }
            "listen_tls_cert" => self.listen_tls_cert = optional_path(name, value)?,
            "listen_tls_key" => self.listen_tls_key = optional_path(name, value)?,
            "listen_users_file" => self.listen_users_file = optional_path(name, value)?,
            _ => return Err(Error::invalid(name, "no such node attribute")),
        }
        Ok(())
    }

    pub fn reset(&mut self, name: &str) -> Result<()> {
        let d = ListenAttrs::default();
        match name {
            "listen" => self.listen = d.listen,
            "relay_clients" => self.relay_clients = d.relay_clients,
            "message_size_limit" => self.message_size_limit = d.message_size_limit,
            "listen_tls_cert" => self.listen_tls_cert = d.listen_tls_cert,
            "listen_tls_key" => self.listen_tls_key = d.listen_tls_key,
            "listen_users_file" => self.listen_users_file = d.listen_users_file,
            _ => return Err(Error::NoAttr(format!("user.{name}"))),
        }
        Ok(())
    }

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

fn dns_name(name: &str, value: &[u8]) -> Result<Option<String>> {
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
    pub fn get(&self, name: &str) -> Result<Option<String>> {
        Ok(match name {
            "dkim_domain" => self.dkim_domain.clone(),
            "dkim_selector" => self.dkim_selector.clone(),
            "dkim_key_file" => self.dkim_key_file.clone(),
            _ => return Err(Error::NoAttr(format!("user.{name}"))),
        })
    }

    /// Checks the form only; whether the key can be used is checked where the value is set
    /// by a user (`crate::mail::dkim::check`), so that a key that breaks later is not dropped
    /// silently when the node file is read.
    pub fn set(&mut self, name: &str, value: &[u8]) -> Result<()> {
        match name {
            "dkim_domain" => self.dkim_domain = dns_name(name, value)?,
            "dkim_selector" => self.dkim_selector = dns_name(name, value)?,
            "dkim_key_file" => self.dkim_key_file = optional_path(name, value)?,
            _ => return Err(Error::invalid(name, "no such node attribute")),
        }
        Ok(())
    }

    pub fn reset(&mut self, name: &str) -> Result<()> {
        match name {
            "dkim_domain" => self.dkim_domain = None,
            "dkim_selector" => self.dkim_selector = None,
            "dkim_key_file" => self.dkim_key_file = None,
            _ => return Err(Error::NoAttr(format!("user.{name}"))),
        }
        Ok(())
    }

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
    use super::*;

    #[test]
    fn listen_values() {
        let mut a = ListenAttrs::default();
        assert_eq!(a.get("listen").unwrap().as_deref(), Some(""));
        assert_eq!(
            a.get("relay_clients").unwrap().as_deref(),
            Some("127.0.0.0/8,::1/128")
        );
        a.set("listen", b"127.0.0.1:2525, [::1]:2526").unwrap();
        assert_eq!(a.listen.len(), 2);
        assert!(a.set("listen", b"localhost:25").is_err());
        assert!(a.set("listen", b"127.0.0.1").is_err());
        assert_eq!(a.listen.len(), 2, "a refused value changes nothing");
        a.set("listen", b"").unwrap();
        assert!(a.listen.is_empty());
        assert!(a.may_relay("127.0.0.2".parse().unwrap()));
        assert!(a.may_relay("::ffff:127.0.0.1".parse().unwrap()));
        a.set("relay_clients", b"10.1.2.3/8 192.0.2.7").unwrap();
        assert_eq!(
            a.get("relay_clients").unwrap().as_deref(),
            Some("10.0.0.0/8,192.0.2.7/32")
        );
        assert!(!a.may_relay("127.0.0.1".parse().unwrap()));
        assert!(a.may_relay("10.9.9.9".parse().unwrap()));
        assert!(a.set("relay_clients", b"10.0.0.0/33").is_err());
        assert!(a.set("message_size_limit", b"-1").is_err());
        a.set("message_size_limit", b"1000").unwrap();
        assert!(a.set("listen_tls_cert", b"relative.pem").is_err());
        a.reset("relay_clients").unwrap();
        assert!(a.may_relay("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn dkim_values() {
        let mut d = DkimAttrs::default();
        assert!(d.configured().is_none());
        d.set("dkim_domain", b"Example.ORG.").unwrap();
        assert_eq!(d.dkim_domain.as_deref(), Some("example.org"));
        assert!(d.set("dkim_selector", b"bad selector").is_err());
        d.set("dkim_selector", b"mail2026").unwrap();
        d.set("dkim_key_file", b"/k.pem").unwrap();
        assert!(d.configured().is_some());
        d.reset("dkim_key_file").unwrap();
        assert!(d.configured().is_none());
    }
}
