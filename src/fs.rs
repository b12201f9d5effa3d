//! The file system proper: the tree of SPEC §2 over the spool, with no FUSE reply types, so it
//! can be driven and tested without a kernel. `fuse.rs` is the thin adapter on top.
//!
//! Lock order: `ns` (namespace and attribute mutations) before `cache`, `inodes` or `handles`;
//! the last three are never held together.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{FileAttr, FileType, INodeNo};
use parking_lot::Mutex;

use crate::access::{self as rules, Caller, Need};
use crate::attrs::{MessageAttrs, NODE_ATTRS};
use crate::compose::{self, Edit};
use crate::content::{self, HeaderInfo};
use crate::error::{Error, Result};
use crate::message::{self, Change};
use crate::mime::{self, Tree};
use crate::node::Node;
use crate::spool::{Stamp, is_message_name, is_plain_name};
use crate::trees::TreeCache;

mod access;
mod backed;
mod files;
mod names;
mod pagecache;
mod undo;
mod weight;
mod whole;
mod xattr;

pub const ROOT: u64 = 1;

/// A chown's new uid and gid, each optional.
type Ids = (Option<u32>, Option<u32>);

/// How many messages' attributes are kept: a spool of 100,000 messages must not hold them
/// all (everything cached can be read again). Parsed trees are bounded in bytes (`trees`).
const CACHE_CAP: usize = 16_384;

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
    /// A temp file in a Draft's top parts directory (a name with a leading dot, which no part
    /// has): a plain file until renamed onto a part's name (see `backed.rs`).
    Staged {
        msg: String,
        name: String,
    },
}

const PARTS_SUFFIX: &str = ".parts";

#[derive(Default)]
struct Inodes {
    by_ino: HashMap<u64, Key>,
    by_key: HashMap<Key, u64>,
    next: u64,
}

impl Inodes {
    fn ino(&mut self, key: Key) -> u64 {
        if let Some(&i) = self.by_key.get(&key) {
            return i;
        }
        self.next += 1;
        let i = self.next;
        self.by_ino.insert(i, key.clone());
        self.by_key.insert(key, i);
        i
    }
    fn forget_key(&mut self, key: &Key) {
        if let Some(i) = self.by_key.remove(key) {
            self.by_ino.remove(&i);
        }
    }
    /// A rename keeps the inode (open handles and the kernel's dentry stay valid).
    fn rename(&mut self, from: &Key, to: Key) {
        self.forget_key(&to);
        if let Some(i) = self.by_key.remove(from) {
            self.by_ino.insert(i, to.clone());
            self.by_key.insert(to, i);
        }
    }
}

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
    },
    Dir(Vec<(u64, FileType, String)>),
    /// A part being read: the message version and tree it was opened on.
    Part {
        file: File,
        tree: Arc<Tree>,
        nest: Vec<String>,
        name: String,
        /// Where the last read stopped decoding (sequential reads pick up from there).
        hint: Option<(u64, u64)>,
    },
    /// A part of a Draft being written: the bytes gather in a temp file and the message is
    /// rebuilt when the file is closed.
    PartWrite {
        msg: String,
        name: String,
        tmp: File,
        tmp_path: std::path::PathBuf,
        dirty: bool,
        /// A write was refused: the close changes nothing.
        refused: bool,
        /// Who opened it: the rebuild at close is checked for them again (SPEC §10).
        caller: Caller,
        /// A hard link to the message as it was before this writer's first rebuild (a shell
        /// closes a dup of the descriptor, so a rebuild can come before the bytes do); put
        /// back if a write is refused.
        backup: Option<std::path::PathBuf>,
    },
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let Handle::PartWrite { tmp_path, backup, .. } = self {
            let _ = fs::remove_file(tmp_path);
            if let Some(b) = backup {
                let _ = fs::remove_file(b);
            }
        }
    }
}

pub struct MailFs {
    node: Arc<Node>,
    inodes: Mutex<Inodes>,
    cache: Mutex<HashMap<String, CachedMessage>>,
    trees: TreeCache,
    handles: Mutex<HashMap<u64, Arc<Mutex<Handle>>>>,
    next_fh: AtomicU64,
    ns: Mutex<()>,
    staged: backed::Staged,
    removals: undo::Removals,
    uid: u32,
    gid: u32,
    /// Tells the kernel when attributes it caches (for `ATTR_TTL`) changed behind its back.
    notifier: Arc<std::sync::OnceLock<fuser::Notifier>>,
    /// Whether an open of a message may keep the kernel's cached pages.
    pages: pagecache::PageCache,
}

