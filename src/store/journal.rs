//! The log (SPEC §8): one entry per attempt and per final outcome, a file in `log_dir` whose
//! content is one readable line and whose xattrs carry the date, the Message-ID and the text
//! under the names the node's `log_*_attr` attributes give.

use std::ffi::CString;

use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::model::attrs::{NodeAttrs, fmt_date, now_secs};
use crate::store::spool::{Spool, now_nanos};

static SEQ: AtomicU64 = AtomicU64::new(0);

/// Writes one log entry. Logging must never stop mail, so failures only go to the process log.
pub fn write(spool: &Spool, node: &NodeAttrs, message_id: &str, text: &str) {
    let dir = node
        .log_dir
        .as_ref()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| spool.default_log_dir());
    if let Err(e) = write_in(spool, &dir, node, message_id, text) {
        log::warn!("cannot write log entry in {}: {e}", dir.display());
    }
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
    let attrs = |f: &std::fs::File, at: &Path| {
        for (attr, value) in [
            (&node.log_date_attr, date.as_str()),
            (&node.log_msgid_attr, message_id),
            (&node.log_info_attr, clean.as_str()),
        ] {
            set_xattr(f, at, &format!("user.{attr}"), value.as_bytes());
        }
    };
    // A spare inode of the spool filled and renamed into place costs no inode allocation
    // (see store/spool/spare.rs) and the entry appears whole; a new file when there is none
    // or the log dir is on another file system.
    let spare = same_fs(spool.root(), dir)
        .then(|| spool.reuse_spare(line.as_bytes()))
        .flatten();
    if let Some((spare, f)) = spare {
        attrs(&f, &spare);
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
    f.write_all(line.as_bytes())?;
    attrs(&f, &path);
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

/// Sets an attribute through the open entry (no path lookup: this runs for every attempt).
fn set_xattr(f: &std::fs::File, path: &Path, name: &str, value: &[u8]) {
    let Ok(n) = CString::new(name) else {
        return;
    };
    // SAFETY: the descriptor is open for the call, the name is NUL-terminated and the value
    // pointer/length describe `value`.
    let rc = unsafe { libc::fsetxattr(f.as_raw_fd(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if rc != 0 {
        log::debug!(
            "setxattr {name} on {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use crate::model::attrs::{MessageAttrs, NodeAttrs};
    use crate::store::spool::Spool;

    /// An entry written into a recycled inode (a replaced attribute file) holds exactly its
    /// line and its attributes, nothing of the file it was before.
    #[test]
    fn an_entry_in_a_recycled_inode_is_whole() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let mut a = MessageAttrs::new_draft();
        a.last_try_msg = "x".repeat(2000);
        spool.write_attrs_grouped("m.eml", &a).unwrap();
        let old = std::fs::metadata(spool.struct_path("m.eml")).unwrap().ino();
        a.hold = true;
        spool.write_attrs_grouped("m.eml", &a).unwrap();
        let node = NodeAttrs::default();
        super::write(&spool, &node, "<id@x>", "m.eml attempt 1: ok\nsecond line");
        let entries: Vec<_> = std::fs::read_dir(spool.default_log_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(entries.len(), 1);
        let e = &entries[0];
        assert_eq!(
            std::fs::metadata(e).unwrap().ino(),
            old,
            "the replaced inode was reused"
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
        // The message's attributes are the new version, whole.
        assert!(spool.read_attrs("m.eml").unwrap().unwrap().0.hold);
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
