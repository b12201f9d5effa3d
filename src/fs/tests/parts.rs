//! Composing by parts (SPEC §2, §5): the parts view, and each change in it rebuilding the
//! Draft, read back with mail-parser.

use mail_parser::MimeHeaders;

use super::*;

const MIXED: &[u8] = b"From: a@example.com\r\nTo: b@example.org\r\nSubject: report\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n\
--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nsee attached\r\n\
--XX\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"q3.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n\
--XX\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment; filename=\"fwd.eml\"\r\n\r\n\
From: c@example.net\r\nSubject: inner\r\n\r\ninner body\r\n\
--XX--\r\n";

#[test]
fn the_parts_view_lists_and_decodes_each_part() {
    let h = Harness::new();
    h.write_new(ALICE, "m.eml", MIXED);
    let parts = h.parts(ALICE, "m.eml");
    assert_eq!(
        h.ls(ALICE, parts).unwrap(),
        [".", "..", "Body.txt", "q3.pdf", "fwd.eml", "fwd.eml.parts"]
    );
    assert_eq!(
        h.part(ALICE, "m.eml", "Body.txt").unwrap(),
        b"see attached",
        "the line end before a boundary is the boundary's"
    );
    assert_eq!(
        h.part(ALICE, "m.eml", "q3.pdf").unwrap(),
        b"%PDF-1.4\n",
        "base64 decoded"
    );
    let pdf = h.ino(ALICE, parts, "q3.pdf").unwrap();
    assert_eq!(h.getx(ALICE, pdf, "user.filename").unwrap(), "q3.pdf");
    assert_eq!(h.getx(ALICE, pdf, "user.disposition").unwrap(), "attachment");
    assert_eq!(h.fs.getattr(pdf).unwrap().size, 9);
    assert_eq!(h.getx(ALICE, parts, "user.header.subject").unwrap(), "report");
    // An attached message recurses, read-only.
    let inner = h.ino(ALICE, parts, "fwd.eml.parts").unwrap();
    assert_eq!(h.getx(ALICE, inner, "user.header.subject").unwrap(), "inner");
    let body = h.ino(ALICE, inner, "Body.txt").unwrap();
    assert_eq!(h.read(ALICE, body).unwrap(), b"inner body");
    // Only the bytes it has can be written back (a restore's `cp -a`): others are refused at
    // the write, and at the close when the part would end up other than it is.
    let before = h.eml("m.eml");
    let fh = h.fs.open(ALICE, body, libc::O_WRONLY).unwrap();
    assert_eq!(errno(h.fs.write(fh, 0, b"other")), libc::EACCES);
    h.fs.release(fh);
    let fh = h.fs.open(ALICE, body, libc::O_WRONLY | libc::O_TRUNC).unwrap();
    assert_eq!(errno(h.fs.write(fh, 0, b"inner")), 0, "its own bytes");
    assert_eq!(errno(h.fs.flush(fh)), libc::EACCES, "cut short");
    h.fs.release(fh);
    let fh = h.fs.open(ALICE, body, libc::O_WRONLY | libc::O_TRUNC).unwrap();
    h.fs.write(fh, 0, b"inner body").unwrap();
    h.fs.flush(fh).unwrap();
    h.fs.release(fh);
    assert_eq!(
        errno(h.fs.setattr(ALICE, body, None, (None, None), Some(3), None, None)),
        libc::EACCES
    );
    h.fs.setattr(ALICE, body, None, (None, None), Some(10), None, None)
        .unwrap();
    assert_eq!(h.eml("m.eml"), before, "nothing changed");
    assert_eq!(errno(h.fs.access(ALICE, body, libc::W_OK)), libc::EACCES);
    h.fs.access(ALICE, body, libc::R_OK).unwrap();
    assert_eq!(errno(h.fs.unlink(ALICE, inner, "Body.txt")), libc::EACCES);
    assert_eq!(
        errno(h.fs.create(ALICE, inner, "new.txt", 0o644, libc::O_WRONLY)),
        libc::EACCES
    );
    assert_eq!(errno(h.fs.mkdir(ALICE, parts, "other.eml.parts")), libc::EPERM);
    assert_eq!(errno(h.fs.lookup(ALICE, parts, "nothing.txt")), libc::ENOENT);
    assert_eq!(h.eml("m.eml"), before, "nothing changed");
}

