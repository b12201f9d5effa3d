//! Pure data and rules, no I/O: attributes of the node and of messages with their defaults
//! and validation, list-valued settings, names the root accepts, and who may do what.

pub mod access;
pub mod attrs;
pub mod lists;
pub mod names;
pub mod service_attrs;
