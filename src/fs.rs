//! The file system proper: the tree of SPEC §2 over the spool, with no FUSE reply types, so it
//! can be driven and tested without a kernel. `fuse.rs` is the thin adapter on top.
//!
//! The lock order is written at [`MailFs`], where the locks are declared.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{FileAttr, FileType, INodeNo};
use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::fs::trees::TreeCache;
use crate::mail::compose::{self, Edit};
use crate::mail::content::{self, HeaderInfo};
use crate::mail::mime::{self, Tree};
use crate::model::access::{self as rules, Caller, Need};
use crate::model::attrs::{MessageAttrs, NODE_ATTRS};
use crate::store::message::{self, Change};
use crate::store::node::Node;
use crate::store::spool::{Stamp, is_message_name, is_plain_name};

mod access;
mod attr;
mod backed;
mod claims;
mod dirs;
mod files;
pub mod fuse;
mod handles;
mod inodes;
mod keepnames;
mod names;
mod nested;
mod opener;
mod pagecache;
mod passthrough;
mod ready;
mod setattr;
pub mod trees;
mod undo;
mod unfinished;
mod watch;
mod weight;
mod whole;
mod xattr;

#[cfg(test)]
mod tests;

pub const ROOT: u64 = 1;

/// A chown's new uid and gid, each optional.
type Ids = (Option<u32>, Option<u32>);

/// How many messages' attributes are kept: a spool of 100,000 messages must not hold them
/// all (everything cached can be read again). Parsed trees are bounded in bytes (`trees`).
const CACHE_CAP: usize = 4_096;

/// Makes room in a cache that is full by dropping a quarter of it (any quarter: cheaper than
/// tracking use, and a dropped entry is only read again).
fn bound<V>(map: &mut HashMap<String, V>, cap: usize) {
    if map.len() >= cap {
        let drop: Vec<String> = map.keys().take(cap / 4).cloned().collect();
        for k in drop {
            map.remove(&k);
        }
    }
}

/// What an inode stands for. Names, not numbers, are the identity: the spool may change
/// under us (senders, other processes), so everything is looked up again by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Root,
    Message(String),
    Scratch(String),
    /// `X.eml.parts/`, or with `nest` the parts of attached messages within it.
    Parts {
        msg: String,
        nest: Vec<String>,
    },
    /// A file in a parts directory.
    Part {
        msg: String,
        nest: Vec<String>,
        name: String,
    },
    /// A temp file in a Draft's parts directory or an attached message's (a name with a
    /// leading dot, which no part has): a plain file until renamed onto a part's name (see
    /// `backed.rs`; onto an attached message's part only with the bytes it has, `nested.rs`).
    Staged {
        msg: String,
        nest: Vec<String>,
        name: String,
    },
}

const PARTS_SUFFIX: &str = ".parts";

struct CachedMessage {
    attrs: MessageAttrs,
    attrs_stamp: Option<Stamp>,
    head: Option<(Stamp, HeaderInfo)>,
}

enum Handle {
    File {
        file: File,
        key: Key,
        created: bool,
        written: bool,
        /// The template was written at a close of a duplicate descriptor (a shell's `> X.eml`
        /// dup2s and closes before writing): the first real write replaces it.
        templated: bool,
        /// A write failed (ENOSPC...): a message this handle created is removed at close.
        failed: Option<i32>,
        /// An existing message opened for writing: `file` is its copy, put in place at close.
        pending: Option<whole::Pending>,
        /// The process that created the message through this handle (`opener.rs`): while it
        /// holds it open, another process's `is_ready=1` is EBUSY.
        creator: Option<opener::Opener>,
    },
    Dir(dirs::Listing),
    /// A part being read: the message version and tree it was opened on.
    Part {
        file: File,
        tree: Arc<Tree>,
        nest: Vec<String>,
        name: String,
        /// Where the last read stopped decoding (sequential reads pick up from there).
        hint: Option<(u64, u64)>,
    },
    /// A part of a Draft being written (`handles.rs`).
    PartWrite(handles::PartWriter),
}

