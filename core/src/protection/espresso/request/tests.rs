//! Known answers for the request kinds (the independent Python reference
//! `tests/vectors/espresso/requests_ref.py`, see `REQUESTS.md`), cross-checks of the key and
//! bincode encodings against arkworks and bincode themselves, and hostile inputs: no kind
//! yields 32 signed bytes unless it is a hash output or needs a trusted client.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::scheme::bn254::{SecretKey, Signature};
use ark_bn254::G2Affine;
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};
use proptest::prelude::*;
use serde_json::Value;

const REQUESTS: &str = include_str!("../../../../../tests/vectors/espresso/requests.json");
const VECTORS: &str = include_str!("../../../../../tests/vectors/espresso/vectors.json");

fn unhex(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap().trim_start_matches("0x")).unwrap()
}

/// The public demo keys (espresso-network `.env`), from `vectors.json`.
fn demo_keys() -> Vec<SecretKey> {
    let v: Value = serde_json::from_str(VECTORS).unwrap();
    v["demo_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| SecretKey::from_tagged(k["bls_signing_key"].as_str().unwrap()).unwrap())
        .collect()
}

/// A key from a small scalar (test keys for generated inputs).
fn key_from(scalar: u64) -> PublicKey {
    let mut le = [0u8; 32];
    le[..8].copy_from_slice(&scalar.max(1).to_le_bytes());
    SecretKey::from_le_bytes(&le).unwrap().public_key()
}

#[test]
fn known_answers_from_the_python_reference() {
    let doc: Value = serde_json::from_str(REQUESTS).unwrap();
    let sks = demo_keys();
    let pks: Vec<PublicKey> = sks.iter().map(SecretKey::public_key).collect();
    for k in doc["keys"].as_array().unwrap() {
        let i = k["index"].as_u64().unwrap() as usize;
        assert_eq!(pks[i].to_tagged(), k["bls_ver_key"].as_str().unwrap());
        assert_eq!(
            compressed_key(&pks[i]).to_vec(),
            unhex(&k["pk_compressed_hex"])
        );
    }
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 13);
    let mut kinds = std::collections::BTreeSet::new();
    for case in cases {
        let request: Request = serde_json::from_value(case["request"].clone()).unwrap();
        let kind = case["kind"].as_str().unwrap();
        kinds.insert(kind);
        assert_eq!(request.name(), kind);
        request.validate().unwrap();
        let i = case["signer_index"].as_u64().unwrap() as usize;
        let bytes = request.signed_bytes(&pks[i]);
        assert_eq!(bytes, unhex(&case["signed_bytes_hex"]), "{kind}");
        let sig = sks[i].sign(&bytes);
        assert_eq!(sig.to_tagged(), case["bls_sig"].as_str().unwrap(), "{kind}");
        assert_eq!(sig.to_bytes().to_vec(), unhex(&case["sig_hex"]));
        assert!(sig.verify(&pks[i], &bytes));
        assert!(!sig.verify(&pks[(i + 1) % pks.len()], &bytes));
        if let Some(pre) = case.get("preimage_hex") {
            let Request::Vid { view } = request else {
                panic!("preimage on a {kind} case")
            };
            assert_eq!(vid_request_preimage(view, &pks[i]), unhex(pre));
            assert!(is_vid_request_preimage(&unhex(pre)));
        }
        // The serde form round-trips.
        let back: Request =
            serde_json::from_str(&serde_json::to_string(&request).unwrap()).unwrap();
        assert_eq!(back, request);
    }
    assert_eq!(kinds.len(), 8, "every kind has a known answer");
}

/// `compressed_key` is arkworks' own `serialize_compressed` (what HotShot's `to_bytes` calls),
/// for the demo keys and for keys with either y sign.
#[test]
fn compressed_key_is_arkworks_compressed() {
    let mut keys: Vec<PublicKey> = demo_keys().iter().map(SecretKey::public_key).collect();
    keys.extend((1..24).map(key_from));
    let mut flags = std::collections::BTreeSet::new();
    for key in &keys {
        let point = G2Affine::deserialize_uncompressed(&key.to_bytes()[..]).unwrap();
        let mut want = Vec::new();
        point.serialize_compressed(&mut want).unwrap();
        let got = compressed_key(key);
        assert_eq!(got.to_vec(), want);
        assert_eq!(G2Affine::deserialize_compressed(&got[..]).unwrap(), point);
        flags.insert(got[COMPRESSED_KEY_LEN - 1] & 0x80);
    }
    assert_eq!(flags.len(), 2, "both y signs covered");
}

