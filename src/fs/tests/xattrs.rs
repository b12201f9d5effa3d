//! Extended attributes (SPEC §3, §4): node attributes on the root, message attributes on
//! `X.eml`, headers on `X.eml.parts/`, part attributes, and scratch files' own.

use super::*;

#[test]
fn message_attributes_get_set_list_and_remove() {
    let h = Harness::new();
    let ino = h.write_new(ALICE, "m.eml", PLAIN);
    // Defaults come from the content.
    assert_eq!(h.getx(ALICE, ino, "user.name").unwrap(), "m.eml");
    assert_eq!(h.getx(ALICE, ino, "user.env_from").unwrap(), "alice@example.com");
    assert_eq!(h.getx(ALICE, ino, "user.env_to").unwrap(), "bob@example.org");
    assert_eq!(h.getx(ALICE, ino, "user.status").unwrap(), "Draft");
    assert_eq!(h.getx(ALICE, ino, "user.is_ready").unwrap(), "0");
    assert_eq!(h.getx(ALICE, ino, "user.try_count").unwrap(), "0");
    assert_eq!(errno(h.getx(ALICE, ino, "user.first_try_date")), libc::ENODATA);
    assert_eq!(errno(h.getx(ALICE, ino, "user.nothing")), libc::ENODATA);
    assert_eq!(errno(h.getx(ALICE, ino, "trusted.env_to")), libc::ENOTSUP);
    assert_eq!(errno(h.getx(ALICE, ino, "user.")), libc::ENOTSUP);

    h.fs.setxattr(ALICE, ino, "user.env_to", b"c@example.net, d@example.net")
        .unwrap();
    h.fs.setxattr(ALICE, ino, "user.env_from", b"bounces@example.com")
        .unwrap();
    h.fs.setxattr(ALICE, ino, "user.project", b"q3").unwrap();
    assert_eq!(
        h.getx(ALICE, ino, "user.env_to").unwrap(),
        "c@example.net, d@example.net"
    );
    assert_eq!(
        h.getx(ALICE, ino, "user.env_from").unwrap(),
        "bounces@example.com"
    );
    assert_eq!(h.getx(ALICE, ino, "user.project").unwrap(), "q3");
    let names = h.listx(ALICE, ino);
    for n in [
        "user.name",
        "user.message_id",
        "user.env_from",
        "user.env_to",
        "user.status",
        "user.project",
    ] {
        assert!(names.iter().any(|x| x == n), "{n} not in {names:?}");
    }
    assert!(
        !names.iter().any(|x| x == "user.first_try_date"),
        "absent dates are not listed"
    );
    // Attributes are stored: a fresh MailFs on the same spool reads them.
    let again = MailFs::new(h.fs.node.clone());
    assert_eq!(
        again
            .getxattr(ALICE, ino_of(&again, "m.eml"), "user.project")
            .unwrap(),
        b"q3"
    );

    // Removing env_* goes back to the default; a user attribute goes.
    h.fs.removexattr(ALICE, ino, "user.env_to").unwrap();
    assert_eq!(h.getx(ALICE, ino, "user.env_to").unwrap(), "bob@example.org");
    h.fs.removexattr(ALICE, ino, "user.project").unwrap();
    assert_eq!(errno(h.getx(ALICE, ino, "user.project")), libc::ENODATA);
    assert_eq!(errno(h.fs.removexattr(ALICE, ino, "user.project")), libc::ENODATA);
    assert_eq!(errno(h.fs.removexattr(ALICE, ino, "user.status")), libc::EPERM);
}

fn ino_of(fs: &MailFs, name: &str) -> u64 {
    fs.lookup(ALICE, ROOT, name).unwrap().ino.0
}

