//! Audit F15: a writer's copy of a Draft goes in place at the writer's own close (or fsync,
//! or the last close of all), never at the close of a descriptor a child process inherited.
//! A program writing a Draft that runs any command (system(), subprocess, a shell) used to
//! publish its half-written copy when the child closed the descriptor; readers saw it and an
//! `is_ready=1` at that moment froze and sent it.

mod common;

use common::*;

const ORIG: &str = "From: a@example.com\nTo: b@example.org\nSubject: race-orig\n\
                    Date: Mon, 23 Nov 2026 10:00:00 +0000\nMessage-ID: <orig@example.com>\n\norig body\n";

/// Runs a Python script in the mount point (under `timeout`, like every step on a mount).
fn python(m: &Mount, script: &str) {
    m.ok(&format!("python3 -c \"$(cat <<'PY'\n{script}\nPY\n)\""));
}

fn draft(m: &Mount, name: &str, content: &str) {
    std::fs::write(m.path(name), content).expect("write draft");
    // Held: the senders leave a Pending message where the test can look at it.
    setxattr(&m.path(name), "user.hold", b"1").expect("hold");
}

#[test]
fn a_child_closing_an_inherited_descriptor_does_not_publish_a_half_written_draft() {
    let mut m = Mount::new(&[]);
    draft(&m, "rh2.eml", ORIG);
    draft(&m, "done.eml", ORIG);

    // The audit's scenario: half written, a child runs, readers still see the old content and
    // is_ready freezes the old content; the writer's later write is refused.
    let py = r#"
import os, subprocess
ORIG = open('rh2.eml', 'rb').read()
for mode in (os.O_WRONLY | os.O_TRUNC, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, os.O_RDWR):
    fd = os.open('rh2.eml', mode)
    os.write(fd, b'From: a@example.com\nTo: b@example.org\nSubject: race-NEW\n\nfirst half of the new bo')
    subprocess.run(['true'], check=True)
    os.system('true')
    seen = open('rh2.eml', 'rb').read()
    assert seen == ORIG, ('a reader saw the half-written copy after a child exited', mode, seen)
    seen = subprocess.run(['cat', 'rh2.eml'], check=True, capture_output=True).stdout
    assert seen == ORIG, ('cat saw the half-written copy', mode, seen)
    if mode == os.O_RDWR:
        break
    os.close(fd)
    fd = os.open('rh2.eml', os.O_WRONLY | os.O_TRUNC)
    os.write(fd, ORIG)
    os.close(fd)
    assert open('rh2.eml', 'rb').read() == ORIG
assert subprocess.run(['setfattr', '-n', 'user.is_ready', '-v', '1', 'rh2.eml']).returncode == 0
try:
    os.write(fd, b'dy\n')
    raise SystemExit('a write after is_ready was accepted')
except PermissionError:
    pass
try:
    os.close(fd)
except PermissionError:
    pass
assert open('rh2.eml', 'rb').read() == ORIG, open('rh2.eml', 'rb').read()
"#;
    python(&m, py);
    assert_eq!(m.attr("rh2.eml", "status"), "Pending");
    assert_eq!(std::fs::read_to_string(m.path("rh2.eml")).expect("read"), ORIG);
    assert_eq!(
        std::fs::read_to_string(m.spool.join("rh2.eml")).expect("read spool"),
        ORIG,
        "the frozen message is not the old content"
    );

    // Without is_ready the writer finishes after its child: its own close puts the whole new
    // content in place, and the content is there as soon as the close returns.
    let py = r#"
import os, subprocess
fd = os.open('done.eml', os.O_WRONLY | os.O_TRUNC)
os.write(fd, b'From: a@example.com\nTo: b@example.org\nSubject: whole\n\nfirst half, ')
subprocess.run(['true'], check=True)
os.write(fd, b'second half\n')
os.close(fd)
seen = subprocess.run(['cat', 'done.eml'], check=True, capture_output=True).stdout
assert seen == b'From: a@example.com\nTo: b@example.org\nSubject: whole\n\nfirst half, second half\n', seen
"#;
    python(&m, py);
    assert_eq!(m.attr("done.eml", "status"), "Draft");

    // A shell's descriptor written by its children: each child's exit leaves the Draft as it
    // was; the shell's own close puts everything in place, visible to the next command.
    std::fs::write(
        m.tmp.path().join("head"),
        "From: a@example.com\nTo: b@example.org\n",
    )
    .expect("head");
    std::fs::write(m.tmp.path().join("tail"), "Subject: sh\n\nshell body\n").expect("tail");
    std::fs::write(m.tmp.path().join("late"), "Subject: late\n\nlate body\n").expect("late");
    let out = m.ok(&format!(
        "exec 3> done.eml; cat '{0}/head' >&3; cat done.eml; echo ---; cat '{0}/tail' >&3; \
         cat done.eml; echo ---; exec 3>&-; cat done.eml; \
         getfattr --only-values -n user.env_to done.eml",
        m.tmp.path().display()
    ));
    assert_eq!(
        out,
        "From: a@example.com\nTo: b@example.org\nSubject: whole\n\nfirst half, second half\n---\n\
         From: a@example.com\nTo: b@example.org\nSubject: whole\n\nfirst half, second half\n---\n\
         From: a@example.com\nTo: b@example.org\nSubject: sh\n\nshell body\nb@example.org"
    );

    // The shell closes its descriptor before its child writes: the bytes go in at the last
    // close (RELEASE, which the kernel sends in the background, so it is waited for).
    m.ok(&format!(
        "exec 3> done.eml; (sleep 0.3; cat '{0}/head' '{0}/late' >&3) & exec 3>&-; wait",
        m.tmp.path().display()
    ));
    wait_for(
        "the child's bytes in place at the last close",
        std::time::Duration::from_secs(5),
        || {
            std::fs::read_to_string(m.path("done.eml"))
                .is_ok_and(|s| s == "From: a@example.com\nTo: b@example.org\nSubject: late\n\nlate body\n")
        },
    );
    m.stop();
}

