//! The operator's commands on a spool, mounted or not: `queue`, `flush`, `cancel`, `hold`,
//! `release`, and the submission programs `sendmail` and `deliver`. Run by root or the spool's
//! owner they work through the spool files and the per-message locks only, so they are safe
//! beside a running mount or `serve`; run by anyone else they go through the control socket
//! of the process serving the node ([`route`], [`crate::control`]). The queue work itself is
//! in [`crate::store::manage`]; [`queue_tmp`] is the one way a submitted message enters the queue.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::control::{Reply, Request, client};
use crate::error::{Error, Result};
use crate::store::manage::{self, Scope};
use crate::store::queue::{Origin, deliver_tmp, read_to_tmp, this_user};
use crate::store::spool::Spool;

/// The spool of a command that only reads it (`queue`, `dkim-record`): one that is not there
/// is missing input (66), never made here.
pub(crate) fn open_existing(spool_dir: &Path) -> Result<Spool> {
    if spool_dir.exists() && !spool_dir.is_dir() {
        return Err(Error::NotFound(format!(
            "{} is not a spool directory",
            spool_dir.display()
        )));
    }
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
    // Not a spool at all: opening it says so (78), where asking a server would wrongly say
    // that nothing serves it (75).
    if std::fs::metadata(spool_dir).is_ok_and(|m| !m.is_dir()) {
        return Route::Direct;
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

/// [`route`] for a command that writes in the spool (submits, flushes, cancels, holds): a
/// spool of another user's (root's command on a node a user serves) goes through the socket
/// even when root could open it, since files root wrote there (0600, root's) could not be
/// read by the process that serves the node, which would leave the mail stuck. With nothing
/// serving it, that is the temporary failure any other user gets.
pub fn route_to_write(spool_dir: &Path) -> Route {
    match route(spool_dir) {
        Route::Direct => match std::fs::metadata(spool_dir) {
            // SAFETY: geteuid cannot fail.
            Ok(m) if m.uid() != unsafe { libc::geteuid() } => {
                Route::Socket(crate::control::socket_path(spool_dir))
            }
            _ => Route::Direct,
        },
        socket => socket,
    }
}

/// This process's scope on a spool it opens directly: root and the spool's owner see all.
fn direct_scope(spool: &Spool) -> Result<Scope> {
    let me = this_user();
    Ok(Scope::of(me.uid, manage::node_owner(spool)?))
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
    let n = match route_to_write(spool_dir) {
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
    match route_to_write(spool_dir) {
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
    if !hold
        && let Some(d) = domain
        && held_by_node(spool_dir, d)
    {
        // `mailfs queue` shows these messages as Held: say why release leaves them there.
        let what = if out.is_empty() {
            "no messages released: "
        } else {
            ""
        };
        println!("{what}{d} is in the node's hold_domains: its messages wait until it is taken out of it");
        if out.is_empty() {
            return Ok(());
        }
    }
    manage::report(if hold { "held" } else { "released" }, out)
}

/// Whether the node's `hold_domains` holds `domain` (false when the caller cannot read it).
fn held_by_node(spool_dir: &Path, domain: &str) -> bool {
    open_existing(spool_dir)
        .and_then(|s| s.load_node())
        .is_ok_and(|n| crate::model::lists::holds(&n.hold_domains, domain))
}

/// sendmail failures are temporary unless the input itself is wrong.
pub(crate) fn tempfail(e: Error) -> Error {
    e.spool_unavailable()
}

pub fn deliver(spool_dir: &Path) -> Result<()> {
    let recipient = std::env::var("RECIPIENT").ok();
    let sender = std::env::var("SENDER").ok();
    if let Route::Socket(sock) = route_to_write(spool_dir) {
        let req = Request::Deliver { recipient, sender };
        return client::call(&sock, spool_dir, &req, Some(&mut io::stdin().lock())).map(|_| ());
    }
    let spool = Spool::open_quick(spool_dir).map_err(tempfail)?;
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
