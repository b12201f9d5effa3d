//! Message attribute semantics (SPEC §4): what each `user.*` name of a message reads as, who
//! may set it and when, and the hand-over when `is_ready` becomes 1. Shared by the FUSE front
//! end and the command-line tools, so both follow the same rules.

use crate::error::{Error, Result};
use crate::mail::content::{self, HeaderInfo};
use crate::model::attrs::{
    MAILFS_ATTRS, MessageAttrs, Recipient, Status, fmt_date, parse_address_list, parse_single_address,
};
use crate::store::journal;
use crate::store::node::Node;
use crate::store::spool::{Spool, Stamp};

/// Splits `user.NAME` into `NAME`; other namespaces are not supported.
pub fn user_key(full: &str) -> Result<&str> {
    match full.strip_prefix("user.") {
        Some(k) if !k.is_empty() => Ok(k),
        _ => Err(Error::NotSupported(full.to_string())),
    }
}

/// The message's Message-ID: the content's, else the one mailfs keeps for it.
pub fn message_id(attrs: &MessageAttrs, info: &HeaderInfo) -> String {
    info.message_id
        .clone()
        .unwrap_or_else(|| attrs.message_id.clone())
}

fn env_from(attrs: &MessageAttrs, info: &HeaderInfo) -> Option<String> {
    attrs.env_from.clone().or_else(|| info.from.clone())
}

fn env_to(attrs: &MessageAttrs, info: &HeaderInfo) -> Option<Vec<String>> {
    attrs
        .env_to
        .clone()
        .or_else(|| (!info.recipients.is_empty()).then(|| info.recipients.clone()))
}

/// The value `getfattr -n user.KEY` shows.
pub fn get(name: &str, attrs: &MessageAttrs, info: &HeaderInfo, key: &str) -> Result<Vec<u8>> {
    let missing = || Error::NoAttr(format!("user.{key}"));
    let date = |d: Option<i64>| d.map(|d| fmt_date(d).into_bytes()).ok_or_else(missing);
    Ok(match key {
        "name" => name.as_bytes().to_vec(),
        "message_id" => message_id(attrs, info).into_bytes(),
        "env_from" => env_from(attrs, info).ok_or_else(missing)?.into_bytes(),
        "env_to" => env_to(attrs, info).ok_or_else(missing)?.join(", ").into_bytes(),
        "status" => attrs.status.as_str().as_bytes().to_vec(),
        "is_ready" => {
            if attrs.is_ready {
                b"1".to_vec()
            } else {
                b"0".to_vec()
            }
        }
        "first_try_date" => date(attrs.first_try_date)?,
        "last_try_date" => date(attrs.last_try_date)?,
        "try_until_date" => date(attrs.try_until_date)?,
        "expire_date" => date(attrs.expire_date)?,
        "hold" => {
            if attrs.hold {
                b"1".to_vec()
            } else {
                b"0".to_vec()
            }
        }
        "try_count" => attrs.try_count.to_string().into_bytes(),
        "last_try_status" => attrs.last_try_status.as_str().as_bytes().to_vec(),
        "last_try_msg" => attrs.last_try_msg.clone().into_bytes(),
        "recipients" => {
            if attrs.recipients.is_empty() {
                return Err(missing());
            }
            attrs.recipients_text().into_bytes()
        }
        other => attrs.user.get(other).cloned().ok_or_else(missing)?,
    })
}

/// The names `getfattr -d` lists (without the `user.` prefix).
pub fn list(attrs: &MessageAttrs, info: &HeaderInfo) -> Vec<String> {
    let mut out: Vec<String> = ["name", "message_id"].iter().map(|s| s.to_string()).collect();
    if env_from(attrs, info).is_some() {
        out.push("env_from".into());
    }
    if env_to(attrs, info).is_some() {
        out.push("env_to".into());
    }
    out.extend(["status", "is_ready", "hold"].iter().map(|s| s.to_string()));
    for (k, v) in [
        ("first_try_date", attrs.first_try_date),
        ("last_try_date", attrs.last_try_date),
        ("try_until_date", attrs.try_until_date),
        ("expire_date", attrs.expire_date),
    ] {
        if v.is_some() {
            out.push(k.into());
        }
    }
    out.extend(
        ["try_count", "last_try_status", "last_try_msg"]
            .iter()
            .map(|s| s.to_string()),
    );
    if !attrs.recipients.is_empty() {
        out.push("recipients".into());
    }
    out.extend(attrs.user.keys().cloned());
    out
}

