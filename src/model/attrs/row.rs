//! What a row of the node attribute table is ([`NodeAttr`]): the kinds of values, who may set
//! them, what a value needs of the machine. The rows are in `rows.rs`; the table and what
//! reads it in `table.rs`.

use super::NodeAttrs;
use super::values;
use crate::error::{Error, Result};

/// Who may change an attribute (SPEC §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// Root and the node's owner; anyone else gets EPERM (the fs layer checks the caller).
    Owner,
    /// Nobody: mailfs says what it is (EPERM).
    Nobody,
}

/// What a value needs of the machine beyond its form. The model does no I/O: the store checks
/// this when a user sets the value (`setfattr`, `-o`), never when it reads the node file, so
/// a file that breaks later is reported where it is used, not dropped silently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    None,
    /// A directory mailfs writes into: made if missing, refused if a link or writable by others.
    PrivateDir,
    /// A DKIM private key that loads and can sign.
    SigningKey,
    /// A PEM file holding at least one certificate (the listener's STARTTLS chain).
    TlsCert,
    /// A PEM file holding a private key (the listener's STARTTLS key).
    TlsKey,
    /// A users file with at least one `user:hash` line in a supported crypt format.
    UsersFile,
}

/// The kind of value an attribute takes: what `--help` calls it, and which values the
/// table's tests expect it to refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Exactly one of these words.
    Choice(&'static [&'static str]),
    /// Seconds as a float up to 10^12; `positive` refuses 0 too.
    Seconds { positive: bool },
    /// Seconds, or a list of seconds: one wait per retry, the last repeating.
    Schedule,
    /// A whole number in `min..=max`.
    Int { min: u64, max: u64 },
    /// A number of bytes, 0 for no limit.
    Bytes,
    /// An absolute path.
    Path,
    /// An absolute path, or empty for unset.
    OptPath,
    /// A plain xattr name.
    XattrName,
    /// A host name or IP address, or empty for unset.
    OptHost,
    /// Text without control characters, or empty for unset.
    OptText,
    /// A list of `HOST[:PORT]`.
    Hosts,
    /// `system`, or a list of `IP[:PORT]`.
    Resolvers,
    /// A list of `failure`, `delay`, `success`, or `never`.
    Notices,
    /// A list of domain names (empty: none).
    Domains,
    /// A list of `IP:PORT` (empty: none).
    Listen,
    /// A list of CIDR networks.
    Networks,
    /// A domain name, or empty for unset.
    DnsName,
}

impl Kind {
    /// Whether the value is a list: entries separated by commas or white space, `\,` in `-o`.
    pub fn is_list(self) -> bool {
        matches!(
            self,
            Kind::Schedule
                | Kind::Hosts
                | Kind::Resolvers
                | Kind::Notices
                | Kind::Domains
                | Kind::Listen
                | Kind::Networks
        )
    }

    /// The value's type, as `--help` and the README say it.
    pub fn describe(self) -> String {
        match self {
            Kind::Choice(c) => values::one_of(c),
            Kind::Seconds { positive: false } => "seconds >= 0".into(),
            Kind::Seconds { positive: true } => "seconds > 0".into(),
            Kind::Schedule => "seconds, or a list of seconds".into(),
            Kind::Int { min, max } if max == u64::MAX => format!("integer >= {min}"),
            Kind::Int { min, max } => format!("integer {min}-{max}"),
            Kind::Bytes => "bytes, 0: no limit".into(),
            Kind::Path | Kind::OptPath => "absolute path".into(),
            Kind::XattrName => "xattr name".into(),
            Kind::OptHost => "host name or IP address".into(),
            Kind::OptText => "text".into(),
            Kind::Hosts => "list of HOST[:PORT]".into(),
            Kind::Resolvers => "system, or a list of IP[:PORT]".into(),
            Kind::Notices => "list of failure, delay, success; or never".into(),
            Kind::Domains => "list of domains".into(),
            Kind::Listen => "list of IP:PORT".into(),
            Kind::Networks => "list of CIDR networks".into(),
            Kind::DnsName => "domain name".into(),
        }
    }
}

/// One node attribute.
pub struct NodeAttr {
    pub name: &'static str,
    pub kind: Kind,
    /// The default as `setfattr` takes it and `getfattr` shows it; empty: unset (the help
    /// text says what unset means where it means more than nothing).
    pub default: &'static str,
    /// A valid value other than the default, in normalised form: `--help` shows it and the
    /// table's tests set it on every row.
    pub example: &'static str,
    pub who: Who,
    pub check: Check,
    pub help: &'static str,
    /// The value as `getfattr` shows it (given the spool directory); `None`: unset.
    pub get: fn(&NodeAttrs, &str) -> Option<String>,
    /// Parses and stores a value; on an error `NodeAttrs` is unchanged.
    pub set: fn(&mut NodeAttrs, &NodeAttr, &[u8]) -> Result<()>,
}

impl std::fmt::Debug for NodeAttr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl NodeAttr {
    /// The index of the value among a `Choice` row's words.
    pub fn choice(&self, v: &[u8]) -> Result<usize> {
        match self.kind {
            Kind::Choice(c) => values::choice(self.name, v, c),
            _ => Err(self.kind_mismatch()),
        }
    }

    /// A whole number within an `Int` row's range.
    pub fn int<T: std::str::FromStr>(&self, v: &[u8]) -> Result<T> {
        match self.kind {
            Kind::Int { min, max } => values::integer(self.name, v, min, max),
            _ => Err(self.kind_mismatch()),
        }
    }

    /// Seconds, as a `Seconds` row allows them.
    pub fn seconds(&self, v: &[u8]) -> Result<f64> {
        match self.kind {
            Kind::Seconds { positive } => values::seconds(self.name, v, positive),
            _ => Err(self.kind_mismatch()),
        }
    }

    fn kind_mismatch(&self) -> Error {
        Error::invalid(self.name, "the attribute table gives this row another kind")
    }

    /// The default as `--help` and the README show it.
    pub fn shown_default(&self) -> &'static str {
        match (self.who, self.default) {
            (Who::Nobody, _) => "read-only",
            (_, "") if self.kind.is_list() => "empty",
            (_, "") => "unset",
            (_, d) => d,
        }
    }
}

/// The refusal of a change to a read-only attribute (EPERM).
pub fn read_only(_: &mut NodeAttrs, r: &NodeAttr, _: &[u8]) -> Result<()> {
    Err(Error::ReadOnlyAttr(format!("user.{}", r.name)))
}