#[test]
fn a_child_closing_an_inherited_part_writer_does_not_compose_half_a_body() {
    let mut m = Mount::new(&[]);
    draft(&m, "prace.eml", ORIG);
    draft(&m, "pdone.eml", ORIG);
    let py = r#"
import os, subprocess
ORIG = open('prace.eml', 'rb').read()
fd = os.open('prace.eml.parts/Body.txt', os.O_WRONLY | os.O_TRUNC)
os.write(fd, b'new half')
subprocess.run(['true'], check=True)
assert open('prace.eml', 'rb').read() == ORIG, ('composed at a child exit', open('prace.eml', 'rb').read())
# Never the new bytes (stat shows the size the writer has so far, so a reader may get the old
# body cut to that size until the writer closes).
b = open('prace.eml.parts/Body.txt', 'rb').read()
assert b'orig body\n'.startswith(b) and b'new' not in b, b
assert subprocess.run(['setfattr', '-n', 'user.is_ready', '-v', '1', 'prace.eml']).returncode == 0
refused = False
try:
    os.write(fd, b' and the rest\n')
except PermissionError:
    refused = True
try:
    os.close(fd)
except PermissionError:
    refused = True
assert refused, 'the writer of a frozen message was not told'
assert open('prace.eml', 'rb').read() == ORIG, open('prace.eml', 'rb').read()

fd = os.open('pdone.eml.parts/Body.txt', os.O_WRONLY | os.O_TRUNC)
os.write(fd, b'new half')
subprocess.run(['true'], check=True)
assert b'new half' not in open('pdone.eml', 'rb').read()
os.write(fd, b' and the rest\n')
os.close(fd)
assert open('pdone.eml.parts/Body.txt', 'rb').read() == b'new half and the rest\n'
"#;
    python(&m, py);
    assert_eq!(m.attr("prace.eml", "status"), "Pending");
    assert_eq!(
        std::fs::read_to_string(m.spool.join("prace.eml")).expect("read spool"),
        ORIG
    );
    assert!(
        std::fs::read_to_string(m.spool.join("pdone.eml"))
            .expect("read spool")
            .contains("new half and the rest"),
    );
    m.stop();
}

