//! Namespace changes: unlink, rmdir and rename, with the rules of what a rename means for a
//! message (a message is its name).

use super::*;

impl MailFs {
    // ----- namespace changes ------------------------------------------------------------

    pub fn unlink(&self, caller: Caller, parent: u64, name: &str) -> Result<()> {
        let key = self
            .classify(parent, name)
            .map_err(|_| Error::NotFound(name.to_string()))?;
        match &key {
            Key::Part { .. } | Key::Staged { .. } => {
                self.authorize_ino(caller, parent, Need::Write).map(drop)?
            }
            _ => self.authorize(caller, &key, Need::Own)?,
        }
        let _ns = self.ns.lock();
        match &key {
            Key::Message(n) => {
                if fs::symlink_metadata(self.node.spool.eml_path(n)).is_err() {
                    return Err(Error::NotFound(n.clone()));
                }
                // Deleting cancels; a message whose send is in flight is locked by its sender.
                let lock = self.node.spool.try_lock(n)?;
                if lock.is_none() {
                    return Err(Error::Busy(n.clone()));
                }
                crate::store::manage::remove_message(&self.node.spool, &self.node.attrs(), n)?;
                self.forget_message(n);
                self.claims.forget(n);
            }
            Key::Scratch(n) => {
                fs::remove_file(self.node.spool.scratch_path(n)).map_err(|e| not_found(e, n))?;
                self.inodes.lock().forget_key(&key);
            }
            Key::Root => return Err(Error::NotPermitted("/".into())),
            Key::Parts { .. } => return Err(Error::IsDir(name.to_string())),
            Key::Staged { msg, nest, name: n } => {
                let p = self
                    .staged
                    .remove(msg, nest, n)
                    .ok_or_else(|| Error::NotFound(n.clone()))?;
                let _ = fs::remove_file(p);
                self.inodes.lock().forget_key(&key);
            }
            // An attached message's part: only hidden, while the process that wrote the Draft
            // puts it back (tar's unlink, then create with the same bytes: `nested.rs`).
            Key::Part { msg, nest, name } if self.fixed_part(msg, nest, name) => {
                self.hide_nested(caller, msg, nest, name)?;
                self.inodes.lock().forget_key(&key);
            }
            Key::Part { msg, nest, name } => {
                self.check_composable(msg, nest)?;
                self.remove_part(msg, name)?;
                self.inodes.lock().forget_key(&key);
            }
        }
        Ok(())
    }

    pub fn rmdir(&self, parent: u64, name: &str) -> Result<()> {
        match self.classify(parent, name) {
            Ok(Key::Parts { msg, .. }) => Err(Error::NotPermitted(format!(
                "{name}: the parts of {msg} go with it (rm {msg})"
            ))),
            _ => Err(Error::NotFound(name.to_string())),
        }
    }

