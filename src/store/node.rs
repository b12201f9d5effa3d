//! The node: a spool plus its node attributes, shared by the FUSE front end and the senders of
//! one process. Other processes on the same spool see changes through the spool files; this
//! struct reloads the node attributes when their file changes underneath it.

use std::sync::Arc;

use crossbeam_channel::Sender;
use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result};
use crate::model::attrs::NodeAttrs;
use crate::store::spool::{Spool, Stamp};

/// What the front ends tell the scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A message became ready (or is due again now).
    Ready(String),
    /// Node attributes changed: re-read limits.
    Config,
    /// Retry every deferred message now.
    Flush,
    Stop,
}

#[derive(Debug)]
pub struct Node {
    pub spool: Spool,
    attrs: RwLock<(NodeAttrs, Option<Stamp>)>,
    events: Mutex<Option<Sender<Event>>>,
}

impl Node {
    /// Opens the node in `spool_dir`; `overrides` (from `-o`) are validated, applied and stored.
    pub fn open(spool_dir: &std::path::Path, overrides: &[(String, String)]) -> Result<Arc<Node>> {
        let spool = Spool::open(spool_dir)?;
        let mut attrs = spool.load_node()?;
        if !overrides.is_empty() {
            for (k, v) in overrides {
                attrs
                    .set(k, v.as_bytes())
                    .and_then(|()| crate::mail::dkim::check_setting(k, &attrs))
                    .map_err(|e| Error::Usage(format!("-o {k}={v}: {e}")))?;
            }
            spool.save_node(&attrs)?;
        }
        let stamp = spool.node_stamp();
        Ok(Arc::new(Node {
            spool,
            attrs: RwLock::new((attrs, stamp)),
            events: Mutex::new(None),
        }))
    }

    /// The current node attributes (re-read if another process changed them).
    pub fn attrs(&self) -> NodeAttrs {
        let current = self.spool.node_stamp();
        {
            let g = self.attrs.read();
            if g.1 == current {
                return g.0.clone();
            }
        }
        let mut g = self.attrs.write();
        match self.spool.load_node() {
            Ok(a) => {
                *g = (a, current);
            }
            Err(e) => log::warn!("keeping node attributes: {e}"),
        }
        g.0.clone()
    }

    fn update(&self, f: impl FnOnce(&mut NodeAttrs) -> Result<()>) -> Result<()> {
        let mut g = self.attrs.write();
        let mut next = g.0.clone();
        f(&mut next)?;
        let stamp = self.spool.save_node(&next)?;
        *g = (next, Some(stamp));
        drop(g);
        self.send(Event::Config);
        Ok(())
    }

    pub fn set_attr(&self, name: &str, value: &[u8]) -> Result<()> {
        self.update(|a| {
            a.set(name, value)?;
            crate::mail::dkim::check_setting(name, a)?;
            if name == "log_dir"
                && let Some(dir) = &a.log_dir
            {
                // Refused now rather than at the first entry: a log dir another user can
                // write (or a link) would let them choose where the daemon writes.
                crate::store::spool::ensure_private_dir(std::path::Path::new(dir))
                    .map_err(|e| crate::error::Error::invalid(name, e.to_string()))?;
            }
            Ok(())
        })
    }

    pub fn reset_attr(&self, name: &str) -> Result<()> {
        self.update(|a| a.reset(name))
    }

    pub fn set_events(&self, tx: Sender<Event>) {
        *self.events.lock() = Some(tx);
    }

    pub fn clear_events(&self) {
        *self.events.lock() = None;
    }

    fn send(&self, ev: Event) -> bool {
        match &*self.events.lock() {
            Some(tx) => tx.send(ev).is_ok(),
            None => false,
        }
    }

    /// Hands a ready message to the senders: this process's scheduler if it runs one, else a
    /// marker in the spool for whichever process serves it.
    pub fn notify_ready(&self, name: &str) {
        if !self.send(Event::Ready(name.to_string()))
            && let Err(e) = self.spool.mark_ready(name)
        {
            log::warn!("cannot mark {name} ready: {e}");
        }
    }
}
