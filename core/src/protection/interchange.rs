//! EIP-3076 slashing-protection interchange format, version 5: parse, validate, import into
//! [`Eth2State`] (merging with `max`) and export.
//!
//! Owns: the document types, field-by-field validation with errors that name the field, the
//! self-slashability check, and the import/export mapping; [`review`] says what an import
//! changes, for the admins who approve it. Must not: touch files or the
//! network (callers pass text and get text), or lower a watermark.
//!
//! To ensure correctness:
//! - an import either applies completely or returns an error and changes nothing;
//! - the file's genesis validators root must equal the signer's;
//! - imported signing roots are dropped (minimal strategy), so re-signing anything at or below
//!   an imported watermark is refused;
//! - entries that repeat a public key are merged, as the official vectors require.

pub mod review;

use crate::bytes::{FixedBytes, HexError};
use crate::protection::ethereum::{BlsPubkey, Eth2State, Root};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// The only interchange format version we read and write.
pub const FORMAT_VERSION: &str = "5";

/// A parsed and validated interchange document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interchange {
    /// `metadata.genesis_validators_root`.
    pub genesis_validators_root: Root,
    /// `data[]`, in file order (a public key may repeat).
    pub data: Vec<ValidatorHistory>,
}

/// One `data[]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorHistory {
    /// The validator's public key.
    pub pubkey: BlsPubkey,
    /// Signed blocks.
    pub signed_blocks: Vec<SignedBlock>,
    /// Signed attestations.
    pub signed_attestations: Vec<SignedAttestation>,
}

impl ValidatorHistory {
    /// An entry with no records.
    pub fn new(pubkey: BlsPubkey) -> Self {
        ValidatorHistory {
            pubkey,
            signed_blocks: Vec::new(),
            signed_attestations: Vec::new(),
        }
    }
}

/// A signed block record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedBlock {
    /// Slot.
    pub slot: u64,
    /// Signing root, when the file has one.
    pub signing_root: Option<Root>,
}

/// A signed attestation record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedAttestation {
    /// Source epoch.
    pub source_epoch: u64,
    /// Target epoch.
    pub target_epoch: u64,
    /// Signing root, when the file has one.
    pub signing_root: Option<Root>,
}

/// What an import does with a file whose own records are slashable against each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ImportPolicy {
    /// Refuse the whole file and name the conflicting records (the default).
    #[default]
    RefuseSlashable,
    /// Import it anyway: only the maxima are kept, which is safe (Lighthouse's behaviour).
    /// The conflicts are reported in the summary.
    Minify,
}

/// A pair (or single record) in a file that is slashable on its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlashableRecord {
    /// The validator.
    pub pubkey: BlsPubkey,
    /// What conflicts, in words (slots, epochs).
    pub detail: String,
}

/// What an import did.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ImportSummary {
    /// Distinct validators in the file.
    pub validators: usize,
    /// Block records read.
    pub blocks: usize,
    /// Attestation records read.
    pub attestations: usize,
    /// Self-slashable records found (only non-empty under [`ImportPolicy::Minify`]).
    pub slashable: Vec<SlashableRecord>,
}

/// Why a document was refused. Nothing was changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InterchangeError {
    /// Not JSON at all.
    #[error("not valid JSON: {0}")]
    Json(String),
    /// A field is missing or malformed; `path` names it, e.g. `data[2].signed_blocks[0].slot`.
    #[error("{path}: {problem}")]
    Field {
        /// JSON path of the field.
        path: String,
        /// What is wrong with it.
        problem: String,
    },
    /// `interchange_format_version` is not "5".
    #[error("metadata.interchange_format_version: unsupported version {found:?} (only \"5\" is supported)")]
    UnsupportedVersion {
        /// The version in the file.
        found: String,
    },
    /// The file is for another network.
    #[error(
        "metadata.genesis_validators_root: file is for {found}, this signer is for {expected}"
    )]
    GenesisMismatch {
        /// The signer's root.
        expected: Root,
        /// The file's root.
        found: Root,
    },
    /// The file's own records are slashable and the policy refuses such files.
    #[error("file contains slashable data for {pubkey}: {detail}")]
    Slashable {
        /// The validator.
        pubkey: BlsPubkey,
        /// The conflict.
        detail: String,
    },
}

