//! The only code that knows the spool's layout: files, atomic writes and group commits,
//! locks, the node, the journal, the sent Message-IDs, and the one way into the queue
//! ([`queue`]) that the mount, `sendmail`, `deliver`, the socket, the listener and notices use.

pub mod journal;
pub mod manage;
pub mod message;
pub mod node;
pub mod queue;
pub mod sent_ids;
pub mod signing;
pub mod spool;

#[cfg(test)]
mod node_file_tests;
