//! Issue 6: bad input through the mount. Each case is refused with the documented errno or
//! shown safely; the mount keeps serving and nothing already stored is lost.

mod common;

use common::*;

fn alive(m: &Mount, keep: &str, content: &str) {
    assert_eq!(m.ok(&format!("cat {keep}")), content, "a stored message changed");
    m.ok("ls -l > /dev/null && getfattr -d . > /dev/null");
}

#[test]
fn hostile_attribute_values_are_refused_and_change_nothing() {
    let m = Mount::new(&[]);
    let keep = message("a@example.com", "b@example.org", "keep", "kept");
    std::fs::write(m.path("keep.eml"), &keep).unwrap();
    std::fs::write(
        m.path("x.eml"),
        message("a@example.com", "b@example.org", "x", "x"),
    )
    .unwrap();
    m.ok("setfattr -n user.env_to -v good@example.org x.eml");
    let x = m.path("x.eml");
    let before = m.ok("getfattr -d x.eml");
    let bad: Vec<Vec<u8>> = vec![
        b"a@example.org\r\nRCPT TO:<evil@x.test>".to_vec(),
        b"a@example.org\nb@x.test".to_vec(),
        b"a@exa\0mple.org".to_vec(),
        b"-oQ/tmp/evil@example.org".to_vec(),
        b"--help".to_vec(),
        b"\xff\xfe@example.org".to_vec(),
        b"not an address".to_vec(),
        vec![b'a'; 65536],
    ];
    for attr in ["user.env_from", "user.env_to"] {
        for v in &bad {
            let r = setxattr(&x, attr, v);
            assert!(
                r == Err(libc::EINVAL) || r == Err(libc::E2BIG) || r == Err(libc::ERANGE),
                "{attr}={:?}: {r:?}",
                String::from_utf8_lossy(&v[..v.len().min(40)])
            );
        }
    }
    // Header fields of a Draft composed by parts get the same checks.
    let parts = m.path("x.eml.parts");
    for v in &bad[..6] {
        assert_eq!(setxattr(&parts, "user.header.to", v), Err(libc::EINVAL), "{v:?}");
    }
    assert_eq!(
        setxattr(&parts, "user.header.subject", b"a\r\nBcc: evil@x.test"),
        Err(libc::EINVAL)
    );
    assert_eq!(m.ok("getfattr -d x.eml"), before);
    // Node attributes too.
    for (k, v) in [
        ("user.port", &b"70000"[..]),
        ("user.server", b"-x"),
        ("user.sendmail_path", b"\0"),
    ] {
        assert_eq!(setxattr(&m.mnt, k, v), Err(libc::EINVAL), "{k}");
    }
    // User metadata: kept as given when it fits the xattr limit, whatever its bytes.
    let meta: Vec<u8> = (0..60_000u32).map(|i| (i % 251) as u8).collect();
    setxattr(&x, "user.note", &meta).unwrap();
    assert_eq!(getxattr_sized(&x, "user.note", 65536).unwrap(), meta);
    alive(&m, "keep.eml", &keep);
}

#[test]
fn hostile_messages_are_shown_safely() {
    let m = Mount::new(&[]);
    let keep = message("a@example.com", "b@example.org", "keep", "kept");
    std::fs::write(m.path("keep.eml"), &keep).unwrap();

    // 300 levels of nested multipart.
    let mut nested =
        String::from("From: a@example.com\nTo: b@example.org\nSubject: deep\nMIME-Version: 1.0\n");
    for i in 0..300 {
        nested.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{i}\"\n\n--b{i}\n"
        ));
    }
    nested.push_str("Content-Type: text/plain\n\ndeep body\n");
    for i in (0..300).rev() {
        nested.push_str(&format!("--b{i}--\n"));
    }
    std::fs::write(m.path("deep.eml"), &nested).unwrap();
    m.ok("ls -l deep.eml.parts > /dev/null && getfattr -d deep.eml.parts > /dev/null");

    // A 10 MB header field.
    let big = format!(
        "From: a@example.com\nTo: b@example.org\nSubject: {}\n\nbody\n",
        "s".repeat(10 << 20)
    );
    std::fs::write(m.path("bighead.eml"), &big).unwrap();
    let subject = getxattr_sized(&m.path("bighead.eml.parts"), "user.header.subject", 65536).unwrap();
    assert!(subject.len() <= 65536 && subject.iter().all(|&b| b == b's'));
    assert_eq!(m.ok("cat bighead.eml.parts/Body.txt"), "body\n");

    // A 0-byte message: raw.eml, and it cannot be made ready (no recipient).
    m.ok("touch zero.eml && truncate -s 0 zero.eml");
    assert_eq!(m.ok("ls zero.eml.parts"), "raw.eml\n");
    assert!(
        m.fails("setfattr -n user.is_ready -v 1 zero.eml")
            .contains("Invalid argument")
    );
    assert_eq!(m.attr("zero.eml", "status"), "Draft");

    // Binary garbage with NULs and no line ends.
    let garbage: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(m.path("garbage.eml"), &garbage).unwrap();
    m.ok("cmp garbage.eml.parts/raw.eml garbage.eml");
    alive(&m, "keep.eml", &keep);
}

