//! The serving side of the control channel: a thread accepting on `SPOOL_DIR.sock`, one
//! short-lived thread per connection (at most [`MAX_CONNECTIONS`] at once, [`MAX_PER_USER`]
//! of one user), each request
//! answered for the identity the kernel gives (SO_PEERCRED), never one the client claims.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{Hello, Limited, PROTOCOL, Reply, Request, SUBMIT_SIZE_LIMIT, WireError};
use crate::error::{Error, Result};
use crate::model::attrs::Owner;
use crate::store::manage::{self, Scope};
use crate::store::node::Node;
use crate::store::queue::{self as admin, Origin, Submission};

/// Connections served at once; more wait for a slot in the client's retry (EX_TEMPFAIL).
pub const MAX_CONNECTIONS: usize = 32;
/// Connections of one user at once.
pub const MAX_PER_USER: usize = 8;
/// How long a client may be silent in the middle of a request.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// The caller's identity as the kernel saw it at connect time.
pub fn peer_cred(stream: &UnixStream) -> Result<Owner> {
    // SAFETY: ucred is plain data; getsockopt writes at most `len` bytes into it.
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: valid socket fd, pointer and length of a ucred we own.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(Owner {
        uid: cred.uid,
        gid: cred.gid,
    })
}

/// The login name of a uid, for a default envelope sender (`nobody@host`).
pub fn login_of(uid: u32) -> String {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: passwd is plain data filled by getpwuid_r from our buffer.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer refers to memory we own, sized as we say.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut out) };
    if rc == 0 && !out.is_null() && !pw.pw_name.is_null() {
        // SAFETY: pw_name points into `buf`, NUL-terminated by getpwuid_r.
        let name = unsafe { std::ffi::CStr::from_ptr(pw.pw_name) };
        if let Ok(n) = name.to_str()
            && !n.is_empty()
        {
            return n.to_string();
        }
    }
    format!("uid{uid}")
}

/// Answers one request for `caller`; `body` holds what follows the request line.
pub fn answer(node: &Node, caller: Owner, req: Request, body: &mut dyn BufRead) -> Reply {
    match serve_request(node, caller, req, body) {
        Ok(r) => r,
        Err(e) => {
            log::info!("control request of uid {} refused: {e}", caller.uid);
            Reply::Error {
                error: WireError::from(&e),
            }
        }
    }
}

fn serve_request(node: &Node, caller: Owner, req: Request, body: &mut dyn BufRead) -> Result<Reply> {
    let spool = &node.spool;
    let scope = Scope::of(caller.uid, manage::node_owner(spool)?);
    let notify = |n: &str| node.notify_ready(n);
    let origin = Origin {
        owner: Some(caller),
        login: login_of(caller.uid),
    };
    let outcomes = |o: manage::Outcomes| Reply::Outcomes {
        outcomes: o
            .into_iter()
            .map(|(n, r)| (n, r.err().map(|e| WireError::from(&e))))
            .collect(),
    };
    Ok(match req {
        Request::Sendmail {
            env_from,
            recipients,
            read_headers,
            full_name,
            stop_at_dot,
        } => {
            let sub = Submission {
                env_from,
                recipients,
                recipients_from_headers: read_headers,
                full_name,
            };
            admin::check_recipients(&sub.recipients)?;
            // As `mailfs sendmail` run directly: what the spool cannot take is temporary.
            let tmp = read_body(node, body, stop_at_dot).map_err(Error::spool_unavailable)?;
            let name = admin::queue_tmp(spool, tmp, &sub, &origin).map_err(Error::spool_unavailable)?;
            log::info!("{name} queued for uid {} over the control socket", caller.uid);
            Reply::Queued { name }
        }
        Request::Deliver { recipient, sender } => {
            let tmp = read_body(node, body, false).map_err(Error::spool_unavailable)?;
            let name = admin::deliver_tmp(spool, tmp, recipient.as_deref(), sender.as_deref(), &origin)
                .map_err(Error::spool_unavailable)?;
            Reply::Queued { name }
        }
        Request::Queue => Reply::Rows {
            rows: manage::rows(spool, scope)?,
        },
        Request::Flush => Reply::Flushed {
            count: manage::flush(spool, scope, &notify)?,
        },
        Request::Cancel { names } => outcomes(manage::cancel(spool, scope, &names)?),
        Request::Hold { names, domain, hold } => outcomes(manage::hold(
            spool,
            scope,
            &names,
            domain.as_deref(),
            hold,
            &notify,
        )?),
    })
}

/// The message after the request line, into a spool temp file, at most the node's
/// `message_size_limit` (Postfix applies message_size_limit to postdrop too).
fn read_body(node: &Node, body: &mut dyn BufRead, stop_at_dot: bool) -> Result<PathBuf> {
    let limit = match node.attrs().listener.message_size_limit {
        0 => SUBMIT_SIZE_LIMIT,
        n => n,
    };
    let mut limited = Limited::new(body, limit);
    admin::read_to_tmp(&node.spool, &mut limited, stop_at_dot).map_err(|e| {
        if limited.exceeded {
            Error::TooBig(format!("message_size_limit is {limit} bytes"))
        } else {
            e
        }
    })
}

/// Connections in progress, in all and per user: one user cannot take every slot.
#[derive(Default)]
struct Slots(parking_lot::Mutex<(usize, std::collections::HashMap<u32, usize>)>);

impl Slots {
    fn take(&self, uid: u32) -> Result<()> {
        let mut g = self.0.lock();
        let mine = g.1.get(&uid).copied().unwrap_or(0);
        if g.0 >= MAX_CONNECTIONS || mine >= MAX_PER_USER {
            return Err(Error::Unavailable(
                "the node is busy: too many control connections, try again".into(),
            ));
        }
        g.0 += 1;
        g.1.insert(uid, mine + 1);
        Ok(())
    }

