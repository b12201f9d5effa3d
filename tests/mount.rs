//! Issue 2: the mount as a user drives it with shell tools (SPEC §1-5, §9).

mod common;

use common::*;
use std::process::Command;

#[test]
fn node_attributes_have_spec_defaults_and_validate() {
    let m = Mount::new(&["port=2525"]);
    let d = m.ok("getfattr -d --absolute-names .");
    for want in [
        "user.send_method=\"smtp\"",
        "user.server=\"127.0.0.1\"",
        "user.port=\"2525\"",
        "user.ratelimit_time=\"1\"",
        "user.domlimit_time=\"5\"",
        "user.expire_time=\"259200\"",
        "user.retry_time=\"900\"",
        "user.queue_time=\"432000\"",
        "user.handshake_time=\"180\"",
        "user.conn_limit=\"1\"",
        "user.domconn_limit=\"1\"",
        "user.sendmail_path=\"/usr/sbin/sendmail\"",
        "user.log_date_attr=\"date\"",
        "user.log_msgid_attr=\"msgid\"",
        "user.log_info_attr=\"info\"",
        "user.tls=\"may\"",
        "user.notify=\"failure\"",
        "user.dns_server=\"system\"",
        "user.max_retries=\"0\"",
        "user.delay_warning_time=\"14400\"",
        "user.hold_domains=\"\"",
        "user.listen=\"\"",
        "user.relay_clients=\"127.0.0.0/8,::1/128\"",
        "user.message_size_limit=\"10240000\"",
    ] {
        assert!(d.contains(want), "missing {want} in {d}");
    }
    assert!(d.contains(&format!(
        "user.spool_dir=\"{}\"",
        m.spool.canonicalize().unwrap().display()
    )));
    // Bad values: EINVAL, nothing changes.
    for (k, v) in [
        ("port", "0"),
        ("port", "70000"),
        ("send_method", "carrier-pigeon"),
        ("ratelimit_time", "-2"),
        ("conn_limit", "0"),
        ("server", "bad/host"),
    ] {
        assert_eq!(
            setxattr(&m.mnt, &format!("user.{k}"), v.as_bytes()),
            Err(libc::EINVAL),
            "{k}={v}"
        );
    }
    assert_eq!(m.attr(".", "port"), "2525");
    assert_eq!(setxattr(&m.mnt, "user.spool_dir", b"/tmp"), Err(libc::EPERM));
    assert_eq!(setxattr(&m.mnt, "trusted.x", b"1"), Err(libc::ENOTSUP));
    m.ok("setfattr -n user.ratelimit_time -v 0.25 . && setfattr -n user.send_method -v sendmail .");
    assert_eq!(m.attr(".", "ratelimit_time"), "0.25");
    assert!(
        m.fails("setfattr -n user.port -v abc .")
            .contains("Invalid argument")
    );
}

#[test]
fn node_attributes_persist_and_dash_o_wins() {
    let mut m = Mount::new(&[]);
    m.ok("setfattr -n user.retry_time -v 60 . && setfattr -n user.server -v relay.example.com .");
    m.restart();
    assert_eq!(m.attr(".", "retry_time"), "60");
    assert_eq!(m.attr(".", "server"), "relay.example.com");
    assert_eq!(m.stop(), 0);
    m.opts = vec!["server=10.1.2.3".into(), "retry_time=5".into()];
    m.start();
    assert_eq!(m.attr(".", "server"), "10.1.2.3");
    assert_eq!(m.attr(".", "retry_time"), "5");
}

