//! mailfs: an outgoing mail node driven with shell tools.
//!
//! | module | job |
//! |---|---|
//! | [`spool`] | the on-disk store every process shares |
//! | [`attrs`] | node and message attributes: defaults, validation, formatting |
//! | [`message`] | message attribute rules and the hand-over at `is_ready` |
//! | [`content`] | header fields, the template, the bytes that go on the wire |
//! | [`mime`] | the parts view: a message's MIME parts, named and decoded, memory bounded |
//! | [`compose`] | composing a Draft by parts: rebuilding it with mail-builder |
//! | [`trees`] | the cache of parsed parts trees, bounded in bytes; one parse at a time |
//! | [`fs`] | the file system over the spool, testable without FUSE |
//! | [`fuse`] | the thin FUSE adapter |
//! | [`names`] | which names the node root accepts (control characters, message name length) |
//! | [`node`] | a spool plus its attributes, shared by front end and senders |
//! | [`journal`] | log entries in `log_dir` |
//! | [`admin`] | the commands: queue, flush, cancel, hold, release, sendmail, deliver; `queue_message` |
//! | [`manage`] | the queue commands' work for one caller's scope, direct or over the socket |
//! | [`control`] | the control socket: unprivileged submission and queue commands (SPEC §10) |
//! | [`listener`] | the SMTP listener: sessions, relay and AUTH checks, hands messages to the queue |
//! | [`service_attrs`] | node attributes of the listener and of DKIM |
//! | [`sent_ids`] | the Message-IDs that went out, so a copy or a restore is never sent again |
//! | [`sender`] | the sender engine: scheduler, limits, SMTP (relays, MX) and sendmail transports |
//! | [`lists`] | list-valued node attributes: relays, resolvers, retry schedule, notify, domains |
//! | [`access`] | who may do what on a shared node (SPEC §10): pure rules, no I/O |
//! | [`dkim`] | DKIM signing when a message becomes ready; the DNS record |
//! | [`error`] | the one error type and its errno / exit-code mapping |

pub mod access;
pub mod admin;
pub mod attrs;
pub mod cli;
pub mod compose;
pub mod content;
pub mod control;
pub mod dkim;
pub mod dsn;
pub mod error;
pub mod fs;
pub mod fuse;
pub mod journal;
pub mod listener;
pub mod lists;
pub mod manage;
pub mod message;
pub mod mime;
pub mod names;
pub mod node;
pub mod sender;
pub mod sent_ids;
pub mod service_attrs;
pub mod spool;
pub mod trees;
