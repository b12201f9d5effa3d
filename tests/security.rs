//! Issue 10: a node root serves with `allow_other` is safe for every local user (SPEC §9, §10).
//! Each exploit found against the first release is replayed as `nobody` on a real mount and
//! must change nothing and read nothing, while nobody's own mail works end to end.

mod common;

use common::smtp::Sink;
use common::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Output};
use std::time::Duration;

/// A root mount with allow_other that `nobody` can reach (the temp dirs above it are opened up;
/// the spool itself stays 0700).
fn shared(extra: &[&str]) -> Mount {
    let mut opts = vec!["allow_other", "ratelimit_time=0", "domlimit_time=0"];
    opts.extend_from_slice(extra);
    let m = Mount::new(&opts);
    std::fs::set_permissions(m.tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    m
}

/// Runs a shell step as `nobody` in the mount point, under a timeout.
fn as_nobody(m: &Mount, script: &str) -> Output {
    Command::new("timeout")
        .args(["20", "runuser", "-u", "nobody", "--", "bash", "-c", script])
        .current_dir(&m.mnt)
        .env("HOME", "/tmp")
        .output()
        .expect("runuser")
}

fn nobody_ok(m: &Mount, script: &str) -> String {
    let o = as_nobody(m, script);
    assert!(
        o.status.success(),
        "as nobody `{script}` failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Must fail with the given error text ("Permission denied", "Operation not permitted").
fn nobody_refused(m: &Mount, script: &str, why: &str) {
    let o = as_nobody(m, script);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "as nobody `{script}` succeeded: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(err.contains(why), "as nobody `{script}`: want {why:?}, got {err}");
}

fn sha(m: &Mount, name: &str) -> String {
    m.ok(&format!("sha256sum {name}"))
}

/// Root's Draft: another user can neither read nor change it, nor its parts or attributes.
#[test]
fn another_users_message_is_out_of_reach() {
    let m = shared(&[]);
    std::fs::write(
        m.path("root.eml"),
        message("boss@example.com", "board@example.org", "salaries", "secret body"),
    )
    .unwrap();
    m.ok("setfattr -n user.env_to -v board@example.org root.eml && setfattr -n user.ticket -v 7 root.eml");
    let before = sha(&m, "root.eml");
    let attrs_before = m.ok("getfattr -d root.eml");
    assert_eq!(m.ok("stat -c '%U %a' root.eml"), "root 600\n");
    assert_eq!(m.ok("stat -c '%U %a' root.eml.parts"), "root 700\n");

    for read in [
        "cat root.eml",
        "ls root.eml.parts",
        "cat root.eml.parts/Body.txt",
        "getfattr -n user.env_to root.eml",
        "getfattr -n user.header.subject root.eml.parts",
        "cp root.eml /tmp/stolen.eml",
    ] {
        nobody_refused(&m, read, "Permission denied");
    }
    // getfattr -d reports per file and exits 0 when it lists nothing: nothing may show.
    let o = as_nobody(&m, "getfattr -d root.eml");
    assert!(!String::from_utf8_lossy(&o.stdout).contains("board@"), "{o:?}");
    for write in [
        "echo evil >> root.eml",
        "truncate -s 0 root.eml",
        "setfattr -n user.env_to -v attacker@evil.test root.eml",
        "setfattr -n user.is_ready -v 1 root.eml",
        "setfattr -x user.ticket root.eml",
        "setfattr -n user.header.subject -v pwned root.eml.parts",
        "echo x > root.eml.parts/evil.txt",
        "rm root.eml.parts/Body.txt",
        "mv root.eml mine.eml",
        "rm root.eml",
        "touch root.eml",
        "chmod 666 root.eml",
    ] {
        nobody_refused(&m, write, "ermi");
    }
    nobody_refused(&m, "chown nobody root.eml", "Operation not permitted");
    assert_eq!(sha(&m, "root.eml"), before);
    assert_eq!(m.ok("getfattr -d root.eml"), attrs_before);
    assert_eq!(m.attr("root.eml", "status"), "Draft");
    assert!(!std::path::Path::new("/tmp/stolen.eml").exists());
}

/// Only root and the node's owner steer the daemon: the three exploit chains of the issue.
#[test]
fn node_attributes_are_root_only() {
    let m = shared(&[]);
    let before = m.ok("getfattr -d .");
    for (name, value) in [
        ("send_method", "sendmail"),
        ("sendmail_path", "/tmp/evil.sh"),
        ("port", "2525"),
        ("server", "127.0.0.9"),
        ("auth_secret_file", "/etc/shadow"),
        ("log_dir", "/root/x/deep"),
        ("tls", "none"),
    ] {
        nobody_refused(
            &m,
            &format!("setfattr -n user.{name} -v {value} ."),
            "Operation not permitted",
        );
    }
    nobody_refused(&m, "setfattr -x user.server .", "Operation not permitted");
    assert_eq!(m.ok("getfattr -d ."), before);
    assert!(!std::path::Path::new("/root/x/deep").exists());
    // Reading them is fine: they are the node's public settings (the secret never shows).
    nobody_ok(&m, "getfattr -n user.conn_limit .");
    // Root still may.
    m.ok("setfattr -n user.conn_limit -v 2 .");
    assert_eq!(m.attr(".", "conn_limit"), "2");
}

/// nobody's own mail works end to end: compose by parts, send, see it Sent; and cancel its own.
#[test]
fn an_unprivileged_user_sends_and_cancels_their_own_mail() {
    let tmp = tempfile::tempdir().unwrap();
    let sink = Sink::start(tmp.path());
    let port = format!("port={}", sink.port);
    let m = shared(&[&port]);
    nobody_ok(
        &m,
        "touch n.eml && echo 'hello from nobody' > n.eml.parts/Body.txt \
         && setfattr -n user.header.to -v friend@example.org n.eml.parts \
         && setfattr -n user.header.from -v nobody@example.com n.eml.parts \
         && setfattr -n user.note -v mine n.eml",
    );
    assert_eq!(m.ok("stat -c '%U %G %a' n.eml"), "nobody nogroup 600\n");
    assert_eq!(nobody_ok(&m, "cat n.eml.parts/Body.txt"), "hello from nobody\n");
    // Root (the node's owner) may read anyone's mail.
    m.ok("cat n.eml");
    nobody_ok(&m, "setfattr -n user.is_ready -v 1 n.eml");
    wait_status(&m, "n.eml", "Sent", 20);
    assert_eq!(m.ok("stat -c '%U %a' n.eml"), "nobody 400\n");
    assert_eq!(
        nobody_ok(&m, "getfattr --only-values -n user.status n.eml"),
        "Sent"
    );
    // smtp-sink may still be writing its dump after the 250: wait for the content.
    wait_for("the sink's copy", Duration::from_secs(5), || {
        let m = sink.messages();
        m.len() == 1 && m[0].contains("hello from nobody")
    });

    nobody_ok(&m, "echo draft > c.eml && rm c.eml");
    assert!(!m.path("c.eml").exists());
    // A group-shared Draft: chmod by its owner; the group reads it but never sends or removes it.
    nobody_ok(&m, "echo shared > g.eml && chmod 640 g.eml");
    assert_eq!(m.ok("stat -c %a g.eml"), "640\n");
}

/// `default_permissions` lets the kernel check too: the modes mailfs shows must then allow
/// what SPEC §10 allows (the first release refused every write, even nobody's own).
#[test]
fn default_permissions_agrees_with_the_rules() {
    let m = shared(&["default_permissions"]);
    std::fs::write(
        m.path("root.eml"),
        message("a@example.com", "b@example.org", "s", "root's"),
    )
    .unwrap();
    nobody_ok(
        &m,
        "echo 'To: x@example.org' > own.eml && echo more >> own.eml && cat own.eml",
    );
    nobody_refused(&m, "cat root.eml", "Permission denied");
    // audit-10 J7: EACCES as without default_permissions (the kernel said EPERM for the
    // sticky root).
    nobody_refused(&m, "rm root.eml", "Permission denied");
    nobody_refused(&m, "mv root.eml mine.eml", "Permission denied");
    nobody_ok(&m, "echo 'To: x@example.org' > b2.eml");
    nobody_refused(&m, "mv b2.eml root.eml", "Permission denied");
    assert_eq!(
        m.ok("cat root.eml"),
        message("a@example.com", "b@example.org", "s", "root's")
    );
    nobody_ok(&m, "rm own.eml b2.eml");
    // audit-12 M4: a restore from a node without default_permissions sets the root's 1777:
    // either root mode is no change (tar, rsync and cp -a exit 0), any other is EPERM.
    assert_eq!(m.ok("stat -c %a ."), "777\n");
    m.ok("chmod 1777 . && chmod 777 .");
    assert!(m.fails("chmod 755 .").contains("not permitted"));
    assert_eq!(m.ok("stat -c %a ."), "777\n");
}

/// Links planted in the spool are never followed: not shown, not read, not written through.
#[test]
fn symlinks_in_the_spool_are_refused() {
    let m = shared(&[]);
    let secret = m.tmp.path().join("secret");
    std::fs::write(&secret, "root's secret\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink(&secret, m.spool.join("link.eml")).unwrap();
    let victim = m.tmp.path().join("victim");
    std::fs::write(&victim, "intact\n").unwrap();
    std::os::unix::fs::symlink(&victim, m.spool.join(".ready/x.eml")).unwrap();

    assert!(!m.ok("ls").contains("link.eml"));
    m.fails("cat link.eml");
    m.fails("cat link.eml.parts/Body.txt");
    nobody_refused(&m, "cat link.eml", "No such file");
    m.fails("setfattr -n user.is_ready -v 1 link.eml");
    // A message named like the planted marker goes through mark_ready: the victim stays.
    std::fs::write(
        m.path("x.eml"),
        message("a@example.com", "b@example.org", "s", "x"),
    )
    .unwrap();
    m.ok("setfattr -n user.is_ready -v 1 x.eml");
    let out = Command::new(BIN).arg("flush").arg(&m.spool).output().unwrap();
    assert!(out.status.code().is_some(), "{out:?}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "intact\n");
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "root's secret\n");
}

/// The spool and everything in it is the owner's alone; a log dir that is a link is not used.
#[test]
fn spool_files_are_private_and_log_links_are_not_followed() {
    let m = shared(&[]);
    let outside = m.tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, m.spool.join("log")).unwrap();
    std::fs::write(
        m.path("a.eml"),
        message("a@example.com", "b@example.org", "s", "x"),
    )
    .unwrap();
    m.ok("setfattr -n user.is_ready -v 1 a.eml");
    // Nothing listens on port 25 here: the attempt fails and is logged — but not through the link.
    wait_for("an attempt", Duration::from_secs(20), || {
        m.attr("a.eml", "try_count") != "0"
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);

    let meta = std::fs::metadata(&m.spool).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o700);
    for e in walk(&m.spool) {
        let md = std::fs::symlink_metadata(&e).unwrap();
        if md.file_type().is_symlink() {
            continue;
        }
        let want = if md.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(md.mode() & 0o777, want, "{}", e.display());
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

/// A spool or log_dir that another user can write is refused at start (EX_CONFIG) or when set.
#[test]
fn writable_spool_or_log_dir_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = tmp.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(0o777)).unwrap();
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let out = Command::new("timeout")
        .args(["20", BIN, "mount"])
        .arg(&spool)
        .arg(&mnt)
        .arg("-f")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("writable by every user"));
    assert!(!is_mounted(&mnt));
    let out = Command::new("timeout")
        .args(["20", BIN, "serve"])
        .arg(&spool)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78), "{out:?}");

    // audit-10 J-a: a spool of another user's is refused before anything is written in it:
    // no `-o` option stored, no housekeeping directory made.
    let theirs = tmp.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(1500), Some(1500)).unwrap();
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o700)).unwrap();
    for args in [vec!["mount", "-f"], vec!["mount"], vec!["serve"]] {
        let mut c = Command::new("timeout");
        c.args(["20", BIN, args[0]]).arg(&theirs);
        if args[0] == "mount" {
            c.arg(&mnt);
        }
        let out = c.args(&args[1..]).args(["-o", "port=3010"]).output().unwrap();
        assert_eq!(out.status.code(), Some(78), "{args:?}: {out:?}");
        assert!(!is_mounted(&mnt));
        let left: Vec<_> = std::fs::read_dir(&theirs)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "{args:?} wrote {left:?} in a spool it refused");
    }

    // audit-12 M2: a spool inside a directory another user owns (who could rename it away
    // and put a link or a directory of theirs in its place) is not served either.
    let home = tmp.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let inside = home.join("spool");
    std::fs::create_dir(&inside).unwrap();
    std::fs::set_permissions(&inside, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&home, Some(1500), Some(1500)).unwrap();
    let out = Command::new("timeout")
        .args(["20", BIN, "serve"])
        .arg(&inside)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("belongs to uid 1500"),
        "{out:?}"
    );

    let m = Mount::new(&[]);
    let open_log = m.tmp.path().join("openlog");
    std::fs::create_dir(&open_log).unwrap();
    std::fs::set_permissions(&open_log, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let err = m.fails(&format!("setfattr -n user.log_dir -v {} .", open_log.display()));
    assert!(err.contains("Invalid argument"), "{err}");
    // audit-10 J-c: a private log_dir inside a directory another user owns (who could swap it
    // for a link later), or inside one others can write that is not sticky.
    for (owner, mode) in [(1500, 0o700), (0, 0o777)] {
        let parent = m.tmp.path().join(format!("parent-{owner}-{mode:o}"));
        let sub = parent.join("sub");
        std::fs::create_dir_all(&sub).unwrap();
        std::os::unix::fs::chown(&parent, Some(owner), Some(owner)).unwrap();
        std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(mode)).unwrap();
        let err = m.fails(&format!("setfattr -n user.log_dir -v {} .", sub.display()));
        assert!(err.contains("Invalid argument"), "{err}");
    }
    let sticky = m.tmp.path().join("sticky");
    std::fs::create_dir_all(sticky.join("sub")).unwrap();
    std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777)).unwrap();
    m.ok(&format!("setfattr -n user.log_dir -v {}/sub .", sticky.display()));
    // A fresh spool is created private.
    assert_eq!(std::fs::metadata(&m.spool).unwrap().mode() & 0o777, 0o700);
}

