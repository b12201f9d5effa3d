//! The spool store: the on-disk source of truth that every mailfs process shares.
//!
//! ```text
//! SPOOL_DIR/
//!   X.eml  X.struct      a message's content and its attributes (bincode, versioned)
//!   mailfs.node          the node attributes
//!   log/                 log entries (default log_dir)
//!   .scratch/            files created in the mount root that are not messages
//!   .ready/              markers: "this message became ready", for other processes' senders
//!   .tmp/                files being written, renamed into place when complete
//! ```
//!
//! Attribute files are written to `.tmp/`, fsynced and renamed over the old one, so a crash
//! leaves either the old or the new version, never a torn one. Nothing here caches: callers
//! that want a cache validate it with [`Stamp`].

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::model::attrs::{MessageAttrs, MessageAttrsV1, NodeAttrs, NodeAttrsV1, StoredNodeAttrs};

const NODE_FILE: &str = "mailfs.node";
const SCRATCH_DIR: &str = ".scratch";
const READY_DIR: &str = ".ready";
const TMP_DIR: &str = ".tmp";
const MAGIC: &[u8; 8] = b"MAILFS\0\x01";
/// Bumped whenever the encoding of a stored structure changes. Format 1 (the first release)
/// is still read: messages without owners, the node file as a bincode struct.
const FORMAT_VERSION: u16 = 2;

/// Test hook for the power-cut tests: `MAILFS_CRASH_AT=STEP:N` aborts the process the Nth
/// time an attribute file (`.struct`) write reaches STEP (`mid_write`, `before_rest`,
/// `before_fsync`, `before_rename`, `before_dirsync`), as a crash or power cut at that
/// moment would. Unset, it costs one relaxed load.
fn crash_point(step: &str, path: &Path) {
    static PLAN: std::sync::OnceLock<Option<(String, u64)>> = std::sync::OnceLock::new();
    static SEEN: AtomicU64 = AtomicU64::new(0);
    let plan = PLAN.get_or_init(|| {
        let v = std::env::var("MAILFS_CRASH_AT").ok()?;
        let (s, n) = v.split_once(':')?;
        Some((s.to_string(), n.parse().ok()?))
    });
    if let Some((s, n)) = plan
        && s == step
        && path.extension().is_some_and(|e| e == "struct")
        && SEEN.fetch_add(1, Ordering::Relaxed) + 1 == *n
    {
        log::error!(
            "MAILFS_CRASH_AT={step}:{n}: aborting while writing {}",
            path.display()
        );
        std::process::abort();
    }
}

/// The message an entry of the spool directory belongs to: the `.eml` itself, or `X.struct`,
/// the attribute file of `X.eml`. Lets the mount's watch of the spool directory say which
/// message changed without knowing how the spool names its files.
pub fn message_of_entry(file: &str) -> Option<String> {
    if is_message_name(file) {
        return Some(file.to_string());
    }
    let stem = file.strip_suffix(".struct")?;
    let msg = format!("{stem}.eml");
    is_message_name(&msg).then_some(msg)
}

/// Is this a name a message can have in the mount root?
pub fn is_message_name(name: &str) -> bool {
    name.len() > 4
        && name.len() <= MAX_MESSAGE_NAME
        && name.ends_with(".eml")
        && !name.contains('/')
        && !name.contains('\0')
        && name != ".eml"
}

pub use crate::model::names::MAX_MESSAGE_NAME;

/// A plain file name (one component, not `.`/`..`).
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\0')
}

#[derive(Debug)]
pub struct Spool {
    root: PathBuf,
    tmp_seq: AtomicU64,
    /// The group-commit thread for senders' outcomes, started on first use.
    group: std::sync::OnceLock<crossbeam_channel::Sender<CommitReq>>,
    /// The sync shared by concurrent callers of [`Spool::sync_shared`].
    barrier: barrier::Barrier,
    /// Shares the spool directory's fsync the same way (see [`Spool::sync_root_shared`]).
    dir_barrier: barrier::Barrier,
    /// Files freed by the group commit and by taken markers, reused as log entries.
    spares: spare::Spares,
    /// Closes the versions [`Spool::replace`] replaced, off the caller's path.
    reaper: reaper::Reaper,
    /// What this process renamed into the spool directory lately (`spool/recent.rs`).
    own: recent::OwnRenames,
    /// `.scratch/` as it was when the spool was opened, reached through this descriptor from
    /// then on: a link put in its place later (by whoever can write the spool) leads nowhere
    /// (SPEC §9; audit-16 D6: files were made and read where the link pointed).
    scratch: Option<std::os::fd::OwnedFd>,
}

