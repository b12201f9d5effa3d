use super::*;
use crate::model::attrs::Owner;

fn row(name: &str, status: &str, held: bool, age_min: i64, rcpts: &[(&str, &str)]) -> Row {
    Row {
        name: name.into(),
        status: status.into(),
        held,
        owner: None,
        size: 1,
        tries: 0,
        next_try: None,
        age: age_min * 60,
        last_try_status: "None".into(),
        last_reply: String::new(),
        env_from: None,
        recipients: rcpts
            .iter()
            .map(|(a, s)| RcptRow {
                address: a.to_string(),
                status: s.to_string(),
                tries: 0,
                last_reply: String::new(),
            })
            .collect(),
    }
}

/// Audit F4: cancelling a queued message wrote no log entry, so the log's last word on it
/// was "deferred". A queued message's removal is its final outcome (SPEC §8); a Draft is
/// not cancelled at all.
#[test]
fn cancelling_a_queued_message_logs_it_and_a_draft_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    for (name, ready) in [("q.eml", true), ("d.eml", false)] {
        let mut a = MessageAttrs::new_draft();
        if ready {
            a.status = Status::Pending;
            a.is_ready = true;
        }
        a.message_id = format!("<{name}@example.com>");
        a.recipients = vec![crate::model::attrs::Recipient::new("x@example.org".into())];
        std::fs::write(spool.eml_path(name), b"Subject: x\n\nx\n").unwrap();
        spool.write_attrs(name, &a).unwrap();
    }
    let out = cancel(&spool, Scope::All, &["q.eml".into(), "d.eml".into()]).unwrap();
    assert!(out[0].1.is_ok(), "{out:?}");
    // A Draft is not queued: not cancelled, kept (audit-10 J10).
    assert_eq!(out[1].1.as_ref().map_err(Error::exit_code), Err(65), "{out:?}");
    assert_eq!(spool.list_messages().unwrap(), ["d.eml"]);
    let lines: Vec<String> = std::fs::read_dir(spool.default_log_dir())
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].ends_with(" <q.eml@example.com> q.eml cancelled: not sent to x@example.org\n"),
        "{lines:?}"
    );
}

/// A message to a domain in hold_domains waits "as if held" (SPEC §3): `mailfs queue`
/// showed it Pending (0 held) and `mailfs flush` counted it as made due.
#[test]
fn hold_domains_show_as_held_and_flush_leaves_them() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    let mut node = spool.load_node().unwrap();
    node.hold_domains = vec!["held.example".into(), "xn--exmple-cua.net".into()];
    spool.save_node(&node).unwrap();
    // c: an internationalised domain held by its A-labels, written in U-labels and capitals
    // (audit-7: the senders held it, `mailfs queue` showed it Pending).
    for (name, to) in [
        ("a.eml", "x@held.example"),
        ("b.eml", "y@free.example"),
        ("c.eml", "z@EX\u{c4}MPLE.net"),
    ] {
        let mut a = MessageAttrs::new_draft();
        a.status = Status::Pending;
        a.is_ready = true;
        a.recipients = vec![crate::model::attrs::Recipient::new(to.into())];
        std::fs::write(spool.eml_path(name), b"Subject: x\n\nx\n").unwrap();
        spool.write_attrs(name, &a).unwrap();
    }
    let held: Vec<(String, bool)> = rows(&spool, Scope::All)
        .unwrap()
        .into_iter()
        .map(|r| (r.name, r.held))
        .collect();
    assert_eq!(
        held,
        [
            ("a.eml".to_string(), true),
            ("b.eml".to_string(), false),
            ("c.eml".to_string(), true)
        ]
    );
    assert_eq!(flush(&spool, Scope::All, &|_| {}).unwrap(), 1);
}

#[test]
fn scope_follows_the_owner_and_the_node() {
    let mut a = MessageAttrs::new_draft();
    assert!(Scope::of(0, 1000).covers(&a, 1000));
    assert!(
        Scope::of(1000, 1000).covers(&a, 1000),
        "no owner: the node's owner"
    );
    assert!(!Scope::of(65534, 1000).covers(&a, 1000));
    a.owner = Some(Owner {
        uid: 65534,
        gid: 65534,
    });
    assert!(Scope::of(65534, 0).covers(&a, 0));
    assert!(!Scope::of(1001, 0).covers(&a, 0));
    assert_eq!(Scope::of(1000, 1000), Scope::All);
}

#[test]
fn shape_counts_pending_messages_per_open_domain_and_age() {
    let rows = vec![
        row(
            "a.eml",
            "Pending",
            false,
            1,
            &[("x@A.org", "Pending"), ("y@a.org", "TempFail")],
        ),
        row(
            "b.eml",
            "Pending",
            true,
            30,
            &[("x@b.org", "TempFail"), ("z@a.org", "Sent")],
        ),
        row("c.eml", "Pending", false, 5000, &[("x@a.org", "Pending")]),
        row("d.eml", "Sent", false, 1, &[("x@a.org", "Sent")]),
        row("e.eml", "Draft", false, 1, &[]),
    ];
    let s = shape(&rows);
    let names: Vec<&str> = s.iter().map(|d| d.domain.as_str()).collect();
    assert_eq!(names, ["TOTAL", "a.org", "b.org"]);
    assert_eq!((s[0].total, s[0].held), (3, 1));
    // a.eml counts once for a.org although two of its recipients are there.
    assert_eq!(s[1].total, 2);
    assert_eq!(s[1].ages[0], 1, "under 5 minutes");
    assert_eq!(s[1].ages[AGE_BUCKETS.len()], 1, "older than 1280 minutes");
    assert_eq!((s[2].total, s[2].held), (1, 1));
    assert_eq!(s[2].ages[3], 1, "30 minutes: the 40 column");
}

#[test]
fn domains_and_names_are_checked() {
    assert_eq!(checked_domain("@Example.ORG").unwrap(), "example.org");
    for bad in ["", "-x.org", "a b", "a\nb", "a/b"] {
        assert!(checked_domain(bad).is_err(), "{bad:?}");
    }
    assert!(checked_name("a.eml").is_ok());
    for bad in ["../a.eml", ".ready.eml", "a.struct", "a/b.eml"] {
        assert!(checked_name(bad).is_err(), "{bad:?}");
    }
}
