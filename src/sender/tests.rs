//! The worker without a server: [`run_job`] against the recording stub on a tempdir spool,
//! time from a manual clock.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::attempt::run_job;
use super::clock::ManualClock;
use super::stub::StubTransport;
use super::transport::RcptOutcome;
use super::{JobKey, JobResult, Shared};
use crate::model::attrs::{MessageAttrs, NodeAttrs, RcptStatus, Recipient, Status, TryStatus};
use crate::store::node::Node;

/// 2027-01-15, far from the machine's clock, so nothing here can lean on the real time.
pub(super) const T0: i64 = 1_800_000_000;

pub(super) struct Fix {
    /// Kept for its lifetime: the spool is removed when the fixture goes.
    pub _dir: tempfile::TempDir,
    pub node: Arc<Node>,
    pub clock: Arc<ManualClock>,
    pub shared: Arc<Shared>,
    pub stub: StubTransport,
}

pub(super) fn fix() -> Fix {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let node = Node::open(&spool, &[]).unwrap();
    let clock = ManualClock::at(T0);
    let shared = Arc::new(Shared::with_clock(clock.clone()));
    Fix {
        _dir: dir,
        node,
        clock,
        shared,
        stub: StubTransport::new(),
    }
}

pub(super) const BODY: &str = "From: Me <me@example.com>\nTo: a@x.org\nBcc: secret@y.org\nMessage-ID: <m1@example.com>\nSubject: hello\n\nline\n.dot\n";

impl Fix {
    /// Queues a ready Pending message `name` from me@example.com to `rcpts`.
    pub fn queue(&self, name: &str, rcpts: &[&str]) -> MessageAttrs {
        self.queue_from(name, "me@example.com", rcpts)
    }

    pub fn queue_from(&self, name: &str, from: &str, rcpts: &[&str]) -> MessageAttrs {
        let mut a = MessageAttrs::new_draft();
        a.message_id = "<m1@example.com>".into();
        a.env_from = Some(from.into());
        a.recipients = rcpts.iter().map(|r| Recipient::new(r.to_string())).collect();
        a.status = Status::Pending;
        a.is_ready = true;
        self.node
            .spool
            .add_message(name, &mut BODY.as_bytes(), &a)
            .unwrap();
        a
    }

    pub fn attrs(&self, name: &str) -> MessageAttrs {
        // Read from the file each time (not `Spool::open` again: that clears the temp dir,
        // where the group commit stages outcomes).
        self.node.spool.read_attrs(name).unwrap().unwrap().0
    }

    pub fn job(&self, name: &str, domain: &str, force: bool, cfg: &NodeAttrs) -> JobResult {
        let job = JobKey {
            name: name.into(),
            domain: domain.into(),
        };
        let mut t = self.stub.clone();
        run_job(&self.node, cfg, &job, force, &mut t, &self.shared)
    }

    /// The notices queued for `name` (their names).
    pub fn notices(&self, prefix: &str, name: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .node
            .spool
            .list_messages()
            .unwrap()
            .into_iter()
            .filter(|n| n.starts_with(prefix))
            .filter(|n| {
                self.attrs(n)
                    .user
                    .get("dsn_for")
                    .is_some_and(|v| v == name.as_bytes())
            })
            .collect();
        out.sort();
        out
    }

    pub fn root(&self) -> PathBuf {
        self.node.spool.root().to_path_buf()
    }
}

pub(super) fn cfg() -> NodeAttrs {
    NodeAttrs {
        ratelimit_time: 0.0,
        domlimit_time: 0.0,
        ..NodeAttrs::default()
    }
}

fn temp(s: &str) -> RcptOutcome {
    RcptOutcome::TempFail(s.into())
}
fn perm(s: &str) -> RcptOutcome {
    RcptOutcome::PermFail(s.into())
}
fn ok(s: &str) -> RcptOutcome {
    RcptOutcome::Accepted(s.into())
}

