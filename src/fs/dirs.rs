//! Directories: the root's listing, a message's parts directory, mkdir.

use super::*;

/// An entry copied out of a listing: its key (none for entries whose inode is fixed), name,
/// and the fixed inode.
type Listed = (Option<Key>, String, u64);
/// The last message whose attributes were found: name, metadata, (uid, gid, mode).
type Shown = (String, fs::Metadata, (u32, u32, u16));

impl MailFs {
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
        // Inodes are given as entries are listed, not here: a listing read in part (or a
        // plain `ls`) does not fill the table with every name of a big spool.
        let messages: Vec<Box<str>> = names.into_iter().map(String::into_boxed_str).collect();
        let scratch: Vec<Box<str>> = scratch
            .into_iter()
            .filter(|n| !is_message_name(n))
            .map(String::into_boxed_str)
            .collect();
        self.inodes.lock().tick();
        Ok(self.new_handle(Handle::Dir(Listing::Root { messages, scratch })))
    }

    pub(super) fn open_parts_dir(&self, ino: u64, msg: &str, nest: Vec<String>) -> Result<u64> {
        let tree = self.tree(msg)?;
        // A directory `mkdir` promised for an attached message not in the Draft yet is empty.
        let promised = || {
            let (inner, outer) = nest.split_last()?;
            self.restoring
                .promised(msg, outer, inner)
                .then(|| Arc::new(Tree::default()))
        };
        let sub = match mime::subtree(&tree, &nest) {
            Some(t) => t.clone(),
            None => promised().ok_or_else(|| Error::NotFound(msg.to_string()))?,
        };
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
        let hidden: Vec<&str> = sub
            .entries
            .iter()
            .filter(|e| self.part_hidden(msg, &nest, &e.name))
            .map(|e| e.name.as_str())
            .collect();
        let staged = self.staged.names(msg, &nest);
        let mut inodes = self.inodes.lock();
        for name in staged {
            let i = inodes.ino(&Key::Staged {
                msg: msg.to_string(),
                nest: nest.clone(),
                name: name.clone(),
            });
            entries.push((i, FileType::RegularFile, name));
        }
        for e in sub.entries.iter().filter(|e| !hidden.contains(&e.name.as_str())) {
            let i = inodes.ino(&Key::Part {
                msg: msg.to_string(),
                nest: nest.clone(),
                name: e.name.clone(),
            });
            entries.push((i, FileType::RegularFile, e.name.clone()));
            if e.nested.is_some() {
                let mut inner = nest.clone();
                inner.push(e.name.clone());
                let d = inodes.ino(&Key::Parts {
                    msg: msg.to_string(),
                    nest: inner,
                });
                entries.push((d, FileType::Directory, format!("{}{PARTS_SUFFIX}", e.name)));
            }
        }
        drop(inodes);
        Ok(self.new_handle(Handle::Dir(Listing::Entries(entries))))
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
        let Handle::Dir(listing) = &*h else {
            return Err(Error::NotDir("handle".into()));
        };
        for i in offset as usize..listing.len() {
            let (key, kind, name) = listing.entry(i);
            let ino = match key {
                Some(k) => self.inodes.lock().ino(&k),
                None => listing.fixed_ino(i),
            };
            if add(ino, i as u64 + 1, kind, &name) {
                break;
            }
        }
        Ok(())
    }

    /// Entries `from..from + n` of an open directory, copied out: attributes are found
    /// without the handle's lock (a part's size looks at the other open handles).
    fn window(&self, fh: u64, from: usize, n: usize) -> Result<(bool, Vec<Listed>)> {
        let h = self.handle(fh)?;
        let h = h.lock();
        let Handle::Dir(listing) = &*h else {
            return Err(Error::NotDir("handle".into()));
        };
        let out = (from..listing.len().min(from.saturating_add(n)))
            .map(|i| {
                let (key, _, name) = listing.entry(i);
                (key, name.into_owned(), listing.fixed_ino(i))
            })
            .collect();
        Ok((listing.is_root(), out))
    }

    /// READDIRPLUS: entries with their attributes, so `ls -l` needs no LOOKUP per name.
    /// Each entry sent (but `.` and `..`) is a reference the kernel holds, as a lookup's.
    /// `add` returns true when the reply buffer is full (the entry was not added).
    pub fn readdirplus(
        &self,
        fh: u64,
        offset: u64,
        mut add: impl FnMut(u64, &str, &FileAttr) -> bool,
    ) -> Result<()> {
        // About one reply's worth (a 32 KiB reply holds ~180 entries): each request copies
        // its window out, and a larger one copied 256 names to send fewer.
        const WINDOW: usize = 64;
        // A message's attributes serve its `.parts` entry that follows it.
        let mut last: Option<Shown> = None;
        let mut i = offset as usize;
        loop {
            let (root, entries) = self.window(fh, i, WINDOW)?;
            if entries.is_empty() {
                return Ok(());
            }
            for (key, name, fixed) in entries {
                i += 1;
                let Some(attr) = self.plus_attr(root, key, fixed, &mut last) else {
                    // Gone since the listing was made.
                    continue;
                };
                // Counted before the reply leaves, so no FORGET can come first.
                let mut inodes = self.inodes.lock();
                if add(i as u64, &name, &attr) {
                    return Ok(());
                }
                if name != "." && name != ".." {
                    inodes.hold(attr.ino.0);
                }
            }
        }
    }

    fn plus_attr(
        &self,
        root: bool,
        key: Option<Key>,
        fixed: u64,
        last: &mut Option<Shown>,
    ) -> Option<FileAttr> {
        let Some(key) = key else {
            return self.getattr(fixed).ok();
        };
        let ino = self.inodes.lock().ino(&key);
        match &key {
            Key::Message(n) | Key::Parts { msg: n, .. } if root => {
                if last.as_ref().is_none_or(|(m, _, _)| m != n) {
                    *last = self
                        .message_meta(n)
                        .and_then(|m| Ok((n.clone(), m, self.shown_owner(n, true)?)))
                        .ok();
                }
                let (_, meta, (uid, gid, mode)) = last.as_ref()?;
                Some(if matches!(key, Key::Message(_)) {
                    message_attr(ino, meta, *mode, *uid, *gid)
                } else {
                    let perm = rules::dir_mode(*mode);
                    let mut a = attr_from_meta(ino, meta, FileType::Directory, perm, *uid, *gid);
                    a.size = 0;
                    a.blocks = 0;
                    a
                })
            }
            _ => self.key_attr(ino, &key).ok(),
        }
    }

    /// The kernel took a reference to `ino` (a LOOKUP, CREATE, MKDIR or MKNOD reply).
    pub fn hold(&self, ino: u64) {
        self.inodes.lock().hold(ino);
    }

    /// The kernel dropped `n` references to `ino` (FORGET).
    pub fn forget(&self, ino: u64, n: u64) {
        self.inodes.lock().release(ino, n);
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
                // rsync makes an attached message's `NAME.eml.parts/` as it walks the backup,
                // maybe before the Draft that holds NAME.eml is written back (`nested.rs`).
                Ok(Key::Part { msg, nest, name: dir }) => {
                    self.promise_dir(caller, parent, &msg, &nest, &dir)?;
                    self.lookup(caller, parent, name)
                }
                _ => Err(Error::NotPermitted(format!("{name}: the node holds only files"))),
            },
        }
    }
}

