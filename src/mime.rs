//! The MIME view of SPEC §2: a message's leaf parts as named, decoded files.
//!
//! mail-parser does all the parsing. What this module adds is naming (sanitised, unique) and
//! bounded memory: mail-parser wants the whole message in memory and decodes every body into
//! it, so it is given a *skeleton* of the message in which each long run of body lines is
//! replaced by a one-line placeholder. Those bodies are decoded from the file when read, from
//! the nearest of the checkpoints taken while measuring their size.

mod bounds;

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
}

#[derive(Debug)]
pub struct Entry {
    pub name: String,
    pub info: PartInfo,
    pub data: Data,
    /// The parts of an attached message, shown as `NAME.parts/`.
    pub nested: Option<Arc<Tree>>,
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

impl Data {
    pub fn size(&self) -> u64 {
        match self {
            Data::Memory(b) => b.len() as u64,
            Data::File { size, .. } => *size,
        }
    }

    /// Up to `len` decoded bytes from `offset`. `file` is the message the tree was built from.
    pub fn read_at(&self, file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.read_at_hinted(file, offset, len, &mut None)
    }

    /// `read_at` for a reader going through the part in order: `hint` keeps the restart point
    /// (decoded offset, file offset) nearest the end of the last read, so the next read decodes
    /// from there instead of from the last checkpoint.
    pub fn read_at_hinted(
        &self,
        file: &File,
        offset: u64,
        len: usize,
        hint: &mut Option<(u64, u64)>,
    ) -> io::Result<Vec<u8>> {
        match self {
            Data::Memory(b) => {
                let start = (offset as usize).min(b.len());
                let end = start.saturating_add(len).min(b.len());
                Ok(b[start..end].to_vec())
            }
            Data::File {
                start,
                end,
                enc: Enc::Identity,
                ..
            } => {
                let from = start.saturating_add(offset).min(*end);
                let n = ((*end - from) as usize).min(len);
                let mut buf = vec![0u8; n];
                file.read_exact_at(&mut buf, from)?;
                Ok(buf)
            }
            Data::File {
                start,
                end,
                enc,
                marks,
                ..
            } => {
                let mark = marks
                    .iter()
                    .rev()
                    .find(|(d, _)| *d <= offset)
                    .copied()
                    .unwrap_or((0, *start));
                let (dec0, pos0) = match *hint {
                    Some(h) if h.0 <= offset && h.0 >= mark.0 => h,
                    _ => mark,
                };
                let mut out = Vec::with_capacity(len);
                let mut skip = offset - dec0;
                // The last point decoding could restart from, and the decoded offset reached.
                let mut restart = (dec0, pos0);
                let mut dec = dec0;
                decode_range(file, pos0, *end, *enc, |pos, chunk| {
                    let before = restart;
                    dec += chunk.len() as u64;
                    if let Some(p) = pos {
                        restart = (dec, p);
                    }
                    let c = if skip >= chunk.len() as u64 {
                        skip -= chunk.len() as u64;
                        return out.len() < len;
                    } else {
                        let s = skip as usize;
                        skip = 0;
                        &chunk[s..]
                    };
                    let want = len - out.len();
                    let take = c.len().min(want);
                    out.extend_from_slice(&c[..take]);
                    // The next read starts from the last restart point before where this one
                    // ends: this chunk's start when it was not used up, else its end if that is
                    // a restart point.
                    *hint = Some(if take < c.len() { before } else { restart });
                    out.len() < len
                })?;
                Ok(out)
            }
        }
    }

