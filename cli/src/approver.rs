//! Whose key signs `signerctl`'s approvals: the caller's development key file from
//! cluster.json, or (feature `yubikey`) the caller's YubiKey.
//!
//! Owns: choosing and opening the approver for the admin identity the command runs as, and
//! [`PivApprover`], the [`Approver`] that signs `SHA-256(statement)` in PIV slot 9c. Must not:
//! build or check statements (`signer_client::review` does), or keep a PIN beyond the
//! approver's life (it is zeroized on drop).

use crate::Failure;
use signer_client::{Approver, ClusterDescriptor, SoftApprover};

/// How the approver was chosen on the command line (`--yubikey`, `--yubikey-serial`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Choice {
    /// Sign with the YubiKey instead of the development key file.
    pub yubikey: bool,
    /// Which YubiKey, when several are connected.
    pub serial: Option<u32>,
}

/// How to build signerctl with YubiKey support.
#[cfg(not(feature = "yubikey"))]
pub const BUILD_WITH_YUBIKEY: &str = "this signerctl was built without YubiKey support: build \
     it with `cargo build -p signerctl --features yubikey` (needs libpcsclite-dev and \
     pkg-config; pcscd must run to use the card)";

/// Open the approver of admin `name`.
pub fn open(
    choice: Choice,
    descriptor: &ClusterDescriptor,
    name: &str,
) -> Result<Box<dyn Approver>, Failure> {
    if choice.yubikey {
        return open_yubikey(name, choice.serial);
    }
    let Some(admin) = descriptor.admins.get(name) else {
        let known: Vec<&str> = descriptor.admins.keys().map(String::as_str).collect();
        return Err(Failure::new(
            2,
            format!(
                "error: no development key for admin {name:?} in cluster.json (keys for: {}); \
                 approve with --yubikey, run as another admin (--client), or only propose \
                 with --no-approve",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
        ));
    };
    let soft = SoftApprover::load(name, &admin.key)
        .map_err(|e| Failure::new(2, format!("error: admin {name:?}'s key file: {e}")))?;
    Ok(Box::new(soft))
}

#[cfg(feature = "yubikey")]
fn open_yubikey(name: &str, serial: Option<u32>) -> Result<Box<dyn Approver>, Failure> {
    let piv = signerctl::piv::open(serial)
        .map_err(|e| Failure::new(2, format!("error: --yubikey: {e}")))?;
    Ok(Box::new(yubikey::PivApprover::new(name, piv)))
}

#[cfg(not(feature = "yubikey"))]
fn open_yubikey(_name: &str, _serial: Option<u32>) -> Result<Box<dyn Approver>, Failure> {
    Err(Failure::new(
        2,
        format!("error: --yubikey: {BUILD_WITH_YUBIKEY}"),
    ))
}

#[cfg(feature = "yubikey")]
mod yubikey {
    use sha2::{Digest, Sha256};
    use signer_client::{Approver, ClientError};
    use signerctl::piv::{self, Piv};
    use zeroize::Zeroizing;

    /// An admin's YubiKey: signs `SHA-256(statement)` with the P-256 key in slot 9c, which
    /// verifies with `ECDSA_P256_SHA256_ASN1` over the statement, as the cluster checks it.
    /// The PIN is asked (without echo, or one line of stdin) at the first signature.
    pub struct PivApprover {
        name: String,
        piv: Piv,
        pin: Option<Zeroizing<String>>,
    }

    impl PivApprover {
        /// The approver of admin `name` on the opened card.
        pub fn new(name: &str, piv: Piv) -> PivApprover {
            PivApprover {
                name: name.to_owned(),
                piv,
                pin: None,
            }
        }
    }

    fn failed(e: piv::PivError) -> ClientError {
        ClientError::Other(Box::new(tonic::Status::failed_precondition(format!(
            "YubiKey: {e}"
        ))))
    }

    impl Approver for PivApprover {
        fn name(&self) -> &str {
            &self.name
        }

        fn sign(&mut self, statement: &[u8]) -> Result<Vec<u8>, ClientError> {
            let pin = match self.pin.take() {
                Some(pin) => pin,
                None => piv::read_pin().map_err(failed)?,
            };
            let digest: [u8; 32] = Sha256::digest(statement).into();
            eprintln!(
                "signing the approval on YubiKey {} (touch it when it blinks)",
                self.piv.serial()
            );
            let signature = self.piv.sign_digest(&pin, &digest).map_err(failed)?;
            self.pin = Some(pin);
            Ok(signature)
        }
    }
}
