//! The attribute model: node attributes (SPEC §3) and message attributes (SPEC §4), their
//! defaults, their validation and how they read as xattr values.
//!
//! Nothing here touches the disk or FUSE: values come in as bytes from `setfattr` and go out as
//! bytes for `getfattr`, so every rule about names, types and ranges lives in one place and is
//! unit-tested without a mount.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
pub use crate::model::lists::NotifySet;
use crate::model::service_attrs::{DKIM_ATTRS, LISTEN_ATTRS};

/// How messages leave the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SendMethod {
    Smtp,
    Sendmail,
    Mx,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TlsMode {
    None,
    /// STARTTLS when offered, unverified; plaintext otherwise.
    May,
    Starttls,
    Tls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Notify {
    Failure,
    Never,
}

/// Node attributes, persisted in the spool and shown as xattrs of the mount root.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeAttrs {
    pub send_method: SendMethod,
    pub server: String,
    pub port: u16,
    /// `None` means `SPOOL_DIR/log`.
    pub log_dir: Option<String>,
    pub log_date_attr: String,
    pub log_msgid_attr: String,
    pub log_info_attr: String,
    pub ratelimit_time: f64,
    pub domlimit_time: f64,
    pub expire_time: f64,
    /// The retry schedule: one wait per retry, the last repeating.
    pub retry_time: Vec<f64>,
    pub max_retries: u32,
    pub queue_time: f64,
    pub handshake_time: f64,
    pub conn_limit: u32,
    pub domconn_limit: u32,
    pub sendmail_path: String,
    /// `None` means the host name.
    pub helo_name: Option<String>,
    pub tls: TlsMode,
    pub ca_file: Option<String>,
    pub auth_user: Option<String>,
    pub auth_secret_file: Option<String>,
    pub notify: NotifySet,
    pub delay_warning_time: f64,
    /// `None` means the system's resolvers.
    pub dns_server: Option<Vec<std::net::SocketAddr>>,
    pub hold_domains: Vec<String>,
    /// The SMTP listener's attributes (SPEC §11).
    pub listener: crate::model::service_attrs::ListenAttrs,
    pub dkim: crate::model::service_attrs::DkimAttrs,
}

impl Default for NodeAttrs {
    fn default() -> Self {
        NodeAttrs {
            send_method: SendMethod::Smtp,
            server: "127.0.0.1".into(),
            port: 25,
            log_dir: None,
            log_date_attr: "date".into(),
            log_msgid_attr: "msgid".into(),
            log_info_attr: "info".into(),
            ratelimit_time: 1.0,
            domlimit_time: 5.0,
            expire_time: 259_200.0,
            retry_time: vec![900.0],
            max_retries: 0,
            queue_time: 432_000.0,
            handshake_time: 180.0,
            conn_limit: 1,
            domconn_limit: 1,
            sendmail_path: "/usr/sbin/sendmail".into(),
            helo_name: None,
            tls: TlsMode::May,
            ca_file: None,
            auth_user: None,
            auth_secret_file: None,
            notify: NotifySet::FAILURE,
            delay_warning_time: 14_400.0,
            dns_server: None,
            hold_domains: Vec::new(),
            listener: Default::default(),
            dkim: Default::default(),
        }
    }
}

/// The node file's contents since format 2: each attribute that differs from its default,
/// as its `getfattr` text. Text keeps the file readable by any later version: a new attribute
/// is one more name, never a new encoding.
pub type StoredNodeAttrs = Vec<(String, String)>;

impl NodeAttrs {
    /// The attributes that differ from their defaults, as text.
    pub fn to_stored(&self) -> StoredNodeAttrs {
        let d = NodeAttrs::default();
        NODE_ATTRS
            .iter()
            .filter(|n| **n != "spool_dir")
            .filter_map(|n| {
                let mine = self.get(n, "").ok().flatten();
                if mine == d.get(n, "").ok().flatten() {
                    return None;
                }
                Some((n.to_string(), mine.unwrap_or_default()))
            })
            .collect()
    }

