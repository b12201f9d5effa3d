//! Composing a Draft by parts (SPEC §5): each change to `X.eml.parts/` rebuilds the whole
//! message with mail-builder from what the parts view shows, with the one change applied.
//! The message keeps its other header fields as written, including Message-ID and Date.

use std::borrow::Cow;
use std::fs::File;

use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::date::Date;
use mail_builder::headers::text::Text;
use mail_builder::headers::{Header, HeaderType};
use mail_builder::mime::{BodyPart, MimePart};
use mail_parser::{HeaderValue, MessageParser};

use crate::error::{Error, Result};
use crate::mail::mime::{self, Role, Tree};
use crate::model::attrs::validate_address;
use crate::model::names::MAX_MESSAGE_NAME;

pub const TEXT_BODY: &str = "Body.txt";

/// Composing holds every part in memory (mail-builder writes from memory): Drafts whose parts
/// add up to more than this are refused (EFBIG) rather than risking the mount's memory.
pub const COMPOSE_LIMIT: u64 = 64 << 20;

/// Refuses composing in a Draft its parts view does not show whole: one that cannot be
/// parsed (EINVAL), or whose view a bound cut (depth, number of parts, a header block too
/// long: EFBIG). Rebuilding from such a view would drop what it does not show.
pub fn check_whole(tree: &Tree) -> Result<()> {
    match &tree.parse_error {
        None => Ok(()),
        Some(why) if tree.partial => Err(Error::TooBig(format!(
            "the parts view is not the whole message ({why}); edit the .eml itself"
        ))),
        Some(why) => Err(Error::invalid(
            "parts",
            format!("the message cannot be parsed ({why}); edit the .eml itself"),
        )),
    }
}

/// Refuses a part of `size` bytes: the one limit a part writer's write, truncate and close
/// all check, so no size a user asks for reaches an allocation.
pub fn check_part_size(name: &str, size: u64) -> Result<()> {
    if size > COMPOSE_LIMIT {
        return Err(Error::TooBig(format!(
            "{name}: a part cannot be over {COMPOSE_LIMIT} bytes"
        )));
    }
    Ok(())
}

/// Refuses composing in a Draft whose parts, with `adding` more bytes, pass the limit.
pub fn check_size(tree: &Tree, adding: u64) -> Result<()> {
    let total: u64 = tree.entries.iter().map(|e| e.data.size()).sum::<u64>() + adding;
    if total > COMPOSE_LIMIT {
        return Err(Error::TooBig(format!(
            "composing by parts holds the message in memory; {total} bytes of parts is over \
             {COMPOSE_LIMIT}: edit the .eml itself"
        )));
    }
    Ok(())
}
pub const HTML_BODY: &str = "Body.html";

/// Header fields that describe the MIME structure: mail-builder writes them.
fn is_structural(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.starts_with("content-") || n == "mime-version"
}

const ADDRESS_FIELDS: [&str; 6] = ["from", "to", "cc", "bcc", "reply-to", "sender"];

pub enum Edit {
    SetPart { name: String, bytes: Vec<u8> },
    RemovePart(String),
    RenamePart { from: String, to: String },
    SetHeader { name: String, value: Vec<u8> },
    RemoveHeader(String),
}

enum Value {
    /// A field the edit does not touch: its bytes as written (name, value, folding, line
    /// end), copied as they are. They need not be UTF-8.
    Kept(Vec<u8>),
    Text(String),
    Addresses(Vec<(Option<String>, String)>),
}

/// What a part holds in the rebuilt message.
enum Content {
    /// A part the edit does not touch: the MIME part as written (its header fields, the blank
    /// line, its encoded body), copied byte for byte, so its bytes, charset, transfer
    /// encoding, file name and disposition stay as sent.
    Kept(Vec<u8>),
    /// Bytes a user wrote (or a renamed part's, as the view shows them): encoded afresh.
    New(Vec<u8>),
}

struct Part {
    name: String,
    content_type: String,
    content_id: Option<String>,
    inline: bool,
    content: Content,
}

/// A Draft as its parts: what the view shows, in a form mail-builder can write again.
struct Draft {
    headers: Vec<(String, Value)>,
    text: Option<Content>,
    html: Option<Content>,
    parts: Vec<Part>,
}

fn utf8(name: &str, bytes: &[u8]) -> Result<()> {
    std::str::from_utf8(bytes)
        .map(drop)
        .map_err(|_| Error::invalid(name, "a body must be UTF-8 text"))
}

/// `start..end` of `file`.
fn read_span(file: &File, (start, end): (u64, u64)) -> Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; end.saturating_sub(start) as usize];
    file.read_exact_at(&mut buf, start)?;
    Ok(buf)
}

/// Ends `field` with a line end if the message did not (a field that ends the file).
fn with_line_end(mut field: Vec<u8>) -> Vec<u8> {
    if !field.ends_with(b"\n") {
        field.extend_from_slice(b"\r\n");
    }
    field
}

