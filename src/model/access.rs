//! Who may do what on a node (SPEC §10): a pure function of the caller, the node's owner and
//! the object's owner and mode. No I/O, so every rule is unit-tested without a kernel; the
//! file system asks [`decide`] before every operation, whether or not the kernel also checks
//! (`default_permissions`).

use crate::error::{Error, Result};

/// The process asking: from the FUSE request, a socket's SO_PEERCRED, or this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    /// The process (thread) asking, for its supplementary groups, which a FUSE request does
    /// not carry; 0 when there is none to ask about.
    pub pid: u32,
}

impl Caller {
    /// This process's effective identity (the commands run without a mount).
    pub fn current() -> Caller {
        // SAFETY: geteuid/getegid cannot fail.
        unsafe {
            Caller {
                uid: libc::geteuid(),
                gid: libc::getegid(),
                pid: 0,
            }
        }
    }
}

/// What an operation needs from the object it touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Read content, parts or attributes (`r`).
    Read,
    /// Change content or ordinary attributes (`w`).
    Write,
    /// What only the owner decides: remove, rename, make ready, hold, chmod. As in a sticky
    /// directory, sharing a Draft with the group never lets the group cancel or send it.
    Own,
}

/// The owner and permission bits of a message, a parts tree or a scratch file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Object {
    pub uid: u32,
    pub gid: u32,
    pub mode: u16,
}

/// Whether `caller` runs the node: root or the user who serves it.
pub fn is_privileged(caller: Caller, node_owner: u32) -> bool {
    caller.uid == 0 || caller.uid == node_owner
}

/// Allowed, or EACCES with a reason that names the object. `in_group` says whether the caller
/// belongs to a group through its supplementary groups (`usermod -aG`), as the kernel's own
/// check counts them; it is asked only when the answer matters.
pub fn decide(
    caller: Caller,
    node_owner: u32,
    obj: Object,
    need: Need,
    what: &str,
    in_group: impl FnOnce(u32) -> bool,
) -> Result<()> {
    if is_privileged(caller, node_owner) {
        return Ok(());
    }
    let bits = if caller.uid == obj.uid {
        (obj.mode >> 6) & 7
    } else if caller.gid == obj.gid || ((obj.mode >> 3) & 7 != 0 && in_group(obj.gid)) {
        (obj.mode >> 3) & 7
    } else {
        obj.mode & 7
    };
    let ok = match need {
        Need::Read => bits & 4 != 0,
        Need::Write => bits & 2 != 0,
        Need::Own => caller.uid == obj.uid,
    };
    if ok {
        Ok(())
    } else {
        Err(Error::Denied(format!(
            "{what} belongs to uid {}; uid {} may not {}",
            obj.uid,
            caller.uid,
            match need {
                Need::Read => "read it",
                Need::Write => "change it",
                Need::Own => "remove, rename, send or hold it",
            }
        )))
    }
}

/// Node attributes: only root and the node's owner may set them (EPERM, SPEC §3 and §10).
pub fn may_set_node_attrs(caller: Caller, node_owner: u32) -> Result<()> {
    if is_privileged(caller, node_owner) {
        Ok(())
    } else {
        Err(Error::NotPermitted(format!(
            "only root and the node's owner (uid {node_owner}) may set node attributes"
        )))
    }
}

/// chown: root only, as in POSIX (an unprivileged chown would give mail away or take it).
pub fn may_chown(caller: Caller) -> Result<()> {
    if caller.uid == 0 {
        Ok(())
    } else {
        Err(Error::NotPermitted(
            "only root may change a message's owner".into(),
        ))
    }
}

/// The mode bits `chmod` may give a message (a new one is always 0600, SPEC §10): read and write for owner and group only. Others never
/// get a message (the mount is shared by every local user), and nothing is executable.
pub fn message_mode(requested: u32) -> u16 {
    (requested & 0o660) as u16 | 0o600
}

/// The mode `stat` shows: read-only once frozen (SPEC §10: 0600, 0400 once ready).
pub fn shown_mode(mode: u16, frozen: bool) -> u16 {
    if frozen { mode & 0o444 } else { mode }
}