    /// All decoded bytes (composition only: a Draft's parts are loaded to rebuild it).
    pub fn read_all(&self, file: &File) -> io::Result<Vec<u8>> {
        self.read_at(file, 0, self.size() as usize)
    }
}

/// Decodes `start..end` of `file` chunk by chunk with bounded memory; `sink(restart, bytes)`
/// returns false to stop. `restart` is the file position after the chunk when decoding can
/// start afresh there (a whole base64 quantum, a whole QP line), else `None`.
fn decode_range(
    file: &File,
    start: u64,
    end: u64,
    enc: Enc,
    mut sink: impl FnMut(Option<u64>, &[u8]) -> bool,
) -> io::Result<()> {
    let mut reader = BufReader::with_capacity(64 * 1024, FileRange::new(file, start, end));
    let mut pos = start;
    match enc {
        Enc::Identity => loop {
            let buf = reader.fill_buf()?;
            if buf.is_empty() {
                return Ok(());
            }
            let n = buf.len();
            pos += n as u64;
            let go = sink(Some(pos), buf);
            reader.consume(n);
            if !go {
                return Ok(());
            }
        },
        Enc::Base64 => {
            let mut quads: Vec<u8> = Vec::with_capacity(64 * 1024);
            loop {
                let buf = reader.fill_buf()?;
                if buf.is_empty() {
                    break;
                }
                let n = buf.len();
                // Lines are alphabet runs between line ends: copy runs, not bytes.
                let mut rest = buf;
                while !rest.is_empty() {
                    let run = rest.iter().position(|&b| !is_base64(b)).unwrap_or(rest.len());
                    quads.extend_from_slice(&rest[..run]);
                    rest = &rest[run..];
                    let gap = rest.iter().position(|&b| is_base64(b)).unwrap_or(rest.len());
                    rest = &rest[gap..];
                }
                reader.consume(n);
                pos += n as u64;
                if quads.len() >= 48 * 1024 {
                    // Decode the whole quanta, carry the rest (< 4 characters) over; the file
                    // position is a restart point only when nothing is carried.
                    let whole = quads.len() / 4 * 4;
                    let decoded = base64_decode(&quads[..whole]).unwrap_or_default();
                    quads.drain(..whole);
                    let restart = quads.is_empty().then_some(pos);
                    if !sink(restart, &decoded) {
                        return Ok(());
                    }
                }
            }
            if !quads.is_empty() {
                let whole = quads.len() / 4 * 4;
                let mut decoded = base64_decode(&quads[..whole]).unwrap_or_default();
                // Python and most clients decode a truncated last quantum as far as it goes.
                if whole < quads.len() {
                    let mut tail = quads[whole..].to_vec();
                    while tail.len() < 4 {
                        tail.push(b'=');
                    }
                    decoded.extend(base64_decode(&tail).unwrap_or_default());
                }
                sink(Some(pos), &decoded);
            }
            Ok(())
        }
        Enc::QuotedPrintable => {
            // Whole lines are decoded together; a line longer than the buffer (hostile input)
            // is cut where no escape is split, and that cut is no restart point.
            let mut pending: Vec<u8> = Vec::with_capacity(128 * 1024);
            loop {
                let buf = reader.fill_buf()?;
                let eof = buf.is_empty();
                let n = buf.len();
                pending.extend_from_slice(buf);
                reader.consume(n);
                pos += n as u64;
                if !eof && pending.len() < 64 * 1024 {
                    continue;
                }
                let (cut, restart) = if eof {
                    (pending.len(), true)
                } else if let Some(i) = memchr::memrchr(b'\n', &pending) {
                    (i + 1, true)
                } else {
                    let tail = pending.len().saturating_sub(2);
                    let keep = pending[tail..]
                        .iter()
                        .position(|&b| b == b'=')
                        .map_or(0, |i| pending.len() - tail - i);
                    (pending.len() - keep, false)
                };
                let carried = (pending.len() - cut) as u64;
                let chunk: Vec<u8> = pending.drain(..cut).collect();
                if !chunk.is_empty() {
                    let decoded = quoted_printable_decode(&chunk).unwrap_or(chunk);
                    let at = restart.then_some(pos - carried);
                    if !sink(at, &decoded) {
                        return Ok(());
                    }
                }
                if eof {
                    return Ok(());
                }
            }
        }
    }
}

/// A `Read` over `start..end` of a file, by positioned reads (no shared cursor).
struct FileRange<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl<'a> FileRange<'a> {
    fn new(file: &'a File, start: u64, end: u64) -> Self {
        FileRange {
            file,
            pos: start,
            end,
        }
    }
}

impl Read for FileRange<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end.saturating_sub(self.pos) as usize;
        let n = buf.len().min(left);
        if n == 0 {
            return Ok(0);
        }
        let got = self.file.read_at(&mut buf[..n], self.pos)?;
        self.pos += got as u64;
        Ok(got)
    }
}

// ----- the skeleton ---------------------------------------------------------------------------

/// A placeholder in the skeleton standing for `orig..orig+orig_len` of the file.
#[derive(Debug, Clone, Copy)]
struct Hole {
    skel: u64,
    skel_len: u64,
    orig: u64,
    orig_len: u64,
}

#[derive(Debug, Default)]
struct Skeleton {
    bytes: Vec<u8>,
    holes: Vec<Hole>,
    /// A header block was longer than `HEAD_LIMIT`: the fields past it were left out.
    long_head: bool,
}

