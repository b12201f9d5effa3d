//! Message attributes (SPEC §4): status, recipients, owner, ids, dates.

use super::*;

/// Message status (SPEC §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    Draft,
    Pending,
    Sent,
    Error,
    Received,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "Draft",
            Status::Pending => "Pending",
            Status::Sent => "Sent",
            Status::Error => "Error",
            Status::Received => "Received",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TryStatus {
    None,
    TempFail,
    Fail,
}

impl TryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TryStatus::None => "None",
            TryStatus::TempFail => "TempFail",
            TryStatus::Fail => "Fail",
        }
    }
}

/// Where one recipient stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RcptStatus {
    Pending,
    Sent,
    TempFail,
    Failed,
}

impl RcptStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RcptStatus::Pending => "Pending",
            RcptStatus::Sent => "Sent",
            RcptStatus::TempFail => "TempFail",
            // The message's own word for a permanent failure (SPEC §4 status `Error`); the
            // attribute file keeps the variant's name, `Failed`, as before.
            RcptStatus::Failed => "Error",
        }
    }
    /// Still to be delivered.
    pub fn is_open(self) -> bool {
        matches!(self, RcptStatus::Pending | RcptStatus::TempFail)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub address: String,
    pub status: RcptStatus,
    pub tries: u32,
    pub last_reply: String,
}

impl Recipient {
    pub fn new(address: String) -> Self {
        Recipient {
            address,
            status: RcptStatus::Pending,
            tries: 0,
            last_reply: String::new(),
        }
    }
    pub fn domain(&self) -> &str {
        domain_of(&self.address)
    }
}

/// The domain of an address as written (after the last `@`).
pub fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
}

/// The recipient domain an address is grouped by: one delivery job, one transaction and one
/// set of per-domain limits for `b@example.org` and `B@Example.ORG` alike, since domain
/// names are compared without regard to case (RFC 5321 §2.4). The addresses themselves are
/// sent as written. The scheduler makes jobs by it and the attempt picks a job's recipients by
/// it, so both always agree.
pub fn domain_key(address: &str) -> String {
    let d = domain_of(address);
    if d.is_ascii() {
        return d.to_ascii_lowercase();
    }
    // An internationalised domain by its A-labels, the form it goes out in: `exämple.org`,
    // `EXÄMPLE.org` and `xn--exmple-cua.org` are one domain (UTS 46 maps case too).
    idna::domain_to_ascii(d).unwrap_or_else(|_| d.to_lowercase())
}

/// Message attributes, stored in `X.struct` beside `X.eml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageAttrs {
    /// Message-ID used when the content has none (added to the content when it becomes ready).
    pub message_id: String,
    pub env_from: Option<String>,
    pub env_to: Option<Vec<String>>,
    pub status: Status,
    pub is_ready: bool,
    pub first_try_date: Option<i64>,
    pub last_try_date: Option<i64>,
    pub try_until_date: Option<i64>,
    pub expire_date: Option<i64>,
    /// When the senders may try again (unix seconds); `None` means now.
    pub next_try_date: Option<i64>,
    pub try_count: u32,
    pub last_try_status: TryStatus,
    pub last_try_msg: String,
    pub recipients: Vec<Recipient>,
    pub user: BTreeMap<String, Vec<u8>>,
    /// Who the message belongs to (SPEC §10); `None` for messages stored before owners were
    /// recorded, which belong to the node's owner.
    pub owner: Option<Owner>,
    /// Permission bits the owner chose (chmod of a Draft, to share it with the group).
    pub mode: u16,
    /// `user.hold`: a Pending message that is not attempted until released.
    pub hold: bool,
    /// The `delay` notice has gone (it goes once).
    pub delay_notified: bool,
    /// Internal flags added after format 2, so that a new one needs no format change:
    /// mailfs-only, never shown as attributes.
    pub internal: BTreeMap<String, String>,
}

/// `MessageAttrs::internal` keys: when a hold before the first attempt began (unix seconds),
/// and the seconds held before it by holds already released.
const HELD_FROM: &str = "held_from";
const HELD_SECS: &str = "held_secs";

/// A message's owner: the user that created it (SPEC §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// The permission bits of a new message (SPEC §10).
pub const DEFAULT_MESSAGE_MODE: u16 = 0o600;

/// `MessageAttrs` as format 1 stored it, before owners: read to upgrade old spools.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageAttrsV1 {
    pub message_id: String,
    pub env_from: Option<String>,
    pub env_to: Option<Vec<String>>,
    pub status: Status,
    pub is_ready: bool,
    pub first_try_date: Option<i64>,
    pub last_try_date: Option<i64>,
    pub try_until_date: Option<i64>,
    pub expire_date: Option<i64>,
    pub next_try_date: Option<i64>,
    pub try_count: u32,
    pub last_try_status: TryStatus,
    pub last_try_msg: String,
    pub recipients: Vec<Recipient>,
    pub user: BTreeMap<String, Vec<u8>>,
}

impl From<MessageAttrsV1> for MessageAttrs {
    fn from(v: MessageAttrsV1) -> Self {
        MessageAttrs {
            message_id: v.message_id,
            env_from: v.env_from,
            env_to: v.env_to,
            status: v.status,
            is_ready: v.is_ready,
            first_try_date: v.first_try_date,
            last_try_date: v.last_try_date,
            try_until_date: v.try_until_date,
            expire_date: v.expire_date,
            next_try_date: v.next_try_date,
            try_count: v.try_count,
            last_try_status: v.last_try_status,
            last_try_msg: v.last_try_msg,
            recipients: v.recipients,
            user: v.user,
            owner: None,
            mode: DEFAULT_MESSAGE_MODE,
            hold: false,
            delay_notified: false,
            internal: BTreeMap::new(),
        }
    }
}

