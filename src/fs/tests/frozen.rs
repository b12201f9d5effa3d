//! `is_ready`: the hand-over to the senders, and a ready message frozen (SPEC §4, §10).

use super::*;

#[test]
fn is_ready_makes_it_pending_and_adds_date_and_message_id() {
    let h = Harness::new();
    let ino = h.write_new(ALICE, "r.eml", PLAIN);
    assert!(!String::from_utf8_lossy(&h.eml("r.eml")).contains("Date:"));
    h.make_ready(ALICE, "r.eml");
    assert_eq!(h.getx(ALICE, ino, "user.status").unwrap(), "Pending");
    assert_eq!(h.getx(ALICE, ino, "user.is_ready").unwrap(), "1");
    let eml = h.eml("r.eml");
    let m = parse(&eml);
    assert!(m.date().is_some(), "Date added at ready");
    let id = h.getx(ALICE, ino, "user.message_id").unwrap();
    assert_eq!(m.message_id().map(|i| format!("<{i}>")), Some(id));
    assert_eq!(m.body_text(0).as_deref(), Some("first line\n"));
    // Stored: the spool says Pending to the senders and to a restart.
    let (stored, _) = h.fs.node.spool.read_attrs("r.eml").unwrap().unwrap();
    assert!(stored.is_ready && stored.frozen());
    // Setting it again changes nothing; setting it back is refused.
    assert_eq!(
        errno(h.fs.setxattr(ALICE, ino, "user.is_ready", b"0")),
        libc::EACCES
    );
}

/// audit-6 F9: a Date or Message-ID field that is there, empty or not understood, gets no
/// second one at is_ready nor a third on the wire (the one rule both steps share); audit-6
/// F1/F5: every To/Cc/Bcc field makes env_to, the last one without a line end too.
#[test]
fn is_ready_and_the_wire_add_no_second_date_or_message_id() {
    let h = Harness::new();
    let msg = b"From: a@example.com\nTo: b@example.org\nTo: t2@example.org\nDate: yesterday\nMessage-ID:\nSubject: s\nBcc: h1@example.net\nBcc: h2@example.net";
    let ino = h.write_new(ALICE, "d.eml", msg);
    assert_eq!(
        h.getx(ALICE, ino, "user.env_to").unwrap(),
        "b@example.org, t2@example.org, h1@example.net, h2@example.net"
    );
    // An empty Message-ID field holds no id: the one mailfs keeps for the message shows.
    let id = h.getx(ALICE, ino, "user.message_id").unwrap();
    assert!(id.starts_with('<') && id.ends_with('>'), "{id}");
    h.make_ready(ALICE, "d.eml");
    assert_eq!(h.eml("d.eml"), msg.to_vec(), "nothing added at is_ready");
    let wire = crate::mail::wire::Wire::open(&h.fs.node.spool.eml_path("d.eml"), &id)
        .unwrap()
        .read_all()
        .unwrap();
    let wire = String::from_utf8(wire).unwrap();
    assert_eq!(
        wire,
        "From: a@example.com\r\nTo: b@example.org\r\nTo: t2@example.org\r\nDate: yesterday\r\nMessage-ID:\r\nSubject: s\r\n"
    );
}

#[test]
fn is_ready_without_a_valid_envelope_is_einval_and_stays_a_draft() {
    let h = Harness::new();
    for (name, bytes) in [
        ("norcpt.eml", &b"From: a@example.com\nSubject: s\n\nbody\n"[..]),
        ("nofrom.eml", b"To: b@example.org\n\nbody\n"),
        ("empty.eml", b""),
    ] {
        let ino = if bytes.is_empty() {
            // tar's mknod: an empty message, bytes still to come.
            h.fs.mknod(ALICE, ROOT, name, libc::S_IFREG | 0o600)
                .unwrap()
                .ino
                .0
        } else {
            h.write_new(ALICE, name, bytes)
        };
        let before = h.eml(name);
        assert_eq!(
            errno(h.fs.setxattr(ALICE, ino, "user.is_ready", b"1")),
            libc::EINVAL,
            "{name}"
        );
        assert_eq!(h.getx(ALICE, ino, "user.status").unwrap(), "Draft", "{name}");
        assert_eq!(h.eml(name), before, "{name}");
        // Still editable.
        h.fs.setxattr(ALICE, ino, "user.note", b"x").unwrap();
    }
    // With the envelope given by attributes it goes.
    let ino = h.ino(ALICE, ROOT, "norcpt.eml").unwrap();
    h.fs.setxattr(ALICE, ino, "user.env_to", b"c@example.net")
        .unwrap();
    h.fs.setxattr(ALICE, ino, "user.is_ready", b"1").unwrap();
    assert_eq!(h.getx(ALICE, ino, "user.status").unwrap(), "Pending");
}

