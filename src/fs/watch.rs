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
//! If the watch cannot be set up or its queue overflows, the TTL is the bound. Renames this
//! process made itself (the mount, its senders) are left out: the mount pushes its own
//! changes to the kernel, and each call here waits for the directory's lock (see
//! `store/spool/recent.rs`).

use std::ffi::OsStr;
use std::path::Path;

use fuser::{INodeNo, Notifier};
use inotify::{EventMask, Inotify, WatchMask};

use super::{PARTS_SUFFIX, ROOT};
use crate::store::spool::OwnRenames;
use crate::store::spool::message_of_entry as message_of;

/// Starts the watch on `root` (the spool directory); entries go stale through `notifier`.
pub fn start(root: &Path, own: OwnRenames, notifier: Notifier) -> std::io::Result<()> {
    let ino = Inotify::init()?;
    ino.watches().add(
        root,
        WatchMask::DELETE | WatchMask::MOVED_FROM | WatchMask::MOVED_TO | WatchMask::CREATE,
    )?;
    std::thread::Builder::new()
        .name("spool-watch".into())
        .spawn(move || run(ino, &own, notifier))?;
    Ok(())
}

fn run(mut ino: Inotify, own: &OwnRenames, notifier: Notifier) {
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
        // The root's own attributes (its times) still change with those renames: one drop of
        // them per batch, which takes no lock.
        let mut root_changed = false;
        for ev in events {
            if ev.mask.contains(EventMask::Q_OVERFLOW) {
                log::info!("spool watch: queue overflow; some names show their change within the TTL");
                continue;
            }
            let Some(file) = ev.name.and_then(OsStr::to_str) else {
                continue;
            };
            // A rename made here shows as the name moved in (an exchange: moved away and back);
            // a deletion or creation never is one.
            if ev.mask.intersects(EventMask::MOVED_TO | EventMask::MOVED_FROM) && own.take_echo(file) {
                root_changed = true;
                continue;
            }
            // A new message name: the kernel cannot hold an entry for it (a look-up of a
            // missing name is answered ENOENT, which it does not keep), so there is nothing to
            // drop. A new attribute file does change an existing message's attributes.
            if ev.mask.contains(EventMask::CREATE) && file.ends_with(".eml") {
                continue;
            }
            let Some(msg) = message_of(file) else {
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
        // Offset -1: the attributes only, no page of the directory (no lock to wait for).
        if root_changed
            && let Err(e) = notifier.inval_inode(INodeNo(ROOT), -1, 0)
            && matches!(
                e.raw_os_error(),
                Some(libc::ENOTCONN | libc::EBADF | libc::ENODEV)
            )
        {
            return;
        }
    }
}
