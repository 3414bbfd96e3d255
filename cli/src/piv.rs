//! YubiKey PIV approver keys (feature `yubikey`): enroll an admin key in slot 9c and sign
//! approval digests with it, over PC/SC with the `yubikey` crate.
//!
//! Owns: talking to the card — opening it (by serial when several are plugged in), PIN and
//! management-key authentication, generating the P-256 admin key with touch policy "always",
//! fetching its attestation (slot certificate + the device f9 certificate), signing, and
//! reading the PIN from the operator. Must not: judge an attestation (the cluster does, with
//! `signer_core::admin::attestation::verify_attestation`), build approval statements, or keep the
//! PIN beyond one call.
//!
//! Signing contract: the card's ECDSA operation signs a *hash* it is given, so
//! [`Piv::sign_digest`] must be given `SHA-256(preimage)`. The DER signature it returns then
//! verifies with `ring`'s `ECDSA_P256_SHA256_ASN1` over the *preimage*:
//! `UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, sec1_point).verify(preimage, sig)`.
//! This is how the node checks approvals (`signer_core::admin::approval`), with the approval
//! statement as the preimage.
//!
//! To ensure correctness:
//! - The PIN is only taken as `Zeroizing<String>` and never from argv ([`read_pin`]).
//! - The admin key is generated on the card (never imported) with PIN policy "always" and, for
//!   real admins, touch policy "always"; the attestation proves both to the cluster.

use std::io::{BufRead, IsTerminal};

use der::Encode;
use yubikey::piv::{self, AlgorithmId, SlotId};
use yubikey::{MgmAlgorithmId, MgmKey, PinPolicy, Serial, TouchPolicy, YubiKey};
use zeroize::Zeroizing;

/// PIV object id of the device attestation (f9) certificate.
const F9_CERT_OBJECT: u32 = 0x5F_FF01;
/// Tag of the certificate inside a PIV certificate object.
const TAG_CERT: u8 = 0x70;
/// Slot used for admin approvals (PIV "digital signature").
const ADMIN_SLOT: SlotId = SlotId::Signature;

/// Why a YubiKey operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PivError {
    /// PC/SC is not available (pcscd not running?) or the reader failed.
    #[error("PC/SC error (is pcscd running?): {0}")]
    Pcsc(yubikey::Error),
    /// No YubiKey (with that serial) is connected.
    #[error("no YubiKey found{}", .serial.map(|s| format!(" with serial {s}")).unwrap_or_default())]
    NotFound {
        /// The serial asked for, if any.
        serial: Option<u32>,
    },
    /// The PIN was wrong.
    #[error("wrong PIN: {tries_left} attempt(s) left before the PIN is blocked")]
    WrongPin {
        /// Attempts left.
        tries_left: u8,
    },
    /// The PIN is blocked (unblock it with the PUK, e.g. `ykman piv access unblock-pin`).
    #[error("the YubiKey PIN is blocked; unblock it with the PUK")]
    PinBlocked,
    /// The PIN is not 6–8 characters.
    #[error("a PIV PIN is 6 to 8 characters")]
    PinFormat,
    /// The PIN could not be read from the terminal or stdin.
    #[error("cannot read the PIN: {0}")]
    PinInput(#[source] std::io::Error),
    /// The management key was rejected or has an unusable length.
    #[error("the management key was rejected by the YubiKey")]
    ManagementKey,
    /// Another card operation failed.
    #[error("YubiKey {op} failed: {source}")]
    Card {
        /// What we were doing.
        op: &'static str,
        /// The driver's error.
        #[source]
        source: yubikey::Error,
    },
    /// The card answered something we cannot use.
    #[error("unexpected answer from the YubiKey: {0}")]
    Unexpected(&'static str),
}

fn card(op: &'static str) -> impl FnOnce(yubikey::Error) -> PivError {
    move |source| match source {
        yubikey::Error::WrongPin { tries: 0 } | yubikey::Error::PinLocked => PivError::PinBlocked,
        yubikey::Error::WrongPin { tries } => PivError::WrongPin { tries_left: tries },
        e @ yubikey::Error::PcscError { .. } => PivError::Pcsc(e),
        source => PivError::Card { op, source },
    }
}

/// An admin key generated on a YubiKey, with what the cluster needs to enroll it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnrolledKey {
    /// The key's SubjectPublicKeyInfo (DER).
    pub public_key_spki_der: Vec<u8>,
    /// The slot 9c attestation certificate (DER), signed by the device key.
    pub slot_attestation_der: Vec<u8>,
    /// The device attestation (f9) certificate (DER), signed by Yubico's CA.
    pub device_cert_der: Vec<u8>,
    /// The YubiKey's serial number.
    pub serial: u32,
}

