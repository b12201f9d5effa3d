//! The lifecycle rules through the worker and the engine with an injected clock: retries,
//! max_retries, queue_time, delay notices and expiry, time moved forward without sleeping.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Engine;
use super::clock::Clock;
use super::expire_message;
use super::tests::{T0, cfg, fix};
use super::transport::{RcptOutcome, Transport};
use crate::model::attrs::{NodeAttrs, NotifySet, RcptStatus, Status};

fn temp() -> RcptOutcome {
    RcptOutcome::TempFail("451 4.7.1 greylisted".into())
}

#[test]
fn max_retries_ends_in_error_with_one_failure_notice() {
    let f = fix();
    let c = NodeAttrs {
        retry_time: vec![10.0, 20.0],
        max_retries: 2,
        ..cfg()
    };
    f.queue("m.eml", &["a@x.org"]);
    f.stub.then_all(temp()).then_all(temp()).then_all(temp());
    let mut tried_at = Vec::new();
    for _ in 0..3 {
        tried_at.push(f.clock.now());
        f.job("m.eml", "x.org", false, &c);
        if let Some(n) = f.attrs("m.eml").next_try_date {
            f.clock.set(n);
        }
    }
    assert_eq!(tried_at, [T0, T0 + 10, T0 + 30]);
    let a = f.attrs("m.eml");
    assert_eq!(a.status, Status::Error);
    assert_eq!(a.try_count, 3);
    assert!(
        a.recipients[0].last_reply.contains("max_retries"),
        "{}",
        a.recipients[0].last_reply
    );
    assert_eq!(f.notices("bounce", "m.eml").len(), 1);
    assert_eq!(f.stub.count(), 3);
}

#[test]
fn queue_time_ends_retries_at_the_deadline_not_after_it() {
    let f = fix();
    let c = NodeAttrs {
        retry_time: vec![40.0],
        queue_time: 100.0,
        ..cfg()
    };
    f.queue("m.eml", &["a@x.org"]);
    let mut next = Vec::new();
    for _ in 0..4 {
        f.stub.then_all(temp());
        f.job("m.eml", "x.org", false, &c);
        let a = f.attrs("m.eml");
        assert_eq!(a.try_until_date, Some(T0 + 100));
        match a.next_try_date {
            Some(n) => {
                next.push(n - T0);
                f.clock.set(n);
            }
            None => break,
        }
    }
    // 40, 80, then the last try at the deadline itself (100), which gives up.
    assert_eq!(next, [40, 80, 100]);
    let a = f.attrs("m.eml");
    assert_eq!(a.status, Status::Error);
    assert!(a.recipients[0].last_reply.contains("queue_time"));
    assert_eq!(f.stub.count(), 4);
}

#[test]
fn a_delay_notice_goes_once_after_delay_warning_time() {
    let f = fix();
    let c = NodeAttrs {
        retry_time: vec![600.0],
        notify: NotifySet {
            failure: true,
            delay: true,
            success: false,
        },
        delay_warning_time: 1800.0,
        ..cfg()
    };
    f.queue("m.eml", &["a@x.org"]);
    for _ in 0..5 {
        f.stub.then_all(temp());
    }
    // Tries at 0, 600, 1200: younger than 1800 s, no notice.
    for _ in 0..3 {
        f.job("m.eml", "x.org", false, &c);
        f.clock.advance(600);
    }
    assert!(f.notices("delay", "m.eml").is_empty());
    assert!(!f.attrs("m.eml").delay_notified);
    // The try at 1800 is the first one past the warning time.
    f.job("m.eml", "x.org", false, &c);
    assert_eq!(f.notices("delay", "m.eml").len(), 1);
    assert!(f.attrs("m.eml").delay_notified);
    f.clock.advance(600);
    f.job("m.eml", "x.org", false, &c);
    assert_eq!(f.notices("delay", "m.eml").len(), 1);
    assert_eq!(f.attrs("m.eml").status, Status::Pending);
}

#[test]
fn success_notices_only_when_asked_for() {
    let f = fix();
    f.queue("quiet.eml", &["a@x.org"]);
    f.job("quiet.eml", "x.org", false, &cfg());
    assert!(f.notices("success", "quiet.eml").is_empty());
    let c = NodeAttrs {
        notify: NotifySet {
            failure: true,
            delay: false,
            success: true,
        },
        ..cfg()
    };
    f.queue("told.eml", &["a@x.org"]);
    f.job("told.eml", "x.org", false, &c);
    let n = f.notices("success", "told.eml");
    assert_eq!(n.len(), 1);
    assert_eq!(f.attrs(&n[0]).recipients[0].address, "me@example.com");
}

