//! One attempt of one job, from the message's lock to its durable outcome, then what may
//! follow once the outcome is recorded: the log entries and the notices.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::clock::instant_of;
use super::transport::{Envelope, RcptOutcome, Transport, all};
use super::{JobKey, JobResult, Shared, apply_outcomes};
use crate::error::Error;
use crate::mail::wire::Wire;
use crate::model::attrs::{MessageAttrs, NodeAttrs, RcptStatus, Status, domain_key};
use crate::sender::dsn::Kind;
use crate::store::journal;
use crate::store::node::Node;

/// Runs `write` until it succeeds; while it fails (a full or failing spool), keeps trying and
/// holds every worker back from starting a transaction, so a full disk costs at most one
/// possible duplicate per connection, as a crash does, and no attempt goes unrecorded.
/// `false` only when the engine stops with `what` still unwritten.
fn until_written<E: std::fmt::Display>(
    shared: &Shared,
    what: impl Fn() -> String,
    mut write: impl FnMut() -> Result<(), E>,
) -> bool {
    let mut blocked = false;
    let mut pause = Duration::from_millis(100);
    let ok = loop {
        match write() {
            Ok(()) => break true,
            Err(e) => {
                if !blocked {
                    blocked = true;
                    shared.unrecorded.fetch_add(1, Ordering::SeqCst);
                    log::error!(
                        "{}: cannot write it ({e}); no new transaction starts until it is written",
                        what()
                    );
                }
                if shared.stopping.load(Ordering::SeqCst) {
                    log::error!("{}: stopping with it unwritten", what());
                    break false;
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        }
    };
    if blocked {
        shared.unrecorded.fetch_sub(1, Ordering::SeqCst);
        if ok {
            log::info!("{}: written; transactions resume", what());
        }
    }
    ok
}

/// Writes the outcome (see [`until_written`]).
fn record(node: &Node, name: &str, attrs: &MessageAttrs, shared: &Shared) -> bool {
    // `what` is made only for the log of a failure: this runs for every message.
    until_written(
        shared,
        || format!("{name}: the outcome"),
        || node.spool.write_attrs_grouped(name, attrs).map(|_| ()),
    )
}

/// Writes a log entry (SPEC §8); a full disk holds transactions back as for the outcome
/// (see [`until_written`]), other failures only reach the process log.
fn log_entry(node: &Node, cfg: &NodeAttrs, message_id: &str, text: &str, shared: &Shared) {
    until_written(
        shared,
        || format!("log entry \"{text}\""),
        || journal::write(&node.spool, cfg, message_id, text),
    );
}

/// One attempt of one job, from lock to durable outcome.
pub fn run_job(
    node: &Node,
    cfg: &NodeAttrs,
    job: &JobKey,
    force: bool,
    transport: &mut dyn Transport,
    shared: &Shared,
) -> JobResult {
    let spool = &node.spool;
    let name = &job.name;
    if !shared.can_start() {
        return JobResult::Again(Instant::now() + Duration::from_millis(200));
    }
    let lock = match spool.try_lock(name) {
        Ok(Some(l)) => l,
        // Another process is sending it: look again shortly.
        Ok(None) => return JobResult::Again(Instant::now() + Duration::from_millis(500)),
        Err(Error::NotFound(_)) => return JobResult::Done,
        Err(e) => {
            log::warn!("{name}: {e}");
            return JobResult::Again(Instant::now() + Duration::from_secs(5));
        }
    };
    let mut attrs = match spool.read_attrs(name) {
        Ok(Some((a, _))) => a,
        Ok(None) => return JobResult::Done,
        Err(e) => {
            log::warn!("{name}: {e}");
            return JobResult::Again(Instant::now() + Duration::from_secs(60));
        }
    };
    if !attrs.is_queued() {
        return JobResult::Done;
    }
    if attrs.hold {
        return JobResult::Held;
    }
    if crate::model::lists::holds(&cfg.hold_domains, &job.domain) {
        // The scheduler keeps it queued until the domain is released.
        return JobResult::Again(Instant::now());
    }
    let now = shared.clock.now();
    if let Some(next) = attrs.next_try_date
        && next > now
        && !force
    {
        return JobResult::Again(instant_of(Some(next), now));
    }
    let idx: Vec<usize> = attrs
        .recipients
        .iter()
        .enumerate()
        .filter(|(_, r)| r.status.is_open() && domain_key(&r.address) == job.domain)
        .map(|(i, _)| i)
        .collect();
    if idx.is_empty() {
        return JobResult::Done;
    }
    if attrs.internal.contains_key(crate::mail::dkim::UNSIGNED) {
        // Nothing that should be signed goes out unsigned (SPEC §12): sign now or wait.
        let signed = crate::store::signing::sign_pending(spool, cfg, name, &mut attrs);
        if let Err(e) = spool.write_attrs(name, &attrs) {
            log::error!("{name}: {e}");
        }
        if signed.is_err() {
            return JobResult::Again(Instant::now() + Duration::from_secs(30));
        }
    }
    // Made ready, the content carries this Message-ID (it was added if missing).
    let message_id = attrs.message_id.clone();
    let env = Envelope {
        from: attrs.env_from.clone().unwrap_or_default(),
        to: idx.iter().map(|&i| attrs.recipients[i].address.clone()).collect(),
    };
    let mut gate = || {
        loop {
            if !shared.can_start() && !shared.stopping.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            let wait = shared
                .limiter
                .lock()
                .try_take(&job.domain, cfg.ratelimit_time, cfg.domlimit_time);
            match wait {
                None => break,
                Some(d) => std::thread::sleep(d),
            }
        }
    };
    // The wire form is built once, from the version under the lock; the transport reads it
    // through as many passes as it has transactions.
    let outcomes = match Wire::open(&spool.eml_path(name), &message_id) {
        Ok(wire) => transport.send(&env, &wire, &mut gate),
        Err(e) => all(&env, RcptOutcome::TempFail(format!("cannot read message: {e}"))),
    };
    let done_at = Instant::now();
    let now = shared.clock.now();
    let wait = apply_outcomes(&mut attrs, cfg, &idx, &outcomes, now);
    let delay_notice = attrs.status == Status::Pending
        && cfg.notify.delay
        && !attrs.delay_notified
        && attrs.env_from.as_deref().is_some_and(|f| !f.is_empty())
        && attrs
            .first_try_date
            .is_some_and(|f| (now - f) as f64 >= cfg.delay_warning_time);
    if delay_notice {
        attrs.delay_notified = true;
    }
    // Recorded, durably, before anything else happens to the message (SPEC §9); concurrent
    // workers share one sync.
    if !record(node, name, &attrs, shared) {
        // Stopping with the outcome unrecorded: nothing else may follow (no log entry, no
        // notice, no expiry); the message is tried again after the restart, as after a crash.
        return JobResult::Again(Instant::now() + Duration::from_secs(60));
    }
    drop(lock);
    if delay_notice {
        crate::sender::dsn::notify(node, cfg, Kind::Delay, name, &attrs, &message_id);
    }
    let summary: Vec<String> = env
        .to
        .iter()
        .zip(&outcomes)
        .map(|(a, o)| {
            let s = match o {
                RcptOutcome::Accepted(_) => "accepted",
                RcptOutcome::TempFail(_) => "deferred",
                RcptOutcome::PermFail(_) => "refused",
            };
            format!("{a} {s} ({})", o.reply())
        })
        .collect();
    log_entry(
        node,
        cfg,
        &message_id,
        &format!("{name} attempt {}: {}", attrs.try_count, summary.join("; ")),
        shared,
    );
    match attrs.status {
        Status::Sent | Status::Error => {
            let detail = if attrs.status == Status::Error {
                attrs
                    .recipients
                    .iter()
                    .filter(|r| r.status == RcptStatus::Failed)
                    .map(|r| format!("{} ({})", r.address, r.last_reply))
                    .collect::<Vec<_>>()
                    .join("; ")
            } else {
                attrs.last_try_msg.clone()
            };
            log_entry(
                node,
                cfg,
                &message_id,
                &format!("{name} {}: {detail}", attrs.status.as_str()),
                shared,
            );
            if attrs.status == Status::Error {
                crate::sender::dsn::notify(node, cfg, Kind::Failure, name, &attrs, &message_id);
            }
            crate::sender::dsn::notify(node, cfg, Kind::Success, name, &attrs, &message_id);
            JobResult::Expire(attrs.expire_date.unwrap_or(now))
        }
        _ => {
            if attrs
                .recipients
                .iter()
                .any(|r| r.status.is_open() && domain_key(&r.address) == job.domain)
            {
                // The timer keeps the schedule's fractions of a second; the spool keeps
                // whole seconds for a restart.
                JobResult::Again(match wait {
                    Some(w) => done_at + Duration::from_secs_f64(w),
                    None => instant_of(attrs.next_try_date, now),
                })
            } else {
                JobResult::Done
            }
        }
    }
}