/// An open YubiKey PIV session.
pub struct Piv {
    yubikey: YubiKey,
}

impl std::fmt::Debug for Piv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Piv")
            .field("serial", &self.serial())
            .finish()
    }
}

/// Open the YubiKey with `serial`, or the only one connected.
pub fn open(serial: Option<u32>) -> Result<Piv, PivError> {
    let opened = match serial {
        Some(s) => YubiKey::open_by_serial(Serial::from(s)),
        None => YubiKey::open(),
    };
    match opened {
        Ok(yubikey) => Ok(Piv { yubikey }),
        Err(yubikey::Error::NotFound) => Err(PivError::NotFound { serial }),
        Err(e) => Err(card("open")(e)),
    }
}

impl Piv {
    /// The card's serial number.
    pub fn serial(&self) -> u32 {
        self.yubikey.serial().into()
    }

    /// The card's PIV firmware version `(major, minor, patch)`.
    pub fn firmware(&self) -> (u8, u8, u8) {
        let v = self.yubikey.version();
        (v.major, v.minor, v.patch)
    }

    /// Verify the PIN (a wrong one costs an attempt; see [`PivError::WrongPin`]).
    pub fn verify_pin(&mut self, pin: &Zeroizing<String>) -> Result<(), PivError> {
        if !(6..=8).contains(&pin.len()) {
            return Err(PivError::PinFormat);
        }
        self.yubikey
            .verify_pin(pin.as_bytes())
            .map_err(card("PIN verification"))
    }

    /// Generate the admin key in slot 9c (P-256, PIN "always", touch "always" unless
    /// `touch_always` is false, which only a development setup should ask for), replacing any
    /// key there, and return it with its attestation.
    ///
    /// `mgmt_key` is the PIV management key; `None` uses the factory default (3DES before
    /// firmware 5.7, AES-192 from 5.7). A key's algorithm follows from its length (16: AES-128,
    /// 24: the firmware's default of 3DES or AES-192, 32: AES-256).
    pub fn generate_admin_key(
        &mut self,
        pin: &Zeroizing<String>,
        mgmt_key: Option<&Zeroizing<Vec<u8>>>,
        touch_always: bool,
    ) -> Result<EnrolledKey, PivError> {
        self.verify_pin(pin)?;
        let mgmt = self.management_key(mgmt_key)?;
        self.yubikey.authenticate(&mgmt).map_err(|e| match e {
            yubikey::Error::AuthenticationError => PivError::ManagementKey,
            e => card("management key authentication")(e),
        })?;

        let touch = if touch_always {
            TouchPolicy::Always
        } else {
            TouchPolicy::Never
        };
        let spki = piv::generate(
            &mut self.yubikey,
            ADMIN_SLOT,
            AlgorithmId::EccP256,
            PinPolicy::Always,
            touch,
        )
        .map_err(card("key generation"))?;
        let public_key_spki_der = spki
            .to_der()
            .map_err(|_| PivError::Unexpected("public key does not encode"))?;

        let slot_attestation_der = piv::attest(&mut self.yubikey, ADMIN_SLOT)
            .map_err(card("attestation"))?
            .to_vec();
        let device_cert_der = self.device_certificate()?;
        Ok(EnrolledKey {
            public_key_spki_der,
            slot_attestation_der,
            device_cert_der,
            serial: self.serial(),
        })
    }

