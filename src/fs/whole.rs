//! SPEC §9: a message's content is there whole or not at all. A message made by `create`
//! whose bytes could not all be written (ENOSPC, EFBIG on a full or small spool), or whose
//! template could not be written (`touch new.eml` on a full disk), is removed again when the
//! file is closed, and the close reports the error: no half-written or empty Draft stays.

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;

use super::{MailFs, access};
use crate::error::{Error, Result};

impl MailFs {
    /// Removes the message `name` this handle created, if the name is still the file the
    /// handle wrote (it may have been renamed or replaced since), and returns `err`.
    pub(super) fn discard_new_message(&self, name: &str, file: &File, err: Error) -> Result<()> {
        let _ns = self.ns.lock();
        let path = self.node.spool.eml_path(name);
        let still_ours = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .is_ok_and(|f| access::same_file(&f, file));
        if still_ours {
            log::warn!("{name}: its content could not be written whole ({err}); removed");
            self.node.spool.delete_message(name)?;
            let _ = self.node.spool.sync_root();
            self.forget_message(name);
        }
        Err(err)
    }
}
