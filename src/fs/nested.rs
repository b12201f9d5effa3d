//! Restoring the parts of an attached message (audit: restores of a Draft holding `fwd.eml`).
//!
//! `X.eml.parts/fwd.eml.parts/` is read-only: its files are what the attached message holds,
//! and no byte of it can be changed through them. A backup of the node holds them all the
//! same, and the tools that write a backup back go through them after `X.eml` (which brings
//! them back, byte for byte) as through any other directory. What they do there changes
//! nothing when taken as the top parts directory takes it (`undo.rs`):
//!
//! - writing a part back with the bytes it has, directly (`cp -a`) or as a dot-named temp
//!   file renamed onto it (rsync), is no change; any other byte is refused (EACCES) at the
//!   write, at the close or at the rename, and the part keeps its bytes;
//! - rsync's generator makes directories before its receiver has written the files they
//!   follow from: it makes `X.eml.parts/` (which makes the Draft, empty) and then
//!   `X.eml.parts/fwd.eml.parts/` while the Draft does not hold fwd.eml yet. Such a `mkdir`
//!   from the process that made the Draft promises the directory: it shows, empty and
//!   unlisted, while that process runs (at most [`FOR`]), and the Draft's own directory takes
//!   its place once the Draft holds fwd.eml. Anyone else's `mkdir` there is EPERM as before;
//! - `tar -x` removes a file it finds in its way and makes it again with the bytes of the
//!   archive. An unlink of an attached message's part is refused (EACCES), except from the
//!   process that made the Draft (tar made `X.eml` just before), within [`FOR`]: then the
//!   part is hidden, not removed (the Draft keeps its bytes), and shows again when that
//!   process writes it back (other bytes are refused), when it ends, or when the Draft
//!   changes.
//!
//! The process that made a Draft is recorded when a new message is created through its
//! `.eml` (create, mknod, or the `mkdir X.eml.parts` that makes it).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::handles::{Expected, PartWriter, read_only};
use super::opener::Opener;
use super::{Handle, Key, MailFs, PARTS_SUFFIX, Stamp, not_found};
use crate::error::{Error, Result};
use crate::mail::mime;
use crate::model::access::{Caller, Need};
use crate::store::spool::is_message_name;

/// How long a promise or a hidden part lasts at most (a restore writes a message's parts
/// right after it), as removals kept for the top parts directory (`undo.rs`).
const FOR: Duration = Duration::from_secs(600);

/// A process that is still running: its thread group, and when it acted.
#[derive(Clone, Copy)]
struct By {
    tgid: u32,
    at: Instant,
}

impl By {
    fn of(pid: u32) -> Option<By> {
        Opener::of(pid).map(|o| By {
            tgid: o.tgid(),
            at: Instant::now(),
        })
    }

    /// Still in time, and the process still runs.
    fn live(&self) -> bool {
        self.at.elapsed() < FOR && Path::new(&format!("/proc/{}", self.tgid)).exists()
    }

    fn is(&self, pid: u32) -> bool {
        Opener::of(pid).is_some_and(|o| o.tgid() == self.tgid)
    }
}

struct Hidden {
    msg: String,
    nest: Vec<String>,
    name: String,
    by: By,
    /// The Draft as it was when the part was hidden: any change shows it again.
    stamp: Stamp,
}

struct Promise {
    msg: String,
    nest: Vec<String>,
    inner: String,
    by: By,
}

/// What restores of attached messages' parts are doing now. Leaves in the lock order.
#[derive(Default)]
pub(super) struct Restoring {
    /// Messages made through their `.eml`, by which process.
    made: Mutex<HashMap<String, By>>,
    hidden: Mutex<Vec<Hidden>>,
    promised: Mutex<Vec<Promise>>,
}

/// Bounds each list: a restore has a few entries at a time.
const KEEP: usize = 256;

impl Restoring {
    /// Message `msg` was made through its `.eml` by task `pid`.
    pub(super) fn created(&self, msg: &str, pid: u32) {
        let Some(by) = By::of(pid) else {
            return;
        };
        let mut m = self.made.lock();
        if m.len() >= KEEP {
            m.retain(|_, b| b.at.elapsed() < FOR);
            if m.len() >= KEEP {
                m.clear();
            }
        }
        m.insert(msg.to_string(), by);
    }

    /// Whether `mkdir` promised `INNER.parts` in the parts directory `nest` of `msg`.
    pub(super) fn promised(&self, msg: &str, nest: &[String], inner: &str) -> bool {
        self.promised
            .lock()
            .iter()
            .any(|p| p.msg == msg && p.nest == nest && p.inner == inner && p.by.live())
    }

