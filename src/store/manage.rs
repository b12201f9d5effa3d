//! The queue commands' work on a spool, for one caller: `queue` (and its summary by domain),
//! `flush`, `cancel`, `hold`, `release`. The same functions serve the commands run directly
//! on the spool (root, the spool's owner) and the requests of other users arriving over the
//! control socket (the `control` room), so both follow the same rules: a [`Scope`] says whose
//! messages the caller sees and may act on (SPEC §10).

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::attrs::{MessageAttrs, NodeAttrs, Status, domain_of, fmt_date, now_secs};
use crate::store::message;
use crate::store::spool::{Spool, is_message_name};

/// Whose messages a caller sees and acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Root and the node's owner: every message.
    All,
    /// Any other user: the messages this uid owns.
    Uid(u32),
}

impl Scope {
    /// The scope of a caller with this uid on a node owned by `node_owner`.
    pub fn of(uid: u32, node_owner: u32) -> Scope {
        // The same rule as the mount's (SPEC §10); the group plays no part in a scope.
        let caller = crate::model::access::Caller {
            uid,
            gid: u32::MAX,
            pid: 0,
        };
        if crate::model::access::is_privileged(caller, node_owner) {
            Scope::All
        } else {
            Scope::Uid(uid)
        }
    }

    /// Whether the message is the caller's. A message without a recorded owner (stored before
    /// owners were, or a Draft not yet given attributes) belongs to the node's owner.
    pub fn covers(self, attrs: &MessageAttrs, node_owner: u32) -> bool {
        match self {
            Scope::All => true,
            Scope::Uid(uid) => attrs.owner.map_or(node_owner, |o| o.uid) == uid,
        }
    }
}

/// The uid that owns the node: the owner of its spool directory.
pub fn node_owner(spool: &Spool) -> Result<u32> {
    Ok(std::fs::metadata(spool.root())?.uid())
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RcptRow {
    pub address: String,
    pub status: String,
    pub tries: u32,
    pub last_reply: String,
}

/// One message as `mailfs queue` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Row {
    pub name: String,
    pub status: String,
    /// `user.hold`: not attempted until released.
    pub held: bool,
    pub owner: Option<u32>,
    pub size: u64,
    pub tries: u32,
    pub next_try: Option<String>,
    /// Seconds since the message was queued (its content was last written).
    pub age: i64,
    pub last_try_status: String,
    pub last_reply: String,
    pub env_from: Option<String>,
    pub recipients: Vec<RcptRow>,
}

fn attrs_of(spool: &Spool, name: &str) -> Result<MessageAttrs> {
    Ok(match spool.read_attrs_shown(name)? {
        Some((a, _)) => a,
        None => MessageAttrs::new_draft(),
    })
}

/// Whether a queued message waits only on `hold_domains` (SPEC §3: "as if held"): every
/// recipient still open is in one of them.
fn held_by_domain(a: &MessageAttrs, hold_domains: &[String]) -> bool {
    let mut open = a.recipients.iter().filter(|r| r.status.is_open()).peekable();
    a.is_queued()
        && open.peek().is_some()
        && open
            .all(|r| crate::model::lists::holds(hold_domains, &crate::model::attrs::domain_key(&r.address)))
}

/// The caller's messages, sorted by name. A message held by `user.hold` or waiting only on
/// `hold_domains` shows as held.
pub fn rows(spool: &Spool, scope: Scope) -> Result<Vec<Row>> {
    let owner = node_owner(spool)?;
    let hold_domains = spool.load_node().map(|n| n.hold_domains).unwrap_or_default();
    let mut names = spool.list_messages()?;
    names.sort_unstable();
    let now = now_secs();
    let mut rows = Vec::with_capacity(names.len());
    for name in names {
        let a = match attrs_of(spool, &name) {
            Ok(a) => a,
            Err(e) => {
                log::warn!("{name}: {e}");
                continue;
            }
        };
        if !scope.covers(&a, owner) {
            continue;
        }
        let meta = std::fs::metadata(spool.eml_path(&name)).ok();
        let next_try = a
            .is_sendable()
            .then(|| fmt_date(a.next_try_date.unwrap_or_else(now_secs)));
        rows.push(Row {
            name,
            status: a.status.as_str().into(),
            held: a.hold || held_by_domain(&a, &hold_domains),
            owner: Some(a.owner.map_or(owner, |o| o.uid)),
            size: meta.as_ref().map_or(0, |m| m.len()),
            tries: a.try_count,
            next_try,
            age: meta.map_or(0, |m| (now - m.mtime()).max(0)),
            last_try_status: a.last_try_status.as_str().into(),
            last_reply: a.last_try_msg.clone(),
            env_from: a.env_from.clone(),
            recipients: a
                .recipients
                .iter()
                .map(|r| RcptRow {
                    address: r.address.clone(),
                    status: r.status.as_str().into(),
                    tries: r.tries,
                    last_reply: r.last_reply.clone(),
                })
                .collect(),
        });
    }
    Ok(rows)
}

