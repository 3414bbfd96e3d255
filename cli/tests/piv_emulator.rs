//! The YubiKey approver code (`signerctl::piv`) with the real `yubikey` crate, over pcscd and
//! a virtual card (`tests/fixtures/piv_emulator.py` through vsmartcard's vpcd).
//!
//! Needs pcscd running with the vpcd driver and the emulator's Python packages in `.venv`;
//! `./test.sh` installs and starts both. Without them these tests fail (they do not skip).
//! pcscd serves one virtual slot, so the tests take turns: nextest runs this binary in the
//! serialized `cluster` group, and a lock serializes them under `cargo test` too.

#![cfg(feature = "yubikey")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use signer_node::admin::attestation::{verify_attestation, AdminPublicKey, TouchPolicy};
use signerctl::piv::{self, PivError};
use zeroize::Zeroizing;

const SERIAL: u32 = 24_681_357;

fn start_emulator(name: &str) -> common::Emulator {
    common::start_temporary(name, SERIAL)
}

fn test_root(emulator: &common::Emulator) -> Vec<u8> {
    common::test_root(&emulator.out_dir)
}

fn open_card() -> piv::Piv {
    common::open_card(SERIAL)
}

fn pin(s: &str) -> Zeroizing<String> {
    Zeroizing::new(s.to_owned())
}

#[test]
fn enroll_attest_and_sign_with_touch_always() {
    let emulator = start_emulator("always");
    let mut card = open_card();
    assert_eq!(card.serial(), SERIAL);
    assert_eq!(card.firmware(), (5, 7, 1));

    // Firmware 5.7: the default management key is AES-192.
    let enrolled = card.generate_admin_key(&pin("123456"), None, true).unwrap();
    assert_eq!(enrolled.serial, SERIAL);

    let attested = verify_attestation(
        &enrolled.slot_attestation_der,
        &enrolled.device_cert_der,
        &[test_root(&emulator)],
    )
    .unwrap();
    assert_eq!(attested.touch_policy, TouchPolicy::Always);
    assert_eq!(attested.serial, SERIAL);
    assert_eq!(attested.firmware, (5, 7, 1));
    let AdminPublicKey::P256(point) = &attested.public_key else {
        panic!("expected a P-256 key, got {:?}", attested.public_key);
    };
    // The attested key is the generated key.
    assert!(enrolled.public_key_spki_der.ends_with(point));

    // The genuine Yubico roots do not vouch for the emulator.
    assert!(verify_attestation(
        &enrolled.slot_attestation_der,
        &enrolled.device_cert_der,
        &signer_node::admin::attestation::yubico_roots(),
    )
    .is_err());

    // Sign SHA-256(preimage); ring verifies over the preimage.
    let preimage = b"quorum-signer/approval/v1\0 test statement";
    let digest: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, preimage)
        .as_ref()
        .try_into()
        .unwrap();
    for _ in 0..2 {
        // PIN policy "always": every signature verifies the PIN again.
        let sig = card.sign_digest(&pin("123456"), &digest).unwrap();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
            .verify(preimage, &sig)
            .expect("the card's signature verifies over the preimage");
        assert!(UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
            .verify(b"another statement", &sig)
            .is_err());
    }
    drop(card);
    drop(emulator);
}

#[test]
fn touch_never_is_attested_as_never() {
    let emulator = start_emulator("never");
    let mut card = open_card();
    let key =
        Zeroizing::new(hex::decode("010203040506070801020304050607080102030405060708").unwrap());
    let enrolled = card
        .generate_admin_key(&pin("123456"), Some(&key), false)
        .unwrap();
    let attested = verify_attestation(
        &enrolled.slot_attestation_der,
        &enrolled.device_cert_der,
        &[test_root(&emulator)],
    )
    .unwrap();
    assert_eq!(attested.touch_policy, TouchPolicy::Never);
}

#[test]
fn wrong_pin_and_wrong_management_key_fail_clearly() {
    let _emulator = start_emulator("wrong-pin");
    let mut card = open_card();

    let err = card
        .generate_admin_key(&pin("654321"), None, true)
        .unwrap_err();
    assert!(
        matches!(err, PivError::WrongPin { tries_left: 2 }),
        "got {err:?}"
    );
    assert_eq!(
        err.to_string(),
        "wrong PIN: 2 attempt(s) left before the PIN is blocked"
    );

    let err = card.sign_digest(&pin("12345"), &[0; 32]).unwrap_err();
    assert!(matches!(err, PivError::PinFormat), "got {err:?}");

    let wrong = Zeroizing::new(vec![7u8; 24]);
    let err = card
        .generate_admin_key(&pin("123456"), Some(&wrong), true)
        .unwrap_err();
    assert!(matches!(err, PivError::ManagementKey), "got {err:?}");

    // Signing without a key in 9c is refused by the card, not answered with garbage.
    assert!(card.sign_digest(&pin("123456"), &[0; 32]).is_err());

    for left in [2, 1, 0] {
        let err = card.verify_pin(&pin("000000")).unwrap_err();
        if left == 0 {
            assert!(matches!(err, PivError::PinBlocked), "got {err:?}");
        } else {
            assert!(
                matches!(err, PivError::WrongPin { tries_left } if tries_left == left),
                "got {err:?}"
            );
        }
    }
    let err = card.verify_pin(&pin("123456")).unwrap_err();
    assert!(matches!(err, PivError::PinBlocked), "got {err:?}");
}
