//! Case table for `verify_attestation`, over chains made with rcgen (no Python, no card).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, IsCa, Issuer, KeyPair,
    PublicKeyData, SignatureAlgorithm, PKCS_ECDSA_P256_SHA256, PKCS_ED25519,
};

const SERIAL: u32 = 12_345_678;

fn oid(arc: u64) -> Vec<u64> {
    vec![1, 3, 6, 1, 4, 1, 41482, 3, arc]
}

/// DER INTEGER of a `u32` (minimal, positive).
fn der_u32(n: u32) -> Vec<u8> {
    let mut bytes = vec![0u8];
    bytes.extend_from_slice(&n.to_be_bytes());
    while bytes.len() > 1 && bytes[0] == 0 && bytes[1] & 0x80 == 0 {
        bytes.remove(0);
    }
    let mut out = vec![0x02, bytes.len() as u8];
    out.extend(bytes);
    out
}

pub(crate) fn ca(cn: &str) -> (Vec<u8>, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let der = params.self_signed(&key).unwrap().der().to_vec();
    (der, Issuer::new(params, key))
}

/// A device (f9) certificate under `root`.
pub(crate) fn device(root: &Issuer<'static, KeyPair>) -> (Vec<u8>, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "Yubico PIV Attestation");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let der = params.signed_by(&key, root).unwrap().der().to_vec();
    (der, Issuer::new(params, key))
}

/// What goes into a slot certificate; `None` leaves an extension out.
pub(crate) struct Slot {
    pub(crate) alg: &'static SignatureAlgorithm,
    pub(crate) firmware: Option<Vec<u8>>,
    pub(crate) serial: Option<Vec<u8>>,
    pub(crate) policy: Option<Vec<u8>>,
    pub(crate) form_factor: Option<Vec<u8>>,
}

impl Default for Slot {
    fn default() -> Self {
        Slot {
            alg: &PKCS_ECDSA_P256_SHA256,
            firmware: Some(vec![5, 7, 1]),
            serial: Some(der_u32(SERIAL)),
            policy: Some(vec![0x02, 0x02]),
            form_factor: Some(vec![0x01]),
        }
    }
}

/// A slot attestation certificate signed by `device`; returns it and the slot key.
pub(crate) fn slot(spec: Slot, device: &Issuer<'static, KeyPair>) -> (Vec<u8>, KeyPair) {
    let key = KeyPair::generate_for(spec.alg).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "YubiKey PIV Attestation 9c");
    for (arc, value) in [
        (3, spec.firmware),
        (7, spec.serial),
        (8, spec.policy),
        (9, spec.form_factor),
    ] {
        if let Some(value) = value {
            params
                .custom_extensions
                .push(CustomExtension::from_oid_content(&oid(arc), value));
        }
    }
    let der = params.signed_by(&key, device).unwrap().der().to_vec();
    (der, key)
}

/// A whole chain: (root DER, device DER, slot DER, slot key).
pub(crate) fn chain(spec: Slot) -> (Vec<u8>, Vec<u8>, Vec<u8>, KeyPair) {
    let (root_der, root) = ca("Test Attestation Root");
    let (device_der, device) = device(&root);
    let (slot_der, key) = slot(spec, &device);
    (root_der, device_der, slot_der, key)
}

#[test]
fn valid_chain_reports_every_fact() {
    let (root, device, slot, key) = chain(Slot::default());
    let attested = verify_attestation(&slot, &device, &[root]).unwrap();
    assert_eq!(
        attested,
        Attested {
            serial: SERIAL,
            firmware: (5, 7, 1),
            pin_policy: PinPolicy::Once,
            touch_policy: TouchPolicy::Always,
            form_factor: Some(1),
            public_key: AdminPublicKey::P256(key.der_bytes().to_vec()),
        }
    );
    let facts = attested.facts();
    assert_eq!(
        (
            facts.firmware.as_str(),
            facts.pin_policy.as_str(),
            facts.touch_policy.as_str()
        ),
        ("5.7.1", "once", "always")
    );
}

