//! A submission read whole before it touches the disk: `mailfs sendmail` writes a short
//! message once, with the header fields it lacks already in place, instead of writing it to a
//! temp file, reading its header block back and rewriting it. A longer one goes to a temp file
//! as it is read and takes [`super::queue_file`]'s way.

use std::io::{self, BufRead, Read, Write};
use std::path::PathBuf;

use super::{INSERT_IN_PLACE_MAX, Origin, Submission, prepare, queue_tmp, store_prepared};
use crate::error::{Error, Result};
use crate::mail::content;
use crate::store::spool::{Spool, create_private};

/// A message as a submitter handed it over.
#[derive(Debug)]
pub enum Incoming {
    /// Short enough to hold: nothing written yet.
    Bytes(Vec<u8>),
    /// A spool temp file (not synced), for a message longer than [`INSERT_IN_PLACE_MAX`].
    Tmp(PathBuf),
}

/// Reads a message like [`super::read_to_tmp`] (a line with a single dot ends it when
/// `stop_at_dot`), keeping it in memory when it is at most [`INSERT_IN_PLACE_MAX`] bytes.
pub fn read_message(spool: &Spool, input: &mut dyn Read, stop_at_dot: bool) -> Result<Incoming> {
    let mut r = io::BufReader::with_capacity(64 * 1024, input);
    let mut held = Vec::new();
    if copy_message(&mut r, &mut held, stop_at_dot, Some(INSERT_IN_PLACE_MAX))? {
        return Ok(Incoming::Bytes(held));
    }
    let tmp = spool.tmp_path();
    let res = create_private(&tmp).and_then(|mut f| {
        f.write_all(&held)?;
        // A line the limit cut is finished as it is: its rest is no line of its own, even
        // when it reads ".".
        if stop_at_dot && !held.ends_with(b"\n") {
            held.clear();
            r.read_until(b'\n', &mut held)?;
            f.write_all(&held)?;
        }
        copy_message(&mut r, &mut f, stop_at_dot, None).map(drop)
    });
    match res {
        Ok(()) => Ok(Incoming::Tmp(tmp)),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(Error::Io(e))
        }
    }
}

/// Copies the message from `r` to `out` up to its end (a dot line when `stop_at_dot`, else
/// end of input): `Ok(true)` once it ended; `Ok(false)` as soon as more than `limit` bytes
/// were copied, with `r` positioned right after them.
pub(super) fn copy_message(
    r: &mut impl BufRead,
    out: &mut impl Write,
    stop_at_dot: bool,
    limit: Option<u64>,
) -> io::Result<bool> {
    let mut room = limit.map_or(u64::MAX, |l| l + 1);
    if !stop_at_dot {
        let n = io::copy(&mut Read::take(&mut *r, room), out)?;
        return Ok(n < room);
    }
    let mut line = Vec::new();
    loop {
        line.clear();
        if Read::take(&mut *r, room).read_until(b'\n', &mut line)? == 0 {
            return Ok(true);
        }
        if line == b".\n" || line == b".\r\n" {
            return Ok(true);
        }
        out.write_all(&line)?;
        room -= line.len() as u64;
        if room == 0 {
            return Ok(false);
        }
    }
}

