//! The operator's commands on a spool, mounted or not: `queue`, `flush`, `cancel`, and the
//! submission programs `sendmail` and `deliver`. They work through the spool files and the
//! per-message locks only, so they are safe beside a running mount or `serve`.

use std::io::{self, BufRead, Read, Write};
use std::path::Path;

use serde::Serialize;

use crate::attrs::{
    MessageAttrs, Recipient, Status, fmt_date, hostname, parse_address_list, validate_address,
};
use crate::cli::SendmailArgs;
use crate::content::{self, HeaderInfo};
use crate::error::{Error, Result};
use crate::spool::Spool;

#[derive(Serialize)]
struct RcptRow {
    address: String,
    status: String,
    tries: u32,
    last_reply: String,
}

#[derive(Serialize)]
struct Row {
    name: String,
    status: String,
    size: u64,
    tries: u32,
    next_try: Option<String>,
    last_try_status: String,
    last_reply: String,
    env_from: Option<String>,
    recipients: Vec<RcptRow>,
}

fn open_existing(spool_dir: &Path) -> Result<Spool> {
    if !spool_dir.is_dir() {
        return Err(Error::NotFound(format!(
            "spool {} does not exist",
            spool_dir.display()
        )));
    }
    Spool::open(spool_dir)
}

pub fn queue(spool_dir: &Path, json: bool) -> Result<()> {
    let spool = open_existing(spool_dir)?;
    let mut names = spool.list_messages()?;
    names.sort_unstable();
    let mut rows = Vec::with_capacity(names.len());
    for name in names {
        let size = std::fs::metadata(spool.eml_path(&name))
            .map(|m| m.len())
            .unwrap_or(0);
        let a = match spool.read_attrs(&name) {
            Ok(Some((a, _))) => a,
            Ok(None) => MessageAttrs::new_draft(),
            Err(e) => {
                log::warn!("{name}: {e}");
                continue;
            }
        };
        let next_try = (a.status == Status::Pending && a.is_ready)
            .then(|| fmt_date(a.next_try_date.unwrap_or_else(crate::attrs::now_secs)));
        rows.push(Row {
            name,
            status: a.status.as_str().into(),
            size,
            tries: a.try_count,
            next_try,
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
    let out = io::stdout();
    let mut out = out.lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &rows).map_err(|e| Error::Io(io::Error::other(e)))?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<40} {:<8} {:>9} {:>5} {:<20} LAST-REPLY",
        "NAME", "STATUS", "SIZE", "TRIES", "NEXT-TRY"
    )?;
    for r in &rows {
        writeln!(
            out,
            "{:<40} {:<8} {:>9} {:>5} {:<20} {}",
            r.name,
            r.status,
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
    writeln!(out, "-- {} messages, {} pending", rows.len(), pending)?;
    Ok(())
}

pub fn flush(spool_dir: &Path) -> Result<()> {
    let spool = open_existing(spool_dir)?;
    let mut n = 0;
    for name in spool.list_messages()? {
        let Ok(Some(_lock)) = spool.try_lock(&name) else {
            continue;
        };
        let Ok(Some((mut a, _))) = spool.read_attrs(&name) else {
            continue;
        };
        if a.status == Status::Pending && a.is_ready {
            a.next_try_date = None;
            spool.write_attrs(&name, &a)?;
            spool.mark_ready(&name)?;
            n += 1;
        }
    }
    println!("{n} messages due now");
    Ok(())
}

pub fn cancel(spool_dir: &Path, names: &[String]) -> Result<()> {
    let spool = open_existing(spool_dir)?;
    let mut worst: Option<Error> = None;
    for name in names {
        let res = match spool.try_lock(name) {
            Ok(Some(_lock)) => spool.delete_message(name),
            Ok(None) => Err(Error::Busy(name.clone())),
            Err(e) => Err(e),
        };
        match res {
            Ok(()) => println!("cancelled {name}"),
            Err(e) => {
                eprintln!("mailfs: {name}: {e}");
                worst = Some(e);
            }
        }
    }
    match worst {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Reads a message into a temp file in the spool; when `stop_at_dot`, a line with a single
/// dot ends it (sendmail without `-i`). Returns the temp path.
fn read_to_tmp(spool: &Spool, input: &mut dyn Read, stop_at_dot: bool) -> Result<std::path::PathBuf> {
    let tmp = spool.tmp_path();
    let res = (|| -> io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        let mut r = io::BufReader::with_capacity(256 * 1024, input);
        if stop_at_dot {
            let mut line = Vec::new();
            loop {
                line.clear();
                if r.read_until(b'\n', &mut line)? == 0 {
                    break;
                }
                if line == b".\n" || line == b".\r\n" {
                    break;
                }
                f.write_all(&line)?;
            }
        } else {
            io::copy(&mut r, &mut f)?;
        }
        f.sync_all()
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::Io(e));
    }
    Ok(tmp)
}

/// sendmail failures are temporary unless the input itself is wrong.
fn tempfail(e: Error) -> Error {
    match e {
        Error::Io(io) => Error::Busy(format!("spool unavailable: {io}")),
        other => other,
    }
}

/// Who a submitted message goes to and comes from, as sendmail's options say it.
#[derive(Debug, Clone, Default)]
pub struct Submission {
    /// The envelope sender; `Some("")` is the null sender. Default: the From header's
    /// address, else `$USER@hostname`.
    pub env_from: Option<String>,
    /// Envelope recipients (each may hold several, separated by commas).
    pub recipients: Vec<String>,
    /// Also take recipients from the To, Cc and Bcc headers (`-t`).
    pub recipients_from_headers: bool,
    /// The sender's full name for a From header made from the envelope sender (`-F`).
    pub full_name: Option<String>,
}

/// Queues a message ready to send, exactly as `mailfs sendmail` does: addresses validated,
/// From, Date and Message-ID added when missing, stored atomically in the spool with status
/// Pending, and handed to whichever senders serve the spool (a mount or `mailfs serve`).
/// Returns the message's name in the spool.
pub fn queue_message(spool: &Spool, content: &mut dyn Read, sub: &Submission) -> Result<String> {
    let tmp = read_to_tmp(spool, content, false)?;
    queue_tmp(spool, tmp, sub)
}

/// Recipients as given on a command line (each argument may hold several, comma-separated),
/// validated.
fn recipients(args: &[String]) -> Result<Vec<String>> {
    args.iter()
        .flat_map(|r| r.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| validate_address("recipient", p))
        .collect()
}

fn queue_tmp(spool: &Spool, tmp: std::path::PathBuf, sub: &Submission) -> Result<String> {
    let result = (|| -> Result<String> {
        let mut rcpts = recipients(&sub.recipients)?;
        let from_arg = match &sub.env_from {
            Some(f) if f.is_empty() || f == "<>" => Some(String::new()),
            Some(f) => Some(validate_address("-f", f)?),
            None => None,
        };
        let head = content::read_head(&tmp)?;
        let info = HeaderInfo::parse(&head);
        if sub.recipients_from_headers {
            for r in &info.recipients {
                if !rcpts.contains(r) {
                    rcpts.push(r.clone());
                }
            }
        }
        if rcpts.is_empty() {
            return Err(Error::Usage(
                "no recipients (give them as arguments or use -t)".into(),
            ));
        }
        let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
        let env_from = match from_arg {
            Some(f) => f,
            None => info
                .from
                .clone()
                .unwrap_or_else(|| format!("{user}@{}", hostname())),
        };
        // A missing From header is made from the envelope sender and -F.
        let mut attrs = MessageAttrs::new_draft();
        let eol = content::line_end(&head);
        let mut extra = Vec::new();
        if info.from.is_none() && !env_from.is_empty() {
            let from_line = match &sub.full_name {
                Some(n) => format!(
                    "From: \"{}\" <{env_from}>{eol}",
                    n.replace(['"', '\\', '\r', '\n'], "")
                ),
                None => format!("From: {env_from}{eol}"),
            };
            extra.extend_from_slice(from_line.as_bytes());
        }
        extra.extend_from_slice(&content::missing_headers(&info, &attrs.message_id, eol));
        let final_tmp = if extra.is_empty() {
            tmp.clone()
        } else {
            let t2 = spool.tmp_path();
            content::copy_with_prefix(&tmp, &t2, &extra)?;
            let _ = std::fs::remove_file(&tmp);
            t2
        };
        if let Some(id) = &info.message_id {
            attrs.message_id = id.clone();
        }
        attrs.env_from = Some(env_from);
        attrs.env_to = Some(rcpts.clone());
        attrs.recipients = rcpts.iter().cloned().map(Recipient::new).collect();
        attrs.status = Status::Pending;
        attrs.is_ready = true;
        let name = spool.unique_name("sendmail");
        spool.commit_tmp(&final_tmp, &name, &attrs)?;
        spool.mark_ready(&name)?;
        Ok(name)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

pub fn sendmail(a: &SendmailArgs) -> Result<()> {
    let spool = Spool::open(&a.spool).map_err(tempfail)?;
    let sub = Submission {
        env_from: a.from.clone(),
        recipients: a.recipients.clone(),
        recipients_from_headers: a.read_headers,
        full_name: a.full_name.clone(),
    };
    // Refuse bad addresses before reading the message.
    recipients(&sub.recipients)?;
    // `-oi` is the old spelling of `-i`.
    let ignore_dots = a.ignore_dots || a.o.iter().any(|o| o == "i");
    let tmp = read_to_tmp(&spool, &mut io::stdin().lock(), !ignore_dots).map_err(tempfail)?;
    queue_tmp(&spool, tmp, &sub).map(|_| ()).map_err(tempfail)
}

pub fn deliver(spool_dir: &Path) -> Result<()> {
    let spool = Spool::open(spool_dir).map_err(tempfail)?;
    let tmp = read_to_tmp(&spool, &mut io::stdin().lock(), false).map_err(tempfail)?;
    let info = content::read_head(&tmp)
        .map(|h| HeaderInfo::parse(&h))
        .unwrap_or_default();
    let mut attrs = MessageAttrs::new_draft();
    if let Some(id) = info.message_id {
        attrs.message_id = id;
    }
    attrs.status = Status::Received;
    // The MTA says who it was for; keep it for scripts.
    if let Ok(r) = std::env::var("RECIPIENT")
        && let Ok(list) = parse_address_list("env_to", r.as_bytes())
    {
        attrs.env_to = Some(list);
    }
    if let Ok(s) = std::env::var("SENDER")
        && let Ok(f) = validate_address("env_from", &s)
    {
        attrs.env_from = Some(f);
    }
    let name = spool.unique_name("received");
    spool.commit_tmp(&tmp, &name, &attrs).map_err(tempfail)?;
    Ok(())
}
