//! Revoked certificates: what names a certificate ([`Fingerprint`], SHA-256 of its DER bytes),
//! the identity a certificate names ([`certificate_identity`]), and the replicated record of a
//! revocation ([`RevokedCertificate`]).
//!
//! Owns: the fingerprint, its text forms (lower-case hex; `0x`, colons and upper case accepted
//! on input, so `openssl x509 -fingerprint -sha256` output can be pasted), and reading a
//! certificate's identity (first DNS SAN, else CN) — the one implementation the node's
//! services, `signer pki` and `signerctl` all use. Must not: verify certificate chains (rustls
//! does, at the TLS handshake), read a clock, or decide at call time whether a caller is let in
//! (the node's `service::authn` does, against [`super::AdminState::revoked`]).
//!
//! To ensure correctness:
//! - a fingerprint is over the whole DER certificate, so it names one certificate, never a name
//!   or a key: a certificate issued again for the same name (a new key) has another
//!   fingerprint and is not revoked;
//! - a revocation that carries the certificate is checked against its fingerprint in `apply`
//!   (on every replica), so the identity shown to approvers and recorded is the certificate's
//!   own, not the proposer's word.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// SHA-256 of a certificate's DER bytes: what a revocation names.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER certificate.
    pub fn of(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }

    /// Parse 32 bytes of hex: 64 hex digits, optionally `0x`-prefixed, in either case, with
    /// or without `:` between bytes (as `openssl x509 -fingerprint -sha256` prints them).
    pub fn parse(text: &str) -> Result<Fingerprint, FingerprintError> {
        let trimmed = text.trim();
        let digits = trimmed
            .strip_prefix("0x")
            .or_else(|| trimmed.strip_prefix("0X"))
            .unwrap_or(trimmed);
        let digits: String = if digits.contains(':') {
            let parts: Vec<&str> = digits.split(':').collect();
            if parts.iter().any(|p| p.len() != 2) {
                return Err(FingerprintError(text.to_owned()));
            }
            parts.concat()
        } else {
            digits.to_owned()
        };
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(&digits, &mut bytes).map_err(|_| FingerprintError(text.to_owned()))?;
        Ok(Fingerprint(bytes))
    }

    /// The 64 lower-case hex digits (the key of [`super::AdminState::revoked`]).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::bytes::hex_or_raw::serialize(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = crate::bytes::hex_or_raw::deserialize(d)?;
        <[u8; 32]>::try_from(bytes.as_slice())
            .map(Fingerprint)
            .map_err(|_| serde::de::Error::custom("a fingerprint is 32 bytes"))
    }
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fingerprint({})", self.to_hex())
    }
}

/// Text that is not a SHA-256 fingerprint.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a SHA-256 certificate fingerprint: expected 64 hex digits (0x and ':' between \
     bytes allowed)"
)]
pub struct FingerprintError(pub String);

/// A revoked certificate, as the replicated admin state keeps it (keyed by its fingerprint).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedCertificate {
    /// The identity the certificate names, when the revocation carried the certificate (it is
    /// then the certificate's own, checked against the fingerprint); `None` when only the
    /// fingerprint was given.
    pub identity: Option<String>,
}

/// The identity a DER certificate names: its first DNS SAN, else its CN; `None` when it is not
/// a certificate or names nothing.
pub fn certificate_identity(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        let first_dns = san.value.general_names.iter().find_map(|name| match name {
            x509_parser::extensions::GeneralName::DNSName(dns) => Some((*dns).to_owned()),
            _ => None,
        });
        if first_dns.is_some() {
            return first_dns;
        }
    }
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

/// What a revocation's certificate names, in words: `names "seq-2"`, or why it names nothing
/// (only the fingerprint was given, or the bytes are not a certificate).
pub fn describe_certificate(der: &[u8]) -> String {
    if der.is_empty() {
        return "the certificate was not given: its identity is unknown".to_owned();
    }
    match certificate_identity(der) {
        Some(name) => format!("names {name:?}"),
        None => "not a readable certificate".to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_from_every_usual_spelling_and_nothing_else() {
        let fp = Fingerprint([0xab; 32]);
        let plain = "ab".repeat(32);
        assert_eq!(fp.to_hex(), plain);
        assert_eq!(fp.to_string(), plain);
        for text in [
            plain.clone(),
            format!("0x{plain}"),
            plain.to_uppercase(),
            vec!["AB"; 32].join(":"),
            format!("  {plain}\n"),
        ] {
            assert_eq!(Fingerprint::parse(&text), Ok(fp), "{text:?}");
        }
        for bad in [
            String::new(),
            "ab".repeat(31),
            "ab".repeat(33),
            format!("{}zz", "ab".repeat(31)),
            format!("{}:abab", vec!["ab"; 30].join(":")),
        ] {
            assert_eq!(
                Fingerprint::parse(&bad),
                Err(FingerprintError(bad.clone())),
                "{bad:?}"
            );
        }
        assert_eq!(
            FingerprintError("x".into()).to_string(),
            "\"x\" is not a SHA-256 certificate fingerprint: expected 64 hex digits (0x and ':' \
             between bytes allowed)"
        );
    }

    #[test]
    fn a_fingerprint_is_the_sha256_of_the_der_and_the_identity_its_first_dns_san() {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["seq-2".to_owned()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let der = cert.der().to_vec();
        assert_eq!(
            Fingerprint::of(&der).0,
            <[u8; 32]>::from(Sha256::digest(&der))
        );
        assert_eq!(certificate_identity(&der), Some("seq-2".to_owned()));
        assert_eq!(certificate_identity(b"not a certificate"), None);
    }
}