#[test]
fn accepted_is_sent_durably_with_the_wire_form() {
    let f = fix();
    f.queue("m.eml", &["a@x.org", "b@x.org"]);
    let r = f.job("m.eml", "x.org", false, &cfg());
    let a = f.attrs("m.eml");
    assert_eq!(a.status, Status::Sent);
    assert!(a.recipients.iter().all(|r| r.status == RcptStatus::Sent));
    assert_eq!(
        (a.try_count, a.first_try_date, a.last_try_date),
        (1, Some(T0), Some(T0))
    );
    assert_eq!(a.expire_date, Some(T0 + 259_200));
    assert_eq!(a.last_try_status, TryStatus::None);
    assert!(matches!(r, JobResult::Expire(t) if t == T0 + 259_200), "{r:?}");
    let sent = f.stub.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].env.from, "me@example.com");
    assert_eq!(sent[0].env.to, vec!["a@x.org", "b@x.org"]);
    // One transaction for both, the wire form: CRLF, no Bcc, the body as stored.
    // The stored message has no Date: one is added in front.
    let w = String::from_utf8(sent[0].wire.clone()).unwrap();
    let (date, rest) = w.split_once("\r\n").unwrap();
    assert!(date.starts_with("Date: "), "{w:?}");
    assert_eq!(
        rest,
        "From: Me <me@example.com>\r\nTo: a@x.org\r\nMessage-ID: <m1@example.com>\r\nSubject: hello\r\n\r\nline\r\n.dot\r\n"
    );
    // Nothing is left for the job, and no failure notice.
    assert!(f.notices("bounce", "m.eml").is_empty());
}

#[test]
fn tempfail_stays_pending_until_the_retry_schedule_says() {
    let f = fix();
    let c = NodeAttrs {
        retry_time: vec![60.0, 300.0],
        ..cfg()
    };
    f.queue("m.eml", &["a@x.org"]);
    f.stub.then_all(temp("451 4.3.0 try later"));
    let r = f.job("m.eml", "x.org", false, &c);
    let a = f.attrs("m.eml");
    assert_eq!(a.status, Status::Pending);
    assert_eq!(a.recipients[0].status, RcptStatus::TempFail);
    assert_eq!(a.next_try_date, Some(T0 + 60));
    assert_eq!(a.last_try_status, TryStatus::TempFail);
    assert_eq!(a.last_try_msg, "451 4.3.0 try later");
    let JobResult::Again(at) = r else { panic!("{r:?}") };
    assert!(at > Instant::now() + Duration::from_secs(55));
    // Before its time the job is put back, not sent.
    f.clock.advance(59);
    assert!(matches!(f.job("m.eml", "x.org", false, &c), JobResult::Again(_)));
    assert_eq!(f.stub.count(), 1);
    // At its time it goes; the next gap is the schedule's second step.
    f.clock.advance(1);
    f.stub.then_all(temp("451 still"));
    f.job("m.eml", "x.org", false, &c);
    assert_eq!(f.stub.count(), 2);
    assert_eq!(f.attrs("m.eml").next_try_date, Some(T0 + 60 + 300));
}

#[test]
fn a_forced_job_goes_before_its_retry_time() {
    let f = fix();
    f.queue("m.eml", &["a@x.org"]);
    f.stub.then_all(temp("451 later"));
    f.job("m.eml", "x.org", false, &cfg());
    assert!(f.attrs("m.eml").next_try_date > Some(T0));
    // Released, flushed or made ready again: due now whatever next_try_date says.
    f.job("m.eml", "x.org", true, &cfg());
    assert_eq!(f.stub.count(), 2);
    assert_eq!(f.attrs("m.eml").status, Status::Sent);
}

#[test]
fn permfail_is_an_error_with_a_failure_notice_to_the_sender() {
    let f = fix();
    f.queue("m.eml", &["a@x.org"]);
    f.stub.then_all(perm("550 5.1.1 no such user"));
    let r = f.job("m.eml", "x.org", false, &cfg());
    assert!(matches!(r, JobResult::Expire(_)), "{r:?}");
    let a = f.attrs("m.eml");
    assert_eq!(a.status, Status::Error);
    assert_eq!(a.recipients[0].status, RcptStatus::Failed);
    assert_eq!(a.last_try_status, TryStatus::Fail);
    assert_eq!(a.next_try_date, None);
    let n = f.notices("bounce", "m.eml");
    assert_eq!(n.len(), 1, "{n:?}");
    let notice = f.attrs(&n[0]);
    assert_eq!(notice.status, Status::Pending);
    assert!(notice.is_ready);
    assert_eq!(notice.env_from.as_deref(), Some(""));
    assert_eq!(notice.recipients[0].address, "me@example.com");
    let text = std::fs::read_to_string(f.node.spool.eml_path(&n[0])).unwrap();
    assert!(text.contains("550 5.1.1 no such user"), "{text}");
    // Sent again later: it is final, nothing goes and no second notice.
    f.job("m.eml", "x.org", true, &cfg());
    assert_eq!(f.stub.count(), 1);
    assert_eq!(f.notices("bounce", "m.eml").len(), 1);
}

