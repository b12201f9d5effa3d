//! rename: a message is its name (SPEC §5), and the renames that are refused.

use super::*;

#[test]
fn rename_moves_a_draft_with_its_attributes_and_inode() {
    let h = Harness::new();
    let ino = h.write_new(ALICE, "a.eml", PLAIN);
    h.fs.setxattr(ALICE, ino, "user.env_to", b"c@example.net")
        .unwrap();
    h.fs.rename(ALICE, (ROOT, "a.eml"), (ROOT, "b.eml"), false)
        .unwrap();
    assert!(!h.exists("a.eml"));
    assert_eq!(h.eml("b.eml"), PLAIN);
    assert!(!h.fs.node.spool.struct_path("a.eml").exists());
    assert_eq!(
        h.ino(ALICE, ROOT, "b.eml").unwrap(),
        ino,
        "open handles and dentries stay valid"
    );
    assert_eq!(h.getx(ALICE, ino, "user.env_to").unwrap(), "c@example.net");
    assert_eq!(h.getx(ALICE, ino, "user.name").unwrap(), "b.eml");
    assert_eq!(errno(h.fs.lookup(ALICE, ROOT, "a.eml")), libc::ENOENT);
    assert_eq!(h.ls(ALICE, ROOT).unwrap(), [".", "..", "b.eml", "b.eml.parts"]);
}

#[test]
fn rename_over_a_draft_gives_it_new_content_and_keeps_its_attributes() {
    let h = Harness::new();
    let b = h.write_new(ALICE, "b.eml", PLAIN);
    h.fs.setxattr(ALICE, b, "user.project", b"kept").unwrap();
    // vim / sed -i: write a temp file, rename it over the message.
    h.write_new(ALICE, ".b.eml.swp", b"To: new@example.org\n\nnew body\n");
    h.fs.rename(ALICE, (ROOT, ".b.eml.swp"), (ROOT, "b.eml"), false)
        .unwrap();
    assert_eq!(h.eml("b.eml"), b"To: new@example.org\n\nnew body\n");
    let b = h.ino(ALICE, ROOT, "b.eml").unwrap();
    assert_eq!(h.getx(ALICE, b, "user.project").unwrap(), "kept");
    assert_eq!(h.getx(ALICE, b, "user.env_to").unwrap(), "new@example.org");
    assert_eq!(h.part(ALICE, "b.eml", "Body.txt").unwrap(), b"new body\n");
    // Message over message: b gets a's bytes, keeps its own attributes; a's go.
    let a = h.write_new(ALICE, "a.eml", PLAIN);
    h.fs.setxattr(ALICE, a, "user.project", b"a's").unwrap();
    h.fs.rename(ALICE, (ROOT, "a.eml"), (ROOT, "b.eml"), false)
        .unwrap();
    assert_eq!(h.eml("b.eml"), PLAIN);
    assert!(!h.fs.node.spool.struct_path("a.eml").exists());
    let b = h.ino(ALICE, ROOT, "b.eml").unwrap();
    assert_eq!(h.getx(ALICE, b, "user.project").unwrap(), "kept");
    // RENAME_NOREPLACE: EEXIST, nothing moves.
    h.write_new(ALICE, "c.eml", b"To: c@example.org\n\nc\n");
    assert_eq!(
        errno(h.fs.rename(ALICE, (ROOT, "c.eml"), (ROOT, "b.eml"), true)),
        libc::EEXIST
    );
    assert_eq!(h.eml("b.eml"), PLAIN);
    assert!(h.exists("c.eml"));
}

