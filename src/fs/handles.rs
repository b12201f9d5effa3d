//! The part writer (SPEC §5, composing by parts): a Draft's part opened for writing gathers its
//! bytes in a temp file, and the Draft is rebuilt from them when the file is closed.
//!
//! [`PartWriter`] holds all of its state — bytes not yet composed (`dirty`), a refused write
//! (`refused`), the message as it was before the writer's first rebuild (`backup`) — and applies
//! the one size limit of a part ([`compose::check_part_size`]) at each of the three ways a
//! part grows: write, truncate and close. The close's check is the last line: whatever way
//! the temp file grew, no size a user chose reaches an allocation. What the writer does to the
//! message (the rebuild, putting the backup back) is `MailFs`'s, below, because it takes the
//! namespace lock and checks the caller again.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;

use parking_lot::Mutex;

use std::sync::Arc;

use super::opener::Opener;
use super::{Handle, MailFs, Stamp, not_found};
use crate::error::{Error, Result};
use crate::mail::compose::{self, Edit};
use crate::mail::mime::{self, Tree};
use crate::model::access::Caller;
use crate::store::spool::Spool;

pub(super) struct PartWriter {
    /// The Draft and the part written; they follow renames (`retarget_handles`).
    pub(super) msg: String,
    pub(super) name: String,
    /// Who opened it: the rebuild at close is checked for them again (SPEC §10).
    pub(super) caller: Caller,
    tmp: File,
    tmp_path: PathBuf,
    /// Bytes (or a truncate) not yet composed into the message.
    dirty: bool,
    /// A write was refused: nothing this writer holds reaches the message any more.
    refused: bool,
    /// A hard link to the message as it was before this writer's first rebuild (a shell
    /// closes a dup of the descriptor, so a rebuild can come before the bytes do); put back
    /// if a later write is refused.
    backup: Option<PathBuf>,
    /// The version of the message the name was looked up in (see `keepnames.rs`).
    pub(super) seen: Option<Stamp>,
    /// The part it writes was removed, or replaced by a rename onto its name: like a file
    /// unlinked under an open descriptor, its bytes go nowhere (audit-19 F6).
    pub(super) orphaned: bool,
    /// The process whose close composes the bytes (`opener.rs`); `None`: any close.
    pub(super) opener: Option<Opener>,
    /// The attached messages the part is in (empty: a part of the Draft itself).
    pub(super) nest: Vec<String>,
    /// For an attached message's part: the bytes it has, the only ones it may be written
    /// (`nested.rs`); nothing is ever composed from such a writer.
    expect: Option<Expected>,
}

/// An attached message's part as the writer found it: the message file and its parsed tree.
pub(super) struct Expected {
    file: File,
    tree: Arc<Tree>,
}

impl Expected {
    pub(super) fn new(file: File, tree: Arc<Tree>) -> Expected {
        Expected { file, tree }
    }

    /// `len` bytes of part `name` from `offset` (fewer past its end).
    fn read(&self, nest: &[String], name: &str, offset: u64, len: usize) -> Result<Vec<u8>> {
        let e = mime::entry(&self.tree, nest, name).ok_or_else(|| Error::NotFound(name.to_string()))?;
        let size = e.data.size();
        if offset >= size {
            return Ok(Vec::new());
        }
        let len = len.min((size - offset) as usize);
        Ok(e.data.read_at(&self.file, offset, len)?)
    }

    fn size(&self, nest: &[String], name: &str) -> Option<u64> {
        mime::entry(&self.tree, nest, name).map(|e| e.data.size())
    }
}

pub(super) fn read_only(name: &str) -> Error {
    Error::Frozen(format!(
        "{name}: an attached message's parts are read-only (only the bytes they have can be written back)"
    ))
}

/// A refused write: the error for the caller, and the message as it was before the writer,
/// if a rebuild already happened, for [`MailFs::write_part`] to put back.
pub(super) struct Refused {
    pub(super) err: Error,
    pub(super) backup: Option<PathBuf>,
}

