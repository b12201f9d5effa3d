//! List-valued node attributes (SPEC §3): relays, resolvers, a retry schedule, notices and
//! domains. Entries are separated by commas or white space; each parser returns the value
//! normalised (entries joined by `,`) so `getfattr` shows what will be used.

use std::net::{IpAddr, SocketAddr};

use crate::error::{Error, Result};

/// The entries of a list value: split at commas and white space, empty entries dropped.
pub fn entries(s: &str) -> Vec<&str> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|e| !e.is_empty())
        .collect()
}

fn port(name: &str, p: &str) -> Result<u16> {
    match p.parse::<u16>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(Error::invalid(name, format!("{p:?} is not a port (1-65535)"))),
    }
}

/// One `HOST[:PORT]` entry; an IPv6 address with a port is written `[ADDR]:PORT`.
pub fn host_port(name: &str, e: &str) -> Result<(String, Option<u16>)> {
    if let Some(rest) = e.strip_prefix('[') {
        let (addr, tail) = rest
            .split_once(']')
            .ok_or_else(|| Error::invalid(name, format!("{e:?}: missing ]")))?;
        let ip: std::net::Ipv6Addr = addr
            .parse()
            .map_err(|_| Error::invalid(name, format!("{e:?}: not an IPv6 address")))?;
        let p = match tail {
            "" => None,
            t => Some(port(name, t.strip_prefix(':').unwrap_or(t))?),
        };
        return Ok((ip.to_string(), p));
    }
    if e.parse::<IpAddr>().is_ok() {
        return Ok((e.to_string(), None));
    }
    let (host, p) = match e.rsplit_once(':') {
        Some((h, p)) => (h, Some(port(name, p)?)),
        None => (e, None),
    };
    let host = crate::model::address::validate_host(name, host.as_bytes())?;
    Ok((host, p))
}

