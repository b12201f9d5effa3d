//! Pure data and rules, no I/O: attributes of the node (one table) and of messages with their
//! defaults and validation, list-valued settings, host and address rules, names the root
//! accepts, and who may do what.

pub mod access;
pub mod address;
pub mod attrs;
pub mod lists;
pub mod names;
pub mod service_attrs;
