//! Issue 17: the kernel keeps a message's cached pages across opens only while its content is
//! unchanged. Each change path (a write, a rename over, composing by parts, is_ready adding
//! Date and Message-ID) is made on a message whose pages the kernel holds and keeps (read
//! twice after its version settled); the next read must see the new bytes. A change that keeps
//! the size (a part rewritten with as many bytes) is the one only the dropped pages can show:
//! the kernel drops a file's pages by itself when it sees its size change.

mod common;

use common::*;
use std::time::Duration;

/// Reads `name` twice once its version is older than the two seconds mailfs waits before it
/// trusts a stamp, so the second open keeps the pages; returns the content.
fn cached(m: &Mount, name: &str) -> String {
    std::thread::sleep(Duration::from_millis(2300));
    let a = m.ok(&format!("cat {name}"));
    let b = m.ok(&format!("cat {name}"));
    assert_eq!(a, b, "two reads of an unchanged {name}");
    a
}

#[test]
fn every_change_is_seen_after_cached_reads() {
    let m = Mount::new(&[]);
    let msg = |subject: &str, body: &str| message("a@example.com", "b@example.com", subject, body);

    // A write through the mount.
    std::fs::write(m.path("w.eml"), msg("one", "first body")).expect("write");
    assert!(cached(&m, "w.eml").contains("Subject: one"));
    std::fs::write(m.path("w.eml"), msg("two", "other body")).expect("write");
    let now = m.ok("cat w.eml");
    assert!(
        now.contains("Subject: two") && now.contains("other body"),
        "{now}"
    );

    // A rename over a cached message.
    std::fs::write(m.path("r.eml"), msg("old", "kept body")).expect("write");
    std::fs::write(m.path("n.eml"), msg("new", "next body")).expect("write");
    assert!(cached(&m, "r.eml").contains("Subject: old"));
    assert!(cached(&m, "n.eml").contains("Subject: new"));
    m.ok("mv n.eml r.eml");
    let now = m.ok("cat r.eml");
    assert!(now.contains("Subject: new") && now.contains("next body"), "{now}");

    // Composing by parts rebuilds the .eml.
    std::fs::write(m.path("c.eml"), msg("parts", "body AAAA")).expect("write");
    let before = cached(&m, "c.eml");
    assert!(before.contains("body AAAA"), "{before}");
    m.ok("printf 'body BBBB\\n' > c.eml.parts/Body.txt");
    let now = m.ok("cat c.eml");
    assert!(now.contains("body BBBB") && !now.contains("body AAAA"), "{now}");
    // Rebuilt again with a body of the same length: the .eml keeps its size, so only the
    // dropped pages (not the kernel's size check) can show the change.
    assert_eq!(cached(&m, "c.eml"), now);
    m.ok("printf 'body CCCC\\n' > c.eml.parts/Body.txt");
    let again = m.ok("cat c.eml");
    assert_eq!(again.len(), now.len(), "same size: {again}");
    assert!(
        again.contains("body CCCC") && !again.contains("body BBBB"),
        "{again}"
    );

    // is_ready adds Date and Message-ID to a message that lacks them.
    std::fs::write(m.path("d.eml"), msg("ready", "ready body")).expect("write");
    let before = cached(&m, "d.eml");
    assert!(!before.contains("Message-ID:"), "{before}");
    m.ok("setfattr -n user.is_ready -v 1 d.eml");
    let now = m.ok("cat d.eml");
    assert!(
        now.contains("Message-ID:") && now.contains("Date:") && now.contains("ready body"),
        "{now}"
    );
    // And a read after that, with the pages kept, is still the new content.
    assert_eq!(cached(&m, "d.eml"), now);
}

/// Passthrough (src/fs/passthrough.rs, root mounts): a reader holding a message open reads
/// its spool file directly and keeps the version it opened, as through mailfs; a writer, a
/// rename over and is_ready while it is open are neither refused nor seen by it, and every
/// open after a change reads the new bytes, through `read` and `mmap` alike.
#[test]
fn readers_passing_through_keep_their_version_and_block_no_change() {
    let m = Mount::new(&[]);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        assert!(
            m.log().contains("pass through to their spool files"),
            "{}",
            m.log()
        );
    }
    let msg = |subject: &str, body: &str| message("a@example.com", "b@example.com", subject, body);
    std::fs::write(m.path("p.eml"), msg("AAAA", "first")).expect("write");
    std::fs::write(m.path("q.eml"), msg("CCCC", "third")).expect("write");
    let script = r#"
