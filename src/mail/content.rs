//! What mailfs needs to know about a message's content without the MIME view: its header
//! fields (envelope defaults, Message-ID, Date) and the template of a new message; the bytes
//! that go on the wire are built from them in [`super::wire`].
//!
//! Only the header block is ever read here, so a 1 GB message costs a few kilobytes.

use std::borrow::Cow;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::ops::Range;
use std::path::Path;

use mail_parser::{HeaderName, MessageParser};

use crate::error::Result;
use crate::model::attrs::validate_address;

/// The most header bytes read. A longer header block is never silently cut: its
/// [`HeaderInfo::cut`] is set, and what depends on the whole block (the default envelope,
/// `sendmail -t`) is refused.
pub const MAX_HEAD: usize = 16 << 20;

/// Reads a message's header block (up to and including the blank line, or [`MAX_HEAD`]).
pub fn read_head(path: &Path) -> io::Result<Vec<u8>> {
    read_head_from(&mut BufReader::with_capacity(
        64 * 1024,
        crate::files::open_read(path)?,
    ))
}

/// Reads the header block from `r`, leaving it positioned at the start of the body.
pub(crate) fn read_head_from(r: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        let room = (MAX_HEAD - head.len()) as u64;
        if r.take(room).read_until(b'\n', &mut line)? == 0 {
            break;
        }
        head.extend_from_slice(&line);
        if line == b"\n" || line == b"\r\n" || head.len() >= MAX_HEAD {
            break;
        }
    }
    Ok(head)
}

/// The header fields that drive the envelope and the queue.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct HeaderInfo {
    /// The first Message-ID field that holds an id (`None`: no such field, or only empty ones).
    pub message_id: Option<String>,
    /// A Message-ID field is present, with any value (even empty or not an id): none is added.
    pub has_message_id: bool,
    /// A Date field is present, with any value (even empty or not a date): none is added.
    pub has_date: bool,
    pub from: Option<String>,
    /// A From field is present, with any value (even a group or no address): none is added.
    pub has_from: bool,
    /// To, Cc and Bcc addresses that pass validation, in order, without duplicates.
    pub recipients: Vec<String>,
    /// Addresses in To/Cc/Bcc/From that failed validation (reported when a message is made ready).
    pub invalid: Vec<String>,
    /// The To/Cc/Bcc entries among them (an address that fails validation, or a name with no
    /// address): a default recipient list that silently left them out would lose mail.
    pub invalid_recipients: Vec<String>,
    /// The header block is longer than [`MAX_HEAD`]: fields past it were not read.
    pub cut: bool,
}

/// `head` as mail-parser must see it: a field that ends the bytes without a line end (a
/// header-only message without a final newline) gets one, since mail-parser reads such a
/// last field as empty, which would drop its recipients. The added byte is past the end of
/// `head`, so the offsets of the fields before it are those of `head`.
pub fn terminated(head: &[u8]) -> Cow<'_, [u8]> {
    match head.last() {
        Some(b'\n') | None => Cow::Borrowed(head),
        Some(_) => {
            let mut h = Vec::with_capacity(head.len() + 1);
            h.extend_from_slice(head);
            h.push(b'\n');
            Cow::Owned(h)
        }
    }
}

/// Whether a field is removed from what is sent (SPEC §7): Bcc, and Resent-Bcc as Postfix
/// removes it. The name is the one mail-parser gives the field when the envelope is read, so
/// a field read as Bcc for `env_to` (also the obsolete `Bcc :`, RFC 5322 §4.5.3) is the field
/// removed on the wire.
pub fn is_hidden(name: &HeaderName) -> bool {
    matches!(name, HeaderName::Bcc | HeaderName::ResentBcc)
}

impl HeaderInfo {
    pub fn parse(head: &[u8]) -> HeaderInfo {
        Self::parse_fields(head, None)
    }

    /// [`HeaderInfo::parse`], also giving the byte ranges of `head` that hold the fields
    /// [`is_hidden`] names (from the start of the field's line to the end of its last
    /// folded line), in order.
    pub fn parse_with_hidden(head: &[u8]) -> (HeaderInfo, Vec<Range<usize>>) {
        let mut hidden = Vec::new();
        let info = Self::parse_fields(head, Some(&mut hidden));
        (info, hidden)
    }