/// What a `setfattr` asks for, once checked against the attribute rules.
#[derive(Debug)]
pub enum Change {
    /// Store these attributes.
    Store(Box<MessageAttrs>),
    /// Make the message ready (the caller holds whatever lock it needs, then calls [`make_ready`]).
    MakeReady,
    /// Hold (`true`) or release the message: under its lock, see [`set_hold`].
    Hold(bool),
    /// Nothing to do.
    None,
}

/// Checks a `setfattr` on a message and computes the new attributes.
pub fn set(attrs: &MessageAttrs, key: &str, value: &[u8]) -> Result<Change> {
    if MAILFS_ATTRS.contains(&key) {
        return Err(Error::ReadOnlyAttr(format!("user.{key}")));
    }
    // The one attribute its owner may still change once the message is ready.
    if key == "hold" {
        let hold = match value {
            b"1" => true,
            b"0" => false,
            _ => return Err(Error::invalid(key, "must be 0 or 1")),
        };
        return match attrs.status {
            Status::Draft | Status::Pending => Ok(Change::Hold(hold)),
            s => Err(Error::Frozen(format!("user.hold of a {} message", s.as_str()))),
        };
    }
    if attrs.frozen() {
        return Err(Error::Frozen(format!("user.{key}")));
    }
    let mut next = attrs.clone();
    match key {
        "env_from" => next.env_from = Some(parse_single_address(key, value)?),
        "env_to" => next.env_to = Some(parse_address_list(key, value)?),
        "is_ready" => {
            return match value {
                b"1" => Ok(Change::MakeReady),
                b"0" => Ok(Change::None),
                _ => Err(Error::invalid(key, "must be 0 or 1")),
            };
        }
        other => {
            next.user.insert(other.to_string(), value.to_vec());
        }
    }
    Ok(Change::Store(Box::new(next)))
}

/// `MessageAttrs::internal` flag: a restore said this Draft went out from the node it came
/// from (the attribute that said so).
pub const WENT_OUT: &str = "went_out";
/// With [`WENT_OUT`]: the Message-ID the Draft had when it was first made ready after the
/// restore, the one that went out. Refused while it keeps it; a new one sends it on purpose.
pub const WENT_OUT_ID: &str = "went_out_id";

/// Whether a mailfs-only attribute set with this value (by `tar --xattrs`, `cp -a`, `rsync -X`
/// restoring a backup) says that the message went to the senders on the node it came from.
pub fn says_went_out(key: &str, value: &[u8]) -> bool {
    let v = String::from_utf8_lossy(value);
    let v = v.trim();
    match key {
        "status" => matches!(v, "Pending" | "Sent" | "Error"),
        "first_try_date" | "last_try_date" | "try_until_date" | "recipients" => !v.is_empty(),
        "try_count" => v != "0" && !v.is_empty(),
        "last_try_status" => matches!(v, "TempFail" | "Fail"),
        _ => false,
    }
}

/// Checks a `setfattr -x` on a message; env_from/env_to go back to their defaults.
pub fn remove(attrs: &MessageAttrs, key: &str) -> Result<MessageAttrs> {
    if MAILFS_ATTRS.contains(&key) {
        return Err(Error::ReadOnlyAttr(format!("user.{key}")));
    }
    if attrs.frozen() {
        return Err(Error::Frozen(format!("user.{key}")));
    }
    let mut next = attrs.clone();
    match key {
        "env_from" => next.env_from = None,
        "env_to" => next.env_to = None,
        "is_ready" => {}
        "hold" => next.hold = false,
        other => {
            if next.user.remove(other).is_none() {
                return Err(Error::NoAttr(format!("user.{key}")));
            }
        }
    }
    Ok(next)
}

/// The attributes after holding or releasing: only Drafts and Pending messages can be held;
/// releasing makes the message due at once (SPEC §6).
pub fn hold_change(name: &str, attrs: &MessageAttrs, hold: bool) -> Result<MessageAttrs> {
    if !matches!(attrs.status, Status::Draft | Status::Pending) {
        return Err(Error::invalid(
            "hold",
            format!(
                "{name} is {}: only Draft and Pending messages can be held",
                attrs.status.as_str()
            ),
        ));
    }
    let mut next = attrs.clone();
    next.hold = hold;
    if !hold {
        next.next_try_date = None;
    }
    next.note_hold(crate::model::attrs::now_secs());
    Ok(next)
}