/// Queues a message read by [`read_message`], exactly as [`queue_tmp`] queues a temp file:
/// one held in memory is written once, its missing fields inserted as it is written.
pub fn queue_incoming(spool: &Spool, msg: Incoming, sub: &Submission, origin: &Origin) -> Result<String> {
    let bytes = match msg {
        Incoming::Tmp(tmp) => return queue_tmp(spool, tmp, sub, origin),
        Incoming::Bytes(b) => b,
    };
    let head = content::read_head_from(&mut &bytes[..])?;
    let p = prepare(&head, sub, origin)?;
    let at = (p.at as usize).min(bytes.len());
    let tmp = spool.tmp_path();
    let written = create_private(&tmp).and_then(|mut f| {
        f.write_all(&bytes[..at])?;
        f.write_all(&p.extra)?;
        f.write_all(&bytes[at..])
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::Io(e));
    }
    store_prepared(spool, tmp, p.attrs, "sendmail", false)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{origin, spool, sub};
    use super::*;

    /// A message read into memory is stored byte for byte as the temp-file way stores it.
    #[test]
    fn held_and_spooled_submissions_are_stored_alike() {
        let (_d, spool) = spool();
        for (msg, dots) in [
            (&b"Subject: hi\n\nbody\n.\nafter\n"[..], true),
            (&b"Subject: hi\n\nbody\n.\nafter\n"[..], false),
            (
                &b"Received: from x\r\nFrom: a@example.org\r\n\r\nbody\r\n"[..],
                false,
            ),
            (&b"no header block at all"[..], false),
        ] {
            let held = read_message(&spool, &mut &msg[..], dots).unwrap();
            assert!(matches!(held, Incoming::Bytes(_)), "{held:?}");
            let a = queue_incoming(&spool, held, &sub(&["b@example.org"]), &origin()).unwrap();
            let tmp = super::super::read_to_tmp(&spool, &mut &msg[..], dots).unwrap();
            let b = queue_tmp(&spool, tmp, &sub(&["b@example.org"]), &origin()).unwrap();
            let (ea, eb) = (read(&spool, &a), read(&spool, &b));
            assert_eq!(strip_id_date(&ea), strip_id_date(&eb), "{msg:?}");
            let (aa, _) = spool.read_attrs(&a).unwrap().unwrap();
            let (ab, _) = spool.read_attrs(&b).unwrap().unwrap();
            assert_eq!(aa.recipients, ab.recipients);
            assert_eq!(aa.env_from, ab.env_from);
            assert!(aa.is_queued() && aa.owner == ab.owner);
            assert!(ea.contains(&aa.message_id), "{ea}");
        }
    }

    /// Past the limit the message streams to a temp file, whole, dot rule included.
    #[test]
    fn a_long_submission_goes_to_a_temp_file_whole() {
        let (_d, spool) = spool();
        let line = "x".repeat(99) + "\n";
        let body = line.repeat((INSERT_IN_PLACE_MAX as usize / line.len()) + 10);
        let msg = format!("Subject: long\n\n{body}.\nnot this\n");
        let Incoming::Tmp(t) = read_message(&spool, &mut msg.as_bytes(), true).unwrap() else {
            panic!("held in memory")
        };
        assert_eq!(
            std::fs::read(&t).unwrap(),
            format!("Subject: long\n\n{body}").as_bytes()
        );
        let Incoming::Tmp(t2) = read_message(&spool, &mut msg.as_bytes(), false).unwrap() else {
            panic!("held in memory")
        };
        assert_eq!(std::fs::read(&t2).unwrap(), msg.as_bytes());
        // A line cut by the limit: its rest (".") is not taken for the end of the message.
        let mut cut = vec![b'z'; INSERT_IN_PLACE_MAX as usize - 1];
        cut.extend_from_slice(b"xx.\n.\n");
        let Incoming::Tmp(t3) = read_message(&spool, &mut &cut[..], true).unwrap() else {
            panic!("held in memory")
        };
        assert_eq!(std::fs::read(&t3).unwrap(), &cut[..cut.len() - 2]);
        // Exactly at the limit it is still held.
        let exact = vec![b'y'; INSERT_IN_PLACE_MAX as usize];
        assert!(matches!(
            read_message(&spool, &mut &exact[..], false).unwrap(),
            Incoming::Bytes(b) if b.len() == exact.len()
        ));
        let name = queue_incoming(&spool, Incoming::Tmp(t), &sub(&["b@example.org"]), &origin()).unwrap();
        assert!(read(&spool, &name).ends_with(&line));
    }

    fn read(spool: &Spool, name: &str) -> String {
        std::fs::read_to_string(spool.eml_path(name)).unwrap()
    }

    /// The message without its generated Date and Message-ID lines, which differ per call.
    fn strip_id_date(eml: &str) -> String {
        eml.split_inclusive('\n')
            .filter(|l| !l.starts_with("Date: ") && !l.starts_with("Message-ID: "))
            .collect()
    }
}
