//! Composing a Draft by parts (SPEC §5): each change to `X.eml.parts/` rebuilds the whole
//! message with mail-builder from what the parts view shows, with the one change applied.
//! The message keeps its other header fields as written, including Message-ID and Date.

use std::borrow::Cow;
use std::fs::File;

use mail_builder::MessageBuilder;
use mail_builder::headers::HeaderType;
use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::raw::Raw;
use mail_builder::headers::text::Text;
use mail_builder::mime::{BodyPart, MimePart};
use mail_parser::{HeaderValue, MessageParser};

use crate::error::{Error, Result};
use crate::mail::mime::{self, Role, Tree};
use crate::model::attrs::validate_address;

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
    Raw(String),
    Text(String),
    Addresses(Vec<(Option<String>, String)>),
}

struct Part {
    name: String,
    content_type: String,
    content_id: Option<String>,
    inline: bool,
    bytes: Vec<u8>,
}

/// A Draft as its parts: what the view shows, in a form mail-builder can write again.
struct Draft {
    headers: Vec<(String, Value)>,
    text: Option<String>,
    html: Option<String>,
    parts: Vec<Part>,
}

fn utf8(name: &str, bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|_| Error::invalid(name, "a body must be UTF-8 text"))
}

/// A part name a user may create: what `mime::sanitize` would keep as it is.
pub fn check_part_name(name: &str) -> Result<()> {
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
    fn from_tree(tree: &Tree, file: &File) -> Result<Draft> {
        check_whole(tree)?;
        check_size(tree, 0)?;
        let headers = tree
            .headers
            .iter()
            .filter(|h| !is_structural(&h.name))
            .map(|h| (h.name.clone(), Value::Raw(h.raw.clone())))
            .collect();
        let mut d = Draft {
            headers,
            text: None,
            html: None,
            parts: Vec::new(),
        };
        for e in &tree.entries {
            let bytes = e.data.read_all(file)?;
            match (e.name.as_str(), e.info.role) {
                (TEXT_BODY, Role::TextBody) => d.text = Some(String::from_utf8_lossy(&bytes).into_owned()),
                (HTML_BODY, Role::HtmlBody) => d.html = Some(String::from_utf8_lossy(&bytes).into_owned()),
                _ => d.parts.push(Part {
                    name: e.name.clone(),
                    content_type: e.info.content_type.clone(),
                    content_id: e.info.content_id.clone(),
                    inline: e.info.role == Role::Inline,
                    bytes,
                }),
            }
        }
        Ok(d)
    }

    fn take_part(&mut self, name: &str) -> Option<Vec<u8>> {
        match name {
            TEXT_BODY => self.text.take().map(String::into_bytes),
            HTML_BODY => self.html.take().map(String::into_bytes),
            _ => {
                let i = self.parts.iter().position(|p| p.name == name)?;
                Some(self.parts.remove(i).bytes)
            }
        }
    }

    fn set_part(&mut self, name: String, bytes: Vec<u8>) -> Result<()> {
        match name.as_str() {
            TEXT_BODY => self.text = Some(utf8(&name, bytes)?),
            HTML_BODY => self.html = Some(utf8(&name, bytes)?),
            _ => {
                check_part_name(&name)?;
                if let Some(p) = self.parts.iter_mut().find(|p| p.name == name) {
                    p.bytes = bytes;
                } else {
                    let content_type = mime_guess::from_path(&name).first_or_octet_stream().to_string();
                    self.parts.push(Part {
                        name,
                        content_type,
                        content_id: None,
                        inline: false,
                        bytes,
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
                let bytes = self.take_part(&from).ok_or(Error::NotFound(from))?;
                // A renamed attachment keeps its type and Content-ID when it stays one.
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
        let mut b = MessageBuilder::new();
        for (name, v) in self.headers {
            let hv: HeaderType = match v {
                Value::Raw(r) => Raw::new(r).into(),
                Value::Text(t) => Text::new(t).into(),
                Value::Addresses(list) => Address::new_list(
                    list.into_iter()
                        .map(|(n, a)| Address::new_address(n, a))
                        .collect(),
                )
                .into(),
            };
            b = b.header(canonical(&name), hv);
        }
        let text = self
            .text
            .map(|t| MimePart::new("text/plain", BodyPart::Text(Cow::Owned(t))));
        let (inline, attached): (Vec<Part>, Vec<Part>) = self.parts.into_iter().partition(|p| p.inline);
        let html = self.html.map(|h| {
            let html = MimePart::new("text/html", BodyPart::Text(Cow::Owned(h)));
            if inline.is_empty() {
                html
            } else {
                let mut related = vec![html];
                related.extend(inline.iter().map(part));
                MimePart::new("multipart/related", related)
            }
        });
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
        let crlf = b.body(root).write_to_vec().map_err(Error::Io)?;
        // Stored with LF line ends, like any file written in the shell, so a body reads back
        // exactly as it was written; the senders put CRLF on the wire (SPEC §7). Every CR
        // mail-builder leaves in its output belongs to a line end (QP writes a lone CR as =0D,
        // binary goes as base64).
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

fn part(p: &Part) -> MimePart<'_> {
    let disposition = if p.inline { "inline" } else { "attachment" };
    let mut m = MimePart::new(
        ContentType::new(p.content_type.as_str()),
        BodyPart::Binary(Cow::Borrowed(&p.bytes)),
    )
    .header(
        "Content-Disposition",
        ContentType::new(disposition).attribute("filename", p.name.as_str()),
    );
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
    let mut d = Draft::from_tree(tree, file)?;
    d.apply(edit)?;
    if !d
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("message-id"))
    {
        d.headers
            .push(("Message-ID".into(), Value::Raw(message_id.to_string())));
    }
    d.build()
}
