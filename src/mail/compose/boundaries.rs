//! The checks that keep composing from breaking a message whose parts the parser cannot be
//! sure of: parts are copied by the extents the parser gives them, so those must be the parts
//! RFC 2046 sees.

use std::fs::File;

use mail_parser::MessageParser;

use super::read_span;
use crate::error::{Error, Result};

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
pub(super) fn check_boundaries(file: &File) -> Result<Vec<String>> {
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
pub(super) fn check_rebuilt(old: &[String], rebuilt: &[u8]) -> Result<()> {
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
