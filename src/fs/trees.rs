//! The cache of parsed parts trees, bounded in bytes rather than in entries: one tree can hold
//! a 30 MB text body, so 256 of them was gigabytes. Parsing is done one message at a time, so
//! the memory a parse needs on the way (the skeleton, mail-parser's own copy) is spent once
//! per process, not once per FUSE thread.
//!
//! Lock order: `parse` before `map`; `map` is never held during a parse.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::mail::mime::{self, Tree};
use crate::store::spool::Stamp;

/// Bytes of parsed trees kept at most (the last one parsed is kept even if it alone is more).
pub const TREE_BUDGET: usize = 32 << 20;
/// Trees kept at most, however small (bounds the cost of finding what to drop).
const TREE_CAP: usize = 4096;

struct Cached {
    stamp: Stamp,
    /// Parsed when the stamp was already settled; an unsettled one is parsed once more.
    settled: bool,
    tree: Arc<Tree>,
    bytes: usize,
    used: u64,
}

#[derive(Default)]
struct Map {
    by_name: HashMap<String, Cached>,
    bytes: usize,
    clock: u64,
}

#[derive(Default)]
pub struct TreeCache {
    map: Mutex<Map>,
    parse: Mutex<()>,
}

impl TreeCache {
    /// The cached tree of `name` if it was parsed from this version.
    pub fn get(&self, name: &str, stamp: Stamp) -> Option<Arc<Tree>> {
        let mut m = self.map.lock();
        m.clock += 1;
        let now = m.clock;
        let c = m.by_name.get_mut(name)?;
        if c.stamp == stamp && (c.settled || !stamp.is_settled()) {
            c.used = now;
            return Some(c.tree.clone());
        }
        None
    }

    /// The last tree parsed for `name`, whatever its version (to find the inodes it showed).
    pub fn last(&self, name: &str) -> Option<Arc<Tree>> {
        self.map.lock().by_name.get(name).map(|c| c.tree.clone())
    }

    pub fn remove(&self, name: &str) {
        let mut m = self.map.lock();
        if let Some(c) = m.by_name.remove(name) {
            m.bytes -= c.bytes;
        }
    }

    /// The tree of `name` at `stamp`: from the cache, else parsed from `path` (one parse at a
    /// time), passed through `adjust` and cached.
    pub fn get_or_parse(
        &self,
        name: &str,
        stamp: Stamp,
        path: &Path,
        adjust: impl FnOnce(&mut Tree),
    ) -> std::io::Result<Arc<Tree>> {
        if let Some(t) = self.get(name, stamp) {
            return Ok(t);
        }
        let _one = self.parse.lock();
        // Another thread may have parsed it while this one waited.
        if let Some(t) = self.get(name, stamp) {
            return Ok(t);
        }
        let mut tree = mime::build(path)?;
        adjust(&mut tree);
        let tree = Arc::new(tree);
        self.insert(name, stamp, tree.clone());
        Ok(tree)
    }

    fn insert(&self, name: &str, stamp: Stamp, tree: Arc<Tree>) {
        let bytes = tree.heap_size() + name.len();
        let mut m = self.map.lock();
        if let Some(old) = m.by_name.remove(name) {
            m.bytes -= old.bytes;
        }
        // Least recently used first, until the new tree fits (or nothing else is left).
        while !m.by_name.is_empty() && (m.bytes + bytes > TREE_BUDGET || m.by_name.len() >= TREE_CAP) {
            let Some(oldest) = m
                .by_name
                .iter()
                .min_by_key(|(_, c)| c.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(c) = m.by_name.remove(&oldest) {
                m.bytes -= c.bytes;
            }
        }
        m.clock += 1;
        let used = m.clock;
        m.bytes += bytes;
        m.by_name.insert(
            name.to_string(),
            Cached {
                stamp,
                settled: stamp.is_settled(),
                tree,
                bytes,
                used,
            },
        );
    }

    /// Bytes and trees held now.
    pub fn usage(&self) -> (usize, usize) {
        let m = self.map.lock();
        (m.bytes, m.by_name.len())
    }
}
