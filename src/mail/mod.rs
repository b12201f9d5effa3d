//! Message bytes, knowing nothing of the spool: header fields and the wire form, the MIME
//! parts view, composing a Draft from parts, DKIM signing of bytes.

pub mod compose;
pub mod content;
pub mod dkim;
pub mod mime;
pub mod wire;
