//! YubiKey PIV attestation checks. Pure: no IO, no clock, no RNG.
//!
//! Owns: verifying that a slot attestation certificate chains to a trusted root, reading the
//! facts Yubico puts in it (serial, firmware, PIN and touch policy, form factor) and the
//! attested public key, and the bundled public Yubico roots ([`yubico_roots`]).
//! Must not: decide whether an attested key is acceptable as an admin (the policy, e.g. "touch
//! must be always", is applied by the admin state), or talk to a card (`signerctl` does).
//!
//! The chain this module verifies is the one a YubiKey hands out:
//! `trusted root → device certificate (slot f9, object 5FFF01) → slot attestation certificate`.
//! The device certificate must be signed *directly* by one of the trusted roots. That covers
//! firmware before 5.7.4 (root "Yubico PIV Root CA Serial 263751" signs the f9 certificate) and
//! test roots. Firmware 5.7.4 and later sign f9 with "Yubico PIV Attestation {A,B,B2} 1", two
//! levels below "Yubico Attestation Root 1", and those intermediates are not on the device: to
//! accept such keys, pass the (separately verified) PIV intermediate as a trusted root.
//! "Yubico Attestation Root 1" is bundled so the root itself is pinned here, but on its own it
//! does not verify a 5.7.4+ device certificate.
//!
//! To ensure correctness:
//! - Validity periods are **not** checked: this runs inside `apply()`, which must give the same
//!   answer on every replica at any time, and Yubico's device certificates are long-lived
//!   anyway. Freshness comes from the enrollment challenge, not from certificate dates.
//! - Signatures are checked with `ring` only: RSA PKCS#1 v1.5 (SHA-256/384/512, 2048–8192
//!   bits), ECDSA P-256/P-384 (SHA-256/384) and Ed25519. Anything else is refused.
//! - Every Yubico extension that carries a fact we report must be present exactly once and
//!   well formed; a missing or malformed one refuses the attestation rather than defaulting.

use std::fmt;

use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::der::parse_der_integer;
use x509_parser::x509::SubjectPublicKeyInfo;

/// "Yubico PIV Root CA Serial 263751" (signs device certificates of firmware before 5.7.4),
/// from <https://developers.yubico.com/PKI/yubico-piv-ca-1.pem>.
const YUBICO_PIV_ROOT_PEM: &str = include_str!("roots/yubico-piv-root-ca-serial-263751.pem");
/// "Yubico Attestation Root 1" (firmware 5.7.4 and later, through intermediates), from
/// <https://developers.yubico.com/PKI/yubico-ca-1.pem>.
const YUBICO_ATTESTATION_ROOT_1_PEM: &str = include_str!("roots/yubico-attestation-root-1.pem");

/// Yubico's PIV attestation extensions live under this arc.
const YUBICO_ARC: &str = "1.3.6.1.4.1.41482.3";

/// The PIN policy a YubiKey slot was generated with (attestation extension `.8`, byte 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinPolicy {
    /// The PIN is never needed.
    Never,
    /// The PIN is needed once per session.
    Once,
    /// The PIN is needed before every operation.
    Always,
    /// The PIN is checked against the on-device match-on-card biometric or the PIN (Bio
    /// series), once.
    MatchOnce,
    /// As [`PinPolicy::MatchOnce`], before every operation.
    MatchAlways,
}

/// The touch policy a YubiKey slot was generated with (attestation extension `.8`, byte 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TouchPolicy {
    /// No touch needed.
    Never,
    /// A touch before every operation.
    Always,
    /// A touch, then cached for 15 seconds.
    Cached,
}

impl fmt::Display for PinPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PinPolicy::Never => "never",
            PinPolicy::Once => "once",
            PinPolicy::Always => "always",
            PinPolicy::MatchOnce => "match-once",
            PinPolicy::MatchAlways => "match-always",
        })
    }
}

impl fmt::Display for TouchPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TouchPolicy::Never => "never",
            TouchPolicy::Always => "always",
            TouchPolicy::Cached => "cached",
        })
    }
}

/// An admin's approval key, as attested.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminPublicKey {
    /// ECDSA P-256: the SEC1 uncompressed point (65 bytes, `04 ‖ x ‖ y`).
    P256(Vec<u8>),
    /// Ed25519 (YubiKey firmware 5.7+): the 32-byte public key.
    Ed25519([u8; 32]),
}

