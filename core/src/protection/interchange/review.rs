//! What an interchange import changes, as approvers review it: the cluster's records of the
//! file's validators when the import was proposed ([`RecordSeen`]), checking that they still
//! hold when it is applied ([`check_seen`]), and the review text ([`review`]).
//!
//! Owns: [`RecordSeen`] and these three functions. Must not: import anything into the
//! replicated state (it simulates the import on a copy, with [`super::import`] itself, so the
//! review says what that function will do), or read a clock.
//!
//! To ensure correctness:
//! - the records seen travel inside the action whose digest approvers sign, so every approver
//!   reads the same review, computed from those bytes alone;
//! - [`check_seen`] refuses the import when the cluster's records are no longer what the
//!   review showed: a record lower than shown (a node that overstated the records, which would
//!   make the import look smaller than it is), or, at the same watermark, a root the review
//!   did not show or showed and is gone. A record that rose since (signing only raises them)
//!   is not a conflict: the import then changes less than shown, never more.

use super::{import, ImportPolicy, Interchange};
use crate::bytes::FixedBytes;
use crate::protection::ethereum::{
    AttestationMark, BlockMark, BlsPubkey, Eth2State, ValidatorRecord,
};
use std::collections::BTreeMap;

/// One validator's eth2 record as the proposing node held it, without its roots: only
/// whether a root is recorded at the watermark (an import drops it there).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecordSeen {
    /// The block watermark: slot, and whether a root is recorded there.
    pub block: Option<(u64, bool)>,
    /// The attestation watermarks: source, target, and whether a root is recorded for the
    /// target.
    pub attestation: Option<(u64, u64, bool)>,
}

impl From<&ValidatorRecord> for RecordSeen {
    fn from(r: &ValidatorRecord) -> Self {
        RecordSeen {
            block: r.block.map(|b| (b.slot, b.signing_root.is_some())),
            attestation: r
                .attestation
                .map(|a| (a.source_epoch, a.target_epoch, a.signing_root.is_some())),
        }
    }
}

/// The records of `doc`'s distinct validators (ascending public key, as
/// [`Interchange::merged`] orders them) in `state`; `None` where it has none.
pub fn seen(state: &Eth2State, doc: &Interchange) -> Vec<Option<RecordSeen>> {
    doc.merged()
        .keys()
        .map(|pubkey| state.validators.get(pubkey).map(RecordSeen::from))
        .collect()
}

/// Whether `seen` (one entry per distinct validator of `doc`) still describes `state`: every
/// watermark at least as high as seen, and at an unchanged watermark the same presence of a
/// root. The error names the first validator that differs.
pub fn check_seen(
    state: &Eth2State,
    doc: &Interchange,
    seen: &[Option<RecordSeen>],
) -> Result<(), String> {
    let merged = doc.merged();
    if merged.len() != seen.len() {
        return Err(format!(
            "the import carries the records of {} validator(s), the file lists {}",
            seen.len(),
            merged.len()
        ));
    }
    for (pubkey, seen) in merged.keys().zip(seen) {
        let Some(seen) = seen else { continue };
        let now = state.validators.get(pubkey).map(RecordSeen::from);
        let holds = now.is_some_and(|now| {
            covers(
                now.block.map(|(s, r)| (s, 0, r)),
                seen.block.map(|(s, r)| (s, 0, r)),
            ) && covers(now.attestation, seen.attestation)
        });
        if !holds {
            return Err(format!(
                "validator {pubkey}: the import was reviewed against {}, and the cluster now \
                 holds {}",
                seen_text(Some(seen)),
                seen_text(now.as_ref())
            ));
        }
    }
    Ok(())
}

/// Whether a watermark `now` is what `seen` showed or higher: `(first, second, root)`, the
/// positions compared field by field, the root only where they are equal.
fn covers(now: Option<(u64, u64, bool)>, seen: Option<(u64, u64, bool)>) -> bool {
    match (now, seen) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some((a, b, root)), Some((sa, sb, seen_root))) => {
            a >= sa && b >= sb && ((a, b) != (sa, sb) || root == seen_root)
        }
    }
}

fn seen_text(r: Option<&RecordSeen>) -> String {
    let Some(r) = r else {
        return "no record".to_owned();
    };
    let block = match r.block {
        Some((slot, root)) => format!(
            "block slot {slot}{}",
            if root { " (signed root)" } else { "" }
        ),
        None => "no block".to_owned(),
    };
    let attestation = match r.attestation {
        Some((s, t, root)) => format!(
            "attestation source {s} target {t}{}",
            if root { " (signed root)" } else { "" }
        ),
        None => "no attestation".to_owned(),
    };
    format!("{block}, {attestation}")
}