    /// Defaults with each stored value applied; a value this version cannot take (written by
    /// a newer one, or no longer valid) is skipped with a warning rather than failing the node.
    pub fn from_stored(stored: &StoredNodeAttrs) -> NodeAttrs {
        let mut a = NodeAttrs::default();
        for (name, value) in stored {
            if let Err(e) = a.set(name, value.as_bytes()) {
                log::warn!("stored node attribute {name} ignored: {e}");
            }
        }
        a
    }
}

/// The node file as format 1 stored it (a bincode struct): read to upgrade old spools.
#[derive(Debug, Clone, Deserialize)]
pub struct NodeAttrsV1 {
    send_method: SendMethod,
    server: String,
    port: u16,
    log_dir: Option<String>,
    log_date_attr: String,
    log_msgid_attr: String,
    log_info_attr: String,
    ratelimit_time: f64,
    domlimit_time: f64,
    expire_time: f64,
    retry_time: f64,
    queue_time: f64,
    handshake_time: f64,
    conn_limit: u32,
    domconn_limit: u32,
    sendmail_path: String,
    helo_name: Option<String>,
    tls: TlsMode,
    ca_file: Option<String>,
    auth_user: Option<String>,
    auth_secret_file: Option<String>,
    notify: Notify,
}

impl NodeAttrsV1 {
    /// As text pairs, so that the upgrade goes through today's validation.
    pub fn to_stored(&self) -> StoredNodeAttrs {
        let mut v: StoredNodeAttrs = vec![
            (
                "send_method".into(),
                match self.send_method {
                    SendMethod::Sendmail => "sendmail".into(),
                    _ => "smtp".into(),
                },
            ),
            ("server".into(), self.server.clone()),
            ("port".into(), self.port.to_string()),
            ("log_date_attr".into(), self.log_date_attr.clone()),
            ("log_msgid_attr".into(), self.log_msgid_attr.clone()),
            ("log_info_attr".into(), self.log_info_attr.clone()),
            ("ratelimit_time".into(), fmt_seconds(self.ratelimit_time)),
            ("domlimit_time".into(), fmt_seconds(self.domlimit_time)),
            ("expire_time".into(), fmt_seconds(self.expire_time)),
            ("retry_time".into(), fmt_seconds(self.retry_time)),
            ("queue_time".into(), fmt_seconds(self.queue_time)),
            ("handshake_time".into(), fmt_seconds(self.handshake_time)),
            ("conn_limit".into(), self.conn_limit.to_string()),
            ("domconn_limit".into(), self.domconn_limit.to_string()),
            ("sendmail_path".into(), self.sendmail_path.clone()),
            (
                "tls".into(),
                match self.tls {
                    TlsMode::Starttls => "starttls".into(),
                    TlsMode::Tls => "tls".into(),
                    _ => "none".into(),
                },
            ),
            (
                "notify".into(),
                match self.notify {
                    Notify::Never => "never".into(),
                    _ => "failure".into(),
                },
            ),
        ];
        for (n, o) in [
            ("log_dir", &self.log_dir),
            ("helo_name", &self.helo_name),
            ("ca_file", &self.ca_file),
            ("auth_user", &self.auth_user),
            ("auth_secret_file", &self.auth_secret_file),
        ] {
            if let Some(x) = o {
                v.push((n.into(), x.clone()));
            }
        }
        v
    }
}

