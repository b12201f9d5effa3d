//! Part names: sanitised, unique, with the extension kept (SPEC §2).

use super::*;
use crate::model::names::MAX_MESSAGE_NAME;

/// Names in leaf order: the first text and html bodies are `Body.txt` / `Body.html`, named
/// parts keep their sanitised names, the rest are `part-ID.EXT`; all unique.
pub(super) fn name_leaves(leaves: &[Leaf]) -> Vec<String> {
    let mut taken = Taken::default();
    let mut names: Vec<Option<String>> = vec![None; leaves.len()];
    for (role, name) in [(Role::TextBody, "Body.txt"), (Role::HtmlBody, "Body.html")] {
        if let Some(i) = leaves.iter().position(|l| l.info.role == role) {
            taken.insert(name.to_string(), false);
            names[i] = Some(name.to_string());
        }
    }
    for (i, leaf) in leaves.iter().enumerate() {
        if names[i].is_some() {
            continue;
        }
        let is_msg = leaf.info.role == Role::Message;
        let base = leaf
            .info
            .filename
            .as_deref()
            .and_then(sanitize)
            .unwrap_or_else(|| {
                format!(
                    "part-{}.{}",
                    leaf.info.part_id,
                    extension(&leaf.info.content_type)
                )
            });
        let base = match (is_msg, base.ends_with(".eml")) {
            (true, false) => fit_to(
                &format!("{}.eml", base.trim_end_matches('.')),
                ".eml",
                MAX_MESSAGE_NAME,
            ),
            // An attached message's `NAME.parts` directory must be a file name too.
            (true, true) => fit_to(&base, ".eml", MAX_MESSAGE_NAME),
            (false, _) => base,
        };
        names[i] = Some(taken.unique(&base, is_msg));
    }
    names.into_iter().map(Option::unwrap_or_default).collect()
}

#[derive(Default)]
pub(super) struct Taken(HashSet<String>);

impl Taken {
    pub(super) fn insert(&mut self, name: String, is_msg: bool) {
        if is_msg {
            self.0.insert(format!("{name}.parts"));
        }
        self.0.insert(name);
    }

    pub(super) fn free(&self, name: &str, is_msg: bool) -> bool {
        // An attached message's directory name is taken with it (see `insert`), so no file
        // can take it, and a message cannot take a name whose `.parts` is a file's.
        let clash = self.0.contains(name) || (is_msg && self.0.contains(&format!("{name}.parts")));
        !clash
    }

    /// `a.pdf`, then `a (2).pdf`, `a (3).pdf`...
    pub(super) fn unique(&mut self, base: &str, is_msg: bool) -> String {
        let max = if is_msg { MAX_MESSAGE_NAME } else { MAX_NAME };
        let mut name = base.to_string();
        let mut n = 2;
        while !self.free(&name, is_msg) {
            let (stem, ext) = split_ext(base);
            let suffix = format!(" ({n}){ext}");
            name = format!(
                "{}{suffix}",
                truncate(stem, max - suffix.len()).trim_end_matches('.')
            );
            n += 1;
        }
        self.insert(name.clone(), is_msg);
        name
    }
}

pub(super) fn split_ext(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(i) if i > 0 && name.len() - i <= 16 => (&name[..i], &name[i..]),
        _ => (name, ""),
    }
}

pub(super) use crate::model::names::cut as truncate;

/// Cuts a name to `MAX_NAME` bytes, keeping its extension `ext` when it has it.
pub(super) fn fit(name: &str, ext: &str) -> String {
    fit_to(name, ext, MAX_NAME)
}

/// Cuts a name to `max` bytes (at a character boundary), keeping its extension `ext` when
/// it has it.
pub(super) fn fit_to(name: &str, ext: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let (stem, e) = if !ext.is_empty() && name.ends_with(ext) {
        (&name[..name.len() - ext.len()], ext)
    } else {
        split_ext(name)
    };
    // A cut can end the stem in a dot, which with the extension's would make "..".
    let stem = truncate(stem, max.saturating_sub(e.len())).trim_end_matches('.');
    format!("{stem}{e}")
}

/// A file name from a sender, made safe to show: no `/`, `\`, NUL or control characters, no
/// leading dots or spaces, no `..`, at most 255 bytes with the extension kept. `None` when
/// nothing is left.
pub fn sanitize(raw: &str) -> Option<String> {
    let mut s = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = match c {
            '/' | '\\' => '_',
            c if c.is_control() || is_bidi_control(c) => continue,
            c => c,
        };
        // Collapse runs of dots, so no `..` survives anywhere in the name.
        if c == '.' && s.ends_with('.') {
            continue;
        }
        s.push(c);
    }
    let s = s
        .trim_start_matches(['.', ' '])
        .trim_end_matches([' ', '.'])
        .trim();
    if s.is_empty() {
        return None;
    }
    let ext = split_ext(s).1;
    Some(fit(s, ext))
}

/// Unicode's explicit directional formatting characters: `evil\u{202E}fdp.exe` would show
/// as `exe.pdf` in a terminal.
pub(super) fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// A file extension for an unnamed part of this content type.
pub fn extension(content_type: &str) -> String {
    let preferred = match content_type {
        "text/plain" => Some("txt"),
        "text/html" => Some("html"),
        "message/rfc822" => Some("eml"),
        "image/jpeg" => Some("jpg"),
        "application/octet-stream" => Some("bin"),
        "text/calendar" => Some("ics"),
        "message/delivery-status" => Some("txt"),
        _ => None,
    };
    if let Some(p) = preferred {
        return p.to_string();
    }
    mime_guess::get_mime_extensions_str(content_type)
        .and_then(|e| e.first())
        .map(|e| e.to_string())
        .unwrap_or_else(|| "bin".to_string())
}
