//! Tests of composing: each rebuild compared with what the Draft held.

use super::*;

/// `msg` stored in a file, its tree built as the mount builds it, then `edit` applied.
fn compose(msg: &[u8], edit: Edit) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("d.eml");
    std::fs::write(&path, msg).expect("write the draft");
    let tree = mime::build(&path).expect("tree");
    let file = File::open(&path).expect("open the draft");
    rebuild(&tree, &file, edit, "<m@example.com>").expect("rebuild")
}

fn subject(v: &str) -> Edit {
    Edit::SetHeader {
        name: "Subject".into(),
        value: v.as_bytes().to_vec(),
    }
}

fn set(name: &str, bytes: &[u8]) -> Edit {
    Edit::SetPart {
        name: name.into(),
        bytes: bytes.to_vec(),
    }
}

/// The bytes the parts view shows for `name` in `msg`.
fn view(msg: &[u8], name: &str) -> Vec<u8> {
    let tree = mime::build_bytes(msg);
    match tree.entry(name).map(|e| &e.data) {
        Some(mime::Data::Memory(b)) => b.to_vec(),
        other => panic!("{name}: {other:?} in {}", String::from_utf8_lossy(msg)),
    }
}

fn has(msg: &[u8], what: &[u8]) -> bool {
    msg.windows(what.len()).any(|w| w == what)
}

const DRAFT: &[u8] = b"From: a@example.com\nTo: b@example.org\nSubject: d\n\nhi\n";

#[test]
fn a_text_named_file_that_is_not_utf8_is_attached_with_its_bytes() {
    // audit-6 F10: these came back with every invalid byte replaced by U+FFFD.
    let latin1 = b"caf\xe9 latin1\n";
    let blob = b"bin\x00\xff\xfe\x80data\n";
    let html = b"<p>caf\xe9</p>\n";
    let d = compose(DRAFT, set("notes.txt", latin1));
    let d = compose(&d, set("blob.txt", blob));
    let d = compose(&d, set("l1.html", html));
    let d = compose(&d, subject("again"));
    assert_eq!(view(&d, "notes.txt"), latin1);
    assert_eq!(view(&d, "blob.txt"), blob);
    assert_eq!(view(&d, "l1.html"), html);
    let octets = d.windows(24).filter(|w| w == b"application/octet-stream").count();
    assert_eq!(octets, 3, "no text type (and so no charset) is claimed for them");
    assert!(has(
        &d,
        b"Content-Type: application/octet-stream\nContent-Disposition: attachment; filename=\"notes.txt\""
    ));
}

#[test]
fn untouched_8bit_bodies_and_header_fields_keep_their_bytes() {
    // audit-6 F10b: an edit of the Subject rewrote these with U+FFFD.
    let d = compose(
        b"From: a@example.com\nTo: b@example.org\nSubject: rawlatin\n\ncaf\xe9 cr\xe8me\n",
        subject("rawlatin2"),
    );
    assert!(
        d.ends_with(b"\n\ncaf\xe9 cr\xe8me\n"),
        "{}",
        String::from_utf8_lossy(&d)
    );
    assert!(has(&d, b"Subject: rawlatin2\n"));
    let d = compose(
        b"From: a@example.com\nTo: b@example.org\nSubject: caf\xe9 raw\nX-Note: na\xefve\n \
              folded\n\nbody\n",
        Edit::SetHeader {
            name: "To".into(),
            value: b"c@example.org".to_vec(),
        },
    );
    assert!(
        has(&d, b"\nSubject: caf\xe9 raw\nX-Note: na\xefve\n folded\n"),
        "{}",
        String::from_utf8_lossy(&d)
    );
    assert!(has(&d, b"\nTo: <c@example.org>\n") || has(&d, b"\nTo: c@example.org\n"));
    assert!(d.ends_with(b"\n\nbody\n"));
}

