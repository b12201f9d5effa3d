//! Which close of a writer's descriptor is the writer's close (audit F15).
//!
//! A copy of a Draft being written (`whole.rs`) and a part being written (`handles.rs`) go
//! into the message at a close. The kernel sends FLUSH at every close(2) of any descriptor of
//! the open file, including those a child process inherited (fork, system(), subprocess, a
//! shell running a command) and closes at exec or exit; taking each of those as the writer's
//! close put half-written copies in place, where readers saw them and `is_ready=1` froze and
//! sent them. RELEASE, the last close of all, would be the exact point, but the kernel sends
//! it in the background: close(2) returns once FLUSH is answered, so a `printf > X.eml`
//! followed at once by `cat` or `setfattr -n user.is_ready` could still find the old content.
//!
//! So a FLUSH puts the bytes in place only when it comes from the process that opened the
//! handle (its own close, or its exit); a FLUSH from any other process changes nothing, and
//! the bytes go in place at the opener's close, at fsync, or at RELEASE, whichever is first.
//! The process is its thread group: FUSE names the caller by thread id, and the opener may
//! close from another thread. OPEN carries no lock owner (the kernel's id of a descriptor
//! table, which FLUSH carries), so the thread group, read from /proc, is what ties a FLUSH to
//! the OPEN. When the opener cannot be known (a caller outside mailfs's pid namespace shows
//! as pid 0, or /proc cannot be read), every FLUSH counts, as before.

use std::fs;

use parking_lot::Mutex;

use super::{Handle, MailFs};

/// The process that opened a writer's handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Opener {
    /// The thread that opened it, as the request named it.
    tid: u32,
    /// Its thread group (the process).
    tgid: u32,
}

/// The thread group of task `pid` (a thread or process id in this pid namespace).
fn thread_group(pid: u32) -> Option<u32> {
    if pid == 0 {
        return None;
    }
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

impl Opener {
    /// The opener named `pid` in its OPEN or CREATE request; `None` when it cannot be known.
    pub(super) fn of(pid: u32) -> Option<Opener> {
        thread_group(pid).map(|tgid| Opener { tid: pid, tgid })
    }

    /// Whether a FLUSH from task `pid` is the opener's own close. A task that cannot be
    /// looked up is not taken for the opener: its bytes wait for the opener or RELEASE.
    pub(super) fn closes(&self, pid: u32) -> bool {
        pid == self.tid || thread_group(pid) == Some(self.tgid)
    }
}

impl MailFs {
    /// Notes who opened `fh` (the pid of its OPEN or CREATE request). Only writers of a
    /// message's copy or of a part need it, so only they pay for the look-up.
    pub fn opened_by(&self, fh: u64, pid: u32) {
        let Ok(handle) = self.handle(fh) else {
            return;
        };
        let writer = matches!(
            &*handle.lock(),
            Handle::File { pending: Some(_), .. } | Handle::PartWrite(_)
        );
        if !writer {
            return;
        }
        let who = Opener::of(pid);
        match &mut *handle.lock() {
            Handle::File { pending: Some(p), .. } => p.opener = who,
            Handle::PartWrite(w) => w.opener = who,
            _ => {}
        }
    }

    /// A FLUSH from task `pid`: the writer's close when it comes from the handle's opener (or
    /// the opener is not known); from any other process, nothing happens (see the top).
    pub fn flush_by(&self, fh: u64, pid: u32) -> crate::error::Result<()> {
        let handle = self.handle(fh)?;
        if self.closed_by_opener(&handle, pid) {
            self.flush(fh)
        } else {
            Ok(())
        }
    }

    fn closed_by_opener(&self, handle: &Mutex<Handle>, pid: u32) -> bool {
        let opener = match &*handle.lock() {
            Handle::File { pending: Some(p), .. } => p.opener,
            Handle::PartWrite(w) => w.opener,
            _ => None,
        };
        opener.is_none_or(|o| o.closes(pid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_opener_is_its_process_and_a_child_is_not() {
        let me = std::process::id();
        let o = Opener::of(me).expect("this process");
        assert!(o.closes(me));
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("spawn sleep");
        assert!(!o.closes(child.id()), "a child process is not the opener");
        let _ = child.kill();
        let _ = child.wait();
        // Another thread of the opener is the opener (asked while the thread lives).
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            // SAFETY: gettid has no preconditions.
            let _ = tx.send(unsafe { libc::gettid() } as u32);
            let _ = done_rx.recv();
        });
        let tid = rx.recv().expect("tid");
        assert_ne!(tid, me);
        assert!(o.closes(tid), "another thread of the opener");
        let _ = done_tx.send(());
        t.join().expect("thread");
        assert_eq!(Opener::of(0), None, "a caller outside the namespace");
    }
}
