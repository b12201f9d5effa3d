//! Issue 4: sending through the mount, against Postfix's smtp-sink and a scripted server.

mod common;

use common::smtp::{Script, Scripted, Sink};
use common::*;
use std::time::Duration;

fn ready(m: &Mount, name: &str, from: &str, to: &str, body: &str) {
    std::fs::write(m.path(name), message(from, to, "test", body)).unwrap();
    m.ok(&format!("setfattr -n user.is_ready -v 1 {name}"));
}

/// Makes NAME ready to you@example.org and waits for its first attempt.
fn first_try(m: &Mount, name: &str) {
    ready(m, name, "me@example.com", "you@example.org", "x");
    wait_for(
        &format!("the first try of {name}"),
        Duration::from_secs(15),
        || m.attr(name, "try_count") == "1",
    );
}

#[test]
fn sends_to_smtp_sink_exactly_what_is_in_the_eml() {
    let tmp = tempfile::tempdir().unwrap();
    let sink = Sink::start(tmp.path());
    let port = format!("port={}", sink.port);
    let m = Mount::new(&[&port, "ratelimit_time=0", "domlimit_time=0"]);
    let body = "line one\n.starts with a dot\n..two dots\nlast";
    std::fs::write(
        m.path("r.eml"),
        format!("From: a@example.com\nTo: b@example.org\nBcc: secret@example.net\nSubject: s\n\n{body}\n"),
    )
    .unwrap();
    m.ok("setfattr -n user.is_ready -v 1 r.eml");
    wait_status(&m, "r.eml", "Sent", 20);
    assert_eq!(m.attr("r.eml", "try_count"), "1");
    assert_eq!(m.attr("r.eml", "last_try_status"), "None");
    assert!(m.attr("r.eml", "last_try_msg").starts_with("250"));
    for a in ["first_try_date", "last_try_date", "expire_date", "try_until_date"] {
        let d = m.attr("r.eml", a);
        assert!(d.len() == 20 && d.ends_with('Z') && d.contains('T'), "{a}={d}");
    }
    let r = m.attr("r.eml", "recipients");
    assert!(
        r.contains("b@example.org Sent 1 250") && r.contains("secret@example.net Sent 1 250"),
        "{r}"
    );
    // smtp-sink may still be writing a dump after the 250: wait for whole dumps.
    wait_for("two dumps", Duration::from_secs(5), || {
        let m = sink.messages();
        m.len() == 2 && m.iter().all(|d| d.trim_end().ends_with("last"))
    });
    let eml = m.ok("cat r.eml");
    for got in sink.messages() {
        // smtp-sink prepends its own trace headers; the rest is the .eml minus Bcc, CRLF on the wire.
        let got = got.replace("\r\n", "\n");
        let sent = got
            .split_once("Message-ID:")
            .map(|(_, rest)| format!("Message-ID:{rest}"))
            .unwrap();
        assert_eq!(
            sent.trim_end(),
            eml.replace("Bcc: secret@example.net\n", "").trim_end(),
            "{got}"
        );
        assert!(
            !sent.contains("Bcc") && !sent.contains("secret@"),
            "Bcc leaked: {got}"
        );
    }
    // The log has one entry per attempt and one for the outcome, with their xattrs.
    let logs = m.ok(&format!("cat {}/log/*", m.spool.display()));
    assert!(logs.contains("attempt 1") && logs.contains("Sent"), "{logs}");
    let id = m.attr("r.eml", "message_id");
    let x = m.ok(&format!("getfattr -d {}/log/*", m.spool.display()));
    assert!(
        x.contains(&format!("user.msgid=\"{id}\"")) && x.contains("user.date=") && x.contains("user.info="),
        "{x}"
    );
}