/// Every node attribute, in the order `getfattr -d` lists them.
pub const NODE_ATTRS: &[&str] = &[
    "send_method",
    "server",
    "port",
    "dns_server",
    "spool_dir",
    "log_dir",
    "log_date_attr",
    "log_msgid_attr",
    "log_info_attr",
    "ratelimit_time",
    "domlimit_time",
    "expire_time",
    "retry_time",
    "max_retries",
    "queue_time",
    "handshake_time",
    "conn_limit",
    "domconn_limit",
    "sendmail_path",
    "helo_name",
    "tls",
    "ca_file",
    "auth_user",
    "auth_secret_file",
    "notify",
    "delay_warning_time",
    "hold_domains",
    "listen",
    "relay_clients",
    "message_size_limit",
    "listen_tls_cert",
    "listen_tls_key",
    "listen_users_file",
    "dkim_domain",
    "dkim_selector",
    "dkim_key_file",
];

fn text(name: &str, value: &[u8]) -> Result<String> {
    let s = std::str::from_utf8(value).map_err(|_| Error::invalid(name, "not UTF-8"))?;
    if s.chars().any(|c| c.is_control()) {
        return Err(Error::invalid(name, "control characters are not allowed"));
    }
    Ok(s.to_string())
}

fn seconds(name: &str, value: &[u8], positive: bool) -> Result<f64> {
    let s = text(name, value)?;
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| Error::invalid(name, format!("{s:?} is not a number of seconds")))?;
    if !v.is_finite() || v < 0.0 || (positive && v == 0.0) || v > 1e12 {
        return Err(Error::invalid(name, format!("{s:?} is out of range")));
    }
    Ok(v)
}

fn integer<T: FromStr>(name: &str, value: &[u8], min: u64, max: u64) -> Result<T> {
    let s = text(name, value)?;
    let v: u64 = s
        .trim()
        .parse()
        .map_err(|_| Error::invalid(name, format!("{s:?} is not a whole number")))?;
    if v < min || v > max {
        return Err(Error::invalid(name, format!("{v} is not in {min}..={max}")));
    }
    s.trim().parse().map_err(|_| Error::invalid(name, "out of range"))
}

fn path(name: &str, value: &[u8]) -> Result<String> {
    let s = text(name, value)?;
    if !s.starts_with('/') {
        return Err(Error::invalid(name, "must be an absolute path"));
    }
    Ok(s)
}

fn optional_path(name: &str, value: &[u8]) -> Result<Option<String>> {
    if value.is_empty() {
        Ok(None)
    } else {
        path(name, value).map(Some)
    }
}

/// A host name or IP address, as a server or HELO name may be.
pub fn validate_host(name: &str, value: &[u8]) -> Result<String> {
    let s = text(name, value)?;
    if s.parse::<std::net::IpAddr>().is_ok() {
        return Ok(s);
    }
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !ok {
        return Err(Error::invalid(
            name,
            format!("{s:?} is not a host name or IP address"),
        ));
    }
    Ok(s)
}

fn attr_name(name: &str, value: &[u8]) -> Result<String> {
    let s = text(name, value)?;
    if s.is_empty()
        || s.len() > 200
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
    {
        return Err(Error::invalid(
            name,
            "must be a plain xattr name (letters, digits, _ - .)",
        ));
    }
    Ok(s)
}

