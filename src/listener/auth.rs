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

/// Checks, when `listen_tls_cert` is set, that the file holds at least one PEM certificate.
pub fn check_tls_cert(cert: &str) -> Result<()> {
    cert_chain(cert).map(|_| ())
}

/// The PEM certificates of `cert`, at least one.
fn cert_chain(cert: &str) -> Result<Vec<CertificateDer<'static>>> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| config_error(cert, e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| config_error(cert, e))?;
    if chain.is_empty() {
        return Err(config_error(cert, "no certificate in the file"));
    }
    Ok(chain)
}

/// Checks, when `listen_tls_key` is set, that the file holds a PEM private key.
pub fn check_tls_key(key: &str) -> Result<()> {
    PrivateKeyDer::from_pem_file(key)
        .map(|_| ())
        .map_err(|e| config_error(key, e))
}

/// Whether `hash` is a SHA-crypt hash as [`check_password`] can verify: `$5$` or `$6$`, an
/// optional `rounds=N`, a salt and the hash in crypt base64 of the algorithm's length.
fn supported_hash(hash: &str) -> bool {
    let fields: Vec<&str> = hash.split('$').collect();
    let (id, rest) = match fields.as_slice() {
        ["", id, rest @ ..] => (*id, rest),
        _ => return false,
    };
    let len = match id {
        "5" => 43,
        "6" => 86,
        _ => return false,
    };
    let rest = match rest {
        [r, rest @ ..] if r.starts_with("rounds=") => match r["rounds=".len()..].parse::<u32>() {
            Ok(n) if (1000..=999_999_999).contains(&n) => rest,
            _ => return false,
        },
        rest => rest,
    };
    let crypt64 = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
    };
    matches!(rest, [salt, h] if salt.len() <= 16 && h.len() == len && crypt64(h))
}

/// Checks, when `listen_users_file` is set, that the file can be read and holds at least one
/// `user:hash` line whose hash is in a supported format (SHA-crypt `$5$` or `$6$`).
/// Lines that name no usable user are told in the log, so that a user whose hash is in a
/// format this build cannot verify (yescrypt `$y$`, Debian 12's default for /etc/shadow) is not
/// left to find out from a bare 535.
pub fn check_users_file(path: &Path) -> Result<()> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    let unusable = unusable_lines(&text);
    for (n, why) in &unusable {
        log::warn!(
            "listen_users_file {} line {n}: {why}; that line is ignored",
            path.display()
        );
    }
    let entries = text
        .lines()
        .filter(|l| {
            let l = l.trim_end_matches('\r');
            !l.is_empty() && !l.starts_with('#')
        })
        .count();
    if entries == unusable.len() {
        return Err(Error::Config(format!(
            "{}: no user:hash line with a SHA-crypt ($5$ or $6$) hash",
            path.display()
        )));
    }
    Ok(())
}

/// The entry lines (1-based numbers) that give no usable user, and why: no `user:` part, or a
/// hash that is not SHA-crypt. The hash itself is never repeated.
fn unusable_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once(':') {
            Some(("", _)) => out.push((i + 1, "no user name before ':'".into())),
            Some((name, hash)) if !supported_hash(hash.split(':').next().unwrap_or("")) => {
                out.push((i + 1, format!("user {name:?}: {}", hash_problem(hash))));
            }
            Some(_) => {}
            None => out.push((i + 1, "not a user:hash line".into())),
        }
    }
    out
}