/// LOCK ORDER (a lock may be taken while holding only those above it; keep it true, and
/// extend `fs/tests/locks.rs` when a path takes two):
///
/// 0. a message's `readying` turn (`ready.rs`): held through one `is_ready` hand-over, and
///    by a rename for the message names it moves (several in name order); taken before `ns`
///    and never while holding it or any lock below; the spool's shared sync is waited on
///    holding this turn only.
/// 1. `ns`: namespace and attribute mutations (create, unlink, rename, setattr, setxattr, a
///    close that puts content in place). Taken before any handle's lock, never while holding
///    one: a close lets go of its handle first (`flush_part`, `discard_new_message`).
/// 2. one handle's `Mutex<Handle>`: never two at once. Code that visits every handle
///    (`retarget_handles`, `pending_part_size`, `truncate_part`) copies them out of the
///    `handles` map, lets go of the map, then locks them one at a time.
/// 3. `trees.parse` (one parse at a time), then `trees.map`.
/// 4. leaves, held briefly and never together: `handles` (the map), `inodes`, `cache`,
///    `staged`, `restoring`, `removals`, `pages`, `through` (`passthrough.rs`: it answers the kernel
///    while held, and lets go before releasing a handle or renumbering an inode), the node's
///    attributes. Nothing is called with one of
///    them held that takes another lock of this list.
///
/// Outside these, the spool's per-message `flock` is only ever tried (`try_lock`), never
/// waited on, so it cannot close a cycle; the Message-ID record's `flock` (sent_ids.rs) is a
/// leaf below everything here: taken with or without `ns`, it never waits on a lock of this
/// list.
pub struct MailFs {
    node: Arc<Node>,
    inodes: Mutex<inodes::Inodes>,
    cache: Mutex<HashMap<String, CachedMessage>>,
    trees: TreeCache,
    handles: Mutex<HashMap<u64, Arc<Mutex<Handle>>>>,
    next_fh: AtomicU64,
    ns: Mutex<()>,
    staged: backed::Staged,
    restoring: nested::Restoring,
    removals: undo::Removals,
    kept_names: keepnames::KeptNames,
    claims: claims::Claims,
    uid: u32,
    gid: u32,
    /// Tells the kernel when attributes it caches (for `ATTR_TTL`) changed behind its back.
    notifier: Arc<std::sync::OnceLock<fuser::Notifier>>,
    /// Whether an open of a message may keep the kernel's cached pages.
    pages: pagecache::PageCache,
    /// Messages being made ready now (`ready.rs`).
    readying: ready::Readying,
    /// Reads of messages passed through to their spool files (`passthrough.rs`).
    through: passthrough::Passthrough,
    /// The mode the mount root shows (see [`MailFs::kernel_checks`]).
    root_mode: std::sync::atomic::AtomicU16,
}

/// How long the kernel may keep attributes and names: every change mailfs makes itself is
/// pushed to the kernel at once (`invalidate_message`); a change by another process (a
/// message expired or cancelled elsewhere) shows within this time.
pub const ATTR_TTL: Duration = Duration::from_secs(1);

/// Starts pushing name changes made in the spool directory `root` by others to the kernel.
pub fn watch_spool(spool: &crate::store::spool::Spool, notifier: fuser::Notifier) {
    if let Err(e) = watch::start(spool.root(), spool.own_renames(), notifier) {
        log::warn!(
            "cannot watch the spool directory ({e}): names changed by other processes show within {ATTR_TTL:?}"
        );
    }
}

fn to_time(secs: i64, nsec: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nsec as u32)
    } else {
        UNIX_EPOCH
    }
}

