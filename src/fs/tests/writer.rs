//! The part writer: bytes gather in a temp file and the Draft is rebuilt at close; its one
//! size limit holds on write, truncate and close (EFBIG, nothing changed), and a refused
//! write leaves the message as it was before the writer.

use crate::mail::compose::COMPOSE_LIMIT;

use super::*;

fn body(h: &Harness) -> u64 {
    h.ino(ALICE, h.parts(ALICE, "m.eml"), "Body.txt").unwrap()
}

#[test]
fn a_write_past_the_part_limit_is_efbig_and_changes_nothing() {
    let h = Harness::new();
    h.write_new(ALICE, "m.eml", PLAIN);
    let b = body(&h);
    let fh = h.fs.open(ALICE, b, libc::O_WRONLY).unwrap();
    h.fs.write(fh, 0, b"fine\n").unwrap();
    // The offset alone is past the limit: refused before a byte lands (no 64 MiB hole).
    assert_eq!(errno(h.fs.write(fh, COMPOSE_LIMIT - 1, b"xy")), libc::EFBIG);
    assert!(h.fs.getattr(b).unwrap().size < 4096, "the temp file did not grow");
    // Once refused, the writer changes nothing: later writes and the close say so.
    assert_eq!(errno(h.fs.write(fh, 0, b"more\n")), libc::EINVAL);
    assert_eq!(errno(h.fs.write(fh, COMPOSE_LIMIT, b"x")), libc::EINVAL);
    assert_eq!(errno(h.fs.flush(fh)), libc::EINVAL);
    h.fs.release(fh);
    assert_eq!(h.eml("m.eml"), PLAIN);
    assert_eq!(h.part(ALICE, "m.eml", "Body.txt").unwrap(), b"first line\n");
}

#[test]
fn truncate_of_a_part_past_the_limit_is_efbig_and_changes_nothing() {
    let h = Harness::new();
    h.write_new(ALICE, "m.eml", PLAIN);
    let b = body(&h);
    // No writer open: `truncate -s 16G Body.txt` never reaches an allocation.
    let r =
        h.fs.setattr(ALICE, b, None, (None, None), Some(16 << 30), None, None);
    assert_eq!(errno(r), libc::EFBIG);
    let r =
        h.fs.setattr(ALICE, b, None, (None, None), Some(COMPOSE_LIMIT + 1), None, None);
    assert_eq!(errno(r), libc::EFBIG);
    assert_eq!(h.eml("m.eml"), PLAIN);
    // Within the limit it cuts the part and rebuilds the Draft.
    let a =
        h.fs.setattr(ALICE, b, None, (None, None), Some(5), None, None)
            .unwrap();
    assert_eq!(a.size, 5);
    assert_eq!(h.part(ALICE, "m.eml", "Body.txt").unwrap(), b"first");
    assert_eq!(parse(&h.eml("m.eml")).body_text(0).as_deref(), Some("first"));

    // A writer open: the truncate goes to its bytes, with the same limit.
    let fh = h.fs.open(ALICE, b, libc::O_WRONLY).unwrap();
    let r =
        h.fs.setattr(ALICE, b, None, (None, None), Some(COMPOSE_LIMIT + 1), None, None);
    assert_eq!(errno(r), libc::EFBIG);
    assert_eq!(
        h.fs.getattr(b).unwrap().size,
        5,
        "the writer's bytes are as they were"
    );
    h.fs.setattr(ALICE, b, None, (None, None), Some(3), None, None)
        .unwrap();
    assert_eq!(h.fs.getattr(b).unwrap().size, 3, "stat shows what the writer has");
    assert_eq!(
        h.part(ALICE, "m.eml", "Body.txt").unwrap(),
        b"first",
        "not before the close"
    );
    h.fs.flush(fh).unwrap();
    h.fs.release(fh);
    assert_eq!(h.part(ALICE, "m.eml", "Body.txt").unwrap(), b"fir");
}

