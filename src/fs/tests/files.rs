//! The root, the template, and a Draft's content: create, write, read, truncate, unlink.

use super::*;

#[test]
fn root_lists_each_message_with_its_parts_dir_and_scratch_files() {
    let h = Harness::new();
    assert_eq!(h.ls(ALICE, ROOT).unwrap(), [".", ".."]);
    h.write_new(ALICE, "b.eml", PLAIN);
    h.write_new(BOB, "a.eml", PLAIN);
    h.write_new(ALICE, "notes.txt", b"scratch\n");
    assert_eq!(
        h.ls(ALICE, ROOT).unwrap(),
        [
            ".",
            "..",
            "a.eml",
            "a.eml.parts",
            "b.eml",
            "b.eml.parts",
            "notes.txt"
        ]
    );
    let root = h.fs.getattr(ROOT).unwrap();
    assert_eq!(root.kind, fuser::FileType::Directory);
    assert_eq!(root.perm, 0o1777, "a sticky drop box (SPEC §10)");
    let msg = h.fs.lookup(ALICE, ROOT, "b.eml").unwrap();
    assert_eq!(msg.kind, fuser::FileType::RegularFile);
    assert_eq!(msg.size, PLAIN.len() as u64);
    assert_eq!((msg.uid, msg.gid, msg.perm), (ALICE.uid, ALICE.gid, 0o600));
    let dir = h.fs.lookup(ALICE, ROOT, "b.eml.parts").unwrap();
    assert_eq!((dir.kind, dir.perm), (fuser::FileType::Directory, 0o700));
    // Lookups agree with the listing: the same inode each time, a missing name is ENOENT.
    assert_eq!(h.ino(ALICE, ROOT, "b.eml").unwrap(), msg.ino.0);
    assert_eq!(errno(h.fs.lookup(ALICE, ROOT, "c.eml")), libc::ENOENT);
    assert_eq!(errno(h.fs.lookup(ALICE, ROOT, "c.eml.parts")), libc::ENOENT);
    let long = format!("{}.eml", "x".repeat(260));
    assert_eq!(errno(h.fs.lookup(ALICE, ROOT, &long)), libc::ENAMETOOLONG);
}

#[test]
fn touch_makes_the_template() {
    let h = Harness::new();
    let ino = h.write_new(ALICE, "new.eml", b"");
    let bytes = h.read(ALICE, ino).unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    for field in [
        "Message-ID: <",
        "User-Agent: mailfs/",
        // LF line ends, like everything else mailfs writes, so that `sed 's/^Subject: $/..'`
        // matches (audit F12); the senders put CRLF on the wire.
        "\nSubject: \n",
        "Date: ",
        "MIME-Version: 1.0",
    ] {
        assert!(text.contains(field), "{field:?} missing from {text:?}");
    }
    // The Message-ID the template carries is the one the attribute shows.
    let id = h.getx(ALICE, ino, "user.message_id").unwrap();
    assert!(text.contains(&format!("Message-ID: {id}\n")), "{id} / {text}");
    assert!(!text.contains('\r'), "{text:?}");
    let m = parse(&bytes);
    assert!(m.date().is_some());
    assert_eq!(m.message_id().map(|i| format!("<{i}>")), Some(id));
    assert_eq!(h.getx(ALICE, ino, "user.status").unwrap(), "Draft");
    assert_eq!(h.fs.getattr(ino).unwrap().size, bytes.len() as u64);
}