/// The MIME part `span` of `file` as written. A part whose header block is the message's
/// own keeps only its `Content-*` fields (the others are the message's, written above it).
/// A part without a Content-Type field gets one saying what it is (`content_type`, from the
/// view) when it is the message's own or when that is not the default of a part in the
/// rebuilt structure (text/plain): a member of a multipart/digest is a message/rfc822.
fn kept_part(file: &File, span: &mime::Span, content_type: &str) -> Result<Vec<u8>> {
    let head = read_span(file, span.head)?;
    let mut fields = Vec::new();
    let mut typed = false;
    let mut encoded = false;
    if let Some(m) = MessageParser::default().parse_headers(&head[..]) {
        for h in m.parts.first().map(|p| &p.headers[..]).unwrap_or_default() {
            let name = h.name.as_str().to_ascii_lowercase();
            typed |= name == "content-type";
            encoded |= name == "content-transfer-encoding";
            if span.message_head && name.starts_with("content-") {
                let field = head
                    .get(h.offset_field as usize..h.offset_end as usize)
                    .unwrap_or_default();
                fields.extend(with_line_end(field.to_vec()));
            }
        }
    }
    let body = read_span(file, span.body)?;
    let mut out = Vec::new();
    if !typed && (span.message_head || content_type != "text/plain") {
        // Said outright now that it is one part among others: some readers (Python's
        // `email`) also pass over a part without header fields. Text that is UTF-8 and not
        // ASCII says so (audit-8 A6): without a charset, text/plain means US-ASCII.
        let charset =
            if content_type.starts_with("text/") && !body.is_ascii() && std::str::from_utf8(&body).is_ok() {
                "; charset=\"utf-8\""
            } else {
                ""
            };
        out.extend_from_slice(format!("Content-Type: {content_type}{charset}\r\n").as_bytes());
        if !encoded && !body.is_ascii() {
            // 8-bit bytes under the default 7bit are not MIME (RFC 2045 §6.2).
            out.extend_from_slice(b"Content-Transfer-Encoding: 8bit\r\n");
        }
    }
    if span.message_head {
        out.extend(fields);
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend(head);
    }
    out.extend(body);
    Ok(out)
}

/// A part name a user may create: what `mime::sanitize` would keep as it is, and for an
/// attached message (`*.eml`), short enough for its `NAME.parts` directory (ENAMETOOLONG).
pub fn check_part_name(name: &str) -> Result<()> {
    if is_message_name(name) && name.len() > MAX_MESSAGE_NAME {
        return Err(Error::NameTooLong(format!(
            "{name}: an attached message's name is at most {MAX_MESSAGE_NAME} bytes, so that \
             its .parts directory fits in a file name"
        )));
    }
    if mime::sanitize(name).as_deref() != Some(name) || name.ends_with(".parts") || name == mime::RAW_NAME {
        return Err(Error::invalid(
            "part name",
            format!("{name:?}: parts cannot start with a dot, end in .parts or be raw.eml"),
        ));
    }
    Ok(())
}

/// Checks a header edit before anything is rebuilt: a token name, no CR/LF/NUL, not a
/// structural field, and for address fields, addresses that parse and validate.
pub fn check_header(name: &str, value: Option<&[u8]>) -> Result<()> {
    if name.is_empty() || name.len() > 76 || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
        return Err(Error::invalid(
            "header",
            format!("{name:?} is not a header field name"),
        ));
    }
    if is_structural(name) {
        return Err(Error::NotPermitted(format!(
            "{name}: the MIME structure is written from the parts"
        )));
    }
    if let Some(v) = value {
        header_value(name, v)?;
    }
    Ok(())
}

fn header_value(name: &str, value: &[u8]) -> Result<Value> {
    let what = format!("header.{name}");
    let s = std::str::from_utf8(value).map_err(|_| Error::invalid(&what, "not UTF-8"))?;
    if s.bytes().any(|b| b == b'\r' || b == b'\n' || b == b'\0') {
        return Err(Error::invalid(&what, "CR, LF and NUL are not allowed"));
    }
    let lower = name.to_ascii_lowercase();
    if !ADDRESS_FIELDS.contains(&lower.as_str()) {
        return Ok(Value::Text(s.trim().to_string()));
    }
    // mail-parser reads the list as it would in a message, so display names and quoting
    // follow RFC 5322; every address must then pass the envelope's own validation.
    let field = format!("{name}: {s}\r\n\r\n");
    let parsed = MessageParser::default().parse_headers(field.as_bytes());
    let mut out = Vec::new();
    if let Some(HeaderValue::Address(list)) = parsed.as_ref().and_then(|m| m.parts.first()).and_then(|p| {
        p.headers
            .iter()
            .find(|h| h.name.as_str().eq_ignore_ascii_case(name))
            .map(|h| &h.value)
    }) {
        for a in list.iter() {
            let addr = a
                .address()
                .ok_or_else(|| Error::invalid(&what, "an address is missing"))?;
            let addr = validate_address(&what, addr)?;
            out.push((a.name().map(str::to_string), addr));
        }
    }
    if out.is_empty() && !s.trim().is_empty() {
        return Err(Error::invalid(&what, format!("{s:?} is not an address list")));
    }
    Ok(Value::Addresses(out))
}

