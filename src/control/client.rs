//! The calling side of the control channel: connect to `SPOOL_DIR.sock`, send the request
//! line and the message, read the one reply line.

use std::io::{self, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::{Hello, PROTOCOL, Reply, Request};
use crate::error::{Error, Result};

/// How long the server may take to store a message and answer.
const REPLY_TIMEOUT: Duration = Duration::from_secs(300);

/// Sends `req` (and `body`, for a submission) to the process serving the spool whose socket is
/// `sock`, and returns its reply; a reply that carries an error becomes that error. Nothing
/// listening is EX_TEMPFAIL: the caller's mail is not lost, it was never taken.
pub fn call(sock: &Path, spool_dir: &Path, req: &Request, body: Option<&mut dyn Read>) -> Result<Reply> {
    // The socket must be the spool owner's: in a directory others can write, anyone could
    // put a socket there and collect what is submitted to it.
    if let (Ok(s), Ok(d)) = (std::fs::symlink_metadata(sock), std::fs::metadata(spool_dir))
        && s.uid() != d.uid()
        && s.uid() != 0
    {
        return Err(Error::Unavailable(format!(
            "{} belongs to uid {}, not to the owner of {} (uid {}): not using it",
            sock.display(),
            s.uid(),
            spool_dir.display(),
            d.uid()
        )));
    }
    let not_served = |e: io::Error| {
        // A socket the caller may not connect to is a node served privately (0600) by its
        // owner: a refusal (77) that retrying will not change, not an absent server (75).
        if e.kind() == io::ErrorKind::PermissionDenied {
            return Error::Denied(format!(
                "{} is served privately by its owner: you may not submit to it ({e})",
                spool_dir.display()
            ));
        }
        Error::Unavailable(format!(
            "{} is not served: nothing answers on {} ({e}); its owner must run `mailfs mount` or \
             `mailfs serve` on it",
            spool_dir.display(),
            sock.display()
        ))
    };
    // A server that is stopped or stuck dying still accepts connections, and a request sent
    // to it would wait for minutes: a probe first, which a live one answers at once.
    if !super::probe(sock).map_err(not_served)? {
        return Err(Error::Unavailable(format!(
            "{} is not answering on {}: its server is stopped or stuck; try again later",
            spool_dir.display(),
            sock.display()
        )));
    }
    let stream = UnixStream::connect(sock).map_err(not_served)?;
    stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
    stream.set_write_timeout(Some(REPLY_TIMEOUT))?;
    let hello = Hello {
        v: PROTOCOL,
        req: req.clone(),
    };
    let mut w = &stream;
    super::write_line(&mut w, &hello)?;
    if let Some(body) = body {
        // The server stops reading early when the message ends at a lone dot or is too big:
        // its reply says which, so a broken pipe here is not the error to report.
        match io::copy(body, &mut w) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            Err(e) => return Err(e.into()),
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut r = BufReader::new(&stream);
    let reply: Reply = super::read_line(&mut r).map_err(|e| {
        Error::Unavailable(format!(
            "no answer from the process serving {}: {e}",
            spool_dir.display()
        ))
    })?;
    match reply {
        Reply::Error { error } => Err(error.into_error()),
        other => Ok(other),
    }
}
