//! The store's side of the node attribute table (model/attrs/table.rs): the spool's node file
//! keeps every row, and values are checked against the machine as the `check` column says.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;

use super::node::Node;
use crate::model::attrs::NodeAttrs;
use crate::model::attrs::table::Check;
use crate::model::attrs::table_tests::settable;

#[test]
fn the_spools_node_file_round_trips_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let spool = super::spool::Spool::open(dir.path()).unwrap();
    let mut all = NodeAttrs::default();
    for r in settable() {
        all.set(r.name, r.example.as_bytes()).unwrap();
    }
    spool.save_node(&all).unwrap();
    let back = spool.load_node().unwrap();
    assert_eq!(back, all);
    for r in settable() {
        assert_eq!(
            back.get(r.name, "/spool").unwrap().as_deref(),
            Some(r.example),
            "{}",
            r.name
        );
    }
    // A value this version cannot take is dropped, the rest kept.
    let mut stored = all.to_stored();
    stored.push(("port".into(), "0".into()));
    assert_eq!(NodeAttrs::from_stored(&stored), all);
}

#[test]
fn values_are_checked_against_the_machine_as_the_table_says() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let bad_key = dir.path().join("bad.pem");
    std::fs::write(&bad_key, "not a key").unwrap();
    let path = |p: &std::path::Path| p.as_os_str().as_bytes().to_vec();
    let opt = |k: &str, p: &std::path::Path| vec![(k.to_string(), p.display().to_string())];

    // -o: a log_dir others can write is a configuration error (SPEC §9), a bad key a usage one.
    let e = Node::open(&spool, &opt("log_dir", &open)).err().unwrap();
    assert_eq!(e.exit_code(), 78, "{e}");
    let e = Node::open(&spool, &opt("dkim_key_file", &bad_key)).err().unwrap();
    assert_eq!(e.exit_code(), 64, "{e}");

    // setfattr: EINVAL and nothing changes.
    let node = Node::open(&spool, &[]).unwrap();
    let before = node.attrs();
    assert_eq!(before, NodeAttrs::default(), "refused -o values were not stored");
    for (name, p) in [("log_dir", &open), ("dkim_key_file", &bad_key)] {
        let e = node.set_attr(name, &path(p)).unwrap_err();
        assert_eq!(e.errno(), libc::EINVAL, "{name}: {e}");
        assert_eq!(node.attrs(), before, "{name}");
    }
    // A log_dir that does not exist yet is made private.
    let fresh = dir.path().join("logs/deep");
    node.set_attr("log_dir", &path(&fresh)).unwrap();
    assert_eq!(
        std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777,
        0o700
    );

    // Rows with nothing to check take their example through the node, and it is stored.
    for r in settable().filter(|r| r.check == Check::None) {
        node.set_attr(r.name, r.example.as_bytes()).unwrap();
    }
    let again = Node::open(&spool, &[]).unwrap().attrs();
    for r in settable().filter(|r| r.check == Check::None) {
        assert_eq!(
            again.get(r.name, "").unwrap().as_deref(),
            Some(r.example),
            "{}",
            r.name
        );
    }
}
