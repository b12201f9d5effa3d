use super::{Plain, declared_size, parse_plain};

/// Audit-11 K6: an authzid other than the authcid, and trailing NUL-separated fields,
/// were accepted.
#[test]
fn auth_plain_is_exactly_three_fields_for_oneself() {
    assert_eq!(parse_plain(b"\0alice\0pw"), Ok(("alice".into(), b"pw".to_vec())));
    assert_eq!(
        parse_plain(b"alice\0alice\0pw"),
        Ok(("alice".into(), b"pw".to_vec()))
    );
    assert_eq!(parse_plain(b"bob\0alice\0pw"), Err(Plain::OtherIdentity));
    assert_eq!(parse_plain(b"\0alice\0pw\0extra"), Err(Plain::Malformed));
    assert_eq!(parse_plain(b"\0alice"), Err(Plain::Malformed));
    assert_eq!(parse_plain(b"alice"), Err(Plain::Malformed));
    assert_eq!(parse_plain(b"\0\0pw"), Err(Plain::Malformed));
    assert_eq!(parse_plain(b"\0\xff\0pw"), Err(Plain::Malformed));
}

#[test]
fn declared_size_reads_what_the_client_wrote() {
    assert_eq!(
        declared_size(b"MAIL FROM:<a@b.c> SIZE=1000\r\n"),
        Some(Some(1000))
    );
    assert_eq!(declared_size(b"mail from:<a@b.c> size=7"), Some(Some(7)));
    assert_eq!(
        declared_size(b"MAIL FROM:<a@b.c> SIZE=99999999999999999999"),
        Some(None)
    );
    assert_eq!(
        declared_size(b"MAIL FROM:<a@b.c> SIZE=999999999999999999999\r\n"),
        Some(None)
    );
    assert_eq!(declared_size(b"MAIL FROM:<a@b.c> SIZE=abc"), None);
    assert_eq!(declared_size(b"MAIL FROM:<a@b.c>"), None);
    assert_eq!(declared_size(b"RCPT TO:<a@b.c> SIZE=1"), None);
}
