//! SPEC §9: a message's content is there whole or not at all. A message made by `create`
//! whose bytes could not all be written (ENOSPC, EFBIG on a full or small spool), or whose
//! template could not be written (`touch new.eml` on a full disk), is removed again when the
//! file is closed, and the close reports the error: no half-written or empty Draft stays.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use parking_lot::Mutex;

use super::opener::Opener;
use super::{Handle, Key, MailFs, access};
use crate::error::{Error, Result};
use crate::model::access::Caller;

impl MailFs {
    /// Removes the message `name` this handle created, if the name is still the file the
    /// handle wrote (it may have been renamed or replaced since), and returns `err`.
    pub(super) fn discard_new_message(&self, name: &str, file: &File, err: Error) -> Result<()> {
        let _ns = self.ns.lock();
        let path = self.node.spool.eml_path(name);
        let still_ours = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .is_ok_and(|f| access::same_file(&f, file));
        if still_ours {
            log::warn!("{name}: its content could not be written whole ({err}); removed");
            self.node.spool.delete_message(name)?;
            let _ = self.node.spool.sync_root();
            self.forget_message(name);
        }
        Err(err)
    }
}

/// An existing message opened for writing: the writes go to a private copy in the spool's
/// `.tmp/` (seeded with the current bytes unless O_TRUNC), which replaces the `.eml` by a
/// rename at close or fsync. A failed write or sync leaves the old content byte-identical
/// (SPEC §9: a full disk leaves no torn file); readers of the `.eml` see the old bytes until then.
pub(super) struct Pending {
    path: PathBuf,
    /// The `.eml` as opened: the rename goes over it only if the name is still that file.
    pub(super) orig: File,
    caller: Caller,
    /// Opened with O_TRUNC: put in place at release even with no write (`: > X.eml`). A
    /// flush with no write yet changes nothing, since a shell's `> X.eml` closes a dup first.
    pub(super) truncated: bool,
    /// The process whose close puts the copy in place (`opener.rs`); `None`: any close.
    pub(super) opener: Option<Opener>,
}

impl MailFs {
    /// The temp file a writer of the existing message `name` writes to, and its pending state.
    pub(super) fn open_whole(&self, caller: Caller, name: &str, flags: i32) -> Result<(File, Pending)> {
        let orig = crate::store::spool::open_read(&self.node.spool.eml_path(name))
            .map_err(|e| super::not_found(e, name))?;
        let path = self.node.spool.tmp_path();
        let mut o = OpenOptions::new();
        o.read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW);
        let tmp = o.open(&path)?;
        let truncate = flags & libc::O_TRUNC != 0;
        if !truncate && let Err(e) = std::io::copy(&mut &orig, &mut &tmp) {
            let _ = fs::remove_file(&path);
            return Err(e.into());
        }
        let file = if flags & libc::O_APPEND != 0 {
            // Appends go at the end of the copy, whatever offset they come with.
            let f = OpenOptions::new()
                .append(true)
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path);
            match f {
                Ok(f) => f,
                Err(e) => {
                    let _ = fs::remove_file(&path);
                    return Err(e.into());
                }
            }
        } else {
            tmp
        };
        let pending = Pending {
            path,
            orig,
            caller,
            truncated: truncate,
            opener: None,
        };
        Ok((file, pending))
    }

    /// Puts a writer's copy in place of `name` (at close or fsync), or, when it cannot
    /// (a failed write, sync or rename, a frozen or replaced message), removes the copy and
    /// returns the error: the `.eml` keeps its old bytes. Called with the namespace lock held.
    pub(super) fn commit_whole(
        &self,
        name: &str,
        file: &File,
        pending: &mut Option<Pending>,
        failed: Option<i32>,
        ready: bool,
    ) -> Result<()> {
        if failed.is_none() && !ready {
            return Ok(());
        }
        let Some(p) = pending.take() else {
            return Ok(());
        };
        let res = (|| -> Result<()> {
            if let Some(errno) = failed {
                return Err(Error::Io(std::io::Error::from_raw_os_error(errno)));
            }
            self.authorize(
                p.caller,
                &Key::Message(name.to_string()),
                crate::model::access::Need::Write,
            )?;
            if self.message_attrs(name)?.frozen() {
                return Err(Error::Frozen(name.to_string()));
            }
            let eml = self.node.spool.eml_path(name);
            let current = crate::store::spool::open_read(&eml).map_err(|e| super::not_found(e, name))?;
            if !access::same_file(&current, &p.orig) {
                return Err(Error::Io(std::io::Error::from_raw_os_error(libc::ESTALE)));
            }
            file.sync_all()?;
            self.node.spool.rename_noted(&p.path, &eml)?;
            Ok(())
        })();
        match res {
            Ok(()) => {
                let _ = self.node.spool.sync_root();
                self.content_changed(name);
                Ok(())
            }
            Err(e) => {
                let _ = fs::remove_file(&p.path);
                log::warn!("{name}: its new content could not be put in place whole ({e}); old content kept");
                Err(e)
            }
        }
    }
}