/// Root restoring a node with `rsync -a` into a fresh node made every message root's: rsync
/// makes `X.eml.parts/` first (which makes the message, as root's), its chown of that
/// directory was refused (exit 23), and the message's owner was lost — its owner could no
/// longer read it. A chown of the parts directory is now a chown of the message (root's
/// alone), and a scratch file renamed onto a new message gives it the scratch file's owner.
#[test]
fn root_rsync_restore_keeps_each_message_owner() {
    let a = shared(&[]);
    nobody_ok(
        &a,
        "printf 'From: n@example.com\\nTo: x@example.org\\nSubject: mine\\n\\nbody\\n' > n.eml",
    );
    let bk = a.tmp.path().join("bk");
    a.ok(&format!("rsync -a ./ '{}/'", bk.display()));
    let b = shared(&[]);
    let o = b.sh(&format!("rsync -a '{}/' ./", bk.display()));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(b.ok("stat -c %U n.eml n.eml.parts"), "nobody\nnobody\n");
    assert!(nobody_ok(&b, "cat n.eml").contains("Subject: mine"));
    // One message alone (no parts directory first): the temp file's owner.
    let c = shared(&[]);
    let o = c.sh(&format!("rsync -a '{}/n.eml' ./", bk.display()));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(c.ok("stat -c %U n.eml"), "nobody\n");
    // Another user still cannot give a message away.
    nobody_refused(&c, "chown root n.eml.parts", "Operation not permitted");
}

