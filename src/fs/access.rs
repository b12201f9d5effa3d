//! The file system's side of SPEC §10: the owner and mode of each node kind, and the one
//! check every operation makes before it touches anything ([`MailFs::authorize`]).

use std::fs;
use std::os::unix::fs::MetadataExt;

use super::{Key, MailFs, not_found};
use crate::access::{self, Caller, Need, Object};
use crate::error::{Error, Result};

impl MailFs {
    /// The user who serves the node: with root, the only one who may do everything.
    pub fn node_owner(&self) -> u32 {
        self.uid
    }

    /// Owner and mode of what a key names; `None` for the mount root, which everyone may
    /// enter and create in (a sticky directory: removing needs ownership of the entry).
    pub(super) fn object(&self, key: &Key) -> Result<Option<Object>> {
        Ok(match key {
            Key::Root => None,
            Key::Message(msg) | Key::Parts { msg, .. } | Key::Part { msg, .. } => {
                let a = self.message_attrs(msg)?;
                let owner = a.owner.unwrap_or(crate::attrs::Owner {
                    uid: self.uid,
                    gid: self.gid,
                });
                Some(Object {
                    uid: owner.uid,
                    gid: owner.gid,
                    mode: a.mode,
                })
            }
            Key::Scratch(name) => {
                let meta = fs::symlink_metadata(self.node.spool.scratch_path(name))
                    .map_err(|e| not_found(e, name))?;
                Some(Object {
                    uid: meta.uid(),
                    gid: meta.gid(),
                    mode: (meta.mode() & 0o777) as u16,
                })
            }
        })
    }

    /// Refuses (EACCES) what `caller` may not do to `key`.
    pub fn authorize(&self, caller: Caller, key: &Key, need: Need) -> Result<()> {
        let Some(obj) = self.object(key)? else {
            // The root: anyone may list and create; only the node's owner "owns" it.
            return match need {
                Need::Own if !access::is_privileged(caller, self.uid) => {
                    Err(Error::Denied("the node's root".into()))
                }
                _ => Ok(()),
            };
        };
        let what = match key {
            Key::Message(n) | Key::Scratch(n) => n.as_str(),
            Key::Parts { msg, .. } | Key::Part { msg, .. } => msg.as_str(),
            Key::Root => "/",
        };
        access::decide(caller, self.uid, obj, need, what)
    }

    pub(super) fn authorize_ino(&self, caller: Caller, ino: u64, need: Need) -> Result<Key> {
        let key = self.key(ino)?;
        self.authorize(caller, &key, need)?;
        Ok(key)
    }

    /// `access(2)`: what the caller could do, by the same rules the operations apply.
    pub fn access(&self, caller: Caller, ino: u64, mask: i32) -> Result<()> {
        let key = self.key(ino)?;
        if mask & (libc::R_OK | libc::X_OK) != 0 {
            self.authorize(caller, &key, Need::Read)?;
        }
        if mask & libc::W_OK != 0 {
            self.authorize(caller, &key, Need::Write)?;
        }
        Ok(())
    }

    /// A scratch file made by the daemon for another user belongs to that user, so the
    /// kernel and `stat` agree with the rules (only possible when the daemon is root).
    pub(super) fn give_to(&self, file: &fs::File, caller: Caller) {
        if self.uid == 0 && caller.uid != 0 {
            use std::os::fd::AsRawFd;
            // SAFETY: fchown on a descriptor we own.
            let rc = unsafe { libc::fchown(file.as_raw_fd(), caller.uid, caller.gid) };
            if rc != 0 {
                log::warn!(
                    "fchown of a scratch file to uid {}: {}",
                    caller.uid,
                    std::io::Error::last_os_error()
                );
            }
        }
    }

    /// A chown the caller may make: root and the node's owner anything; an owner only to itself and its own group
    /// (what `cp -a` and `tar` do when they restore their own files).
    pub(super) fn check_chown(
        &self,
        caller: Caller,
        obj: Object,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> Result<()> {
        if access::is_privileged(caller, self.uid) {
            return Ok(());
        }
        let same_uid = uid.is_none_or(|u| u == obj.uid && u == caller.uid);
        let same_gid = gid.is_none_or(|g| g == obj.gid || g == caller.gid);
        if same_uid && same_gid && caller.uid == obj.uid {
            Ok(())
        } else {
            access::may_chown(caller)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::ROOT;
    use crate::node::Node;

    fn fs() -> (tempfile::TempDir, MailFs) {
        let dir = tempfile::tempdir().unwrap();
        let node = Node::open(&dir.path().join("spool"), &[]).unwrap();
        (dir, MailFs::new(node))
    }

    const ALICE: Caller = Caller { uid: 1000, gid: 1000 };
    const BOB: Caller = Caller { uid: 1001, gid: 1001 };

    /// The file system layer applies SPEC §10 by itself, with no kernel in the loop.
    #[test]
    fn operations_check_the_caller() {
        let (_d, fs) = fs();
        let (attr, fh) = fs.create(ALICE, ROOT, "a.eml", 0o644, libc::O_WRONLY).unwrap();
        fs.write(fh, 0, b"To: x@example.org\n\nhi\n").unwrap();
        fs.flush(fh).unwrap();
        fs.release(fh);
        let ino = attr.ino.0;
        let shown = fs.getattr(ino).unwrap();
        assert_eq!((shown.uid, shown.gid, shown.perm), (1000, 1000, 0o600));

        let eacces = |r: Result<()>| assert_eq!(r.unwrap_err().errno(), libc::EACCES);
        eacces(fs.open(BOB, ino, libc::O_RDONLY).map(drop));
        eacces(fs.getxattr(BOB, ino, "user.env_to").map(drop));
        eacces(fs.setxattr(BOB, ino, "user.env_to", b"evil@example.org"));
        eacces(fs.setxattr(BOB, ino, "user.is_ready", b"1"));
        eacces(fs.unlink(BOB, ROOT, "a.eml"));
        eacces(fs.rename(BOB, (ROOT, "a.eml"), (ROOT, "b.eml"), false));
        eacces(
            fs.lookup(
                BOB,
                fs.lookup(ALICE, ROOT, "a.eml.parts").unwrap().ino.0,
                "Body.txt",
            )
            .map(drop),
        );
        let e = fs
            .setxattr(BOB, ROOT, "user.sendmail_path", b"/tmp/x")
            .unwrap_err();
        assert_eq!(e.errno(), libc::EPERM);
        let e = fs
            .setattr(BOB, ino, None, (Some(1001), None), None, None, None)
            .unwrap_err();
        assert_eq!(e.errno(), libc::EPERM);

        // The owner and root may.
        fs.setxattr(ALICE, ino, "user.env_to", b"x@example.org").unwrap();
        let h = fs.open(Caller { uid: 0, gid: 0 }, ino, libc::O_RDONLY).unwrap();
        assert_eq!(fs.read(h, 0, 4).unwrap(), b"To: ");
        fs.release(h);
        // Shared with the group by chmod: the group reads, and still cannot remove.
        fs.setattr(ALICE, ino, Some(0o640), (None, None), None, None, None)
            .unwrap();
        let carol = Caller { uid: 1002, gid: 1000 };
        fs.release(fs.open(carol, ino, libc::O_RDONLY).unwrap());
        eacces(fs.open(carol, ino, libc::O_WRONLY).map(drop));
        eacces(fs.unlink(carol, ROOT, "a.eml"));
        fs.unlink(ALICE, ROOT, "a.eml").unwrap();
    }
}