/// A restore goes through an attached message's parts as through the Draft's own (audit:
/// tar, rsync and cp -a restores of a Draft holding fwd.eml failed there): writing back the
/// bytes a part has is no change, by rsync's temp file too; the process that made the Draft
/// (tar) may unlink a part to make it again, and (rsync's generator) make the parts
/// directory of an attached message the Draft does not hold yet. Nothing else changes.
#[test]
fn a_restore_writes_an_attached_messages_parts_back_unchanged() {
    let h = Harness::new();
    // The restore tool: this process, as FUSE names it.
    let tool = Caller {
        pid: std::process::id(),
        ..ALICE
    };
    h.write_new(tool, "m.eml", MIXED);
    let before = h.eml("m.eml");
    let parts = h.parts(ALICE, "m.eml");
    let inner = h.ino(ALICE, parts, "fwd.eml.parts").unwrap();
    // rsync: a dot-named temp file, renamed onto the part.
    let stage = |name: &str, bytes: &[u8]| {
        let (_, fh) =
            h.fs.create(
                ALICE,
                inner,
                name,
                0o600,
                libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
            )
            .unwrap();
        h.fs.write(fh, 0, bytes).unwrap();
        h.fs.flush(fh).unwrap();
        h.fs.release(fh);
    };
    stage(".Body.txt.a1", b"inner body");
    assert!(h.ls(ALICE, inner).unwrap().contains(&".Body.txt.a1".to_string()));
    h.fs.rename(ALICE, (inner, ".Body.txt.a1"), (inner, "Body.txt"), false)
        .unwrap();
    assert_eq!(h.ls(ALICE, inner).unwrap(), [".", "..", "Body.txt"]);
    stage(".Body.txt.a2", b"other body");
    assert_eq!(
        errno(h.fs.rename(ALICE, (inner, ".Body.txt.a2"), (inner, "Body.txt"), false)),
        libc::EACCES
    );
    h.fs.unlink(ALICE, inner, ".Body.txt.a2").unwrap();
    assert_eq!(h.eml("m.eml"), before);
    // tar: unlink, then create with the archive's bytes. Only the Draft's maker may.
    assert_eq!(errno(h.fs.unlink(ALICE, inner, "Body.txt")), libc::EACCES);
    h.fs.unlink(tool, inner, "Body.txt").unwrap();
    assert_eq!(errno(h.fs.lookup(ALICE, inner, "Body.txt")), libc::ENOENT);
    assert_eq!(h.eml("m.eml"), before, "hidden, not removed");
    let (_, fh) =
        h.fs.create(
            tool,
            inner,
            "Body.txt",
            0o400,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
        )
        .unwrap();
    h.fs.write(fh, 0, b"inner body").unwrap();
    h.fs.flush(fh).unwrap();
    h.fs.release(fh);
    let body = h.ino(ALICE, inner, "Body.txt").unwrap();
    assert_eq!(h.read(ALICE, body).unwrap(), b"inner body");
    // Written back with other bytes: refused, and the part shows again.
    h.fs.unlink(tool, inner, "Body.txt").unwrap();
    let (_, fh) =
        h.fs.create(
            tool,
            inner,
            "Body.txt",
            0o400,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
        )
        .unwrap();
    assert_eq!(errno(h.fs.write(fh, 0, b"changed!!!")), libc::EACCES);
    assert_eq!(errno(h.fs.flush(fh)), libc::EACCES);
    h.fs.release(fh);
    assert!(h.fs.lookup(ALICE, inner, "Body.txt").is_ok());
    assert_eq!(h.eml("m.eml"), before);
    // rsync's generator: the parts directory of an attached message not there yet.
    assert_eq!(errno(h.fs.mkdir(ALICE, parts, "later.eml.parts")), libc::EPERM);
    h.fs.mkdir(tool, parts, "later.eml.parts").unwrap();
    let later = h.ino(ALICE, parts, "later.eml.parts").unwrap();
    assert_eq!(h.ls(ALICE, later).unwrap(), [".", ".."]);
    h.fs.setxattr(tool, later, "user.header.subject", b"later")
        .unwrap();
    assert_eq!(errno(h.fs.mkdir(tool, parts, "later.eml.parts")), libc::EEXIST);
    assert_eq!(errno(h.fs.mkdir(tool, parts, "sub")), libc::EPERM);
    assert_eq!(errno(h.fs.mkdir(tool, parts, "fwd.eml.parts")), libc::EEXIST);
    assert_eq!(
        h.ls(ALICE, parts).unwrap(),
        [".", "..", "Body.txt", "q3.pdf", "fwd.eml", "fwd.eml.parts"],
        "nothing listed"
    );
    assert_eq!(h.eml("m.eml"), before, "nothing changed");
}