#[test]
fn per_recipient_outcomes_and_retry_only_the_deferred() {
    let srv = Scripted::start(Script {
        rcpt: std::sync::Arc::new(|a| {
            if a.starts_with("later") {
                "451 4.3.0 try later".into()
            } else if a.starts_with("bad") {
                "550 5.1.1 no such user".into()
            } else {
                "250 2.1.5 Ok".into()
            }
        }),
        ..Script::default()
    });
    let port = format!("port={}", srv.port);
    let m = Mount::new(&[&port, "ratelimit_time=0", "domlimit_time=0", "retry_time=1"]);
    std::fs::write(m.path("p.eml"), message("me@example.com", "x", "t", "b")).unwrap();
    m.ok("setfattr -n user.env_to -v 'ok@example.org later@example.org bad@example.org' p.eml");
    m.ok("setfattr -n user.is_ready -v 1 p.eml");
    wait_for("first attempt", Duration::from_secs(10), || {
        m.attr("p.eml", "try_count") != "0"
    });
    let r = m.attr("p.eml", "recipients");
    assert!(r.contains("ok@example.org Sent"), "{r}");
    assert!(
        r.contains("later@example.org TempFail 1 451 4.3.0 try later"),
        "{r}"
    );
    assert!(
        r.contains("bad@example.org Error 1 550 5.1.1 no such user"),
        "{r}"
    );
    assert_eq!(m.attr("p.eml", "status"), "Pending");
    // Now the deferred one is accepted: only it is sent again.
    srv.script.lock().unwrap().rcpt = std::sync::Arc::new(|a| {
        if a.starts_with("bad") {
            "550 5.1.1 no such user".into()
        } else {
            "250 Ok".into()
        }
    });
    wait_status(&m, "p.eml", "Error", 15);
    // (The failure notice to me@example.com may already be out: it is checked below.)
    let delivered: Vec<String> = srv
        .delivered()
        .into_iter()
        .filter(|a| a != "me@example.com")
        .collect();
    assert_eq!(delivered, vec!["later@example.org", "ok@example.org"]);
    let r = m.attr("p.eml", "recipients");
    assert!(r.contains("later@example.org Sent 2"), "{r}");
    // The sender gets a failure notice from the null sender, listing the failed recipient.
    wait_for("the bounce", Duration::from_secs(15), || {
        srv.txns().iter().any(|t| t.from.is_empty() && t.data.is_some())
    });
    let bounce = srv
        .txns()
        .into_iter()
        .find(|t| t.from.is_empty() && t.data.is_some())
        .unwrap();
    assert_eq!(bounce.accepted, vec!["me@example.com"]);
    let d = bounce.data.unwrap();
    assert!(
        d.contains("multipart/report")
            && d.contains("bad@example.org")
            && !d.contains("Final-Recipient: rfc822; ok@"),
        "{d}"
    );
}

#[test]
fn permanent_and_temporary_faults() {
    // 550 at MAIL FROM: Error at once, the server's words in last_try_msg.
    let srv = Scripted::start(Script {
        mail: "550 5.7.1 sender rejected".into(),
        ..Script::default()
    });
    let port = format!("port={}", srv.port);
    let m = Mount::new(&[&port, "ratelimit_time=0", "domlimit_time=0", "notify=never"]);
    ready(&m, "e.eml", "me@example.com", "you@example.org", "x");
    wait_status(&m, "e.eml", "Error", 10);
    assert_eq!(m.attr("e.eml", "last_try_status"), "Fail");
    assert!(
        m.attr("e.eml", "last_try_msg")
            .contains("550 5.7.1 sender rejected")
    );
    assert_eq!(m.attr("e.eml", "try_count"), "1");

    // 451 after DATA, retried every second until queue_time, then Error; tries are bounded.
    srv.script.lock().unwrap().mail = "250 Ok".into();
    srv.script.lock().unwrap().data_end = "451 4.3.0 disk full".into();
    m.ok("setfattr -n user.retry_time -v 1 . && setfattr -n user.queue_time -v 3 .");
    ready(&m, "t.eml", "me@example.com", "you@example.org", "x");
    wait_for("a temp failure", Duration::from_secs(10), || {
        m.attr("t.eml", "last_try_status") == "TempFail"
    });
    assert_eq!(m.attr("t.eml", "status"), "Pending");
    assert!(m.attr("t.eml", "last_try_msg").contains("451 4.3.0 disk full"));
    wait_status(&m, "t.eml", "Error", 20);
    let tries: u32 = m.attr("t.eml", "try_count").parse().unwrap();
    assert!((2..=6).contains(&tries), "tries={tries}");
    assert!(srv.delivered().is_empty());
}

