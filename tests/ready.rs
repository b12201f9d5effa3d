//! Issue 17: `is_ready` from concurrent writers shares its syncs (src/fs/ready.rs). Each
//! hand-over must still happen exactly once, with the content given its Date and Message-ID
//! once, its Message-ID recorded once, and everything on disk when the call returns.

mod common;

use common::*;
use std::collections::HashMap;
use std::sync::{Arc, Barrier};

const N: usize = 40;

fn drafts(m: &Mount) {
    for i in 0..N {
        // Half lack Date and Message-ID (is_ready adds them), half bring their own.
        let extra = if i % 2 == 0 {
            String::new()
        } else {
            format!("Message-ID: <own-{i}@example.com>\nDate: Mon, 23 Nov 2026 10:00:00 +0000\n")
        };
        std::fs::write(
            m.path(&format!("m{i}.eml")),
            format!("From: a@example.com\nTo: u{i}@example.org\nSubject: m{i}\n{extra}\nbody {i}\n"),
        )
        .unwrap();
        // Held, so the senders leave the Pending messages where the test can look at them.
        setxattr(&m.path(&format!("m{i}.eml")), "user.hold", b"1").unwrap();
    }
}

#[test]
fn is_ready_from_four_writers_hands_each_message_over_exactly_once_and_durably() {
    let mut m = Mount::new(&[]);
    drafts(&m);
    // Two Drafts a user wrote with one Message-ID (a template copied twice): two messages,
    // each goes once.
    for name in ["dup1.eml", "dup2.eml"] {
        std::fs::write(
            m.path(name),
            "From: a@example.com\nTo: d@example.org\nMessage-ID: <same@example.com>\nSubject: d\n\nd\n",
        )
        .unwrap();
        setxattr(&m.path(name), "user.hold", b"1").unwrap();
    }
    let mut names: Vec<String> = (0..N).map(|i| format!("m{i}.eml")).collect();
    names.extend(["dup1.eml".to_string(), "dup2.eml".to_string()]);
    // Four writers each make every message ready, each in another order, all at once: every
    // message sees concurrent callers, and so do the two copies.
    let start = Arc::new(Barrier::new(4));
    let results: Vec<Vec<(String, Result<(), i32>)>> = (0..4)
        .map(|w| {
            let mut order = names.clone();
            order.rotate_left(w * names.len() / 4);
            if w % 2 == 1 {
                order.reverse();
            }
            let paths: Vec<_> = order.iter().map(|n| (n.clone(), m.path(n))).collect();
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                paths
                    .into_iter()
                    .map(|(n, p)| (n, setxattr(&p, "user.is_ready", b"1")))
                    .collect()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let mut ok: HashMap<String, usize> = HashMap::new();
    for (n, r) in results.iter().flatten() {
        match r {
            Ok(()) => *ok.entry(n.clone()).or_default() += 1,
            // Already ready (frozen), as one call after the other would find it.
            Err(e) if n.starts_with('m') => assert_eq!(*e, libc::EACCES, "{n}"),
            Err(e) => assert_eq!(*e, libc::EACCES, "{n}"),
        }
    }
    for i in 0..N {
        assert_eq!(ok.get(&format!("m{i}.eml")), Some(&1), "m{i}.eml made ready once");
    }
    for d in ["dup1.eml", "dup2.eml"] {
        assert_eq!(ok.get(d), Some(&1), "{d} made ready once: {ok:?}");
    }

    // What the callers were answered is on disk: a kill -9 right after changes nothing.
    m.crash();
    m.start();
    let sent_ids = std::fs::read_to_string(m.spool.join("mailfs.sent-ids")).unwrap();
    for i in 0..N {
        let name = format!("m{i}.eml");
        assert_eq!(
            m.attr(&m.path(&name).to_string_lossy(), "status"),
            "Pending",
            "{name}"
        );
        let text = std::fs::read_to_string(m.spool.join(&name)).unwrap();
        let count = |field: &str| {
            text.lines()
                .filter(|l| l.to_ascii_lowercase().starts_with(field))
                .count()
        };
        assert_eq!(count("message-id:"), 1, "{name}: {text}");
        assert_eq!(count("date:"), 1, "{name}: {text}");
        assert!(text.contains(&format!("body {i}")), "{name}: {text}");
        let id = m.attr(&m.path(&name).to_string_lossy(), "message_id");
        let id = id.trim().trim_start_matches('<').trim_end_matches('>');
        assert_eq!(
            sent_ids.lines().filter(|l| *l == id).count(),
            1,
            "{id} recorded once"
        );
    }
    let pending = ["dup1.eml", "dup2.eml"]
        .iter()
        .filter(|n| m.attr(&m.path(n).to_string_lossy(), "status") == "Pending")
        .count();
    assert_eq!(pending, 2);
}