#[test]
fn bad_message_attribute_values_are_einval_and_change_nothing() {
    let h = Harness::new();
    let ino = h.write_new(ALICE, "m.eml", PLAIN);
    h.fs.setxattr(ALICE, ino, "user.env_to", b"ok@example.org")
        .unwrap();
    let before = std::fs::read(h.fs.node.spool.struct_path("m.eml")).unwrap();
    let bad: [(&str, &[u8]); 8] = [
        ("user.env_to", b"x@example.org\r\nRCPT TO:<evil@example.net>"),
        ("user.env_to", b"-oQ/tmp/x@example.org"),
        ("user.env_to", b"not an address"),
        ("user.env_to", b"a@example.org\0b@example.org"),
        ("user.env_from", b"a@example.org, b@example.org"),
        ("user.env_from", b"-f@example.org"),
        ("user.is_ready", b"yes"),
        ("user.hold", b"2"),
    ];
    for (name, value) in bad {
        assert_eq!(
            errno(h.fs.setxattr(ALICE, ino, name, value)),
            libc::EINVAL,
            "{name}={:?}",
            String::from_utf8_lossy(value)
        );
    }
    assert_eq!(h.getx(ALICE, ino, "user.env_to").unwrap(), "ok@example.org");
    assert_eq!(h.getx(ALICE, ino, "user.status").unwrap(), "Draft");
    assert_eq!(
        std::fs::read(h.fs.node.spool.struct_path("m.eml")).unwrap(),
        before
    );
    // Attributes mailfs maintains are never writable (EPERM)...
    for name in ["user.status", "user.name", "user.try_count", "user.last_try_msg"] {
        assert_eq!(
            errno(h.fs.setxattr(ALICE, ino, name, b"Sent")),
            libc::EPERM,
            "{name}"
        );
    }
    // ...except to the value they show, which changes nothing (a restore of a Draft: rsync -X
    // writes every attribute again by path when one differs, audit-23 C1).
    h.fs.setxattr(ALICE, ino, "user.status", b"Draft").unwrap();
    h.fs.setxattr(ALICE, ino, "user.name", b"m.eml").unwrap();
    h.fs.setxattr(ALICE, ino, "user.try_count", b"0").unwrap();
    assert_eq!(
        errno(h.fs.setxattr(ALICE, ino, "security.selinux", b"x")),
        libc::ENOTSUP
    );
}

/// A `setfattr` of a mailfs attribute with a value saying the message went out (probing
/// EPERM by hand) was refused but still marked the Draft as gone out: its `is_ready=1` then
/// failed with EALREADY for good. Refused on a message at rest, it changes nothing; while a
/// restore tool writes the message (`cp -a`: the descriptor still open; `tar --xattrs`: an
/// empty file made by mknod) the hint still keeps a restored Sent message from going out.
#[test]
fn a_refused_set_on_a_message_at_rest_changes_nothing() {
    let h = Harness::new();
    let ino = h.write_new(ALICE, "m.eml", PLAIN);
    for (name, value) in [
        ("user.status", &b"Sent"[..]),
        ("user.try_count", b"3"),
        ("user.first_try_date", b"2026-11-23T12:00:00Z"),
        ("user.last_try_status", b"Fail"),
    ] {
        assert_eq!(
            errno(h.fs.setxattr(ALICE, ino, name, value)),
            libc::EPERM,
            "{name}"
        );
    }
    assert_eq!(h.getx(ALICE, ino, "user.status").unwrap(), "Draft");
    h.make_ready(ALICE, "m.eml");
    assert_eq!(h.getx(ALICE, ino, "user.status").unwrap(), "Pending");

    // cp -a: bytes written, then the attributes through the open descriptor.
    let (attr, fh) =
        h.fs.create(
            ALICE,
            ROOT,
            "c.eml",
            0o644,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
        )
        .unwrap();
    let other = PLAIN
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| [&PLAIN[..i], b"\nMessage-ID: <restored@example.com>", &PLAIN[i..]].concat())
        .unwrap();
    h.fs.write(fh, 0, &other).unwrap();
    let c = attr.ino.0;
    assert_eq!(
        errno(h.fs.setxattr(ALICE, c, "user.status", b"Sent")),
        libc::EPERM
    );
    assert_eq!(
        errno(h.fs.setxattr(ALICE, c, "user.is_ready", b"1")),
        libc::EALREADY
    );
    h.fs.flush(fh).unwrap();
    h.fs.release(fh);
    assert_eq!(h.getx(ALICE, c, "user.status").unwrap(), "Draft");

    // tar --xattrs: mknod, the attributes, then the bytes.
    let t =
        h.fs.mknod(ALICE, ROOT, "t.eml", libc::S_IFREG | 0o644)
            .unwrap()
            .ino
            .0;
    assert_eq!(
        errno(h.fs.setxattr(ALICE, t, "user.status", b"Sent")),
        libc::EPERM
    );
    let fh = h.fs.open(ALICE, t, libc::O_WRONLY).unwrap();
    h.fs.write(fh, 0, PLAIN).unwrap();
    h.fs.flush(fh).unwrap();
    h.fs.release(fh);
    assert_eq!(
        errno(h.fs.setxattr(ALICE, t, "user.is_ready", b"1")),
        libc::EALREADY
    );
}

