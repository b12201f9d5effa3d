//! Issue 10 (unprivileged submission) and issue 14 (hold/release): a node that root serves,
//! used by `nobody`, who cannot open the spool (0700 root) and reaches it only through the
//! control socket `SPOOL_DIR.sock` of the serving process.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::smtp::Sink;
use common::*;

const NOBODY: u32 = 65534;

/// Runs `mailfs ARGS` as nobody (no supplementary groups, a HOME that exists), under timeout.
fn as_nobody(args: &[&str], input: &str, env: &[(&str, &str)]) -> Output {
    as_nobody_exe(BIN, args, input, env)
}

fn as_nobody_exe(exe: &str, args: &[&str], input: &str, env: &[(&str, &str)]) -> Output {
    let mut c = Command::new("timeout");
    c.args([
        "30",
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
    ])
    .arg("env")
    .args(["-i", "HOME=/", "PATH=/usr/bin:/bin", "USER=nobody"]);
    for (k, v) in env {
        c.arg(format!("{k}={v}"));
    }
    let mut child = c
        .arg(exe)
        .args(args)
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("setpriv");
    // Commands that do not read stdin may exit before the write.
    let _ = child.stdin.take().map(|mut s| s.write_all(input.as_bytes()));
    child.wait_with_output().expect("wait")
}

