//! Unit tests of the parent module.

use super::*;

#[test]
fn node_defaults_match_spec() {
    let n = NodeAttrs::default();
    let g = |k| n.get(k, "/s").unwrap().unwrap();
    assert_eq!(g("send_method"), "smtp");
    assert_eq!(g("server"), "127.0.0.1");
    assert_eq!(g("port"), "25");
    assert_eq!(g("log_dir"), "/s/log");
    assert_eq!(g("ratelimit_time"), "1");
    assert_eq!(g("domlimit_time"), "5");
    assert_eq!(g("expire_time"), "259200");
    assert_eq!(g("retry_time"), "900");
    assert_eq!(g("queue_time"), "432000");
    assert_eq!(g("handshake_time"), "180");
    assert_eq!(g("conn_limit"), "1");
    assert_eq!(g("domconn_limit"), "1");
    assert_eq!(g("sendmail_path"), "/usr/sbin/sendmail");
    assert_eq!(g("tls"), "may");
    assert_eq!(g("notify"), "failure");
    assert_eq!(g("dns_server"), "system");
    assert_eq!(g("max_retries"), "0");
    assert_eq!(g("delay_warning_time"), "14400");
    assert_eq!(g("hold_domains"), "");
    assert_eq!(g("log_date_attr"), "date");
    assert!(n.get("auth_user", "/s").unwrap().is_none());
}

#[test]
fn node_bad_values_are_einval_and_change_nothing() {
    let mut n = NodeAttrs::default();
    let before = n.clone();
    for (k, v) in [
        ("port", "0"),
        ("port", "65536"),
        ("port", "x"),
        ("send_method", "smtpx"),
        ("ratelimit_time", "-1"),
        ("ratelimit_time", "NaN"),
        ("conn_limit", "0"),
        ("domconn_limit", "1.5"),
        ("server", "a b_c"),
        ("server", ""),
        ("retry_time", "60,x"),
        ("notify", "never,delay"),
        ("dns_server", "ns.example"),
        ("send_method", "smtp,mx"),
        ("server", "evil\r\nhost"),
        ("sendmail_path", "relative/path"),
        ("tls", "ssl"),
        ("handshake_time", "0"),
        ("nosuch", "1"),
        // Audit F8: one name for two of a log entry's attributes lost one of its values.
        ("log_info_attr", "date"),
        ("log_date_attr", "msgid"),
        ("log_msgid_attr", "info"),
    ] {
        let e = n.set(k, v.as_bytes()).unwrap_err();
        assert_eq!(e.errno(), libc::EINVAL, "{k}={v}");
        assert_eq!(n, before);
    }
    assert_eq!(n.set("spool_dir", b"/x").unwrap_err().errno(), libc::EPERM);
    n.set("ratelimit_time", b"0.05").unwrap();
    assert_eq!(n.get("ratelimit_time", "/s").unwrap().unwrap(), "0.05");
    n.set("server", b"relay.example.com").unwrap();
    n.set("port", b"2525").unwrap();
    assert_eq!(n.port, 2525);
}

#[test]
fn addresses_are_validated() {
    assert_eq!(
        validate_address("env_from", "a@example.com").unwrap(),
        "a@example.com"
    );
    assert_eq!(
        validate_address("env_from", "<a@example.com>").unwrap(),
        "a@example.com"
    );
    for bad in [
        "",
        "-oQ/tmp/x@example.com",
        "a@example.com\r\nRCPT TO:<b@x>",
        "a\n@example.com",
        "a\0@example.com",
        "no-at-sign",
        "a b@example.com",
        "a@",
        "@example.com",
    ] {
        assert!(validate_address("env_to", bad).is_err(), "{bad:?}");
    }
    let l = parse_address_list("env_to", b"a@x.org, b@y.org c@z.org\td@x.org").unwrap();
    assert_eq!(l, vec!["a@x.org", "b@y.org", "c@z.org", "d@x.org"]);
    assert!(parse_address_list("env_to", b"a@x.org,\r\nb@y.org").is_err());
    assert!(parse_address_list("env_to", b" , ").is_err());
    assert!(parse_address_list("env_to", b"a@x.org, -f@y.org").is_err());
}

#[test]
fn status_follows_recipients() {
    let mut m = MessageAttrs::new_draft();
    m.recipients = vec![Recipient::new("a@x".into()), Recipient::new("b@y".into())];
    assert_eq!(m.status_from_recipients(), Status::Pending);
    m.recipients[0].status = RcptStatus::Sent;
    m.recipients[1].status = RcptStatus::TempFail;
    assert_eq!(m.status_from_recipients(), Status::Pending);
    m.recipients[1].status = RcptStatus::Sent;
    assert_eq!(m.status_from_recipients(), Status::Sent);
    m.recipients[1].status = RcptStatus::Failed;
    assert_eq!(m.status_from_recipients(), Status::Error);
}

/// audit-17 D4: 200 recipients with ~930-byte replies made `user.recipients` over 64 KiB,
/// which no reader can get (E2BIG).
#[test]
fn the_recipients_attribute_stays_within_an_attributes_size() {
    let mut m = MessageAttrs::new_draft();
    m.recipients = (0..200)
        .map(|i| {
            let mut r = Recipient::new(format!("r{i}@big.example.org"));
            r.last_reply = format!("451 {}", "p".repeat(930));
            r
        })
        .collect();
    let t = m.recipients_text();
    assert!(t.len() <= 65536, "{}", t.len());
    let lines: Vec<&str> = t.lines().collect();
    let shown = lines.len() - 1;
    assert!(shown > 60, "{shown}");
    assert_eq!(lines[shown], format!("... and {} more", 200 - shown));
    m.recipients.truncate(3);
    assert_eq!(m.recipients_text().lines().count(), 3, "short lists are whole");
}

#[test]
fn dates_are_rfc3339_utc() {
    assert_eq!(fmt_date(1_795_435_200), "2026-11-23T12:00:00Z");
}

/// Audit-7 G3: the U-label and A-label spellings of one domain, in any case, are one job.
#[test]
fn a_domain_is_one_key_in_any_case_and_either_spelling() {
    let k = domain_key("b@ex\u{e4}mple.org");
    assert_eq!(k, "xn--exmple-cua.org");
    assert_eq!(domain_key("d@EX\u{c4}MPLE.org"), k);
    assert_eq!(domain_key("c@XN--exmple-cua.org"), k);
    assert_eq!(domain_key("x@Example.ORG"), "example.org");
}
