//! Per-message locks (an `flock` on the `.eml`) and the `.ready` markers through which a
//! process tells another's senders that a message became ready.

use super::*;

/// How long a change waits for the spool's attribute lock before it gives up (EBUSY, 75).
const ATTRS_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

impl Spool {
    /// Takes the spool's attribute lock ([`AttrsLock`]), waiting for it: an flock on the
    /// `.ready` directory, held only while one message's attributes are read and written
    /// back, so that neither of two changes made at once undoes the other (audit-10 J2: a
    /// `mailfs hold` racing `setfattr user.is_ready=1` left the message a Draft).
    pub fn attrs_lock(&self) -> Result<AttrsLock> {
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(self.root.join(READY_DIR))?;
        // Waited for a bounded time: the holder may be a process that is stopped (Ctrl-Z on
        // a `mailfs hold`) or stuck, and a FUSE request must not wait for it for ever
        // (audit-12 M1). A change holds the lock for one message's read and write.
        let start = std::time::Instant::now();
        let mut pause = std::time::Duration::from_micros(200);
        loop {
            // SAFETY: flock on a valid descriptor owned by `dir`.
            if unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(AttrsLock { _dir: dir });
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EWOULDBLOCK) | Some(libc::EINTR) => {}
                _ => return Err(e.into()),
            }
            if start.elapsed() >= ATTRS_LOCK_WAIT {
                return Err(Error::Busy(format!(
                    "{}: another process is changing the spool's attributes",
                    self.root.display()
                )));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(std::time::Duration::from_millis(10));
        }
    }

    /// Tries to take a message's lock without waiting: `Ok(None)` when another sender has it.
    pub fn try_lock(&self, name: &str) -> Result<Option<MessageLock>> {
        // Read-write because NFS emulates flock with fcntl locks, which need it for an
        // exclusive lock; a file we may only read is still lockable locally.
        let path = self.eml_path(name);
        let opened = match OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        {
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => open_read(&path),
            other => other,
        };
        let file = match opened {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotFound(name.to_string()));
            }
            Err(e) => return Err(e.into()),
        };
        // SAFETY: flock on a valid descriptor owned by `file`.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            Ok(Some(MessageLock { _file: file }))
        } else {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                Ok(None)
            } else {
                Err(e.into())
            }
        }
    }

    /// Tells the senders of every process on this spool that a message is ready (or due now).
    pub fn mark_ready(&self, name: &str) -> Result<()> {
        let p = self.root.join(READY_DIR).join(name);
        // Never through a link: a planted `.ready/NAME -> victim` must not truncate or create
        // the victim. An existing marker is left as it is.
        match OpenOptions::new()
            .write(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&p)
        {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                log::warn!("{}: a symbolic link in the spool; removed", p.display());
                let _ = fs::remove_file(&p);
                Err(Error::Io(e))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Takes the ready markers left by other processes.
    pub fn take_ready_markers(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(rd) = fs::read_dir(self.root.join(READY_DIR)) {
            for e in rd.flatten() {
                if let Some(name) = e.file_name().to_str()
                    && self.take_marker(&e.path())
                {
                    out.push(name.to_string());
                }
            }
        }
        out
    }
}