impl Draft {
    /// The Draft `tree` (built from `file`): untouched parts and fields as written, except
    /// the part `view_of` (one being renamed), which takes the bytes its file shows.
    fn from_tree(tree: &Tree, file: &File, view_of: Option<&str>) -> Result<Draft> {
        check_whole(tree)?;
        check_size(tree, 0)?;
        let headers = tree
            .headers
            .iter()
            .filter(|h| !is_structural(&h.name))
            .map(|h| {
                let bytes = match h.span {
                    Some(span) => with_line_end(read_span(file, span)?),
                    // Not from a file (no such tree is composed in): the field as the view
                    // holds it.
                    None => format!("{}: {}\r\n", h.name, h.raw).into_bytes(),
                };
                Ok((h.name.clone(), Value::Kept(bytes)))
            })
            .collect::<Result<_>>()?;
        let mut d = Draft {
            headers,
            text: None,
            html: None,
            parts: Vec::new(),
        };
        for e in &tree.entries {
            let content = match &e.span {
                Some(span) if view_of != Some(e.name.as_str()) => {
                    Content::Kept(kept_part(file, span, &e.info.content_type)?)
                }
                _ => Content::New(e.data.read_all(file)?),
            };
            match (e.name.as_str(), e.info.role) {
                (TEXT_BODY, Role::TextBody) => d.text = Some(content),
                (HTML_BODY, Role::HtmlBody) => d.html = Some(content),
                _ => d.parts.push(Part {
                    name: e.name.clone(),
                    content_type: e.info.content_type.clone(),
                    content_id: e.info.content_id.clone(),
                    inline: e.info.role == Role::Inline,
                    content,
                }),
            }
        }
        Ok(d)
    }

    fn take_part(&mut self, name: &str) -> Option<Content> {
        match name {
            TEXT_BODY => self.text.take(),
            HTML_BODY => self.html.take(),
            _ => {
                let i = self.parts.iter().position(|p| p.name == name)?;
                Some(self.parts.remove(i).content)
            }
        }
    }

    fn set_part(&mut self, name: String, bytes: Vec<u8>) -> Result<()> {
        match name.as_str() {
            TEXT_BODY => {
                utf8(&name, &bytes)?;
                self.text = Some(Content::New(bytes));
            }
            HTML_BODY => {
                utf8(&name, &bytes)?;
                self.html = Some(Content::New(bytes));
            }
            _ => {
                check_part_name(&name)?;
                if let Some(p) = self.parts.iter_mut().find(|p| p.name == name) {
                    p.content = Content::New(bytes);
                } else {
                    let content_type = guess_type(&name);
                    self.parts.push(Part {
                        name,
                        content_type,
                        content_id: None,
                        inline: false,
                        content: Content::New(bytes),
                    });
                }
            }
        }
        Ok(())
    }

    fn apply(&mut self, edit: Edit) -> Result<()> {
        match edit {
            Edit::SetPart { name, bytes } => self.set_part(name, bytes)?,
            Edit::RemovePart(name) => {
                self.take_part(&name).ok_or(Error::NotFound(name))?;
            }
            Edit::RenamePart { from, to } => {
                if to != TEXT_BODY && to != HTML_BODY {
                    check_part_name(&to)?;
                }
                // `from_tree` read the renamed part as its file shows it.
                let bytes = match self.take_part(&from).ok_or(Error::NotFound(from))? {
                    Content::New(b) | Content::Kept(b) => b,
                };
                self.take_part(&to);
                self.set_part(to, bytes)?;
            }
            Edit::SetHeader { name, value } => {
                check_header(&name, None)?;
                let v = header_value(&name, &value)?;
                match self
                    .headers
                    .iter()
                    .position(|(n, _)| n.eq_ignore_ascii_case(&name))
                {
                    Some(i) => {
                        self.headers[i].1 = v;
                        let mut seen = 0;
                        self.headers.retain(|(n, _)| {
                            let same = n.eq_ignore_ascii_case(&name);
                            seen += same as usize;
                            !same || seen == 1
                        });
                    }
                    None => self.headers.push((canonical(&name), v)),
                }
            }
            Edit::RemoveHeader(name) => {
                let before = self.headers.len();
                self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
                if self.headers.len() == before {
                    return Err(Error::NoAttr(format!("user.header.{name}")));
                }
            }
        }
        Ok(())
    }

    fn build(self) -> Result<Vec<u8>> {
        // The header is written field by field: untouched fields as their bytes, which need not
        // be UTF-8 (mail-builder holds header values as text), the others by mail-builder.
        let mut crlf: Vec<u8> = Vec::new();
        let mut has_date = false;
        for (name, v) in &self.headers {
            has_date |= name.eq_ignore_ascii_case("date");
            let hv: HeaderType = match v {
                Value::Kept(bytes) => {
                    crlf.extend_from_slice(bytes);
                    continue;
                }
                Value::Text(t) => Text::new(t.as_str()).into(),
                Value::Addresses(list) => Address::new_list(
                    list.iter()
                        .map(|(n, a)| Address::new_address(n.as_deref(), a.as_str()))
                        .collect(),
                )
                .into(),
            };
            let name = canonical(name);
            crlf.extend_from_slice(name.as_bytes());
            crlf.extend_from_slice(b": ");
            hv.write_header(&mut crlf, name.len() + 2);
        }
        if !has_date {
            crlf.extend_from_slice(b"Date: ");
            HeaderType::from(Date::now()).write_header(&mut crlf, 6);
        }
        crlf.extend_from_slice(b"MIME-Version: 1.0\r\n");
        let text = self
            .text
            .as_ref()
            .map(|t| body_part("text/plain", t))
            .transpose()?;
        let (inline, attached): (Vec<Part>, Vec<Part>) = self.parts.into_iter().partition(|p| p.inline);
        let html = match self
            .html
            .as_ref()
            .map(|h| body_part("text/html", h))
            .transpose()?
        {
            Some(html) if !inline.is_empty() => {
                let mut related = vec![html];
                related.extend(inline.iter().map(part));
                // RFC 2387 §3.1: the type of the root part must be given (audit-8 A8).
                Some(MimePart::new(
                    ContentType::new("multipart/related").attribute("type", "text/html"),
                    related,
                ))
            }
            html => html,
        };
        let has_html = html.is_some();
        let body = match (text, html) {
            (Some(t), Some(h)) => Some(MimePart::new("multipart/alternative", vec![t, h])),
            (t, h) => t.or(h),
        };
        let mut rest: Vec<MimePart> = attached.iter().map(part).collect();
        if !has_html {
            // Inline images need an HTML body to sit beside; without one they are attachments.
            rest.extend(inline.iter().map(part));
        }
        let root = match (body, rest.is_empty()) {
            (Some(body), true) => body,
            (body, _) => {
                let mut all: Vec<MimePart> = body.into_iter().collect();
                all.extend(rest);
                if all.is_empty() {
                    MimePart::new("text/plain", BodyPart::Text(Cow::Borrowed("")))
                } else {
                    MimePart::new("multipart/mixed", all)
                }
            }
        };
        root.write_part(&mut crlf);
        // Stored with LF line ends, like any file written in the shell, so a body reads back
        // exactly as it was written; the senders put CRLF on the wire (SPEC §7). Every CR
        // mail-builder leaves in its output belongs to a line end (QP writes a lone CR as =0D,
        // binary goes as base64); a part kept as written keeps its lone CRs.
        let mut out = Vec::with_capacity(crlf.len());
        let mut it = crlf.iter().peekable();
        while let Some(&b) = it.next() {
            if b == b'\r' && it.peek() == Some(&&b'\n') {
                continue;
            }
            out.push(b);
        }
        Ok(out)
    }
}