#[test]
fn node_attributes_are_the_node_owners_and_refuse_bad_values() {
    let h = Harness::new();
    let owner = daemon();
    assert_eq!(h.getx(ALICE, ROOT, "user.port").unwrap(), "25");
    assert_eq!(h.getx(ALICE, ROOT, "user.conn_limit").unwrap(), "1");
    assert_eq!(h.getx(ALICE, ROOT, "user.send_method").unwrap(), "smtp");
    assert!(h.listx(ALICE, ROOT).iter().any(|n| n == "user.port"));
    assert_eq!(errno(h.getx(ALICE, ROOT, "user.no_such_attr")), libc::ENODATA);

    h.fs.setxattr(owner, ROOT, "user.port", b"2525").unwrap();
    assert_eq!(h.getx(ALICE, ROOT, "user.port").unwrap(), "2525");
    for (name, value) in [
        ("user.port", &b"0"[..]),
        ("user.port", b"70000"),
        ("user.port", b"twenty"),
        ("user.conn_limit", b"0"),
        ("user.send_method", b"pigeon"),
        ("user.ratelimit_time", b"-1"),
    ] {
        assert_eq!(
            errno(h.fs.setxattr(owner, ROOT, name, value)),
            libc::EINVAL,
            "{name}"
        );
    }
    assert_eq!(h.getx(ALICE, ROOT, "user.port").unwrap(), "2525");
    assert_eq!(h.getx(ALICE, ROOT, "user.send_method").unwrap(), "smtp");
    assert_eq!(h.fs.node.attrs().port, 2525, "what the senders use");

    // Anyone else: EPERM, for set and remove, and nothing changes (SPEC §3, §10).
    assert_eq!(errno(h.fs.setxattr(ALICE, ROOT, "user.port", b"26")), libc::EPERM);
    assert_eq!(
        errno(h.fs.setxattr(BOB, ROOT, "user.sendmail_path", b"/tmp/x")),
        libc::EPERM
    );
    assert_eq!(errno(h.fs.removexattr(ALICE, ROOT, "user.port")), libc::EPERM);
    assert_eq!(h.getx(ALICE, ROOT, "user.port").unwrap(), "2525");

    // Removing goes back to the default.
    h.fs.removexattr(owner, ROOT, "user.port").unwrap();
    assert_eq!(h.getx(ALICE, ROOT, "user.port").unwrap(), "25");
}

