//! Issue 15: a real Postfix on loopback with the node's SMTP listener as its relayhost
//! (`relayhost = [127.0.0.1]:PORT`), relaying 500 messages through the node to smtp-sink.

mod common;

use common::smtp::{Sink, free_port};
use common::*;
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A private Postfix on 127.0.0.1 whose relayhost is the node's listener; stopped on drop.
struct RelayingPostfix {
    conf: std::path::PathBuf,
    dir: std::path::PathBuf,
    port: u16,
}

impl RelayingPostfix {
    fn start(base: &Path, relayhost_port: u16) -> RelayingPostfix {
        let dir = base.join("postfix");
        let conf = dir.join("conf");
        for d in ["conf", "queue", "data"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        let ok = |c: &mut Command| assert!(c.status().unwrap().success(), "{c:?}");
        ok(Command::new("chmod").arg("755").arg(base).arg(&dir));
        ok(Command::new("chown").arg("postfix").arg(dir.join("data")));
        let port = free_port();
        let d = dir.display();
        std::fs::write(
            conf.join("main.cf"),
            format!(
                "compatibility_level = 3.6\nqueue_directory = {d}/queue\ndata_directory = {d}/data\n\
                 maillog_file_prefixes = {d}\nmaillog_file = {d}/postfix.log\n\
                 inet_interfaces = 127.0.0.1\ninet_protocols = ipv4\nmyhostname = postfix.test\n\
                 mydestination =\nmynetworks = 127.0.0.0/8\nrelayhost = [127.0.0.1]:{relayhost_port}\n\
                 smtp_tls_security_level = none\nsmtpd_tls_security_level = none\n\
                 default_destination_concurrency_limit = 4\n"
            ),
        )
        .unwrap();
        let mut master = format!("127.0.0.1:{port} inet n - n - - smtpd\n");
        for l in [
            "pickup unix n - n 60 1 pickup",
            "cleanup unix n - n - 0 cleanup",
            "qmgr unix n - n 300 1 qmgr",
            "rewrite unix - - n - - trivial-rewrite",
            "bounce unix - - n - 0 bounce",
            "defer unix - - n - 0 bounce",
            "trace unix - - n - 0 bounce",
            "verify unix - - n - 1 verify",
            "flush unix n - n 1000? 0 flush",
            "proxymap unix - - n - - proxymap",
            "smtp unix - - n - - smtp",
            "relay unix - - n - - smtp",
            "showq unix n - n - - showq",
            "error unix - - n - - error",
            "retry unix - - n - - error",
            "discard unix - - n - - discard",
            "anvil unix - - n - 1 anvil",
            "scache unix - - n - 1 scache",
            "postlog unix-dgram n - n - 1 postlogd",
        ] {
            master.push_str(l);
            master.push('\n');
        }
        std::fs::write(conf.join("master.cf"), master).unwrap();
        ok(Command::new("timeout")
            .args(["60", "postfix", "-c"])
            .arg(&conf)
            .arg("start"));
        let p = RelayingPostfix { conf, dir, port };
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "postfix did not listen: {}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        p
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("postfix.log")).unwrap_or_default()
    }
}

impl Drop for RelayingPostfix {
    fn drop(&mut self) {
        let _ = Command::new("timeout")
            .args(["30", "postfix", "-c"])
            .arg(&self.conf)
            .arg("stop")
            .status();
    }
}

#[test]
fn a_real_postfix_relays_500_messages_through_the_node() {
    let tmp = tempfile::tempdir().unwrap();
    let sink = Sink::start(tmp.path());
    let port = free_port();
    let m = Mount::new(&[
        &format!("listen=127.0.0.1:{port}"),
        "server=127.0.0.1",
        &format!("port={}", sink.port),
        "ratelimit_time=0",
        "domlimit_time=0",
        "conn_limit=4",
    ]);
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t.elapsed() < Duration::from_secs(10), "listener: {}", m.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let pf = RelayingPostfix::start(tmp.path(), port);
    let o = Command::new("timeout")
        .args(["300", "smtp-source", "-s", "4", "-m", "500", "-l", "1500"])
        .args(["-f", "app@example.org", "-t", "user@example.net"])
        .arg(format!("127.0.0.1:{}", pf.port))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait_for("500 messages at the sink", Duration::from_secs(240), || {
        sink.count() >= 500
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sink.count(), 500, "each once: {}", pf.log());
    for d in sink.messages() {
        let ours = d.find("(mailfs)").expect("through mailfs");
        let theirs = d.find("by postfix.test (Postfix)").expect("through Postfix");
        assert!(ours < theirs, "mailfs's Received above Postfix's: {d}");
        assert!(d.contains("X-Mail-Args: <app@example.org>"), "{d}");
    }
    let stored = std::fs::read_dir(&m.spool)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".eml"))
        .count();
    assert_eq!(stored, 500);
    assert!(
        pf.log().contains(&format!("relay=127.0.0.1[127.0.0.1]:{port}")),
        "{}",
        pf.log()
    );
}