/// The content type of a new part named `name`.
fn guess_type(name: &str) -> String {
    mime_guess::from_path(name).first_or_octet_stream().to_string()
}

fn is_message_name(name: &str) -> bool {
    guess_type(name) == "message/rfc822"
}

/// A body (`Body.txt`, `Body.html`): kept as written, or UTF-8 text encoded afresh.
fn body_part<'a>(content_type: &'a str, c: &'a Content) -> Result<MimePart<'a>> {
    Ok(match c {
        Content::Kept(raw) => MimePart::raw(BodyPart::Binary(Cow::Borrowed(raw))),
        Content::New(bytes) => {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| Error::invalid(content_type, "a body must be UTF-8 text"))?;
            MimePart::new(content_type, BodyPart::Text(Cow::Borrowed(text)))
        }
    })
}

/// The Content-Type of new bytes for a part whose name gives `content_type`. Text that is
/// not UTF-8 is sent as application/octet-stream: its charset is unknown, and a text type
/// without one means US-ASCII (RFC 2046 §4.1.2), which a reader would show (or convert)
/// wrongly; as octet-stream its bytes go base64-encoded and come back exactly. UTF-8 text
/// that is not ASCII says so (charset=utf-8).
fn new_content_type<'a>(content_type: &'a str, bytes: &[u8]) -> ContentType<'a> {
    if !content_type.starts_with("text/") {
        return ContentType::new(content_type);
    }
    match std::str::from_utf8(bytes) {
        Ok(s) if s.is_ascii() => ContentType::new(content_type),
        Ok(_) => ContentType::new(content_type).attribute("charset", "utf-8"),
        Err(_) => ContentType::new("application/octet-stream"),
    }
}

fn part(p: &Part) -> MimePart<'_> {
    let bytes = match &p.content {
        Content::Kept(raw) => return MimePart::raw(BodyPart::Binary(Cow::Borrowed(raw))),
        Content::New(bytes) => bytes,
    };
    let disposition = if p.inline { "inline" } else { "attachment" };
    let mut m = MimePart::new(
        new_content_type(&p.content_type, bytes),
        BodyPart::Binary(Cow::Borrowed(bytes)),
    )
    .header(
        "Content-Disposition",
        ContentType::new(disposition).attribute("filename", p.name.as_str()),
    );
    if p.content_type == "message/rfc822" {
        // RFC 2046 §5.2.1: a message/rfc822 body is 7bit, 8bit or binary, never base64 or
        // quoted-printable. It is lines of text, so 8bit when it has 8-bit bytes.
        m = m.transfer_encoding(if bytes.is_ascii() { "7bit" } else { "8bit" });
    }
    if let Some(cid) = &p.content_id {
        m = m.cid(cid.as_str());
    }
    m
}

/// mail-builder recognises these three by their usual spelling only.
fn canonical(name: &str) -> String {
    match name.to_ascii_lowercase().as_str() {
        "message-id" => "Message-ID".into(),
        "date" => "Date".into(),
        "mime-version" => "MIME-Version".into(),
        _ => name.to_string(),
    }
}

/// The message `tree` (read from `file`) with `edit` applied. A message without a
/// Message-ID field gets `message_id` (the one `user.message_id` already shows), so the
/// rebuild does not invent another.
/// Every multipart boundary of `msg` and of the messages attached in it.
fn boundaries(msg: &mail_parser::Message, out: &mut Vec<String>, depth: usize) {
    if depth > 64 {
        return;
    }
    for p in &msg.parts {
        if let Some(b) = mail_parser::MimeHeaders::content_type(p).and_then(|c| c.attribute("boundary")) {
            out.push(b.to_string());
        }
        if let mail_parser::PartType::Message(m) = &p.body {
            boundaries(m, out, depth + 1);
        }
    }
}