#[test]
fn a_message_renamed_away_and_back_keeps_its_attributes() {
    let h = Harness::new();
    let ino = h.write_new(ALICE, "v.eml", PLAIN);
    h.fs.setxattr(ALICE, ino, "user.env_to", b"c@example.net")
        .unwrap();
    // vim's backup dance: the message goes to a scratch name, a new file takes its name.
    h.fs.rename(ALICE, (ROOT, "v.eml"), (ROOT, "v.eml~"), false)
        .unwrap();
    assert!(h.ls(ALICE, ROOT).unwrap().contains(&"v.eml~".to_string()));
    let ino = h.write_new(ALICE, "v.eml", b"To: bob@example.org\n\nedited\n");
    assert_eq!(h.getx(ALICE, ino, "user.env_to").unwrap(), "c@example.net");
    h.fs.unlink(ALICE, ROOT, "v.eml~").unwrap();
}

#[test]
fn case_only_and_structural_renames_are_refused() {
    let h = Harness::new();
    h.write_new(ALICE, "d.eml", PLAIN);
    // `mv d.eml D.EML` would make a message a scratch file that is never sent.
    assert_eq!(
        errno(h.fs.rename(ALICE, (ROOT, "d.eml"), (ROOT, "D.EML"), false)),
        libc::EPERM
    );
    assert_eq!(
        errno(h.fs.rename(ALICE, (ROOT, "d.eml"), (ROOT, "d.Eml"), false)),
        libc::EPERM
    );
    assert_eq!(h.eml("d.eml"), PLAIN);
    assert_eq!(h.ls(ALICE, ROOT).unwrap(), [".", "..", "d.eml", "d.eml.parts"]);
    // Parts directories follow their message; parts do not leave it.
    assert_eq!(
        errno(h.fs.rename(ALICE, (ROOT, "d.eml.parts"), (ROOT, "e.eml.parts"), false)),
        libc::EPERM
    );
    let parts = h.parts(ALICE, "d.eml");
    assert_eq!(
        errno(h.fs.rename(ALICE, (parts, "Body.txt"), (ROOT, "body.txt"), false)),
        libc::EXDEV
    );
    assert_eq!(
        errno(h.fs.rename(ALICE, (ROOT, "d.eml"), (parts, "x.eml"), false)),
        libc::EXDEV
    );
    assert_eq!(
        errno(h.fs.rename(ALICE, (ROOT, "nothing.eml"), (ROOT, "x.eml"), false)),
        libc::ENOENT
    );
    assert_eq!(h.eml("d.eml"), PLAIN);
}

#[test]
fn renames_across_owners_are_eacces() {
    let h = Harness::new();
    h.write_new(ALICE, "alice.eml", PLAIN);
    h.write_new(BOB, "bob.eml", b"To: boss@example.org\n\nbob\n");
    let eacces = |r: Result<()>| assert_eq!(errno(r), libc::EACCES);
    // Taking another's message, or replacing it (which is removing it).
    eacces(h.fs.rename(BOB, (ROOT, "alice.eml"), (ROOT, "mine.eml"), false));
    eacces(h.fs.rename(BOB, (ROOT, "bob.eml"), (ROOT, "alice.eml"), false));
    eacces(h.fs.rename(ALICE, (ROOT, "alice.eml"), (ROOT, "bob.eml"), false));
    assert_eq!(h.eml("alice.eml"), PLAIN);
    assert_eq!(h.eml("bob.eml"), b"To: boss@example.org\n\nbob\n");
    assert!(!h.exists("mine.eml"));
    // A part of another's Draft cannot be renamed either.
    let parts = h.parts(ALICE, "alice.eml");
    eacces(h.fs.rename(BOB, (parts, "Body.txt"), (parts, "b.txt"), false));
    // The renamed message stays its owner's.
    h.fs.rename(BOB, (ROOT, "bob.eml"), (ROOT, "bob2.eml"), false)
        .unwrap();
    let a = h.fs.lookup(BOB, ROOT, "bob2.eml").unwrap();
    assert_eq!((a.uid, a.gid), (BOB.uid, BOB.gid));
    assert_eq!(errno(h.read(ALICE, a.ino.0)), libc::EACCES);
}

