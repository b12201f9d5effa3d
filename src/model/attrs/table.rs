//! The one table of node attributes (SPEC §3): each row says an attribute's name, the kind of
//! value it takes, its default, who may set it, its help text, and how it reads from and
//! writes to `NodeAttrs`. `get`/`set`/`reset`, the node file, `listxattr`, `-o` and `--help`
//! all read the table, so a new node attribute is a field in `NodeAttrs` and one row in
//! `rows.rs`.

pub use super::row::{Check, Kind, NodeAttr, Who, read_only};
use super::rows::ROWS;

/// The table, one copy in memory (a `const` would be copied at each use).
pub static TABLE: &[NodeAttr] = ROWS;

/// The row of a node attribute.
pub fn lookup(name: &str) -> Option<&'static NodeAttr> {
    TABLE.iter().find(|r| r.name == name)
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
