//! How much a cached message costs in memory. The caches hold up to `CACHE_CAP` messages by
//! count; any local user can make the attributes and headers of their own messages large
//! (64 KiB per `user.*` attribute, as many as they like; a To header of thousands of
//! addresses), so that a full cache of such messages would take gigabytes of the serving
//! process. Entries heavier than [`HEAVY`] are read again when needed instead of kept.

use crate::mail::content::HeaderInfo;
use crate::model::attrs::MessageAttrs;

/// Above this, an entry is not cached: ordinary messages (a few recipients, a few notes)
/// weigh well under it, so the cache holds at most `CACHE_CAP` times this much.
pub const HEAVY: usize = 8 << 10;

fn strings<'a>(v: impl IntoIterator<Item = &'a String>) -> usize {
    v.into_iter().map(String::len).sum()
}

pub fn attrs(a: &MessageAttrs) -> usize {
    a.message_id.len()
        + a.last_try_msg.len()
        + a.env_from.as_ref().map_or(0, String::len)
        + a.env_to.as_ref().map_or(0, strings)
        + a.recipients
            .iter()
            .map(|r| r.address.len() + r.last_reply.len())
            .sum::<usize>()
        + a.user.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
        + a.internal.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
}

pub fn head(h: &HeaderInfo) -> usize {
    h.message_id.as_ref().map_or(0, String::len)
        + h.from.as_ref().map_or(0, String::len)
        + strings(&h.recipients)
        + strings(&h.invalid)
        + strings(&h.invalid_recipients)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_user_metadata_is_heavy() {
        let mut a = MessageAttrs::new_draft();
        assert!(attrs(&a) < HEAVY);
        a.user.insert("pad".into(), vec![b'x'; 65536]);
        assert!(attrs(&a) > HEAVY);
        let h = HeaderInfo::parse(b"To: a@example.org\n\n");
        assert!(head(&h) < HEAVY);
        let many: Vec<String> = (0..2000).map(|i| format!("u{i}@example.org")).collect();
        let h = HeaderInfo::parse(format!("To: {}\n\n", many.join(", ")).as_bytes());
        assert!(head(&h) > HEAVY);
    }
}