/// What an open directory lists: made at opendir, as `ls` expects one consistent listing.
pub(super) enum Listing {
    /// A parts directory (few entries), inodes given at open.
    Entries(Vec<(u64, FileType, String)>),
    /// The root: `.`, `..`, each message as `X.eml` and `X.eml.parts`, then scratch files.
    Root {
        messages: Vec<Box<str>>,
        scratch: Vec<Box<str>>,
    },
}

impl Listing {
    fn len(&self) -> usize {
        match self {
            Listing::Entries(e) => e.len(),
            Listing::Root { messages, scratch } => 2 + 2 * messages.len() + scratch.len(),
        }
    }

    fn is_root(&self) -> bool {
        matches!(self, Listing::Root { .. })
    }

    /// Entry `i`: its key (None for `.`/`..` and parts directories' entries, whose inodes are
    /// fixed at open), kind and name.
    fn entry(&self, i: usize) -> (Option<Key>, FileType, std::borrow::Cow<'_, str>) {
        use std::borrow::Cow;
        match self {
            Listing::Entries(e) => {
                let (_, kind, name) = &e[i];
                (None, *kind, Cow::Borrowed(name.as_str()))
            }
            Listing::Root { messages, scratch } => match i {
                0 => (None, FileType::Directory, Cow::Borrowed(".")),
                1 => (None, FileType::Directory, Cow::Borrowed("..")),
                i if i < 2 + 2 * messages.len() => {
                    let n = &messages[(i - 2) / 2];
                    if (i - 2) % 2 == 0 {
                        (
                            Some(Key::Message(n.to_string())),
                            FileType::RegularFile,
                            Cow::Borrowed(&**n),
                        )
                    } else {
                        let key = Key::Parts {
                            msg: n.to_string(),
                            nest: Vec::new(),
                        };
                        (
                            Some(key),
                            FileType::Directory,
                            Cow::Owned([&**n, PARTS_SUFFIX].concat()),
                        )
                    }
                }
                i => {
                    let n = &scratch[i - 2 - 2 * messages.len()];
                    (
                        Some(Key::Scratch(n.to_string())),
                        FileType::RegularFile,
                        Cow::Borrowed(&**n),
                    )
                }
            },
        }
    }

