//! The rows of the node attribute table (see `table.rs`), in the order `getfattr -d` lists
//! them. A new node attribute is a field in `NodeAttrs` and one row here; the table's tests
//! then check its default, its example, its refusals, the node file and `-o` for it.

use super::row::{Check, Kind, NodeAttr, Who, read_only};
use super::values::{fmt_seconds, join, log_attr_name, optional_host, optional_path, optional_text, path};
use super::{NotifySet, SendMethod, TlsMode};
use crate::model::{lists, service_attrs as service};

const SEND_METHODS: [SendMethod; 3] = [SendMethod::Smtp, SendMethod::Sendmail, SendMethod::Mx];
const TLS_MODES: [TlsMode; 4] = [TlsMode::May, TlsMode::None, TlsMode::Starttls, TlsMode::Tls];

/// A list value's text: a tab is white space between entries (SPEC §3), other controls refused.
fn entries(r: &NodeAttr, v: &[u8]) -> crate::error::Result<String> {
    super::values::list_text(r.name, v)
}

pub const ROWS: &[NodeAttr] = &[
    NodeAttr {
        name: "send_method",
        kind: Kind::Choice(&["smtp", "sendmail", "mx"]),
        default: "smtp",
        example: "sendmail",
        who: Who::Owner,
        check: Check::None,
        help: "how messages leave: to the relays in server, through sendmail_path, or to each \
               recipient domain's mail exchangers",
        get: |a, _| {
            let s = match a.send_method {
                SendMethod::Smtp => "smtp",
                SendMethod::Sendmail => "sendmail",
                SendMethod::Mx => "mx",
            };
            Some(s.into())
        },
        set: |a, r, v| {
            a.send_method = SEND_METHODS[r.choice(v)?];
            Ok(())
        },
    },
    NodeAttr {
        name: "server",
        kind: Kind::Hosts,
        default: "127.0.0.1",
        example: "relay1.example,relay2.example:587",
        who: Who::Owner,
        check: Check::None,
        help: "the SMTP relays (smarthosts), tried in order",
        get: |a, _| Some(a.server.clone()),
        set: |a, r, v| {
            a.server = lists::servers(r.name, &entries(r, v)?)?;
            Ok(())
        },
    },
    NodeAttr {
        name: "port",
        kind: Kind::Int { min: 1, max: 65535 },
        default: "25",
        example: "587",
        who: Who::Owner,
        check: Check::None,
        help: "the port of a server entry without one",
        get: |a, _| Some(a.port.to_string()),
        set: |a, r, v| {
            a.port = r.int(v)?;
            Ok(())
        },
    },
    NodeAttr {
        name: "dns_server",
        kind: Kind::Resolvers,
        default: "system",
        example: "127.0.0.1:5353,::1",
        who: Who::Owner,
        check: Check::None,
        help: "the resolvers used for send_method=mx (system: those in /etc/resolv.conf)",
        get: |a, _| Some(lists::show_dns_servers(&a.dns_server)),
        set: |a, r, v| {
            a.dns_server = lists::dns_servers(r.name, &entries(r, v)?)?;
            Ok(())
        },
    },
    NodeAttr {
        name: "spool_dir",
        kind: Kind::Path,
        default: "",
        example: "",
        who: Who::Nobody,
        check: Check::None,
        help: "the spool directory being served",
        get: |_, spool_dir| Some(spool_dir.to_string()),
        set: read_only,
    },
    NodeAttr {
        name: "log_dir",
        kind: Kind::OptPath,
        default: "",
        example: "/var/log/mailfs",
        who: Who::Owner,
        check: Check::PrivateDir,
        help: "where log entries go (made 0700 if missing, refused if others can write it); \
               unset: SPOOL_DIR/log",
        get: |a, spool_dir| Some(a.log_dir.clone().unwrap_or_else(|| format!("{spool_dir}/log"))),
        set: |a, r, v| {
            a.log_dir = optional_path(r.name, v)?;
            Ok(())
        },
    },
    NodeAttr {
        name: "log_date_attr",
        kind: Kind::XattrName,
        default: "date",
        example: "when",
        who: Who::Owner,
        check: Check::None,
        help: "the name of a log entry's date attribute",
        get: |a, _| Some(a.log_date_attr.clone()),
        set: |a, r, v| {
            a.log_date_attr = log_attr_name(r.name, v, [&a.log_msgid_attr, &a.log_info_attr])?;
            Ok(())
        },
    },
    NodeAttr {
        name: "log_msgid_attr",
        kind: Kind::XattrName,
        default: "msgid",
        example: "message-id",
        who: Who::Owner,
        check: Check::None,
        help: "the name of a log entry's Message-ID attribute",
        get: |a, _| Some(a.log_msgid_attr.clone()),
        set: |a, r, v| {
            a.log_msgid_attr = log_attr_name(r.name, v, [&a.log_date_attr, &a.log_info_attr])?;
            Ok(())
        },
    },
    NodeAttr {
        name: "log_info_attr",
        kind: Kind::XattrName,
        default: "info",
        example: "reply",
        who: Who::Owner,
        check: Check::None,
        help: "the name of a log entry's info attribute",
        get: |a, _| Some(a.log_info_attr.clone()),
        set: |a, r, v| {
            a.log_info_attr = log_attr_name(r.name, v, [&a.log_date_attr, &a.log_msgid_attr])?;
            Ok(())
        },
    },
    NodeAttr {
        name: "ratelimit_time",
        kind: Kind::Seconds { positive: false },
        default: "1",
        example: "0.05",
        who: Who::Owner,
        check: Check::None,
        help: "the least time between any two sends",
        get: |a, _| Some(fmt_seconds(a.ratelimit_time)),
        set: |a, r, v| {
            a.ratelimit_time = r.seconds(v)?;
            Ok(())
        },
    },
    NodeAttr {
        name: "domlimit_time",
        kind: Kind::Seconds { positive: false },
        default: "5",
        example: "10",
        who: Who::Owner,
        check: Check::None,
        help: "the least time between two sends to one recipient domain",
        get: |a, _| Some(fmt_seconds(a.domlimit_time)),
        set: |a, r, v| {
            a.domlimit_time = r.seconds(v)?;
            Ok(())
        },
    },
    NodeAttr {
        name: "expire_time",
        kind: Kind::Seconds { positive: false },
        default: "259200",
        example: "86400",
        who: Who::Owner,
        check: Check::None,
        help: "how long a Sent or Error message and its attributes stay (259200: 3 days)",
        get: |a, _| Some(fmt_seconds(a.expire_time)),
        set: |a, r, v| {
            a.expire_time = r.seconds(v)?;
            Ok(())
        },
    },
    NodeAttr {
        name: "retry_time",
        kind: Kind::Schedule,
        default: "900",
        example: "900,1800,3600,14400",
        who: Who::Owner,
        check: Check::None,
        help: "the wait after a temporary failure; a list is a schedule, one entry per retry, \
               the last repeating; a wait under 1 s (`0`) waits 1 s",
        get: |a, _| {
            let v: Vec<String> = a.retry_time.iter().map(|s| fmt_seconds(*s)).collect();
            Some(v.join(","))
        },
        set: |a, r, v| {
            a.retry_time = lists::retry_schedule(r.name, &entries(r, v)?)?;
            Ok(())
        },
    },
    NodeAttr {
        name: "max_retries",
        kind: Kind::Int {
            min: 0,
            max: 1_000_000,
        },
        default: "0",
        example: "5",
        who: Who::Owner,
        check: Check::None,
        help: "retries before Error; 0: no limit but queue_time",
        get: |a, _| Some(a.max_retries.to_string()),
        set: |a, r, v| {
            a.max_retries = r.int(v)?;
            Ok(())
        },
    },
    NodeAttr {
        name: "queue_time",
        kind: Kind::Seconds { positive: false },
        default: "432000",
        example: "86400",
        who: Who::Owner,
        check: Check::None,
        help: "how long temporary failures are retried before Error (432000: 5 days)",
        get: |a, _| Some(fmt_seconds(a.queue_time)),
        set: |a, r, v| {
            a.queue_time = r.seconds(v)?;
            Ok(())
        },
    },
    NodeAttr {
        name: "handshake_time",
        kind: Kind::Seconds { positive: true },
        default: "180",
        example: "30",
        who: Who::Owner,
        check: Check::None,
        help: "the timeout for the connect and for each SMTP reply",
        get: |a, _| Some(fmt_seconds(a.handshake_time)),
        set: |a, r, v| {
            a.handshake_time = r.seconds(v)?;
            Ok(())
        },
    },
    NodeAttr {
        name: "conn_limit",
        kind: Kind::Int { min: 1, max: 1024 },
        default: "1",
        example: "4",
        who: Who::Owner,
        check: Check::None,
        help: "SMTP connections open at once (= sender threads)",
        get: |a, _| Some(a.conn_limit.to_string()),
        set: |a, r, v| {
            a.conn_limit = r.int(v)?;
            Ok(())
        },
    },
    NodeAttr {
        name: "domconn_limit",
        kind: Kind::Int { min: 1, max: 1024 },
        default: "1",
        example: "2",
        who: Who::Owner,
        check: Check::None,
        help: "connections open at once to one recipient domain (through a relay: transactions \
               in flight for one domain)",
        get: |a, _| Some(a.domconn_limit.to_string()),
        set: |a, r, v| {
            a.domconn_limit = r.int(v)?;
            Ok(())
        },
    },
    NodeAttr {
        name: "sendmail_path",
        kind: Kind::Path,
        default: "/usr/sbin/sendmail",
        example: "/usr/lib/sendmail",
        who: Who::Owner,
        check: Check::None,
        help: "the command used when send_method=sendmail",
        get: |a, _| Some(a.sendmail_path.clone()),
        set: |a, r, v| {
            a.sendmail_path = path(r.name, v)?;
            Ok(())
        },
    },
    NodeAttr {
        name: "helo_name",
        kind: Kind::OptHost,
        default: "",
        example: "mail.example.org",
        who: Who::Owner,
        check: Check::None,
        help: "the EHLO name; unset: the host name",
        get: |a, _| Some(a.helo()),
        set: |a, r, v| {
            a.helo_name = optional_host(r.name, v)?;
            Ok(())
        },
    },
    NodeAttr {
        name: "tls",
        kind: Kind::Choice(&["may", "none", "starttls", "tls"]),
        default: "may",
        example: "starttls",
        who: Who::Owner,
        check: Check::None,
        help: "may: STARTTLS when offered, unverified, else plaintext; starttls and tls: \
               verified; none",
        get: |a, _| {
            let s = match a.tls {
                TlsMode::None => "none",
                TlsMode::May => "may",
                TlsMode::Starttls => "starttls",
                TlsMode::Tls => "tls",
            };
            Some(s.into())
        },
        set: |a, r, v| {
            a.tls = TLS_MODES[r.choice(v)?];
            Ok(())
        },
    },
    NodeAttr {
        name: "ca_file",
        kind: Kind::OptPath,
        default: "",
        example: "/etc/mailfs/ca.pem",
        who: Who::Owner,
        check: Check::None,
        help: "extra CA certificates (PEM) to verify servers with",
        get: |a, _| a.ca_file.clone(),
        set: |a, r, v| {
            a.ca_file = optional_path(r.name, v)?;
            Ok(())
        },
    },
    NodeAttr {
        name: "auth_user",
        kind: Kind::OptText,
        default: "",
        example: "mailer",
        who: Who::Owner,
        check: Check::None,
        help: "the SMTP AUTH user (AUTH is never sent before TLS unless tls=none)",
        get: |a, _| a.auth_user.clone(),
        set: |a, r, v| {
            a.auth_user = optional_text(r.name, v)?;
            Ok(())
        },
    },
    NodeAttr {
        name: "auth_secret_file",
        kind: Kind::OptPath,
        default: "",
        example: "/etc/mailfs/secret",
        who: Who::Owner,
        check: Check::None,
        help: "a file holding the AUTH secret (never readable through the mount)",
        get: |a, _| a.auth_secret_file.clone(),
        set: |a, r, v| {
            a.auth_secret_file = optional_path(r.name, v)?;
            Ok(())
        },
    },
    NodeAttr {
        name: "notify",
        kind: Kind::Notices,
        default: "failure",
        example: "failure,delay,success",
        who: Who::Owner,
        check: Check::None,
        help: "notices (DSN) to env_from: when a message ends in Error, once when it is still \
               not delivered after delay_warning_time, when it is delivered",
        get: |a, _| Some(a.notify.show()),
        set: |a, r, v| {
            a.notify = NotifySet::parse(r.name, &entries(r, v)?)?;
            Ok(())
        },
    },
    NodeAttr {
        name: "delay_warning_time",
        kind: Kind::Seconds { positive: false },
        default: "14400",
        example: "3600",
        who: Who::Owner,
        check: Check::None,
        help: "when the delay notice goes",
        get: |a, _| Some(fmt_seconds(a.delay_warning_time)),
        set: |a, r, v| {
            a.delay_warning_time = r.seconds(v)?;
            Ok(())
        },
    },
    NodeAttr {
        name: "hold_domains",
        kind: Kind::Domains,
        default: "",
        example: "example.net,example.com",
        who: Who::Owner,
        check: Check::None,
        help: "messages to these domains wait, as if held",
        get: |a, _| Some(a.hold_domains.join(",")),
        set: |a, r, v| {
            a.hold_domains = lists::domains(r.name, &entries(r, v)?)?;
            Ok(())
        },
    },
    NodeAttr {
        name: "listen",
        kind: Kind::Listen,
        default: "",
        example: "127.0.0.1:2525,[::1]:2525",
        who: Who::Owner,
        check: Check::None,
        help: "where the SMTP listener accepts mail; empty: no listener",
        get: |a, _| Some(join(&a.listener.listen)),
        set: |a, r, v| {
            a.listener.listen = service::parse_listen(r.name, v)?;
            Ok(())
        },
    },
    NodeAttr {
        name: "relay_clients",
        kind: Kind::Networks,
        default: "127.0.0.0/8,::1/128",
        example: "10.0.0.0/8,192.0.2.7/32",
        who: Who::Owner,
        check: Check::None,
        help: "listener clients that may send to any recipient without AUTH",
        get: |a, _| Some(join(&a.listener.relay_clients)),
        set: |a, r, v| {
            a.listener.relay_clients = service::parse_cidrs(r.name, v)?;
            Ok(())
        },
    },
    NodeAttr {
        name: "message_size_limit",
        kind: Kind::Bytes,
        default: "10240000",
        example: "52428800",
        who: Who::Owner,
        check: Check::None,
        help: "the largest message the listener takes (SIZE in EHLO; bigger: 552)",
        get: |a, _| Some(a.listener.message_size_limit.to_string()),
        set: |a, r, v| {
            a.listener.message_size_limit = service::parse_size(r.name, v)?;
            Ok(())
        },
    },
    NodeAttr {
        name: "listen_tls_cert",
        kind: Kind::OptPath,
        default: "",
        example: "/etc/mailfs/cert.pem",
        who: Who::Owner,
        check: Check::TlsCert,
        help: "the listener's certificate (PEM); with listen_tls_key enables STARTTLS",
        get: |a, _| a.listener.listen_tls_cert.clone(),
        set: |a, r, v| {
            a.listener.listen_tls_cert = service::optional_path(r.name, v)?;
            Ok(())
        },
    },
    NodeAttr {
        name: "listen_tls_key",
        kind: Kind::OptPath,
        default: "",
        example: "/etc/mailfs/key.pem",
        who: Who::Owner,
        check: Check::TlsKey,
        help: "the listener's private key (PEM)",
        get: |a, _| a.listener.listen_tls_key.clone(),
        set: |a, r, v| {
            a.listener.listen_tls_key = service::optional_path(r.name, v)?;
            Ok(())
        },
    },
    NodeAttr {
        name: "listen_users_file",
        kind: Kind::OptPath,
        default: "",
        example: "/etc/mailfs/users",
        who: Who::Owner,
        check: Check::UsersFile,
        help: "user:hash lines (SHA-crypt $5$/$6$); enables AUTH PLAIN and LOGIN after STARTTLS",
        get: |a, _| a.listener.listen_users_file.clone(),
        set: |a, r, v| {
            a.listener.listen_users_file = service::optional_path(r.name, v)?;
            Ok(())
        },
    },
    NodeAttr {
        name: "dkim_domain",
        kind: Kind::DnsName,
        default: "",
        example: "example.org",
        who: Who::Owner,
        check: Check::None,
        help: "sign messages From this domain or a subdomain of it",
        get: |a, _| a.dkim.dkim_domain.clone(),
        set: |a, r, v| {
            a.dkim.dkim_domain = service::dns_name(r.name, v)?;
            Ok(())
        },
    },
    NodeAttr {
        name: "dkim_selector",
        kind: Kind::DnsName,
        default: "",
        example: "mail2026",
        who: Who::Owner,
        check: Check::None,
        help: "the DKIM selector (mailfs dkim-record prints the TXT record)",
        get: |a, _| a.dkim.dkim_selector.clone(),
        set: |a, r, v| {
            a.dkim.dkim_selector = service::dns_name(r.name, v)?;
            Ok(())
        },
    },
    NodeAttr {
        name: "dkim_key_file",
        kind: Kind::OptPath,
        default: "",
        example: "/etc/mailfs/dkim.pem",
        who: Who::Owner,
        check: Check::SigningKey,
        help: "the private key (PEM, RSA of 1024 bits or more, or Ed25519); a key that \
               cannot be used is refused when set",
        get: |a, _| a.dkim.dkim_key_file.clone(),
        set: |a, r, v| {
            a.dkim.dkim_key_file = service::optional_path(r.name, v)?;
            Ok(())
        },
    },
];