fn attr_from_meta(ino: u64, meta: &fs::Metadata, kind: FileType, perm: u16, uid: u32, gid: u32) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: meta.size(),
        blocks: meta.blocks(),
        atime: to_time(meta.atime(), meta.atime_nsec()),
        mtime: to_time(meta.mtime(), meta.mtime_nsec()),
        ctime: to_time(meta.ctime(), meta.ctime_nsec()),
        crtime: to_time(meta.ctime(), meta.ctime_nsec()),
        kind,
        perm,
        nlink: if kind == FileType::Directory { 2 } else { 1 },
        uid,
        gid,
        rdev: 0,
        flags: 0,
        // The preferred I/O size, by which `cp` sizes its buffer (at least 128 KiB). Files
        // written through the page cache keep 4 KiB (128 KiB writes): 1 MiB ones were 2.7x
        // slower there, each chunk copied into the FUSE page cache too. Messages say 1 MiB
        // (`message_attr`): their writers bypass that cache (FOPEN_DIRECT_IO).
        blksize: 4096,
    }
}

/// The preferred I/O size a message shows: a writer of a message (a new one, or the copy that
/// replaces one) is opened with FOPEN_DIRECT_IO, so each `write` of `cp` goes to mailfs as one
/// request straight from the writer's buffer, and 1 MiB ones take an eighth of the round trips
/// of 128 KiB (issue 17, benches/cp-write.sh).
pub(crate) const MESSAGE_BLKSIZE: u32 = 1 << 20;

/// `attr_from_meta` for a message's `.eml`.
fn message_attr(ino: u64, meta: &fs::Metadata, perm: u16, uid: u32, gid: u32) -> FileAttr {
    FileAttr {
        blksize: MESSAGE_BLKSIZE,
        ..attr_from_meta(ino, meta, FileType::RegularFile, perm, uid, gid)
    }
}

fn not_found(e: io::Error, what: &str) -> Error {
    if e.kind() == io::ErrorKind::NotFound {
        Error::NotFound(what.to_string())
    } else {
        Error::Io(e)
    }
}

impl MailFs {
    pub fn new(node: Arc<Node>) -> MailFs {
        // SAFETY: geteuid/getegid cannot fail.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let notifier: Arc<std::sync::OnceLock<fuser::Notifier>> = Arc::default();
        MailFs {
            node,
            inodes: Mutex::new(inodes::Inodes::default()),
            cache: Mutex::new(HashMap::new()),
            trees: TreeCache::default(),
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            ns: Mutex::new(()),
            staged: backed::Staged::default(),
            restoring: nested::Restoring::default(),
            removals: undo::Removals::default(),
            kept_names: keepnames::KeptNames::default(),
            claims: claims::Claims::default(),
            uid,
            gid,
            pages: pagecache::PageCache::new(notifier.clone()),
            readying: ready::Readying::default(),
            through: passthrough::Passthrough::default(),
            notifier,
            root_mode: std::sync::atomic::AtomicU16::new(0o1777),
        }
    }

    /// With `default_permissions` the kernel checks the modes mailfs shows before mailfs is
    /// asked. The root then shows 0777, not sticky 1777: with the sticky bit the kernel would
    /// answer another user's `rm` or `mv` of a message EPERM itself, where mailfs answers
    /// EACCES (SPEC §10); mailfs still refuses what the sticky bit stands for.
    pub fn kernel_checks(&self, on: bool) {
        let mode = if on { 0o777 } else { 0o1777 };
        self.root_mode.store(mode, Ordering::Relaxed);
    }

    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// Where the session's notifier goes once the session exists.
    pub fn notifier_slot(&self) -> Arc<std::sync::OnceLock<fuser::Notifier>> {
        self.notifier.clone()
    }

    /// Drops the kernel's cached attributes (not data) of these inodes. Attribute-only
    /// invalidation never waits on page locks, so it is safe inside any request.
    fn invalidate(&self, inos: &[u64]) {
        if let Some(n) = self.notifier.get() {
            for &ino in inos {
                // ENOENT: the kernel does not know the inode; nothing to drop.
                let _ = n.inval_inode(INodeNo(ino), -1, 0);
            }
        }
    }