#[test]
fn touch_makes_the_template() {
    let m = Mount::new(&[]);
    m.ok("touch new.eml");
    let c = m.ok("cat new.eml");
    assert!(c.contains("Message-ID: <"), "{c}");
    assert!(c.contains("User-Agent: mailfs/"), "{c}");
    assert!(c.contains("\nSubject: \n"), "{c}");
    // LF line ends (audit F12): a shell edit anchored with $ matches.
    m.ok("sed -i 's/^Subject: $/Subject: Hi/' new.eml");
    assert!(m.ok("cat new.eml").contains("\nSubject: Hi\n"));
    assert!(c.contains("Date: "), "{c}");
    assert!(c.contains("MIME-Version: 1.0"), "{c}");
    assert_eq!(m.attr("new.eml", "status"), "Draft");
    assert_eq!(m.attr("new.eml", "is_ready"), "0");
    let id = m.attr("new.eml", "message_id");
    assert!(c.contains(&format!("Message-ID: {id}")), "{id} in {c}");
    // A shell redirect dup2s and closes before writing: the content is what was written.
    m.ok("printf 'Subject: x\\n\\nhello\\n' > red.eml");
    assert_eq!(m.ok("cat red.eml"), "Subject: x\n\nhello\n");
    m.ok("echo more >> app.eml");
    assert_eq!(m.ok("cat app.eml"), "more\n");
}

#[test]
fn walkthrough_copy_envelope_ready_and_frozen() {
    let m = Mount::new(&[]);
    let src = m.tmp.path().join("report.src");
    std::fs::write(
        &src,
        message(
            "Alice <alice@example.com>",
            "bob@example.org",
            "Report",
            "numbers",
        ),
    )
    .unwrap();
    m.ok(&format!("cp {} report.eml", src.display()));
    // Defaults come from the headers.
    assert_eq!(m.attr("report.eml", "env_from"), "alice@example.com");
    assert_eq!(m.attr("report.eml", "env_to"), "bob@example.org");
    m.ok("setfattr -n user.env_from -v ops@example.com report.eml");
    m.ok("setfattr -n user.env_to -v 'a@example.org, b@example.net c@example.com' report.eml");
    m.ok("setfattr -n user.ticket -v 42 report.eml");
    let d = m.ok("getfattr -d report.eml");
    for want in [
        "user.env_from=\"ops@example.com\"",
        "user.env_to=\"a@example.org, b@example.net, c@example.com\"",
        "user.status=\"Draft\"",
        "user.is_ready=\"0\"",
        "user.name=\"report.eml\"",
        "user.ticket=\"42\"",
        "user.try_count=\"0\"",
        "user.last_try_status=\"None\"",
    ] {
        assert!(d.contains(want), "missing {want} in {d}");
    }
    assert_eq!(m.ok("stat -c %a report.eml").trim(), "600");
    m.ok("setfattr -n user.is_ready -v 1 report.eml");
    assert_eq!(m.attr("report.eml", "status"), "Pending");
    assert_eq!(m.attr("report.eml", "is_ready"), "1");
    assert_eq!(m.ok("stat -c %a report.eml").trim(), "400");
    let r = m.attr("report.eml", "recipients");
    // The senders may already have tried (nothing listens on port 25 here): each recipient is
    // listed, none is Sent.
    assert!(
        r.contains("a@example.org ") && r.contains("c@example.com ") && !r.contains(" Sent "),
        "{r}"
    );
    // Date and Message-ID were added to the content.
    let c = m.ok("cat report.eml");
    assert!(c.starts_with("Message-ID: <") && c.contains("\nDate: "), "{c}");
    assert!(c.ends_with("numbers\n"));
    // Frozen: content, attributes, rename over and truncate are refused with EACCES.
    assert!(m.fails("echo x >> report.eml").contains("Permission denied"));
    assert!(m.fails("truncate -s 0 report.eml").contains("Permission denied"));
    assert!(
        m.fails("setfattr -n user.env_to -v z@example.org report.eml")
            .contains("Permission denied")
    );
    assert!(
        m.fails("setfattr -n user.ticket -v 43 report.eml")
            .contains("Permission denied")
    );
    assert!(
        m.fails("setfattr -n user.is_ready -v 0 report.eml")
            .contains("Permission denied")
    );
    m.ok("echo junk > other.txt");
    assert!(m.fails("mv other.txt report.eml").contains("Permission denied"));
    assert!(m.fails("mv report.eml renamed.eml").contains("Permission denied"));
    assert_eq!(
        setxattr(&m.path("report.eml"), "user.status", b"Sent"),
        Err(libc::EPERM)
    );
    assert_eq!(m.ok("cat report.eml"), c);
}

