//! The skeleton: the message with long body runs replaced by placeholders, so mail-parser
//! sees a bounded amount of it.

use super::*;

// ----- the skeleton ---------------------------------------------------------------------------

/// A placeholder in the skeleton standing for `orig..orig+orig_len` of the file.
#[derive(Debug, Clone, Copy)]
pub(super) struct Hole {
    pub(super) skel: u64,
    pub(super) skel_len: u64,
    pub(super) orig: u64,
    pub(super) orig_len: u64,
}

#[derive(Debug, Default)]
pub(super) struct Skeleton {
    pub(super) bytes: Vec<u8>,
    pub(super) holes: Vec<Hole>,
    /// A header block was longer than `HEAD_LIMIT`: the fields past it were left out.
    pub(super) long_head: bool,
}

impl Skeleton {
    /// The file offset of a skeleton offset. mail-parser reports part ends just before the
    /// line end that precedes a boundary, so a position inside a placeholder is taken from
    /// its end: "P\r\n" stands for lines whose last line end is the same.
    pub(super) fn to_file(&self, pos: u64) -> u64 {
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

    pub(super) fn has_hole(&self, start: u64, end: u64) -> bool {
        self.holes
            .iter()
            .any(|h| h.skel < end.max(start + 1) && start < h.skel + h.skel_len)
    }
}

pub(super) fn is_blank(line: &[u8]) -> bool {
    line == b"\n" || line == b"\r\n"
}

pub(super) fn line_end(line: &[u8]) -> &'static [u8] {
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
pub(super) fn looks_like_header(line: &[u8]) -> bool {
    match line.iter().position(|&b| b == b':') {
        Some(0) | None => false,
        Some(i) => line[..i].iter().all(|&b| b.is_ascii_graphic()),
    }
}

/// A run of body lines between structural lines: kept verbatim while short, else replaced.
pub(super) struct Run {
    pub(super) start: u64,
    pub(super) len: u64,
    pub(super) bytes: Vec<u8>,
    /// The bytes are all in `bytes` (the run has not outgrown what may be kept).
    pub(super) kept: bool,
    /// Every line is base64 text: nothing in it can mean anything to a MIME parser.
    pub(super) base64: bool,
    pub(super) eol: &'static [u8],
}

impl Run {
    pub(super) fn new() -> Run {
        Run {
            start: 0,
            len: 0,
            bytes: Vec::new(),
            kept: true,
            base64: true,
            eol: b"",
        }
    }

    pub(super) fn push(&mut self, pos: u64, line: &[u8], run_limit: u64) {
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
    pub(super) fn flush(&mut self, sk: &mut Skeleton, run_limit: u64) {
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

pub(super) fn skeleton(reader: impl Read, run_limit: u64) -> io::Result<Skeleton> {
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