    /// The inodes the kernel may cache for a message: its `.parts` directory and part files
    /// (from the last parsed tree), and with `itself` the `.eml`.
    fn invalidate_message(&self, name: &str, itself: bool) {
        if self.notifier.get().is_none() {
            return;
        }
        let tree = self.trees.last(name);
        let mut keys = Vec::new();
        if itself {
            keys.push(Key::Message(name.to_string()));
        }
        keys.push(Key::Parts {
            msg: name.to_string(),
            nest: Vec::new(),
        });
        if let Some(t) = tree {
            fn walk(t: &Tree, msg: &str, nest: &[String], keys: &mut Vec<Key>) {
                for e in &t.entries {
                    keys.push(Key::Part {
                        msg: msg.to_string(),
                        nest: nest.to_vec(),
                        name: e.name.clone(),
                    });
                    if let Some(inner) = &e.nested {
                        let mut n = nest.to_vec();
                        n.push(e.name.clone());
                        keys.push(Key::Parts {
                            msg: msg.to_string(),
                            nest: n.clone(),
                        });
                        walk(inner, msg, &n, keys);
                    }
                }
            }
            walk(&t, name, &[], &mut keys);
        }
        let inos: Vec<u64> = {
            let inodes = self.inodes.lock();
            keys.iter().filter_map(|k| inodes.get(k)).collect()
        };
        self.invalidate(&inos);
    }

    fn key(&self, ino: u64) -> Result<Key> {
        self.inodes
            .lock()
            .key(ino)
            .ok_or_else(|| Error::NotFound(format!("inode {ino}")))
    }

    fn ino(&self, key: Key) -> u64 {
        self.inodes.lock().ino(&key)
    }

    fn classify(&self, parent: u64, name: &str) -> Result<Key> {
        if name.len() > 255 {
            return Err(Error::NameTooLong(format!("{} bytes", name.len())));
        }
        if parent != ROOT {
            return match self.key(parent)? {
                Key::Parts { msg, nest } => {
                    if name == "." || name == ".." || name.is_empty() {
                        return Err(Error::invalid("name", format!("{name:?} is not a file name")));
                    }
                    if name.starts_with('.') {
                        return Ok(Key::Staged {
                            msg,
                            nest,
                            name: name.to_string(),
                        });
                    }
                    let tree = self.tree(&msg)?;
                    if let Some(inner) = name.strip_suffix(PARTS_SUFFIX)
                        && (mime::entry(&tree, &nest, inner).is_some_and(|e| e.nested.is_some())
                            || self.restoring.promised(&msg, &nest, inner))
                    {
                        let mut nest = nest;
                        nest.push(inner.to_string());
                        return Ok(Key::Parts { msg, nest });
                    }
                    Ok(Key::Part {
                        msg,
                        nest,
                        name: name.to_string(),
                    })
                }
                _ => Err(Error::NotDir(name.to_string())),
            };
        }
        if !is_plain_name(name) {
            return Err(Error::invalid("name", format!("{name:?} is not a file name")));
        }
        crate::model::names::check_root_name(name)?;
        if let Some(msg) = name.strip_suffix(PARTS_SUFFIX)
            && is_message_name(msg)
        {
            return Ok(Key::Parts {
                msg: msg.to_string(),
                nest: Vec::new(),
            });
        }
        if is_message_name(name) {
            Ok(Key::Message(name.to_string()))
        } else {
            Ok(Key::Scratch(name.to_string()))
        }
    }

    // ----- message attribute cache -----------------------------------------------------

    /// A message's attributes, re-read when the attribute file changed on disk.
    pub fn message_attrs(&self, name: &str) -> Result<MessageAttrs> {
        let stamp = self.node.spool.attrs_stamp(name);
        if let Some(c) = self.cache.lock().get(name)
            && c.attrs_stamp == stamp
            && stamp.is_none_or(|s| s.is_settled())
        {
            return Ok(c.attrs.clone());
        }
        let (attrs, stamp) = match self.node.spool.read_attrs_shown(name)? {
            Some((a, s)) => (a, Some(s)),
            None => {
                let mut a = MessageAttrs::new_draft();
                if let Ok(meta) = fs::metadata(self.node.spool.eml_path(name)) {
                    a.message_id = crate::model::attrs::stable_message_id(name, meta.ino());
                }
                (a, None)
            }
        };
        let mut cache = self.cache.lock();
        if weight::attrs(&attrs) > weight::HEAVY {
            cache.remove(name);
            return Ok(attrs);
        }
        bound(&mut cache, CACHE_CAP);
        let entry = cache.entry(name.to_string()).or_insert_with(|| CachedMessage {
            attrs: attrs.clone(),
            attrs_stamp: stamp,
            head: None,
        });
        // A message that has no attribute file yet keeps the Message-ID first given to it.
        if !(stamp.is_none() && entry.attrs_stamp.is_none()) {
            entry.attrs = attrs;
        }
        entry.attrs_stamp = stamp;
        Ok(entry.attrs.clone())
    }

