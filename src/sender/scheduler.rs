//! The scheduler: one thread owns the queue (what is due when, what is in flight, which
//! limits hold), fed by the node's event channel, the ready markers and the workers' reports.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, select};

use super::clock::instant_of;
use super::worker::{self, Done, ToWorker};
use super::{JobKey, JobResult, Shared, expire_message};
use crate::model::attrs::{NodeAttrs, Status};
use crate::store::node::{Event, Node};

struct Slot {
    tx: Sender<ToWorker>,
    handle: Option<JoinHandle<()>>,
    busy: bool,
}

pub(super) struct Scheduler {
    node: Arc<Node>,
    events: Receiver<Event>,
    done_tx: Sender<Done>,
    done_rx: Receiver<Done>,
    shared: Arc<Shared>,
    jobs: BTreeMap<(Instant, u64), JobKey>,
    /// Jobs to run even if their message's next_try_date is later.
    force: HashSet<JobKey>,
    /// Messages found held, to make them due at once when they are released.
    held: HashSet<String>,
    hold_domains: Vec<String>,
    queued: HashMap<JobKey, (Instant, u64)>,
    seq: u64,
    inflight: HashSet<String>,
    inflight_dom: HashMap<String, usize>,
    expiries: BTreeMap<(i64, String), ()>,
    slots: Vec<Slot>,
}

impl Scheduler {
    pub(super) fn new(node: Arc<Node>, events: Receiver<Event>, shared: Arc<Shared>) -> Scheduler {
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        Scheduler {
            node,
            events,
            done_tx,
            done_rx,
            shared,
            jobs: BTreeMap::new(),
            force: HashSet::new(),
            held: HashSet::new(),
            hold_domains: Vec::new(),
            queued: HashMap::new(),
            seq: 0,
            inflight: HashSet::new(),
            inflight_dom: HashMap::new(),
            expiries: BTreeMap::new(),
            slots: Vec::new(),
        }
    }

    fn push(&mut self, job: JobKey, at: Instant) {
        if let Some(old) = self.queued.get(&job).copied() {
            if old.0 <= at {
                return;
            }
            self.jobs.remove(&old);
        }
        self.seq += 1;
        let k = (at, self.seq);
        self.jobs.insert(k, job.clone());
        self.queued.insert(job, k);
    }

    /// Makes a job due now, even if it is queued for later.
    fn push_now(&mut self, job: JobKey) {
        if let Some(old) = self.queued.remove(&job) {
            self.jobs.remove(&old);
        }
        self.push(job, Instant::now());
    }

    fn instant_of(&self, secs: Option<i64>) -> Instant {
        instant_of(secs, self.shared.clock.now())
    }

    /// Queues whatever a message needs: jobs for its open recipients' domains, or its expiry.
    fn load(&mut self, name: &str, due_now: bool) {
        let attrs = match self.node.spool.read_attrs(name) {
            Ok(Some((a, _))) => a,
            Ok(None) => return,
            Err(e) => {
                log::warn!("{name}: {e}");
                return;
            }
        };
        if attrs.hold && attrs.status == Status::Pending {
            self.held.insert(name.to_string());
            return;
        }
        let released = self.held.remove(name);
        // Announced again while an attempt of it is in flight (a hand-over racing the first
        // scan at startup): that attempt's outcome schedules what follows. A forced job here
        // would try it again at once, whatever its retry time says.
        if due_now && !released && self.inflight.contains(name) {
            return;
        }
        match attrs.status {
            Status::Pending if attrs.is_queued() => {
                let at = if due_now {
                    Instant::now()
                } else {
                    self.instant_of(attrs.next_try_date)
                };
                // One job per domain whatever the case it is written in (domain_key).
                let mut domains: Vec<String> = attrs
                    .recipients
                    .iter()
                    .filter(|r| r.status.is_open())
                    .map(|r| crate::model::attrs::domain_key(&r.address))
                    .collect();
                domains.sort_unstable();
                domains.dedup();
                for d in domains {
                    let job = JobKey {
                        name: name.to_string(),
                        domain: d,
                    };
                    if due_now || released {
                        self.force.insert(job.clone());
                        self.push_now(job);
                    } else {
                        self.push(job, at);
                    }
                }
            }
            Status::Sent | Status::Error => {
                if let Some(e) = attrs.expire_date {
                    self.expiries.insert((e, name.to_string()), ());
                }
            }
            _ => {}
        }
    }

