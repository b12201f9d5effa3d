//! Tests of the node attribute table. Each runs over every row, so a new attribute is tested
//! by being added: its default, its example, the values its kind must refuse, the node file's
//! text pairs and the help text. `store` (the spool's node file) and `app::cli` (`-o`) run the
//! same rows through their layers with [`settable`] and [`refused`].

use super::NodeAttrs;
use super::table::{self, Check, Kind, NODE_ATTRS, NodeAttr, TABLE, Who};
use crate::error::Error;

pub(crate) fn settable() -> impl Iterator<Item = &'static NodeAttr> {
    TABLE.iter().filter(|r| r.who == Who::Owner)
}

fn get(a: &NodeAttrs, r: &NodeAttr) -> Option<String> {
    a.get(r.name, "/spool").unwrap()
}

/// Values a row of this kind must refuse, besides what no row takes (not UTF-8, controls).
pub(crate) fn refused(kind: Kind) -> Vec<String> {
    let mut v: Vec<String> = match kind {
        Kind::Choice(c) => vec![
            "bogus".into(),
            String::new(),
            format!("{} ", c[0]),
            c[0].to_uppercase(),
            c.join(","),
        ],
        Kind::Seconds { positive } => {
            let mut v: Vec<String> = ["-1", "NaN", "inf", "x", "1e13", "", "1 s"]
                .map(String::from)
                .to_vec();
            if positive {
                v.push("0".into());
            }
            v
        }
        Kind::Schedule => ["", "60,x", "1,-2", "NaN"].map(String::from).to_vec(),
        Kind::Int { min, max } => {
            let mut v: Vec<String> = ["x", "-1", "1.5", ""].map(String::from).to_vec();
            if max < u64::MAX {
                v.push((max + 1).to_string());
            }
            if min > 0 {
                v.push((min - 1).to_string());
            }
            v
        }
        Kind::Bytes => ["x", "-1", "1.5", "1e6"].map(String::from).to_vec(),
        Kind::Path => ["relative", "", "./x"].map(String::from).to_vec(),
        Kind::OptPath => ["relative", "./x", "~/x"].map(String::from).to_vec(),
        Kind::XattrName => ["", "a b", "a/b", "user:x"].map(String::from).to_vec(),
        Kind::OptHost => ["a b", "-bad.example", "bad_host", "a..b"]
            .map(String::from)
            .to_vec(),
        Kind::OptText => Vec::new(),
        Kind::Hosts => ["", "a:0", "a:x", "bad_host", "[::1"].map(String::from).to_vec(),
        Kind::Resolvers => ["ns.example", "127.0.0.1:0", "system,x"]
            .map(String::from)
            .to_vec(),
        Kind::Notices => ["", "never,delay", "sometimes"].map(String::from).to_vec(),
        Kind::Domains => ["bad_host", "-a.example", "a..b"].map(String::from).to_vec(),
        Kind::Listen => ["localhost:25", "127.0.0.1", "127.0.0.1:0"]
            .map(String::from)
            .to_vec(),
        Kind::Networks => ["10.0.0.0/33", "host", "10.0.0.0/x"].map(String::from).to_vec(),
        Kind::DnsName => ["bad name", "a..b", "-a.example"].map(String::from).to_vec(),
    };
    v.push("a\nb".into());
    v.push("a\rb".into());
    v.push("a\0b".into());
    v
}

#[test]
fn names_are_unique_and_listed_in_table_order() {
    let names: Vec<&str> = TABLE.iter().map(|r| r.name).collect();
    assert_eq!(NODE_ATTRS, names.as_slice());
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len(), "a name appears twice");
    for r in TABLE {
        assert!(
            r.name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{}",
            r.name
        );
        assert!(std::ptr::eq(table::lookup(r.name).unwrap(), r));
    }
    assert!(table::lookup("nosuch").is_none());
}

#[test]
fn every_row_has_help_a_kind_and_an_example() {
    for r in settable() {
        assert!(!r.help.is_empty() && !r.kind.describe().is_empty(), "{}", r.name);
        assert!(!r.example.is_empty(), "{}", r.name);
        assert_ne!(
            r.example, r.default,
            "{}: the example must change something",
            r.name
        );
        // What the store checks on the machine is a file or directory named by a path.
        if r.check != Check::None {
            assert_eq!(r.kind, Kind::OptPath, "{}", r.name);
        }
    }
}

/// The defaults read back as the table says: the value itself, nothing for an unset
/// attribute, or what unset stands for where the help says so (`unset: SPOOL_DIR/log`).
#[test]
fn every_default_reads_back_as_the_table_says() {
    let d = NodeAttrs::default();
    for r in settable() {
        let shown = get(&d, r);
        match (r.default, shown.as_deref()) {
            ("", None) | ("", Some("")) => assert!(!r.help.contains("unset:"), "{}", r.name),
            ("", Some(derived)) => {
                assert!(r.help.contains("unset:"), "{} shows {derived:?}", r.name);
            }
            (default, shown) => assert_eq!(shown, Some(default), "{}", r.name),
        }
        let mut again = d.clone();
        again.set(r.name, r.default.as_bytes()).unwrap();
        assert_eq!(again, d, "{}: setting the default changes something", r.name);
    }
    assert_eq!(d.get("log_dir", "/spool").unwrap().as_deref(), Some("/spool/log"));
    assert_eq!(d.helo(), crate::model::attrs::hostname());
}