#[test]
fn message_attribute_errors() {
    let m = Mount::new(&[]);
    m.ok("printf 'Subject: none\\n\\nbody\\n' > a.eml");
    let p = m.path("a.eml");
    for bad in [
        &b"a@example.com\r\nRCPT TO:<x@y>"[..],
        b"-oQ/tmp@example.com",
        b"a\0b@example.com",
        b"not-an-address",
        b"a b@example.com",
    ] {
        assert_eq!(setxattr(&p, "user.env_to", bad), Err(libc::EINVAL), "{bad:?}");
        assert_eq!(setxattr(&p, "user.env_from", bad), Err(libc::EINVAL), "{bad:?}");
    }
    assert_eq!(setxattr(&p, "user.is_ready", b"yes"), Err(libc::EINVAL));
    for ro in [
        "status",
        "name",
        "message_id",
        "try_count",
        "last_try_msg",
        "first_try_date",
        "recipients",
    ] {
        assert_eq!(
            setxattr(&p, &format!("user.{ro}"), b"x"),
            Err(libc::EPERM),
            "{ro}"
        );
    }
    assert_eq!(setxattr(&p, "trusted.foo", b"x"), Err(libc::ENOTSUP));
    assert_eq!(setxattr(&p, "security.foo", b"x"), Err(libc::ENOTSUP));
    assert_eq!(getxattr_sized(&p, "user.nosuch", 100), Err(libc::ENODATA));
    assert_eq!(getxattr_sized(&p, "user.first_try_date", 100), Err(libc::ENODATA));
    assert_eq!(getxattr_sized(&p, "user.env_from", 100), Err(libc::ENODATA));
    // Size probe and ERANGE.
    assert_eq!(
        getxattr_sized(&p, "user.name", 0).map(|v| v.len()),
        Ok("a.eml".len())
    );
    assert_eq!(getxattr_sized(&p, "user.name", 2), Err(libc::ERANGE));
    // No sender, no recipient: is_ready is EINVAL and the message stays a Draft.
    assert_eq!(setxattr(&p, "user.is_ready", b"1"), Err(libc::EINVAL));
    assert_eq!(m.attr("a.eml", "status"), "Draft");
    m.ok("setfattr -n user.env_from -v me@example.com a.eml");
    assert_eq!(setxattr(&p, "user.is_ready", b"1"), Err(libc::EINVAL));
    assert_eq!(m.attr("a.eml", "is_ready"), "0");
    // Removing env_to puts the header default back.
    m.ok("setfattr -n user.env_to -v x@example.org a.eml && setfattr -x user.env_to a.eml");
    assert_eq!(getxattr_sized(&p, "user.env_to", 100), Err(libc::ENODATA));
    // A bad header address is reported, not used.
    m.ok("printf 'From: me@example.com\\nTo: -x@example.org\\n\\nb\\n' > b.eml");
    assert!(
        m.fails("setfattr -n user.is_ready -v 1 b.eml")
            .contains("Invalid argument")
    );
}

#[test]
fn editing_tools_keep_attributes() {
    let m = Mount::new(&[]);
    m.ok("printf 'From: a@example.com\\nTo: b@example.org\\nSubject: old\\n\\nhello\\n' > m.eml");
    m.ok("setfattr -n user.env_to -v c@example.net m.eml && setfattr -n user.note -v kept m.eml");
    let id = m.attr("m.eml", "message_id");
    m.ok("sed -i 's/old/new/' m.eml");
    assert!(m.ok("cat m.eml").contains("Subject: new"));
    assert_eq!(m.attr("m.eml", "env_to"), "c@example.net");
    assert_eq!(m.attr("m.eml", "note"), "kept");
    m.ok("printf 'From: a@example.com\\nSubject: replaced\\n\\nx\\n' > tmp.txt && mv tmp.txt m.eml");
    assert!(m.ok("cat m.eml").contains("replaced"));
    assert_eq!(m.attr("m.eml", "note"), "kept");
    m.ok("cat m.eml > /dev/null && echo appended >> m.eml");
    assert!(m.ok("cat m.eml").ends_with("appended\n"));
    assert_eq!(m.attr("m.eml", "env_to"), "c@example.net");
    // vim-style: rename away, write anew under the old name.
    m.ok("mv m.eml m.eml~ && printf 'Subject: vim\\n\\nv\\n' > m.eml && rm m.eml~");
    assert_eq!(m.attr("m.eml", "note"), "kept");
    // Renaming a Draft to a new message name carries its attributes.
    m.ok("mv m.eml n.eml");
    assert_eq!(m.attr("n.eml", "note"), "kept");
    assert!(m.sh("test -e m.eml").status.code() != Some(0));
    let _ = id;
    // rm deletes content and attributes in the spool.
    m.ok("rm n.eml");
    assert!(!m.spool.join("n.eml").exists());
    assert!(!m.spool.join("n.struct").exists());
    assert!(m.ok("ls -a").lines().all(|l| !l.starts_with('n')));
    // Scratch files are plain files, never messages.
    m.ok("echo scratch > notes.txt");
    assert_eq!(m.ok("cat notes.txt"), "scratch\n");
    assert_eq!(
        getxattr_sized(&m.path("notes.txt"), "user.status", 100),
        Err(libc::ENODATA)
    );
    assert!(m.fails("mkdir sub").contains("not permitted"));
}

