//! Spare inodes: files the spool no longer needs (the version of an attribute file that a
//! group commit replaced, a ready marker taken by a sender) kept in `.tmp/` and given a second
//! life as log entries instead of being unlinked.
//!
//! Why: on ext4 without a journal, allocating an inode skips, one by one, every inode of the
//! group freed in the last minute (`recently_deleted` in the kernel's allocator). A sender
//! that unlinks one file per message and creates two log entries per message makes each
//! creation walk past all the files it freed before: in the profile of `mailfs serve` that
//! walk was half of all CPU time. Recycling freed inodes keeps the hot path free of unlinks,
//! so creations stay cheap.
//!
//! A replaced attribute file becomes the next outcome file of the group commit; a taken marker
//! becomes a log entry; either may become the new version of a message's attributes or content
//! made by `is_ready` ([`super::Spool::fresh_file`], [`super::Spool::reuse_spare`], [`Want`]).
//! What is left when the senders go idle is unlinked ([`super::Spool::drop_spares`]), so
//! `.tmp/` empties once nothing is in flight. A reader that opened an
//! attribute file just before it was replaced may see its inode rewritten with other bytes,
//! even bytes that decode: [`super::Spool::read_attrs`] reads again whenever the inode it read
//! has left the path by the end of the read. A message's content never becomes a spare (its
//! readers hold it open across a replacement), and `is_ready` unlinks the versions it
//! replaces: kept as spares they stayed in `.tmp/` wherever no sender used them up.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

/// More than this and a spare is unlinked as before: a sender writes two log entries per
/// message, so a pool this size is used up within a few thousand messages.
const MAX_SPARES: usize = 8192;

/// The pool of spare files in `.tmp/`, shared with the group-commit thread: replaced
/// attribute files (each with its data block) and taken markers (empty).
#[derive(Debug, Default, Clone)]
pub(super) struct Spares(Arc<Mutex<Pools>>);

#[derive(Debug, Default)]
struct Pools {
    sized: Vec<PathBuf>,
    empty: Vec<PathBuf>,
}

/// Which spares a caller may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Only a replaced attribute file, for the outcome files of the group commit: a sender
    /// waits for their fsync, and a file whose inode and data block already exist syncs with
    /// two writes (its block, its inode) where a new one adds the allocation bitmaps. Each
    /// outcome frees the version it replaces, so this pool feeds itself.
    Sized,
    /// Only a taken marker, for log entries: they are never synced while anyone waits, so
    /// when there is none a new file costs little, and they leave the sized spares to the
    /// outcomes (taking those as well, 10-15 % fewer messages per second in
    /// `benches/compare-postfix.sh`).
    Empty,
    /// An empty one first, else a replaced attribute file (`is_ready`'s new versions).
    Any,
}

impl Spares {
    /// Keeps `path` (a file in `.tmp/` nobody else refers to) for reuse, or unlinks it.
    pub(super) fn put(&self, path: PathBuf, sized: bool) {
        let mut pools = self.0.lock();
        if pools.sized.len() + pools.empty.len() < MAX_SPARES {
            if sized {
                pools.sized.push(path);
            } else {
                pools.empty.push(path);
            }
        } else {
            drop(pools);
            let _ = fs::remove_file(path);
        }
    }

    fn take(&self, want: Want) -> Option<PathBuf> {
        let mut pools = self.0.lock();
        match want {
            Want::Sized => pools.sized.pop(),
            Want::Empty => pools.empty.pop(),
            Want::Any => pools.empty.pop().or_else(|| pools.sized.pop()),
        }
    }

    /// Empties both pools.
    fn drain(&self) -> Vec<PathBuf> {
        let mut pools = self.0.lock();
        let mut all = std::mem::take(&mut pools.sized);
        all.append(&mut pools.empty);
        all
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        let pools = self.0.lock();
        pools.sized.len() + pools.empty.len()
    }
}