fn field(path: impl Into<String>, problem: impl Into<String>) -> InterchangeError {
    InterchangeError::Field {
        path: path.into(),
        problem: problem.into(),
    }
}

fn get<'a>(
    obj: &'a Map<String, Value>,
    path: &str,
    key: &str,
) -> Result<&'a Value, InterchangeError> {
    obj.get(key)
        .ok_or_else(|| field(format!("{path}{key}"), "missing"))
}

fn as_object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, InterchangeError> {
    v.as_object()
        .ok_or_else(|| field(path, "expected a JSON object"))
}

fn as_array<'a>(v: &'a Value, path: &str) -> Result<&'a Vec<Value>, InterchangeError> {
    v.as_array()
        .ok_or_else(|| field(path, "expected a JSON array"))
}

fn quoted_u64(v: &Value, path: &str) -> Result<u64, InterchangeError> {
    let text = v
        .as_str()
        .ok_or_else(|| field(path, "expected a quoted decimal integer, e.g. \"123\""))?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(field(path, format!("{text:?} is not a decimal integer")));
    }
    text.parse::<u64>()
        .map_err(|_| field(path, format!("{text:?} does not fit in 64 bits")))
}

fn hex_bytes<const N: usize>(v: &Value, path: &str) -> Result<FixedBytes<N>, InterchangeError> {
    let text = v
        .as_str()
        .ok_or_else(|| field(path, "expected a 0x-prefixed hex string"))?;
    if !text.starts_with("0x") {
        return Err(field(path, "expected a 0x-prefixed hex string"));
    }
    FixedBytes::<N>::from_hex(text).map_err(|e| match e {
        HexError::NotHex => field(path, "bad hex"),
        HexError::WrongLength { expected, actual } => field(
            path,
            format!("wrong length: expected {expected} bytes, got {actual}"),
        ),
    })
}

fn optional_root(obj: &Map<String, Value>, path: &str) -> Result<Option<Root>, InterchangeError> {
    match obj.get("signing_root") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => hex_bytes::<32>(v, &format!("{path}signing_root")).map(Some),
    }
}

/// Parse and validate an interchange document. Every error names the offending field.
pub fn parse(text: &str) -> Result<Interchange, InterchangeError> {
    let doc: Value =
        serde_json::from_str(text).map_err(|e| InterchangeError::Json(e.to_string()))?;
    let top = as_object(&doc, "(document)")?;
    let metadata = as_object(get(top, "", "metadata")?, "metadata")?;
    let version = get(metadata, "metadata.", "interchange_format_version")?;
    let version_text = version
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| version.to_string());
    if version_text != FORMAT_VERSION {
        return Err(InterchangeError::UnsupportedVersion {
            found: version_text,
        });
    }
    let gvr = hex_bytes::<32>(
        get(metadata, "metadata.", "genesis_validators_root")?,
        "metadata.genesis_validators_root",
    )?;
    let entries = as_array(get(top, "", "data")?, "data")?;
    let mut data = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let p = format!("data[{i}]");
        let obj = as_object(entry, &p)?;
        let pubkey = hex_bytes::<48>(
            get(obj, &format!("{p}."), "pubkey")?,
            &format!("{p}.pubkey"),
        )?;
        let mut history = ValidatorHistory::new(pubkey);
        let blocks_path = format!("{p}.signed_blocks");
        for (j, b) in as_array(get(obj, &format!("{p}."), "signed_blocks")?, &blocks_path)?
            .iter()
            .enumerate()
        {
            let bp = format!("{blocks_path}[{j}]");
            let bo = as_object(b, &bp)?;
            history.signed_blocks.push(SignedBlock {
                slot: quoted_u64(get(bo, &format!("{bp}."), "slot")?, &format!("{bp}.slot"))?,
                signing_root: optional_root(bo, &format!("{bp}."))?,
            });
        }
        let atts_path = format!("{p}.signed_attestations");
        for (j, a) in as_array(
            get(obj, &format!("{p}."), "signed_attestations")?,
            &atts_path,
        )?
        .iter()
        .enumerate()
        {
            let ap = format!("{atts_path}[{j}]");
            let ao = as_object(a, &ap)?;
            history.signed_attestations.push(SignedAttestation {
                source_epoch: quoted_u64(
                    get(ao, &format!("{ap}."), "source_epoch")?,
                    &format!("{ap}.source_epoch"),
                )?,
                target_epoch: quoted_u64(
                    get(ao, &format!("{ap}."), "target_epoch")?,
                    &format!("{ap}.target_epoch"),
                )?,
                signing_root: optional_root(ao, &format!("{ap}."))?,
            });
        }
        data.push(history);
    }
    Ok(Interchange {
        genesis_validators_root: gvr,
        data,
    })
}

