//! Issue 5: relaying through a real TLS smarthost with SMTP AUTH — a private Postfix on
//! 127.0.0.1 with a self-signed certificate and a sasldb user, relaying to an smtp-sink.

mod common;

use common::postfix::{PASSWORD, Smarthost, USER};
use common::smtp::Sink;
use common::*;
use std::time::Duration;

struct Relay {
    sink: Sink,
    host: Smarthost,
    _tmp: tempfile::TempDir,
    secret: std::path::PathBuf,
}

fn relay() -> Relay {
    relay_with("PLAIN LOGIN")
}

fn relay_with(mechs: &str) -> Relay {
    let tmp = tempfile::tempdir().unwrap();
    let sink = Sink::start(tmp.path());
    let host = Smarthost::start_with_mechs(tmp.path(), sink.port, mechs);
    let secret = tmp.path().join("relay.secret");
    std::fs::write(&secret, format!("{PASSWORD}\n")).unwrap();
    Relay {
        sink,
        host,
        _tmp: tmp,
        secret,
    }
}

fn mount_for(r: &Relay, tls: &str, port: u16, secret: &std::path::Path, ca: bool) -> Mount {
    let mut opts = vec![
        "server=127.0.0.1".to_string(),
        format!("port={port}"),
        format!("tls={tls}"),
        format!("auth_user={USER}"),
        format!("auth_secret_file={}", secret.display()),
        "retry_time=1".into(),
        "ratelimit_time=0".into(),
        "domlimit_time=0".into(),
    ];
    if ca {
        opts.push(format!("ca_file={}", r.host.cert.display()));
    }
    let refs: Vec<&str> = opts.iter().map(String::as_str).collect();
    Mount::new(&refs)
}

fn send(m: &Mount, name: &str, subject: &str) {
    std::fs::write(
        m.path(name),
        message("ops@example.com", "boss@example.org", subject, "report\n"),
    )
    .unwrap();
    m.ok(&format!("setfattr -n user.is_ready -v 1 {name}"));
}

fn wait_delivered(r: &Relay, subject: &str) {
    wait_for(&format!("{subject} at the sink"), Duration::from_secs(30), || {
        r.sink
            .messages()
            .iter()
            .any(|m| m.contains(&format!("Subject: {subject}")))
    });
}

#[test]
fn starttls_and_auth_through_postfix_submission() {
    let r = relay();
    let m = mount_for(&r, "starttls", r.host.submission, &r.secret, true);
    send(&m, "a.eml", "via-starttls");
    wait_status(&m, "a.eml", "Sent", 30);
    wait_delivered(&r, "via-starttls");
    let log = r.host.log();
    assert!(log.contains("TLS connection established from localhost"), "{log}");
    assert!(
        log.contains(&format!("sasl_method=PLAIN, sasl_username={USER}")),
        "{log}"
    );

    // The secret is never readable through the mount, its logs or the spool's files.
    let everything = m.ok(&format!(
        "getfattr -d . a.eml a.eml.parts; cat a.eml; cat {0}/log/* {0}/*.struct {0}/mailfs.node 2>/dev/null | strings",
        m.spool.display()
    ));
    assert!(!everything.contains(PASSWORD), "secret leaked");
    assert!(!m.log().contains(PASSWORD), "secret in the mount's log");
    assert_eq!(m.attr(".", "auth_secret_file"), r.secret.display().to_string());
}

#[test]
fn implicit_tls_and_auth_through_postfix_smtps() {
    let r = relay();
    let m = mount_for(&r, "tls", r.host.smtps, &r.secret, true);
    send(&m, "b.eml", "via-smtps");
    wait_status(&m, "b.eml", "Sent", 30);
    wait_delivered(&r, "via-smtps");
    assert!(r.host.log().contains(&format!("sasl_username={USER}")));
}

/// Issue 11 item 3: with tls=tls and one sender thread, a relay that accepts TCP and never
/// speaks costs handshake_time, then the next relay in `server` (Postfix's smtps) takes the
/// messages within the same attempt.
#[test]
fn a_silent_tls_relay_is_passed_over_for_the_next() {
    let r = relay();
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hole_port = hole.local_addr().unwrap().port();
    let opts = [
        format!("server=127.0.0.1:{hole_port}\\,127.0.0.1:{}", r.host.smtps),
        "tls=tls".to_string(),
        "handshake_time=2".into(),
        "conn_limit=1".into(),
        format!("auth_user={USER}"),
        format!("auth_secret_file={}", r.secret.display()),
        format!("ca_file={}", r.host.cert.display()),
        "ratelimit_time=0".into(),
        "domlimit_time=0".into(),
    ];
    let refs: Vec<&str> = opts.iter().map(String::as_str).collect();
    let m = Mount::new(&refs);
    send(&m, "s1.eml", "past-the-hole-1");
    send(&m, "s2.eml", "past-the-hole-2");
    wait_status(&m, "s1.eml", "Sent", 30);
    wait_status(&m, "s2.eml", "Sent", 30);
    assert_eq!(m.attr("s1.eml", "try_count"), "1");
    wait_delivered(&r, "past-the-hole-2");
    drop(hole);
}