/// The VID request preimage equals what bincode 1.3 and ark-serialize write for a mirror of
/// `RequestKind::Vid(ViewNumber, BLSPubKey)` whose key is its `TaggedBase64` byte vector.
#[test]
fn vid_preimage_matches_bincode_and_ark_serialize() {
    #[derive(serde::Serialize)]
    struct ViewNumber(u64);
    #[derive(serde::Serialize)]
    enum RequestKind {
        Vid(ViewNumber, Vec<u8>),
    }
    for (view, key) in [
        (0u64, key_from(1)),
        (7, key_from(2)),
        (u64::MAX, key_from(3)),
    ] {
        let value = key.to_bytes().to_vec();
        let tagged = crate::scheme::bn254::tagged::encode("BLS_VER_KEY", &value);
        let raw = base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            tagged.split_once('~').unwrap().1,
        )
        .unwrap();
        let checksum = *raw.last().unwrap();
        let mut canonical = Vec::new();
        ("BLS_VER_KEY".to_string(), value, checksum)
            .serialize_compressed(&mut canonical)
            .unwrap();
        let want = bincode::serialize(&RequestKind::Vid(ViewNumber(view), canonical)).unwrap();
        assert_eq!(vid_request_preimage(view, &key), want);
        assert_eq!(want.len(), VID_REQUEST_PREIMAGE_LEN);
        assert!(is_vid_request_preimage(&want));
    }
}

#[test]
fn vid_preimage_recogniser_needs_every_fixed_byte() {
    let pre = vid_request_preimage(99, &key_from(5));
    for i in 0..pre.len() {
        let mut bad = pre.clone();
        bad[i] ^= 0x01;
        let fixed = i < 4 || (12..47).contains(&i);
        assert_eq!(is_vid_request_preimage(&bad), !fixed, "byte {i}");
    }
    assert!(!is_vid_request_preimage(&pre[1..]));
    let mut longer = pre.clone();
    longer.push(0);
    assert!(!is_vid_request_preimage(&longer));
    assert!(!is_vid_request_preimage(&[]));
}

#[test]
fn bounds() {
    let catch_up = |n: usize| Request::CatchUp {
        request: HexBytes(vec![1; n]),
        timestamp: 0,
    };
    assert!(matches!(
        catch_up(0).validate(),
        Err(RequestError::Empty { .. })
    ));
    catch_up(1).validate().unwrap();
    catch_up(MAX_CATCH_UP_REQUEST_BYTES).validate().unwrap();
    assert!(matches!(
        catch_up(MAX_CATCH_UP_REQUEST_BYTES + 1).validate(),
        Err(RequestError::TooLong { .. })
    ));
    let mut ed = vec![0x00, 36, 0x08, 0x01, 0x12, 0x20];
    ed.extend([7u8; 32]);
    let mut sha = vec![0x12, 0x20];
    sha.extend([9u8; 32]);
    for good in [ed.clone(), sha.clone(), vec![0x00, 1, 5], {
        let mut v = vec![0x00, 42];
        v.extend([1u8; 42]);
        v
    }] {
        check_peer_id(&good).unwrap();
        Request::Libp2pAuth {
            peer_id: HexBytes(good.clone()),
        }
        .validate()
        .unwrap();
        Request::DhtRecord {
            value: HexBytes(good),
        }
        .validate()
        .unwrap();
    }
    let too_long = {
        let mut v = vec![0x00, 43];
        v.extend([1u8; 43]);
        v
    };
    for bad in [
        vec![],
        vec![0x00, 0],
        vec![0x00, 2, 1],
        too_long,
        sha[..33].to_vec(),
        [sha.clone(), vec![0]].concat(),
        vec![0x13, 0x20],
        [vec![0x12, 0x21], vec![0; 33]].concat(),
    ] {
        assert!(check_peer_id(&bad).is_err(), "{bad:?}");
        assert!(matches!(
            Request::Libp2pAuth {
                peer_id: HexBytes(bad.clone())
            }
            .validate(),
            Err(RequestError::NotPeerId {
                field: "peer_id",
                ..
            })
        ));
        assert!(matches!(
            Request::DhtRecord {
                value: HexBytes(bad)
            }
            .validate(),
            Err(RequestError::NotPeerId { field: "value", .. })
        ));
    }
}