/// How long holding waits for a sender to let go of the message before EBUSY.
const HOLD_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Holds or releases a message. Under the message's lock, because a sender recording an
/// outcome rewrites the attributes it read before the attempt and would undo the change
/// (EBUSY while a send is in flight). A released ready message goes to `notify` (the
/// senders). Returns the new attributes with the stamp of the file they were written to.
pub fn set_hold(
    spool: &Spool,
    name: &str,
    hold: bool,
    notify: &dyn Fn(&str),
) -> Result<(MessageAttrs, Stamp)> {
    // A sender finishing an attempt holds the lock for a moment after the outcome shows;
    // wait that out rather than answer EBUSY to a script that just saw the TempFail.
    let mut waited = std::time::Duration::ZERO;
    let _lock = loop {
        if let Some(l) = spool.try_lock(name)? {
            break l;
        }
        if waited >= HOLD_LOCK_WAIT {
            return Err(Error::Busy(name.to_string()));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        waited += std::time::Duration::from_millis(20);
    };
    let _attrs_lock = spool.attrs_lock()?;
    let attrs = match spool.read_attrs(name)? {
        Some((a, _)) => a,
        None => MessageAttrs::new_draft(),
    };
    let next = hold_change(name, &attrs, hold)?;
    let stamp = spool.write_attrs(name, &next)?;
    if attrs.hold && !hold && next.is_ready {
        notify(name);
    }
    Ok((next, stamp))
}

/// What `is_ready` found in a Draft it may hand over: its head and the resolved envelope.
struct Checked {
    head: Vec<u8>,
    info: HeaderInfo,
    from: String,
    to: Vec<String>,
    id: String,
}

/// Checks that the Draft `name` can be handed over: resolves and validates the envelope and
/// refuses a restored copy of a message that went out (see [`not_gone_out`]). A refusal is
/// logged and journaled (EINVAL, EALREADY for the caller).
fn check_ready(node: &Node, name: &str, attrs: &MessageAttrs) -> Result<Checked> {
    let spool = &node.spool;
    let eml = spool.eml_path(name);
    let head = content::read_head(&eml)?;
    let info = HeaderInfo::parse(&head);
    let refuse = |why: String| {
        let e = Error::invalid("is_ready", format!("{name}: {why}"));
        log::warn!("{e}");
        // A full disk is already in the process log; the refusal stands either way.
        let _ = journal::write(
            spool,
            &node.attrs(),
            &message_id(attrs, &info),
            &format!("{name} not made ready: {why}"),
        );
        e
    };
    // tar creates a file (mknod) and may set its attributes before writing its bytes.
    if std::fs::metadata(&eml).map(|m| m.len()).unwrap_or(0) == 0 {
        return Err(refuse("the message is empty".into()));
    }
    let from = match env_from(attrs, &info) {
        Some(f) => f,
        None if !info.invalid.is_empty() => {
            return Err(refuse(format!(
                "no valid envelope sender (invalid: {})",
                info.invalid.join(", ")
            )));
        }
        None => {
            return Err(refuse(
                "no envelope sender: set user.env_from or a From header".into(),
            ));
        }
    };
    // Never a default envelope from a header block read in part: it would lose recipients.
    if info.cut && (attrs.env_to.is_none() || attrs.env_from.is_none()) {
        return Err(refuse(format!(
            "the header block is longer than {} MiB, so its addresses cannot all be read: \
             set user.env_from and user.env_to",
            content::MAX_HEAD >> 20
        )));
    }
    let to = match env_to(attrs, &info) {
        Some(t) if !t.is_empty() => t,
        _ if !info.invalid.is_empty() => {
            return Err(refuse(format!(
                "no valid recipient (invalid: {})",
                info.invalid.join(", ")
            )));
        }
        _ => {
            return Err(refuse(
                "no recipient: set user.env_to or To/Cc/Bcc headers".into(),
            ));
        }
    };
    // The default list leaves out what cannot be an address: sending to the rest without a
    // word would lose the mail meant for it.
    if attrs.env_to.is_none() && !info.invalid_recipients.is_empty() {
        return Err(refuse(format!(
            "To/Cc/Bcc hold what is not a valid address: {} (correct the header, or set \
             user.env_to)",
            info.invalid_recipients.join(", ")
        )));
    }
    let id = message_id(attrs, &info);
    not_gone_out(node, name, attrs, &id)?;
    Ok(Checked {
        head,
        info,
        from,
        to,
        id,
    })
}

/// Refuses (EALREADY, logged and journaled) a Draft that a restore or a copy with attributes
/// (`cp -a sent.eml copy.eml`, `tar --xattrs`, `rsync -X`) says went out, for as long as it has
/// the Message-ID that went out: sending it again would be a duplicate (issue 12). Only that
/// evidence counts: two Drafts a user wrote with one Message-ID (a template copied twice) are
/// two messages, and each goes when made ready.
fn not_gone_out(node: &Node, name: &str, attrs: &MessageAttrs, id: &str) -> Result<()> {
    let Some(hint) = attrs.internal.get(WENT_OUT) else {
        return Ok(());
    };
    if attrs.internal.get(WENT_OUT_ID).is_some_and(|went| went != id) {
        return Ok(());
    }
    let spool = &node.spool;
    let e = Error::AlreadySent(format!(
        "{name}: {id} was already sent from this node (or restored as sent: {hint}); to send \
         it again on purpose give it a new Message-ID: setfattr -x user.header.message-id \
         {name}.parts"
    ));
    log::warn!("{e}");
    let _ = journal::write(spool, &node.attrs(), id, &format!("{name} not made ready: {e}"));
    Err(e)
}

/// The attributes of the message once handed over (before DKIM).
fn ready_attrs(attrs: &MessageAttrs, c: Checked) -> MessageAttrs {
    let mut next = attrs.clone();
    if let Some(id) = c.info.message_id {
        next.message_id = id;
    }
    next.env_from = Some(c.from);
    next.recipients = c.to.iter().cloned().map(Recipient::new).collect();
    next.env_to = Some(c.to);
    next.is_ready = true;
    next.status = Status::Pending;
    next.internal.remove(WENT_OUT);
    next.internal.remove(WENT_OUT_ID);
    next.next_try_date = None;
    next.note_hold(crate::model::attrs::now_secs());
    next
}

/// Freezes a Draft and hands it to the senders: resolves and validates the envelope, gives
/// the content a Date and Message-ID if it lacks them, stores status Pending. On an invalid
/// envelope nothing changes and the reason is logged (EINVAL for the caller).
/// Returns the new attributes with the stamp of the file they were written to.
pub fn make_ready(node: &Node, name: &str, attrs: &MessageAttrs) -> Result<(MessageAttrs, Stamp)> {
    let spool = &node.spool;
    let eml = spool.eml_path(name);
    let c = check_ready(node, name, attrs)?;
    content::ensure_date_and_id(
        &eml,
        &spool.tmp_path(),
        &c.head,
        &c.info,
        &attrs.message_id,
        |a, b| spool.rename_noted(a, b),
    )?;
    let id = c.id.clone();
    let mut next = ready_attrs(attrs, c);
    if let Err(e) = crate::store::signing::sign_in_place(spool, &node.attrs(), name, &next.message_id) {
        crate::mail::dkim::mark_unsigned(&mut next, &e);
    }
    // Recorded as sent only now, when what could fail on the way (a full disk) has not.
    crate::store::sent_ids::remember(spool, &id)?;
    let stamp = spool.write_attrs(name, &next)?;
    crate::store::queue::hand_over(spool, Some(node), name)?;
    Ok((next, stamp))
}

/// A hand-over prepared by [`stage_ready`]: the new content and attributes written to temp
/// files (not yet synced), the Message-ID recorded as sent (not yet synced). The caller makes
/// them durable with the spool's shared sync, then [`Staged::put`]s them in place, so
/// concurrent `is_ready` callers share their syncs. Dropped unput, the temp files go.
/// The versions of a message a hand-over is prepared from (see [`stage_ready`]).
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    attrs: Option<Stamp>,
    eml: Stamp,
}

