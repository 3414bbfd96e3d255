//! Target `interchange`: an EIP-3076 interchange file, as `signer protection check` reads it
//! and as an approved `import_protection` action carries it
//! (`protection::interchange::{parse, import, export}` and `interchange::review`).
//!
//! Owns: the properties, and a naive self-slashability check written here from EIP-3076's
//! conditions (every pair of records compared, no sorting), to compare with the file's
//! `slashable_records`. Must not: decide what the rules allow (the `protection_model` target
//! does).
//!
//! Properties: a parsed file writes back to JSON that parses to the same document; it is
//! slashable exactly when the naive check says so; the default import refuses exactly the
//! slashable files and a file of another network, changing nothing then; an import only
//! raises watermarks, is idempotent, and afterwards every record of the file is refused by the
//! rules; an export imports back to the same watermarks; the review and its records-seen check
//! never fail on the state they were taken from.

use signer_node::bytes::FixedBytes;
use signer_node::protection::ethereum::{Eth2Intent, Eth2State, Root};
use signer_node::protection::interchange::{
    self, review, ImportPolicy, Interchange, InterchangeError,
};
use signer_node::protection::Verdict;

/// One fuzz input.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let doc = match interchange::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let again = interchange::parse(&doc.to_json()).expect("to_json output parses");
    assert_eq!(again, doc, "JSON round trip changes the document");

    let slashable = naive_slashable(&doc);
    assert_eq!(
        !doc.slashable_records().is_empty(),
        slashable,
        "slashable_records disagrees with the pairwise check"
    );
    let gvr = doc.genesis_validators_root;

    // The default policy: refused exactly when slashable; another network always refused.
    let before = prior_state(&doc);
    let mut state = before.clone();
    match interchange::import(&mut state, gvr, &doc, ImportPolicy::RefuseSlashable) {
        Ok(_) => assert!(!slashable, "a slashable file was imported by default"),
        Err(InterchangeError::Slashable { .. }) => {
            assert!(slashable, "a file without conflicts was refused");
            assert_eq!(state, before, "a refused import changed the state");
        }
        Err(e) => panic!("unexpected refusal: {e}"),
    }
    let mut other = before.clone();
    let mut foreign = gvr;
    foreign.0[0] ^= 1;
    assert!(matches!(
        interchange::import(&mut other, foreign, &doc, ImportPolicy::Minify),
        Err(InterchangeError::GenesisMismatch { .. })
    ));
    assert_eq!(other, before, "a refused import changed the state");

    // Minify: always imports; raises only; idempotent; then refuses every record of the file.
    let seen = review::seen(&before, &doc);
    review::check_seen(&before, &doc, &seen).expect("a state agrees with its own records");
    let _ = review::review(&doc, true, Some(&seen));
    let _ = review::review(&doc, false, None);
    let mut merged = before.clone();
    interchange::import(&mut merged, gvr, &doc, ImportPolicy::Minify).expect("minify imports");
    check_raised(&before, &merged);
    let mut twice = merged.clone();
    interchange::import(&mut twice, gvr, &doc, ImportPolicy::Minify).expect("minify imports");
    assert_eq!(twice, merged, "importing a file twice differs from once");
    check_refused(&merged, &doc);

    // Export, then import into an empty state: the same watermarks.
    let exported = interchange::export(&merged, gvr);
    let parsed = interchange::parse(&exported.to_json()).expect("an export parses");
    let mut fresh = Eth2State::default();
    interchange::import(&mut fresh, gvr, &parsed, ImportPolicy::Minify).expect("an export imports");
    assert_eq!(
        marks(&fresh),
        marks(&merged),
        "an export imports to other watermarks"
    );
}

/// A state holding records for the file's first validators (so imports merge with something):
/// a signed block and attestation near the file's own values.
fn prior_state(doc: &Interchange) -> Eth2State {
    let mut state = Eth2State::default();
    for (i, h) in doc.data.iter().take(3).enumerate() {
        let slot = h.signed_blocks.first().map_or(5, |b| b.slot) ^ (i as u64);
        let _ = state.decide(&Eth2Intent::Block {
            pubkey: h.pubkey,
            slot,
            signing_root: FixedBytes([i as u8; 32]),
        });
        let (s, t) = h
            .signed_attestations
            .first()
            .map_or((1, 2), |a| (a.source_epoch, a.target_epoch));
        let _ = state.decide(&Eth2Intent::Attestation {
            pubkey: h.pubkey,
            source_epoch: s.min(t),
            target_epoch: t.max(s) ^ 1,
            signing_root: FixedBytes([0x40 | i as u8; 32]),
        });
    }
    state
}

