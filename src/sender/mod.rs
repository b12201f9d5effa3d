//! The sender engine: one scheduler thread owns the queue (what is due when, what is in
//! flight, which limits hold) and `conn_limit` worker threads each run one job at a time,
//! one job being one message to the recipients of one domain. Workers only report outcomes;
//! the spool files stay the truth, re-read under the message's lock before every attempt, so
//! a stale queue entry can delay mail but never send it twice.
//!
//! Rooms: [`scheduler`] (the queue), [`worker`] (a thread per connection), [`attempt`] (one
//! job, lock to durable outcome), [`lifecycle`] (pure rules of outcomes and time), [`limits`],
//! [`transport`] (the trait, and [`stub`] that records), [`smtp`]/[`client`]/[`mx`]/[`tls`]
//! and [`sendmail`].
//!
//! LOCK ORDER (take them only in this order; never block on a later one while holding an
//! earlier one in the other direction):
//! 1. A message's lock (`Spool::try_lock`, an `flock` on its `.eml`): held by a worker from
//!    before it reads the message's attributes until its outcome is durable. Only ever
//!    *tried* (never waited for), so two processes' workers cannot deadlock on it; the
//!    scheduler itself takes one only in [`expire_message`], and holds nothing else then.
//! 2. `Shared::limiter` (a mutex): taken inside the gate (under 1) and by the scheduler's
//!    dispatch (holding nothing); held only for the arithmetic, never across a sleep or I/O.
//! 3. The group commit (`Spool::write_attrs_grouped`, under 1): a request on a channel to the
//!    `mailfs-commit` thread, then a wait for its answer. That thread (and the journal, after
//!    1 is released) takes only the spool's spare-file pool (`Spares`, a mutex held for one push or
//!    pop: a leaf), so a worker waiting on it while holding 1 cannot close a cycle.
//! 4. `Node::attrs` (a read-write lock) and `Node::events` (a mutex around the scheduler's
//!    channel): leaves, taken and released inside one call; sending on the events channel
//!    never blocks (unbounded), so notices queued after the lock is released (`dsn::notify`)
//!    and the front ends cannot stall on the scheduler.
//! 5. Inside a transport, under 1: the sendmail child's mutex (a leaf, held for a `try_wait`
//!    or a `kill`); the stub's state (tests; never held while its hook runs).
//!
//! Channels: front ends -> scheduler (`Event`, unbounded), scheduler -> each worker
//! (`ToWorker`, unbounded), workers -> scheduler (`Done`, unbounded). Nobody blocks on a send,
//! and the scheduler is the only reader of its two, so no cycle of waits can form.
//! `Shared::unrecorded` and `Shared::stopping` are atomics, read without any lock.

pub mod attempt;
pub mod client;
pub mod clock;
pub mod dsn;
pub mod lifecycle;
pub mod limits;
pub mod mx;
pub mod reply;
mod scheduler;
pub mod sendmail;
pub mod smtp;
pub mod stub;
pub mod tls;
pub mod transport;
mod worker;

#[cfg(test)]
mod clock_tests;
#[cfg(test)]
mod engine_tests;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::Sender;
use parking_lot::Mutex;

use crate::model::attrs::Status;
use crate::store::node::{Event, Node};
pub use clock::{Clock, ManualClock, SystemClock};
pub use lifecycle::apply_outcomes;
pub use limits::Limiter;
use scheduler::Scheduler;
use transport::Transport;

/// What the scheduler and the workers share.
pub struct Shared {
    pub limiter: Mutex<Limiter>,
    /// Workers holding an outcome they cannot record yet (spool full or failing): while
    /// there are any, no transaction starts (back-pressure), so a full disk costs at most
    /// one possible duplicate per connection, as a crash does.
    pub unrecorded: AtomicUsize,
    pub stopping: AtomicBool,
    /// The time the lifecycle rules go by (the system's, or a test's).
    pub clock: Arc<dyn Clock>,
    /// Each worker's transport, instead of the one `send_method` names (the stub in tests).
    pub transport: Option<MakeTransport>,
}

/// Makes one worker's transport.
pub type MakeTransport = Arc<dyn Fn() -> Box<dyn Transport + Send> + Send + Sync>;

impl Default for Shared {
    fn default() -> Shared {
        Shared::with_clock(Arc::new(SystemClock))
    }
}

impl Shared {
    pub fn with_clock(clock: Arc<dyn Clock>) -> Shared {
        Shared {
            limiter: Mutex::new(Limiter::default()),
            unrecorded: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            clock,
            transport: None,
        }
    }

    pub fn can_start(&self) -> bool {
        self.unrecorded.load(Ordering::SeqCst) == 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobKey {
    pub name: String,
    pub domain: String,
}

/// What became of a job.
#[derive(Debug)]
pub enum JobResult {
    /// The message is held: nothing until it is released.
    Held,
    /// Try this job again at that time (deferred, or the message was busy elsewhere).
    Again(Instant),
    /// The message is final; remove it at that unix time.
    Expire(i64),
    /// Nothing more to do for this job.
    Done,
}

pub struct Engine {
    tx: Sender<Event>,
    handle: Option<JoinHandle<()>>,
}

impl Engine {
    /// Starts the scheduler and its workers for `node`; ready messages reach it through the
    /// node's event channel and through ready markers in the spool.
    pub fn start(node: Arc<Node>) -> Engine {
        Engine::start_with(node, Shared::default())
    }

    /// [`Engine::start`] with the given clock and transport (tests: a manual clock, the stub).
    pub fn start_with(node: Arc<Node>, shared: Shared) -> Engine {
        let (tx, rx) = crossbeam_channel::unbounded();
        node.set_events(tx.clone());
        let shared = Arc::new(shared);
        let handle = std::thread::Builder::new()
            .name("mailfs-scheduler".into())
            .spawn(move || Scheduler::new(node, rx, shared).run())
            .ok();
        Engine { tx, handle }
    }

    /// Stops taking jobs, lets jobs in flight finish (bounded by their own timeouts), joins.
    pub fn stop(mut self) {
        let _ = self.tx.send(Event::Stop);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Removes a final message whose expire_date is not after `now` (its log entries stay).
pub fn expire_message(node: &Node, name: &str, now: i64) {
    let Ok(Some(_lock)) = node.spool.try_lock(name) else {
        return;
    };
    if let Ok(Some((a, _))) = node.spool.read_attrs(name)
        && matches!(a.status, Status::Sent | Status::Error)
        && a.expire_date.is_some_and(|e| e <= now)
    {
        if let Err(e) = node.spool.delete_message(name) {
            log::warn!("cannot expire {name}: {e}");
        } else {
            log::info!("expired {name}");
        }
    }
}
