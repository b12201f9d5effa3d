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