/// Runs a shell step in the mount point as uid/gid 1501 with the supplementary groups given.
fn as_carol(m: &Mount, groups: &str, script: &str) -> Output {
    let groups = match groups {
        "" => "--clear-groups".to_string(),
        g => format!("--groups={g}"),
    };
    Command::new("timeout")
        .args([
            "20",
            "setpriv",
            "--reuid=1501",
            "--regid=1501",
            &groups,
            "--",
            "bash",
            "-c",
            script,
        ])
        .current_dir(&m.mnt)
        .env("HOME", "/tmp")
        .output()
        .expect("setpriv")
}

/// audit-10 J-e: a Draft shared with its group (chmod 640/660) is shared with every member,
/// also one through a supplementary group (`usermod -aG`), as the kernel counts them; not
/// with anyone else, and never to send or remove.
#[test]
fn a_draft_is_shared_with_members_of_its_group_through_supplementary_groups() {
    let m = shared(&[]);
    std::fs::write(
        m.path("team.eml"),
        message("a@example.com", "b@example.org", "plan", "shared body"),
    )
    .unwrap();
    m.ok("chown 1500:1500 team.eml && chmod 640 team.eml");
    let carol = |groups: &str, script: &str| as_carol(&m, groups, script);
    let o = carol("", "cat team.eml");
    assert!(!o.status.success(), "read without the group");
    let o = carol(
        "1500",
        "cat team.eml && ls team.eml.parts && getfattr -n user.status team.eml",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("shared body"));
    // 640: read, not write; and a member never sends it.
    let o = carol("1500", "echo more >> team.eml");
    assert!(String::from_utf8_lossy(&o.stderr).contains("Permission denied"));
    m.ok("chmod 660 team.eml");
    let o = carol(
        "1700,1500",
        "echo more >> team.eml && setfattr -n user.env_to -v c@example.org team.eml",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = carol("1500", "setfattr -n user.is_ready -v 1 team.eml");
    assert!(String::from_utf8_lossy(&o.stderr).contains("Permission denied"));
    assert_eq!(m.attr("team.eml", "status"), "Draft");
}

/// audit-10 J-b: root's `mailfs sendmail` (and flush) on a spool another user serves goes
/// through that node's process, never writes root's files into the spool (the user's serving
/// process could not read them: the mail would be stuck); with nothing serving it, a
/// temporary failure (75) as for any other user, and nothing written.
#[test]
fn root_submits_to_another_users_spool_only_through_its_server() {
    let tmp = tempfile::tempdir().unwrap();
    let theirs = tmp.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(1500), Some(1500)).unwrap();
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut c = Command::new("timeout");
    c.args(["20", BIN, "sendmail", "--spool"])
        .arg(&theirs)
        .arg("b@example.org")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    let _ = child
        .stdin
        .take()
        .unwrap()
        .write_all(b"From: a@example.com\nSubject: x\n\nbody\n");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(75), "{out:?}");
    let out = Command::new("timeout")
        .args(["20", BIN, "flush"])
        .arg(&theirs)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(75), "{out:?}");
    let left: Vec<_> = std::fs::read_dir(&theirs)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "root wrote {left:?} in another user's spool");
}

