//! Issue 10, second round: attacks by one local user on another's mail through a root
//! `allow_other` mount, and on the control socket, that the first round of checks let
//! through. Each test replays the attack with real unprivileged users (setpriv to uids that
//! exist nowhere else) and asserts nothing of the victim's changed.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const ALICE: u32 = 61_001;
const BOB: u32 = 61_002;

fn shared() -> (Mount, PathBuf) {
    let m = Mount::new(&["allow_other", "ratelimit_time=0", "domlimit_time=0"]);
    std::fs::set_permissions(m.tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // Where the two users' scripts signal each other.
    let sig = m.tmp.path().join("sig");
    std::fs::create_dir(&sig).unwrap();
    std::fs::set_permissions(&sig, std::fs::Permissions::from_mode(0o777)).unwrap();
    (m, sig)
}

fn as_user(uid: u32, dir: &Path, prog: &str, args: &[&str]) -> Command {
    let mut c = Command::new("timeout");
    c.args(["30", "setpriv"])
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .args(["--clear-groups", prog])
        .args(args)
        .current_dir(dir)
        .env("HOME", "/tmp");
    c
}

fn py(uid: u32, m: &Mount, script: &str) -> Command {
    as_user(uid, &m.mnt, "/usr/bin/python3", &["-c", script])
}

fn run(mut c: Command) -> Output {
    c.output().expect("run")
}

fn spawn(mut c: Command) -> Child {
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

fn ok(c: Command) -> String {
    let o = run(c);
    assert!(o.status.success(), "{o:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const BOBS: &str = "To: boss@example.org\nSubject: B report\n\nBob's own words\n";

/// Bob writes his message `name` once Alice's script says it is ready, then tells her.
fn bob_writes(m: &Mount, sig: &Path, name: &str) {
    wait_for("alice's setup", Duration::from_secs(20), || {
        sig.join("alice.ready").exists()
    });
    let script = format!(
        "open('{name}','w').write({BOBS:?}); open('{}','w').close()",
        sig.join("bob.done").display()
    );
    ok(py(BOB, m, &script));
}

/// Alice keeps a part of her Draft open for writing, removes the Draft, and writes once Bob
/// has made his own message under the same name: the rebuild at close used to go into
/// Bob's message (his body replaced by hers). Now it is refused and Bob's message is whole.
#[test]
fn an_open_part_never_rewrites_another_users_message() {
    let (m, sig) = shared();
    let alice = format!(
        r#"
import os, time
open('s.eml','w').write('To: x@example.org\n\nalice\n')
fd = os.open('s.eml.parts/Body.txt', os.O_WRONLY)
os.unlink('s.eml')
open('{sig}/alice.ready','w').close()
while not os.path.exists('{sig}/bob.done'): time.sleep(0.05)
os.write(fd, b'INJECTED by alice\n')
try:
    os.close(fd)
    print('closed')
except OSError as e:
    print('refused', e.errno)
"#,
        sig = sig.display()
    );
    let a = spawn(py(ALICE, &m, &alice));
    bob_writes(&m, &sig, "s.eml");
    let out = a.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("refused 13"), "{out:?}");
    assert_eq!(std::fs::read_to_string(m.spool.join("s.eml")).unwrap(), BOBS);
    assert_eq!(ok(py(BOB, &m, "print(open('s.eml').read(), end='')")), BOBS);
}

/// Alice creates a message, keeps it open without writing, renames it away; Bob makes his own
/// under that name; Alice's close used to write the new-message template over Bob's.
#[test]
fn a_template_at_close_never_lands_in_another_users_message() {
    let (m, sig) = shared();
    let alice = format!(
        r#"
import os, time
fd = os.open('t.eml', os.O_WRONLY | os.O_CREAT, 0o600)
os.rename('t.eml', 't.bak')
open('{sig}/alice.ready','w').close()
while not os.path.exists('{sig}/bob.done'): time.sleep(0.05)
os.close(fd)
print(repr(open('t.bak').read()))
"#,
        sig = sig.display()
    );
    let a = spawn(py(ALICE, &m, &alice));
    bob_writes(&m, &sig, "t.eml");
    let out = a.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    // Alice's own file, renamed away from a message name (still hers), stays as she left it.
    assert_eq!(String::from_utf8_lossy(&out.stdout), "''\n", "{out:?}");
    assert_eq!(std::fs::read_to_string(m.spool.join("t.eml")).unwrap(), BOBS);
}

/// An unprivileged user renames their own message to a new name and a scratch file to a
/// message (refused before: a free name read as the node owner's); a message renamed to a
/// scratch name stays theirs (it became root's, unreadable and undeletable by them).
#[test]
fn users_rename_their_own_messages() {
    let (m, _sig) = shared();
    let script = "printf 'To: x@example.org\\n\\nhi\\n' > x.eml && mv x.eml y.eml \
                  && printf 'To: x@example.org\\n\\nd\\n' > d.txt && mv d.txt d.eml \
                  && stat -c '%u %n' y.eml d.eml && mv y.eml y.bak && stat -c '%u %n' y.bak \
                  && cat y.bak && rm y.bak d.eml";
    let out = ok(as_user(ALICE, &m.mnt, "bash", &["-c", script]));
    assert_eq!(
        out,
        format!("{ALICE} y.eml\n{ALICE} d.eml\n{ALICE} y.bak\nTo: x@example.org\n\nhi\n")
    );
    // Bob can take none of it.
    ok(as_user(
        ALICE,
        &m.mnt,
        "bash",
        &["-c", "echo note > n.eml && mv n.eml n.bak"],
    ));
    let o = run(as_user(
        BOB,
        &m.mnt,
        "bash",
        &["-c", "cat n.bak || rm n.bak || mv n.bak b.eml"],
    ));
    assert!(!o.status.success(), "{o:?}");
    assert_eq!(
        std::fs::read_to_string(m.spool.join(".scratch/n.bak")).unwrap(),
        "note\n"
    );
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Any user may put 64 KiB in each of as many `user.*` attributes of their Drafts as they
/// like: the attribute cache kept them all (up to 16,384 messages), so one user could make
/// the root daemon take gigabytes (1,000 such messages of 256 KiB: +267 MB). Heavy entries
/// are no longer cached.
#[test]
fn large_user_attributes_do_not_fill_the_daemons_memory() {
    let (m, _sig) = shared();
    let pid = m.pid().unwrap();
    let script = r#"
import os
v = b"x" * 65536
for i in range(150):
    p = "m%03d.eml" % i
    open(p, "w").write("To: x@example.org\n\nhi\n")
    for k in range(4):
        os.setxattr(p, "user.pad%d" % k, v)
for i in range(150):
    os.stat("m%03d.eml" % i)
    assert len(os.getxattr("m%03d.eml" % i, "user.pad3")) == 65536
print("ok")
"#;
    let before = rss_kib(pid);
    assert_eq!(ok(py(ALICE, &m, script)), "ok\n");
    let grown = rss_kib(pid).saturating_sub(before);
    // 150 x 256 KiB = 37.5 MiB when cached.
    assert!(grown < 15 * 1024, "the daemon grew by {grown} KiB");
}
