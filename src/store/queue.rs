//! The one way a submitted message enters the queue: `sendmail` and `deliver` run directly,
//! the control socket, the SMTP listener and the mount's template all end in [`queue_file`]
//! (ready to send) or [`deliver_tmp`] (Received, never sent). Addresses are validated, From,
//! Date and Message-ID added when missing, the message DKIM-signed, stored atomically and
//! handed to whichever senders serve the spool.

use std::io::{self, BufRead, Read, Write};
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::mail::content::{self, HeaderInfo};
use crate::model::attrs::{
    MessageAttrs, Owner, Recipient, Status, hostname, parse_address_list, validate_address,
};
use crate::store::spool::Spool;

/// Reads a message into a temp file in the spool; when `stop_at_dot`, a line with a single
/// dot ends it (sendmail without `-i`). Returns the temp path.
pub fn read_to_tmp(spool: &Spool, input: &mut dyn Read, stop_at_dot: bool) -> Result<PathBuf> {
    let tmp = spool.tmp_path();
    let res = (|| -> io::Result<()> {
        let mut f = crate::store::spool::create_private(&tmp)?;
        let mut r = io::BufReader::with_capacity(256 * 1024, input);
        if stop_at_dot {
            let mut line = Vec::new();
            loop {
                line.clear();
                if r.read_until(b'\n', &mut line)? == 0 {
                    break;
                }
                if line == b".\n" || line == b".\r\n" {
                    break;
                }
                f.write_all(&line)?;
            }
        } else {
            io::copy(&mut r, &mut f)?;
        }
        f.sync_all()
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

/// Checks recipients given as arguments before any message byte is read.
pub fn check_recipients(args: &[String]) -> Result<()> {
    recipients(args).map(|_| ())
}

/// Recipients as given on a command line (each argument may hold several, comma-separated),
/// validated.
pub fn recipients(args: &[String]) -> Result<Vec<String>> {
    args.iter()
        .flat_map(|r| r.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| validate_address("recipient", p))
        .collect()
}

/// The one way a submitted message enters the queue (sendmail run directly or over the
/// control socket, [`queue_message`]): envelope validated, missing headers added, stored
/// atomically, Pending and ready, owned by `origin`, the senders told.
pub fn queue_tmp(spool: &Spool, tmp: PathBuf, sub: &Submission, origin: &Origin) -> Result<String> {
    queue_file(spool, tmp, sub, origin, "sendmail", false)
}

/// [`queue_tmp`] for a message already in a spool temp file (`Spool::tmp_path`), which it
/// takes over, stored as `PREFIX-....eml`. `grouped` shares the syncs with concurrent callers
/// (the SMTP listener) and then `tmp` need not be synced; otherwise it must be. Either way
/// the message is durable when this returns.
pub fn queue_file(
    spool: &Spool,
    tmp: PathBuf,
    sub: &Submission,
    origin: &Origin,
    prefix: &str,
    grouped: bool,
) -> Result<String> {
    let result = (|| -> Result<String> {
        let mut rcpts = recipients(&sub.recipients)?;
        let from_arg = match &sub.env_from {
            Some(f) if f.is_empty() || f == "<>" => Some(String::new()),
            Some(f) => Some(validate_address("-f", f)?),
            None => None,
        };
        let head = content::read_head(&tmp)?;
        let info = HeaderInfo::parse(&head);
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
            let mut seen: std::collections::HashSet<String> = rcpts.iter().cloned().collect();
            for r in &info.recipients {
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
        // A missing From header is made from the envelope sender and -F.
        let mut attrs = MessageAttrs::new_draft();
        let eol = content::line_end(&head);
        let mut extra = Vec::new();
        if info.from.is_none() && !env_from.is_empty() {
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
        let final_tmp = if extra.is_empty() {
            tmp.clone()
        } else {
            let t2 = spool.tmp_path();
            let at = content::trace_len(&head) as u64;
            content::copy_inserting(&tmp, &t2, at, &extra, !grouped)?;
            let _ = std::fs::remove_file(&tmp);
            t2
        };
        if let Some(id) = &info.message_id {
            attrs.message_id = id.clone();
        }
        let final_tmp = sign_tmp(spool, final_tmp, &mut attrs, grouped);
        attrs.env_from = Some(env_from);
        attrs.env_to = Some(rcpts.clone());
        attrs.recipients = rcpts.iter().cloned().map(Recipient::new).collect();
        attrs.status = Status::Pending;
        attrs.is_ready = true;
        attrs.owner = origin.owner;
        let name = spool.unique_name(prefix);
        // Recorded so that a copy of this message made through the mount is not sent again.
        if let Err(e) = crate::store::sent_ids::remember(spool, &attrs.message_id) {
            log::warn!("{name}: cannot record its Message-ID as sent: {e}");
        }
        if grouped {
            spool.commit_tmp_grouped(&final_tmp, &name, &attrs)?;
        } else {
            spool.commit_tmp(&final_tmp, &name, &attrs)?;
        }
        spool.mark_ready(&name)?;
        Ok(name)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Signs a message about to be queued (SPEC §12); a key that cannot be used leaves it to
/// wait, flagged, rather than go out unsigned.
fn sign_tmp(spool: &Spool, tmp: PathBuf, attrs: &mut MessageAttrs, grouped: bool) -> PathBuf {
    let signed = spool.tmp_path();
    let res = spool
        .load_node()
        .and_then(|cfg| crate::mail::dkim::sign_file(&cfg, &tmp, &signed, &attrs.message_id, !grouped));
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