import mmap, os, subprocess
def read(name):
    with open(name, 'rb') as f:
        return f.read()
a = read('p.eml')
r = open('p.eml', 'rb')
head = r.read(5)
r0 = open('p.eml', 'rb')
# A writer of the message while readers hold it (same length: only bytes can differ).
with open('p.eml', 'r+b') as w:
    w.write(a.replace(b'AAAA', b'BBBB').replace(b'first', b'secnd'))
b = read('p.eml')
assert b'BBBB' in b and b'secnd' in b, b
assert head + r.read() == a, 'an open reader changed version'
assert r0.read() == a
assert os.fstat(r.fileno()).st_size == len(a)
r2 = open('p.eml', 'rb')
# A rename over it, then is_ready adding Date and Message-ID, while r2 holds the second version.
os.rename('q.eml', 'p.eml')
c = read('p.eml')
assert b'CCCC' in c and b'third' in c, c
with open('p.eml', 'rb') as f:
    assert mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)[:] == c
r3 = open('p.eml', 'rb')
subprocess.run(['setfattr', '-n', 'user.is_ready', '-v', '1', 'p.eml'], check=True)
d = read('p.eml')
assert b'Message-ID:' in d and b'Date:' in d and b'third' in d, d
assert r2.read() == b, 'an open reader changed version'
assert r3.read() == c
# An appending writer of a Draft while a reader holds it.
open('s.eml', 'wb').write(a)
r4 = open('s.eml', 'rb')
with open('s.eml', 'ab') as w:
    w.write(b'more\n')
assert read('s.eml') == a + b'more\n'
assert r4.read() == a
for f in (r, r0, r2, r3, r4):
    f.close()
print('ok')
"#;
    assert_eq!(
        m.ok(&format!("python3 -c '{}'", script.replace('\'', "'\\''")))
            .trim(),
        "ok"
    );
    // Closed and opened again: the current version, twice (no stale backing file left).
    assert_eq!(m.ok("cat p.eml"), m.ok("cat p.eml"));
    assert!(m.ok("cat p.eml").contains("Message-ID:"));
}

/// Issue 17, `cp` into the mount: a message shows a 1 MiB preferred I/O size, so `cp` writes
/// it in 1 MiB requests, and a new message's writer bypasses the kernel's page cache
/// (FOPEN_DIRECT_IO; mailfs writes each request into the spool file in 128 KiB pieces). A
/// reader that cached the first bytes while the message was being written sees every byte
/// the writer added, through `read` and `mmap`, and so does the spool file; cp of a file that
/// is not a multiple of any of these sizes arrives whole.
#[test]
fn a_new_message_written_in_large_requests_is_seen_whole() {
    let m = Mount::new(&[]);
    let script = r#"
import mmap, os
data = b''.join(b'%07d\n' % i for i in range(400000))[:3 * 1048576 + 300007]
fd = os.open('big.eml', os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
assert os.fstat(fd).st_blksize == 1048576, os.fstat(fd).st_blksize
assert os.write(fd, data[:100]) == 100
r = open('big.eml', 'rb')
assert r.read() == data[:100]
off = 100
for n in (300001, 1048576, 1048576, 1048576, 1048576):
    off += os.write(fd, data[off:off + n])
assert off == len(data), off
r.seek(0)
assert r.read() == data, 'a reader open during the writes missed bytes'
os.close(fd)
r.seek(0)
assert r.read() == data
r.close()
with open('big.eml', 'rb') as f:
    assert f.read() == data
    assert mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)[:] == data
assert os.stat('big.eml').st_blksize == 1048576
print('ok')
"#;
    let script = script.replace('\'', "'\\''");
    assert_eq!(m.ok(&format!("python3 -c '{script}'")).trim(), "ok");
    let want: Vec<u8> = (0..400000)
        .flat_map(|i| format!("{i:07}\n").into_bytes())
        .take(3 * 1048576 + 300007)
        .collect();
    assert_eq!(std::fs::read(m.spool.join("big.eml")).expect("spool file"), want);
    // cp into a new message: 1 MiB writes and a short last one.
    let src = m.tmp.path().join("src.bin");
    std::fs::write(&src, &want[..2 * 1048576 + 12345]).expect("write source");
    m.ok(&format!("cp '{}' copy.eml", src.display()));
    assert_eq!(
        std::fs::read(m.spool.join("copy.eml")).expect("spool file"),
        want[..2 * 1048576 + 12345]
    );
}