#[test]
fn a_ready_message_cannot_be_written_renamed_or_replaced() {
    let m = Mount::new(&["port=1", "retry_time=3600"]);
    std::fs::write(
        m.path("r.eml"),
        message("a@example.com", "b@example.org", "r", "body"),
    )
    .unwrap();
    m.ok("setfattr -n user.is_ready -v 1 r.eml");
    let content = m.ok("cat r.eml");
    std::fs::write(m.path("other.eml"), "x").unwrap();
    for cmd in [
        "echo x >> r.eml",
        "echo x > r.eml",
        "truncate -s 0 r.eml",
        "mv r.eml s.eml",
        "mv other.eml r.eml",
        "cp other.eml r.eml",
        "touch -d 2001-01-01 r.eml",
        "setfattr -n user.env_to -v c@example.org r.eml",
        "setfattr -n user.note -v x r.eml",
    ] {
        let e = m.fails(cmd);
        assert!(e.contains("Permission denied"), "{cmd}: {e}");
    }
    assert_eq!(m.ok("cat r.eml"), content);
    assert_eq!(m.attr("r.eml", "status"), "Pending");
    // Marked mailfs-only attributes are never writable.
    let e = m.fails("setfattr -n user.status -v Sent r.eml");
    assert!(
        e.contains("Operation not permitted") || e.contains("Permission denied"),
        "{e}"
    );
}

/// A Draft whose To/Cc/Bcc mix good addresses with something that is no address: with the
/// default env_to, is_ready=1 is refused (EINVAL, still a Draft, the reason in the log) rather
/// than the mail for the bad entry being left out without a word; env_to set says who.
#[test]
fn is_ready_refuses_a_default_recipient_list_that_would_leave_an_entry_out() {
    let m = Mount::new(&[]);
    std::fs::write(
        m.path("mix.eml"),
        "From: a@example.com\nTo: good@example.org, John Smith\nSubject: s\n\nbody\n",
    )
    .unwrap();
    let x = m.path("mix.eml");
    assert_eq!(setxattr(&x, "user.is_ready", b"1"), Err(libc::EINVAL));
    assert_eq!(m.ok("getfattr --only-values -n user.status mix.eml"), "Draft");
    m.ok("setfattr -n user.env_to -v good@example.org mix.eml");
    assert_eq!(setxattr(&x, "user.is_ready", b"1"), Ok(()));
    assert_eq!(m.ok("getfattr --only-values -n user.status mix.eml"), "Pending");
}

/// audit-10 J11: a message whose attribute file is damaged stays listed (mount and `mailfs
/// queue`), its content readable, frozen as Error with the reason, and removable; before, it
/// vanished from both while its bytes sat in the spool.
#[test]
fn a_message_with_a_damaged_attribute_file_stays_visible_and_frozen() {
    let m = Mount::new(&[]);
    let body = message("a@example.com", "b@example.org", "damaged", "still here");
    std::fs::write(m.spool.join("bad.eml"), &body).unwrap();
    std::fs::write(m.spool.join("bad.struct"), b"junk\n").unwrap();
    assert!(m.ok("ls").lines().any(|l| l == "bad.eml"), "listed");
    assert_eq!(m.ok("cat bad.eml"), body);
    assert_eq!(m.attr("bad.eml", "status"), "Error");
    assert_eq!(m.attr("bad.eml", "is_ready"), "1");
    assert!(
        m.attr("bad.eml", "last_try_msg")
            .contains("attribute file cannot be read")
    );
    // Not made ready again (it may have gone out), not edited: the damaged file stays as it was.
    assert_eq!(
        setxattr(&m.path("bad.eml"), "user.is_ready", b"1"),
        Err(libc::EACCES)
    );
    assert_eq!(std::fs::read(m.spool.join("bad.struct")).unwrap(), b"junk\n");
    let q = std::process::Command::new(BIN)
        .args(["queue"])
        .arg(&m.spool)
        .output()
        .unwrap();
    let q = String::from_utf8_lossy(&q.stdout);
    assert!(
        q.lines().any(|l| l.starts_with("bad.eml") && l.contains("Error")),
        "{q}"
    );
    m.ok("rm bad.eml");
    assert!(!m.spool.join("bad.eml").exists() && !m.spool.join("bad.struct").exists());
}