/// What a verified attestation proves about a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attested {
    /// The YubiKey's serial number (extension `.7`).
    pub serial: u32,
    /// Firmware version `(major, minor, patch)` (extension `.3`).
    pub firmware: (u8, u8, u8),
    /// PIN policy of the slot.
    pub pin_policy: PinPolicy,
    /// Touch policy of the slot.
    pub touch_policy: TouchPolicy,
    /// Form factor byte (extension `.9`), when present (firmware 5.2+).
    pub form_factor: Option<u8>,
    /// The attested key.
    pub public_key: AdminPublicKey,
}

impl Attested {
    /// The replicated summary of this attestation kept in an admin record.
    pub fn facts(&self) -> super::AttestationFacts {
        let (major, minor, patch) = self.firmware;
        super::AttestationFacts {
            serial: self.serial,
            firmware: format!("{major}.{minor}.{patch}"),
            pin_policy: self.pin_policy.to_string(),
            touch_policy: self.touch_policy.to_string(),
        }
    }
}

/// Which certificate a problem is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertRole {
    /// The slot attestation certificate.
    Slot,
    /// The device (f9) certificate.
    Device,
    /// A trusted root given by the caller.
    Root,
}

impl fmt::Display for CertRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CertRole::Slot => "slot attestation certificate",
            CertRole::Device => "device (f9) certificate",
            CertRole::Root => "trusted root certificate",
        })
    }
}

/// Why an attestation is not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttestationError {
    /// A certificate is not well-formed DER X.509 (or has trailing bytes).
    #[error("the {role} does not parse: {reason}")]
    Parse {
        /// Which certificate.
        role: CertRole,
        /// The parser's complaint.
        reason: String,
    },
    /// No trusted roots were given.
    #[error("no trusted attestation roots are configured")]
    NoTrustedRoots,
    /// The device certificate is not signed by any trusted root.
    #[error("the device (f9) certificate is not signed by a trusted root")]
    UntrustedDevice,
    /// The slot certificate is not signed by the device certificate's key.
    #[error("the slot attestation certificate is not signed by the device (f9) key")]
    SlotNotSignedByDevice,
    /// A signature algorithm or issuer key type this module does not verify.
    #[error("unsupported signature algorithm {algorithm} in the {role}")]
    UnsupportedSignature {
        /// Which certificate carries the signature.
        role: CertRole,
        /// Its signature algorithm OID (and issuer key type).
        algorithm: String,
    },
    /// A Yubico extension we need is absent.
    #[error("the slot attestation certificate lacks the Yubico {0} extension")]
    MissingExtension(&'static str),
    /// A Yubico extension is malformed or repeated.
    #[error("malformed Yubico {name} extension: {reason}")]
    BadExtension {
        /// Which extension.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The attested key is neither P-256 nor Ed25519.
    #[error("the attested key is not a P-256 or Ed25519 key ({0})")]
    UnsupportedKey(String),
}

/// The public Yubico PIV attestation roots (DER): "Yubico PIV Root CA Serial 263751" and
/// "Yubico Attestation Root 1". See the module documentation for which firmware each covers.
pub fn yubico_roots() -> Vec<Vec<u8>> {
    [YUBICO_PIV_ROOT_PEM, YUBICO_ATTESTATION_ROOT_1_PEM]
        .iter()
        .filter_map(|pem| {
            x509_parser::pem::parse_x509_pem(pem.as_bytes())
                .ok()
                .map(|(_, p)| p.contents)
        })
        .collect()
}

/// Verify `root → device → slot` and return what the slot certificate attests.
///
/// `trusted_roots_der` are DER certificates; the device certificate must be signed by one of
/// them directly (see the module documentation for 5.7.4+ firmware). No validity periods are
/// checked, so the result depends only on the bytes given.
pub fn verify_attestation(
    slot_cert_der: &[u8],
    device_cert_der: &[u8],
    trusted_roots_der: &[Vec<u8>],
) -> Result<Attested, AttestationError> {
    let slot = parse(slot_cert_der, CertRole::Slot)?;
    let device = parse(device_cert_der, CertRole::Device)?;
    if trusted_roots_der.is_empty() {
        return Err(AttestationError::NoTrustedRoots);
    }

    let mut trusted = false;
    for root_der in trusted_roots_der {
        let root = parse(root_der, CertRole::Root)?;
        if verify_signed_by(&device, root.public_key(), CertRole::Device)? {
            trusted = true;
            break;
        }
    }
    if !trusted {
        return Err(AttestationError::UntrustedDevice);
    }
    if !verify_signed_by(&slot, device.public_key(), CertRole::Slot)? {
        return Err(AttestationError::SlotNotSignedByDevice);
    }
    read_slot(&slot)
}

/// What a slot attestation certificate *claims*, without verifying any signature: for showing
/// an approver what an enrollment would enroll. Never use the result to trust a key; that is
/// [`verify_attestation`].
pub fn inspect_slot(slot_cert_der: &[u8]) -> Result<Attested, AttestationError> {
    read_slot(&parse(slot_cert_der, CertRole::Slot)?)
}

/// Check that `der` is a certificate usable as a trusted root (parses as X.509 DER, no
/// trailing bytes).
pub fn check_root(der: &[u8]) -> Result<(), AttestationError> {
    parse(der, CertRole::Root).map(|_| ())
}

/// The Yubico facts and the key of a (parsed) slot certificate.
fn read_slot(slot: &X509Certificate<'_>) -> Result<Attested, AttestationError> {
    let firmware = extension(slot, "3", "firmware")?;
    let firmware = match firmware {
        [a, b, c] => (*a, *b, *c),
        _ => {
            return Err(bad(
                "firmware",
                format!("{} bytes, expected 3", firmware.len()),
            ))
        }
    };
    let serial = serial(extension(slot, "7", "serial")?)?;
    let (pin_policy, touch_policy) = policy(extension(slot, "8", "policy")?)?;
    let form_factor = match optional_extension(slot, "9", "form factor")? {
        None => None,
        Some([b]) => Some(*b),
        Some(other) => {
            return Err(bad(
                "form factor",
                format!("{} bytes, expected 1", other.len()),
            ))
        }
    };
    let public_key = admin_key(slot.public_key())?;

    Ok(Attested {
        serial,
        firmware,
        pin_policy,
        touch_policy,
        form_factor,
        public_key,
    })
}

fn parse(der: &[u8], role: CertRole) -> Result<X509Certificate<'_>, AttestationError> {
    match x509_parser::parse_x509_certificate(der) {
        Ok(([], cert)) => Ok(cert),
        Ok((rest, _)) => Err(AttestationError::Parse {
            role,
            reason: format!("{} trailing bytes", rest.len()),
        }),
        Err(e) => Err(AttestationError::Parse {
            role,
            reason: e.to_string(),
        }),
    }
}