/// Why a hash cannot be used, naming its crypt format only when it is a known one: whatever
/// else follows the colon may be a password written there by mistake (audit-23 C4), and the
/// log must never show it.
fn hash_problem(hash: &str) -> String {
    const KNOWN: [(&str, &str); 7] = [
        ("y", "yescrypt"),
        ("gy", "gost-yescrypt"),
        ("7", "scrypt"),
        ("2b", "bcrypt"),
        ("2y", "bcrypt"),
        ("1", "MD5-crypt"),
        ("apr1", "Apache MD5"),
    ];
    let id = hash
        .strip_prefix('$')
        .and_then(|h| h.split('$').next())
        .unwrap_or("");
    match id {
        "5" | "6" => "a malformed SHA-crypt hash".to_string(),
        _ => match KNOWN.iter().find(|(k, _)| *k == id) {
            Some((k, what)) => format!(
                "a {what} (${k}$) hash, which this build cannot verify; use SHA-crypt ($5$ or $6$, e.g. from `openssl passwd -6`)"
            ),
            None => "not a SHA-crypt hash ($5$ or $6$, e.g. from `openssl passwd -6`)".to_string(),
        },
    }
}

/// Builds the STARTTLS server configuration from a PEM certificate chain and key.
pub fn load_tls(cert: &str, key: &str) -> Result<Arc<ServerConfig>> {
    let chain = cert_chain(cert)?;
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
        if !supported_hash(hash) {
            log::warn!(
                "listen_users_file {}: user {user:?} refused: {}",
                users_file.display(),
                hash_problem(hash)
            );
            return Ok(false);
        }
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
        assert!(check_users_file(&p).is_ok());
    }

    /// Audit-11 K5: the listener's files were taken unchecked when set.
    #[test]
    fn users_files_that_cannot_be_used_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("users");
        let good = "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";
        for bad in [
            "",
            "# only a comment\n",
            "junk\n",
            "alice:$1$saltsalt$abcdefghijklmnopqrstuv\n",
            "alice:$2b$12$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234\n",
            "alice:plain\n",
            "alice:$6$saltsalt$short\n",
            "alice:$6$rounds=10$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1\n",
        ] {
            std::fs::write(&p, bad).unwrap();
            assert!(check_users_file(&p).is_err(), "{bad:?}");
        }
        std::fs::write(&p, format!("bob:$1$x$y\nalice:{good}:extra\r\n")).unwrap();
        assert!(check_users_file(&p).is_ok());
        std::fs::write(
            &p,
            "carol:$5$rounds=5000$saltsalt$abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ\n",
        )
        .unwrap();
        assert!(check_users_file(&p).is_ok());
        assert!(check_users_file(&dir.path().join("none")).is_err());
        assert!(check_users_file(dir.path()).is_err());
    }

    /// audit-22 B4: a line whose hash this build cannot verify (yescrypt, Debian 12's default)
    /// was dropped without a word, and its user only ever got 535.
    #[test]
    fn unusable_lines_are_named() {
        let good = "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";
        let text = format!("# users\nalice:{good}\nbob:$y$j9T$salt$hashhashhash\n\njunk\n:{good}\n");
        let got = unusable_lines(&text);
        let lines: Vec<usize> = got.iter().map(|(n, _)| *n).collect();
        assert_eq!(lines, [3, 5, 6], "{got:?}");
        assert!(
            got[0].1.contains("\"bob\"") && got[0].1.contains("yescrypt ($y$)"),
            "{got:?}"
        );
        assert!(!got[0].1.contains("hashhash"), "the hash is repeated: {got:?}");
        // audit-23 C4: a password written where the hash goes never reaches the log, and a
        // broken SHA-crypt hash is called that.
        let got = unusable_lines("carl:$topsecretpw\ndan:topsecret2\neve:$6$salt$short\n");
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got.iter().all(|(_, why)| !why.contains("topsecret")), "{got:?}");
        assert!(got[2].1.contains("malformed SHA-crypt"), "{got:?}");
    }

    #[test]
    fn tls_files_without_a_certificate_or_key_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "junk\n").unwrap();
        let none = dir.path().join("none.pem");
        for p in [&junk, &none] {
            let p = p.to_str().unwrap();
            assert!(check_tls_cert(p).is_err(), "{p}");
            assert!(check_tls_key(p).is_err(), "{p}");
        }
        assert!(check_tls_cert(dir.path().to_str().unwrap()).is_err());
    }
}