#[test]
fn case_table() {
    let (root, device_der, _, _) = chain(Slot::default());
    let (other_root, _) = ca("Some Other Root");

    struct Case {
        name: &'static str,
        spec: Slot,
        want: Result<(PinPolicy, TouchPolicy), AttestationError>,
    }
    let cases = vec![
        Case {
            name: "touch never is reported, not refused",
            spec: Slot {
                policy: Some(vec![0x01, 0x01]),
                ..Slot::default()
            },
            want: Ok((PinPolicy::Never, TouchPolicy::Never)),
        },
        Case {
            name: "touch cached, PIN always",
            spec: Slot {
                policy: Some(vec![0x03, 0x03]),
                ..Slot::default()
            },
            want: Ok((PinPolicy::Always, TouchPolicy::Cached)),
        },
        Case {
            name: "no form factor (firmware before 5.2) is fine",
            spec: Slot {
                form_factor: None,
                ..Slot::default()
            },
            want: Ok((PinPolicy::Once, TouchPolicy::Always)),
        },
        Case {
            name: "missing firmware",
            spec: Slot {
                firmware: None,
                ..Slot::default()
            },
            want: Err(AttestationError::MissingExtension("firmware")),
        },
        Case {
            name: "missing serial",
            spec: Slot {
                serial: None,
                ..Slot::default()
            },
            want: Err(AttestationError::MissingExtension("serial")),
        },
        Case {
            name: "missing policy",
            spec: Slot {
                policy: None,
                ..Slot::default()
            },
            want: Err(AttestationError::MissingExtension("policy")),
        },
        Case {
            name: "policy of one byte",
            spec: Slot {
                policy: Some(vec![0x02]),
                ..Slot::default()
            },
            want: Err(bad("policy", "1 bytes, expected 2".into())),
        },
        Case {
            name: "unknown touch policy",
            spec: Slot {
                policy: Some(vec![0x02, 0x09]),
                ..Slot::default()
            },
            want: Err(bad("policy", "unknown touch policy 0x09".into())),
        },
        Case {
            name: "serial not a DER INTEGER",
            spec: Slot {
                serial: Some(SERIAL.to_be_bytes().to_vec()),
                ..Slot::default()
            },
            want: Err(AttestationError::BadExtension {
                name: "serial",
                reason: String::new(),
            }),
        },
        Case {
            name: "firmware of two bytes",
            spec: Slot {
                firmware: Some(vec![5, 7]),
                ..Slot::default()
            },
            want: Err(bad("firmware", "2 bytes, expected 3".into())),
        },
    ];

    for case in cases {
        let (root_der, root_issuer) = ca("Test Attestation Root");
        let (dev_der, dev) = device(&root_issuer);
        let (slot_der, _) = slot(case.spec, &dev);
        let got = verify_attestation(&slot_der, &dev_der, &[root_der])
            .map(|a| (a.pin_policy, a.touch_policy));
        match (&got, &case.want) {
            // The parser's wording is not ours to pin: only the extension name.
            (
                Err(AttestationError::BadExtension { name, .. }),
                Err(AttestationError::BadExtension { name: want, reason }),
            ) if reason.is_empty() => assert_eq!(name, want, "{}", case.name),
            _ => assert_eq!(got, case.want, "{}", case.name),
        }
    }

    // Chain-level cases.
    let (slot_der, _) = {
        let (_, root_issuer) = ca("x");
        let (_, dev) = device(&root_issuer);
        slot(Slot::default(), &dev)
    };
    assert_eq!(
        verify_attestation(&slot_der, &device_der, std::slice::from_ref(&root)),
        Err(AttestationError::SlotNotSignedByDevice),
        "slot certificate signed by another device's key"
    );
    let (_, device_der, slot_der, _) = chain(Slot::default());
    assert_eq!(
        verify_attestation(&slot_der, &device_der, &[other_root]),
        Err(AttestationError::UntrustedDevice),
        "device certificate under a root we do not trust"
    );
    assert_eq!(
        verify_attestation(&slot_der, &device_der, &[]),
        Err(AttestationError::NoTrustedRoots)
    );
    assert!(matches!(
        verify_attestation(
            b"not a certificate",
            &device_der,
            std::slice::from_ref(&root)
        ),
        Err(AttestationError::Parse {
            role: CertRole::Slot,
            ..
        })
    ));
    let mut trailing = slot_der.clone();
    trailing.push(0);
    assert!(matches!(
        verify_attestation(&trailing, &device_der, &[root]),
        Err(AttestationError::Parse {
            role: CertRole::Slot,
            ..
        })
    ));
}

