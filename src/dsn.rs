//! Failure notices: when a message ends in Error, a delivery status notification (RFC 3464
//! multipart/report) goes to its envelope sender, queued through the same node with the null
//! sender `<>`, so a notice that fails itself never causes another.

use mail_builder::MessageBuilder;
use mail_builder::headers::content_type::ContentType;
use mail_builder::mime::MimePart;

use crate::attrs::{MessageAttrs, NodeAttrs, Notify, RcptStatus, Recipient, Status, hostname};
use crate::content;
use crate::node::Node;

/// Builds the notice for a failed message; `None` when none is due (notify=never, null sender).
pub fn build(
    cfg: &NodeAttrs,
    name: &str,
    attrs: &MessageAttrs,
    message_id: &str,
    head: &[u8],
    notice_id: &str,
) -> Option<Vec<u8>> {
    if cfg.notify == Notify::Never {
        return None;
    }
    let to = attrs.env_from.as_deref().filter(|f| !f.is_empty())?;
    let failed: Vec<&Recipient> = attrs
        .recipients
        .iter()
        .filter(|r| r.status == RcptStatus::Failed)
        .collect();
    if failed.is_empty() {
        return None;
    }
    let host = hostname();
    let mut text = format!(
        "This is the mail system at host {host}.\n\nYour message {message_id} ({name}) could not be delivered \
         to one or more recipients:\n\n"
    );
    let mut status = format!(
        "Reporting-MTA: dns; {host}\nArrival-Date: {}\n",
        content::rfc2822_now()
    );
    for r in &failed {
        text.push_str(&format!("  <{}>: {}\n", r.address, r.last_reply));
        let code = r.last_reply.split_whitespace().next().unwrap_or("");
        let st = if code.starts_with('4') { "4.0.0" } else { "5.0.0" };
        status.push_str(&format!(
            "\nFinal-Recipient: rfc822; {}\nAction: failed\nStatus: {st}\nDiagnostic-Code: smtp; {}\n",
            r.address,
            r.last_reply.replace(['\r', '\n'], " ")
        ));
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
        .subject(format!("Undelivered Mail Returned to Sender: {name}"))
        .message_id(notice_id.trim_matches(['<', '>']).to_string())
        .header(
            "Auto-Submitted",
            mail_builder::headers::raw::Raw::new("auto-replied"),
        )
        .body(report)
        .write_to_vec()
        .ok()
}

/// Queues the failure notice of message `name`, if one is due.
pub fn notify_failure(node: &Node, cfg: &NodeAttrs, name: &str, attrs: &MessageAttrs, message_id: &str) {
    let Some(to) = attrs.env_from.clone().filter(|f| !f.is_empty()) else {
        return;
    };
    let mut a = MessageAttrs::new_draft();
    let head = content::read_head(&node.spool.eml_path(name)).unwrap_or_default();
    let Some(mut bytes) = build(cfg, name, attrs, message_id, &head, &a.message_id) else {
        return;
    };
    match crate::dkim::sign_bytes(cfg, bytes.clone()) {
        Ok(signed) => bytes = signed,
        Err(e) => crate::dkim::mark_unsigned(&mut a, &e),
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
    let dsn_name = node.spool.unique_name(&format!("bounce-{stem}"));
    match node.spool.add_message(&dsn_name, &mut bytes.as_slice(), &a) {
        Ok(_) => node.notify_ready(&dsn_name),
        Err(e) => log::warn!("cannot queue failure notice for {name}: {e}"),
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
        let b = build(&cfg, "x.eml", &a, "<id@h>", b"Subject: hi\r\n\r\n", "<n@h>").unwrap();
        let s = String::from_utf8_lossy(&b);
        assert!(s.contains("multipart/report"), "{s}");
        assert!(s.contains("Message-ID: <n@h>"), "{s}");
        assert!(s.contains("report-type=\"delivery-status\"") || s.contains("report-type=delivery-status"));
        assert!(s.contains("Final-Recipient: rfc822; bad@example.org"));
        assert!(!s.contains("Final-Recipient: rfc822; ok@example.org"));
        a.env_from = Some(String::new());
        assert!(build(&cfg, "x.eml", &a, "<id@h>", b"", "<n@h>").is_none());
        a.env_from = Some("me@example.com".into());
        let never = NodeAttrs {
            notify: Notify::Never,
            ..NodeAttrs::default()
        };
        assert!(build(&never, "x.eml", &a, "<id@h>", b"", "<n@h>").is_none());
    }
}