#[test]
fn parts_directory_headers_and_part_attributes() {
    let h = Harness::new();
    h.write_new(ALICE, "m.eml", PLAIN);
    let parts = h.parts(ALICE, "m.eml");
    assert_eq!(h.getx(ALICE, parts, "user.header.subject").unwrap(), "hello");
    assert!(h.listx(ALICE, parts).iter().any(|n| n == "user.header.to"));

    h.fs.setxattr(ALICE, parts, "user.header.subject", "Grüße".as_bytes())
        .unwrap();
    assert_eq!(h.getx(ALICE, parts, "user.header.subject").unwrap(), "Grüße");
    let eml = h.eml("m.eml");
    let m = parse(&eml);
    assert_eq!(m.subject(), Some("Grüße"));
    assert_eq!(m.body_text(0).as_deref(), Some("first line\n"));
    h.fs.removexattr(ALICE, parts, "user.header.subject").unwrap();
    assert_eq!(parse(&h.eml("m.eml")).subject(), None);

    let eml = h.eml("m.eml");
    // Structure is mail-builder's: EPERM; a bad name or an injected line: EINVAL; unchanged.
    assert_eq!(
        errno(h.fs.setxattr(ALICE, parts, "user.header.content-type", b"text/html")),
        libc::EPERM
    );
    assert_eq!(
        errno(h.fs.setxattr(ALICE, parts, "user.header.x bad", b"v")),
        libc::EINVAL
    );
    assert_eq!(
        errno(h.fs.setxattr(ALICE, parts, "user.header.x-note", b"a\r\nBcc: eve@example.net")),
        libc::EINVAL
    );
    assert_eq!(
        errno(h.fs.setxattr(ALICE, parts, "user.header.to", b"not an address")),
        libc::EINVAL
    );
    assert_eq!(
        errno(h.fs.setxattr(ALICE, parts, "user.other", b"v")),
        libc::EPERM
    );
    assert_eq!(h.eml("m.eml"), eml);

    let body = h.ino(ALICE, parts, "Body.txt").unwrap();
    assert_eq!(h.getx(ALICE, body, "user.content_type").unwrap(), "text/plain");
    assert_eq!(h.getx(ALICE, body, "user.size").unwrap(), "11");
    let listed = h.listx(ALICE, body);
    assert!(listed.iter().any(|n| n == "user.size"), "{listed:?}");
    // Part attributes follow the content: EPERM, except to the value they show (tar -x).
    assert_eq!(errno(h.fs.setxattr(ALICE, body, "user.size", b"1")), libc::EPERM);
    h.fs.setxattr(ALICE, body, "user.size", b"11").unwrap();
    assert_eq!(
        errno(h.fs.removexattr(ALICE, body, "user.content_type")),
        libc::EPERM
    );
}

#[test]
fn scratch_files_keep_their_own_xattrs() {
    let h = Harness::new();
    let ino = h.write_new(ALICE, "draft.txt", b"notes\n");
    h.fs.setxattr(ALICE, ino, "user.tag", b"v1").unwrap();
    assert_eq!(h.getx(ALICE, ino, "user.tag").unwrap(), "v1");
    assert_eq!(h.listx(ALICE, ino), ["user.tag"]);
    h.fs.removexattr(ALICE, ino, "user.tag").unwrap();
    assert_eq!(errno(h.getx(ALICE, ino, "user.tag")), libc::ENODATA);
    assert_eq!(
        errno(h.getx(ALICE, ino, "user.status")),
        libc::ENODATA,
        "no message attributes"
    );
}

#[test]
fn another_namespace_is_enotsup_for_a_user_who_may_not_read_the_message() {
    // audit-17 D6: `ls -l` by another user asks for ACLs and labels: EACCES made it print
    // "Permission denied" for every message not theirs; SPEC §4 says ENOTSUP.
    let h = Harness::new();
    let ino = h.write_new(ALICE, "m.eml", PLAIN);
    for name in ["system.posix_acl_access", "security.selinux"] {
        assert_eq!(errno(h.getx(BOB, ino, name)), libc::ENOTSUP, "{name}");
    }
    assert_eq!(errno(h.getx(BOB, ino, "user.status")), libc::EACCES);
}

