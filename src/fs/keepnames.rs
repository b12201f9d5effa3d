//! Part names that stay put while a Draft is edited through its parts directory (audit-16 D7,
//! audit-17 D2).
//!
//! The view names parts from their file names, made unique in order (`a.bin`, `a (2).bin`),
//! so removing or adding one part renamed others: after `rm a.bin` the part shown as
//! `a (2).bin` became `a.bin`, and a tool's next step by name (`sed -i` renames its temp file
//! onto the name it edits) reached a different part than the one the user meant. After each
//! edit composed through the view, every part that was there keeps the name it was shown
//! under, as long as the message changes only through the view: an edit of the `.eml` itself,
//! or another mount, shows the names the bytes give.

use std::collections::HashMap;
use std::fs::File;

use parking_lot::Mutex;

use super::MailFs;
use crate::mail::compose::Edit;
use crate::mail::mime::{Entry, Tree};
use crate::store::spool::Stamp;

/// Messages whose names are kept at once, at most (the oldest goes first).
const KEEP: usize = 1024;

/// What an edit did to the parts, by the names shown before it.
pub(super) enum Edited {
    Set(String),
    Remove(String),
    Rename(String, String),
    Headers,
}

impl Edited {
    pub(super) fn of(e: &Edit) -> Edited {
        match e {
            Edit::SetPart { name, .. } => Edited::Set(name.clone()),
            Edit::RemovePart(n) => Edited::Remove(n.clone()),
            Edit::RenamePart { from, to } => Edited::Rename(from.clone(), to.clone()),
            Edit::SetHeader { .. } | Edit::RemoveHeader(_) => Edited::Headers,
        }
    }
}

/// Which top entries (by index) show which name.
type Names = Vec<(usize, String)>;

/// Per message: the version of its `.eml` the names are for, when they were put, the names.
#[derive(Default)]
pub(super) struct KeptNames(Mutex<HashMap<String, (Stamp, u64, Names)>>, Steps);

/// Per message, the last edits composed here: from which version of the `.eml` to which, and
/// whether every part kept its name. A part's writer holds a name from its open; at its close
/// the name still means the part it meant only if the message got there by such edits alone.
#[derive(Default)]
struct Steps(Mutex<HashMap<String, Vec<Step>>>);

/// One edit: the version before, the version after, whether every part kept its name.
type Step = (Stamp, Stamp, bool);

/// Steps kept per message.
const STEPS: usize = 32;

impl KeptNames {
    fn step(&self, msg: &str, from: Stamp, to: Stamp, kept: bool) {
        let mut m = self.1.0.lock();
        if m.len() >= KEEP && !m.contains_key(msg) {
            m.clear();
        }
        let v = m.entry(msg.to_string()).or_default();
        if v.len() >= STEPS {
            v.remove(0);
        }
        v.push((from, to, kept));
    }

    /// Whether `msg` went from version `from` to `to` only by edits here that kept every
    /// part's name.
    pub(super) fn reaches(&self, msg: &str, from: Stamp, to: Stamp) -> bool {
        let m = self.1.0.lock();
        let Some(v) = m.get(msg) else {
            return from == to;
        };
        let mut at = from;
        for _ in 0..=v.len() {
            if at == to {
                return true;
            }
            match v.iter().rev().find(|(f, _, _)| *f == at) {
                Some((_, t, true)) => at = *t,
                _ => return false,
            }
        }
        at == to
    }

    pub(super) fn get(&self, msg: &str, stamp: Stamp) -> Names {
        let m = self.0.lock();
        match m.get(msg) {
            Some((s, _, v)) if *s == stamp => v.clone(),
            _ => Vec::new(),
        }
    }

    fn put(&self, msg: &str, stamp: Stamp, names: Names) {
        let mut m = self.0.lock();
        if names.is_empty() {
            m.remove(msg);
            return;
        }
        if m.len() >= KEEP && !m.contains_key(msg) {
            let oldest = m.iter().min_by_key(|(_, (_, n, _))| *n).map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                m.remove(&k);
            }
        }
        let n = m.values().map(|(_, n, _)| *n).max().unwrap_or(0) + 1;
        m.insert(msg.to_string(), (stamp, n, names));
    }
}

