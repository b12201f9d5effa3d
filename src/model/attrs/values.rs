//! Parsers and the text form of scalar node attribute values: text, seconds, whole numbers,
//! paths and xattr names. A parser either returns the value or `Error::Invalid` (EINVAL), never
//! half a value, so a refused `setfattr` changes nothing.

use std::str::FromStr;

use crate::error::{Error, Result};

/// UTF-8 without control characters.
pub fn text(name: &str, value: &[u8]) -> Result<String> {
    let s = std::str::from_utf8(value).map_err(|_| Error::invalid(name, "not UTF-8"))?;
    if s.chars().any(|c| c.is_control()) {
        return Err(Error::invalid(name, "control characters are not allowed"));
    }
    Ok(s.to_string())
}

/// A list value: UTF-8 where a tab may separate entries as a space does, and no other control
/// character (CR, LF and NUL never reach a command or the node file).
pub fn list_text(name: &str, value: &[u8]) -> Result<String> {
    let s = std::str::from_utf8(value).map_err(|_| Error::invalid(name, "not UTF-8"))?;
    if s.chars().any(|c| c.is_control() && c != '\t') {
        return Err(Error::invalid(name, "control characters are not allowed"));
    }
    Ok(s.to_string())
}

/// Text where empty means unset.
pub fn optional_text(name: &str, value: &[u8]) -> Result<Option<String>> {
    let s = text(name, value)?;
    Ok(if s.is_empty() { None } else { Some(s) })
}

/// Seconds as a float; `positive` refuses zero as well.
pub fn seconds(name: &str, value: &[u8], positive: bool) -> Result<f64> {
    let s = text(name, value)?;
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| Error::invalid(name, format!("{s:?} is not a number of seconds")))?;
    if !v.is_finite() || v < 0.0 || (positive && v == 0.0) || v > 1e12 {
        return Err(Error::invalid(name, format!("{s:?} is out of range")));
    }
    Ok(v)
}

/// A whole number in `min..=max`.
pub fn integer<T: FromStr>(name: &str, value: &[u8], min: u64, max: u64) -> Result<T> {
    let s = text(name, value)?;
    let v: u64 = s
        .trim()
        .parse()
        .map_err(|_| Error::invalid(name, format!("{s:?} is not a whole number")))?;
    if v < min || v > max {
        return Err(Error::invalid(name, format!("{v} is not in {min}..={max}")));
    }
    s.trim().parse().map_err(|_| Error::invalid(name, "out of range"))
}

/// An absolute path: a relative one would depend on the directory the server runs in.
pub fn path(name: &str, value: &[u8]) -> Result<String> {
    let s = text(name, value)?;
    if !s.starts_with('/') {
        return Err(Error::invalid(name, "must be an absolute path"));
    }
    Ok(s)
}

/// An absolute path, or empty for unset.
pub fn optional_path(name: &str, value: &[u8]) -> Result<Option<String>> {
    if value.is_empty() {
        Ok(None)
    } else {
        path(name, value).map(Some)
    }
}

/// A host name or IP address, or empty for unset.
pub fn optional_host(name: &str, value: &[u8]) -> Result<Option<String>> {
    if value.is_empty() {
        Ok(None)
    } else {
        crate::model::address::validate_host(name, value).map(Some)
    }
}

/// A plain xattr name (the names a log entry's attributes get).
pub fn attr_name(name: &str, value: &[u8]) -> Result<String> {
    let s = text(name, value)?;
    if s.is_empty()
        || s.len() > 200
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
    {
        return Err(Error::invalid(
            name,
            "must be a plain xattr name (letters, digits, _ - .)",
        ));
    }
    Ok(s)
}

/// A log entry attribute's name ([`attr_name`]) that the entry's other two do not use: two
/// of them under one name would leave the entry without one of its three values (SPEC §8).
pub fn log_attr_name(name: &str, value: &[u8], others: [&String; 2]) -> Result<String> {
    let s = attr_name(name, value)?;
    if others.iter().any(|o| **o == s) {
        return Err(Error::invalid(
            name,
            format!("{s:?} already names another of a log entry's attributes"),
        ));
    }
    Ok(s)
}

/// One of `choices`, exactly (no trimming: `smtp ` is a typo, not `smtp`); its index.
pub fn choice(name: &str, value: &[u8], choices: &[&str]) -> Result<usize> {
    choices
        .iter()
        .position(|c| c.as_bytes() == value)
        .ok_or_else(|| Error::invalid(name, format!("must be {}", one_of(choices))))
}

/// `a, b or c`.
pub fn one_of(choices: &[&str]) -> String {
    match choices.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// Formats seconds the way they were most likely given: `900`, not `900.0`.
pub fn fmt_seconds(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Entries joined by `,`, the normalised form of a list value.
pub fn join<T: std::fmt::Display>(v: &[T]) -> String {
    v.iter().map(T::to_string).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalar_values() {
        assert_eq!(seconds("t", b" 0.05 ", false).unwrap(), 0.05);
        assert!(seconds("t", b"0", true).is_err());
        assert!(seconds("t", b"1e12", false).is_ok() && seconds("t", b"1.1e12", false).is_err());
        assert_eq!(integer::<u16>("p", b"65535", 1, 65535).unwrap(), 65535);
        assert!(integer::<u16>("p", b"65536", 1, 65535).is_err());
        assert!(
            integer::<u8>("p", b"300", 0, 1000).is_err(),
            "beyond the field's type"
        );
        assert_eq!(fmt_seconds(900.0), "900");
        assert_eq!(fmt_seconds(0.05), "0.05");
        assert_eq!(optional_path("d", b"").unwrap(), None);
        assert!(optional_path("d", b"rel").is_err());
        assert_eq!(optional_host("h", b"").unwrap(), None);
        assert_eq!(optional_text("u", b"bob").unwrap().as_deref(), Some("bob"));
        assert!(text("u", b"a\tb").is_err());
        assert_eq!(list_text("l", b"a\tb").unwrap(), "a\tb");
        for bad in [&b"a\nb"[..], b"a\rb", b"a\0b", b"\xff"] {
            assert!(list_text("l", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn choices_are_exact_and_named_in_the_error() {
        let c = ["may", "none", "starttls", "tls"];
        assert_eq!(choice("tls", b"starttls", &c).unwrap(), 2);
        for bad in [&b"TLS"[..], b"tls ", b"", b"ssl"] {
            let e = choice("tls", bad, &c).unwrap_err();
            assert_eq!(
                e.to_string(),
                "invalid value for tls: must be may, none, starttls or tls"
            );
        }
        assert_eq!(one_of(&["a"]), "a");
        assert_eq!(one_of(&["a", "b"]), "a or b");
        assert_eq!(join(&[1, 2, 3]), "1,2,3");
    }
}
