//! Issue 11 (sender items) and issue 14 (relays, retries, notices, hold_domains): the SMTP
//! client against scripted peers that misbehave on purpose, and a spool on a small tmpfs.

mod common;

use common::smtp::{Script, Scripted};
use common::*;
use mail_parser::MimeHeaders;
use std::net::TcpListener;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn fast(port: u16) -> Vec<String> {
    vec![
        format!("port={port}"),
        "ratelimit_time=0".into(),
        "domlimit_time=0".into(),
        "retry_time=1".into(),
        "notify=never".into(),
    ]
}

fn mount(opts: &[String]) -> Mount {
    let refs: Vec<&str> = opts.iter().map(String::as_str).collect();
    Mount::new(&refs)
}

fn ready(m: &Mount, name: &str, content: &str) {
    std::fs::write(m.path(name), content).unwrap();
    m.ok(&format!("setfattr -n user.is_ready -v 1 {name}"));
}

fn wait_tries(m: &Mount, name: &str, n: u32, secs: u64) {
    wait_for(
        &format!("{name} tried {n} times"),
        Duration::from_secs(secs),
        || m.attr(name, "try_count").parse::<u32>().unwrap_or(0) >= n,
    );
}

/// Item 10: the data on the wire is the .eml as it is (CRLF, dot-stuffed): after content that
/// ends in a line end comes `.` CRLF alone, never an extra empty line.
#[test]
fn the_wire_carries_the_eml_exactly() {
    let srv = Scripted::start(Script::default());
    let m = mount(&fast(srv.port));
    let with_end = "From: a@example.com\nTo: b@example.org\nSubject: e\n\nline\n.dot line\n\nlast\n";
    let without_end = "From: a@example.com\nTo: c@example.org\nSubject: n\n\nno line end";
    ready(&m, "e.eml", with_end);
    ready(&m, "n.eml", without_end);
    wait_status(&m, "e.eml", "Sent", 20);
    wait_status(&m, "n.eml", "Sent", 20);
    let crlf = |s: &str| s.replace('\n', "\r\n");
    let e = crlf(&m.ok("cat e.eml"));
    let n = crlf(&m.ok("cat n.eml"));
    let data: Vec<String> = srv.txns().into_iter().filter_map(|t| t.data).collect();
    assert!(data.contains(&e), "sent {data:?}\nwant {e:?}");
    // Without a final line end, the end mark needs one: that CRLF is the only byte added.
    assert!(data.contains(&format!("{n}\r\n")), "sent {data:?}");
}

/// Item 11: a server that refuses EHLO is greeted with HELO (RFC 5321 §4.1.1.1).
#[test]
fn ehlo_refused_falls_back_to_helo() {
    let srv = Scripted::start(Script {
        ehlo: "502 5.5.2 EHLO not understood".into(),
        ..Script::default()
    });
    let m = mount(&fast(srv.port));
    ready(
        &m,
        "h.eml",
        &message("a@example.com", "b@example.org", "helo", "x"),
    );
    wait_status(&m, "h.eml", "Sent", 20);
    let hellos = srv.hellos.lock().unwrap().clone();
    assert!(hellos.len() >= 2, "{hellos:?}");
    assert!(
        hellos[0].starts_with("EHLO ") && hellos[1].starts_with("HELO "),
        "{hellos:?}"
    );
    // Without EHLO there is no PIPELINING: one command per round trip.
    assert_eq!(srv.pipelined.load(Ordering::SeqCst), 0);
}

/// Item 12: a reply with bytes that are not UTF-8 is read leniently.
#[test]
fn replies_that_are_not_utf8_are_read() {
    let srv = Scripted::start(Script {
        mail_raw: Some(b"250 2.1.0 ok \xff\xfe sender\r\n".to_vec()),
        ..Script::default()
    });
    let m = mount(&fast(srv.port));
    ready(
        &m,
        "u.eml",
        &message("a@example.com", "b@example.org", "utf8", "x"),
    );
    wait_status(&m, "u.eml", "Sent", 20);
    assert_eq!(srv.delivered(), vec!["b@example.org".to_string()]);
}