    fn scan(&mut self) {
        let t = Instant::now();
        // Markers left while nothing served the spool are read with the scan, not after it: a
        // marker of a message the scan has just attempted would make it due again at once
        // (a second attempt, and a deferred message sent before its retry time).
        let marked: HashSet<String> = self.node.spool.take_ready_markers().into_iter().collect();
        match self.node.spool.list_messages() {
            Ok(names) => {
                let n = names.len();
                for name in names {
                    let due_now = marked.contains(&name);
                    self.load(&name, due_now);
                }
                log::info!(
                    "queue scan: {n} messages, {} jobs in {:?}",
                    self.jobs.len(),
                    t.elapsed()
                );
            }
            Err(e) => log::warn!("cannot scan spool: {e}"),
        }
    }

    fn resize(&mut self, want: usize) {
        while self.slots.len() < want {
            let (tx, rx) = crossbeam_channel::unbounded();
            let id = self.slots.len();
            let node = self.node.clone();
            let done = self.done_tx.clone();
            let shared = self.shared.clone();
            let handle = std::thread::Builder::new()
                .name(format!("mailfs-sender-{id}"))
                .spawn(move || worker::run(id, node, rx, done, shared))
                .ok();
            self.slots.push(Slot {
                tx,
                handle,
                busy: false,
            });
        }
        // Fewer connections wanted: idle surplus workers close theirs and go.
        while self.slots.len() > want {
            let Some(last) = self.slots.last() else { break };
            if last.busy {
                break;
            }
            if let Some(s) = self.slots.pop() {
                let _ = s.tx.send(ToWorker::Quit);
            }
        }
    }

    fn dispatch(&mut self, cfg: &NodeAttrs) -> Option<Instant> {
        let now = Instant::now();
        let mut wake: Option<Instant> = None;
        let limit = (cfg.conn_limit as usize).min(self.slots.len());
        let mut skipped_domains: HashSet<String> = HashSet::new();
        if !self.shared.can_start() {
            // Back-pressure: outcomes are waiting to be recorded.
            return Some(now + Duration::from_millis(200));
        }
        loop {
            let busy = self.slots.iter().filter(|s| s.busy).count();
            if busy >= limit {
                return wake;
            }
            let mut chosen = None;
            for (k, job) in self.jobs.range(..) {
                if k.0 > now {
                    wake = Some(wake.map_or(k.0, |w: Instant| w.min(k.0)));
                    break;
                }
                if self.inflight.contains(&job.name)
                    || skipped_domains.contains(&job.domain)
                    || crate::model::lists::holds(&cfg.hold_domains, &job.domain)
                {
                    continue;
                }
                if self.inflight_dom.get(&job.domain).copied().unwrap_or(0) >= cfg.domconn_limit as usize {
                    skipped_domains.insert(job.domain.clone());
                    continue;
                }
                let at = self.shared.limiter.lock().ready_at(
                    now,
                    &job.domain,
                    cfg.ratelimit_time,
                    cfg.domlimit_time,
                );
                if at > now {
                    wake = Some(wake.map_or(at, |w: Instant| w.min(at)));
                    skipped_domains.insert(job.domain.clone());
                    continue;
                }
                chosen = Some(*k);
                break;
            }
            let Some(k) = chosen else { return wake };
            let Some(job) = self.jobs.remove(&k) else {
                return wake;
            };
            self.queued.remove(&job);
            let Some(slot) = (0..self.slots.len()).find(|&i| i < limit && !self.slots[i].busy) else {
                self.push(job, now);
                return wake;
            };
            self.inflight.insert(job.name.clone());
            *self.inflight_dom.entry(job.domain.clone()).or_insert(0) += 1;
            self.slots[slot].busy = true;
            let force = self.force.remove(&job);
            if self.slots[slot]
                .tx
                .send(ToWorker::Job(job.clone(), force))
                .is_err()
            {
                self.slots[slot].busy = false;
                self.finish_job(&job);
                self.push(job, now + Duration::from_secs(1));
            }
        }
    }

