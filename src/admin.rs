//! The operator's commands on a spool, mounted or not: `queue`, `flush`, `cancel`, `hold`,
//! `release`, and the submission programs `sendmail` and `deliver`. Run by root or the spool's
//! owner they work through the spool files and the per-message locks only, so they are safe
//! beside a running mount or `serve`; run by anyone else they go through the control socket
//! of the process serving the node ([`route`], [`crate::control`]). The queue work itself is
//! in [`crate::manage`]; [`queue_tmp`] is the one way a submitted message enters the queue.

use std::io::{self, BufRead, Read, Write};
use std::path::{Path, PathBuf};

use crate::attrs::{MessageAttrs, Owner, Recipient, Status, hostname, parse_address_list, validate_address};
use crate::cli::SendmailArgs;
use crate::content::{self, HeaderInfo};
use crate::control::{Reply, Request, client};
use crate::error::{Error, Result};
use crate::manage::{self, Scope};
use crate::spool::Spool;

fn open_existing(spool_dir: &Path) -> Result<Spool> {
    if !spool_dir.is_dir() {
        return Err(Error::NotFound(format!(
            "spool {} does not exist",
            spool_dir.display()
        )));
    }
    Spool::open(spool_dir)
}

/// How a command reaches the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Open the spool's files: the caller may (root, the spool's owner), or the spool does not
    /// exist yet and the caller makes it.
    Direct,
    /// Ask the process serving the node over its control socket (any other user).
    Socket(PathBuf),
}

/// Direct when the caller can read, write and search the spool directory itself; otherwise
/// through the socket beside it (SPEC §10). The check uses the effective ids, as opening would.
pub fn route(spool_dir: &Path) -> Route {
    let Ok(c) = std::ffi::CString::new(spool_dir.as_os_str().as_encoded_bytes()) else {
        return Route::Direct;
    };
    if !spool_dir.exists() && std::fs::symlink_metadata(spool_dir).is_err() {
        // Missing (or unreachable): a served node would have a socket beside it.
        let sock = crate::control::socket_path(spool_dir);
        return if sock.exists() {
            Route::Socket(sock)
        } else {
            Route::Direct
        };
    }
    // SAFETY: faccessat reads the NUL-terminated path; no memory is written.
    let ok = unsafe {
        libc::faccessat(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::R_OK | libc::W_OK | libc::X_OK,
            libc::AT_EACCESS,
        )
    } == 0;
    if ok {
        Route::Direct
    } else {
        Route::Socket(crate::control::socket_path(spool_dir))
    }
}

/// This process's scope on a spool it opens directly: root and the spool's owner see all.
fn direct_scope(spool: &Spool) -> Result<Scope> {
    let me = this_user();
    Ok(Scope::of(me.uid, manage::node_owner(spool)?))
}

fn this_user() -> Owner {
    // SAFETY: geteuid/getegid cannot fail.
    unsafe {
        Owner {
            uid: libc::geteuid(),
            gid: libc::getegid(),
        }
    }
}

pub fn queue(spool_dir: &Path, json: bool, by_domain: bool) -> Result<()> {
    let rows = match route(spool_dir) {
        Route::Direct => {
            let spool = open_existing(spool_dir)?;
            manage::rows(&spool, direct_scope(&spool)?)?
        }
        Route::Socket(sock) => match client::call(&sock, spool_dir, &Request::Queue, None)? {
            Reply::Rows { rows } => rows,
            other => return Err(unexpected(&other)),
        },
    };
    if by_domain {
        manage::print_shape(&rows, json)
    } else {
        manage::print_rows(&rows, json)
    }
}

fn unexpected(r: &Reply) -> Error {
    Error::Io(io::Error::other(format!(
        "unexpected answer from the serving process: {r:?}"
    )))
}

pub fn flush(spool_dir: &Path) -> Result<()> {
    let n = match route(spool_dir) {
        Route::Direct => {
            let spool = open_existing(spool_dir)?;
            let notify = |n: &str| {
                if let Err(e) = spool.mark_ready(n) {
                    log::warn!("{n}: {e}");
                }
            };
            manage::flush(&spool, direct_scope(&spool)?, &notify)?
        }
        Route::Socket(sock) => match client::call(&sock, spool_dir, &Request::Flush, None)? {
            Reply::Flushed { count } => count,
            other => return Err(unexpected(&other)),
        },
    };
    println!("{n} messages due now");
    Ok(())
}

