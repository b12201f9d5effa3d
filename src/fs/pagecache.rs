//! When the kernel may keep a message's cached pages across opens (FOPEN_KEEP_CACHE).
//!
//! Without the flag the kernel drops an inode's pages at every open, so each `cat` of a `.eml`
//! goes through mailfs again. With it, a warm read is a page-cache read. The pages may be kept
//! only when they can hold nothing but the bytes on disk now, so an open keeps them when:
//! - the spool file has the same [`Stamp`] (inode, mtime, size) as at the previous open, and
//!   that stamp was already settled then (a change within the same clock tick can leave the
//!   stamp as it was; a change later than two seconds after the last one cannot);
//! - mailfs has not changed the content since ([`PageCache::changed`]: compose, make_ready,
//!   writes, renames over), whatever the stamp says;
//! - no handle opened on another version was open meanwhile (its reads would have filled the
//!   shared pages with the old bytes).
//!
//! Any doubt means the flag is not set and the kernel drops the pages at that open. Changes
//! mailfs makes while handles are open are also pushed to the kernel (data invalidation), from
//! a thread of its own: a notification that drops pages waits for page locks, which a read or
//! write request in progress holds until it is answered, so sending it from inside a request
//! could deadlock.

use std::collections::HashMap;
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, OnceLock};

use fuser::INodeNo;
use parking_lot::Mutex;

use crate::store::spool::Stamp;

/// Inodes remembered between opens; past this, closed ones are forgotten (their next open
/// drops the kernel's pages, which is always safe).
const CAP: usize = 65_536;

struct Entry {
    stamp: Stamp,
    /// The pages can only hold `stamp`'s bytes (set at an open that dropped them).
    valid: bool,
    open: u32,
}

#[derive(Default)]
struct State {
    entries: HashMap<u64, Entry>,
    /// Tracked handles: fh -> (inode, whether its open kept the pages).
    handles: HashMap<u64, (u64, bool)>,
}

pub struct PageCache {
    state: Mutex<State>,
    notifier: Arc<OnceLock<fuser::Notifier>>,
    drops: Mutex<Option<Sender<u64>>>,
}

impl PageCache {
    pub fn new(notifier: Arc<OnceLock<fuser::Notifier>>) -> PageCache {
        PageCache {
            state: Mutex::default(),
            notifier,
            drops: Mutex::new(None),
        }
    }

    /// Records an open of a message's spool file at `stamp`; whether the kernel may keep the
    /// pages it has for `ino` (only ever for a read-only open).
    pub fn opened(&self, fh: u64, ino: u64, stamp: Stamp, read_only: bool) -> bool {
        let mut st = self.state.lock();
        if st.entries.len() >= CAP {
            st.entries.retain(|_, e| e.open > 0);
        }
        let e = st.entries.entry(ino).or_insert(Entry {
            stamp,
            valid: false,
            open: 0,
        });
        let keep = read_only && e.valid && e.stamp == stamp;
        if !keep {
            // The kernel drops the pages now; from here they fill with this version, unless a
            // handle on another version is still open and reads into them.
            let others_differ = e.open > 0 && e.stamp != stamp;
            e.valid = read_only && stamp.is_settled() && !others_differ;
            e.stamp = stamp;
        }
        e.open += 1;
        st.handles.insert(fh, (ino, keep));
        keep
    }

    /// Whether the open that made `fh` kept the kernel's pages.
    pub fn kept(&self, fh: u64) -> bool {
        self.state.lock().handles.get(&fh).is_some_and(|h| h.1)
    }

    pub fn released(&self, fh: u64) {
        let mut st = self.state.lock();
        if let Some((ino, _)) = st.handles.remove(&fh)
            && let Some(e) = st.entries.get_mut(&ino)
        {
            e.open = e.open.saturating_sub(1);
        }
    }

    /// mailfs changed the content of `ino`: the next open drops the kernel's pages, and
    /// handles open now stop seeing the old ones.
    pub fn changed(&self, ino: u64) {
        let open = {
            let mut st = self.state.lock();
            match st.entries.get_mut(&ino) {
                Some(e) if e.open > 0 => {
                    e.valid = false;
                    true
                }
                Some(_) => {
                    st.entries.remove(&ino);
                    false
                }
                None => false,
            }
        };
        if open {
            self.drop_pages(ino);
        }
    }

    fn drop_pages(&self, ino: u64) {
        let Some(notifier) = self.notifier.get() else {
            return;
        };
        let mut drops = self.drops.lock();
        if drops.is_none() {
            let (tx, rx) = channel::<u64>();
            let n = notifier.clone();
            let spawned = std::thread::Builder::new()
                .name("page-drops".into())
                .spawn(move || {
                    for ino in rx {
                        // ENOENT: the kernel has nothing cached for it.
                        let _ = n.inval_inode(INodeNo(ino), 0, 0);
                    }
                });
            if spawned.is_err() {
                return;
            }
            *drops = Some(tx);
        }
        if let Some(tx) = drops.as_ref() {
            let _ = tx.send(ino);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settled(ino: u64, size: u64) -> Stamp {
        Stamp {
            ino,
            mtime_ns: 1_000_000_000,
            size,
        }
    }

    fn fresh(ino: u64) -> Stamp {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        Stamp {
            ino,
            mtime_ns: now,
            size: 1,
        }
    }

    #[test]
    fn keeps_pages_only_for_the_same_settled_version() {
        let pc = PageCache::new(Arc::default());
        assert!(!pc.opened(1, 7, settled(100, 5), true), "first open drops");
        pc.released(1);
        assert!(pc.opened(2, 7, settled(100, 5), true), "same version kept");
        assert!(pc.kept(2));
        pc.released(2);
        assert!(!pc.opened(3, 7, settled(100, 6), true), "new size drops");
        pc.released(3);
        assert!(pc.opened(4, 7, settled(100, 6), true));
        pc.released(4);
        // A version changed within the clock tick is never trusted.
        assert!(!pc.opened(5, 8, fresh(101), true));
        pc.released(5);
        assert!(!pc.opened(6, 8, fresh(101), true));
        pc.released(6);
        // Writers never keep, and their open drops what was kept.
        assert!(!pc.opened(7, 7, settled(100, 6), false));
        pc.released(7);
        assert!(!pc.opened(8, 7, settled(100, 6), true));
    }

    #[test]
    fn a_change_by_mailfs_drops_the_pages_whatever_the_stamp() {
        let pc = PageCache::new(Arc::default());
        assert!(!pc.opened(1, 7, settled(100, 5), true));
        pc.released(1);
        pc.changed(7);
        assert!(!pc.opened(2, 7, settled(100, 5), true), "closed: forgotten");
        pc.changed(7);
        pc.released(2);
        assert!(!pc.opened(3, 7, settled(100, 5), true), "open: invalidated");
    }

    #[test]
    fn a_handle_on_an_older_version_spoils_the_pages() {
        let pc = PageCache::new(Arc::default());
        assert!(!pc.opened(1, 7, settled(100, 5), true));
        // Replaced on disk while handle 1 still reads the old inode.
        assert!(!pc.opened(2, 7, settled(200, 9), true));
        pc.released(1);
        pc.released(2);
        assert!(!pc.opened(3, 7, settled(200, 9), true), "old reads may be cached");
        pc.released(3);
        assert!(pc.opened(4, 7, settled(200, 9), true));
    }
}
