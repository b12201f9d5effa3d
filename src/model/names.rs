//! Which names the node root accepts beyond what POSIX does (SPEC §2): names are shown in
//! shells, logs and `mailfs queue`, so none carries a control character; a message's name
//! leaves room for its `.parts` companion.

use std::io;

use crate::error::{Error, Result};

/// The longest message name: `X.eml.parts` must fit in a 255-byte file name too. A longer
/// name ending in `.eml` is refused (ENAMETOOLONG), never taken as a scratch file.
pub const MAX_MESSAGE_NAME: usize = 255 - ".parts".len();

/// Refuses a root name with a control character (EINVAL) and a `.eml` name too long for its
/// `.parts` directory to exist (ENAMETOOLONG): such a name would silently become a scratch
/// file, never a message.
pub fn check_root_name(name: &str) -> Result<()> {
    if name.chars().any(char::is_control) {
        return Err(Error::invalid(
            "name",
            format!("{name:?}: names cannot hold control characters"),
        ));
    }
    if name.ends_with(".eml") && name.len() > MAX_MESSAGE_NAME {
        // At most MAX_MESSAGE_NAME bytes: its .parts must fit in a file name too.
        return Err(Error::Io(io::Error::from_raw_os_error(libc::ENAMETOOLONG)));
    }
    Ok(())
}

/// `s` cut to at most `max` bytes, at a character boundary.
pub fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_long_message_names_are_refused() {
        assert_eq!(check_root_name("a\nb.eml").unwrap_err().errno(), libc::EINVAL);
        assert_eq!(check_root_name("a\u{7}.txt").unwrap_err().errno(), libc::EINVAL);
        let long = format!("{}.eml", "x".repeat(251));
        assert_eq!(check_root_name(&long).unwrap_err().errno(), libc::ENAMETOOLONG);
        let fits = format!("{}.eml", "x".repeat(MAX_MESSAGE_NAME - 4));
        assert!(check_root_name(&fits).is_ok());
        assert!(check_root_name(&"y".repeat(255)).is_ok());
    }
}