#[test]
fn a_draft_is_written_read_back_and_appended_to() {
    let h = Harness::new();
    let ino = h.write_new(ALICE, "m.eml", PLAIN);
    assert_eq!(h.eml("m.eml"), PLAIN);
    assert_eq!(h.read(ALICE, ino).unwrap(), PLAIN);
    // `>>`: an existing message opened for append gets the bytes at its end, whatever offset.
    let fh = h.fs.open(ALICE, ino, libc::O_WRONLY | libc::O_APPEND).unwrap();
    h.fs.write(fh, 0, b"second line\n").unwrap();
    // Until the close, readers see the old bytes whole (the copy is put in place at close).
    assert_eq!(h.eml("m.eml"), PLAIN);
    h.fs.flush(fh).unwrap();
    h.fs.release(fh);
    let want = [PLAIN, b"second line\n"].concat();
    assert_eq!(h.eml("m.eml"), want);
    assert_eq!(h.fs.getattr(ino).unwrap().size, want.len() as u64);
    assert_eq!(
        h.part(ALICE, "m.eml", "Body.txt").unwrap(),
        b"first line\nsecond line\n"
    );
    // `cat new > m.eml` replaces the content and keeps the attributes (a message is its name).
    h.fs.setxattr(ALICE, ino, "user.env_to", b"carol@example.net")
        .unwrap();
    let fh = h.fs.open(ALICE, ino, libc::O_WRONLY | libc::O_TRUNC).unwrap();
    h.fs.write(fh, 0, b"To: x@example.org\n\nnew\n").unwrap();
    h.fs.release(fh);
    assert_eq!(h.eml("m.eml"), b"To: x@example.org\n\nnew\n");
    assert_eq!(h.getx(ALICE, ino, "user.env_to").unwrap(), "carol@example.net");
}

#[test]
fn truncate_of_a_draft_and_through_a_writer() {
    let h = Harness::new();
    let ino = h.write_new(ALICE, "t.eml", PLAIN);
    let a =
        h.fs.setattr(ALICE, ino, None, (None, None), Some(10), None, None)
            .unwrap();
    assert_eq!(a.size, 10);
    assert_eq!(h.eml("t.eml"), &PLAIN[..10]);
    // ftruncate through a writer cuts its copy; the message changes at close only.
    let fh = h.fs.open(ALICE, ino, libc::O_RDWR).unwrap();
    assert!(h.fs.writes_copy(fh));
    assert!(h.fs.truncate_copy(fh, 4).unwrap());
    assert_eq!(h.eml("t.eml"), &PLAIN[..10]);
    h.fs.flush(fh).unwrap();
    h.fs.release(fh);
    assert_eq!(h.eml("t.eml"), &PLAIN[..4]);
    // A bare `: > t.eml` (O_TRUNC, no write) empties it at release.
    let fh = h.fs.open(ALICE, ino, libc::O_WRONLY | libc::O_TRUNC).unwrap();
    h.fs.flush(fh).unwrap();
    assert_eq!(
        h.eml("t.eml"),
        &PLAIN[..4],
        "a flush before any write changes nothing"
    );
    h.fs.release(fh);
    assert_eq!(h.eml("t.eml"), b"");
}

#[test]
fn unlink_removes_the_message_and_its_attributes() {
    let h = Harness::new();
    let ino = h.write_new(ALICE, "u.eml", PLAIN);
    h.fs.setxattr(ALICE, ino, "user.note", b"keep me").unwrap();
    assert!(h.fs.node.spool.struct_path("u.eml").exists());
    h.fs.unlink(ALICE, ROOT, "u.eml").unwrap();
    assert!(!h.exists("u.eml"));
    assert!(!h.fs.node.spool.struct_path("u.eml").exists());
    assert_eq!(errno(h.fs.lookup(ALICE, ROOT, "u.eml")), libc::ENOENT);
    assert_eq!(errno(h.fs.getattr(ino)), libc::ENOENT, "the inode is forgotten");
    // Gone while the kernel still had its name (`rm -f` racing a sender's expiry): ENOENT
    // for its owner and for anyone else, never EACCES.
    assert_eq!(errno(h.fs.unlink(ALICE, ROOT, "u.eml")), libc::ENOENT);
    assert_eq!(errno(h.fs.unlink(BOB, ROOT, "u.eml")), libc::ENOENT);
    // A message of the same name starts afresh: no attribute of the old one comes back.
    let ino = h.write_new(ALICE, "u.eml", PLAIN);
    assert_eq!(errno(h.getx(ALICE, ino, "user.note")), libc::ENODATA);
    // The parts directory goes with its message only.
    assert_eq!(errno(h.fs.rmdir(ROOT, "u.eml.parts")), libc::EPERM);
    assert_eq!(errno(h.fs.unlink(ALICE, ROOT, "u.eml.parts")), libc::EISDIR);
}

