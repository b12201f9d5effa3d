//! The one way a submitted message enters the queue: `sendmail` and `deliver` run directly,
//! the control socket, the SMTP listener and the mount's template all end in [`queue_file`]
//! (ready to send) or [`deliver_tmp`] (Received, never sent). Addresses are validated, From,
//! Date and Message-ID added when missing, the message DKIM-signed, stored atomically and
//! handed to whichever senders serve the spool.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::mail::content::{self, HeaderInfo};
use crate::model::attrs::{
    MessageAttrs, Owner, Recipient, Status, hostname, parse_address_list, validate_address,
};
use crate::store::node::Node;
use crate::store::spool::Spool;

mod incoming;
pub use incoming::{Incoming, queue_incoming, read_message};

/// Reads a message into a temp file in the spool; when `stop_at_dot`, a line with a single
/// dot ends it (sendmail without `-i`). Returns the temp path. Not synced: committing it
/// (`Spool::commit_tmp`) makes it durable, and when headers must be added it is copied
/// first, so a sync here would be wasted.
pub fn read_to_tmp(spool: &Spool, input: &mut dyn Read, stop_at_dot: bool) -> Result<PathBuf> {
    let tmp = spool.tmp_path();
    let res = (|| -> io::Result<()> {
        let mut f = crate::store::spool::create_private(&tmp)?;
        let mut r = io::BufReader::with_capacity(256 * 1024, input);
        incoming::copy_message(&mut r, &mut f, stop_at_dot, None).map(drop)
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::Io(e));
    }
    Ok(tmp)
}

/// Who a submitted message goes to and comes from, as sendmail's options say it.
#[derive(Debug, Clone, Default)]
pub struct Submission {
    /// The envelope sender; `Some("")` is the null sender. Default: the From header's
    /// address, else `$USER@hostname`.
    pub env_from: Option<String>,
    /// Envelope recipients (each may hold several, separated by commas).
    pub recipients: Vec<String>,
    /// Also take recipients from the To, Cc and Bcc headers (`-t`).
    pub recipients_from_headers: bool,
    /// The sender's full name for a From header made from the envelope sender (`-F`).
    pub full_name: Option<String>,
}

/// Queues a message ready to send, exactly as `mailfs sendmail` does: addresses validated,
/// From, Date and Message-ID added when missing, stored atomically in the spool with status
/// Pending, and handed to whichever senders serve the spool (a mount or `mailfs serve`).
/// Returns the message's name in the spool.
pub fn queue_message(spool: &Spool, content: &mut dyn Read, sub: &Submission) -> Result<String> {
    queue_message_as(spool, content, sub, &Origin::node())
}

/// [`queue_message`] for a given submitter, who becomes the message's owner.
pub fn queue_message_as(
    spool: &Spool,
    content: &mut dyn Read,
    sub: &Submission,
    origin: &Origin,
) -> Result<String> {
    let tmp = read_to_tmp(spool, content, false)?;
    queue_tmp(spool, tmp, sub, origin)
}

/// Who submits a message.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The message's owner; `None`: the node's owner (the SMTP listener, notices).
    pub owner: Option<Owner>,
    /// The login name for a default envelope sender `LOGIN@hostname`.
    pub login: String,
}

impl Origin {
    /// The node itself (its owner), named by `$USER`.
    pub fn node() -> Origin {
        Origin {
            owner: None,
            login: std::env::var("USER").unwrap_or_else(|_| "root".into()),
        }
    }

    /// The user running this command.
    pub fn this_user() -> Origin {
        Origin {
            owner: Some(this_user()),
            ..Origin::node()
        }
    }
}