#[test]
fn names_views_and_serde() {
    let c = commit(3);
    let all = [
        (Request::ProposalFetch { view: 4 }, Some(4)),
        (Request::Vid { view: 5 }, Some(5)),
        (
            Request::CatchUp {
                request: HexBytes(vec![1]),
                timestamp: 9,
            },
            None,
        ),
        (
            Request::Libp2pAuth {
                peer_id: HexBytes(vec![0, 1, 2]),
            },
            None,
        ),
        (
            Request::DhtRecord {
                value: HexBytes(vec![0, 1, 2]),
            },
            None,
        ),
        (Request::PushCdnAuth { timestamp: 1 }, None),
        (
            Request::BuilderAvailableBlocks {
                parent_commitment: c,
                view: 6,
            },
            Some(6),
        ),
        (
            Request::BuilderClaim {
                block_hash: c,
                view: 7,
            },
            Some(7),
        ),
    ];
    let names: std::collections::BTreeSet<_> = all.iter().map(|(r, _)| r.name()).collect();
    assert_eq!(names.len(), all.len());
    for (request, view) in &all {
        assert_eq!(request.view(), *view);
        assert_eq!(
            request.requires_trusted_client(),
            request.name().starts_with("builder-")
        );
    }
    let unknown = r#"{"proposal_fetch":{"view":1,"key":"0x00"}}"#;
    assert!(serde_json::from_str::<Request>(unknown).is_err());
    let json = serde_json::to_value(&all[6].0).unwrap();
    assert_eq!(
        json["builder_available_blocks"]["parent_commitment"],
        format!("0x{}", "03".repeat(32))
    );
}

fn commit(b: u8) -> Commitment {
    crate::bytes::FixedBytes([b; 32])
}