    fn finish_job(&mut self, job: &JobKey) {
        self.inflight.remove(&job.name);
        if let Some(n) = self.inflight_dom.get_mut(&job.domain) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.inflight_dom.remove(&job.domain);
            }
        }
    }

    fn on_done(&mut self, d: Done) {
        if let Some(s) = self.slots.get_mut(d.worker) {
            s.busy = false;
        }
        self.finish_job(&d.job);
        match d.result {
            JobResult::Held => {
                self.held.insert(d.job.name);
            }
            JobResult::Again(at) => self.push(d.job, at),
            JobResult::Expire(at) => {
                self.expiries.insert((at, d.job.name), ());
            }
            JobResult::Done => {}
        }
    }

    fn expire(&mut self) -> Option<Instant> {
        let now = self.shared.clock.now();
        while let Some(((at, name), ())) = self.expiries.first_key_value() {
            if *at > now {
                return Some(self.instant_of(Some(*at)));
            }
            let name = name.clone();
            let at = *at;
            self.expiries.remove(&(at, name.clone()));
            expire_message(&self.node, &name, now);
        }
        None
    }

    pub(super) fn run(mut self) {
        self.hold_domains = self.node.attrs().hold_domains;
        self.scan();
        let mut last_poll = Instant::now();
        loop {
            let cfg = self.node.attrs();
            self.resize(cfg.conn_limit as usize);
            let mut wake = self.dispatch(&cfg);
            if let Some(e) = self.expire() {
                wake = Some(wake.map_or(e, |w| w.min(e)));
            }
            // Markers from other processes are polled; this process's events arrive at once.
            let poll_at = last_poll + Duration::from_millis(250);
            let until = wake.map_or(poll_at, |w| w.min(poll_at));
            let timeout = until.saturating_duration_since(Instant::now());
            select! {
                recv(self.events) -> ev => match ev {
                    Ok(Event::Ready(name)) => self.load(&name, true),
                    Ok(Event::Config) => self.config_changed(),
                    Ok(Event::Flush) => {
                        let all: Vec<JobKey> = self.queued.keys().cloned().collect();
                        for j in all {
                            self.force.insert(j.clone());
                            self.push_now(j);
                        }
                    }
                    Ok(Event::Stop) | Err(_) => break,
                },
                recv(self.done_rx) -> d => if let Ok(d) = d { self.on_done(d) },
                default(timeout) => {}
            }
            if last_poll.elapsed() >= Duration::from_millis(250) {
                last_poll = Instant::now();
                for name in self.node.spool.take_ready_markers() {
                    self.load(&name, true);
                }
                if self.slots.iter().all(|s| !s.busy) {
                    self.node.spool.drop_spares();
                }
            }
        }
        self.shutdown();
    }

    /// Domains taken off hold_domains are due at once (SPEC §6).
    fn config_changed(&mut self) {
        let now_held = self.node.attrs().hold_domains;
        let released: Vec<String> = self
            .hold_domains
            .iter()
            .filter(|d| !now_held.contains(d))
            .cloned()
            .collect();
        self.hold_domains = now_held;
        if released.is_empty() {
            return;
        }
        let jobs: Vec<JobKey> = self
            .queued
            .keys()
            .filter(|j| crate::model::lists::holds(&released, &j.domain))
            .cloned()
            .collect();
        for j in jobs {
            self.force.insert(j.clone());
            self.push_now(j);
        }
    }

    fn shutdown(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        for s in &self.slots {
            let _ = s.tx.send(ToWorker::Quit);
        }
        // Jobs in flight end within their own timeouts; do not wait forever on a stuck peer.
        let deadline = Instant::now() + Duration::from_secs(10);
        for s in &mut self.slots {
            if let Some(h) = s.handle.take() {
                while !h.is_finished() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
                if h.is_finished() {
                    let _ = h.join();
                }
            }
        }
        self.node.clear_events();
        // A clean stop leaves no spare in `.tmp/` (audit-7 G4), as going idle leaves none.
        self.node.spool.drop_spares();
    }
}