#[test]
fn a_notice_is_never_answered_with_a_notice() {
    let f = fix();
    f.queue_from("n.eml", "", &["a@x.org"]);
    f.stub.then_all(perm("550 no"));
    f.job("n.eml", "x.org", false, &cfg());
    assert_eq!(f.attrs("n.eml").status, Status::Error);
    assert_eq!(f.stub.sent()[0].env.from, "");
    assert_eq!(f.node.spool.list_messages().unwrap(), vec!["n.eml"]);
}

#[test]
fn mixed_outcomes_are_kept_per_recipient_and_only_the_open_one_is_retried() {
    let f = fix();
    f.queue("m.eml", &["a@x.org", "b@x.org", "c@x.org"]);
    f.stub
        .then_each(vec![ok("250 a"), temp("452 b full"), perm("550 c unknown")]);
    f.job("m.eml", "x.org", false, &cfg());
    let a = f.attrs("m.eml");
    let st: Vec<RcptStatus> = a.recipients.iter().map(|r| r.status).collect();
    assert_eq!(st, [RcptStatus::Sent, RcptStatus::TempFail, RcptStatus::Failed]);
    assert_eq!(a.status, Status::Pending);
    assert_eq!(a.recipients[1].last_reply, "452 b full");
    // The failure notice waits for the message to be final.
    assert!(f.notices("bounce", "m.eml").is_empty());
    f.job("m.eml", "x.org", true, &cfg());
    let sent = f.stub.sent();
    assert_eq!(sent[1].env.to, vec!["b@x.org"]);
    let a = f.attrs("m.eml");
    assert_eq!(a.status, Status::Error);
    assert_eq!(a.recipients[1].status, RcptStatus::Sent);
    assert_eq!(
        a.recipients.iter().map(|r| r.tries).collect::<Vec<_>>(),
        [1, 2, 1]
    );
    assert_eq!(f.notices("bounce", "m.eml").len(), 1);
}