#[test]
fn a_shell_redirect_into_a_part_works_and_stat_follows_the_writer() {
    let h = Harness::new();
    h.write_new(ALICE, "m.eml", PLAIN);
    let parts = h.parts(ALICE, "m.eml");
    // `echo text > Body.txt`: open O_TRUNC, the shell closes a dup (flush) before writing.
    let (_, fh) =
        h.fs.create(
            ALICE,
            parts,
            "Body.txt",
            0o644,
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
        )
        .unwrap();
    h.fs.flush(fh).unwrap();
    h.fs.write(fh, 0, b"text\n").unwrap();
    let b = h.ino(ALICE, parts, "Body.txt").unwrap();
    assert_eq!(h.fs.getattr(b).unwrap().size, 5);
    h.fs.write(fh, 5, b"more\n").unwrap();
    h.fs.flush(fh).unwrap();
    h.fs.release(fh);
    assert_eq!(h.part(ALICE, "m.eml", "Body.txt").unwrap(), b"text\nmore\n");
    assert_eq!(
        parse(&h.eml("m.eml")).body_text(0).as_deref(),
        Some("text\nmore\n")
    );
    // A writer opened without O_TRUNC starts from the part's bytes (`>>`, editors).
    let fh = h.fs.open(ALICE, b, libc::O_RDWR).unwrap();
    assert_eq!(h.fs.read(fh, 0, 100).unwrap(), b"text\nmore\n");
    h.fs.write(fh, 10, b"end\n").unwrap();
    h.fs.release(fh);
    // The last close puts in what no close of the opener did (as for a copy of the whole
    // message): a child may write after its parent closed (audit F15).
    assert_eq!(h.part(ALICE, "m.eml", "Body.txt").unwrap(), b"text\nmore\nend\n");
}

#[test]
fn a_refused_write_puts_back_the_message_as_it_was_before_the_writer() {
    let h = Harness::new();
    h.write_new(ALICE, "m.eml", PLAIN);
    let b = body(&h);
    let fh = h.fs.open(ALICE, b, libc::O_WRONLY | libc::O_TRUNC).unwrap();
    h.fs.write(fh, 0, b"half of it\n").unwrap();
    // A close of a dup: the rebuild happens with what was written so far...
    h.fs.flush(fh).unwrap();
    assert_eq!(h.part(ALICE, "m.eml", "Body.txt").unwrap(), b"half of it\n");
    // ...then a write is refused (not UTF-8): the whole writer is undone.
    assert_eq!(errno(h.fs.write(fh, 11, b"\xff\xfe")), libc::EINVAL);
    assert_eq!(h.eml("m.eml"), PLAIN);
    assert_eq!(errno(h.fs.flush(fh)), libc::EINVAL);
    h.fs.release(fh);
    assert_eq!(h.eml("m.eml"), PLAIN);
    // The backup went with the handle: the spool's temp area is clean.
    let tmp = h.fs.node.spool.tmp_path();
    let leftovers = std::fs::read_dir(tmp.parent().unwrap()).unwrap().count();
    assert_eq!(leftovers, 0);
}

#[test]
fn a_writer_opened_before_the_message_froze_cannot_change_it() {
    let h = Harness::new();
    h.write_new(ALICE, "m.eml", PLAIN);
    let b = body(&h);
    let fh = h.fs.open(ALICE, b, libc::O_WRONLY).unwrap();
    h.fs.write(fh, 0, b"late\n").unwrap();
    h.make_ready(ALICE, "m.eml");
    let frozen = h.eml("m.eml");
    assert_eq!(errno(h.fs.flush(fh)), libc::EACCES);
    h.fs.release(fh);
    assert_eq!(h.eml("m.eml"), frozen);
    assert_eq!(h.part(ALICE, "m.eml", "Body.txt").unwrap(), b"first line\n");
}

/// Files in the spool's temp area: a writer leaves none behind once released.
fn tmp_files(h: &Harness) -> usize {
    let tmp = h.fs.node.spool.tmp_path();
    std::fs::read_dir(tmp.parent().unwrap()).unwrap().count()
}

#[test]
fn a_refused_restore_over_another_users_message_leaves_no_backup_behind() {
    let h = Harness::new();
    h.write_new(ALICE, "m.eml", PLAIN);
    let w = h.fs.open(ALICE, body(&h), libc::O_WRONLY).unwrap();
    h.fs.write(w, 0, b"first\n").unwrap();
    h.fs.flush(w).unwrap();
    // Alice's message goes and Bob's takes the name: her refused write must not put her
    // backup over his, and the backup must not stay in the spool either.
    h.fs.unlink(ALICE, ROOT, "m.eml").unwrap();
    let bobs: &[u8] = b"To: boss@example.org\n\nbob's\n";
    h.write_new(BOB, "m.eml", bobs);
    assert_eq!(errno(h.fs.write(w, 0, &[0xff])), libc::EINVAL);
    h.fs.release(w);
    assert_eq!(h.eml("m.eml"), bobs);
    assert_eq!(tmp_files(&h), 0);
}

