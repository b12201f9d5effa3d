//! The log (SPEC §8): one entry per attempt and per final outcome, a file in `log_dir` whose
//! content is one readable line and whose xattrs carry the date, the Message-ID and the text
//! under the names the node's `log_*_attr` attributes give.

use std::ffi::CString;

use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::model::attrs::{NodeAttrs, fmt_date, now_secs};
use crate::store::spool::{Spool, Want, now_nanos};

static SEQ: AtomicU64 = AtomicU64::new(0);

/// Writes one log entry. Logging must never stop mail, so failures only go to the process log,
/// except a full disk, which is also returned: the senders then wait for space (no entry is
/// left half-written, and none is dropped for an attempt they made).
pub fn write(spool: &Spool, node: &NodeAttrs, message_id: &str, text: &str) -> std::io::Result<()> {
    let dir = node
        .log_dir
        .as_ref()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| spool.default_log_dir());
    match write_in(spool, &dir, node, message_id, text) {
        Ok(()) => Ok(()),
        Err(e) => {
            log::warn!("cannot write log entry in {}: {e}", dir.display());
            if is_full(&e) { Err(e) } else { Ok(()) }
        }
    }
}

/// A full disk or an exhausted quota.
pub fn is_full(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

fn write_in(
    spool: &Spool,
    dir: &Path,
    node: &NodeAttrs,
    message_id: &str,
    text: &str,
) -> std::io::Result<()> {
    // The default log dir is in the spool, a configured one anywhere: neither may be a link
    // or writable by another user, or entries would land where that user chose (SPEC §9).
    crate::store::spool::ensure_private_dir(dir).map_err(|e| std::io::Error::other(e.to_string()))?;
    let now = now_secs();
    let date = fmt_date(now);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let name = format!("{}-{}-{seq}.log", now_nanos(), std::process::id());
    let path = dir.join(name);
    // One line, whatever the server or the user put in the text.
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let line = format!("{date} {message_id} {clean}\n");
    // An entry without its attributes for want of space is no entry; a file system without
    // user xattrs still gets the line.
    let attrs = |f: &std::fs::File, at: &Path| -> std::io::Result<()> {
        for (attr, value) in [
            (&node.log_date_attr, date.as_str()),
            (&node.log_msgid_attr, cut(message_id, MSGID_MAX)),
            (&node.log_info_attr, cut(&clean, INFO_MAX)),
        ] {
            match set_bounded(f, &format!("user.{attr}"), value) {
                Err(e) if is_full(&e) => return Err(e),
                Err(e) => log::debug!("setxattr user.{attr} on {}: {e}", at.display()),
                Ok(()) => {}
            }
        }
        Ok(())
    };
    // A spare inode of the spool filled and renamed into place costs no inode allocation
    // (see store/spool/spare.rs) and the entry appears whole; a new file when there is none
    // or the log dir is on another file system.
    let spare = same_fs(spool.root(), dir)
        .then(|| spool.reuse_spare(line.as_bytes(), Want::Empty))
        .flatten();
    if let Some((spare, f)) = spare {
        if let Err(e) = attrs(&f, &spare) {
            let _ = std::fs::remove_file(&spare);
            return Err(e);
        }
        match std::fs::rename(&spare, &path) {
            Ok(()) => {
                log::info!("{message_id} {clean}");
                return Ok(());
            }
            Err(_) => {
                let _ = std::fs::remove_file(&spare);
            }
        }
    }
    let mut f = crate::store::spool::create_private(&path)?;
    if let Err(e) = f.write_all(line.as_bytes()).and_then(|()| attrs(&f, &path)) {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    log::info!("{message_id} {clean}");
    Ok(())
}

/// Whether a file in `a` can be renamed into `b`.
fn same_fs(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev(),
        _ => false,
    }
}

/// The most of the text and of the Message-ID an entry's attributes hold; the file's line
/// holds them whole. ext4 keeps all of a file's attributes in one block (4 KiB), and a larger
/// value is refused with ENOSPC, which is also what a full disk answers: one reply of 200
/// recipients was taken for a full disk, and the senders waited for space for ever.
const INFO_MAX: usize = 2048;
const MSGID_MAX: usize = 998;
/// What is tried when even that is refused (a file system with smaller blocks).
const SHORT_MAX: usize = 200;

use crate::model::names::cut;

/// Sets an attribute of an entry, shortened once more if the file system refuses its size:
/// only a value it cannot take even short says the disk is full.
fn set_bounded(f: &std::fs::File, name: &str, value: &str) -> std::io::Result<()> {
    match set_xattr(f, name, value.as_bytes()) {
        Err(e) if value.len() > SHORT_MAX && (is_full(&e) || e.raw_os_error() == Some(libc::E2BIG)) => {
            set_xattr(f, name, cut(value, SHORT_MAX).as_bytes())
        }
        r => r,
    }
}

/// Sets an attribute through the open entry (no path lookup: this runs for every attempt).
fn set_xattr(f: &std::fs::File, name: &str, value: &[u8]) -> std::io::Result<()> {
    let n = CString::new(name).map_err(std::io::Error::other)?;
    // SAFETY: the descriptor is open for the call, the name is NUL-terminated and the value
    // pointer/length describe `value`.
    let rc = unsafe { libc::fsetxattr(f.as_raw_fd(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use crate::model::attrs::NodeAttrs;
    use crate::store::spool::Spool;

    /// An entry written into a recycled inode (a taken ready marker, here one holding bytes)
    /// holds exactly its line and its attributes, nothing of the file it was before.
    #[test]
    fn an_entry_in_a_recycled_inode_is_whole() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        std::fs::write(spool.eml_path("m.eml"), b"x").unwrap();
        spool.mark_ready("m.eml").unwrap();
        let marker = dir.path().join(".ready").join("m.eml");
        std::fs::write(&marker, "x".repeat(2000)).unwrap();
        let old = std::fs::metadata(&marker).unwrap().ino();
        assert_eq!(spool.take_ready_markers(), vec!["m.eml".to_string()]);
        let node = NodeAttrs::default();
        super::write(&spool, &node, "<id@x>", "m.eml attempt 1: ok\nsecond line").unwrap();
        let entries: Vec<_> = std::fs::read_dir(spool.default_log_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(entries.len(), 1);
        let e = &entries[0];
        assert_eq!(
            std::fs::metadata(e).unwrap().ino(),
            old,
            "the taken marker was reused"
        );
        let text = std::fs::read_to_string(e).unwrap();
        assert!(
            text.ends_with(" <id@x> m.eml attempt 1: ok second line\n"),
            "{text:?}"
        );
        assert_eq!(text.lines().count(), 1);
        let info = xattr_of(e, &format!("user.{}", node.log_info_attr));
        assert_eq!(info, "m.eml attempt 1: ok second line");
        assert_eq!(xattr_of(e, &format!("user.{}", node.log_msgid_attr)), "<id@x>");
    }

    /// audit-15 D0: a text over ~4 KiB (one reply per recipient of 200) could not be set as
    /// an attribute on ext4 (ENOSPC), which was taken for a full disk: sending stopped.
    #[test]
    fn a_long_text_is_kept_whole_in_the_line_and_cut_in_the_attribute() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let node = NodeAttrs::default();
        let text: String = (0..200)
            .map(|i| format!("user{i}@big.example accepted (250 2.1.5 Ok); "))
            .collect();
        assert!(text.len() > 8000);
        let id = format!("<{}@x>", "i".repeat(3000));
        super::write(&spool, &node, &id, &text).unwrap();
        let entries: Vec<_> = std::fs::read_dir(spool.default_log_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(entries.len(), 1);
        let line = std::fs::read_to_string(&entries[0]).unwrap();
        assert!(line.ends_with(&format!("{id} {text}\n")), "the line is whole");
        let info = xattr_of(&entries[0], &format!("user.{}", node.log_info_attr));
        assert!(
            info.len() <= super::INFO_MAX && text.starts_with(&info),
            "{}",
            info.len()
        );
        let msgid = xattr_of(&entries[0], &format!("user.{}", node.log_msgid_attr));
        assert!(msgid.len() <= super::MSGID_MAX && id.starts_with(&msgid));
    }

    #[test]
    fn cut_keeps_whole_characters() {
        assert_eq!(super::cut("héllo", 2), "h");
        assert_eq!(super::cut("héllo", 3), "hé");
        assert_eq!(super::cut("abc", 10), "abc");
    }

    fn xattr_of(p: &std::path::Path, name: &str) -> String {
        let out = std::process::Command::new("getfattr")
            .args(["--only-values", "-n", name])
            .arg(p)
            .output()
            .unwrap();
        assert!(out.status.success(), "getfattr {name}");
        String::from_utf8(out.stdout).unwrap()
    }
}