/// audit-23 C5: `rsync -a` (no attributes) then `setfattr --restore=DUMP` of a Sent message:
/// the dump's `user.first_try_date` is refused (EPERM) and then its `user.is_ready=1` sent the
/// message a second time. Such a value, refused, now holds back an `is_ready=1` from the same
/// process (setfattr --restore is one process) for a minute; another process is not held back.
#[test]
fn a_dump_restore_of_a_sent_message_does_not_send_it_again() {
    let h = Harness::new();
    let ino = h.write_new(ALICE, "s.eml", PLAIN);
    let restore = 4242;
    assert_eq!(
        errno(h.fs.setxattr_from(
            ALICE,
            restore,
            ino,
            "user.first_try_date",
            b"2026-11-24T12:00:00Z"
        )),
        libc::EPERM
    );
    assert_eq!(
        errno(h.fs.setxattr_from(ALICE, restore, ino, "user.is_ready", b"1")),
        libc::EALREADY
    );
    assert_eq!(h.getx(ALICE, ino, "user.status").unwrap(), "Draft");
    // Someone probing EPERM by hand: each setfattr is another process.
    let other = h.write_new(ALICE, "o.eml", PLAIN);
    assert_eq!(
        errno(h.fs.setxattr_from(ALICE, 5000, other, "user.status", b"Sent")),
        libc::EPERM
    );
    h.fs.setxattr_from(ALICE, 5001, other, "user.is_ready", b"1")
        .unwrap();
    assert_eq!(h.getx(ALICE, other, "user.status").unwrap(), "Pending");
    // The restoring process itself may make ready what it said nothing about.
    let third = h.write_new(ALICE, "t.eml", PLAIN);
    h.fs.setxattr_from(ALICE, restore, third, "user.is_ready", b"1")
        .unwrap();
}

/// audit-23 C2: a Draft without a Message-ID field shows an ID mailfs made up from its name
/// and inode, so its copy on another node shows another, and every `rsync -aX` between the
/// two exited 23 on `user.message_id` (EPERM). Such a Draft takes a well-formed ID restored
/// for it; anything else is still EPERM, and so is any ID for a Draft whose content has one.
#[test]
fn a_draft_without_a_message_id_field_takes_a_restored_one() {
    let h = Harness::new();
    let bare = h.write_new(
        ALICE,
        "bare.eml",
        b"From: a@example.org\nTo: b@example.org\n\nx\n",
    );
    for bad in [
        &b"x"[..],
        b"<@d>",
        b"<a@>",
        b"<<a@d>>",
        b"<a@d@e>",
        b"<a\"b@d>",
        b"<a@d>,<b@d>",
        b"<a..b@d>",
    ] {
        assert_eq!(
            errno(h.fs.setxattr(ALICE, bare, "user.message_id", bad)),
            libc::EPERM,
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    let long = format!("<{}@d.example>", "a".repeat(980));
    assert_eq!(
        errno(h.fs.setxattr(ALICE, bare, "user.message_id", long.as_bytes())),
        libc::EPERM,
        "Message-ID: and the ID past 998 bytes"
    );
    h.fs.setxattr(ALICE, bare, "user.message_id", b"<copy@example.org>")
        .unwrap();
    assert_eq!(
        h.getx(ALICE, bare, "user.message_id").unwrap(),
        "<copy@example.org>"
    );
    let with = h.write_new(
        ALICE,
        "with.eml",
        b"From: a@example.org\nTo: b@example.org\nMessage-ID: <own@example.org>\n\nx\n",
    );
    assert_eq!(
        errno(h.fs.setxattr(ALICE, with, "user.message_id", b"<copy@example.org>")),
        libc::EPERM
    );
    // Made ready, the content carries the ID it took.
    h.make_ready(ALICE, "bare.eml");
    assert!(String::from_utf8_lossy(&h.eml("bare.eml")).contains("Message-ID: <copy@example.org>"));
}
