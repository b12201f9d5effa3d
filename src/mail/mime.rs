//! The MIME view of SPEC §2: a message's leaf parts as named, decoded files.
//!
//! mail-parser does all the parsing. What this module adds is naming (sanitised, unique) and
//! bounded memory: mail-parser wants the whole message in memory and decodes every body into
//! it, so it is given a *skeleton* of the message in which each long run of body lines is
//! replaced by a one-line placeholder. Those bodies are decoded from the file when read, from
//! the nearest of the checkpoints taken while measuring their size.

mod bounds;
mod decode;
mod names;
mod skeleton;

use decode::*;
use names::*;
pub use names::{extension, sanitize};
use skeleton::*;

use std::cell::RefCell;
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::parsers::MessageStream;
use mail_parser::{Encoding, HeaderValue, Message, MessageParser, MessagePart, MimeHeaders, PartType};

/// Longest name a part can have (a Linux file name).
pub const MAX_NAME: usize = 255;
/// Body runs longer than this are read from the file, not kept in the skeleton.
const RUN_LIMIT: u64 = 1 << 20;
/// Once the skeleton is this big, every run longer than `SMALL_RUN` is left out too, so a
/// message of many mid-sized parts stays bounded as well.
const SKELETON_SOFT_LIMIT: usize = 16 << 20;
const SMALL_RUN: u64 = 4096;
/// Runs that are not base64 are left out of the skeleton only past this length.
const MIXED_RUN_LIMIT: u64 = 32 << 20;
/// A header block longer than this is treated as body (a 10 MB header must not grow memory
/// without bound); what was kept still parses.
const HEAD_LIMIT: u64 = 4 << 20;
/// Longest piece of a line the skeleton reads at once.
const LINE_MAX: u64 = 1 << 20;
/// Decoded distance between the checkpoints of a part read from the file.
const CHECKPOINT: u64 = 1 << 20;
/// Longest value shown in a `user.header.*` attribute (the Linux xattr value limit).
pub const MAX_HEADER_VALUE: usize = 65536;
/// At most this many parts are shown per message (hostile input can declare any number).
pub const MAX_PARTS: usize = 10_000;
/// Attached messages are shown as `.parts/` directories this many levels deep; deeper ones
/// are files only. Walks of a tree recurse at most this deep.
pub const MAX_DEPTH: usize = 64;
/// Multipart nesting followed within one message; deeper parts are not shown.
pub const MAX_MULTIPART_DEPTH: usize = 64;
/// Name of the one file a message that cannot be parsed shows.
pub const RAW_NAME: &str = "raw.eml";

/// The parts of one message (or of an attached message).
#[derive(Debug, Default)]
pub struct Tree {
    pub headers: Vec<HeaderField>,
    pub entries: Vec<Entry>,
    /// Why the view is not the whole message: it could not be parsed (then it holds just
    /// `raw.eml`), or a bound cut it (`user.parse_error`). Such a view cannot be composed in.
    pub parse_error: Option<String>,
    /// The message parsed but a bound cut the view (`parse_error` says which).
    pub partial: bool,
}

