//! The wire form of a queued message, built once per attempt and handed to the transports as
//! a chunk source: the header block rewritten for the wire (Bcc removed, Date/Message-ID added
//! if missing, CRLF) when the [`Wire`] is made, the body streamed from the same open file with
//! its line ends made CRLF. Each transaction takes its own pass ([`Wire::chunks`]), so a
//! transport that tries another host (the next relay or exchanger) sends the same bytes of
//! the same version of the file; dot-stuffing belongs to SMTP and stays in its client.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::content::{HeaderInfo, missing_headers, read_head_from};

/// Body bytes read per chunk.
const CHUNK: usize = 256 * 1024;

/// Messages up to this size are read whole before sending, so a read error can never put a
/// truncated message on the wire; larger ones are streamed in chunks.
pub const WHOLE_READ_LIMIT: u64 = 64 << 20;

/// Converts bare LF (and bare CR) line ends to CRLF, across chunk boundaries.
#[derive(Default)]
pub struct CrlfNormalizer {
    last_cr: bool,
}

impl CrlfNormalizer {
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + input.len() / 32);
        for &b in input {
            match b {
                b'\n' => {
                    if !self.last_cr {
                        out.push(b'\r');
                    }
                    out.push(b'\n');
                    self.last_cr = false;
                }
                _ => {
                    if self.last_cr {
                        out.push(b'\n');
                    }
                    out.push(b);
                    self.last_cr = b == b'\r';
                }
            }
        }
    }
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.last_cr {
            out.push(b'\n');
            self.last_cr = false;
        }
    }
}

/// Rewrites a header block for the wire: drops the fields [`is_hidden`](super::content::is_hidden)
/// names (Bcc, Resent-Bcc, with their folded lines: the fields read as Bcc for `env_to`, by
/// the same parse) and adds missing Date/Message-ID by the hand-over's rule
/// ([`missing_headers`]); line ends become CRLF.
pub fn wire_head(head: &[u8], message_id: &str) -> Vec<u8> {
    let (info, hidden) = HeaderInfo::parse_with_hidden(head);
    let mut kept = missing_headers(&info, message_id, "\r\n");
    let mut pos = 0;
    for r in hidden {
        // In order and apart (one per field); `max` keeps a malformed overlap harmless.
        kept.extend_from_slice(&head[pos..r.start.max(pos)]);
        pos = pos.max(r.end);
    }
    kept.extend_from_slice(&head[pos..]);
    let mut out = Vec::with_capacity(kept.len() + 16);
    let mut n = CrlfNormalizer::default();
    n.push(&kept, &mut out);
    n.finish(&mut out);
    out
}

/// Reads a file through once. A message too big to hold is streamed onto the wire, and an
/// SMTP client cannot abort DATA without sending the end mark: a read error in the middle
/// would deliver a truncated message. Reading it all first turns a damaged file into a
/// temporary failure before anything is sent.
pub fn check_readable(path: &Path) -> io::Result<()> {
    let mut f = crate::files::open_read(path)?;
    let mut buf = vec![0u8; 1 << 20];
    while f.read(&mut buf)? > 0 {}
    Ok(())
}

/// Where the body comes from.
enum Body {
    /// The open content file (the version this attempt locked), from this offset.
    File(File, u64),
    /// Bytes in memory (notices built in memory, tests).
    Mem(Vec<u8>),
}

/// The chunk source of one message: built once, read by as many passes as the transport
/// needs. Shareable between threads (`&Wire` is `Sync`): passes read the file by offset.
pub struct Wire {
    head: Vec<u8>,
    body: Body,
    /// The stored size of the content (header block and body, before the rewrite).
    size: u64,
}

impl Wire {
    /// The wire form of the message file at `path`; `message_id` is the one added if the
    /// content lacks one. The head and the body come from the same open file, so the body that
    /// follows is of the same version even if the file is replaced meanwhile.
    pub fn open(path: &Path, message_id: &str) -> io::Result<Wire> {
        let file = crate::files::open_read(path)?;
        let size = file.metadata()?.len();
        let mut reader = BufReader::with_capacity(64 * 1024, file);
        let head = read_head_from(&mut reader)?;
        let body_at = reader.stream_position()?;
        let file = reader.into_inner();
        Ok(Wire {
            head: wire_head(&head, message_id),
            body: Body::File(file, body_at),
            size,
        })
    }