const L1A: &[u8] = b"From: a@example.com\nTo: b@example.org\nSubject: l1att\nMIME-Version: 1.0\n\
Content-Type: multipart/mixed; boundary=B\n\n--B\nContent-Type: text/plain; charset=utf-8\n\nbody\n\
--B\nContent-Type: text/plain; charset=iso-8859-1\nContent-Disposition: attachment; filename=\"notes.txt\"\n\
Content-Transfer-Encoding: quoted-printable\n\ncaf=E9\n--B\nContent-Type: text/plain; charset=utf-16\n\
Content-Disposition: attachment; filename=\"jp.txt\"\nContent-Transfer-Encoding: base64\n\n//4hMA==\n--B--\n";

#[test]
fn untouched_text_attachments_keep_their_bytes_and_charset() {
    // audit-6 F11: they were converted to UTF-8 and lost their charset parameter.
    let d = compose(L1A, subject("l1att2"));
    let latin1 = b"\nContent-Type: text/plain; charset=iso-8859-1\nContent-Disposition: attachment; \
filename=\"notes.txt\"\nContent-Transfer-Encoding: quoted-printable\n\ncaf=E9\n--";
    assert!(has(&d, latin1), "{}", String::from_utf8_lossy(&d));
    let utf16 = b"\nContent-Type: text/plain; charset=utf-16\nContent-Disposition: attachment; \
filename=\"jp.txt\"\nContent-Transfer-Encoding: base64\n\n//4hMA==\n--";
    assert!(has(&d, utf16), "{}", String::from_utf8_lossy(&d));
    // And after a part is removed too.
    let d = compose(&d, Edit::RemovePart("jp.txt".into()));
    assert!(has(&d, latin1));
    assert_eq!(
        view(&d, "notes.txt"),
        "café".as_bytes(),
        "the last line end is the boundary's"
    );
}

#[test]
fn a_utf8_text_file_copied_in_says_charset_utf8_when_not_ascii() {
    // audit-6 F11: a non-ASCII UTF-8 text attachment was sent without a charset (US-ASCII).
    let d = compose(DRAFT, set("u8notes.txt", "grüße utf8\n".as_bytes()));
    let d = compose(&d, set("plain.txt", b"ascii only\n"));
    assert!(has(&d, b"Content-Type: text/plain; charset=\"utf-8\"\nContent-Disposition: attachment; filename=\"u8notes.txt\""),
            "{}", String::from_utf8_lossy(&d));
    assert!(has(
        &d,
        b"Content-Type: text/plain\nContent-Disposition: attachment; filename=\"plain.txt\""
    ));
    assert_eq!(view(&d, "u8notes.txt"), "grüße utf8\n".as_bytes());
}

const FWD: &[u8] = b"From: x@example.com\nTo: y@example.org\nSubject: fwd\n\nforwarded body\n";

/// The subject of the attached message `name` as a standard parser reads `msg`.
fn attached_subject(msg: &[u8], name: &str) -> Option<String> {
    let m = MessageParser::default().parse(msg)?;
    let part = m
        .attachments()
        .find(|p| mail_parser::MimeHeaders::attachment_name(*p) == Some(name))?;
    match &part.body {
        mail_parser::PartType::Message(inner) => inner.subject().map(str::to_string),
        _ => None,
    }
}

#[test]
fn attached_messages_are_sent_7bit_or_8bit_never_base64() {
    // audit-6 F6: RFC 2046 §5.2.1 allows only 7bit, 8bit or binary for message/rfc822.
    let d = compose(DRAFT, set("attached.eml", FWD));
    assert!(
        has(
            &d,
            b"filename=\"attached.eml\"\nContent-Transfer-Encoding: 7bit\n\nFrom: x@example.com\n"
        ),
        "{}",
        String::from_utf8_lossy(&d)
    );
    let eight = "From: x@example.com\nSubject: grüße\n\ncafé\n".as_bytes();
    let d = compose(&d, set("eight.eml", eight));
    assert!(has(
        &d,
        b"filename=\"eight.eml\"\nContent-Transfer-Encoding: 8bit\n"
    ));
    // An attached message the edit does not touch stays as it was.
    let d = compose(&d, subject("again"));
    assert!(!has(&d, b"base64"), "{}", String::from_utf8_lossy(&d));
    assert_eq!(attached_subject(&d, "attached.eml").as_deref(), Some("fwd"));
    assert_eq!(view(&d, "eight.eml"), eight);
}

