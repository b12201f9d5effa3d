//! Files and directories the spool's owner alone can reach, never through a link (SPEC §9),
//! and the [`Stamp`] that tells one version of a file from the next. The bottom floor: the
//! store keeps its layout with these, and the mail code reads message files with them
//! without knowing where the spool keeps them.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::error::{Error, Result};

/// Opens a file in the spool for reading, never through a symbolic link (SPEC §9).
pub fn open_read(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Creates a new file that only the spool's owner may read (0600 whatever the umask), never
/// through a symbolic link (O_EXCL does not follow one).
pub fn create_private(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Makes `dir` (0700, parents too) if missing, and refuses one that is a symbolic link, not a
/// directory, or writable by another user: whoever can write there could plant links or mail
/// for the daemon to follow or send (SPEC §9).
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    ensure_dir(dir, true)
}

/// Refuses a path that goes through a symbolic link another user owns (SPEC §10: nothing
/// another user does makes mailfs write where they chose): root's `sendmail --spool
/// /tmp/x`, where `/tmp/x` is someone's link to a directory of root's, would write the spool
/// there. Links owned by root or by this user are followed, and checked in turn (at most 40,
/// as the kernel allows). A path whose end does not exist yet is checked as far as it goes.
pub fn check_links(path: &Path) -> Result<()> {
    let abs = match path.is_absolute() {
        true => path.to_path_buf(),
        false => std::env::current_dir()?.join(path),
    };
    let mut budget = 40;
    walk_links(&abs, &mut budget).map(|_| ())
}

fn walk_links(path: &Path, budget: &mut u32) -> Result<std::path::PathBuf> {
    use std::path::Component;
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    let mut cur = std::path::PathBuf::from("/");
    let mut comps = path.components();
    while let Some(c) = comps.next() {
        match c {
            Component::RootDir | Component::Prefix(_) => cur = std::path::PathBuf::from("/"),
            Component::CurDir => {}
            Component::ParentDir => {
                cur.pop();
            }
            Component::Normal(n) => {
                let next = cur.join(n);
                match fs::symlink_metadata(&next) {
                    Ok(m) if m.file_type().is_symlink() => {
                        if m.uid() != 0 && m.uid() != me {
                            return Err(Error::Config(format!(
                                "{}: {} is a symbolic link owned by uid {}, another user; \
                                 refusing to follow it",
                                path.display(),
                                next.display(),
                                m.uid()
                            )));
                        }
                        if *budget == 0 {
                            return Err(Error::Config(format!(
                                "{}: too many symbolic links",
                                path.display()
                            )));
                        }
                        *budget -= 1;
                        let target = fs::read_link(&next)?;
                        cur = walk_links(&cur.join(target), budget)?;
                    }
                    Ok(_) => cur = next,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        cur = next;
                        cur.extend(comps);
                        return Ok(cur);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Ok(cur)
}

/// [`ensure_private_dir`] for a directory named by a node attribute (`log_dir`): its parents
/// too must be out of other users' reach, since one who can write a parent can put a link or
/// another directory in its place after the check. A parent writable by others passes only
/// when sticky (`/tmp`), where they cannot rename what is not theirs.
pub fn ensure_private_dir_and_parents(dir: &Path) -> Result<()> {
    check_links(dir)?;
    ensure_dir(dir, true)?;
    check_parents(dir, &dir.canonicalize()?)
}

/// The parents of `real` (the canonical path of `dir`, the directory named): each owned by
/// root or this user, and not writable by others unless sticky. Whoever can write a parent
/// can put a link or another directory in the place of what was checked.
pub fn check_parents(dir: &Path, real: &Path) -> Result<()> {
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    for parent in real.ancestors().skip(1) {
        let meta = fs::metadata(parent)?;
        let refuse = |why: String| {
            Err(Error::Config(format!(
                "{}: its parent {} {why}; refusing to use it",
                dir.display(),
                parent.display()
            )))
        };
        if meta.uid() != me && meta.uid() != 0 {
            return refuse(format!("belongs to uid {}, another user", meta.uid()));
        }
        if meta.mode() & 0o022 != 0 && meta.mode() & 0o1000 == 0 {
            return refuse(format!(
                "is writable by other users (mode {:o}) and not sticky",
                meta.mode() & 0o7777
            ));
        }
    }
    Ok(())
}

pub(crate) fn ensure_dir(dir: &Path, owned: bool) -> Result<()> {
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| {
                    Error::Io(io::Error::new(
                        e.kind(),
                        format!("cannot create {}: {e}", dir.display()),
                    ))
                })?;
            Ok(())
        }
        Err(e) => Err(e.into()),
        Ok(meta) => check_private(dir, &meta, owned),
    }
}

/// `owned`: also refuse a directory that belongs to another user (who could write it).
pub(crate) fn check_private(dir: &Path, meta: &fs::Metadata, owned: bool) -> Result<()> {
    let refuse = |why: String| {
        Err(Error::Config(format!(
            "{}: {why}; refusing to use it",
            dir.display()
        )))
    };
    if meta.file_type().is_symlink() {
        return refuse("is a symbolic link".into());
    }
    if !meta.is_dir() {
        return refuse("is not a directory".into());
    }
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if owned && meta.uid() != me && meta.uid() != 0 {
        return refuse(format!("belongs to uid {}, another user", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return refuse(format!(
            "is writable by {} (mode {:o}); chmod go-w it",
            if meta.mode() & 0o002 != 0 {
                "every user"
            } else {
                "its group"
            },
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// Identity of a file's current version: any write or replacement changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stamp {
    pub ino: u64,
    pub mtime_ns: i128,
    pub size: u64,
}

impl Stamp {
    /// Whether a cache keyed by this stamp can be trusted. Timestamps are coarse (a jiffy) and
    /// inode numbers are reused, so a file replaced within the same tick can show the same
    /// stamp as the version cached; a file last changed over two seconds ago cannot (its next
    /// version gets a new mtime). Same rule as git's "racily clean" index entries.
    pub fn is_settled(&self) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        now - self.mtime_ns > 2_000_000_000
    }

    pub fn of(meta: &fs::Metadata) -> Stamp {
        Stamp {
            ino: meta.ino(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
            size: meta.size(),
        }
    }
}

/// A directory of the spool opened once (never through a link), to be reached by its
/// descriptor; `None` where /proc does not show descriptors as directories.
pub fn open_dir_held(dir: &Path) -> Option<std::os::fd::OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir)
        .ok()?;
    use std::os::fd::AsRawFd;
    Path::new(&format!("/proc/self/fd/{}", f.as_raw_fd()))
        .is_dir()
        .then(|| f.into())
}
