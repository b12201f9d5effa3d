//! The FUSE adapter: each callback parses its arguments, calls [`MailFs`], and replies. The one
//! place where an [`Error`] becomes an errno is [`errno`].

use std::ffi::OsStr;
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, BsdFileFlags, Errno, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, KernelConfig,
    LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use crate::error::Error;
use crate::fs::MailFs;
use crate::fs::passthrough::Answer;
use crate::model::access::Caller;

/// Attributes change underneath the kernel (senders, other processes): never cache them.
const TTL: Duration = crate::fs::ATTR_TTL;
/// Names in the root are cached as long as attributes: a listing (READDIRPLUS) then answers
/// `ls -l` without a LOOKUP per name. Names mailfs removes or renames itself go from the
/// kernel's cache at once (the VFS drops them); a change to the spool directory by another
/// process is pushed when it happens (`fs::watch`), and this bounds it if the notice is lost.
const ENTRY_TTL: Duration = crate::fs::ATTR_TTL;

/// How long the kernel may keep a name in `parent`. Names in parts directories are never
/// cached: whether a part exists follows the message's content (a part removed and made
/// again shows only once written), which only a LOOKUP tells.
fn entry_ttl(parent: u64) -> Duration {
    if parent == crate::fs::ROOT {
        ENTRY_TTL
    } else {
        Duration::ZERO
    }
}

pub struct FuseAdapter {
    pub fs: MailFs,
}

fn errno(op: &str, e: &Error) -> Errno {
    if e.is_routine() {
        log::debug!("{op}: {e}");
    } else {
        log::info!("{op}: {e}");
    }
    Errno::from_i32(e.errno())
}

/// The process that made the request: every operation is checked against it (SPEC §10).
fn caller(req: &Request) -> Caller {
    Caller {
        uid: req.uid(),
        gid: req.gid(),
        pid: req.pid(),
    }
}

fn name_str(name: &OsStr) -> Result<&str, Error> {
    name.to_str()
        .ok_or_else(|| Error::invalid("name", "file names must be UTF-8"))
}

fn time(t: Option<TimeOrNow>) -> Option<SystemTime> {
    t.map(|t| match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    })
}

impl FuseAdapter {
    /// An entry reply: the kernel holds a reference to the inode from here on.
    fn entry(&self, parent: u64, a: &fuser::FileAttr, reply: ReplyEntry) {
        self.fs.hold(a.ino.0);
        reply.entry_with_ttls(&TTL, &entry_ttl(parent), a, Generation(0));
    }
}

fn reply_xattr(value: Vec<u8>, size: u32, reply: ReplyXattr) {
    if size == 0 {
        reply.size(value.len() as u32);
    } else if value.len() > size as usize {
        reply.error(Errno::from_i32(libc::ERANGE));
    } else {
        reply.data(&value);
    }
}