    fn fixed_ino(&self, i: usize) -> u64 {
        match self {
            Listing::Entries(e) => e[i].0,
            Listing::Root { .. } => ROOT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::access::Caller;
    use crate::store::node::Node;

    const ME: Caller = Caller {
        uid: 0,
        gid: 0,
        pid: 0,
    };

    /// READDIRPLUS of the root gives each message and its parts directory with the attributes
    /// a lookup gives, counts each as held, and FORGET of all of them empties the table.
    #[test]
    fn a_listing_with_attributes_is_counted_and_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let node = Node::open(&dir.path().join("spool"), &[]).unwrap();
        for i in 0..300 {
            let p = node.spool.eml_path(&format!("m{i:03}.eml"));
            fs::write(p, format!("To: u{i}@example.org\n\nbody {i}\n")).unwrap();
        }
        let fs = MailFs::new(node);
        let fh = fs.opendir(ME, ROOT).unwrap();
        let mut got: Vec<(String, FileAttr)> = Vec::new();
        let mut offset = 0;
        loop {
            let before = got.len();
            // A small reply buffer: 50 entries per call, as the kernel asks in pages.
            let mut room = 50;
            fs.readdirplus(fh, offset, |next, name, attr| {
                if room == 0 {
                    return true;
                }
                room -= 1;
                offset = next;
                got.push((name.to_string(), *attr));
                false
            })
            .unwrap();
            if got.len() == before {
                break;
            }
        }
        fs.release(fh);
        assert_eq!(
            got.len(),
            2 + 600,
            "., .. and each message with its parts directory"
        );
        for (name, attr) in &got[2..] {
            let looked = fs.lookup(ME, ROOT, name).unwrap();
            assert_eq!(looked.ino, attr.ino, "{name}");
            assert_eq!(
                (looked.kind, looked.perm, looked.size, looked.uid, looked.mtime),
                (attr.kind, attr.perm, attr.size, attr.uid, attr.mtime),
                "{name}"
            );
        }
        let held = fs.inodes.lock().len();
        assert_eq!(held, 601, "the root and 600 names");
        // The kernel forgets them all: one reference from the listing, one from the lookup.
        for (_, attr) in &got[2..] {
            fs.forget(attr.ino.0, 2);
        }
        fs.inodes.lock().sweep(u32::MAX);
        assert_eq!(fs.inodes.lock().len(), 1, "only the root is left");
    }
}