type Marks = Vec<(FixedBytes<48>, Option<u64>, Option<(u64, u64)>)>;

fn marks(state: &Eth2State) -> Marks {
    state
        .validators
        .iter()
        .map(|(k, r)| {
            (
                *k,
                r.block.map(|b| b.slot),
                r.attestation.map(|a| (a.source_epoch, a.target_epoch)),
            )
        })
        .collect()
}

fn check_raised(before: &Eth2State, after: &Eth2State) {
    for (key, old) in &before.validators {
        let new = after
            .validators
            .get(key)
            .expect("an import dropped a validator");
        if let Some(b) = old.block {
            let n = new.block.expect("an import dropped a block watermark");
            assert!(n.slot >= b.slot, "an import lowered a block watermark");
        }
        if let Some(a) = old.attestation {
            let n = new
                .attestation
                .expect("an import dropped an attestation watermark");
            assert!(
                n.source_epoch >= a.source_epoch && n.target_epoch >= a.target_epoch,
                "an import lowered an attestation watermark"
            );
        }
    }
}

/// After an import, nothing at or below the file's records may be signed, even with the
/// root the file recorded (EIP-3076: imported roots are not kept).
fn check_refused(state: &Eth2State, doc: &Interchange) {
    let zero = FixedBytes([0u8; 32]);
    for h in &doc.data {
        for b in &h.signed_blocks {
            let intent = Eth2Intent::Block {
                pubkey: h.pubkey,
                slot: b.slot,
                signing_root: b.signing_root.unwrap_or(zero),
            };
            assert!(
                matches!(state.evaluate(&intent), Verdict::Deny(_)),
                "an imported block can be signed again: {intent:?}"
            );
        }
        for a in &h.signed_attestations {
            let intent = Eth2Intent::Attestation {
                pubkey: h.pubkey,
                source_epoch: a.source_epoch,
                target_epoch: a.target_epoch,
                signing_root: a.signing_root.unwrap_or(zero),
            };
            assert!(
                matches!(state.evaluate(&intent), Verdict::Deny(_)),
                "an imported attestation can be signed again: {intent:?}"
            );
        }
    }
}

/// EIP-3076's conditions on a file's own records, pair by pair, per validator (entries that
/// repeat a public key count as one validator).
fn naive_slashable(doc: &Interchange) -> bool {
    let same = |a: Option<Root>, b: Option<Root>| a.is_some() && a == b;
    let keys: std::collections::BTreeSet<_> = doc.data.iter().map(|h| h.pubkey).collect();
    for key in keys {
        let blocks: Vec<_> = doc
            .data
            .iter()
            .filter(|h| h.pubkey == key)
            .flat_map(|h| h.signed_blocks.iter().copied())
            .collect();
        let atts: Vec<_> = doc
            .data
            .iter()
            .filter(|h| h.pubkey == key)
            .flat_map(|h| h.signed_attestations.iter().copied())
            .collect();
        for (i, x) in blocks.iter().enumerate() {
            for y in &blocks[i + 1..] {
                if x.slot == y.slot && !same(x.signing_root, y.signing_root) {
                    return true;
                }
            }
        }
        for (i, x) in atts.iter().enumerate() {
            if x.source_epoch > x.target_epoch {
                return true;
            }
            for y in &atts[i + 1..] {
                if x.target_epoch == y.target_epoch && !same(x.signing_root, y.signing_root) {
                    return true;
                }
                let surrounds =
                    |o: &interchange::SignedAttestation, n: &interchange::SignedAttestation| {
                        o.source_epoch < n.source_epoch && o.target_epoch > n.target_epoch
                    };
                if surrounds(x, y) || surrounds(y, x) {
                    return true;
                }
            }
        }
    }
    false
}