/// Whether `cert` carries a valid signature by `issuer_key`. `Err` when the algorithm or key
/// type is one this module does not verify.
fn verify_signed_by(
    cert: &X509Certificate<'_>,
    issuer_key: &SubjectPublicKeyInfo<'_>,
    role: CertRole,
) -> Result<bool, AttestationError> {
    let sig_alg = cert.signature_algorithm.algorithm.to_id_string();
    let key_alg = issuer_key.algorithm.algorithm.to_id_string();
    let curve = ec_curve(issuer_key);
    let algorithm: &'static dyn VerificationAlgorithm =
        match (sig_alg.as_str(), key_alg.as_str(), curve.as_deref()) {
            ("1.2.840.113549.1.1.11", RSA, _) => &signature::RSA_PKCS1_2048_8192_SHA256,
            ("1.2.840.113549.1.1.12", RSA, _) => &signature::RSA_PKCS1_2048_8192_SHA384,
            ("1.2.840.113549.1.1.13", RSA, _) => &signature::RSA_PKCS1_2048_8192_SHA512,
            ("1.2.840.10045.4.3.2", EC, Some(P256)) => &signature::ECDSA_P256_SHA256_ASN1,
            ("1.2.840.10045.4.3.3", EC, Some(P256)) => &signature::ECDSA_P256_SHA384_ASN1,
            ("1.2.840.10045.4.3.2", EC, Some(P384)) => &signature::ECDSA_P384_SHA256_ASN1,
            ("1.2.840.10045.4.3.3", EC, Some(P384)) => &signature::ECDSA_P384_SHA384_ASN1,
            (ED25519, ED25519, _) => &signature::ED25519,
            _ => {
                return Err(AttestationError::UnsupportedSignature {
                    role,
                    algorithm: format!("{sig_alg} with a {key_alg} key"),
                })
            }
        };
    let key = UnparsedPublicKey::new(algorithm, issuer_key.subject_public_key.data.as_ref());
    Ok(key
        .verify(
            cert.tbs_certificate.as_ref(),
            cert.signature_value.data.as_ref(),
        )
        .is_ok())
}

