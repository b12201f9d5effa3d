//! The lock order of `MailFs` (written where the locks are declared, in fs.rs): `ns` before a
//! handle's lock. A close that must take `ns` lets go of its handle first; otherwise a rename,
//! which holds `ns` while it retargets every open handle, deadlocks with it.

use std::time::Duration;

use super::super::Handle;
use super::*;

/// Runs `flush(fh)` while this thread holds `ns` (as a rename does), and checks that the
/// flush, waiting for `ns`, does not hold the handle meanwhile. Returns the flush's result.
fn flush_against_a_rename(h: &Harness, fh: u64) -> Result<()> {
    let handle = h.fs.handle(fh).unwrap();
    std::thread::scope(|s| {
        let ns = h.fs.ns.lock();
        let closer = s.spawn(|| h.fs.flush(fh));
        std::thread::sleep(Duration::from_millis(200));
        let free = handle.try_lock_for(Duration::from_secs(2)).is_some();
        drop(ns);
        let r = closer.join().unwrap();
        assert!(
            free,
            "the close held its handle while waiting for ns: a rename would deadlock"
        );
        r
    })
}

#[test]
fn a_close_that_discards_a_new_message_lets_go_of_its_handle_first() {
    let h = Harness::new();
    let (_, fh) =
        h.fs.create(ALICE, ROOT, "n.eml", 0o600, libc::O_WRONLY | libc::O_CREAT)
            .unwrap();
    h.fs.write(fh, 0, b"To: x@example.org\n\nhalf of it").unwrap();
    // The next write failed (a full spool): the close removes the half-written message.
    match &mut *h.fs.handle(fh).unwrap().lock() {
        Handle::File { failed, .. } => *failed = Some(libc::ENOSPC),
        _ => unreachable!("a message's handle"),
    }
    assert_eq!(errno(flush_against_a_rename(&h, fh)), libc::ENOSPC);
    h.fs.release(fh);
    assert!(!h.exists("n.eml"), "no half-written Draft stays (SPEC §9)");
}

#[test]
fn a_part_writer_s_close_lets_go_of_its_handle_before_the_rebuild() {
    let h = Harness::new();
    h.write_new(ALICE, "m.eml", PLAIN);
    let parts = h.parts(ALICE, "m.eml");
    let b = h.ino(ALICE, parts, "Body.txt").unwrap();
    let fh = h.fs.open(ALICE, b, libc::O_WRONLY | libc::O_TRUNC).unwrap();
    h.fs.write(fh, 0, b"rebuilt\n").unwrap();
    flush_against_a_rename(&h, fh).unwrap();
    h.fs.release(fh);
    assert_eq!(h.part(ALICE, "m.eml", "Body.txt").unwrap(), b"rebuilt\n");
}

#[test]
fn a_close_that_puts_a_copy_in_place_takes_ns_before_its_handle() {
    let h = Harness::new();
    let ino = h.write_new(ALICE, "m.eml", PLAIN);
    let fh = h.fs.open(ALICE, ino, libc::O_WRONLY | libc::O_TRUNC).unwrap();
    h.fs.write(fh, 0, b"To: y@example.org\n\nnew\n").unwrap();
    flush_against_a_rename(&h, fh).unwrap();
    h.fs.release(fh);
    assert_eq!(h.eml("m.eml"), b"To: y@example.org\n\nnew\n");
}
