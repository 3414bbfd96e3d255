//! What an approver signs, and checking that signature. Pure: no IO, no clock.
//!
//! Owns: the approval statement (the bytes an admin's key signs), approver public keys and
//! their signature check. Must not: decide whether an approval counts (that is
//! [`super::state`]), or hold private keys (approvers sign in `signerctl`, on a YubiKey or with a
//! development key file).
//!
//! The statement binds everything an approval may be used for:
//! `"quorum-signer/approval/v1\0" ‖ u16 len ‖ cluster id ‖ challenge id (32) ‖ action digest (32)
//! ‖ expiry (u64 ms, big-endian)`. So an approval cannot be replayed on another cluster, for
//! another challenge, for another action or with another expiry.
//!
//! Signatures: ECDSA P-256 with SHA-256 over the statement (DER, as a PIV card returns it when
//! given SHA-256(statement)), or Ed25519 over the statement.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Domain tag of the approval statement.
const STATEMENT_TAG: &[u8] = b"quorum-signer/approval/v1\0";
/// Domain tag of the action digest.
const ACTION_TAG: &[u8] = b"quorum-signer/admin-action/v1\0";

/// SHA-256 of an action's canonical encoding (the protobuf `signer.v1.AdminAction` bytes).
pub fn action_digest(action_bytes: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(ACTION_TAG);
    h.update(action_bytes);
    h.finalize().into()
}

/// The bytes an approver signs for a challenge.
pub fn statement(
    cluster_id: &str,
    challenge_id: &[u8; 32],
    action_digest: &[u8; 32],
    expires_at_ms: u64,
) -> Vec<u8> {
    let cluster = cluster_id.as_bytes();
    let len = u16::try_from(cluster.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(STATEMENT_TAG.len() + 2 + cluster.len() + 72);
    out.extend_from_slice(STATEMENT_TAG);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&cluster[..usize::from(len)]);
    out.extend_from_slice(challenge_id);
    out.extend_from_slice(action_digest);
    out.extend_from_slice(&expires_at_ms.to_be_bytes());
    out
}