    fn parse_fields(head: &[u8], mut hidden: Option<&mut Vec<Range<usize>>>) -> HeaderInfo {
        let mut info = HeaderInfo {
            cut: head.len() >= MAX_HEAD && !(head.ends_with(b"\n\n") || head.ends_with(b"\n\r\n")),
            ..HeaderInfo::default()
        };
        let bytes = terminated(head);
        let Some(msg) = MessageParser::default().parse_headers(&bytes[..]) else {
            return info;
        };
        // A set, not a scan of the list: a To of 100,000 addresses must not be quadratic.
        let mut seen = std::collections::HashSet::new();
        let mut to = Vec::new();
        let mut cc = Vec::new();
        let mut bcc = Vec::new();
        for h in msg.headers() {
            match &h.name {
                HeaderName::MessageId => {
                    info.has_message_id = true;
                    if info.message_id.is_none() {
                        info.message_id = h
                            .value
                            .as_text()
                            .filter(|id| !id.is_empty())
                            .map(|id| format!("<{id}>"));
                    }
                }
                HeaderName::Date => info.has_date = true,
                HeaderName::From => info.has_from = true,
                HeaderName::To => to.push(&h.value),
                HeaderName::Cc => cc.push(&h.value),
                HeaderName::Bcc => bcc.push(&h.value),
                _ => {}
            }
            if is_hidden(&h.name)
                && let Some(ranges) = hidden.as_deref_mut()
            {
                let field = (h.offset_field as usize).min(head.len());
                // mail-parser skips white space before a name: the line goes from its start.
                let start = head[..field]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |i| i + 1);
                ranges.push(start..(h.offset_end as usize).min(head.len()));
            }
        }
        if let Some(addr) = msg.from().and_then(|a| a.first()).and_then(|a| a.address()) {
            match validate_address("From", addr) {
                Ok(a) => info.from = Some(a),
                Err(_) => info.invalid.push(addr.to_string()),
            }
        }
        // To, then Cc, then Bcc; every field of each name (SPEC §4: a second To field is as
        // much a recipient list as the first), each in the order written.
        for value in to.into_iter().chain(cc).chain(bcc) {
            let Some(list) = value.as_address() else {
                continue;
            };
            for a in list.iter() {
                match a.address() {
                    Some(addr) => match validate_address("To", addr) {
                        Ok(v) => {
                            if seen.insert(v.clone()) {
                                info.recipients.push(v);
                            }
                        }
                        Err(_) => {
                            info.invalid.push(addr.to_string());
                            info.invalid_recipients.push(addr.to_string());
                        }
                    },
                    None => {
                        if let Some(name) = a.name().filter(|n| !n.trim().is_empty()) {
                            info.invalid.push(name.to_string());
                            info.invalid_recipients.push(name.to_string());
                        }
                    }
                }
            }
        }
        info
    }
}

pub fn rfc2822_now() -> String {
    chrono::Utc::now().to_rfc2822()
}

/// The content of `touch new.eml` (SPEC §5).
pub fn template(message_id: &str) -> Vec<u8> {
    format!(
        "Message-ID: {message_id}\nUser-Agent: mailfs/{}\nSubject: \nDate: {}\nMIME-Version: 1.0\n\n",
        env!("CARGO_PKG_VERSION"),
        rfc2822_now()
    )
    .into_bytes()
}

/// Header lines to prepend so the content has a Date and a Message-ID: each only when no
/// field of that name is there, whatever its value (RFC 5322 §3.6 allows one of each). The one
/// rule for the hand-over (`is_ready`, sendmail) and for the wire, so a message never gets a
/// second one from either.
pub fn missing_headers(info: &HeaderInfo, message_id: &str, eol: &str) -> Vec<u8> {
    let mut extra = Vec::new();
    if !info.has_message_id {
        extra.extend_from_slice(format!("Message-ID: {message_id}{eol}").as_bytes());
    }
    if !info.has_date {
        extra.extend_from_slice(format!("Date: {}{eol}", rfc2822_now()).as_bytes());
    }
    extra
}

/// The line end a message already uses, so added header lines match it.
pub fn line_end(head: &[u8]) -> &'static str {
    match head.iter().position(|&b| b == b'\n') {
        Some(i) if i > 0 && head[i - 1] == b'\r' => "\r\n",
        Some(_) => "\n",
        None => "\r\n",
    }
}

