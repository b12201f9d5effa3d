//! Putting a part back as it was (issue 12). `tar -xf` over a node restores `X.eml`, then finds
//! `X.eml.parts/Body.txt` already there: it unlinks it and creates it again with the same
//! bytes. Composing at each step would rebuild the message twice and change its bytes; so
//!
//! - writing a part with the bytes it already has changes nothing;
//! - removing a part keeps a hard link to the message as it was; writing the same bytes back
//!   under the same name while the message is still as the removal left it puts that link
//!   back, byte for byte, instead of composing;
//! - removing the only body of a message (`rm Body.txt` of a plain-text Draft) leaves a
//!   message with an empty body, which the parts view would still list as an empty
//!   `Body.txt`: the name is hidden until the message changes again, so `rm` did what it said.
//! - the other parts keep the names they had (`keepnames.rs`), so a restore's `rm` then
//!   create of one name cannot reach another part.

use std::fs::{self, File};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::MailFs;
use crate::error::{Error, Result};
use crate::mail::compose::Edit;
use crate::mail::mime;
use crate::store::spool::Stamp;

/// Removals remembered at once, and for how long: a restore puts a part back within
/// milliseconds; anything older is an ordinary removal.
const KEEP: usize = 64;
const FOR: Duration = Duration::from_secs(600);
/// How long the message as it was is kept for that: the link holds the old message's blocks
/// (audit-16 D5: a copy per removed attachment until the next process cleaned `.tmp/`).
const COPY_FOR: Duration = if cfg!(test) {
    Duration::from_millis(300)
} else {
    Duration::from_secs(60)
};

struct Removal {
    msg: String,
    name: String,
    /// A hard link to the message as it was before the removal, while `copy` says it is kept.
    before: PathBuf,
    copy: bool,
    /// The message as the removal left it.
    after: Stamp,
    at: Instant,
}

#[derive(Default)]
pub(super) struct Removals(Mutex<Vec<Removal>>);

impl Drop for Removals {
    fn drop(&mut self) {
        for r in self.0.get_mut().drain(..) {
            let _ = fs::remove_file(r.before);
        }
    }
}

impl Removals {
    fn take(&self, msg: &str, name: &str) -> Option<Removal> {
        let mut v = self.0.lock();
        let i = v.iter().position(|r| r.msg == msg && r.name == name)?;
        Some(v.remove(i))
    }

    fn push(&self, r: Removal) {
        let mut v = self.0.lock();
        drop_old_copies(&mut v);
        v.retain(|o| {
            let keep = o.at.elapsed() < FOR && !(o.msg == r.msg && o.name == r.name);
            if !keep {
                let _ = fs::remove_file(&o.before);
            }
            keep
        });
        if v.len() >= KEEP {
            let o = v.remove(0);
            let _ = fs::remove_file(o.before);
        }
        v.push(r);
    }

    /// Every removal of a message goes with it.
    pub(super) fn forget_message(&self, msg: &str) {
        self.0.lock().retain(|r| {
            if r.msg == msg {
                let _ = fs::remove_file(&r.before);
            }
            r.msg != msg
        });
    }
}

/// Lets the copies older than [`COPY_FOR`] go (the removals stay, for the names they keep).
fn drop_old_copies(v: &mut [Removal]) {
    for r in v.iter_mut().filter(|r| r.copy && r.at.elapsed() >= COPY_FOR) {
        let _ = fs::remove_file(&r.before);
        r.copy = false;
    }
}

impl MailFs {
    pub(super) fn eml_stamp(&self, msg: &str) -> Option<Stamp> {
        fs::symlink_metadata(self.node.spool.eml_path(msg))
            .ok()
            .map(|m| Stamp::of(&m))
    }

    /// Whether `name` in the top parts directory of `msg` was removed and is only still in the
    /// tree because the message cannot be without a body.
    pub(super) fn hidden_part(&self, msg: &str, name: &str) -> bool {
        let mut v = self.removals.0.lock();
        drop_old_copies(&mut v);
        let Some(r) = v.iter().find(|r| r.msg == msg && r.name == name) else {
            return false;
        };
        let after = r.after;
        drop(v);
        self.eml_stamp(msg) == Some(after)
    }

    /// `rm X.eml.parts/NAME` of a Draft.
    pub(super) fn remove_part(&self, msg: &str, name: &str) -> Result<()> {
        if self.hidden_part(msg, name) {
            return Err(Error::NotFound(name.to_string()));
        }
        let before = self.node.spool.tmp_path();
        fs::hard_link(self.node.spool.eml_path(msg), &before)?;
        if let Err(e) = self.compose(msg, Edit::RemovePart(name.to_string())) {
            let _ = fs::remove_file(&before);
            return Err(e);
        }
        self.orphan_writers(msg, name);
        match self.eml_stamp(msg) {
            Some(after) => {
                self.removals.push(Removal {
                    msg: msg.to_string(),
                    name: name.to_string(),
                    before,
                    copy: true,
                    after,
                    at: Instant::now(),
                });
            }
            None => {
                let _ = fs::remove_file(&before);
            }
        }
        Ok(())
    }

    /// Sets part `name` of Draft `msg` to `bytes`: nothing when it already has them, the
    /// message as it was when they are what a removal just took, else a rebuild.
    pub(super) fn put_part(&self, msg: &str, name: &str, bytes: Vec<u8>) -> Result<()> {
        let path = self.node.spool.eml_path(msg);
        let file = File::open(&path).map_err(|e| super::not_found(e, msg))?;
        let stamp = Stamp::of(&file.metadata()?);
        let hidden = self.hidden_part(msg, name);
        if !hidden {
            let tree = self.tree_at(msg, stamp)?;
            if let Some(e) = tree.entry(name)
                && e.data.size() == bytes.len() as u64
                && e.data.read_all(&file)? == bytes
            {
                return Ok(());
            }
        }
        if let Some(r) = self.removals.take(msg, name) {
            if r.after == stamp {
                if removed_bytes(&r, name)?.is_some_and(|b| b == bytes) {
                    fs::rename(&r.before, &path)?;
                    self.node.spool.sync_root()?;
                    self.invalidate_message(msg, true);
                    self.content_changed(msg);
                    return Ok(());
                }
                // A shell's `> Body.txt` closes a copy of the descriptor before writing: an
                // empty part over a removed one is what the message has already, and the
                // removal stays for the bytes that follow.
                if bytes.is_empty() && hidden {
                    self.removals.push(r);
                    return Ok(());
                }
            }
            let _ = fs::remove_file(&r.before);
        }
        self.compose(
            msg,
            Edit::SetPart {
                name: name.to_string(),
                bytes,
            },
        )
    }
}

/// The bytes the removed part had, read from the message as it was.
fn removed_bytes(r: &Removal, name: &str) -> Result<Option<Vec<u8>>> {
    if !r.copy {
        return Ok(None);
    }
    let tree = mime::build(&r.before)?;
    let file = File::open(&r.before)?;
    Ok(match tree.entry(name) {
        Some(e) => Some(e.data.read_all(&file)?),
        None => None,
    })
}
