//! The Message-IDs this node has handed to its senders, or that a restored copy says went out
//! from the node it was backed up on. A restore carrying `user.is_ready=1` must never send the
//! same message a second time (issue 12): `rsync -X`'s temp file with a recorded Message-ID is
//! refused at once (fs/backed.rs). A Draft made ready is refused only on the evidence its own
//! attributes carried in (store/message.rs `not_gone_out`), not for sharing a Message-ID with
//! one recorded here: two Drafts a user wrote with one Message-ID are two messages.
//!
//! One line per Message-ID in `SPOOL/mailfs.sent-ids`, appended under an exclusive `flock`
//! (several processes may serve one spool). The file is bounded: past [`CAP`] lines it is
//! rewritten atomically with the newest [`KEEP`], so a node that ran for years keeps the
//! last tens of thousands of sends, which covers any backup an operator restores.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use parking_lot::Mutex;

use crate::error::Result;
use crate::store::spool::Spool;

pub const FILE: &str = "mailfs.sent-ids";
/// Bytes the record may reach (some 60,000 Message-IDs) before it is cut back to [`KEEP`].
pub const CAP: u64 = 4 << 20;
pub const KEEP: u64 = 2 << 20;

/// What this process has read of each record: a check reads only what was appended since.
struct Index {
    ino: u64,
    offset: u64,
    ids: HashSet<String>,
}

static INDEX: LazyLock<Mutex<HashMap<PathBuf, Index>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

fn path(spool: &Spool) -> PathBuf {
    spool.root().join(FILE)
}

fn open_locked(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    // SAFETY: flock on a descriptor owned by `f`; released when `f` is closed.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(f)
}

/// A Message-ID as recorded: without angle brackets or surrounding space, so `<a@b>` and
/// `a@b` are one message.
fn norm(id: &str) -> Option<String> {
    let id = id.trim().trim_start_matches('<').trim_end_matches('>').trim();
    (!id.is_empty() && !id.contains(['\n', '\r', '\0'])).then(|| id.to_string())
}

/// Records that `id` went out (or is going out) from this node, durably.
pub fn remember(spool: &Spool, id: &str) -> Result<()> {
    remember_capped(spool, id, CAP, KEEP, true)
}

/// [`remember`] without its own sync: the caller makes the record durable (with the spool's
/// shared sync) before anything that relies on it becomes visible.
pub fn remember_unsynced(spool: &Spool, id: &str) -> Result<()> {
    remember_capped(spool, id, CAP, KEEP, false)
}

fn remember_capped(spool: &Spool, id: &str, cap: u64, keep: u64, sync: bool) -> Result<()> {
    let Some(id) = norm(id) else { return Ok(()) };
    let p = path(spool);
    let mut f = open_locked(&p)?;
    f.write_all(format!("{id}\n").as_bytes())?;
    if sync {
        f.sync_data()?;
    }
    let len = f.metadata()?.len();
    if len > cap {
        // Keep the newest `keep` bytes, from a line start. The lock stays held on the old file
        // while the new one replaces it, so no other writer appends to the file being cut.
        f.seek(SeekFrom::Start(len - keep))?;
        let mut tail = Vec::with_capacity(keep as usize);
        f.read_to_end(&mut tail)?;
        let start = memchr::memchr(b'\n', &tail).map_or(tail.len(), |i| i + 1);
        spool.write_atomic(&p, &tail[start..])?;
    }
    Ok(())
}

/// Whether `id` is recorded as gone out from this node.
pub fn contains(spool: &Spool, id: &str) -> io::Result<bool> {
    let Some(id) = norm(id) else { return Ok(false) };
    let p = path(spool);
    let mut f = match File::open(&p) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let meta = f.metadata()?;
    let mut index = INDEX.lock();
    let ix = index.entry(p).or_insert_with(|| Index {
        ino: meta.ino(),
        offset: 0,
        ids: HashSet::new(),
    });
    if ix.ino != meta.ino() || ix.offset > meta.len() {
        *ix = Index {
            ino: meta.ino(),
            offset: 0,
            ids: HashSet::new(),
        };
    }
    if ix.offset < meta.len() {
        f.seek(SeekFrom::Start(ix.offset))?;
        let mut new = Vec::new();
        f.read_to_end(&mut new)?;
        // Only whole lines: a line being appended right now is read at the next check.
        let end = memchr::memrchr(b'\n', &new).map_or(0, |i| i + 1);
        for line in new[..end].split(|&b| b == b'\n') {
            if let Ok(s) = std::str::from_utf8(line)
                && !s.is_empty()
            {
                ix.ids.insert(s.to_string());
            }
        }
        ix.offset += end as u64;
    }
    Ok(ix.ids.contains(&id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_remembered_bounded_and_normalised() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(&dir.path().join("s")).unwrap();
        assert!(!contains(&spool, "<a@b>").unwrap());
        remember(&spool, "<a@b>").unwrap();
        assert!(contains(&spool, "a@b").unwrap());
        assert!(contains(&spool, " <a@b> ").unwrap());
        assert_eq!(std::fs::read_to_string(path(&spool)).unwrap(), "a@b\n");
        for i in 0..200 {
            remember_capped(&spool, &format!("{i:04}@x"), 1000, 500, true).unwrap();
            assert!(contains(&spool, &format!("{i:04}@x")).unwrap());
        }
        let text = std::fs::read_to_string(path(&spool)).unwrap();
        assert!(text.len() <= 1000, "{}", text.len());
        assert!(
            text.starts_with(|c: char| c.is_ascii_digit()),
            "cut at a line start"
        );
        assert!(!contains(&spool, "a@b").unwrap(), "the oldest went at the cut");
        assert!(contains(&spool, "0199@x").unwrap());
    }
}