/// The `mailq`-style table (or JSON). A held message shows status `Held`.
pub fn print_rows(rows: &[Row], json: bool) -> Result<()> {
    reader_gone_is_done(write_rows(&mut io::stdout().lock(), rows, json))
}

/// Standard output closed by its reader (`mailfs queue | head`): it has what it wanted, as with
/// any filter; not an error. Only for what goes to standard output: a broken pipe anywhere
/// else (the control socket while a message is streamed) stays an error.
fn reader_gone_is_done(r: io::Result<()>) -> Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(Error::Io),
    }
}

fn write_rows(out: &mut impl Write, rows: &[Row], json: bool) -> io::Result<()> {
    if json {
        serde_json::to_writer_pretty(&mut *out, rows).map_err(io::Error::from)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<40} {:<8} {:>9} {:>5} {:<20} LAST-REPLY",
        "NAME", "STATUS", "SIZE", "TRIES", "NEXT-TRY"
    )?;
    for r in rows {
        let status = if r.held && r.status == "Pending" {
            "Held"
        } else {
            &r.status
        };
        writeln!(
            out,
            "{:<40} {:<8} {:>9} {:>5} {:<20} {}",
            r.name,
            status,
            r.size,
            r.tries,
            r.next_try.as_deref().unwrap_or("-"),
            if r.last_reply.is_empty() {
                "-"
            } else {
                &r.last_reply
            }
        )?;
        for rc in &r.recipients {
            writeln!(out, "    {} {} {}", rc.address, rc.status, rc.last_reply)?;
        }
    }
    let pending = rows.iter().filter(|r| r.status == "Pending").count();
    let held = rows.iter().filter(|r| r.held && r.status == "Pending").count();
    writeln!(
        out,
        "-- {} messages, {} pending, {} held",
        rows.len(),
        pending,
        held
    )?;
    Ok(())
}

/// Age buckets of the summary by domain, in minutes, as Postfix's qshape: a message counts
/// in the first bucket its age is under; the last column is everything older.
pub const AGE_BUCKETS: [i64; 9] = [5, 10, 20, 40, 80, 160, 320, 640, 1280];

/// One line of `mailfs queue --by-domain`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DomainShape {
    pub domain: String,
    /// Pending messages with an open recipient in the domain.
    pub total: u32,
    /// How many of them are held.
    pub held: u32,
    /// Counts per age bucket ([`AGE_BUCKETS`], then older).
    pub ages: Vec<u32>,
}

/// The summary by recipient domain of the Pending messages: a message counts once for each
/// domain it still has a recipient to deliver to. First line `TOTAL`, then domains by total.
pub fn shape(rows: &[Row]) -> Vec<DomainShape> {
    let empty = |d: &str| DomainShape {
        domain: d.to_string(),
        total: 0,
        held: 0,
        ages: vec![0; AGE_BUCKETS.len() + 1],
    };
    let mut total = empty("TOTAL");
    let mut by: BTreeMap<String, DomainShape> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.status == "Pending") {
        let bucket = AGE_BUCKETS
            .iter()
            .position(|m| r.age < m * 60)
            .unwrap_or(AGE_BUCKETS.len());
        let mut domains: Vec<String> = r
            .recipients
            .iter()
            .filter(|rc| rc.status == "Pending" || rc.status == "TempFail")
            .map(|rc| domain_of(&rc.address).to_ascii_lowercase())
            .collect();
        domains.sort_unstable();
        domains.dedup();
        let add = |s: &mut DomainShape| {
            s.total += 1;
            s.held += u32::from(r.held);
            s.ages[bucket] += 1;
        };
        add(&mut total);
        for d in domains {
            add(by.entry(d.clone()).or_insert_with(|| empty(&d)));
        }
    }
    let mut out: Vec<DomainShape> = by.into_values().collect();
    out.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.domain.cmp(&b.domain)));
    out.insert(0, total);
    out
}

