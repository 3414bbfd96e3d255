//! The import review and its check, on a file written here with known records: the expected
//! maxima and changes are read off that file and the records seen (written out below), not
//! computed by the code under test.

use super::*;
use crate::protection::interchange::parse;

const GVR: &str = "0x0000000000000000000000000000000000000000000000000000000000000001";
/// Lighthouse's interop keys 0, 1 and 2 (as in the EIP-3076 vectors); in byte order C < A < B.
const A: &str = "0xa99a76ed7796f7be22d5b7e85deeb7c5677e88e511e0b337618f8c4eb61349b4bf2d153f649f7b53359fe8b94a38e44c";
const B: &str = "0xb89bebc699769726a318c8e9971bd3171297c61aea4a6578a7a4f94b547dcba5bac16a89108b6b6a1fe3695d1a874a0b";
const C: &str = "0xa3a32b0f8b4ddb83f1a0a853d81dd725dfe577d4f4c3db8ece52ce2b026eca84815c1a7e8e92a4de3d755733bf7e4a9b";

/// A: blocks at 100 (with a root) and 90, votes 4→10 and 6→11 (highest slot 100, highest
/// source 6, highest target 11); B: listed without records; C: one block at 7.
fn file() -> Interchange {
    let root = "0x0000000000000000000000000000000000000000000000000000000000000007";
    parse(&format!(
        r#"{{"metadata":{{"interchange_format_version":"5","genesis_validators_root":"{GVR}"}},
           "data":[
             {{"pubkey":"{A}",
               "signed_blocks":[{{"slot":"100","signing_root":"{root}"}},{{"slot":"90"}}],
               "signed_attestations":[{{"source_epoch":"4","target_epoch":"10"}},
                                      {{"source_epoch":"6","target_epoch":"11"}}]}},
             {{"pubkey":"{B}","signed_blocks":[],"signed_attestations":[]}},
             {{"pubkey":"{C}","signed_blocks":[{{"slot":"7"}}],"signed_attestations":[]}}]}}"#
    ))
    .unwrap()
}

fn key(hex: &str) -> BlsPubkey {
    FixedBytes::from_hex(hex).unwrap()
}

/// The cluster's records when proposed, in the file's validator order (C, A, B): C signed a
/// block at 7; A signed a block at 80 and the vote 4→12; B is unknown.
fn seen_at_proposal() -> Vec<Option<RecordSeen>> {
    vec![
        Some(RecordSeen {
            block: Some((7, true)),
            attestation: None,
        }),
        Some(RecordSeen {
            block: Some((80, true)),
            attestation: Some((4, 12, true)),
        }),
        None,
    ]
}

/// A state holding exactly `seen_at_proposal`, with C's block at `c_slot` and A's at `a_slot`.
fn state(c_slot: u64, c_root: bool, a_slot: u64) -> Eth2State {
    let root = |present: bool| present.then_some(FixedBytes([9; 32]));
    let mut state = Eth2State::default();
    state.validators.insert(
        key(C),
        ValidatorRecord {
            block: Some(BlockMark {
                slot: c_slot,
                signing_root: root(c_root),
            }),
            attestation: None,
        },
    );
    state.validators.insert(
        key(A),
        ValidatorRecord {
            block: Some(BlockMark {
                slot: a_slot,
                signing_root: root(true),
            }),
            attestation: Some(AttestationMark {
                source_epoch: 4,
                target_epoch: 12,
                signing_root: root(true),
            }),
        },
    );
    state
}

#[test]
fn the_review_names_the_network_each_validator_its_maxima_and_what_changes() {
    let doc = file();
    assert_eq!(seen(&state(7, true, 80), &doc), seen_at_proposal());
    let lines = review(&doc, false, Some(&seen_at_proposal()));
    let expected = [
        format!("genesis validators root {GVR} (applying checks it is this cluster's)"),
        "after the import no block at or below a validator's block watermark is signed, and no \
         attestation with a source below its source watermark or a target at or below its \
         target watermark"
            .to_owned(),
        "changes are against the cluster's records when proposed; applying refuses the import \
         if they are lower or differ at the watermark (signing can only raise them, and then \
         the import changes less)"
            .to_owned(),
        format!("validator {C}"),
        "  file: 1 block(s), highest slot 7; no attestations".to_owned(),
        "  block: slot 7 (unchanged); the root signed there is dropped: that block is no longer \
         re-signed"
            .to_owned(),
        "  attestations: no watermarks (unchanged)".to_owned(),
        format!("validator {A}"),
        "  file: 2 block(s), highest slot 100; 2 attestation(s), highest source 6, highest \
         target 11"
            .to_owned(),
        "  block: slot 80 -> 100".to_owned(),
        "  attestations: source 4 -> 6, target 12 (unchanged); the root signed for target 12 is \
         dropped: that vote is no longer re-signed"
            .to_owned(),
        format!("validator {B} (new: no record in the cluster)"),
        "  file: no blocks; no attestations".to_owned(),
        "  block: no watermark (unchanged)".to_owned(),
        "  attestations: no watermarks (unchanged)".to_owned(),
    ];
    assert_eq!(lines, expected);
}