impl MailFs {
    /// A flush, fsync or release of a handle writing a copy of an existing message: puts the
    /// copy in place (a flush only once something was written; `last` also for a bare
    /// O_TRUNC). Returns whether the handle was such a writer.
    pub(super) fn put_whole(&self, handle: &Mutex<Handle>, last: bool) -> Result<bool> {
        if !matches!(&*handle.lock(), Handle::File { pending: Some(_), .. }) {
            return Ok(false);
        }
        // The namespace lock comes before a handle's (renames retarget handles under it).
        let _ns = self.ns.lock();
        let mut h = handle.lock();
        let Handle::File {
            file,
            key,
            pending,
            failed,
            written,
            ..
        } = &mut *h
        else {
            return Ok(false);
        };
        let ready = *written || (last && pending.as_ref().is_some_and(|p| p.truncated));
        match key {
            Key::Message(name) => {
                let name = name.clone();
                self.commit_whole(&name, file, pending, *failed, ready)?;
            }
            // Renamed to a scratch name meanwhile: the copy has no message to replace.
            _ if *written || failed.is_some() => {
                *pending = None;
                return Err(Error::Io(std::io::Error::from_raw_os_error(libc::ESTALE)));
            }
            _ => *pending = None,
        }
        Ok(true)
    }
}

impl MailFs {
    /// Whether `fh` writes a copy of an existing message (see `Pending`).
    pub fn writes_copy(&self, fh: u64) -> bool {
        self.handle(fh)
            .is_ok_and(|h| matches!(&*h.lock(), Handle::File { pending: Some(_), .. }))
    }

    /// Whether `fh` is the handle `create` made a new message with: its writes, like a
    /// copy's, skip the kernel's page cache (FOPEN_DIRECT_IO), so each one reaches mailfs
    /// straight from the writer's buffer (one copy fewer) and is checked here as before.
    pub fn writes_new_message(&self, fh: u64) -> bool {
        self.handle(fh).is_ok_and(|h| {
            matches!(
                &*h.lock(),
                Handle::File {
                    key: Key::Message(_),
                    created: true,
                    ..
                }
            )
        })
    }
}

impl MailFs {
    /// ftruncate through a writer of a message's copy: the copy is truncated (put in place at
    /// close). Returns false for any other handle.
    pub fn truncate_copy(&self, fh: u64, size: u64) -> Result<bool> {
        let Ok(handle) = self.handle(fh) else {
            return Ok(false);
        };
        let mut h = handle.lock();
        let Handle::File {
            file,
            key,
            pending: Some(_),
            written,
            failed,
            ..
        } = &mut *h
        else {
            return Ok(false);
        };
        if let Key::Message(name) = key
            && self.message_attrs(name)?.frozen()
        {
            return Err(Error::Frozen(name.clone()));
        }
        if let Err(e) = file.set_len(size) {
            *failed = Some(e.raw_os_error().unwrap_or(libc::EIO));
            return Err(e.into());
        }
        *written = true;
        Ok(true)
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        // Still here at release: never put in place (only opened, or refused).
        let _ = fs::remove_file(&self.path);
    }
}