/// The content of a message being queued.
pub enum Body<'a> {
    /// A spool temp file (`Spool::tmp_path`), synced or not, taken over.
    Tmp(&'a Path),
    /// A spool temp file whose sync is shared with concurrent callers (one group commit).
    TmpGrouped(&'a Path),
    /// Bytes in memory (notices).
    Bytes(&'a [u8]),
}

/// Where every new message enters the queue, whichever way it came (sendmail direct or over
/// the socket, the listener, notices): `attrs` must say Pending and ready. The message and its
/// attributes are stored durably under `name`, its Message-ID is recorded as sent (an
/// `rsync -X` restore of it is then refused, sent_ids.rs), then the senders are told
/// ([`hand_over`]). The record
/// follows the storing: a message that could not be stored (a full disk) is not recorded, so
/// it can be submitted again once there is room.
pub fn enqueue(
    spool: &Spool,
    node: Option<&Node>,
    name: &str,
    body: Body,
    attrs: &MessageAttrs,
) -> Result<()> {
    debug_assert!(
        attrs.is_queued(),
        "enqueue of a message that is not Pending and ready"
    );
    let remember = || {
        if let Err(e) = crate::store::sent_ids::remember(spool, &attrs.message_id) {
            log::warn!("{name}: cannot record its Message-ID as sent: {e}");
        }
    };
    match body {
        // On the thread that synced the content, while the directory sync runs: a submitting
        // process waits for one round of syncs, not two.
        Body::Tmp(tmp) => spool.commit_tmp_with(tmp, name, attrs, remember)?,
        Body::TmpGrouped(tmp) => {
            spool.commit_tmp_grouped(tmp, name, attrs)?;
            remember();
        }
        Body::Bytes(mut b) => {
            spool.add_message(name, &mut b, attrs)?;
            remember();
        }
    }
    hand_over(spool, node, name)
}

/// Tells the senders a message is ready, durably stored: the senders of this process by an
/// event when `node` is given, any other process's by the `.ready` marker it watches. Used by
/// [`enqueue`] and by the mount when a Draft is made ready in place.
pub fn hand_over(spool: &Spool, node: Option<&Node>, name: &str) -> Result<()> {
    match node {
        Some(n) => {
            n.notify_ready(name);
            Ok(())
        }
        None => spool.mark_ready(name),
    }
}

/// Checks recipients given as arguments before any message byte is read.
pub fn check_recipients(args: &[String]) -> Result<()> {
    recipients(args).map(|_| ())
}

/// Recipients as given on a command line (each argument may hold several, comma-separated),
/// validated. A bare local name (`root`, as cron and mail(1) give it) is qualified with this host's name,
/// as Postfix's sendmail qualifies it with `$myorigin`; the sender's default is made the same
/// way.
pub fn recipients(args: &[String]) -> Result<Vec<String>> {
    args.iter()
        .flat_map(|r| r.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let local = !p.contains('@') && !p.starts_with('-') && !p.contains(['<', '>', ' ']);
            if local {
                validate_address("recipient", &format!("{p}@{}", hostname()))
            } else {
                validate_address("recipient", p)
            }
        })
        .collect()
}

/// The one way a submitted message enters the queue (sendmail run directly or over the
/// control socket, [`queue_message`]): envelope validated, missing headers added, stored
/// atomically, Pending and ready, owned by `origin`, the senders told.
pub fn queue_tmp(spool: &Spool, tmp: PathBuf, sub: &Submission, origin: &Origin) -> Result<String> {
    queue_file(spool, tmp, sub, origin, "sendmail", false)
}

/// Up to this many bytes after the trace fields, missing header fields are inserted by
/// rewriting the temp file in memory rather than copying it to a second file.
const INSERT_IN_PLACE_MAX: u64 = 1 << 20;

/// [`queue_tmp`] for a message already in a spool temp file (`Spool::tmp_path`), which it
/// takes over, stored as `PREFIX-....eml`. `tmp` need not be synced. `grouped` shares the
/// syncs with concurrent callers (the SMTP listener). Either way the message is durable when
/// this returns.
pub fn queue_file(
    spool: &Spool,
    tmp: PathBuf,
    sub: &Submission,
    origin: &Origin,
    prefix: &str,
    grouped: bool,
) -> Result<String> {
    let result = (|| -> Result<String> {
        let head = content::read_head(&tmp)?;
        let p = prepare(&head, sub, origin)?;
        let in_place =
            p.extra.is_empty() || content::insert_in_place(&tmp, p.at, &p.extra, INSERT_IN_PLACE_MAX)?;
        let final_tmp = if in_place {
            tmp.clone()
        } else {
            let t2 = spool.tmp_path();
            content::copy_inserting(&tmp, &t2, p.at, &p.extra, false)?;
            let _ = std::fs::remove_file(&tmp);
            t2
        };
        store_prepared(spool, final_tmp, p.attrs, prefix, grouped)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// What queueing a message adds to it: its attributes (Pending, ready, the envelope
/// resolved) and the header fields it lacks, inserted at byte `at` (after the trace fields).
struct Prepared {
    attrs: MessageAttrs,
    extra: Vec<u8>,
    at: u64,
}

/// Resolves and checks the envelope of a message whose header block is `head`, and says
/// which fields (From, Date, Message-ID) it lacks.
fn prepare(head: &[u8], sub: &Submission, origin: &Origin) -> Result<Prepared> {
    let mut rcpts = recipients(&sub.recipients)?;
    let from_arg = match &sub.env_from {
        Some(f) if f.is_empty() || f == "<>" => Some(String::new()),
        Some(f) => Some(validate_address("-f", f)?),
        None => None,
    };
    let info = HeaderInfo::parse(head);
    if info.cut && (sub.recipients_from_headers || from_arg.is_none()) {
        return Err(Error::invalid(
            "message",
            format!(
                "the header block is longer than {} MiB, so its addresses cannot all be \
                 read: give the recipients as arguments and -f",
                content::MAX_HEAD >> 20
            ),
        ));
    }
    if sub.recipients_from_headers {
        // A bare local name (`To: root`, as cron and scripts write it) is qualified as on the
        // command line; anything else that is no address is refused rather than left out.
        let bare = info
            .invalid_recipients
            .iter()
            .map(|r| match r.contains(',') {
                false => recipients(std::slice::from_ref(r)),
                true => Err(Error::invalid("To", "")),
            })
            .collect::<Result<Vec<_>>>()
            .map_err(|_| {
                Error::invalid(
                    "To",
                    format!(
                        "the message's To/Cc/Bcc hold what is not a valid address: {}",
                        info.invalid_recipients.join(", ")
                    ),
                )
            })?
            .concat();
        let mut seen: std::collections::HashSet<String> = rcpts.iter().cloned().collect();
        for r in info.recipients.iter().chain(&bare) {
            if seen.insert(r.clone()) {
                rcpts.push(r.clone());
            }
        }
    }
    if rcpts.is_empty() {
        return Err(Error::Usage(
            "no recipients (give them as arguments or use -t)".into(),
        ));
    }
    let user = &origin.login;
    let env_from = match from_arg {
        Some(f) => f,
        None => info
            .from
            .clone()
            .unwrap_or_else(|| format!("{user}@{}", hostname())),
    };
    // A missing From header is made from the envelope sender and -F; a From that is there
    // (even a group such as `undisclosed:;`, or one with no address) is kept and none added:
    // two From fields would make the message invalid (RFC 5322 §3.6).
    let mut attrs = MessageAttrs::new_draft();
    let eol = content::line_end(head);
    let mut extra = Vec::new();
    if !info.has_from && !env_from.is_empty() {
        let from_line = match &sub.full_name {
            Some(n) => format!(
                "From: \"{}\" <{env_from}>{eol}",
                n.replace(['"', '\\', '\r', '\n'], "")
            ),
            None => format!("From: {env_from}{eol}"),
        };
        extra.extend_from_slice(from_line.as_bytes());
    }
    extra.extend_from_slice(&content::missing_headers(&info, &attrs.message_id, eol));
    if let Some(id) = &info.message_id {
        attrs.message_id = id.clone();
    }
    attrs.env_from = Some(env_from);
    attrs.env_to = Some(rcpts.clone());
    attrs.recipients = rcpts.into_iter().map(Recipient::new).collect();
    attrs.status = Status::Pending;
    attrs.is_ready = true;
    attrs.owner = origin.owner;
    attrs.note_hold(crate::model::attrs::now_secs());
    Ok(Prepared {
        attrs,
        extra,
        at: content::trace_len(head) as u64,
    })
}

/// The end of [`queue_file`] and [`queue_incoming`]: the complete content in `tmp` is signed,
/// named and stored with `attrs` through [`enqueue`].
fn store_prepared(
    spool: &Spool,
    tmp: PathBuf,
    mut attrs: MessageAttrs,
    prefix: &str,
    grouped: bool,
) -> Result<String> {
    let final_tmp = sign_tmp(spool, tmp, &mut attrs);
    let name = spool.unique_name(prefix);
    let body = if grouped {
        Body::TmpGrouped(&final_tmp)
    } else {
        Body::Tmp(&final_tmp)
    };
    let res = enqueue(spool, None, &name, body, &attrs);
    if res.is_err() {
        let _ = std::fs::remove_file(&final_tmp);
    }
    res.map(|()| name)
}

/// Signs a message about to be queued (SPEC §12); a key that cannot be used leaves it to
/// wait, flagged, rather than go out unsigned.
fn sign_tmp(spool: &Spool, tmp: PathBuf, attrs: &mut MessageAttrs) -> PathBuf {
    let signed = spool.tmp_path();
    let res = spool
        .load_node()
        .and_then(|cfg| crate::mail::dkim::sign_file(&cfg, &tmp, &signed, &attrs.message_id, false));
    match res {
        Ok(true) => {
            let _ = std::fs::remove_file(&tmp);
            signed
        }
        Ok(false) => tmp,
        Err(e) => {
            crate::mail::dkim::mark_unsigned(attrs, &e);
            tmp
        }
    }
}

/// Stores a delivered message (status Received, never sent), owned by `origin`. `recipient`
/// and `sender` are what the MTA said ($RECIPIENT, $SENDER); kept when valid.
pub fn deliver_tmp(
    spool: &Spool,
    tmp: PathBuf,
    recipient: Option<&str>,
    sender: Option<&str>,
    origin: &Origin,
) -> Result<String> {
    let info = content::read_head(&tmp)
        .map(|h| HeaderInfo::parse(&h))
        .unwrap_or_default();
    let mut attrs = MessageAttrs::new_draft();
    if let Some(id) = info.message_id {
        attrs.message_id = id;
    }
    attrs.status = Status::Received;
    attrs.owner = origin.owner;
    if let Some(r) = recipient
        && let Ok(list) = parse_address_list("env_to", r.as_bytes())
    {
        attrs.env_to = Some(list);
    }
    if let Some(s) = sender
        && let Ok(f) = validate_address("env_from", s)
    {
        attrs.env_from = Some(f);
    }
    let name = spool.unique_name("received");
    spool.commit_tmp(&tmp, &name, &attrs)?;
    Ok(name)
}

/// The user running this process.
pub fn this_user() -> Owner {
    // SAFETY: geteuid/getegid cannot fail.
    unsafe {
        Owner {
            uid: libc::geteuid(),
            gid: libc::getegid(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
