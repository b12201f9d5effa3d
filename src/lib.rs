//! mailfs: an outgoing mail node driven with shell tools.
//!
//! The rooms, and the one way imports flow (docs/ARCHITECTURE.md says more):
//! `app → {fs, sender, listener, control} → store → mail → model → {files, error}`.
//!
//! | room | job |
//! |---|---|
//! | [`app`] | the command line and the commands: `cli` (clap, mount/serve), `admin` (queue, flush, cancel, hold, sendmail, deliver) |
//! | [`fs`] | the file system over the spool, testable without FUSE; `fs::fuse` is the thin FUSE adapter, `fs::trees` the parsed-tree cache |
//! | [`sender`] | the sender engine: scheduler, limits, SMTP (relays, MX) and sendmail transports, notices (`sender::dsn`) |
//! | [`listener`] | the SMTP listener: sessions, relay and AUTH checks, hands messages to the queue |
//! | [`control`] | the control socket: unprivileged submission and queue commands (SPEC §10) |
//! | [`store`] | the only code that knows the spool's layout: `spool`, `node`, `message` (the hand-over at `is_ready`), `manage`, `journal`, `sent_ids`, `signing` |
//! | [`mail`] | message bytes: `content` (header fields), `wire` (the wire form, built once per attempt: the transports' chunk source), `mime`, `compose`, `dkim` |
//! | [`model`] | pure rules: `attrs` (node attributes: one table), `lists`, `service_attrs`, `address`, `names`, `access` |
//! | [`files`] | opening files never through a link; `Stamp` |
//! | [`error`] | the one error type and its errno / exit-code mapping |

pub mod app;
pub mod control;
pub mod error;
pub mod files;
pub mod fs;
pub mod listener;
pub mod mail;
pub mod model;
pub mod sender;
pub mod store;
