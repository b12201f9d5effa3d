//! Delivery notices (RFC 3464 multipart/report) to a message's envelope sender, as `notify`
//! asks (SPEC §3): `failure` when it ends in Error, `delay` once when it is still not
//! delivered after delay_warning_time, `success` when it is delivered. Each is queued through
//! the same node from the null sender `<>`, and none ever goes to the null sender, so a notice
//! that fails itself never causes another.

use mail_builder::MessageBuilder;
use mail_builder::headers::content_type::ContentType;
use mail_builder::mime::MimePart;

use crate::mail::content;
use crate::model::attrs::{MessageAttrs, NodeAttrs, RcptStatus, Recipient, Status, fmt_date, hostname};
use crate::store::node::Node;

/// Which notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Failure,
    Delay,
    Success,
}

impl Kind {
    fn wanted(self, cfg: &NodeAttrs) -> bool {
        match self {
            Kind::Failure => cfg.notify.failure,
            Kind::Delay => cfg.notify.delay,
            Kind::Success => cfg.notify.success,
        }
    }

    /// The recipients a notice of this kind reports on.
    fn covers(self, r: &Recipient) -> bool {
        match self {
            Kind::Failure => r.status == RcptStatus::Failed,
            Kind::Delay => r.status.is_open(),
            Kind::Success => r.status == RcptStatus::Sent,
        }
    }

    /// Subject, opening sentence, file name prefix (Postfix's wording).
    fn words(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Kind::Failure => (
                "Undelivered Mail Returned to Sender",
                "could not be delivered to one or more recipients",
                "bounce",
            ),
            Kind::Delay => (
                "Delayed Mail (still being retried)",
                "has not yet been delivered to one or more recipients; delivery will be tried \
                 again, and you will be told if it fails for good",
                "delay",
            ),
            Kind::Success => (
                "Successful Mail Delivery Report",
                "was delivered (handed to the next mail system) for these recipients",
                "success",
            ),
        }
    }
}

/// Builds a notice; `None` when none is due (not in notify, null sender, nobody to report).
pub fn build(
    cfg: &NodeAttrs,
    kind: Kind,
    name: &str,
    attrs: &MessageAttrs,
    message_id: &str,
    head: &[u8],
    notice_id: &str,
) -> Option<Vec<u8>> {
    if !kind.wanted(cfg) {
        return None;
    }
    let to = attrs.env_from.as_deref().filter(|f| !f.is_empty())?;
    let covered: Vec<&Recipient> = attrs.recipients.iter().filter(|r| kind.covers(r)).collect();
    if covered.is_empty() {
        return None;
    }
    let (subject, sentence, _) = kind.words();
    let host = hostname();
    let mut text = format!(
        "This is the mail system at host {host}.\n\nYour message {message_id} ({name}) {sentence}:\n\n"
    );
    // RFC 3464 §2.2.5: when the message arrived here, not when the notice is written: its
    // first attempt, or when it was held before that (where queue_time counts from).
    let arrival = attrs
        .first_try_date
        .map(|first| attrs.queue_start(first))
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map_or_else(content::rfc2822_now, |t| t.to_rfc2822());
    let mut status = format!("Reporting-MTA: dns; {host}\nArrival-Date: {arrival}\n");
    for r in &covered {
        text.push_str(&format!("  <{}>: {}\n", r.address, r.last_reply));
        let reply = r.last_reply.replace(['\r', '\n'], " ");
        let (action, st) = match kind {
            Kind::Failure => ("failed", if reply.starts_with('4') { "4.0.0" } else { "5.0.0" }),
            Kind::Delay => ("delayed", "4.0.0"),
            Kind::Success => ("relayed", "2.0.0"),
        };
        status.push_str(&format!(
            "\nFinal-Recipient: rfc822; {}\nAction: {action}\nStatus: {st}\n",
            r.address
        ));
        if !reply.is_empty() {
            status.push_str(&format!("Diagnostic-Code: smtp; {reply}\n"));
        }
        if kind == Kind::Delay
            && let Some(until) = attrs.try_until_date
        {
            status.push_str(&format!("Will-Retry-Until: {}\n", rfc2822(until)));
        }
    }
    let headers = String::from_utf8_lossy(head).into_owned();
    let report = MimePart::new(
        ContentType::new("multipart/report").attribute("report-type", "delivery-status"),
        vec![
            MimePart::new("text/plain", text),
            // RFC 3464 wants these readable as they are: 7bit, not base64.
            MimePart::new(ContentType::new("message/delivery-status"), status.into_bytes())
                .transfer_encoding("7bit"),
            MimePart::new(ContentType::new("text/rfc822-headers"), headers.into_bytes())
                .transfer_encoding("7bit"),
        ],
    );
    // With DKIM set up, notices come from the signing domain, so that they are signed too.
    let daemon_domain = cfg.dkim.dkim_domain.clone().unwrap_or(host);
    let daemon = format!("MAILER-DAEMON@{daemon_domain}");
    MessageBuilder::new()
        .from(("Mail Delivery System", daemon.as_str()))
        .to(to.to_string())
        .subject(format!("{subject}: {name}"))
        .message_id(notice_id.trim_matches(['<', '>']).to_string())
        .header(
            "Auto-Submitted",
            mail_builder::headers::raw::Raw::new("auto-replied"),
        )
        .body(report)
        .write_to_vec()
        .ok()
}

fn rfc2822(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|d| d.to_rfc2822())
        .unwrap_or_else(|| fmt_date(secs))
}

