//! The admin state as it is stored and replicated: it survives the binary format and JSON
//! unchanged (challenge ids, digests, attestation roots and revocations included), and a bootstrap or
//! state written before the attestation roots were replicated reads Yubico's roots.

use super::*;

/// A trusted root certificate (DER): the first of Yubico's.
fn root() -> Vec<u8> {
    crate::admin::attestation::yubico_roots().remove(0)
}

/// A bootstrapped state with a pending challenge, an attestation root and two revoked
/// certificates (one known by its identity, one by its fingerprint only).
fn busy_state() -> AdminState {
    let a = admin("admin-a", 1);
    let mut s = bootstrapped_with_roots(&[&a], 1, vec![root()]);
    s.propose([0x5a; 32], "admin-a", &canon(&Action::Pause), 1_000)
        .unwrap();
    s.revoked.insert(
        Fingerprint([0xab; 32]).to_hex(),
        RevokedCertificate {
            identity: Some("seq-2".into()),
        },
    );
    s.revoked.insert(
        Fingerprint([0xcd; 32]).to_hex(),
        RevokedCertificate { identity: None },
    );
    s
}

#[test]
fn the_state_survives_the_binary_format_and_json() {
    let s = busy_state();
    let challenge = &s.challenges[&hex::encode([0x5a; 32])];
    assert_eq!(challenge.id, [0x5a; 32]);
    assert_ne!(challenge.digest, [0; 32]);
    assert_eq!(s.attestation_roots, vec![root()]);

    assert_eq!(
        s.revocation(&Fingerprint([0xab; 32])),
        Some(&RevokedCertificate {
            identity: Some("seq-2".into())
        })
    );

    let binary: AdminState = crate::format::decode(&crate::format::encode(&s).unwrap()).unwrap();
    assert_eq!(binary, s);
    let json = serde_json::to_value(&s).unwrap();
    // Bytes are written as hex text in JSON.
    assert_eq!(
        json["attestation_roots"],
        serde_json::json!([hex::encode(root())])
    );
    assert_eq!(
        json["challenges"][hex::encode([0x5a; 32])]["id"],
        serde_json::json!(hex::encode([0x5a; 32]))
    );
    assert_eq!(
        json["revoked"][Fingerprint([0xab; 32]).to_hex()],
        serde_json::json!({ "identity": "seq-2" })
    );
    let back: AdminState = serde_json::from_value(json).unwrap();
    assert_eq!(back, s);
}

#[test]
fn bad_hex_in_stored_bytes_is_refused() {
    let mut json = serde_json::to_value(busy_state()).unwrap();
    json["attestation_roots"] = serde_json::json!(["30zz"]);
    assert!(serde_json::from_value::<AdminState>(json.clone())
        .unwrap_err()
        .to_string()
        .starts_with("Invalid character 'z'"));
    json["attestation_roots"] = serde_json::json!([]);
    let id = hex::encode([0x5a; 32]);
    json["challenges"][&id]["id"] = serde_json::json!("5a5a");
    assert_eq!(
        serde_json::from_value::<AdminState>(json)
            .unwrap_err()
            .to_string(),
        "expected 32 bytes"
    );
}

#[test]
fn a_state_or_bootstrap_without_roots_reads_yubicos_roots() {
    let yubico = crate::admin::attestation::yubico_roots();
    assert!(!yubico.is_empty() && yubico.iter().all(|r| r.len() > 100));
    let mut json = serde_json::to_value(busy_state()).unwrap();
    json.as_object_mut().unwrap().remove("attestation_roots");
    let s: AdminState = serde_json::from_value(json).unwrap();
    assert_eq!(s.attestation_roots, yubico);

    let a = admin("admin-a", 1);
    let bootstrap = Bootstrap {
        cluster_id: "c1".into(),
        admins: vec![record(&a)],
        policy: Policy::default(),
        clients: BTreeMap::new(),
        attestation_roots: vec![vec![1, 2, 3]],
        genesis_validators_root: None,
    };
    let mut json = serde_json::to_value(&bootstrap).unwrap();
    assert_eq!(json["attestation_roots"], serde_json::json!(["010203"]));
    json.as_object_mut().unwrap().remove("attestation_roots");
    let read: Bootstrap = serde_json::from_value(json).unwrap();
    assert_eq!(read.attestation_roots, yubico);
}
