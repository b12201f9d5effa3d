//! The DATA phase of a session: the message streamed to a spool temp file under
//! message_size_limit, a Received header on top, then the one enqueue path, durable before
//! the 250.

use std::io::Write;
use std::path::PathBuf;

use smtp_proto::request::receiver::DataReceiver;
use tokio::io::{AsyncRead, AsyncWrite};

use super::session::{Flow, READ_CHUNK, Session};
use crate::error::Error;
use crate::store::queue::{Origin, Submission, queue_file};

/// A half-received message's temp file: removed when the guard goes (the session ended in
/// DATA by a close, a timeout, a 421, an error, a refused message or the listener stopping)
/// unless [`TmpGuard::commit`] handed it on first. Nothing half-written stays in `.tmp`.
pub(super) struct TmpGuard(Option<PathBuf>);

impl TmpGuard {
    pub(super) fn new(path: PathBuf) -> TmpGuard {
        TmpGuard(Some(path))
    }

    /// Hands the file on (to the enqueue path, which owns it from then on).
    pub(super) fn commit(mut self) -> PathBuf {
        self.0.take().unwrap_or_default()
    }
}

impl Drop for TmpGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take()
            && let Err(e) = std::fs::remove_file(&p)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            log::warn!("listener: cannot remove {}: {e}", p.display());
        }
    }
}

/// The reply when a message cannot be stored: a full spool (or quota) is `452 4.3.1
/// Insufficient system storage` (RFC 3463, as Postfix says it), anything else `451 4.3.0`.
pub(super) fn store_failure(errno: Option<i32>) -> (u16, [u8; 3], &'static str) {
    match errno {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => (452, [4, 3, 1], "Insufficient system storage"),
        _ => (451, [4, 3, 0], "Local error in processing"),
    }
}

impl Session {
    fn received_header(&self) -> String {
        let proto = match (self.esmtp, self.tls, self.user.is_some()) {
            (false, _, _) => "SMTP",
            (true, false, false) => "ESMTP",
            (true, true, false) => "ESMTPS",
            (true, false, true) => "ESMTPA",
            (true, true, true) => "ESMTPSA",
        };
        let helo = self.helo.as_deref().unwrap_or("unknown");
        let ip = self.peer.ip().to_canonical();
        let me = self.attrs.helo();
        let date = chrono::Utc::now().to_rfc2822();
        let mut h = format!("Received: from {helo} ([{ip}])\r\n\tby {me} (mailfs) with {proto}");
        if let [one] = self.rcpts.as_slice() {
            h.push_str(&format!("\r\n\tfor <{one}>"));
        }
        h.push_str(&format!("; {date}\r\n"));
        h
    }

