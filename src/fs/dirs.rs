//! Directories: the root's listing, a message's parts directory, mkdir.

use super::*;

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

    pub(super) fn open_parts_dir(&self, ino: u64, msg: &str, nest: Vec<String>) -> Result<u64> {
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
}
