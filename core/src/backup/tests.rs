#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::margin::{self, Floors, Margin, FLOOR_DIGEST};
use super::*;
use crate::bytes::FixedBytes;
use crate::protection::espresso::{
    evaluate_watermark, evaluate_window, KeyRecord as EspressoRecord, Kind, Position, Watermark,
    Window,
};
use crate::protection::ethereum::{AttestationMark, BlockMark, Eth2Intent, ValidatorRecord};
use crate::protection::{Profile, ProtectionState, Verdict, Violation};
use crate::registry::{KeyRecord, KeyState, Registry};
use crate::state::Applied;
use std::collections::BTreeMap;

const V1: [u8; 48] = [1; 48];
const V2: [u8; 48] = [2; 48];
const ESP: [u8; 128] = [7; 128];

fn protection() -> ProtectionState {
    let mut p = ProtectionState::default();
    p.eth2.validators.insert(
        FixedBytes(V1),
        ValidatorRecord {
            block: Some(BlockMark {
                slot: 100,
                signing_root: Some(FixedBytes([9; 32])),
            }),
            attestation: Some(AttestationMark {
                source_epoch: 2,
                target_epoch: 3,
                signing_root: Some(FixedBytes([8; 32])),
            }),
        },
    );
    // An attester only: its epochs are the backup's highest (5).
    p.eth2.validators.insert(
        FixedBytes(V2),
        ValidatorRecord {
            block: None,
            attestation: Some(AttestationMark {
                source_epoch: 4,
                target_epoch: 5,
                signing_root: Some(FixedBytes([6; 32])),
            }),
        },
    );
    let mut record = EspressoRecord::default();
    record.watermarks.insert(
        Kind::QuorumVote,
        Watermark {
            view: 40,
            message: FixedBytes([5; 32]),
        },
    );
    record.windows.insert(
        Kind::DaVote,
        Window {
            newest_view: 42,
            floor: None,
            signed: BTreeMap::from([(Position { view: 42, relay: 0 }, FixedBytes([4; 32]))]),
        },
    );
    p.espresso.keys.insert(FixedBytes(ESP), record);
    p
}

fn body() -> SnapshotBody {
    let applied = Applied {
        protection: protection(),
        ..Applied::default()
    };
    applied.snapshot_body(Vec::new())
}

fn header(body: &SnapshotBody) -> BackupHeader {
    BackupHeader {
        version: VERSION,
        cluster_id: "test-cluster".into(),
        applied: AppliedPosition {
            term: 3,
            leader: 1,
            index: 77,
        },
        created_at_ms: 1_700_000_000_000,
        audit_head: body.audit_chain.head,
        members: vec![Member {
            id: 1,
            peer_addr: "127.0.0.1:7101".into(),
        }],
    }
}

fn file() -> Vec<u8> {
    let body = body();
    encode(&header(&body), &crate::format::encode(&body).unwrap()).unwrap()
}

#[test]
fn a_backup_round_trips_with_its_digest() {
    let bytes = file();
    let backup = decode(&bytes).unwrap();
    assert_eq!(backup.header, header(&body()));
    assert_eq!(backup.body, body());
    assert_eq!(backup.digest.as_slice(), &bytes[bytes.len() - DIGEST_LEN..]);
}