impl Skeleton {
    /// The file offset of a skeleton offset. mail-parser reports part ends just before the
    /// line end that precedes a boundary, so a position inside a placeholder is taken from
    /// its end: "P\r\n" stands for lines whose last line end is the same.
    fn to_file(&self, pos: u64) -> u64 {
        let i = self.holes.partition_point(|h| h.skel <= pos);
        if i == 0 {
            return pos;
        }
        let h = self.holes[i - 1];
        let skel_end = h.skel + h.skel_len;
        let orig_end = h.orig + h.orig_len;
        if pos == h.skel {
            h.orig
        } else if pos < skel_end {
            orig_end - (skel_end - pos)
        } else {
            pos - skel_end + orig_end
        }
    }

    fn has_hole(&self, start: u64, end: u64) -> bool {
        self.holes
            .iter()
            .any(|h| h.skel < end.max(start + 1) && start < h.skel + h.skel_len)
    }
}

fn is_blank(line: &[u8]) -> bool {
    line == b"\n" || line == b"\r\n"
}

fn line_end(line: &[u8]) -> &'static [u8] {
    if line.ends_with(b"\r\n") {
        b"\r\n"
    } else if line.ends_with(b"\n") {
        b"\n"
    } else {
        b""
    }
}

/// A header field line: a field name of printable characters, then a colon. Base64 never
/// contains a colon, so encoded bodies are never mistaken for headers.
fn looks_like_header(line: &[u8]) -> bool {
    match line.iter().position(|&b| b == b':') {
        Some(0) | None => false,
        Some(i) => line[..i].iter().all(|&b| b.is_ascii_graphic()),
    }
}

/// A run of body lines between structural lines: kept verbatim while short, else replaced.
struct Run {
    start: u64,
    len: u64,
    bytes: Vec<u8>,
    /// The bytes are all in `bytes` (the run has not outgrown what may be kept).
    kept: bool,
    /// Every line is base64 text: nothing in it can mean anything to a MIME parser.
    base64: bool,
    eol: &'static [u8],
}

impl Run {
    fn new() -> Run {
        Run {
            start: 0,
            len: 0,
            bytes: Vec::new(),
            kept: true,
            base64: true,
            eol: b"",
        }
    }

    fn push(&mut self, pos: u64, line: &[u8], run_limit: u64) {
        if self.len == 0 {
            self.start = pos;
        }
        self.len += line.len() as u64;
        self.eol = line_end(line);
        self.base64 = self.base64 && line.iter().all(|&b| BASE64_LINE[b as usize]);
        if self.kept {
            // A long base64 run will be left out: stop holding its bytes now.
            let keep = if self.base64 { run_limit } else { MIXED_RUN_LIMIT };
            if self.len <= keep {
                self.bytes.extend_from_slice(line);
            } else {
                self.kept = false;
                self.bytes = Vec::new();
            }
        }
    }

    /// Ends the run: its bytes go into the skeleton, or a placeholder "P" with the run's
    /// last line end. Only base64 runs are replaced below `MIXED_RUN_LIMIT`, so the skeleton
    /// parses exactly as the message does; longer runs of anything are replaced too, to keep
    /// memory bounded.
    fn flush(&mut self, sk: &mut Skeleton, run_limit: u64) {
        if self.len > 0 {
            let limit = match (self.base64, sk.bytes.len() > SKELETON_SOFT_LIMIT) {
                (true, true) => SMALL_RUN.min(run_limit),
                (true, false) => run_limit,
                (false, _) => MIXED_RUN_LIMIT,
            };
            if self.kept && self.len <= limit {
                sk.bytes.extend_from_slice(&self.bytes);
            } else {
                let skel = sk.bytes.len() as u64;
                sk.bytes.push(b'P');
                sk.bytes.extend_from_slice(self.eol);
                sk.holes.push(Hole {
                    skel,
                    skel_len: 1 + self.eol.len() as u64,
                    orig: self.start,
                    orig_len: self.len,
                });
            }
        }
        *self = Run::new();
    }
}

