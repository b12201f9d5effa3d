//! The one table of node attributes (SPEC §3): each row says an attribute's name, the kind of
//! value it takes, its default, who may set it, its help text, and how it reads from and
//! writes to `NodeAttrs`. `get`/`set`/`reset`, the node file, `listxattr`, `-o` and `--help`
//! all read the table, so a new node attribute is a field in `NodeAttrs` and one row in
//! `rows.rs`.

use super::NodeAttrs;
use super::values;
use crate::error::{Error, Result};

use super::rows::ROWS;

/// The table, one copy in memory (a `const` would be copied at each use).
pub static TABLE: &[NodeAttr] = ROWS;

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

/// The row of a node attribute.
pub fn lookup(name: &str) -> Option<&'static NodeAttr> {
    TABLE.iter().find(|r| r.name == name)
}

/// The refusal of a change to a read-only attribute (EPERM).
pub fn read_only(_: &mut NodeAttrs, r: &NodeAttr, _: &[u8]) -> Result<()> {
    Err(Error::ReadOnlyAttr(format!("user.{}", r.name)))
}

const fn names<const N: usize>() -> [&'static str; N] {
    let mut out = [""; N];
    let mut i = 0;
    while i < N {
        out[i] = ROWS[i].name;
        i += 1;
    }
    out
}

const NAMES: [&str; ROWS.len()] = names();

/// Every node attribute's name, in the order `getfattr -d` lists them.
pub const NODE_ATTRS: &[&str] = &NAMES;

/// The list-valued attributes, for help text: `server, retry_time, ...`.
pub fn list_names() -> String {
    let v: Vec<&str> = TABLE
        .iter()
        .filter(|r| r.kind.is_list())
        .map(|r| r.name)
        .collect();
    v.join(", ")
}

/// Two lines per attribute for `mailfs mount --help`: name, kind, default and an example;
/// then what it is.
pub fn help_text() -> String {
    let mut out = String::new();
    for r in TABLE {
        let line = match r.who {
            Who::Nobody => "read-only".to_string(),
            Who::Owner => format!(
                "{}; default: {}; e.g. {}",
                r.kind.describe(),
                r.shown_default(),
                r.example
            ),
        };
        out.push_str(&format!("  {:<20}{line}\n  {:<20}{}\n", r.name, "", r.help));
    }
    out
}

/// `NAME=DEFAULT` for every attribute, wrapped to `width` columns, for `mailfs --help`.
pub fn defaults_summary(width: usize) -> String {
    let mut out = String::new();
    let mut col = 0;
    for r in TABLE {
        let item = match (r.who, r.default) {
            (Who::Owner, d) if !d.is_empty() => format!("{}={d}", r.name),
            _ => format!("{} ({})", r.name, r.shown_default()),
        };
        if col > 0 && col + 1 + item.len() > width {
            out.push('\n');
            col = 0;
        }
        if col == 0 {
            out.push_str("  ");
            col = 2;
        } else {
            out.push(' ');
            col += 1;
        }
        out.push_str(&item);
        col += item.len();
    }
    out
}

/// The README's table of node attributes (a test keeps the README equal to it).
pub fn markdown() -> String {
    let mut out = String::from("| attribute | value | default | meaning |\n|---|---|---|---|\n");
    for r in TABLE {
        let default = match (r.who, r.default) {
            (Who::Owner, d) if !d.is_empty() => format!("`{d}`"),
            _ => r.shown_default().to_string(),
        };
        let kind = match r.who {
            Who::Nobody => "path".to_string(),
            Who::Owner => r.kind.describe(),
        };
        out.push_str(&format!(
            "| `{}` | {} | {default} | {} |\n",
            r.name,
            kind.replace('|', "\\|"),
            r.help
        ));
    }
    out
}
