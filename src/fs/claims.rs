//! What a `setfattr --restore=DUMP` said about where a Draft has been. A restore from a dump
//! (`rsync -a` without attributes, then `setfattr --restore`) sets, one line at a time, in the
//! dump's order, `user.expire_date` and `user.first_try_date`, then `user.is_ready=1`, then
//! `user.status=Sent`. Each mailfs attribute is refused (EPERM) and changes nothing, but the
//! `is_ready=1` a few lines later sent the message a second time (audit-23 C5). A well-formed
//! value that says the message went out is remembered here with the process (thread group)
//! that gave it; an `is_ready=1` from that same process within a minute is refused (EALREADY). Another
//! process — a user's next `setfattr` — is not held back, so probing EPERM by hand changes
//! nothing (SPEC §4).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How long such a value holds back that process's `is_ready=1`.
const CLAIM_TTL: Duration = Duration::from_secs(60);
/// At most this many remembered at once (the oldest go first).
const MAX_CLAIMS: usize = 1024;

#[derive(Default)]
pub struct Claims {
    recent: Mutex<HashMap<String, (Instant, u32, String)>>,
    /// Messages made (CREATE) in the last minute, with the process that made them: a value
    /// saying the message went out from that same process is a restore writing it
    /// (`rsync -aX --inplace` sets attributes by path after closing the file it made), and
    /// marks it for good, as tar's and cp -a's do (audit-25 F1).
    made: Mutex<HashMap<String, (Instant, u32)>>,
}

/// A value of a mailfs attribute that a message shows only once it went to the senders.
pub(super) fn says_went_out(key: &str, value: &[u8]) -> bool {
    let Ok(v) = std::str::from_utf8(value) else {
        return false;
    };
    match key {
        "status" => matches!(v, "Pending" | "Sent" | "Error"),
        "first_try_date" | "last_try_date" | "try_until_date" | "expire_date" => {
            chrono::DateTime::parse_from_rfc3339(v).is_ok()
        }
        "try_count" => v.parse::<u32>().is_ok_and(|n| n > 0),
        "last_try_status" => matches!(v, "TempFail" | "Fail"),
        _ => false,
    }
}

impl Claims {
    /// Notes that process `tgid` made the message `msg` now. Called at every CREATE of a
    /// message: the map is swept only when full, not at each call.
    pub fn created(&self, msg: &str, tgid: u32) {
        let mut made = self.made.lock();
        let now = Instant::now();
        if made.len() >= MAX_CLAIMS {
            made.retain(|_, (at, _)| now.duration_since(*at) < CLAIM_TTL);
        }
        if made.len() >= MAX_CLAIMS
            && let Some(oldest) = made.iter().min_by_key(|(_, (at, _))| *at).map(|(k, _)| k.clone())
        {
            made.remove(&oldest);
        }
        made.insert(msg.to_string(), (now, tgid));
    }

    /// Whether `user.KEY=VALUE` says the message went out and comes from the process that made
    /// `msg` within the last minute.
    pub fn said_by_its_maker(&self, msg: &str, tgid: u32, key: &str, value: &[u8]) -> bool {
        says_went_out(key, value)
            && self
                .made
                .lock()
                .get(msg)
                .is_some_and(|(at, by)| *by == tgid && at.elapsed() < CLAIM_TTL)
    }

    /// Remembers, when `user.KEY=VALUE` (refused) says `msg` went out, that process `pid`
    /// (a thread group) said so.
    pub fn note(&self, msg: &str, pid: u32, key: &str, value: &[u8]) {
        if !says_went_out(key, value) {
            return;
        }
        let mut recent = self.recent.lock();
        let now = Instant::now();
        recent.retain(|_, (at, _, _)| now.duration_since(*at) < CLAIM_TTL);
        if recent.len() >= MAX_CLAIMS
            && let Some(oldest) = recent
                .iter()
                .min_by_key(|(_, (at, _, _))| *at)
                .map(|(k, _)| k.clone())
        {
            recent.remove(&oldest);
        }
        let shown = String::from_utf8_lossy(value);
        recent.insert(msg.to_string(), (now, pid, format!("user.{key}={shown}")));
    }

    /// Whether any process said something of `msg` within the last minute.
    pub fn any_for(&self, msg: &str) -> bool {
        self.recent
            .lock()
            .get(msg)
            .is_some_and(|(at, _, _)| at.elapsed() < CLAIM_TTL)
    }

    /// What `pid` said of `msg` within the last minute, with how long ago.
    pub fn recent(&self, msg: &str, pid: u32) -> Option<(Duration, String)> {
        let recent = self.recent.lock();
        let (at, by, what) = recent.get(msg)?;
        let age = at.elapsed();
        (*by == pid && age < CLAIM_TTL).then(|| (age, what.clone()))
    }

    /// The message's name was freed (removed): a new message there owes nothing to it.
    pub fn forget(&self, msg: &str) {
        self.recent.lock().remove(msg);
        self.made.lock().remove(msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_is_kept_for_its_message_and_process_only_and_bounded() {
        let c = Claims::default();
        c.note("a.eml", 7, "status", b"Sent");
        assert_eq!(
            c.recent("a.eml", 7).map(|(_, w)| w),
            Some("user.status=Sent".into())
        );
        assert!(c.recent("a.eml", 8).is_none(), "another process");
        assert!(c.any_for("a.eml") && !c.any_for("b.eml"));
        assert!(c.recent("b.eml", 7).is_none());
        // Probing EPERM with values no sent message shows claims nothing.
        for (k, v) in [
            ("status", &b"x"[..]),
            ("first_try_date", b"x"),
            ("try_count", b"0"),
            ("recipients", b"x"),
        ] {
            c.note("p.eml", 7, k, v);
        }
        assert!(c.recent("p.eml", 7).is_none());
        c.note("d.eml", 7, "first_try_date", b"2026-11-24T12:00:00Z");
        assert!(c.recent("d.eml", 7).is_some());
        for i in 0..MAX_CLAIMS + 10 {
            c.note(&format!("m{i}.eml"), 7, "try_count", b"1");
        }
        assert!(c.recent.lock().len() <= MAX_CLAIMS);
        c.forget("m1029.eml");
        assert!(c.recent("m1029.eml", 7).is_none());
        // A went-out value from the process that made the message is a restore writing it.
        c.created("r.eml", 9);
        assert!(c.said_by_its_maker("r.eml", 9, "status", b"Sent"));
        assert!(
            !c.said_by_its_maker("r.eml", 10, "status", b"Sent"),
            "another process"
        );
        assert!(
            !c.said_by_its_maker("r.eml", 9, "status", b"x"),
            "not a value a sent one shows"
        );
        assert!(!c.said_by_its_maker("s.eml", 9, "status", b"Sent"));
    }
}
