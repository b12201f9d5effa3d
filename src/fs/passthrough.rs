//! FUSE passthrough for reads of messages (issue 17: cold reads at the speed of the spool's
//! disk): a read-only open of a `.eml` hands the kernel the spool file itself, and its reads
//! (and mmap) go straight to it without a round trip through mailfs.
//!
//! Only read-only opens of a message's own spool file pass through: mailfs never changes that
//! file's bytes in place (a writer writes a private copy that replaces it by a rename at close;
//! compose, is_ready and signing rename too), so a reader sees the version it opened, as it
//! does through mailfs. Writes, parts, scratch and new messages being written stay on the plain
//! path (a write mailfs does not see could not be undone on a full disk, SPEC §9).
//!
//! The kernel keeps one backing file per inode while any passthrough handle is open, and then
//! refuses (EIO) every other open of that inode that is not a passthrough of the same file;
//! and it refuses a passthrough open while the inode is open in cached mode. So:
//! - a read-only open passes through only when no plain handle of the inode is open, and joins
//!   the backing already there if it is the same spool file;
//! - any other open of an inode with a backing (a writer, or a reader of a newer version after
//!   a rename over) gets a new inode number for the name and the answer ESTALE, on which the
//!   kernel looks the name up again and opens the new inode: readers already open keep theirs.
//!
//! Needs CAP_SYS_ADMIN (registering a backing file); a mount without it, or a kernel that
//! refuses, keeps the plain path for everything.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;

use fuser::BackingId;
use parking_lot::Mutex;

use super::{Handle, Key, MailFs};

/// A backing file registered with the kernel for an inode, while passthrough handles are open.
struct Backed {
    /// (device, inode) of the spool file.
    file: (u64, u64),
    id: BackingId,
    open: u32,
}

#[derive(Default)]
struct State {
    backed: HashMap<u64, Backed>,
    /// Handles answered with passthrough: fh -> inode.
    through: HashMap<u64, u64>,
    /// Handles answered without it, per inode, and fh -> inode.
    plain: HashMap<u64, u32>,
    plain_fh: HashMap<u64, u64>,
}

#[derive(Default)]
pub struct Passthrough {
    enabled: std::sync::atomic::AtomicBool,
    state: Mutex<State>,
}

/// How an open is to be answered.
pub enum Answer<'a> {
    /// Without passthrough (the handle reads and writes through mailfs).
    Plain,
    /// With passthrough to this backing file.
    Through(&'a BackingId),
    /// ESTALE: the name has a new inode now; the kernel looks it up again and opens that.
    Stale,
}

fn identity(f: &File) -> io::Result<(u64, u64)> {
    let m = f.metadata()?;
    Ok((m.dev(), m.ino()))
}

impl Passthrough {
    pub fn enable(&self) {
        self.enabled.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn enabled(&self) -> bool {
        self.enabled.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl MailFs {
    /// Turns passthrough on (the adapter, once the kernel accepted it at init).
    pub fn enable_passthrough(&self) {
        self.through.enable();
    }

    /// The spool file of `fh` if it may pass through: a read-only open of a message's file.
    fn through_candidate(&self, fh: u64, flags: i32) -> Option<File> {
        if flags & libc::O_ACCMODE != libc::O_RDONLY || Self::writes(flags) {
            return None;
        }
        let h = self.handle(fh).ok()?;
        let h = h.lock();
        match &*h {
            Handle::File {
                file,
                key: Key::Message(_),
                created: false,
                pending: None,
                ..
            } => file.try_clone().ok(),
            _ => None,
        }
    }

    /// The spool file to register with the kernel before [`Self::answer_open`], when the open
    /// `fh` of `ino` may pass through and the inode has no backing file yet.
    pub fn backing_wanted(&self, ino: u64, fh: u64, flags: i32) -> Option<File> {
        if !self.through.enabled() {
            return None;
        }
        let f = self.through_candidate(fh, flags)?;
        let st = self.through.state.lock();
        (!st.backed.contains_key(&ino) && !st.plain.contains_key(&ino)).then_some(f)
    }

    /// Decides how the open `fh` of inode `ino` is answered and answers it with `reply`, under
    /// the lock that keeps the kernel's view and ours the same. `new` is the backing file
    /// registered for [`Self::backing_wanted`]'s file, if it wanted one. On [`Answer::Stale`]
    /// the handle is dropped here and the name already has its new inode.
    pub fn answer_open(
        &self,
        ino: u64,
        fh: u64,
        flags: i32,
        new: Option<(File, BackingId)>,
        reply: impl FnOnce(Answer<'_>),
    ) {
        if !self.through.enabled() {
            return reply(Answer::Plain);
        }
        let candidate = self.through_candidate(fh, flags).and_then(|f| identity(&f).ok());
        let mut guard = self.through.state.lock();
        let st = &mut *guard;
        match st.backed.get_mut(&ino) {
            Some(b) if candidate == Some(b.file) => {
                b.open += 1;
                st.through.insert(fh, ino);
                return reply(Answer::Through(&b.id));
            }
            Some(_) => {
                drop(guard);
                self.discard(fh);
                self.rekey(ino);
                return reply(Answer::Stale);
            }
            None => {}
        }
        if let (Some(file), Some((f, id))) = (candidate, new)
            && !st.plain.contains_key(&ino)
            && identity(&f).is_ok_and(|i| i == file)
        {
            st.through.insert(fh, ino);
            let b = st.backed.entry(ino).or_insert(Backed { file, id, open: 0 });
            b.open += 1;
            return reply(Answer::Through(&b.id));
        }
        *st.plain.entry(ino).or_default() += 1;
        st.plain_fh.insert(fh, ino);
        reply(Answer::Plain)
    }

    /// Drops a handle the kernel will never see: a writer's copy is discarded, not put in place.
    fn discard(&self, fh: u64) {
        let handle = self.handles.lock().remove(&fh);
        drop(handle);
        self.pages.released(fh);
    }

    /// A handle made by `create` (answered without passthrough).
    pub fn created_plain(&self, ino: u64, fh: u64) {
        if !self.through.enabled() {
            return;
        }
        let mut st = self.through.state.lock();
        *st.plain.entry(ino).or_default() += 1;
        st.plain_fh.insert(fh, ino);
    }

    /// Forgets the handle `fh` (at release); the last passthrough handle of an inode closes
    /// its backing file, and an inode number retired by [`Self::rekey`] is forgotten with it.
    pub(super) fn through_released(&self, fh: u64) {
        if !self.through.enabled() {
            return;
        }
        let retired = {
            let mut st = self.through.state.lock();
            if let Some(ino) = st.plain_fh.remove(&fh) {
                if let Some(n) = st.plain.get_mut(&ino) {
                    *n -= 1;
                    if *n == 0 {
                        st.plain.remove(&ino);
                    }
                }
                None
            } else if let Some(ino) = st.through.remove(&fh) {
                let last = st.backed.get_mut(&ino).is_some_and(|b| {
                    b.open -= 1;
                    b.open == 0
                });
                if last {
                    st.backed.remove(&ino);
                    Some(ino)
                } else {
                    None
                }
            } else {
                None
            }
        };
        if let Some(ino) = retired {
            self.inodes.lock().drop_retired(ino);
        }
    }

    /// Gives the name of `ino` a new inode number: the old one stays known (its open handles
    /// still stat and release) until its last passthrough handle is closed.
    fn rekey(&self, ino: u64) {
        if let Some(new) = self.inodes.lock().rekey(ino) {
            log::debug!("inode {ino} has readers passing through; its name is inode {new} now");
        }
    }
}