/// Queues a notice of `kind` about message `name`, if one is due.
pub fn notify(node: &Node, cfg: &NodeAttrs, kind: Kind, name: &str, attrs: &MessageAttrs, message_id: &str) {
    let Some(to) = attrs.env_from.clone().filter(|f| !f.is_empty()) else {
        return;
    };
    let mut a = MessageAttrs::new_draft();
    let head = content::read_head(&node.spool.eml_path(name)).unwrap_or_default();
    let Some(mut bytes) = build(cfg, kind, name, attrs, message_id, &head, &a.message_id) else {
        return;
    };
    match crate::mail::dkim::sign_bytes(cfg, bytes.clone()) {
        Ok(signed) => bytes = signed,
        Err(e) => crate::mail::dkim::mark_unsigned(&mut a, &e),
    }
    a.env_from = Some(String::new());
    a.env_to = Some(vec![to.clone()]);
    a.recipients = vec![Recipient::new(to)];
    a.status = Status::Pending;
    a.is_ready = true;
    a.user.insert("dsn_for".into(), name.as_bytes().to_vec());
    // Char-wise, so a multi-byte name is never cut inside a character.
    let stem: String = name
        .strip_suffix(".eml")
        .unwrap_or(name)
        .chars()
        .take(60)
        .collect();
    let prefix = kind.words().2;
    let dsn_name = node.spool.unique_name(&format!("{prefix}-{stem}"));
    let body = crate::store::queue::Body::Bytes(&bytes);
    if let Err(e) = crate::store::queue::enqueue(&node.spool, Some(node), &dsn_name, body, &a) {
        log::warn!("cannot queue {prefix} notice for {name}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notice_lists_failed_recipients_and_never_answers_null_sender() {
        let mut a = MessageAttrs::new_draft();
        a.env_from = Some("me@example.com".into());
        a.recipients = vec![
            Recipient::new("bad@example.org".into()),
            Recipient::new("ok@example.org".into()),
        ];
        a.recipients[0].status = RcptStatus::Failed;
        a.recipients[0].last_reply = "550 5.1.1 no such user".into();
        a.recipients[1].status = RcptStatus::Sent;
        let cfg = NodeAttrs::default();
        let b = build(
            &cfg,
            Kind::Failure,
            "x.eml",
            &a,
            "<id@h>",
            b"Subject: hi\r\n\r\n",
            "<n@h>",
        )
        .unwrap();
        let s = String::from_utf8_lossy(&b);
        assert!(s.contains("multipart/report"), "{s}");
        assert!(s.contains("Message-ID: <n@h>"), "{s}");
        assert!(s.contains("report-type=\"delivery-status\"") || s.contains("report-type=delivery-status"));
        assert!(s.contains("Final-Recipient: rfc822; bad@example.org"));
        assert!(!s.contains("Final-Recipient: rfc822; ok@example.org"));
        // audit-21 A9: Arrival-Date is when the message arrived, not when it failed.
        a.first_try_date = Some(1_800_000_000);
        let b = build(&cfg, Kind::Failure, "x.eml", &a, "<id@h>", b"", "<n@h>").unwrap();
        let s = String::from_utf8_lossy(&b);
        assert!(s.contains("Arrival-Date: Fri, 15 Jan 2027 08:00:00 +0000"), "{s}");
        a.env_from = Some(String::new());
        assert!(build(&cfg, Kind::Failure, "x.eml", &a, "<id@h>", b"", "<n@h>").is_none());
        a.env_from = Some("me@example.com".into());
        let never = NodeAttrs {
            notify: crate::model::lists::NotifySet::default(),
            ..NodeAttrs::default()
        };
        assert!(build(&never, Kind::Failure, "x.eml", &a, "<id@h>", b"", "<n@h>").is_none());
    }

    #[test]
    fn delay_and_success_notices_report_their_recipients() {
        let mut a = MessageAttrs::new_draft();
        a.env_from = Some("me@example.com".into());
        a.recipients = vec![
            Recipient::new("late@example.org".into()),
            Recipient::new("ok@example.org".into()),
        ];
        a.recipients[0].status = RcptStatus::TempFail;
        a.recipients[0].last_reply = "451 4.3.0 busy".into();
        a.recipients[1].status = RcptStatus::Sent;
        a.try_until_date = Some(1_900_000_000);
        let cfg = NodeAttrs::default();
        assert!(build(&cfg, Kind::Delay, "x.eml", &a, "<id@h>", b"", "<n@h>").is_none());
        let cfg = NodeAttrs {
            notify: crate::model::lists::NotifySet::parse("notify", "delay,success").unwrap(),
            ..NodeAttrs::default()
        };
        let d = String::from_utf8(build(&cfg, Kind::Delay, "x.eml", &a, "<id@h>", b"", "<n@h>").unwrap())
            .unwrap();
        assert!(
            d.contains("Action: delayed") && d.contains("late@example.org"),
            "{d}"
        );
        assert!(
            d.contains("Will-Retry-Until:") && !d.contains("rfc822; ok@"),
            "{d}"
        );
        let s = String::from_utf8(build(&cfg, Kind::Success, "x.eml", &a, "<id@h>", b"", "<n@h>").unwrap())
            .unwrap();
        assert!(
            s.contains("Action: relayed") && s.contains("Status: 2.0.0"),
            "{s}"
        );
        assert!(
            s.contains("rfc822; ok@example.org") && !s.contains("rfc822; late@"),
            "{s}"
        );
        assert!(build(&cfg, Kind::Failure, "x.eml", &a, "<id@h>", b"", "<n@h>").is_none());
    }
}