/// Audit-7 G1: bash runs a builtin with `>&3` by pointing fd 1 at the file and then closing
/// that duplicate, in the opener's own process, while fd 3 stays open: that close put the half
/// written copy in place (readers saw it, `is_ready=1` froze and sent it). Only the close of
/// the opener's last descriptor (or fsync, or the last close of all) puts the bytes in.
#[test]
fn a_builtin_writing_through_a_kept_descriptor_does_not_publish_half_a_draft() {
    let mut m = Mount::new(&[]);
    draft(&m, "bw.eml", ORIG);
    let out = m.ok(
        "exec 3> bw.eml; printf 'From: a@example.com\\nTo: b@example.org\\nSubject: new\\n\\nhalf' >&3; \
         cat bw.eml; echo ---; printf ' rest\\n' >&3; exec 3>&-; cat bw.eml",
    );
    assert_eq!(
        out,
        format!("{ORIG}---\nFrom: a@example.com\nTo: b@example.org\nSubject: new\n\nhalf rest\n")
    );
    // Through a part: the body is composed at the last close, never half.
    draft(&m, "bp.eml", ORIG);
    let out = m.ok(
        "exec 3> bp.eml.parts/Body.txt; printf 'new half' >&3; cat bp.eml.parts/Body.txt; echo; \
         echo ---; printf ' rest\\n' >&3; exec 3>&-; cat bp.eml.parts/Body.txt",
    );
    let (mid, end) = out.split_once("---\n").expect("marker");
    assert!(!mid.contains("new"), "a reader saw half a body: {mid:?}");
    assert_eq!(end, "new half rest\n");
    m.stop();
}

/// Audit-7 G5: a new message's bytes go straight into its `.eml`, and `is_ready=1` from another
/// process while its creator was still writing froze and sent half of it. That is EBUSY now;
/// once the creator has closed it, the same `setfattr` sends the whole message. The creator
/// may make it ready through its own descriptor (`cp -a` does).
#[test]
fn is_ready_while_another_process_still_creates_the_message_is_ebusy() {
    let mut m = Mount::new(&[]);
    python(
        &m,
        r#"
import os, subprocess
fd = os.open('nh.eml', os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
os.write(fd, b'From: a@example.com\nTo: b@example.org\nSubject: new\n\nfirst half')
r = subprocess.run(['setfattr', '-n', 'user.is_ready', '-v', '1', 'nh.eml'], capture_output=True, text=True)
assert r.returncode != 0 and 'busy' in r.stderr, (r.returncode, r.stderr)
os.write(fd, b' second half\n')
os.setxattr(fd, 'user.hold', b'1')
os.close(fd)
r = subprocess.run(['setfattr', '-n', 'user.is_ready', '-v', '1', 'nh.eml'], capture_output=True, text=True)
assert r.returncode == 0, r.stderr
"#,
    );
    assert_eq!(m.attr("nh.eml", "is_ready"), "1");
    let content = std::fs::read_to_string(m.path("nh.eml")).expect("read");
    assert!(content.ends_with("\n\nfirst half second half\n"), "{content:?}");
    m.stop();
}

/// audit-16 D4: a `kill -9` of the mount while a new message was being written left the part
/// written so far as an ordinary Draft, which `is_ready=1` froze and sent cut short. Now it
/// is refused (EINVAL) until written again; a message whose creator closed it is not.
#[test]
fn a_new_message_cut_short_by_a_killed_mount_is_not_made_ready() {
    let mut m = Mount::new(&[]);
    draft(&m, "whole.eml", ORIG);
    // A writer that creates a new message, writes half of it and waits.
    let script = m.tmp.path().join("writer.py");
    std::fs::write(
        &script,
        "import os, sys, time\n\
         fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)\n\
         os.write(fd, b'From: a@example.com\\nTo: b@example.org\\nSubject: cut\\n\\nfirst half')\n\
         print('written', flush=True)\n\
         time.sleep(60)\n",
    )
    .unwrap();
    let mut writer = std::process::Command::new("timeout")
        .arg("60")
        .arg("python3")
        .arg(&script)
        .arg(m.path("cut.eml"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(writer.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "written");
    m.crash();
    let _ = writer.kill();
    let _ = writer.wait();
    m.start();
    assert!(m.ok("cat cut.eml").ends_with("first half"), "the bytes are kept");
    let err = m.fails("setfattr -n user.is_ready -v 1 cut.eml");
    assert!(err.contains("Invalid argument"), "{err}");
    assert_eq!(m.attr("cut.eml", "status"), "Draft");
    assert!(m.log().contains("still being written"), "{}", m.log());
    // Written again, it goes; a message its creator closed was never in question.
    m.ok("cp cut.eml ../x && cat ../x > cut.eml && setfattr -n user.is_ready -v 1 cut.eml");
    assert_eq!(m.attr("cut.eml", "status"), "Pending");
    m.ok("printf 'From: a@example.com\\nTo: b@example.org\\nSubject: n\\n\\nnew\\n' > new.eml");
    m.ok("setfattr -n user.hold -v 1 new.eml && setfattr -n user.is_ready -v 1 new.eml");
    assert_eq!(m.attr("new.eml", "status"), "Pending");
}
