//! Files: open, create, mknod, read, write, flush, fsync, release — the handles' life.

use super::*;

/// The most one `pwrite` into a spool file carries. A writer's requests are up to 1 MiB
/// (`MESSAGE_BLKSIZE`), but a 1 MiB `pwrite` lets the spool's filesystem fill the file with
/// large page-cache folios, and on a VM whose free memory goes back to the host those come
/// from blocks the host must fault in again page by page: `cp` of 512 MB after 3 s idle took
/// 1.5 s with 1 MiB pwrites, 0.9 s with 256 KiB, 0.45 s with 128 KiB or 64 KiB (the direct
/// copy 0.38 s; its in-kernel copy moves 64 KiB at a time). Eight syscalls per MiB cost
/// nothing measurable.
const WRITE_PIECE: usize = 128 << 10;

/// `write_all_at` in pieces of at most [`WRITE_PIECE`]; stops at the first error (the caller
/// records it, so the file is never taken as whole).
fn write_in_pieces(file: &File, data: &[u8], offset: u64) -> io::Result<()> {
    let mut at = offset;
    for piece in data.chunks(WRITE_PIECE) {
        file.write_all_at(piece, at)?;
        at += piece.len() as u64;
    }
    Ok(())
}

impl MailFs {
    /// What an open or create with these flags needs of an existing file.
    fn need(flags: i32) -> Need {
        if Self::writes(flags) {
            Need::Write
        } else {
            Need::Read
        }
    }

    // ----- files ------------------------------------------------------------------------