fn show_host_port(host: &str, p: Option<u16>) -> String {
    match p {
        Some(p) if host.contains(':') => format!("[{host}]:{p}"),
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

/// `server`: an ordered list of relays.
pub fn servers(name: &str, s: &str) -> Result<String> {
    let list = entries(s);
    if list.is_empty() {
        return Err(Error::invalid(name, "at least one HOST[:PORT] is needed"));
    }
    let mut out = Vec::new();
    for e in list {
        let (h, p) = host_port(name, e)?;
        out.push(show_host_port(&h, p));
    }
    Ok(out.join(","))
}

/// The relays of a normalised `server` value, with `default_port` for entries without one.
pub fn relays(server: &str, default_port: u16) -> Vec<(String, u16)> {
    entries(server)
        .into_iter()
        .filter_map(|e| host_port("server", e).ok())
        .map(|(h, p)| (h, p.unwrap_or(default_port)))
        .collect()
}

/// `dns_server`: `system`, or resolvers as `IP[:PORT]` (port 53 by default).
pub fn dns_servers(name: &str, s: &str) -> Result<Option<Vec<SocketAddr>>> {
    let list = entries(s);
    if list.is_empty() || list == ["system"] {
        return Ok(None);
    }
    let mut out = Vec::new();
    for e in list {
        let (h, p) = host_port(name, e)?;
        let ip: IpAddr = h
            .parse()
            .map_err(|_| Error::invalid(name, format!("{e:?} is not an IP address")))?;
        out.push(SocketAddr::new(ip, p.unwrap_or(53)));
    }
    Ok(Some(out))
}

pub fn show_dns_servers(v: &Option<Vec<SocketAddr>>) -> String {
    match v {
        None => "system".into(),
        Some(list) => list
            .iter()
            .map(|a| {
                if a.port() == 53 {
                    a.ip().to_string()
                } else {
                    show_host_port(&a.ip().to_string(), Some(a.port()))
                }
            })
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// `retry_time`: seconds, or a schedule of seconds (one per retry, the last repeating).
pub fn retry_schedule(name: &str, s: &str) -> Result<Vec<f64>> {
    let list = entries(s);
    if list.is_empty() || list.len() > 100 {
        return Err(Error::invalid(name, "one to 100 numbers of seconds"));
    }
    list.into_iter()
        .map(|e| {
            let v: f64 = e
                .parse()
                .map_err(|_| Error::invalid(name, format!("{e:?} is not a number of seconds")))?;
            if !v.is_finite() || !(0.0..=1e12).contains(&v) {
                return Err(Error::invalid(name, format!("{e:?} is out of range")));
            }
            Ok(v)
        })
        .collect()
}

/// The least wait before a retry, whatever `retry_time` says: `0` made a refused connection a
/// loop of thousands of attempts (and log entries) a second.
pub const MIN_RETRY_WAIT: f64 = 1.0;

/// The wait before retry number `n` (1 = the first retry), at least [`MIN_RETRY_WAIT`].
pub fn retry_wait(schedule: &[f64], n: u32) -> f64 {
    let i = (n.max(1) as usize - 1).min(schedule.len().saturating_sub(1));
    schedule.get(i).copied().unwrap_or(900.0).max(MIN_RETRY_WAIT)
}

/// `notify`: which notices go to the envelope sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct NotifySet {
    pub failure: bool,
    pub delay: bool,
    pub success: bool,
}

impl NotifySet {
    pub const FAILURE: NotifySet = NotifySet {
        failure: true,
        delay: false,
        success: false,
    };

    pub fn parse(name: &str, s: &str) -> Result<NotifySet> {
        let mut n = NotifySet::default();
        let list = entries(s);
        if list.is_empty() {
            return Err(Error::invalid(name, "failure, delay, success or never"));
        }
        for e in &list {
            match *e {
                "failure" => n.failure = true,
                "delay" => n.delay = true,
                "success" => n.success = true,
                "never" if list.len() == 1 => {}
                "never" => return Err(Error::invalid(name, "never stands alone")),
                _ => {
                    return Err(Error::invalid(
                        name,
                        format!("{e:?}: must be failure, delay, success or never"),
                    ));
                }
            }
        }
        Ok(n)
    }

    pub fn show(&self) -> String {
        let mut v = Vec::new();
        if self.failure {
            v.push("failure");
        }
        if self.delay {
            v.push("delay");
        }
        if self.success {
            v.push("success");
        }
        if v.is_empty() { "never".into() } else { v.join(",") }
    }
}

/// Whether a recipient's domain, as written, is one of `hold_domains` (kept lower-cased,
/// without a trailing dot): domain names compare without regard to case, so `a@Y.ORG` waits
/// with `y.org`. The one test the senders and `mailfs queue`/`flush` share.
pub fn holds(hold_domains: &[String], domain: &str) -> bool {
    let d = domain.trim_end_matches('.');
    hold_domains.iter().any(|h| h.eq_ignore_ascii_case(d))
}

/// `hold_domains`: domain names, lower-cased.
pub fn domains(name: &str, s: &str) -> Result<Vec<String>> {
    entries(s)
        .into_iter()
        .map(|d| {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            crate::model::address::validate_host(name, d.as_bytes())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_lists() {
        assert_eq!(
            servers("server", "relay1, relay2:587\t[::1]:2525 ::1 10.0.0.1").unwrap(),
            "relay1,relay2:587,[::1]:2525,::1,10.0.0.1"
        );
        assert_eq!(
            relays("relay1,relay2:587,[::1]:2525,::1", 25),
            vec![
                ("relay1".to_string(), 25),
                ("relay2".to_string(), 587),
                ("::1".to_string(), 2525),
                ("::1".to_string(), 25)
            ]
        );
        assert!(servers("server", "").is_err());
        assert!(servers("server", "a:0").is_err());
        assert!(servers("server", "a:x").is_err());
        assert!(servers("server", "bad_host").is_err());
    }

    #[test]
    fn schedules_and_notices() {
        let s = retry_schedule("retry_time", "900,1800 3600,14400").unwrap();
        assert_eq!(retry_wait(&s, 1), 900.0);
        assert_eq!(retry_wait(&s, 4), 14400.0);
        assert_eq!(retry_wait(&s, 9), 14400.0);
        assert!(retry_schedule("retry_time", "1,-2").is_err());
        assert_eq!(NotifySet::parse("notify", "never").unwrap().show(), "never");
        assert_eq!(
            NotifySet::parse("notify", "success failure,delay")
                .unwrap()
                .show(),
            "failure,delay,success"
        );
        assert!(NotifySet::parse("notify", "never,failure").is_err());
        assert_eq!(
            dns_servers("dns_server", "127.0.0.1:5353, ::1").unwrap(),
            Some(vec![
                "127.0.0.1:5353".parse().unwrap(),
                "[::1]:53".parse().unwrap()
            ])
        );
        assert_eq!(dns_servers("dns_server", "system").unwrap(), None);
        assert!(dns_servers("dns_server", "ns.example").is_err());
        assert_eq!(
            domains("hold_domains", "A.example, b.org.").unwrap(),
            vec!["a.example", "b.org"]
        );
    }
}