/// An exclusive per-message lock (flock on the `.eml`, which NFS emulates with fcntl locks):
/// while it is held no other process sends, cancels or expires the message.
#[derive(Debug)]
pub struct MessageLock {
    _file: File,
}

/// The spool's lock for attribute changes made by reading, changing and writing a message's
/// attributes where no per-message lock is taken (a Draft's attributes set through the mount)
/// or where it cannot cover the writer (`mailfs hold`, in another process or on the control
/// socket's thread, against the mount making the Draft ready: [`Spool::attrs_lock`]).
#[derive(Debug)]
pub struct AttrsLock {
    _dir: File,
}

mod barrier;
mod commit;
mod format;
mod markers;
mod place;
mod reaper;
mod recent;
mod spare;
pub use recent::OwnRenames;
pub use spare::Want;

pub use crate::files::{Stamp, create_private, ensure_private_dir, open_read};
use crate::files::{check_private, ensure_dir};
use commit::*;

impl Spool {
    /// Opens a spool, creating it and its housekeeping directories when missing (0700).
    /// One writable by group or others is refused; one that belongs to another user may be
    /// looked at (root's `mailfs queue` on a user's spool) but not served
    /// ([`Spool::check_servable`]).
    pub fn open(dir: &Path) -> Result<Spool> {
        let spool = Self::open_quick(dir)?;
        spool.clean_tmp();
        Ok(spool)
    }

    /// [`Spool::open`] without the sweep of `.tmp/`, for a command that writes one message and
    /// exits (`sendmail`, `deliver`): reading the whole directory costs more than its
    /// submission, and the long-lived processes (mount, serve) sweep it when they start.
    pub fn open_quick(dir: &Path) -> Result<Spool> {
        // A system error names the spool (a user who may not enter it read only "Permission
        // denied").
        Self::open_quick_at(dir).map_err(|e| match e {
            Error::Io(io) => Error::Io(io::Error::new(io.kind(), format!("{}: {io}", dir.display()))),
            other => other,
        })
    }

    fn open_quick_at(dir: &Path) -> Result<Spool> {
        crate::files::check_links(dir)?;
        if fs::symlink_metadata(dir).is_err() {
            ensure_private_dir(dir)?;
        }
        let root = dir.canonicalize()?;
        // The spool path may itself be a link an administrator made (/var/spool/x -> /data/x):
        // what must be private is the directory it leads to.
        check_private(&root, &fs::symlink_metadata(&root)?, false)?;
        for sub in [SCRATCH_DIR, READY_DIR, TMP_DIR] {
            ensure_dir(&root.join(sub), false)?;
        }
        let scratch = crate::files::open_dir_held(&root.join(SCRATCH_DIR));
        let spool = Spool {
            root,
            tmp_seq: AtomicU64::new(0),
            group: std::sync::OnceLock::new(),
            barrier: barrier::Barrier::default(),
            dir_barrier: barrier::Barrier::default(),
            spares: spare::Spares::default(),
            reaper: reaper::Reaper::default(),
            own: recent::OwnRenames::default(),
            scratch,
        };
        Ok(spool)
    }

    /// Refuses to serve (mount, send from) a spool that another user can write, or whose
    /// parent directories they can (they could put another directory in its place): they
    /// could plant messages, links or attribute files for the daemon to act on (SPEC §9).
    pub fn check_servable(&self) -> Result<()> {
        check_private(&self.root, &fs::symlink_metadata(&self.root)?, true)?;
        crate::files::check_parents(&self.root, &self.root)
    }