    pub fn rename(
        &self,
        caller: Caller,
        (parent, name): (u64, &str),
        (newparent, newname): (u64, &str),
        noreplace: bool,
    ) -> Result<()> {
        let from = self
            .classify(parent, name)
            .map_err(|_| Error::NotFound(name.to_string()))?;
        let to = self.classify(newparent, newname)?;
        if from == to {
            return Ok(());
        }
        // A message between the two steps of its `is_ready` (ready.rs) keeps its name until the
        // hand-over ends: renamed meanwhile, the hand-over prepared under the old name would
        // find its versions gone and answer an error for a message that only moved.
        let messages: Vec<&str> = [&from, &to]
            .into_iter()
            .filter_map(|k| match k {
                Key::Message(n) => Some(n.as_str()),
                _ => None,
            })
            .collect();
        let _turns = self.readying.enter_all(&messages);
        match (&from, &to) {
            (Key::Part { .. } | Key::Staged { .. }, _) | (_, Key::Part { .. } | Key::Staged { .. }) => {
                self.authorize_ino(caller, parent, Need::Write)?;
                self.authorize_ino(caller, newparent, Need::Write)?;
            }
            _ => {
                self.authorize(caller, &from, Need::Own)?;
                // Replacing another's entry is removing it. A message name without an `.eml`
                // is free (its attributes would otherwise read as the node owner's).
                let taken = match &to {
                    Key::Message(n) => fs::symlink_metadata(self.node.spool.eml_path(n)).is_ok(),
                    _ => true,
                };
                match self.authorize(caller, &to, Need::Own) {
                    Err(Error::NotFound(_)) | Ok(()) => {}
                    Err(_) if !taken => {}
                    Err(e) => return Err(e),
                }
            }
        }
        match (&from, &to) {
            (
                Key::Staged { msg, nest, name: a },
                Key::Part {
                    msg: m2,
                    nest: n2,
                    name: b,
                },
            ) if msg == m2 && nest == n2 => {
                if self.fixed_part(msg, nest, b) {
                    return self.commit_staged_nested((msg, nest), a, b, noreplace, (&from, to.clone()));
                }
                return self.commit_staged(msg, a, b, noreplace, (&from, to.clone()));
            }
            (
                Key::Staged { msg, nest, name: a },
                Key::Staged {
                    msg: m2,
                    nest: n2,
                    name: b,
                },
            ) if msg == m2 && nest == n2 => {
                let _ns = self.ns.lock();
                if noreplace && self.staged.path(msg, nest, b).is_some() {
                    return Err(Error::Exists(b.clone()));
                }
                self.staged
                    .rename(msg, nest, a, b)
                    .ok_or_else(|| Error::NotFound(a.clone()))?;
                self.inodes.lock().rename(&from, to);
                return Ok(());
            }
            (Key::Staged { .. }, _) | (_, Key::Staged { .. }) => {
                return Err(Error::Io(io::Error::from_raw_os_error(libc::EXDEV)));
            }
            (
                Key::Part { msg, nest, name: a },
                Key::Part {
                    msg: m2,
                    nest: n2,
                    name: b,
                },
            ) if msg == m2 && nest == n2 => {
                self.check_composable(msg, nest)?;
                let _ns = self.ns.lock();
                let tree = self.tree(msg)?;
                let over = tree.entry(b).is_some();
                if noreplace && over {
                    return Err(Error::Exists(b.clone()));
                }
                // A body renamed away leaves its place to the next part of its type, which
                // then shows under the body's name, and the rename back (an editor's save)
                // replaced that part (audit-19 F1, audit-20 H1): refused while there is one.
                let body_type = match a.as_str() {
                    compose::TEXT_BODY => Some("text/plain"),
                    compose::HTML_BODY => Some("text/html"),
                    _ => None,
                };
                if let Some(t) = body_type
                    && tree
                        .entries
                        .iter()
                        .any(|e| e.name != *a && e.info.content_type == t)
                {
                    return Err(Error::NotPermitted(format!(
                        "{a}: another {t} part would take its place; copy it instead"
                    )));
                }
                self.compose(
                    msg,
                    Edit::RenamePart {
                        from: a.clone(),
                        to: b.clone(),
                    },
                )?;
                if over {
                    self.orphan_writers(msg, b);
                }
                self.retarget_handles(&from, &to);
                self.inodes.lock().rename(&from, to);
                return Ok(());
            }
            // Into or out of a parts directory: mv falls back to copy and remove.
            (Key::Part { .. }, _) | (_, Key::Part { .. }) => {
                return Err(Error::Io(io::Error::from_raw_os_error(libc::EXDEV)));
            }
            (Key::Parts { .. }, _) | (_, Key::Parts { .. }) => {
                return Err(Error::NotPermitted(format!(
                    "{name}: parts directories follow their message"
                )));
            }
            _ => {}
        }
        let _ns = self.ns.lock();
        let spool = &self.node.spool;
        let path_of = |k: &Key| match k {
            Key::Message(n) => spool.eml_path(n),
            Key::Scratch(n) => spool.scratch_path(n),
            _ => spool.root().to_path_buf(),
        };
        let src = path_of(&from);
        let dst = path_of(&to);
        if fs::symlink_metadata(&src).is_err() {
            return Err(Error::NotFound(name.to_string()));
        }
        let dst_exists = fs::symlink_metadata(&dst).is_ok();
        if noreplace && dst_exists {
            return Err(Error::Exists(newname.to_string()));
        }
        if let Key::Message(n) = &from
            && self.message_attrs(n)?.frozen()
        {
            return Err(Error::Frozen(n.clone()));
        }
        if let Key::Message(n) = &to
            && dst_exists
            && self.message_attrs(n)?.frozen()
        {
            return Err(Error::Frozen(n.clone()));
        }
        if let (Key::Message(a), Key::Scratch(b)) = (&from, &to)
            && b.to_ascii_lowercase().ends_with(".eml")
        {
            // `mv d.eml D.EML` would silently make a message a scratch file that is never
            // sent: message names end in lowercase `.eml`.
            return Err(Error::NotPermitted(format!(
                "{b}: message names end in lowercase .eml; {a} stays as it is"
            )));
        }
        match (&from, &to) {
            (Key::Message(a), Key::Message(b)) => {
                if dst_exists {
                    // New content for b; b keeps its attributes, a's go.
                    fs::rename(&src, &dst)?;
                    let _ = fs::remove_file(spool.struct_path(a));
                } else {
                    let attrs = self.message_attrs(a)?;
                    self.store_attrs(b, &attrs)?;
                    fs::rename(&src, &dst)?;
                    let _ = fs::remove_file(spool.struct_path(a));
                }
                self.cache.lock().remove(a);
                self.staged.forget_message(a);
                self.removals.forget_message(a);
            }
            (Key::Scratch(_), Key::Message(b)) => {
                // Read before the rename: the xattrs of a file that becomes a message are
                // carried into it (rsync -X, cp --preserve=xattr then mv).
                let held = backed::read_all(&src)?;
                if !dst_exists {
                    // The new message is the scratch file's owner's: the caller's, or whoever
                    // root gave it to (`rsync -a` as root chowns its temp file, then renames
                    // it: the restored message keeps the owner it had).
                    let owner = match fs::symlink_metadata(&src) {
                        Ok(m) if self.uid == 0 => Caller {
                            uid: m.uid(),
                            gid: m.gid(),
                            pid: 0,
                        },
                        _ => caller,
                    };
                    self.init_new_message(b, owner)?;
                }
                self.take_back(&src)?;
                fs::rename(&src, &dst)?;
                let _ = spool.sync_root();
                self.content_changed(b);
                self.carry_attrs(b, held);
            }
            (Key::Message(a), Key::Scratch(_)) => {
                // The attribute file stays behind, so an editor that renames the message away
                // and writes it anew (vim's backup dance) keeps its attributes.
                let owner = self.message_attrs(a)?.owner;
                fs::rename(&src, &dst)?;
                // A scratch file's owner is its file's: the message's owner keeps it.
                self.hand_over(&dst, owner);
                self.cache.lock().remove(a);
            }
            _ => fs::rename(&src, &dst)?,
        }
        let _ = spool.sync_root();
        for k in [&from, &to] {
            if let Key::Message(n) = k {
                self.content_changed(n);
            }
        }
        self.retarget_handles(&from, &to);
        self.inodes.lock().rename(&from, to);
        Ok(())
    }
}
