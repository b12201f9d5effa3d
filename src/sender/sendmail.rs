//! Delivery through a sendmail-compatible command: `SENDMAIL_PATH -i -f FROM -- RCPT...`, the
//! message on stdin, no shell. Exit 0 is accepted, 75 (EX_TEMPFAIL) temporary, anything else
//! permanent with the command's stderr (bounded) as the reply.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::transport::{Envelope, RcptOutcome, Transport, all};
use crate::attrs::NodeAttrs;
use crate::content::WireChunks;

const MAX_STDERR: usize = 4096;

pub struct SendmailTransport {
    pub node: NodeAttrs,
}

/// The wire form with local (LF) line ends, as a sendmail command expects on stdin.
fn lf_chunks(eml: &Path, message_id: &str) -> std::io::Result<impl Iterator<Item = Vec<u8>> + use<>> {
    let chunks = WireChunks::open(eml, message_id)?;
    let mut last_cr = false;
    Ok(chunks.map(move |c| {
        let mut out = Vec::with_capacity(c.len());
        for b in c {
            if last_cr && b != b'\n' {
                out.push(b'\r');
            }
            last_cr = b == b'\r';
            if !last_cr {
                out.push(b);
            }
        }
        out
    }))
}

impl Transport for SendmailTransport {
    fn send(
        &mut self,
        env: &Envelope,
        eml: &Path,
        message_id: &str,
        gate: &mut dyn FnMut(),
    ) -> Vec<RcptOutcome> {
        let chunks = match lf_chunks(eml, message_id) {
            Ok(c) => c,
            Err(e) => return all(env, RcptOutcome::TempFail(format!("cannot read message: {e}"))),
        };
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
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return all(
                    env,
                    RcptOutcome::TempFail(format!("cannot run {}: {e}", self.node.sendmail_path)),
                );
            }
        };
        let stdin = child.stdin.take();
        let writer = std::thread::spawn(move || {
            if let Some(mut w) = stdin {
                for c in chunks {
                    if w.write_all(&c).is_err() {
                        break;
                    }
                }
            }
        });
        let stderr = child.stderr.take();
        let reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = stderr {
                let _ = r.by_ref().take(MAX_STDERR as u64).read_to_end(&mut buf);
                // Drain the rest so the command never blocks on a full pipe.
                let _ = std::io::copy(&mut r, &mut std::io::sink());
            }
            buf
        });
        let limit = Duration::from_secs_f64(self.node.handshake_time.max(1.0));
        let start = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(st)) => break Some(st),
                Ok(None) if start.elapsed() > limit => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(_) => break None,
            }
        };
        let _ = writer.join();
        let err = reader.join().unwrap_or_default();
        let err = String::from_utf8_lossy(&err).trim().replace('\n', " ");
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
