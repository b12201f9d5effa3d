//! The lifecycle rules through the worker with an injected clock: retries,
//! max_retries, queue_time, delay notices and expiry, time moved forward without sleeping.

use super::clock::Clock;
use super::expire_message;
use super::tests::{T0, cfg, fix};
use super::transport::RcptOutcome;
use crate::model::attrs::{NodeAttrs, NotifySet, Status};

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