/// Refuses to compose a message in which a multipart boundary also occurs inside a line
/// (audit-8 A1). RFC 2046 takes a delimiter only at the start of a line, but the parser also
/// cuts a part there, so parts copied as it saw them would cut that part short and break the
/// structure of what is sent. Such a Draft is edited as a whole file instead (EINVAL here, the
/// `.eml` unchanged).
fn check_boundaries(file: &File) -> Result<Vec<String>> {
    let bytes = read_span(file, (0, file.metadata()?.len()))?;
    let Some(msg) = MessageParser::default().parse(&bytes[..]) else {
        return Ok(Vec::new());
    };
    let mut found = Vec::new();
    boundaries(&msg, &mut found, 0);
    for b in &found {
        let delim = format!("--{b}");
        let inside =
            memchr::memmem::find_iter(&bytes, delim.as_bytes()).any(|i| i > 0 && bytes[i - 1] != b'\n');
        if inside {
            return Err(Error::invalid(
                "parts",
                format!(
                    "the MIME boundary {b:?} also occurs inside a line of the message, so its \
                     parts cannot be told apart for sure: edit the .eml itself"
                ),
            ));
        }
    }
    Ok(found)
}

/// The last check of a rebuilt message (audit-8 A5): no delimiter line of a boundary of the
/// old message that the new one does not declare. One left there means a part was copied with
/// the parser's lenient idea of its extent (a part with fields and no blank line took the next
/// part into its header block); the rebuild is refused and the `.eml` stays as it was.
fn check_rebuilt(old: &[String], rebuilt: &[u8]) -> Result<()> {
    let mut declared = Vec::new();
    if let Some(msg) = MessageParser::default().parse(rebuilt) {
        boundaries(&msg, &mut declared, 0);
    }
    for b in old.iter().filter(|b| !declared.contains(b)) {
        let delim = format!("\n--{b}");
        if memchr::memmem::find(rebuilt, delim.as_bytes()).is_some() {
            return Err(Error::invalid(
                "parts",
                format!(
                    "the parts of this message do not follow its MIME boundary {b:?} line for \
                     line, so they cannot be copied for sure: edit the .eml itself"
                ),
            ));
        }
    }
    Ok(())
}

