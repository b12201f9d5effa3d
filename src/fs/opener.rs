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
//! handle (its own close, or its exit) and that process holds the file open at no other
//! descriptor ([`holds_open`]: bash closes the duplicate it made for a builtin's `>&3`); a
//! FLUSH from any other process changes nothing, and the bytes go in place at the opener's
//! last close, at fsync, or at RELEASE, whichever is first.
//! The process is its thread group: FUSE names the caller by thread id, and the opener may
//! close from another thread. OPEN carries no lock owner (the kernel's id of a descriptor
//! table, which FLUSH carries), so the thread group, read from /proc, is what ties a FLUSH to
//! the OPEN. When the opener cannot be known (a caller outside mailfs's pid namespace shows
//! as pid 0, or /proc cannot be read), every FLUSH counts, as before.

use std::fs;

use parking_lot::Mutex;

use super::{Handle, Key, MailFs};

/// The process that opened a writer's handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Opener {
    /// The thread that opened it, as the request named it.
    tid: u32,
    /// Its thread group (the process).
    tgid: u32,
}

/// The thread group of task `pid` (a thread or process id in this pid namespace).
pub(super) fn thread_group(pid: u32) -> Option<u32> {
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

    /// Its thread group (the process).
    pub(super) fn tgid(&self) -> u32 {
        self.tgid
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
            Handle::File { pending: Some(_), .. }
                | Handle::File {
                    created: true,
                    key: Key::Message(_),
                    ..
                }
                | Handle::PartWrite(_)
        );
        if !writer {
            return;
        }
        let who = Opener::of(pid);
        if let (
            Some(o),
            Handle::File {
                created: true,
                key: Key::Message(n),
                ..
            },
        ) = (who, &*handle.lock())
        {
            self.claims.created(n, o.tgid());
        }
        match &mut *handle.lock() {
            Handle::File { pending: Some(p), .. } => p.opener = who,
            Handle::File {
                created: true,
                creator,
                ..
            } => *creator = who,
            Handle::PartWrite(w) => w.opener = who,
            _ => {}
        }
    }

    /// Whether a process other than task `pid` is still writing the new message `name` it
    /// created (audit-7 G5): a new message's bytes go straight into its `.eml`, so until its
    /// creator's last close a reader sees what is written so far, and `is_ready=1` from
    /// elsewhere would freeze and send half a message. The creator itself may make it ready
    /// (`cp -a` restores set attributes through the descriptor they wrote with), and a
    /// creator that has closed its descriptors is done even before the kernel's RELEASE.
    pub(super) fn written_by_another(&self, name: &str, pid: u32) -> bool {
        let key = Key::Message(name.to_string());
        let creators: Vec<Opener> = self
            .handles
            .lock()
            .values()
            .filter_map(|h| match &*h.lock() {
                Handle::File {
                    key: k,
                    created: true,
                    creator: Some(o),
                    ..
                } if *k == key => Some(*o),
                _ => None,
            })
            .collect();
        if creators.is_empty() {
            return false;
        }
        let ino = self.ino(key);
        creators
            .iter()
            .any(|o| !o.closes(pid) && holds_open(o.tgid, ino, name))
    }

    /// A FLUSH from task `pid` of the file with inode `ino`: the writer's close when it comes
    /// from the handle's opener (or the opener is not known) and that process holds the file
    /// open at no other descriptor; otherwise nothing happens (see the top).
    pub fn flush_by(&self, fh: u64, pid: u32, ino: u64) -> crate::error::Result<()> {
        let handle = self.handle(fh)?;
        if let Some(name) = self.creator_closing(&handle, pid, ino) {
            self.mark_finished(&name);
        }
        if self.closed_by_opener(&handle, pid, ino) {
            self.flush(fh)
        } else {
            Ok(())
        }
    }

    /// The new message a FLUSH from task `pid` finishes: its creator's own last close (the
    /// kernel's RELEASE comes later, in the background; a `kill -9` of the mount between the
    /// two must not leave the message taken as cut short).
    fn creator_closing(&self, handle: &Mutex<Handle>, pid: u32, ino: u64) -> Option<String> {
        let (name, creator) = match &*handle.lock() {
            Handle::File {
                key: Key::Message(n),
                created: true,
                creator,
                ..
            } => (n.clone(), *creator),
            _ => return None,
        };
        let closing = creator.is_none_or(|o| o.closes(pid) && !holds_open(o.tgid, ino, &name));
        closing.then_some(name)
    }

    fn closed_by_opener(&self, handle: &Mutex<Handle>, pid: u32, ino: u64) -> bool {
        let (opener, name) = match &*handle.lock() {
            Handle::File {
                pending: Some(p),
                key,
                ..
            } => (
                p.opener,
                match key {
                    Key::Message(n) => Some(n.clone()),
                    _ => None,
                },
            ),
            Handle::PartWrite(w) => (w.opener, Some(w.name.clone())),
            _ => (None, None),
        };
        let Some(o) = opener else {
            return true;
        };
        o.closes(pid) && !name.is_some_and(|n| holds_open(o.tgid, ino, &n))
    }
}

/// More descriptors than this and a process is taken as closing (its bytes go in, as before
/// this check): every FLUSH of a writer pays for the scan in a FUSE thread, so a local user
/// with a huge descriptor table must not be able to hold those threads.
const MAX_FDS_SCANNED: usize = 1024;

/// Whether process `tgid` still has the file `name` (inode `ino` of this mount) open at a
/// descriptor. A close of one of several is not the writer's close: bash restores a builtin's
/// `printf ... >&3` by closing the duplicate it made on fd 1 while fd 3 stays open (audit-7
/// G1), and a program may close a `dup` of its descriptor. At a FLUSH the descriptor being
/// closed has already left the table, and at exit the table is gone. Each descriptor's path
/// is read first (a readlink, no file to open); only one that ends with the name has its
/// inode checked, which tells this mount's file from another file system's with the same
/// name. Reading /proc sends nothing to this file system.
fn holds_open(tgid: u32, ino: u64, name: &str) -> bool {
    let Ok(dir) = fs::read_dir(format!("/proc/{tgid}/fd")) else {
        return false;
    };
    let suffix = format!("/{name}");
    for e in dir.flatten().take(MAX_FDS_SCANNED) {
        // The kernel marks a path " (deleted)" once its entry was invalidated, which mailfs
        // does to names it changes underneath (a new message's template, a rename).
        let named = fs::read_link(e.path()).is_ok_and(|p| {
            let p = p.to_string_lossy();
            p.strip_suffix(" (deleted)").unwrap_or(&p).ends_with(&suffix)
        });
        if !named {
            continue;
        }
        let info = fs::read_to_string(format!("/proc/{tgid}/fdinfo/{}", e.file_name().to_string_lossy()));
        let same_ino = info.is_ok_and(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("ino:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                == Some(ino)
        });
        if same_ino {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The opener's own descriptors are found by name and inode; a closed one, another name or
    /// another inode is not.
    #[test]
    fn holds_open_finds_a_descriptor_of_the_file_and_no_other() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("held.eml");
        let f = std::fs::File::create(&path).expect("create");
        let ino = f.metadata().expect("stat").ino();
        let me = std::process::id();
        assert!(holds_open(me, ino, "held.eml"));
        assert!(!holds_open(me, ino, "other.eml"));
        assert!(!holds_open(me, ino + 1, "held.eml"));
        drop(f);
        assert!(!holds_open(me, ino, "held.eml"));
    }

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
