//! Issue 16: DKIM signing. Keys made with openssl; messages composed by parts, by `sendmail`
//! and over the listener; each verified by Python's dkimpy on the exact bytes the peer (a
//! scripted SMTP server) received, with a dnsfunc serving what `mailfs dkim-record` printed.

mod common;

use common::smtp::{Script, Scripted, free_port};
use common::*;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const VERIFY_PY: &str = r#"
import sys, re, dkim
rec = open(sys.argv[1]).read()
txt = ''.join(re.findall(r'"([^"]*)"', rec)).encode()
name = rec.split()[0].rstrip('.')
def dnsfunc(n, timeout=5):
    return txt if n.decode().rstrip('.') == name else None
msg = open(sys.argv[2], 'rb').read()
print('SIGNED' if b'DKIM-Signature:' in msg else 'UNSIGNED', dkim.verify(msg, dnsfunc=dnsfunc))
"#;

fn openssl_key(dir: &Path, name: &str, alg: &[&str]) -> PathBuf {
    let p = dir.join(name);
    let o = Command::new("timeout")
        .args(["60", "openssl", "genpkey"])
        .args(alg)
        .arg("-out")
        .arg(&p)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    p
}

fn rsa_key(dir: &Path) -> PathBuf {
    openssl_key(
        dir,
        "rsa.pem",
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    )
}

fn ed25519_key(dir: &Path) -> PathBuf {
    openssl_key(dir, "ed25519.pem", &["-algorithm", "ed25519"])
}

/// A peer that refuses `nobody@...` and takes everything else, recording the exact bytes.
fn peer() -> Scripted {
    Scripted::start(Script {
        rcpt: Arc::new(|a: &str| {
            if a.contains("nobody@") {
                "550 5.1.1 no such user".into()
            } else {
                "250 2.1.5 Ok".into()
            }
        }),
        ..Script::default()
    })
}

fn node(peer: &Scripted, extra: &[&str]) -> Mount {
    let mut opts = vec![
        "server=127.0.0.1".to_string(),
        format!("port={}", peer.port),
        "ratelimit_time=0".into(),
        "domlimit_time=0".into(),
        "retry_time=1".into(),
    ];
    opts.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = opts.iter().map(String::as_str).collect();
    Mount::new(&refs)
}

/// `mailfs dkim-record`, saved to a file for the verifier.
fn record(m: &Mount) -> (String, PathBuf) {
    let o = Command::new(BIN)
        .arg("dkim-record")
        .arg(&m.spool)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rec = String::from_utf8(o.stdout).unwrap();
    let p = m.tmp.path().join("record.txt");
    std::fs::write(&p, &rec).unwrap();
    (rec, p)
}

/// dkimpy's verdict on the bytes the peer received for the message with `marker` in it.
fn verify(peer: &Scripted, record: &Path, marker: &str) -> String {
    let t = Instant::now();
    let data = loop {
        if let Some(d) = peer
            .txns()
            .into_iter()
            .filter_map(|t| t.data)
            .find(|d| d.contains(marker))
        {
            break d;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "{marker} never arrived");
        std::thread::sleep(Duration::from_millis(50));
    };
    let file = record.with_file_name(format!("got-{}.eml", marker.replace(' ', "_")));
    std::fs::write(&file, data.as_bytes()).unwrap();
    let o = Command::new("timeout")
        .args(["60", "python3", "-c", VERIFY_PY])
        .arg(record)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "dkimpy: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn sendmail(m: &Mount, from: &str, to: &str, subject: &str) {
    let mut c = Command::new(BIN)
        .args(["sendmail", "--spool"])
        .arg(&m.spool)
        .arg(to)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let msg = format!("From: {from}\nTo: {to}\nSubject: {subject}\n\nsent with sendmail\n");
        c.stdin.take().unwrap().write_all(msg.as_bytes()).unwrap();
    }
    assert!(c.wait().unwrap().success());
}

