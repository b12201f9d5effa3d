//! What a session reads out of a client's words: its HELO name, AUTH PLAIN, SIZE=, which
//! commands are junk.

use super::*;

/// The client's HELO name as it may appear in a header: printable, no spaces, bounded.
pub(super) fn clean_name(s: &str) -> String {
    let s: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic() && !matches!(c, '(' | ')'))
        .take(255)
        .collect();
    if s.is_empty() { "unknown".into() } else { s }
}

/// Why an AUTH PLAIN message (RFC 4616) is refused.
#[derive(Debug, PartialEq)]
pub(super) enum Plain {
    /// Not exactly `authzid NUL authcid NUL passwd`, or a user name that is not UTF-8.
    Malformed,
    /// An authorization identity other than the authenticated one: no user may act for
    /// another here.
    OtherIdentity,
}

/// The user and password of an AUTH PLAIN message.
pub(super) fn parse_plain(raw: &[u8]) -> Result<(String, Vec<u8>), Plain> {
    let parts: Vec<&[u8]> = raw.split(|&b| b == 0).collect();
    let [authz, user, pass] = parts.as_slice() else {
        return Err(Plain::Malformed);
    };
    if user.is_empty() {
        return Err(Plain::Malformed);
    }
    if !authz.is_empty() && authz != user {
        return Err(Plain::OtherIdentity);
    }
    let user = String::from_utf8(user.to_vec()).map_err(|_| Plain::Malformed)?;
    Ok((user, pass.to_vec()))
}

/// How much of a command line is kept for [`declared_size`].
pub(super) const LINE_KEPT: usize = 4096;

/// The SIZE= parameter of a MAIL command line as the client wrote it: `None` when there is
/// none (or it is not all digits: smtp-proto refuses it), `Some(None)` when its value does not
/// fit in a u64, else `Some(Some(value))`.
pub(super) fn declared_size(line: &[u8]) -> Option<Option<u64>> {
    let line = std::str::from_utf8(line).ok()?;
    if !line.get(..4)?.eq_ignore_ascii_case("MAIL") {
        return None;
    }
    let value = line.split_ascii_whitespace().find_map(|t| {
        let (k, v) = t.split_once('=')?;
        k.eq_ignore_ascii_case("SIZE").then_some(v)
    })?;
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(value.parse::<u64>().ok())
}

/// The same mailbox: the local part as written, the domain in any case.
pub(super) fn same_address(a: &str, b: &str) -> bool {
    match (a.rsplit_once('@'), b.rsplit_once('@')) {
        (Some((la, da)), Some((lb, db))) => la == lb && da.eq_ignore_ascii_case(db),
        _ => a == b,
    }
}

/// Commands that move no message forward (counted against [`JUNK_LIMIT`]).
pub(super) fn is_junk(req: &Request<String>) -> bool {
    matches!(
        req,
        Request::Noop { .. }
            | Request::Rset
            | Request::Vrfy { .. }
            | Request::Help { .. }
            | Request::Helo { .. }
            | Request::Ehlo { .. }
    )
}
