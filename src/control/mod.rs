//! The control channel: how a user who cannot open the spool (it is 0700, its owner's alone)
//! still submits mail and manages their own messages, as Postfix's setgid `postdrop` allows,
//! without any setuid or setgid binary.
//!
//! The process serving a node (`mailfs mount` or `mailfs serve`) listens on a Unix socket
//! beside the spool, `SPOOL_DIR.sock` (e.g. `/var/spool/mailfs.sock` for `/var/spool/mailfs`):
//! inside the spool a socket would be unreachable to the very users it is for. The kernel tells
//! the server who connected (SO_PEERCRED), so a caller cannot claim to be someone else; the
//! server stores the message with the caller as its owner through the one enqueue path
//! ([`crate::store::queue::queue_tmp`]) and answers queue requests with the caller's messages only
//! ([`crate::store::manage::Scope`]).
//!
//! Wire format, version [`PROTOCOL`]: the client sends one JSON line ([`Hello`]), then for a
//! submission the message bytes until it shuts down its write side; the server answers one
//! JSON line ([`Reply`]). A line is at most [`MAX_LINE`] bytes, a message at most the
//! node's `message_size_limit`; every read and write has a timeout.

pub mod client;
pub mod server;
pub mod standby;

use std::io::{self, BufRead, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::error::{Error, Result};
use crate::store::manage::Row;

/// Bumped when a request or reply changes incompatibly.
pub const PROTOCOL: u32 = 1;
/// The longest request or reply line.
pub const MAX_LINE: u64 = 4 << 20;
/// The largest message taken over the socket when the node's `message_size_limit` is 0:
/// Postfix's default (the socket always keeps a bound).
pub const SUBMIT_SIZE_LIMIT: u64 = 10_240_000;

/// How long a server may take to answer a probe before it counts as gone.
const PROBE: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether a live server answers on the socket at `path`: `Err` when nothing can be
/// connected to, `Ok(false)` when something accepts the connection but does not answer. A
/// connection alone does not tell: the kernel accepts it into the listening socket's backlog
/// even when the process behind is stopped or stuck dying (audit-14: a `kill -STOP`ped owner
/// kept every submission hanging, and nothing took over). The probe is a hello with protocol
/// 0, which any server answers at once with an error and without doing anything.
pub fn probe(path: &Path) -> io::Result<bool> {
    let stream = std::os::unix::net::UnixStream::connect(path)?;
    stream.set_read_timeout(Some(PROBE))?;
    stream.set_write_timeout(Some(PROBE))?;
    let hello = Hello {
        v: 0,
        req: Request::Queue,
    };
    if write_line(&mut &stream, &hello).is_err() {
        return Ok(false);
    }
    let mut line = Vec::new();
    Ok(io::BufReader::new(&stream)
        .take(4096)
        .read_until(b'\n', &mut line)
        .is_ok_and(|n| n > 0))
}

/// The socket of the node kept in `spool_dir`: `SPOOL_DIR.sock`, beside it.
pub fn socket_path(spool_dir: &Path) -> PathBuf {
    let abs = spool_dir.canonicalize().unwrap_or_else(|_| {
        std::env::current_dir()
            .map(|d| d.join(spool_dir))
            .unwrap_or_else(|_| spool_dir.to_path_buf())
    });
    let mut s = abs.into_os_string();
    s.push(".sock");
    PathBuf::from(s)
}

/// What a client asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// `mailfs sendmail`: the message follows the request line.
    Sendmail {
        env_from: Option<String>,
        recipients: Vec<String>,
        read_headers: bool,
        full_name: Option<String>,
        /// A line with a single dot ends the message (sendmail without `-i`).
        stop_at_dot: bool,
    },
    /// `mailfs deliver`: the message follows; RECIPIENT and SENDER as the MTA set them.
    Deliver {
        recipient: Option<String>,
        sender: Option<String>,
    },
    Queue,
    Flush,
    Cancel {
        names: Vec<String>,
    },
    /// `hold` (true) or `release` (false).
    Hold {
        names: Vec<String>,
        domain: Option<String>,
        hold: bool,
    },
}

