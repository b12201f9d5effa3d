use super::*;
use crate::model::attrs::Status;

pub(crate) fn spool() -> (tempfile::TempDir, Spool) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("spool");
    let spool = Spool::open(&root).unwrap();
    (dir, spool)
}

pub(crate) fn sub(rcpts: &[&str]) -> Submission {
    Submission {
        env_from: None,
        recipients: rcpts.iter().map(|r| r.to_string()).collect(),
        ..Submission::default()
    }
}

pub(crate) fn origin() -> Origin {
    Origin {
        owner: Some(Owner { uid: 1000, gid: 1000 }),
        login: "alice".into(),
    }
}

#[test]
fn a_submission_is_stored_ready_with_the_headers_it_lacked() {
    let (_d, spool) = spool();
    let mut body: &[u8] = b"Subject: hi\n\nbody\n";
    let name = queue_message_as(&spool, &mut body, &sub(&["bob@example.org"]), &origin()).unwrap();
    let (a, _) = spool.read_attrs(&name).unwrap().unwrap();
    assert!(a.is_queued() && a.is_sendable());
    assert_eq!(a.status, Status::Pending);
    assert_eq!(a.env_to.as_deref(), Some(&["bob@example.org".to_string()][..]));
    assert!(a.env_from.as_deref().unwrap().starts_with("alice@"));
    assert_eq!(a.owner, Some(Owner { uid: 1000, gid: 1000 }));
    let eml = std::fs::read_to_string(spool.eml_path(&name)).unwrap();
    assert!(eml.contains("From: alice@"), "{eml}");
    assert!(eml.contains("Date: ") && eml.contains("Message-ID: "), "{eml}");
    assert!(eml.ends_with("\nbody\n"));
    // The senders of another process learn of it by its marker; its id counts as sent.
    assert_eq!(spool.take_ready_markers(), vec![name.clone()]);
    assert!(crate::store::sent_ids::contains(&spool, &a.message_id).unwrap());
}

/// A message that could not be stored (here its attribute file cannot be put in place;
/// on a full disk, its content or attributes cannot be written) was still recorded as
/// sent, so the same message made ready through the mount later was refused (EALREADY)
/// for good. Whichever way it comes, only a stored message is recorded.
#[test]
fn a_message_that_could_not_be_stored_is_not_recorded_as_sent() {
    let (_d, spool) = spool();
    let mut attrs = MessageAttrs::new_draft();
    attrs.status = crate::model::attrs::Status::Pending;
    attrs.is_ready = true;
    for (i, kind) in ["tmp", "grouped", "bytes"].into_iter().enumerate() {
        let name = format!("m{i}.eml");
        attrs.message_id = format!("<unstored-{i}@example.com>");
        std::fs::create_dir(spool.struct_path(&name)).unwrap();
        let tmp = spool.tmp_path();
        std::fs::write(&tmp, b"Subject: x\n\nbody\n").unwrap();
        let body = match kind {
            "tmp" => Body::Tmp(&tmp),
            "grouped" => Body::TmpGrouped(&tmp),
            _ => Body::Bytes(b"Subject: x\n\nbody\n"),
        };
        assert!(enqueue(&spool, None, &name, body, &attrs).is_err(), "{kind}");
        assert!(
            !crate::store::sent_ids::contains(&spool, &attrs.message_id).unwrap(),
            "{kind}: recorded as sent but not stored"
        );
        std::fs::remove_dir(spool.struct_path(&name)).unwrap();
        let tmp = spool.tmp_path();
        std::fs::write(&tmp, b"Subject: x\n\nbody\n").unwrap();
        enqueue(&spool, None, &name, Body::Tmp(&tmp), &attrs).unwrap();
        assert!(
            crate::store::sent_ids::contains(&spool, &attrs.message_id).unwrap(),
            "{kind}"
        );
    }
}

/// cron runs `sendmail -FCronDaemon -i -B8BITMIME -oem root`, mail(1) `sendmail root`: a
/// bare local name was refused (65, "Missing domain"). It is qualified with the host name.
#[test]
fn a_bare_local_recipient_is_qualified_with_the_host_name() {
    let host = crate::model::attrs::hostname();
    let got = recipients(&["root".into(), "www-data,b@example.org".into()]).unwrap();
    assert_eq!(
        got,
        [
            format!("root@{host}"),
            format!("www-data@{host}"),
            "b@example.org".into()
        ]
    );
    for bad in ["-oQ/tmp", "ro ot", "root\nx", "<root>"] {
        assert!(recipients(&[bad.into()]).is_err(), "{bad}");
    }
}

#[test]
fn recipients_from_headers_and_the_null_sender() {
    let (_d, spool) = spool();
    let mut s = sub(&["a@example.org"]);
    s.recipients_from_headers = true;
    s.env_from = Some("<>".into());
    let mut body: &[u8] = b"To: b@example.org, a@example.org\nCc: c@example.org\n\nx\n";
    let name = queue_message_as(&spool, &mut body, &s, &origin()).unwrap();
    let (a, _) = spool.read_attrs(&name).unwrap().unwrap();
    assert_eq!(a.env_from.as_deref(), Some(""));
    let to: Vec<&str> = a.recipients.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(to, ["a@example.org", "b@example.org", "c@example.org"]);
}

