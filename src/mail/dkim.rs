//! DKIM signing (SPEC §12, RFC 6376) with mail-auth: relaxed/relaxed, rsa-sha256 or
//! ed25519-sha256, done once when a message becomes ready (by the mount, `sendmail`, the
//! listener or a notice), so that every retry sends the same signed bytes and `cat X.eml`
//! shows the signature. What is signed is the message's wire form (CRLF, Bcc removed), the
//! bytes the receiver gets.
//!
//! A key that cannot be used when a message becomes ready does not let it out unsigned: the
//! message is queued with [`UNSIGNED`] in its internal flags and the reason in
//! `last_try_msg`, and the senders call [`sign_pending`] before each attempt.

use std::path::Path;

use base64::Engine as _;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256, SigningKey};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Signature};
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

use crate::error::{Error, Result};
use crate::mail::content::{self, HeaderInfo};
use crate::model::attrs::{MessageAttrs, NodeAttrs, domain_of};

/// Internal flag of a ready message that should be signed but could not be yet.
pub const UNSIGNED: &str = "dkim_unsigned";

/// The header fields signed when present (RFC 6376 §5.4.1's recommendations).
const SIGNED_HEADERS: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-ID",
    "Content-Description",
    "Sender",
    "List-Id",
    "List-Unsubscribe",
];

/// A usable signing key.
pub enum Key {
    Rsa(RsaKey<Sha256>, Vec<u8>),
    Ed25519(Ed25519Key),
}

fn key_error(path: &str, why: impl std::fmt::Display) -> Error {
    Error::invalid("dkim_key_file", format!("{path}: {why}"))
}

/// Reads a PEM private key: RSA of at least 1024 bits (PKCS#1 or PKCS#8) or Ed25519 (PKCS#8).
pub fn load_key(path: &str) -> Result<Key> {
    let der = PrivateKeyDer::from_pem_file(path).map_err(|e| key_error(path, e))?;
    let rsa_key = match &der {
        PrivateKeyDer::Pkcs1(k) => {
            use rsa::pkcs1::DecodeRsaPrivateKey;
            rsa::RsaPrivateKey::from_pkcs1_der(k.secret_pkcs1_der()).ok()
        }
        PrivateKeyDer::Pkcs8(k) => rsa::RsaPrivateKey::from_pkcs8_der(k.secret_pkcs8_der()).ok(),
        _ => None,
    };
    if let Some(k) = rsa_key {
        let bits = k.size() * 8;
        if bits < 1024 {
            return Err(key_error(
                path,
                format!("an RSA key of {bits} bits (at least 1024)"),
            ));
        }
        let spki = k
            .to_public_key()
            .to_public_key_der()
            .map_err(|e| key_error(path, e))?
            .as_bytes()
            .to_vec();
        let signer = RsaKey::<Sha256>::from_key_der(der).map_err(|e| key_error(path, e))?;
        return Ok(Key::Rsa(signer, spki));
    }
    match &der {
        PrivateKeyDer::Pkcs8(k) => Ed25519Key::from_pkcs8_maybe_unchecked_der(k.secret_pkcs8_der())
            .map(Key::Ed25519)
            .map_err(|_| key_error(path, "neither an RSA nor an Ed25519 private key")),
        _ => Err(key_error(path, "neither an RSA nor an Ed25519 private key")),
    }
}

/// The DNS TXT record to publish for the configured key, as a zone file line.
pub fn dns_record(attrs: &NodeAttrs) -> Result<String> {
    let Some((domain, selector, path)) = attrs.dkim.configured() else {
        return Err(Error::Config(
            "set dkim_domain, dkim_selector and dkim_key_file first".into(),
        ));
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let value = match load_key(path)? {
        Key::Rsa(_, spki) => format!("v=DKIM1; k=rsa; p={}", b64.encode(spki)),
        Key::Ed25519(k) => format!("v=DKIM1; k=ed25519; p={}", b64.encode(k.public_key())),
    };
    // A TXT string holds at most 255 bytes; longer values are split into several.
    let strings: Vec<String> = value
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    Ok(format!(
        "{selector}._domainkey.{domain}. IN TXT {}",
        strings.join(" ")
    ))
}

/// Whether a message from `from` is to be signed for `domain` (the domain or a subdomain).
fn in_domain(from: &str, domain: &str) -> bool {
    let d = domain_of(from).to_ascii_lowercase();
    d == domain || d.ends_with(&format!(".{domain}"))
}

/// One signer for either kind of key: relaxed/relaxed over [`SIGNED_HEADERS`].
fn sign_with<T: SigningKey>(
    key: T,
    domain: &str,
    selector: &str,
    wire: &[u8],
) -> mail_auth::Result<Signature> {
    DkimSigner::from_key(key)
        .domain(domain)
        .selector(selector)
        .headers(SIGNED_HEADERS.iter().copied())
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed)
        .sign(wire)
}