#[test]
fn without_the_records_the_review_says_so_and_shows_the_file() {
    let lines = review(&file(), false, None);
    assert_eq!(
        lines[2],
        "the cluster's records of these validators are not in this proposal (an older signer \
         proposed it): the watermarks after the import are at least the file's highest values"
    );
    assert_eq!(
        lines[3..],
        [
            format!("validator {C}"),
            "  file: 1 block(s), highest slot 7; no attestations".to_owned(),
            format!("validator {A}"),
            "  file: 2 block(s), highest slot 100; 2 attestation(s), highest source 6, highest \
             target 11"
                .to_owned(),
            format!("validator {B}"),
            "  file: no blocks; no attestations".to_owned(),
        ]
    );
}

#[test]
fn a_slashable_file_is_named_as_such_and_minifying_keeps_the_maxima() {
    let doc = parse(&format!(
        r#"{{"metadata":{{"interchange_format_version":"5","genesis_validators_root":"{GVR}"}},
           "data":[{{"pubkey":"{A}","signed_blocks":[{{"slot":"5"}},{{"slot":"5"}}],
                     "signed_attestations":[]}}]}}"#
    ))
    .unwrap();
    let minified = review(&doc, true, Some(&[None]));
    assert_eq!(
        minified[1..3],
        [
            "the file is slashable on its own; minified: only each validator's maxima are kept"
                .to_owned(),
            format!("  slashable: {A}: 2 blocks at slot 5 with different or missing signing roots"),
        ]
    );
    assert_eq!(
        minified[minified.len() - 2],
        "  block: no watermark -> slot 5"
    );
    let refused = review(&doc, false, Some(&[None]));
    assert_eq!(
        refused[1],
        "the file is slashable on its own and is not minified: applying refuses it"
    );
}

#[test]
fn the_check_refuses_records_lower_than_reviewed_or_changed_at_the_watermark() {
    let doc = file();
    let seen = seen_at_proposal();
    // As reviewed, and risen since (A signed a block at 85): the import changes less.
    assert_eq!(check_seen(&state(7, true, 80), &doc, &seen), Ok(()));
    assert_eq!(check_seen(&state(7, true, 85), &doc, &seen), Ok(()));
    // A proposing node that claimed A's block watermark was 80 when it is 70 (so that the
    // import looked smaller than it is) is refused, naming what was reviewed and what holds.
    assert_eq!(
        check_seen(&state(7, true, 70), &doc, &seen),
        Err(format!(
            "validator {A}: the import was reviewed against block slot 80 (signed root), \
             attestation source 4 target 12 (signed root), and the cluster now holds block \
             slot 70 (signed root), attestation source 4 target 12 (signed root)"
        ))
    );
    // At an unchanged watermark the root must be as reviewed (here an import dropped it).
    assert_eq!(
        check_seen(&state(7, false, 80), &doc, &seen),
        Err(format!(
            "validator {C}: the import was reviewed against block slot 7 (signed root), no \
             attestation, and the cluster now holds block slot 7, no attestation"
        ))
    );
    // A record claimed for a validator the cluster does not know.
    let mut claimed = seen.clone();
    claimed[2] = Some(RecordSeen::default());
    assert_eq!(
        check_seen(&state(7, true, 80), &doc, &claimed),
        Err(format!(
            "validator {B}: the import was reviewed against no block, no attestation, and the \
             cluster now holds no record"
        ))
    );
    assert_eq!(
        check_seen(&state(7, true, 80), &doc, &seen[..2]),
        Err("the import carries the records of 2 validator(s), the file lists 3".to_owned())
    );
}