#[test]
fn every_example_round_trips_and_reset_puts_the_default_back() {
    for r in settable() {
        let mut a = NodeAttrs::default();
        a.set(r.name, r.example.as_bytes())
            .unwrap_or_else(|e| panic!("{}={}: {e}", r.name, r.example));
        assert_eq!(get(&a, r).as_deref(), Some(r.example), "{}", r.name);
        assert_ne!(a, NodeAttrs::default(), "{}", r.name);
        a.reset(r.name).unwrap();
        assert_eq!(a, NodeAttrs::default(), "{}: reset", r.name);
    }
}

#[test]
fn list_values_take_commas_and_white_space_alike() {
    for r in settable().filter(|r| r.kind.is_list()) {
        let mut a = NodeAttrs::default();
        // SPEC §3: commas or white space, a tab included (it was refused as a control).
        let spaced = r.example.replace(',', " \t ");
        a.set(r.name, spaced.as_bytes()).unwrap();
        assert_eq!(get(&a, r).as_deref(), Some(r.example), "{}", r.name);
    }
}

#[test]
fn bad_values_are_einval_and_change_nothing() {
    for r in settable() {
        let mut a = NodeAttrs::default();
        a.set(r.name, r.example.as_bytes()).unwrap();
        let before = a.clone();
        let mut bad: Vec<Vec<u8>> = refused(r.kind).into_iter().map(String::into_bytes).collect();
        bad.push(b"\xff\xfe".to_vec());
        for v in bad {
            let e = a.set(r.name, &v).expect_err(&format!("{}={:?}", r.name, v));
            assert!(matches!(e, Error::Invalid { .. }), "{}: {e:?}", r.name);
            assert_eq!(e.errno(), libc::EINVAL, "{}={:?}", r.name, v);
            assert_eq!(a, before, "{}={:?} changed something", r.name, v);
        }
    }
}

#[test]
fn read_only_rows_are_eperm_and_unknown_names_fail_as_before() {
    let mut a = NodeAttrs::default();
    let read_only: Vec<&NodeAttr> = TABLE.iter().filter(|r| r.who == Who::Nobody).collect();
    assert_eq!(
        read_only.iter().map(|r| r.name).collect::<Vec<_>>(),
        ["spool_dir"]
    );
    for r in read_only {
        assert_eq!(a.set(r.name, b"/x").unwrap_err().errno(), libc::EPERM);
        assert_eq!(a.reset(r.name).unwrap_err().errno(), libc::EPERM);
        assert_eq!(get(&a, r).as_deref(), Some("/spool"));
    }
    assert_eq!(a, NodeAttrs::default());
    assert_eq!(a.set("nosuch", b"1").unwrap_err().errno(), libc::EINVAL);
    assert_eq!(a.get("nosuch", "/s").unwrap_err().errno(), libc::ENODATA);
    assert_eq!(a.reset("nosuch").unwrap_err().errno(), libc::ENODATA);
}

#[test]
fn the_node_file_keeps_exactly_what_differs_for_every_row() {
    assert!(NodeAttrs::default().to_stored().is_empty());
    let mut all = NodeAttrs::default();
    for r in settable() {
        let mut a = NodeAttrs::default();
        a.set(r.name, r.example.as_bytes()).unwrap();
        let stored = a.to_stored();
        assert_eq!(stored, vec![(r.name.to_string(), r.example.to_string())]);
        assert_eq!(NodeAttrs::from_stored(&stored), a, "{}", r.name);
        all.set(r.name, r.example.as_bytes()).unwrap();
    }
    assert_eq!(all.to_stored().len(), settable().count());
    assert_eq!(NodeAttrs::from_stored(&all.to_stored()), all);
}

#[test]
fn help_lists_every_row_with_its_default() {
    let help = table::help_text();
    let summary = table::defaults_summary(100);
    for r in TABLE {
        let line = help
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{} ", r.name)))
            .unwrap_or_else(|| panic!("{} missing from --help", r.name));
        assert!(line.contains(r.shown_default()), "{line}");
        assert!(summary.contains(r.name), "{}", r.name);
    }
    assert!(summary.lines().all(|l| l.len() <= 100), "{summary}");
    assert!(table::list_names().contains("relay_clients"));
}

/// README.md's table of node attributes is the one the code holds.
#[test]
fn the_readme_shows_the_table() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(path).unwrap();
    let table = table::markdown();
    assert!(
        readme.contains(&table),
        "README.md's node attribute table differs from the code's; put this in it:\n{table}"
    );
}
