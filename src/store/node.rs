//! The node: a spool plus its node attributes, shared by the FUSE front end and the senders of
//! one process. Other processes on the same spool see changes through the spool files; this
//! struct reloads the node attributes when their file changes underneath it.

use std::sync::Arc;

use crossbeam_channel::Sender;
use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result};
use crate::model::attrs::NodeAttrs;
use crate::model::attrs::table::{self, Check};
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
                let usage = |e| Error::Usage(format!("-o {k}={v}: {e}"));
                attrs.set(k, v.as_bytes()).map_err(usage)?;
                check_on_machine(k, v.as_bytes()).map_err(|e| match e {
                    // A log_dir others can write is a configuration error (SPEC §9).
                    Error::Config(why) => Error::Config(format!("-o {k}={v}: {why}")),
                    e => usage(e),
                })?;
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
            check_on_machine(name, value).map_err(|e| match e {
                Error::Invalid { .. } => e,
                e => Error::invalid(name, e.to_string()),
            })
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

/// What a value a user sets needs of the machine, as the attribute table's `check` column
/// says (the model parses values, the store looks at files). Refused now rather than at first
/// use: a log dir another user can write (or a link) would let them choose where the daemon
/// writes, and a key that cannot sign would hold every message to be signed.
fn check_on_machine(name: &str, value: &[u8]) -> Result<()> {
    let Some(row) = table::lookup(name) else {
        return Ok(());
    };
    // Empty is unset; the value was parsed already, so it is UTF-8 and the path as given.
    let path = match std::str::from_utf8(value) {
        Ok(p) if !p.is_empty() => p,
        _ => return Ok(()),
    };
    match row.check {
        Check::None => Ok(()),
        Check::PrivateDir => crate::files::ensure_private_dir_and_parents(std::path::Path::new(path)),
        Check::SigningKey => crate::mail::dkim::load_key(path).map(|_| ()),
        Check::TlsCert => crate::listener::check_tls_cert(path),
        Check::TlsKey => crate::listener::check_tls_key(path),
        Check::UsersFile => crate::listener::check_users_file(std::path::Path::new(path)),
    }
}