const RSA: &str = "1.2.840.113549.1.1.1";
const EC: &str = "1.2.840.10045.2.1";
const ED25519: &str = "1.3.101.112";
const P256: &str = "1.2.840.10045.3.1.7";
const P384: &str = "1.3.132.0.34";

/// The named curve of an EC key, as a dotted OID.
fn ec_curve(spki: &SubjectPublicKeyInfo<'_>) -> Option<String> {
    let params = spki.algorithm.parameters.as_ref()?;
    params.as_oid().ok().map(|oid| oid.to_id_string())
}

fn admin_key(spki: &SubjectPublicKeyInfo<'_>) -> Result<AdminPublicKey, AttestationError> {
    let key_alg = spki.algorithm.algorithm.to_id_string();
    let bits: &[u8] = spki.subject_public_key.data.as_ref();
    match (key_alg.as_str(), ec_curve(spki).as_deref()) {
        (EC, Some(P256)) if bits.len() == 65 && bits[0] == 0x04 => {
            Ok(AdminPublicKey::P256(bits.to_vec()))
        }
        (EC, Some(P256)) => Err(AttestationError::UnsupportedKey(
            "P-256 point is not 65-byte uncompressed SEC1".into(),
        )),
        (ED25519, _) => <[u8; 32]>::try_from(bits)
            .map(AdminPublicKey::Ed25519)
            .map_err(|_| AttestationError::UnsupportedKey("Ed25519 key is not 32 bytes".into())),
        (alg, curve) => Err(AttestationError::UnsupportedKey(format!(
            "{alg} {}",
            curve.unwrap_or("")
        ))),
    }
}

fn bad(name: &'static str, reason: String) -> AttestationError {
    AttestationError::BadExtension { name, reason }
}

/// The raw value of Yubico extension `1.3.6.1.4.1.41482.3.<arc>`, if present exactly once.
fn optional_extension<'a>(
    cert: &'a X509Certificate<'_>,
    arc: &str,
    name: &'static str,
) -> Result<Option<&'a [u8]>, AttestationError> {
    let wanted = format!("{YUBICO_ARC}.{arc}");
    let mut found = cert
        .iter_extensions()
        .filter(|ext| ext.oid.to_id_string() == wanted);
    let first = found.next().map(|ext| ext.value);
    if found.next().is_some() {
        return Err(bad(name, "present more than once".into()));
    }
    Ok(first)
}

fn extension<'a>(
    cert: &'a X509Certificate<'_>,
    arc: &str,
    name: &'static str,
) -> Result<&'a [u8], AttestationError> {
    optional_extension(cert, arc, name)?.ok_or(AttestationError::MissingExtension(name))
}

/// Extension `.7`: the serial as a DER INTEGER.
fn serial(value: &[u8]) -> Result<u32, AttestationError> {
    let (rest, int) = parse_der_integer(value).map_err(|e| bad("serial", e.to_string()))?;
    if !rest.is_empty() {
        return Err(bad("serial", "trailing bytes".into()));
    }
    int.as_u32().map_err(|e| bad("serial", e.to_string()))
}

/// Extension `.8`: `[pin policy, touch policy]`.
fn policy(value: &[u8]) -> Result<(PinPolicy, TouchPolicy), AttestationError> {
    let [pin, touch] = value else {
        return Err(bad("policy", format!("{} bytes, expected 2", value.len())));
    };
    let pin = match pin {
        0x01 => PinPolicy::Never,
        0x02 => PinPolicy::Once,
        0x03 => PinPolicy::Always,
        0x04 => PinPolicy::MatchOnce,
        0x05 => PinPolicy::MatchAlways,
        other => return Err(bad("policy", format!("unknown PIN policy {other:#04x}"))),
    };
    let touch = match touch {
        0x01 => TouchPolicy::Never,
        0x02 => TouchPolicy::Always,
        0x03 => TouchPolicy::Cached,
        other => return Err(bad("policy", format!("unknown touch policy {other:#04x}"))),
    };
    Ok((pin, touch))
}

#[cfg(test)]
pub(crate) mod tests;