pub fn rebuild(tree: &Tree, file: &File, edit: Edit, message_id: &str) -> Result<Vec<u8>> {
    let old = check_boundaries(file)?;
    let view_of = match &edit {
        Edit::RenamePart { from, .. } => Some(from.as_str()),
        _ => None,
    };
    let mut d = Draft::from_tree(tree, file, view_of)?;
    d.apply(edit)?;
    if !d
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("message-id"))
    {
        d.headers.push((
            "Message-ID".into(),
            Value::Kept(format!("Message-ID: {message_id}\r\n").into_bytes()),
        ));
    }
    let rebuilt = d.build()?;
    check_rebuilt(&old, &rebuilt)?;
    Ok(rebuilt)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `msg` stored in a file, its tree built as the mount builds it, then `edit` applied.
    fn compose(msg: &[u8], edit: Edit) -> Vec<u8> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("d.eml");
        std::fs::write(&path, msg).expect("write the draft");
        let tree = mime::build(&path).expect("tree");
        let file = File::open(&path).expect("open the draft");
        rebuild(&tree, &file, edit, "<m@example.com>").expect("rebuild")
    }

    fn subject(v: &str) -> Edit {
        Edit::SetHeader {
            name: "Subject".into(),
            value: v.as_bytes().to_vec(),
        }
    }

    fn set(name: &str, bytes: &[u8]) -> Edit {
        Edit::SetPart {
            name: name.into(),
            bytes: bytes.to_vec(),
        }
    }

    /// The bytes the parts view shows for `name` in `msg`.
    fn view(msg: &[u8], name: &str) -> Vec<u8> {
        let tree = mime::build_bytes(msg);
        match tree.entry(name).map(|e| &e.data) {
            Some(mime::Data::Memory(b)) => b.to_vec(),
            other => panic!("{name}: {other:?} in {}", String::from_utf8_lossy(msg)),
        }
    }

    fn has(msg: &[u8], what: &[u8]) -> bool {
        msg.windows(what.len()).any(|w| w == what)
    }

    const DRAFT: &[u8] = b"From: a@example.com\nTo: b@example.org\nSubject: d\n\nhi\n";

    #[test]
    fn a_text_named_file_that_is_not_utf8_is_attached_with_its_bytes() {
        // audit-6 F10: these came back with every invalid byte replaced by U+FFFD.
        let latin1 = b"caf\xe9 latin1\n";
        let blob = b"bin\x00\xff\xfe\x80data\n";
        let html = b"<p>caf\xe9</p>\n";
        let d = compose(DRAFT, set("notes.txt", latin1));
        let d = compose(&d, set("blob.txt", blob));
        let d = compose(&d, set("l1.html", html));
        let d = compose(&d, subject("again"));
        assert_eq!(view(&d, "notes.txt"), latin1);
        assert_eq!(view(&d, "blob.txt"), blob);
        assert_eq!(view(&d, "l1.html"), html);
        let octets = d.windows(24).filter(|w| w == b"application/octet-stream").count();
        assert_eq!(octets, 3, "no text type (and so no charset) is claimed for them");
        assert!(has(&d, b"Content-Type: application/octet-stream\nContent-Disposition: attachment; filename=\"notes.txt\""));
    }

    #[test]
    fn untouched_8bit_bodies_and_header_fields_keep_their_bytes() {
        // audit-6 F10b: an edit of the Subject rewrote these with U+FFFD.
        let d = compose(
            b"From: a@example.com\nTo: b@example.org\nSubject: rawlatin\n\ncaf\xe9 cr\xe8me\n",
            subject("rawlatin2"),
        );
        assert!(
            d.ends_with(b"\n\ncaf\xe9 cr\xe8me\n"),
            "{}",
            String::from_utf8_lossy(&d)
        );
        assert!(has(&d, b"Subject: rawlatin2\n"));
        let d = compose(
            b"From: a@example.com\nTo: b@example.org\nSubject: caf\xe9 raw\nX-Note: na\xefve\n \
              folded\n\nbody\n",
            Edit::SetHeader {
                name: "To".into(),
                value: b"c@example.org".to_vec(),
            },
        );
        assert!(
            has(&d, b"\nSubject: caf\xe9 raw\nX-Note: na\xefve\n folded\n"),
            "{}",
            String::from_utf8_lossy(&d)
        );
        assert!(has(&d, b"\nTo: <c@example.org>\n") || has(&d, b"\nTo: c@example.org\n"));
        assert!(d.ends_with(b"\n\nbody\n"));
    }

    const L1A: &[u8] = b"From: a@example.com\nTo: b@example.org\nSubject: l1att\nMIME-Version: 1.0\n\
Content-Type: multipart/mixed; boundary=B\n\n--B\nContent-Type: text/plain; charset=utf-8\n\nbody\n\
--B\nContent-Type: text/plain; charset=iso-8859-1\nContent-Disposition: attachment; filename=\"notes.txt\"\n\
Content-Transfer-Encoding: quoted-printable\n\ncaf=E9\n--B\nContent-Type: text/plain; charset=utf-16\n\
Content-Disposition: attachment; filename=\"jp.txt\"\nContent-Transfer-Encoding: base64\n\n//4hMA==\n--B--\n";

    #[test]
    fn untouched_text_attachments_keep_their_bytes_and_charset() {
        // audit-6 F11: they were converted to UTF-8 and lost their charset parameter.
        let d = compose(L1A, subject("l1att2"));
        let latin1 = b"\nContent-Type: text/plain; charset=iso-8859-1\nContent-Disposition: attachment; \
filename=\"notes.txt\"\nContent-Transfer-Encoding: quoted-printable\n\ncaf=E9\n--";
        assert!(has(&d, latin1), "{}", String::from_utf8_lossy(&d));
        let utf16 = b"\nContent-Type: text/plain; charset=utf-16\nContent-Disposition: attachment; \
filename=\"jp.txt\"\nContent-Transfer-Encoding: base64\n\n//4hMA==\n--";
        assert!(has(&d, utf16), "{}", String::from_utf8_lossy(&d));
        // And after a part is removed too.
        let d = compose(&d, Edit::RemovePart("jp.txt".into()));
        assert!(has(&d, latin1));
        assert_eq!(
            view(&d, "notes.txt"),
            "café".as_bytes(),
            "the last line end is the boundary's"
        );
    }

    #[test]
    fn a_utf8_text_file_copied_in_says_charset_utf8_when_not_ascii() {
        // audit-6 F11: a non-ASCII UTF-8 text attachment was sent without a charset (US-ASCII).
        let d = compose(DRAFT, set("u8notes.txt", "grüße utf8\n".as_bytes()));
        let d = compose(&d, set("plain.txt", b"ascii only\n"));
        assert!(has(&d, b"Content-Type: text/plain; charset=\"utf-8\"\nContent-Disposition: attachment; filename=\"u8notes.txt\""),
            "{}", String::from_utf8_lossy(&d));
        assert!(has(
            &d,
            b"Content-Type: text/plain\nContent-Disposition: attachment; filename=\"plain.txt\""
        ));
        assert_eq!(view(&d, "u8notes.txt"), "grüße utf8\n".as_bytes());
    }

    const FWD: &[u8] = b"From: x@example.com\nTo: y@example.org\nSubject: fwd\n\nforwarded body\n";

    /// The subject of the attached message `name` as a standard parser reads `msg`.
    fn attached_subject(msg: &[u8], name: &str) -> Option<String> {
        let m = MessageParser::default().parse(msg)?;
        let part = m
            .attachments()
            .find(|p| mail_parser::MimeHeaders::attachment_name(*p) == Some(name))?;
        match &part.body {
            mail_parser::PartType::Message(inner) => inner.subject().map(str::to_string),
            _ => None,
        }
    }

    #[test]
    fn attached_messages_are_sent_7bit_or_8bit_never_base64() {
        // audit-6 F6: RFC 2046 §5.2.1 allows only 7bit, 8bit or binary for message/rfc822.
        let d = compose(DRAFT, set("attached.eml", FWD));
        assert!(
            has(
                &d,
                b"filename=\"attached.eml\"\nContent-Transfer-Encoding: 7bit\n\nFrom: x@example.com\n"
            ),
            "{}",
            String::from_utf8_lossy(&d)
        );
        let eight = "From: x@example.com\nSubject: grüße\n\ncafé\n".as_bytes();
        let d = compose(&d, set("eight.eml", eight));
        assert!(has(
            &d,
            b"filename=\"eight.eml\"\nContent-Transfer-Encoding: 8bit\n"
        ));
        // An attached message the edit does not touch stays as it was.
        let d = compose(&d, subject("again"));
        assert!(!has(&d, b"base64"), "{}", String::from_utf8_lossy(&d));
        assert_eq!(attached_subject(&d, "attached.eml").as_deref(), Some("fwd"));
        assert_eq!(view(&d, "eight.eml"), eight);
    }

    #[test]
    fn an_attached_message_name_leaves_room_for_its_parts_directory() {
        // audit-6 F16: the view would cut such a name, so the part would not be where written.
        let long = format!("{}.eml", "é".repeat(123));
        assert_eq!(long.len(), 250);
        let e = check_part_name(&long).unwrap_err();
        assert_eq!(e.errno(), libc::ENAMETOOLONG);
        check_part_name(&format!("{}.eml", "b".repeat(245))).expect("249 bytes is a name");
        check_part_name(&format!("{}.pdf", "b".repeat(251))).expect("255 bytes for other parts");
    }

    const TREE: &str = "From: a@example.com\nTo: b@example.org\nSubject: tree\nMIME-Version: 1.0\n\
Content-Type: multipart/mixed; boundary=\"OUT\"\n\n--OUT\n\
Content-Type: text/plain; charset=utf-8; format=flowed\nContent-Language: fr\n\nsoft \nbreak\n--OUT\n\
Content-Type: application/pdf\nContent-Transfer-Encoding: base64\n\nJVBERi0=\n--OUT\n\
Content-Type: text/plain\n\nsecond unnamed text\n--OUT\n\
Content-Type: application/octet-stream; name=\"Body.txt\"\n\
Content-Disposition: attachment; filename=\"Body.txt\"\n\nattachment called Body.txt\n--OUT\n\
Content-Type: application/octet-stream\nContent-Disposition: attachment; filename=\"..\"\n\ndotdot\n--OUT\n\
Content-Type: application/octet-stream\nContent-Disposition: attachment; filename=\"a/b.txt\"\n\nslash\n--OUT\n\
Content-Type: application/pdf\nContent-Disposition: attachment; filename=\"a.pdf\"\n\none\n--OUT\n\
Content-Type: application/pdf\nContent-Disposition: attachment; filename=\"a.pdf\"\n\ntwo\n--OUT\n\
Content-Type: image/png\nContent-ID: <logo@x>\nContent-Transfer-Encoding: base64\n\niVBORw0KGgo=\n--OUT\n\
Content-Type: message/rfc822\nContent-Disposition: attachment; filename=\"fwd.eml\"\n\n\
From: inner@example.com\nSubject: inner\n\ninner text\n--OUT\n\
Content-Type: message/rfc822\n\nFrom: noname@example.com\nSubject: unnamed\n\nunnamed msg body\n--OUT--\n";

    #[test]
    fn untouched_parts_keep_their_names_dispositions_and_parameters() {
        // audit-6 F7: a Subject edit renamed parts to their view names ("Body (2).txt",
        // "a (2).pdf", "a_b.txt", "part-8.bin"), gave unnamed parts invented file names and
        // dispositions, and dropped format=flowed and Content-Language.
        let d = compose(TREE.as_bytes(), subject("tree2"));
        let out = String::from_utf8_lossy(&d);
        let body = TREE.split("\n\n").skip(1).collect::<Vec<_>>().join("\n\n");
        let parts: Vec<&str> = body.split("--OUT\n").skip(1).collect();
        assert_eq!(parts.len(), 11);
        for p in parts {
            let p = p.trim_end_matches("--OUT--\n");
            let p = p.strip_suffix('\n').unwrap_or(p);
            assert!(out.contains(&format!("\n{p}\n--")), "{p:?} not in\n{out}");
        }
        for invented in ["part-", "(2)", "a_b.txt", "filename=\"Body.txt\"\n\n\n"] {
            assert!(!out.contains(invented), "{invented} in\n{out}");
        }
        assert_eq!(out.matches("filename=").count(), 6, "no name invented");
        // A message of one part keeps its parameters and Content-* fields too, also once it
        // becomes the body of several parts.
        let one = "From: a@example.com\nSubject: ff\nMIME-Version: 1.0\n\
                   Content-Type: text/plain; charset=utf-8; format=flowed\nContent-Language: fr\n\n\
                   soft \nbreak\n";
        let fields = "Content-Type: text/plain; charset=utf-8; format=flowed\nContent-Language: fr\n\n";
        let d = compose(one.as_bytes(), subject("x"));
        assert!(
            has(&d, format!("{fields}soft \nbreak\n").as_bytes()),
            "{}",
            String::from_utf8_lossy(&d)
        );
        let d = compose(&d, set("data.bin", b"\x00\x01"));
        assert!(
            has(&d, format!("\n{fields}soft \nbreak\n\n--").as_bytes()),
            "{}",
            String::from_utf8_lossy(&d)
        );
    }

    #[test]
    fn digest_members_stay_messages() {
        // audit-6 F13: the members of a multipart/digest (message/rfc822 by default) were shown
        // as text/plain `part-1.txt.eml` and composed into text/plain attachments.
        let dg = b"From: a@example.com\nTo: b@example.org\nSubject: digest\nMIME-Version: 1.0\n\
Content-Type: multipart/digest; boundary=D\n\n--D\n\nFrom: one@example.com\nSubject: first\n\n\
first body\n--D\n\nFrom: two@example.com\nSubject: second\n\nsecond body\n--D--\n";
        let tree = mime::build_bytes(dg);
        let names: Vec<(&str, &str)> = tree
            .entries
            .iter()
            .map(|e| (e.name.as_str(), e.info.content_type.as_str()))
            .collect();
        assert_eq!(
            names,
            [("part-1.eml", "message/rfc822"), ("part-2.eml", "message/rfc822")]
        );
        let d = compose(dg, subject("digest2"));
        assert!(
            has(
                &d,
                b"\nContent-Type: message/rfc822\n\nFrom: one@example.com\nSubject: first\n"
            ),
            "{}",
            String::from_utf8_lossy(&d)
        );
        assert!(!has(&d, b"text/plain"));
        let m = MessageParser::default().parse(&d[..]).expect("parses");
        let subjects: Vec<&str> = m
            .attachments()
            .filter_map(|p| match &p.body {
                mail_parser::PartType::Message(inner) => inner.subject(),
                _ => None,
            })
            .collect();
        assert_eq!(subjects, ["first", "second"]);
    }

    /// Audit-8 A1: a boundary string inside a line (`see the --BND marker`) made the parser cut
    /// the body there, and composing then broke the structure (the attachment ended up in a
    /// headerless part). Such a Draft is refused for composing; nothing is rebuilt.
    #[test]
    fn a_boundary_inside_a_line_refuses_composing() {
        let msg = b"From: a@example.com\nTo: b@example.org\nSubject: mid\nMIME-Version: 1.0\n\
Content-Type: multipart/mixed; boundary=\"BND\"\n\n--BND\nContent-Type: text/plain; charset=utf-8\n\n\
see the --BND marker mid-line, and more text\nsecond line\n--BND\n\
Content-Type: application/octet-stream; name=\"a.bin\"\nContent-Disposition: attachment; filename=\"a.bin\"\n\
Content-Transfer-Encoding: base64\n\nAAECAw==\n--BND--\n";
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("d.eml");
        std::fs::write(&path, msg).expect("write the draft");
        let tree = mime::build(&path).expect("tree");
        let file = File::open(&path).expect("open the draft");
        let err = rebuild(&tree, &file, subject("x"), "<m@example.com>").expect_err("refused");
        assert_eq!(err.errno(), libc::EINVAL, "{err}");
        // A boundary only at line starts composes as before.
        let ok = String::from_utf8_lossy(msg).replace("the --BND marker", "the -BND marker");
        let ok = ok.as_bytes();
        let d = compose(ok, subject("x"));
        assert!(
            has(&d, b"see the -BND marker mid-line, and more text"),
            "{}",
            String::from_utf8_lossy(&d)
        );
        assert!(has(&d, b"filename=\"a.bin\""));
    }

    /// Audit-8 A6: a message with no MIME fields and a UTF-8 body got a bare
    /// `Content-Type: text/plain` (US-ASCII) when composed; it says charset="utf-8" now.
    #[test]
    fn an_unlabelled_utf8_body_says_utf8_when_composed() {
        let d = compose(
            "From: a@example.com\nTo: b@example.org\nSubject: r\n\ncaf\u{e9} cr\u{e8}me\n".as_bytes(),
            subject("r2"),
        );
        assert!(
            has(&d, b"Content-Type: text/plain; charset=\"utf-8\""),
            "{}",
            String::from_utf8_lossy(&d)
        );
        assert!(has(&d, "caf\u{e9} cr\u{e8}me".as_bytes()));
    }

    /// Audit-8 A5: a part with fields and no blank line (`Content-Type: text/plain` right
    /// before the next delimiter) took the next part into its header block when composed,
    /// leaving the old delimiter line in what is sent. The rebuild is refused instead.
    #[test]
    fn a_rebuild_that_would_leave_an_old_delimiter_is_refused() {
        let msg = b"From: a@example.com\nTo: b@example.org\nSubject: odd\nMIME-Version: 1.0\n\
Content-Type: multipart/mixed; boundary=\"K\"\n\n--K\n\nno headers part\n--K\nContent-Type: text/plain\n\
--K\nContent-Type: text/plain; charset=utf-8\n\nlast\n--K--\n";
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("d.eml");
        std::fs::write(&path, msg).expect("write the draft");
        let tree = mime::build(&path).expect("tree");
        let file = File::open(&path).expect("open the draft");
        let got = rebuild(&tree, &file, subject("changed"), "<m@example.com>");
        assert!(
            got.is_err(),
            "composed: {:?}",
            got.as_ref().map(|d| String::from_utf8_lossy(d).into_owned())
        );
        if let Ok(d) = got {
            // If it composes, it must not carry the old delimiter.
            assert!(!has(&d, b"\n--K\n"), "{}", String::from_utf8_lossy(&d));
        }
    }

    /// Audit-8 A8: the rebuilt multipart/related said no `type=` (RFC 2387 §3.1 requires it).
    #[test]
    fn a_related_part_says_the_type_of_its_root() {
        let msg = b"From: a@example.com\nTo: b@example.org\nSubject: rel\nMIME-Version: 1.0\n\
Content-Type: multipart/related; boundary=\"R\"; type=\"text/html\"\n\n--R\n\
Content-Type: text/html; charset=utf-8\n\n<p><img src=\"cid:i1\"></p>\n--R\n\
Content-Type: image/png\nContent-ID: <i1>\nContent-Disposition: inline\nContent-Transfer-Encoding: base64\n\n\
iVBORw0KGgo=\n--R--\n";
        let d = compose(msg, subject("rel2"));
        let out = String::from_utf8_lossy(&d);
        let at = out.find("multipart/related").expect("a related part");
        let field: String = out[at..].split("\n\n").next().unwrap_or_default().to_string();
        assert!(field.contains("type=\"text/html\""), "{out}");
    }
}