#[test]
fn rsa_signed_by_parts_by_sendmail_and_over_the_listener_verifies_with_dkimpy() {
    let peer = peer();
    let port = free_port();
    let m = node(&peer, &[&format!("listen=127.0.0.1:{port}")]);
    let key = rsa_key(m.tmp.path());
    // A key that cannot be used is refused and the old value kept.
    let junk = m.tmp.path().join("junk.pem");
    std::fs::write(
        &junk,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let weak = openssl_key(
        m.tmp.path(),
        "weak.pem",
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:512"],
    );
    m.ok("setfattr -n user.dkim_domain -v example.org . && setfattr -n user.dkim_selector -v mail2026 .");
    m.ok(&format!("setfattr -n user.dkim_key_file -v {} .", key.display()));
    for bad in [junk.as_path(), weak.as_path(), Path::new("/nonexistent.pem")] {
        let e = m.fails(&format!("setfattr -n user.dkim_key_file -v {} .", bad.display()));
        assert!(e.contains("Invalid argument"), "{e}");
    }
    assert_eq!(m.attr(".", "dkim_key_file"), key.display().to_string());
    let (rec, rec_file) = record(&m);
    assert!(
        rec.starts_with("mail2026._domainkey.example.org. IN TXT \"v=DKIM1; k=rsa; p="),
        "{rec}"
    );

    // By parts.
    m.ok("touch parts.eml");
    m.ok("echo 'composed by parts' > parts.eml.parts/Body.txt");
    m.ok("setfattr -n user.header.from -v 'Ann <ann@example.org>' parts.eml.parts");
    m.ok("setfattr -n user.header.to -v 'bob@example.net' parts.eml.parts");
    m.ok("setfattr -n user.header.subject -v 'by parts' parts.eml.parts");
    m.ok("setfattr -n user.is_ready -v 1 parts.eml");
    wait_status(&m, "parts.eml", "Sent", 30);
    assert!(
        m.ok("cat parts.eml")
            .starts_with("DKIM-Signature: v=1; a=rsa-sha256;")
    );
    assert_eq!(verify(&peer, &rec_file, "by parts"), "SIGNED True");

    // By sendmail, from a subdomain; and one from outside the domain, which goes unsigned.
    sendmail(&m, "ops@mail.example.org", "bob@example.net", "by sendmail");
    assert_eq!(verify(&peer, &rec_file, "by sendmail"), "SIGNED True");
    sendmail(&m, "someone@example.com", "bob@example.net", "foreign sender");
    assert_eq!(verify(&peer, &rec_file, "foreign sender"), "UNSIGNED False");

    // Over the listener.
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = Command::new("timeout")
        .args(["60", "swaks", "--server"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["--from", "ann@example.org", "--to", "bob@example.net"])
        .args(["--header", "Subject: over smtp", "--body", "listener body"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    assert_eq!(verify(&peer, &rec_file, "over smtp"), "SIGNED True");

    // The key is never readable through the mount: not an attribute, not in any file.
    let key_text = std::fs::read_to_string(&key).unwrap();
    let key_body: Vec<&str> = key_text.lines().filter(|l| !l.starts_with("-----")).collect();
    let attrs = m.ok("getfattr -d -m - . *.eml");
    let all_files = m.ok("find . -type f -print0 | xargs -0 cat");
    for line in key_body.iter().take(5) {
        assert!(
            !attrs.contains(line) && !all_files.contains(line),
            "key material visible"
        );
    }
}

#[test]
fn ed25519_signatures_and_failure_notices_verify() {
    let peer = peer();
    let m = node(&peer, &[]);
    let key = ed25519_key(m.tmp.path());
    m.ok(&format!(
        "setfattr -n user.dkim_domain -v example.org . && setfattr -n user.dkim_selector -v ed . && \
         setfattr -n user.dkim_key_file -v {} .",
        key.display()
    ));
    let (rec, rec_file) = record(&m);
    assert!(rec.contains("k=ed25519; p="), "{rec}");
    sendmail(&m, "ann@example.org", "bob@example.net", "ed25519 mail");
    assert_eq!(verify(&peer, &rec_file, "ed25519 mail"), "SIGNED True");
    // `deliver` stores received mail: nothing is signed.
    let mut c = Command::new(BIN)
        .arg("deliver")
        .arg(&m.spool)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let msg = message("ann@example.org", "bob@example.net", "received here", "in\n");
        c.stdin.take().unwrap().write_all(msg.as_bytes()).unwrap();
    }
    assert!(c.wait().unwrap().success());
    let got = m.ok("grep -l 'received here' *.eml");
    let name = got.lines().next().unwrap();
    assert_eq!(m.attr(name, "status"), "Received");
    assert!(!m.ok(&format!("cat {name}")).contains("DKIM-Signature"));
    // Refused at once: the failure notice to ann@example.org is signed too.
    sendmail(&m, "ann@example.org", "nobody@example.net", "bounces");
    assert_eq!(
        verify(&peer, &rec_file, "Undelivered Mail Returned to Sender"),
        "SIGNED True"
    );
}

#[test]
fn a_key_that_breaks_keeps_messages_pending_until_it_works_again() {
    let peer = peer();
    let m = node(&peer, &[]);
    let key = rsa_key(m.tmp.path());
    m.ok(&format!(
        "setfattr -n user.dkim_domain -v example.org . && setfattr -n user.dkim_selector -v s . && \
         setfattr -n user.dkim_key_file -v {} .",
        key.display()
    ));
    let (_, rec_file) = record(&m);
    let moved = m.tmp.path().join("moved.pem");
    std::fs::rename(&key, &moved).unwrap();
    std::fs::write(
        m.path("late.eml"),
        message("ann@example.org", "bob@example.net", "late", "x\n"),
    )
    .unwrap();
    m.ok("setfattr -n user.is_ready -v 1 late.eml");
    sendmail(&m, "ann@example.org", "bob@example.net", "by sendmail late");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        peer.txns().iter().all(|t| t.data.is_none()),
        "nothing goes out unsigned"
    );
    let names = m.ok("ls");
    let queued = names
        .lines()
        .find(|n| n.starts_with("sendmail-") && n.ends_with(".eml"))
        .unwrap();
    for n in ["late.eml", queued] {
        assert_eq!(m.attr(n, "status"), "Pending");
        assert!(
            m.attr(n, "last_try_msg").contains("DKIM signing failed"),
            "{}",
            m.attr(n, "last_try_msg")
        );
    }
    // The key is back: a flush sends them, signed.
    std::fs::rename(&moved, &key).unwrap();
    let o = Command::new(BIN).arg("flush").arg(&m.spool).output().unwrap();
    assert!(o.status.success());
    wait_status(&m, "late.eml", "Sent", 30);
    assert_eq!(verify(&peer, &rec_file, "Subject: late"), "SIGNED True");
    assert_eq!(verify(&peer, &rec_file, "by sendmail late"), "SIGNED True");
}