/// Find `needle` in `hay` exactly once and return its offset.
pub(crate) fn find_once(hay: &[u8], needle: &[u8]) -> usize {
    let hits: Vec<usize> = hay
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "needle {needle:02x?} found {} times",
        hits.len()
    );
    hits[0]
}

#[test]
fn tampered_certificates_are_refused() {
    let (root, device, slot, _) = chain(Slot::default());

    // Turn "touch always" into "touch never" inside the signed slot certificate: the last arc
    // of the policy OID (…3.8), then OCTET STRING { pin = 02, touch = 02 }.
    let mut tampered = slot.clone();
    let at = find_once(&tampered, &[0x03, 0x08, 0x04, 0x02, 0x02, 0x02]);
    tampered[at + 5] = 0x01;
    assert_eq!(
        verify_attestation(&tampered, &device, std::slice::from_ref(&root)),
        Err(AttestationError::SlotNotSignedByDevice)
    );

    // Change the serial the same way.
    let mut tampered = slot.clone();
    let serial = der_u32(SERIAL);
    let at = find_once(&tampered, &serial);
    tampered[at + serial.len() - 1] ^= 0x01;
    assert_eq!(
        verify_attestation(&tampered, &device, std::slice::from_ref(&root)),
        Err(AttestationError::SlotNotSignedByDevice)
    );

    // A flipped bit in the device certificate's signature.
    let mut tampered = device.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    assert_eq!(
        verify_attestation(&slot, &tampered, &[root]),
        Err(AttestationError::UntrustedDevice)
    );
}

#[test]
fn ed25519_slot_keys_are_attested() {
    let (root, device, slot, key) = chain(Slot {
        alg: &PKCS_ED25519,
        ..Slot::default()
    });
    let attested = verify_attestation(&slot, &device, &[root]).unwrap();
    let want: [u8; 32] = key.der_bytes().try_into().unwrap();
    assert_eq!(attested.public_key, AdminPublicKey::Ed25519(want));
}

#[test]
fn serial_integers_decode() {
    for n in [0, 1, 127, 128, 255, 256, 5_000_000, SERIAL, u32::MAX] {
        assert_eq!(serial(&der_u32(n)), Ok(n), "{n}");
    }
    assert!(
        serial(&[0x02, 0x05, 0x01, 0, 0, 0, 0]).is_err(),
        "more than 32 bits"
    );
}

#[test]
fn bundled_yubico_roots_parse_and_are_self_signed() {
    let roots = yubico_roots();
    assert_eq!(roots.len(), 2);
    let names: Vec<String> = roots
        .iter()
        .map(|der| {
            let cert = parse(der, CertRole::Root).unwrap();
            assert_eq!(cert.subject(), cert.issuer());
            assert!(
                verify_signed_by(&cert, cert.public_key(), CertRole::Root).unwrap(),
                "{} verifies under its own key",
                cert.subject()
            );
            cert.subject().to_string()
        })
        .collect();
    assert_eq!(
        names,
        [
            "CN=Yubico PIV Root CA Serial 263751",
            "CN=Yubico Attestation Root 1"
        ]
    );
}

#[test]
fn inspecting_a_slot_reads_its_claims_but_trusts_nothing() {
    let (root, _, slot_der, key) = chain(Slot::default());
    // Signed by a device certificate that no root vouches for: the claims still read (for
    // display), while verification refuses it.
    let claimed = inspect_slot(&slot_der).unwrap();
    assert_eq!(claimed.serial, SERIAL);
    assert_eq!(
        claimed.public_key,
        AdminPublicKey::P256(key.der_bytes().to_vec())
    );
    let (_, rogue_root) = ca("Rogue Root");
    let (rogue_device, _) = device(&rogue_root);
    assert_eq!(
        verify_attestation(&slot_der, &rogue_device, std::slice::from_ref(&root)),
        Err(AttestationError::UntrustedDevice)
    );
    assert!(matches!(
        inspect_slot(b"not a certificate"),
        Err(AttestationError::Parse {
            role: CertRole::Slot,
            ..
        })
    ));
    assert_eq!(check_root(&root), Ok(()));
    assert!(check_root(&[0x30, 0x00]).is_err());
}