/// Item 9: an endless reply line is a temporary failure found at the reply's bound (its text
/// is cut at the line bound as it comes), long before handshake_time, with the daemon's memory
/// bounded.
#[test]
fn an_endless_reply_line_is_a_bounded_temporary_failure() {
    let srv = Scripted::start(Script {
        endless_greeting: true,
        ..Script::default()
    });
    let mut o = fast(srv.port);
    o.push("handshake_time=120".into());
    let m = mount(&o);
    ready(
        &m,
        "x.eml",
        &message("a@example.com", "b@example.org", "endless", "x"),
    );
    let t = Instant::now();
    wait_tries(&m, "x.eml", 1, 20);
    assert!(t.elapsed() < Duration::from_secs(20));
    assert_eq!(m.attr("x.eml", "last_try_status"), "TempFail");
    let msg = m.attr("x.eml", "last_try_msg");
    assert!(msg.contains("sent a reply over 1048576 bytes"), "{msg}");
    // Let it retry a few times against the endless peer, then look at the peak memory.
    wait_tries(&m, "x.eml", 3, 20);
    let status = std::fs::read_to_string(format!("/proc/{}/status", m.pid().unwrap())).unwrap();
    let hwm_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(hwm_kb < 100 * 1024, "peak RSS {hwm_kb} kB");
}

/// PIPELINING (RFC 2920): when offered, MAIL, RCPT and DATA go in one write.
#[test]
fn pipelining_when_offered() {
    let srv = Scripted::start(Script::default());
    let m = mount(&fast(srv.port));
    std::fs::write(m.path("p.eml"), message("a@example.com", "x", "pipe", "x")).unwrap();
    m.ok("setfattr -n user.env_to -v 'b@example.org c@example.org' p.eml");
    m.ok("setfattr -n user.is_ready -v 1 p.eml");
    wait_status(&m, "p.eml", "Sent", 20);
    assert!(srv.pipelined.load(Ordering::SeqCst) >= 1);
    assert_eq!(
        srv.delivered(),
        vec!["b@example.org".to_string(), "c@example.org".to_string()]
    );
}

/// Item 3: with tls=tls, a relay that accepts TCP and never speaks costs handshake_time per
/// attempt, not forever: the one sender thread (conn_limit=1) goes on to other messages.
#[test]
fn a_relay_that_never_speaks_tls_does_not_block_the_sender() {
    // Bound and listening, never accepted: the kernel completes the TCP handshake, and then
    // nothing ever answers the TLS ClientHello.
    let hole = TcpListener::bind("127.0.0.1:0").unwrap();
    let hole_port = hole.local_addr().unwrap().port();
    let mut o = fast(hole_port);
    o.extend([
        "tls=tls".to_string(),
        "handshake_time=2".into(),
        "conn_limit=1".into(),
    ]);
    let m = mount(&o);
    ready(&m, "a.eml", &message("a@example.com", "b@example.org", "a", "x"));
    ready(&m, "b.eml", &message("a@example.com", "c@example.net", "b", "x"));
    let t = Instant::now();
    wait_tries(&m, "a.eml", 1, 15);
    wait_tries(&m, "b.eml", 1, 15);
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    let msg = m.attr("a.eml", "last_try_msg");
    assert!(msg.contains("TLS handshake"), "{msg}");
    assert_eq!(m.attr("a.eml", "last_try_status"), "TempFail");
    // Same with a plain relay that never greets: bounded by handshake_time.
    let srv = Scripted::start(Script {
        greeting: None,
        ..Script::default()
    });
    m.ok(&format!(
        "setfattr -n user.tls -v none . && setfattr -n user.port -v {} .",
        srv.port
    ));
    ready(&m, "c.eml", &message("a@example.com", "d@example.com", "c", "x"));
    wait_tries(&m, "c.eml", 1, 15);
    assert!(m.attr("c.eml", "last_try_msg").contains("greeting"));
    drop(hole);
}