fn skeleton(reader: impl Read, run_limit: u64) -> io::Result<Skeleton> {
    #[derive(PartialEq)]
    enum St {
        Head,
        BodyStart,
        Body,
    }
    let mut r = BufReader::with_capacity(64 * 1024, reader);
    let mut sk = Skeleton::default();
    let mut st = St::Head;
    let mut head_len = 0u64;
    let mut pos = 0u64;
    let mut run = Run::new();
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        // A "line" is cut at LINE_MAX: a body without line ends must not be read whole.
        let n = (&mut r).take(LINE_MAX).read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        if st == St::BodyStart {
            st = if looks_like_header(&line) {
                St::Head
            } else {
                St::Body
            };
            head_len = 0;
        }
        if st == St::Head {
            head_len += n as u64;
            if head_len <= HEAD_LIMIT {
                sk.bytes.extend_from_slice(&line);
                if is_blank(&line) {
                    st = St::BodyStart;
                }
                pos += n as u64;
                continue;
            }
            // Past the bound the block's fields are left out (the view says so) but its end
            // is still found, so the body shows as the body, not as the rest of a header.
            if !sk.long_head && sk.bytes.last().is_some_and(|&b| b != b'\n') {
                sk.bytes.push(b'\n');
            }
            sk.long_head = true;
            if is_blank(&line) {
                sk.bytes.extend_from_slice(&line);
                st = St::BodyStart;
            }
            pos += n as u64;
            continue;
        }
        // mail-parser finds a boundary wherever "--" and the boundary appear, not only at the
        // start of a line, so any such line stays in the skeleton as it is.
        if memchr::memmem::find(&line, b"--").is_some() {
            run.flush(&mut sk, run_limit);
            sk.bytes.extend_from_slice(&line);
            st = St::Head;
            head_len = 0;
        } else {
            run.push(pos, &line, run_limit);
        }
        pos += n as u64;
    }
    run.flush(&mut sk, run_limit);
    Ok(sk)
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
    let file = crate::spool::open_read(path)?;
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
            },
            data,
            nested: None,
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
            .map(|p| header_fields(&msg.raw_message, p))
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
        Entry {
            name,
            info: leaf.info,
            data,
            nested,
        }
    }
}

/// The bytes of a part of an in-memory message.
fn decoded_bytes(msg: &Message, part: &MessagePart, enc: Enc) -> Vec<u8> {
    match &part.body {
        PartType::Text(t) | PartType::Html(t) => text_lines(t),
        PartType::Binary(b) | PartType::InlineBinary(b) => b.to_vec(),
        // An attached message that was not encoded is parsed in place: its raw_message is the
        // whole enclosing buffer, so its bytes are the part's own range.
        PartType::Message(m) if enc != Enc::Identity => m.raw_message.to_vec(),
        PartType::Message(_) | PartType::Multipart(_) => {
            let (b, e) = (part.offset_body as usize, part.offset_end as usize);
            msg.raw_message.get(b..e).unwrap_or_default().to_vec()
        }
    }
}

/// Decodes a body in memory the way `decode_range` decodes one in the file.
fn decode_slice(raw: &[u8], enc: Enc) -> Vec<u8> {
    let mut out = Vec::new();
    let mut dec = |chunk: &[u8]| out.extend_from_slice(chunk);
    match enc {
        Enc::Identity => dec(raw),
        Enc::QuotedPrintable => dec(&quoted_printable_decode(raw).unwrap_or_else(|| raw.to_vec())),
        Enc::Base64 => {
            let mut quads: Vec<u8> = raw.iter().copied().filter(|&b| is_base64(b)).collect();
            while !quads.len().is_multiple_of(4) {
                quads.push(b'=');
            }
            dec(&base64_decode(&quads).unwrap_or_default());
        }
    }
    out
}

/// The base64 alphabet, without padding.
static BASE64_ALPHABET: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric() || b == b'+' || b == b'/';
        i += 1;
    }
    t
};

/// Bytes a line of base64 text may hold: the alphabet, padding and white space.
static BASE64_LINE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=' || b.is_ascii_whitespace();
        i += 1;
    }
    t
};

fn is_base64(b: u8) -> bool {
    BASE64_CHARS[b as usize]
}

/// The base64 alphabet and padding.
static BASE64_CHARS: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=';
        i += 1;
    }
    t
};

