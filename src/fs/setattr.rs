//! setattr: chmod, chown, truncate and times, for messages, scratch files and parts.

use super::*;

impl MailFs {
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
        // So is a chown (root's alone, checked above): `rsync -a` as root makes `X.eml.parts/`
        // (which makes the message) and chowns it before the message's bytes arrive, and the
        // restored message must keep its owner.
        if let Key::Parts { msg, nest } | Key::Part { msg, nest, .. } = &key
            && nest.is_empty()
            && (owner.0.is_some() || owner.1.is_some())
        {
            let msg_ino = self.ino(Key::Message(msg.clone()));
            self.setattr(caller, msg_ino, None, owner, None, None, None)?;
            return self.setattr(caller, ino, None, (None, None), size, atime, mtime);
        }
        let path = match &key {
            Key::Root => {
                // Either mode a node's root shows (1777; 0777 with default_permissions) is no
                // change: a restore from a node of the other kind sets the one it had there
                // (audit-12 M4).
                let a_root_mode = mode.is_some_and(|m| matches!(m & 0o7777, 0o1777 | 0o777));
                if (mode.is_some() && !a_root_mode) || owner.0.is_some() || owner.1.is_some() {
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
                        let cur = attrs.owner.unwrap_or(crate::model::attrs::Owner {
                            uid: self.uid,
                            gid: self.gid,
                        });
                        attrs.owner = Some(crate::model::attrs::Owner {
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
    pub(super) fn drop_unchanged(
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
}
