//! The inode table: which name each inode number stands for, and how many references to it
//! the kernel holds (its lookup count), so the table shrinks when the kernel forgets.
//!
//! A spool of 100,000 messages shows 200,000 names (each `X.eml` and its `X.eml.parts/`), and
//! an `ls -l` makes the kernel hold all of them, so the common entries are kept compact: a
//! message and its top parts directory share one `Arc<str>` name, and each is stored once
//! per direction (name -> inode, inode -> entry). Other kinds (parts, nested parts, scratch
//! and staged files) are few and keep their full [`Key`].
//!
//! An entry the kernel does not hold (count 0: handed out in a plain directory listing, used
//! inside mailfs, or forgotten by the kernel) is removed by [`Inodes::sweep`] once it has not
//! been used for [`IDLE`]: removing it at once would race a lookup that was just given the
//! same number and has not yet been counted ([`Inodes::hold`] runs after the reply).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Key, ROOT};

/// How long an entry the kernel does not hold stays after its last use.
pub(super) const IDLE: Duration = Duration::from_secs(10);

enum Stands {
    Message(Arc<str>),
    Parts(Arc<str>),
    Other(Box<Key>),
}

struct Slot {
    stands: Stands,
    /// References the kernel holds (lookup replies, READDIRPLUS entries, less FORGETs).
    count: u64,
    /// Seconds since the table's start at the last use.
    used: u32,
}

pub(super) struct Inodes {
    messages: HashMap<Arc<str>, u64>,
    parts: HashMap<Arc<str>, u64>,
    others: HashMap<Key, u64>,
    slots: HashMap<u64, Slot>,
    next: u64,
    start: Instant,
    /// Entries at count 0 made or released since the last sweep.
    idle: usize,
    last_sweep: u32,
}

impl Default for Inodes {
    fn default() -> Inodes {
        let mut others = HashMap::new();
        others.insert(Key::Root, ROOT);
        let mut slots = HashMap::new();
        slots.insert(
            ROOT,
            Slot {
                stands: Stands::Other(Box::new(Key::Root)),
                count: 1,
                used: 0,
            },
        );
        Inodes {
            messages: HashMap::new(),
            parts: HashMap::new(),
            others,
            slots,
            next: ROOT,
            start: Instant::now(),
            idle: 0,
            last_sweep: 0,
        }
    }
}

impl Inodes {
    fn now(&self) -> u32 {
        self.start.elapsed().as_secs() as u32
    }

    /// The inode of `key` if it has one.
    pub(super) fn get(&self, key: &Key) -> Option<u64> {
        match key {
            Key::Message(n) => self.messages.get(n.as_str()).copied(),
            Key::Parts { msg, nest } if nest.is_empty() => self.parts.get(msg.as_str()).copied(),
            _ => self.others.get(key).copied(),
        }
    }

    pub(super) fn key(&self, ino: u64) -> Option<Key> {
        self.slots.get(&ino).map(|s| match &s.stands {
            Stands::Message(n) => Key::Message(n.to_string()),
            Stands::Parts(n) => Key::Parts {
                msg: n.to_string(),
                nest: Vec::new(),
            },
            Stands::Other(k) => (**k).clone(),
        })
    }