#[test]
fn the_close_holds_the_limit_however_the_bytes_grew() {
    use crate::fs::handles::PartWriter;
    let h = Harness::new();
    h.write_new(ALICE, "m.eml", PLAIN);
    let spool = &h.fs.node.spool;
    let mut w = PartWriter::new(spool, ("m.eml", "a.bin"), ALICE, Some(b"seed"), false).unwrap();
    assert_eq!(w.size(), Some(4));
    assert!(w.take(spool).unwrap().is_none(), "nothing new: no rebuild");
    w.write(4, b" more").map_err(|r| r.err).unwrap();
    assert_eq!(w.take(spool).unwrap().as_deref(), Some(&b"seed more"[..]));
    assert!(w.take(spool).unwrap().is_none(), "composed once");
    // Grown past the limit by a path that is neither write nor truncate (a passthrough
    // write, fallocate): the close refuses it without reading it, and empties it.
    w.file().set_len(COMPOSE_LIMIT + 1).unwrap();
    w.truncate(COMPOSE_LIMIT + 2).unwrap_err();
    assert_eq!(
        w.size(),
        Some(COMPOSE_LIMIT + 1),
        "a refused truncate changes nothing"
    );
    w.write(0, b"x").map_err(|r| r.err).unwrap();
    assert_eq!(w.take(spool).unwrap_err().errno(), libc::EFBIG);
    assert_eq!(w.size(), Some(0));
    assert_eq!(
        w.take(spool).unwrap_err().errno(),
        libc::EINVAL,
        "refused for good"
    );
    // The first rebuild's backup is handed back once, at the refusal of a write.
    let refused = w.write(0, b"y").unwrap_err();
    assert_eq!(refused.err.errno(), libc::EINVAL);
    let backup = refused.backup.expect("the message before the first rebuild");
    assert_eq!(std::fs::read(&backup).unwrap(), PLAIN);
    std::fs::remove_file(backup).unwrap();
    assert!(w.write(0, b"z").unwrap_err().backup.is_none(), "handed back once");
    drop(w);
    assert_eq!(
        tmp_files(&h),
        0,
        "the temp file and the backup go with the writer"
    );
}

/// Audit F15: a FLUSH from a process other than the opener (a child closing the descriptor
/// it inherited) puts nothing in place; the opener's close does, and so does RELEASE when
/// the opener's close came before the last bytes.
#[test]
fn only_the_openers_close_or_the_last_one_puts_a_writers_bytes_in() {
    let h = Harness::new();
    let m = h.write_new(ALICE, "m.eml", PLAIN);
    let me = std::process::id();
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("spawn sleep");
    let other = child.id();

    // A copy of the whole message.
    let fh = h.fs.open(ALICE, m, libc::O_WRONLY | libc::O_TRUNC).unwrap();
    h.fs.opened_by(fh, me);
    h.fs.write(fh, 0, b"Subject: half").unwrap();
    h.fs.flush_by(fh, other, 0).unwrap();
    assert_eq!(h.eml("m.eml"), PLAIN, "a child's close put the copy in place");
    h.fs.write(fh, 13, b" and whole\n\nbody\n").unwrap();
    h.fs.flush_by(fh, me, 0).unwrap();
    assert_eq!(h.eml("m.eml"), b"Subject: half and whole\n\nbody\n");
    h.fs.release(fh);

    // The opener closed before the last bytes came: RELEASE puts them in.
    let fh = h.fs.open(ALICE, m, libc::O_WRONLY | libc::O_TRUNC).unwrap();
    h.fs.opened_by(fh, me);
    h.fs.flush_by(fh, me, 0).unwrap();
    h.fs.write(fh, 0, PLAIN).unwrap();
    h.fs.flush_by(fh, other, 0).unwrap();
    assert_eq!(h.eml("m.eml"), b"Subject: half and whole\n\nbody\n");
    h.fs.release(fh);
    assert_eq!(h.eml("m.eml"), PLAIN);

    // A part: the same.
    let b = body(&h);
    let fh = h.fs.open(ALICE, b, libc::O_WRONLY | libc::O_TRUNC).unwrap();
    h.fs.opened_by(fh, me);
    h.fs.write(fh, 0, b"new half").unwrap();
    h.fs.flush_by(fh, other, 0).unwrap();
    assert_eq!(h.eml("m.eml"), PLAIN, "a child's close composed the part");
    h.fs.flush_by(fh, me, 0).unwrap();
    h.fs.write(fh, 8, b" and the rest\n").unwrap();
    h.fs.flush_by(fh, other, 0).unwrap();
    assert_eq!(h.part(ALICE, "m.eml", "Body.txt").unwrap(), b"new half");
    h.fs.release(fh);
    assert_eq!(
        h.part(ALICE, "m.eml", "Body.txt").unwrap(),
        b"new half and the rest\n"
    );
    let _ = child.kill();
    let _ = child.wait();
}