/// Any request of any kind: generated fields, including ones `validate` refuses.
fn any_request() -> impl Strategy<Value = Request> {
    let bytes = proptest::collection::vec(any::<u8>(), 0..80);
    let peer = prop_oneof![
        proptest::collection::vec(any::<u8>(), 1..=42).prop_map(|k| {
            let mut v = vec![0x00, k.len() as u8];
            v.extend(k);
            v
        }),
        any::<[u8; 32]>().prop_map(|d| [vec![0x12, 0x20], d.to_vec()].concat()),
        proptest::collection::vec(any::<u8>(), 0..50),
    ];
    prop_oneof![
        any::<u64>().prop_map(|view| Request::ProposalFetch { view }),
        any::<u64>().prop_map(|view| Request::Vid { view }),
        (bytes, any::<u64>()).prop_map(|(r, timestamp)| Request::CatchUp {
            request: HexBytes(r),
            timestamp
        }),
        peer.clone().prop_map(|p| Request::Libp2pAuth {
            peer_id: HexBytes(p)
        }),
        peer.prop_map(|p| Request::DhtRecord { value: HexBytes(p) }),
        any::<u64>().prop_map(|timestamp| Request::PushCdnAuth { timestamp }),
        (any::<[u8; 32]>(), any::<u64>()).prop_map(|(c, view)| {
            Request::BuilderAvailableBlocks {
                parent_commitment: crate::bytes::FixedBytes(c),
                view,
            }
        }),
        (any::<[u8; 32]>(), any::<u64>()).prop_map(|(c, view)| Request::BuilderClaim {
            block_hash: crate::bytes::FixedBytes(c),
            view
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The length rule of the module docs: a valid request signs 32 bytes only if it is a hash
    /// output of the signer's own preimage or a client-chosen value for a trusted client; every
    /// other kind's length follows its layout exactly and is never 32.
    #[test]
    fn only_hash_outputs_and_trusted_kinds_sign_32_bytes(
        request in any_request(),
        scalar in 1u64..6,
    ) {
        let key = key_from(scalar);
        let Ok(()) = request.validate() else { return Ok(()) };
        let len = request.signed_bytes(&key).len();
        let want = match &request {
            Request::ProposalFetch { .. } | Request::Vid { .. } => 32,
            Request::CatchUp { request, .. } => request.0.len() + 8 + CATCH_UP_SUFFIX.len(),
            Request::Libp2pAuth { peer_id } => COMPRESSED_KEY_LEN + peer_id.0.len(),
            Request::DhtRecord { value } => 1 + COMPRESSED_KEY_LEN + value.0.len(),
            Request::PushCdnAuth { .. } => 38,
            Request::BuilderAvailableBlocks { .. } | Request::BuilderClaim { .. } => 32,
        };
        prop_assert_eq!(len, want);
        if len == 32 {
            prop_assert!(request.is_hash_output() || request.requires_trusted_client());
        } else {
            prop_assert!(!request.is_hash_output() && !request.requires_trusted_client());
            let min = match &request {
                Request::CatchUp { .. } => 34,
                Request::Libp2pAuth { .. } => 67,
                Request::DhtRecord { .. } => 68,
                _ => 38,
            };
            prop_assert!(len >= min, "{} signs {} bytes", request.name(), len);
        }
    }

    /// The signed bytes start with the signer's own key wherever a layout holds a key, and the
    /// hash kinds depend on the key: no client field can stand in for the signing key.
    #[test]
    fn the_key_in_the_bytes_is_the_signing_key(view in any::<u64>(), a in 1u64..4, b in 4u64..8) {
        let (ka, kb) = (key_from(a), key_from(b));
        for request in [Request::ProposalFetch { view }, Request::Vid { view }] {
            prop_assert_ne!(request.signed_bytes(&ka), request.signed_bytes(&kb));
        }
        let peer = Request::Libp2pAuth { peer_id: HexBytes(vec![0, 1, 9]) };
        prop_assert_eq!(&peer.signed_bytes(&ka)[..64], &compressed_key(&ka)[..]);
        let dht = Request::DhtRecord { value: HexBytes(vec![0, 1, 9]) };
        prop_assert_eq!(&dht.signed_bytes(&kb)[1..65], &compressed_key(&kb)[..]);
    }

    /// Random payloads are not VID request preimages; every real preimage is one.
    #[test]
    fn vid_preimage_shape(view in any::<u64>(), junk in proptest::collection::vec(any::<u8>(), 176)) {
        prop_assert!(is_vid_request_preimage(&vid_request_preimage(view, &key_from(2))));
        prop_assert!(!is_vid_request_preimage(&junk));
    }
}

/// A signature over a request's bytes verifies only for those bytes (signatures are over the
/// exact layout, not a digest the client computed).
#[test]
fn signatures_bind_the_layout() {
    let sk = &demo_keys()[0];
    let pk = sk.public_key();
    let a = Request::PushCdnAuth { timestamp: 1 }.signed_bytes(&pk);
    let b = Request::PushCdnAuth { timestamp: 2 }.signed_bytes(&pk);
    let sig: Signature = sk.sign(&a);
    assert!(sig.verify(&pk, &a));
    assert!(!sig.verify(&pk, &b));
}

/// A catch-up request or Push-CDN authentication more than 30 s ahead of the signer's clock
/// is refused (its signature could be replayed until then); past and near timestamps, and
/// requests without one, are not.
#[test]
fn timestamps_far_ahead_of_the_clock_are_refused() {
    let now = 1_800_000_000;
    let catch_up = |timestamp| Request::CatchUp {
        request: HexBytes(vec![1]),
        timestamp,
    };
    let push = |timestamp| Request::PushCdnAuth { timestamp };
    for ok in [0, now - 1000, now, now + 30] {
        assert_eq!(catch_up(ok).check_timestamp(now), Ok(()), "{ok}");
        assert_eq!(push(ok).check_timestamp(now), Ok(()), "{ok}");
    }
    assert_eq!(
        catch_up(now + 31).check_timestamp(now),
        Err(RequestError::TimestampAhead {
            kind: "catch-up",
            timestamp: now + 31,
            ahead: 31
        })
    );
    assert_eq!(
        push(u64::MAX).check_timestamp(now).unwrap_err().to_string(),
        format!(
            "push-cdn-auth: timestamp {} is {} s ahead of this signer's clock (at most 30 s): a \
             signature for a future time could be replayed until then",
            u64::MAX,
            u64::MAX - now
        )
    );
    // Kinds without a timestamp are not checked against the clock.
    assert_eq!(
        Request::ProposalFetch { view: u64::MAX }.check_timestamp(now),
        Ok(())
    );
}
