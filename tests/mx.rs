//! Issue 14: direct delivery (`send_method=mx`) against a DNS stub (dnslib, on 127.0.0.1:PORT)
//! and scripted SMTP peers on 127.0.25.x port 25 (root: the whole 127/8 is loopback). Each
//! test uses its own addresses so they run side by side.

mod common;

use common::smtp::{Script, Scripted, free_port};
use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The DNS stub, killed on drop.
struct Dns {
    port: u16,
    child: Child,
}

impl Dns {
    fn start(zone: serde_json::Value) -> Dns {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/common/dns_stub.py");
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new("python3")
                .arg(script)
                .arg(port.to_string())
                .arg(zone.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("python3 with dnslib (pip install dnslib)");
            let mut first = String::new();
            if let Some(out) = child.stdout.take() {
                let mut r = BufReader::new(out);
                let _ = r.read_line(&mut first);
                // Keep reading: the stub prints every query, and a closed pipe would kill it.
                std::thread::spawn(move || {
                    let mut line = String::new();
                    while r.read_line(&mut line).is_ok_and(|n| n > 0) {
                        line.clear();
                    }
                });
            }
            if first.trim() == "ready" {
                return Dns { port, child };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("the DNS stub did not start (is dnslib installed?)");
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mx_mount(dns: &Dns, extra: &[&str]) -> Mount {
    let mut o = vec![
        "send_method=mx".to_string(),
        format!("dns_server=127.0.0.1:{}", dns.port),
        "ratelimit_time=0".into(),
        "domlimit_time=0".into(),
        "retry_time=1".into(),
        "handshake_time=5".into(),
        "notify=never".into(),
    ];
    o.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = o.iter().map(String::as_str).collect();
    Mount::new(&refs)
}

fn ready(m: &Mount, name: &str, to: &str) {
    std::fs::write(m.path(name), message("me@example.com", "x", name, "x")).unwrap();
    m.ok(&format!("setfattr -n user.env_to -v '{to}' {name}"));
    m.ok(&format!("setfattr -n user.is_ready -v 1 {name}"));
}

fn first_try(m: &Mount, name: &str) -> (String, String) {
    wait_for(&format!("{name}'s first try"), Duration::from_secs(20), || {
        m.attr(name, "try_count") != "0"
    });
    (m.attr(name, "last_try_status"), m.attr(name, "last_try_msg"))
}

/// Lowest preference first; a refused connection and a 421 greeting move on to the next
/// exchanger within the same attempt.
#[test]
fn down_and_busy_exchangers_are_passed_over_in_preference_order() {
    let busy = Scripted::start_at(
        "127.0.25.12:25",
        Script {
            greeting: Some("421 4.3.2 too busy".into()),
            ..Script::default()
        },
    );
    let good = Scripted::start_at("127.0.25.13:25", Script::default());
    // Listed out of order on purpose: the preference decides.
    let dns = Dns::start(serde_json::json!({
        "a.test.": {"MX": [[30, "mx3.a.test."], [10, "mx1.a.test."], [20, "mx2.a.test."]]},
        "mx1.a.test.": {"A": ["127.0.25.11"]},
        "mx2.a.test.": {"A": ["127.0.25.12"]},
        "mx3.a.test.": {"A": ["127.0.25.13"]},
    }));
    let m = mx_mount(&dns, &[]);
    ready(&m, "a.eml", "u@a.test");
    wait_status(&m, "a.eml", "Sent", 20);
    assert_eq!(m.attr("a.eml", "try_count"), "1");
    assert_eq!(busy.connections.load(Ordering::SeqCst), 1);
    assert_eq!(good.delivered(), vec!["u@a.test".to_string()]);
}

/// No MX: the domain's own address (implicit MX); one message to two domains goes to each
/// domain's exchanger.
#[test]
fn implicit_mx_and_one_message_to_several_domains() {
    let b = Scripted::start_at("127.0.25.21:25", Script::default());
    let c = Scripted::start_at("127.0.25.22:25", Script::default());
    let dns = Dns::start(serde_json::json!({
        "b.test.": {"A": ["127.0.25.21"]},
        "c.test.": {"MX": [[5, "mail.c.test."]]},
        "mail.c.test.": {"A": ["127.0.25.22"]},
    }));
    let m = mx_mount(&dns, &[]);
    ready(&m, "s.eml", "x@b.test y@c.test z@c.test");
    wait_status(&m, "s.eml", "Sent", 20);
    assert_eq!(b.delivered(), vec!["x@b.test".to_string()]);
    assert_eq!(
        c.delivered(),
        vec!["y@c.test".to_string(), "z@c.test".to_string()]
    );
}

/// A null MX and a domain that does not exist are Error at once; SERVFAIL is TempFail.
#[test]
fn null_mx_and_nxdomain_fail_servfail_defers() {
    let dns = Dns::start(serde_json::json!({
        "null.test.": {"MX": [[0, "."]]},
        "_servfail": ["sf.test."],
    }));
    let m = mx_mount(&dns, &[]);
    ready(&m, "n.eml", "u@null.test");
    ready(&m, "x.eml", "u@nx.test");
    ready(&m, "f.eml", "u@sf.test");
    let (st, msg) = first_try(&m, "n.eml");
    assert_eq!(st, "Fail", "{msg}");
    assert!(msg.contains("null MX"), "{msg}");
    wait_status(&m, "n.eml", "Error", 5);
    let (st, msg) = first_try(&m, "x.eml");
    assert_eq!(st, "Fail", "{msg}");
    assert!(msg.contains("does not exist"), "{msg}");
    wait_status(&m, "x.eml", "Error", 5);
    let (st, msg) = first_try(&m, "f.eml");
    assert_eq!(st, "TempFail", "{msg}");
    assert_eq!(m.attr("f.eml", "status"), "Pending");
}

/// Exchangers of equal preference are tried in random order: over 20 domains sharing two
/// such exchangers, both get mail (all 20 on one: a chance of 2 in a million).
#[test]
fn equal_preferences_are_spread() {
    let a = Scripted::start_at("127.0.25.41:25", Script::default());
    let b = Scripted::start_at("127.0.25.42:25", Script::default());
    let mut zone = serde_json::json!({
        "mxa.e.test.": {"A": ["127.0.25.41"]},
        "mxb.e.test.": {"A": ["127.0.25.42"]},
    });
    for i in 0..20 {
        zone[format!("d{i}.e.test.")] = serde_json::json!({"MX": [[10, "mxa.e.test."], [10, "mxb.e.test."]]});
    }
    let dns = Dns::start(zone);
    let m = mx_mount(&dns, &["conn_limit=4"]);
    for i in 0..20 {
        ready(&m, &format!("e{i}.eml"), &format!("u@d{i}.e.test"));
    }
    for i in 0..20 {
        wait_status(&m, &format!("e{i}.eml"), "Sent", 30);
    }
    let (na, nb) = (a.delivered().len(), b.delivered().len());
    assert_eq!(na + nb, 20);
    assert!(na > 0 && nb > 0, "all on one exchanger: {na} and {nb}");
}

/// A resolver that never answers: TempFail (retried), never Error.
#[test]
fn a_silent_resolver_defers() {
    // Bound, never read: queries to it go unanswered (UDP) or unaccepted (TCP).
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = udp.local_addr().unwrap().port();
    let o = [
        "send_method=mx".to_string(),
        format!("dns_server=127.0.0.1:{port}"),
        "handshake_time=1".into(),
        "retry_time=60".into(),
        "notify=never".into(),
    ];
    let refs: Vec<&str> = o.iter().map(String::as_str).collect();
    let m = Mount::new(&refs);
    ready(&m, "t.eml", "u@slow.test");
    let (st, msg) = first_try(&m, "t.eml");
    assert_eq!(st, "TempFail", "{msg}");
    assert!(msg.contains("DNS lookup of slow.test failed"), "{msg}");
    assert_eq!(m.attr("t.eml", "status"), "Pending");
    drop(udp);
}

/// audit-15 D6: `user@[127.0.25.71]` was looked up in DNS (an error) and retried for days;
/// an address literal names its host (RFC 5321 §4.1.3).
#[test]
fn an_address_literal_is_delivered_to_its_address() {
    let lit = Scripted::start_at("127.0.25.71:25", Script::default());
    let dns = Dns::start(serde_json::json!({}));
    let m = mx_mount(&dns, &[]);
    ready(&m, "lit.eml", "u@[127.0.25.71]");
    wait_status(&m, "lit.eml", "Sent", 20);
    assert_eq!(lit.delivered(), vec!["u@[127.0.25.71]".to_string()]);
}