impl Interchange {
    /// Entries merged per public key (a key may appear in several `data[]` entries).
    pub fn merged(&self) -> BTreeMap<BlsPubkey, ValidatorHistory> {
        let mut merged: BTreeMap<BlsPubkey, ValidatorHistory> = BTreeMap::new();
        for entry in &self.data {
            let m = merged
                .entry(entry.pubkey)
                .or_insert_with(|| ValidatorHistory::new(entry.pubkey));
            m.signed_blocks.extend_from_slice(&entry.signed_blocks);
            m.signed_attestations
                .extend_from_slice(&entry.signed_attestations);
        }
        merged
    }

    /// Records in the file that are slashable against each other (per merged validator):
    /// two blocks at one slot unless both carry the same root; an attestation with source
    /// after target; two attestations for one target unless both carry the same root; and
    /// surround votes.
    pub fn slashable_records(&self) -> Vec<SlashableRecord> {
        let mut found = Vec::new();
        for (pubkey, h) in self.merged() {
            let mut report = |detail: String| found.push(SlashableRecord { pubkey, detail });
            let mut by_slot: BTreeMap<u64, Vec<Option<Root>>> = BTreeMap::new();
            for b in &h.signed_blocks {
                by_slot.entry(b.slot).or_default().push(b.signing_root);
            }
            for (slot, roots) in &by_slot {
                if !same_data(roots) {
                    report(format!(
                        "{} blocks at slot {slot} with different or missing signing roots",
                        roots.len()
                    ));
                }
            }
            let mut by_target: BTreeMap<u64, Vec<Option<Root>>> = BTreeMap::new();
            for a in &h.signed_attestations {
                if a.source_epoch > a.target_epoch {
                    report(format!(
                        "attestation source {} is after its target {}",
                        a.source_epoch, a.target_epoch
                    ));
                }
                by_target
                    .entry(a.target_epoch)
                    .or_default()
                    .push(a.signing_root);
            }
            for (target, roots) in &by_target {
                if !same_data(roots) {
                    report(format!("{} attestations for target {target} with different or missing signing roots", roots.len()));
                }
            }
            if let Some((outer, inner)) = find_surround(&h.signed_attestations) {
                report(format!(
                    "attestation {}→{} surrounds {}→{}",
                    outer.0, outer.1, inner.0, inner.1
                ));
            }
        }
        found
    }

    /// Serialize as EIP-3076 JSON (pretty-printed).
    pub fn to_json(&self) -> String {
        let data: Vec<Value> = self
            .data
            .iter()
            .map(|h| {
                let blocks: Vec<Value> = h
                    .signed_blocks
                    .iter()
                    .map(|b| with_root(json!({ "slot": b.slot.to_string() }), b.signing_root))
                    .collect();
                let atts: Vec<Value> = h
                    .signed_attestations
                    .iter()
                    .map(|a| {
                        with_root(
                            json!({
                                "source_epoch": a.source_epoch.to_string(),
                                "target_epoch": a.target_epoch.to_string(),
                            }),
                            a.signing_root,
                        )
                    })
                    .collect();
                json!({
                    "pubkey": h.pubkey.to_hex(),
                    "signed_blocks": blocks,
                    "signed_attestations": atts,
                })
            })
            .collect();
        let doc = json!({
            "metadata": {
                "interchange_format_version": FORMAT_VERSION,
                "genesis_validators_root": self.genesis_validators_root.to_hex(),
            },
            "data": data,
        });
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    }
}

fn with_root(mut v: Value, root: Option<Root>) -> Value {
    if let (Some(root), Some(obj)) = (root, v.as_object_mut()) {
        obj.insert("signing_root".into(), Value::String(root.to_hex()));
    }
    v
}

/// Several records at one position are the same data only if all carry one identical root.
fn same_data(roots: &[Option<Root>]) -> bool {
    roots.len() == 1 || (roots[0].is_some() && roots.iter().all(|r| *r == roots[0]))
}