#[test]
fn auth_login_when_the_server_offers_only_login() {
    let r = relay_with("LOGIN");
    let m = mount_for(&r, "starttls", r.host.submission, &r.secret, true);
    send(&m, "l.eml", "via-login");
    wait_status(&m, "l.eml", "Sent", 30);
    wait_delivered(&r, "via-login");
    assert!(
        r.host
            .log()
            .contains(&format!("sasl_method=LOGIN, sasl_username={USER}"))
    );
}

#[test]
fn a_wrong_secret_is_a_permanent_error_with_the_servers_reply() {
    let r = relay();
    let wrong = r.secret.with_file_name("wrong.secret");
    std::fs::write(&wrong, "not the password\n").unwrap();
    let m = mount_for(&r, "starttls", r.host.submission, &wrong, true);
    send(&m, "c.eml", "wrong-secret");
    wait_status(&m, "c.eml", "Error", 30);
    let msg = m.attr("c.eml", "last_try_msg");
    assert!(msg.contains("535"), "{msg}");
    assert!(!msg.contains("not the password"));
    assert!(r.sink.messages().iter().all(|s| !s.contains("wrong-secret")));
}

#[test]
fn an_untrusted_certificate_is_refused_and_retried_not_sent() {
    let r = relay();
    // No ca_file: the self-signed certificate does not chain to the system's roots.
    let m = mount_for(&r, "starttls", r.host.submission, &r.secret, false);
    send(&m, "d.eml", "untrusted");
    wait_for("a failed try", Duration::from_secs(30), || {
        m.attr("d.eml", "try_count") != "0"
    });
    assert_eq!(m.attr("d.eml", "status"), "Pending");
    assert_eq!(m.attr("d.eml", "last_try_status"), "TempFail");
    let msg = m.attr("d.eml", "last_try_msg").to_lowercase();
    assert!(msg.contains("certificate") || msg.contains("tls"), "{msg}");
    let log = r.host.log();
    assert!(
        !log.contains("sasl_username"),
        "authenticated over an unverified channel: {log}"
    );
}

/// Postfix delivering into a mailfs spool: `mailbox_command = mailfs deliver SPOOL`, run by
/// Postfix's local(8) as the recipient. The message lands Received, never sent.
#[test]
fn postfix_delivers_into_the_spool_with_mailbox_command() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = tmp.path().join("inbox");
    // local(8) runs the command as the recipient (nobody): the spool is nobody's own (a spool
    // writable by others is refused, SPEC §9).
    std::fs::create_dir_all(&spool).unwrap();
    let out = std::process::Command::new(BIN)
        .arg("queue")
        .arg(&spool)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        std::process::Command::new("chown")
            .args(["-R", "nobody"])
            .arg(&spool)
            .status()
            .unwrap()
            .success()
    );
    let extra = format!(
        "mydestination = smarthost.test\nalias_maps =\nalias_database =\nlocal_recipient_maps =\n\
         mailbox_command = {BIN} deliver {}\n",
        spool.display()
    );
    let host = Smarthost::start_full(tmp.path(), common::smtp::free_port(), "PLAIN", &extra);
    let msg = "From: alerts@example.com\nTo: nobody@smarthost.test\nSubject: into-the-node\n\nhello node\n";
    let mut p = std::process::Command::new("timeout")
        .args(["30", "/usr/sbin/sendmail", "-C"])
        .arg(&host.conf)
        .args(["-f", "alerts@example.com", "nobody@smarthost.test"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        p.stdin.take().unwrap().write_all(msg.as_bytes()).unwrap();
    }
    assert!(p.wait().unwrap().success());
    let queue = || {
        let o = std::process::Command::new(BIN)
            .args(["queue", "--json"])
            .arg(&spool)
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap_or_default()
    };
    wait_for("Postfix's delivery", Duration::from_secs(30), || {
        queue().as_array().is_some_and(|a| !a.is_empty())
    });
    let q = queue();
    let m = &q.as_array().unwrap()[0];
    assert_eq!(m["status"], "Received", "{q}\n{}", host.log());
    let name = m["name"].as_str().unwrap();
    let content = std::fs::read_to_string(spool.join(name)).unwrap();
    assert!(
        content.contains("Subject: into-the-node") && content.contains("hello node"),
        "{content}"
    );
    // Postfix's own trace: it went through local(8).
    assert!(
        content.contains("Delivered-To: nobody@smarthost.test"),
        "{content}"
    );
    assert!(
        host.log().contains("status=sent (delivered to command:"),
        "{}",
        host.log()
    );
}