impl PartWriter {
    /// A writer of part `name` of `msg` whose temp file starts with `seed` (the part's bytes;
    /// `None`: empty). `dirty`: the close composes even with no write (O_TRUNC: `: > Body.txt`
    /// empties the part).
    pub(super) fn new(
        spool: &Spool,
        (msg, name): (&str, &str),
        caller: Caller,
        seed: Option<&[u8]>,
        dirty: bool,
    ) -> Result<PartWriter> {
        let tmp_path = spool.tmp_path();
        let tmp = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp_path)?;
        // From here the temp file goes with the writer (Drop), also on the error below.
        let w = PartWriter {
            msg: msg.to_string(),
            name: name.to_string(),
            caller,
            tmp,
            tmp_path,
            dirty,
            refused: false,
            backup: None,
            seen: None,
            orphaned: false,
            opener: None,
            nest: Vec::new(),
            expect: None,
        };
        if let Some(bytes) = seed {
            w.tmp.write_all_at(bytes, 0)?;
        }
        Ok(w)
    }

    /// This writer writes an attached message's part back (in `nest`): only its own bytes.
    pub(super) fn checking(mut self, nest: &[String], expect: Expected) -> PartWriter {
        self.nest = nest.to_vec();
        self.expect = Some(expect);
        self
    }

    pub(super) fn is(&self, msg: &str, nest: &[String], name: &str) -> bool {
        self.msg == msg && self.nest == nest && self.name == name
    }

    pub(super) fn is_checking(&self) -> bool {
        self.expect.is_some()
    }

    /// At close of a checking writer: Ok(true) when bytes were written and they are the
    /// part's own (nothing to do), Ok(false) when nothing was written; other bytes are
    /// refused (EACCES), and the writer with them.
    pub(super) fn verify(&mut self) -> Result<bool> {
        let Some(x) = &self.expect else {
            return Ok(false);
        };
        if self.refused {
            return Err(read_only(&self.name));
        }
        if !self.dirty {
            return Ok(false);
        }
        let len = self.tmp.metadata()?.len();
        let mut same = x.size(&self.nest, &self.name) == Some(len);
        let mut at = 0u64;
        const CHUNK: u64 = 1 << 20;
        while same && at < len {
            let n = CHUNK.min(len - at) as usize;
            let mut got = vec![0u8; n];
            self.tmp.read_exact_at(&mut got, at)?;
            same = x.read(&self.nest, &self.name, at, n)? == got;
            at += n as u64;
        }
        self.dirty = false;
        if !same {
            self.refused = true;
            return Err(read_only(&self.name));
        }
        Ok(true)
    }

    /// The bytes written so far, for reads through the writer's own descriptor.
    pub(super) fn file(&self) -> &File {
        &self.tmp
    }

    /// The size `stat` shows for the part while it is being written.
    pub(super) fn size(&self) -> Option<u64> {
        self.tmp.metadata().ok().map(|m| m.len())
    }

    /// Why a write of `data` at `offset` is refused, if it is.
    fn refusal(&self, offset: u64, data: &[u8]) -> Option<Error> {
        if self.refused {
            return Some(Error::invalid(self.name.as_str(), "an earlier write was refused"));
        }
        if let Some(x) = &self.expect {
            return match x.read(&self.nest, &self.name, offset, data.len()) {
                Ok(want) if want == data => None,
                Ok(_) => Some(read_only(&self.name)),
                Err(e) => Some(e),
            };
        }
        if let Err(e) = compose::check_part_size(&self.name, offset.saturating_add(data.len() as u64)) {
            return Some(e);
        }
        // Bytes that are never UTF-8 are refused at once: a shell ignores the error a close
        // returns, so the rebuild's own check would go unseen.
        let body = self.name == compose::TEXT_BODY || self.name == compose::HTML_BODY;
        if body && data.iter().any(|&b| b == 0xC0 || b == 0xC1 || b >= 0xF5) {
            return Some(Error::invalid(self.name.as_str(), "a body must be UTF-8 text"));
        }
        None
    }

    /// Writes `data` at `offset` into the temp file, or refuses it: then the writer is
    /// refused for good and hands back its backup.
    pub(super) fn write(&mut self, offset: u64, data: &[u8]) -> std::result::Result<u32, Refused> {
        if let Some(err) = self.refusal(offset, data) {
            self.refused = true;
            return Err(Refused {
                err,
                backup: self.backup.take(),
            });
        }
        if let Err(e) = self.tmp.write_all_at(data, offset) {
            return Err(Refused {
                err: e.into(),
                backup: None,
            });
        }
        self.dirty = true;
        Ok(data.len() as u32)
    }

    /// `truncate` of the part while it is being written (a shell's `>` opens, then truncates).
    pub(super) fn truncate(&mut self, size: u64) -> Result<()> {
        compose::check_part_size(&self.name, size)?;
        self.tmp.set_len(size)?;
        self.dirty = true;
        Ok(())
    }

    /// Bytes (or a truncate) written and not composed yet, by a writer not refused: what a
    /// RELEASE still has to compose when the opener's close did not.
    pub(super) fn unsent(&self) -> bool {
        self.dirty && !self.refused && !self.orphaned
    }

    /// Marks the writer refused (its caller may no longer change the message).
    pub(super) fn refuse(&mut self) {
        self.refused = true;
    }

    /// At close: the bytes to compose, or `None` when there is nothing new. A refused writer
    /// answers EINVAL; a temp file past the limit EFBIG (and is emptied, never read). The
    /// first rebuild keeps a backup of the message at `eml` first.
    pub(super) fn take(&mut self, spool: &Spool) -> Result<Option<Vec<u8>>> {
        if self.refused {
            return Err(Error::invalid(
                self.name.as_str(),
                "a write was refused; nothing changed",
            ));
        }
        if !self.dirty {
            return Ok(None);
        }
        let len = self.tmp.metadata()?.len();
        if let Err(e) = compose::check_part_size(&self.name, len) {
            self.refused = true;
            self.tmp.set_len(0)?;
            return Err(e);
        }
        let mut bytes = vec![0u8; len as usize];
        self.tmp.read_exact_at(&mut bytes, 0)?;
        if self.backup.is_none() {
            let b = spool.tmp_path();
            fs::hard_link(spool.eml_path(&self.msg), &b)?;
            self.backup = Some(b);
        }
        // Only now: a failure above leaves the bytes pending for the next close.
        self.dirty = false;
        Ok(Some(bytes))
    }
}

