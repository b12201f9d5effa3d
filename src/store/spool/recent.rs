//! Names this process itself put in place in the spool directory lately.
//!
//! The mount's spool watch (fs/watch.rs) tells the kernel to drop its cached names when a
//! message changes in the spool directory by some other way than the mount. Without this it
//! also did so for every rename the mount and its own senders make (two per `is_ready`, one per
//! outcome): work already done by the mount's own invalidation, and each one a call that waits
//! for the root directory's lock. After a `kill -9` of the mount such a call can wait forever
//! on a look-up that no one will answer (README, the reliability suite), so the fewer the
//! better. A name renamed here within [`KEEP`] is left alone by the watch; a change another
//! process makes to the same name within that time shows within the kernel's entry TTL (1 s),
//! as it does when the watch's queue overflows.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How long after one of its own renames a name's events are taken as its echo.
const KEEP: Duration = Duration::from_millis(200);
/// Names remembered at most; past it the stale ones go (all of them, if none is stale).
const CAP: usize = 4096;

#[derive(Debug, Default, Clone)]
pub struct OwnRenames(Arc<Mutex<HashMap<Box<str>, Instant>>>);

impl OwnRenames {
    /// Notes that this process has just renamed a file into `path`.
    pub(super) fn note(&self, path: &Path) {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            return;
        };
        let now = Instant::now();
        let mut m = self.0.lock();
        if m.len() >= CAP {
            m.retain(|_, t| now.duration_since(*t) < KEEP);
            if m.len() >= CAP {
                m.clear();
            }
        }
        m.insert(name.into(), now);
    }

    /// Whether this process renamed a file into the spool directory's `name` within [`KEEP`].
    pub fn lately(&self, name: &str) -> bool {
        self.0.lock().get(name).is_some_and(|t| t.elapsed() < KEEP)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_taken_as_its_own_for_a_moment_only() {
        let own = OwnRenames::default();
        own.note(Path::new("/spool/a.struct"));
        assert!(own.lately("a.struct"));
        assert!(!own.lately("b.struct"));
        std::thread::sleep(KEEP + Duration::from_millis(20));
        assert!(!own.lately("a.struct"));
        for i in 0..CAP + 10 {
            own.note(Path::new(&format!("/spool/m{i}.eml")));
        }
        assert!(own.0.lock().len() <= CAP);
    }
}
