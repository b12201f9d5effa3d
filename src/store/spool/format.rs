//! How the spool's structured files are encoded: a magic, a format version, then bincode
//! (message attributes) or text pairs (the node file); format 1 is still read and upgraded.
//! Decoding is bounded by the file's size, and a message whose attribute file cannot be
//! decoded is shown as damaged rather than hidden.

use std::path::Path;

use serde::{Serialize, de::DeserializeOwned};

use super::*;

impl Spool {
    pub(super) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        let body = bincode::serde::encode_to_vec(value, bincode::config::standard())
            .map_err(|e| Error::Io(io::Error::other(e.to_string())))?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// The format version and the encoded body of a stored structure.
    pub(super) fn versioned<'a>(path: &Path, bytes: &'a [u8]) -> Result<(u16, &'a [u8])> {
        if bytes.len() < MAGIC.len() + 2 || &bytes[..MAGIC.len()] != MAGIC {
            return Err(Error::Corrupt {
                path: path.display().to_string(),
                why: "not a mailfs attribute file".into(),
            });
        }
        let version = u16::from_le_bytes([bytes[MAGIC.len()], bytes[MAGIC.len() + 1]]);
        Ok((version, &bytes[MAGIC.len() + 2..]))
    }

    pub(super) fn decode_body<T: DeserializeOwned>(path: &Path, body: &[u8]) -> Result<T> {
        decode_limited(body).map_err(|e| Error::Corrupt {
            path: path.display().to_string(),
            why: e.to_string(),
        })
    }

    pub(super) fn unsupported(path: &Path, version: u16) -> Error {
        Error::Corrupt {
            path: path.display().to_string(),
            why: format!("format version {version} is not supported"),
        }
    }

    pub(super) fn decode_attrs(path: &Path, bytes: &[u8]) -> Result<MessageAttrs> {
        match Self::versioned(path, bytes)? {
            (FORMAT_VERSION, body) => Self::decode_body(path, body),
            (1, body) => Ok(Self::decode_body::<MessageAttrsV1>(path, body)?.into()),
            (v, _) => Err(Self::unsupported(path, v)),
        }
    }

    pub(super) fn decode_node(path: &Path, bytes: &[u8]) -> Result<NodeAttrs> {
        let stored = match Self::versioned(path, bytes)? {
            (FORMAT_VERSION, body) => Self::decode_body::<StoredNodeAttrs>(path, body)?,
            (1, body) => Self::decode_body::<NodeAttrsV1>(path, body)?.to_stored(),
            (v, _) => return Err(Self::unsupported(path, v)),
        };
        Ok(NodeAttrs::from_stored(&stored))
    }

    pub fn load_node(&self) -> Result<NodeAttrs> {
        let path = self.root.join(NODE_FILE);
        match fs::read(&path) {
            // The node file is the node's configuration: one that cannot be read is a
            // configuration error (EX_CONFIG, 78), not bad input data.
            Ok(bytes) => Self::decode_node(&path, &bytes).map_err(|e| match e {
                Error::Corrupt { path, why } => Error::Config(format!(
                    "the stored node attributes {path} cannot be read ({why}): restore the file \
                     or remove it to start from the defaults"
                )),
                other => other,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(NodeAttrs::default()),
            Err(e) => Err(e.into()),
        }
    }

    pub fn node_stamp(&self) -> Option<Stamp> {
        fs::metadata(self.root.join(NODE_FILE))
            .ok()
            .map(|m| Stamp::of(&m))
    }

    pub fn save_node(&self, node: &NodeAttrs) -> Result<Stamp> {
        self.write_atomic(&self.root.join(NODE_FILE), &Self::encode(&node.to_stored())?)
    }

    /// [`Spool::read_attrs`] for showing a message (the mount, `mailfs queue`): an attribute
    /// file that cannot be decoded gives [`MessageAttrs::damaged`] instead of an error, so that
    /// the message stays listed and its content readable (a missing one is a Draft, a damaged
    /// one must not be worse). The senders keep [`Spool::read_attrs`] and leave it alone.
    pub fn read_attrs_shown(&self, name: &str) -> Result<Option<(MessageAttrs, Stamp)>> {
        use std::os::unix::fs::MetadataExt;
        match self.read_attrs(name) {
            Err(Error::Corrupt { why, .. }) => {
                // Replaced or removed since it was read: what is there now.
                let Ok(meta) = fs::metadata(self.struct_path(name)) else {
                    return self.read_attrs(name);
                };
                let (id, owner) = match fs::metadata(self.eml_path(name)) {
                    Ok(m) => (
                        crate::model::attrs::stable_message_id(name, m.ino()),
                        Some(crate::model::attrs::Owner {
                            uid: m.uid(),
                            gid: m.gid(),
                        }),
                    ),
                    Err(_) => (crate::model::attrs::new_message_id(), None),
                };
                log::debug!("{name}: shown as damaged: its attribute file cannot be read ({why})");
                Ok(Some((MessageAttrs::damaged(&why, id, owner), Stamp::of(&meta))))
            }
            other => other,
        }
    }
}

/// Decodes `body` with a limit on what its length fields may claim. Without one, bincode
/// allocates whatever a string's length says before reading it: one flipped byte in an
/// attribute file made every process that listed the spool abort on a multi-exabyte
/// allocation (audit-13). Every byte a string claims is in the file, so a limit at least the
/// body's length never refuses a sound file; the limit is a type parameter, hence the ladder.
fn decode_limited<T: DeserializeOwned>(body: &[u8]) -> std::result::Result<T, bincode::error::DecodeError> {
    use bincode::config::standard;
    use bincode::serde::decode_from_slice;
    let n = body.len();
    let v = if n <= 1 << 16 {
        decode_from_slice(body, standard().with_limit::<{ 1 << 16 }>())?.0
    } else if n <= 1 << 20 {
        decode_from_slice(body, standard().with_limit::<{ 1 << 20 }>())?.0
    } else if n <= 1 << 24 {
        decode_from_slice(body, standard().with_limit::<{ 1 << 24 }>())?.0
    } else if n <= 1 << 28 {
        decode_from_slice(body, standard().with_limit::<{ 1 << 28 }>())?.0
    } else {
        decode_from_slice(body, standard().with_limit::<{ usize::MAX }>())?.0
    };
    Ok(v)
}
