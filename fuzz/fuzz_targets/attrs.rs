//! Any attribute name and value on a message and on the node: parsing never panics, a value
//! that is refused changes nothing, and an accepted address never carries CR, LF, NUL or a
//! leading dash (what would become an injection on a command line or in SMTP).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailfs::model::attrs::{self, MessageAttrs, NodeAttrs};

fuzz_target!(|input: (u8, &[u8])| {
    let (which, value) = input;
    let msg_keys = ["env_from", "env_to", "env_cc", "env_bcc", "is_ready", "status", "message_id"];
    let node_keys = attrs::NODE_ATTRS;
    if let Ok(list) = attrs::parse_address_list("env_to", value) {
        for a in list {
            assert!(!a.starts_with('-'), "{a:?}");
            assert!(!a.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0), "{a:?}");
        }
    }
    let key = msg_keys[which as usize % msg_keys.len()];
    let before = MessageAttrs::new_draft();
    let _ = mailfs::store::message::set(&before, key, value);
    let mut node = NodeAttrs::default();
    let nkey = node_keys[which as usize % node_keys.len()];
    let snapshot = format!("{node:?}");
    if node.set(nkey, value).is_err() {
        assert_eq!(format!("{node:?}"), snapshot, "a refused {nkey} changed the node");
    }
});