    /// The part shows again.
    pub(super) fn unhide(&self, msg: &str, nest: &[String], name: &str) {
        self.hidden
            .lock()
            .retain(|h| !(h.msg == msg && h.nest == nest && h.name == name));
    }

    pub(super) fn forget_message(&self, msg: &str) {
        self.made.lock().remove(msg);
        self.hidden.lock().retain(|h| h.msg != msg);
        self.promised.lock().retain(|p| p.msg != msg);
    }
}

impl MailFs {
    /// Whether part `name` in `nest` of `msg` takes back only the bytes it has: an attached
    /// message's part, or the `raw.eml` of a message that cannot be parsed (it is the whole
    /// message: a restore writes it back after the `.eml`, and nothing can be composed in).
    pub(super) fn fixed_part(&self, msg: &str, nest: &[String], name: &str) -> bool {
        !nest.is_empty()
            || (name == mime::RAW_NAME
                && self
                    .tree(msg)
                    .is_ok_and(|t| t.entry(name).is_some_and(|e| e.info.role == mime::Role::Raw)))
    }

    /// Whether part `name` in `nest` of `msg` is hidden: removed from the top parts directory
    /// and only still listed because a message needs a body (`undo.rs`), or an attached
    /// message's part hidden by a restore's unlink.
    pub(super) fn part_hidden(&self, msg: &str, nest: &[String], name: &str) -> bool {
        if nest.is_empty() && name != mime::RAW_NAME {
            return self.hidden_part(msg, name);
        }
        let hit = {
            let v = self.restoring.hidden.lock();
            v.iter()
                .find(|h| h.msg == msg && h.nest == nest && h.name == name)
                .map(|h| (h.by, h.stamp))
        };
        let Some((by, stamp)) = hit else {
            return false;
        };
        let now = std::fs::symlink_metadata(self.node.spool.eml_path(msg))
            .ok()
            .map(|m| Stamp::of(&m));
        if by.live() && now == Some(stamp) {
            return true;
        }
        self.restoring.unhide(msg, nest, name);
        false
    }

    /// The caller's process, when it made Draft `msg` through its `.eml` (or its `.parts`
    /// directory) and still runs, within [`FOR`]: a restore tool at work on it.
    fn maker(&self, caller: Caller, msg: &str) -> Option<By> {
        let made = self.restoring.made.lock().get(msg).copied();
        made.filter(|b| b.live() && b.is(caller.pid))
    }

    /// Whether the parts directory `nest` of `msg` shows only because `mkdir` promised it.
    pub(super) fn promised_dir(&self, msg: &str, nest: &[String]) -> bool {
        let Some((inner, outer)) = nest.split_last() else {
            return false;
        };
        let absent = self.tree(msg).is_ok_and(|t| mime::subtree(&t, nest).is_none());
        absent && self.restoring.promised(msg, outer, inner)
    }

    /// `rm` of an attached message's part: hidden when the process that made the Draft
    /// through its `.eml` asks (tar, about to write it back), refused otherwise.
    pub(super) fn hide_nested(&self, caller: Caller, msg: &str, nest: &[String], name: &str) -> Result<()> {
        self.check_composable(msg, &[])?;
        let meta = self.message_meta(msg)?;
        let tree = self.tree_at(msg, Stamp::of(&meta))?;
        if mime::entry(&tree, nest, name).is_none() || self.part_hidden(msg, nest, name) {
            return Err(Error::NotFound(name.to_string()));
        }
        let Some(by) = self.maker(caller, msg) else {
            return Err(read_only(name));
        };
        let mut v = self.restoring.hidden.lock();
        if v.len() >= KEEP {
            v.remove(0);
        }
        v.push(Hidden {
            msg: msg.to_string(),
            nest: nest.to_vec(),
            name: name.to_string(),
            by: By {
                tgid: by.tgid,
                at: Instant::now(),
            },
            stamp: Stamp::of(&meta),
        });
        Ok(())
    }

    /// `mkdir DIR` in parts directory `nest` of Draft `msg` that has no such directory:
    /// `NAME.eml.parts` is promised to the caller's process (see the module's text).
    pub(super) fn promise_dir(
        &self,
        caller: Caller,
        parent: u64,
        msg: &str,
        nest: &[String],
        dir: &str,
    ) -> Result<()> {
        let Some(inner) = dir.strip_suffix(PARTS_SUFFIX).filter(|n| is_message_name(n)) else {
            return Err(Error::NotPermitted(format!(
                "{dir}: a parts directory holds files (and attached messages' parts)"
            )));
        };
        self.authorize_ino(caller, parent, Need::Write)?;
        self.check_composable(msg, &[])?;
        let by = self.maker(caller, msg).ok_or_else(|| {
            Error::NotPermitted(format!("{dir}: {msg} holds no attached message of that name"))
        })?;
        let by = By {
            tgid: by.tgid,
            at: Instant::now(),
        };
        let mut v = self.restoring.promised.lock();
        v.retain(|p| p.by.live());
        if v.len() >= KEEP {
            v.remove(0);
        }
        v.push(Promise {
            msg: msg.to_string(),
            nest: nest.to_vec(),
            inner: inner.to_string(),
            by,
        });
        Ok(())
    }