impl MailFs {
    /// After `edit` turned `shown` (read from `old`) into the message now in the spool: the
    /// names its parts keep (see the top).
    pub(super) fn keep_names(&self, msg: &str, (shown, was): (&Tree, Stamp), old: &File, edit: &Edited) {
        let path = self.node.spool.eml_path(msg);
        let Ok(new) = crate::store::spool::open_read(&path) else {
            return;
        };
        let (Ok(meta), Ok(now)) = (new.metadata(), crate::mail::mime::build(&path)) else {
            return;
        };
        let names = carried(shown, old, edit, &now, &new);
        self.kept_names.step(msg, was, Stamp::of(&meta), names.is_some());
        self.kept_names
            .put(msg, Stamp::of(&meta), names.unwrap_or_default());
        // A look since the write parsed it without these names.
        self.trees.remove(msg);
    }
}

/// The names the entries of `now` show: those of `shown` after `edit`, when every part the
/// edit did not touch is in `now` in the same order with the same type and bytes; otherwise
/// `None` (the names the bytes give).
fn carried<'a>(shown: &'a Tree, old: &File, edit: &Edited, now: &Tree, new: &File) -> Option<Names> {
    let s = &shown.entries;
    let has = |n: &str| s.iter().any(|e| e.name == n);
    // Each candidate: per entry of `now`, the name it shows and the part of `shown` it is
    // (None: the part the edit wrote).
    let kept = |e: &'a Entry| (e.name.clone(), Some(e));
    let cands: Vec<Vec<(String, Option<&'a Entry>)>> = match edit {
        Edited::Headers => vec![s.iter().map(kept).collect()],
        Edited::Remove(r) => vec![s.iter().filter(|e| &e.name != r).map(kept).collect()],
        Edited::Set(t) if has(t) => vec![
            s.iter()
                .map(|e| if &e.name == t { (t.clone(), None) } else { kept(e) })
                .collect(),
        ],
        // A new part: most likely last, as composing adds it.
        Edited::Set(t) => (0..=s.len())
            .rev()
            .map(|k| {
                let mut v: Vec<(String, Option<&'a Entry>)> = s.iter().map(kept).collect();
                v.insert(k, (t.clone(), None));
                v
            })
            .collect(),
        Edited::Rename(f, t) if !has(t) => vec![
            s.iter()
                .map(|e| if &e.name == f { (t.clone(), None) } else { kept(e) })
                .collect(),
            // A body renamed to a file name becomes an attachment, last (audit-19 F1: then a
            // second text part took the name `Body.txt`, and `mv t.txt Body.txt` replaced it).
            s.iter()
                .filter(|e| &e.name != f)
                .map(kept)
                .chain(std::iter::once((t.clone(), None)))
                .collect(),
        ],
        Edited::Rename(f, t) => vec![
            // The bytes moved into the target's place, or the moved part took the name.
            s.iter()
                .filter(|e| &e.name != f)
                .map(|e| if &e.name == t { (t.clone(), None) } else { kept(e) })
                .collect(),
            s.iter()
                .filter(|e| &e.name != t)
                .map(|e| if &e.name == f { (t.clone(), None) } else { kept(e) })
                .collect(),
        ],
    };
    let n = &now.entries;
    for c in cands {
        if c.len() == n.len()
            && c.iter()
                .zip(n)
                .all(|((_, o), e)| o.is_none_or(|o| same(o, old, e, new)))
        {
            return Some(
                c.into_iter()
                    .zip(n)
                    .enumerate()
                    .filter(|(_, ((name, _), e))| *name != e.name)
                    .map(|(i, ((name, _), _))| (i, name))
                    .collect(),
            );
        }
    }
    None
}

/// Whether part `a` of the old message and `b` of the new one are the same part: its type,
/// and its bytes (parts of one name often have one size).
fn same(a: &Entry, old: &File, b: &Entry, new: &File) -> bool {
    if a.info.content_type != b.info.content_type
        || a.data.size() != b.data.size()
        || a.nested.is_some() != b.nested.is_some()
    {
        return false;
    }
    matches!((a.data.read_all(old), b.data.read_all(new)), (Ok(x), Ok(y)) if x == y)
}