#[test]
fn an_attached_message_name_leaves_room_for_its_parts_directory() {
    // audit-6 F16: the view would cut such a name, so the part would not be where written.
    let long = format!("{}.eml", "é".repeat(123));
    assert_eq!(long.len(), 250);
    let e = check_part_name(&long).unwrap_err();
    assert_eq!(e.errno(), libc::ENAMETOOLONG);
    check_part_name(&format!("{}.eml", "b".repeat(245))).expect("249 bytes is a name");
    check_part_name(&format!("{}.pdf", "b".repeat(251))).expect("255 bytes for other parts");
}

const TREE: &str = "From: a@example.com\nTo: b@example.org\nSubject: tree\nMIME-Version: 1.0\n\
Content-Type: multipart/mixed; boundary=\"OUT\"\n\n--OUT\n\
Content-Type: text/plain; charset=utf-8; format=flowed\nContent-Language: fr\n\nsoft \nbreak\n--OUT\n\
Content-Type: application/pdf\nContent-Transfer-Encoding: base64\n\nJVBERi0=\n--OUT\n\
Content-Type: text/plain\n\nsecond unnamed text\n--OUT\n\
Content-Type: application/octet-stream; name=\"Body.txt\"\n\
Content-Disposition: attachment; filename=\"Body.txt\"\n\nattachment called Body.txt\n--OUT\n\
Content-Type: application/octet-stream\nContent-Disposition: attachment; filename=\"..\"\n\ndotdot\n--OUT\n\
Content-Type: application/octet-stream\nContent-Disposition: attachment; filename=\"a/b.txt\"\n\nslash\n--OUT\n\
Content-Type: application/pdf\nContent-Disposition: attachment; filename=\"a.pdf\"\n\none\n--OUT\n\
Content-Type: application/pdf\nContent-Disposition: attachment; filename=\"a.pdf\"\n\ntwo\n--OUT\n\
Content-Type: image/png\nContent-ID: <logo@x>\nContent-Transfer-Encoding: base64\n\niVBORw0KGgo=\n--OUT\n\
Content-Type: message/rfc822\nContent-Disposition: attachment; filename=\"fwd.eml\"\n\n\
From: inner@example.com\nSubject: inner\n\ninner text\n--OUT\n\
Content-Type: message/rfc822\n\nFrom: noname@example.com\nSubject: unnamed\n\nunnamed msg body\n--OUT--\n";

#[test]
fn untouched_parts_keep_their_names_dispositions_and_parameters() {
    // audit-6 F7: a Subject edit renamed parts to their view names ("Body (2).txt",
    // "a (2).pdf", "a_b.txt", "part-8.bin"), gave unnamed parts invented file names and
    // dispositions, and dropped format=flowed and Content-Language.
    let d = compose(TREE.as_bytes(), subject("tree2"));
    let out = String::from_utf8_lossy(&d);
    let body = TREE.split("\n\n").skip(1).collect::<Vec<_>>().join("\n\n");
    let parts: Vec<&str> = body.split("--OUT\n").skip(1).collect();
    assert_eq!(parts.len(), 11);
    for p in parts {
        let p = p.trim_end_matches("--OUT--\n");
        let p = p.strip_suffix('\n').unwrap_or(p);
        assert!(out.contains(&format!("\n{p}\n--")), "{p:?} not in\n{out}");
    }
    for invented in ["part-", "(2)", "a_b.txt", "filename=\"Body.txt\"\n\n\n"] {
        assert!(!out.contains(invented), "{invented} in\n{out}");
    }
    assert_eq!(out.matches("filename=").count(), 6, "no name invented");
    // A message of one part keeps its parameters and Content-* fields too, also once it
    // becomes the body of several parts.
    let one = "From: a@example.com\nSubject: ff\nMIME-Version: 1.0\n\
                   Content-Type: text/plain; charset=utf-8; format=flowed\nContent-Language: fr\n\n\
                   soft \nbreak\n";
    let fields = "Content-Type: text/plain; charset=utf-8; format=flowed\nContent-Language: fr\n\n";
    let d = compose(one.as_bytes(), subject("x"));
    assert!(
        has(&d, format!("{fields}soft \nbreak\n").as_bytes()),
        "{}",
        String::from_utf8_lossy(&d)
    );
    let d = compose(&d, set("data.bin", b"\x00\x01"));
    assert!(
        has(&d, format!("\n{fields}soft \nbreak\n\n--").as_bytes()),
        "{}",
        String::from_utf8_lossy(&d)
    );
}