#[test]
fn a_job_sends_to_its_own_domain_only() {
    let f = fix();
    f.queue("m.eml", &["a@x.org", "b@y.org", "c@x.org"]);
    let r = f.job("m.eml", "x.org", false, &cfg());
    // y.org is still open: the message is not final, this job is done.
    assert!(matches!(r, JobResult::Done), "{r:?}");
    assert_eq!(f.stub.sent()[0].env.to, vec!["a@x.org", "c@x.org"]);
    assert_eq!(f.attrs("m.eml").status, Status::Pending);
    // "Again" (the message's lock or a pause asked for) is a legitimate answer in a busy
    // process: the job is run again, as the scheduler would. It failed once in a full run.
    for _ in 0..100 {
        if !matches!(f.job("m.eml", "y.org", false, &cfg()), JobResult::Again(_)) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(f.stub.sent()[1].env.to, vec!["b@y.org"]);
    assert_eq!(f.attrs("m.eml").status, Status::Sent);
}

#[test]
fn a_sent_message_is_never_sent_again() {
    let f = fix();
    f.queue("m.eml", &["a@x.org"]);
    f.job("m.eml", "x.org", false, &cfg());
    // A stale queue entry, forced or not, and another worker's copy of the job.
    for force in [false, true, true] {
        assert!(matches!(f.job("m.eml", "x.org", force, &cfg()), JobResult::Done));
    }
    assert_eq!(f.stub.count(), 1);
    assert_eq!(f.attrs("m.eml").try_count, 1);
}

#[test]
fn the_gate_takes_a_rate_slot_right_before_the_transaction() {
    let f = fix();
    let c = NodeAttrs {
        ratelimit_time: 3600.0,
        domlimit_time: 0.0,
        ..NodeAttrs::default()
    };
    f.queue("m.eml", &["a@x.org"]);
    let before = Instant::now();
    f.job("m.eml", "x.org", false, &c);
    assert_eq!(f.stub.gates(), 1);
    let sent = f.stub.sent();
    // The slot is taken: the next send anywhere waits an hour after this transaction.
    let next = f
        .shared
        .limiter
        .lock()
        .ready_at(Instant::now(), "z.org", 3600.0, 0.0);
    assert!(next >= before + Duration::from_secs(3599), "{next:?}");
    assert!(next <= sent[0].at + Duration::from_secs(3600));
}

#[test]
fn a_held_message_or_domain_is_not_sent() {
    let f = fix();
    let mut a = f.queue("h.eml", &["a@x.org"]);
    a.hold = true;
    f.node.spool.write_attrs("h.eml", &a).unwrap();
    assert!(matches!(f.job("h.eml", "x.org", true, &cfg()), JobResult::Held));
    f.queue("d.eml", &["a@y.org"]);
    let c = NodeAttrs {
        hold_domains: vec!["y.org".into()],
        ..cfg()
    };
    assert!(matches!(f.job("d.eml", "y.org", true, &c), JobResult::Again(_)));
    // Domain names compare without regard to case: `a@Y.Org` waits with `y.org` too.
    f.queue("u.eml", &["a@Y.Org"]);
    assert!(matches!(f.job("u.eml", "Y.Org", true, &c), JobResult::Again(_)));
    assert_eq!(f.stub.count(), 0);
    assert_eq!(f.attrs("d.eml").try_count, 0);
}

#[test]
fn a_message_cancelled_or_changed_after_it_was_queued_is_not_sent() {
    let f = fix();
    // Cancelled (removed under its lock) after the scheduler queued the job.
    f.queue("gone.eml", &["a@x.org"]);
    f.node.spool.delete_message("gone.eml").unwrap();
    assert!(matches!(
        f.job("gone.eml", "x.org", true, &cfg()),
        JobResult::Done
    ));
    // Taken back to a Draft.
    let mut a = f.queue("draft.eml", &["a@x.org"]);
    a.status = Status::Draft;
    a.is_ready = false;
    f.node.spool.write_attrs("draft.eml", &a).unwrap();
    assert!(matches!(
        f.job("draft.eml", "x.org", true, &cfg()),
        JobResult::Done
    ));
    // Its recipient in this domain is no longer open (another worker finished it).
    let mut a = f.queue("done.eml", &["a@x.org", "b@y.org"]);
    a.recipients[0].status = RcptStatus::Sent;
    f.node.spool.write_attrs("done.eml", &a).unwrap();
    assert!(matches!(
        f.job("done.eml", "x.org", true, &cfg()),
        JobResult::Done
    ));
    assert_eq!(f.stub.count(), 0);
}

#[test]
fn a_message_locked_elsewhere_is_left_for_later() {
    let f = fix();
    f.queue("m.eml", &["a@x.org"]);
    let lock = f.node.spool.try_lock("m.eml").unwrap().unwrap();
    let r = f.job("m.eml", "x.org", true, &cfg());
    assert!(matches!(r, JobResult::Again(at) if at > Instant::now()), "{r:?}");
    assert_eq!(f.stub.count(), 0);
    drop(lock);
    f.job("m.eml", "x.org", true, &cfg());
    assert_eq!(f.stub.count(), 1);
}

/// Makes the spool unable to record anything (its temp dir a plain file) until put back.
fn break_tmp(root: &Path) {
    std::fs::rename(root.join(".tmp"), root.join(".tmp-saved")).unwrap();
    std::fs::write(root.join(".tmp"), b"").unwrap();
}

fn mend_tmp(root: &Path) {
    std::fs::remove_file(root.join(".tmp")).unwrap();
    std::fs::rename(root.join(".tmp-saved"), root.join(".tmp")).unwrap();
}

fn wait_until(what: &str, f: impl Fn() -> bool) {
    let end = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn an_outcome_that_cannot_be_recorded_holds_every_transaction() {
    let f = fix();
    f.queue("m.eml", &["a@x.org"]);
    f.queue("n.eml", &["a@x.org"]);
    let root = f.root();
    let once = std::sync::atomic::AtomicBool::new(false);
    f.stub.during(move |_| {
        if !once.swap(true, Ordering::SeqCst) {
            break_tmp(&root);
        }
    });
    std::thread::scope(|s| {
        let first = s.spawn(|| f.job("m.eml", "x.org", false, &cfg()));
        wait_until("the outcome to be stuck", || {
            f.shared.unrecorded.load(Ordering::SeqCst) == 1
        });
        assert!(!f.shared.can_start());
        // Another job meanwhile starts no transaction.
        assert!(matches!(
            f.job("n.eml", "x.org", true, &cfg()),
            JobResult::Again(_)
        ));
        assert_eq!(f.stub.count(), 1);
        mend_tmp(&f.root());
        let r = first.join().unwrap();
        assert!(matches!(r, JobResult::Expire(_)), "{r:?}");
    });
    assert!(f.shared.can_start());
    assert_eq!(f.attrs("m.eml").status, Status::Sent);
    f.job("n.eml", "x.org", true, &cfg());
    assert_eq!(f.stub.count(), 2);
}

#[test]
fn stopping_with_an_unrecorded_outcome_leaves_the_message_to_be_tried_again() {
    let f = fix();
    f.queue("m.eml", &["a@x.org"]);
    let root = f.root();
    f.stub.during(move |_| break_tmp(&root));
    std::thread::scope(|s| {
        let first = s.spawn(|| f.job("m.eml", "x.org", false, &cfg()));
        wait_until("the outcome to be stuck", || {
            f.shared.unrecorded.load(Ordering::SeqCst) == 1
        });
        f.shared.stopping.store(true, Ordering::SeqCst);
        assert!(matches!(first.join().unwrap(), JobResult::Again(_)));
    });
    mend_tmp(&f.root());
    // As after a crash: still Pending and untried on disk, no notice, no expiry.
    let a = f.attrs("m.eml");
    assert_eq!((a.status, a.try_count, a.expire_date), (Status::Pending, 0, None));
    assert_eq!(f.shared.unrecorded.load(Ordering::SeqCst), 0);
    assert_eq!(f.node.spool.list_messages().unwrap(), vec!["m.eml"]);
}

#[test]
fn nothing_that_should_be_signed_goes_out_unsigned() {
    let f = fix();
    let key = f.root().with_file_name("dkim.pem");
    let mut c = cfg();
    c.dkim.dkim_domain = Some("example.com".into());
    c.dkim.dkim_selector = Some("s1".into());
    c.dkim.dkim_key_file = Some(key.to_string_lossy().into_owned());
    // Queued while the key could not be used: marked to be signed before it goes.
    let mut a = f.queue("m.eml", &["a@x.org"]);
    a.internal.insert(crate::mail::dkim::UNSIGNED.into(), "1".into());
    f.node.spool.write_attrs("m.eml", &a).unwrap();
    let r = f.job("m.eml", "x.org", true, &c);
    assert!(
        matches!(r, JobResult::Again(at) if at > Instant::now() + Duration::from_secs(20)),
        "{r:?}"
    );
    assert_eq!(f.stub.count(), 0);
    let a = f.attrs("m.eml");
    assert!(a.internal.contains_key(crate::mail::dkim::UNSIGNED));
    assert!(a.last_try_msg.contains("DKIM"), "{}", a.last_try_msg);
    assert_eq!((a.status, a.try_count), (Status::Pending, 0));
    // The key is there now: signed, then sent with its signature on top.
    let made = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success());
    f.job("m.eml", "x.org", true, &c);
    let sent = f.stub.sent();
    assert_eq!(sent.len(), 1);
    let w = String::from_utf8_lossy(&sent[0].wire);
    let head = w.split("\r\n\r\n").next().unwrap_or_default();
    assert!(
        head.contains("\r\nDKIM-Signature: v=1; a=ed25519-sha256; s=s1; d=example.com;"),
        "{w:?}"
    );
    assert!(
        !f.attrs("m.eml")
            .internal
            .contains_key(crate::mail::dkim::UNSIGNED)
    );
}