#[test]
fn a_final_message_is_removed_at_its_expire_date_not_before() {
    let f = fix();
    let c = NodeAttrs {
        expire_time: 3600.0,
        ..cfg()
    };
    f.queue("m.eml", &["a@x.org"]);
    f.job("m.eml", "x.org", false, &c);
    assert_eq!(f.attrs("m.eml").expire_date, Some(T0 + 3600));
    expire_message(&f.node, "m.eml", T0 + 3599);
    assert!(f.node.spool.read_attrs("m.eml").unwrap().is_some());
    expire_message(&f.node, "m.eml", T0 + 3600);
    assert!(f.node.spool.read_attrs("m.eml").unwrap().is_none());
    assert!(!f.node.spool.eml_path("m.eml").exists());
}

#[test]
fn a_pending_message_never_expires() {
    let f = fix();
    let mut a = f.queue("m.eml", &["a@x.org"]);
    a.expire_date = Some(T0);
    f.node.spool.write_attrs("m.eml", &a).unwrap();
    expire_message(&f.node, "m.eml", T0 + 1_000_000);
    assert_eq!(f.attrs("m.eml").status, Status::Pending);
}

fn wait_until(what: &str, f: impl Fn() -> bool) {
    let end = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The engine with the stub as every worker's transport and the fixture's clock.
fn engine(f: &super::tests::Fix) -> Engine {
    let stub = f.stub.clone();
    let make: super::MakeTransport = Arc::new(move || Box::new(stub.clone()) as Box<dyn Transport + Send>);
    let mut shared = super::Shared::with_clock(f.clock.clone());
    shared.transport = Some(make);
    Engine::start_with(f.node.clone(), shared)
}

#[test]
fn the_engine_sends_a_ready_message_once_and_expires_it_by_the_clock() {
    let f = fix();
    f.node.set_attr("ratelimit_time", b"0").unwrap();
    f.node.set_attr("domlimit_time", b"0").unwrap();
    f.node.set_attr("expire_time", b"3600").unwrap();
    f.queue("m.eml", &["a@x.org", "b@y.org"]);
    let e = engine(&f);
    wait_until("m.eml to be Sent", || {
        f.node
            .spool
            .read_attrs("m.eml")
            .ok()
            .flatten()
            .is_some_and(|(a, _)| a.status == Status::Sent)
    });
    // One job per domain, each sent once; made ready again, it stays sent.
    let mut to: Vec<String> = f.stub.sent().iter().flat_map(|s| s.env.to.clone()).collect();
    to.sort();
    assert_eq!(to, ["a@x.org", "b@y.org"]);
    f.node.notify_ready("m.eml");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(f.stub.count(), 2);
    assert_eq!(f.attrs("m.eml").expire_date, Some(T0 + 3600));
    // The clock reaches the expire date: the scheduler removes it without anyone sleeping an hour.
    std::thread::sleep(Duration::from_millis(300));
    assert!(f.node.spool.read_attrs("m.eml").unwrap().is_some());
    f.clock.advance(3600);
    wait_until("m.eml to expire", || {
        f.node.spool.read_attrs("m.eml").ok().flatten().is_none()
    });
    e.stop();
}

#[test]
fn the_engine_retries_a_deferred_recipient_at_its_next_try() {
    let f = fix();
    f.node.set_attr("ratelimit_time", b"0").unwrap();
    f.node.set_attr("domlimit_time", b"0").unwrap();
    f.node.set_attr("retry_time", b"1").unwrap();
    f.stub.then_all(temp());
    f.queue("m.eml", &["a@x.org"]);
    // Queued before the engine starts: its first scan finds it (a Ready event as well
    // would make a second, forced job of it).
    let e = engine(&f);
    wait_until("the first try", || f.attrs("m.eml").try_count == 1);
    let a = f.attrs("m.eml");
    assert_eq!(a.recipients[0].status, RcptStatus::TempFail);
    assert_eq!(a.next_try_date, Some(T0 + 1));
    // The timer runs on monotonic time; the attempt checks the clock's date, so the clock
    // is moved to it and the retry goes.
    f.clock.advance(1);
    wait_until("the retry to succeed", || f.attrs("m.eml").status == Status::Sent);
    assert_eq!(f.stub.count(), 2);
    e.stop();
}