#[derive(Debug, Clone)]
pub struct HeaderField {
    /// As written in the message.
    pub name: String,
    /// The raw value unfolded, as written (encoded words stay encoded).
    pub raw: String,
    /// Unfolded and decoded to UTF-8.
    pub decoded: String,
    /// Where the whole field (name, value, folding and line end) is in the message file, when
    /// the tree was built from one: composing copies untouched fields from there byte for
    /// byte (`raw` is a lossy UTF-8 view of them).
    pub span: Option<(u64, u64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    TextBody,
    HtmlBody,
    Attachment,
    Inline,
    Message,
    Raw,
}

#[derive(Debug, Clone)]
pub struct PartInfo {
    pub content_type: String,
    pub charset: Option<String>,
    pub filename: Option<String>,
    pub part_id: String,
    pub content_id: Option<String>,
    pub disposition: Option<String>,
    pub role: Role,
    /// A member of a multipart/alternative (another version of the body, such as an
    /// invitation's text/calendar): composing keeps it there.
    pub alternative: bool,
}

#[derive(Debug)]
pub struct Entry {
    pub name: String,
    pub info: PartInfo,
    pub data: Data,
    /// The parts of an attached message, shown as `NAME.parts/`.
    pub nested: Option<Arc<Tree>>,
    /// Where the part is in the message file as written, when the tree was built from one:
    /// composing copies untouched parts from there byte for byte.
    pub span: Option<Span>,
}

/// A leaf part as written in the message file (file offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// The part's header block, with the blank line that ends it.
    pub head: (u64, u64),
    /// Its body, encoded as written, without the line end that belongs to the next boundary.
    pub body: (u64, u64),
    /// The header block is the message's own (a message of one part): only its `Content-*`
    /// fields describe the part.
    pub message_head: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enc {
    Identity,
    Base64,
    QuotedPrintable,
}

/// (decoded offset, file offset) pairs where decoding can start afresh.
pub type Marks = Vec<(u64, u64)>;

/// Where a part's decoded bytes come from.
#[derive(Debug)]
pub enum Data {
    /// Decoded (and for text, converted) by mail-parser; small by construction.
    Memory(Arc<Vec<u8>>),
    /// `start..end` of the message file, decoded on read.
    File {
        start: u64,
        end: u64,
        enc: Enc,
        size: u64,
        marks: Marks,
    },
}

// ----- building the tree ------------------------------------------------------------------

/// The tree of the message file at `path`. Reads the file twice (skeleton, then the sizes of
/// the bodies left out of it) and keeps neither in memory.
pub fn build(path: &Path) -> io::Result<Tree> {
    build_with_run_limit(path, RUN_LIMIT)
}

/// `build` with body runs over `run_limit` bytes read from the file: small limits let tests
/// and the fuzzer drive the streaming path with small messages.
#[doc(hidden)]
pub fn build_with_run_limit(path: &Path, run_limit: u64) -> io::Result<Tree> {
    let file = crate::files::open_read(path)?;
    let len = file.metadata()?.len();
    let sk = skeleton(FileRange::new(&file, 0, len), run_limit)?;
    Ok(build_from(&sk, Some(&file), len))
}

/// The tree of a message held in memory (tests and fuzzing); bodies are `Data::Memory`.
pub fn build_bytes(bytes: &[u8]) -> Tree {
    let sk = Skeleton {
        bytes: bytes.to_vec(),
        holes: Vec::new(),
        long_head: false,
    };
    build_from(&sk, None, bytes.len() as u64)
}

fn raw_tree(why: String, data: Data) -> Tree {
    Tree {
        headers: Vec::new(),
        entries: vec![Entry {
            name: RAW_NAME.to_string(),
            info: PartInfo {
                content_type: "message/rfc822".into(),
                charset: None,
                filename: None,
                part_id: String::new(),
                content_id: None,
                disposition: None,
                role: Role::Raw,
                alternative: false,
            },
            data,
            nested: None,
            span: None,
        }],
        parse_error: Some(why),
        partial: false,
    }
}

fn build_from(sk: &Skeleton, file: Option<&File>, len: u64) -> Tree {
    // raw.eml is the file itself, or for a message in memory, its bytes.
    let raw = |why: &str| {
        let data = match file {
            Some(_) => Data::File {
                start: 0,
                end: len,
                enc: Enc::Identity,
                size: len,
                marks: Vec::new(),
            },
            None => Data::Memory(Arc::new(sk.bytes.clone())),
        };
        raw_tree(why.to_string(), data)
    };
    if len == 0 {
        return raw("empty message");
    }
    let Some(msg) = MessageParser::default().parse(&sk.bytes[..]) else {
        return raw("not a message");
    };
    // mail-parser makes something of anything; a message must at least start with a field.
    let first = sk.bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    if msg.parts.first().is_none_or(|p| p.headers.is_empty()) || !looks_like_header(first) {
        bounds::dismantle(msg);
        return raw("no header fields at the start of the message");
    }
    let cuts = RefCell::new(Vec::new());
    if sk.long_head {
        cuts.borrow_mut().push(format!(
            "a header block is longer than {} MiB; the fields past that are not shown",
            HEAD_LIMIT >> 20
        ));
    }
    let mut tree = Builder {
        sk,
        file,
        in_memory: file.is_none(),
        cuts: &cuts,
    }
    .tree(&msg, 0);
    bounds::dismantle(msg);
    let mut cuts = cuts.into_inner();
    cuts.dedup();
    if !cuts.is_empty() {
        tree.parse_error = Some(format!("partial view: {}", cuts.join("; ")));
        tree.partial = true;
    }
    tree
}

struct Builder<'a> {
    sk: &'a Skeleton,
    file: Option<&'a File>,
    /// The message being walked is not the file itself (an encoded attached message).
    in_memory: bool,
    /// What the view leaves out (reported in `parse_error` of the top tree).
    cuts: &'a RefCell<Vec<String>>,
}

/// What a leaf part will be named after, before names are made unique.
struct Leaf<'m, 'x> {
    part: &'m MessagePart<'x>,
    info: PartInfo,
}