/// The request line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub v: u32,
    pub req: Request,
}

/// The answer line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "r", rename_all = "snake_case")]
pub enum Reply {
    Queued {
        name: String,
    },
    Rows {
        rows: Vec<Row>,
    },
    Flushed {
        count: usize,
    },
    Outcomes {
        outcomes: Vec<(String, Option<WireError>)>,
    },
    Error {
        error: WireError,
    },
}

/// An [`Error`] as it crosses the socket, so the client exits with the code the same failure
/// gives when run directly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireError {
    pub kind: Kind,
    /// The attribute or option an `Invalid` error is about.
    #[serde(default)]
    pub name: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Usage,
    Invalid,
    NotFound,
    TooBig,
    Busy,
    Unavailable,
    Denied,
    Config,
    Other,
}

impl From<&Error> for WireError {
    fn from(e: &Error) -> Self {
        let w = |kind, message: &str| WireError {
            kind,
            name: String::new(),
            message: message.to_string(),
        };
        match e {
            Error::Usage(m) => w(Kind::Usage, m),
            Error::Invalid { name, why } => WireError {
                kind: Kind::Invalid,
                name: name.clone(),
                message: why.clone(),
            },
            Error::NotFound(m) => w(Kind::NotFound, m),
            Error::TooBig(m) => w(Kind::TooBig, m),
            Error::Busy(m) => w(Kind::Busy, m),
            Error::Unavailable(m) => w(Kind::Unavailable, m),
            Error::Denied(m) => w(Kind::Denied, m),
            Error::Config(m) => w(Kind::Config, m),
            // A system error keeps the exit code it has in a command run directly: a full
            // disk is a temporary failure (75), not "cannot create" (73).
            other => match other.exit_code() {
                75 => w(Kind::Unavailable, &other.to_string()),
                66 => w(Kind::NotFound, &other.to_string()),
                _ => w(Kind::Other, &other.to_string()),
            },
        }
    }
}

impl WireError {
    pub fn into_error(self) -> Error {
        let m = self.message;
        match self.kind {
            Kind::Usage => Error::Usage(m),
            Kind::Invalid => Error::Invalid {
                name: self.name,
                why: m,
            },
            Kind::NotFound => Error::NotFound(m),
            Kind::TooBig => Error::TooBig(m),
            Kind::Busy => Error::Busy(m),
            Kind::Unavailable => Error::Unavailable(m),
            Kind::Denied => Error::Denied(m),
            Kind::Config => Error::Config(m),
            Kind::Other => Error::Io(io::Error::other(m)),
        }
    }
}

/// Writes one JSON line.
pub fn write_line<T: Serialize>(w: &mut dyn Write, v: &T) -> Result<()> {
    let mut line = serde_json::to_vec(v).map_err(|e| Error::Io(io::Error::other(e)))?;
    line.push(b'\n');
    w.write_all(&line)?;
    w.flush()?;
    Ok(())
}

/// Reads one JSON line of at most [`MAX_LINE`] bytes; a longer, cut or malformed line is an
/// error, never a partial value.
pub fn read_line<T: DeserializeOwned>(r: &mut dyn BufRead) -> Result<T> {
    let mut line = Vec::new();
    r.take(MAX_LINE).read_until(b'\n', &mut line)?;
    if line.last() != Some(&b'\n') {
        return Err(Error::invalid(
            "control request",
            if line.is_empty() {
                "the peer closed the connection without a line".to_string()
            } else {
                format!("a line must end within {MAX_LINE} bytes")
            },
        ));
    }
    serde_json::from_slice(&line).map_err(|e| Error::invalid("control request", e.to_string()))
}

/// A reader that fails once more than `limit` bytes came through (the message size limit),
/// so nothing unbounded is read from a peer.
pub struct Limited<R> {
    inner: R,
    left: u64,
    limit: u64,
    /// The limit was passed.
    pub exceeded: bool,
}

