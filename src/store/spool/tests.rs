//! Unit tests of the parent module.

use super::*;

#[test]
fn attrs_round_trip_and_corruption_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    let mut a = MessageAttrs::new_draft();
    a.env_from = Some("a@x.org".into());
    a.user.insert("k".into(), b"v".to_vec());
    spool.write_attrs("m.eml", &a).unwrap();
    let (b, _) = spool.read_attrs("m.eml").unwrap().unwrap();
    assert_eq!(a, b);
    std::fs::write(spool.struct_path("m.eml"), b"garbage").unwrap();
    assert!(matches!(spool.read_attrs("m.eml"), Err(Error::Corrupt { .. })));
    assert!(spool.read_attrs("none.eml").unwrap().is_none());
}

/// audit-13: one flipped byte in a length field made bincode allocate what it claimed (exabytes)
/// and every process that read the file aborted. Every byte of a stored file, set to values
/// that make huge lengths, decodes or is Corrupt.
#[test]
fn any_damaged_byte_of_an_attribute_file_is_corrupt_or_decodes_never_aborts() {
    let mut a = MessageAttrs::new_draft();
    a.env_from = Some("a@x.org".into());
    a.env_to = Some(vec!["b@y.org".into(), "c@z.org".into()]);
    a.last_try_msg = "250 2.0.0 ok".into();
    a.recipients = vec![crate::model::attrs::Recipient::new("b@y.org".into())];
    a.user.insert("k".into(), b"v".to_vec());
    let good = Spool::encode(&a).unwrap();
    let path = Path::new("m.struct");
    assert_eq!(Spool::decode_attrs(path, &good).unwrap(), a);
    for i in 0..good.len() {
        for b in [0xfd, 0xfe, 0xff, 0x80, 0x00] {
            let mut bad = good.clone();
            bad[i] = b;
            match Spool::decode_attrs(path, &bad) {
                Ok(_) | Err(Error::Corrupt { .. }) => {}
                Err(e) => panic!("byte {i} = {b:#x}: {e}"),
            }
        }
    }
}

/// A stored node file that cannot be read is a configuration error (SPEC §1: 78, as README
/// says), not bad data (65, what `mailfs mount` exited with).
#[test]
fn an_unreadable_node_file_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    std::fs::write(dir.path().join(NODE_FILE), b"garbage").unwrap();
    let e = spool.load_node().unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e:?}");
    assert_eq!(e.exit_code(), 78);
}

#[test]
fn node_defaults_when_missing() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    assert_eq!(spool.load_node().unwrap(), NodeAttrs::default());
    let n = NodeAttrs {
        port: 2525,
        ..NodeAttrs::default()
    };
    spool.save_node(&n).unwrap();
    assert_eq!(spool.load_node().unwrap().port, 2525);
}

/// A spool written by the first release (format 1) is read, not refused as corrupt.
#[test]
fn format_1_files_are_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    let v1 = |body: Vec<u8>| {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&body);
        out
    };
    let old = MessageAttrsV1 {
        message_id: "<a@b>".into(),
        env_from: Some("a@x.org".into()),
        env_to: None,
        status: crate::model::attrs::Status::Draft,
        is_ready: false,
        first_try_date: None,
        last_try_date: None,
        try_until_date: None,
        expire_date: None,
        next_try_date: None,
        try_count: 0,
        last_try_status: crate::model::attrs::TryStatus::None,
        last_try_msg: String::new(),
        recipients: vec![],
        user: Default::default(),
    };
    let body = bincode::serde::encode_to_vec(&old, bincode::config::standard()).unwrap();
    std::fs::write(spool.struct_path("m.eml"), v1(body)).unwrap();
    let (a, _) = spool.read_attrs("m.eml").unwrap().unwrap();
    assert_eq!(a.env_from.as_deref(), Some("a@x.org"));
    assert_eq!(a.owner, None);

    #[derive(serde::Serialize)]
    struct OldNode<'a>(
        crate::model::attrs::SendMethod,
        &'a str,
        u16,
        Option<&'a str>,
        &'a str,
        &'a str,
        &'a str,
        f64,
        f64,
        f64,
        f64,
        f64,
        f64,
        u32,
        u32,
        &'a str,
        Option<&'a str>,
        crate::model::attrs::TlsMode,
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
        crate::model::attrs::Notify,
    );
    let node = OldNode(
        crate::model::attrs::SendMethod::Smtp,
        "relay.test",
        2525,
        None,
        "date",
        "msgid",
        "info",
        0.5,
        5.0,
        259200.0,
        900.0,
        432000.0,
        180.0,
        3,
        1,
        "/usr/sbin/sendmail",
        None,
        crate::model::attrs::TlsMode::Starttls,
        None,
        None,
        None,
        crate::model::attrs::Notify::Failure,
    );
    let body = bincode::serde::encode_to_vec(&node, bincode::config::standard()).unwrap();
    std::fs::write(dir.path().join(NODE_FILE), v1(body)).unwrap();
    let n = spool.load_node().unwrap();
    assert_eq!((n.server.as_str(), n.port, n.conn_limit), ("relay.test", 2525, 3));
    assert_eq!(n.ratelimit_time, 0.5);
}

