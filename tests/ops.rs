//! Issue 5: running mailfs like an MTA — the mount(8) helper with `mount -t fuse.mailfs` and
//! an fstab line, and the library API queueing a message (examples/queue_message.rs).

mod common;

use common::smtp::Sink;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn sh(script: &str) -> std::process::Output {
    Command::new("timeout")
        .args(["30", "bash", "-c", script])
        .env("MAILFS_BIN", BIN)
        .output()
        .expect("bash")
}

fn ok(script: &str) -> String {
    let o = sh(script);
    assert!(
        o.status.success(),
        "`{script}`: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Unmounts on drop whatever `mount` mounted, so a failing test leaves nothing behind.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        if is_mounted(&self.0) {
            let _ = Command::new("timeout")
                .arg("10")
                .arg("umount")
                .arg(&self.0)
                .status();
        }
        if is_mounted(&self.0) {
            let _ = Command::new("timeout")
                .args(["10", "umount", "-l"])
                .arg(&self.0)
                .status();
        }
    }
}

/// mount(8) finds helpers for `-t fuse.mailfs` only in /sbin: install ours there.
fn install_helper() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("mount-scripts/mount.mailfs");
    ok(&format!(
        "install -m 755 {} /sbin/mount.fuse.mailfs",
        src.display()
    ));
}

/// The /proc/mounts line's source and type for a mount point.
fn mount_entry(mnt: &Path) -> (String, String) {
    let want = mnt.to_string_lossy().to_string();
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let line = mounts
        .lines()
        .find(|l| l.split(' ').nth(1) == Some(want.as_str()))
        .unwrap_or_default();
    let mut f = line.split(' ');
    let source = f.next().unwrap_or_default().to_string();
    (source, f.nth(1).unwrap_or_default().to_string())
}

/// Mounted by mailfs: the spool is the source; the type is `fuse` when root mounts directly
/// (fuser's mount(2) path has no subtype) and `fuse.mailfs` through fusermount3.
fn assert_mailfs_mount(mnt: &Path, spool: &Path) {
    let (source, kind) = mount_entry(mnt);
    assert!(kind == "fuse" || kind == "fuse.mailfs", "{kind}");
    assert_eq!(source, spool.canonicalize().unwrap().display().to_string());
}

fn wait_exit(spool: &Path) {
    wait_for("the mailfs process to exit", Duration::from_secs(15), || {
        !ok("ps -eo args").contains(&format!("mount {}", spool.display()))
    });
}

#[test]
fn mount_t_fuse_mailfs_and_fstab_mount_a_spool_that_sends() {
    install_helper();
    let tmp = tempfile::tempdir().unwrap();
    let sink = Sink::start(tmp.path());
    let (spool, mnt) = (tmp.path().join("spool"), tmp.path().join("mnt"));
    std::fs::create_dir_all(&mnt).unwrap();
    let guard = Unmount(mnt.clone());

    // mount -t fuse.mailfs: the helper runs mailfs, which returns once the mount is live.
    ok(&format!(
        "mount -t fuse.mailfs {} {} -o server=127.0.0.1,port={},ratelimit_time=0,domlimit_time=0",
        spool.display(),
        mnt.display(),
        sink.port
    ));
    assert_mailfs_mount(&mnt, &spool);
    let m = mnt.display();
    assert_eq!(
        ok(&format!("getfattr --only-values -n user.port {m}")),
        sink.port.to_string()
    );
    ok(&format!(
        "printf 'From: cron@example.com\\nTo: ops@example.org\\nSubject: nightly\\n\\nok\\n' > {m}/n.eml && \
         setfattr -n user.is_ready -v 1 {m}/n.eml"
    ));
    wait_for("n.eml Sent", Duration::from_secs(20), || {
        ok(&format!("getfattr --only-values -n user.status {m}/n.eml")) == "Sent"
    });
    assert!(sink.messages().iter().any(|s| s.contains("Subject: nightly")));
    ok(&format!("umount {m}"));
    assert!(!is_mounted(&mnt));
    wait_exit(&spool);

    // An fstab line (mount -T reads another fstab file): generic options are ignored, node
    // attributes are taken, and the stored ones persist.
    let fstab = tmp.path().join("fstab");
    std::fs::write(
        &fstab,
        format!(
            "{} {} fuse.mailfs defaults,noauto,nofail,_netdev,conn_limit=2 0 0\n",
            spool.display(),
            mnt.display()
        ),
    )
    .unwrap();
    ok(&format!("mount -T {} {m}", fstab.display()));
    assert_mailfs_mount(&mnt, &spool);
    assert_eq!(ok(&format!("getfattr --only-values -n user.conn_limit {m}")), "2");
    assert_eq!(
        ok(&format!("getfattr --only-values -n user.port {m}")),
        sink.port.to_string()
    );
    assert_eq!(
        ok(&format!("getfattr --only-values -n user.status {m}/n.eml")),
        "Sent"
    );
    ok(&format!("umount {m}"));
    wait_exit(&spool);
    drop(guard);

    // A bad node attribute in -o fails the mount with a message, and mounts nothing.
    let o = sh(&format!(
        "mount -t fuse.mailfs {} {} -o port=99999",
        spool.display(),
        mnt.display()
    ));
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("port"), "{o:?}");
    assert!(!is_mounted(&mnt));
}