#[test]
fn a_ready_message_is_frozen_eacces_and_unchanged() {
    let h = Harness::new();
    let ino = h.write_new(ALICE, "f.eml", PLAIN);
    h.make_ready(ALICE, "f.eml");
    let eml = h.eml("f.eml");
    let parts = h.parts(ALICE, "f.eml");
    let eacces = |what: &str, r: Result<()>| assert_eq!(errno(r), libc::EACCES, "{what}");
    eacces("open for write", h.fs.open(ALICE, ino, libc::O_WRONLY).map(drop));
    eacces(
        "open O_TRUNC",
        h.fs.open(ALICE, ino, libc::O_WRONLY | libc::O_TRUNC).map(drop),
    );
    eacces(
        "create over",
        h.fs.create(ALICE, ROOT, "f.eml", 0o600, libc::O_WRONLY | libc::O_TRUNC)
            .map(drop),
    );
    eacces(
        "truncate",
        h.fs.setattr(ALICE, ino, None, (None, None), Some(0), None, None)
            .map(drop),
    );
    eacces(
        "chmod",
        h.fs.setattr(ALICE, ino, Some(0o660), (None, None), None, None, None)
            .map(drop),
    );
    eacces(
        "env_to",
        h.fs.setxattr(ALICE, ino, "user.env_to", b"x@example.org"),
    );
    eacces("remove env_to", h.fs.removexattr(ALICE, ino, "user.env_to"));
    eacces("user attr", h.fs.setxattr(ALICE, ino, "user.note", b"x"));
    eacces("header", h.fs.setxattr(ALICE, parts, "user.header.subject", b"x"));
    eacces(
        "part write",
        h.write_part(ALICE, "f.eml", "Body.txt", b"changed\n"),
    );
    eacces("part add", h.write_part(ALICE, "f.eml", "new.txt", b"x"));
    eacces("part unlink", h.fs.unlink(ALICE, parts, "Body.txt"));
    eacces(
        "rename away",
        h.fs.rename(ALICE, (ROOT, "f.eml"), (ROOT, "g.eml"), false),
    );
    h.write_new(ALICE, "other.eml", PLAIN);
    eacces(
        "rename over",
        h.fs.rename(ALICE, (ROOT, "other.eml"), (ROOT, "f.eml"), false),
    );
    assert_eq!(h.eml("f.eml"), eml);
    assert_eq!(h.eml("other.eml"), PLAIN);
    assert_eq!(h.getx(ALICE, ino, "user.status").unwrap(), "Pending");

    // stat shows it read-only; reading still works.
    assert_eq!(h.fs.getattr(ino).unwrap().perm, 0o400);
    assert_eq!(h.fs.getattr(parts).unwrap().perm, 0o500);
    assert_eq!(h.read(ALICE, ino).unwrap(), eml);
    assert_eq!(h.part(ALICE, "f.eml", "Body.txt").unwrap(), b"first line\n");
}

#[test]
fn hold_is_the_owners_also_once_ready() {
    let h = Harness::new();
    let ino = h.write_new(ALICE, "h.eml", PLAIN);
    h.make_ready(ALICE, "h.eml");
    h.fs.setxattr(ALICE, ino, "user.hold", b"1").unwrap();
    assert_eq!(h.getx(ALICE, ino, "user.hold").unwrap(), "1");
    assert!(h.fs.node.spool.read_attrs("h.eml").unwrap().unwrap().0.hold);
    // Another user may neither hold, release nor send it.
    assert_eq!(errno(h.fs.setxattr(BOB, ino, "user.hold", b"0")), libc::EACCES);
    assert_eq!(h.getx(ALICE, ino, "user.hold").unwrap(), "1");
    h.fs.setxattr(ALICE, ino, "user.hold", b"0").unwrap();
    assert_eq!(h.getx(ALICE, ino, "user.hold").unwrap(), "0");
    // A group that shares a Draft may edit it but never send it.
    let d = h.write_new(ALICE, "d.eml", PLAIN);
    h.fs.setattr(ALICE, d, Some(0o660), (None, None), None, None, None)
        .unwrap();
    let carol = Caller {
        uid: 1002,
        gid: ALICE.gid,
        pid: 0,
    };
    h.fs.setxattr(carol, d, "user.env_to", b"x@example.org").unwrap();
    assert_eq!(
        errno(h.fs.setxattr(carol, d, "user.is_ready", b"1")),
        libc::EACCES
    );
    assert_eq!(h.getx(ALICE, d, "user.status").unwrap(), "Draft");
}
