//! The attribute model: node attributes (SPEC §3) and message attributes (SPEC §4), their
//! defaults, their validation and how they read as xattr values.
//!
//! Node attributes are one table (`table.rs` says what a row is, `rows.rs` holds the rows):
//! `NodeAttrs` (`node.rs`) gets, sets, resets and stores them by reading it, and the command
//! line's `-o` and `--help` read it too. A new node attribute is a field and a row.
//!
//! Nothing here touches the disk or FUSE: values come in as bytes from `setfattr` and go out as
//! bytes for `getfattr`, so every rule about names, types and ranges lives in one place and is
//! unit-tested without a mount.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::model::address::{parse_address_list, parse_single_address, validate_address, validate_host};
pub use crate::model::lists::NotifySet;

mod node;
mod row;
mod rows;
pub mod table;
pub mod values;

pub use node::{NodeAttrs, StoredNodeAttrs};
pub use table::NODE_ATTRS;
pub use values::fmt_seconds;

/// How messages leave the node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SendMethod {
    #[default]
    Smtp,
    Sendmail,
    Mx,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TlsMode {
    None,
    /// STARTTLS when offered, unverified; plaintext otherwise.
    #[default]
    May,
    Starttls,
    Tls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Notify {
    Failure,
    Never,
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

/// This machine's host name if it is a valid one (the default HELO name, Message-ID
/// domain and sender domain), else `localhost`.
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

#[cfg(test)]
pub(crate) mod table_tests;