#[test]
fn digest_members_stay_messages() {
    // audit-6 F13: the members of a multipart/digest (message/rfc822 by default) were shown
    // as text/plain `part-1.txt.eml` and composed into text/plain attachments.
    let dg = b"From: a@example.com\nTo: b@example.org\nSubject: digest\nMIME-Version: 1.0\n\
Content-Type: multipart/digest; boundary=D\n\n--D\n\nFrom: one@example.com\nSubject: first\n\n\
first body\n--D\n\nFrom: two@example.com\nSubject: second\n\nsecond body\n--D--\n";
    let tree = mime::build_bytes(dg);
    let names: Vec<(&str, &str)> = tree
        .entries
        .iter()
        .map(|e| (e.name.as_str(), e.info.content_type.as_str()))
        .collect();
    assert_eq!(
        names,
        [("part-1.eml", "message/rfc822"), ("part-2.eml", "message/rfc822")]
    );
    let d = compose(dg, subject("digest2"));
    assert!(
        has(
            &d,
            b"\nContent-Type: message/rfc822\n\nFrom: one@example.com\nSubject: first\n"
        ),
        "{}",
        String::from_utf8_lossy(&d)
    );
    assert!(!has(&d, b"text/plain"));
    let m = MessageParser::default().parse(&d[..]).expect("parses");
    let subjects: Vec<&str> = m
        .attachments()
        .filter_map(|p| match &p.body {
            mail_parser::PartType::Message(inner) => inner.subject(),
            _ => None,
        })
        .collect();
    assert_eq!(subjects, ["first", "second"]);
}

/// Audit-8 A1: a boundary string inside a line (`see the --BND marker`) made the parser cut
/// the body there, and composing then broke the structure (the attachment ended up in a
/// headerless part). Such a Draft is refused for composing; nothing is rebuilt.
#[test]
fn a_boundary_inside_a_line_refuses_composing() {
    let msg = b"From: a@example.com\nTo: b@example.org\nSubject: mid\nMIME-Version: 1.0\n\
Content-Type: multipart/mixed; boundary=\"BND\"\n\n--BND\nContent-Type: text/plain; charset=utf-8\n\n\
see the --BND marker mid-line, and more text\nsecond line\n--BND\n\
Content-Type: application/octet-stream; name=\"a.bin\"\nContent-Disposition: attachment; filename=\"a.bin\"\n\
Content-Transfer-Encoding: base64\n\nAAECAw==\n--BND--\n";
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("d.eml");
    std::fs::write(&path, msg).expect("write the draft");
    let tree = mime::build(&path).expect("tree");
    let file = File::open(&path).expect("open the draft");
    let err = rebuild(&tree, &file, subject("x"), "<m@example.com>").expect_err("refused");
    assert_eq!(err.errno(), libc::EINVAL, "{err}");
    // A boundary only at line starts composes as before.
    let ok = String::from_utf8_lossy(msg).replace("the --BND marker", "the -BND marker");
    let ok = ok.as_bytes();
    let d = compose(ok, subject("x"));
    assert!(
        has(&d, b"see the -BND marker mid-line, and more text"),
        "{}",
        String::from_utf8_lossy(&d)
    );
    assert!(has(&d, b"filename=\"a.bin\""));
}

/// Audit-8 A6: a message with no MIME fields and a UTF-8 body got a bare
/// `Content-Type: text/plain` (US-ASCII) when composed; it says charset="utf-8" now.
#[test]
fn an_unlabelled_utf8_body_says_utf8_when_composed() {
    let d = compose(
        "From: a@example.com\nTo: b@example.org\nSubject: r\n\ncaf\u{e9} cr\u{e8}me\n".as_bytes(),
        subject("r2"),
    );
    assert!(
        has(&d, b"Content-Type: text/plain; charset=\"utf-8\""),
        "{}",
        String::from_utf8_lossy(&d)
    );
    assert!(has(&d, "caf\u{e9} cr\u{e8}me".as_bytes()));
}

