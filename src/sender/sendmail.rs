//! Delivery through a sendmail-compatible command: `SENDMAIL_PATH -i -f FROM -- RCPT...`, the
//! message on stdin, no shell. Exit 0 is accepted, 75 (EX_TEMPFAIL) temporary, anything else
//! permanent with the command's stderr (bounded) as the reply.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::transport::{Envelope, RcptOutcome, Transport, all};
use crate::mail::wire::Wire;
use crate::model::attrs::NodeAttrs;

const MAX_STDERR: usize = 4096;

pub struct SendmailTransport {
    pub node: NodeAttrs,
}

/// Turns wire-form chunks (CRLF) into local line ends (LF), as a sendmail command expects.
#[derive(Default)]
struct ToLf {
    last_cr: bool,
}

impl ToLf {
    fn convert(&mut self, c: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(c.len());
        for &b in c {
            if self.last_cr && b != b'\n' {
                out.push(b'\r');
            }
            self.last_cr = b == b'\r';
            if !self.last_cr {
                out.push(b);
            }
        }
        out
    }
}

impl Transport for SendmailTransport {
    fn send(&mut self, env: &Envelope, wire: &Wire, gate: &mut dyn FnMut()) -> Vec<RcptOutcome> {
        gate();
        let from = if env.from.is_empty() {
            "<>"
        } else {
            env.from.as_str()
        };
        let mut cmd = Command::new(&self.node.sendmail_path);
        cmd.arg("-i").arg("-f").arg(from).arg("--").args(&env.to);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return all(
                    env,
                    RcptOutcome::TempFail(format!("cannot run {}: {e}", self.node.sendmail_path)),
                );
            }
        };
        let child = Arc::new(Mutex::new(child));
        let stdin = child.lock().stdin.take();
        let stderr = child.lock().stderr.take();
        let limit = Duration::from_secs_f64(self.node.handshake_time.max(1.0));
        // Scoped: the writer reads the caller's wire form; both helpers end when the command
        // does (its pipes close), which the wait below bounds.
        let (status, read_error, err) = std::thread::scope(|s| {
            let killer = child.clone();
            // A read error must not end the input cleanly: the command would take the
            // truncated message. It is killed before its stdin closes, and the attempt is a
            // TempFail.
            let writer = s.spawn(move || -> Option<String> {
                let mut w = stdin?;
                let mut lf = ToLf::default();
                let mut chunks = wire.chunks();
                for c in chunks.by_ref() {
                    if w.write_all(&lf.convert(&c)).is_err() {
                        break;
                    }
                }
                let err = chunks.error.take()?;
                let _ = killer.lock().kill();
                Some(err.to_string())
            });
            let reader = s.spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut r) = stderr {
                    let _ = r.by_ref().take(MAX_STDERR as u64).read_to_end(&mut buf);
                    // Drain the rest so the command never blocks on a full pipe.
                    let _ = std::io::copy(&mut r, &mut std::io::sink());
                }
                buf
            });
            let start = Instant::now();
            let status = loop {
                let mut c = child.lock();
                match c.try_wait() {
                    Ok(Some(st)) => break Some(st),
                    Ok(None) if start.elapsed() > limit => {
                        let _ = c.kill();
                        let _ = c.wait();
                        break None;
                    }
                    Ok(None) => {
                        drop(c);
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => break None,
                }
            };
            let read_error = writer.join().unwrap_or_else(|_| Some("the writer failed".into()));
            (status, read_error, reader.join().unwrap_or_default())
        });
        let err = String::from_utf8_lossy(&err).trim().replace('\n', " ");
        if let Some(e) = read_error {
            return all(env, RcptOutcome::TempFail(format!("cannot read message: {e}")));
        }
        let o = match status.and_then(|s| s.code()) {
            None if status.is_none() => RcptOutcome::TempFail(format!(
                "{} did not finish within {}s",
                self.node.sendmail_path,
                limit.as_secs()
            )),
            Some(0) => RcptOutcome::Accepted(format!("{} exited 0", self.node.sendmail_path)),
            Some(75) => RcptOutcome::TempFail(format!("exit 75: {err}")),
            Some(c) => RcptOutcome::PermFail(format!("exit {c}: {err}")),
            None => RcptOutcome::PermFail(format!("killed by a signal: {err}")),
        };
        all(env, o)
    }
}

#[cfg(test)]
mod tests {
    use super::ToLf;

    #[test]
    fn crlf_becomes_lf_across_chunk_boundaries() {
        let mut lf = ToLf::default();
        let mut out = lf.convert(b"a\r\nb\r");
        out.extend(lf.convert(b"\nc\rd\r\n"));
        assert_eq!(out, b"a\nb\nc\rd\n");
    }
}
