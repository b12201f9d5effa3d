//! `NodeAttrs`, the node attributes as typed values, and everything done with them by name:
//! get, set, reset, the defaults and the node file's text pairs. Each of these reads the one
//! table (`table.rs`); nothing here names an attribute.

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use super::table::{self, TABLE, Who};
use super::{NotifySet, SendMethod, TlsMode};
use crate::error::{Error, Result};

/// Declares `NodeAttrs` and a `blank()` with every field at its type's zero, the ground the
/// table's defaults are laid on; so a new field needs no second list of fields.
macro_rules! with_blank {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $f:ident: $t:ty,)* }) => {
        $(#[$m])*
        pub struct $name { $($(#[$fm])* pub $f: $t,)* }

        impl $name {
            fn blank() -> Self {
                $name { $($f: Default::default(),)* }
            }
        }
    };
}

with_blank! {
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
}

/// Every row's default applied once; the table's tests check each default parses.
static DEFAULTS: LazyLock<NodeAttrs> = LazyLock::new(|| {
    let mut a = NodeAttrs::blank();
    for r in TABLE.iter().filter(|r| r.who != Who::Nobody) {
        if let Err(e) = (r.set)(&mut a, r, r.default.as_bytes()) {
            log::error!("the default of node attribute {} does not parse: {e}", r.name);
        }
    }
    a
});

impl Default for NodeAttrs {
    fn default() -> Self {
        DEFAULTS.clone()
    }
}

/// The node file's contents since format 2: each attribute that differs from its default,
/// as its `getfattr` text. Text keeps the file readable by any later version: a new attribute
/// is one more name, never a new encoding.
pub type StoredNodeAttrs = Vec<(String, String)>;

impl NodeAttrs {
    /// The value of a node attribute as `getfattr` shows it; `None` when it is unset.
    pub fn get(&self, name: &str, spool_dir: &str) -> Result<Option<String>> {
        let r = table::lookup(name).ok_or_else(|| Error::NoAttr(format!("user.{name}")))?;
        Ok((r.get)(self, spool_dir))
    }

    /// Sets one attribute from its xattr value; on any error `self` is unchanged.
    pub fn set(&mut self, name: &str, value: &[u8]) -> Result<()> {
        let r = table::lookup(name).ok_or_else(|| Error::invalid(name, "no such node attribute"))?;
        if r.who == Who::Nobody {
            return table::read_only(self, r, value);
        }
        (r.set)(self, r, value)
    }

    /// Removing an attribute puts its default back.
    pub fn reset(&mut self, name: &str) -> Result<()> {
        let r = table::lookup(name).ok_or_else(|| Error::NoAttr(format!("user.{name}")))?;
        if r.who == Who::Nobody {
            return table::read_only(self, r, b"");
        }
        (r.set)(self, r, r.default.as_bytes())
    }

    /// The attributes that differ from their defaults, as text.
    pub fn to_stored(&self) -> StoredNodeAttrs {
        let d = &*DEFAULTS;
        TABLE
            .iter()
            .filter(|r| r.who != Who::Nobody)
            .filter_map(|r| {
                let mine = (r.get)(self, "");
                if mine == (r.get)(d, "") {
                    return None;
                }
                Some((r.name.to_string(), mine.unwrap_or_default()))
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

    pub fn helo(&self) -> String {
        self.helo_name.clone().unwrap_or_else(super::hostname)
    }
}