    /// The wire form of a message held in memory.
    pub fn from_bytes(content: &[u8], message_id: &str) -> Wire {
        let mut r = content;
        let head = read_head_from(&mut r).unwrap_or_default();
        Wire {
            head: wire_head(&head, message_id),
            body: Body::Mem(r.to_vec()),
            size: content.len() as u64,
        }
    }

    /// The stored size of the content, before the rewrite for the wire.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The header block as it goes on the wire.
    pub fn head(&self) -> &[u8] {
        &self.head
    }

    /// A new pass over the wire form, from its first byte (the header block first).
    pub fn chunks(&self) -> WireChunks<'_> {
        WireChunks {
            wire: self,
            head_sent: false,
            pos: 0,
            norm: CrlfNormalizer::default(),
            done: false,
            error: None,
        }
    }

    /// Reads the body through once without keeping it (see [`check_readable`]): a damaged
    /// file becomes a temporary failure before anything is sent.
    pub fn check_readable(&self) -> io::Result<()> {
        let Body::File(f, at) = &self.body else {
            return Ok(());
        };
        let mut buf = vec![0u8; 1 << 20];
        let mut pos = *at;
        loop {
            match f.read_at(&mut buf, pos)? {
                0 => return Ok(()),
                n => pos += n as u64,
            }
        }
    }

    /// The whole wire form in memory (for messages under [`WHOLE_READ_LIMIT`]).
    pub fn read_all(&self) -> io::Result<Vec<u8>> {
        let mut chunks = self.chunks();
        let mut out = Vec::with_capacity(self.size as usize + self.size as usize / 32);
        for c in chunks.by_ref() {
            out.extend_from_slice(&c);
        }
        match chunks.error.take() {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }
}

/// One pass over a [`Wire`], as a sequence of chunks; a read error ends the pass early and is
/// left in `error`, so the consumer can refuse to finish a truncated message.
pub struct WireChunks<'a> {
    wire: &'a Wire,
    head_sent: bool,
    /// Body bytes consumed so far.
    pos: u64,
    norm: CrlfNormalizer,
    done: bool,
    pub error: Option<io::Error>,
}

impl WireChunks<'_> {
    fn read_body(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &self.wire.body {
            Body::File(f, at) => f.read_at(buf, at + self.pos),
            Body::Mem(m) => {
                let rest = m.get(self.pos as usize..).unwrap_or_default();
                let n = rest.len().min(buf.len());
                buf[..n].copy_from_slice(&rest[..n]);
                Ok(n)
            }
        }
    }
}