/// The DKIM-Signature field (ending in CRLF) for a message's wire form, or `None` when the
/// node does not sign it (DKIM not configured, or From outside dkim_domain).
pub fn signature_for(attrs: &NodeAttrs, wire: &[u8]) -> Result<Option<String>> {
    let Some((domain, selector, path)) = attrs.dkim.configured() else {
        return Ok(None);
    };
    let head_end = wire
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(wire.len(), |i| i + 4);
    let info = HeaderInfo::parse(&wire[..head_end]);
    match &info.from {
        Some(from) if in_domain(from, domain) => {}
        _ => return Ok(None),
    }
    let key = load_key(path)?;
    let sign_err = |e: mail_auth::Error| Error::invalid("dkim_key_file", format!("signing failed: {e}"));
    let sig = match key {
        Key::Rsa(k, _) => sign_with(k, domain, selector, wire),
        Key::Ed25519(k) => sign_with(k, domain, selector, wire),
    }
    .map_err(sign_err)?;
    Ok(Some(sig.to_header()))
}

/// Signs in memory a message built whole with CRLF line ends (a notice).
pub fn sign_bytes(attrs: &NodeAttrs, message: Vec<u8>) -> Result<Vec<u8>> {
    match signature_for(attrs, &message)? {
        Some(h) => {
            let mut out = h.into_bytes();
            out.extend_from_slice(&message);
            Ok(out)
        }
        None => Ok(message),
    }
}

/// Signs the message in file `path` (complete, Date and Message-ID in place): writes the
/// signed version to `tmp`, returns whether it did (else `tmp` is not created). The field is
/// written with the file's own line ends; the senders turn them into CRLF as for the rest.
pub fn sign_file(attrs: &NodeAttrs, path: &Path, tmp: &Path, message_id: &str, sync: bool) -> Result<bool> {
    if attrs.dkim.configured().is_none() {
        return Ok(false);
    }
    let wire = super::wire::Wire::open(path, message_id)?.read_all()?;
    let Some(field) = signature_for(attrs, &wire)? else {
        return Ok(false);
    };
    let head = content::read_head(path)?;
    let field = match content::line_end(&head) {
        "\r\n" => field,
        eol => field.replace("\r\n", eol),
    };
    content::copy_inserting(path, tmp, 0, field.as_bytes(), sync)?;
    Ok(true)
}

/// Marks a message that should have been signed but could not be: it waits, Pending.
pub fn mark_unsigned(a: &mut MessageAttrs, e: &Error) {
    let why = format!("not sent: DKIM signing failed: {e}");
    log::error!("{why}");
    a.internal.insert(UNSIGNED.into(), "1".into());
    a.last_try_msg = why;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomains_are_in_the_domain() {
        assert!(in_domain("a@example.org", "example.org"));
        assert!(in_domain("a@Mail.Example.org", "example.org"));
        assert!(!in_domain("a@badexample.org", "example.org"));
        assert!(!in_domain("a@example.org.evil", "example.org"));
    }

    #[test]
    fn keys_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.pem");
        std::fs::write(&bad, "not a key").unwrap();
        assert!(load_key(bad.to_str().unwrap()).is_err());
        assert!(load_key("/nonexistent/key.pem").is_err());
        assert!(matches!(
            load_key(bad.to_str().unwrap()),
            Err(Error::Invalid { .. })
        ));
    }
}
