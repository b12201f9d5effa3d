//! A new message whose mount stopped while it was being written (audit-16 D4).
//!
//! A new message's bytes go straight into its `.eml` (`files.rs`), so a `kill -9` of the mount
//! in the middle of a `cp` leaves the part written so far, which after a restart looked like
//! any Draft and could be made ready and sent cut short. Its spool file now carries a mark
//! from its creation to its creator's close: the mounting process and its start time, in the
//! attribute [`MARK`] of the spool file (set on the open file, so it costs no sync). A mark
//! whose process is gone means the message may be cut short: `is_ready=1` is refused (EINVAL,
//! logged) until it is written again, which makes a new file without the mark. A file system
//! without user attributes keeps no mark, and such a message is taken as finished.

use std::path::Path;

use super::{Handle, Key, MailFs, backed};
use crate::error::{Error, Result};

/// The attribute of a spool `.eml` file that says who is still writing it.
const MARK: &str = "user.mailfs_unfinished";

/// When process `pid` started (clock ticks since boot), to tell it from a later process that
/// got its pid: field 22 of /proc/PID/stat, counted after the command name's `)`.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// This process as a mark names it.
fn me() -> String {
    let pid = std::process::id();
    format!("{pid} {}", start_time(pid).unwrap_or(0))
}

impl MailFs {
    /// A new message's spool file, just created: being written until its creator closes it.
    pub(super) fn mark_unfinished(&self, path: &Path) {
        if let Err(e) = backed::set(path, MARK, me().as_bytes()) {
            log::debug!("{}: no mark for a message being written: {e}", path.display());
        }
    }

    /// Its creator closed it: whole, as far as the mount knows.
    pub(super) fn mark_finished(&self, name: &str) {
        let _ = backed::remove(&self.node.spool.eml_path(name), MARK);
    }

    /// Whether this process holds a handle that created message `name` (its writer is alive:
    /// `opener.rs` decides what that writer may do).
    fn creator_here(&self, name: &str) -> bool {
        let handles: Vec<_> = self.handles.lock().values().cloned().collect();
        handles.iter().any(
            |h| matches!(&*h.lock(), Handle::File { key: Key::Message(n), created: true, .. } if n == name),
        )
    }

    /// Refuses to make ready a message whose mount stopped while it was being written (EINVAL),
    /// or that another process serving this spool is still writing (EBUSY).
    pub(super) fn check_finished(&self, name: &str) -> Result<()> {
        let Ok(mark) = backed::get(&self.node.spool.eml_path(name), MARK) else {
            return Ok(());
        };
        if self.creator_here(name) {
            return Ok(());
        }
        let mark = String::from_utf8_lossy(&mark).into_owned();
        if mark == me() {
            // Ours, and no handle made it any more: its creator closed it.
            return Ok(());
        }
        let mut it = mark.split_whitespace().map(|v| v.parse::<u64>().ok());
        if let (Some(Some(pid)), Some(Some(start))) = (it.next(), it.next())
            && let Ok(pid) = u32::try_from(pid)
            && start_time(pid) == Some(start)
        {
            return Err(Error::Busy(format!(
                "{name}: still being written through another mount of this spool"
            )));
        }
        let e = Error::invalid(
            name,
            "it was still being written when the mount it was written through stopped, so it \
             may be cut short; write it again (to keep it as it is: cp X.eml /tmp/x && cat \
             /tmp/x > X.eml)",
        );
        log::warn!("{name} not made ready: {e}");
        Err(e)
    }
}
