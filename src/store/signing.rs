//! DKIM signing of a message where the spool keeps it: the mail code signs bytes
//! ([`crate::mail::dkim`]), this room knows which file that is and replaces it durably.

use crate::error::Result;
use crate::mail::dkim::{UNSIGNED, mark_unsigned, sign_file};
use crate::model::attrs::{MessageAttrs, NodeAttrs};
use crate::store::spool::Spool;

/// Signs the message `name` in place (the caller holds what keeps it from changing).
pub fn sign_in_place(spool: &Spool, attrs: &NodeAttrs, name: &str, message_id: &str) -> Result<bool> {
    let path = spool.eml_path(name);
    let tmp = spool.tmp_path();
    let signed = sign_file(attrs, &path, &tmp, message_id, true)?;
    if signed {
        if let Err(e) = spool.rename_noted(&tmp, &path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.into());
        }
        spool.sync_root()?;
    }
    Ok(signed)
}

/// Before an attempt: signs a message that is still waiting for its signature. `Err` holds
/// the reason it must wait longer (for `last_try_msg`); the attributes are updated either way
/// and must be stored by the caller.
pub fn sign_pending(
    spool: &Spool,
    cfg: &NodeAttrs,
    name: &str,
    a: &mut MessageAttrs,
) -> std::result::Result<(), String> {
    if !a.internal.contains_key(UNSIGNED) {
        return Ok(());
    }
    match sign_in_place(spool, cfg, name, &a.message_id) {
        Ok(_) => {
            a.internal.remove(UNSIGNED);
            a.last_try_msg.clear();
            Ok(())
        }
        Err(e) => {
            mark_unsigned(a, &e);
            Err(a.last_try_msg.clone())
        }
    }
}
