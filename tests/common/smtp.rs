//! Peers for sending tests: Postfix's real `smtp-sink`, and a scripted SMTP server for the
//! faults a real server rarely shows on demand. Both listen on 127.0.0.1 only.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A loopback port that refuses connections for as long as this lives: bound, never listening,
/// so no other test's server can be given it. A port from [`free_port`] is free only until
/// someone binds it: two tests running at once were given the same one, and the test that
/// wanted "connection refused" had its message delivered by the other's server.
pub struct DeadPort {
    fd: libc::c_int,
    pub port: u16,
}

pub fn dead_port() -> DeadPort {
    // SAFETY: plain socket calls on a descriptor this function owns; the address structs are
    // initialised and sized as the calls expect.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket");
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(libc::bind(fd, (&raw const addr).cast(), len), 0, "bind");
        let mut got: libc::sockaddr_in = std::mem::zeroed();
        let mut got_len = len;
        assert_eq!(libc::getsockname(fd, (&raw mut got).cast(), &mut got_len), 0);
        DeadPort {
            fd,
            port: u16::from_be(got.sin_port),
        }
    }
}

impl Drop for DeadPort {
    fn drop(&mut self) {
        // SAFETY: the descriptor is this guard's own.
        unsafe { libc::close(self.fd) };
    }
}

/// Postfix's smtp-sink, dumping every message it accepts into `dir` (one file per message).
pub struct Sink {
    pub port: u16,
    pub dir: PathBuf,
    child: Child,
}