impl Builder<'_> {
    fn tree(&self, msg: &Message, depth: usize) -> Tree {
        let headers = msg
            .parts
            .first()
            .map(|p| {
                let to_file = |pos: u64| self.sk.to_file(pos);
                let in_file = self.file.is_some() && !self.in_memory;
                header_fields(
                    &msg.raw_message,
                    p,
                    in_file.then_some(&to_file as &dyn Fn(u64) -> u64),
                )
            })
            .unwrap_or_default();
        let (leaves, cut) = collect_leaves(msg);
        if let Some(c) = cut {
            self.cuts.borrow_mut().push(c);
        }
        let names = name_leaves(&leaves);
        let entries = leaves
            .into_iter()
            .zip(names)
            .map(|(leaf, name)| self.entry(msg, leaf, name, depth))
            .collect();
        Tree {
            headers,
            entries,
            parse_error: None,
            partial: false,
        }
    }

    fn entry(&self, msg: &Message, leaf: Leaf, name: String, depth: usize) -> Entry {
        let part = leaf.part;
        let (b, e) = (
            part.offset_body as u64,
            part.offset_end.max(part.offset_body) as u64,
        );
        // The declared encoding: mail-parser reports none for a body it could not decode to
        // the end (a truncated part), where clients still decode what is there.
        let declared = part
            .content_transfer_encoding()
            .map(|e| e.trim().to_ascii_lowercase());
        let enc = match (declared.as_deref(), part.encoding) {
            (Some("base64"), _) | (_, Encoding::Base64) => Enc::Base64,
            (Some("quoted-printable"), _) | (_, Encoding::QuotedPrintable) => Enc::QuotedPrintable,
            _ => Enc::Identity,
        };
        let holed = !self.in_memory && self.sk.has_hole(b, e);
        // mail-parser leaves a body it could not decode to the end as it is (a truncated part).
        let undecoded = enc != Enc::Identity && part.encoding == Encoding::None;
        let from_file = |enc: Enc| -> Data {
            match self.file {
                Some(f) if !self.in_memory => file_data(f, self.sk.to_file(b), self.sk.to_file(e), enc),
                _ if undecoded => {
                    let raw = msg.raw_message.get(b as usize..e as usize).unwrap_or_default();
                    Data::Memory(Arc::new(decode_slice(raw, enc)))
                }
                _ => Data::Memory(Arc::new(decoded_bytes(msg, part, enc))),
            }
        };
        let mut nested = None;
        let data = match &part.body {
            PartType::Text(t) | PartType::Html(t) if !holed && !undecoded => {
                Data::Memory(Arc::new(text_lines(t)))
            }
            PartType::Message(inner) => {
                if depth + 1 >= MAX_DEPTH {
                    // The view recurses no deeper (a stack of any depth is not safe): the
                    // attached message is a file only.
                    self.cuts.borrow_mut().push(format!(
                        "attached messages nested deeper than {MAX_DEPTH} levels are shown as \
                         files without .parts"
                    ));
                } else if enc == Enc::Identity && !self.in_memory {
                    nested = Some(Arc::new(self.tree(inner, depth + 1)));
                } else if !holed {
                    // An encoded attached message: mail-parser decoded it into memory.
                    let b = Builder {
                        sk: self.sk,
                        file: None,
                        in_memory: true,
                        cuts: self.cuts,
                    };
                    nested = Some(Arc::new(b.tree(inner, depth + 1)));
                }
                from_file(enc)
            }
            _ => from_file(enc),
        };
        let span = (self.file.is_some() && !self.in_memory).then(|| Span {
            head: (self.sk.to_file(part.offset_header as u64), self.sk.to_file(b)),
            body: (self.sk.to_file(b), self.sk.to_file(e)),
            message_head: msg.parts.first().is_some_and(|p| std::ptr::eq(p, part)),
        });
        Entry {
            name,
            info: leaf.info,
            data,
            nested,
            span,
        }
    }
}

/// The fields of `part`'s header; `to_file` maps a position in `raw` to one in the message
/// file, when the part is in it as written.
fn header_fields(raw: &[u8], part: &MessagePart, to_file: Option<&dyn Fn(u64) -> u64>) -> Vec<HeaderField> {
    part.headers
        .iter()
        .filter_map(|h| {
            let bytes = raw.get(h.offset_start as usize..h.offset_end as usize)?;
            // A field that ends the message without a line end is read like any other
            // (mail-parser reads it as empty): the envelope's rule, `content::terminated`.
            let decoded =
                match MessageStream::new(&crate::mail::content::terminated(bytes)).parse_unstructured() {
                    // Kept to what an attribute can show: a tree in the cache stays small.
                    HeaderValue::Text(t) => truncate(t.trim(), MAX_HEADER_VALUE).to_string(),
                    _ => String::new(),
                };
            let raw = String::from_utf8_lossy(bytes)
                .split(['\r', '\n'])
                .filter(|l| !l.is_empty())
                .collect::<String>()
                .trim()
                .to_string();
            Some(HeaderField {
                name: h.name.as_str().to_string(),
                raw,
                decoded,
                span: to_file.map(|f| (f(h.offset_field as u64), f(h.offset_end as u64))),
            })
        })
        .collect()
}