#[test]
fn writing_the_body_recomposes_the_message() {
    let h = Harness::new();
    let ino = h.write_new(ALICE, "m.eml", PLAIN);
    let id = h.getx(ALICE, ino, "user.message_id").unwrap();
    h.write_part(ALICE, "m.eml", "Body.txt", "new text, ünïcode\n".as_bytes())
        .unwrap();
    let eml = h.eml("m.eml");
    let m = parse(&eml);
    assert_eq!(m.body_text(0).as_deref(), Some("new text, ünïcode\n"));
    assert_eq!(m.subject(), Some("hello"), "other headers kept");
    assert_eq!(
        m.to().and_then(|a| a.first()).and_then(|a| a.address()),
        Some("bob@example.org")
    );
    assert_eq!(
        h.getx(ALICE, ino, "user.message_id").unwrap(),
        id,
        "the Message-ID stays"
    );
    assert_eq!(
        h.part(ALICE, "m.eml", "Body.txt").unwrap(),
        "new text, ünïcode\n".as_bytes()
    );
    assert_eq!(
        h.fs.getattr(ino).unwrap().size,
        eml.len() as u64,
        "stat follows the rebuild"
    );
    // An HTML alternative.
    h.write_part(ALICE, "m.eml", "Body.html", b"<p>hi</p>").unwrap();
    let eml = h.eml("m.eml");
    let m = parse(&eml);
    assert_eq!(m.body_html(0).as_deref(), Some("<p>hi</p>"));
    assert_eq!(m.body_text(0).as_deref(), Some("new text, ünïcode\n"));
}

#[test]
fn attachments_are_added_renamed_and_removed() {
    let h = Harness::new();
    h.write_new(ALICE, "m.eml", PLAIN);
    let pdf: &[u8] = b"%PDF-1.4\n\x00\x01\xfe binary";
    h.write_part(ALICE, "m.eml", "report.pdf", pdf).unwrap();
    let eml = h.eml("m.eml");
    let m = parse(&eml);
    assert_eq!(m.attachment_count(), 1);
    let att = m.attachment(0).unwrap();
    assert_eq!(att.attachment_name(), Some("report.pdf"));
    assert_eq!(att.contents(), pdf);
    assert_eq!(m.body_text(0).as_deref(), Some("first line\n"));
    assert_eq!(h.part(ALICE, "m.eml", "report.pdf").unwrap(), pdf);

    let parts = h.parts(ALICE, "m.eml");
    h.fs.rename(ALICE, (parts, "report.pdf"), (parts, "q3.pdf"), false)
        .unwrap();
    let eml = h.eml("m.eml");
    assert_eq!(
        parse(&eml).attachment(0).unwrap().attachment_name(),
        Some("q3.pdf")
    );
    assert_eq!(errno(h.fs.lookup(ALICE, parts, "report.pdf")), libc::ENOENT);

    h.fs.unlink(ALICE, parts, "q3.pdf").unwrap();
    let eml = h.eml("m.eml");
    let m = parse(&eml);
    assert_eq!(m.attachment_count(), 0);
    assert_eq!(m.body_text(0).as_deref(), Some("first line\n"));
    assert_eq!(h.ls(ALICE, parts).unwrap(), [".", "..", "Body.txt"]);
}

