//! The file system's side of SPEC §10: the owner and mode of each node kind, and the one
//! check every operation makes before it touches anything ([`MailFs::authorize`]).

use std::fs;
use std::os::unix::fs::MetadataExt;

use super::{Handle, Key, MailFs, not_found};
use crate::error::{Error, Result};
use crate::model::access::{self, Caller, Need, Object};

/// Whether the process that made a request is in group `gid` through its supplementary
/// groups, which FUSE does not pass: read from `/proc`, only when a decision depends on it. A
/// process whose file system ids are not the request's (gone, its pid reused) is in none.
fn in_supplementary_group(caller: Caller, gid: u32) -> bool {
    if caller.pid == 0 {
        return false;
    }
    let Ok(status) = fs::read_to_string(format!("/proc/{}/status", caller.pid)) else {
        return false;
    };
    // Real, effective, saved and file system ids; FUSE reports the last.
    let fs_id = |line: Option<&str>| line.and_then(|l| l.split_whitespace().nth(3)?.parse::<u32>().ok());
    let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name));
    fs_id(field("Uid:")) == Some(caller.uid)
        && fs_id(field("Gid:")) == Some(caller.gid)
        && field("Groups:").is_some_and(|g| g.split_whitespace().any(|x| x.parse() == Ok(gid)))
}

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
            Key::Message(msg) | Key::Parts { msg, .. } | Key::Part { msg, .. } | Key::Staged { msg, .. } => {
                let (owner, mode, _) = self.message_shown(msg)?;
                let owner = owner.unwrap_or(crate::model::attrs::Owner {
                    uid: self.uid,
                    gid: self.gid,
                });
                Some(Object {
                    uid: owner.uid,
                    gid: owner.gid,
                    mode,
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
            Key::Parts { msg, .. } | Key::Part { msg, .. } | Key::Staged { msg, .. } => msg.as_str(),
            Key::Root => "/",
        };
        let in_group = |gid| in_supplementary_group(caller, gid);
        access::decide(caller, self.uid, obj, need, what, in_group).map_err(|e| match key {
            // A message that is gone (removed by a sender's expiry or another process while
            // the kernel still had its name) reads as nobody's but the node's: ENOENT, not
            // EACCES, or `rm -f` of it would fail. Checked only on a denial: no cost otherwise.
            Key::Message(m)
            | Key::Parts { msg: m, .. }
            | Key::Part { msg: m, .. }
            | Key::Staged { msg: m, .. }
                if fs::symlink_metadata(self.node.spool.eml_path(m)).is_err() =>
            {
                Error::NotFound(m.clone())
            }
            _ => e,
        })
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
            // A ready message and an attached message's parts refuse every write, also the
            // owner's and root's: `test -w` says so too (without `default_permissions` the
            // kernel asks here rather than reading the 0400 that stat shows).
            match &key {
                Key::Message(m) if self.message_attrs(m)?.frozen() => {
                    return Err(Error::Frozen(m.clone()));
                }
                Key::Parts { msg, nest } | Key::Part { msg, nest, .. } => self.check_composable(msg, nest)?,
                _ => {}
            }
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

    /// A scratch file about to become a message: its spool file is made the spool owner's
    /// alone, as every message's is (SPEC §9). The message's owner and mode live in its
    /// attributes; left as they were, a user's `mv tmp X.eml` or `sed -i` put a file of
    /// theirs, 0644 under umask 022, among the spool's messages.
    pub(super) fn take_back(&self, path: &std::path::Path) -> std::io::Result<()> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)?;
        std::os::unix::fs::fchown(&file, Some(self.uid), Some(self.gid))?;
        file.set_permissions(fs::Permissions::from_mode(0o600))
    }

    /// A part writer's rebuild at close (or the restore after a refused write) acts on the
    /// message by name, later than the open: checked again for the user who opened it, since
    /// the name may by now be another user's message (theirs removed, another made in its place).
    pub(super) fn recheck_writer(&self, caller: Caller, msg: &str) -> Result<()> {
        let key = Key::Parts {
            msg: msg.to_string(),
            nest: Vec::new(),
        };
        self.authorize(caller, &key, Need::Write)
    }

    /// Open handles follow a rename, so their writes and what their close does (the frozen
    /// check, a part's rebuild, a template) go to what they were opened on, not to whatever
    /// later takes the old name.
    pub(super) fn retarget_handles(&self, from: &Key, to: &Key) {
        let handles: Vec<_> = self.handles.lock().values().cloned().collect();
        for h in handles {
            match (&mut *h.lock(), from, to) {
                (Handle::File { key, .. }, _, _) if key == from => *key = to.clone(),
                (Handle::PartWrite(w), Key::Message(a), Key::Message(b)) if w.msg == *a => {
                    w.msg = b.clone();
                }
                (
                    Handle::PartWrite(w),
                    Key::Part {
                        msg: m,
                        nest,
                        name: a,
                    },
                    Key::Part { name: b, .. },
                ) if w.is(m, nest, a) => w.name = b.clone(),
                _ => {}
            }
        }
    }

    /// A message renamed to a scratch name stays its owner's: the spool file becomes theirs
    /// (scratch files are owned by their file; only possible when the daemon is root).
    pub(super) fn hand_over(&self, path: &std::path::Path, owner: Option<crate::model::attrs::Owner>) {
        if let Some(o) = owner
            && self.uid == 0
            && o.uid != 0
            && let Err(e) = std::os::unix::fs::lchown(path, Some(o.uid), Some(o.gid))
        {
            log::warn!("chown of {} to uid {}: {e}", path.display(), o.uid);
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

/// Whether two open files are the same file (device and inode).
pub(super) fn same_file(a: &fs::File, b: &fs::File) -> bool {
    match (a.metadata(), b.metadata()) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::ROOT;
    use crate::store::node::Node;

    fn fs() -> (tempfile::TempDir, MailFs) {
        let dir = tempfile::tempdir().unwrap();
        let node = Node::open(&dir.path().join("spool"), &[]).unwrap();
        (dir, MailFs::new(node))
    }

    const ALICE: Caller = Caller {
        uid: 1000,
        gid: 1000,
        pid: 0,
    };
    const BOB: Caller = Caller {
        uid: 1001,
        gid: 1001,
        pid: 0,
    };

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
        let h = fs
            .open(
                Caller {
                    uid: 0,
                    gid: 0,
                    pid: 0,
                },
                ino,
                libc::O_RDONLY,
            )
            .unwrap();
        assert_eq!(fs.read(h, 0, 4).unwrap(), b"To: ");
        fs.release(h);
        // Shared with the group by chmod: the group reads, and still cannot remove.
        fs.setattr(ALICE, ino, Some(0o640), (None, None), None, None, None)
            .unwrap();
        let carol = Caller {
            uid: 1002,
            gid: 1000,
            pid: 0,
        };
        fs.release(fs.open(carol, ino, libc::O_RDONLY).unwrap());
        eacces(fs.open(carol, ino, libc::O_WRONLY).map(drop));
        eacces(fs.unlink(carol, ROOT, "a.eml"));
        fs.unlink(ALICE, ROOT, "a.eml").unwrap();
    }
}

/// What a handle does later than its open (a part writer's rebuild at close, a template
/// written at close, an open file's owner) never reaches another user's message that took
/// the name meanwhile.
#[cfg(test)]
mod deferred_tests {
    use super::*;
    use crate::fs::ROOT;
    use crate::store::node::Node;

    const ALICE: Caller = Caller {
        uid: 1000,
        gid: 1000,
        pid: 0,
    };
    const BOB: Caller = Caller {
        uid: 1001,
        gid: 1001,
        pid: 0,
    };

    fn fs() -> (tempfile::TempDir, MailFs) {
        let dir = tempfile::tempdir().unwrap();
        let node = Node::open(&dir.path().join("spool"), &[]).unwrap();
        (dir, MailFs::new(node))
    }

    fn write_new(fs: &MailFs, who: Caller, name: &str, body: &[u8]) -> u64 {
        let (attr, fh) = fs.create(who, ROOT, name, 0o600, libc::O_WRONLY).unwrap();
        fs.write(fh, 0, body).unwrap();
        fs.flush(fh).unwrap();
        fs.release(fh);
        attr.ino.0
    }

    fn content(fs: &MailFs, name: &str) -> Vec<u8> {
        std::fs::read(fs.node.spool.eml_path(name)).unwrap()
    }

    const BOBS: &[u8] = b"To: boss@example.org\nSubject: report\n\nBob's own words\n";

    #[test]
    fn a_part_writer_never_rebuilds_another_users_message() {
        let (_d, fs) = fs();
        write_new(&fs, ALICE, "s.eml", b"To: x@example.org\n\nalice\n");
        let parts = fs.lookup(ALICE, ROOT, "s.eml.parts").unwrap().ino.0;
        let body = fs.lookup(ALICE, parts, "Body.txt").unwrap().ino.0;
        let w = fs.open(ALICE, body, libc::O_WRONLY).unwrap();
        fs.unlink(ALICE, ROOT, "s.eml").unwrap();
        write_new(&fs, BOB, "s.eml", BOBS);
        fs.write(w, 0, b"injected by alice\n").unwrap();
        assert_eq!(fs.flush(w).unwrap_err().errno(), libc::EACCES);
        fs.release(w);
        assert_eq!(content(&fs, "s.eml"), BOBS);

        // A refused write restores the writer's backup by name: not over Bob's message either.
        write_new(&fs, ALICE, "r.eml", b"To: x@example.org\n\nalice\n");
        let parts = fs.lookup(ALICE, ROOT, "r.eml.parts").unwrap().ino.0;
        let body = fs.lookup(ALICE, parts, "Body.txt").unwrap().ino.0;
        let w = fs.open(ALICE, body, libc::O_WRONLY).unwrap();
        fs.write(w, 0, b"first\n").unwrap();
        fs.flush(w).unwrap();
        fs.unlink(ALICE, ROOT, "r.eml").unwrap();
        write_new(&fs, BOB, "r.eml", BOBS);
        assert!(fs.write(w, 0, &[0xff]).is_err());
        fs.release(w);
        assert_eq!(content(&fs, "r.eml"), BOBS);
    }

    #[test]
    fn a_template_at_close_goes_only_into_its_own_file() {
        let (_d, fs) = fs();
        for away in ["rm", "mv"] {
            let (_, fh) = fs.create(ALICE, ROOT, "t.eml", 0o600, libc::O_WRONLY).unwrap();
            if away == "rm" {
                fs.unlink(ALICE, ROOT, "t.eml").unwrap();
            } else {
                fs.rename(ALICE, (ROOT, "t.eml"), (ROOT, "t.bak"), false).unwrap();
            }
            write_new(&fs, BOB, "t.eml", BOBS);
            fs.flush(fh).unwrap();
            fs.release(fh);
            assert_eq!(content(&fs, "t.eml"), BOBS, "{away}");
            fs.unlink(BOB, ROOT, "t.eml").unwrap();
        }
    }

    #[test]
    fn handles_follow_a_rename() {
        let (_d, fs) = fs();
        let ino = write_new(
            &fs,
            ALICE,
            "a.eml",
            b"To: x@example.org\nFrom: a@example.com\n\nhi\n",
        );
        let fh = fs.open(ALICE, ino, libc::O_WRONLY).unwrap();
        fs.rename(ALICE, (ROOT, "a.eml"), (ROOT, "b.eml"), false).unwrap();
        let b = fs.lookup(ALICE, ROOT, "b.eml").unwrap();
        assert_eq!(b.uid, ALICE.uid);
        let b = b.ino.0;
        fs.setxattr(ALICE, b, "user.is_ready", b"1").unwrap();
        // Ready is read-only, also through a descriptor opened under the old name.
        assert_eq!(fs.write(fh, 0, b"changed").unwrap_err().errno(), libc::EACCES);
        fs.release(fh);
    }

    /// Scratch files belong to their file's owner: an existing one is not given to whoever
    /// opens it with O_CREAT, and a message renamed to a scratch name stays its owner's.
    #[test]
    fn scratch_files_keep_their_owner() {
        if unsafe { libc::geteuid() } != 0 {
            return; // giving files away needs root, as the daemon of a shared node is
        }
        let (_d, fs) = fs();
        // Alice lets everyone write it; Bob's O_CREAT open (racing the kernel's lookup) must
        // not make it his.
        let (attr, fh) = fs.create(ALICE, ROOT, "n.txt", 0o666, libc::O_WRONLY).unwrap();
        fs.release(fh);
        assert_eq!(attr.uid, ALICE.uid);
        fs.setattr(ALICE, attr.ino.0, Some(0o666), (None, None), None, None, None)
            .unwrap();
        let (attr, fh) = fs
            .create(BOB, ROOT, "n.txt", 0o644, libc::O_WRONLY | libc::O_CREAT)
            .unwrap();
        fs.release(fh);
        assert_eq!(attr.uid, ALICE.uid);
        assert_eq!(fs.getattr(attr.ino.0).unwrap().uid, ALICE.uid);

        write_new(&fs, ALICE, "m.eml", b"To: x@example.org\n\nhi\n");
        fs.rename(ALICE, (ROOT, "m.eml"), (ROOT, "m.bak"), false).unwrap();
        let ino = fs.lookup(ALICE, ROOT, "m.bak").unwrap().ino.0;
        assert_eq!(fs.getattr(ino).unwrap().uid, ALICE.uid);
        let h = fs.open(ALICE, ino, libc::O_RDONLY).unwrap();
        assert_eq!(fs.read(h, 0, 4).unwrap(), b"To: ");
        fs.release(h);
        assert_eq!(
            fs.open(BOB, ino, libc::O_RDONLY).unwrap_err().errno(),
            libc::EACCES
        );
        fs.unlink(ALICE, ROOT, "m.bak").unwrap();
    }
}