/// Find a pair where one vote surrounds another, in O(n log n): sort by source ascending,
/// target descending, and compare each vote with the highest target among votes with a
/// strictly smaller source. Returns ((outer source, target), (inner source, target)).
fn find_surround(atts: &[SignedAttestation]) -> Option<((u64, u64), (u64, u64))> {
    let mut sorted: Vec<(u64, u64)> = atts
        .iter()
        .map(|a| (a.source_epoch, a.target_epoch))
        .collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    let mut best_before: Option<(u64, u64)> = None; // vote with max target among smaller sources
    let mut i = 0;
    while i < sorted.len() {
        let source = sorted[i].0;
        let mut j = i;
        while j < sorted.len() && sorted[j].0 == source {
            if let Some(outer) = best_before {
                if outer.1 > sorted[j].1 {
                    return Some((outer, sorted[j]));
                }
            }
            j += 1;
        }
        // the group's first element has the group's highest target
        if best_before.is_none_or(|b| sorted[i].1 > b.1) {
            best_before = Some(sorted[i]);
        }
        i = j;
    }
    None
}

/// Import `doc` into `state`, merging with `max`. Either everything is applied or nothing.
pub fn import(
    state: &mut Eth2State,
    expected_gvr: Root,
    doc: &Interchange,
    policy: ImportPolicy,
) -> Result<ImportSummary, InterchangeError> {
    if doc.genesis_validators_root != expected_gvr {
        return Err(InterchangeError::GenesisMismatch {
            expected: expected_gvr,
            found: doc.genesis_validators_root,
        });
    }
    let slashable = doc.slashable_records();
    if policy == ImportPolicy::RefuseSlashable {
        if let Some(first) = slashable.first() {
            return Err(InterchangeError::Slashable {
                pubkey: first.pubkey,
                detail: first.detail.clone(),
            });
        }
    }
    // All checks are done: from here on nothing can fail, so the import is atomic.
    let merged = doc.merged();
    let mut summary = ImportSummary {
        validators: merged.len(),
        slashable,
        ..Default::default()
    };
    for (pubkey, h) in merged {
        state.register(pubkey);
        if let Some(max_slot) = h.signed_blocks.iter().map(|b| b.slot).max() {
            state.raise_block_watermark(pubkey, max_slot);
        }
        let max_source = h.signed_attestations.iter().map(|a| a.source_epoch).max();
        let max_target = h.signed_attestations.iter().map(|a| a.target_epoch).max();
        if let (Some(s), Some(t)) = (max_source, max_target) {
            state.raise_attestation_watermarks(pubkey, s, t);
        }
        summary.blocks += h.signed_blocks.len();
        summary.attestations += h.signed_attestations.len();
    }
    Ok(summary)
}

