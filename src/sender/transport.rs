//! How one delivery attempt goes out: the [`Transport`] trait and its outcome types, with the
//! one classifier of temporary versus permanent failures.

use crate::mail::wire::Wire;

/// One recipient's result in an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptOutcome {
    Accepted(String),
    TempFail(String),
    PermFail(String),
}

impl RcptOutcome {
    pub fn reply(&self) -> &str {
        match self {
            RcptOutcome::Accepted(r) | RcptOutcome::TempFail(r) | RcptOutcome::PermFail(r) => r,
        }
    }
}

/// Who a job sends to: the envelope sender (empty for the null sender `<>`) and recipients.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub from: String,
    pub to: Vec<String>,
}

/// A transport delivers one message to the envelope's recipients and reports each one's fate,
/// one outcome per recipient in the envelope's order. The message comes as its wire form,
/// built once by the caller: each transaction reads it through a pass of [`Wire::chunks`].
/// `gate` is called right before each transaction starts (MAIL FROM, or running the command)
/// and blocks until the node's rate limits allow it.
pub trait Transport {
    fn send(&mut self, env: &Envelope, wire: &Wire, gate: &mut dyn FnMut()) -> Vec<RcptOutcome>;
    /// Closes any idle connection.
    fn close(&mut self) {}
}

/// The same outcome for every recipient.
pub fn all(env: &Envelope, o: RcptOutcome) -> Vec<RcptOutcome> {
    env.to.iter().map(|_| o.clone()).collect()
}

/// SMTP reply code classes: 2xx/3xx fine, 4xx temporary, 5xx permanent; anything else
/// (no reply at all, garbage) is temporary, since retrying is the safe side.
pub fn classify(code: u16, text: String) -> RcptOutcome {
    match code {
        200..=399 => RcptOutcome::Accepted(text),
        500..=599 => RcptOutcome::PermFail(text),
        _ => RcptOutcome::TempFail(text),
    }
}