    /// What `stat` and the permission checks need of a message's attributes (owner, mode,
    /// frozen), without copying them all. A message with no attribute file yet is a fresh
    /// Draft: nothing is read or cached for it (`ls -l` of a big spool written by other
    /// tools would otherwise build and cache full attributes for every message).
    pub(super) fn message_shown(
        &self,
        name: &str,
    ) -> Result<(Option<crate::model::attrs::Owner>, u16, bool)> {
        let stamp = self.node.spool.attrs_stamp(name);
        let Some(s) = stamp else {
            return Ok((None, crate::model::attrs::DEFAULT_MESSAGE_MODE, false));
        };
        if let Some(c) = self.cache.lock().get(name)
            && c.attrs_stamp == stamp
            && s.is_settled()
        {
            return Ok((c.attrs.owner, c.attrs.mode, c.attrs.frozen()));
        }
        let a = self.message_attrs(name)?;
        Ok((a.owner, a.mode, a.frozen()))
    }

    fn store_attrs(&self, name: &str, attrs: &MessageAttrs) -> Result<()> {
        let stamp = self.node.spool.write_attrs(name, attrs)?;
        self.cache_put(name, attrs.clone(), stamp);
        Ok(())
    }

    /// Caches attributes under the stamp of the exact file version they were written to, so a
    /// newer version written meanwhile (a sender recording Sent) is never hidden.
    fn cache_put(&self, name: &str, attrs: MessageAttrs, stamp: Stamp) {
        let mut cache = self.cache.lock();
        let head = cache.remove(name).and_then(|c| c.head);
        if weight::attrs(&attrs) > weight::HEAVY {
            return;
        }
        bound(&mut cache, CACHE_CAP);
        cache.insert(
            name.to_string(),
            CachedMessage {
                attrs,
                attrs_stamp: Some(stamp),
                head,
            },
        );
    }

    /// Attributes for a message name that has no content yet. A leftover Draft attribute file
    /// (an editor renamed the message away and writes it anew) is kept: a message is its
    /// name. Anything else starts as a fresh Draft.
    fn init_new_message(&self, name: &str, caller: Caller) -> Result<()> {
        if let Ok(Some((a, _))) = self.node.spool.read_attrs(name)
            && !a.frozen()
            && self.owner_of(&a) == caller.uid
        {
            return Ok(());
        }
        self.cache.lock().remove(name);
        let mut a = MessageAttrs::new_draft();
        a.owner = Some(crate::model::attrs::Owner {
            uid: caller.uid,
            gid: caller.gid,
        });
        self.store_attrs(name, &a)
    }

    fn owner_of(&self, a: &MessageAttrs) -> u32 {
        a.owner.map_or(self.uid, |o| o.uid)
    }

    fn header_info(&self, name: &str) -> Result<HeaderInfo> {
        let path = self.node.spool.eml_path(name);
        let meta = fs::metadata(&path).map_err(|e| not_found(e, name))?;
        let stamp = Stamp::of(&meta);
        if let Some(c) = self.cache.lock().get(name)
            && let Some((s, info)) = &c.head
            && *s == stamp
            && stamp.is_settled()
        {
            return Ok(info.clone());
        }
        let info = HeaderInfo::parse(&content::read_head(&path)?);
        if weight::head(&info) <= weight::HEAVY
            && let Some(c) = self.cache.lock().get_mut(name)
        {
            c.head = Some((stamp, info.clone()));
        }
        Ok(info)
    }

