//! How an attempt's outcomes change a message (SPEC §4, §6): pure functions of the message,
//! the node's settings and the time, so the rules (per-recipient status, the retry schedule,
//! max_retries, queue_time, expiry) are tested without a server or a clock.

use crate::model::attrs::{MessageAttrs, NodeAttrs, RcptStatus, Status, TryStatus};

use super::transport::RcptOutcome;

/// A reply as it is kept: a server's (or a command's) control characters become spaces, so
/// that `mailfs queue` and `getfattr` never write a peer's NUL or escape sequence to a terminal.
fn printable(s: &str) -> String {
    // Also the invisible format characters that reorder or break what a terminal shows
    // (bidi overrides and isolates, line and paragraph separators, zero-width ones).
    let shown = |c: char| {
        !c.is_control()
            && !matches!(c, '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
    };
    s.chars().map(|c| if shown(c) { c } else { ' ' }).collect()
}

/// Folds one attempt's outcomes into the message attributes (SPEC §4). Returns the wait
/// in seconds until the next try when there is one: `next_try_date` is that rounded down to
/// whole seconds (so it is never later than the try), the caller's timer uses it unrounded.
pub fn apply_outcomes(
    attrs: &mut MessageAttrs,
    cfg: &NodeAttrs,
    idx: &[usize],
    outcomes: &[RcptOutcome],
    now: i64,
) -> Option<f64> {
    let first = *attrs.first_try_date.get_or_insert(now);
    let until = attrs.queue_start(first) + cfg.queue_time as i64;
    attrs.try_until_date = Some(until);
    attrs.last_try_date = Some(now);
    // This attempt's first temporary reply and last permanent one.
    let mut temp_msg = None;
    let mut perm_msg = None;
    for (&i, o) in idx.iter().zip(outcomes) {
        let r = &mut attrs.recipients[i];
        r.tries += 1;
        r.last_reply = printable(o.reply());
        match o {
            RcptOutcome::Accepted(_) => r.status = RcptStatus::Sent,
            RcptOutcome::TempFail(t) => {
                let t = printable(t);
                let retries = r.tries.saturating_sub(1);
                if now >= until {
                    r.status = RcptStatus::Failed;
                    r.last_reply = format!("{t} (gave up: queue_time reached)");
                    perm_msg = Some(r.last_reply.clone());
                } else if cfg.max_retries > 0 && retries >= cfg.max_retries {
                    r.status = RcptStatus::Failed;
                    r.last_reply = format!("{t} (gave up after {retries} retries: max_retries)");
                    perm_msg = Some(r.last_reply.clone());
                } else {
                    r.status = RcptStatus::TempFail;
                    temp_msg.get_or_insert_with(|| r.last_reply.clone());
                }
            }
            RcptOutcome::PermFail(_) => {
                r.status = RcptStatus::Failed;
                perm_msg = Some(r.last_reply.clone());
            }
        }
    }
    // Jobs go per recipient domain; the message's try count is that of its most-tried recipient.
    attrs.try_count = attrs.recipients.iter().map(|r| r.tries).max().unwrap_or(0);
    // The last try's status is the message's, not that of the job that happened to run last
    // (one domain's 250 after another's 451): a message that waits for a retry says TempFail
    // (SPEC §4), one with a recipient that failed for good and none to retry says Fail.
    let reply_of = |status: RcptStatus| {
        attrs
            .recipients
            .iter()
            .find(|r| r.status == status)
            .map(|r| r.last_reply.clone())
    };
    let (status, msg) = if let Some(open) = reply_of(RcptStatus::TempFail) {
        (TryStatus::TempFail, temp_msg.unwrap_or(open))
    } else if let Some(failed) = reply_of(RcptStatus::Failed) {
        (TryStatus::Fail, perm_msg.unwrap_or(failed))
    } else {
        let first = outcomes.first().map(|o| printable(o.reply()));
        (TryStatus::None, first.unwrap_or_default())
    };
    attrs.last_try_status = status;
    attrs.last_try_msg = msg;
    attrs.status = attrs.status_from_recipients();
    let open_tries = attrs
        .recipients
        .iter()
        .filter(|r| r.status == RcptStatus::TempFail)
        .map(|r| r.tries)
        .max();
    let mut wait = None;
    if let Some(tries) = open_tries {
        // Retry number `tries` is next; the last try happens at the deadline, not after it.
        let w = crate::model::lists::retry_wait(&cfg.retry_time, tries).min((until - now).max(0) as f64);
        attrs.next_try_date = Some(now + w.floor() as i64);
        wait = Some(w);
    } else {
        attrs.next_try_date = None;
    }
    if matches!(attrs.status, Status::Sent | Status::Error) {
        attrs.expire_date = Some(now + cfg.expire_time as i64);
        attrs.next_try_date = None;
        wait = None;
    }
    wait
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::attrs::Recipient;

    fn msg(rcpts: &[&str]) -> MessageAttrs {
        let mut m = MessageAttrs::new_draft();
        m.status = Status::Pending;
        m.is_ready = true;
        m.recipients = rcpts.iter().map(|r| Recipient::new(r.to_string())).collect();
        m
    }

    #[test]
    fn per_recipient_outcomes() {
        let cfg = NodeAttrs::default();
        let mut m = msg(&["a@x.org", "b@x.org", "c@x.org"]);
        let out = vec![
            RcptOutcome::Accepted("250 ok".into()),
            RcptOutcome::TempFail("451 later".into()),
            RcptOutcome::PermFail("550 no".into()),
        ];
        apply_outcomes(&mut m, &cfg, &[0, 1, 2], &out, 1000);
        assert_eq!(m.recipients[0].status, RcptStatus::Sent);
        assert_eq!(m.recipients[1].status, RcptStatus::TempFail);
        assert_eq!(m.recipients[2].status, RcptStatus::Failed);
        assert_eq!(m.status, Status::Pending);
        // Pending, waiting to retry b: TempFail, with b's reply (audit-9 H1).
        assert_eq!(m.last_try_status, TryStatus::TempFail);
        assert_eq!(m.last_try_msg, "451 later");
        assert_eq!(m.next_try_date, Some(1900));
        assert_eq!(m.try_until_date, Some(1000 + 432_000));
        // Only b is retried; it is accepted; the message ends in Error because of c.
        apply_outcomes(
            &mut m,
            &cfg,
            &[1],
            &[RcptOutcome::Accepted("250 ok".into())],
            1900,
        );
        assert_eq!(m.status, Status::Error);
        assert_eq!(m.try_count, 2);
        assert_eq!(m.first_try_date, Some(1000));
        assert_eq!(m.expire_date, Some(1900 + 259_200));
    }

    /// audit-9 H1: the message's last_try_status follows the message, not the domain job that
    /// ran last: another domain's 250 after a 451, or a 550 after it, leave a message that
    /// waits for a retry saying TempFail with the 4xx reply.
    #[test]
    fn a_message_waiting_for_a_retry_says_tempfail_whichever_job_ran_last() {
        let cfg = NodeAttrs::default();
        let mut m = msg(&["ok1@b.example", "t4x@b.example", "ok2@d.example"]);
        let out = [
            RcptOutcome::Accepted("250 ok".into()),
            RcptOutcome::TempFail("451 4.7.1 later".into()),
        ];
        apply_outcomes(&mut m, &cfg, &[0, 1], &out, 1000);
        apply_outcomes(
            &mut m,
            &cfg,
            &[2],
            &[RcptOutcome::Accepted("250 ok queued".into())],
            1001,
        );
        assert_eq!(m.status, Status::Pending);
        assert_eq!(m.last_try_status, TryStatus::TempFail);
        assert_eq!(m.last_try_msg, "451 4.7.1 later");

        let mut m = msg(&["t4m@m1.example", "p5m@m3.example"]);
        apply_outcomes(
            &mut m,
            &cfg,
            &[0],
            &[RcptOutcome::TempFail("451 busy".into())],
            1000,
        );
        apply_outcomes(
            &mut m,
            &cfg,
            &[1],
            &[RcptOutcome::PermFail("550 no such user".into())],
            1001,
        );
        assert_eq!(
            (m.status, m.last_try_status),
            (Status::Pending, TryStatus::TempFail)
        );
        assert_eq!(m.last_try_msg, "451 busy");
        // The retry is accepted: the message ends in Error because of p5m, and says so.
        apply_outcomes(
            &mut m,
            &cfg,
            &[0],
            &[RcptOutcome::Accepted("250 ok".into())],
            2000,
        );
        assert_eq!((m.status, m.last_try_status), (Status::Error, TryStatus::Fail));
        assert_eq!(m.last_try_msg, "550 no such user");
    }

    #[test]
    fn temp_failures_end_at_queue_time() {
        let cfg = NodeAttrs {
            queue_time: 100.0,
            retry_time: vec![60.0],
            ..NodeAttrs::default()
        };
        let mut m = msg(&["a@x.org"]);
        let t = [RcptOutcome::TempFail("451 busy".into())];
        apply_outcomes(&mut m, &cfg, &[0], &t, 0);
        assert_eq!(m.next_try_date, Some(60));
        apply_outcomes(&mut m, &cfg, &[0], &t, 60);
        assert_eq!(m.next_try_date, Some(100));
        apply_outcomes(&mut m, &cfg, &[0], &t, 100);
        assert_eq!(m.status, Status::Error);
        assert_eq!(m.try_count, 3);
    }

    /// audit-21 A5: time held before the first attempt counts toward queue_time (SPEC §4),
    /// as time held after it does: the deadline counts from when the hold began.
    #[test]
    fn time_held_before_the_first_attempt_counts_toward_queue_time() {
        let cfg = NodeAttrs {
            queue_time: 100.0,
            retry_time: vec![60.0],
            ..NodeAttrs::default()
        };
        let t = [RcptOutcome::TempFail("451 busy".into())];
        // Held at 1000, released at 1450 and first tried at 1500: 450 s of its 100 counted
        // already, so one last try.
        let mut held = msg(&["a@x.org"]);
        held.hold = true;
        held.note_hold(1000);
        held.note_hold(1200);
        held.hold = false;
        held.note_hold(1450);
        apply_outcomes(&mut held, &cfg, &[0], &t, 1500);
        assert_eq!(held.try_until_date, Some(1150));
        assert_eq!(held.first_try_date, Some(1500));
        assert_eq!(held.status, Status::Error);
        // Held 30 s, then waiting (hold_domains, rate limits) until 2000: only the 30 s count
        // (audit-23 C9).
        let mut held = msg(&["a@x.org"]);
        held.hold = true;
        held.note_hold(1000);
        held.hold = false;
        held.note_hold(1030);
        apply_outcomes(&mut held, &cfg, &[0], &t, 2000);
        assert_eq!((held.try_until_date, held.status), (Some(2070), Status::Pending));
        // Two holds before it add up.
        let mut held = msg(&["a@x.org"]);
        for (on, off) in [(1000, 1040), (1100, 1150)] {
            held.hold = true;
            held.note_hold(on);
            held.hold = false;
            held.note_hold(off);
        }
        apply_outcomes(&mut held, &cfg, &[0], &t, 1200);
        assert_eq!(held.try_until_date, Some(1210));
        // Never held: from the first attempt, as before; a hold after it changes nothing.
        let mut plain = msg(&["a@x.org"]);
        apply_outcomes(&mut plain, &cfg, &[0], &t, 1500);
        plain.hold = true;
        plain.note_hold(1550);
        apply_outcomes(&mut plain, &cfg, &[0], &t, 1560);
        assert_eq!(plain.try_until_date, Some(1600));
        assert_eq!(plain.status, Status::Pending);
    }

    /// audit-15 D1: `retry_time=0` (or a 0 in a schedule) retried a refused connection
    /// thousands of times a second.
    #[test]
    fn a_zero_retry_time_still_waits_a_second() {
        let cfg = NodeAttrs {
            retry_time: vec![0.0, 0.0, 5.0],
            ..NodeAttrs::default()
        };
        let mut m = msg(&["a@x.org"]);
        let t = [RcptOutcome::TempFail("connect: refused".into())];
        let mut now = 1000;
        let mut gaps = Vec::new();
        for _ in 0..3 {
            apply_outcomes(&mut m, &cfg, &[0], &t, now);
            let n = m.next_try_date.unwrap();
            gaps.push(n - now);
            now = n;
        }
        assert_eq!(gaps, vec![1, 1, 5]);
    }

    /// audit-15 D3: a peer's NUL and escape sequence reached the terminal through `mailfs queue`.
    #[test]
    fn a_reply_is_kept_without_control_characters() {
        let cfg = NodeAttrs::default();
        let mut m = msg(&["a@x.org", "b@x.org"]);
        let t = [
            RcptOutcome::PermFail("550 bad \u{0}\u{1b}[31m bytes".into()),
            RcptOutcome::TempFail("451 later\r\n\u{7}".into()),
        ];
        apply_outcomes(&mut m, &cfg, &[0, 1], &t, 0);
        assert_eq!(m.recipients[0].last_reply, "550 bad   [31m bytes");
        assert_eq!(m.recipients[1].last_reply, "451 later   ");
        let t = [RcptOutcome::TempFail("451 a\u{202E}b\u{2028}c".into())];
        apply_outcomes(&mut m, &cfg, &[1], &t, 1);
        assert_eq!(m.recipients[1].last_reply, "451 a b c");
        assert!(
            !m.last_try_msg.chars().any(char::is_control),
            "{:?}",
            m.last_try_msg
        );
    }

    #[test]
    fn retry_schedule_and_max_retries() {
        let cfg = NodeAttrs {
            retry_time: vec![10.0, 20.0, 40.0],
            max_retries: 4,
            ..NodeAttrs::default()
        };
        let mut m = msg(&["a@x.org"]);
        let t = [RcptOutcome::TempFail("451 busy".into())];
        let mut now = 0;
        let mut gaps = Vec::new();
        for _ in 0..5 {
            apply_outcomes(&mut m, &cfg, &[0], &t, now);
            if let Some(n) = m.next_try_date {
                gaps.push(n - now);
                now = n;
            }
        }
        // Four retries (10, 20, 40, then the last repeating), then Error.
        assert_eq!(gaps, vec![10, 20, 40, 40]);
        assert_eq!(m.status, Status::Error);
        assert_eq!(m.try_count, 5);
        assert!(
            m.recipients[0].last_reply.contains("max_retries"),
            "{}",
            m.recipients[0].last_reply
        );
    }
}