impl Iterator for WireChunks<'_> {
    type Item = Vec<u8>;
    fn next(&mut self) -> Option<Vec<u8>> {
        if !self.head_sent {
            self.head_sent = true;
            return Some(self.wire.head.clone());
        }
        if self.done {
            return None;
        }
        let mut buf = vec![0u8; CHUNK];
        loop {
            match self.read_body(&mut buf) {
                Ok(0) => {
                    self.done = true;
                    let mut out = Vec::new();
                    self.norm.finish(&mut out);
                    return if out.is_empty() { None } else { Some(out) };
                }
                Ok(n) => {
                    self.pos += n as u64;
                    let mut out = Vec::with_capacity(n + n / 32);
                    self.norm.push(&buf[..n], &mut out);
                    return Some(out);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.error = Some(e);
                    self.done = true;
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_head_drops_bcc_and_adds_missing_fields() {
        let head = b"From: a@x.org\nBcc: secret@x.org,\n  other@x.org\nTo: b@y.org\n\n";
        let w = String::from_utf8(wire_head(head, "<id@h>")).unwrap();
        assert!(!w.contains("secret") && !w.contains("other@x.org"), "{w}");
        assert!(w.contains("Message-ID: <id@h>\r\n"));
        assert!(w.contains("Date: "));
        assert!(w.contains("To: b@y.org\r\n"));
        assert!(w.ends_with("\r\n\r\n"));
    }

    /// audit-6 F2: what is read as Bcc for env_to is what the wire removes: the obsolete
    /// `Bcc :` / `Bcc\t:` too, and Resent-Bcc; fields that only look alike are kept.
    #[test]
    fn every_field_read_as_bcc_is_removed() {
        let head = b" Bcc: lead@x.net\nFrom: a@x.org\nBcc : obs@x.net\nBcc\t: tab@x.net,\n\tfold@x.net\nbcc:low@x.net\nResent-Bcc: rb@x.net\nBccx: keep1\nX-Bcc: keep2\nTo: b@y.org\nBCC: last@x.net";
        let info = HeaderInfo::parse(head);
        for hidden in [
            "lead@x.net",
            "obs@x.net",
            "tab@x.net",
            "fold@x.net",
            "low@x.net",
            "last@x.net",
        ] {
            assert!(
                info.recipients.iter().any(|r| r == hidden),
                "{hidden} is a recipient"
            );
        }
        let w = String::from_utf8(wire_head(head, "<id@h>")).unwrap();
        for hidden in ["x.net", "Bcc :", "Bcc\t:", "Resent-Bcc"] {
            assert!(!w.contains(hidden), "{hidden} on the wire: {w:?}");
        }
        assert!(
            w.contains("\r\nFrom: a@x.org\r\nBccx: keep1\r\nX-Bcc: keep2\r\nTo: b@y.org\r\n"),
            "{w:?}"
        );
        assert!(w.starts_with("Message-ID: <id@h>\r\nDate: "), "{w:?}");
    }

    /// audit-6 F9: a Date or Message-ID field that is there (empty, or not understood) is not
    /// added again on the wire; audit-6 F5: a last field without a line end is kept as is.
    #[test]
    fn a_present_date_or_message_id_is_not_added_on_the_wire() {
        let head = b"Subject: s\nDate: yesterday\nMessage-ID:\nCc: eof@x.org";
        let w = String::from_utf8(wire_head(head, "<id@h>")).unwrap();
        assert_eq!(w, "Subject: s\r\nDate: yesterday\r\nMessage-ID:\r\nCc: eof@x.org");
        assert_eq!(w.matches("Date:").count(), 1);
    }

    #[test]
    fn crlf_normalisation_across_chunks() {
        let mut n = CrlfNormalizer::default();
        let mut out = Vec::new();
        n.push(b"a\r", &mut out);
        n.push(b"\nb\nc\r", &mut out);
        n.push(b"d", &mut out);
        n.finish(&mut out);
        assert_eq!(out, b"a\r\nb\r\nc\r\nd");
    }

    const MSG: &[u8] = b"Message-ID: <m@h>\nDate: Tue, 24 Nov 2026 01:00:00 +0000\nBcc: hidden@x.org\nSubject: s\n\nline\n.dot\nend\r";

    #[test]
    fn every_pass_gives_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.eml");
        std::fs::write(&p, MSG).unwrap();
        let w = Wire::open(&p, "<unused@h>").unwrap();
        let first = w.read_all().unwrap();
        let second: Vec<u8> = w.chunks().flatten().collect();
        assert_eq!(first, second);
        assert_eq!(
            first,
            b"Message-ID: <m@h>\r\nDate: Tue, 24 Nov 2026 01:00:00 +0000\r\nSubject: s\r\n\r\nline\r\n.dot\r\nend\r\n"
        );
        assert_eq!(w.size(), MSG.len() as u64);
        // The same message from memory gives the same wire form.
        assert_eq!(Wire::from_bytes(MSG, "<unused@h>").read_all().unwrap(), first);
    }

    #[test]
    fn a_pass_reads_the_version_that_was_opened() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.eml");
        std::fs::write(&p, MSG).unwrap();
        let w = Wire::open(&p, "<unused@h>").unwrap();
        let before = w.read_all().unwrap();
        // The spool replaces content by rename: the open version stays what is sent.
        let tmp = dir.path().join("new");
        std::fs::write(&tmp, b"Subject: other\n\nchanged\n").unwrap();
        std::fs::rename(&tmp, &p).unwrap();
        assert_eq!(w.read_all().unwrap(), before);
        assert!(w.check_readable().is_ok());
    }

    #[test]
    fn a_large_body_comes_in_several_chunks_with_line_ends_intact() {
        let mut m = b"Subject: big\n\n".to_vec();
        // A CRLF split by a chunk boundary stays one CRLF; the bare LF after it becomes one.
        m.extend(std::iter::repeat_n(b'a', CHUNK - 1));
        m.extend_from_slice(b"\r\nb\n");
        let w = Wire::from_bytes(&m, "<i@h>");
        let chunks: Vec<Vec<u8>> = w.chunks().collect();
        assert!(chunks.len() >= 3, "{} chunks", chunks.len());
        let all = chunks.concat();
        let body = &all[w.head().len()..];
        assert_eq!(body.len(), CHUNK - 1 + 5);
        assert!(body.ends_with(b"a\r\nb\r\n"));
    }
}