    fn give(&self, uid: u32) {
        let mut g = self.0.lock();
        g.0 = g.0.saturating_sub(1);
        if let Some(n) = g.1.get_mut(&uid) {
            *n -= 1;
            if *n == 0 {
                g.1.remove(&uid);
            }
        }
    }
}

/// Whether the client has closed its end entirely (not just its writing half, which a client
/// does once its request is sent): it is no longer waiting for the answer.
fn client_gone(stream: &UnixStream) -> bool {
    let mut p = libc::pollfd {
        fd: stream.as_raw_fd(),
        events: 0,
        revents: 0,
    };
    // SAFETY: one pollfd for a descriptor `stream` owns, no wait.
    unsafe { libc::poll(&mut p, 1, 0) == 1 && p.revents & libc::POLLHUP != 0 }
}

pub(super) fn handle(node: &Node, caller: Owner, stream: UnixStream) {
    // A request left in the socket by a client that gave up (the server was stopped, say) is
    // not carried out: the client reported a failure, and its retry would queue it twice
    // (audit-14).
    if client_gone(&stream) {
        log::info!(
            "a request from uid {} was dropped: its client left before it was read",
            caller.uid
        );
        return;
    }
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let mut reader = BufReader::new(&stream);
    let reply = match super::read_line::<Hello>(&mut reader) {
        Ok(h) if h.v == PROTOCOL => answer(node, caller, h.req, &mut reader),
        Ok(h) => Reply::Error {
            error: WireError::from(&Error::Usage(format!(
                "control protocol {} is not {PROTOCOL}: use the mailfs that serves the node",
                h.v
            ))),
        },
        Err(e) => Reply::Error {
            error: WireError::from(&e),
        },
    };
    let mut w = &stream;
    if let Err(e) = super::write_line(&mut w, &reply) {
        log::debug!("control reply to uid {} lost: {e}", caller.uid);
    }
}

/// A running control socket; dropping it stops it and removes the socket if still ours.
pub struct ControlServer {
    path: PathBuf,
    ino: u64,
    /// The listening socket, to shut down on drop (which wakes the accept loop).
    listener: UnixListener,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ControlServer {
    /// Listens on `SPOOL_DIR.sock`. `shared`: every local user may connect (mode 0666: a root
    /// node or an `allow_other` mount); otherwise only the node's owner (0600). `Ok(None)`
    /// when another live process already answers there (it serves the same spool).
    pub fn start(node: Arc<Node>, shared: bool) -> Result<Option<ControlServer>> {
        let path = super::socket_path(node.spool.root());
        // SAFETY: geteuid cannot fail.
        let me = unsafe { libc::geteuid() };
        // Only a socket of our own user counts as another server of this spool: one that
        // someone else planted (in a shared parent directory) is replaced.
        let theirs = std::fs::symlink_metadata(&path).is_ok_and(|m| m.uid() == me);
        if theirs && super::probe(&path).unwrap_or(false) {
            log::info!(
                "{} is answered by another process serving this spool",
                path.display()
            );
            return Ok(None);
        }
        let listener = bind(&path, if shared { 0o666 } else { 0o600 })?;
        let ino = std::fs::symlink_metadata(&path)?.ino();
        let ours = listener.try_clone()?;
        let stop = Arc::new(AtomicBool::new(false));
        let slots = Arc::new(Slots::default());
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("mailfs-control".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if stop2.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(stream) = conn else {
                        // Out of descriptors, say: let some close.
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    };
                    let caller = match peer_cred(&stream) {
                        Ok(c) => c,
                        Err(e) => {
                            log::warn!("control connection without credentials: {e}");
                            continue;
                        }
                    };
                    if let Err(e) = slots.take(caller.uid) {
                        let _ = super::write_line(
                            &mut &stream,
                            &Reply::Error {
                                error: WireError::from(&e),
                            },
                        );
                        continue;
                    }
                    let node = node.clone();
                    let slots2 = slots.clone();
                    let spawned = std::thread::Builder::new()
                        .name("mailfs-control-conn".into())
                        .spawn(move || {
                            handle(&node, caller, stream);
                            slots2.give(caller.uid);
                        });
                    if spawned.is_err() {
                        slots.give(caller.uid);
                    }
                }
            })?;
        log::info!("control socket {}", path.display());
        Ok(Some(ControlServer {
            path,
            ino,
            listener: ours,
            stop,
            thread: Some(thread),
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the socket at the path is still the one this server listens on.
    pub fn in_place(&self) -> bool {
        std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.ino)
    }
}

/// Binds under a temporary name, sets the mode, then renames into place: the socket never
/// exists with a wider mode than asked, and a stale one left by a crash is replaced.
fn bind(path: &Path, mode: u32) -> Result<UnixListener> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp).map_err(|e| {
        Error::Io(std::io::Error::new(
            e.kind(),
            format!("cannot listen on {}: {e}", path.display()),
        ))
    })?;
    let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.into());
    }
    Ok(listener)
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // SAFETY: shutdown on the listening socket we own; a blocked accept returns at once.
        unsafe { libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RDWR) };
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.ino) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_user_cannot_take_every_slot() {
        let s = Slots::default();
        for _ in 0..MAX_PER_USER {
            s.take(65534).unwrap();
        }
        assert_eq!(s.take(65534).unwrap_err().exit_code(), 75);
        s.take(1000).unwrap();
        s.give(65534);
        s.take(65534).unwrap();
        for uid in 0..MAX_CONNECTIONS as u32 {
            let _ = s.take(2000 + uid);
        }
        assert!(s.take(3).is_err(), "the total is bounded too");
    }
}
