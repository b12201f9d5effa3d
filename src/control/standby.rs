//! Which of several processes serving one spool answers on its control socket.
//!
//! SPEC §1 lets several processes act on one spool at once (a `serve` and a mount, say); the
//! first one up binds `SPOOL_DIR.sock`. Before, when that one stopped, the others went on
//! serving with no socket and other users' `mailfs sendmail` got 75 "is not served" (audit
//! J12). Now each serving process keeps a watch: one without the socket takes it over once
//! nothing answers there, and one whose socket was replaced (two took over at once: the
//! later rename wins) lets its own go and watches again.

use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use super::server::ControlServer;
use crate::error::Result;
use crate::store::node::Node;

/// How often the watch looks: the longest other users wait, once the socket's owner stops,
/// before `sendmail` works again.
const WATCH: Duration = Duration::from_secs(2);

/// The control socket of a serving process, or its watch for it (see the top).
pub struct Control {
    held: Arc<Mutex<Option<ControlServer>>>,
    stop: Arc<AtomicBool>,
    watch: Option<std::thread::JoinHandle<()>>,
}

impl Control {
    /// Listens on `SPOOL_DIR.sock` now if nothing else answers there, and keeps watching.
    /// `shared` as for [`ControlServer::start`].
    pub fn start(node: Arc<Node>, shared: bool) -> Result<Control> {
        let held = Arc::new(Mutex::new(ControlServer::start(node.clone(), shared)?));
        let stop = Arc::new(AtomicBool::new(false));
        let (held2, stop2) = (held.clone(), stop.clone());
        let watch = std::thread::Builder::new()
            .name("mailfs-control-watch".into())
            .spawn(move || watch(&node, shared, &held2, &stop2))?;
        Ok(Control {
            held,
            stop,
            watch: Some(watch),
        })
    }

    /// Whether this process answers on the socket now.
    pub fn answering(&self) -> bool {
        self.held.lock().is_some()
    }
}

fn watch(node: &Arc<Node>, shared: bool, held: &Mutex<Option<ControlServer>>, stop: &AtomicBool) {
    let path = super::socket_path(node.spool.root());
    let step = Duration::from_millis(100);
    loop {
        let mut waited = Duration::ZERO;
        while waited < WATCH {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(step);
            waited += step;
        }
        let mut held = held.lock();
        match held.as_ref() {
            Some(s) if s.in_place() => {}
            Some(_) => {
                log::info!(
                    "{} was taken by another process serving this spool",
                    path.display()
                );
                *held = None;
            }
            None => {
                // Only a socket of our own user answering counts (as in ControlServer::start).
                let answered = std::fs::symlink_metadata(&path)
                    // SAFETY: geteuid cannot fail.
                    .is_ok_and(|m| m.uid() == unsafe { libc::geteuid() })
                    && super::probe(&path).unwrap_or(false);
                if answered {
                    continue;
                }
                match ControlServer::start(node.clone(), shared) {
                    Ok(Some(s)) => {
                        log::info!("took over {}: nothing answered there", path.display());
                        *held = Some(s);
                    }
                    Ok(None) => {}
                    Err(e) => log::debug!("cannot take over {}: {e}", path.display()),
                }
            }
        }
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.watch.take() {
            let _ = t.join();
        }
        // Removes the socket if it is still ours.
        drop(self.held.lock().take());
    }
}
