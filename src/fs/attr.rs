//! What `stat` shows: owner, mode, size and times of each node kind; lookup and getattr.

use super::*;

impl MailFs {
    // ----- attributes of inodes -----------------------------------------------------------

    /// A message's file, never through a symbolic link (SPEC §9): a link planted in the
    /// spool is not a message.
    pub(super) fn message_meta(&self, name: &str) -> Result<fs::Metadata> {
        let meta = fs::symlink_metadata(self.node.spool.eml_path(name)).map_err(|e| not_found(e, name))?;
        if !meta.is_file() {
            log::warn!("{name}: not a regular file in the spool (a symbolic link?): ignored");
            return Err(Error::NotFound(name.to_string()));
        }
        Ok(meta)
    }

    /// Owner and mode `stat` shows for a message and its parts; read-only unless `editable`
    /// and still a Draft.
    pub(super) fn shown_owner(&self, msg: &str, editable: bool) -> Result<(u32, u32, u16)> {
        let (owner, mode, frozen) = self.message_shown(msg)?;
        let o = owner.unwrap_or(crate::model::attrs::Owner {
            uid: self.uid,
            gid: self.gid,
        });
        Ok((o.uid, o.gid, rules::shown_mode(mode, frozen || !editable)))
    }

    pub(super) fn root_attr(&self) -> Result<FileAttr> {
        let meta = fs::metadata(self.node.spool.root())?;
        let mut a = attr_from_meta(
            ROOT,
            &meta,
            FileType::Directory,
            // Everyone may drop mail in; removing needs ownership of the entry (SPEC §10).
            self.root_mode.load(std::sync::atomic::Ordering::Relaxed),
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

    pub(super) fn key_attr(&self, ino: u64, key: &Key) -> Result<FileAttr> {
        match key {
            Key::Root => self.root_attr(),
            Key::Message(name) => {
                let meta = self.message_meta(name)?;
                let (uid, gid, mode) = self.shown_owner(name, true)?;
                Ok(message_attr(ino, &meta, mode, uid, gid))
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
                // A directory `mkdir` promised (`nested.rs`) shows until the Draft has it.
                if let Some((inner, outer)) = nest.split_last() {
                    let tree = self.tree_at(msg, Stamp::of(&meta))?;
                    if mime::subtree(&tree, nest).is_none() && !self.restoring.promised(msg, outer, inner) {
                        return Err(Error::NotFound(msg.clone()));
                    }
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
                    .filter(|_| !self.part_hidden(msg, nest, name))
                    .map(|e| e.data.size());
                // A part being written shows the size written so far (cp fstat()s it).
                let pending = self.pending_part_size(msg, nest, name);
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
}