#[test]
fn a_part_renamed_over_another_replaces_it() {
    let h = Harness::new();
    h.write_new(ALICE, "m.eml", PLAIN);
    h.write_part(ALICE, "m.eml", "a.txt", b"AAA").unwrap();
    h.write_part(ALICE, "m.eml", "b.txt", b"BBB").unwrap();
    let parts = h.parts(ALICE, "m.eml");
    let r = h.fs.rename(ALICE, (parts, "a.txt"), (parts, "b.txt"), true);
    assert_eq!(errno(r), libc::EEXIST);
    assert_eq!(h.part(ALICE, "m.eml", "b.txt").unwrap(), b"BBB");
    h.fs.rename(ALICE, (parts, "a.txt"), (parts, "b.txt"), false)
        .unwrap();
    assert_eq!(h.ls(ALICE, parts).unwrap(), [".", "..", "Body.txt", "b.txt"]);
    assert_eq!(h.part(ALICE, "m.eml", "b.txt").unwrap(), b"AAA");
    let eml = h.eml("m.eml");
    let m = parse(&eml);
    assert_eq!(m.attachment_count(), 1);
    assert_eq!(m.attachment(0).unwrap().contents(), b"AAA");
}

#[test]
fn names_past_255_bytes_are_enametoolong() {
    let h = Harness::new();
    h.write_new(ALICE, "m.eml", PLAIN);
    let long = format!("{}.eml", "x".repeat(252));
    let r =
        h.fs.create(ALICE, ROOT, &long, 0o600, libc::O_WRONLY | libc::O_CREAT);
    assert_eq!(errno(r), libc::ENAMETOOLONG);
    assert_eq!(
        errno(h.fs.rename(ALICE, (ROOT, "m.eml"), (ROOT, &long), false)),
        libc::ENAMETOOLONG
    );
    assert_eq!(
        errno(h.fs.mkdir(ALICE, ROOT, &"y".repeat(300))),
        libc::ENAMETOOLONG
    );
    assert_eq!(h.ls(ALICE, ROOT).unwrap(), [".", "..", "m.eml", "m.eml.parts"]);
}

#[test]
fn a_writer_of_a_message_renamed_away_never_writes_over_what_took_its_place() {
    let h = Harness::new();
    let ino = h.write_new(ALICE, "m.eml", PLAIN);
    let fh = h.fs.open(ALICE, ino, libc::O_WRONLY).unwrap();
    h.fs.rename(ALICE, (ROOT, "m.eml"), (ROOT, "m.bak"), false)
        .unwrap();
    let fresh: &[u8] = b"To: new@example.org\n\nnew\n";
    h.write_new(ALICE, "m.eml", fresh);
    h.fs.write(fh, 0, b"XXXX").unwrap();
    // Its copy has no message to replace any more: ESTALE at close, both files as they were.
    assert_eq!(errno(h.fs.flush(fh)), libc::ESTALE);
    h.fs.release(fh);
    assert_eq!(
        std::fs::read(h.fs.node.spool.scratch_path("m.bak")).unwrap(),
        PLAIN
    );
    assert_eq!(h.eml("m.eml"), fresh);
}

#[test]
fn a_rename_waits_for_an_is_ready_between_its_steps() {
    let h = Harness::new();
    h.write_new(ALICE, "x.eml", PLAIN);
    // An is_ready of x.eml in flight: its turn is held between its two steps.
    let turn = h.fs.readying.enter("x.eml");
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel();
        let fs = &h.fs;
        s.spawn(move || {
            let r = fs.rename(ALICE, (ROOT, "x.eml"), (ROOT, "y.eml"), false);
            tx.send(r.is_ok()).unwrap();
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(300)).is_err(),
            "the rename went through while x.eml was being made ready"
        );
        drop(turn);
        assert!(rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap());
    });
    assert!(h.exists("y.eml") && !h.exists("x.eml"));
}
