//! A header field set through `user.header.NAME` on a Draft's `.parts/`: checked, and for
//! the address fields read as RFC 5322 reads them.

use super::*;

/// One item of an address field set through `user.header.*`.
pub(super) enum Entry {
    One(Option<String>, String),
    /// An RFC 5322 group, kept as a group: `undisclosed-recipients:;` (no member) is how a
    /// message sent only to Bcc recipients says so.
    Group(String, Vec<(Option<String>, String)>),
}

pub(super) fn header_value(name: &str, value: &[u8]) -> Result<Value> {
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
    let member = |a: &mail_parser::Addr| -> Result<(Option<String>, String)> {
        let addr = a
            .address()
            .ok_or_else(|| Error::invalid(&what, "an address is missing"))?;
        Ok((a.name().map(str::to_string), validate_address(&what, addr)?))
    };
    let mut out = Vec::new();
    match parsed.as_ref().and_then(|m| m.parts.first()).and_then(|p| {
        p.headers
            .iter()
            .find(|h| h.name.as_str().eq_ignore_ascii_case(name))
            .map(|h| &h.value)
    }) {
        Some(HeaderValue::Address(mail_parser::Address::List(list))) => {
            for a in list {
                let (n, addr) = member(a)?;
                out.push(Entry::One(n, addr));
            }
        }
        Some(HeaderValue::Address(mail_parser::Address::Group(groups))) => {
            for g in groups {
                let members = g.addresses.iter().map(member).collect::<Result<Vec<_>>>()?;
                match g.name.as_deref() {
                    // Addresses outside any group, beside one.
                    None => out.extend(members.into_iter().map(|(n, a)| Entry::One(n, a))),
                    Some(group) => out.push(Entry::Group(group.to_string(), members)),
                }
            }
        }
        _ => {}
    }
    if out.is_empty() && !s.trim().is_empty() {
        return Err(Error::invalid(&what, format!("{s:?} is not an address list")));
    }
    Ok(Value::Addresses(out))
}