/// Export every validator's watermarks as a minimal interchange document.
pub fn export(state: &Eth2State, gvr: Root) -> Interchange {
    let data = state
        .validators
        .iter()
        .map(|(pubkey, record)| ValidatorHistory {
            pubkey: *pubkey,
            signed_blocks: record
                .block
                .iter()
                .map(|b| SignedBlock {
                    slot: b.slot,
                    signing_root: b.signing_root,
                })
                .collect(),
            signed_attestations: record
                .attestation
                .iter()
                .map(|a| SignedAttestation {
                    source_epoch: a.source_epoch,
                    target_epoch: a.target_epoch,
                    signing_root: a.signing_root,
                })
                .collect(),
        })
        .collect();
    Interchange {
        genesis_validators_root: gvr,
        data,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const GVR: &str = "0x0000000000000000000000000000000000000000000000000000000000000001";
    const PK: &str = "0xa99a76ed7796f7be22d5b7e85deeb7c5677e88e511e0b337618f8c4eb61349b4bf2d153f649f7b53359fe8b94a38e44c";

    fn doc(blocks: &str, atts: &str) -> String {
        format!(
            r#"{{"metadata":{{"interchange_format_version":"5","genesis_validators_root":"{GVR}"}},
               "data":[{{"pubkey":"{PK}","signed_blocks":[{blocks}],"signed_attestations":[{atts}]}}]}}"#
        )
    }

    fn gvr() -> Root {
        FixedBytes::from_hex(GVR).unwrap()
    }

    fn err_of(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn malformed_fields_are_named() {
        assert!(err_of("{").starts_with("not valid JSON"));
        assert_eq!(
            err_of(&doc(r#"{"slot":5}"#, "")),
            "data[0].signed_blocks[0].slot: expected a quoted decimal integer, e.g. \"123\""
        );
        assert_eq!(
            err_of(&doc(r#"{"slot":"-5"}"#, "")),
            "data[0].signed_blocks[0].slot: \"-5\" is not a decimal integer"
        );
        assert_eq!(
            err_of(&doc(r#"{"slot":"1","signing_root":"0x12"}"#, "")),
            "data[0].signed_blocks[0].signing_root: wrong length: expected 32 bytes, got 1"
        );
        assert_eq!(
            err_of(&doc("", r#"{"source_epoch":"1"}"#)),
            "data[0].signed_attestations[0].target_epoch: missing"
        );
        assert_eq!(
            err_of(&doc(
                "",
                r#"{"source_epoch":"1","target_epoch":"2","signing_root":"0xzz"}"#
            )),
            "data[0].signed_attestations[0].signing_root: bad hex"
        );
        let wrong_version = doc("", "").replace("\"5\"", "\"4\"");
        assert!(matches!(
            parse(&wrong_version),
            Err(InterchangeError::UnsupportedVersion { .. })
        ));
        let short_key = doc("", "").replace(PK, "0xa99a");
        assert_eq!(
            err_of(&short_key),
            "data[0].pubkey: wrong length: expected 48 bytes, got 2"
        );
    }

    #[test]
    fn gvr_mismatch_changes_nothing() {
        let parsed = parse(&doc(r#"{"slot":"5"}"#, "")).unwrap();
        let mut state = Eth2State::default();
        let other = FixedBytes([9; 32]);
        let e = import(&mut state, other, &parsed, ImportPolicy::Minify).unwrap_err();
        assert!(matches!(e, InterchangeError::GenesisMismatch { .. }));
        assert_eq!(state, Eth2State::default());
    }

    #[test]
    fn slashable_files_are_refused_by_default_and_minified_on_request() {
        let cases = [
            doc(r#"{"slot":"5"},{"slot":"5"}"#, ""),
            doc("", r#"{"source_epoch":"3","target_epoch":"2"}"#),
            doc(
                "",
                r#"{"source_epoch":"1","target_epoch":"5"},{"source_epoch":"2","target_epoch":"5"}"#,
            ),
            doc(
                "",
                r#"{"source_epoch":"1","target_epoch":"10"},{"source_epoch":"2","target_epoch":"9"}"#,
            ),
            doc(
                "",
                r#"{"source_epoch":"2","target_epoch":"9"},{"source_epoch":"1","target_epoch":"10"}"#,
            ),
        ];
        for text in cases {
            let parsed = parse(&text).unwrap();
            let mut state = Eth2State::default();
            let e = import(&mut state, gvr(), &parsed, ImportPolicy::RefuseSlashable).unwrap_err();
            assert!(matches!(e, InterchangeError::Slashable { .. }), "{text}");
            assert_eq!(state, Eth2State::default());
            let summary = import(&mut state, gvr(), &parsed, ImportPolicy::Minify).unwrap();
            assert!(!summary.slashable.is_empty());
        }
    }

    #[test]
    fn non_slashable_repeats_are_accepted() {
        let r = "0x0000000000000000000000000000000000000000000000000000000000000007";
        let text = doc(
            &format!(r#"{{"slot":"5","signing_root":"{r}"}},{{"slot":"5","signing_root":"{r}"}}"#),
            r#"{"source_epoch":"1","target_epoch":"5"},{"source_epoch":"1","target_epoch":"6"},{"source_epoch":"2","target_epoch":"7"}"#,
        );
        let parsed = parse(&text).unwrap();
        assert_eq!(parsed.slashable_records(), vec![]);
    }

    #[test]
    fn export_parse_roundtrip() {
        let text = doc(
            r#"{"slot":"5"}"#,
            r#"{"source_epoch":"1","target_epoch":"5"}"#,
        );
        let mut state = Eth2State::default();
        import(
            &mut state,
            gvr(),
            &parse(&text).unwrap(),
            ImportPolicy::RefuseSlashable,
        )
        .unwrap();
        let exported = export(&state, gvr());
        assert_eq!(parse(&exported.to_json()).unwrap(), exported);
        let mut again = Eth2State::default();
        import(&mut again, gvr(), &exported, ImportPolicy::RefuseSlashable).unwrap();
        assert_eq!(again, state);
    }
}
