//! Files that are plain files in the spool rather than messages or parts: scratch files in the
//! node root (editors' and rsync's temp files) and staged files in a Draft's `.parts/` (rsync's
//! `.NAME.XXXXXX` temp files, which become a part when renamed onto its name).
//!
//! Both hold `user.*` xattrs, kept as real xattrs on their spool file (issue 12: `rsync -aX`
//! and `cp --preserve=xattr tmp && mv tmp X.eml` set them on the temp file). Renaming a
//! scratch file onto `X.eml` carries them into the message ([`MailFs::carry_attrs`]).

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use super::{Handle, Key, MailFs};
use crate::error::{Error, Result};
use crate::mail::compose;
use crate::mail::content::{self, HeaderInfo};
use crate::model::attrs::{MAILFS_ATTRS, MessageAttrs};
use crate::store::message;

use crate::store::message::{WENT_OUT, WENT_OUT_ID};

/// Staged files by (message, name): temp files in `.tmp/`, gone at unmount like any temp file.
#[derive(Default)]
pub(super) struct Staged(Mutex<HashMap<Place, PathBuf>>);

fn cpath(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Error::NotFound(p.display().to_string()))
}

fn cname(name: &str) -> Result<CString> {
    CString::new(name).map_err(|_| Error::invalid("xattr", "a name cannot hold NUL"))
}

fn last_err() -> Error {
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENODATA) => Error::NoAttr("attribute".into()),
        // The spool's file system has no user xattrs: the file cannot hold them.
        Some(libc::EOPNOTSUPP) => Error::NotSupported("user xattrs on the spool's file system".into()),
        _ => Error::Io(e),
    }
}