    /// A writer of an attached message's part that takes back only the bytes it has.
    fn nested_writer(
        &self,
        caller: Caller,
        (msg, nest, name): (&str, &[String], &str),
        keep: bool,
    ) -> Result<u64> {
        self.check_composable(msg, &[])?;
        let eml =
            crate::store::spool::open_read(&self.node.spool.eml_path(msg)).map_err(|e| not_found(e, msg))?;
        let tree = self.tree_at(msg, Stamp::of(&eml.metadata()?))?;
        let e = mime::entry(&tree, nest, name).ok_or_else(|| read_only(name))?;
        let seed = if keep { Some(e.data.read_all(&eml)?) } else { None };
        let w = PartWriter::new(&self.node.spool, (msg, name), caller, seed.as_deref(), !keep)?
            .checking(nest, Expected::new(eml, tree.clone()));
        Ok(self.new_handle(Handle::PartWrite(w)))
    }

    /// open(2) for writing of an attached message's part (`cp -a` over it, tar after mknod).
    pub(super) fn open_nested_writer(
        &self,
        caller: Caller,
        at: (&str, &[String], &str),
        keep: bool,
    ) -> Result<u64> {
        self.nested_writer(caller, at, keep)
    }

    /// create(2) of an attached message's part: it must be there (or hidden by the caller's
    /// unlink, which is how tar makes it again); O_EXCL over a part that shows is EEXIST.
    pub(super) fn create_nested(
        &self,
        caller: Caller,
        (msg, nest, name): (&str, &[String], &str),
        flags: i32,
    ) -> Result<u64> {
        self.check_composable(msg, &[])?;
        if mime::entry(&self.tree(msg)?, nest, name).is_none() {
            return Err(read_only(name));
        }
        let hidden = self.part_hidden(msg, nest, name);
        if !hidden && flags & libc::O_EXCL != 0 {
            return Err(Error::Exists(name.to_string()));
        }
        let keep = !hidden && flags & libc::O_TRUNC == 0;
        self.nested_writer(caller, (msg, nest, name), keep)
    }

    /// `mv .NAME.XXXXXX NAME` in an attached message's parts directory (rsync's last step):
    /// no change when the staged file holds the part's bytes, refused (EACCES) otherwise.
    pub(super) fn commit_staged_nested(
        &self,
        (msg, nest): (&str, &[String]),
        from: &str,
        to: &str,
        noreplace: bool,
        keys: (&Key, Key),
    ) -> Result<()> {
        self.check_composable(msg, &[])?;
        let _ns = self.ns.lock();
        let path = self
            .staged
            .path(msg, nest, from)
            .ok_or_else(|| Error::NotFound(from.to_string()))?;
        let eml =
            crate::store::spool::open_read(&self.node.spool.eml_path(msg)).map_err(|e| not_found(e, msg))?;
        let tree = self.tree_at(msg, Stamp::of(&eml.metadata()?))?;
        let e = mime::entry(&tree, nest, to).ok_or_else(|| read_only(to))?;
        let hidden = self.part_hidden(msg, nest, to);
        if noreplace && !hidden {
            return Err(Error::Exists(to.to_string()));
        }
        if !same_bytes(&path, e, &eml)? {
            return Err(read_only(to));
        }
        self.staged.remove(msg, nest, from);
        let _ = std::fs::remove_file(path);
        self.restoring.unhide(msg, nest, to);
        self.inodes.lock().rename(keys.0, keys.1);
        Ok(())
    }
}

/// Whether the file at `path` holds exactly the bytes of part `e` of the message in `eml`.
fn same_bytes(path: &Path, e: &mime::Entry, eml: &std::fs::File) -> Result<bool> {
    use std::os::unix::fs::FileExt;
    let f = crate::store::spool::open_read(path)?;
    let size = e.data.size();
    if f.metadata()?.len() != size {
        return Ok(false);
    }
    const CHUNK: u64 = 1 << 20;
    let mut at = 0u64;
    while at < size {
        let n = CHUNK.min(size - at) as usize;
        let mut got = vec![0u8; n];
        f.read_exact_at(&mut got, at)?;
        if e.data.read_at(eml, at, n)? != got {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}