/// The leaf parts in order, with their IMAP-style part numbers (`1`, `1.2`, ...), and what
/// was left out if a bound cut the walk. The walk keeps its own stack: no input depth
/// reaches the thread's.
fn collect_leaves<'m, 'x>(msg: &'m Message<'x>) -> (Vec<Leaf<'m, 'x>>, Option<String>) {
    let mut out = Vec::new();
    let mut cut = None;
    // Each part is visited once: on hostile input mail-parser's part lists can name a part
    // more than once, which would multiply the walk (found by fuzzing: 3 KB, millions of
    // leaves).
    let mut seen = vec![false; msg.parts.len()];
    let mut stack: Vec<(usize, String, usize, bool)> = vec![(0, String::new(), 0, false)];
    while let Some((idx, id, depth, in_alternative)) = stack.pop() {
        let (Some(part), Some(visited)) = (msg.parts.get(idx), seen.get_mut(idx)) else {
            continue;
        };
        if std::mem::replace(visited, true) {
            continue;
        }
        if out.len() >= MAX_PARTS {
            cut = Some(format!("only the first {MAX_PARTS} parts are shown"));
            break;
        }
        if let PartType::Multipart(children) = &part.body {
            if depth >= MAX_MULTIPART_DEPTH {
                cut.get_or_insert_with(|| {
                    format!("parts nested deeper than {MAX_MULTIPART_DEPTH} multiparts are not shown")
                });
                continue;
            }
            let alternative = part.is_content_type("multipart", "alternative");
            // Pushed in reverse so they come off the stack in order.
            for (n, &child) in children.iter().enumerate().rev() {
                let cid = if id.is_empty() {
                    (n + 1).to_string()
                } else {
                    format!("{id}.{}", n + 1)
                };
                stack.push((child as usize, cid, depth + 1, alternative));
            }
            continue;
        }
        let id = if id.is_empty() { "1".to_string() } else { id };
        let mut info = part_info(part, id);
        info.alternative = in_alternative;
        out.push(Leaf { part, info });
    }
    (out, cut)
}

fn part_info(part: &MessagePart, part_id: String) -> PartInfo {
    let ct = part.content_type();
    let content_type = match ct {
        Some(ct) => match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub),
            None => ct.ctype().to_string(),
        },
        // A multipart/digest's members are messages by default (RFC 2046 §5.1.5): mail-parser
        // parses them as such but reports no type.
        None if matches!(part.body, PartType::Message(_)) => "message/rfc822".to_string(),
        None => "text/plain".to_string(),
    }
    .to_ascii_lowercase();
    let charset = ct.and_then(|c| c.attribute("charset")).map(str::to_string);
    let filename = part.attachment_name().map(str::to_string);
    let disposition = part.content_disposition().map(|d| d.ctype().to_ascii_lowercase());
    let content_id = part.content_id().map(str::to_string);
    let attachment = disposition.as_deref() == Some("attachment");
    let role = if matches!(part.body, PartType::Message(_)) || content_type == "message/rfc822" {
        Role::Message
    } else if content_type == "text/plain" && filename.is_none() && !attachment {
        Role::TextBody
    } else if content_type == "text/html" && filename.is_none() && !attachment {
        Role::HtmlBody
    } else if attachment || content_id.is_none() {
        Role::Attachment
    } else {
        Role::Inline
    };
    PartInfo {
        content_type,
        charset,
        filename,
        part_id,
        content_id,
        disposition,
        role,
        alternative: false,
    }
}

/// The part `name` in the tree reached by `nest`.
pub fn entry<'a>(tree: &'a Arc<Tree>, nest: &[String], name: &str) -> Option<&'a Entry> {
    subtree(tree, nest)?.entry(name)
}

/// The tree reached by following attached messages named in `nest`.
pub fn subtree<'a>(tree: &'a Arc<Tree>, nest: &[String]) -> Option<&'a Arc<Tree>> {
    let mut t = tree;
    for name in nest {
        t = t.entries.iter().find(|e| &e.name == name)?.nested.as_ref()?;
    }
    Some(t)
}

impl Tree {
    pub fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// `user.header.<name>` values: lowercase names, repeated fields joined by newlines,
    /// values cut to the xattr limit.
    pub fn header_attrs(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for h in &self.headers {
            let key = h.name.to_ascii_lowercase();
            if key.is_empty() || key.len() > 200 || !key.bytes().all(|b| b.is_ascii_graphic()) {
                continue;
            }
            match out.iter_mut().find(|(k, _)| *k == key) {
                Some((_, v)) => {
                    v.push('\n');
                    v.push_str(&h.decoded);
                }
                None => out.push((key, h.decoded.clone())),
            }
        }
        for (_, v) in &mut out {
            if v.len() > MAX_HEADER_VALUE {
                *v = truncate(v, MAX_HEADER_VALUE).to_string();
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
