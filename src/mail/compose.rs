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

mod boundaries;
mod fields;

use crate::error::{Error, Result};
use crate::mail::mime::{self, Role, Tree};
use crate::model::attrs::validate_address;
use crate::model::names::MAX_MESSAGE_NAME;
use boundaries::{check_boundaries, check_rebuilt};
use fields::{Entry, header_value};

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
    Addresses(Vec<Entry>),
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
    /// Another version of the body (audit-8 A9): built into the multipart/alternative.
    alternative: bool,
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
                    alternative: e.info.alternative
                        && matches!(e.info.role, Role::Attachment | Role::TextBody | Role::HtmlBody),
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
                    // A file written over it is the user's attachment, not a version of the body.
                    p.alternative = false;
                } else {
                    let content_type = guess_type(&name);
                    self.parts.push(Part {
                        name,
                        content_type,
                        content_id: None,
                        inline: false,
                        alternative: false,
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
                let plain = |n: &str| n != TEXT_BODY && n != HTML_BODY;
                if plain(&from) && plain(&to) && !self.parts.iter().any(|p| p.name == to) {
                    // Renamed, it stays where it is with its Content-ID and disposition (an
                    // inline image stays one), so the other parts keep their names too
                    // (audit-18 E1, E2); its type follows the new name only where that names
                    // another type. `from_tree` read it as its file shows it.
                    let p = self
                        .parts
                        .iter_mut()
                        .find(|p| p.name == from)
                        .ok_or(Error::NotFound(from.clone()))?;
                    let ty = guess_type(&to);
                    if ty != guess_type(&from) {
                        p.content_type = ty;
                    }
                    p.name = to;
                    p.alternative = false;
                    return Ok(());
                }
                // `from_tree` read the renamed part as its file shows it.
                let bytes = match self.take_part(&from).ok_or(Error::NotFound(from))? {
                    Content::New(b) | Content::Kept(b) => b,
                };
                // Over an existing part (`sed -i`'s temp file renamed onto it): that part
                // takes the bytes where it is, keeping its place, type and Content-ID.
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
                        .map(|e| match e {
                            Entry::One(n, a) => Address::new_address(n.as_deref(), a.as_str()),
                            Entry::Group(g, members) => Address::new_group(
                                Some(g.as_str()),
                                members
                                    .iter()
                                    .map(|(n, a)| Address::new_address(n.as_deref(), a.as_str()))
                                    .collect(),
                            ),
                        })
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
        let (versions, parts): (Vec<Part>, Vec<Part>) = self.parts.into_iter().partition(|p| p.alternative);
        let (inline, attached): (Vec<Part>, Vec<Part>) = parts.into_iter().partition(|p| p.inline);
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
        // The other versions of the body stay beside it (an invitation's text/calendar): as
        // parts of a multipart/mixed each would be shown in addition.
        let mut alternatives: Vec<MimePart> = text.into_iter().chain(html).collect();
        let with_body = !alternatives.is_empty();
        if with_body {
            alternatives.extend(versions.iter().map(part));
        }
        let body = match alternatives.len() {
            0 => None,
            1 => alternatives.pop(),
            _ => Some(MimePart::new("multipart/alternative", alternatives)),
        };
        let mut rest: Vec<MimePart> = attached.iter().map(part).collect();
        if !with_body {
            rest.extend(versions.iter().map(part));
        }
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
    if content_type == "message/rfc822" && !is_line_text(bytes) {
        // Not a message (audit-8 A3): message/rfc822 must go 7bit or 8bit, which these bytes
        // cannot; as octet-stream they go base64 and come back exactly.
        return ContentType::new("application/octet-stream");
    }
    if !content_type.starts_with("text/") {
        return ContentType::new(content_type);
    }
    match std::str::from_utf8(bytes) {
        Ok(s) if s.is_ascii() => ContentType::new(content_type),
        Ok(_) => ContentType::new(content_type).attribute("charset", "utf-8"),
        Err(_) => ContentType::new("application/octet-stream"),
    }
}

/// Bytes that can go as 8bit (RFC 2045 §2.8): no NUL, CR only before LF, lines of at most
/// 998 bytes.
fn is_line_text(bytes: &[u8]) -> bool {
    let crlf_only = bytes
        .iter()
        .enumerate()
        .all(|(i, &b)| b != 0 && (b != b'\r' || bytes.get(i + 1) == Some(&b'\n')));
    crlf_only && bytes.split(|&b| b == b'\n').all(|l| l.len() <= 998)
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
    if p.content_type == "message/rfc822" && is_line_text(bytes) {
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
pub fn rebuild(tree: &Tree, file: &File, edit: Edit, message_id: &str) -> Result<Vec<u8>> {
    let view_of = match &edit {
        Edit::RenamePart { from, .. } => Some(from.as_str()),
        _ => None,
    };
    // First: it refuses a Draft over the compose limit before the boundary check reads the
    // whole file into memory.
    let mut d = Draft::from_tree(tree, file, view_of)?;
    let old = check_boundaries(file)?;
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
mod tests;