impl MessageAttrs {
    /// In the queue: handed to the senders (Pending and ready), held or not.
    pub fn is_queued(&self) -> bool {
        self.status == Status::Pending && self.is_ready
    }

    /// In the queue and not held: the senders may take it when it is due.
    pub fn is_sendable(&self) -> bool {
        self.is_queued() && !self.hold
    }

    pub fn new_draft() -> Self {
        MessageAttrs {
            message_id: new_message_id(),
            env_from: None,
            env_to: None,
            status: Status::Draft,
            is_ready: false,
            first_try_date: None,
            last_try_date: None,
            try_until_date: None,
            expire_date: None,
            next_try_date: None,
            try_count: 0,
            last_try_status: TryStatus::None,
            last_try_msg: String::new(),
            recipients: Vec::new(),
            user: BTreeMap::new(),
            owner: None,
            mode: DEFAULT_MESSAGE_MODE,
            hold: false,
            delay_notified: false,
            internal: BTreeMap::new(),
        }
    }

    /// What a message whose attribute file cannot be decoded shows (SPEC §2: nothing is lost
    /// because it could not be parsed): frozen and `Error`, so that nothing sends it again or
    /// makes it ready anew (it may have gone out already), with the reason in
    /// `last_try_msg`. Its content stays readable and removing it works as for any `Error`
    /// message; nothing is written back until then.
    pub fn damaged(why: &str, message_id: String, owner: Option<Owner>) -> Self {
        MessageAttrs {
            message_id,
            status: Status::Error,
            is_ready: true,
            last_try_msg: format!(
                "the attribute file cannot be read ({why}); the content is kept: restore the \
                 attribute file, or remove the message"
            ),
            owner,
            ..MessageAttrs::new_draft()
        }
    }

    pub fn frozen(&self) -> bool {
        self.is_ready || self.status != Status::Draft
    }

    /// Follows a hold or release of a queued message before its first attempt: time held
    /// counts toward queue_time (SPEC §4), so the time between a hold and its release is kept
    /// and the deadline counted from that much before the first attempt. Only the time held
    /// counts: waiting on `hold_domains` or the rate limits after a release does not
    /// (audit-23 C9).
    pub fn note_hold(&mut self, now: i64) {
        if !self.is_queued() || self.first_try_date.is_some() {
            return;
        }
        if self.hold {
            self.internal
                .entry(HELD_FROM.to_string())
                .or_insert_with(|| now.to_string());
        } else if let Some(from) = self.internal.remove(HELD_FROM) {
            let held = from.parse::<i64>().map_or(0, |f| (now - f).max(0));
            let before = self.held_secs();
            self.internal
                .insert(HELD_SECS.to_string(), (before + held).to_string());
        }
    }

    fn held_secs(&self) -> i64 {
        self.internal
            .get(HELD_SECS)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0)
    }

    /// Where queue_time counts from, once the first attempt is at `first`: that attempt, less
    /// the time the message was held before it.
    pub fn queue_start(&self, first: i64) -> i64 {
        let held_now = self
            .internal
            .get(HELD_FROM)
            .and_then(|v| v.parse::<i64>().ok())
            .map_or(0, |f| (first - f).max(0));
        first - self.held_secs() - held_now
    }

    /// The status a message has from its recipients' outcomes.
    pub fn status_from_recipients(&self) -> Status {
        if self.recipients.iter().any(|r| r.status == RcptStatus::Failed) {
            if self.recipients.iter().any(|r| r.status.is_open()) {
                Status::Pending
            } else {
                Status::Error
            }
        } else if self.recipients.iter().all(|r| r.status == RcptStatus::Sent) {
            Status::Sent
        } else {
            Status::Pending
        }
    }

    /// `user.recipients`: one line per recipient, within the 64 KiB an attribute value may
    /// have (a longer one is E2BIG to every reader: `getfattr -d`, `rsync -X` and `tar
    /// --xattrs` failed on a message to 200 recipients with long replies); the lines past it
    /// are counted on a last line.
    pub fn recipients_text(&self) -> String {
        const MAX: usize = 65536 - 64;
        let mut out = String::new();
        for (i, r) in self.recipients.iter().enumerate() {
            let reply = if r.last_reply.is_empty() {
                "-"
            } else {
                &r.last_reply
            };
            let line = format!("{} {} {} {}\n", r.address, r.status.as_str(), r.tries, reply);
            if out.len() + line.len() > MAX {
                out.push_str(&format!("... and {} more\n", self.recipients.len() - i));
                break;
            }
            out.push_str(&line);
        }
        out
    }
}

/// Attributes only mailfs sets (EPERM for users).
pub const MAILFS_ATTRS: &[&str] = &[
    "name",
    "message_id",
    "status",
    "first_try_date",
    "last_try_date",
    "try_until_date",
    "expire_date",
    "try_count",
    "last_try_status",
    "last_try_msg",
    "recipients",
];

/// A Message-ID for a message file that has no attribute file (put in the spool directly):
/// derived from its name and inode, so it stays the same however often it is looked at.
pub fn stable_message_id(name: &str, ino: u64) -> String {
    use std::hash::{Hash, Hasher};
    // DefaultHasher::new() has fixed keys: the same input gives the same ID in every process.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    format!("<{:016x}.{ino}@{}>", h.finish(), hostname())
}

pub fn new_message_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    format!(
        "<{}.{:x}.{}.{}@{}>",
        now.as_secs(),
        now.subsec_nanos(),
        std::process::id(),
        seq,
        hostname()
    )
}

/// RFC 3339 UTC, second precision: `2026-11-23T12:00:00Z`.
pub fn fmt_date(secs: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp(secs, 0)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

pub fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}
