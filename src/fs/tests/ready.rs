//! `is_ready` prepared outside the namespace lock (fs/ready.rs): concurrent hand-overs of one
//! Message-ID, and no inode freed (the versions it replaces become spares, store/spool/
//! spare.rs, except a content something still has open through the mount).

use std::os::unix::fs::MetadataExt;

use super::*;

fn ino_of(p: &std::path::Path) -> u64 {
    std::fs::metadata(p).expect("spool file").ino()
}

/// Inode numbers of the files in the spool's `.tmp/` (where spares wait).
fn spare_inos(h: &Harness) -> Vec<u64> {
    let tmp =
        h.fs.node
            .spool
            .struct_path("x.eml")
            .parent()
            .expect("root")
            .join(".tmp");
    std::fs::read_dir(tmp)
        .expect(".tmp")
        .map(|e| e.expect("entry").metadata().expect("meta").ino())
        .collect()
}

#[test]
fn is_ready_keeps_the_replaced_content_and_attributes_as_spares() {
    let h = Harness::new();
    let ino = h.write_new(ALICE, "r.eml", PLAIN);
    // An attribute file first, as a held or edited Draft has.
    h.fs.setxattr(ALICE, ino, "user.note", b"x").unwrap();
    let spool = &h.fs.node.spool;
    let (eml, attrs) = (
        ino_of(&spool.eml_path("r.eml")),
        ino_of(&spool.struct_path("r.eml")),
    );
    h.make_ready(ALICE, "r.eml");
    assert_ne!(
        ino_of(&spool.eml_path("r.eml")),
        eml,
        "Date and Message-ID were added"
    );
    let spares = spare_inos(&h);
    assert!(spares.contains(&eml), "old content kept: {spares:?} {eml}");
    assert!(spares.contains(&attrs), "old attributes kept");
    assert!(String::from_utf8_lossy(&h.eml("r.eml")).contains("Message-ID:"));
}

#[test]
fn a_reader_open_across_is_ready_keeps_the_bytes_it_opened() {
    let h = Harness::new();
    let ino = h.write_new(ALICE, "r.eml", PLAIN);
    h.fs.setxattr(ALICE, ino, "user.note", b"x").unwrap();
    let fh = h.fs.open(ALICE, ino, libc::O_RDONLY).unwrap();
    h.make_ready(ALICE, "r.eml");
    // Later hand-overs take whatever spares there are and rewrite them in place.
    for i in 0..4 {
        let name = format!("o{i}.eml");
        let o = h.write_new(ALICE, &name, PLAIN);
        h.fs.setxattr(ALICE, o, "user.note", b"x").unwrap();
        h.make_ready(ALICE, &name);
    }
    let mut got = Vec::new();
    loop {
        let c = h.fs.read(fh, got.len() as u64, 4096).unwrap();
        if c.is_empty() {
            break;
        }
        got.extend_from_slice(&c);
    }
    h.fs.release(fh);
    assert_eq!(got, PLAIN, "the reader sees the version it opened, whole");
}

#[test]
fn two_drafts_with_one_message_id_made_ready_at_once_go_out_once() {
    let h = Harness::new();
    for round in 0..20 {
        let msg = format!(
            "From: alice@example.com\nTo: bob@example.org\nMessage-ID: <same-{round}@example.com>\n\nbody\n"
        );
        let names = [format!("a{round}.eml"), format!("b{round}.eml")];
        for n in &names {
            h.write_new(ALICE, n, msg.as_bytes());
        }
        let errnos: Vec<i32> = std::thread::scope(|s| {
            let runs: Vec<_> = names
                .iter()
                .map(|n| {
                    let h = &h;
                    s.spawn(move || {
                        let ino = h.ino(ALICE, ROOT, n).unwrap();
                        errno(h.fs.setxattr(ALICE, ino, "user.is_ready", b"1"))
                    })
                })
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let mut sorted = errnos.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![0, libc::EALREADY], "round {round}: {errnos:?}");
    }
}