#[test]
fn every_changed_byte_and_every_cut_is_refused() {
    let bytes = file();
    for i in 0..bytes.len() {
        let mut tampered = bytes.clone();
        tampered[i] ^= 0x01;
        let err = decode(&tampered).unwrap_err();
        assert!(
            matches!(err, BackupError::Digest { .. } | BackupError::NotABackup),
            "byte {i}: {err}"
        );
    }
    for len in [0, 8, 39, bytes.len() - 1] {
        assert!(decode(&bytes[..len]).is_err(), "cut to {len}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        decode(&longer).unwrap_err(),
        BackupError::Digest { .. }
    ));
    let err = decode(&{
        let mut t = bytes.clone();
        t[20] ^= 0xff;
        t
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with(
            "backup digest mismatch: the file was changed or cut short after it was written"
        ),
        "{err}"
    );
}

#[test]
fn another_backup_version_and_a_foreign_file_are_refused_by_name() {
    let body = body();
    let mut h = header(&body);
    h.version = 2;
    let bytes = encode(&h, &crate::format::encode(&body).unwrap()).unwrap();
    assert_eq!(
        decode(&bytes).unwrap_err().to_string(),
        "backup version 2 is not supported (this signer reads backup version 1)"
    );
    assert_eq!(
        decode(b"QS\x02\x00 a snapshot, not a backup file at all")
            .unwrap_err()
            .to_string(),
        "not a Quorum Signer backup file (no QSBACKUP header)"
    );
}

#[test]
fn a_header_moved_onto_another_state_is_refused() {
    let body = body();
    let mut h = header(&body);
    h.audit_head.seq = 9;
    let bytes = encode(&h, &crate::format::encode(&body).unwrap()).unwrap();
    assert_eq!(
        decode(&bytes).unwrap_err().to_string(),
        "backup header and state disagree: the header names audit head seq 9, the state's chain ends at seq 0"
    );
}

#[test]
fn floors_are_the_highest_mark_of_any_key_plus_the_margin() {
    let margin = Margin {
        eth2_epochs: 2,
        espresso_views: 100,
    };
    // (state, expected floors)
    let cases = [
        (ProtectionState::default(), Floors::default()),
        (
            protection(),
            Floors {
                eth2_epoch: Some(7),
                eth2_slot: Some(8 * 32 - 1),
                espresso_view: Some(142),
            },
        ),
        (
            {
                // A block at slot 500 (epoch 15) is higher than any attestation.
                let mut p = protection();
                p.eth2.raise_block_watermark(FixedBytes(V2), 500);
                p
            },
            Floors {
                eth2_epoch: Some(17),
                eth2_slot: Some(18 * 32 - 1),
                espresso_view: Some(142),
            },
        ),
    ];
    for (i, (state, expected)) in cases.into_iter().enumerate() {
        assert_eq!(margin::floors(&state, margin), expected, "case {i}");
    }
    let huge = Margin {
        eth2_epochs: u64::MAX,
        espresso_views: u64::MAX,
    };
    let f = margin::floors(&protection(), huge);
    assert_eq!(
        (f.eth2_epoch, f.eth2_slot, f.espresso_view),
        (Some(u64::MAX), Some(u64::MAX), Some(u64::MAX))
    );
}

fn block(pubkey: [u8; 48], slot: u64, root: u8) -> Eth2Intent {
    Eth2Intent::Block {
        pubkey: FixedBytes(pubkey),
        slot,
        signing_root: FixedBytes([root; 32]),
    }
}

fn attestation(pubkey: [u8; 48], source: u64, target: u64, root: u8) -> Eth2Intent {
    Eth2Intent::Attestation {
        pubkey: FixedBytes(pubkey),
        source_epoch: source,
        target_epoch: target,
        signing_root: FixedBytes([root; 32]),
    }
}

fn allowed<R>(v: &Verdict<R>) -> bool {
    matches!(v, Verdict::Allow { .. } | Verdict::SameData)
}

#[test]
fn raise_lowers_nothing_and_allows_nothing_new() {
    let before = protection();
    let floors = margin::floors(
        &before,
        Margin {
            eth2_epochs: 2,
            espresso_views: 100,
        },
    );
    let mut after = before.clone();
    margin::raise(&mut after, &Registry::default(), &floors);

    // Every mark is at least what it was.
    for (pk, old) in &before.eth2.validators {
        let new = after.eth2.validators[pk];
        if let Some(b) = old.block {
            assert!(new.block.unwrap().slot >= b.slot);
        }
        if let Some(a) = old.attestation {
            let n = new.attestation.unwrap();
            assert!(n.source_epoch >= a.source_epoch && n.target_epoch >= a.target_epoch);
        }
    }
    // Over a grid of requests: nothing refused before is allowed after, and everything at or
    // below the floors is refused after (also the identical re-sign of a signed message).
    for pk in [V1, V2] {
        for slot in 0..300 {
            for root in [9, 1] {
                let intent = block(pk, slot, root);
                let (old, new) = (before.eth2.evaluate(&intent), after.eth2.evaluate(&intent));
                assert!(!allowed(&new) || allowed(&old), "{intent:?}");
                if slot <= 255 {
                    assert!(!allowed(&new), "{intent:?} allowed at or below the floor");
                }
            }
        }
        for source in 0..10 {
            for target in source..11 {
                for root in [8, 6, 1] {
                    let intent = attestation(pk, source, target, root);
                    let (old, new) = (before.eth2.evaluate(&intent), after.eth2.evaluate(&intent));
                    assert!(!allowed(&new) || allowed(&old), "{intent:?}");
                    assert_eq!(
                        allowed(&new),
                        target > 7 && source >= 7,
                        "{intent:?}: {new:?}"
                    );
                }
            }
        }
    }
    // The exact refusals at the floors.
    assert!(matches!(
        after.eth2.evaluate(&block(V1, 255, 1)),
        Verdict::Deny(Violation::DoubleBlockProposal {
            slot: 255,
            signed_root: None,
            ..
        })
    ));
    assert!(matches!(
        after.eth2.evaluate(&block(V1, 100, 9)),
        Verdict::Deny(Violation::BlockSlotNotAboveWatermark {
            slot: 100,
            watermark: 255
        })
    ));
    assert!(matches!(
        after.eth2.evaluate(&attestation(V2, 7, 7, 1)),
        Verdict::Deny(Violation::DoubleVote { target: 7, .. })
    ));
    assert!(allowed(&after.eth2.evaluate(&block(V2, 256, 1))));
    assert!(allowed(&after.eth2.evaluate(&attestation(V1, 7, 8, 1))));

    // Espresso: every protected kind of the key is refused at and below view 142, above it
    // signs (requests and network messages have no record to raise).
    let record = &after.espresso.keys[&FixedBytes(ESP)];
    let digest = FixedBytes([5; 32]);
    for kind in Kind::ALL
        .into_iter()
        .filter(|k| k.rule() != crate::protection::espresso::Rule::Unprotected)
    {
        for view in [0, 40, 42, 141, 142] {
            let verdict = match record.watermarks.get(&kind) {
                Some(w) => allowed(&evaluate_watermark(kind, Some(w), view, digest)),
                None => allowed(&evaluate_window(
                    kind,
                    record.windows.get(&kind),
                    Position { view, relay: 0 },
                    digest,
                )),
            };
            assert!(!verdict, "{kind} at view {view} allowed after restore");
        }
        let above = match record.watermarks.get(&kind) {
            Some(w) => allowed(&evaluate_watermark(kind, Some(w), 143, digest)),
            None => allowed(&evaluate_window(
                kind,
                record.windows.get(&kind),
                Position {
                    view: 143,
                    relay: 0,
                },
                digest,
            )),
        };
        assert!(above, "{kind} above the floor refused");
    }
    assert_eq!(
        record.watermarks[&Kind::QuorumVote].message,
        FixedBytes(FLOOR_DIGEST)
    );
    // Raising twice changes nothing more.
    let mut again = after.clone();
    margin::raise(&mut again, &Registry::default(), &floors);
    assert_eq!(again, after);
}

#[test]
fn registry_keys_without_a_record_get_the_floors_and_nothing_is_raised_without_history() {
    let mut registry = Registry::default();
    for (id, profile, pk) in [
        ("new-eth2", Profile::Eth2, vec![3; 48]),
        ("new-espresso", Profile::Espresso, vec![3; 128]),
        ("odd", Profile::Eth2, vec![3; 5]),
    ] {
        registry.keys.insert(
            id.into(),
            KeyRecord {
                key_id: id.into(),
                profile,
                public_key: pk,
                sealed: None,
                state: KeyState::Active,
                origin: "generated".into(),
            },
        );
    }
    let mut state = protection();
    let floors = margin::floors(
        &state,
        Margin {
            eth2_epochs: 0,
            espresso_views: 0,
        },
    );
    margin::raise(&mut state, &registry, &floors);
    let new = state.eth2.validators[&FixedBytes([3; 48])];
    assert_eq!(new.block.unwrap().slot, 6 * 32 - 1);
    assert_eq!(new.attestation.unwrap().target_epoch, 5);
    assert!(state.espresso.keys.contains_key(&FixedBytes([3; 128])));
    assert_eq!(state.eth2.validators.len(), 3);

    let mut empty = ProtectionState::default();
    let none = margin::floors(
        &empty,
        Margin {
            eth2_epochs: 5,
            espresso_views: 5,
        },
    );
    margin::raise(&mut empty, &registry, &none);
    assert_eq!(empty, ProtectionState::default());
}