impl Seen {
    /// The versions in the spool now: take it before reading the attributes.
    pub fn now(spool: &Spool, name: &str) -> Result<Seen> {
        Ok(Seen {
            attrs: spool.attrs_stamp(name),
            eml: Stamp::of(&std::fs::metadata(spool.eml_path(name))?),
        })
    }
}

pub struct Staged {
    pub next: MessageAttrs,
    pub id: String,
    /// The content with Date/Message-ID added and signed; `None`: the content stays as it is.
    content: Option<std::path::PathBuf>,
    attrs_tmp: Option<std::path::PathBuf>,
    attrs_stamp: Stamp,
    /// The versions it was prepared from: put in place only over these.
    eml: Stamp,
    prev_attrs: Option<Stamp>,
}

/// Prepares the hand-over of the Draft `name` (see [`Staged`]); the same checks and result
/// as [`make_ready`], which does it all at once.
///
/// Needs no lock of the caller's: `seen` are the versions of the message's attributes and
/// content that `attrs` was read from (taken before reading them), and [`Staged::put`] puts
/// the result in place only over those.
pub fn stage_ready(node: &Node, name: &str, attrs: &MessageAttrs, seen: Seen) -> Result<Staged> {
    let spool = &node.spool;
    let eml = spool.eml_path(name);
    let Seen {
        attrs: prev_attrs,
        eml: eml_stamp,
    } = seen;
    let c = check_ready(node, name, attrs)?;
    let id = c.id.clone();
    let mut staged = Staged {
        next: MessageAttrs::new_draft(),
        id,
        content: None,
        attrs_tmp: None,
        attrs_stamp: Stamp::default(),
        eml: eml_stamp,
        prev_attrs,
    };
    let extra = content::missing_headers(&c.info, &attrs.message_id, content::line_end(&c.head));
    if !extra.is_empty() {
        let (tmp, mut out) = spool.fresh_file()?;
        // Owned by `staged` from here: removed if anything below fails.
        staged.content = Some(tmp);
        content::write_with_prefix(&eml, &mut out, &extra, false)?;
        let written = std::io::Seek::stream_position(&mut out)?;
        out.set_len(written)?;
    }
    let mut next = ready_attrs(attrs, c);
    let src = staged.content.clone().unwrap_or_else(|| eml.clone());
    let signed = spool.tmp_path();
    match crate::mail::dkim::sign_file(&node.attrs(), &src, &signed, &next.message_id, false) {
        Ok(true) => {
            if let Some(old) = staged.content.replace(signed) {
                let _ = std::fs::remove_file(old);
            }
        }
        Ok(false) => {}
        Err(e) => {
            let _ = std::fs::remove_file(&signed);
            crate::mail::dkim::mark_unsigned(&mut next, &e);
        }
    }
    let (tmp, stamp) = spool.stage_attrs(&next)?;
    staged.attrs_tmp = Some(tmp);
    staged.attrs_stamp = stamp;
    staged.next = next;
    // Recorded as sent last, once nothing on the way failed.
    crate::store::sent_ids::remember_unsynced(spool, &staged.id)?;
    Ok(staged)
}

