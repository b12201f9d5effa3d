//! Delivery through a sendmail-compatible command: `SENDMAIL_PATH -i -f FROM -- RCPT...`, the
//! message on stdin, no shell. Exit 0 is accepted, 75 (EX_TEMPFAIL) temporary, anything else
//! permanent with the command's stderr (bounded) as the reply.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::transport::{Envelope, RcptOutcome, Transport, all};
use crate::mail::wire::Wire;
use crate::model::attrs::NodeAttrs;

const MAX_STDERR: usize = 4096;

pub struct SendmailTransport {
    pub node: NodeAttrs,
}

fn set_nonblocking(w: &ChildStdin) {
    let fd = w.as_raw_fd();
    // SAFETY: fcntl on a descriptor this process owns; only its status flags change.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
    }
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
        // A group of its own: a command that is given up on is killed with whatever it
        // started (a background child would otherwise keep its pipes, and this sender, held).
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return all(
                    env,
                    RcptOutcome::TempFail(format!("cannot run {}: {e}", self.node.sendmail_path)),
                );
            }
        };
        let group = child.id() as libc::pid_t;
        let kill_group = || {
            // SAFETY: kill sends a signal to the group this call made; no memory is touched.
            unsafe { libc::kill(-group, libc::SIGKILL) };
        };
        let child = Arc::new(Mutex::new(child));
        let stdin = child.lock().stdin.take();
        let stderr = child.lock().stderr.take();
        let limit = Duration::from_secs_f64(self.node.handshake_time.max(1.0));
        // The reader is not scoped: a child the command left behind may hold stderr open for
        // as long as it likes, and the outcome must not wait for it. What it read by then is
        // the reply; it ends by itself when the pipe closes.
        let err_buf = Arc::new(Mutex::new(Vec::new()));
        let (eof_tx, eof) = crossbeam_channel::bounded::<()>(1);
        if let Some(mut r) = stderr {
            let buf = err_buf.clone();
            let _ = std::thread::Builder::new().spawn(move || {
                let mut chunk = [0u8; 1024];
                loop {
                    match r.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let mut b = buf.lock();
                            let room = MAX_STDERR.saturating_sub(b.len());
                            b.extend_from_slice(&chunk[..n.min(room)]);
                        }
                    }
                }
                let _ = eof_tx.send(());
            });
        }
        let stop = AtomicBool::new(false);
        let (status, read_error) = std::thread::scope(|s| {
            let killer = child.clone();
            let stop = &stop;
            // A read error must not end the input cleanly: the command would take the
            // truncated message. It is killed before its stdin closes, and the attempt is a
            // TempFail. The pipe is non-blocking so that the writer gives up when told to
            // (the command gone, a child of it holding stdin without reading).
            let writer = s.spawn(move || -> Option<String> {
                let mut w = stdin?;
                set_nonblocking(&w);
                let mut lf = ToLf::default();
                let mut chunks = wire.chunks();
                'chunks: for c in chunks.by_ref() {
                    let bytes = lf.convert(&c);
                    let mut rest = &bytes[..];
                    while !rest.is_empty() {
                        match w.write(rest) {
                            Ok(n) => rest = &rest[n..],
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                                if stop.load(Ordering::Relaxed) {
                                    break 'chunks;
                                }
                                std::thread::sleep(Duration::from_millis(2));
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                            Err(_) => break 'chunks,
                        }
                    }
                }
                let err = chunks.error.take()?;
                let _ = killer.lock().kill();
                Some(err.to_string())
            });
            let start = Instant::now();
            let status = loop {
                let mut c = child.lock();
                match c.try_wait() {
                    Ok(Some(st)) => break Some(st),
                    Ok(None) if start.elapsed() > limit => {
                        kill_group();
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
            stop.store(true, Ordering::Relaxed);
            let read_error = writer.join().unwrap_or_else(|_| Some("the writer failed".into()));
            (status, read_error)
        });
        // The command has ended: its last words come at once, unless something it left
        // behind keeps the pipe (then what was read so far).
        let _ = eof.recv_timeout(Duration::from_millis(200));
        let err = std::mem::take(&mut *err_buf.lock());
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
    use super::*;

    /// A sendmail stand-in: records its arguments and stdin, says `err` on stderr, exits `code`.
    fn command(dir: &std::path::Path, code: i32, err: &str) -> SendmailTransport {
        let script = dir.join("sendmail");
        let body = format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > {d}/args\ncat > {d}/stdin\necho '{err}' >&2\nexit {code}\n",
            d = dir.display()
        );
        std::fs::write(&script, body).unwrap();
        std::process::Command::new("chmod")
            .arg("755")
            .arg(&script)
            .status()
            .unwrap();
        SendmailTransport {
            node: NodeAttrs {
                sendmail_path: script.to_string_lossy().into_owned(),
                ..NodeAttrs::default()
            },
        }
    }

    fn env() -> Envelope {
        Envelope {
            from: String::new(),
            to: vec!["a@x.org".into(), "-b@y.org".into()],
        }
    }

    const MSG: &[u8] = b"Subject: s\r\nBcc: hidden@z.org\r\nMessage-ID: <i@h>\r\nDate: Tue, 24 Nov 2026 01:00:00 +0000\r\n\r\nline\r\n.dot\r\n";

    #[test]
    fn the_command_gets_the_envelope_as_arguments_and_the_wire_form_with_local_line_ends() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = command(dir.path(), 0, "");
        let mut gates = 0;
        let out = t.send(&env(), &Wire::from_bytes(MSG, "<i@h>"), &mut || gates += 1);
        assert_eq!(gates, 1);
        assert!(
            out.iter().all(|o| matches!(o, RcptOutcome::Accepted(_))),
            "{out:?}"
        );
        let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
        // The null sender as <>, and a recipient that looks like an option stays an operand.
        assert_eq!(args, "-i\n-f\n<>\n--\na@x.org\n-b@y.org\n");
        let stdin = std::fs::read(dir.path().join("stdin")).unwrap();
        assert_eq!(
            String::from_utf8(stdin).unwrap(),
            "Subject: s\nMessage-ID: <i@h>\nDate: Tue, 24 Nov 2026 01:00:00 +0000\n\nline\n.dot\n"
        );
    }

    #[test]
    fn exit_75_is_temporary_and_other_codes_permanent_with_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let wire = Wire::from_bytes(MSG, "<i@h>");
        let out = command(dir.path(), 75, "queue full").send(&env(), &wire, &mut || {});
        assert_eq!(out[0], RcptOutcome::TempFail("exit 75: queue full".into()));
        let out = command(dir.path(), 67, "no such user").send(&env(), &wire, &mut || {});
        assert_eq!(out.len(), 2);
        assert_eq!(out[1], RcptOutcome::PermFail("exit 67: no such user".into()));
        let mut gone = command(dir.path(), 0, "");
        gone.node.sendmail_path = dir.path().join("missing").to_string_lossy().into_owned();
        let out = gone.send(&env(), &wire, &mut || {});
        assert!(
            matches!(&out[0], RcptOutcome::TempFail(m) if m.starts_with("cannot run")),
            "{out:?}"
        );
    }

    fn script(dir: &std::path::Path, body: &str, handshake_time: f64) -> SendmailTransport {
        let mut t = command(dir, 0, "");
        std::fs::write(&t.node.sendmail_path, format!("#!/bin/sh\n{body}\n")).unwrap();
        t.node.handshake_time = handshake_time;
        t
    }

    /// audit-9 H3: a command that leaves a child behind holding its pipes neither holds the
    /// outcome past its own exit, nor (given up at handshake_time) past that time: the child
    /// is killed with it.
    #[test]
    fn a_child_left_behind_does_not_hold_the_sender() {
        let dir = tempfile::tempdir().unwrap();
        let wire = Wire::from_bytes(MSG, "<i@h>");
        let t0 = Instant::now();
        let out = script(
            dir.path(),
            "cat > /dev/null\nsleep 20 &\necho done >&2\nexit 0",
            30.0,
        )
        .send(&env(), &wire, &mut || {});
        assert!(matches!(&out[0], RcptOutcome::Accepted(_)), "{out:?}");
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());

        let t0 = Instant::now();
        let pidfile = dir.path().join("child");
        let body = format!(
            "cat > /dev/null\nsleep 30 &\necho $! > {}\nwait",
            pidfile.display()
        );
        let out = script(dir.path(), &body, 1.0).send(&env(), &wire, &mut || {});
        assert!(
            matches!(&out[0], RcptOutcome::TempFail(m) if m.contains("did not finish")),
            "{out:?}"
        );
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let alive = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
            .is_ok_and(|st| !st.contains(") Z "));
        assert!(!alive, "the child the command left is still running");
    }

    /// A command that stops reading its input and never exits is given up on at
    /// handshake_time, though the message is bigger than the pipe holds.
    #[test]
    fn a_command_that_stops_reading_is_given_up() {
        let dir = tempfile::tempdir().unwrap();
        let mut big = MSG.to_vec();
        big.extend(std::iter::repeat_n(b'x', 1 << 20));
        let wire = Wire::from_bytes(&big, "<i@h>");
        let t0 = Instant::now();
        let out = script(dir.path(), "sleep 30", 1.0).send(&env(), &wire, &mut || {});
        assert!(matches!(&out[0], RcptOutcome::TempFail(_)), "{out:?}");
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    }

    #[test]
    fn crlf_becomes_lf_across_chunk_boundaries() {
        let mut lf = ToLf::default();
        let mut out = lf.convert(b"a\r\nb\r");
        out.extend(lf.convert(b"\nc\rd\r\n"));
        assert_eq!(out, b"a\nb\nc\rd\n");
    }
}