#[test]
fn bad_part_names_and_bodies_are_einval_and_change_nothing() {
    let h = Harness::new();
    h.write_new(ALICE, "m.eml", PLAIN);
    let parts = h.parts(ALICE, "m.eml");
    for name in ["x.parts", "raw.eml", "a\u{1}b"] {
        let r =
            h.fs.create(ALICE, parts, name, 0o644, libc::O_WRONLY | libc::O_CREAT);
        assert_eq!(errno(r), libc::EINVAL, "{name:?}");
    }
    // A body that is not UTF-8 is refused at the write, so a shell sees it.
    assert_eq!(
        errno(h.write_part(ALICE, "m.eml", "Body.txt", b"caf\xe9\n")),
        libc::EINVAL
    );
    assert_eq!(h.eml("m.eml"), PLAIN);
    // O_EXCL on an existing part.
    let r = h.fs.create(
        ALICE,
        parts,
        "Body.txt",
        0o644,
        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
    );
    assert_eq!(errno(r), libc::EEXIST);
    assert_eq!(h.eml("m.eml"), PLAIN);
}

#[test]
fn a_part_written_back_identical_changes_nothing() {
    let h = Harness::new();
    h.write_new(ALICE, "m.eml", MIXED);
    let before = h.eml("m.eml");
    let stamp = std::fs::metadata(h.fs.node.spool.eml_path("m.eml")).unwrap();
    // Same bytes: not even a rebuild (which would re-encode the message).
    h.write_part(ALICE, "m.eml", "q3.pdf", b"%PDF-1.4\n").unwrap();
    assert_eq!(h.eml("m.eml"), before);
    let after = std::fs::metadata(h.fs.node.spool.eml_path("m.eml")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(after.ino(), stamp.ino(), "the file was not replaced");
    // tar -x over the node: unlink the part, write the same bytes back: byte for byte.
    let parts = h.parts(ALICE, "m.eml");
    h.fs.unlink(ALICE, parts, "q3.pdf").unwrap();
    assert_ne!(h.eml("m.eml"), before);
    assert_eq!(parse(&h.eml("m.eml")).attachment_count(), 1, "only fwd.eml left");
    h.write_part(ALICE, "m.eml", "q3.pdf", b"%PDF-1.4\n").unwrap();
    assert_eq!(h.eml("m.eml"), before);
    // Different bytes back: an ordinary rebuild.
    h.fs.unlink(ALICE, parts, "q3.pdf").unwrap();
    h.write_part(ALICE, "m.eml", "q3.pdf", b"%PDF-1.5\n").unwrap();
    assert_ne!(h.eml("m.eml"), before);
    assert_eq!(h.part(ALICE, "m.eml", "q3.pdf").unwrap(), b"%PDF-1.5\n");
}

#[test]
fn removing_the_only_body_hides_it_until_the_message_changes() {
    let h = Harness::new();
    h.write_new(ALICE, "m.eml", PLAIN);
    let parts = h.parts(ALICE, "m.eml");
    h.fs.unlink(ALICE, parts, "Body.txt").unwrap();
    assert_eq!(h.ls(ALICE, parts).unwrap(), [".", ".."]);
    assert_eq!(errno(h.fs.lookup(ALICE, parts, "Body.txt")), libc::ENOENT);
    assert_eq!(errno(h.fs.unlink(ALICE, parts, "Body.txt")), libc::ENOENT);
    assert_eq!(parse(&h.eml("m.eml")).body_text(0).as_deref().unwrap_or(""), "");
    h.write_part(ALICE, "m.eml", "Body.txt", b"again\n").unwrap();
    assert_eq!(h.part(ALICE, "m.eml", "Body.txt").unwrap(), b"again\n");
}

#[test]
fn a_staged_temp_file_becomes_a_part_by_rename() {
    let h = Harness::new();
    h.write_new(ALICE, "m.eml", PLAIN);
    let parts = h.parts(ALICE, "m.eml");
    // rsync and cp write `.name.XXXX`, then rename it onto the part's name.
    let (attr, fh) =
        h.fs.create(
            ALICE,
            parts,
            ".notes.txt.Ab12",
            0o600,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
        )
        .unwrap();
    h.fs.write(fh, 0, b"staged bytes\n").unwrap();
    h.fs.flush(fh).unwrap();
    h.fs.release(fh);
    assert!(
        h.ls(ALICE, parts)
            .unwrap()
            .contains(&".notes.txt.Ab12".to_string())
    );
    assert_eq!(h.fs.getattr(attr.ino.0).unwrap().uid, ALICE.uid);
    assert_eq!(h.eml("m.eml"), PLAIN, "nothing composed yet");
    h.fs.rename(ALICE, (parts, ".notes.txt.Ab12"), (parts, "notes.txt"), false)
        .unwrap();
    assert_eq!(h.part(ALICE, "m.eml", "notes.txt").unwrap(), b"staged bytes\n");
    let eml = h.eml("m.eml");
    assert_eq!(parse(&eml).attachment(0).unwrap().contents(), b"staged bytes\n");
    assert_eq!(h.ls(ALICE, parts).unwrap(), [".", "..", "Body.txt", "notes.txt"]);
}

#[test]
fn an_unparseable_message_keeps_its_bytes_as_raw_eml() {
    let h = Harness::new();
    let broken: &[u8] = b"\x00\x01 no header fields here\x00\xff\n\nbody\n";
    h.write_new(ALICE, "x.eml", broken);
    let parts = h.parts(ALICE, "x.eml");
    assert_eq!(h.ls(ALICE, parts).unwrap(), [".", "..", "raw.eml"]);
    assert_eq!(h.part(ALICE, "x.eml", "raw.eml").unwrap(), broken);
    assert!(!h.getx(ALICE, parts, "user.parse_error").unwrap().is_empty());
    // Composing in it would drop what the view does not show.
    assert_eq!(errno(h.write_part(ALICE, "x.eml", "a.txt", b"x")), libc::EINVAL);
    assert_eq!(h.eml("x.eml"), broken, "nothing is lost");
}

#[test]
fn staged_files_stay_in_their_message() {
    let h = Harness::new();
    h.write_new(ALICE, "a.eml", PLAIN);
    h.write_new(ALICE, "b.eml", PLAIN);
    let (pa, pb) = (h.parts(ALICE, "a.eml"), h.parts(ALICE, "b.eml"));
    let stage = |name: &str, bytes: &[u8]| {
        let (_, fh) =
            h.fs.create(
                ALICE,
                pa,
                name,
                0o600,
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
            )
            .unwrap();
        h.fs.write(fh, 0, bytes).unwrap();
        h.fs.release(fh);
    };
    stage(".x.1", b"one");
    stage(".x.2", b"two");
    // Another message's parts, or the root: EXDEV (mv copies instead).
    assert_eq!(
        errno(h.fs.rename(ALICE, (pa, ".x.1"), (pb, "x.txt"), false)),
        libc::EXDEV
    );
    assert_eq!(
        errno(h.fs.rename(ALICE, (pa, ".x.1"), (ROOT, "x.txt"), false)),
        libc::EXDEV
    );
    // Between staged names, NOREPLACE holds.
    assert_eq!(
        errno(h.fs.rename(ALICE, (pa, ".x.1"), (pa, ".x.2"), true)),
        libc::EEXIST
    );
    h.fs.rename(ALICE, (pa, ".x.1"), (pa, ".x.3"), false).unwrap();
    // Onto a part's name: composed, staged name gone; NOREPLACE onto an existing part refused.
    h.fs.rename(ALICE, (pa, ".x.3"), (pa, "x.txt"), false).unwrap();
    assert_eq!(
        errno(h.fs.rename(ALICE, (pa, ".x.2"), (pa, "x.txt"), true)),
        libc::EEXIST
    );
    assert_eq!(h.part(ALICE, "a.eml", "x.txt").unwrap(), b"one");
    assert_eq!(h.ls(ALICE, pa).unwrap(), [".", "..", ".x.2", "Body.txt", "x.txt"]);
    h.fs.unlink(ALICE, pa, ".x.2").unwrap();
    assert_eq!(h.ls(ALICE, pa).unwrap(), [".", "..", "Body.txt", "x.txt"]);
    assert_eq!(h.eml("b.eml"), PLAIN);
    // Another user cannot stage in a Draft that is not theirs.
    let r =
        h.fs.create(BOB, pa, ".evil", 0o600, libc::O_WRONLY | libc::O_CREAT);
    assert_eq!(errno(r), libc::EACCES);
}

/// A Draft with a text body and three attachments, two of them named `x.bin`.
const TWO_X: &[u8] = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: dup\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nbody\r\n\
--B\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"x.bin\"\r\n\r\nv0\r\n\
--B\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"x.bin\"\r\n\r\nversion 1\r\n\
--B\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"y.bin\"\r\n\r\nv2\r\n--B--\r\n";

#[test]
fn removing_one_of_two_same_named_parts_leaves_the_other_visible_under_its_name() {
    // audit-16 D7: after `rm x.bin`, the second `x.bin` (shown as `x (2).bin`) took the name
    // `x.bin` in the rebuilt message, which stayed hidden: the part was in the message but
    // could be neither listed, read nor removed.
    let h = Harness::new();
    h.write_new(ALICE, "m.eml", TWO_X);
    let parts = h.parts(ALICE, "m.eml");
    let ls = || {
        let mut v = h.ls(ALICE, parts).unwrap();
        v.sort();
        v
    };
    assert_eq!(ls(), [".", "..", "Body.txt", "x (2).bin", "x.bin", "y.bin"]);
    h.fs.unlink(ALICE, parts, "x.bin").unwrap();
    assert_eq!(ls(), [".", "..", "Body.txt", "x (2).bin", "y.bin"]);
    assert_eq!(h.part(ALICE, "m.eml", "x (2).bin").unwrap(), b"version 1");
    assert_eq!(errno(h.fs.lookup(ALICE, parts, "x.bin")), libc::ENOENT);
    // It can be removed in turn, and the message then holds only the body and y.bin.
    h.fs.unlink(ALICE, parts, "x (2).bin").unwrap();
    let eml = h.eml("m.eml");
    let m = parse(&eml);
    assert_eq!(m.attachment_count(), 1);
    assert_eq!(m.attachment(0).unwrap().contents(), b"v2");
    assert_eq!(ls(), [".", "..", "Body.txt", "y.bin"]);
}

#[test]
fn removing_the_first_of_two_text_parts_leaves_the_second_listed() {
    // audit-16 D7: `rm Body.txt` of a message with a second, inline text part listed nothing.
    let h = Harness::new();
    let two: &[u8] = b"From: a@example.com\r\nTo: b@example.com\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nfirst body\r\n\
--B\r\nContent-Type: text/plain\r\nContent-Disposition: inline\r\n\r\nsecond text\r\n--B--\r\n";
    h.write_new(ALICE, "m.eml", two);
    let parts = h.parts(ALICE, "m.eml");
    let before = h.ls(ALICE, parts).unwrap();
    assert_eq!(before.len(), 4, "{before:?}");
    let second = before[3].clone();
    assert_eq!(h.part(ALICE, "m.eml", &second).unwrap(), b"second text");
    h.fs.unlink(ALICE, parts, "Body.txt").unwrap();
    assert_eq!(h.ls(ALICE, parts).unwrap(), [".", "..", second.as_str()]);
    assert_eq!(h.part(ALICE, "m.eml", &second).unwrap(), b"second text");
    assert!(!String::from_utf8_lossy(&h.eml("m.eml")).contains("first body"));
}

#[test]
fn a_restore_over_same_named_parts_gives_the_message_back_byte_for_byte() {
    // tar -x over the node unlinks each part and writes it again with the same bytes.
    let h = Harness::new();
    h.write_new(ALICE, "m.eml", TWO_X);
    let before = h.eml("m.eml");
    let parts = h.parts(ALICE, "m.eml");
    for (name, bytes) in [
        ("x.bin", &b"v0"[..]),
        ("x (2).bin", b"version 1"),
        ("y.bin", b"v2"),
    ] {
        h.fs.unlink(ALICE, parts, name).unwrap();
        h.write_part(ALICE, "m.eml", name, bytes).unwrap();
        assert_eq!(h.eml("m.eml"), before, "after {name}");
    }
}

#[test]
fn the_copy_a_removal_keeps_goes_after_a_while() {
    // audit-16 D5: each `rm` of a part kept the whole old message in `.tmp/` until another
    // process cleaned it.
    let h = Harness::new();
    h.write_new(ALICE, "m.eml", TWO_X);
    let parts = h.parts(ALICE, "m.eml");
    let tmp = h.fs.node.spool.tmp_path();
    let tmp = tmp.parent().unwrap();
    let held = || {
        std::fs::read_dir(tmp)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().metadata().unwrap().len() as usize == TWO_X.len())
            .count()
    };
    h.fs.unlink(ALICE, parts, "y.bin").unwrap();
    assert_eq!(held(), 1, "kept for a restore that puts the part back");
    std::thread::sleep(std::time::Duration::from_millis(400));
    // The next look at the parts lets it go; the names it kept stay.
    let mut names = h.ls(ALICE, parts).unwrap();
    names.sort();
    assert_eq!(names, [".", "..", "Body.txt", "x (2).bin", "x.bin"]);
    assert_eq!(held(), 0);
}