/// Relays in order within one attempt (SPEC §6): refused, then a 421 greeting, then a
/// relay that takes the message.
#[test]
fn relays_fail_over_within_one_attempt() {
    let busy = Scripted::start(Script {
        greeting: Some("421 4.3.2 busy".into()),
        ..Script::default()
    });
    let good = Scripted::start(Script::default());
    let refused_guard = common::smtp::dead_port();
    let refused = refused_guard.port;
    let mut o = fast(good.port);
    // A list inside -o: `\,` between entries, as libfuse reads options.
    o.push(format!(
        "server=127.0.0.1:{refused}\\,127.0.0.1:{}\\,127.0.0.1",
        busy.port
    ));
    let m = mount(&o);
    assert_eq!(
        m.ok("getfattr --only-values -n user.server ."),
        format!("127.0.0.1:{refused},127.0.0.1:{},127.0.0.1", busy.port)
    );
    ready(
        &m,
        "f.eml",
        &message("a@example.com", "b@example.org", "failover", "x"),
    );
    wait_status(&m, "f.eml", "Sent", 20);
    assert_eq!(m.attr("f.eml", "try_count"), "1");
    assert_eq!(busy.connections.load(Ordering::SeqCst), 1);
    assert_eq!(good.delivered(), vec!["b@example.org".to_string()]);
    // Every relay failing: TempFail with the last one's words.
    m.ok(&format!(
        "setfattr -n user.server -v '127.0.0.1:{refused} 127.0.0.1:{}' .",
        busy.port
    ));
    ready(
        &m,
        "g.eml",
        &message("a@example.com", "b@example.org", "down", "x"),
    );
    wait_tries(&m, "g.eml", 1, 15);
    assert_eq!(m.attr("g.eml", "last_try_status"), "TempFail");
    assert!(m.attr("g.eml", "last_try_msg").contains("421"));
}

/// A tmpfs the test mounts for the spool, unmounted on drop (after the mailfs mount).
struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("timeout")
            .args(["10", "umount", "-l"])
            .arg(&self.0)
            .status();
    }
}

/// Item 6: when outcomes cannot be recorded (the spool's disk is full), no new transaction
/// starts until they can; once space is back every message is delivered exactly once.
#[test]
fn a_full_spool_disk_stops_transactions_and_sends_nothing_twice() {
    let srv = Scripted::start(Script {
        // Slow enough that the disk fills while messages are still queued.
        delay: Duration::from_millis(30),
        ..Script::default()
    });
    let mut m = mount(&fast(srv.port));
    m.stop();
    let spool = m.spool.clone();
    std::fs::remove_dir_all(&spool).unwrap();
    std::fs::create_dir_all(&spool).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs"])
        .arg(&spool)
        .status()
        .unwrap();
    assert!(st.success());
    let _fs = Tmpfs(spool.clone());
    m.opts.push("conn_limit=2".into());
    m.start();
    let n = 30;
    for i in 0..n {
        std::fs::write(
            m.path(&format!("m{i}.eml")),
            message("a@example.com", &format!("r{i}@example.org"), "full", "x"),
        )
        .unwrap();
    }
    m.ok("for f in m*.eml; do setfattr -n user.is_ready -v 1 $f; done");
    wait_for("a first delivery", Duration::from_secs(20), || {
        !srv.delivered().is_empty()
    });
    // Fill the disk.
    let _ = Command::new("timeout")
        .args(["20", "dd", "if=/dev/zero", "bs=64k"])
        .arg(format!("of={}/fill", spool.display()))
        .output();
    let at_full = srv.delivered().len();
    std::thread::sleep(Duration::from_secs(3));
    let while_full = srv.delivered().len();
    // At most one transaction per connection may finish after the disk filled.
    assert!(
        while_full <= at_full + 2,
        "{at_full} delivered when the disk filled, {while_full} three seconds later"
    );
    assert!(
        while_full < n,
        "everything went out before the disk filled: test too slow"
    );
    std::fs::remove_file(spool.join("fill")).unwrap();
    wait_for("every message delivered", Duration::from_secs(60), || {
        srv.delivered().len() >= n
    });
    std::thread::sleep(Duration::from_secs(2));
    let got = srv.delivered();
    let mut uniq = got.clone();
    uniq.dedup();
    assert_eq!(got.len(), n, "duplicates: {got:?}");
    assert_eq!(uniq.len(), n);
    for i in 0..n {
        wait_status(&m, &format!("m{i}.eml"), "Sent", 20);
    }
    let log = m.log();
    assert!(
        log.contains("no new transaction starts until it is written"),
        "the disk never filled: {log}"
    );
    m.stop();
}