#[test]
fn spool_files_and_persistence_across_remount() {
    let dead = common::smtp::dead_port();
    let port = format!("port={}", dead.port);
    let mut m = Mount::new(&[&port, "retry_time=3600"]);
    m.ok("printf 'From: a@example.com\\nTo: b@example.org\\n\\nbody\\n' > p.eml");
    m.ok("setfattr -n user.env_to -v 'x@example.org y@example.net' p.eml && setfattr -n user.tag -v blue p.eml");
    m.ok("printf 'From: a@example.com\\nTo: b@example.org\\n\\nready\\n' > r.eml && setfattr -n user.is_ready -v 1 r.eml");
    assert!(m.spool.join("p.eml").exists() && m.spool.join("p.struct").exists());
    // Let the senders make their one (refused) attempt, so nothing changes during the remount.
    wait_for("the first try", std::time::Duration::from_secs(10), || {
        m.attr("r.eml", "try_count") == "1"
    });
    let before_p = m.ok("getfattr -d p.eml");
    let before_r = m.ok("getfattr -d r.eml");
    let content = m.ok("cat r.eml");
    m.restart();
    assert_eq!(m.ok("getfattr -d p.eml"), before_p);
    assert_eq!(m.ok("getfattr -d r.eml"), before_r);
    assert_eq!(m.ok("cat r.eml"), content);
    assert!(m.fails("echo x >> r.eml").contains("Permission denied"));
    assert_eq!(
        m.ok("ls").split_whitespace().collect::<Vec<_>>(),
        vec!["p.eml", "p.eml.parts", "r.eml", "r.eml.parts"]
    );
}

#[test]
fn a_thousand_messages_list_and_read_back() {
    let m = Mount::new(&[]);
    for i in 0..1000 {
        std::fs::write(
            m.path(&format!("m{i:04}.eml")),
            format!("Subject: {i}\n\nbody {i}\n"),
        )
        .unwrap();
    }
    let ls = m.ok("ls");
    // Each message and its parts directory.
    assert_eq!(ls.lines().count(), 2000);
    assert_eq!(m.ok("ls -p | grep -c '.eml.parts/$'"), "1000\n");
    for i in (0..1000).step_by(7) {
        let c = std::fs::read_to_string(m.path(&format!("m{i:04}.eml"))).unwrap();
        assert_eq!(c, format!("Subject: {i}\n\nbody {i}\n"));
    }
    let n = m.ok("getfattr -n user.status m*.eml | grep -c Draft");
    assert_eq!(n.trim(), "1000");
}

#[test]
fn deleting_a_ready_message_cancels_it() {
    let dead = common::smtp::dead_port();
    let port = format!("port={}", dead.port);
    let m = Mount::new(&[&port, "retry_time=3600"]);
    m.ok("printf 'From: a@example.com\\nTo: b@example.org\\n\\nx\\n' > c.eml && setfattr -n user.is_ready -v 1 c.eml");
    wait_for("the first try", std::time::Duration::from_secs(10), || {
        m.attr("c.eml", "try_count") == "1"
    });
    m.ok("rm c.eml");
    assert!(!m.spool.join("c.eml").exists() && !m.spool.join("c.struct").exists());
}