fn as_root(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mailfs");
    let _ = child.stdin.take().map(|mut s| s.write_all(input.as_bytes()));
    child.wait_with_output().expect("wait")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn queue_json(o: &Output) -> Vec<serde_json::Value> {
    assert!(o.status.success(), "{}", text(o));
    serde_json::from_slice::<serde_json::Value>(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(o)))
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The spool as SPEC §9 leaves it: 0700 root; its parent reachable by everyone (the socket
/// lives there), as /var/spool is.
fn lock_down(base: &Path, spool: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(base, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(spool, std::fs::Permissions::from_mode(0o700)).unwrap();
}

fn wait_socket(spool: &Path) {
    let mut sock = spool.as_os_str().to_owned();
    sock.push(".sock");
    wait_for("the control socket", Duration::from_secs(10), || {
        std::os::unix::net::UnixStream::connect(&sock).is_ok()
    });
}

#[test]
fn nobody_sends_through_a_root_mount_with_allow_other() {
    let sink_dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(sink_dir.path());
    let p = format!("port={}", sink.port);
    let m = Mount::new(&["allow_other", &p, "ratelimit_time=0", "domlimit_time=0"]);
    lock_down(m.tmp.path(), &m.spool);
    wait_socket(&m.spool);
    let spool = m.spool.to_str().unwrap();

    // nobody cannot open the spool...
    let o = as_nobody_exe("/bin/ls", &[spool], "", &[]);
    assert!(!o.status.success(), "nobody can list the spool: {}", text(&o));
    // ...and submits through the node: the message is nobody's and ends Sent.
    let o = as_nobody(
        &["sendmail", "--spool", spool, "-i", "rcpt@example.org"],
        "Subject: from nobody\n\nhello from an unprivileged user\n",
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let mine = queue_json(&as_nobody(&["queue", spool, "--json"], "", &[]));
    assert_eq!(mine.len(), 1, "{mine:?}");
    let name = mine[0]["name"].as_str().unwrap().to_string();
    assert_eq!(mine[0]["owner"], NOBODY);
    assert!(
        mine[0]["env_from"].as_str().unwrap().starts_with("nobody@"),
        "{mine:?}"
    );
    wait_status(&m, &name, "Sent", 20);
    wait_for("the sink to get it", Duration::from_secs(10), || {
        sink.count() == 1
    });
    assert!(sink.messages()[0].contains("hello from an unprivileged user"));

    // The `sendmail` link, as cron would run it, with the spool from MAILFS_SPOOL.
    let bin_dir = m.tmp.path().join("bin");
    std::fs::create_dir(&bin_dir).unwrap();
    std::os::unix::fs::symlink(BIN, bin_dir.join("sendmail")).unwrap();
    let link = bin_dir.join("sendmail");
    let o = as_nobody_exe(
        link.to_str().unwrap(),
        &["-t"],
        "To: cron@example.org\nSubject: cron\n\ncron output\n.\n",
        &[("MAILFS_SPOOL", spool)],
    );
    assert!(o.status.success(), "{}", text(&o));
    wait_for("the second message", Duration::from_secs(20), || {
        sink.count() == 2
    });

    // Root's own message: nobody does not see it and cannot touch it.
    let o = as_root(
        &["sendmail", "--spool", spool, "-i", "boss@example.com"],
        "Subject: root's\n\nsecret\n",
    );
    assert!(o.status.success(), "{}", text(&o));
    let all = queue_json(&as_root(&["queue", spool, "--json"], ""));
    let roots: Vec<String> = all
        .iter()
        .filter(|r| r["owner"] == 0)
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(roots.len(), 1, "{all:?}");
    let root_msg = &roots[0];
    let mine = queue_json(&as_nobody(&["queue", spool, "--json"], "", &[]));
    assert_eq!(mine.len(), 2);
    assert!(mine.iter().all(|r| r["owner"] == NOBODY), "{mine:?}");
    for cmd in ["cancel", "hold", "release"] {
        let o = as_nobody(&[cmd, spool, root_msg], "", &[]);
        assert_eq!(o.status.code(), Some(77), "{cmd}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("another user"),
            "{}",
            text(&o)
        );
    }
    assert!(m.spool.join(root_msg).exists());
    let o = as_nobody(&["queue", spool], "", &[]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains(root_msg.as_str()));

    // deliver as nobody: stored Received, nobody's, never sent.
    let o = as_nobody(
        &["deliver", spool],
        "From: x@example.net\nSubject: in\n\ndelivered\n",
        &[("RECIPIENT", "nobody@example.org")],
    );
    assert!(o.status.success(), "{}", text(&o));
    let mine = queue_json(&as_nobody(&["queue", spool, "--json"], "", &[]));
    let rec: Vec<_> = mine.iter().filter(|r| r["status"] == "Received").collect();
    assert_eq!(rec.len(), 1, "{mine:?}");
    assert_eq!(rec[0]["owner"], NOBODY);

    // nobody cancels its own message.
    let own = rec[0]["name"].as_str().unwrap();
    let o = as_nobody(&["cancel", spool, own], "", &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!m.spool.join(own).exists());
}

#[test]
fn nothing_serving_the_node_is_a_temporary_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = tmp.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    lock_down(tmp.path(), &spool);
    let s = spool.to_str().unwrap();
    let o = as_nobody(
        &["sendmail", "--spool", s, "a@example.org"],
        "Subject: x\n\ny\n",
        &[],
    );
    assert_eq!(o.status.code(), Some(75), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("not served") && err.contains("spool.sock"), "{err}");
    for args in [vec!["queue", s], vec!["flush", s], vec!["deliver", s]] {
        let o = as_nobody(&args, "x\n", &[]);
        assert_eq!(o.status.code(), Some(75), "{args:?}: {}", text(&o));
    }
    assert_eq!(
        std::fs::read_dir(&spool).unwrap().count(),
        0,
        "nothing was written"
    );
}

#[test]
fn serve_holds_and_releases_for_the_messages_owner() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = tmp.path().join("spool");
    let s = spool.to_str().unwrap();
    // A relay that refuses connections: messages stay deferred for an hour.
    let dead = common::smtp::dead_port();
    let opts = format!(
        "port={},ratelimit_time=0,domlimit_time=0,retry_time=3600,handshake_time=2",
        dead.port
    );
    let mut serve = Spawned::mailfs(["serve", s, "-o", &opts]);
    wait_socket(&spool);
    lock_down(tmp.path(), &spool);
    for (rcpt, who) in [
        ("a@hold.example", "nobody"),
        ("b@other.example", "nobody"),
        ("c@hold.example", "root"),
    ] {
        let input = format!("Subject: to {rcpt}\n\nx\n");
        let o = if who == "root" {
            as_root(&["sendmail", "--spool", s, "-i", rcpt], &input)
        } else {
            as_nobody(&["sendmail", "--spool", s, "-i", rcpt], &input, &[])
        };
        assert!(o.status.success(), "{}", text(&o));
    }
    let tries = |name: &str| -> u64 {
        let all = queue_json(&as_root(&["queue", s, "--json"], ""));
        all.iter()
            .find(|r| r["name"] == name)
            .and_then(|r| r["tries"].as_u64())
            .unwrap_or(0)
    };
    wait_for("three deferrals", Duration::from_secs(20), || {
        let all = queue_json(&as_root(&["queue", s, "--json"], ""));
        all.len() == 3 && all.iter().all(|r| r["last_try_status"] == "TempFail")
    });
    // nobody holds its messages to hold.example: its own only.
    let o = as_nobody(&["hold", s, "--domain", "hold.example"], "", &[]);
    assert!(o.status.success(), "{}", text(&o));
    let all = queue_json(&as_root(&["queue", s, "--json"], ""));
    let held: Vec<(&str, bool)> = all
        .iter()
        .map(|r| (r["env_from"].as_str().unwrap_or(""), r["held"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        held.iter().filter(|(_, h)| *h).count(),
        1,
        "only nobody's message to hold.example is held: {all:?}"
    );
    let mine = queue_json(&as_nobody(&["queue", s, "--json"], "", &[]));
    let held_name = mine
        .iter()
        .find(|r| r["held"] == true)
        .and_then(|r| r["name"].as_str())
        .unwrap()
        .to_string();
    assert!(mine[0]["recipients"].is_array());
    // The table marks it; the summary by domain counts it.
    let table = String::from_utf8(as_nobody(&["queue", s], "", &[]).stdout).unwrap();
    let line = table.lines().find(|l| l.starts_with(&held_name)).unwrap();
    assert!(line.contains("Held"), "{table}");
    let shape = String::from_utf8(as_root(&["queue", s, "--by-domain"], "").stdout).unwrap();
    let row = |d: &str| -> Vec<String> {
        shape
            .lines()
            .find(|l| l.split_whitespace().next() == Some(d))
            .unwrap_or_else(|| panic!("{d} in {shape}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(row("TOTAL")[1..3], ["3", "1"], "{shape}");
    assert_eq!(row("hold.example")[1..4], ["2", "1", "2"], "{shape}");
    assert_eq!(row("other.example")[1..3], ["1", "0"], "{shape}");

    // Release: due at once (tried again now, not in an hour).
    let before = tries(&held_name);
    let o = as_nobody(&["release", s, &held_name], "", &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("released {held_name}")));
    wait_for("the released message's retry", Duration::from_secs(20), || {
        tries(&held_name) > before
    });
    // Root holds by domain for everyone; a Sent or unknown name is refused.
    let o = as_root(&["hold", s, "--domain", "hold.example"], "");
    assert!(o.status.success(), "{}", text(&o));
    let all = queue_json(&as_root(&["queue", s, "--json"], ""));
    assert_eq!(all.iter().filter(|r| r["held"] == true).count(), 2, "{all:?}");
    assert_eq!(as_root(&["hold", s, "nope.eml"], "").status.code(), Some(66));
    assert_eq!(as_root(&["hold", s], "").status.code(), Some(64));
    assert_eq!(serve.term(), Some(0));
    assert!(
        !tmp.path().join("spool.sock").exists(),
        "the socket goes with the server"
    );
}

#[test]
fn the_hold_attribute_through_the_mount() {
    let dead = common::smtp::dead_port();
    let p = format!("port={}", dead.port);
    let m = Mount::new(&[&p, "retry_time=3600", "handshake_time=2"]);
    std::fs::write(
        m.path("h.eml"),
        message("a@example.com", "b@example.org", "s", "x"),
    )
    .unwrap();
    assert_eq!(m.attr("h.eml", "hold"), "0");
    assert!(m.ok("getfattr -d h.eml").contains("user.hold=\"0\""));
    m.ok("setfattr -n user.is_ready -v 1 h.eml");
    wait_for("a deferral", Duration::from_secs(20), || {
        m.attr("h.eml", "last_try_status") == "TempFail"
    });
    // The owner may still hold a ready message; other values are EINVAL.
    m.ok("setfattr -n user.hold -v 1 h.eml");
    assert_eq!(m.attr("h.eml", "hold"), "1");
    let e = m.fails("setfattr -n user.hold -v 2 h.eml");
    assert!(e.contains("Invalid argument"), "{e}");
    let table = String::from_utf8(as_root(&["queue", m.spool.to_str().unwrap()], "").stdout).unwrap();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("h.eml") && l.contains("Held")),
        "{table}"
    );
    // Setting it back to 0 releases: tried again at once.
    m.ok("setfattr -n user.hold -v 0 h.eml");
    wait_for("the retry after release", Duration::from_secs(20), || {
        m.attr("h.eml", "try_count") == "2"
    });
    // Other attributes stay frozen.
    let e = m.fails("setfattr -n user.env_to -v c@example.org h.eml");
    assert!(e.contains("Permission denied"), "{e}");
}

/// audit-13: another user's submission to a node its owner serves privately (socket 0600) is a
/// refusal, 77, not "not served" (75, which cron's retries would repeat forever).
#[test]
fn submitting_to_another_users_private_node_is_refused_not_retried() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let spool = tmp.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(0o700)).unwrap();
    // daemon (uid 1) owns and serves it, and its parent, where the socket goes.
    std::os::unix::fs::chown(tmp.path(), Some(1), Some(1)).unwrap();
    std::os::unix::fs::chown(&spool, Some(1), Some(1)).unwrap();
    let s = spool.to_str().unwrap();
    let mut serve = Command::new("setpriv")
        .args(["--reuid=1", "--regid=1", "--clear-groups", "--"])
        .args(["env", "-i", "HOME=/", "PATH=/usr/bin:/bin"])
        .arg(BIN)
        .args(["serve", s])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("setpriv");
    wait_socket(&spool);
    let o = as_nobody(
        &["sendmail", "--spool", s, "a@example.org"],
        "Subject: x\n\ny\n",
        &[],
    );
    let _ = serve.kill();
    let _ = serve.wait();
    assert_eq!(o.status.code(), Some(77), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(err.contains("privately"), "{err}");
}