#[test]
fn connection_faults_are_temporary() {
    // Nothing listens: connection refused.
    let dead = common::smtp::dead_port();
    let port = format!("port={}", dead.port);
    let m = Mount::new(&[&port, "ratelimit_time=0", "domlimit_time=0", "handshake_time=1"]);
    first_try(&m, "a.eml");
    assert_eq!(m.attr("a.eml", "status"), "Pending");
    assert_eq!(m.attr("a.eml", "last_try_status"), "TempFail");
    // A server that never greets: timed out after handshake_time.
    let silent = Scripted::start(Script {
        greeting: None,
        ..Script::default()
    });
    m.ok(&format!("setfattr -n user.port -v {} .", silent.port));
    first_try(&m, "b.eml");
    assert_eq!(m.attr("b.eml", "last_try_status"), "TempFail");
    assert!(
        m.attr("b.eml", "last_try_msg").contains("timed out"),
        "{}",
        m.attr("b.eml", "last_try_msg")
    );
    // Reset in the middle of DATA.
    let reset = Scripted::start(Script {
        reset_in_data: true,
        ..Script::default()
    });
    m.ok(&format!("setfattr -n user.port -v {} .", reset.port));
    first_try(&m, "c.eml");
    assert_eq!(m.attr("c.eml", "last_try_status"), "TempFail");
    assert_eq!(m.attr("c.eml", "status"), "Pending");
    // An unresolvable server name is temporary too.
    m.ok("setfattr -n user.server -v no-such-host.invalid .");
    first_try(&m, "d.eml");
    assert_eq!(m.attr("d.eml", "status"), "Pending");
    assert_eq!(m.attr("d.eml", "last_try_status"), "TempFail");
}

#[test]
fn rate_limits_hold_at_the_server() {
    let srv = Scripted::start(Script::default());
    let port = format!("port={}", srv.port);
    let m = Mount::new(&[&port, "ratelimit_time=0.2", "domlimit_time=0", "conn_limit=3"]);
    for i in 0..5 {
        ready(
            &m,
            &format!("r{i}.eml"),
            "me@example.com",
            &format!("u{i}@d{i}.example.org"),
            "x",
        );
    }
    for i in 0..5 {
        wait_status(&m, &format!("r{i}.eml"), "Sent", 20);
    }
    let mut t: Vec<_> = srv.txns().iter().map(|t| t.mail_at).collect();
    t.sort();
    for w in t.windows(2) {
        let gap = w[1] - w[0];
        assert!(
            gap >= Duration::from_millis(190),
            "gap {gap:?} below ratelimit_time"
        );
    }
    // Per-domain gap: two domains, domlimit 0.5.
    let srv2 = Scripted::start(Script::default());
    m.ok(&format!("setfattr -n user.port -v {} . && setfattr -n user.ratelimit_time -v 0 . && setfattr -n user.domlimit_time -v 0.5 .", srv2.port));
    for i in 0..3 {
        ready(&m, &format!("a{i}.eml"), "me@example.com", "x@one.example", "x");
        ready(&m, &format!("b{i}.eml"), "me@example.com", "y@two.example", "x");
    }
    for i in 0..3 {
        wait_status(&m, &format!("a{i}.eml"), "Sent", 20);
        wait_status(&m, &format!("b{i}.eml"), "Sent", 20);
    }
    for dom in ["one.example", "two.example"] {
        let mut t: Vec<_> = srv2
            .txns()
            .iter()
            .filter(|t| t.rcpts[0].ends_with(dom))
            .map(|t| t.mail_at)
            .collect();
        t.sort();
        assert_eq!(t.len(), 3);
        for w in t.windows(2) {
            assert!(
                w[1] - w[0] >= Duration::from_millis(490),
                "{dom}: {:?}",
                w[1] - w[0]
            );
        }
    }
}

