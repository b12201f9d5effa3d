//! `setfattr -n user.is_ready -v 1` on a message, with concurrent callers sharing their syncs
//! (issue 17: 2,000 Drafts made ready from 4 writers at once must go faster than from one).
//!
//! A hand-over is prepared without the namespace lock, from the versions of the message seen
//! under it (checks, the Message-ID recorded, the new content and attributes written to temp
//! files, into spare inodes when the spool has some: [`message::stage_ready`]), made durable by
//! the spool's shared sync with the lock released, then renamed into place under the lock
//! again, and synced once more before the caller is answered. So every `is_ready` is durable
//! when it returns, nothing is visible before its bytes are durable, and callers that arrive
//! together share each `syncfs` instead of paying for a write, fsync, rename and directory
//! fsync each in turn. Should the message or its attributes change between the two steps (a
//! writer's copy put in place, a `setfattr` of its envelope), the prepared files are dropped
//! and the hand-over is made at once under the lock, as [`message::make_ready`] does.

use std::collections::HashSet;

use parking_lot::{Condvar, Mutex};

use super::MailFs;
use crate::error::Result;
use crate::store::message::{self, Change};

/// Messages being made ready now: a second `is_ready` of one of them waits for the first (it
/// then finds the message frozen, as it would have one after the other).
#[derive(Default)]
pub(super) struct Readying {
    names: Mutex<HashSet<String>>,
    cv: Condvar,
}

pub(super) struct Turn<'a> {
    r: &'a Readying,
    name: String,
}

impl Readying {
    /// The turns of several names, taken in one order so that two callers cannot each hold
    /// one the other waits for.
    pub(super) fn enter_all<'a>(&'a self, names: &[&str]) -> Vec<Turn<'a>> {
        let mut names = names.to_vec();
        names.sort_unstable();
        names.dedup();
        names.into_iter().map(|n| self.enter(n)).collect()
    }

    pub(super) fn enter(&self, name: &str) -> Turn<'_> {
        let mut names = self.names.lock();
        while names.contains(name) {
            self.cv.wait(&mut names);
        }
        names.insert(name.to_string());
        Turn {
            r: self,
            name: name.to_string(),
        }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.r.names.lock().remove(&self.name);
        self.r.cv.notify_all();
    }
}

impl MailFs {
    /// `user.is_ready=1` on the message `n`, called without the namespace lock (see the top).
    pub(super) fn make_ready_shared(&self, n: &str) -> Result<()> {
        let _turn = self.readying.enter(n);
        self.check_finished(n)?;
        let (attrs, seen) = {
            let _ns = self.ns.lock();
            let attrs = self.message_attrs(n)?;
            if !matches!(message::set(&attrs, "is_ready", b"1")?, Change::MakeReady) {
                return Ok(());
            }
            self.consume_went_out(n)?;
            let seen = message::Seen::now(&self.node.spool, n)?;
            (self.message_attrs(n)?, seen)
        };
        // Prepared without the namespace lock, so that concurrent callers prepare in parallel:
        // it is put in place only over the versions seen here.
        let mut staged = message::stage_ready(&self.node, n, &attrs, seen)?;
        let spool = &self.node.spool;
        let durable = spool.sync_shared();
        {
            let _ns = self.ns.lock();
            // Put in place over the versions seen, or made ready afresh, under the lock that
            // `mailfs hold` takes for its change: neither then undoes the other.
            let _attrs_lock = spool.attrs_lock()?;
            let put = match durable {
                Ok(()) => staged.put(spool, n)?,
                Err(e) => {
                    log::warn!("{n}: shared sync failed ({e}); made ready on its own");
                    None
                }
            };
            let (next, stamp) = match put {
                Some(stamp) => (staged.next.clone(), stamp),
                None => {
                    // Changed meanwhile: hand over what is there now, all at once.
                    drop(staged);
                    let attrs = self.message_attrs(n)?;
                    if !matches!(message::set(&attrs, "is_ready", b"1")?, Change::MakeReady) {
                        return Ok(());
                    }
                    let (next, stamp) = message::make_ready(&self.node, n, &attrs)?;
                    self.after_ready(n, next, stamp);
                    return Ok(());
                }
            };
            self.after_ready(n, next, stamp);
        }
        spool.sync_root_shared()?;
        crate::store::queue::hand_over(spool, Some(&self.node), n)
    }

    /// What the mount shows once `n` is ready: its attributes, read-only, maybe new headers.
    pub(super) fn after_ready(
        &self,
        n: &str,
        next: crate::model::attrs::MessageAttrs,
        stamp: crate::store::spool::Stamp,
    ) {
        self.cache_put(n, next, stamp);
        self.invalidate_message(n, true);
        self.content_changed(n);
    }
}
