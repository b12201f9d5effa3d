//! Issue 3: the MIME parts view (SPEC §2) and composing a Draft by parts (SPEC §5), checked
//! against Python's `email` package as an independent MIME implementation.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// Compares every part file under a `.parts` directory with Python's decoding of the same
/// message (tests/corpus/expect.py), recursing into attached messages. Prints one line per
/// part: `ok ID NAME`, `DIFF ID NAME`, `MISSING ID NAME`, or `RAW NAME` for raw.eml.
const COMPARE: &str = r#"
cmpdir() {
  for p in "$1"/*; do
    [ -d "$p" ] && continue
    id=$(getfattr --only-values -n user.part_id "$p" 2>/dev/null)
    if [ -z "$id" ]; then echo "RAW $(basename "$p")"; continue; fi
    if [ -d "$p.parts" ]; then cmpdir "$p.parts" "$2/$id.parts"; continue; fi
    if [ ! -f "$2/$id" ]; then echo "MISSING $id $(basename "$p")"; continue; fi
    cmp -s "$p" "$2/$id" && echo "ok $id $(basename "$p")" || echo "DIFF $id $(basename "$p")"
  done
}
"#;

fn expect(m: &Mount, name: &str) -> PathBuf {
    let out = m.tmp.path().join("expect").join(name);
    let st = Command::new("timeout")
        .arg("20")
        .arg("python3")
        .arg(corpus().join("expect.py"))
        .arg(corpus().join(name))
        .arg(&out)
        .status()
        .expect("python3");
    assert!(st.success(), "expect.py {name}");
    out
}

fn corpus_names() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(corpus())
        .expect("corpus")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".eml"))
        .collect();
    v.sort();
    v
}

#[test]
fn corpus_decodes_as_python_does_byte_for_byte() {
    let m = Mount::new(&[]);
    let names = corpus_names();
    assert!(names.len() >= 12, "corpus: {names:?}");
    let mut parts_seen = 0;
    for name in &names {
        m.ok(&format!("cp {} {name}", corpus().join(name).display()));
        let exp = expect(&m, name);
        let out = m.ok(&format!("{COMPARE}\ncmpdir {name}.parts {}", exp.display()));
        let lines: Vec<&str> = out.lines().collect();
        assert!(!lines.is_empty(), "{name}: no parts shown");
        for l in &lines {
            assert!(
                l.starts_with("ok ") || (name == "garbage.eml" && *l == "RAW raw.eml"),
                "{name}: {l}\n{out}"
            );
        }
        parts_seen += lines.len();
        // Every leaf Python finds is shown, and nothing else.
        let expected = Command::new("find")
            .arg(&exp)
            .args(["-type", "f", "!", "-name", "subject"])
            .output()
            .expect("find");
        let n_expected = String::from_utf8_lossy(&expected.stdout).lines().count();
        if name != "garbage.eml" {
            assert_eq!(lines.len(), n_expected, "{name}: {out}");
            let subject = std::fs::read_to_string(exp.join("subject")).expect("subject");
            assert_eq!(
                m.ok(&format!(
                    "getfattr --only-values -n user.header.subject {name}.parts"
                )),
                subject,
                "{name}"
            );
        }
    }
    assert!(parts_seen >= 25, "{parts_seen}");
}

#[test]
fn names_are_what_a_client_shows_and_hostile_names_cannot_escape() {
    let m = Mount::new(&[]);
    for n in [
        "mixed.eml",
        "related.eml",
        "nested.eml",
        "same-names.eml",
        "hostile-names.eml",
    ] {
        m.ok(&format!("cp {} {n}", corpus().join(n).display()));
    }
    let ls = |d: &str| -> Vec<String> {
        let mut v: Vec<String> = m.ok(&format!("ls -A {d}")).lines().map(str::to_string).collect();
        v.sort();
        v
    };
    assert_eq!(ls("mixed.eml.parts"), ["Body.txt", "Q3 report.pdf", "data.csv"]);
    assert_eq!(ls("related.eml.parts"), ["Body.html", "Body.txt", "logo.png"]);
    assert_eq!(ls("nested.eml.parts"), ["Body.txt", "fwd.eml", "fwd.eml.parts"]);
    assert_eq!(ls("nested.eml.parts/fwd.eml.parts"), ["Body.txt", "inner.bin"]);
    assert_eq!(
        ls("same-names.eml.parts"),
        ["Body.txt", "notes (2).txt", "notes.txt"]
    );
    assert_eq!(m.ok("cat same-names.eml.parts/notes.txt"), "first notes\n");
    assert_eq!(m.ok("cat 'same-names.eml.parts/notes (2).txt'"), "second notes\n");

    let hostile = ls("hostile-names.eml.parts");
    assert_eq!(hostile.len(), 6, "{hostile:?}");
    for n in &hostile {
        assert!(n.len() <= 255, "{n}");
        assert!(
            !n.starts_with('.') && !n.contains("..") && !n.contains('/'),
            "{n}"
        );
        assert!(!n.chars().any(char::is_control), "{n:?}");
    }
    for want in ["_._etc_passwd", "dir_inner.txt", "hidden", "nulbytebell.txt"] {
        assert!(hostile.iter().any(|n| n == want), "{want} not in {hostile:?}");
    }
    let long = hostile.iter().find(|n| n.starts_with("LLL")).expect("long name");
    assert_eq!(long.len(), 255);
    assert!(long.ends_with(".pdf"));
    // As sent, the name is kept in user.filename.
    assert_eq!(
        m.attr("hostile-names.eml.parts/_._etc_passwd", "filename"),
        "../../etc/passwd"
    );
    // Nothing was created outside the mount.
    assert!(!m.tmp.path().join("etc").exists());
}

#[test]
fn part_and_header_attributes() {
    let m = Mount::new(&[]);
    for n in ["mixed.eml", "related.eml", "latin1.eml", "encoded-names.eml"] {
        m.ok(&format!("cp {} {n}", corpus().join(n).display()));
    }
    let pdf = "mixed.eml.parts/Q3 report.pdf";
    assert_eq!(m.attr(pdf, "content_type"), "application/pdf");
    assert_eq!(m.attr(pdf, "filename"), "Q3 report.pdf");
    assert_eq!(m.attr(pdf, "disposition"), "attachment");
    assert_eq!(m.attr(pdf, "part_id"), "2");
    let size = m.attr(pdf, "size");
    assert_eq!(m.ok(&format!("stat -c %s '{pdf}'")).trim(), size);
    assert_eq!(m.ok(&format!("wc -c < '{pdf}'")).trim(), size);
    assert_eq!(m.attr("related.eml.parts/logo.png", "content_id"), "logo@x");
    assert_eq!(m.attr("related.eml.parts/logo.png", "part_id"), "2.2");
    assert_eq!(m.attr("latin1.eml.parts/Body.txt", "charset"), "iso-8859-1");
    assert_eq!(
        m.ok("cat latin1.eml.parts/Body.txt"),
        "Grüße aus Köln, à bientôt.\n"
    );
    assert_eq!(
        m.attr("encoded-names.eml.parts/résumé été.txt", "filename"),
        "résumé été.txt"
    );
    // Headers on the directory, decoded, lowercase names.
    assert_eq!(
        m.attr("mixed.eml.parts", "header.from"),
        "Alice <alice@example.com>"
    );
    assert_eq!(
        m.attr("mixed.eml.parts", "header.message-id"),
        "<corpus@example.com>"
    );
    let listed = m.ok("getfattr -d -m - mixed.eml.parts");
    assert!(listed.contains("user.header.subject=\"mixed\""), "{listed}");
    // Unknown attributes: ENODATA; parts' attributes are not writable.
    let e = m.fails(&format!("getfattr -n user.nope '{pdf}'"));
    assert!(e.contains("No such attribute"), "{e}");
    let e = m.fails(&format!("setfattr -n user.content_type -v text/plain '{pdf}'"));
    assert!(e.contains("Operation not permitted"), "{e}");
}

#[test]
fn tools_see_decoded_sizes_cp_tar_and_rsync_style_copies_work() {
    let m = Mount::new(&[]);
    m.ok(&format!("cp {} mixed.eml", corpus().join("mixed.eml").display()));
    let exp = expect(&m, "mixed.eml");
    let out = m.tmp.path().join("copy");
    m.ok(&format!("cp -r mixed.eml.parts {}", out.display()));
    assert_eq!(
        std::fs::read(out.join("Q3 report.pdf")).unwrap(),
        std::fs::read(exp.join("2")).unwrap()
    );
    let tar = m.ok("tar cf - mixed.eml.parts | tar tvf -");
    assert!(tar.contains("Q3 report.pdf"), "{tar}");
    let ls = m.ok("ls -l mixed.eml.parts/data.csv");
    assert!(ls.contains(" 14 "), "{ls}");
}

#[test]
fn unparseable_messages_keep_their_bytes() {
    let m = Mount::new(&[]);
    m.ok(&format!(
        "cp {} garbage.eml",
        corpus().join("garbage.eml").display()
    ));
    assert_eq!(m.ok("ls garbage.eml.parts"), "raw.eml\n");
    m.ok(&format!(
        "cmp garbage.eml.parts/raw.eml {}",
        corpus().join("garbage.eml").display()
    ));
    assert!(m.attr("garbage.eml.parts", "parse_error").contains("no header"));
    // An empty message, too.
    m.ok("touch empty.eml && truncate -s 0 empty.eml");
    assert_eq!(m.ok("ls empty.eml.parts"), "raw.eml\n");
    assert_eq!(m.ok("stat -c %s empty.eml.parts/raw.eml"), "0\n");
    assert_eq!(m.attr("empty.eml.parts", "parse_error"), "empty message");
    // Composing is refused, the bytes stay.
    let e = m.fails("echo hi > garbage.eml.parts/Body.txt");
    assert!(e.contains("Invalid argument"), "{e}");
    m.ok(&format!(
        "cmp garbage.eml {}",
        corpus().join("garbage.eml").display()
    ));
}

#[test]
fn a_changed_message_shows_its_new_parts() {
    let m = Mount::new(&[]);
    m.ok(&format!("cp {} x.eml", corpus().join("plain.eml").display()));
    assert_eq!(m.ok("ls x.eml.parts"), "Body.txt\n");
    m.ok(&format!("cp {} x.eml", corpus().join("mixed.eml").display()));
    assert_eq!(m.ok("ls x.eml.parts | wc -l"), "3\n");
    m.ok("sed -i 's/^Subject: mixed/Subject: edited/' x.eml");
    assert_eq!(m.attr("x.eml.parts", "header.subject"), "edited");
    m.ok("mv x.eml y.eml");
    assert!(m.ok("ls").contains("y.eml.parts"));
    assert!(!m.ok("ls").contains("x.eml.parts"));
    m.ok("rm y.eml");
    m.fails("ls y.eml.parts");
}

/// Parses a message with Python's `email` and prints what a reader of it would check.
const PY_READ: &str = r#"
import sys, json
from email import policy
from email.parser import BytesParser
m = BytesParser(policy=policy.default).parse(open(sys.argv[1], 'rb'))
def addrs(h):
    return [a.addr_spec for a in m[h].addresses] if m[h] else []
body = m.get_body(('plain',))
html = m.get_body(('html',))
out = {
  'subject': str(m['subject']),
  'to': addrs('to'), 'cc': addrs('cc'), 'bcc': addrs('bcc'),
  'to_names': [a.display_name for a in m['to'].addresses] if m['to'] else [],
  'message_id': str(m['message-id']), 'date': str(m['date']),
  'x_ticket': str(m['x-ticket']),
  'text': body.get_content() if body else None,
  'html': html.get_content() if html else None,
  'attachments': {a.get_filename(): a.get_payload(decode=True).hex() for a in m.iter_attachments()},
}
print(json.dumps(out))
"#;

fn py_read(path: &Path) -> serde_json::Value {
    let o = Command::new("timeout")
        .args(["20", "python3", "-c", PY_READ])
        .arg(path)
        .output()
        .expect("python3");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("json")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn a_draft_composed_with_echo_cp_rm_mv_and_setfattr_round_trips_through_python() {
    let m = Mount::new(&[]);
    let bin: Vec<u8> = (0..5000u32).map(|i| (i * 31 % 251) as u8).collect();
    let src = m.tmp.path().join("chart.png");
    std::fs::write(&src, &bin).unwrap();
    let notes = m.tmp.path().join("notes.txt");
    std::fs::write(&notes, "line one\nline two\n").unwrap();

    m.ok("touch d.eml");
    let id_before = m.attr("d.eml.parts", "header.message-id");
    let date_before = m.attr("d.eml.parts", "header.date");
    m.ok("echo 'Hello Bob,' > d.eml.parts/Body.txt && echo 'Second line — ünïcode.' >> d.eml.parts/Body.txt");
    m.ok("echo '<p>Hello <b>Bob</b></p>' > d.eml.parts/Body.html");
    m.ok(&format!("cp {} {} d.eml.parts/", src.display(), notes.display()));
    m.ok("setfattr -n user.header.subject -v 'Réunion: Q3 résultats 📈' d.eml.parts");
    m.ok("setfattr -n user.header.to -v 'Bob Smith <bob@example.org>, carol@example.net' d.eml.parts");
    m.ok("setfattr -n user.header.cc -v 'dave@example.com' d.eml.parts");
    m.ok("setfattr -n user.header.bcc -v 'eve@example.com' d.eml.parts");
    m.ok("setfattr -n user.header.x-ticket -v 'T-42' d.eml.parts");
    m.ok("mv d.eml.parts/notes.txt d.eml.parts/minutes.txt");

    let mut ls: Vec<String> = m.ok("ls d.eml.parts").lines().map(str::to_string).collect();
    ls.sort();
    assert_eq!(ls, ["Body.html", "Body.txt", "chart.png", "minutes.txt"]);
    assert_eq!(
        m.ok("cat d.eml.parts/Body.txt"),
        "Hello Bob,\nSecond line — ünïcode.\n"
    );
    assert_eq!(m.attr("d.eml.parts/chart.png", "content_type"), "image/png");
    m.ok(&format!("cmp d.eml.parts/chart.png {}", src.display()));

    let p = py_read(&m.spool.join("d.eml"));
    assert_eq!(p["subject"], "Réunion: Q3 résultats 📈");
    assert_eq!(
        p["to"],
        serde_json::json!(["bob@example.org", "carol@example.net"])
    );
    assert_eq!(p["to_names"][0], "Bob Smith");
    assert_eq!(p["cc"], serde_json::json!(["dave@example.com"]));
    assert_eq!(p["bcc"], serde_json::json!(["eve@example.com"]));
    assert_eq!(p["x_ticket"], "T-42");
    assert_eq!(p["text"], "Hello Bob,\nSecond line — ünïcode.\n");
    assert_eq!(p["html"], "<p>Hello <b>Bob</b></p>\n");
    assert_eq!(p["attachments"]["chart.png"], hex(&bin));
    assert_eq!(p["attachments"]["minutes.txt"], hex(b"line one\nline two\n"));
    assert_eq!(p["message_id"], id_before);
    assert_eq!(p["date"], date_before);

    // rm removes a part, removing a header attribute removes the header.
    m.ok("rm d.eml.parts/minutes.txt && setfattr -x user.header.cc d.eml.parts");
    m.ok("sed -i 's/Bob,/Robert,/' d.eml.parts/Body.txt");
    let p = py_read(&m.spool.join("d.eml"));
    assert!(p["attachments"].get("minutes.txt").is_none(), "{p}");
    assert_eq!(p["cc"], serde_json::json!([]));
    assert_eq!(p["text"], "Hello Robert,\nSecond line — ünïcode.\n");
    assert_eq!(p["message_id"], id_before);

    // Injection and nonsense are refused and change nothing.
    let before = std::fs::read(m.spool.join("d.eml")).unwrap();
    for bad in [
        "setfattr -n user.header.subject -v $'a\\r\\nBcc: x@evil.test' d.eml.parts",
        "setfattr -n user.header.to -v 'not an address' d.eml.parts",
        "setfattr -n user.header.to -v '-oQ/tmp@x.test' d.eml.parts",
        "setfattr -n user.header.content-type -v text/html d.eml.parts",
        "printf '\\xff\\xfe' > d.eml.parts/Body.txt",
        // A dot name is a staged temp file (rsync's), never a part by itself (issue 12).
        "echo x > d.eml.parts/.hidden && mv d.eml.parts/.hidden d.eml.parts/raw.eml",
    ] {
        m.fails(bad);
    }
    assert!(
        std::fs::read(m.spool.join("d.eml")).unwrap() == before,
        "a refused change changed d.eml"
    );
}

#[test]
fn parts_of_a_ready_message_are_read_only() {
    let m = Mount::new(&["port=1"]);
    m.ok(&format!("cp {} r.eml", corpus().join("mixed.eml").display()));
    m.ok("setfattr -n user.env_to -v bob@example.org r.eml && setfattr -n user.is_ready -v 1 r.eml");
    for cmd in [
        "echo x > r.eml.parts/Body.txt",
        "echo x > r.eml.parts/new.txt",
        "rm r.eml.parts/data.csv",
        "mv r.eml.parts/data.csv r.eml.parts/d.csv",
        "setfattr -n user.header.subject -v x r.eml.parts",
    ] {
        let e = m.fails(cmd);
        assert!(e.contains("Permission denied"), "{cmd}: {e}");
    }
    assert_eq!(m.ok("stat -c %a r.eml.parts r.eml.parts/data.csv"), "500\n400\n");
    assert_eq!(m.ok("cat r.eml.parts/data.csv"), "col1,col2\n1,2\n");
}

fn vm_hwm_kb(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_big_attachment_streams_with_bounded_memory() {
    let m = Mount::new(&[]);
    let src = m.tmp.path().join("big.bin");
    // 160 MB: slurping the message or the decoded part would show in the peak RSS.
    m.ok(&format!(
        "head -c 160000000 /dev/urandom > {0} && \
         {{ printf 'From: a@example.com\\nSubject: big\\nContent-Type: multipart/mixed; boundary=B\\n\\n--B\\n\
         Content-Type: text/plain\\n\\nsee attachment\\n--B\\nContent-Type: application/octet-stream\\n\
         Content-Transfer-Encoding: base64\\nContent-Disposition: attachment; filename=big.bin\\n\\n'; \
         base64 -w 76 {0}; printf -- '--B--\\n'; }} > big.eml",
        src.display()
    ));
    assert_eq!(m.ok("stat -c %s big.eml.parts/big.bin"), "160000000\n");
    m.ok(&format!("cmp big.eml.parts/big.bin {}", src.display()));
    // Reads from the middle start at a checkpoint, not at the beginning.
    m.ok(&format!(
        "cmp <(dd if=big.eml.parts/big.bin bs=4096 skip=30001 count=7 status=none) \
             <(dd if={} bs=4096 skip=30001 count=7 status=none)",
        src.display()
    ));
    // The line end before a boundary belongs to the boundary.
    assert_eq!(m.ok("cat big.eml.parts/Body.txt"), "see attachment");
    let hwm = vm_hwm_kb(m.pid().expect("pid"));
    assert!(hwm > 0 && hwm < 120_000, "peak RSS {hwm} kB");
}

/// The kernel caches attributes for a second; every change mailfs makes is pushed to it at
/// once, so sizes and modes read right after a change are the new ones.
#[test]
fn sizes_and_modes_are_current_right_after_each_change() {
    let m = Mount::new(&["port=1", "retry_time=3600"]);
    m.ok("touch d.eml");
    let on_disk = |name: &str| std::fs::metadata(m.spool.join(name)).unwrap().len().to_string();
    assert_eq!(
        m.ok("stat -c %s d.eml").trim(),
        on_disk("d.eml"),
        "after the template"
    );
    assert!(m.ok("cat d.eml").starts_with("Message-ID:"));
    let mut body = String::new();
    for i in 0..15 {
        body.push_str(&format!("line {i}\n"));
        m.ok(&format!("echo 'line {i}' >> d.eml.parts/Body.txt"));
        assert_eq!(
            m.ok("stat -c %s d.eml").trim(),
            on_disk("d.eml"),
            "after append {i}"
        );
        assert_eq!(
            m.ok("stat -c %s d.eml.parts/Body.txt").trim(),
            body.len().to_string()
        );
        assert_eq!(m.ok("cat d.eml.parts/Body.txt"), body);
    }
    m.ok("setfattr -n user.header.subject -v 'a much longer subject than before' d.eml.parts");
    assert_eq!(m.ok("stat -c %s d.eml").trim(), on_disk("d.eml"));
    m.ok(
        "setfattr -n user.env_from -v a@example.com d.eml && setfattr -n user.env_to -v b@example.org d.eml",
    );
    m.ok("setfattr -n user.is_ready -v 1 d.eml");
    assert_eq!(
        m.ok("stat -c %a d.eml d.eml.parts d.eml.parts/Body.txt"),
        "400\n500\n400\n"
    );
    assert_eq!(
        m.ok("stat -c %s d.eml").trim(),
        on_disk("d.eml"),
        "Date/Message-ID kept or added"
    );
}

/// A Draft copied in without Message-ID keeps the one mailfs showed for it when it is
/// rebuilt from its parts; its headers and body stay.
#[test]
fn composing_a_copied_plain_message_keeps_its_id_headers_and_body() {
    let m = Mount::new(&[]);
    m.ok("printf 'From: a@example.com\\nTo: b@example.org\\nSubject: plain\\n\\nHello plain\\n' > p.eml");
    let id = m.attr("p.eml", "message_id");
    m.ok("echo data > p.eml.parts/data.csv");
    assert_eq!(m.attr("p.eml", "message_id"), id);
    let p = py_read(&m.spool.join("p.eml"));
    assert_eq!(p["message_id"], id);
    assert_eq!(p["subject"], "plain");
    assert_eq!(p["to"], serde_json::json!(["b@example.org"]));
    assert_eq!(p["text"], "Hello plain\n");
    assert_eq!(p["attachments"]["data.csv"], hex(b"data\n"));
}

/// Composing holds a Draft's parts in memory: a part past the limit is refused as it is
/// written (EFBIG), and the message stays as it was.
#[test]
fn a_part_too_big_to_compose_is_refused_and_changes_nothing() {
    let m = Mount::new(&[]);
    m.ok("touch d.eml && echo hi > d.eml.parts/Body.txt");
    let before = std::fs::read(m.spool.join("d.eml")).unwrap();
    let e = m.fails("head -c 70000000 /dev/zero > d.eml.parts/big.bin");
    assert!(e.contains("File too large"), "{e}");
    assert!(
        std::fs::read(m.spool.join("d.eml")).unwrap() == before,
        "d.eml changed"
    );
    assert_eq!(m.ok("ls d.eml.parts"), "Body.txt\n");
}

/// An 8bit body of 120 MB without a single line end is read in pieces: the mount's memory
/// stays well under the body's size, and the part reads back whole.
#[test]
fn a_body_without_line_ends_streams_too() {
    let m = Mount::new(&[]);
    let src = m.tmp.path().join("flat.bin");
    m.ok(&format!(
        "head -c 120000000 /dev/zero | tr '\\0' 'x' > {0} && \
         {{ printf 'From: a@example.com\\nSubject: flat\\nContent-Type: multipart/mixed; boundary=B\\n\\n--B\\n\
         Content-Type: application/octet-stream\\nContent-Transfer-Encoding: 8bit\\n\
         Content-Disposition: attachment; filename=flat.bin\\n\\n'; cat {0}; printf '\\n--B--\\n'; }} > flat.eml",
        src.display()
    ));
    assert_eq!(m.ok("stat -c %s flat.eml.parts/flat.bin"), "120000000\n");
    m.ok(&format!("cmp flat.eml.parts/flat.bin {}", src.display()));
    let hwm = vm_hwm_kb(m.pid().expect("pid"));
    assert!(hwm > 0 && hwm < 90_000, "peak RSS {hwm} kB");
}

/// audit-6 F10/F10b through the mount: a non-UTF-8 file named like text is attached with its
/// bytes (cp in, cp out, compare), and a Subject edit leaves 8-bit fields and parts alone.
#[test]
fn non_utf8_files_and_8bit_fields_survive_composing_byte_for_byte() {
    let m = Mount::new(&[]);
    let latin1 = m.tmp.path().join("notes.txt");
    std::fs::write(&latin1, b"caf\xe9 latin1\n").unwrap();
    let blob = m.tmp.path().join("blob.csv");
    std::fs::write(&blob, b"bin\x00\xff\xfe\x80data\n").unwrap();
    m.ok("printf 'From: a@example.com\\nTo: b@example.org\\nSubject: caf\\351 raw\\nX-Note: na\\357ve\\n\\ncaf\\351 cr\\350me\\n' > d.eml");
    m.ok(&format!(
        "cp {} {} d.eml.parts/",
        latin1.display(),
        blob.display()
    ));
    m.ok("setfattr -n user.header.subject -v again d.eml.parts");
    m.ok(&format!("cmp {} d.eml.parts/notes.txt", latin1.display()));
    m.ok(&format!("cmp {} d.eml.parts/blob.csv", blob.display()));
    let stored = std::fs::read(m.spool.join("d.eml")).unwrap();
    let has = |w: &[u8]| stored.windows(w.len()).any(|x| x == w);
    assert!(
        has(b"\nX-Note: na\xefve\n"),
        "{}",
        String::from_utf8_lossy(&stored)
    );
    assert!(has(b"\n\ncaf\xe9 cr\xe8me\n"));
    assert!(has(b"\nSubject: again\n"));
    let p = py_read(&m.spool.join("d.eml"));
    assert_eq!(p["attachments"]["notes.txt"], hex(b"caf\xe9 latin1\n"));
}

/// The decoded bytes of every leaf part of a message file, in order (Python's `email`).
fn leaves(path: &Path) -> Vec<String> {
    let o = Command::new("timeout")
        .args(["20", "python3", "-c"])
        .arg(
            "import sys, json, email\n\
             m = email.message_from_binary_file(open(sys.argv[1], 'rb'))\n\
             print(json.dumps([p.get_payload(decode=True).decode('latin-1').strip() \
             for p in m.walk() if not p.is_multipart()]))",
        )
        .arg(path)
        .output()
        .expect("python3");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("json")
}

/// audit-17 D2: after `rm` of a part, a tool's edit by name reached another part: `sed -i`
/// writes a temp file in the directory (a part added: the message changed) and renames it onto
/// the name it edits, and the names had moved in between. Every part keeps its name while the
/// message changes through its parts directory.
#[test]
fn edits_by_name_after_a_removal_reach_the_part_that_name_showed() {
    let m = Mount::new(&[]);
    let dup = "From: a@example.com\nTo: b@example.org\nSubject: dup\nMIME-Version: 1.0\n\
Content-Type: multipart/mixed; boundary=\"B\"\n\n--B\nContent-Type: text/plain\n\nmain body\n\
--B\nContent-Type: text/plain\nContent-Disposition: inline\n\nsecond text\n\
--B\nContent-Type: application/octet-stream\nContent-Disposition: attachment; filename=\"a.bin\"\n\nv1\n\
--B\nContent-Type: application/octet-stream\nContent-Disposition: attachment; filename=\"a.bin\"\n\nv2\n\
--B\nContent-Type: application/octet-stream\nContent-Disposition: attachment; filename=\"a.bin\"\n\nv3\n--B--\n";
    for n in ["s", "r", "t"] {
        std::fs::write(m.path(&format!("{n}.eml")), dup).unwrap();
    }
    m.ok("rm s.eml.parts/a.bin && sed -i 's/v2/V2/' 's.eml.parts/a (2).bin'");
    assert_eq!(
        leaves(&m.spool.join("s.eml")),
        ["main body", "second text", "V2", "v3"]
    );
    m.ok("rm r.eml.parts/a.bin && { echo changed > r.eml.parts/Body.txt; echo NEW2; } > 'r.eml.parts/a (2).bin'");
    assert_eq!(
        leaves(&m.spool.join("r.eml")),
        ["changed", "second text", "NEW2", "v3"]
    );
    let before = m.ok("ls t.eml.parts");
    m.ok("rm t.eml.parts/Body.txt");
    let second = before
        .lines()
        .find(|l| l.starts_with("part-"))
        .expect("the second text part's name")
        .to_string();
    m.ok(&format!("sed -i s/second/SECOND/ t.eml.parts/{second}"));
    assert_eq!(leaves(&m.spool.join("t.eml")), ["SECOND text", "v1", "v2", "v3"]);
}

/// audit-18 E1, E4, E2: renaming a part (`mv`, an editor's backup rename) moved it to the end
/// and renamed the parts after it, so the next step by name reached another part (a round
/// trip a→b→a lost v2; an editor's save of `a.bin` lost another `a.bin`); an inline image
/// renamed lost its Content-ID.
#[test]
fn renaming_a_part_keeps_it_in_place_and_the_others_names() {
    let m = Mount::new(&[]);
    let dup = "From: a@example.com\nTo: b@example.org\nSubject: dup\nMIME-Version: 1.0\n\
Content-Type: multipart/mixed; boundary=\"B\"\n\n--B\nContent-Type: text/plain\n\nmain body\n\
--B\nContent-Type: application/octet-stream\nContent-Disposition: attachment; filename=\"a.bin\"\n\nv1\n\
--B\nContent-Type: application/octet-stream\nContent-Disposition: attachment; filename=\"a.bin\"\n\nv2\n\
--B\nContent-Type: application/octet-stream\nContent-Disposition: attachment; filename=\"a.bin\"\n\nv3\n--B--\n";
    for n in ["r", "e"] {
        std::fs::write(m.path(&format!("{n}.eml")), dup).unwrap();
    }
    m.ok("mv r.eml.parts/a.bin r.eml.parts/b.bin && mv r.eml.parts/b.bin r.eml.parts/a.bin");
    assert_eq!(leaves(&m.spool.join("r.eml")), ["main body", "v1", "v2", "v3"]);
    // An editor that keeps a backup by renaming: mv NAME NAME~, write NAME, rm NAME~.
    m.ok("cd e.eml.parts && mv a.bin a.bin~ && printf 'v1 edited\\n' > a.bin && rm a.bin~");
    let mut got = leaves(&m.spool.join("e.eml"));
    got.sort();
    assert_eq!(got, ["main body", "v1 edited", "v2", "v3"]);
    // An inline image keeps its Content-ID and its place in the HTML's multipart/related.
    let related = "From: a@example.com\nTo: b@example.org\nSubject: img\nMIME-Version: 1.0\n\
Content-Type: multipart/related; boundary=\"R\"\n\n--R\nContent-Type: text/html\n\n<img src=\"cid:i1\">\n\
--R\nContent-Type: image/png\nContent-ID: <i1>\nContent-Disposition: inline; filename=\"img.png\"\n\
Content-Transfer-Encoding: base64\n\niVBORw0KGgo=\n--R--\n";
    std::fs::write(m.path("i.eml"), related).unwrap();
    m.ok("mv i.eml.parts/img.png i.eml.parts/pic.png");
    assert_eq!(
        m.ok("getfattr --only-values -n user.content_id i.eml.parts/pic.png"),
        "i1"
    );
    assert_eq!(
        m.ok("getfattr --only-values -n user.content_type i.eml.parts/pic.png"),
        "image/png"
    );
}

/// audit-19 F1: `mv Body.txt t.txt; mv t.txt Body.txt` lost an unnamed second text part (it
/// took the name `Body.txt` in between). F6: a writer open on a part replaced by a rename
/// onto its name wrote over the part moved in.
#[test]
fn a_body_renamed_away_and_back_and_a_writer_of_a_replaced_part() {
    let m = Mount::new(&[]);
    let two = "From: a@example.com\nTo: b@example.org\nSubject: two\nMIME-Version: 1.0\n\
Content-Type: multipart/mixed; boundary=\"B\"\n\n--B\nContent-Type: text/plain\n\nmain body\n\
--B\nContent-Type: text/plain\nContent-Disposition: inline\n\nsecond text\n\
--B\nContent-Type: application/octet-stream\nContent-Disposition: attachment; filename=\"a.bin\"\n\nv1\n\
--B\nContent-Type: application/octet-stream\nContent-Disposition: attachment; filename=\"a.bin\"\n\nv2\n--B--\n";
    std::fs::write(m.path("t.eml"), two).unwrap();
    // Refused while another text part would take the body's place (an editor then copies).
    let err = m.fails("mv t.eml.parts/Body.txt t.eml.parts/t.txt");
    assert!(err.contains("not permitted"), "{err}");
    assert_eq!(std::fs::read_to_string(m.spool.join("t.eml")).unwrap(), two);
    // Without a second text part the body may go and come back.
    let one = two.replace(
        "Content-Type: text/plain\nContent-Disposition: inline\n\nsecond text\n",
        "Content-Type: image/png\nContent-Disposition: inline\n\nsecond text\n",
    );
    std::fs::write(m.path("o.eml"), &one).unwrap();
    m.ok("mv o.eml.parts/Body.txt o.eml.parts/t.txt && mv o.eml.parts/t.txt o.eml.parts/Body.txt");
    let mut got = leaves(&m.spool.join("o.eml"));
    got.sort();
    assert_eq!(got, ["main body", "second text", "v1", "v2"]);
    std::fs::write(m.path("w.eml"), two).unwrap();
    m.ok("cd w.eml.parts && python3 -c \"
import os
fd = os.open('a (2).bin', os.O_WRONLY | os.O_TRUNC)
os.rename('a.bin', 'a (2).bin')
os.write(fd, b'late')
os.close(fd)
\"");
    let got = leaves(&m.spool.join("w.eml"));
    assert_eq!(got, ["main body", "second text", "v1"]);
    // Replaced as rsync does, by a dot-named temp file renamed onto it (audit-20 H3).
    std::fs::write(m.path("x.eml"), two).unwrap();
    m.ok("cd x.eml.parts && python3 -c \"
import os
fd = os.open('a (2).bin', os.O_WRONLY | os.O_TRUNC)
open('.a (2).bin.XYZ', 'w').write('T')
os.rename('.a (2).bin.XYZ', 'a (2).bin')
os.write(fd, b'late')
os.close(fd)
\"");
    let got = leaves(&m.spool.join("x.eml"));
    assert_eq!(got, ["main body", "second text", "v1", "T"]);
}