impl<R: Read> Limited<R> {
    pub fn new(inner: R, limit: u64) -> Self {
        Limited {
            inner,
            left: limit,
            limit,
            exceeded: false,
        }
    }
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            self.exceeded = true;
            return Err(io::Error::other(format!(
                "message larger than {} bytes",
                self.limit
            )));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_reply_lines_round_trip() {
        let hello = Hello {
            v: PROTOCOL,
            req: Request::Sendmail {
                env_from: Some("a@example.com".into()),
                recipients: vec!["b@example.org".into()],
                read_headers: true,
                full_name: None,
                stop_at_dot: false,
            },
        };
        let mut buf = Vec::new();
        write_line(&mut buf, &hello).unwrap();
        buf.extend_from_slice(b"From: a\n\nbody\n");
        let mut r = io::BufReader::new(&buf[..]);
        let got: Hello = read_line(&mut r).unwrap();
        assert_eq!(got, hello);
        // The message bytes after the line are still there, whatever the reader buffered.
        let mut rest = String::new();
        r.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "From: a\n\nbody\n");

        let reply = Reply::Outcomes {
            outcomes: vec![
                ("a.eml".into(), None),
                ("b.eml".into(), Some((&Error::Denied("b.eml".into())).into())),
            ],
        };
        let mut buf = Vec::new();
        write_line(&mut buf, &reply).unwrap();
        let got: Reply = read_line(&mut &buf[..]).unwrap();
        assert_eq!(got, reply);
    }

    #[test]
    fn a_cut_long_or_bad_line_is_refused() {
        let e = read_line::<Hello>(&mut &b"{\"v\":1"[..]).unwrap_err();
        assert!(e.to_string().contains("must end"), "{e}");
        let e = read_line::<Hello>(&mut &b""[..]).unwrap_err();
        assert!(e.to_string().contains("closed"), "{e}");
        let e = read_line::<Hello>(&mut &b"{\"v\":1,\"req\":{\"op\":\"rm_rf\"}}\n"[..]).unwrap_err();
        assert_eq!(e.exit_code(), 65);
        let long = vec![b' '; MAX_LINE as usize + 10];
        assert!(read_line::<Hello>(&mut &long[..]).is_err());
    }

    #[test]
    fn errors_keep_their_exit_code_across_the_socket() {
        for e in [
            Error::Usage("no recipients".into()),
            Error::invalid("recipient", "leading '-'"),
            Error::NotFound("x.eml".into()),
            Error::TooBig("big".into()),
            Error::Busy("x.eml".into()),
            Error::Unavailable("down".into()),
            Error::Denied("x.eml belongs to another user".into()),
            Error::Config("bad".into()),
            Error::Io(io::Error::from_raw_os_error(libc::EIO)),
        ] {
            let back = WireError::from(&e).into_error();
            assert_eq!(back.exit_code(), e.exit_code(), "{e}");
            assert_eq!(back.to_string(), e.to_string());
        }
        // audit-10 J6: a full disk is 75 through the socket as it is directly (was 73).
        for errno in [libc::ENOSPC, libc::ENOENT] {
            let e = Error::Io(io::Error::from_raw_os_error(errno));
            let back = WireError::from(&e).into_error();
            assert_eq!(back.exit_code(), e.exit_code(), "{e}");
            assert!(
                back.to_string()
                    .contains(&io::Error::from_raw_os_error(errno).to_string())
            );
        }
    }

    #[test]
    fn the_size_limit_stops_the_reader() {
        let data = [b'x'; 100];
        let mut l = Limited::new(&data[..], 64);
        let mut out = Vec::new();
        assert!(io::copy(&mut l, &mut out).is_err());
        assert!(l.exceeded);
        let mut l = Limited::new(&data[..], 100);
        io::copy(&mut l, &mut out).unwrap();
        assert!(!l.exceeded);
    }

    #[test]
    fn the_socket_sits_beside_the_spool() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        std::fs::create_dir(&spool).unwrap();
        let want = dir.path().canonicalize().unwrap().join("spool.sock");
        assert_eq!(socket_path(&spool), want);
        assert_eq!(socket_path(&dir.path().join("spool/")), want);
    }
}

#[cfg(test)]
mod server_tests;