pub fn print_shape(rows: &[Row], json: bool) -> Result<()> {
    reader_gone_is_done(write_shape(&mut io::stdout().lock(), rows, json))
}

fn write_shape(out: &mut impl Write, rows: &[Row], json: bool) -> io::Result<()> {
    let shape = shape(rows);
    if json {
        serde_json::to_writer_pretty(&mut *out, &shape).map_err(io::Error::from)?;
        writeln!(out)?;
        return Ok(());
    }
    write!(out, "{:>30} {:>5} {:>5}", "DOMAIN", "T", "HELD")?;
    for m in AGE_BUCKETS {
        write!(out, " {m:>5}")?;
    }
    writeln!(out, " {:>5}", format!("{}+", AGE_BUCKETS[AGE_BUCKETS.len() - 1]))?;
    for s in &shape {
        write!(out, "{:>30} {:>5} {:>5}", s.domain, s.total, s.held)?;
        for n in &s.ages {
            write!(out, " {n:>5}")?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// A name given on a command line (or over the socket), checked before it touches a path.
fn checked_name(name: &str) -> Result<()> {
    if is_message_name(name) && !name.starts_with('.') {
        Ok(())
    } else {
        Err(Error::invalid("name", format!("{name:?} is not a message name")))
    }
}

/// The message, if the caller may act on it: missing is NotFound, another's is Denied.
fn own(spool: &Spool, scope: Scope, node_owner: u32, name: &str) -> Result<MessageAttrs> {
    checked_name(name)?;
    if !spool.eml_path(name).is_file() {
        return Err(Error::NotFound(name.to_string()));
    }
    let a = attrs_of(spool, name)?;
    if !scope.covers(&a, node_owner) {
        return Err(Error::Denied(format!("{name} belongs to another user")));
    }
    Ok(a)
}

/// Makes every deferred message of the caller due now (held ones stay held). Returns how many.
pub fn flush(spool: &Spool, scope: Scope, notify: &dyn Fn(&str)) -> Result<usize> {
    let owner = node_owner(spool)?;
    let hold_domains = spool.load_node().map(|n| n.hold_domains).unwrap_or_default();
    let mut n = 0;
    for name in spool.list_messages()? {
        let Ok(Some(_lock)) = spool.try_lock(&name) else {
            continue;
        };
        let Ok(Some((mut a, _))) = spool.read_attrs(&name) else {
            continue;
        };
        if a.is_sendable() && scope.covers(&a, owner) && !held_by_domain(&a, &hold_domains) {
            a.next_try_date = None;
            spool.write_attrs(&name, &a)?;
            notify(&name);
            n += 1;
        }
    }
    Ok(n)
}

/// What happened to each name a command was given.
pub type Outcomes = Vec<(String, Result<()>)>;

/// Removes the caller's messages (EBUSY while one is being sent): queued ones (SPEC §1), and
/// those that are done (Sent, Error, Received: a node served without a mount has no other
/// way to clear them). A Draft is refused (65): it is not queued, it is work in progress,
/// which `rm` on the mount removes.
pub fn cancel(spool: &Spool, scope: Scope, names: &[String]) -> Result<Outcomes> {
    let owner = node_owner(spool)?;
    let node = spool.load_node().unwrap_or_default();
    Ok(names
        .iter()
        .map(|name| {
            let res = own(spool, scope, owner, name).and_then(|a| {
                if a.status == Status::Draft {
                    return Err(Error::invalid(
                        "cancel",
                        format!(
                            "{name} is a Draft, not queued: it is not cancelled (remove it with \
                             rm on the mount)"
                        ),
                    ));
                }
                match spool.try_lock(name)? {
                    Some(_lock) => remove_message(spool, &node, name),
                    None => Err(Error::Busy(name.clone())),
                }
            });
            (name.clone(), res)
        })
        .collect())
}

/// Removes a message whose lock the caller holds (`mailfs cancel`, `rm` on the mount). A
/// message that was queued to go ends there: like any final outcome it gets a log entry
/// (SPEC §8), naming the recipients it never reached. A Draft's removal is no outcome.
pub fn remove_message(spool: &Spool, node: &NodeAttrs, name: &str) -> Result<()> {
    let queued = spool
        .read_attrs(name)
        .ok()
        .flatten()
        .map(|(a, _)| a)
        .filter(MessageAttrs::is_queued);
    spool.delete_message(name)?;
    if let Some(a) = queued {
        let open: Vec<&str> = a
            .recipients
            .iter()
            .filter(|r| r.status.is_open())
            .map(|r| r.address.as_str())
            .collect();
        // A full disk is in the process log; the message is gone either way.
        let _ = crate::store::journal::write(
            spool,
            node,
            &a.message_id,
            &format!("{name} cancelled: not sent to {}", open.join(", ")),
        );
    }
    Ok(())
}

/// Holds (`hold`) or releases the named messages and, with `domain`, every Pending message
/// of the caller with a recipient still to deliver in that domain.
pub fn hold(
    spool: &Spool,
    scope: Scope,
    names: &[String],
    domain: Option<&str>,
    hold: bool,
    notify: &dyn Fn(&str),
) -> Result<Outcomes> {
    let owner = node_owner(spool)?;
    let mut targets: Vec<String> = names.to_vec();
    if let Some(d) = domain {
        let d = checked_domain(d)?;
        let mut all = spool.list_messages()?;
        all.sort_unstable();
        for name in all {
            let Ok(a) = attrs_of(spool, &name) else {
                continue;
            };
            let in_domain = a
                .recipients
                .iter()
                .any(|r| r.status.is_open() && r.domain().eq_ignore_ascii_case(&d));
            if a.status == Status::Pending
                && a.hold != hold
                && in_domain
                && scope.covers(&a, owner)
                && !targets.contains(&name)
            {
                targets.push(name);
            }
        }
    }
    Ok(targets
        .into_iter()
        .map(|name| {
            let res = own(spool, scope, owner, &name)
                .and_then(|_| message::set_hold(spool, &name, hold, notify).map(|_| ()));
            (name, res)
        })
        .collect())
}

/// A `--domain` value: a bare domain name.
pub fn checked_domain(d: &str) -> Result<String> {
    let d = d.trim().trim_start_matches('@');
    if d.is_empty()
        || d.len() > 253
        || d.starts_with('-')
        || !d
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'[' | b']' | b':'))
    {
        return Err(Error::invalid("--domain", format!("{d:?} is not a domain name")));
    }
    Ok(d.to_ascii_lowercase())
}

/// An error's line for `name`: the name first unless the message already holds it.
fn named(name: &str, e: &Error) -> String {
    let text = e.to_string();
    if text.contains(name) {
        text
    } else {
        format!("{name}: {text}")
    }
}

/// Prints one line per name (`VERB NAME`, or the error on stderr); fails with the last error.
pub fn report(verb: &str, outcomes: Outcomes) -> Result<()> {
    if outcomes.is_empty() {
        println!("no messages {verb}");
    }
    // Each failure is one line: those before the last here, the last as the error the
    // command ends with (SPEC §1), which names its message.
    let mut worst: Option<(String, Error)> = None;
    for (name, res) in outcomes {
        match res {
            Ok(()) => println!("{verb} {name}"),
            Err(e) => {
                if let Some((n, prev)) = worst.replace((name, e)) {
                    eprintln!("mailfs: {}", named(&n, &prev));
                }
            }
        }
    }
    worst.map_or(Ok(()), |(_, e)| Err(e))
}

#[cfg(test)]
mod tests;