impl Filesystem for FuseAdapter {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_readahead(1 << 20);
        let _ = config.set_max_write(1 << 20);
        // O_TRUNC comes with the open rather than as a truncate before it, so a writer of an
        // existing message truncates its own copy, not the message (SPEC §9).
        if let Err(e) = config.add_capabilities(fuser::InitFlags::FUSE_ATOMIC_O_TRUNC) {
            log::warn!("the kernel lacks atomic O_TRUNC ({e:?}): an overwrite truncates in place");
        }
        // Reads of messages straight from their spool files (src/fs/passthrough.rs):
        // registering a backing file needs CAP_SYS_ADMIN, so only a root mount asks for it.
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 && std::env::var_os("MAILFS_NO_PASSTHROUGH").is_none() {
            let _ = config.set_max_stack_depth(1);
            match config.add_capabilities(fuser::InitFlags::FUSE_PASSTHROUGH) {
                Ok(()) => {
                    self.fs.enable_passthrough();
                    log::info!("reads of messages pass through to their spool files");
                }
                Err(_) => log::info!("the kernel has no FUSE passthrough: reads go through mailfs"),
            }
        }
        // No file here ever has a set-user/group-ID bit or a security.capability (modes are
        // masked to 0o777, only user.* attributes exist), so there is never a privilege to
        // kill on write; saying the server handles it (HANDLE_KILLPRIV_V2) stops the kernel
        // asking GETXATTR security.capability before every WRITE (one round trip each).
        if let Err(e) = config.add_capabilities(fuser::InitFlags::FUSE_HANDLE_KILLPRIV_V2) {
            log::info!(
                "the kernel lacks HANDLE_KILLPRIV_V2 ({e:?}): each write asks for security.capability"
            );
        }
        // Listings carry attributes when the lister goes on to stat the names (`ls -l`),
        // as the kernel judges (AUTO): a plain `ls` keeps the cheaper READDIR.
        let plus = fuser::InitFlags::FUSE_DO_READDIRPLUS | fuser::InitFlags::FUSE_READDIRPLUS_AUTO;
        if let Err(e) = config.add_capabilities(plus) {
            log::info!("the kernel lacks READDIRPLUS ({e:?}): `ls -l` looks up each name");
        }
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match name_str(name).and_then(|n| self.fs.lookup(caller(req), parent.0, n)) {
            Ok(a) => self.entry(parent.0, &a, reply),
            Err(e) => reply.error(errno("lookup", &e)),
        }
    }

    /// BATCH_FORGET comes here too (fuser's default splits it).
    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.fs.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.fs.getattr(ino.0) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(errno("getattr", &e)),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        // ftruncate by a writer of a message's copy truncates the copy, not the message.
        let size = match (size, fh) {
            (Some(n), Some(fh)) => match self.fs.truncate_copy(fh.0, n) {
                Ok(true) => None,
                Ok(false) => size,
                Err(e) => return reply.error(errno("setattr", &e)),
            },
            _ => size,
        };
        match self.fs.setattr(
            caller(req),
            ino.0,
            mode,
            (uid, gid),
            size,
            time(atime),
            time(mtime),
        ) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(errno("setattr", &e)),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        match name_str(name).and_then(|n| self.fs.mkdir(caller(req), parent.0, n)) {
            Ok(a) => self.entry(parent.0, &a, reply),
            Err(e) => reply.error(errno("mkdir", &e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        match name_str(name).and_then(|n| self.fs.mknod(caller(req), parent.0, n, mode)) {
            Ok(a) => self.entry(parent.0, &a, reply),
            Err(e) => reply.error(errno("mknod", &e)),
        }
    }

    fn link(&self, _req: &Request, _ino: INodeNo, _newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        let e = Error::NotPermitted(format!(
            "{}: a message has one name (its attributes go with it); copy it instead",
            newname.to_string_lossy()
        ));
        reply.error(errno("link", &e));
    }

    fn symlink(
        &self,
        _req: &Request,
        _parent: INodeNo,
        link_name: &OsStr,
        _target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        let e = Error::NotPermitted(format!(
            "{}: the node holds only regular files",
            link_name.to_string_lossy()
        ));
        reply.error(errno("symlink", &e));
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match name_str(name).and_then(|n| self.fs.unlink(caller(req), parent.0, n)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno("unlink", &e)),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match name_str(name).and_then(|n| self.fs.rmdir(parent.0, n)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno("rmdir", &e)),
        }
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            reply.error(Errno::from_i32(libc::EINVAL));
            return;
        }
        let noreplace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        let res = name_str(name)
            .and_then(|a| name_str(newname).map(|b| (a, b)))
            .and_then(|(a, b)| {
                self.fs
                    .rename(caller(req), (parent.0, a), (newparent.0, b), noreplace)
            });
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno("rename", &e)),
        }
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.fs.open(caller(req), ino.0, flags.0) {
            Ok(fh) => {
                self.fs.opened_by(fh, req.pid());
                let mut keep = if self.fs.keeps_cache(fh) {
                    FopenFlags::FOPEN_KEEP_CACHE
                } else {
                    FopenFlags::empty()
                };
                // A writer of a message's copy reads and writes past the page cache: the
                // message's pages and size are the old content's until the copy is put in place.
                if self.fs.writes_copy(fh) {
                    keep = FopenFlags::FOPEN_DIRECT_IO;
                }
                let new = self.fs.backing_wanted(ino.0, fh, flags.0).and_then(|f| {
                    reply
                        .open_backing(&f)
                        .inspect_err(|e| log::debug!("open_backing: {e}"))
                        .ok()
                        .map(|id| (f, id))
                });
                self.fs.answer_open(ino.0, fh, flags.0, new, |a| match a {
                    Answer::Plain => reply.opened(FileHandle(fh), keep),
                    Answer::Through(id) => reply.opened_passthrough(FileHandle(fh), FopenFlags::empty(), id),
                    Answer::Stale => reply.error(Errno::from_i32(libc::ESTALE)),
                })
            }
            Err(e) => reply.error(errno("open", &e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.fs.read(fh.0, offset, size) {
            Ok(d) => reply.data(&d),
            Err(e) => reply.error(errno("read", &e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.fs.write(fh.0, offset, data) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(errno("write", &e)),
        }
    }

    fn flush(&self, req: &Request, ino: INodeNo, fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        // Only the opener's close puts a writer's bytes in place (src/fs/opener.rs).
        match self.fs.flush_by(fh.0, req.pid(), ino.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno("flush", &e)),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.fs.release(fh.0);
        reply.ok();
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        match self.fs.fsync(fh.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno("fsync", &e)),
        }
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.fs.opendir(caller(req), ino.0) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(errno("opendir", &e)),
        }
    }

    fn readdir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let res = self.fs.readdir(fh.0, offset, |ino, next, kind, name| {
            reply.add(INodeNo(ino), next, kind, name)
        });
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno("readdir", &e)),
        }
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let ttl = entry_ttl(ino.0);
        let res = self.fs.readdirplus(fh.0, offset, |next, name, attr| {
            reply.add(attr.ino, next, name, &ttl, attr, Generation(0))
        });
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno("readdirplus", &e)),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.fs.release(fh.0);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match self.fs.statfs() {
            Ok(st) => reply.statfs(
                st.f_blocks,
                st.f_bfree,
                st.f_bavail,
                st.f_files,
                st.f_ffree,
                st.f_bsize as u32,
                255,
                st.f_frsize as u32,
            ),
            Err(e) => reply.error(errno("statfs", &e)),
        }
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        match name_str(name).and_then(|n| self.fs.setxattr_from(caller(req), req.pid(), ino.0, n, value)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno("setxattr", &e)),
        }
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        match name_str(name).and_then(|n| self.fs.getxattr(caller(req), ino.0, n)) {
            Ok(v) => reply_xattr(v, size, reply),
            Err(e) => reply.error(errno("getxattr", &e)),
        }
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        match self.fs.listxattr(caller(req), ino.0) {
            Ok(v) => reply_xattr(v, size, reply),
            Err(e) => reply.error(errno("listxattr", &e)),
        }
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match name_str(name).and_then(|n| self.fs.removexattr(caller(req), ino.0, n)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno("removexattr", &e)),
        }
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        match self.fs.access(caller(req), ino.0, mask.bits()) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno("access", &e)),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        match name_str(name).and_then(|n| self.fs.create(caller(req), parent.0, n, mode & !umask, flags)) {
            Ok((attr, fh)) => {
                self.fs.opened_by(fh, req.pid());
                self.fs.created_plain(attr.ino.0, fh);
                self.fs.hold(attr.ino.0);
                let direct = if self.fs.writes_new_message(fh) {
                    FopenFlags::FOPEN_DIRECT_IO
                } else {
                    FopenFlags::empty()
                };
                reply.created(&entry_ttl(parent.0), &attr, Generation(0), FileHandle(fh), direct)
            }
            Err(e) => reply.error(errno("create", &e)),
        }
    }
}