impl Drop for PartWriter {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.tmp_path);
        if let Some(b) = &self.backup {
            let _ = fs::remove_file(b);
        }
    }
}

impl MailFs {
    /// Opens a writer of part `name` of Draft `msg`, holding the part's current bytes when `keep`.
    pub(super) fn open_part_writer(
        &self,
        caller: Caller,
        msg: &str,
        name: &str,
        keep: bool,
        dirty: bool,
    ) -> Result<u64> {
        let eml =
            crate::store::spool::open_read(&self.node.spool.eml_path(msg)).map_err(|e| not_found(e, msg))?;
        let tree = self.tree_at(msg, Stamp::of(&eml.metadata()?))?;
        compose::check_whole(&tree)?;
        compose::check_size(&tree, 0)?;
        let seed = match tree.entry(name) {
            Some(e) if keep => Some(e.data.read_all(&eml)?),
            _ => None,
        };
        let mut w = PartWriter::new(&self.node.spool, (msg, name), caller, seed.as_deref(), dirty)?;
        w.seen = Some(Stamp::of(&eml.metadata()?));
        Ok(self.new_handle(Handle::PartWrite(w)))
    }

    /// The writers of part `name` of Draft `msg` write into nothing from now on: the part was
    /// removed, or another took its name by a rename.
    pub(super) fn orphan_writers(&self, msg: &str, name: &str) {
        let handles: Vec<_> = self.handles.lock().values().cloned().collect();
        for h in handles {
            if let Handle::PartWrite(w) = &mut *h.lock()
                && w.is(msg, &[], name)
            {
                w.orphaned = true;
            }
        }
    }

    /// The size of a part a writer has open, which `stat` shows until it is closed.
    pub(super) fn pending_part_size(&self, msg: &str, nest: &[String], name: &str) -> Option<u64> {
        let handles: Vec<_> = self.handles.lock().values().cloned().collect();
        handles.into_iter().find_map(|h| match &*h.lock() {
            Handle::PartWrite(w) if w.is(msg, nest, name) => w.size(),
            _ => None,
        })
    }