/// Audit-8 A5: a part with fields and no blank line (`Content-Type: text/plain` right
/// before the next delimiter) took the next part into its header block when composed,
/// leaving the old delimiter line in what is sent. The rebuild is refused instead.
#[test]
fn a_rebuild_that_would_leave_an_old_delimiter_is_refused() {
    let msg = b"From: a@example.com\nTo: b@example.org\nSubject: odd\nMIME-Version: 1.0\n\
Content-Type: multipart/mixed; boundary=\"K\"\n\n--K\n\nno headers part\n--K\nContent-Type: text/plain\n\
--K\nContent-Type: text/plain; charset=utf-8\n\nlast\n--K--\n";
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("d.eml");
    std::fs::write(&path, msg).expect("write the draft");
    let tree = mime::build(&path).expect("tree");
    let file = File::open(&path).expect("open the draft");
    let got = rebuild(&tree, &file, subject("changed"), "<m@example.com>");
    assert!(
        got.is_err(),
        "composed: {:?}",
        got.as_ref().map(|d| String::from_utf8_lossy(d).into_owned())
    );
    if let Ok(d) = got {
        // If it composes, it must not carry the old delimiter.
        assert!(!has(&d, b"\n--K\n"), "{}", String::from_utf8_lossy(&d));
    }
}

/// Audit-8 A8: the rebuilt multipart/related said no `type=` (RFC 2387 §3.1 requires it).
#[test]
fn a_related_part_says_the_type_of_its_root() {
    let msg = b"From: a@example.com\nTo: b@example.org\nSubject: rel\nMIME-Version: 1.0\n\
Content-Type: multipart/related; boundary=\"R\"; type=\"text/html\"\n\n--R\n\
Content-Type: text/html; charset=utf-8\n\n<p><img src=\"cid:i1\"></p>\n--R\n\
Content-Type: image/png\nContent-ID: <i1>\nContent-Disposition: inline\nContent-Transfer-Encoding: base64\n\n\
iVBORw0KGgo=\n--R--\n";
    let d = compose(msg, subject("rel2"));
    let out = String::from_utf8_lossy(&d);
    let at = out.find("multipart/related").expect("a related part");
    let field: String = out[at..].split("\n\n").next().unwrap_or_default().to_string();
    assert!(field.contains("type=\"text/html\""), "{out}");
}

/// Audit-8 A9: an invitation (text/plain, text/html and text/calendar as alternatives) came
/// out of a Subject edit with its calendar moved beside the body in a multipart/mixed, where a
/// reader shows it in addition. The other versions of the body stay in the alternative.
#[test]
fn every_version_of_the_body_stays_in_the_alternative() {
    let msg = b"From: a@example.com\nTo: b@example.org\nSubject: invite\nMIME-Version: 1.0\n\
Content-Type: multipart/alternative; boundary=\"IV\"\n\n--IV\nContent-Type: text/plain; charset=utf-8\n\n\
Meeting at 10\n--IV\nContent-Type: text/html; charset=utf-8\n\n<p>Meeting at 10</p>\n--IV\n\
Content-Type: text/calendar; charset=utf-8; method=REQUEST\nContent-Transfer-Encoding: 7bit\n\n\
BEGIN:VCALENDAR\nMETHOD:REQUEST\nEND:VCALENDAR\n--IV--\n";
    let d = compose(msg, subject("invite2"));
    let out = String::from_utf8_lossy(&d);
    assert!(!out.contains("multipart/mixed"), "{out}");
    let m = mail_parser::MessageParser::default()
        .parse(&d[..])
        .expect("parses");
    let types: Vec<String> = m
        .parts
        .iter()
        .filter_map(|p| mail_parser::MimeHeaders::content_type(p))
        .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or_default()))
        .collect();
    assert_eq!(
        types,
        [
            "multipart/alternative",
            "text/plain",
            "text/html",
            "text/calendar"
        ],
        "{out}"
    );
    assert!(
        out.contains("method=REQUEST\nContent-Transfer-Encoding: 7bit\n\nBEGIN:VCALENDAR"),
        "{out}"
    );
    // Copied in by the user, a file is an attachment beside the body, as before.
    let d = compose(&d, set("notes.txt", b"x\n"));
    assert!(String::from_utf8_lossy(&d).contains("multipart/mixed"));
}

