//! What keeps the parts view safe on hostile input whatever its depth: mail-parser builds an
//! attached message as a `Message` inside its parent's part, so a message nested 100,000 deep
//! is a chain that the compiler's drop glue would free by recursion, one stack frame per
//! level. It is taken apart here with a heap stack instead. Also the size a tree holds in
//! memory, so caches can be bounded in bytes.

use mail_parser::{Message, PartType};

use super::{Data, Tree};

/// Frees a parsed message without recursion: nested messages are moved out of their parents
/// and freed one by one.
pub(super) fn dismantle(msg: Message<'_>) {
    let mut stack = vec![msg];
    while let Some(mut m) = stack.pop() {
        for part in &mut m.parts {
            if matches!(part.body, PartType::Message(_))
                && let PartType::Message(inner) = std::mem::take(&mut part.body)
            {
                stack.push(inner);
            }
        }
        // `m` now holds no nested message: dropping it recurses no deeper.
    }
}

impl Tree {
    /// About how many heap bytes this tree holds, attached messages included (walked with a
    /// heap stack).
    pub fn heap_size(&self) -> usize {
        let mut total = 0usize;
        let mut stack: Vec<&Tree> = vec![self];
        while let Some(t) = stack.pop() {
            total += std::mem::size_of::<Tree>();
            for h in &t.headers {
                total += h.name.len() + h.raw.len() + h.decoded.len() + 72;
            }
            total += t.parse_error.as_ref().map_or(0, String::len);
            for e in &t.entries {
                let i = &e.info;
                total += e.name.len()
                    + i.content_type.len()
                    + i.part_id.len()
                    + [&i.charset, &i.filename, &i.content_id, &i.disposition]
                        .iter()
                        .map(|o| o.as_ref().map_or(0, String::len))
                        .sum::<usize>()
                    + 256;
                total += match &e.data {
                    Data::Memory(b) => b.len(),
                    Data::File { marks, .. } => marks.len() * 16,
                };
                if let Some(n) = &e.nested {
                    stack.push(n);
                }
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;

    /// `depth` attached messages, each inside the last.
    fn nested(depth: usize) -> Vec<u8> {
        let mut m = String::new();
        for i in 0..depth {
            m.push_str(&format!(
                "Subject: level {i}\nContent-Type: multipart/mixed; boundary=b{i}\n\n--b{i}\n\
                 Content-Type: message/rfc822\n\n"
            ));
        }
        m.push_str("Subject: deepest\n\nhello\n");
        for i in (0..depth).rev() {
            m.push_str(&format!("--b{i}--\n"));
        }
        m.into_bytes()
    }

    /// Builds on a thread with the stack of a FUSE worker (2 MiB), as the mount does.
    fn build_on_small_stack(data: Vec<u8>) -> Tree {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || build_bytes(&data))
            .unwrap()
            .join()
            .unwrap()
    }

    #[test]
    fn deep_attached_messages_are_cut_and_said_to_be() {
        for depth in [10, 2_000, 20_000] {
            let t = build_on_small_stack(nested(depth));
            let mut levels = 0;
            let mut cur = &t;
            while let Some(n) = cur.entries.iter().find_map(|e| e.nested.as_ref()) {
                cur = n;
                levels += 1;
            }
            if depth < MAX_DEPTH {
                assert_eq!(levels, depth, "{depth}");
                assert!(t.parse_error.is_none(), "{:?}", t.parse_error);
            } else {
                assert_eq!(levels, MAX_DEPTH - 1, "{depth}");
                let why = t.parse_error.as_deref().unwrap_or_default();
                assert!(why.contains("nested deeper"), "{why}");
            }
            assert!(t.heap_size() > 0);
        }
    }

    #[test]
    fn deep_multiparts_are_said_to_be_partial() {
        let depth = 100;
        let mut m = String::from("Subject: deep\n");
        for i in 0..depth {
            m.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=b{i}\n\n--b{i}\n"
            ));
        }
        m.push_str("Content-Type: text/plain\n\nleaf\n");
        for i in (0..depth).rev() {
            m.push_str(&format!("--b{i}--\n"));
        }
        let t = build_on_small_stack(m.into_bytes());
        let why = t.parse_error.as_deref().unwrap_or_default();
        assert!(why.contains("multiparts"), "{why}");
    }

    #[test]
    fn too_many_parts_are_said_to_be_partial() {
        let mut m = String::from("Subject: many\nContent-Type: multipart/mixed; boundary=b\n\n");
        for i in 0..(MAX_PARTS + 5) {
            m.push_str(&format!(
                "--b\nContent-Type: application/octet-stream\n\
                 Content-Disposition: attachment; filename=a{i}.bin\n\nx\n"
            ));
        }
        m.push_str("--b--\n");
        let t = build_bytes(m.as_bytes());
        assert_eq!(t.entries.len(), MAX_PARTS);
        let why = t.parse_error.as_deref().unwrap_or_default();
        assert!(why.contains("first"), "{why}");
    }
}
