//! What an SMTP client session reports: a peer's reply, and a failure with the stage it
//! happened at (which decides whether the next host may do better).

use super::transport::{RcptOutcome, classify};

/// Where a failure happened: before the session was usable (the next host may do better),
/// or later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Connect,
    Greeting,
    Hello,
    Tls,
    Auth,
    Transaction,
}

/// Why a session step failed: the server's reply (with its code) or a local reason.
#[derive(Debug, Clone)]
pub struct Fail {
    pub stage: Stage,
    pub code: Option<u16>,
    pub text: String,
}

impl Fail {
    pub(super) fn local(stage: Stage, text: impl Into<String>) -> Fail {
        Fail {
            stage,
            code: None,
            text: text.into(),
        }
    }

    pub(super) fn reply(stage: Stage, r: &Reply) -> Fail {
        Fail {
            stage,
            code: Some(r.code),
            text: r.text(),
        }
    }

    /// A connection that failed before the session was set up moves on to the next host
    /// (SPEC §6): refused, timed out, greeting, EHLO/HELO or TLS.
    pub fn next_host(&self) -> bool {
        matches!(
            self.stage,
            Stage::Connect | Stage::Greeting | Stage::Hello | Stage::Tls
        )
    }

    pub fn outcome(&self) -> RcptOutcome {
        match self.code {
            Some(c) => classify(c, self.text.clone()),
            None => RcptOutcome::TempFail(self.text.clone()),
        }
    }
}

/// One reply: its code and its text lines (lossily decoded).
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    /// The enhanced status code (RFC 3463), all zero when there was none.
    pub esc: [u8; 3],
    pub lines: String,
    pub(super) raw: Vec<u8>,
}

impl Reply {
    /// As it is recorded: the code, then the lines joined by spaces.
    pub fn text(&self) -> String {
        let body = self.lines.split('\n').collect::<Vec<_>>().join(" ");
        let body = body.trim();
        let mut out = self.code.to_string();
        if self.esc != [0, 0, 0] {
            out.push_str(&format!(" {}.{}.{}", self.esc[0], self.esc[1], self.esc[2]));
        }
        if !body.is_empty() {
            out.push(' ');
            out.push_str(body);
        }
        out
    }

    pub(super) fn positive(&self) -> bool {
        (200..400).contains(&self.code)
    }
}