/// An approver's public key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApproverKey {
    /// ECDSA P-256 (a YubiKey PIV slot 9c key): the uncompressed SEC1 point (65 bytes).
    P256(#[serde(with = "crate::bytes::hex_or_raw")] Vec<u8>),
    /// Ed25519 (a development key file): 32 bytes.
    Ed25519(#[serde(with = "crate::bytes::hex_or_raw")] Vec<u8>),
}

impl From<&super::attestation::AdminPublicKey> for ApproverKey {
    fn from(key: &super::attestation::AdminPublicKey) -> Self {
        match key {
            super::attestation::AdminPublicKey::P256(point) => ApproverKey::P256(point.clone()),
            super::attestation::AdminPublicKey::Ed25519(k) => ApproverKey::Ed25519(k.to_vec()),
        }
    }
}

/// Why an approver key or signature is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    /// The public key is malformed.
    #[error("malformed {algorithm} public key: {detail}")]
    BadKey {
        /// Which algorithm.
        algorithm: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// The signature does not verify under the admin's key.
    #[error("the signature does not verify under {admin}'s enrolled key")]
    BadSignature {
        /// The admin whose key was tried.
        admin: String,
    },
}

impl ApproverKey {
    /// Check the key's shape (length, point on the curve / valid encoding).
    pub fn validate(&self) -> Result<(), ApprovalError> {
        match self {
            ApproverKey::P256(point) => {
                if point.len() != 65 || point[0] != 0x04 {
                    return Err(ApprovalError::BadKey {
                        algorithm: "p256",
                        detail: format!(
                            "expected a 65-byte uncompressed point, got {} bytes",
                            point.len()
                        ),
                    });
                }
                // Only the shape is checked here: ring checks that the point is on the curve
                // when it verifies, and a point that is not can never approve anything (keys
                // from an attestation are checked when the certificate is parsed).
                Ok(())
            }
            ApproverKey::Ed25519(key) => {
                let bytes: [u8; 32] =
                    key.as_slice()
                        .try_into()
                        .map_err(|_| ApprovalError::BadKey {
                            algorithm: "ed25519",
                            detail: format!("expected 32 bytes, got {}", key.len()),
                        })?;
                ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|e| {
                    ApprovalError::BadKey {
                        algorithm: "ed25519",
                        detail: e.to_string(),
                    }
                })?;
                Ok(())
            }
        }
    }

    /// Verify `signature` over `message` under this key; `admin` names it in the error.
    pub fn verify(
        &self,
        admin: &str,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), ApprovalError> {
        let ok = match self {
            ApproverKey::P256(point) => ring::signature::UnparsedPublicKey::new(
                &ring::signature::ECDSA_P256_SHA256_ASN1,
                point,
            )
            .verify(message, signature)
            .is_ok(),
            ApproverKey::Ed25519(key) => {
                let Ok(bytes) = <[u8; 32]>::try_from(key.as_slice()) else {
                    return Err(ApprovalError::BadSignature {
                        admin: admin.to_owned(),
                    });
                };
                match (
                    ed25519_dalek::VerifyingKey::from_bytes(&bytes),
                    ed25519_dalek::Signature::from_slice(signature),
                ) {
                    (Ok(vk), Ok(sig)) => vk.verify_strict(message, &sig).is_ok(),
                    _ => false,
                }
            }
        };
        if ok {
            Ok(())
        } else {
            Err(ApprovalError::BadSignature {
                admin: admin.to_owned(),
            })
        }
    }

    /// `p256:<hex>` or `ed25519:<hex>`.
    pub fn to_text(&self) -> String {
        match self {
            ApproverKey::P256(k) => format!("p256:{}", hex::encode(k)),
            ApproverKey::Ed25519(k) => format!("ed25519:{}", hex::encode(k)),
        }
    }

    /// Parse [`ApproverKey::to_text`]'s form.
    pub fn from_text(text: &str) -> Result<Self, ApprovalError> {
        let (algorithm, hex_part) = text.split_once(':').ok_or(ApprovalError::BadKey {
            algorithm: "?",
            detail: "expected p256:<hex> or ed25519:<hex>".into(),
        })?;
        let bytes = |algorithm: &'static str| {
            hex::decode(hex_part.trim_start_matches("0x")).map_err(|e| ApprovalError::BadKey {
                algorithm,
                detail: e.to_string(),
            })
        };
        let key = match algorithm {
            "p256" => ApproverKey::P256(bytes("p256")?),
            "ed25519" => ApproverKey::Ed25519(bytes("ed25519")?),
            other => {
                return Err(ApprovalError::BadKey {
                    algorithm: "?",
                    detail: format!("unknown algorithm {other:?} (p256 or ed25519)"),
                })
            }
        };
        key.validate()?;
        Ok(key)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ed25519_dalek::Signer as _;

    fn soft() -> (ed25519_dalek::SigningKey, ApproverKey) {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let pk = ApproverKey::Ed25519(sk.verifying_key().to_bytes().to_vec());
        (sk, pk)
    }

    #[test]
    fn statement_binds_every_field() {
        let base = statement("c", &[1; 32], &[2; 32], 3);
        assert_ne!(base, statement("d", &[1; 32], &[2; 32], 3));
        assert_ne!(base, statement("c", &[9; 32], &[2; 32], 3));
        assert_ne!(base, statement("c", &[1; 32], &[9; 32], 3));
        assert_ne!(base, statement("c", &[1; 32], &[2; 32], 4));
        // A longer cluster id cannot be confused with a shorter one plus id bytes.
        assert_ne!(
            statement("ab", &[1; 32], &[2; 32], 3),
            statement("a", &[1; 32], &[2; 32], 3)
        );
    }

    #[test]
    fn ed25519_approval_verifies_only_its_statement() {
        let (sk, pk) = soft();
        let msg = statement("c", &[1; 32], &[2; 32], 3);
        let sig = sk.sign(&msg).to_bytes();
        assert_eq!(pk.verify("a", &msg, &sig), Ok(()));
        let other = statement("c", &[1; 32], &[3; 32], 3);
        assert!(matches!(
            pk.verify("a", &other, &sig),
            Err(ApprovalError::BadSignature { .. })
        ));
        assert!(pk.verify("a", &msg, &sig[..63]).is_err());
    }

    #[test]
    fn p256_approval_verifies() {
        use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let pk = ApproverKey::P256(pair.public_key().as_ref().to_vec());
        pk.validate().unwrap();
        let msg = statement("c", &[1; 32], &[2; 32], 3);
        let sig = pair.sign(&rng, &msg).unwrap();
        assert_eq!(pk.verify("a", &msg, sig.as_ref()), Ok(()));
        assert!(pk.verify("a", b"other", sig.as_ref()).is_err());
    }

    #[test]
    fn text_form_round_trips_and_rejects_garbage() {
        let (_, pk) = soft();
        assert_eq!(ApproverKey::from_text(&pk.to_text()).unwrap(), pk);
        for bad in [
            "",
            "ed25519",
            "ed25519:zz",
            "ed25519:00",
            "rsa:00",
            "p256:0400",
        ] {
            assert!(ApproverKey::from_text(bad).is_err(), "{bad}");
        }
    }
}