/// Size and checkpoints of a base64 body by counting its characters, without decoding (a
/// 1 GB attachment is measured at the speed of reading it). `None` when padding appears
/// before the end: such a body is measured by decoding it, as it will be read.
fn measure_base64(file: &File, start: u64, end: u64) -> io::Result<Option<(u64, Marks)>> {
    let mut r = FileRange::new(file, start, end);
    let mut buf = vec![0u8; 256 * 1024];
    let (mut chars, mut pads) = (0u64, 0u64);
    let mut pos = start;
    let mut marks = Vec::new();
    let mut next_mark = CHECKPOINT;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let block = &buf[..n];
        // Most blocks need only a count (which vectorises); a block with padding or a
        // checkpoint in it is walked byte by byte.
        let count: u64 = block.iter().map(|&b| BASE64_ALPHABET[b as usize] as u64).sum();
        if pads == 0 && memchr::memchr(b'=', block).is_none() && (chars + count) / 4 * 3 < next_mark {
            chars += count;
            pos += n as u64;
            continue;
        }
        for (i, &b) in block.iter().enumerate() {
            if b == b'=' {
                pads += 1;
                chars += 1;
            } else if b.is_ascii_alphanumeric() || b == b'+' || b == b'/' {
                if pads > 0 {
                    return Ok(None);
                }
                chars += 1;
                // After a whole quantum decoding can restart here (see decode_range).
                if chars % 4 == 0 && chars / 4 * 3 >= next_mark {
                    marks.push((chars / 4 * 3, pos + i as u64 + 1));
                    next_mark = chars / 4 * 3 + CHECKPOINT;
                }
            }
        }
        pos += n as u64;
    }
    // A truncated last quantum decodes as far as it goes (see decode_range).
    let data = chars - pads;
    let size = data / 4 * 3
        + match data % 4 {
            2 => 1,
            3 => 2,
            _ => 0,
        };
    Ok(Some((size, marks)))
}

/// Text as a client shows it (and Python's `email` decodes it): lines end in LF.
fn text_lines(t: &str) -> Vec<u8> {
    t.replace("\r\n", "\n").into_bytes()
}

/// Measures a body kept in the file and notes restart points on the way.
fn file_data(file: &File, start: u64, end: u64, enc: Enc) -> Data {
    let end = end.max(start);
    if enc == Enc::Identity {
        return Data::File {
            start,
            end,
            enc,
            size: end - start,
            marks: Vec::new(),
        };
    }
    if enc == Enc::Base64
        && let Ok(Some((size, marks))) = measure_base64(file, start, end)
    {
        return Data::File {
            start,
            end,
            enc,
            size,
            marks,
        };
    }
    let mut size = 0u64;
    let mut marks = Vec::new();
    let mut next_mark = CHECKPOINT;
    let res = decode_range(file, start, end, enc, |pos, chunk| {
        size += chunk.len() as u64;
        if let Some(p) = pos
            && size >= next_mark
        {
            marks.push((size, p));
            next_mark = size + CHECKPOINT;
        }
        true
    });
    if let Err(e) = res {
        log::warn!("measuring a part: {e}");
    }
    Data::File {
        start,
        end,
        enc,
        size,
        marks,
    }
}

