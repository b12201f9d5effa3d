//! Renames this process itself made into the spool directory, whose inotify events the
//! mount's spool watch has not seen yet.
//!
//! The mount's spool watch (fs/watch.rs) tells the kernel to drop its cached names when a
//! message changes in the spool directory by some other way than the mount. Without this it
//! also did so for every rename the mount and its own senders make (two per `is_ready`, one per
//! outcome): work already done by the mount's own invalidation, and each one a call that waits
//! for the root directory's lock. After a `kill -9` of the mount such a call can wait forever
//! on a look-up that no one will answer (README, the reliability suite), so the fewer the
//! better. Each rename made here is counted under its name, and the watch takes that many
//! events of the name as its echo: inotify queues events in the order of the changes, so a
//! change another process makes later still comes after the echo and goes through. Counts
//! older than [`KEEP`] are dropped (an event lost in a queue overflow); then the kernel's entry
//! TTL (1 s) is the bound, as for any overflow.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How long an echo is waited for.
const KEEP: Duration = Duration::from_secs(5);
/// Names remembered at most; past it the stale ones go (all of them, if none is stale).
const CAP: usize = 8192;

/// Per name: renames whose event is still to come, and when the last one was made.
type Pending = HashMap<Box<str>, (u32, Instant)>;

#[derive(Debug, Default, Clone)]
pub struct OwnRenames(Arc<Mutex<Pending>>);

impl OwnRenames {
    /// Notes that this process is about to rename a file into `path`, which makes `events`
    /// events of its name in the directory (1 for a rename, 2 for an exchange). Before the
    /// rename, so that the watch cannot see the event first; [`OwnRenames::unnote`] if it
    /// does not happen.
    pub(super) fn note(&self, path: &Path, events: u32) {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            return;
        };
        let now = Instant::now();
        let mut m = self.0.lock();
        if m.len() >= CAP {
            m.retain(|_, (_, t)| now.duration_since(*t) < KEEP);
            if m.len() >= CAP {
                m.clear();
            }
        }
        let e = m.entry(name.into()).or_insert((0, now));
        e.0 += events;
        e.1 = now;
    }

    /// Takes back a [`OwnRenames::note`] whose rename did not happen.
    pub(super) fn unnote(&self, path: &Path, events: u32) {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            return;
        };
        let mut m = self.0.lock();
        if let Some((count, _)) = m.get_mut(name) {
            *count = count.saturating_sub(events);
            if *count == 0 {
                m.remove(name);
            }
        }
    }

    /// Whether an event of the spool directory's `name` is the echo of a rename made here
    /// (counted off once).
    pub fn take_echo(&self, name: &str) -> bool {
        let mut m = self.0.lock();
        let Some((count, at)) = m.get_mut(name) else {
            return false;
        };
        let echo = *count > 0 && at.elapsed() < KEEP;
        *count = count.saturating_sub(1);
        if *count == 0 || !echo {
            m.remove(name);
        }
        echo
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rename_made_here_is_one_echo_and_no_more() {
        let own = OwnRenames::default();
        own.note(Path::new("/spool/a.struct"), 1);
        own.note(Path::new("/spool/a.struct"), 2);
        assert!(!own.take_echo("b.struct"));
        assert!(own.take_echo("a.struct") && own.take_echo("a.struct") && own.take_echo("a.struct"));
        // A fourth event of the name is another process's change.
        assert!(!own.take_echo("a.struct"));
        for i in 0..CAP + 10 {
            own.note(Path::new(&format!("/spool/m{i}.eml")), 1);
        }
        assert!(own.0.lock().len() <= CAP);
    }
}