    /// The parts tree of a message, parsed once per version of its content.
    pub fn tree(&self, name: &str) -> Result<Arc<Tree>> {
        let path = self.node.spool.eml_path(name);
        let meta = fs::metadata(&path).map_err(|e| not_found(e, name))?;
        self.tree_at(name, Stamp::of(&meta))
    }

    fn tree_at(&self, name: &str, stamp: Stamp) -> Result<Arc<Tree>> {
        let kept = self.kept_names.get(name, stamp);
        self.trees
            .get_or_parse(name, stamp, &self.node.spool.eml_path(name), |t| {
                for (i, old) in kept {
                    if let Some(e) = t.entries.get_mut(i) {
                        e.name = old;
                    }
                }
            })
            .map_err(|e| not_found(e, name))
    }

    /// Our own change to a message's content: the parsed tree goes at once, whatever the stamp.
    /// The kernel's attributes of the message go too: it keeps names in the root (and so no
    /// LOOKUP refreshes them), and the change may not have come through it (a copy put in
    /// place at close, a part written).
    fn content_changed(&self, name: &str) {
        self.invalidate_message(name, true);
        self.trees.remove(name);
        let ino = self.inodes.lock().get(&Key::Message(name.to_string()));
        if let Some(ino) = ino {
            self.pages.changed(ino);
        }
    }

    /// Refuses a change in a parts directory that cannot be composed in (an attached
    /// message's parts take only the bytes they have: `nested.rs`).
    fn check_composable(&self, msg: &str, nest: &[String]) -> Result<()> {
        if !nest.is_empty() {
            return Err(Error::Frozen(format!("{msg}: attached messages are read-only")));
        }
        if self.message_attrs(msg)?.frozen() {
            return Err(Error::Frozen(msg.to_string()));
        }
        Ok(())
    }

    /// Applies a composition edit to a Draft: rebuild, then replace the `.eml` atomically.
    fn compose(&self, msg: &str, edit: Edit) -> Result<()> {
        self.check_composable(msg, &[])?;
        let path = self.node.spool.eml_path(msg);
        let file = crate::store::spool::open_read(&path).map_err(|e| not_found(e, msg))?;
        let stamp = Stamp::of(&file.metadata()?);
        let tree = self.tree_at(msg, stamp)?;
        let mut attrs = self.message_attrs(msg)?;
        // Removing the field is how a copy is sent again on purpose: a new ID, not the one
        // kept for the Draft, which may be the one that went out (audit-25 F6).
        let fresh = matches!(&edit, Edit::RemoveHeader(h) if h.eq_ignore_ascii_case("message-id"));
        if fresh {
            attrs.message_id = crate::model::attrs::new_message_id();
        }
        let edited = keepnames::Edited::of(&edit);
        let bytes = compose::rebuild(&tree, &file, edit, &attrs.message_id)?;
        self.node.spool.write_atomic(&path, &bytes)?;
        if fresh {
            self.store_attrs(msg, &attrs)?;
        }
        // The kernel's size and times of the .eml are stale now, as are the parts'.
        self.invalidate_message(msg, true);
        self.content_changed(msg);
        self.keep_names(msg, (&tree, stamp), &file, &edited);
        Ok(())
    }

    fn forget_message(&self, name: &str) {
        self.staged.forget_message(name);
        self.restoring.forget_message(name);
        self.removals.forget_message(name);
        self.cache.lock().remove(name);
        self.trees.remove(name);
        self.inodes.lock().forget_key(&Key::Message(name.to_string()));
    }

    pub fn statfs(&self) -> Result<libc::statvfs> {
        let path = std::ffi::CString::new(self.node.spool.root_str())
            .map_err(|_| Error::NotFound("spool".into()))?;
        // SAFETY: statvfs writes into the zeroed struct we own; the path is NUL-terminated.
        unsafe {
            let mut st: libc::statvfs = std::mem::zeroed();
            if libc::statvfs(path.as_ptr(), &mut st) != 0 {
                return Err(io::Error::last_os_error().into());
            }
            Ok(st)
        }
    }
}