/// Audit-8 A3: a file named *.eml that is not a message (NUL, a bare CR, no line ends) went as
/// message/rfc822 8bit, which it cannot be; it goes as octet-stream, base64, byte for byte.
#[test]
fn a_file_named_eml_that_is_no_message_goes_as_bytes() {
    let junk: &[u8] = b"\x00\x01junk\rmore\x00bytes";
    let d = compose(DRAFT, set("junk.eml", junk));
    let out = String::from_utf8_lossy(&d);
    assert!(!out.contains("message/rfc822"), "{out}");
    assert!(has(&d, b"Content-Type: application/octet-stream"), "{out}");
    assert!(has(&d, b"Content-Transfer-Encoding: base64"), "{out}");
    assert_eq!(view(&d, "junk.eml"), junk);
}

/// The boundary check read the whole `.eml` into memory before the compose limit was
/// checked: a Draft of any size was loaded whole by one `setfattr` on its `.parts/`. The
/// limit comes first (EFBIG), whatever else the Draft holds.
#[test]
fn a_draft_over_the_compose_limit_is_refused_before_it_is_read_whole() {
    let mut msg = b"From: a@example.com\nTo: b@example.org\nSubject: big\nMIME-Version: 1.0\n\
Content-Type: multipart/mixed; boundary=\"B\"\n\n--B\nContent-Type: text/plain\n\nsee --B here\n"
        .to_vec();
    let line = [b'x'; 1000];
    while msg.len() < 65 * 1024 * 1024 {
        msg.extend_from_slice(&line);
        msg.push(b'\n');
    }
    msg.extend_from_slice(b"--B--\n");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("d.eml");
    std::fs::write(&path, &msg).expect("write the draft");
    let tree = mime::build(&path).expect("tree");
    let file = File::open(&path).expect("open the draft");
    let err = rebuild(&tree, &file, subject("x"), "<m@example.com>").expect_err("refused");
    assert_eq!(err.errno(), libc::EFBIG, "{err}");
}

/// A group in an address field (`undisclosed-recipients:;`, a message sent only to Bcc
/// recipients, or a named group of members) is written as a group; its members are still
/// validated, and a bare word is still no address list.
#[test]
fn an_address_group_can_be_set_as_a_header() {
    let msg = b"From: a@example.com\nTo: b@example.com\nSubject: s\n\nbody\n";
    let set_to = |v: &str| Edit::SetHeader {
        name: "To".into(),
        value: v.as_bytes().to_vec(),
    };
    let out = compose(msg, set_to("undisclosed-recipients:;"));
    let parsed = MessageParser::default().parse(&out).expect("parse");
    let groups = parsed.to().and_then(|a| a.as_group()).expect("a group");
    assert_eq!(groups.len(), 1, "{}", String::from_utf8_lossy(&out));
    assert_eq!(groups[0].name.as_deref(), Some("undisclosed-recipients"));
    assert!(groups[0].addresses.is_empty());
    let out = compose(
        msg,
        set_to("Team: x@example.com, \"Y Z\" <y@example.com>;, w@example.com"),
    );
    let parsed = MessageParser::default().parse(&out).expect("parse");
    let to = parsed.to().expect("To");
    let addrs: Vec<_> = to.iter().filter_map(|a| a.address()).collect();
    assert_eq!(addrs, ["x@example.com", "y@example.com", "w@example.com"]);
    assert!(
        has(&out, b"\"Team\": <x@example.com>"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    for bad in ["Team: x@example.com, -bad@example.com;", "nobody"] {
        assert!(header_value("To", bad.as_bytes()).is_err(), "{bad}");
    }
}
