//! Names the kernel keeps (issue 17, 100,000-message spool): `ls -l` of the root is answered
//! from READDIRPLUS with no LOOKUP per name, and a name changed in the spool directory by any
//! other process leaves the kernel's cache at once (spool watch), well within ENTRY_TTL.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// The kernel keeps root names for 1 s; the watch must drop them well before.
const WITHIN: Duration = Duration::from_millis(500);

fn gone_within(m: &Mount, name: &str) -> Duration {
    let t = Instant::now();
    while m.sh(&format!("stat '{name}' > /dev/null 2>&1")).status.success() {
        assert!(
            t.elapsed() < WITHIN,
            "{name} still shows {:?} after it left the spool",
            t.elapsed()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    t.elapsed()
}

fn lookups(m: &Mount) -> usize {
    m.log().lines().filter(|l| l.contains(" LOOKUP ")).count()
}

#[test]
fn ls_l_of_the_root_needs_no_lookup_per_name() {
    let mut m = Mount::new(&[]);
    m.stop();
    for i in 0..200 {
        std::fs::write(
            m.spool.join(format!("m{i:03}.eml")),
            message("a@example.com", "b@example.org", &format!("s{i}"), "x"),
        )
        .unwrap();
    }
    m.env
        .push(("RUST_LOG".into(), "info,fuser::request=debug".into()));
    m.start();
    m.ok("true");
    let before = lookups(&m);
    let out = m.ok("ls -l");
    assert_eq!(out.lines().filter(|l| l.contains(".eml")).count(), 400, "{out}");
    let made = lookups(&m) - before;
    assert!(made < 20, "ls -l of 400 names made {made} LOOKUPs");
    // What the listing showed is what a lookup shows (mode, owner, size, time).
    let listed = m.ok("ls -ln --time-style=+%s m000.eml m000.eml.parts m199.eml");
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(
        m.ok("ls -ln --time-style=+%s m000.eml m000.eml.parts m199.eml"),
        listed
    );
    assert!(lookups(&m) > before + made, "expired names are looked up again");
}

#[test]
fn names_changed_in_the_spool_directory_leave_the_kernel_at_once() {
    let m = Mount::new(&[]);
    for n in ["a", "b", "c"] {
        m.ok(&format!(
            "printf 'From: a@example.com\\nTo: b@example.org\\nSubject: {n}\\n\\n{n}\\n' > {n}.eml"
        ));
    }
    // Listed with attributes, then stat'ed: all cached by the kernel now.
    m.ok("ls -l > /dev/null && stat a.eml a.eml.parts b.eml c.eml > /dev/null");
    // Another tool removes a message's file.
    std::fs::remove_file(m.spool.join("a.eml")).unwrap();
    gone_within(&m, "a.eml");
    gone_within(&m, "a.eml.parts");
    // Another process renames one (its attributes go with it).
    std::fs::rename(m.spool.join("b.eml"), m.spool.join("d.eml")).unwrap();
    let _ = std::fs::rename(m.spool.join("b.struct"), m.spool.join("d.struct"));
    gone_within(&m, "b.eml");
    assert!(m.ok("cat d.eml").contains("Subject: b"));
    // Another process replaces one's content: the new size shows at the next stat.
    let c = m.spool.join("c.eml");
    let bigger = message("a@example.com", "b@example.org", "c", &"long body ".repeat(50));
    let tmp = m.spool.join(".c.new");
    std::fs::write(&tmp, &bigger).unwrap();
    std::fs::rename(&tmp, &c).unwrap();
    let want = bigger.len().to_string();
    let t = Instant::now();
    while m.ok("stat -c %s c.eml").trim() != want {
        assert!(t.elapsed() < WITHIN, "c.eml still shows its old size");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(m.ok("cat c.eml"), bigger);
}
