//! The fs layer driven without a kernel: a [`MailFs`] on a tempdir spool, called the way
//! `fuse.rs` calls it, with a caller for each request. What only the kernel shows (page cache,
//! `default_permissions`, dentry caching) stays in the mounted tests (`tests/*.rs`).

use super::{MailFs, ROOT};
use crate::error::Result;
use crate::model::access::Caller;
use crate::store::node::Node;

mod files;
mod frozen;
mod locks;
mod modes;
mod parts;
mod ready;
mod rename;
mod writer;
mod xattrs;

/// The node's owner (tests run as the daemon's user, whoever that is: root here, the user
/// who mounted otherwise); both may do everything.
pub(super) fn daemon() -> Caller {
    Caller::current()
}
/// Two unprivileged users of a node shared with `allow_other`.
pub(super) const ALICE: Caller = Caller {
    uid: 1000,
    gid: 1000,
    pid: 0,
};
pub(super) const BOB: Caller = Caller {
    uid: 1001,
    gid: 1001,
    pid: 0,
};

pub(super) const PLAIN: &[u8] =
    b"From: alice@example.com\nTo: bob@example.org\nSubject: hello\n\nfirst line\n";

/// A spool in a temp dir and the file system over it; the spool goes with it.
pub(super) struct Harness {
    _dir: tempfile::TempDir,
    pub fs: MailFs,
}

/// The errno an operation answered with (what the FUSE adapter replies), or 0 when it worked.
pub(super) fn errno<T>(r: Result<T>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => e.errno(),
    }
}

impl Harness {
    pub fn new() -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = Node::open(&dir.path().join("spool"), &[]).expect("spool");
        Harness {
            _dir: dir,
            fs: MailFs::new(node),
        }
    }

    /// `cat > NAME` by `who`: create, write, close. Returns the inode.
    pub fn write_new(&self, who: Caller, name: &str, bytes: &[u8]) -> u64 {
        let (attr, fh) = self
            .fs
            .create(
                who,
                ROOT,
                name,
                0o644,
                libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
            )
            .expect("create");
        if !bytes.is_empty() {
            assert_eq!(self.fs.write(fh, 0, bytes).expect("write") as usize, bytes.len());
        }
        self.fs.flush(fh).expect("flush");
        self.fs.release(fh);
        attr.ino.0
    }

    /// The bytes of a message as stored in the spool (not through the file system).
    pub fn eml(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.fs.node.spool.eml_path(name)).expect("spool file")
    }

    pub fn exists(&self, name: &str) -> bool {
        self.fs.node.spool.eml_path(name).exists()
    }

    pub fn ino(&self, who: Caller, parent: u64, name: &str) -> Result<u64> {
        self.fs.lookup(who, parent, name).map(|a| a.ino.0)
    }

    /// `cat` through the file system: open, read to the end, close.
    pub fn read(&self, who: Caller, ino: u64) -> Result<Vec<u8>> {
        let fh = self.fs.open(who, ino, libc::O_RDONLY)?;
        let mut out = Vec::new();
        loop {
            let chunk = self.fs.read(fh, out.len() as u64, 4096);
            match chunk {
                Ok(c) if c.is_empty() => break,
                Ok(c) => out.extend_from_slice(&c),
                Err(e) => {
                    self.fs.release(fh);
                    return Err(e);
                }
            }
        }
        self.fs.release(fh);
        Ok(out)
    }

    /// `ls -a` of a directory inode.
    pub fn ls(&self, who: Caller, ino: u64) -> Result<Vec<String>> {
        let fh = self.fs.opendir(who, ino)?;
        let mut names = Vec::new();
        let r = self.fs.readdir(fh, 0, |_, _, _, name| {
            names.push(name.to_string());
            false
        });
        self.fs.release(fh);
        r.map(|()| names)
    }

    /// The `.parts` directory of a message.
    pub fn parts(&self, who: Caller, msg: &str) -> u64 {
        self.ino(who, ROOT, &format!("{msg}.parts")).expect("parts dir")
    }

    /// A part's bytes through the parts view.
    pub fn part(&self, who: Caller, msg: &str, name: &str) -> Result<Vec<u8>> {
        let ino = self.ino(who, self.parts(who, msg), name)?;
        self.read(who, ino)
    }

    /// `cat FILE > X.eml.parts/NAME` (create with O_TRUNC, one write, close): the first
    /// error of the sequence, with the handle always released.
    pub fn write_part(&self, who: Caller, msg: &str, name: &str, bytes: &[u8]) -> Result<()> {
        let parts = self.ino(who, ROOT, &format!("{msg}.parts"))?;
        let (_, fh) = self.fs.create(
            who,
            parts,
            name,
            0o644,
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
        )?;
        let r = self
            .fs
            .write(fh, 0, bytes)
            .map(drop)
            .and_then(|()| self.fs.flush(fh));
        self.fs.release(fh);
        r
    }

    pub fn getx(&self, who: Caller, ino: u64, name: &str) -> Result<String> {
        self.fs
            .getxattr(who, ino, name)
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    /// The names `getfattr -d` lists.
    pub fn listx(&self, who: Caller, ino: u64) -> Vec<String> {
        let raw = self.fs.listxattr(who, ino).expect("listxattr");
        raw.split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    }

    /// `setfattr -n user.is_ready -v 1` by the owner: the message becomes Pending.
    pub fn make_ready(&self, who: Caller, name: &str) {
        let ino = self.ino(who, ROOT, name).expect("message");
        self.fs
            .setxattr(who, ino, "user.is_ready", b"1")
            .expect("is_ready");
    }
}

/// Parses a message back with mail-parser, as a reader of the spool would.
pub(super) fn parse(bytes: &[u8]) -> mail_parser::Message<'_> {
    mail_parser::MessageParser::default()
        .parse(bytes)
        .expect("a message mail-parser reads")
}