/// The review of importing `doc` (with `minify`): its network, what it holds per validator
/// (record counts and maxima) and what the import changes against `seen` (`None`: the
/// proposal did not record the cluster's records). One line each.
pub fn review(doc: &Interchange, minify: bool, seen: Option<&[Option<RecordSeen>]>) -> Vec<String> {
    let merged = doc.merged();
    let mut lines = vec![format!(
        "genesis validators root {} (applying checks it is this cluster's)",
        doc.genesis_validators_root
    )];
    let slashable = doc.slashable_records();
    if !slashable.is_empty() {
        lines.push(if minify {
            "the file is slashable on its own; minified: only each validator's maxima are kept"
                .to_owned()
        } else {
            "the file is slashable on its own and is not minified: applying refuses it".to_owned()
        });
        for s in &slashable {
            lines.push(format!("  slashable: {}: {}", s.pubkey, s.detail));
        }
    }
    lines.push(
        "after the import no block at or below a validator's block watermark is signed, and no \
         attestation with a source below its source watermark or a target at or below its \
         target watermark"
            .to_owned(),
    );
    let after = seen.and_then(|seen| simulate(doc, minify, &merged, seen));
    match (seen, &after) {
        (None, _) => lines.push(
            "the cluster's records of these validators are not in this proposal (an older \
             signer proposed it): the watermarks after the import are at least the file's \
             highest values"
                .to_owned(),
        ),
        (Some(seen), None) if seen.len() != merged.len() => lines.push(format!(
            "the proposal carries the records of {} validator(s) for the file's {}: applying \
             refuses it",
            seen.len(),
            merged.len()
        )),
        _ => lines.push(
            "changes are against the cluster's records when proposed; applying refuses the \
             import if they are lower or differ at the watermark (signing can only raise them, \
             and then the import changes less)"
                .to_owned(),
        ),
    }
    for (i, (pubkey, history)) in merged.iter().enumerate() {
        let before = seen.and_then(|s| s.get(i).copied());
        let new = matches!(before, Some(None));
        lines.push(format!(
            "validator {pubkey}{}",
            if new {
                " (new: no record in the cluster)"
            } else {
                ""
            }
        ));
        lines.push(format!("  file: {}", file_text(history)));
        let (Some(before), Some(after)) = (before, after.as_ref().and_then(|a| a.get(pubkey)))
        else {
            continue;
        };
        let before = before.unwrap_or_default();
        lines.push(format!(
            "  block: {}",
            block_change(before.block, after.block)
        ));
        lines.push(format!(
            "  attestations: {}",
            attestation_change(before.attestation, after.attestation)
        ));
    }
    lines
}

/// The file's records of one validator: counts and maxima.
fn file_text(h: &super::ValidatorHistory) -> String {
    let blocks = match h.signed_blocks.iter().map(|b| b.slot).max() {
        Some(max) => format!("{} block(s), highest slot {max}", h.signed_blocks.len()),
        None => "no blocks".to_owned(),
    };
    let sources = h.signed_attestations.iter().map(|a| a.source_epoch).max();
    let targets = h.signed_attestations.iter().map(|a| a.target_epoch).max();
    let attestations = match (sources, targets) {
        (Some(s), Some(t)) => format!(
            "{} attestation(s), highest source {s}, highest target {t}",
            h.signed_attestations.len()
        ),
        _ => "no attestations".to_owned(),
    };
    format!("{blocks}; {attestations}")
}

/// The records after importing `doc` into the records `seen` (roots stood in by a
/// placeholder: only their presence matters), with the import itself. `None` when `seen`
/// does not match the file or the import would be refused.
fn simulate(
    doc: &Interchange,
    minify: bool,
    merged: &BTreeMap<BlsPubkey, super::ValidatorHistory>,
    seen: &[Option<RecordSeen>],
) -> Option<BTreeMap<BlsPubkey, ValidatorRecord>> {
    if seen.len() != merged.len() {
        return None;
    }
    let placeholder = |present: bool| present.then_some(FixedBytes([0; 32]));
    let mut state = Eth2State::default();
    for (pubkey, seen) in merged.keys().zip(seen) {
        if let Some(r) = seen {
            state.validators.insert(
                *pubkey,
                ValidatorRecord {
                    block: r.block.map(|(slot, root)| BlockMark {
                        slot,
                        signing_root: placeholder(root),
                    }),
                    attestation: r.attestation.map(|(s, t, root)| AttestationMark {
                        source_epoch: s,
                        target_epoch: t,
                        signing_root: placeholder(root),
                    }),
                },
            );
        }
    }
    let policy = if minify {
        ImportPolicy::Minify
    } else {
        ImportPolicy::RefuseSlashable
    };
    import(&mut state, doc.genesis_validators_root, doc, policy).ok()?;
    Some(state.validators)
}

fn block_change(before: Option<(u64, bool)>, after: Option<BlockMark>) -> String {
    match (before, after) {
        (None, None) => "no watermark (unchanged)".to_owned(),
        (None, Some(a)) => format!("no watermark -> slot {}", a.slot),
        (Some((slot, _)), None) => format!("slot {slot} (unchanged)"),
        (Some((slot, root)), Some(a)) => {
            let mut text = part("slot", slot, a.slot);
            if root && a.slot == slot && a.signing_root.is_none() {
                text.push_str(
                    "; the root signed there is dropped: that block is no longer re-signed",
                );
            }
            text
        }
    }
}

fn attestation_change(before: Option<(u64, u64, bool)>, after: Option<AttestationMark>) -> String {
    match (before, after) {
        (None, None) => "no watermarks (unchanged)".to_owned(),
        (None, Some(a)) => format!(
            "no watermarks -> source {}, target {}",
            a.source_epoch, a.target_epoch
        ),
        (Some((s, t, _)), None) => format!("source {s}, target {t} (unchanged)"),
        (Some((s, t, root)), Some(a)) => {
            let mut text = format!(
                "{}, {}",
                part("source", s, a.source_epoch),
                part("target", t, a.target_epoch)
            );
            if root && a.target_epoch == t && a.signing_root.is_none() {
                text.push_str(&format!(
                    "; the root signed for target {t} is dropped: that vote is no longer \
                     re-signed"
                ));
            }
            text
        }
    }
}

/// `name old -> new`, or `name old (unchanged)`.
fn part(name: &str, old: u64, new: u64) -> String {
    if old == new {
        format!("{name} {old} (unchanged)")
    } else {
        format!("{name} {old} -> {new}")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