    /// One shared copy of a message name for its `.eml` and its parts directory.
    fn shared(&self, name: &str) -> Arc<str> {
        self.messages
            .get_key_value(name)
            .or_else(|| self.parts.get_key_value(name))
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| Arc::from(name))
    }

    /// The inode of `key`, given one if it has none; not counted as held by the kernel.
    pub(super) fn ino(&mut self, key: &Key) -> u64 {
        let now = self.now();
        if let Some(i) = self.get(key) {
            if let Some(s) = self.slots.get_mut(&i) {
                s.used = now;
            }
            return i;
        }
        self.next += 1;
        let i = self.next;
        self.insert(key, i, 0, now);
        self.idle += 1;
        i
    }

    fn insert(&mut self, key: &Key, i: u64, count: u64, used: u32) {
        let stands = match key {
            Key::Message(n) => {
                let n = self.shared(n);
                self.messages.insert(n.clone(), i);
                Stands::Message(n)
            }
            Key::Parts { msg, nest } if nest.is_empty() => {
                let n = self.shared(msg);
                self.parts.insert(n.clone(), i);
                Stands::Parts(n)
            }
            _ => {
                self.others.insert(key.clone(), i);
                Stands::Other(Box::new(key.clone()))
            }
        };
        self.slots.insert(i, Slot { stands, count, used });
    }

    /// The kernel took a reference to `ino` (an entry reply reached it).
    pub(super) fn hold(&mut self, ino: u64) {
        let now = self.now();
        if let Some(s) = self.slots.get_mut(&ino) {
            s.count += 1;
            s.used = now;
        }
    }

    /// The kernel dropped `n` references to `ino` (FORGET).
    pub(super) fn release(&mut self, ino: u64, n: u64) {
        let now = self.now();
        if let Some(s) = self.slots.get_mut(&ino) {
            s.count = s.count.saturating_sub(n);
            if s.count == 0 {
                self.idle += 1;
            }
        }
        self.maybe_sweep(now);
    }

    fn remove_slot(&mut self, ino: u64) {
        if ino == ROOT {
            return;
        }
        if let Some(s) = self.slots.remove(&ino) {
            // A number retired by `rekey` no longer holds its name.
            match s.stands {
                Stands::Message(n) => {
                    if self.messages.get(&*n) == Some(&ino) {
                        self.messages.remove(&*n);
                    }
                }
                Stands::Parts(n) => {
                    if self.parts.get(&*n) == Some(&ino) {
                        self.parts.remove(&*n);
                    }
                }
                Stands::Other(k) => {
                    if self.others.get(&*k) == Some(&ino) {
                        self.others.remove(&*k);
                    }
                }
            }
        }
    }

    /// Gives the name `ino` stands for a new number; the old one stays known (for handles
    /// open on it) until [`Self::drop_retired`]. None if `ino` is not its name's number.
    pub(super) fn rekey(&mut self, ino: u64) -> Option<u64> {
        let key = self.key(ino)?;
        if self.get(&key) != Some(ino) {
            return None;
        }
        match &key {
            Key::Message(n) => {
                self.messages.remove(n.as_str());
            }
            Key::Parts { msg, nest } if nest.is_empty() => {
                self.parts.remove(msg.as_str());
            }
            _ => {
                self.others.remove(&key);
            }
        }
        Some(self.ino(&key))
    }

    /// Forgets a number [`Self::rekey`] retired; nothing while it is still its name's.
    pub(super) fn drop_retired(&mut self, ino: u64) {
        if let Some(key) = self.key(ino)
            && self.get(&key) != Some(ino)
        {
            self.slots.remove(&ino);
        }
    }

    /// The name is gone: its inode no longer stands for anything.
    pub(super) fn forget_key(&mut self, key: &Key) {
        if let Some(i) = self.get(key) {
            self.remove_slot(i);
        }
    }

    /// A rename keeps the inode (open handles and the kernel's dentry stay valid).
    pub(super) fn rename(&mut self, from: &Key, to: Key) {
        self.forget_key(&to);
        let Some(i) = self.get(from) else {
            return;
        };
        let Some(slot) = self.slots.remove(&i) else {
            return;
        };
        match slot.stands {
            Stands::Message(n) => {
                self.messages.remove(&n);
            }
            Stands::Parts(n) => {
                self.parts.remove(&n);
            }
            Stands::Other(k) => {
                self.others.remove(&*k);
            }
        }
        self.insert(&to, i, slot.count, self.now());
    }

    fn maybe_sweep(&mut self, now: u32) {
        if self.idle >= 4096 && now.saturating_sub(self.last_sweep) >= IDLE.as_secs() as u32 {
            self.sweep(now.saturating_sub(IDLE.as_secs() as u32));
        }
    }

    /// Removes the entries the kernel does not hold that were last used before `before`
    /// (seconds since the table's start).
    pub(super) fn sweep(&mut self, before: u32) {
        let gone: Vec<u64> = self
            .slots
            .iter()
            .filter(|(i, s)| **i != ROOT && s.count == 0 && s.used < before)
            .map(|(i, _)| *i)
            .collect();
        for i in gone {
            self.remove_slot(i);
        }
        self.idle = 0;
        self.last_sweep = self.now();
        // A table that shrank a lot gives its memory back.
        for m in [&mut self.messages, &mut self.parts] {
            if m.capacity() > 4 * m.len().max(1024) {
                m.shrink_to_fit();
            }
        }
        if self.slots.capacity() > 4 * self.slots.len().max(1024) {
            self.slots.shrink_to_fit();
        }
    }

    /// Gives entries made by plain listings a chance to go (called at each new listing).
    pub(super) fn tick(&mut self) {
        let now = self.now();
        self.maybe_sweep(now);
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    #[cfg(test)]
    pub(super) fn count(&self, ino: u64) -> Option<u64> {
        self.slots.get(&ino).map(|s| s.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(n: &str) -> Key {
        Key::Message(n.to_string())
    }

    fn parts(n: &str) -> Key {
        Key::Parts {
            msg: n.to_string(),
            nest: Vec::new(),
        }
    }

    #[test]
    fn the_table_shrinks_when_the_kernel_forgets() {
        let mut t = Inodes::default();
        let mut held = Vec::new();
        for i in 0..1000 {
            let n = format!("m{i}.eml");
            for k in [msg(&n), parts(&n)] {
                let ino = t.ino(&k);
                t.hold(ino);
                held.push(ino);
            }
        }
        assert_eq!(t.len(), 2001);
        // A held entry survives any sweep.
        t.sweep(u32::MAX);
        assert_eq!(t.len(), 2001);
        for &ino in &held[..1500] {
            t.release(ino, 1);
        }
        t.sweep(u32::MAX);
        assert_eq!(t.len(), 501, "forgotten inodes leave the table");
        // The ones still held keep their names and numbers.
        let last = held[1999];
        assert_eq!(t.key(last), Some(parts("m999.eml")));
        assert_eq!(t.get(&parts("m999.eml")), Some(last));
        assert_eq!(t.get(&msg("m0.eml")), None);
        assert_eq!(t.key(held[0]), None);
        assert_eq!(t.key(ROOT), Some(Key::Root));
    }

    #[test]
    fn a_recently_used_entry_is_not_swept_even_at_count_zero() {
        let mut t = Inodes::default();
        let a = t.ino(&msg("a.eml"));
        // Given out by a lookup whose reply is not counted yet: a sweep of idle entries
        // (older than now) must keep it.
        t.sweep(t.now());
        assert_eq!(t.key(a), Some(msg("a.eml")));
        t.hold(a);
        t.release(a, 1);
        assert_eq!(t.count(a), Some(0));
        t.sweep(u32::MAX);
        assert_eq!(t.key(a), None);
        // A new lookup of the name gets a new number.
        assert_ne!(t.ino(&msg("a.eml")), a);
    }

    #[test]
    fn counts_add_up_and_a_rename_keeps_number_and_count() {
        let mut t = Inodes::default();
        let a = t.ino(&msg("a.eml"));
        t.hold(a);
        t.hold(a);
        t.release(a, 1);
        assert_eq!(t.count(a), Some(1));
        let b = t.ino(&msg("b.eml"));
        t.rename(&msg("a.eml"), msg("b.eml"));
        assert_eq!(t.get(&msg("b.eml")), Some(a));
        assert_eq!(t.get(&msg("a.eml")), None);
        assert_eq!(t.key(b), None, "the replaced name's inode is gone");
        assert_eq!(t.count(a), Some(1));
        t.sweep(u32::MAX);
        assert_eq!(t.key(a), Some(msg("b.eml")));
        // A message and its parts directory share one copy of the name.
        let p = t.ino(&parts("b.eml"));
        let (
            Some(Slot {
                stands: Stands::Message(x),
                ..
            }),
            Some(Slot {
                stands: Stands::Parts(y),
                ..
            }),
        ) = (t.slots.get(&a), t.slots.get(&p))
        else {
            panic!("compact entries expected");
        };
        assert!(Arc::ptr_eq(x, y));
    }

    #[test]
    fn a_retired_number_stays_known_until_dropped() {
        let mut t = Inodes::default();
        let a = t.ino(&msg("a.eml"));
        t.hold(a);
        let b = t.rekey(a).unwrap();
        assert_ne!(a, b);
        assert_eq!(t.get(&msg("a.eml")), Some(b));
        assert_eq!(
            t.key(a),
            Some(msg("a.eml")),
            "open handles still resolve the old number"
        );
        assert_eq!(t.rekey(a), None, "only the current number is retired");
        t.drop_retired(b);
        assert_eq!(t.key(b), Some(msg("a.eml")), "the current number is not dropped");
        t.drop_retired(a);
        assert_eq!(t.key(a), None);
        // Forgetting the old number does not take the name from the new one.
        let c = t.rekey(b).unwrap();
        t.hold(c);
        t.sweep(u32::MAX);
        assert_eq!(t.key(b), None, "b was never held: swept");
        assert_eq!(t.get(&msg("a.eml")), Some(c));
    }

    #[test]
    fn other_keys_round_trip() {
        let mut t = Inodes::default();
        let k = Key::Part {
            msg: "a.eml".into(),
            nest: vec!["fwd.eml".into()],
            name: "Body.txt".into(),
        };
        let i = t.ino(&k);
        assert_eq!(t.key(i), Some(k.clone()));
        assert_eq!(t.ino(&k), i);
        t.forget_key(&k);
        assert_eq!(t.key(i), None);
    }
}
