//! Tells the kernel when a message name changed in the spool directory by any other way than
//! a request through the mount: a sender expiring a Sent message, `mailfs cancel` or
//! `sendmail` in another process, a tool writing straight into the spool.
//!
//! The kernel keeps names for `ENTRY_TTL` (so `ls -l` of a big spool is one READDIRPLUS
//! stream, not a LOOKUP per name). An inotify watch on the spool directory sees each removal,
//! rename and attribute-file replacement when it happens, and the thread started here drops
//! the kernel's entries for `X.eml` and `X.eml.parts`; the next path walk looks them up
//! again. The notification is sent from this thread, never from inside a request: dropping
//! an entry takes the directory's lock, which the VFS holds while a create, unlink or rename
//! in that directory waits for mailfs's answer.
//!
//! If the watch cannot be set up or its queue overflows, the TTL is the bound.

use std::ffi::OsStr;
use std::path::Path;

use fuser::{INodeNo, Notifier};
use inotify::{EventMask, Inotify, WatchMask};

use super::{PARTS_SUFFIX, ROOT};
use crate::store::spool::message_of_entry as message_of;

/// Starts the watch on `root` (the spool directory); entries go stale through `notifier`.
pub fn start(root: &Path, notifier: Notifier) -> std::io::Result<()> {
    let ino = Inotify::init()?;
    ino.watches().add(
        root,
        WatchMask::DELETE | WatchMask::MOVED_FROM | WatchMask::MOVED_TO | WatchMask::CREATE,
    )?;
    std::thread::Builder::new()
        .name("spool-watch".into())
        .spawn(move || run(ino, notifier))?;
    Ok(())
}

fn run(mut ino: Inotify, notifier: Notifier) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let events = match ino.read_events_blocking(&mut buf) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::warn!("spool watch: {e}; names changed by other processes show within the TTL");
                return;
            }
        };
        for ev in events {
            if ev.mask.contains(EventMask::Q_OVERFLOW) {
                log::info!("spool watch: queue overflow; some names show their change within the TTL");
                continue;
            }
            let Some(msg) = ev.name.and_then(OsStr::to_str).and_then(message_of) else {
                continue;
            };
            for name in [msg.clone(), format!("{msg}{PARTS_SUFFIX}")] {
                match notifier.inval_entry(INodeNo(ROOT), OsStr::new(&name)) {
                    Ok(()) => {}
                    // The kernel has no entry for it: nothing to drop.
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                    // The session is gone (unmounted).
                    Err(e)
                        if matches!(
                            e.raw_os_error(),
                            Some(libc::ENOTCONN | libc::EBADF | libc::ENODEV)
                        ) =>
                    {
                        return;
                    }
                    Err(e) => log::debug!("spool watch: invalidating {name}: {e}"),
                }
            }
        }
    }
}