#[test]
fn the_library_example_queues_a_message_that_serve_sends() {
    let tmp = tempfile::tempdir().unwrap();
    let sink = Sink::start(tmp.path());
    let spool = tmp.path().join("spool");
    // cargo test builds the examples next to the test binaries' profile directory.
    let example = Path::new(BIN).parent().unwrap().join("examples/queue_message");
    assert!(example.exists(), "{example:?} (cargo test builds examples)");
    let out = Command::new("timeout")
        .arg("30")
        .arg(&example)
        .arg(&spool)
        .arg("boss@example.org")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(name.ends_with(".eml"), "{name}");
    let q = ok(&format!("{BIN} queue {} --json", spool.display()));
    assert!(q.contains(&name) && q.contains("Pending"), "{q}");

    let mut serve = Spawned::mailfs([
        "serve".to_string(),
        spool.display().to_string(),
        "-o".into(),
        format!("port={},ratelimit_time=0,domlimit_time=0", sink.port),
    ]);
    wait_for("the queued message at the sink", Duration::from_secs(20), || {
        sink.messages().iter().any(|s| s.contains("Subject: Q3 report"))
    });
    let got = sink
        .messages()
        .into_iter()
        .find(|s| s.contains("Q3 report"))
        .unwrap();
    assert!(got.contains("filename=\"q3.csv\""), "{got}");
    serve.term();
}

/// Linked as `sendmail`, the binary is `mailfs sendmail` (what cron and mail(1) call).
#[test]
fn called_as_sendmail_it_queues_from_stdin() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = tmp.path().join("spool");
    let link = tmp.path().join("sendmail");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    let mut p = Command::new("timeout")
        .arg("30")
        .arg(&link)
        .args(["-t", "-oi"])
        .env("MAILFS_SPOOL", &spool)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        p.stdin
            .take()
            .unwrap()
            .write_all(b"To: ops@example.org\nSubject: cron output\n\nbackup ok\n")
            .unwrap();
    }
    assert!(p.wait().unwrap().success());
    let q = ok(&format!("{BIN} queue --json {}", spool.display()));
    let v: serde_json::Value = serde_json::from_str(&q).unwrap();
    let m = &v.as_array().unwrap()[0];
    assert_eq!(m["status"], "Pending", "{q}");
    assert!(q.contains("ops@example.org"), "{q}");
}

/// `mailfs queue --json | head` printed "mailfs: Broken pipe (os error 32)" and exited 73:
/// the reader going away is not an error of mailfs's, for the table or the JSON.
#[test]
fn queue_into_a_closed_pipe_is_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    ok(&format!(
        "for i in $(seq 400); do printf 'From: a@example.com\\nSubject: %s\\n\\nx\\n' $i | \
         \"$MAILFS_BIN\" sendmail --spool '{0}' b@example.org || exit 1; done",
        spool.display()
    ));
    for flag in ["--json", ""] {
        let out = ok(&format!(
            "\"$MAILFS_BIN\" queue '{0}' {flag} 2>'{1}' | head -c 10 >/dev/null; \
             echo \"${{PIPESTATUS[0]}}\"; cat '{1}'",
            spool.display(),
            dir.path().join("err").display()
        ));
        assert_eq!(out, "0\n", "queue {flag}: exit code and stderr");
    }
}

/// audit-10 J2: `mailfs hold` run at the same moment as `setfattr user.is_ready=1` (or an
/// envelope edit) never undoes the change setfattr acknowledged: each is made under the
/// spool's attribute lock.
#[test]
fn a_concurrent_hold_never_undoes_an_acknowledged_setfattr() {
    let m = Mount::new(&["hold_domains=hd.example"]);
    let spool = m.spool.to_str().unwrap().to_string();
    for i in 0..30 {
        let name = format!("r{i}.eml");
        std::fs::write(m.path(&name), "From: a@example.org\nTo: b@hd.example\n\nx\n").unwrap();
        let mut hold = Command::new("timeout")
            .args(["20", BIN, "hold", &spool, &name])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let set = Command::new("timeout")
            .args(["20", "setfattr", "-n", "user.is_ready", "-v", "1"])
            .arg(m.path(&name))
            .status()
            .unwrap();
        let _ = hold.wait();
        if set.success() {
            assert_eq!(
                m.attr(&name, "is_ready"),
                "1",
                "{name}: is_ready=1 undone by hold"
            );
            assert_eq!(m.attr(&name, "status"), "Pending", "{name}");
        }
    }
    std::fs::write(m.path("env.eml"), "From: a@example.org\nTo: b@hd.example\n\nx\n").unwrap();
    for i in 0..20 {
        let mut hold = Command::new("timeout")
            .args([
                "20",
                "sh",
                "-c",
                &format!("{BIN} hold {spool} env.eml; {BIN} release {spool} env.eml"),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let to = format!("z{i}@example.net");
        m.ok(&format!("setfattr -n user.env_to -v {to} env.eml"));
        let _ = hold.wait();
        assert_eq!(m.attr("env.eml", "env_to"), to, "an env_to edit was undone");
    }
}

/// audit-21 A6: `mailfs queue` shows a message to a domain in `hold_domains` as Held, and
/// `mailfs release --domain` of that domain said only "no messages released"; it now says why.
#[test]
fn release_of_a_domain_in_hold_domains_says_why_nothing_went() {
    let m = Mount::new(&["hold_domains=hd.example"]);
    let spool = m.spool.to_str().unwrap().to_string();
    std::fs::write(m.path("w.eml"), "From: a@example.org\nTo: b@hd.example\n\nx\n").unwrap();
    m.ok("setfattr -n user.is_ready -v 1 w.eml");
    let o = Command::new("timeout")
        .args(["20", BIN, "release", &spool, "--domain", "HD.example"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("hold_domains"), "{out}");
    assert_eq!(m.attr("w.eml", "status"), "Pending");
    // A domain that is not held: the plain answer.
    let o = Command::new("timeout")
        .args(["20", BIN, "release", &spool, "--domain", "other.example"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "no messages released");
}