    pub(super) fn new_handle(&self, h: Handle) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles.lock().insert(fh, Arc::new(Mutex::new(h)));
        fh
    }

    pub(super) fn handle(&self, fh: u64) -> Result<Arc<Mutex<Handle>>> {
        self.handles
            .lock()
            .get(&fh)
            .cloned()
            .ok_or_else(|| Error::Io(io::Error::from_raw_os_error(libc::EBADF)))
    }

    pub(super) fn open_options(flags: i32) -> OpenOptions {
        let mut o = OpenOptions::new();
        match flags & libc::O_ACCMODE {
            libc::O_WRONLY => o.write(true),
            libc::O_RDWR => o.read(true).write(true),
            _ => o.read(true),
        };
        if flags & libc::O_APPEND != 0 {
            o.append(true);
        }
        if flags & libc::O_TRUNC != 0 && flags & libc::O_ACCMODE != libc::O_RDONLY {
            o.truncate(true);
        }
        o.custom_flags(libc::O_NOFOLLOW);
        o
    }

    pub(super) fn writes(flags: i32) -> bool {
        flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0
    }

    pub fn open(&self, caller: Caller, ino: u64, flags: i32) -> Result<u64> {
        let key = self.key(ino)?;
        if flags & libc::O_ACCMODE != libc::O_WRONLY {
            self.authorize(caller, &key, Need::Read)?;
        }
        if Self::writes(flags) {
            self.authorize(caller, &key, Need::Write)?;
        }
        let path = match &key {
            Key::Root | Key::Parts { .. } => return Err(Error::IsDir("directory".into())),
            Key::Message(name) => {
                if Self::writes(flags) && self.message_attrs(name)?.frozen() {
                    return Err(Error::Frozen(name.clone()));
                }
                self.node.spool.eml_path(name)
            }
            Key::Scratch(name) | Key::Staged { name, .. } => {
                self.backing(&key).ok_or_else(|| Error::NotFound(name.clone()))?
            }
            Key::Part { msg, nest, name } => {
                return if Self::writes(flags) && self.fixed_part(msg, nest, name) {
                    let truncate = flags & libc::O_TRUNC != 0;
                    self.open_nested_writer(caller, (msg, nest, name), !truncate)
                } else if Self::writes(flags) {
                    self.check_composable(msg, nest)?;
                    let truncate = flags & libc::O_TRUNC != 0;
                    self.open_part_writer(caller, msg, name, !truncate, truncate)
                } else {
                    self.open_part_reader(msg, nest, name)
                };
            }
        };
        let (file, pending) = match &key {
            Key::Message(name) if Self::writes(flags) => {
                let (f, p) = self.open_whole(caller, name, flags)?;
                (f, Some(p))
            }
            _ => (
                Self::open_options(flags)
                    .open(&path)
                    .map_err(|e| not_found(e, "file"))?,
                None,
            ),
        };
        let stamp = match (&key, &pending) {
            (Key::Message(_), Some(p)) => Some(Stamp::of(&p.orig.metadata()?)),
            (Key::Message(_), None) => Some(Stamp::of(&file.metadata()?)),
            _ => None,
        };
        let fh = self.new_handle(Handle::File {
            file,
            key,
            created: false,
            written: false,
            templated: false,
            failed: None,
            pending,
            creator: None,
        });
        if let Some(stamp) = stamp {
            self.pages.opened(fh, ino, stamp, !Self::writes(flags));
        }
        Ok(fh)
    }

    /// Whether the kernel may keep the pages it cached for the file `fh` was opened on.
    pub fn keeps_cache(&self, fh: u64) -> bool {
        self.pages.kept(fh)
    }

    pub(super) fn open_part_reader(&self, msg: &str, nest: &[String], name: &str) -> Result<u64> {
        let file =
            crate::store::spool::open_read(&self.node.spool.eml_path(msg)).map_err(|e| not_found(e, msg))?;
        let tree = self.tree_at(msg, Stamp::of(&file.metadata()?))?;
        if mime::entry(&tree, nest, name).is_none() || self.part_hidden(msg, nest, name) {
            return Err(Error::NotFound(name.to_string()));
        }
        Ok(self.new_handle(Handle::Part {
            file,
            tree,
            nest: nest.to_vec(),
            name: name.to_string(),
            hint: None,
        }))
    }

    pub fn create(
        &self,
        caller: Caller,
        parent: u64,
        name: &str,
        mode: u32,
        flags: i32,
    ) -> Result<(FileAttr, u64)> {
        let key = self.classify(parent, name)?;
        if parent != ROOT {
            self.authorize_ino(caller, parent, Need::Write)?;
        }
        let _ns = self.ns.lock();
        let mut new_scratch = false;
        let (path, created) = match &key {
            Key::Message(n) => {
                let path = self.node.spool.eml_path(n);
                let exists = fs::symlink_metadata(&path).is_ok();
                if exists {
                    self.authorize(caller, &key, Self::need(flags))?;
                }
                if exists && self.message_attrs(n)?.frozen() && Self::writes(flags) {
                    return Err(Error::Frozen(n.clone()));
                }
                if !exists {
                    self.init_new_message(n, caller)?;
                    self.restoring.created(n, caller.pid);
                }
                (path, !exists)
            }
            Key::Scratch(n) => {
                let path = self.node.spool.scratch_path(n);
                new_scratch = fs::symlink_metadata(&path).is_err();
                if !new_scratch {
                    self.authorize(caller, &key, Self::need(flags))?;
                }
                (path, false)
            }
            Key::Staged { msg, nest, name } => {
                let p = self.create_staged((msg, nest, name), mode, flags & libc::O_EXCL != 0)?;
                (p, false)
            }
            Key::Root | Key::Parts { .. } => return Err(Error::Exists(name.into())),
            Key::Part { msg, nest, name } if self.fixed_part(msg, nest, name) => {
                drop(_ns);
                let fh = self.create_nested(caller, (msg, nest, name), flags)?;
                let ino = self.ino(key.clone());
                return match self.key_attr(ino, &key) {
                    Ok(a) => Ok((a, fh)),
                    Err(e) => {
                        self.release_handle(fh, false);
                        Err(e)
                    }
                };
            }
            Key::Part { msg, nest, name } => {
                drop(_ns);
                self.check_composable(msg, nest)?;
                if name != compose::TEXT_BODY && name != compose::HTML_BODY {
                    compose::check_part_name(name)?;
                }
                let exists = self.tree(msg)?.entry(name).is_some() && !self.hidden_part(msg, name);
                if exists && flags & libc::O_EXCL != 0 {
                    return Err(Error::Exists(name.clone()));
                }
                let keep = exists && flags & libc::O_TRUNC == 0;
                let fh = self.open_part_writer(caller, msg, name, keep, true)?;
                let ino = self.ino(key.clone());
                return Ok((self.key_attr(ino, &key)?, fh));
            }
        };
        // O_CREAT goes in as a raw flag: std refuses `create` without write access, but
        // open(O_CREAT|O_RDONLY) is how `flock FILE` and `touch -a` make a file.
        // A staged file was made (and O_EXCL checked) by create_staged.
        let excl = match key {
            Key::Staged { .. } => 0,
            _ => flags & libc::O_EXCL,
        };
        let mut o = Self::open_options(flags);
        // A message's spool file is the owner's alone whatever the caller asks (its mode
        // lives in its attributes). A scratch file starts as its creator's alone too (SPEC §9:
        // 0600 unless the user widens it): the mode a umask leaves is not a widening, a later
        // chmod (as `cp -a`, `tar` and `rsync -a` do) is.
        let file_mode = if matches!(key, Key::Message(_)) {
            0o600
        } else {
            mode & 0o700
        };
        o.mode(file_mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CREAT | excl);
        let file = o.open(&path).map_err(|e| not_found(e, name))?;
        if created {
            self.mark_unfinished(&path);
        }
        // Only a file made here is given away: an existing one is its owner's.
        if new_scratch && file.metadata().is_ok_and(|m| m.uid() != caller.uid) {
            self.give_to(&file, caller);
        }
        let ino = self.ino(key.clone());
        let attr = self.key_attr(ino, &key)?;
        let fh = self.new_handle(Handle::File {
            file,
            key,
            created,
            written: false,
            templated: false,
            failed: None,
            pending: None,
            creator: None,
        });
        Ok((attr, fh))
    }

    /// mknod: a regular file is made as `create` makes it (tar --xattrs makes files this way),
    /// except that a new message stays empty rather than becoming the template, since its
    /// bytes follow. Devices, FIFOs and sockets have no place in a mail node (EPERM).
    pub fn mknod(&self, caller: Caller, parent: u64, name: &str, mode: u32) -> Result<FileAttr> {
        let kind = mode & libc::S_IFMT;
        if kind != libc::S_IFREG && kind != 0 {
            return Err(Error::NotPermitted(format!(
                "{name}: the node holds only regular files"
            )));
        }
        let (attr, fh) = self.create(caller, parent, name, mode, libc::O_WRONLY | libc::O_EXCL)?;
        // Made, not written: a part's writer composes nothing (its bytes come by a later open).
        self.release_handle(fh, false);
        Ok(attr)
    }

    pub fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>> {
        let h = self.handle(fh)?;
        let mut h = h.lock();
        let file = match &mut *h {
            Handle::File { file, .. } => &*file,
            Handle::PartWrite(w) => w.file(),
            Handle::Part {
                file,
                tree,
                nest,
                name,
                hint,
            } => {
                let entry = mime::entry(tree, nest, name).ok_or_else(|| Error::NotFound(name.clone()))?;
                return Ok(entry.data.read_at_hinted(file, offset, size as usize, hint)?);
            }
            Handle::Dir(_) => return Err(Error::IsDir("handle".into())),
        };
        let mut buf = vec![0u8; size as usize];
        let mut done = 0;
        while done < buf.len() {
            let n = file.read_at(&mut buf[done..], offset + done as u64)?;
            if n == 0 {
                break;
            }
            done += n;
        }
        buf.truncate(done);
        Ok(buf)
    }

    pub fn write(&self, fh: u64, offset: u64, data: &[u8]) -> Result<u32> {
        let h = self.handle(fh)?;
        let mut h = h.lock();
        if let Handle::PartWrite(w) = &mut *h {
            return self.write_part(w, offset, data);
        }
        let Handle::File {
            file,
            key,
            written,
            templated,
            failed,
            pending,
            ..
        } = &mut *h
        else {
            return Err(Error::IsDir("handle".into()));
        };
        if let Key::Message(name) = key
            && self.message_attrs(name)?.frozen()
        {
            return Err(Error::Frozen(name.clone()));
        }
        if *templated && !*written {
            file.set_len(0)?;
        }
        // The parsed parts go stale: dropped at the first write and again at close (flush),
        // not on every write of a large copy. A copy being written leaves them as they are.
        if let Key::Message(name) = key
            && !*written
            && pending.is_none()
        {
            self.content_changed(name);
        }
        if let Err(e) = write_in_pieces(file, data, offset) {
            *failed = Some(e.raw_os_error().unwrap_or(libc::EIO));
            return Err(e.into());
        }
        *written = true;
        Ok(data.len() as u32)
    }

    /// On the writer's close (a FLUSH from another process than the opener never gets here:
    /// `opener.rs`): a copy or a part written goes in; a new message closed without writes
    /// becomes the template of SPEC §5.
    pub fn flush(&self, fh: u64) -> Result<()> {
        let handle = self.handle(fh)?;
        if self.put_whole(&handle, false)? {
            return Ok(());
        }
        if self.flush_part(&handle)? {
            return Ok(());
        }
        let mut h = handle.lock();
        if let Handle::File {
            file,
            key: Key::Message(name),
            created: true,
            failed: Some(errno),
            ..
        } = &*h
        {
            let err = Error::Io(io::Error::from_raw_os_error(*errno));
            // The namespace lock comes before a handle's: let go of the handle first.
            let (name, file) = (name.clone(), file.try_clone()?);
            drop(h);
            return self.discard_new_message(&name, &file, err);
        }
        if let Handle::File {
            file,
            key: Key::Message(name),
            created: true,
            written: false,
            templated,
            ..
        } = &mut *h
            && !*templated
            && file.metadata()?.len() == 0
        {
            *templated = true;
            let attrs = self.message_attrs(name)?;
            let f = OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(self.node.spool.eml_path(name))?;
            // The name may be another message by now (this one renamed or removed, another
            // user's made in its place): the template goes only into the file opened here.
            if access::same_file(&f, file)
                && let Err(e) = f.write_all_at(&content::template(&attrs.message_id), 0)
            {
                let (name, file) = (name.clone(), file.try_clone()?);
                drop(h);
                return self.discard_new_message(&name, &file, e.into());
            }
            let ino = self.inodes.lock().get(&Key::Message(name.clone()));
            self.invalidate(&ino.into_iter().collect::<Vec<_>>());
            if let Some(ino) = ino {
                self.pages.changed(ino);
            }
        }
        if let Handle::File {
            key: Key::Message(name),
            written: true,
            ..
        } = &*h
        {
            self.content_changed(name);
        }
        Ok(())
    }

    pub fn fsync(&self, fh: u64) -> Result<()> {
        let handle = self.handle(fh)?;
        if self.put_whole(&handle, true)? {
            return Ok(());
        }
        let h = handle.lock();
        if let Handle::File { file, .. } = &*h {
            file.sync_all()?;
        }
        Ok(())
    }

    /// The last close of all: what a writer wrote and its opener's close did not put in place
    /// (the opener closed before a child that wrote, or never flushed) goes in now.
    pub fn release(&self, fh: u64) {
        self.release_handle(fh, true);
    }

    /// Lets go of `fh`; `publish`: as at a last close, else whatever it holds is dropped.
    fn release_handle(&self, fh: u64, publish: bool) {
        let handle = self.handles.lock().remove(&fh);
        if let Some(h) = &handle
            && let Handle::File {
                key: Key::Message(n),
                created: true,
                ..
            } = &*h.lock()
        {
            self.mark_finished(n);
        }
        if let Some(handle) = handle.filter(|_| publish) {
            if let Err(e) = self.put_whole(&handle, true) {
                log::warn!("release: {e}");
            }
            if let Err(e) = self.release_part(&handle) {
                log::warn!("release: {e}");
            }
        }
        self.pages.released(fh);
        self.through_released(fh);
    }
}