/// Gives the message at `path` a Date and Message-ID if it lacks them, by writing a new file
/// beside it (`tmp`, synced) and renaming it over with `rename`; returns whether the content
/// changed.
pub fn ensure_date_and_id(
    path: &Path,
    tmp: &Path,
    head: &[u8],
    info: &HeaderInfo,
    message_id: &str,
    rename: impl FnOnce(&Path, &Path) -> io::Result<()>,
) -> Result<bool> {
    let extra = missing_headers(info, message_id, line_end(head));
    if extra.is_empty() {
        return Ok(false);
    }
    copy_with_prefix(path, tmp, &extra, true)?;
    if let Err(e) = rename(tmp, path) {
        let _ = std::fs::remove_file(tmp);
        return Err(e.into());
    }
    Ok(true)
}

/// Writes `prefix` then the content of `src` into the new file `dst`, durably when `sync`;
/// on any error `dst` is removed and `src` is untouched.
pub fn copy_with_prefix(src: &Path, dst: &Path, prefix: &[u8], sync: bool) -> io::Result<()> {
    let res =
        crate::files::create_private(dst).and_then(|mut out| write_with_prefix(src, &mut out, prefix, sync));
    if res.is_err() {
        let _ = std::fs::remove_file(dst);
    }
    res
}

/// [`copy_with_prefix`] into a file the caller opened (and removes on error).
pub fn write_with_prefix(src: &Path, out: &mut std::fs::File, prefix: &[u8], sync: bool) -> io::Result<()> {
    out.write_all(prefix)?;
    io::copy(&mut crate::files::open_read(src)?, out)?;
    if sync { out.sync_all() } else { Ok(()) }
}

/// The length of the trace fields (`Received:`, `Return-Path:`, with their continuation
/// lines) that open a header block: fields added to a message go after them, so the trace
/// stays on top (RFC 5321 §4.4).
pub fn trace_len(head: &[u8]) -> usize {
    let mut at = 0;
    let mut in_trace = false;
    for line in head.split_inclusive(|&b| b == b'\n') {
        let folded = line.first().is_some_and(|&b| b == b' ' || b == b'\t');
        let lower = line
            .iter()
            .take(12)
            .map(u8::to_ascii_lowercase)
            .collect::<Vec<u8>>();
        in_trace = if folded {
            in_trace
        } else {
            lower.starts_with(b"received:") || lower.starts_with(b"return-path:")
        };
        if !in_trace {
            break;
        }
        at += line.len();
    }
    at
}