/// How long the kernel may keep attributes and names: every change mailfs makes itself is
/// pushed to the kernel at once (`invalidate_message`); a change by another process (a
/// message expired or cancelled elsewhere) shows within this time.
pub const ATTR_TTL: Duration = Duration::from_secs(1);

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
        blksize: 4096,
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
        let mut inodes = Inodes {
            next: ROOT,
            ..Default::default()
        };
        inodes.by_ino.insert(ROOT, Key::Root);
        inodes.by_key.insert(Key::Root, ROOT);
        // SAFETY: geteuid/getegid cannot fail.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let notifier: Arc<std::sync::OnceLock<fuser::Notifier>> = Arc::default();
        MailFs {
            node,
            inodes: Mutex::new(inodes),
            cache: Mutex::new(HashMap::new()),
            trees: TreeCache::default(),
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            ns: Mutex::new(()),
            staged: backed::Staged::default(),
            removals: undo::Removals::default(),
            uid,
            gid,
            pages: pagecache::PageCache::new(notifier.clone()),
            notifier,
        }
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
            keys.iter()
                .filter_map(|k| inodes.by_key.get(k).copied())
                .collect()
        };
        self.invalidate(&inos);
    }

    fn key(&self, ino: u64) -> Result<Key> {
        self.inodes
            .lock()
            .by_ino
            .get(&ino)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("inode {ino}")))
    }

    fn ino(&self, key: Key) -> u64 {
        self.inodes.lock().ino(key)
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
                    if nest.is_empty() && name.starts_with('.') {
                        return Ok(Key::Staged {
                            msg,
                            name: name.to_string(),
                        });
                    }
                    let tree = self.tree(&msg)?;
                    if let Some(inner) = name.strip_suffix(PARTS_SUFFIX)
                        && mime::entry(&tree, &nest, inner).is_some_and(|e| e.nested.is_some())
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
        crate::names::check_root_name(name)?;
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
        let (attrs, stamp) = match self.node.spool.read_attrs(name)? {
            Some((a, s)) => (a, Some(s)),
            None => {
                let mut a = MessageAttrs::new_draft();
                if let Ok(meta) = fs::metadata(self.node.spool.eml_path(name)) {
                    a.message_id = crate::attrs::stable_message_id(name, meta.ino());
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
        a.owner = Some(crate::attrs::Owner {
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
        self.trees
            .get_or_parse(name, stamp, &self.node.spool.eml_path(name))
            .map_err(|e| not_found(e, name))
    }

    /// Our own change to a message's content: the parsed tree goes at once, whatever the stamp.
    fn content_changed(&self, name: &str) {
        self.invalidate_message(name, false);
        self.trees.remove(name);
        let ino = self
            .inodes
            .lock()
            .by_key
            .get(&Key::Message(name.to_string()))
            .copied();
        if let Some(ino) = ino {
            self.pages.changed(ino);
        }
    }

    /// Refuses a change in a parts directory that cannot be composed in.
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
        let file = crate::spool::open_read(&path).map_err(|e| not_found(e, msg))?;
        let stamp = Stamp::of(&file.metadata()?);
        let tree = self.tree_at(msg, stamp)?;
        let message_id = self.message_attrs(msg)?.message_id;
        let bytes = compose::rebuild(&tree, &file, edit, &message_id)?;
        self.node.spool.write_atomic(&path, &bytes)?;
        // The kernel's size and times of the .eml are stale now, as are the parts'.
        self.invalidate_message(msg, true);
        self.content_changed(msg);
        Ok(())
    }

    fn forget_message(&self, name: &str) {
        self.staged.forget_message(name);
        self.removals.forget_message(name);
        self.cache.lock().remove(name);
        self.trees.remove(name);
        self.inodes.lock().forget_key(&Key::Message(name.to_string()));
    }

    // ----- attributes of inodes -----------------------------------------------------------

    /// A message's file, never through a symbolic link (SPEC §9): a link planted in the
    /// spool is not a message.
    fn message_meta(&self, name: &str) -> Result<fs::Metadata> {
        let meta = fs::symlink_metadata(self.node.spool.eml_path(name)).map_err(|e| not_found(e, name))?;
        if !meta.is_file() {
            log::warn!("{name}: not a regular file in the spool (a symbolic link?): ignored");
            return Err(Error::NotFound(name.to_string()));
        }
        Ok(meta)
    }

    /// Owner and mode `stat` shows for a message and its parts; read-only unless `editable`
    /// and still a Draft.
    fn shown_owner(&self, msg: &str, editable: bool) -> Result<(u32, u32, u16)> {
        let a = self.message_attrs(msg)?;
        let o = a.owner.unwrap_or(crate::attrs::Owner {
            uid: self.uid,
            gid: self.gid,
        });
        Ok((o.uid, o.gid, rules::shown_mode(a.mode, a.frozen() || !editable)))
    }

    fn root_attr(&self) -> Result<FileAttr> {
        let meta = fs::metadata(self.node.spool.root())?;
        let mut a = attr_from_meta(
            ROOT,
            &meta,
            FileType::Directory,
            // Everyone may drop mail in; removing needs ownership of the entry (SPEC §10).
            0o1777,
            self.uid,
            self.gid,
        );
        // Scratch files live in their own spool directory: their coming and going moves the
        // root's times too (rsync and make compare them).
        if let Ok(m) = fs::metadata(self.node.spool.scratch_path("")) {
            a.mtime = a.mtime.max(to_time(m.mtime(), m.mtime_nsec()));
            a.ctime = a.ctime.max(to_time(m.ctime(), m.ctime_nsec()));
        }
        Ok(a)
    }

    fn key_attr(&self, ino: u64, key: &Key) -> Result<FileAttr> {
        match key {
            Key::Root => self.root_attr(),
            Key::Message(name) => {
                let meta = self.message_meta(name)?;
                let (uid, gid, mode) = self.shown_owner(name, true)?;
                Ok(attr_from_meta(ino, &meta, FileType::RegularFile, mode, uid, gid))
            }
            Key::Scratch(name) | Key::Staged { name, .. } => {
                let path = self.backing(key).ok_or_else(|| Error::NotFound(name.clone()))?;
                let meta = fs::symlink_metadata(path).map_err(|e| not_found(e, name))?;
                if !meta.is_file() {
                    // Never follow or expose anything but plain files from the spool.
                    return Err(Error::NotFound(name.clone()));
                }
                let perm = (meta.mode() & 0o7777) as u16;
                // A staged file belongs to its message's owner, as the message's parts do.
                let (uid, gid) = match key {
                    Key::Staged { msg, .. } => self.shown_owner(msg, true).map(|(u, g, _)| (u, g))?,
                    _ => (meta.uid(), meta.gid()),
                };
                Ok(attr_from_meta(ino, &meta, FileType::RegularFile, perm, uid, gid))
            }
            Key::Parts { msg, nest } => {
                let meta = self.message_meta(msg)?;
                // The top directory needs no parse (`ls -l` of a big spool must not parse every
                // message); an attached message's directory exists only if the tree has it.
                if !nest.is_empty() {
                    let tree = self.tree_at(msg, Stamp::of(&meta))?;
                    mime::subtree(&tree, nest).ok_or_else(|| Error::NotFound(msg.clone()))?;
                }
                let (uid, gid, mode) = self.shown_owner(msg, nest.is_empty())?;
                let perm = rules::dir_mode(mode);
                let mut a = attr_from_meta(ino, &meta, FileType::Directory, perm, uid, gid);
                a.size = 0;
                a.blocks = 0;
                Ok(a)
            }
            Key::Part { msg, nest, name } => {
                let meta = self.message_meta(msg)?;
                let tree = self.tree_at(msg, Stamp::of(&meta))?;
                let found = mime::entry(&tree, nest, name)
                    .filter(|_| !(nest.is_empty() && self.hidden_part(msg, name)))
                    .map(|e| e.data.size());
                // A part being written shows the size written so far (cp fstat()s it).
                let pending = if nest.is_empty() {
                    self.pending_part_size(msg, name)
                } else {
                    None
                };
                let size = pending.or(found).ok_or_else(|| Error::NotFound(name.clone()))?;
                let (uid, gid, mode) =
                    self.shown_owner(msg, nest.is_empty() && tree.parse_error.is_none())?;
                let mut a = attr_from_meta(ino, &meta, FileType::RegularFile, mode, uid, gid);
                a.size = size;
                a.blocks = a.size.div_ceil(512);
                Ok(a)
            }
        }
    }

    pub fn lookup(&self, caller: Caller, parent: u64, name: &str) -> Result<FileAttr> {
        if parent != ROOT {
            self.authorize_ino(caller, parent, Need::Read)?;
        }
        let key = self.classify(parent, name).map_err(|e| match e {
            Error::NameTooLong(_) => e,
            _ => Error::NotFound(name.to_string()),
        })?;
        let ino = self.ino(key.clone());
        match self.key_attr(ino, &key) {
            Ok(a) => Ok(a),
            Err(e) => {
                if matches!(e, Error::NotFound(_)) {
                    self.inodes.lock().forget_key(&key);
                }
                Err(e)
            }
        }
    }

    pub fn getattr(&self, ino: u64) -> Result<FileAttr> {
        let key = self.key(ino)?;
        self.key_attr(ino, &key)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn setattr(
        &self,
        caller: Caller,
        ino: u64,
        mode: Option<u32>,
        owner: (Option<u32>, Option<u32>),
        size: Option<u64>,
        atime: Option<SystemTime>,
        mtime: Option<SystemTime>,
    ) -> Result<FileAttr> {
        let key = self.key(ino)?;
        if size.is_some() || atime.is_some() || mtime.is_some() {
            self.authorize(caller, &key, Need::Write)?;
        }
        if mode.is_some() {
            self.authorize(caller, &key, Need::Own)?;
        }
        if (owner.0.is_some() || owner.1.is_some())
            && let Some(obj) = self.object(&key)?
        {
            self.check_chown(caller, obj, owner.0, owner.1)?;
        }
        let (mode, owner) = self.drop_unchanged(ino, &key, mode, owner)?;
        // chmod of a Draft's parts directory or part is a chmod of the Draft (`rsync -a`
        // and `tar -x` set the modes they copy on every entry).
        if let (Some(m), Key::Parts { msg, nest } | Key::Part { msg, nest, .. }) = (mode, &key)
            && nest.is_empty()
        {
            let msg_ino = self.ino(Key::Message(msg.clone()));
            self.setattr(caller, msg_ino, Some(m & 0o666), (None, None), None, None, None)?;
            return self.setattr(caller, ino, None, owner, size, atime, mtime);
        }
        let path = match &key {
            Key::Root => {
                if mode.is_some() || owner.0.is_some() || owner.1.is_some() {
                    return Err(Error::NotPermitted(
                        "the node's root keeps its mode and owner".into(),
                    ));
                }
                return self.root_attr();
            }
            Key::Message(name) => {
                if mode.is_some() || owner.0.is_some() || owner.1.is_some() {
                    let _ns = self.ns.lock();
                    let mut attrs = self.message_attrs(name)?;
                    if attrs.frozen() {
                        return Err(Error::Frozen(name.clone()));
                    }
                    if let Some(m) = mode {
                        attrs.mode = rules::message_mode(m);
                    }
                    if owner.0.is_some() || owner.1.is_some() {
                        let cur = attrs.owner.unwrap_or(crate::attrs::Owner {
                            uid: self.uid,
                            gid: self.gid,
                        });
                        attrs.owner = Some(crate::attrs::Owner {
                            uid: owner.0.unwrap_or(cur.uid),
                            gid: owner.1.unwrap_or(cur.gid),
                        });
                    }
                    self.store_attrs(name, &attrs)?;
                    self.invalidate_message(name, true);
                }
                if (size.is_some() || atime.is_some() || mtime.is_some())
                    && self.message_attrs(name)?.frozen()
                {
                    return Err(Error::Frozen(name.clone()));
                }
                self.content_changed(name);
                self.node.spool.eml_path(name)
            }
            Key::Scratch(name) | Key::Staged { name, .. } => {
                self.backing(&key).ok_or_else(|| Error::NotFound(name.clone()))?
            }
            Key::Parts { .. } | Key::Part { .. }
                if mode.is_some() || owner.0.is_some() || owner.1.is_some() =>
            {
                return Err(Error::NotPermitted(
                    "parts follow their message's owner (chown the .eml); an attached message's \
                     parts its mode"
                        .into(),
                ));
            }
            Key::Parts { .. } => return self.key_attr(ino, &key),
            Key::Part { msg, nest, name } => {
                if let Some(size) = size {
                    self.truncate_part(msg, nest, name, size)?;
                }
                return self.key_attr(ino, &key);
            }
        };
        if let Some(size) = size {
            let f = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| not_found(e, "file"))?;
            f.set_len(size)?;
        }
        if atime.is_some() || mtime.is_some() {
            let f = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| not_found(e, "file"))?;
            let mut t = fs::FileTimes::new();
            if let Some(a) = atime {
                t = t.set_accessed(a);
            }
            if let Some(m) = mtime {
                t = t.set_modified(m);
            }
            f.set_times(t)?;
        }
        if let (Some(mode), Key::Scratch(_) | Key::Staged { .. }) = (mode, &key) {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode & 0o777))?;
        }
        if let (Key::Scratch(_), (u, g)) = (&key, owner)
            && (u.is_some() || g.is_some())
        {
            std::os::unix::fs::lchown(&path, u, g)?;
        }
        self.key_attr(ino, &key)
    }

    /// The root and parts keep their mode and owner, but `tar -x` and `rsync -a` set them to
    /// what they were when backed up: a mode or owner equal to what is shown is no change.
    fn drop_unchanged(
        &self,
        ino: u64,
        key: &Key,
        mode: Option<u32>,
        owner: (Option<u32>, Option<u32>),
    ) -> Result<(Option<u32>, Ids)> {
        if !matches!(key, Key::Root | Key::Parts { .. } | Key::Part { .. })
            || (mode.is_none() && owner.0.is_none() && owner.1.is_none())
        {
            return Ok((mode, owner));
        }
        let a = self.key_attr(ino, key)?;
        Ok((
            mode.filter(|m| (m & 0o7777) as u16 != a.perm),
            (owner.0.filter(|u| *u != a.uid), owner.1.filter(|g| *g != a.gid)),
        ))
    }

    /// `truncate` on a part: cut the bytes being written if a writer has it open (a shell's
    /// `>` opens, then truncates), else rebuild the Draft with the part cut.
    fn truncate_part(&self, msg: &str, nest: &[String], name: &str, size: u64) -> Result<()> {
        self.check_composable(msg, nest)?;
        compose::check_part_size(name, size)?;
        let handles: Vec<_> = self.handles.lock().values().cloned().collect();
        let mut found = false;
        for h in handles {
            if let Handle::PartWrite {
                msg: m,
                name: n,
                tmp,
                dirty,
                ..
            } = &mut *h.lock()
                && m == msg
                && n == name
            {
                tmp.set_len(size)?;
                *dirty = true;
                found = true;
            }
        }
        if found {
            return Ok(());
        }
        let _ns = self.ns.lock();
        let path = self.node.spool.eml_path(msg);
        let file = crate::spool::open_read(&path).map_err(|e| not_found(e, msg))?;
        let tree = self.tree_at(msg, Stamp::of(&file.metadata()?))?;
        let entry = tree
            .entry(name)
            .ok_or_else(|| Error::NotFound(name.to_string()))?;
        let mut bytes = entry.data.read_all(&file)?;
        bytes.resize(size as usize, 0);
        self.compose(
            msg,
            Edit::SetPart {
                name: name.to_string(),
                bytes,
            },
        )
    }

    // ----- directories ------------------------------------------------------------------

    pub fn opendir(&self, caller: Caller, ino: u64) -> Result<u64> {
        match self.authorize_ino(caller, ino, Need::Read)? {
            Key::Root => {}
            Key::Parts { msg, nest } => return self.open_parts_dir(ino, &msg, nest),
            _ => return Err(Error::NotDir(format!("inode {ino}"))),
        }
        let mut names = self.node.spool.list_messages()?;
        names.sort_unstable();
        let mut scratch = self.node.spool.list_scratch()?;
        scratch.sort_unstable();
        let mut entries = Vec::with_capacity(names.len() + scratch.len() + 2);
        entries.push((ROOT, FileType::Directory, ".".to_string()));
        entries.push((ROOT, FileType::Directory, "..".to_string()));
        {
            let mut inodes = self.inodes.lock();
            for n in names {
                let i = inodes.ino(Key::Message(n.clone()));
                let p = inodes.ino(Key::Parts {
                    msg: n.clone(),
                    nest: Vec::new(),
                });
                let parts = format!("{n}{PARTS_SUFFIX}");
                entries.push((i, FileType::RegularFile, n));
                entries.push((p, FileType::Directory, parts));
            }
            for n in scratch {
                if is_message_name(&n) {
                    continue;
                }
                let i = inodes.ino(Key::Scratch(n.clone()));
                entries.push((i, FileType::RegularFile, n));
            }
        }
        Ok(self.new_handle(Handle::Dir(entries)))
    }

    fn open_parts_dir(&self, ino: u64, msg: &str, nest: Vec<String>) -> Result<u64> {
        let tree = self.tree(msg)?;
        let sub = mime::subtree(&tree, &nest).ok_or_else(|| Error::NotFound(msg.to_string()))?;
        let parent = if nest.is_empty() {
            ROOT
        } else {
            self.ino(Key::Parts {
                msg: msg.to_string(),
                nest: nest[..nest.len() - 1].to_vec(),
            })
        };
        let mut entries = Vec::with_capacity(sub.entries.len() + 2);
        entries.push((ino, FileType::Directory, ".".to_string()));
        entries.push((parent, FileType::Directory, "..".to_string()));
        let hidden: Vec<&str> = if nest.is_empty() {
            sub.entries
                .iter()
                .filter(|e| self.hidden_part(msg, &e.name))
                .map(|e| e.name.as_str())
                .collect()
        } else {
            Vec::new()
        };
        let staged = if nest.is_empty() {
            self.staged.names(msg)
        } else {
            Vec::new()
        };
        let mut inodes = self.inodes.lock();
        for name in staged {
            let i = inodes.ino(Key::Staged {
                msg: msg.to_string(),
                name: name.clone(),
            });
            entries.push((i, FileType::RegularFile, name));
        }
        for e in sub.entries.iter().filter(|e| !hidden.contains(&e.name.as_str())) {
            let i = inodes.ino(Key::Part {
                msg: msg.to_string(),
                nest: nest.clone(),
                name: e.name.clone(),
            });
            entries.push((i, FileType::RegularFile, e.name.clone()));
            if e.nested.is_some() {
                let mut inner = nest.clone();
                inner.push(e.name.clone());
                let d = inodes.ino(Key::Parts {
                    msg: msg.to_string(),
                    nest: inner,
                });
                entries.push((d, FileType::Directory, format!("{}{PARTS_SUFFIX}", e.name)));
            }
        }
        drop(inodes);
        Ok(self.new_handle(Handle::Dir(entries)))
    }

    /// Directory entries from `offset` on; `add` returns true when the reply buffer is full.
    pub fn readdir(
        &self,
        fh: u64,
        offset: u64,
        mut add: impl FnMut(u64, u64, FileType, &str) -> bool,
    ) -> Result<()> {
        let h = self.handle(fh)?;
        let h = h.lock();
        let Handle::Dir(entries) = &*h else {
            return Err(Error::NotDir("handle".into()));
        };
        for (i, (ino, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
            if add(*ino, i as u64 + 1, *kind, name) {
                break;
            }
        }
        Ok(())
    }

    /// The node holds only files: mkdir is refused, with EEXIST when the name is taken (a
    /// `.parts` directory, as `tar -x` and `mkdir -p` expect) and ENAMETOOLONG past 255 bytes.
    pub fn mkdir(&self, caller: Caller, parent: u64, name: &str) -> Result<FileAttr> {
        match self.lookup(caller, parent, name) {
            Ok(_) => Err(Error::Exists(name.to_string())),
            Err(e @ Error::NameTooLong(_)) => Err(e),
            Err(_) => match self.classify(parent, name) {
                // rsync and tar may make `X.eml.parts/` before X.eml's bytes arrive: the
                // directory comes with its message, made as `touch X.eml` makes it.
                Ok(Key::Parts { msg, nest }) if parent == ROOT && nest.is_empty() => {
                    let (_, fh) = self.create(caller, ROOT, &msg, 0o600, libc::O_WRONLY | libc::O_EXCL)?;
                    let made = self.flush(fh);
                    self.release(fh);
                    made?;
                    self.lookup(caller, parent, name)
                }
                _ => Err(Error::NotPermitted(format!("{name}: the node holds only files"))),
            },
        }
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