/// audit-10 J1: a spool path (or log_dir) that goes through a symbolic link another user owns
/// is refused (78, EINVAL for log_dir) and nothing is written where it leads; a link root
/// made (an administrator's /var/spool/x -> /data/x) is still followed.
#[test]
fn a_spool_path_through_another_users_link_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let open = tmp.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let target = tmp.path().join("target");
    std::fs::create_dir(&target).unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o700)).unwrap();
    let link = open.join("spool");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(1500), Some(1500)).unwrap();
    let run = |args: &[&str], input: &[u8]| {
        let mut child = Command::new("timeout")
            .arg("20")
            .arg(BIN)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        let _ = child.stdin.take().unwrap().write_all(input);
        child.wait_with_output().unwrap()
    };
    let l = link.to_str().unwrap();
    let out = run(
        &["sendmail", "--spool", l, "b@example.org"],
        b"Subject: x\n\nbody\n",
    );
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("symbolic link owned by uid 1500"));
    assert_eq!(run(&["queue", l], b"").status.code(), Some(78));
    assert_eq!(run(&["serve", l], b"").status.code(), Some(78));
    assert_eq!(
        std::fs::read_dir(&target).unwrap().count(),
        0,
        "something was written"
    );

    let m = Mount::new(&[]);
    let err = m.fails(&format!("setfattr -n user.log_dir -v {l}/log ."));
    assert!(err.contains("Invalid argument"), "{err}");
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0, "log_dir was made");

    // root's own link is followed.
    std::os::unix::fs::lchown(&link, Some(0), Some(0)).unwrap();
    let out = run(
        &["sendmail", "--spool", l, "b@example.org"],
        b"Subject: x\n\nbody\n",
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

/// audit-16 D6: `.scratch` replaced by a symbolic link while the spool was mounted was
/// followed: scratch files were made, listed and read where the link pointed, outside the
/// spool. The directory is held from the start and reached through its descriptor.
#[test]
fn a_scratch_directory_swapped_for_a_link_while_mounted_is_not_followed() {
    let m = Mount::new(&[]);
    m.ok("echo before > notes.txt");
    let outside = m.tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("planted.txt"), "outside\n").unwrap();
    let scratch = m.spool.join(".scratch");
    std::fs::rename(&scratch, m.spool.join(".scratch.orig")).unwrap();
    std::os::unix::fs::symlink(&outside, &scratch).unwrap();
    m.ok("echo after > later.txt");
    assert!(!outside.join("later.txt").exists(), "made outside the spool");
    assert!(m.spool.join(".scratch.orig/later.txt").exists());
    let ls = m.ok("ls");
    assert!(!ls.contains("planted.txt"), "{ls}");
    assert!(ls.contains("notes.txt") && ls.contains("later.txt"), "{ls}");
    m.fails("cat planted.txt");
}
