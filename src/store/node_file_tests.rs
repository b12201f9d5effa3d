//! The spool's node file keeps every row of the node attribute table (model/attrs/table.rs).

use crate::model::attrs::NodeAttrs;
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
