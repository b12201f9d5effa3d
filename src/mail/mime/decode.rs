//! Decoding part bodies from the message file: ranges, base64 and quoted-printable, sizes.

use super::*;

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
pub(super) fn decode_range(
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
pub(super) struct FileRange<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl<'a> FileRange<'a> {
    pub(super) fn new(file: &'a File, start: u64, end: u64) -> Self {
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

/// The bytes of a part of an in-memory message.
pub(super) fn decoded_bytes(msg: &Message, part: &MessagePart, enc: Enc) -> Vec<u8> {
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
pub(super) fn decode_slice(raw: &[u8], enc: Enc) -> Vec<u8> {
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
pub(super) static BASE64_LINE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=' || b.is_ascii_whitespace();
        i += 1;
    }
    t
};

pub(super) fn is_base64(b: u8) -> bool {
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
pub(super) fn measure_base64(file: &File, start: u64, end: u64) -> io::Result<Option<(u64, Marks)>> {
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
pub(super) fn text_lines(t: &str) -> Vec<u8> {
    t.replace("\r\n", "\n").into_bytes()
}

/// Measures a body kept in the file and notes restart points on the way.
pub(super) fn file_data(file: &File, start: u64, end: u64, enc: Enc) -> Data {
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
