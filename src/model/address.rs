//! Address and host validation shared by node attributes, list values, message attributes and
//! the SMTP listener: one place decides what may reach an SMTP command or a command line
//! (no CR, LF, NUL or leading `-`), so no caller can forget a rule.

use std::str::FromStr;

use crate::error::{Error, Result};

/// A host name or IP address, as a server or HELO name may be.
pub fn validate_host(name: &str, value: &[u8]) -> Result<String> {
    let s = std::str::from_utf8(value).map_err(|_| Error::invalid(name, "not UTF-8"))?;
    if s.chars().any(|c| c.is_control()) {
        return Err(Error::invalid(name, "control characters are not allowed"));
    }
    if s.parse::<std::net::IpAddr>().is_ok() {
        return Ok(s.to_string());
    }
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !ok {
        return Err(Error::invalid(
            name,
            format!("{s:?} is not a host name or IP address"),
        ));
    }
    Ok(s.to_string())
}

/// Validates one mailbox address for the envelope: it will reach an SMTP command or a command
/// line, so anything that could inject (CR, LF, NUL, a leading `-`, spaces) is refused.
pub fn validate_address(name: &str, addr: &str) -> Result<String> {
    let a = addr
        .strip_prefix('<')
        .and_then(|a| a.strip_suffix('>'))
        .unwrap_or(addr);
    if a.is_empty() {
        return Err(Error::invalid(name, "empty address"));
    }
    if a.bytes()
        .any(|b| b.is_ascii_control() || b == b' ' || b == b'<' || b == b'>')
    {
        return Err(Error::invalid(
            name,
            format!("{a:?} contains forbidden characters"),
        ));
    }
    if a.starts_with('-') {
        return Err(Error::invalid(name, format!("{a:?} starts with '-'")));
    }
    if a.len() > 320 {
        return Err(Error::invalid(name, "address longer than 320 bytes"));
    }
    let parsed = lettre::Address::from_str(a)
        .map_err(|e| Error::invalid(name, format!("{a:?} is not a valid address: {e}")))?;
    Ok(parsed.to_string())
}

/// Parses an `env_to` value: addresses separated by commas or white space.
pub fn parse_address_list(name: &str, value: &[u8]) -> Result<Vec<String>> {
    let s = std::str::from_utf8(value).map_err(|_| Error::invalid(name, "not UTF-8"))?;
    // SPEC §6: CR, LF and NUL are refused outright, even where LF could pass for white
    // space between addresses.
    if s.bytes().any(|b| b == b'\r' || b == b'\n' || b == b'\0') {
        return Err(Error::invalid(name, "CR, LF and NUL are not allowed"));
    }
    let mut out = Vec::new();
    // A set, not a scan of the list: 100,000 recipients must not cost 10^10 comparisons.
    let mut seen = std::collections::HashSet::new();
    for part in s.split(|c: char| c == ',' || c.is_whitespace()) {
        if part.is_empty() {
            continue;
        }
        let a = validate_address(name, part)?;
        if seen.insert(a.clone()) {
            out.push(a);
        }
    }
    if out.is_empty() {
        return Err(Error::invalid(name, "no recipient address"));
    }
    Ok(out)
}

pub fn parse_single_address(name: &str, value: &[u8]) -> Result<String> {
    let s = std::str::from_utf8(value).map_err(|_| Error::invalid(name, "not UTF-8"))?;
    validate_address(name, s)
}