impl Sink {
    pub fn start(base: &Path) -> Sink {
        let dir = base.join("sink");
        std::fs::create_dir_all(&dir).unwrap();
        // smtp-sink drops privileges to postfix: it must reach and write its dump directory.
        let _ = Command::new("chmod").args(["755"]).arg(base).status();
        let _ = Command::new("chown").arg("postfix").arg(&dir).status();
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new("/usr/sbin/smtp-sink")
                .args(["-u", "postfix", "-d"])
                .arg(format!("{}/%M.", dir.display()))
                .arg("-c")
                .arg(format!("127.0.0.1:{port}"))
                .arg("256")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("smtp-sink (apt-get install postfix)");
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(5) {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Sink { port, dir, child };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("smtp-sink did not start");
    }

    /// The dumps smtp-sink has finished: it creates a dump when a transaction starts and
    /// writes it as the data comes, so a file it still holds open is a message in flight.
    fn finished(&self) -> Vec<PathBuf> {
        // /proc gives the open files' canonical paths.
        let Ok(dir) = std::fs::canonicalize(&self.dir) else {
            return Vec::new();
        };
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let listed: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        // Looked at after the listing: a file closed in between counts as finished, which it is.
        let open: std::collections::HashSet<PathBuf> =
            std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
                .map(|rd| {
                    rd.flatten()
                        .filter_map(|e| std::fs::read_link(e.path()).ok())
                        .collect()
                })
                .unwrap_or_default();
        listed.into_iter().filter(|p| !open.contains(p)).collect()
    }

    /// How many messages were dumped and finished.
    pub fn count(&self) -> usize {
        self.finished().len()
    }

    /// The finished dumps' contents.
    pub fn messages(&self) -> Vec<String> {
        self.finished()
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .collect()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One transaction the scripted server saw.
#[derive(Debug, Clone)]
pub struct Txn {
    pub conn: usize,
    pub from: String,
    /// The MAIL FROM command as received (with its parameters).
    pub mail_cmd: String,
    pub rcpts: Vec<String>,
    pub accepted: Vec<String>,
    pub data: Option<String>,
    pub mail_at: Instant,
}

/// What the scripted server answers.
pub struct Script {
    pub greeting: Option<String>,
    pub mail: String,
    /// Reply for RCPT TO by address; default 250.
    /// Called without the script's lock held, so it may stall one recipient's session.
    pub rcpt: Arc<dyn Fn(&str) -> String + Send + Sync>,
    pub data_end: String,
    /// Close the connection in the middle of DATA.
    pub reset_in_data: bool,
    pub delay: Duration,
    /// Write every reply one byte at a time with this pause (a server that trickles).
    pub drip: Option<Duration>,
    /// The EHLO reply (HELO always gets `250 scripted`).
    pub ehlo: String,
    /// Raw bytes for the MAIL FROM reply instead of `mail` (e.g. not UTF-8).
    pub mail_raw: Option<Vec<u8>>,
    /// After the greeting's first bytes, an endless reply line.
    pub endless_greeting: bool,
    /// Close the connection right after the end-of-data reply (as a server that takes one
    /// message per session, or drops idle ones quickly, leaves a kept session).
    pub close_after_data: bool,
    /// Answer the MAIL FROM after this many transactions in one session with a 421, and close.
    pub txns_per_session: Option<usize>,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            greeting: Some("220 scripted ESMTP".into()),
            mail: "250 2.1.0 Ok".into(),
            rcpt: Arc::new(|_| "250 2.1.5 Ok".into()),
            data_end: "250 2.0.0 Ok: queued".into(),
            reset_in_data: false,
            delay: Duration::ZERO,
            drip: None,
            ehlo: "250-scripted\r\n250-8BITMIME\r\n250 PIPELINING".into(),
            mail_raw: None,
            endless_greeting: false,
            close_after_data: false,
            txns_per_session: None,
        }
    }
}

pub struct Scripted {
    pub port: u16,
    pub txns: Arc<Mutex<Vec<Txn>>>,
    pub script: Arc<Mutex<Script>>,
    pub open: Arc<AtomicUsize>,
    pub max_open: Arc<AtomicUsize>,
    pub in_txn: Arc<AtomicUsize>,
    pub max_in_txn: Arc<AtomicUsize>,
    pub connections: Arc<AtomicUsize>,
    /// Every EHLO/HELO command received.
    pub hellos: Arc<Mutex<Vec<String>>>,
    /// MAIL FROM commands that arrived with the next command already behind them (PIPELINING).
    pub pipelined: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Scripted {
    pub fn start(script: Script) -> Scripted {
        Scripted::start_at("127.0.0.1:0", script)
    }

    /// Listens on a given address, e.g. `127.0.25.2:25` for an MX host (root only).
    pub fn start_at(addr: &str, script: Script) -> Scripted {
        let listener = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let s = Scripted {
            port,
            txns: Arc::default(),
            script: Arc::new(Mutex::new(script)),
            open: Arc::default(),
            max_open: Arc::default(),
            in_txn: Arc::default(),
            max_in_txn: Arc::default(),
            connections: Arc::default(),
            hellos: Arc::default(),
            pipelined: Arc::default(),
            stop: Arc::default(),
        };
        let (hellos, pipelined) = (s.hellos.clone(), s.pipelined.clone());
        let (txns, script, open, max_open, in_txn, max_in_txn, conns, stop) = (
            s.txns.clone(),
            s.script.clone(),
            s.open.clone(),
            s.max_open.clone(),
            s.in_txn.clone(),
            s.max_in_txn.clone(),
            s.connections.clone(),
            s.stop.clone(),
        );
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(300);
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let id = conns.fetch_add(1, Ordering::SeqCst);
                        let (hellos, pipelined) = (hellos.clone(), pipelined.clone());
                        let (txns, script, open, max_open, in_txn, max_in_txn) = (
                            txns.clone(),
                            script.clone(),
                            open.clone(),
                            max_open.clone(),
                            in_txn.clone(),
                            max_in_txn.clone(),
                        );
                        std::thread::spawn(move || {
                            let n = open.fetch_add(1, Ordering::SeqCst) + 1;
                            max_open.fetch_max(n, Ordering::SeqCst);
                            let peer = Peer {
                                txns: &txns,
                                script: &script,
                                in_txn: &in_txn,
                                max_in_txn: &max_in_txn,
                                hellos: &hellos,
                                pipelined: &pipelined,
                            };
                            let _ = session(id, stream, &peer);
                            open.fetch_sub(1, Ordering::SeqCst);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        s
    }

    pub fn txns(&self) -> Vec<Txn> {
        self.txns.lock().unwrap().clone()
    }

    /// Recipients that received message data, with how many copies each.
    pub fn delivered(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .txns()
            .into_iter()
            .filter(|t| t.data.is_some())
            .flat_map(|t| t.accepted)
            .collect();
        v.sort();
        v
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn say(w: &mut TcpStream, drip: Option<Duration>, text: &str) -> std::io::Result<()> {
    match drip {
        None => w.write_all(text.as_bytes()),
        Some(pause) => {
            for b in text.as_bytes() {
                w.write_all(&[*b])?;
                w.flush()?;
                std::thread::sleep(pause);
            }
            Ok(())
        }
    }
}

struct Peer<'a> {
    txns: &'a Mutex<Vec<Txn>>,
    script: &'a Mutex<Script>,
    in_txn: &'a AtomicUsize,
    max_in_txn: &'a AtomicUsize,
    hellos: &'a Mutex<Vec<String>>,
    pipelined: &'a AtomicUsize,
}

fn session(id: usize, stream: TcpStream, p: &Peer) -> std::io::Result<()> {
    let (txns, script, in_txn, max_in_txn) = (p.txns, p.script, p.in_txn, p.max_in_txn);
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    let (greeting, delay, drip) = {
        let s = script.lock().unwrap();
        (s.greeting.clone(), s.delay, s.drip)
    };
    let Some(g) = greeting else {
        // Say nothing; hold the connection until the client gives up.
        let mut line = String::new();
        let _ = r.read_line(&mut line);
        return Ok(());
    };
    if script.lock().unwrap().endless_greeting {
        w.write_all(b"220-")?;
        let block = vec![b'x'; 64 * 1024];
        // Until the client hangs up (or 5 minutes, whichever first).
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(300) {
            w.write_all(&block)?;
        }
        return Ok(());
    }
    say(&mut w, drip, &format!("{g}\r\n"))?;
    if !g.starts_with("220") {
        return Ok(());
    }
    let mut cur: Option<Txn> = None;
    let mut done_here = 0usize;
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            break;
        }
        let cmd = line.trim_end().to_string();
        let upper = cmd.to_ascii_uppercase();
        std::thread::sleep(delay);
        if upper.starts_with("EHLO") {
            p.hellos.lock().unwrap().push(cmd.clone());
            let reply = script.lock().unwrap().ehlo.clone();
            say(&mut w, drip, &format!("{reply}\r\n"))?;
        } else if upper.starts_with("HELO") {
            p.hellos.lock().unwrap().push(cmd.clone());
            say(&mut w, drip, "250 scripted\r\n")?;
        } else if upper.starts_with("MAIL FROM:") {
            if !r.buffer().is_empty() {
                p.pipelined.fetch_add(1, Ordering::SeqCst);
            }
            if script
                .lock()
                .unwrap()
                .txns_per_session
                .is_some_and(|n| done_here >= n)
            {
                say(
                    &mut w,
                    drip,
                    "421 4.7.0 scripted: too many messages in this session\r\n",
                )?;
                return Ok(());
            }
            let (reply, raw) = {
                let s = script.lock().unwrap();
                (s.mail.clone(), s.mail_raw.clone())
            };
            if reply.starts_with('2') {
                let n = in_txn.fetch_add(1, Ordering::SeqCst) + 1;
                max_in_txn.fetch_max(n, Ordering::SeqCst);
                cur = Some(Txn {
                    conn: id,
                    mail_cmd: cmd.clone(),
                    from: cmd[10..]
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .trim_matches(['<', '>'])
                        .to_string(),
                    rcpts: vec![],
                    accepted: vec![],
                    data: None,
                    mail_at: Instant::now(),
                });
            }
            match raw {
                Some(bytes) => w.write_all(&bytes)?,
                None => say(&mut w, drip, &format!("{reply}\r\n"))?,
            }
        } else if upper.starts_with("RCPT TO:") {
            let addr = cmd[8..]
                .split_whitespace()
                .next()
                .unwrap_or("")
                .trim_matches(['<', '>'])
                .to_string();
            let rcpt = script.lock().unwrap().rcpt.clone();
            let reply = rcpt(&addr);
            if let Some(t) = cur.as_mut() {
                t.rcpts.push(addr.clone());
                if reply.starts_with('2') {
                    t.accepted.push(addr);
                }
            }
            say(&mut w, drip, &format!("{reply}\r\n"))?;
        } else if upper == "DATA" {
            say(&mut w, drip, "354 go ahead\r\n")?;
            let mut data = String::new();
            let reset = script.lock().unwrap().reset_in_data;
            loop {
                let mut l = String::new();
                if r.read_line(&mut l)? == 0 {
                    return Ok(());
                }
                if l == ".\r\n" {
                    break;
                }
                if reset {
                    in_txn.fetch_sub(1, Ordering::SeqCst);
                    return Ok(());
                }
                data.push_str(l.strip_prefix('.').unwrap_or(&l));
            }
            let reply = script.lock().unwrap().data_end.clone();
            if let Some(mut t) = cur.take() {
                if reply.starts_with('2') {
                    t.data = Some(data);
                }
                txns.lock().unwrap().push(t);
                in_txn.fetch_sub(1, Ordering::SeqCst);
            }
            say(&mut w, drip, &format!("{reply}\r\n"))?;
            done_here += 1;
            if script.lock().unwrap().close_after_data {
                return Ok(());
            }
        } else if upper == "RSET" {
            if let Some(t) = cur.take() {
                txns.lock().unwrap().push(t);
                in_txn.fetch_sub(1, Ordering::SeqCst);
            }
            say(&mut w, drip, "250 Ok\r\n")?;
        } else if upper == "QUIT" {
            say(&mut w, drip, "221 Bye\r\n")?;
            break;
        } else {
            say(&mut w, drip, "502 unknown\r\n")?;
        }
    }
    if cur.is_some() {
        in_txn.fetch_sub(1, Ordering::SeqCst);
    }
    Ok(())
}