/// A directory's mode from its file's: `x` wherever `r` is.
pub fn dir_mode(file_mode: u16) -> u16 {
    file_mode | ((file_mode & 0o444) >> 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: u32 = 0;
    fn c(uid: u32, gid: u32) -> Caller {
        Caller { uid, gid, pid: 0 }
    }
    fn decide(c: Caller, node: u32, o: Object, need: Need, what: &str) -> Result<()> {
        super::decide(c, node, o, need, what, |_| false)
    }
    fn obj(uid: u32, gid: u32, mode: u16) -> Object {
        Object { uid, gid, mode }
    }

    #[test]
    fn another_user_gets_eacces() {
        let alice = obj(1000, 1000, 0o600);
        for need in [Need::Read, Need::Write, Need::Own] {
            let e = decide(c(65534, 65534), NODE, alice, need, "a.eml").unwrap_err();
            assert_eq!(e.errno(), libc::EACCES, "{need:?}");
        }
    }

    #[test]
    fn owner_root_and_node_owner_may_all() {
        let alice = obj(1000, 1000, 0o600);
        for need in [Need::Read, Need::Write, Need::Own] {
            decide(c(1000, 1000), NODE, alice, need, "a").unwrap();
            decide(c(0, 0), NODE, alice, need, "a").unwrap();
            decide(c(500, 500), 500, alice, need, "a").unwrap();
        }
    }

    #[test]
    fn group_sharing_reads_and_writes_but_never_owns() {
        let shared = obj(1000, 100, 0o660);
        let bob = c(1001, 100);
        decide(bob, NODE, shared, Need::Read, "a").unwrap();
        decide(bob, NODE, shared, Need::Write, "a").unwrap();
        assert!(decide(bob, NODE, shared, Need::Own, "a").is_err());
        let read_only = obj(1000, 100, 0o640);
        decide(bob, NODE, read_only, Need::Read, "a").unwrap();
        assert!(decide(bob, NODE, read_only, Need::Write, "a").is_err());
    }

    /// A member of the message's group through a supplementary group shares it like one
    /// whose primary group it is (audit-10 J-e); the membership is not asked for when the
    /// group bits give nothing.
    #[test]
    fn a_supplementary_group_shares_like_the_primary_one() {
        let shared = obj(1000, 100, 0o640);
        let carol = c(1002, 1002);
        assert!(decide(carol, NODE, shared, Need::Read, "a").is_err());
        super::decide(carol, NODE, shared, Need::Read, "a", |g| g == 100).unwrap();
        assert!(super::decide(carol, NODE, shared, Need::Write, "a", |g| g == 100).is_err());
        assert!(super::decide(carol, NODE, shared, Need::Own, "a", |g| g == 100).is_err());
        assert!(super::decide(carol, NODE, shared, Need::Read, "a", |g| g == 101).is_err());
        let private = obj(1000, 100, 0o600);
        let asked = std::cell::Cell::new(false);
        let r = super::decide(carol, NODE, private, Need::Read, "a", |_| {
            asked.set(true);
            true
        });
        assert!(r.is_err() && !asked.get());
    }

    #[test]
    fn owner_bits_apply_to_the_owner() {
        // A frozen message shows 0400: its owner still reads it and may not write it
        // through the mode (the frozen rule refuses writes separately).
        let frozen = obj(1000, 1000, 0o400);
        decide(c(1000, 1000), NODE, frozen, Need::Read, "a").unwrap();
        assert!(decide(c(1000, 1000), NODE, frozen, Need::Write, "a").is_err());
        decide(c(1000, 1000), NODE, frozen, Need::Own, "a").unwrap();
    }

    #[test]
    fn node_attributes_and_chown() {
        assert_eq!(
            may_set_node_attrs(c(1000, 1000), 0).unwrap_err().errno(),
            libc::EPERM
        );
        may_set_node_attrs(c(0, 0), 1000).unwrap();
        may_set_node_attrs(c(1000, 1000), 1000).unwrap();
        assert_eq!(may_chown(c(1000, 1000)).unwrap_err().errno(), libc::EPERM);
        may_chown(c(0, 0)).unwrap();
    }

    #[test]
    fn modes() {
        assert_eq!(message_mode(0o777), 0o660);
        assert_eq!(message_mode(0o644), 0o640);
        assert_eq!(message_mode(0o000), 0o600);
        assert_eq!(shown_mode(0o600, true), 0o400);
        assert_eq!(shown_mode(0o660, false), 0o660);
        assert_eq!(dir_mode(0o600), 0o700);
        assert_eq!(dir_mode(0o440), 0o550);
    }
}
