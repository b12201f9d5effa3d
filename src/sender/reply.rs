//! What an SMTP client session reports: a peer's reply, and a failure with the stage it
//! happened at (which decides whether the next host may do better).

use smtp_proto::response::parser::ResponseReceiver;

use super::transport::{RcptOutcome, classify};

/// Longest reply line kept, CRLF included (RFC 5321 §4.5.3.1.5 says 512; real servers exceed
/// it a little): a longer one is cut there, its code still read.
pub const MAX_LINE: usize = 1024;
/// Longest whole (multi-line) reply read, as received: beyond it the peer is taken as broken
/// (an endless reply). Far above any real reply, so that a long but finished one (a 250
/// after the data with a 67 KiB story) is still decided by its code, never sent again.
pub const MAX_REPLY: usize = 1024 * 1024;
/// Of a reply's bytes, at most this many are kept (EHLO's are parsed from them).
const RAW_KEPT: usize = 64 * 1024;
/// Reply text kept: the first lines up to this many bytes, and the last line (smtp-proto
/// keeps at most 4 KiB of a reply's text, and a line is at most [`MAX_LINE`]).
const KEPT_TEXT: usize = 3 * 1024;

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

/// Frames one reply out of the bytes received, with smtp-proto parsing each line kept. Bytes
/// of reply lines given to the parser, which refuses a reply whose text is over 4 KiB: past
/// [`KEPT_TEXT`] only the last line goes in, and a line only its first [`MAX_LINE`] bytes, so
/// the code always decides (a long 250 after the data is still a delivery, never sent again;
/// a long 550 still a refusal, never retried).
#[derive(Default)]
pub(super) struct ReplyReader {
    rx: ResponseReceiver,
    raw: Vec<u8>,
    received: usize,
    /// The start of a line longer than MAX_LINE, whose rest is dropped as it comes.
    head: Option<Vec<u8>>,
    fed: usize,
    cut: bool,
}

impl ReplyReader {
    /// Takes what it can from `buf`: the whole reply once its last line is there, `None`
    /// while more is needed, or why the peer is taken as broken.
    pub(super) fn feed(&mut self, buf: &mut Vec<u8>) -> Result<Option<Reply>, String> {
        while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = buf.drain(..=nl).collect();
            self.received += line.len();
            if let Some(h) = self.head.take() {
                line = h;
            } else if line.len() > MAX_LINE {
                line.truncate(MAX_LINE - 2);
            }
            if !line.ends_with(b"\n") {
                line.extend_from_slice(b"\r\n");
                self.cut = true;
            }
            if self.received > MAX_REPLY {
                return Err(format!("sent a reply over {MAX_REPLY} bytes"));
            }
            if self.raw.len() + line.len() <= RAW_KEPT {
                self.raw.extend_from_slice(&line);
            }
            // A reply's last line has no `-` after its code (RFC 5321 §4.2.1).
            let last = line.get(3) != Some(&b'-');
            if !last && self.fed + line.len() > KEPT_TEXT {
                self.cut = true;
                continue;
            }
            self.fed += line.len();
            match self.rx.parse(&mut line.iter()) {
                Ok(r) => {
                    let mut lines = r.message;
                    if self.cut {
                        lines.push_str("\n[reply cut]");
                    }
                    return Ok(Some(Reply {
                        code: r.code,
                        esc: r.esc,
                        lines,
                        raw: std::mem::take(&mut self.raw),
                    }));
                }
                Err(smtp_proto::Error::NeedsMoreData { .. }) => {}
                Err(e) => return Err(format!("sent a malformed reply: {e:?}")),
            }
        }
        if buf.len() > MAX_LINE {
            self.received += buf.len();
            if self.head.is_none() {
                self.head = Some(buf[..MAX_LINE - 2].to_vec());
            }
            buf.clear();
            if self.received > MAX_REPLY {
                return Err(format!("sent a reply over {MAX_REPLY} bytes"));
            }
        }
        Ok(None)
    }
}
