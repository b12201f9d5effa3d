//! Versions a rename replaces, freed off the caller's path.
//!
//! Why: freeing a file's blocks can wait on the disk. With the `discard` mount option (usual
//! on cloud disks and SSDs, and set on the machine of BENCHMARKS.md) ext4 sends a discard for
//! the freed blocks and waits for it, and when a `rename` replaces a file nobody holds open,
//! that happens inside the `rename`. `is_ready` renames a message's new content and
//! attributes over the old ones under the mount's namespace lock: each hand-over waited for
//! two discards while every other caller queued behind it (`perf`: a quarter of the FUSE
//! threads' time with 4 writers). A descriptor held on the old version across the rename
//! defers the freeing to its close, which happens here, on a thread of its own.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::OnceLock;
use std::sync::mpsc::{SyncSender, sync_channel};

/// Descriptors waiting to be closed. Small: the thread closes them as fast as the disk frees
/// blocks, and the mount's descriptor limit is shared with its open files. When it is full
/// the caller closes its own, as it did before.
const QUEUE: usize = 64;

#[derive(Debug, Default)]
pub(super) struct Reaper {
    tx: OnceLock<Option<SyncSender<File>>>,
}

impl Reaper {
    /// A hold on the file at `path` now (none if there is none), to give to [`Reaper::retire`]
    /// once it has been replaced.
    pub(super) fn hold(path: &Path) -> Option<File> {
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_NOFOLLOW)
            .open(path)
            .ok()
    }

    /// Closes `f` on the reaper's thread (started on first use), or here if it cannot.
    pub(super) fn retire(&self, f: File) {
        let tx = self.tx.get_or_init(|| {
            let (tx, rx) = sync_channel::<File>(QUEUE);
            std::thread::Builder::new()
                .name("spool-reaper".into())
                .spawn(move || rx.into_iter().for_each(drop))
                .ok()
                .map(|_| tx)
        });
        // Full or gone, the error hands `f` back and dropping it closes it here.
        if let Some(tx) = tx {
            let _ = tx.try_send(f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_held_version_outlives_the_rename_that_replaces_it_until_retired() {
        let d = tempfile::tempdir().unwrap();
        let (old, new) = (d.path().join("a"), d.path().join("b"));
        std::fs::write(&old, b"old version").unwrap();
        std::fs::write(&new, b"new").unwrap();
        let held = Reaper::hold(&old).unwrap();
        let ino = std::fs::metadata(&old).unwrap().ino();
        std::fs::rename(&new, &old).unwrap();
        // The replaced inode is still there, with no name: its blocks are not freed yet.
        let m = held.metadata().unwrap();
        assert_eq!((m.ino(), m.nlink(), m.len()), (ino, 0, 11));
        let r = Reaper::default();
        for _ in 0..3 * QUEUE {
            r.retire(Reaper::hold(&old).unwrap());
        }
        r.retire(held);
        assert_eq!(std::fs::read(&old).unwrap(), b"new");
        assert!(Reaper::hold(&d.path().join("none")).is_none());
    }
}
