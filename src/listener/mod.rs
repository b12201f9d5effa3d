//! The SMTP listener (SPEC §11): the process that serves a node (mount or `serve`) also
//! accepts mail over SMTP on each address of the node attribute `listen`, so that programs
//! that only speak SMTP can submit. It follows the attribute live: a change rebinds, an
//! empty value stops listening. Each accepted message goes through the one enqueue path
//! (`store::queue::queue_file`), ready, owned by the node's owner, durable before the 250.
//!
//! Limits, as Postfix's smtpd has them: at most [`MAX_SESSIONS`] sessions at once and
//! [`MAX_PER_CLIENT`] from one client address (others get 421 at once), each reply waits at
//! most `handshake_time` for the client, and a client whose commands were refused
//! [`session::ERROR_LIMIT`] times is disconnected.

mod auth;
mod data;
mod session;

pub use auth::{check_password, check_tls_cert, check_tls_key, check_users_file, load_tls};

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::store::node::Node;

/// Sessions at once, all clients together (Postfix's default_process_limit is 100).
pub const MAX_SESSIONS: usize = 200;
/// Sessions at once from one client address (Postfix's smtpd_client_connection_count_limit).
pub const MAX_PER_CLIENT: usize = 50;
/// How often the `listen` attribute is looked at.
const WATCH_EVERY: Duration = Duration::from_millis(300);

/// What all sessions of one listener share.
struct Ctx {
    node: Arc<Node>,
    tls: auth::TlsCache,
    clients: Mutex<Clients>,
}

#[derive(Default)]
struct Clients {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// A session's place in the limits, given back when the session ends.
struct Slot {
    ctx: Arc<Ctx>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.ctx.clients.lock();
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.per_ip.remove(&self.ip);
            }
        }
    }
}

impl Ctx {
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let mut c = self.clients.lock();
        let mine = c.per_ip.get(&ip).copied().unwrap_or(0);
        if c.total >= MAX_SESSIONS || mine >= MAX_PER_CLIENT {
            return None;
        }
        c.total += 1;
        *c.per_ip.entry(ip).or_insert(0) += 1;
        Some(Slot {
            ctx: self.clone(),
            ip,
        })
    }
}

/// The running listener of one process; [`Listener::stop`] (or drop) ends it.
pub struct Listener {
    stop: Option<tokio::sync::watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Listener {
    /// Starts following the node's `listen` attribute (listening on nothing while it is empty).
    pub fn start(node: Arc<Node>) -> Listener {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("mailfs-listen".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("mailfs-smtpd")
                    .enable_all()
                    .build();
                match rt {
                    Ok(rt) => {
                        rt.block_on(supervise(node, rx));
                        rt.shutdown_timeout(Duration::from_secs(2));
                    }
                    Err(e) => log::error!("listener: cannot start: {e}"),
                }
            });
        let thread = match thread {
            Ok(t) => Some(t),
            Err(e) => {
                log::error!("listener: cannot start: {e}");
                None
            }
        };
        Listener {
            stop: Some(tx),
            thread,
        }
    }

    /// Stops listening; sessions in progress are cut (their clients have no 250 yet).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(true);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // A rebind right after a stop must not wait for old connections in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Keeps the bound addresses equal to `listen` until told to stop.
async fn supervise(node: Arc<Node>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let ctx = Arc::new(Ctx {
        node,
        tls: auth::TlsCache::default(),
        clients: Mutex::new(Clients::default()),
    });
    let mut bound: HashMap<SocketAddr, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut failed: HashSet<SocketAddr> = HashSet::new();
    loop {
        let want = ctx.node.attrs().listener.listen;
        bound.retain(|a, task| {
            let keep = want.contains(a);
            if !keep {
                task.abort();
                log::info!("listener: stopped listening on {a}");
            }
            keep
        });
        failed.retain(|a| want.contains(a));
        for a in want {
            if bound.contains_key(&a) {
                continue;
            }
            match bind(a) {
                Ok(l) => {
                    log::info!("listener: accepting SMTP on {a}");
                    failed.remove(&a);
                    bound.insert(a, tokio::spawn(accept_loop(ctx.clone(), l)));
                }
                Err(e) => {
                    // Said once; tried again quietly until it works or is no longer wanted.
                    if failed.insert(a) {
                        log::error!("listener: cannot listen on {a}: {e}");
                    }
                }
            }
        }
        tokio::select! {
            _ = stop.changed() => break,
            _ = tokio::time::sleep(WATCH_EVERY) => {}
        }
    }
    for task in bound.values() {
        task.abort();
    }
}

async fn accept_loop(ctx: Arc<Ctx>, listener: TcpListener) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of descriptors and the like: wait rather than spin.
                log::warn!("listener: accept: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let ip = peer.ip().to_canonical();
        match ctx.admit(ip) {
            Some(slot) => {
                tokio::spawn(async move {
                    let ctx = slot.ctx.clone();
                    session::run(ctx, stream, peer).await;
                    drop(slot);
                });
            }
            None => {
                log::warn!("listener: {peer}: too many sessions, refused");
                tokio::spawn(refuse(stream));
            }
        }
    }
}

async fn refuse(mut stream: TcpStream) {
    let msg = b"421 4.7.0 Too many connections, try again later\r\n";
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.write_all(msg)).await;
}