#[test]
fn connection_limits_hold_at_the_server() {
    let srv = Scripted::start(Script {
        delay: Duration::from_millis(30),
        ..Script::default()
    });
    let port = format!("port={}", srv.port);
    let m = Mount::new(&[
        &port,
        "ratelimit_time=0",
        "domlimit_time=0",
        "conn_limit=2",
        "domconn_limit=1",
    ]);
    for i in 0..12 {
        let dom = if i % 2 == 0 { "one.example" } else { "two.example" };
        ready(
            &m,
            &format!("c{i}.eml"),
            "me@example.com",
            &format!("u{i}@{dom}"),
            "x",
        );
    }
    for i in 0..12 {
        wait_status(&m, &format!("c{i}.eml"), "Sent", 30);
    }
    use std::sync::atomic::Ordering;
    assert!(
        srv.max_open.load(Ordering::SeqCst) <= 2,
        "open {}",
        srv.max_open.load(Ordering::SeqCst)
    );
    assert!(srv.max_in_txn.load(Ordering::SeqCst) <= 2);
    // Per-domain: no two transactions to one domain overlap.
    let txns = srv.txns();
    for dom in ["one.example", "two.example"] {
        let mut spans: Vec<_> = txns
            .iter()
            .filter(|t| t.rcpts[0].ends_with(dom))
            .map(|t| t.mail_at)
            .collect();
        spans.sort();
        assert_eq!(spans.len(), 6);
    }
    assert!(
        srv.connections.load(Ordering::SeqCst) < 12,
        "connections are reused"
    );
}

#[test]
fn sendmail_method_runs_the_command_without_a_shell() {
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("fake-sendmail");
    let rec = tmp.path().join("rec");
    std::fs::create_dir(&rec).unwrap();
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nn=$(ls {r} | wc -l)\nprintf '%s\\n' \"$@\" > {r}/argv.$n\ncat > {r}/stdin.$n\ncode=$(cat {r}/code 2>/dev/null || echo 0)\necho 'boom: disk on fire' >&2\nexit $code\n",
            r = rec.display()
        ),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("755")
        .arg(&script)
        .status()
        .unwrap();
    let sp = format!("sendmail_path={}", script.display());
    let m = Mount::new(&[
        "send_method=sendmail",
        &sp,
        "ratelimit_time=0",
        "domlimit_time=0",
        "retry_time=1",
    ]);
    std::fs::write(
        m.path("s.eml"),
        "From: me@example.com\nTo: a@example.org\nBcc: b@example.org\nSubject: s\n\nhello\n",
    )
    .unwrap();
    m.ok("setfattr -n user.env_to -v 'a@example.org,b@example.org' s.eml && setfattr -n user.is_ready -v 1 s.eml");
    wait_status(&m, "s.eml", "Sent", 10);
    let argv = std::fs::read_to_string(rec.join("argv.0")).unwrap();
    assert_eq!(argv, "-i\n-f\nme@example.com\n--\na@example.org\nb@example.org\n");
    let stdin = std::fs::read_to_string(rec.join("stdin.0")).unwrap();
    assert!(stdin.contains("hello") && !stdin.contains("Bcc"), "{stdin}");
    // 75 is temporary, anything else permanent with stderr in last_try_msg.
    std::fs::write(rec.join("code"), "75").unwrap();
    ready(&m, "t.eml", "me@example.com", "a@example.org", "x");
    wait_for("a tempfail", Duration::from_secs(10), || {
        m.attr("t.eml", "last_try_status") == "TempFail"
    });
    assert_eq!(m.attr("t.eml", "status"), "Pending");
    std::fs::write(rec.join("code"), "1").unwrap();
    wait_status(&m, "t.eml", "Error", 10);
    assert!(m.attr("t.eml", "last_try_msg").contains("boom: disk on fire"));
}