/// `sendmail -t`: a bare local name in To (cron's `To: root`) is qualified as an argument
/// is; any other entry that is no address refuses the message (65) rather than being left
/// out while the rest is sent.
#[test]
fn sendmail_t_qualifies_a_local_name_and_refuses_what_is_no_address() {
    let (_d, spool) = spool();
    let host = crate::model::attrs::hostname();
    let mut s = sub(&[]);
    s.recipients_from_headers = true;
    let mut body: &[u8] = b"From: a@example.com\nTo: root, b@example.org\n\nx\n";
    let name = queue_message_as(&spool, &mut body, &s, &origin()).unwrap();
    let (a, _) = spool.read_attrs(&name).unwrap().unwrap();
    let to: Vec<&str> = a.recipients.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(to, ["b@example.org".to_string(), format!("root@{host}")]);
    for bad in [
        "To: b@example.org, John Smith\n",
        "To: b@example.org\nCc: \"Smith, John\"\n",
        "To: b@example.org, x@\n",
    ] {
        let msg = format!("From: a@example.com\n{bad}\nx\n");
        let mut body: &[u8] = msg.as_bytes();
        let e = queue_message_as(&spool, &mut body, &s, &origin()).unwrap_err();
        assert_eq!(e.exit_code(), 65, "{bad}: {e}");
    }
}

/// audit-6 F1/F5/F9 through `sendmail -t`: every To/Cc/Bcc field counts, the last field
/// without a line end too, and a Date/Message-ID field that is there (not understood,
/// empty) gets no second one.
#[test]
fn sendmail_t_reads_every_recipient_field_and_adds_no_second_date() {
    let (_d, spool) = spool();
    let mut s = sub(&[]);
    s.recipients_from_headers = true;
    let msg = b"From: a@example.com\nTo: b@example.org\nTo: t2@example.org\nDate: yesterday\nMessage-ID:\nBcc: h1@example.net\nBcc: h2@example.net\nCc: eof@example.org";
    let mut body: &[u8] = msg;
    let name = queue_message_as(&spool, &mut body, &s, &origin()).unwrap();
    let (a, _) = spool.read_attrs(&name).unwrap().unwrap();
    let to: Vec<&str> = a.recipients.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(
        to,
        [
            "b@example.org",
            "t2@example.org",
            "eof@example.org",
            "h1@example.net",
            "h2@example.net"
        ]
    );
    assert_eq!(std::fs::read(spool.eml_path(&name)).unwrap(), msg.to_vec());
}

#[test]
fn a_refused_submission_leaves_nothing() {
    let (_d, spool) = spool();
    let mut body: &[u8] = b"Subject: nobody to send to\n\nx\n";
    let e = queue_message_as(&spool, &mut body, &sub(&[]), &origin()).unwrap_err();
    assert!(matches!(e, Error::Usage(_)), "{e:?}");
    let mut body: &[u8] = b"\n\nx\n";
    let e = queue_message_as(&spool, &mut body, &sub(&["bad\naddr@x"]), &origin()).unwrap_err();
    assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
    assert!(spool.list_messages().unwrap().is_empty());
    assert!(spool.take_ready_markers().is_empty());
    let tmp_left = std::fs::read_dir(spool.root().join(".tmp"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(tmp_left, 0, "a refused submission leaves no temp file");
}

#[test]
fn enqueue_from_bytes_is_durable_and_handed_over() {
    let (_d, spool) = spool();
    let mut a = MessageAttrs::new_draft();
    a.status = Status::Pending;
    a.is_ready = true;
    a.env_from = Some(String::new());
    a.env_to = Some(vec!["x@example.org".into()]);
    a.recipients = vec![Recipient::new("x@example.org".into())];
    enqueue(
        &spool,
        None,
        "notice-1.eml",
        Body::Bytes(b"Subject: n\r\n\r\nx\r\n"),
        &a,
    )
    .unwrap();
    assert_eq!(
        std::fs::read(spool.eml_path("notice-1.eml")).unwrap(),
        b"Subject: n\r\n\r\nx\r\n"
    );
    let (back, _) = spool.read_attrs("notice-1.eml").unwrap().unwrap();
    assert_eq!(back, a);
    assert_eq!(spool.take_ready_markers(), vec!["notice-1.eml".to_string()]);
    // Not a message name: refused, nothing stored.
    assert!(enqueue(&spool, None, "../x", Body::Bytes(b"x"), &a).is_err());
    assert_eq!(spool.list_messages().unwrap(), vec!["notice-1.eml".to_string()]);
}

#[test]
fn a_delivered_message_is_received_never_queued() {
    let (_d, spool) = spool();
    let tmp = read_to_tmp(&spool, &mut &b"Message-ID: <m1@h>\n\nhello\n"[..], false).unwrap();
    let name = deliver_tmp(
        &spool,
        tmp,
        Some("rcpt@example.org"),
        Some("bad\naddr"),
        &origin(),
    )
    .unwrap();
    let (a, _) = spool.read_attrs(&name).unwrap().unwrap();
    assert_eq!(a.status, Status::Received);
    assert!(!a.is_queued());
    assert_eq!(a.message_id, "<m1@h>");
    assert_eq!(a.env_to.as_deref(), Some(&["rcpt@example.org".to_string()][..]));
    assert_eq!(a.env_from, None, "an invalid $SENDER is dropped");
    assert!(spool.take_ready_markers().is_empty());
}

#[test]
fn a_dot_line_ends_a_message_only_when_asked() {
    let (_d, spool) = spool();
    let t = read_to_tmp(&spool, &mut &b"a\n.\nb\n"[..], true).unwrap();
    assert_eq!(std::fs::read(&t).unwrap(), b"a\n");
    let t = read_to_tmp(&spool, &mut &b"a\n.\nb\n"[..], false).unwrap();
    assert_eq!(std::fs::read(&t).unwrap(), b"a\n.\nb\n");
}
