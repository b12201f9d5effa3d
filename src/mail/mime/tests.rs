//! Unit, corpus and fuzz-regression tests of the parts view.
// Each test module imports the whole parts view; not every module uses every room.
#![allow(unused_imports)]

mod units {
    use crate::mail::mime::decode::*;
    use crate::mail::mime::names::{sanitize, *};
    use crate::mail::mime::skeleton::*;
    use crate::mail::mime::*;

    #[test]
    fn names_are_sanitised() {
        assert_eq!(sanitize("../../etc/passwd").unwrap(), "_._etc_passwd");
        assert_eq!(sanitize("a/b\0c\x07.pdf").unwrap(), "a_bc.pdf");
        assert_eq!(sanitize("..."), None);
        assert_eq!(sanitize(" .hidden").unwrap(), "hidden");
        assert_eq!(sanitize("invoice\u{202E}fdp.exe").unwrap(), "invoicefdp.exe");
        assert_eq!(sanitize("a\u{2066}b\u{2069}\u{200F}.txt").unwrap(), "ab.txt");
        let long = format!("{}.pdf", "é".repeat(200));
        let s = sanitize(&long).unwrap();
        assert!(s.len() <= MAX_NAME && s.ends_with(".pdf"), "{s}");
    }

    #[test]
    fn names_are_unique() {
        let mut t = Taken::default();
        assert_eq!(t.unique("notes.txt", false), "notes.txt");
        assert_eq!(t.unique("notes.txt", false), "notes (2).txt");
        assert_eq!(t.unique("notes.txt", false), "notes (3).txt");
        let long = "x".repeat(251) + ".pdf";
        assert_eq!(t.unique(&long, false), long);
        let second = t.unique(&long, false);
        assert!(second.len() <= MAX_NAME && second.ends_with(" (2).pdf"));
        assert_eq!(t.unique("fwd.eml", true), "fwd.eml");
        assert_eq!(t.unique("fwd.eml.parts", false), "fwd.eml (2).parts");
    }

    #[test]
    fn attached_messages_with_long_names_leave_room_for_their_parts_directory() {
        // audit-6 F16: a 255-byte `NAME.eml` was listed with a 261-byte `NAME.eml.parts`.
        let fwd = "Content-Type: message/rfc822\nContent-Disposition: attachment; filename=";
        let inner = "\n\nFrom: x@example.com\nSubject: in\n\nbody\n";
        let names = [
            format!("{}.eml", "b".repeat(251)),
            format!("{}.eml", "b".repeat(251)),
            format!("{}.eml", "é".repeat(200)),
            "é".repeat(200),
        ];
        let mut msg = "From: a@example.com\nSubject: long\nMIME-Version: 1.0\n\
                       Content-Type: multipart/mixed; boundary=B\n\n--B\n\nbody\n"
            .to_string();
        for n in &names {
            msg += &format!("--B\n{fwd}\"{n}\"{inner}");
        }
        msg += "--B--\n";
        let tree = build_bytes(msg.as_bytes());
        let msgs: Vec<&Entry> = tree
            .entries
            .iter()
            .filter(|e| e.info.role == Role::Message)
            .collect();
        assert_eq!(
            msgs.len(),
            4,
            "{:?}",
            tree.entries.iter().map(|e| &e.name).collect::<Vec<_>>()
        );
        for e in &msgs {
            assert!(e.name.ends_with(".eml"), "{}", e.name);
            assert!(
                format!("{}.parts", e.name).len() <= MAX_NAME,
                "{} bytes",
                e.name.len()
            );
            assert!(e.nested.is_some(), "{}: shown with its .parts", e.name);
        }
        assert_ne!(msgs[0].name, msgs[1].name);
        assert!(msgs[1].name.ends_with(" (2).eml"));
        assert!(msgs[2].name.starts_with("éé") && msgs[3].name.starts_with("éé"));
    }

    #[test]
    fn skeleton_maps_back_to_the_file() {
        let body = "QUFB\r\n".repeat(300_000);
        let msg = format!(
            "Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
             Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n\
             {body}--b--\r\n"
        );
        let sk = skeleton(msg.as_bytes(), RUN_LIMIT).unwrap();
        assert_eq!(sk.holes.len(), 1);
        assert!(sk.bytes.len() < 400);
        let m = MessageParser::default().parse(&sk.bytes[..]).unwrap();
        let p = &m.parts[1];
        let (b, e) = (sk.to_file(p.offset_body as u64), sk.to_file(p.offset_end as u64));
        assert_eq!(&msg[b as usize..e as usize], body.trim_end());
    }
}

