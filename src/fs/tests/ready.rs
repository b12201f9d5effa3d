//! `is_ready` prepared outside the namespace lock (fs/ready.rs): concurrent hand-overs of one
//! Message-ID, readers across a hand-over, and nothing left in `.tmp/`.

use std::os::unix::fs::MetadataExt;

use super::*;

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

/// What `is_ready` replaces is unlinked, not kept: a spool whose messages are only made
/// ready (no sender consuming spares as log entries) keeps an empty `.tmp/`.
#[test]
fn is_ready_leaves_nothing_in_tmp() {
    let h = Harness::new();
    for i in 0..3 {
        let name = format!("r{i}.eml");
        let ino = h.write_new(ALICE, &name, PLAIN);
        h.fs.setxattr(ALICE, ino, "user.note", b"x").unwrap();
        h.make_ready(ALICE, &name);
        assert!(String::from_utf8_lossy(&h.eml(&name)).contains("Message-ID:"));
    }
    assert_eq!(spare_inos(&h), Vec::<u64>::new(), "left in .tmp/");
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

/// Two Drafts a user wrote with one Message-ID (a fixture copied twice) were refused after
/// the first (EALREADY), at once or one after the other: only a copy or restore that carries
/// attributes saying it went out is refused (backed.rs, `note_went_out`). Both go now, also
/// when made ready at the same moment.
#[test]
fn two_drafts_with_one_message_id_are_two_messages() {
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
        assert_eq!(errnos, vec![0, 0], "round {round}");
    }
    let msg = b"From: alice@example.com\nTo: bob@example.org\nMessage-ID: <fixture@example.com>\n\nx\n";
    for n in ["dup1.eml", "dup2.eml", "dup3.eml"] {
        h.write_new(ALICE, n, msg);
        h.make_ready(ALICE, n);
        let ino = h.ino(ALICE, ROOT, n).unwrap();
        assert_eq!(h.getx(ALICE, ino, "user.status").unwrap(), "Pending", "{n}");
    }
}