#[test]
fn node_file_keeps_only_what_differs() {
    let n = NodeAttrs {
        port: 2525,
        ..NodeAttrs::default()
    };
    assert_eq!(n.to_stored(), vec![("port".to_string(), "2525".to_string())]);
    assert_eq!(NodeAttrs::from_stored(&n.to_stored()), n);
    // A name a newer version wrote is skipped, not fatal.
    let odd = vec![("no_such".to_string(), "1".to_string())];
    assert_eq!(NodeAttrs::from_stored(&odd), NodeAttrs::default());
}

#[test]
fn lock_is_exclusive() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    std::fs::write(spool.eml_path("a.eml"), b"x").unwrap();
    let l = spool.try_lock("a.eml").unwrap();
    assert!(l.is_some());
    assert!(spool.try_lock("a.eml").unwrap().is_none());
    drop(l);
    assert!(spool.try_lock("a.eml").unwrap().is_some());
}

#[test]
fn fresh_stamps_are_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f");
    std::fs::write(&p, b"x").unwrap();
    let s = Stamp::of(&std::fs::metadata(&p).unwrap());
    assert!(!s.is_settled());
    let old = Stamp {
        mtime_ns: s.mtime_ns - 3_000_000_000,
        ..s
    };
    assert!(old.is_settled());
}

#[test]
fn names() {
    assert!(is_message_name("a.eml"));
    assert!(!is_message_name(".eml"));
    assert!(!is_message_name("a.txt"));
    assert!(!is_message_name(&format!("{}.eml", "x".repeat(250))));
}

#[test]
fn a_message_or_its_attribute_file_names_the_message() {
    assert_eq!(message_of_entry("a.eml").as_deref(), Some("a.eml"));
    assert_eq!(message_of_entry("a.struct").as_deref(), Some("a.eml"));
    assert_eq!(message_of_entry("a.txt"), None);
    assert_eq!(message_of_entry(".tmp"), None);
}

#[test]
fn an_attribute_file_recycled_while_being_read_is_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    let mut a = MessageAttrs::new_draft();
    a.last_try_msg = "first".into();
    spool.write_attrs_grouped("m.eml", &a).unwrap();
    let path = spool.struct_path("m.eml");
    let mut once = true;
    let got = Spool::read_attrs_at(&path, || {
        if !std::mem::take(&mut once) {
            return;
        }
        // Between the reader's open and its read: the version it opened is replaced and its
        // inode recycled with bytes that decode as attributes too.
        let mut now = a.clone();
        now.last_try_msg = "current".into();
        spool.write_attrs_grouped("m.eml", &now).unwrap();
        let mut other = a.clone();
        other.last_try_msg = "recycled".into();
        let (_spare, _f) = spool
            .reuse_spare(&Spool::encode(&other).unwrap(), super::Want::Sized)
            .unwrap();
    })
    .unwrap()
    .unwrap();
    assert_eq!(got.0.last_try_msg, "current");
}

/// audit-12 M1: a holder of the spool's attribute lock that never lets go (a stopped `mailfs
/// hold`) makes a change give up after a bounded wait (EBUSY), not wait for ever.
#[test]
fn the_attribute_lock_is_waited_for_a_bounded_time() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    let held = spool.attrs_lock().unwrap();
    let t0 = std::time::Instant::now();
    let e = spool.attrs_lock().unwrap_err();
    assert_eq!(e.errno(), libc::EBUSY, "{e}");
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(6),
        "{:?}",
        t0.elapsed()
    );
    drop(held);
    spool.attrs_lock().unwrap();
}