#[test]
fn unlink_of_a_message_being_sent_is_ebusy() {
    let h = Harness::new();
    h.write_new(ALICE, "s.eml", PLAIN);
    h.make_ready(ALICE, "s.eml");
    let lock =
        h.fs.node
            .spool
            .try_lock("s.eml")
            .unwrap()
            .expect("the sender's lock");
    assert_eq!(errno(h.fs.unlink(ALICE, ROOT, "s.eml")), libc::EBUSY);
    assert!(h.exists("s.eml"));
    drop(lock);
    // Deleting a Pending message cancels it.
    h.fs.unlink(ALICE, ROOT, "s.eml").unwrap();
    assert!(!h.exists("s.eml"));
}

#[test]
fn the_node_holds_only_files() {
    let h = Harness::new();
    assert_eq!(errno(h.fs.mkdir(ALICE, ROOT, "dir")), libc::EPERM);
    h.write_new(ALICE, "m.eml", PLAIN);
    assert_eq!(errno(h.fs.mkdir(ALICE, ROOT, "m.eml.parts")), libc::EEXIST);
    let fifo = h.fs.mknod(ALICE, ROOT, "p", libc::S_IFIFO | 0o644);
    assert_eq!(errno(fifo), libc::EPERM);
    // mkdir of a new message's parts directory makes the message (rsync, tar).
    h.fs.mkdir(ALICE, ROOT, "n.eml.parts").unwrap();
    assert!(h.exists("n.eml"));
    // A regular mknod of a message leaves it empty, for the bytes that follow (tar).
    h.fs.mknod(ALICE, ROOT, "k.eml", libc::S_IFREG | 0o644).unwrap();
    assert_eq!(h.eml("k.eml"), b"");
    let ino = h.ino(ALICE, ROOT, "m.eml").unwrap();
    assert_eq!(errno(h.fs.opendir(ALICE, ino)), libc::ENOTDIR);
    assert_eq!(errno(h.fs.open(ALICE, ROOT, libc::O_RDONLY)), libc::EISDIR);
}

#[test]
fn another_users_draft_is_refused_and_unchanged() {
    let h = Harness::new();
    let ino = h.write_new(ALICE, "a.eml", PLAIN);
    let parts = h.parts(ALICE, "a.eml");
    let eacces = |r: Result<()>| assert_eq!(errno(r), libc::EACCES);
    eacces(h.read(BOB, ino).map(drop));
    eacces(h.fs.open(BOB, ino, libc::O_WRONLY | libc::O_TRUNC).map(drop));
    eacces(
        h.fs.setattr(BOB, ino, None, (None, None), Some(0), None, None)
            .map(drop),
    );
    eacces(h.fs.opendir(BOB, parts).map(drop));
    eacces(h.fs.lookup(BOB, parts, "Body.txt").map(drop));
    eacces(
        h.fs.create(BOB, parts, "evil.txt", 0o644, libc::O_WRONLY)
            .map(drop),
    );
    eacces(h.fs.setxattr(BOB, parts, "user.header.subject", b"pwned"));
    eacces(h.fs.setxattr(BOB, ino, "user.env_to", b"eve@example.net"));
    eacces(h.fs.removexattr(BOB, ino, "user.env_to"));
    eacces(h.fs.unlink(BOB, ROOT, "a.eml"));
    eacces(h.fs.access(BOB, ino, libc::R_OK));
    // Creating over it is opening it.
    eacces(
        h.fs.create(BOB, ROOT, "a.eml", 0o644, libc::O_WRONLY | libc::O_TRUNC)
            .map(drop),
    );
    assert_eq!(h.eml("a.eml"), PLAIN);
    assert_eq!(errno(h.getx(ALICE, ino, "user.env_to")), 0);
    assert_eq!(h.getx(ALICE, ino, "user.env_to").unwrap(), "bob@example.org");
    // The daemon's user (root or the node's owner) may do everything.
    assert_eq!(h.read(daemon(), ino).unwrap(), PLAIN);
}