impl Staged {
    /// Renames the staged content and attributes into place, if the message's content and
    /// attributes are still the versions they were prepared from; returns the new attributes'
    /// stamp, or `None` (nothing changed) when either moved meanwhile. The renames are not
    /// synced: the caller syncs before answering.
    pub fn put(&mut self, spool: &Spool, name: &str) -> Result<Option<Stamp>> {
        let eml = spool.eml_path(name);
        let current = std::fs::metadata(&eml).ok().map(|m| Stamp::of(&m));
        if current != Some(self.eml) || spool.attrs_stamp(name) != self.prev_attrs {
            return Ok(None);
        }
        if let Some(tmp) = &self.content {
            spool.replace(tmp, &eml)?;
            self.content = None;
        }
        if let Some(tmp) = &self.attrs_tmp {
            spool.replace(tmp, &spool.struct_path(name))?;
            self.attrs_tmp = None;
        }
        Ok(Some(self.attrs_stamp))
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        for p in [self.content.take(), self.attrs_tmp.take()].into_iter().flatten() {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_is_settable_once_ready_and_reads_0_or_1() {
        let mut a = MessageAttrs::new_draft();
        let info = HeaderInfo::default();
        assert_eq!(get("x.eml", &a, &info, "hold").unwrap(), b"0");
        assert!(list(&a, &info).contains(&"hold".to_string()));
        a.is_ready = true;
        a.status = Status::Pending;
        assert!(matches!(set(&a, "hold", b"1").unwrap(), Change::Hold(true)));
        assert!(matches!(set(&a, "hold", b"0").unwrap(), Change::Hold(false)));
        for bad in [&b"2"[..], b"", b"yes", b"1\n"] {
            assert_eq!(set(&a, "hold", bad).unwrap_err().errno(), libc::EINVAL, "{bad:?}");
        }
        // Every other attribute stays frozen.
        assert_eq!(
            set(&a, "env_to", b"x@example.org").unwrap_err().errno(),
            libc::EACCES
        );
        a.status = Status::Sent;
        assert_eq!(set(&a, "hold", b"1").unwrap_err().errno(), libc::EACCES);
    }

    #[test]
    fn release_makes_the_message_due_now() {
        let mut a = MessageAttrs::new_draft();
        a.status = Status::Pending;
        a.hold = true;
        a.next_try_date = Some(now_for_test());
        let r = hold_change("x.eml", &a, false).unwrap();
        assert!(!r.hold && r.next_try_date.is_none());
        let h = hold_change("x.eml", &r, true).unwrap();
        assert!(h.hold);
        a.status = Status::Received;
        assert_eq!(hold_change("x.eml", &a, true).unwrap_err().exit_code(), 65);
    }

    fn now_for_test() -> i64 {
        crate::model::attrs::now_secs() + 3600
    }
}