fn header_fields(raw: &[u8], part: &MessagePart) -> Vec<HeaderField> {
    part.headers
        .iter()
        .filter_map(|h| {
            let bytes = raw.get(h.offset_start as usize..h.offset_end as usize)?;
            let decoded = match MessageStream::new(bytes).parse_unstructured() {
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
    let mut stack: Vec<(usize, String, usize)> = vec![(0, String::new(), 0)];
    while let Some((idx, id, depth)) = stack.pop() {
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
            // Pushed in reverse so they come off the stack in order.
            for (n, &child) in children.iter().enumerate().rev() {
                let cid = if id.is_empty() {
                    (n + 1).to_string()
                } else {
                    format!("{id}.{}", n + 1)
                };
                stack.push((child as usize, cid, depth + 1));
            }
            continue;
        }
        let id = if id.is_empty() { "1".to_string() } else { id };
        out.push(Leaf {
            part,
            info: part_info(part, id),
        });
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
    }
}

/// Names in leaf order: the first text and html bodies are `Body.txt` / `Body.html`, named
/// parts keep their sanitised names, the rest are `part-ID.EXT`; all unique.
fn name_leaves(leaves: &[Leaf]) -> Vec<String> {
    let mut taken = Taken::default();
    let mut names: Vec<Option<String>> = vec![None; leaves.len()];
    for (role, name) in [(Role::TextBody, "Body.txt"), (Role::HtmlBody, "Body.html")] {
        if let Some(i) = leaves.iter().position(|l| l.info.role == role) {
            taken.insert(name.to_string(), false);
            names[i] = Some(name.to_string());
        }
    }
    for (i, leaf) in leaves.iter().enumerate() {
        if names[i].is_some() {
            continue;
        }
        let is_msg = leaf.info.role == Role::Message;
        let base = leaf
            .info
            .filename
            .as_deref()
            .and_then(sanitize)
            .unwrap_or_else(|| {
                format!(
                    "part-{}.{}",
                    leaf.info.part_id,
                    extension(&leaf.info.content_type)
                )
            });
        let base = if is_msg && !base.ends_with(".eml") {
            fit(&format!("{}.eml", base.trim_end_matches('.')), ".eml")
        } else {
            base
        };
        names[i] = Some(taken.unique(&base, is_msg));
    }
    names.into_iter().map(Option::unwrap_or_default).collect()
}

#[derive(Default)]
struct Taken(HashSet<String>);

impl Taken {
    fn insert(&mut self, name: String, is_msg: bool) {
        if is_msg {
            self.0.insert(format!("{name}.parts"));
        }
        self.0.insert(name);
    }

    fn free(&self, name: &str, is_msg: bool) -> bool {
        // An attached message's directory name is taken with it (see `insert`), so no file
        // can take it, and a message cannot take a name whose `.parts` is a file's.
        let clash = self.0.contains(name) || (is_msg && self.0.contains(&format!("{name}.parts")));
        !clash
    }

    /// `a.pdf`, then `a (2).pdf`, `a (3).pdf`...
    fn unique(&mut self, base: &str, is_msg: bool) -> String {
        let mut name = base.to_string();
        let mut n = 2;
        while !self.free(&name, is_msg) {
            let (stem, ext) = split_ext(base);
            let suffix = format!(" ({n}){ext}");
            name = format!(
                "{}{suffix}",
                truncate(stem, MAX_NAME - suffix.len()).trim_end_matches('.')
            );
            n += 1;
        }
        self.insert(name.clone(), is_msg);
        name
    }
}

fn split_ext(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(i) if i > 0 && name.len() - i <= 16 => (&name[..i], &name[i..]),
        _ => (name, ""),
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Cuts a name to `MAX_NAME` bytes, keeping its extension `ext` when it has it.
fn fit(name: &str, ext: &str) -> String {
    if name.len() <= MAX_NAME {
        return name.to_string();
    }
    let (stem, e) = if !ext.is_empty() && name.ends_with(ext) {
        (&name[..name.len() - ext.len()], ext)
    } else {
        split_ext(name)
    };
    // A cut can end the stem in a dot, which with the extension's would make "..".
    let stem = truncate(stem, MAX_NAME - e.len()).trim_end_matches('.');
    format!("{stem}{e}")
}

/// A file name from a sender, made safe to show: no `/`, `\`, NUL or control characters, no
/// leading dots or spaces, no `..`, at most 255 bytes with the extension kept. `None` when
/// nothing is left.
pub fn sanitize(raw: &str) -> Option<String> {
    let mut s = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = match c {
            '/' | '\\' => '_',
            c if c.is_control() || is_bidi_control(c) => continue,
            c => c,
        };
        // Collapse runs of dots, so no `..` survives anywhere in the name.
        if c == '.' && s.ends_with('.') {
            continue;
        }
        s.push(c);
    }
    let s = s
        .trim_start_matches(['.', ' '])
        .trim_end_matches([' ', '.'])
        .trim();
    if s.is_empty() {
        return None;
    }
    let ext = split_ext(s).1;
    Some(fit(s, ext))
}

/// Unicode's explicit directional formatting characters: `evil\u{202E}fdp.exe` would show
/// as `exe.pdf` in a terminal.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// A file extension for an unnamed part of this content type.
pub fn extension(content_type: &str) -> String {
    let preferred = match content_type {
        "text/plain" => Some("txt"),
        "text/html" => Some("html"),
        "message/rfc822" => Some("eml"),
        "image/jpeg" => Some("jpg"),
        "application/octet-stream" => Some("bin"),
        "text/calendar" => Some("ics"),
        "message/delivery-status" => Some("txt"),
        _ => None,
    };
    if let Some(p) = preferred {
        return p.to_string();
    }
    mime_guess::get_mime_extensions_str(content_type)
        .and_then(|e| e.first())
        .map(|e| e.to_string())
        .unwrap_or_else(|| "bin".to_string())
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
mod tests {
    use super::*;

    #[test]
    fn names_are_sanitised() {
        assert_eq!(sanitize("../../etc/passwd").unwrap(), "_._etc_passwd");
        assert_eq!(sanitize("a/b\0c\x07.pdf").unwrap(), "a_bc.pdf");
        assert_eq!(sanitize("..."), None);
        assert_eq!(sanitize(" .hidden").unwrap(), "hidden");
        assert_eq!(sanitize("invoice\u{202E}fdp.exe").unwrap(), "invoicefdp.exe");
        assert_eq!(sanitize("a\u{2066}b\u{2069}\u{200F}.txt").unwrap(), "ab.txt");
        let long = format!("{}.pdf", "é".repeat(200));
        let s = sanitize(&long).unwrap();
        assert!(s.len() <= MAX_NAME && s.ends_with(".pdf"), "{s}");
    }

    #[test]
    fn names_are_unique() {
        let mut t = Taken::default();
        assert_eq!(t.unique("notes.txt", false), "notes.txt");
        assert_eq!(t.unique("notes.txt", false), "notes (2).txt");
        assert_eq!(t.unique("notes.txt", false), "notes (3).txt");
        let long = "x".repeat(251) + ".pdf";
        assert_eq!(t.unique(&long, false), long);
        let second = t.unique(&long, false);
        assert!(second.len() <= MAX_NAME && second.ends_with(" (2).pdf"));
        assert_eq!(t.unique("fwd.eml", true), "fwd.eml");
        assert_eq!(t.unique("fwd.eml.parts", false), "fwd.eml (2).parts");
    }

    #[test]
    fn skeleton_maps_back_to_the_file() {
        let body = "QUFB\r\n".repeat(300_000);
        let msg = format!(
            "Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
             Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n\
             {body}--b--\r\n"
        );
        let sk = skeleton(msg.as_bytes(), RUN_LIMIT).unwrap();
        assert_eq!(sk.holes.len(), 1);
        assert!(sk.bytes.len() < 400);
        let m = MessageParser::default().parse(&sk.bytes[..]).unwrap();
        let p = &m.parts[1];
        let (b, e) = (sk.to_file(p.offset_body as u64), sk.to_file(p.offset_end as u64));
        assert_eq!(&msg[b as usize..e as usize], body.trim_end());
    }
}

#[cfg(test)]
mod corpus_tests {
    use super::*;

    /// Every body of the corpus read through the streaming path (runs over 16 bytes left in
    /// the file) gives the bytes the in-memory path gives.
    #[test]
    fn streaming_path_decodes_like_the_in_memory_path() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
        let mut compared = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            if path.extension().is_none_or(|x| x != "eml") {
                continue;
            }
            let file = File::open(&path).unwrap();
            let whole = build(&path).unwrap();
            let streamed = build_with_run_limit(&path, 16).unwrap();
            assert_eq!(whole.entries.len(), streamed.entries.len(), "{path:?}");
            for (a, b) in whole.entries.iter().zip(&streamed.entries) {
                assert_eq!(a.name, b.name, "{path:?}");
                if a.info.content_type.starts_with("text/") {
                    continue; // text is converted to UTF-8 and LF only when held in memory
                }
                let (x, y) = (a.data.read_all(&file).unwrap(), b.data.read_all(&file).unwrap());
                assert_eq!(x, y, "{path:?} {}", a.name);
                assert_eq!(b.data.size(), y.len() as u64);
                // Reads at an offset agree too.
                if y.len() > 10 {
                    assert_eq!(b.data.read_at(&file, 7, 3).unwrap(), y[7..10].to_vec());
                }
                compared += 1;
            }
        }
        assert!(compared >= 10, "{compared}");
    }

    /// Bodies laid out so decoding chunks never end on a restart point (base64 in 77-character
    /// lines, one 3 MB quoted-printable line) still read right, in order and scattered.
    #[test]
    fn odd_layouts_read_right() {
        let data: Vec<u8> = (0..2_000_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
            .collect();
        let built = mail_builder::MessageBuilder::new()
            .subject("x")
            .attachment("application/octet-stream", "d.bin", data.clone())
            .write_to_vec()
            .unwrap();
        let text = String::from_utf8(built).unwrap();
        let (_, rest) = text
            .split_once("Content-Transfer-Encoding: base64\r\n\r\n")
            .unwrap();
        let (b64, _) = rest.split_once("\r\n--").unwrap();
        let flat: String = b64.split("\r\n").collect();
        let wrapped: Vec<&str> = flat
            .as_bytes()
            .chunks(77)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let qp_line: String = (0..1_000_000)
            .map(|i| if i % 3 == 0 { "=41" } else { "b" })
            .collect();
        let qp_decoded: Vec<u8> = (0..1_000_000)
            .map(|i| if i % 3 == 0 { b'A' } else { b'b' })
            .collect();
        let dir = std::env::temp_dir().join(format!("mailfs-odd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.eml");
        // The attachment in its odd layout, then the long QP line as a second part.
        let boundary = "ODD";
        let eml = format!(
            "Subject: x\r\nContent-Type: multipart/mixed; boundary={boundary}\r\n\r\n--{boundary}\r\n\
             Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n\
             --{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: \
             quoted-printable\r\n\r\n{qp_line}\r\n--{boundary}--\r\n",
            wrapped.join("\n")
        );
        std::fs::write(&path, eml).unwrap();
        let tree = build_with_run_limit(&path, 64).unwrap();
        let file = File::open(&path).unwrap();
        for (e, want) in tree.entries.iter().zip([&data, &qp_decoded]) {
            assert!(matches!(e.data, Data::File { .. }));
            assert_eq!(e.data.size(), want.len() as u64, "{}", e.name);
            let mut hint = None;
            let mut got = Vec::new();
            while got.len() < want.len() {
                let part = e
                    .data
                    .read_at_hinted(&file, got.len() as u64, 70_000, &mut hint)
                    .unwrap();
                assert!(!part.is_empty());
                got.extend(part);
            }
            assert!(&got == want, "{} in order", e.name);
            let len = want.len() as u64;
            for off in [0u64, 99_999, len / 2 + 1, len - 5] {
                let part = e.data.read_at(&file, off, 64).unwrap();
                let end = (off as usize + 64).min(want.len());
                assert_eq!(part, want[off as usize..end].to_vec(), "{} at {off}", e.name);
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// An attached message read from memory is its own bytes, not the enclosing message's.
    #[test]
    fn an_attached_message_in_memory_is_its_own_bytes() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/nested.eml");
        let data = std::fs::read(&path).unwrap();
        let file = File::open(&path).unwrap();
        let from_memory = build_bytes(&data);
        let from_file = build(&path).unwrap();
        let m = from_memory
            .entry("fwd.eml")
            .unwrap()
            .data
            .read_all(&file)
            .unwrap();
        let f = from_file.entry("fwd.eml").unwrap().data.read_all(&file).unwrap();
        assert_eq!(m, f);
        assert!(String::from_utf8_lossy(&m).contains("Subject: inner message"));
        assert!(!String::from_utf8_lossy(&m).contains("Subject: nested"));
    }

    /// Reads in order (with the restart hint) and at scattered offsets give the same bytes as
    /// one whole decode, across many decoder chunks and checkpoints.
    #[test]
    fn hinted_and_scattered_reads_agree() {
        let data: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        // mail-builder writes binary attachments in base64.
        let msg = mail_builder::MessageBuilder::new()
            .subject("x")
            .attachment("application/octet-stream", "d.bin", data.clone())
            .write_to_vec()
            .unwrap();
        let dir = std::env::temp_dir().join(format!("mailfs-hint-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.eml");
        std::fs::write(&path, &msg).unwrap();
        let tree = build(&path).unwrap();
        let file = File::open(&path).unwrap();
        let e = &tree.entries[0];
        assert!(matches!(e.data, Data::File { .. }));
        assert_eq!(e.data.size(), data.len() as u64);
        for step in [4096usize, 5000, 131072] {
            let mut hint = None;
            let mut got = Vec::new();
            while got.len() < data.len() {
                let part = e
                    .data
                    .read_at_hinted(&file, got.len() as u64, step, &mut hint)
                    .unwrap();
                assert!(!part.is_empty());
                got.extend(part);
            }
            assert!(got == data, "sequential reads of {step}");
        }
        for off in [0u64, 1, 49_151, 1_048_575, 1_048_576, 2_999_990] {
            let part = e.data.read_at(&file, off, 100).unwrap();
            let end = (off as usize + 100).min(data.len());
            assert_eq!(part, data[off as usize..end].to_vec(), "offset {off}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[cfg(test)]
mod fuzz_regressions {
    use super::*;

    /// Inputs the fuzzer found (fuzz/regressions/): each builds quickly, with a bounded
    /// number of parts, through both paths.
    #[test]
    fn fuzz_findings_stay_fixed() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let t = build_bytes(&data);
            assert!(t.entries.len() <= MAX_PARTS, "{path:?}");
            let t = build_with_run_limit(&path, 64).unwrap();
            assert!(t.entries.len() <= MAX_PARTS, "{path:?}");
            n += 1;
        }
        assert!(n >= 1);
    }
}