    /// A write through a part writer (its handle locked by the caller). A refused write puts
    /// the message back as it was before the writer's first rebuild, if the writer's caller
    /// may still change what now has the name.
    pub(super) fn write_part(&self, w: &mut PartWriter, offset: u64, data: &[u8]) -> Result<u32> {
        let Refused { err, backup } = match w.write(offset, data) {
            Ok(n) => return Ok(n),
            Err(r) => r,
        };
        if let Some(b) = backup {
            // Not put back (the name is another user's message now, or the rename failed):
            // the link goes, or it would keep the old bytes in the spool until a restart.
            let restored = self.recheck_writer(w.caller, &w.msg).is_ok()
                && fs::rename(&b, self.node.spool.eml_path(&w.msg)).is_ok();
            if restored {
                let _ = self.node.spool.sync_root();
                self.invalidate_message(&w.msg, true);
                self.content_changed(&w.msg);
            } else {
                let _ = fs::remove_file(&b);
            }
        }
        Err(err)
    }

    /// A flush of a part writer: the Draft is rebuilt with the bytes written. Returns whether
    /// `handle` is a part writer.
    pub(super) fn flush_part(&self, handle: &Mutex<Handle>) -> Result<bool> {
        let mut h = handle.lock();
        let Handle::PartWrite(w) = &mut *h else {
            return Ok(false);
        };
        if let Err(e) = self.recheck_writer(w.caller, &w.msg) {
            w.refuse();
            return Err(e);
        }
        if w.orphaned {
            return Ok(true);
        }
        if w.is_checking() {
            let verified = w.verify();
            let (msg, nest, name) = (w.msg.clone(), w.nest.clone(), w.name.clone());
            drop(h);
            // Written back (or refused): the part shows again if an unlink hid it.
            if !matches!(verified, Ok(false)) {
                self.restoring.unhide(&msg, &nest, &name);
            }
            return verified.map(|_| true);
        }
        let Some(bytes) = w.take(&self.node.spool)? else {
            return Ok(true);
        };
        let (msg, name, seen) = (w.msg.clone(), w.name.clone(), w.seen);
        // The namespace lock comes before a handle's.
        drop(h);
        let _ns = self.ns.lock();
        // A frozen message refuses the writer first (EACCES), whatever else changed.
        self.check_composable(&msg, &[])?;
        let now = self.eml_stamp(&msg);
        if let (Some(seen), Some(now)) = (seen, now)
            && !self.kept_names.reaches(&msg, seen, now)
        {
            // Changed another way since the open (the `.eml` edited, another mount): the name
            // may mean another part now (audit-18 E5). Nothing is written.
            if let Handle::PartWrite(w) = &mut *handle.lock() {
                w.refuse();
            }
            log::warn!("{msg}: {name} not written: the message changed another way while it was open");
            return Err(Error::Io(std::io::Error::from_raw_os_error(libc::ESTALE)));
        }
        self.put_part(&msg, &name, bytes)?;
        if let Handle::PartWrite(w) = &mut *handle.lock() {
            w.seen = self.eml_stamp(&msg);
        }
        Ok(true)
    }

    /// At RELEASE: bytes the opener's close did not compose (a child wrote after it, or no
    /// close of the opener came) go in now, as that close would have put them.
    pub(super) fn release_part(&self, handle: &Mutex<Handle>) -> Result<()> {
        if matches!(&*handle.lock(), Handle::PartWrite(w) if w.unsent()) {
            self.flush_part(handle)?;
        }
        Ok(())
    }

    /// `truncate` on a part: cut the bytes being written if a writer has it open (a shell's
    /// `>` opens, then truncates), else rebuild the Draft with the part cut.
    pub(super) fn truncate_part(&self, msg: &str, nest: &[String], name: &str, size: u64) -> Result<()> {
        self.check_composable(msg, &[])?;
        // Before anything is looked at: the size a user asks for is never allocated.
        compose::check_part_size(name, size)?;
        let handles: Vec<_> = self.handles.lock().values().cloned().collect();
        let mut found = false;
        for h in handles {
            if let Handle::PartWrite(w) = &mut *h.lock()
                && w.is(msg, nest, name)
            {
                w.truncate(size)?;
                found = true;
            }
        }
        if found {
            return Ok(());
        }
        if self.fixed_part(msg, nest, name) {
            // No writer has it open: the size it has is no change, any other is refused.
            let tree = self.tree(msg)?;
            return match mime::entry(&tree, nest, name) {
                Some(e) if e.data.size() == size => Ok(()),
                Some(_) => Err(read_only(name)),
                None => Err(Error::NotFound(name.to_string())),
            };
        }
        let _ns = self.ns.lock();
        let path = self.node.spool.eml_path(msg);
        let file = crate::store::spool::open_read(&path).map_err(|e| not_found(e, msg))?;
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
}