#[test]
fn sigterm_unmounts_and_exits_zero() {
    let mut m = Mount::new(&[]);
    m.ok("touch x.eml");
    assert_eq!(m.signal(libc::SIGTERM), 0, "{}", m.log());
    assert!(!is_mounted(&m.mnt));
    assert!(m.spool.join("x.eml").exists());
}

#[test]
fn fusermount_unmount_exits_zero() {
    let mut m = Mount::new(&[]);
    assert_eq!(m.stop(), 0, "{}", m.log());
    assert!(!is_mounted(&m.mnt));
}

/// `fusermount3 -u` as soon as the mount shows, which may be before mailfs has read the
/// kernel's first request: still a clean stop (it exited 73, "cannot mount", when the
/// unmount won that race). The mount table is watched without pausing so the unmount comes
/// as early as a script's can.
#[test]
fn fusermount_right_after_the_mount_exits_zero() {
    for round in 0..20 {
        let tmp = tempfile::tempdir().unwrap();
        let (spool, mnt) = (tmp.path().join("spool"), tmp.path().join("mnt"));
        std::fs::create_dir_all(&mnt).unwrap();
        let mut child = Command::new(BIN)
            .arg("mount")
            .arg(&spool)
            .arg(&mnt)
            .arg("-f")
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let t = std::time::Instant::now();
        while !is_mounted(&mnt) && t.elapsed() < std::time::Duration::from_secs(20) {
            std::hint::spin_loop();
        }
        let _ = Command::new("timeout")
            .args(["10", "fusermount3", "-u"])
            .arg(&mnt)
            .status();
        let t = std::time::Instant::now();
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if t.elapsed() > std::time::Duration::from_secs(20) {
                let _ = child.kill();
                break child.wait().unwrap();
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        if is_mounted(&mnt) {
            let _ = Command::new("timeout")
                .args(["10", "umount", "-l"])
                .arg(&mnt)
                .status();
        }
        assert_eq!(status.code(), Some(0), "round {round}: {err}");
    }
}

#[test]
fn detached_mount_returns_when_live() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = tmp.path().join("s");
    let mnt = tmp.path().join("m");
    std::fs::create_dir(&mnt).unwrap();
    let out = Command::new("timeout")
        .args(["20", BIN, "mount"])
        .arg(&spool)
        .arg(&mnt)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(is_mounted(&mnt));
    std::fs::write(mnt.join("d.eml"), "Subject: d\n\nx\n").unwrap();
    let st = Command::new("timeout")
        .args(["10", "fusermount3", "-u"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success());
    assert!(!is_mounted(&mnt));
    assert!(spool.join("d.eml").exists());
    // Give the detached server time to exit before the temp dir goes.
    std::thread::sleep(std::time::Duration::from_millis(500));
}

#[test]
fn usage_errors_have_sysexits_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("m");
    std::fs::create_dir(&mnt).unwrap();
    let run = |args: &[&str]| {
        Command::new("timeout")
            .arg("20")
            .arg(BIN)
            .args(args)
            .output()
            .unwrap()
    };
    let o = run(&[
        "mount",
        tmp.path().join("s").to_str().unwrap(),
        mnt.to_str().unwrap(),
        "-o",
        "port=0",
        "-f",
    ]);
    assert_eq!(
        o.status.code(),
        Some(64),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&o.stderr).lines().count(), 1);
    let o = run(&[
        "mount",
        tmp.path().join("s").to_str().unwrap(),
        mnt.to_str().unwrap(),
        "-o",
        "bogus=1",
    ]);
    assert_eq!(o.status.code(), Some(64));
    let o = run(&[
        "mount",
        tmp.path().join("s").to_str().unwrap(),
        tmp.path().join("nope").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(66));
    let o = run(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(64));
    // A path that is a file, not a spool: said so (66), not "nothing serves it" (75).
    let file = tmp.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let o = run(&["queue", file.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(66),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not a spool directory"));
    let o = run(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(!is_mounted(&mnt));
}

#[test]
fn mounting_over_a_dead_mount_says_how_to_clear_it() {
    let m = Mount::new(&[]);
    // SAFETY: SIGKILL to the server this test's guard started; the guard clears the dead mount.
    unsafe { libc::kill(m.pid().unwrap() as i32, libc::SIGKILL) };
    wait_for("a dead mount", std::time::Duration::from_secs(10), || {
        std::fs::metadata(&m.mnt).err().and_then(|e| e.raw_os_error()) == Some(libc::ENOTCONN)
    });
    let o = Command::new("timeout")
        .arg("20")
        .arg(BIN)
        .arg("mount")
        .arg(&m.spool)
        .arg(&m.mnt)
        .arg("-f")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(75));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("fusermount3 -u"), "{err}");
    // One sentence: it was suffixed with EBUSY's "is being sent right now".
    assert!(!err.contains("being sent"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// The kernel keeps names in the root for 1 s, but a message another process removes
/// (`mailfs cancel`) is gone from lookups at once, not only from listings: the spool watch
/// drops its names from the kernel's cache (tests/entries.rs times it).
#[test]
fn a_message_removed_by_another_process_is_gone_at_once() {
    let m = Mount::new(&["hold_domains=example.org"]);
    std::fs::write(
        m.path("x.eml"),
        message("a@example.com", "b@example.org", "x", "x"),
    )
    .unwrap();
    let cancel = || {
        Command::new(BIN)
            .arg("cancel")
            .arg(&m.spool)
            .arg("x.eml")
            .output()
            .unwrap()
    };
    // A Draft is not cancelled (audit-10 J10); a queued message is.
    let out = cancel();
    assert_eq!(out.status.code(), Some(65), "{out:?}");
    m.ok("setfattr -n user.is_ready -v 1 x.eml");
    m.ok("stat x.eml > /dev/null && getfattr -d x.eml > /dev/null && ls x.eml.parts > /dev/null");
    let out = cancel();
    assert!(out.status.success(), "{out:?}");
    m.fails("stat x.eml");
    m.fails("stat x.eml.parts");
    assert!(!m.ok("ls").contains("x.eml"));
}

/// audit-10 J-m: `fusermount3 -u` of a node unmounts that node only, not also what was
/// mounted beneath it on the same directory (here a tmpfs).
#[test]
fn unmounting_a_node_leaves_what_is_beneath_it_mounted() {
    struct Guard(std::path::PathBuf, Option<std::process::Child>);
    impl Drop for Guard {
        fn drop(&mut self) {
            if let Some(mut c) = self.1.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
            for _ in 0..3 {
                let _ = std::process::Command::new("timeout")
                    .args(["10", "umount", "-l"])
                    .arg(&self.0)
                    .status();
            }
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success());
    let mut guard = Guard(mnt.clone(), None);
    std::fs::write(mnt.join("marker"), "beneath").unwrap();
    let child = std::process::Command::new(BIN)
        .arg("mount")
        .arg(tmp.path().join("spool"))
        .arg(&mnt)
        .args(["-f", "-o", "port=1"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    guard.1 = Some(child);
    let fuse_on_top = || {
        std::fs::read_to_string("/proc/mounts")
            .unwrap_or_default()
            .lines()
            .any(|l| l.split(' ').nth(1) == Some(&*mnt.to_string_lossy()) && l.contains("fuse"))
    };
    let t = std::time::Instant::now();
    while !fuse_on_top() {
        assert!(t.elapsed() < std::time::Duration::from_secs(20), "no mount");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let st = std::process::Command::new("timeout")
        .args(["10", "stat", "-c", "%i"])
        .arg(&mnt)
        .output()
        .unwrap();
    assert!(st.status.success());
    let st = std::process::Command::new("timeout")
        .args(["10", "fusermount3", "-u"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success());
    let mut child = guard.1.take().unwrap();
    let t = std::time::Instant::now();
    let code = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break s.code();
        }
        if t.elapsed() > std::time::Duration::from_secs(15) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mailfs did not exit");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(code, Some(0));
    assert!(!fuse_on_top());
    assert_eq!(
        std::fs::read_to_string(mnt.join("marker")).ok().as_deref(),
        Some("beneath"),
        "the tmpfs beneath the node was unmounted too"
    );
}