/// Copies `src` into the new file `dst` with `insert` put at byte `at`; synced unless the
/// caller syncs in bulk. On any error `dst` is removed and `src` is untouched.
pub fn copy_inserting(src: &Path, dst: &Path, at: u64, insert: &[u8], sync: bool) -> io::Result<()> {
    let res = (|| -> io::Result<()> {
        let mut out = crate::files::create_private(dst)?;
        let mut input = crate::files::open_read(src)?;
        io::copy(&mut (&mut input).take(at), &mut out)?;
        out.write_all(insert)?;
        io::copy(&mut input, &mut out)?;
        if sync { out.sync_all() } else { Ok(()) }
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(dst);
    }
    res
}

/// Puts `insert` at byte `at` of `path` by rewriting the file in place when what follows `at`
/// is at most `limit` bytes, else leaves it untouched and returns false. For a short message
/// this saves [`copy_inserting`]'s second file, created and unlinked for each submission. An
/// error may leave the file half-rewritten: only for a temp file its caller drops on error.
pub fn insert_in_place(path: &Path, at: u64, insert: &[u8], limit: u64) -> io::Result<bool> {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let len = f.metadata()?.len();
    let Some(tail) = len.checked_sub(at).filter(|t| *t <= limit) else {
        return Ok(false);
    };
    let mut out = Vec::with_capacity(insert.len() + tail as usize);
    out.extend_from_slice(insert);
    out.resize(insert.len() + tail as usize, 0);
    f.read_exact_at(&mut out[insert.len()..], at)?;
    f.write_all_at(&out, at)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserting_in_place_gives_what_the_copy_gives() {
        let dir = tempfile::tempdir().unwrap();
        let msg = b"Received: from a\nSubject: s\n\nbody\n";
        let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
        std::fs::write(&a, msg).unwrap();
        std::fs::write(&c, msg).unwrap();
        copy_inserting(&a, &b, 17, b"Date: d\n", false).unwrap();
        assert!(insert_in_place(&a, 17, b"Date: d\n", 1024).unwrap());
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert_eq!(&std::fs::read(&a).unwrap()[..25], b"Received: from a\nDate: d\n");
        // Too long a tail: the caller copies instead, and the file is untouched.
        assert!(!insert_in_place(&c, 17, b"Date: d\n", 4).unwrap());
        assert_eq!(std::fs::read(&c).unwrap(), msg);
    }

    #[test]
    fn header_info_gives_envelope_defaults() {
        let head = b"From: Alice <alice@example.com>\nTo: bob@example.org, \"C\" <carol@example.net>\nCc: dave@example.org\nBcc: eve@example.com\nMessage-ID: <x@y>\nSubject: hi\n\n";
        let i = HeaderInfo::parse(head);
        assert_eq!(i.from.as_deref(), Some("alice@example.com"));
        assert_eq!(
            i.recipients,
            vec![
                "bob@example.org",
                "carol@example.net",
                "dave@example.org",
                "eve@example.com"
            ]
        );
        assert_eq!(i.message_id.as_deref(), Some("<x@y>"));
        assert!(!i.has_date);
    }

    /// audit-6 F1: every To, Cc and Bcc field counts, not only the last of each name.
    #[test]
    fn repeated_recipient_fields_all_count() {
        let head = b"From: a@example.com\nTo: b@example.org\nTo: t2@example.org\nCc: c1@example.net\nBcc: h1@example.net\nCc: c2@example.net\nBcc: h2@example.net, b@example.org\n\n";
        assert_eq!(
            HeaderInfo::parse(head).recipients,
            vec![
                "b@example.org",
                "t2@example.org",
                "c1@example.net",
                "c2@example.net",
                "h1@example.net",
                "h2@example.net"
            ]
        );
    }

    /// audit-6 F5: a field that ends the file without a line end is read like any other.
    #[test]
    fn a_last_field_without_a_line_end_is_read() {
        let i = HeaderInfo::parse(b"From: a@example.com\nTo: b@example.org\nCc: eofcc@example.org");
        assert_eq!(i.recipients, vec!["b@example.org", "eofcc@example.org"]);
        let i = HeaderInfo::parse(b"To: b@example.org\r\nFrom: eoffrom@example.com");
        assert_eq!(i.from.as_deref(), Some("eoffrom@example.com"));
        let i = HeaderInfo::parse(b"Subject: x\nMessage-ID: <eof@example.com>");
        assert_eq!(i.message_id.as_deref(), Some("<eof@example.com>"));
        assert_eq!(&*terminated(b"To: x@y"), b"To: x@y\n");
        assert!(matches!(terminated(b"To: x@y\n"), Cow::Borrowed(_)));
    }

    /// audit-6 F9: a Date or Message-ID field that is there, empty or not understood, is not
    /// added again (the rule the hand-over and the wire share).
    #[test]
    fn a_present_date_or_message_id_is_not_added_again() {
        for head in [
            &b"Date: yesterday\nMessage-ID: not an id at all\n\n"[..],
            b"date:\nmessage-id:\n\n",
            b"Date :\tx\nMessage-ID :\n\n",
            b"Subject: s\nDate:\nMessage-ID:",
        ] {
            let i = HeaderInfo::parse(head);
            assert!(
                i.has_date && i.has_message_id,
                "{:?}",
                String::from_utf8_lossy(head)
            );
            assert!(missing_headers(&i, "<new@h>", "\n").is_empty());
        }
        // An empty field gives no id: user.message_id falls back to the one mailfs keeps.
        assert_eq!(HeaderInfo::parse(b"Message-ID:\n\n").message_id, None);
        // The first field with an id is the message's.
        let i = HeaderInfo::parse(b"Message-ID:\nMessage-ID: <d1@x>\nMessage-ID: <d2@x>\n\n");
        assert_eq!(i.message_id.as_deref(), Some("<d1@x>"));
        let i = HeaderInfo::parse(b"Subject: s\n\n");
        assert!(missing_headers(&i, "<new@h>", "\n").starts_with(b"Message-ID: <new@h>\nDate: "));
    }

    #[test]
    fn trace_fields_are_measured() {
        let h = b"Received: from a\r\n\tby b; date\r\nReturn-Path: <x@y>\r\nSubject: s\r\n\r\n";
        assert_eq!(trace_len(h), 51);
        assert_eq!(trace_len(b"Subject: s\r\n\r\n"), 0);
    }
}