mod corpus_tests {
    use crate::mail::mime::decode::*;
    use crate::mail::mime::names::{sanitize, *};
    use crate::mail::mime::skeleton::*;
    use crate::mail::mime::*;

    /// Every body of the corpus read through the streaming path (runs over 16 bytes left in
    /// the file) gives the bytes the in-memory path gives.
    #[test]
    fn streaming_path_decodes_like_the_in_memory_path() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
        let mut compared = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            if path.extension().is_none_or(|x| x != "eml") {
                continue;
            }
            let file = File::open(&path).unwrap();
            let whole = build(&path).unwrap();
            let streamed = build_with_run_limit(&path, 16).unwrap();
            assert_eq!(whole.entries.len(), streamed.entries.len(), "{path:?}");
            for (a, b) in whole.entries.iter().zip(&streamed.entries) {
                assert_eq!(a.name, b.name, "{path:?}");
                if a.info.content_type.starts_with("text/") {
                    continue; // text is converted to UTF-8 and LF only when held in memory
                }
                let (x, y) = (a.data.read_all(&file).unwrap(), b.data.read_all(&file).unwrap());
                assert_eq!(x, y, "{path:?} {}", a.name);
                assert_eq!(b.data.size(), y.len() as u64);
                // Reads at an offset agree too.
                if y.len() > 10 {
                    assert_eq!(b.data.read_at(&file, 7, 3).unwrap(), y[7..10].to_vec());
                }
                compared += 1;
            }
        }
        assert!(compared >= 10, "{compared}");
    }

    /// Bodies laid out so decoding chunks never end on a restart point (base64 in 77-character
    /// lines, one 3 MB quoted-printable line) still read right, in order and scattered.
    #[test]
    fn odd_layouts_read_right() {
        let data: Vec<u8> = (0..2_000_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
            .collect();
        let built = mail_builder::MessageBuilder::new()
            .subject("x")
            .attachment("application/octet-stream", "d.bin", data.clone())
            .write_to_vec()
            .unwrap();
        let text = String::from_utf8(built).unwrap();
        let (_, rest) = text
            .split_once("Content-Transfer-Encoding: base64\r\n\r\n")
            .unwrap();
        let (b64, _) = rest.split_once("\r\n--").unwrap();
        let flat: String = b64.split("\r\n").collect();
        let wrapped: Vec<&str> = flat
            .as_bytes()
            .chunks(77)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let qp_line: String = (0..1_000_000)
            .map(|i| if i % 3 == 0 { "=41" } else { "b" })
            .collect();
        let qp_decoded: Vec<u8> = (0..1_000_000)
            .map(|i| if i % 3 == 0 { b'A' } else { b'b' })
            .collect();
        let dir = std::env::temp_dir().join(format!("mailfs-odd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.eml");
        // The attachment in its odd layout, then the long QP line as a second part.
        let boundary = "ODD";
        let eml = format!(
            "Subject: x\r\nContent-Type: multipart/mixed; boundary={boundary}\r\n\r\n--{boundary}\r\n\
             Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n\
             --{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: \
             quoted-printable\r\n\r\n{qp_line}\r\n--{boundary}--\r\n",
            wrapped.join("\n")
        );
        std::fs::write(&path, eml).unwrap();
        let tree = build_with_run_limit(&path, 64).unwrap();
        let file = File::open(&path).unwrap();
        for (e, want) in tree.entries.iter().zip([&data, &qp_decoded]) {
            assert!(matches!(e.data, Data::File { .. }));
            assert_eq!(e.data.size(), want.len() as u64, "{}", e.name);
            let mut hint = None;
            let mut got = Vec::new();
            while got.len() < want.len() {
                let part = e
                    .data
                    .read_at_hinted(&file, got.len() as u64, 70_000, &mut hint)
                    .unwrap();
                assert!(!part.is_empty());
                got.extend(part);
            }
            assert!(&got == want, "{} in order", e.name);
            let len = want.len() as u64;
            for off in [0u64, 99_999, len / 2 + 1, len - 5] {
                let part = e.data.read_at(&file, off, 64).unwrap();
                let end = (off as usize + 64).min(want.len());
                assert_eq!(part, want[off as usize..end].to_vec(), "{} at {off}", e.name);
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// audit-6 F5: a header field that ends the message without a line end shows its value
    /// in `user.header.*` like any other field.
    #[test]
    fn a_last_field_without_a_line_end_is_shown() {
        for msg in [
            &b"From: a@example.com\nTo: b@example.org\nCc: eofcc@example.org"[..],
            b"From: a@example.com\r\nTo: b@example.org\r\nCc: eofcc@example.org",
        ] {
            let attrs = build_bytes(msg).header_attrs();
            let cc = attrs.iter().find(|(k, _)| k == "cc").map(|(_, v)| v.as_str());
            assert_eq!(cc, Some("eofcc@example.org"), "{attrs:?}");
            let to = attrs.iter().find(|(k, _)| k == "to").map(|(_, v)| v.as_str());
            assert_eq!(to, Some("b@example.org"));
        }
    }

    /// An attached message read from memory is its own bytes, not the enclosing message's.
    #[test]
    fn an_attached_message_in_memory_is_its_own_bytes() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/nested.eml");
        let data = std::fs::read(&path).unwrap();
        let file = File::open(&path).unwrap();
        let from_memory = build_bytes(&data);
        let from_file = build(&path).unwrap();
        let m = from_memory
            .entry("fwd.eml")
            .unwrap()
            .data
            .read_all(&file)
            .unwrap();
        let f = from_file.entry("fwd.eml").unwrap().data.read_all(&file).unwrap();
        assert_eq!(m, f);
        assert!(String::from_utf8_lossy(&m).contains("Subject: inner message"));
        assert!(!String::from_utf8_lossy(&m).contains("Subject: nested"));
    }

    /// Reads in order (with the restart hint) and at scattered offsets give the same bytes as
    /// one whole decode, across many decoder chunks and checkpoints.
    #[test]
    fn hinted_and_scattered_reads_agree() {
        let data: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        // mail-builder writes binary attachments in base64.
        let msg = mail_builder::MessageBuilder::new()
            .subject("x")
            .attachment("application/octet-stream", "d.bin", data.clone())
            .write_to_vec()
            .unwrap();
        let dir = std::env::temp_dir().join(format!("mailfs-hint-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.eml");
        std::fs::write(&path, &msg).unwrap();
        let tree = build(&path).unwrap();
        let file = File::open(&path).unwrap();
        let e = &tree.entries[0];
        assert!(matches!(e.data, Data::File { .. }));
        assert_eq!(e.data.size(), data.len() as u64);
        for step in [4096usize, 5000, 131072] {
            let mut hint = None;
            let mut got = Vec::new();
            while got.len() < data.len() {
                let part = e
                    .data
                    .read_at_hinted(&file, got.len() as u64, step, &mut hint)
                    .unwrap();
                assert!(!part.is_empty());
                got.extend(part);
            }
            assert!(got == data, "sequential reads of {step}");
        }
        for off in [0u64, 1, 49_151, 1_048_575, 1_048_576, 2_999_990] {
            let part = e.data.read_at(&file, off, 100).unwrap();
            let end = (off as usize + 100).min(data.len());
            assert_eq!(part, data[off as usize..end].to_vec(), "offset {off}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

mod fuzz_regressions {
    use crate::mail::mime::decode::*;
    use crate::mail::mime::names::{sanitize, *};
    use crate::mail::mime::skeleton::*;
    use crate::mail::mime::*;

    /// Inputs the fuzzer found (fuzz/regressions/): each builds quickly, with a bounded
    /// number of parts, through both paths.
    #[test]
    fn fuzz_findings_stay_fixed() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let t = build_bytes(&data);
            assert!(t.entries.len() <= MAX_PARTS, "{path:?}");
            let t = build_with_run_limit(&path, 64).unwrap();
            assert!(t.entries.len() <= MAX_PARTS, "{path:?}");
            n += 1;
        }
        assert!(n >= 1);
    }
}