    /// DATA: streams the message to a temp file (up to message_size_limit, then only reads
    /// to the end), and queues it durably before the 250.
    pub(super) async fn data<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
    ) -> std::io::Result<Flow> {
        if self.from.is_none() {
            self.reply(503, [5, 5, 1], "Need MAIL command");
            return Ok(Flow::Continue);
        }
        if self.rcpts.is_empty() {
            self.reply(554, [5, 5, 1], "No valid recipients");
            return Ok(Flow::Continue);
        }
        self.reply(354, [2, 0, 0], "End data with <CR><LF>.<CR><LF>");
        self.flush(io).await?;
        let spool = &self.ctx.node.spool;
        let path = spool.tmp_path();
        let tmp = TmpGuard::new(path.clone());
        let mut file = crate::store::spool::create_private(&path)
            .and_then(|mut f| f.write_all(self.received_header().as_bytes()).map(|()| f));
        let limit = self.attrs.listener.message_size_limit;
        let mut rx = DataReceiver::new();
        let mut chunk = Vec::with_capacity(READ_CHUNK + 16);
        // The receiver recognises "." only after a line end: start it after one, so that a
        // first line that is a lone dot (or dot-stuffed) is read right too.
        rx.ingest(&mut b"\r\n".iter(), &mut chunk);
        chunk.clear();
        let mut size: u64 = 0;
        let mut too_big = false;
        // Each line, or each READ_CHUNK of a long one, must come within handshake_time.
        let mut deadline = self.deadline();
        let mut since: usize = 0;
        loop {
            let mut it = self.inbuf[self.start..].iter();
            let done = rx.ingest(&mut it, &mut chunk);
            let rest = it.as_slice().len();
            let from = self.start;
            self.start = self.inbuf.len() - rest;
            let got = &self.inbuf[from..self.start];
            since += got.len();
            if since >= READ_CHUNK || got.contains(&b'\n') {
                deadline = self.deadline();
                since = 0;
            }
            // At the end of data the receiver takes back the CR it stored before ".": keep
            // one byte back until the end is known.
            let n = if done {
                chunk.len()
            } else {
                chunk.len().saturating_sub(1)
            };
            size += n as u64;
            if limit > 0 && size > limit {
                too_big = true;
            }
            if !too_big
                && let Ok(f) = &mut file
                && let Err(e) = f.write_all(&chunk[..n])
            {
                file = Err(e);
            }
            chunk.drain(..n);
            if done {
                break;
            }
            if !self.fill(io, deadline).await? {
                return Ok(Flow::Quit);
            }
        }
        let envelope = Submission {
            env_from: self.from.take(),
            recipients: std::mem::take(&mut self.rcpts),
            ..Default::default()
        };
        if too_big {
            log::info!("listener: {}: message over {limit} bytes refused", self.peer);
            self.reply(552, [5, 3, 4], "Message size exceeds fixed limit");
            return Ok(Flow::Continue);
        }
        if let Err(e) = file {
            log::error!("listener: cannot store a message: {e}");
            let (code, esc, text) = store_failure(e.raw_os_error());
            self.reply(code, esc, text);
            return Ok(Flow::Continue);
        }
        drop(file);
        self.enqueue(tmp.commit(), envelope).await;
        Ok(Flow::Continue)
    }

    async fn enqueue(&mut self, tmp: PathBuf, envelope: Submission) {
        let node = self.ctx.node.clone();
        let queued = tokio::task::spawn_blocking(move || {
            queue_file(&node.spool, tmp, &envelope, &Origin::node(), "smtp", true)
        })
        .await;
        match queued {
            Ok(Ok(name)) => {
                log::info!("listener: {}: queued {name}", self.peer);
                self.junk = 0;
                self.reply(250, [2, 0, 0], &format!("OK: queued as {name}"));
            }
            Ok(Err(e @ (Error::Invalid { .. } | Error::Usage(_)))) => {
                log::warn!("listener: {}: refused: {e}", self.peer);
                self.reply(554, [5, 6, 0], "Message refused");
            }
            Ok(Err(e)) => {
                log::error!("listener: cannot queue a message: {e}");
                let errno = match &e {
                    Error::Io(io) => io.raw_os_error(),
                    _ => None,
                };
                let (code, esc, text) = store_failure(errno);
                self.reply(code, esc, text);
            }
            Err(e) => {
                log::error!("listener: cannot queue a message: {e}");
                self.reply(451, [4, 3, 0], "Local error in processing");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::store_failure;

    /// Audit-11 K8: a full spool answered 451 4.3.0; it is 452 4.3.1.
    #[test]
    fn a_full_spool_is_insufficient_system_storage() {
        assert_eq!(store_failure(Some(libc::ENOSPC)).0, 452);
        assert_eq!(store_failure(Some(libc::ENOSPC)).1, [4, 3, 1]);
        assert_eq!(store_failure(Some(libc::EDQUOT)).0, 452);
        assert_eq!(
            store_failure(Some(libc::EIO)),
            (451, [4, 3, 0], "Local error in processing")
        );
        assert_eq!(store_failure(None).0, 451);
    }
}