/// The `user.*` xattrs of a plain spool file (never following a link), as (full name, value).
pub(super) fn read_all(path: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for name in list(path)? {
        match get(path, &name) {
            Ok(v) => out.push((name, v)),
            Err(Error::NoAttr(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

pub(super) fn list(path: &Path) -> Result<Vec<String>> {
    let p = cpath(path)?;
    // SAFETY: a size probe with a null buffer, then a read into a buffer of that size.
    let n = unsafe { libc::llistxattr(p.as_ptr(), std::ptr::null_mut(), 0) };
    if n < 0 {
        return match last_err() {
            Error::NotSupported(_) => Ok(Vec::new()),
            e => Err(e),
        };
    }
    let mut buf = vec![0u8; n as usize];
    // SAFETY: `buf` holds `buf.len()` writable bytes.
    let n = unsafe { libc::llistxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(last_err());
    }
    buf.truncate(n as usize);
    Ok(buf
        .split(|&b| b == 0)
        .filter_map(|s| std::str::from_utf8(s).ok())
        .filter(|s| s.starts_with("user."))
        .map(str::to_string)
        .collect())
}

pub(super) fn get(path: &Path, name: &str) -> Result<Vec<u8>> {
    let (p, n) = (cpath(path)?, cname(name)?);
    loop {
        // SAFETY: size probe with a null buffer.
        let len = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), std::ptr::null_mut(), 0) };
        if len < 0 {
            return Err(match last_err() {
                Error::NoAttr(_) => Error::NoAttr(name.to_string()),
                e => e,
            });
        }
        let mut buf = vec![0u8; len as usize];
        // SAFETY: `buf` holds `buf.len()` writable bytes.
        let got = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if got >= 0 {
            buf.truncate(got as usize);
            return Ok(buf);
        }
        // ERANGE: it grew between the calls; ask again.
        if io::Error::last_os_error().raw_os_error() != Some(libc::ERANGE) {
            return Err(last_err());
        }
    }
}

pub(super) fn set(path: &Path, name: &str, value: &[u8]) -> Result<()> {
    let (p, n) = (cpath(path)?, cname(name)?);
    // SAFETY: valid C strings and a value slice of the given length.
    let rc = unsafe { libc::lsetxattr(p.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if rc < 0 {
        return Err(last_err());
    }
    Ok(())
}

pub(super) fn remove(path: &Path, name: &str) -> Result<()> {
    let (p, n) = (cpath(path)?, cname(name)?);
    // SAFETY: valid C strings.
    if unsafe { libc::lremovexattr(p.as_ptr(), n.as_ptr()) } < 0 {
        return Err(match last_err() {
            Error::NoAttr(_) => Error::NoAttr(name.to_string()),
            e => e,
        });
    }
    Ok(())
}

/// A staged file's place: its message, the attached messages it is in, its name.
type Place = (String, Vec<String>, String);

fn place(msg: &str, nest: &[String], name: &str) -> Place {
    (msg.to_string(), nest.to_vec(), name.to_string())
}

impl Staged {
    pub(super) fn path(&self, msg: &str, nest: &[String], name: &str) -> Option<PathBuf> {
        self.0.lock().get(&place(msg, nest, name)).cloned()
    }

    pub(super) fn remove(&self, msg: &str, nest: &[String], name: &str) -> Option<PathBuf> {
        self.0.lock().remove(&place(msg, nest, name))
    }

    pub(super) fn rename(&self, msg: &str, nest: &[String], from: &str, to: &str) -> Option<PathBuf> {
        let mut m = self.0.lock();
        let p = m.remove(&place(msg, nest, from))?;
        if let Some(old) = m.insert(place(msg, nest, to), p.clone()) {
            let _ = fs::remove_file(old);
        }
        Some(p)
    }

    pub(super) fn names(&self, msg: &str, nest: &[String]) -> Vec<String> {
        let mut v: Vec<String> = self
            .0
            .lock()
            .keys()
            .filter(|(m, n, _)| m == msg && n == nest)
            .map(|(_, _, n)| n.clone())
            .collect();
        v.sort_unstable();
        v
    }

    /// Every staged file of a message goes with it.
    pub(super) fn forget_message(&self, msg: &str) {
        self.0.lock().retain(|(m, _, _), p| {
            if m == msg {
                let _ = fs::remove_file(p);
            }
            m != msg
        });
    }
}

impl MailFs {
    /// The spool file behind a scratch or staged file.
    pub(super) fn backing(&self, key: &Key) -> Option<PathBuf> {
        match key {
            Key::Scratch(n) => Some(self.node.spool.scratch_path(n)),
            Key::Staged { msg, nest, name } => self.staged.path(msg, nest, name),
            _ => None,
        }
    }

    /// Creates a staged file in a Draft's parts directory, or an attached message's (a temp
    /// file rsync writes before renaming it onto the part's name).
    pub(super) fn create_staged(
        &self,
        (msg, nest, name): (&str, &[String], &str),
        mode: u32,
        excl: bool,
    ) -> Result<PathBuf> {
        self.check_composable(msg, &[])?;
        if let Some(p) = self.staged.path(msg, nest, name) {
            if excl {
                return Err(Error::Exists(name.to_string()));
            }
            return Ok(p);
        }
        let p = self.node.spool.tmp_path();
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode & 0o777)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&p)?;
        self.staged.0.lock().insert(place(msg, nest, name), p.clone());
        Ok(p)
    }

    /// Sets a `user.*` xattr on a scratch or staged file. `user.is_ready=1` is refused at once
    /// when the file already says it was sent (issue 12): that is where `rsync -X` and `cp -a`
    /// see the refusal, before the rename that makes it a message.
    pub(super) fn set_backed_xattr(&self, key: &Key, name: &str, value: &[u8]) -> Result<()> {
        let path = self
            .backing(key)
            .ok_or_else(|| Error::NotFound(name.to_string()))?;
        if name == "user.is_ready" && value == b"1" && matches!(key, Key::Scratch(_)) {
            let held = read_all(&path)?;
            let hint = held.iter().find(|(n, v)| {
                n.strip_prefix("user.")
                    .is_some_and(|k| message::says_went_out(k, v))
            });
            let id = HeaderInfo::parse(&content::read_head(&path)?).message_id;
            let known = match &id {
                Some(id) => crate::store::sent_ids::contains(&self.node.spool, id)?,
                None => false,
            };
            if hint.is_some() || known {
                let why = match hint {
                    Some((n, v)) => format!("it carries {n}={}", String::from_utf8_lossy(v)),
                    None => "its Message-ID was already sent from this node".into(),
                };
                let e = Error::AlreadySent(format!(
                    "user.is_ready=1 refused on {}: {why}; it lands as a Draft",
                    path.file_name().map(|f| f.to_string_lossy()).unwrap_or_default()
                ));
                log::warn!("{e}");
                return Err(e);
            }
        }
        set(&path, name, value)
    }

    /// Carries the xattrs a scratch file held into the message it was renamed onto, as if set
    /// one by one with `setfattr`, `user.is_ready` last. mailfs-only attributes are not
    /// applied (they describe the node the file came from), but one that says the message went
    /// out there keeps it from being sent again here. Each refusal is logged; the content
    /// is in place whatever happens to an attribute.
    pub(super) fn carry_attrs(&self, msg: &str, held: Vec<(String, Vec<u8>)>) {
        let eml = self.node.spool.eml_path(msg);
        for (n, _) in &held {
            let _ = remove(&eml, n);
        }
        let mut ready = false;
        let mut refused = Vec::new();
        for (full, value) in &held {
            let Some(k) = full.strip_prefix("user.") else {
                continue;
            };
            if k == "is_ready" {
                ready = value == b"1";
                continue;
            }
            // `hold` is the user's (SPEC §4) and goes in like `env_to`, before `is_ready`: a
            // message staged held (or restored by `rsync -aX`) must not go out at once.
            if MAILFS_ATTRS.contains(&k) {
                if message::says_went_out(k, value) {
                    self.note_went_out(msg, k, value);
                }
                continue;
            }
            if let Err(e) = self.set_message_attr(msg, k, value) {
                log::warn!("{msg}: {full} from the renamed file not kept: {e}");
                refused.push(full.as_str());
            }
        }
        // What was asked with it did not all hold (a hold that would have kept it back, the
        // envelope it was to go to): it stays a Draft rather than go out otherwise than asked
        // (audit-17 D1).
        if ready && !refused.is_empty() {
            log::warn!(
                "{msg}: user.is_ready=1 from the renamed file not applied, as {} could not be kept; it stays a Draft",
                refused.join(", ")
            );
        } else if ready && let Err(e) = self.set_message_attr(msg, "is_ready", b"1") {
            log::warn!("{msg}: user.is_ready=1 from the renamed file refused: {e}");
        }
    }

    /// Whether a restore tool is at work on message `n` (the caller holds `ns`): `tar --xattrs`
    /// makes the file empty (mknod) and sets its attributes before writing it, `cp -a` sets
    /// them through the descriptor it wrote the bytes with, before closing it. A message at
    /// rest, neither empty nor open for writing, is not being restored: a `setfattr` on it is
    /// a user's, and a refused one must change nothing.
    pub(super) fn being_restored(&self, n: &str) -> bool {
        if fs::metadata(self.node.spool.eml_path(n)).is_ok_and(|m| m.len() == 0) {
            return true;
        }
        let key = Key::Message(n.to_string());
        let handles: Vec<_> = self.handles.lock().values().cloned().collect();
        handles.iter().any(|h| match &*h.lock() {
            Handle::File {
                key: k,
                created,
                written,
                pending,
                ..
            } => *k == key && (*created || *written || pending.is_some()),
            _ => false,
        })
    }

    /// A restore said this Draft went out from the node it came from: it keeps a flag, and
    /// `is_ready=1` is refused (EALREADY, logged) for as long as it has the Message-ID its
    /// content has when it is first made ready ([`Self::consume_went_out`]; tar sets
    /// attributes before the bytes arrive).
    pub(super) fn note_went_out(&self, msg: &str, key: &str, value: &[u8]) {
        let Ok(mut attrs) = self.message_attrs(msg) else {
            return;
        };
        if attrs.frozen() || attrs.internal.contains_key(WENT_OUT) {
            return;
        }
        let shown = String::from_utf8_lossy(value);
        let shown = shown.lines().next().unwrap_or_default();
        log::warn!(
            "{msg}: restored with user.{key}={shown}: it went out where it came from and will \
             not be sent from here"
        );
        attrs.internal.insert(WENT_OUT.into(), format!("{key}={shown}"));
        if let Err(e) = self.store_attrs(msg, &attrs) {
            log::warn!("{msg}: cannot record that it went out: {e}");
        }
        if let Ok(info) = self.header_info(msg)
            && let Some(id) = &info.message_id
            && let Err(e) = crate::store::sent_ids::remember(&self.node.spool, id)
        {
            log::warn!("{msg}: cannot record {id} as sent: {e}");
        }
    }

    /// `tar --xattrs` makes a message with mknod and sets its attributes before its bytes:
    /// a Draft that is still empty takes the `user.message_id` restored for it (the one its
    /// bytes will carry), so the restore is quiet and the ID is the message's from the start.
    /// So does a Draft whose content has no Message-ID field: its ID is one mailfs made up
    /// (from its name and inode, so another node's copy shows another), and without this
    /// every `rsync -aX` between two nodes failed on it (exit 23, audit-23 C2). A value that is
    /// not a well-formed `<id@domain>` is still EPERM.
    pub(super) fn adopt_message_id(&self, msg: &str, attrs: &MessageAttrs, value: &[u8]) -> Result<bool> {
        let empty = fs::metadata(self.node.spool.eml_path(msg)).is_ok_and(|m| m.len() == 0)
            || !self.header_info(msg)?.has_message_id;
        let Ok(id) = std::str::from_utf8(value) else {
            return Ok(false);
        };
        if attrs.frozen() || !empty || !well_formed_id(id) {
            return Ok(false);
        }
        let mut next = attrs.clone();
        next.message_id = id.to_string();
        self.store_attrs(msg, &next)?;
        Ok(true)
    }

    /// `is_ready=1` from process `pid` on a Draft that same process just gave a value saying it
    /// went out (see [`super::claims`]): refused (EALREADY, logged).
    pub(super) fn check_claims(&self, msg: &str, pid: u32) -> Result<()> {
        let Some((age, what)) = self.claims.recent(msg, pid) else {
            return Ok(());
        };
        let e = Error::AlreadySent(format!(
            "{msg}: the same process gave it {what} {} s ago, as a restore of a message that \
             went out does (setfattr --restore); not made ready by that process, so that it \
             is not sent twice",
            age.as_secs()
        ));
        log::warn!("{e}");
        Err(e)
    }

    /// At `is_ready=1` of a Draft flagged by [`Self::note_went_out`] with content: the
    /// Message-ID it has now is the one that went out. The hand-over is then refused while it
    /// keeps that Message-ID ([`message::make_ready`]); a new one lets it be sent on purpose.
    pub(super) fn consume_went_out(&self, msg: &str) -> Result<()> {
        let mut attrs = self.message_attrs(msg)?;
        if !attrs.internal.contains_key(WENT_OUT)
            || attrs.internal.contains_key(WENT_OUT_ID)
            || fs::metadata(self.node.spool.eml_path(msg)).map_or(true, |m| m.len() == 0)
        {
            return Ok(());
        }
        let id = message::message_id(&attrs, &self.header_info(msg)?);
        crate::store::sent_ids::remember(&self.node.spool, &id)?;
        attrs.internal.insert(WENT_OUT_ID.into(), id);
        self.store_attrs(msg, &attrs)
    }
}

impl MailFs {
    /// `mv .NAME.XXXXXX NAME` in a Draft's parts directory (rsync's last step): the staged
    /// bytes become part NAME.
    pub(super) fn commit_staged(
        &self,
        msg: &str,
        from: &str,
        to: &str,
        noreplace: bool,
        keys: (&Key, Key),
    ) -> Result<()> {
        self.check_composable(msg, &[])?;
        if to != compose::TEXT_BODY && to != compose::HTML_BODY {
            compose::check_part_name(to)?;
        }
        let _ns = self.ns.lock();
        let path = self
            .staged
            .path(msg, &[], from)
            .ok_or_else(|| Error::NotFound(from.to_string()))?;
        if noreplace && self.tree(msg)?.entry(to).is_some() && !self.hidden_part(msg, to) {
            return Err(Error::Exists(to.to_string()));
        }
        if fs::metadata(&path)?.len() > compose::COMPOSE_LIMIT {
            return Err(Error::TooBig(format!(
                "{to}: a part past {} bytes",
                compose::COMPOSE_LIMIT
            )));
        }
        let bytes = fs::read(&path)?;
        let over = self.tree(msg)?.entry(to).is_some();
        self.put_part(msg, to, bytes)?;
        if over {
            // The part's open writers write into nothing now (rsync's way: audit-20 H3).
            self.orphan_writers(msg, to);
        }
        self.staged.remove(msg, &[], from);
        let _ = fs::remove_file(path);
        self.inodes.lock().rename(keys.0, keys.1);
        Ok(())
    }
}

/// A Message-ID as RFC 5322 §3.6.4 writes one, `<id-left@id-right>` of dot-atom text, short
/// enough that `Message-ID: ` and it fit in a 998-byte line (audit-25 F2, F3).
fn well_formed_id(id: &str) -> bool {
    let Some(inner) = id.strip_prefix('<').and_then(|i| i.strip_suffix('>')) else {
        return false;
    };
    let atext = |s: &str| {
        !s.is_empty()
            && !s.starts_with('.')
            && !s.ends_with('.')
            && !s.contains("..")
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b))
    };
    id.len() <= 998 - "Message-ID: ".len()
        && matches!(inner.split_once('@'), Some((l, r)) if atext(l) && atext(r))
}