#[test]
fn a_part_writer_reaches_the_part_it_opened_or_nothing() {
    // audit-18 E5: a writer of `x (2).bin` open while the message changed another way (the
    // `.eml` edited, another mount) wrote over whatever had that name by then.
    let h = Harness::new();
    h.write_new(ALICE, "m.eml", TWO_X);
    let parts = h.parts(ALICE, "m.eml");
    let second = h.ino(ALICE, parts, "x (2).bin").unwrap();
    // Changed here, through the parts directory: names kept, the writer reaches its part.
    let fh = h.fs.open(ALICE, second, libc::O_WRONLY | libc::O_TRUNC).unwrap();
    h.fs.unlink(ALICE, parts, "x.bin").unwrap();
    h.fs.write(fh, 0, b"edited").unwrap();
    h.fs.flush(fh).unwrap();
    h.fs.release(fh);
    let leaves = |eml: &[u8]| -> Vec<Vec<u8>> {
        let m = parse(eml);
        (0..m.attachment_count())
            .map(|i| m.attachment(i as u32).unwrap().contents().to_vec())
            .collect()
    };
    assert_eq!(leaves(&h.eml("m.eml")), [b"edited".to_vec(), b"v2".to_vec()]);
    // Changed another way (the spool file rewritten, as another mount would): refused.
    h.write_new(ALICE, "n.eml", TWO_X);
    let parts = h.parts(ALICE, "n.eml");
    let second = h.ino(ALICE, parts, "x (2).bin").unwrap();
    let fh = h.fs.open(ALICE, second, libc::O_WRONLY | libc::O_TRUNC).unwrap();
    let path = h.fs.node.spool.eml_path("n.eml");
    let other = String::from_utf8(TWO_X.to_vec()).unwrap().replace("v0", "w0");
    std::fs::write(path.with_extension("new"), &other).unwrap();
    std::fs::rename(path.with_extension("new"), &path).unwrap();
    h.fs.write(fh, 0, b"edited").unwrap();
    assert_eq!(errno(h.fs.flush(fh)), libc::ESTALE);
    h.fs.release(fh);
    assert_eq!(h.eml("n.eml"), other.as_bytes());
}