    /// Sign `digest` = SHA-256(preimage) with the slot 9c key, after verifying the PIN (the
    /// key's PIN policy is "always"). With touch policy "always" the card waits for a touch.
    /// Returns the DER ECDSA-P256 signature, which verifies over the *preimage* with `ring`'s
    /// `ECDSA_P256_SHA256_ASN1` (see the module documentation).
    pub fn sign_digest(
        &mut self,
        pin: &Zeroizing<String>,
        digest: &[u8; 32],
    ) -> Result<Vec<u8>, PivError> {
        self.verify_pin(pin)?;
        let sig = piv::sign_data(&mut self.yubikey, digest, AlgorithmId::EccP256, ADMIN_SLOT)
            .map_err(card("signing"))?;
        if sig.first() != Some(&0x30) {
            return Err(PivError::Unexpected("signature is not DER"));
        }
        Ok(sig.to_vec())
    }

    /// The device attestation (f9) certificate, DER.
    pub fn device_certificate(&mut self) -> Result<Vec<u8>, PivError> {
        let object = self
            .yubikey
            .fetch_object(F9_CERT_OBJECT)
            .map_err(card("reading the f9 certificate"))?;
        certificate_from_object(&object).ok_or(PivError::Unexpected("malformed f9 certificate"))
    }

    fn management_key(&self, key: Option<&Zeroizing<Vec<u8>>>) -> Result<MgmKey, PivError> {
        let default = MgmKey::get_default(&self.yubikey).map_err(|_| PivError::ManagementKey)?;
        let Some(key) = key else {
            return Ok(default);
        };
        let alg = match key.len() {
            16 => MgmAlgorithmId::Aes128,
            24 => default.algorithm_id(),
            32 => MgmAlgorithmId::Aes256,
            _ => return Err(PivError::ManagementKey),
        };
        MgmKey::from_bytes(key.as_slice(), Some(alg)).map_err(|_| PivError::ManagementKey)
    }
}

/// The DER certificate inside a PIV certificate object (`70 len cert 71 01 info FE 00`).
fn certificate_from_object(object: &[u8]) -> Option<Vec<u8>> {
    let (&tag, rest) = object.split_first()?;
    if tag != TAG_CERT {
        return None;
    }
    let (len, rest) = match rest.split_first()? {
        (&n, rest) if n < 0x80 => (usize::from(n), rest),
        (0x81, rest) => (usize::from(*rest.first()?), rest.get(1..)?),
        (0x82, rest) => (
            usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?])),
            rest.get(2..)?,
        ),
        _ => return None,
    };
    rest.get(..len).map(<[u8]>::to_vec)
}

/// Read the PIV PIN: prompted without echo on a terminal, else one line from stdin (for
/// scripts: `signerctl … < pin-file`). Never from the command line.
pub fn read_pin() -> Result<Zeroizing<String>, PivError> {
    let pin = if std::io::stdin().is_terminal() {
        Zeroizing::new(rpassword::prompt_password("YubiKey PIN: ").map_err(PivError::PinInput)?)
    } else {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(PivError::PinInput)?;
        Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_owned())
    };
    if !(6..=8).contains(&pin.len()) {
        return Err(PivError::PinFormat);
    }
    Ok(pin)
}

#[cfg(test)]
mod tests {
    use super::certificate_from_object;

    #[test]
    fn certificate_objects_unwrap() {
        let cert = vec![0x30; 300];
        let mut object = vec![0x70, 0x82, 0x01, 0x2c];
        object.extend(&cert);
        object.extend([0x71, 0x01, 0x00, 0xfe, 0x00]);
        assert_eq!(certificate_from_object(&object), Some(cert));
        assert_eq!(
            certificate_from_object(&[0x70, 0x03, 1, 2, 3]),
            Some(vec![1, 2, 3])
        );
        assert_eq!(certificate_from_object(&[0x70, 0x05, 1]), None);
        assert_eq!(certificate_from_object(&[0x53, 0x01, 1]), None);
        assert_eq!(certificate_from_object(&[]), None);
    }
}