/// hold_domains: messages to a held domain wait (not attempted) while others go; taking the
/// domain off the list makes them due at once.
#[test]
fn hold_domains_wait_and_go_at_once_when_released() {
    let srv = Scripted::start(Script::default());
    let mut o = fast(srv.port);
    o.push("hold_domains=held.example".into());
    o.push("retry_time=3600".into());
    let m = mount(&o);
    ready(
        &m,
        "h.eml",
        &message("a@example.com", "x@held.example", "held", "x"),
    );
    ready(
        &m,
        "o.eml",
        &message("a@example.com", "y@other.example", "other", "x"),
    );
    wait_status(&m, "o.eml", "Sent", 20);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(m.attr("h.eml", "try_count"), "0");
    assert_eq!(m.attr("h.eml", "status"), "Pending");
    let t = Instant::now();
    m.ok("setfattr -n user.hold_domains -v '' .");
    wait_status(&m, "h.eml", "Sent", 10);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

/// retry_time as a schedule (the last entry repeating), measured at the peer, and
/// max_retries ending it.
#[test]
fn retry_schedule_measured_at_the_peer_and_max_retries() {
    let srv = Scripted::start(Script {
        rcpt: Arc::new(|_| "451 4.7.1 greylisted".into()),
        ..Script::default()
    });
    let mut o = fast(srv.port);
    o.push("retry_time=1\\,2.5".into());
    o.push("max_retries=3".into());
    let m = mount(&o);
    ready(
        &m,
        "r.eml",
        &message("a@example.com", "b@example.org", "sched", "x"),
    );
    wait_status(&m, "r.eml", "Error", 30);
    assert_eq!(m.attr("r.eml", "try_count"), "4");
    assert!(m.attr("r.eml", "last_try_msg").contains("max_retries"));
    let at: Vec<Instant> = srv.txns().iter().map(|t| t.mail_at).collect();
    assert_eq!(at.len(), 4, "attempts seen at the peer");
    let want = [1.0, 2.5, 2.5];
    for (i, w) in want.iter().enumerate() {
        let gap = (at[i + 1] - at[i]).as_secs_f64();
        assert!((gap - w).abs() <= w * 0.1, "gap {i}: {gap:.3} s, want {w} s ±10%");
    }
}

/// notify=delay,success: one delay notice once delay_warning_time has passed, and a success
/// notice on delivery; both RFC 3464 multipart/report from the null sender.
#[test]
fn delay_and_success_notices_are_multipart_reports() {
    let tries = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t = tries.clone();
    let srv = Scripted::start(Script {
        rcpt: Arc::new(move |a| {
            if a == "b@example.org" && t.fetch_add(1, Ordering::SeqCst) < 3 {
                "451 4.7.1 greylisted".into()
            } else {
                "250 2.1.5 Ok".into()
            }
        }),
        ..Script::default()
    });
    let mut o = fast(srv.port);
    o.push("notify=delay\\,success".into());
    o.push("delay_warning_time=1".into());
    let m = mount(&o);
    ready(
        &m,
        "d.eml",
        &message("me@example.com", "b@example.org", "late", "x"),
    );
    wait_status(&m, "d.eml", "Sent", 30);
    assert_eq!(m.attr("d.eml", "try_count"), "4");
    wait_for("two notices", Duration::from_secs(20), || {
        srv.txns()
            .iter()
            .filter(|t| t.from.is_empty() && t.data.is_some())
            .count()
            >= 2
    });
    std::thread::sleep(Duration::from_millis(500));
    let notices: Vec<common::smtp::Txn> = srv
        .txns()
        .into_iter()
        .filter(|t| t.from.is_empty() && t.data.is_some())
        .collect();
    assert_eq!(notices.len(), 2, "one delay notice, one success notice");
    let mut actions = Vec::new();
    for n in &notices {
        assert_eq!(n.accepted, vec!["me@example.com".to_string()]);
        let data = n.data.clone().unwrap();
        let msg = mail_parser::MessageParser::default()
            .parse(data.as_bytes())
            .expect("a parsable notice");
        let ct = msg.content_type().expect("a Content-Type");
        assert_eq!(
            (ct.ctype(), ct.subtype()),
            ("multipart", Some("report")),
            "{data}"
        );
        assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
        let status = msg
            .parts
            .iter()
            .find(|p| {
                p.content_type()
                    .is_some_and(|c| c.ctype() == "message" && c.subtype() == Some("delivery-status"))
            })
            .expect("a message/delivery-status part");
        let text = String::from_utf8_lossy(status.contents()).into_owned();
        assert!(text.contains("Final-Recipient: rfc822; b@example.org"), "{text}");
        actions.push(
            text.lines()
                .find(|l| l.starts_with("Action:"))
                .unwrap_or_default()
                .to_string(),
        );
    }
    actions.sort();
    assert_eq!(actions, vec!["Action: delayed", "Action: relayed"]);
}

/// user.hold keeps a ready message from being attempted; setting it back makes it due at once
/// even though its retry is an hour away.
#[test]
fn a_held_message_waits_and_goes_at_once_when_released() {
    let srv = Scripted::start(Script {
        rcpt: Arc::new(|a| {
            if a.starts_with("later") {
                "451 4.7.1 later".into()
            } else {
                "250 2.1.5 Ok".into()
            }
        }),
        ..Script::default()
    });
    let mut o = fast(srv.port);
    o.push("retry_time=3600".into());
    let m = mount(&o);
    // Held before it is ready: never attempted.
    std::fs::write(
        m.path("a.eml"),
        message("me@example.com", "now@example.org", "a", "x"),
    )
    .unwrap();
    m.ok("setfattr -n user.hold -v 1 a.eml && setfattr -n user.is_ready -v 1 a.eml");
    // Deferred for an hour, then held.
    ready(
        &m,
        "b.eml",
        &message("me@example.com", "later@example.org", "b", "x"),
    );
    wait_tries(&m, "b.eml", 1, 20);
    m.ok("setfattr -n user.hold -v 1 b.eml");
    srv.script.lock().unwrap().rcpt = Arc::new(|_| "250 2.1.5 Ok".into());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(m.attr("a.eml", "try_count"), "0");
    assert_eq!(m.attr("a.eml", "status"), "Pending");
    let t = Instant::now();
    m.ok("setfattr -n user.hold -v 0 a.eml && setfattr -n user.hold -v 0 b.eml");
    wait_status(&m, "a.eml", "Sent", 10);
    wait_status(&m, "b.eml", "Sent", 10);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

/// Audit F14: non-ASCII addresses went out raw in RCPT TO to a server without SMTPUTF8. A
/// domain goes out as its A-labels (the same domain, for any server); a non-ASCII local part
/// goes only to a server offering SMTPUTF8, with that parameter on MAIL FROM, and fails for
/// good (Error, with the reason) at one that does not.
#[test]
fn international_addresses_go_out_as_a_labels_or_with_smtputf8() {
    let plain = Scripted::start(Script::default());
    let m = mount(&fast(plain.port));
    ready(
        &m,
        "i.eml",
        "From: a@example.com\nTo: b@ex\u{e4}mple.org, jos\u{e9}@example.net, plain@example.net\nSubject: idn\n\nx\n",
    );
    wait_status(&m, "i.eml", "Error", 20);
    let mut rcpts: Vec<String> = plain.txns().into_iter().flat_map(|t| t.rcpts).collect();
    rcpts.sort();
    // plain@ shares its transaction with the refused josé@: no SMTPUTF8 on that MAIL either
    // (audit-7 G2: a strict server refused it, and plain@ failed with it).
    assert_eq!(rcpts, ["b@xn--exmple-cua.org", "plain@example.net"], "{rcpts:?}");
    assert!(plain.txns().iter().all(|t| !t.mail_cmd.contains("SMTPUTF8")));
    let log: Vec<String> = std::fs::read_dir(m.spool.join("log"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(
        log.iter()
            .any(|l| l.contains("jos\u{e9}@example.net refused (553 5.6.7") && l.contains("SMTPUTF8")),
        "{log:?}"
    );
    drop(m);

    let utf8 = Scripted::start(Script {
        ehlo: "250-scripted\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 PIPELINING".into(),
        ..Script::default()
    });
    let m = mount(&fast(utf8.port));
    ready(
        &m,
        "u.eml",
        "From: a@example.com\nTo: jos\u{e9}@example.net\nSubject: idn\n\nx\n",
    );
    wait_status(&m, "u.eml", "Sent", 20);
    let t = utf8.txns();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].rcpts, ["jos\u{e9}@example.net"]);
    assert!(t[0].mail_cmd.ends_with(" SMTPUTF8"), "{}", t[0].mail_cmd);
}

/// audit-15 D7: a reply whose text was over 4 KiB, or with a line over 1,024 bytes, was a
/// TempFail whatever its code: a long 250 after the data sent the message again at every
/// retry, and a long 550 was retried for days. The code decides; the text is cut.
#[test]
fn a_long_reply_is_decided_by_its_code_and_its_text_cut() {
    let long = |code: u16, last: &str| {
        let mut r = String::new();
        // Over 64 KiB (audit-17 D3: such a 250 was a TempFail, and the message went again).
        for _ in 0..100 {
            r.push_str(&format!("{code}-{}\r\n", "z".repeat(700)));
        }
        r.push_str(&format!("{code} {last}"));
        r
    };
    let srv = Scripted::start(Script {
        data_end: long(250, "2.0.0 queued after a long story"),
        rcpt: Arc::new(move |a: &str| {
            if a.starts_with("refused") {
                format!(
                    "550-{}\r\n550 5.1.1 no such user",
                    "r".repeat(4000).replace("rrrr", "rrr\r\n550-")
                )
            } else {
                "250 2.1.5 Ok".into()
            }
        }),
        ..Script::default()
    });
    let m = mount(&fast(srv.port));
    ready(
        &m,
        "ok.eml",
        &message("a@example.com", "b@example.org", "long", "x"),
    );
    wait_status(&m, "ok.eml", "Sent", 20);
    // Sent once, and not sent again.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(srv.delivered(), vec!["b@example.org".to_string()]);
    assert_eq!(m.attr("ok.eml", "try_count"), "1");
    ready(
        &m,
        "no.eml",
        &message("a@example.com", "refused@example.org", "long 550", "x"),
    );
    wait_status(&m, "no.eml", "Error", 20);
    assert_eq!(m.attr("no.eml", "last_try_status"), "Fail");
    let msg = m.attr("no.eml", "last_try_msg");
    assert!(msg.contains("550") && msg.contains("no such user"), "{msg}");
    // One line over 1,024 bytes: its code still counts.
    srv.script.lock().unwrap().data_end = format!("250 {}", "w".repeat(1100));
    ready(
        &m,
        "w.eml",
        &message("a@example.com", "c@example.org", "wide", "x"),
    );
    wait_status(&m, "w.eml", "Sent", 20);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        srv.delivered(),
        vec!["b@example.org".to_string(), "c@example.org".to_string()]
    );
}

/// audit-15 D4/D5: a kept session the server had closed (after each message, or with a 421
/// once it had taken enough) made the next message a TempFail, deferred by retry_time, and the
/// 421's text was lost. Now the message goes at once on a new session.
#[test]
fn a_kept_session_the_server_closed_is_replaced_at_once() {
    for script in [
        Script {
            close_after_data: true,
            ..Script::default()
        },
        Script {
            txns_per_session: Some(1),
            ..Script::default()
        },
    ] {
        let srv = Scripted::start(script);
        let mut o = fast(srv.port);
        // Long enough that a deferred message would still be waiting when the test looks.
        o.retain(|x| !x.starts_with("retry_time"));
        o.push("retry_time=600".into());
        let m = mount(&o);
        for i in 0..3 {
            let name = format!("k{i}.eml");
            ready(
                &m,
                &name,
                &message("a@example.com", &format!("u{i}@example.org"), "kept", "x"),
            );
            wait_status(&m, &name, "Sent", 20);
            assert_eq!(m.attr(&name, "try_count"), "1", "{name}");
        }
        assert_eq!(srv.delivered().len(), 3);
        assert!(srv.connections.load(Ordering::SeqCst) >= 3);
    }
    // A 421 on a new session is a TempFail that keeps the server's words.
    let srv = Scripted::start(Script {
        txns_per_session: Some(0),
        ..Script::default()
    });
    let m = mount(&fast(srv.port));
    ready(
        &m,
        "t.eml",
        &message("a@example.com", "b@example.org", "421", "x"),
    );
    wait_tries(&m, "t.eml", 1, 20);
    assert_eq!(m.attr("t.eml", "last_try_status"), "TempFail");
    let msg = m.attr("t.eml", "last_try_msg");
    assert!(msg.contains("421") && msg.contains("too many messages"), "{msg}");
}