/// Exchanges `tmp` and `path` atomically (both must exist): afterwards `path` is the new
/// version and `tmp` holds the old one, which was never unlinked.
pub(super) fn exchange(tmp: &Path, path: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let a = std::ffi::CString::new(tmp.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let b = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: both paths are NUL-terminated strings that live across the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl super::Spool {
    /// A spare file holding exactly `bytes`, open for writing, with the path it has in
    /// `.tmp/`: the caller finishes it (xattrs) and renames it where it belongs (or unlinks
    /// it). `None` when there is none fit for reuse (then create a new file as usual). The
    /// old content is overwritten in place and then cut to length, not truncated first: a
    /// small file keeps its data block instead of freeing it and allocating another.
    pub fn reuse_spare(&self, bytes: &[u8], want: Want) -> Option<(PathBuf, File)> {
        while let Some((path, mut f)) = self.take_fit_spare(want) {
            if f.write_all(bytes)
                .and_then(|()| f.set_len(bytes.len() as u64))
                .is_ok()
            {
                return Some((path, f));
            }
            let _ = fs::remove_file(&path);
        }
        None
    }

    /// A spare fit for reuse, open for writing at its start, old bytes still in it.
    fn take_fit_spare(&self, want: Want) -> Option<(PathBuf, File)> {
        // SAFETY: geteuid cannot fail.
        let me = unsafe { libc::geteuid() };
        while let Some(path) = self.spares.take(want) {
            let opened = OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(&path);
            let Ok(f) = opened else {
                let _ = fs::remove_file(&path);
                continue;
            };
            // Only a plain file of ours with no other name: anything else (a file someone linked
            // elsewhere meanwhile, another user's marker) is left alone. A replaced message
            // written straight into the spool may carry group/other bits: made private first.
            let fit = f.metadata().is_ok_and(|m| {
                m.is_file()
                    && m.uid() == me
                    && m.nlink() == 1
                    && (m.mode() & 0o077 == 0 || f.set_permissions(fs::Permissions::from_mode(0o600)).is_ok())
            });
            if fit {
                return Some((path, f));
            }
            let _ = fs::remove_file(&path);
        }
        None
    }

    /// A private file in `.tmp/` to write a new version into from its start: a spare when there
    /// is one, so that no inode is allocated, else a new file. A spare still holds its old
    /// bytes (cutting it to nothing first waits for their writeback): the caller cuts the
    /// file to what it wrote.
    pub fn fresh_file(&self) -> io::Result<(PathBuf, File)> {
        if let Some(spare) = self.take_fit_spare(Want::Any) {
            return Ok(spare);
        }
        let path = self.tmp_path();
        let f = crate::files::create_private(&path)?;
        Ok((path, f))
    }

    /// Unlinks every spare: the senders call it when they go idle, so that `.tmp/` empties
    /// once nothing is in flight (spares are for the next burst, not for keeping).
    pub fn drop_spares(&self) {
        for path in self.spares.drain() {
            let _ = fs::remove_file(path);
        }
    }

    /// Takes a ready marker out of `.ready/` into the spare pool: `false` when it was gone.
    pub(super) fn take_marker(&self, marker: &Path) -> bool {
        let spare = self.tmp_path();
        match fs::rename(marker, &spare) {
            Ok(()) => {
                self.spares.put(spare, false);
                true
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            // Whatever else: unlinked as before.
            Err(_) => fs::remove_file(marker).is_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Spool;
    use super::Want;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn replaced_attribute_files_and_markers_become_spares() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let mut a = crate::model::attrs::MessageAttrs::new_draft();
        spool.write_attrs_grouped("m.eml", &a).unwrap();
        let first = std::fs::metadata(spool.struct_path("m.eml")).unwrap().ino();
        a.hold = true;
        spool.write_attrs_grouped("m.eml", &a).unwrap();
        // The new version is in place and whole; the old inode was kept, not unlinked.
        assert!(spool.read_attrs("m.eml").unwrap().unwrap().0.hold);
        assert_eq!(spool.spares.len(), 1);
        std::fs::write(spool.eml_path("m.eml"), b"x").unwrap();
        spool.mark_ready("m.eml").unwrap();
        assert_eq!(spool.take_ready_markers(), vec!["m.eml".to_string()]);
        assert_eq!(spool.spares.len(), 2);
        let (path, _) = spool.reuse_spare(b"entry\n", Want::Any).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"entry\n");
        // The old attribute file's bytes are all overwritten or cut off.
        let (old, _) = spool.reuse_spare(b"e", Want::Any).unwrap();
        assert_eq!(std::fs::metadata(&old).unwrap().ino(), first);
        assert_eq!(std::fs::read(&old).unwrap(), b"e");
        assert!(spool.reuse_spare(b"e", Want::Any).is_none());
    }

    #[test]
    fn a_spare_with_another_name_is_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        std::fs::write(spool.eml_path("m.eml"), b"x").unwrap();
        spool.mark_ready("m.eml").unwrap();
        spool.take_ready_markers();
        let spare = spool.spares.0.lock().empty[0].clone();
        std::fs::hard_link(&spare, dir.path().join("elsewhere")).unwrap();
        std::fs::write(&spare, b"keep").unwrap();
        assert!(spool.reuse_spare(b"e", Want::Any).is_none());
        assert_eq!(std::fs::read(dir.path().join("elsewhere")).unwrap(), b"keep");
    }

    /// An outcome reuses the attribute file an earlier outcome replaced (no new inode, its
    /// data block kept), log entries take only taken markers, and going idle empties `.tmp/`.
    #[test]
    fn outcomes_reuse_replaced_attribute_files_and_log_entries_take_markers() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let mut a = crate::model::attrs::MessageAttrs::new_draft();
        spool.write_attrs_grouped("m.eml", &a).unwrap();
        spool.write_attrs_grouped("n.eml", &a).unwrap();
        let first = std::fs::metadata(spool.struct_path("m.eml")).unwrap().ino();
        a.hold = true;
        spool.write_attrs_grouped("m.eml", &a).unwrap();
        assert_eq!(spool.spares.len(), 1, "the replaced version of m is a spare");
        // A log entry does not take it.
        assert!(spool.reuse_spare(b"entry\n", Want::Empty).is_none());
        spool.write_attrs_grouped("n.eml", &a).unwrap();
        assert_eq!(
            std::fs::metadata(spool.struct_path("n.eml")).unwrap().ino(),
            first,
            "n's new version is m's old inode"
        );
        let (got, _) = spool.read_attrs("n.eml").unwrap().unwrap();
        assert!(got.hold);
        std::fs::write(spool.eml_path("m.eml"), b"x").unwrap();
        spool.mark_ready("m.eml").unwrap();
        spool.take_ready_markers();
        assert_eq!(spool.spares.len(), 2);
        let tmp = dir.path().join(".tmp");
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 2);
        spool.drop_spares();
        assert_eq!(spool.spares.len(), 0);
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
    }
}
