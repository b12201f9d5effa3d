//! What the listener trusts: the STARTTLS certificate (rustls, reloaded when its files change)
//! and the users file for AUTH (`user:hash` lines, SHA-crypt as `openssl passwd -6` writes).

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha_crypt::{PasswordVerifier, ShaCrypt};

use crate::error::{Error, Result};

fn config_error(path: &str, e: impl std::fmt::Display) -> Error {
    Error::Config(format!("{path}: {e}"))
}

fn mtime(path: &str) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Builds the STARTTLS server configuration from a PEM certificate chain and key.
pub fn load_tls(cert: &str, key: &str) -> Result<Arc<ServerConfig>> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| config_error(cert, e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| config_error(cert, e))?;
    if chain.is_empty() {
        return Err(config_error(cert, "no certificate in the file"));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| config_error(key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error(cert, e))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| config_error(cert, e))?;
    Ok(Arc::new(config))
}

/// The TLS configuration for the current attribute values, rebuilt only when the paths or
/// the files' modification times change.
#[derive(Default)]
pub struct TlsCache {
    cached: Mutex<Option<TlsEntry>>,
}

struct TlsEntry {
    cert: String,
    key: String,
    stamps: (Option<SystemTime>, Option<SystemTime>),
    config: Option<Arc<ServerConfig>>,
}

impl TlsCache {
    /// `None` when STARTTLS is not configured or its files cannot be used (logged once per
    /// version of the files).
    pub fn get(&self, cert: Option<&str>, key: Option<&str>) -> Option<Arc<ServerConfig>> {
        let (cert, key) = (cert?, key?);
        let stamps = (mtime(cert), mtime(key));
        let mut g = self.cached.lock();
        if let Some(e) = &*g
            && e.cert == cert
            && e.key == key
            && e.stamps == stamps
        {
            return e.config.clone();
        }
        let config = match load_tls(cert, key) {
            Ok(c) => Some(c),
            Err(e) => {
                log::error!("listener: STARTTLS not offered: {e}");
                None
            }
        };
        *g = Some(TlsEntry {
            cert: cert.to_string(),
            key: key.to_string(),
            stamps,
            config: config.clone(),
        });
        config
    }
}

/// Checks a user name and password against the users file. Lines are `user:hash`; empty
/// lines and lines starting with `#` are skipped. Errors only when the file cannot be read.
pub fn check_password(users_file: &Path, user: &str, password: &[u8]) -> Result<bool> {
    let text = std::fs::read_to_string(users_file)
        .map_err(|e| Error::Config(format!("listen_users_file {}: {e}", users_file.display())))?;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, hash)) = line.split_once(':') else {
            continue;
        };
        if name != user {
            continue;
        }
        // Further `:fields` (as in /etc/shadow) are ignored.
        let hash = hash.split(':').next().unwrap_or("");
        return Ok(ShaCrypt::default().verify_password(password, hash).is_ok());
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("users");
        // `openssl passwd -6 -salt saltsalt secret`
        std::fs::write(
            &p,
            "# comment\n\nalice:$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1\n",
        )
        .unwrap();
        assert!(check_password(&p, "alice", b"secret").unwrap());
        assert!(!check_password(&p, "alice", b"wrong").unwrap());
        assert!(!check_password(&p, "bob", b"secret").unwrap());
        assert!(check_password(&dir.path().join("none"), "alice", b"x").is_err());
    }
}
