//! What a `setfattr` on a Draft at rest said about where it has been: a restore from a dump
//! (`rsync -a` without attributes, then `setfattr --restore=DUMP`) sets `user.first_try_date`,
//! then `user.is_ready=1`, then `user.status=Sent`, one line at a time. Each mailfs attribute
//! is refused (EPERM) and changes nothing, but a value that says the message went out where
//! it came from is remembered here for a minute, so that the `is_ready=1` a few lines later
//! does not send it a second time (audit-23 C5). A user probing EPERM by hand waits a minute.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How long such a value holds back `is_ready=1`.
pub const CLAIM_TTL: Duration = Duration::from_secs(60);
/// At most this many remembered at once (the oldest go first).
const MAX_CLAIMS: usize = 1024;

#[derive(Default)]
pub struct Claims {
    recent: Mutex<HashMap<String, (Instant, String)>>,
}

impl Claims {
    /// Remembers that `user.KEY=VALUE`, which says the message went out, was given for `msg`.
    pub fn note(&self, msg: &str, key: &str, value: &[u8]) {
        let mut recent = self.recent.lock();
        let now = Instant::now();
        recent.retain(|_, (at, _)| now.duration_since(*at) < CLAIM_TTL);
        if recent.len() >= MAX_CLAIMS
            && let Some(oldest) = recent
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(k, _)| k.clone())
        {
            recent.remove(&oldest);
        }
        let shown = String::from_utf8_lossy(value);
        let shown: String = shown
            .lines()
            .next()
            .unwrap_or_default()
            .chars()
            .take(64)
            .collect();
        recent.insert(msg.to_string(), (now, format!("user.{key}={shown}")));
    }

    /// The claim given for `msg` within [`CLAIM_TTL`], with how long ago.
    pub fn recent(&self, msg: &str) -> Option<(Duration, String)> {
        let recent = self.recent.lock();
        let (at, what) = recent.get(msg)?;
        let age = at.elapsed();
        (age < CLAIM_TTL).then(|| (age, what.clone()))
    }

    /// The message's name was taken by another message (removed, renamed over).
    pub fn forget(&self, msg: &str) {
        self.recent.lock().remove(msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_is_kept_for_its_message_only_and_bounded() {
        let c = Claims::default();
        c.note("a.eml", "status", b"Sent");
        assert_eq!(c.recent("a.eml").map(|(_, w)| w), Some("user.status=Sent".into()));
        assert!(c.recent("b.eml").is_none());
        for i in 0..MAX_CLAIMS + 10 {
            c.note(&format!("m{i}.eml"), "try_count", b"1");
        }
        assert!(c.recent.lock().len() <= MAX_CLAIMS);
        c.forget("m1029.eml");
        assert!(c.recent("m1029.eml").is_none());
    }
}