/// Runs a request that answers per name, directly or through the socket.
fn per_name(
    spool_dir: &Path,
    req: Request,
    direct: impl FnOnce(&Spool, Scope) -> Result<manage::Outcomes>,
) -> Result<manage::Outcomes> {
    match route(spool_dir) {
        Route::Direct => {
            let spool = open_existing(spool_dir)?;
            let scope = direct_scope(&spool)?;
            direct(&spool, scope)
        }
        Route::Socket(sock) => match client::call(&sock, spool_dir, &req, None)? {
            Reply::Outcomes { outcomes } => Ok(outcomes
                .into_iter()
                .map(|(n, e)| (n, e.map_or(Ok(()), |e| Err(e.into_error()))))
                .collect()),
            other => Err(unexpected(&other)),
        },
    }
}

pub fn cancel(spool_dir: &Path, names: &[String]) -> Result<()> {
    let req = Request::Cancel {
        names: names.to_vec(),
    };
    let out = per_name(spool_dir, req, |spool, scope| manage::cancel(spool, scope, names))?;
    manage::report("cancelled", out)
}

/// `mailfs hold` (`hold`) and `mailfs release`.
pub fn hold(spool_dir: &Path, names: &[String], domain: Option<&str>, hold: bool) -> Result<()> {
    if names.is_empty() && domain.is_none() {
        return Err(Error::Usage("give message names or --domain DOMAIN".into()));
    }
    let req = Request::Hold {
        names: names.to_vec(),
        domain: domain.map(str::to_string),
        hold,
    };
    let out = per_name(spool_dir, req, |spool, scope| {
        let notify = |n: &str| {
            if let Err(e) = spool.mark_ready(n) {
                log::warn!("{n}: {e}");
            }
        };
        manage::hold(spool, scope, names, domain, hold, &notify)
    })?;
    manage::report(if hold { "held" } else { "released" }, out)
}

/// Reads a message into a temp file in the spool; when `stop_at_dot`, a line with a single
/// dot ends it (sendmail without `-i`). Returns the temp path.
pub fn read_to_tmp(spool: &Spool, input: &mut dyn Read, stop_at_dot: bool) -> Result<PathBuf> {
    let tmp = spool.tmp_path();
    let res = (|| -> io::Result<()> {
        let mut f = crate::spool::create_private(&tmp)?;
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

/// sendmail failures are temporary unless the input itself is wrong.
fn tempfail(e: Error) -> Error {
    match e {
        Error::Io(io) => Error::Unavailable(format!("spool unavailable: {io}")),
        other => other,
    }
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
fn recipients(args: &[String]) -> Result<Vec<String>> {
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
        if let Err(e) = crate::sent_ids::remember(spool, &attrs.message_id) {
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
        .and_then(|cfg| crate::dkim::sign_file(&cfg, &tmp, &signed, &attrs.message_id, !grouped));
    match res {
        Ok(true) => {
            let _ = std::fs::remove_file(&tmp);
            signed
        }
        Ok(false) => tmp,
        Err(e) => {
            crate::dkim::mark_unsigned(attrs, &e);
            tmp
        }
    }
}

pub fn sendmail(a: &SendmailArgs) -> Result<()> {
    let sub = Submission {
        env_from: a.from.clone(),
        recipients: a.recipients.clone(),
        recipients_from_headers: a.read_headers,
        full_name: a.full_name.clone(),
    };
    // Refuse bad addresses before reading the message.
    recipients(&sub.recipients)?;
    // `-oi` is the old spelling of `-i`.
    let ignore_dots = a.ignore_dots || a.o.iter().any(|o| o == "i");
    if let Route::Socket(sock) = route(&a.spool) {
        let req = Request::Sendmail {
            env_from: sub.env_from,
            recipients: sub.recipients,
            read_headers: sub.recipients_from_headers,
            full_name: sub.full_name,
            stop_at_dot: !ignore_dots,
        };
        return client::call(&sock, &a.spool, &req, Some(&mut io::stdin().lock())).map(|_| ());
    }
    let spool = Spool::open(&a.spool).map_err(tempfail)?;
    let tmp = read_to_tmp(&spool, &mut io::stdin().lock(), !ignore_dots).map_err(tempfail)?;
    queue_tmp(&spool, tmp, &sub, &Origin::this_user())
        .map(|_| ())
        .map_err(tempfail)
}

pub fn deliver(spool_dir: &Path) -> Result<()> {
    let recipient = std::env::var("RECIPIENT").ok();
    let sender = std::env::var("SENDER").ok();
    if let Route::Socket(sock) = route(spool_dir) {
        let req = Request::Deliver { recipient, sender };
        return client::call(&sock, spool_dir, &req, Some(&mut io::stdin().lock())).map(|_| ());
    }
    let spool = Spool::open(spool_dir).map_err(tempfail)?;
    let tmp = read_to_tmp(&spool, &mut io::stdin().lock(), false).map_err(tempfail)?;
    deliver_tmp(
        &spool,
        tmp,
        recipient.as_deref(),
        sender.as_deref(),
        &Origin::this_user(),
    )
    .map(|_| ())
    .map_err(tempfail)
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