/// Formats seconds the way they were most likely given: `900`, not `900.0`.
pub fn fmt_seconds(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

impl NodeAttrs {
    /// The value of a node attribute as `getfattr` shows it; `None` when it is unset.
    pub fn get(&self, name: &str, spool_dir: &str) -> Result<Option<String>> {
        Ok(match name {
            "send_method" => Some(match self.send_method {
                SendMethod::Smtp => "smtp".into(),
                SendMethod::Sendmail => "sendmail".into(),
                SendMethod::Mx => "mx".into(),
            }),
            "server" => Some(self.server.clone()),
            "port" => Some(self.port.to_string()),
            "dns_server" => Some(crate::model::lists::show_dns_servers(&self.dns_server)),
            "spool_dir" => Some(spool_dir.to_string()),
            "log_dir" => Some(self.log_dir.clone().unwrap_or_else(|| format!("{spool_dir}/log"))),
            "log_date_attr" => Some(self.log_date_attr.clone()),
            "log_msgid_attr" => Some(self.log_msgid_attr.clone()),
            "log_info_attr" => Some(self.log_info_attr.clone()),
            "ratelimit_time" => Some(fmt_seconds(self.ratelimit_time)),
            "domlimit_time" => Some(fmt_seconds(self.domlimit_time)),
            "expire_time" => Some(fmt_seconds(self.expire_time)),
            "retry_time" => Some(
                self.retry_time
                    .iter()
                    .map(|v| fmt_seconds(*v))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            "max_retries" => Some(self.max_retries.to_string()),
            "queue_time" => Some(fmt_seconds(self.queue_time)),
            "handshake_time" => Some(fmt_seconds(self.handshake_time)),
            "conn_limit" => Some(self.conn_limit.to_string()),
            "domconn_limit" => Some(self.domconn_limit.to_string()),
            "sendmail_path" => Some(self.sendmail_path.clone()),
            "helo_name" => Some(self.helo_name.clone().unwrap_or_else(hostname)),
            "tls" => Some(
                match self.tls {
                    TlsMode::None => "none",
                    TlsMode::May => "may",
                    TlsMode::Starttls => "starttls",
                    TlsMode::Tls => "tls",
                }
                .into(),
            ),
            "ca_file" => self.ca_file.clone(),
            "auth_user" => self.auth_user.clone(),
            "auth_secret_file" => self.auth_secret_file.clone(),
            "notify" => Some(self.notify.show()),
            "delay_warning_time" => Some(fmt_seconds(self.delay_warning_time)),
            "hold_domains" => Some(self.hold_domains.join(",")),
            n if LISTEN_ATTRS.contains(&n) => self.listener.get(n)?,
            n if DKIM_ATTRS.contains(&n) => self.dkim.get(n)?,
            _ => return Err(Error::NoAttr(format!("user.{name}"))),
        })
    }

    /// Sets one attribute from its xattr value; on any error `self` is unchanged.
    pub fn set(&mut self, name: &str, value: &[u8]) -> Result<()> {
        match name {
            "send_method" => {
                self.send_method = match value {
                    b"smtp" => SendMethod::Smtp,
                    b"sendmail" => SendMethod::Sendmail,
                    b"mx" => SendMethod::Mx,
                    _ => return Err(Error::invalid(name, "must be smtp, sendmail or mx")),
                }
            }
            "server" => self.server = crate::model::lists::servers(name, &text(name, value)?)?,
            "dns_server" => self.dns_server = crate::model::lists::dns_servers(name, &text(name, value)?)?,
            "port" => self.port = integer(name, value, 1, 65535)?,
            "spool_dir" => return Err(Error::ReadOnlyAttr("user.spool_dir".into())),
            "log_dir" => self.log_dir = optional_path(name, value)?,
            "log_date_attr" => self.log_date_attr = attr_name(name, value)?,
            "log_msgid_attr" => self.log_msgid_attr = attr_name(name, value)?,
            "log_info_attr" => self.log_info_attr = attr_name(name, value)?,
            "ratelimit_time" => self.ratelimit_time = seconds(name, value, false)?,
            "domlimit_time" => self.domlimit_time = seconds(name, value, false)?,
            "expire_time" => self.expire_time = seconds(name, value, false)?,
            "retry_time" => self.retry_time = crate::model::lists::retry_schedule(name, &text(name, value)?)?,
            "max_retries" => self.max_retries = integer(name, value, 0, 1_000_000)?,
            "queue_time" => self.queue_time = seconds(name, value, false)?,
            "handshake_time" => self.handshake_time = seconds(name, value, true)?,
            "conn_limit" => self.conn_limit = integer(name, value, 1, 1024)?,
            "domconn_limit" => self.domconn_limit = integer(name, value, 1, 1024)?,
            "sendmail_path" => self.sendmail_path = path(name, value)?,
            "helo_name" => {
                self.helo_name = if value.is_empty() {
                    None
                } else {
                    Some(validate_host(name, value)?)
                }
            }
            "tls" => {
                self.tls = match value {
                    b"none" => TlsMode::None,
                    b"may" => TlsMode::May,
                    b"starttls" => TlsMode::Starttls,
                    b"tls" => TlsMode::Tls,
                    _ => return Err(Error::invalid(name, "must be may, none, starttls or tls")),
                }
            }
            "ca_file" => self.ca_file = optional_path(name, value)?,
            "auth_user" => {
                let s = text(name, value)?;
                self.auth_user = if s.is_empty() { None } else { Some(s) };
            }
            "auth_secret_file" => self.auth_secret_file = optional_path(name, value)?,
            "notify" => self.notify = NotifySet::parse(name, &text(name, value)?)?,
            "delay_warning_time" => self.delay_warning_time = seconds(name, value, false)?,
            "hold_domains" => self.hold_domains = crate::model::lists::domains(name, &text(name, value)?)?,
            n if LISTEN_ATTRS.contains(&n) => self.listener.set(n, value)?,
            n if DKIM_ATTRS.contains(&n) => self.dkim.set(n, value)?,
            _ => return Err(Error::invalid(name, "no such node attribute")),
        }
        Ok(())
    }

    /// Removing an attribute puts its default back.
    pub fn reset(&mut self, name: &str) -> Result<()> {
        let d = NodeAttrs::default();
        match name {
            "spool_dir" => return Err(Error::ReadOnlyAttr("user.spool_dir".into())),
            "send_method" => self.send_method = d.send_method,
            "server" => self.server = d.server,
            "port" => self.port = d.port,
            "dns_server" => self.dns_server = d.dns_server,
            "log_dir" => self.log_dir = d.log_dir,
            "log_date_attr" => self.log_date_attr = d.log_date_attr,
            "log_msgid_attr" => self.log_msgid_attr = d.log_msgid_attr,
            "log_info_attr" => self.log_info_attr = d.log_info_attr,
            "ratelimit_time" => self.ratelimit_time = d.ratelimit_time,
            "domlimit_time" => self.domlimit_time = d.domlimit_time,
            "expire_time" => self.expire_time = d.expire_time,
            "retry_time" => self.retry_time = d.retry_time,
            "max_retries" => self.max_retries = d.max_retries,
            "queue_time" => self.queue_time = d.queue_time,
            "handshake_time" => self.handshake_time = d.handshake_time,
            "conn_limit" => self.conn_limit = d.conn_limit,
            "domconn_limit" => self.domconn_limit = d.domconn_limit,
            "sendmail_path" => self.sendmail_path = d.sendmail_path,
            "helo_name" => self.helo_name = d.helo_name,
            "tls" => self.tls = d.tls,
            "ca_file" => self.ca_file = d.ca_file,
            "auth_user" => self.auth_user = d.auth_user,
            "auth_secret_file" => self.auth_secret_file = d.auth_secret_file,
            "notify" => self.notify = d.notify,
            "delay_warning_time" => self.delay_warning_time = d.delay_warning_time,
            "hold_domains" => self.hold_domains = d.hold_domains,
            n if LISTEN_ATTRS.contains(&n) => self.listener.reset(n)?,
            n if DKIM_ATTRS.contains(&n) => self.dkim.reset(n)?,
            _ => return Err(Error::NoAttr(format!("user.{name}"))),
        }
        Ok(())
    }

    pub fn helo(&self) -> String {
        self.helo_name.clone().unwrap_or_else(hostname)
    }
}

pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its whole length and gethostname NUL-terminates or
    // truncates within it.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).into_owned();
    if validate_host("helo_name", name.as_bytes()).is_ok() {
        name
    } else {
        "localhost".into()
    }
}

mod message;
pub use message::*;

#[cfg(test)]
mod tests;