    /// [`Spool::check_servable`] before the spool is opened, so that a refused `mount` or
    /// `serve` changes nothing in it (no housekeeping directory, no `-o` option stored). A
    /// spool that does not exist yet is made by this user, so it passes.
    pub fn check_servable_path(dir: &Path) -> Result<()> {
        match dir.canonicalize() {
            Ok(root) => {
                check_private(&root, &fs::symlink_metadata(&root)?, true)?;
                crate::files::check_parents(dir, &root)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Leftovers of writes that a crash interrupted; the files they were to replace are intact.
    fn clean_tmp(&self) {
        let pid_prefix = format!("{}.", std::process::id());
        if let Ok(rd) = fs::read_dir(self.root.join(TMP_DIR)) {
            for e in rd.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                // Another live process may be writing here; only remove files older than a minute.
                let old = e
                    .metadata()
                    .ok()
                    .and_then(|m| m.modified().ok())
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|d| d.as_secs() > 60);
                if old && !name.starts_with(&pid_prefix) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn root_str(&self) -> String {
        self.root.to_string_lossy().into_owned()
    }

    pub fn eml_path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    pub fn struct_path(&self, name: &str) -> PathBuf {
        let stem = name.strip_suffix(".eml").unwrap_or(name);
        self.root.join(format!("{stem}.struct"))
    }

    /// Where a detached mount writes its log (SPOOL_DIR/.mailfs.log).
    pub fn server_log_path(&self) -> PathBuf {
        self.root.join(".mailfs.log")
    }

    pub fn scratch_path(&self, name: &str) -> PathBuf {
        self.scratch_dir().join(name)
    }

    /// `.scratch/` through the descriptor held since the spool was opened, when /proc shows it.
    fn scratch_dir(&self) -> PathBuf {
        use std::os::fd::AsRawFd;
        match &self.scratch {
            Some(fd) => PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())),
            None => self.root.join(SCRATCH_DIR),
        }
    }

    pub fn default_log_dir(&self) -> PathBuf {
        self.root.join("log")
    }

    /// A fresh path in `.tmp/` for a file to be renamed into place.
    pub fn tmp_path(&self) -> PathBuf {
        let n = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        self.root
            .join(TMP_DIR)
            .join(format!("{}.{}.{}", std::process::id(), n, now_nanos()))
    }

    /// Renames `tmp` over `path`; the version it replaces is freed later, on the reaper's
    /// thread (`spool/reaper.rs`: freeing can wait on the disk). Not synced.
    pub fn replace(&self, tmp: &Path, path: &Path) -> io::Result<()> {
        let old = reaper::Reaper::hold(path);
        self.rename_noted(tmp, path)?;
        if let Some(f) = old {
            self.reaper.retire(f);
        }
        Ok(())
    }

    /// Writes `bytes` to `path` atomically and durably: temp file, fsync, rename, fsync dir.
    /// Returns the stamp of the version written, taken from the file itself before the rename
    /// (a later stat could already see a newer version written by someone else).
    pub fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<Stamp> {
        let tmp = self.tmp_path();
        let res = (|| -> io::Result<Stamp> {
            let mut f = create_private(&tmp)?;
            crash_point("mid_write", path);
            let half = bytes.len() / 2;
            f.write_all(&bytes[..half])?;
            crash_point("before_rest", path);
            f.write_all(&bytes[half..])?;
            crash_point("before_fsync", path);
            f.sync_all()?;
            let stamp = Stamp::of(&f.metadata()?);
            crash_point("before_rename", path);
            self.replace(&tmp, path)?;
            crash_point("before_dirsync", path);
            self.sync_root()?;
            Ok(stamp)
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res.map_err(Error::Io)
    }

    /// Makes renames and unlinks in the spool root durable.
    pub fn sync_root(&self) -> io::Result<()> {
        File::open(&self.root)?.sync_all()
    }

    /// Makes everything written to the spool so far durable (files, appends, renames) with one
    /// `syncfs` shared by the concurrent callers (see `barrier.rs`).
    pub fn sync_shared(&self) -> io::Result<()> {
        self.barrier.wait(|| barrier::syncfs(&self.root))
    }

    /// Makes the renames into the spool directory made so far durable with one fsync of the
    /// directory shared by the concurrent callers: files already durable before they were
    /// renamed need no more than that, and a directory fsync runs in the caller, where a
    /// `syncfs` hands the writeback to the kernel's flusher threads and waits for them.
    pub fn sync_root_shared(&self) -> io::Result<()> {
        self.dir_barrier.wait(|| self.sync_root())
    }

    /// Names of all messages (`*.eml` in the spool root), unsorted.
    pub fn list_messages(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.root)? {
            let e = e?;
            if let Some(name) = e.file_name().to_str()
                && is_message_name(name)
                && e.file_type().map(|t| t.is_file()).unwrap_or(false)
            {
                out.push(name.to_string());
            }
        }
        Ok(out)
    }

    pub fn list_scratch(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for e in fs::read_dir(self.scratch_dir())? {
            let e = e?;
            if let Some(name) = e.file_name().to_str() {
                out.push(name.to_string());
            }
        }
        Ok(out)
    }

    /// The attributes of a message with the stamp of the file they came from; `None` when the
    /// message has no attribute file yet (a Draft with defaults).
    pub fn read_attrs(&self, name: &str) -> Result<Option<(MessageAttrs, Stamp)>> {
        Self::read_attrs_at(&self.struct_path(name), || {})
    }

    /// Reads the attribute file at `path`, as it is now. A version replaced by the group
    /// commit lives on as a spare inode and is overwritten as a log entry (spool/spare.rs), so
    /// what was read from an inode that has left `path` by the end of the read may mix two
    /// files, and may even decode: it is read again from the path. An inode still at `path`
    /// after the read was never a spare meanwhile (a spare never returns), so its bytes are
    /// one version. `after_open` lets a test act between the open and the read.
    fn read_attrs_at(path: &Path, mut after_open: impl FnMut()) -> Result<Option<(MessageAttrs, Stamp)>> {
        use std::os::unix::fs::MetadataExt;
        let mut tries = 0;
        loop {
            let mut f = match open_read(path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let meta = f.metadata()?;
            after_open();
            let mut bytes = Vec::with_capacity(meta.len() as usize);
            f.read_to_end(&mut bytes)?;
            let decoded = Self::decode_attrs(path, &bytes);
            let moved = match fs::symlink_metadata(path) {
                Ok(m) => m.ino() != meta.ino(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            if !moved {
                return decoded.map(|a| Some((a, Stamp::of(&meta))));
            }
            tries += 1;
            if tries >= 5 {
                return Err(Error::Io(io::Error::other(format!(
                    "{}: replaced five times while being read; try again",
                    path.display()
                ))));
            }
        }
    }

    /// What this process renamed into the spool directory lately, for the mount's watch.
    pub fn own_renames(&self) -> OwnRenames {
        self.own.clone()
    }

    /// Renames `tmp` over `path` (not synced), telling the mount's watch it was this process.
    pub fn rename_noted(&self, tmp: &Path, path: &Path) -> io::Result<()> {
        self.own.note(path, 1);
        fs::rename(tmp, path).inspect_err(|_| self.own.unnote(path, 1))
    }

    pub fn attrs_stamp(&self, name: &str) -> Option<Stamp> {
        fs::metadata(self.struct_path(name)).ok().map(|m| Stamp::of(&m))
    }

    /// Replaces a message's attributes atomically; returns the new file's stamp.
    pub fn write_attrs(&self, name: &str, attrs: &MessageAttrs) -> Result<Stamp> {
        self.write_atomic(&self.struct_path(name), &Self::encode(attrs)?)
    }

    /// Writes `attrs` to a new temp file, not synced, for the caller to make durable and rename
    /// over the message's attribute file itself; returns it with the stamp it will have.
    /// A spare inode is used when there is one (spool/spare.rs).
    pub fn stage_attrs(&self, attrs: &MessageAttrs) -> Result<(PathBuf, Stamp)> {
        let bytes = Self::encode(attrs)?;
        if let Some((tmp, f)) = self.reuse_spare(&bytes, Want::Any) {
            return match f.metadata() {
                Ok(m) => Ok((tmp, Stamp::of(&m))),
                Err(e) => {
                    let _ = fs::remove_file(&tmp);
                    Err(e.into())
                }
            };
        }
        let tmp = self.tmp_path();
        let stamp = (|| -> io::Result<Stamp> {
            let mut f = create_private(&tmp)?;
            f.write_all(&bytes)?;
            Ok(Stamp::of(&f.metadata()?))
        })()
        .inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })?;
        Ok((tmp, stamp))
    }

    /// `write_attrs` through the group commit: as atomic and as durable when it returns, but
    /// concurrent callers (the sender threads recording outcomes) share one sync.
    pub fn write_attrs_grouped(&self, name: &str, attrs: &MessageAttrs) -> Result<Stamp> {
        let tx = self.committer();
        let bytes = Self::encode(attrs)?;
        let reused = self.reuse_spare(&bytes, Want::Sized);
        let tmp = match &reused {
            Some((p, _)) => p.clone(),
            None => self.tmp_path(),
        };
        let stamp = (|| -> io::Result<Stamp> {
            let f = match reused {
                Some((_, f)) => f,
                None => {
                    let mut f = create_private(&tmp)?;
                    f.write_all(&bytes)?;
                    f
                }
            };
            // Each caller syncs its own file, in parallel with the others: a file-system
            // wide sync would also wait for every other writer's dirty data on that disk.
            f.sync_all()?;
            Ok(Stamp::of(&f.metadata()?))
        })()
        .inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })?;
        let (done, wait) = crossbeam_channel::bounded(1);
        let req = CommitReq {
            tmp: tmp.clone(),
            path: self.struct_path(name),
            exchange: true,
            synced: true,
            done,
        };
        if tx.send(req).is_err() {
            let _ = fs::remove_file(&tmp);
            return self.write_attrs(name, attrs);
        }
        match wait.recv() {
            Ok(res) => res.map(|()| stamp).map_err(Error::Io),
            // The committer is gone: write it alone.
            Err(_) => self.write_attrs(name, attrs),
        }
    }

    fn committer(&self) -> &crossbeam_channel::Sender<CommitReq> {
        self.group.get_or_init(|| {
            let (tx, rx) = crossbeam_channel::unbounded();
            let root = self.root.clone();
            let spares = self.spares.clone();
            let own = self.own.clone();
            let spawned = std::thread::Builder::new()
                .name("mailfs-commit".into())
                .spawn(move || group_committer(root, rx, spares, own));
            if let Err(e) = spawned {
                log::error!("cannot start the group-commit thread: {e}");
            }
            tx
        })
    }

    /// [`Spool::commit_tmp`] through the group commit: `tmp` need not be synced yet. The
    /// attribute file and the content go to the committer in that order (renamed in that
    /// order, in one batch or two), and this returns once both are durable in place, so
    /// concurrent submissions (the SMTP listener's sessions) share their syncs.
    pub fn commit_tmp_grouped(&self, tmp: &Path, name: &str, attrs: &MessageAttrs) -> Result<()> {
        if !is_message_name(name) {
            let _ = fs::remove_file(tmp);
            return Err(Error::invalid("name", format!("{name:?} is not a message name")));
        }
        let attrs_tmp = self.tmp_path();
        let staged = Self::encode(attrs).and_then(|bytes| {
            let mut f = create_private(&attrs_tmp)?;
            f.write_all(&bytes)?;
            Ok(())
        });
        if let Err(e) = staged {
            let _ = fs::remove_file(&attrs_tmp);
            let _ = fs::remove_file(tmp);
            return Err(e);
        }
        let tx = self.committer();
        let (done_a, wait_a) = crossbeam_channel::bounded(1);
        let (done_m, wait_m) = crossbeam_channel::bounded(1);
        let sent = tx
            .send(CommitReq {
                tmp: attrs_tmp.clone(),
                path: self.struct_path(name),
                exchange: false,
                synced: false,
                done: done_a,
            })
            .and_then(|()| {
                tx.send(CommitReq {
                    tmp: tmp.to_path_buf(),
                    path: self.eml_path(name),
                    exchange: false,
                    synced: false,
                    done: done_m,
                })
            });
        let results = sent.ok().map(|()| (wait_a.recv(), wait_m.recv()));
        match results {
            Some((Ok(Ok(())), Ok(Ok(())))) => Ok(()),
            Some((Ok(Err(e)), _)) | Some((_, Ok(Err(e)))) => {
                // The attributes may be in place without the content: an orphan attribute
                // file, as a crash between the two renames of `commit_tmp` leaves.
                let _ = fs::remove_file(tmp);
                Err(Error::Io(e))
            }
            // No committer thread: write it alone.
            _ => {
                let _ = fs::remove_file(&attrs_tmp);
                let f = OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(tmp)
                    .and_then(|f| f.sync_all());
                match f {
                    Ok(()) => self.commit_tmp(tmp, name, attrs),
                    Err(e) => {
                        let _ = fs::remove_file(tmp);
                        Err(Error::Io(e))
                    }
                }
            }
        }
    }

    /// Removes a message and its attributes (attributes last, so a crash in between leaves an
    /// orphan attribute file, never a message without its state).
    pub fn delete_message(&self, name: &str) -> Result<()> {
        match fs::remove_file(self.eml_path(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        match fs::remove_file(self.struct_path(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let _ = fs::remove_file(self.root.join(READY_DIR).join(name));
        Ok(())
    }

    /// Stores a complete new message from a reader, attributes first, then the content
    /// renamed into place, so no process ever sees a half-written message.
    pub fn add_message(&self, name: &str, content: &mut dyn Read, attrs: &MessageAttrs) -> Result<u64> {
        let tmp = self.tmp_path();
        let written = (|| -> io::Result<u64> {
            let mut f = create_private(&tmp)?;
            let n = io::copy(content, &mut f)?;
            f.sync_all()?;
            Ok(n)
        })();
        match written {
            Ok(n) => self.commit_tmp(&tmp, name, attrs).map(|()| n),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(e.into())
            }
        }
    }

    /// A new unique message name, for messages that arrive without one.
    pub fn unique_name(&self, prefix: &str) -> String {
        loop {
            let n = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
            let name = format!("{prefix}-{}-{}-{n}.eml", now_nanos() / 1000, std::process::id());
            if !self.eml_path(&name).exists() {
                return name;
            }
        }
    }
}

pub fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
