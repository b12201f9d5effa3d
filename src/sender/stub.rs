//! A transport that reaches no server: it records each transaction (the envelope and the exact
//! bytes a pass over the wire form gives) and answers what the test scripted, so the worker,
//! the scheduler and the lifecycle rules are tested without a peer. Clones share their record
//! and their script, so an engine's workers can each hold one while the test reads the record.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;

use super::transport::{Envelope, RcptOutcome, Transport, all};
use crate::mail::wire::Wire;

/// One transaction the stub took.
#[derive(Debug, Clone)]
pub struct Sent {
    pub env: Envelope,
    /// The wire form as a transport reads it (CRLF, Bcc removed; before dot-stuffing).
    pub wire: Vec<u8>,
    /// When the transaction started, as `Instant`: after its gate let it through.
    pub at: std::time::Instant,
}

/// What the stub answers for one transaction.
#[derive(Debug, Clone)]
pub enum Answer {
    /// The same outcome for every recipient.
    All(RcptOutcome),
    /// One outcome per recipient, in the envelope's order.
    Each(Vec<RcptOutcome>),
}

type Hook = Arc<dyn Fn(&Envelope) + Send + Sync>;

#[derive(Default)]
struct State {
    sent: Vec<Sent>,
    script: VecDeque<Answer>,
    /// Per-recipient answers by address, used when the script is empty.
    by_rcpt: Vec<(String, RcptOutcome)>,
    gates: usize,
    closed: usize,
    /// Runs inside each transaction, after the gate (a test changes the world there).
    during: Option<Hook>,
}

/// The recording transport. With nothing scripted it accepts every recipient.
#[derive(Clone, Default)]
pub struct StubTransport {
    state: Arc<Mutex<State>>,
}

pub const ACCEPTED: &str = "250 2.0.0 Ok: queued by the stub";

impl StubTransport {
    pub fn new() -> StubTransport {
        StubTransport::default()
    }

    /// Answers the next unanswered transaction with `o` for every recipient.
    pub fn then_all(&self, o: RcptOutcome) -> &Self {
        self.state.lock().script.push_back(Answer::All(o));
        self
    }

    /// Answers the next unanswered transaction with one outcome per recipient.
    pub fn then_each(&self, o: Vec<RcptOutcome>) -> &Self {
        self.state.lock().script.push_back(Answer::Each(o));
        self
    }

    /// Once the script is used up: answers `o` for `address` in every transaction.
    pub fn always_for(&self, address: &str, o: RcptOutcome) -> &Self {
        self.state.lock().by_rcpt.push((address.to_string(), o));
        self
    }

    /// Runs `f` inside every transaction (after the gate, before the answer), in whichever
    /// worker takes it: transactions in parallel run it in parallel.
    pub fn during(&self, f: impl Fn(&Envelope) + Send + Sync + 'static) -> &Self {
        self.state.lock().during = Some(Arc::new(f));
        self
    }

    /// Every transaction so far, in order.
    pub fn sent(&self) -> Vec<Sent> {
        self.state.lock().sent.clone()
    }

    /// How many transactions were taken.
    pub fn count(&self) -> usize {
        self.state.lock().sent.len()
    }

    /// How many times the gate was passed.
    pub fn gates(&self) -> usize {
        self.state.lock().gates
    }

    /// How many times a caller closed the transport.
    pub fn closed(&self) -> usize {
        self.state.lock().closed
    }

    fn answer(&self, env: &Envelope) -> Vec<RcptOutcome> {
        let mut st = self.state.lock();
        match st.script.pop_front() {
            Some(Answer::All(o)) => all(env, o),
            Some(Answer::Each(v)) => env
                .to
                .iter()
                .enumerate()
                .map(|(i, _)| {
                    v.get(i)
                        .cloned()
                        .unwrap_or_else(|| RcptOutcome::TempFail("451 the stub has no answer".into()))
                })
                .collect(),
            None => env
                .to
                .iter()
                .map(|r| {
                    st.by_rcpt
                        .iter()
                        .find(|(a, _)| a == r)
                        .map(|(_, o)| o.clone())
                        .unwrap_or_else(|| RcptOutcome::Accepted(ACCEPTED.into()))
                })
                .collect(),
        }
    }
}

impl Transport for StubTransport {
    fn send(&mut self, env: &Envelope, wire: &Wire, gate: &mut dyn FnMut()) -> Vec<RcptOutcome> {
        // As a real transport: the gate right before the transaction, which starts after it.
        gate();
        let at = std::time::Instant::now();
        self.state.lock().gates += 1;
        // The hook runs unlocked: it may use the stub itself, and other workers' transactions
        // go on meanwhile.
        let hook = self.state.lock().during.clone();
        if let Some(f) = hook {
            f(env);
        }
        let bytes = match wire.read_all() {
            Ok(b) => b,
            Err(e) => return all(env, RcptOutcome::TempFail(format!("cannot read message: {e}"))),
        };
        let answer = self.answer(env);
        self.state.lock().sent.push(Sent {
            env: env.clone(),
            wire: bytes,
            at,
        });
        answer
    }

    fn close(&mut self) {
        self.state.lock().closed += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(to: &[&str]) -> Envelope {
        Envelope {
            from: "me@example.com".into(),
            to: to.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn records_envelope_and_wire_and_answers_the_script_in_order() {
        let stub = StubTransport::new();
        stub.then_all(RcptOutcome::TempFail("451 later".into()))
            .then_each(vec![
                RcptOutcome::Accepted("250 ok".into()),
                RcptOutcome::PermFail("550 no".into()),
            ]);
        stub.always_for("b@x.org", RcptOutcome::PermFail("550 never".into()));
        let wire = Wire::from_bytes(b"Subject: s\nBcc: hidden@x.org\n\nbody\n", "<i@h>");
        let mut t = stub.clone();
        let mut gates = 0;
        let mut gate = || gates += 1;
        let e = env(&["a@x.org", "b@x.org"]);
        let first = t.send(&e, &wire, &mut gate);
        assert_eq!(first, all(&e, RcptOutcome::TempFail("451 later".into())));
        let second = t.send(&e, &wire, &mut gate);
        assert_eq!(second[1], RcptOutcome::PermFail("550 no".into()));
        // Script used up: per-address answers, others accepted.
        let third = t.send(&e, &wire, &mut gate);
        assert_eq!(third[0], RcptOutcome::Accepted(ACCEPTED.into()));
        assert_eq!(third[1], RcptOutcome::PermFail("550 never".into()));
        assert_eq!(gates, 3);
        let sent = stub.sent();
        assert_eq!(sent.len(), 3);
        assert_eq!(stub.gates(), 3);
        assert_eq!(sent[0].env.to, vec!["a@x.org", "b@x.org"]);
        let w = String::from_utf8(sent[2].wire.clone()).unwrap();
        assert!(w.ends_with("\r\n\r\nbody\r\n"), "{w:?}");
        assert!(!w.contains("hidden"), "{w:?}");
        t.close();
        assert_eq!(stub.closed(), 1);
    }
}
