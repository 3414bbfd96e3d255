//! Espresso (BN254 BLS, HotShot messages) vector harness.
//!
//! Reads `$ESPRESSO_VECTORS` (default `tests/vectors/espresso/vectors.json`) and checks every
//! entry of every section:
//! - `demo_keys`: the tagged secret key decodes to `sk_le_hex` and gives `bls_ver_key` /
//!   `pk_uncompressed_hex`;
//! - `commitments`: `QuorumData{leaf_commit}.commit()`, or, for an entry with a `view` field,
//!   the vote commitment of that quorum vote, equals `result_hex` (and `result`). The view is
//!   only ever read from that field (never from the free text in `what`), and every entry names
//!   its own `leaf_commit`;
//! - `vote_commitments`: a typed request (`message`, in the signer's serde form) gives
//!   `data_commitment` and/or `signing_message_hex`; a DA proposal may be given as the client
//!   sends it (`encoded_transactions`), and is then converted as the service converts it;
//! - `signatures`: signing `message_hex` with demo key `signer_index` gives `bls_sig` /
//!   `sig_uncompressed_hex`; the signature verifies, and fails under another key;
//! - `aggregate_signatures`: the sum of the listed keys' signatures equals `bls_sig` and
//!   verifies against the sum of their public keys, and not against one key fewer;
//! - `hash_to_curve_examples`: `hash_to_curve(input_hex)` (arkworks uncompressed) equals
//!   `point_uncompressed_hex`.
//!
//! Prints `PASS`/`FAIL` per case and `N passed, M failed; E entries in the file`; fails on any
//! mismatch, on a list of entries it has no check for, and when the cases run differ from the
//! entries the file holds (counted over every top-level list, whatever its name).
//!
//! A second test reads `$ESPRESSO_LEAF2_VECTORS` (default `tests/vectors/espresso/leaf2.json`,
//! see `LEAF2.md` there): each case's typed quorum proposal (`message`) must sign exactly
//! `leaf_commit`, HotShot's `Leaf2::commit()` of a recorded leaf (or, for `derived` cases, the
//! value of the independent `leaf2_ref.py`); for a recorded leaf, the fields that the record
//! holds directly (view, parent, block hash, DRB result, epoch) must match the request too.
//! Each case also goes through the gRPC conversion (`service::convert::espresso_message`) and
//! must come out as the same typed message, with no layout named and under the case's
//! `layout`; under each of its `layouts_refusing` it must be refused on the `layout` field.
//!
//! A fourth reads `$ESPRESSO_NEW_PROTOCOL_VECTORS` (default
//! `tests/vectors/espresso/new_protocol.json`, see `NEW_PROTOCOL.md`): each case of the new
//! protocol (proposals with v2 or v3 timeout evidence, Vote1, Vote2, v3 timeouts, re-vote
//! requests, `UpgradeProposalData2` votes) is built as a client's gRPC request from the case's
//! JSON and converted by the service: it must sign exactly `signing_message_hex` (and its vote
//! data commit to `data_commitment_hex`), and the case's demo-key signature must be `bls_sig`;
//! no two cases may sign the same bytes.
//!
//! A third reads `$ESPRESSO_QC_VECTORS` (default `tests/vectors/espresso/epoch_qcs.json`, see
//! `EPOCH_QCS.md`): quorum certificates with epoch-bearing data recorded from a HotShot network
//! of the demo keys. The quorum vote the signer builds from each QC's fields must sign the QC's
//! `vote_commitment`, and the signers' signatures over it must sum to the recorded aggregate.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use ark_serialize::CanonicalSerialize;
use serde_json::Value;
use signer_node::pb;
use signer_node::protection::espresso::leaf::LeafLayout;
use signer_node::protection::espresso::message::{
    commitment_from_tagged, commitment_to_tagged, vote_commitment,
};
use signer_node::protection::espresso::new_protocol::CheckpointData;
use signer_node::protection::espresso::{
    Kind, Message, ProposedLeaf, QuorumData, ViewChangeEvidence,
};
use signer_node::scheme::bn254::{hash_to_curve, PublicKey, SecretKey, Signature};
use signer_node::service::convert::espresso_message;
use signer_node::service::signing::SignError;
use signer_tests::{count_section_entries, output_text, read_json, run_own_test, TempDir};
use std::path::{Path, PathBuf};

type Outcome = Result<(), String>;
/// One section's check.
type Check<'a> = &'a dyn Fn(&Value) -> Outcome;

fn text<'a>(v: &'a Value, field: &str) -> Result<&'a str, String> {
    v[field]
        .as_str()
        .ok_or_else(|| format!("missing string field {field:?}"))
}

fn unhex(v: &Value, field: &str) -> Result<Vec<u8>, String> {
    let s = text(v, field)?;
    hex::decode(s.trim_start_matches("0x")).map_err(|e| format!("{field}: bad hex: {e}"))
}

fn index(v: &Value, field: &str) -> Result<usize, String> {
    v[field]
        .as_u64()
        .map(|i| i as usize)
        .ok_or_else(|| format!("missing integer field {field:?}"))
}

fn expect_eq(what: &str, got: impl AsRef<[u8]>, want: impl AsRef<[u8]>) -> Outcome {
    if got.as_ref() == want.as_ref() {
        Ok(())
    } else {
        Err(format!(
            "{what}: got {}, expected {}",
            hex::encode(got),
            hex::encode(want)
        ))
    }
}

fn expect_text(what: &str, got: &str, want: &str) -> Outcome {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got}, expected {want}"))
    }
}

/// The demo keys by index, decoded before any other case runs.
fn keys(doc: &Value) -> Vec<Option<SecretKey>> {
    let entries = doc["demo_keys"].as_array().cloned().unwrap_or_default();
    let mut keys: Vec<Option<SecretKey>> = Vec::new();
    for e in &entries {
        let Some(i) = e["index"].as_u64().map(|i| i as usize) else {
            continue;
        };
        if keys.len() <= i {
            keys.resize_with(i + 1, || None);
        }
        keys[i] = e["bls_signing_key"]
            .as_str()
            .and_then(|s| SecretKey::from_tagged(s).ok());
    }
    keys
}

fn key(keys: &[Option<SecretKey>], i: usize) -> Result<&SecretKey, String> {
    keys.get(i)
        .and_then(Option::as_ref)
        .ok_or_else(|| format!("no usable demo key {i}"))
}

fn demo_key(e: &Value) -> Outcome {
    let sk = SecretKey::from_tagged(text(e, "bls_signing_key")?).map_err(|e| e.to_string())?;
    if e.get("sk_le_hex").is_some() {
        expect_eq(
            "secret scalar",
            sk.to_le_bytes().as_ref(),
            unhex(e, "sk_le_hex")?,
        )?;
    }
    let pk = sk.public_key();
    expect_text("BLS_VER_KEY", &pk.to_tagged(), text(e, "bls_ver_key")?)?;
    expect_eq(
        "public key bytes",
        pk.to_bytes(),
        unhex(e, "pk_uncompressed_hex")?,
    )?;
    let parsed = PublicKey::from_tagged(text(e, "bls_ver_key")?).map_err(|e| e.to_string())?;
    if parsed != pk {
        return Err("the tagged public key decodes to another key".into());
    }
    Ok(())
}

fn commitment(e: &Value) -> Outcome {
    let leaf = commitment_from_tagged(text(e, "leaf_commit")?).map_err(|e| e.to_string())?;
    let data = QuorumData {
        leaf_commit: leaf,
        epoch: None,
        block_number: None,
    }
    .commit();
    // The view is a structured field; an entry without one is `QuorumData.commit()` alone.
    let got = match &e["view"] {
        Value::Null => data,
        view => vote_commitment(&data, view.as_u64().ok_or("view: not an integer")?),
    };
    expect_eq("commitment", got, unhex(e, "result_hex")?)?;
    if let Some(tagged) = e["result"].as_str() {
        expect_text(
            "COMMIT~",
            &commitment_to_tagged(&signer_node::bytes::FixedBytes(got)),
            tagged,
        )?;
    }
    Ok(())
}

/// A DA proposal given as the client sends it (`{"da_proposal": {"view", "encoded_transactions"}}`)
/// goes through the service's conversion, which hashes the payload; `None` for any other form.
fn da_proposal_request(message: &Value) -> Option<Result<Message, String>> {
    let request = message.get("da_proposal")?;
    let payload = request.get("encoded_transactions")?.as_str()?;
    Some((|| {
        let view = request["view"].as_u64().ok_or("da_proposal.view")?;
        let encoded_transactions = hex::decode(payload.trim_start_matches("0x"))
            .map_err(|e| format!("encoded_transactions: {e}"))?;
        let wire = pb::EspressoMessage {
            kind: Some(pb::espresso_message::Kind::DaProposal(pb::DaProposal {
                view,
                encoded_transactions,
            })),
        };
        espresso_message(&wire).map_err(|s| format!("conversion: {s}"))
    })())
}

fn vote_commitment_case(e: &Value) -> Outcome {
    let message: Message = match da_proposal_request(&e["message"]) {
        Some(converted) => converted?,
        None => {
            serde_json::from_value(e["message"].clone()).map_err(|err| format!("message: {err}"))?
        }
    };
    let mut checked = false;
    if let Some(want) = e["data_commitment"].as_str() {
        let want = commitment_from_tagged(want).map_err(|e| e.to_string())?;
        let got = message
            .data_commitment()
            .ok_or("a proposal has no data commitment")?;
        expect_eq("DATA.commit()", got, want.0)?;
        checked = true;
    }
    if e.get("signing_message_hex").is_some() {
        expect_eq(
            "signed bytes",
            message.signing_message(),
            unhex(e, "signing_message_hex")?,
        )?;
        checked = true;
    }
    if checked {
        Ok(())
    } else {
        Err("neither data_commitment nor signing_message_hex to check".into())
    }
}

fn signature(e: &Value, keys: &[Option<SecretKey>]) -> Outcome {
    let i = index(e, "signer_index")?;
    let sk = key(keys, i)?;
    let msg = unhex(e, "message_hex")?;
    let sig = sk.sign(&msg);
    expect_text("BLS_SIG", &sig.to_tagged(), text(e, "bls_sig")?)?;
    expect_eq(
        "signature bytes",
        sig.to_bytes(),
        unhex(e, "sig_uncompressed_hex")?,
    )?;
    let parsed = Signature::from_tagged(text(e, "bls_sig")?).map_err(|e| e.to_string())?;
    if !parsed.verify(&sk.public_key(), &msg) {
        return Err("the expected signature does not verify".into());
    }
    let others: Vec<&SecretKey> = keys
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != i)
        .filter_map(|(_, k)| k.as_ref())
        .collect();
    if let Some(other) = others.first() {
        if parsed.verify(&other.public_key(), &msg) {
            return Err("the signature verifies under another key".into());
        }
    }
    Ok(())
}

fn aggregate(e: &Value, keys: &[Option<SecretKey>]) -> Outcome {
    let indices: Vec<usize> = e["signer_indices"]
        .as_array()
        .ok_or("missing signer_indices")?
        .iter()
        .map(|i| i.as_u64().map(|i| i as usize).ok_or("bad signer index"))
        .collect::<Result<_, _>>()?;
    let signers: Vec<&SecretKey> = indices
        .iter()
        .map(|&i| key(keys, i))
        .collect::<Result<_, _>>()?;
    let msg = unhex(e, "message_hex")?;
    let sigs: Vec<Signature> = signers.iter().map(|k| k.sign(&msg)).collect();
    let agg = Signature::aggregate(&sigs).map_err(|e| e.to_string())?;
    expect_text("aggregate BLS_SIG", &agg.to_tagged(), text(e, "bls_sig")?)?;
    expect_eq(
        "aggregate bytes",
        agg.to_bytes(),
        unhex(e, "sig_uncompressed_hex")?,
    )?;
    let pks: Vec<PublicKey> = signers.iter().map(|k| k.public_key()).collect();
    if !agg.verify(
        &PublicKey::aggregate(&pks).map_err(|e| e.to_string())?,
        &msg,
    ) {
        return Err("the aggregate does not verify against the summed keys".into());
    }
    if pks.len() > 1
        && agg.verify(
            &PublicKey::aggregate(&pks[1..]).map_err(|e| e.to_string())?,
            &msg,
        )
    {
        return Err("the aggregate verifies without its first signer".into());
    }
    Ok(())
}

fn hash_example(e: &Value) -> Outcome {
    let point = hash_to_curve(&unhex(e, "input_hex")?);
    let mut bytes = Vec::new();
    point
        .serialize_uncompressed(&mut bytes)
        .map_err(|e| e.to_string())?;
    expect_eq("hash_to_curve", bytes, unhex(e, "point_uncompressed_hex")?)
}

fn label(section: &str, i: usize, e: &Value) -> String {
    let detail = ["note", "what", "input_note"]
        .iter()
        .find_map(|f| e[*f].as_str())
        .map(str::to_owned)
        .or_else(|| e["index"].as_u64().map(|i| format!("demo key {i}")))
        .or_else(|| {
            e["message"]
                .as_object()
                .and_then(|m| m.keys().next().cloned())
        })
        .unwrap_or_default();
    format!("{section}[{i}] {detail}")
}

/// The sections of `vectors.json` this harness runs, in order.
const SECTIONS: [&str; 6] = [
    "demo_keys",
    "commitments",
    "vote_commitments",
    "signatures",
    "aggregate_signatures",
    "hash_to_curve_examples",
];

fn vectors_path() -> PathBuf {
    std::env::var_os("ESPRESSO_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| vendored("vectors.json"))
}

fn vendored(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("vectors/espresso")
        .join(name)
}

/// What one run found: cases passed and failed, and the entries the file holds, counted over
/// every top-level list whatever its name (not by the harness's own section list).
#[derive(Debug, PartialEq, Eq)]
struct Summary {
    passed: usize,
    failed: usize,
    expected: usize,
}

/// Run every entry of a `vectors.json`. `Err` when the file cannot be read, or has a list of
/// entries this harness has no check for (it would otherwise go unrun).
fn run_vectors(path: &Path, quiet: bool) -> Result<Summary, String> {
    let doc = read_json(path)?;
    for (name, value) in doc.as_object().into_iter().flatten() {
        let entries = value
            .as_array()
            .map_or(0, |a| a.iter().filter(|e| e.is_object()).count());
        if entries > 0 && !SECTIONS.contains(&name.as_str()) {
            return Err(format!(
                "{}: section {name:?} has {entries} entries and no check",
                path.display()
            ));
        }
    }
    let keys = keys(&doc);
    let sections: [(&str, Check); 6] = [
        ("demo_keys", &demo_key),
        ("commitments", &commitment),
        ("vote_commitments", &vote_commitment_case),
        ("signatures", &|e| signature(e, &keys)),
        ("aggregate_signatures", &|e| aggregate(e, &keys)),
        ("hash_to_curve_examples", &hash_example),
    ];
    let (mut passed, mut failed) = (0, 0);
    for (section, check) in sections {
        for (i, e) in doc[section].as_array().into_iter().flatten().enumerate() {
            let name = label(section, i, e);
            // "verified" (an Espresso artifact) or "derived" (an independent computation).
            let origin = e["provenance"]
                .as_str()
                .and_then(|p| p.split(|c: char| !c.is_alphanumeric()).next())
                .map(|w| format!(" [{w}]"))
                .unwrap_or_default();
            match check(e) {
                Ok(()) => {
                    passed += 1;
                    if !quiet {
                        println!("PASS {name}{origin}");
                    }
                }
                Err(err) => {
                    failed += 1;
                    if !quiet {
                        println!("FAIL {name}{origin}: {err}");
                    }
                }
            }
        }
    }
    Ok(Summary {
        passed,
        failed,
        expected: count_section_entries(&doc),
    })
}

#[test]
fn espresso_bn254_and_hotshot_vectors() {
    let path = vectors_path();
    let s = run_vectors(&path, false).unwrap_or_else(|e| panic!("{e}"));
    println!(
        "{} passed, {} failed; {} entries in the file",
        s.passed, s.failed, s.expected
    );
    assert_eq!(
        s.passed + s.failed,
        s.expected,
        "the harness ran another number of cases than {} holds",
        path.display()
    );
    assert!(s.expected > 0, "no vectors found in {}", path.display());
    assert_eq!(s.failed, 0, "{} Espresso vector(s) failed", s.failed);
}

/// The vendored file: every section, with its exact number of entries.
#[test]
fn the_vendored_espresso_vectors_run_every_entry() {
    let doc = read_json(&vendored("vectors.json")).unwrap();
    let sizes: Vec<usize> = SECTIONS
        .iter()
        .map(|s| doc[*s].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(sizes, [5, 3, 24, 10, 2, 1]);
    assert_eq!(
        run_vectors(&vendored("vectors.json"), true),
        Ok(Summary {
            passed: 45,
            failed: 0,
            expected: 45
        })
    );
}

/// The README's mode (`ESPRESSO_VECTORS=/some/vectors.json`) runs the named file; a file with a
/// list of entries the harness has no check for fails it, naming the list.
#[test]
fn the_env_var_names_the_file_and_unknown_sections_fail() {
    let out = run_own_test(
        "espresso_bn254_and_hotshot_vectors",
        &[("ESPRESSO_VECTORS", vendored("vectors.json").as_os_str())],
    )
    .unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("\n45 passed, 0 failed; 45 entries in the file\n"),
        "{text}"
    );

    let dir = TempDir::new("espresso-sections").unwrap();
    let mut doc = read_json(&vendored("vectors.json")).unwrap();
    let path = dir.path().join("vectors.json");
    // The view is read from the structured field only: without it, the two vote commitments
    // whose `what` text still says "view=12" / "view=13" fail; with another view, too.
    for entry in [1, 2] {
        let what = doc["commitments"][entry]["what"].as_str().unwrap();
        assert!(what.contains("view=1"), "{what}");
        doc["commitments"][entry]
            .as_object_mut()
            .unwrap()
            .remove("view");
    }
    std::fs::write(&path, serde_json::to_string(&doc).unwrap()).unwrap();
    let failed = Ok(Summary {
        passed: 43,
        failed: 2,
        expected: 45,
    });
    assert_eq!(run_vectors(&path, true), failed);
    doc["commitments"][1]["view"] = serde_json::json!(13);
    doc["commitments"][2]["view"] = serde_json::json!(12);
    std::fs::write(&path, serde_json::to_string(&doc).unwrap()).unwrap();
    assert_eq!(run_vectors(&path, true), failed);
    doc["commitments"][1]["view"] = serde_json::json!(12);
    doc["commitments"][2]["view"] = serde_json::json!(13);
    doc["vote_commitmnets"] = doc["vote_commitments"].clone();
    std::fs::write(&path, serde_json::to_string(&doc).unwrap()).unwrap();
    let want = format!(
        "{}: section \"vote_commitmnets\" has 24 entries and no check",
        path.display()
    );
    assert_eq!(run_vectors(&path, true), Err(want.clone()));
    let out = run_own_test(
        "espresso_bn254_and_hotshot_vectors",
        &[("ESPRESSO_VECTORS", path.as_os_str())],
    )
    .unwrap();
    let text = output_text(&out);
    assert!(!out.status.success(), "the harness passed:\n{text}");
    assert!(text.contains(&want), "{text}");
}

/// The gRPC form of a typed proposal, as a client builds it.
/// A vector's layout name (the serde name of `LeafLayout`) as the wire's enum.
fn wire_layout(name: &Value) -> Result<pb::LeafLayout, String> {
    let layout: LeafLayout =
        serde_json::from_value(name.clone()).map_err(|e| format!("layout {name}: {e}"))?;
    Ok(match layout {
        LeafLayout::Unversioned => pb::LeafLayout::Unspecified,
        LeafLayout::PreEpoch => pb::LeafLayout::PreEpoch,
        LeafLayout::EpochsWithoutEvidence => pb::LeafLayout::EpochsWithoutEvidence,
        LeafLayout::Epochs => pb::LeafLayout::Epochs,
        LeafLayout::NewProtocol => pb::LeafLayout::NewProtocol,
    })
}

fn to_wire(leaf: &ProposedLeaf, layout: pb::LeafLayout) -> pb::EspressoMessage {
    use pb::leaf_epoch::ViewChangeEvidence as V;
    pb::EspressoMessage {
        kind: Some(pb::espresso_message::Kind::QuorumProposal(
            pb::QuorumProposal {
                layout: layout as i32,
                view: leaf.view,
                parent_leaf: leaf.parent_leaf.0.to_vec(),
                block_header_commit: leaf.block_header_commit.0.to_vec(),
                justify_qc_commit: leaf.justify_qc_commit.0.to_vec(),
                upgrade_certificate_commit: leaf.upgrade_certificate_commit.map(|c| c.0.to_vec()),
                with_epoch: leaf.with_epoch.as_ref().map(|e| pb::LeafEpoch {
                    next_epoch_justify_qc_commit: e
                        .next_epoch_justify_qc_commit
                        .map(|c| c.0.to_vec()),
                    next_drb_result: e.next_drb_result.map(|c| c.0.to_vec()),
                    view_change_evidence: e.view_change_evidence.map(|v| match v {
                        ViewChangeEvidence::TimeoutCert(c) => V::TimeoutCertCommit(c.0.to_vec()),
                        ViewChangeEvidence::ViewSyncCert(c) => V::ViewSyncCertCommit(c.0.to_vec()),
                        ViewChangeEvidence::TimeoutCertV3(c) => {
                            V::TimeoutCertV3Commit(c.0.to_vec())
                        }
                    }),
                }),
            },
        )),
    }
}

fn leaf2_case(e: &Value) -> Outcome {
    let message: Message =
        serde_json::from_value(e["message"].clone()).map_err(|err| format!("message: {err}"))?;
    let Message::QuorumProposal(leaf) = &message else {
        return Err(format!("not a quorum proposal: {message:?}"));
    };
    if message.kind() != Kind::QuorumProposal || message.data_commitment().is_some() {
        return Err("a quorum proposal must be its own kind, without vote data".into());
    }
    let want = commitment_from_tagged(text(e, "leaf_commit")?).map_err(|e| e.to_string())?;
    expect_eq("leaf commitment", message.signing_message(), want.0)?;
    expect_eq("leaf_commit_hex", want.0, unhex(e, "leaf_commit_hex")?)?;
    // Through the wire: under the layout the case names (or none: `with_epoch` decides) the
    // same message; under each layout that must refuse it, INVALID_ARGUMENT on `layout`.
    let named = match e.get("layout") {
        Some(name) => vec![pb::LeafLayout::Unspecified, wire_layout(name)?],
        None => vec![pb::LeafLayout::Unspecified],
    };
    for layout in named {
        let wire = espresso_message(&to_wire(leaf, layout))
            .map_err(|s| format!("conversion under {layout:?}: {s}"))?;
        if wire != message {
            return Err(format!("the wire form converts to {wire:?}"));
        }
    }
    for name in e["layouts_refusing"].as_array().into_iter().flatten() {
        let layout = wire_layout(name)?;
        match espresso_message(&to_wire(leaf, layout)) {
            Err(SignError::Invalid { field, .. }) if field == "espresso.quorum_proposal.layout" => {
            }
            other => return Err(format!("under {layout:?}, which must refuse it: {other:?}")),
        }
    }
    let Some(recorded) = e.get("hotshot_leaf") else {
        return Ok(());
    };
    let commit = |field: &str| -> Result<Vec<u8>, String> {
        let text = text(recorded, field)?;
        let (tag, _) = text.split_once('~').ok_or("not tagged")?;
        signer_node::scheme::bn254::tagged::decode(text, tag).map_err(|e| e.to_string())
    };
    if recorded["view_number"].as_u64() != Some(leaf.view) {
        return Err("view differs from the recorded leaf".into());
    }
    expect_eq(
        "parent leaf",
        leaf.parent_leaf.0,
        commit("parent_commitment")?,
    )?;
    expect_eq(
        "block header",
        leaf.block_header_commit.0,
        commit("block_header_commit")?,
    )?;
    if recorded["with_epoch"].as_bool() != Some(leaf.with_epoch.is_some()) {
        return Err("with_epoch differs from the recorded leaf".into());
    }
    if recorded["upgrade_certificate"].is_null() != leaf.upgrade_certificate_commit.is_none() {
        return Err("upgrade certificate presence differs from the recorded leaf".into());
    }
    let drb: Option<Vec<u8>> = match &recorded["next_drb_result"] {
        Value::Null => None,
        Value::Array(bytes) => Some(
            bytes
                .iter()
                .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect::<Option<_>>()
                .ok_or("next_drb_result: not bytes")?,
        ),
        other => return Err(format!("next_drb_result: {other}")),
    };
    let got = leaf
        .with_epoch
        .as_ref()
        .and_then(|e| e.next_drb_result)
        .map(|d| d.0.to_vec());
    if got != drb {
        return Err(format!("DRB result {got:?}, recorded {drb:?}"));
    }
    Ok(())
}

#[test]
fn espresso_leaf2_commitments() {
    let path = std::env::var_os("ESPRESSO_LEAF2_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| vendored("leaf2.json"));
    let doc = read_json(&path).unwrap_or_else(|e| panic!("{e}"));
    let (mut passed, mut failed, mut verified) = (0, 0, 0);
    for (i, e) in doc["cases"].as_array().into_iter().flatten().enumerate() {
        let name = e["name"].as_str().unwrap_or_default();
        let origin = e["provenance"]
            .as_str()
            .and_then(|p| p.split(':').next())
            .unwrap_or_default();
        match leaf2_case(e) {
            Ok(()) => {
                passed += 1;
                verified += usize::from(origin == "verified");
                println!("PASS cases[{i}] {name} [{origin}]");
            }
            Err(err) => {
                failed += 1;
                println!("FAIL cases[{i}] {name} [{origin}]: {err}");
            }
        }
    }
    println!("{passed} passed, {failed} failed ({verified} verified against HotShot)");
    assert_eq!(
        passed + failed,
        count_section_entries(&doc),
        "the harness ran another number of cases than {} holds",
        path.display()
    );
    assert!(verified > 0, "no verified leaf in {}", path.display());
    assert_eq!(failed, 0, "{failed} Leaf2 vector(s) failed");
}

/// The signer indices of a HotShot QC's signer bit vector (serde form of a `bitvec` `BitVec`
/// with `Lsb0` order over 64-bit words): bit `i` of the stake table is set when key `i` signed.
fn signer_indices(bits: &Value) -> Result<Vec<usize>, String> {
    if bits["order"].as_str() != Some("bitvec::order::Lsb0")
        || bits["head"]["width"].as_u64() != Some(64)
        || bits["head"]["index"].as_u64() != Some(0)
    {
        return Err(format!("unexpected bit vector layout: {bits}"));
    }
    let len = bits["bits"].as_u64().ok_or("bits: not an integer")? as usize;
    let words: Vec<u64> = bits["data"]
        .as_array()
        .ok_or("data: not a list")?
        .iter()
        .map(|w| w.as_u64().ok_or("data: not a word"))
        .collect::<Result<_, _>>()?;
    if words.len() != len.div_ceil(64) {
        return Err(format!("{} words for {len} bits", words.len()));
    }
    Ok((0..len)
        .filter(|i| words[i / 64] >> (i % 64) & 1 == 1)
        .collect())
}

/// One recorded certificate: the quorum vote the signer builds from the QC's structured data
/// (view, leaf, epoch, block number) must sign exactly the QC's `vote_commitment`, as a quorum
/// vote and as a next-epoch quorum vote (or, where the file says the QC carries `data.commit()`,
/// the vote's data commitment must equal it); the same leaf without the epoch fields must not;
/// and for a signed QC, the demo keys named by the signer bit vector, signing what the signer
/// computes, must sum to the recorded aggregate signature byte for byte.
fn epoch_qc_case(e: &Value, stake_table: &[PublicKey], keys: &[Option<SecretKey>]) -> Outcome {
    let qc = &e["qc"];
    let data = &qc["data"];
    let view = qc["view_number"].as_u64().ok_or("view_number")?;
    let (Some(epoch), Some(block_number)) = (data["epoch"].as_u64(), data["block_number"].as_u64())
    else {
        return Err("not an epoch-bearing certificate (no epoch or block_number)".into());
    };
    let leaf_commit =
        commitment_from_tagged(text(data, "leaf_commit")?).map_err(|e| e.to_string())?;
    let want = commitment_from_tagged(text(qc, "vote_commitment")?).map_err(|e| e.to_string())?;
    let data2 = QuorumData {
        leaf_commit,
        epoch: Some(epoch),
        block_number: Some(block_number),
    };
    let vote = Message::QuorumVote {
        view,
        data: data2.clone(),
    };
    let next = Message::NextEpochQuorumVote { view, data: data2 };
    match e["vote_commitment_is"].as_str() {
        Some("versioned_vote_data") => {
            expect_eq("quorum vote", vote.signing_message(), want.0)?;
            expect_eq("next-epoch quorum vote", next.signing_message(), want.0)?;
        }
        // The genesis leaf's null justify QC carries `data.commit()` (nobody signs it): a known
        // answer for the QuorumData2 layout itself.
        Some("quorum_data") => {
            let data = vote.data_commitment().ok_or("a vote has data")?;
            expect_eq("QuorumData2.commit()", data, want.0)?;
            if vote.signing_message() == want.0 {
                return Err("the vote and its data commit to the same bytes".into());
            }
        }
        other => return Err(format!("vote_commitment_is: {other:?}")),
    }
    let v1 = Message::QuorumVote {
        view,
        data: QuorumData {
            leaf_commit,
            epoch: None,
            block_number: None,
        },
    };
    if v1.signing_message() == want.0 {
        return Err("the vote without epoch fields signs the same bytes".into());
    }
    // The request as a client sends it over gRPC converts to exactly these messages.
    for (wire, want) in [
        (
            pb::espresso_message::Kind::QuorumVote as fn(pb::QuorumVote) -> _,
            &vote,
        ),
        (pb::espresso_message::Kind::NextEpochQuorumVote, &next),
    ] {
        let request = pb::EspressoMessage {
            kind: Some(wire(pb::QuorumVote {
                view,
                leaf_commit: leaf_commit.0.to_vec(),
                epoch: Some(epoch),
                block_number: Some(block_number),
            })),
        };
        let got = espresso_message(&request).map_err(|s| format!("conversion: {s}"))?;
        if got != *want {
            return Err(format!("the wire form converts to {got:?}"));
        }
    }
    let signatures = &qc["signatures"];
    if signatures.is_null() {
        return Ok(());
    }
    let recorded = Signature::from_tagged(signatures[0].as_str().ok_or("signatures[0]")?)
        .map_err(|e| e.to_string())?;
    let signers = signer_indices(&signatures[1])?;
    if signers.is_empty() {
        return Err("a signed QC without signers".into());
    }
    let mut sigs = Vec::new();
    let mut pks = Vec::new();
    for i in &signers {
        let pk = stake_table
            .get(*i)
            .ok_or_else(|| format!("signer {i} is not in the stake table"))?;
        let sk = keys
            .iter()
            .flatten()
            .find(|k| k.public_key() == *pk)
            .ok_or_else(|| format!("no demo key for stake table entry {i}"))?;
        sigs.push(sk.sign(&vote.signing_message()));
        pks.push(pk.clone());
    }
    let aggregate = Signature::aggregate(&sigs).map_err(|e| e.to_string())?;
    expect_eq(
        "aggregate signature of the signers",
        aggregate.to_bytes(),
        recorded.to_bytes(),
    )?;
    let agg_pk = PublicKey::aggregate(&pks).map_err(|e| e.to_string())?;
    if !recorded.verify(&agg_pk, &vote.signing_message()) {
        return Err("the recorded QC signature does not verify over the signer's bytes".into());
    }
    Ok(())
}

/// Known answers for the epoch-bearing vote layout (`QuorumData2` with epoch and block number,
/// signed as `VersionedVoteData`), produced by Espresso's own software: quorum certificates
/// that a 5-node HotShot network with the public demo keys formed, recorded in espresso-network
/// `data/legacy-chains/v5` (see `EPOCH_QCS.md`). Every case is checked; the count of cases run
/// must equal the certificates in the file.
#[test]
fn espresso_epoch_quorum_certificates() {
    let path = std::env::var_os("ESPRESSO_QC_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| vendored("epoch_qcs.json"));
    let doc = read_json(&path).unwrap_or_else(|e| panic!("{e}"));
    let stake_table: Vec<PublicKey> = doc["stake_table"]
        .as_array()
        .expect("stake_table")
        .iter()
        .map(|k| PublicKey::from_tagged(k.as_str().expect("a BLS_VER_KEY")).unwrap())
        .collect();
    let keys = keys(&read_json(&vendored("vectors.json")).unwrap());
    let (mut passed, mut failed, mut signed) = (0, 0, 0);
    for (i, e) in doc["certificates"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let name = format!(
            "certificates[{i}] height {} {} (view {}, epoch {}, block {})",
            e["height"],
            e["field"].as_str().unwrap_or_default(),
            e["qc"]["view_number"],
            e["qc"]["data"]["epoch"],
            e["qc"]["data"]["block_number"]
        );
        match epoch_qc_case(e, &stake_table, &keys) {
            Ok(()) => {
                passed += 1;
                let with_signature = !e["qc"]["signatures"].is_null();
                signed += usize::from(with_signature);
                let what = match (e["vote_commitment_is"].as_str(), with_signature) {
                    (Some("quorum_data"), _) => "QuorumData2.commit() (the genesis null QC)",
                    (_, true) => "vote commitment and aggregate signature",
                    (_, false) => "vote commitment (unsigned genesis QC)",
                };
                println!("PASS {name}: {what}");
            }
            Err(err) => {
                failed += 1;
                println!("FAIL {name}: {err}");
            }
        }
    }
    println!("{passed} passed, {failed} failed ({signed} with their aggregate signature)");
    assert_eq!(
        passed + failed,
        count_section_entries(&doc),
        "the harness ran another number of cases than {} holds",
        path.display()
    );
    assert_eq!(failed, 0, "{failed} epoch QC vector(s) failed");
    if std::env::var_os("ESPRESSO_QC_VECTORS").is_none() {
        // The vendored subset: 12 QCs of epochs 1, 2 and 8, 10 of them signed.
        assert_eq!((passed, signed), (12, 10));
    }
}

/// The conversion refuses a malformed proposal, naming the field, and hashes a DA proposal's
/// payload itself.
#[test]
fn espresso_proposal_wire_conversion() {
    let leaf = ProposedLeaf {
        view: 3,
        parent_leaf: signer_node::bytes::FixedBytes([1; 32]),
        block_header_commit: signer_node::bytes::FixedBytes([2; 32]),
        justify_qc_commit: signer_node::bytes::FixedBytes([3; 32]),
        upgrade_certificate_commit: None,
        with_epoch: Some(Default::default()),
    };
    let proposal = |edit: &dyn Fn(&mut pb::QuorumProposal)| {
        let mut m = to_wire(&leaf, pb::LeafLayout::Unspecified);
        if let Some(pb::espresso_message::Kind::QuorumProposal(p)) = &mut m.kind {
            edit(p);
        }
        espresso_message(&m)
    };
    assert_eq!(
        proposal(&|_| {}).unwrap(),
        Message::quorum_proposal(leaf.clone())
    );
    type Edit<'a> = &'a dyn Fn(&mut pb::QuorumProposal);
    let cases: [(Edit, &str); 6] = [
        (
            &|p| p.parent_leaf.clear(),
            "espresso.quorum_proposal.parent_leaf: expected 32 bytes, got 0",
        ),
        (
            &|p| p.block_header_commit.push(0),
            "espresso.quorum_proposal.block_header_commit: expected 32 bytes, got 33",
        ),
        (
            &|p| p.justify_qc_commit.truncate(31),
            "espresso.quorum_proposal.justify_qc_commit: expected 32 bytes, got 31",
        ),
        (
            &|p| p.upgrade_certificate_commit = Some(vec![0; 3]),
            "espresso.quorum_proposal.upgrade_certificate_commit: expected 32 bytes, got 3",
        ),
        (
            &|p| {
                if let Some(e) = &mut p.with_epoch {
                    e.next_drb_result = Some(vec![]);
                }
            },
            "espresso.quorum_proposal.with_epoch.next_drb_result: expected 32 bytes, got 0",
        ),
        (
            &|p| {
                if let Some(e) = &mut p.with_epoch {
                    e.view_change_evidence =
                        Some(pb::leaf_epoch::ViewChangeEvidence::TimeoutCertCommit(vec![
                            1,
                        ]));
                }
            },
            "espresso.quorum_proposal.with_epoch.timeout_cert_commit: expected 32 bytes, got 1",
        ),
    ];
    for (edit, want) in cases {
        let err = proposal(edit).unwrap_err();
        assert_eq!(format!("{:?}", err.code()), "InvalidArgument", "{want}");
        assert_eq!(err.message(), want);
    }
    let da = pb::EspressoMessage {
        kind: Some(pb::espresso_message::Kind::DaProposal(pb::DaProposal {
            view: 13,
            encoded_transactions: b"abc".to_vec(),
        })),
    };
    let message = espresso_message(&da).unwrap();
    assert_eq!(message, Message::da_proposal(13, b"abc"));
    // SHA-256("abc"), FIPS 180-2 appendix B.1.
    assert_eq!(
        hex::encode(message.signing_message()),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

/// 32 bytes from a vector's `0x…` hex string.
fn bytes32(v: &Value, field: &str) -> Result<Vec<u8>, String> {
    let bytes = unhex(v, field)?;
    if bytes.len() != 32 {
        return Err(format!("{field}: {} bytes", bytes.len()));
    }
    Ok(bytes)
}

fn uint(v: &Value, field: &str) -> Result<u64, String> {
    v[field]
        .as_u64()
        .ok_or_else(|| format!("{field}: not an unsigned integer"))
}

fn wire_version(v: &Value) -> Option<pb::Version> {
    Some(pb::Version {
        major: u32::try_from(v["major"].as_u64()?).ok()?,
        minor: u32::try_from(v["minor"].as_u64()?).ok()?,
    })
}

/// The gRPC request a client sends for one `new_protocol.json` case, built here from the
/// case's JSON fields (not with the signer's own types); `None` for the retired checkpoint vote,
/// which has no wire form.
fn new_protocol_wire(e: &Value) -> Result<Option<pb::EspressoMessage>, String> {
    use pb::espresso_message::Kind as K;
    let d = &e["data"];
    let view = || uint(e, "view");
    let kind = match text(e, "kind")? {
        "proposal" => {
            use pb::leaf_epoch::ViewChangeEvidence as V;
            let optional = |field: &str| match d.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(_) => bytes32(d, field).map(Some),
            };
            let evidence = &d["view_change_evidence"];
            let evidence = if evidence.is_null() {
                None
            } else if evidence.get("timeout_cert_v3").is_some() {
                Some(V::TimeoutCertV3Commit(bytes32(
                    evidence,
                    "timeout_cert_v3",
                )?))
            } else {
                Some(V::TimeoutCertCommit(bytes32(evidence, "timeout_cert")?))
            };
            K::QuorumProposal(pb::QuorumProposal {
                layout: pb::LeafLayout::NewProtocol as i32,
                view: uint(d, "view")?,
                parent_leaf: bytes32(d, "parent_leaf")?,
                block_header_commit: bytes32(d, "block_header_commit")?,
                justify_qc_commit: bytes32(d, "justify_qc_commit")?,
                upgrade_certificate_commit: optional("upgrade_certificate_commit")?,
                with_epoch: Some(pb::LeafEpoch {
                    next_epoch_justify_qc_commit: None,
                    next_drb_result: optional("next_drb_result")?,
                    view_change_evidence: evidence,
                }),
            })
        }
        "vote1" => K::QuorumVote(pb::QuorumVote {
            view: view()?,
            leaf_commit: bytes32(d, "leaf_commit")?,
            epoch: Some(uint(d, "epoch")?),
            block_number: Some(uint(d, "block_number")?),
        }),
        "vote2" => K::Vote2(pb::Vote2 {
            view: view()?,
            leaf_commit: bytes32(d, "leaf_commit")?,
            epoch: uint(d, "epoch")?,
            block_number: uint(d, "block_number")?,
        }),
        "timeout3" => K::TimeoutVote3(pb::TimeoutVote3 {
            view: uint(d, "view")?,
            epoch: uint(d, "epoch")?,
            lock: match &d["lock"] {
                Value::Null => None,
                lock => Some(pb::LockView {
                    epoch: uint(lock, "epoch")?,
                    view: uint(lock, "view")?,
                }),
            },
        }),
        "revote_request" => K::RevoteRequest(pb::ReVoteRequest {
            view: uint(d, "view")?,
            epoch: uint(d, "epoch")?,
            cert1_commit: bytes32(d, "cert1_commit")?,
            timeout_cert_commit: match &d["timeout_cert_commit"] {
                Value::Null => None,
                _ => Some(bytes32(d, "timeout_cert_commit")?),
            },
        }),
        "upgrade_vote2" => K::UpgradeVote2(pb::UpgradeVote2 {
            view: view()?,
            old_version: wire_version(&d["old_version"]),
            new_version: wire_version(&d["new_version"]),
            decide_by: uint(d, "decide_by")?,
            new_version_hash: unhex(d, "new_version_hash")?,
            old_version_last_view: uint(d, "old_version_last_view")?,
            new_version_first_view: uint(d, "new_version_first_view")?,
            epoch: uint(d, "epoch")?,
        }),
        "checkpoint" => return Ok(None),
        other => return Err(format!("unknown kind {other:?}")),
    };
    Ok(Some(pb::EspressoMessage { kind: Some(kind) }))
}

/// One `new_protocol.json` case through the gRPC conversion: the message the service converts
/// from the client's request signs `signing_message_hex` (its vote data commits to
/// `data_commitment_hex`), and the case's demo key signature over it is `bls_sig`.
fn new_protocol_case(e: &Value, keys: &[Option<SecretKey>]) -> Outcome {
    let Some(wire) = new_protocol_wire(e)? else {
        // The retired checkpoint vote has no wire form (no node of a current revision casts
        // it): its bytes are checked against the signer's type, and stay unequal to every
        // other case's (checked by the caller).
        let data: CheckpointData =
            serde_json::from_value(e["data"].clone()).map_err(|err| format!("data: {err}"))?;
        expect_eq(
            "data commitment",
            data.commit(),
            unhex(e, "data_commitment_hex")?,
        )?;
        return expect_eq(
            "signed bytes",
            data.signing_message(uint(e, "view")?),
            unhex(e, "signing_message_hex")?,
        );
    };
    let message = espresso_message(&wire).map_err(|err| format!("converted: {}", err.message()))?;
    let signed = message.signing_message();
    expect_eq("signed bytes", signed, unhex(e, "signing_message_hex")?)?;
    match (message.data_commitment(), e.get("data_commitment_hex")) {
        (Some(got), Some(_)) => {
            expect_eq("data commitment", got, unhex(e, "data_commitment_hex")?)?
        }
        (None, None) => {}
        (got, want) => return Err(format!("data commitment {got:?}, vector {want:?}")),
    }
    if let Some(sig) = e.get("signature") {
        let sk = key(keys, index(sig, "signer_index")?)?;
        let got = sk.sign(&signed).to_tagged();
        expect_text("signature", &got, text(sig, "bls_sig")?)?;
    }
    Ok(())
}

/// A fourth harness: `$ESPRESSO_NEW_PROTOCOL_VECTORS` (default
/// `tests/vectors/espresso/new_protocol.json`, see `NEW_PROTOCOL.md`): every case of the new
/// protocol, sent as a client sends it, must sign exactly the vector's bytes.
#[test]
fn espresso_new_protocol_through_the_wire() {
    let path = std::env::var_os("ESPRESSO_NEW_PROTOCOL_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| vendored("new_protocol.json"));
    let doc = read_json(&path).unwrap_or_else(|e| panic!("{e}"));
    let keys = keys(&read_json(&vendored("vectors.json")).unwrap_or_else(|e| panic!("{e}")));
    let (mut passed, mut failed) = (0, 0);
    let mut signed_bytes = std::collections::BTreeSet::new();
    for (i, e) in doc["cases"].as_array().into_iter().flatten().enumerate() {
        let name = e["name"].as_str().unwrap_or_default();
        let distinct = unhex(e, "signing_message_hex")
            .map(|b| signed_bytes.insert(b))
            .unwrap_or(true);
        match new_protocol_case(e, &keys).and_then(|()| {
            distinct
                .then_some(())
                .ok_or_else(|| "signs the same bytes as an earlier case".to_owned())
        }) {
            Ok(()) => {
                passed += 1;
                println!("PASS cases[{i}] {name}");
            }
            Err(err) => {
                failed += 1;
                println!("FAIL cases[{i}] {name}: {err}");
            }
        }
    }
    println!("{passed} passed, {failed} failed (new protocol)");
    assert_eq!(
        passed + failed,
        count_section_entries(&doc),
        "the harness ran another number of cases than {} holds",
        path.display()
    );
    assert_eq!(failed, 0, "{failed} new-protocol vector(s) failed");
}

/// The new protocol's requests refused by the conversion, each naming the field and why.
#[test]
fn espresso_new_protocol_wire_refusals() {
    let c = |b: u8| vec![b; 32];
    let proposal = |layout: pb::LeafLayout, epoch: Option<pb::LeafEpoch>| pb::EspressoMessage {
        kind: Some(pb::espresso_message::Kind::QuorumProposal(
            pb::QuorumProposal {
                layout: layout as i32,
                view: 7,
                parent_leaf: c(1),
                block_header_commit: c(2),
                justify_qc_commit: c(3),
                upgrade_certificate_commit: None,
                with_epoch: epoch,
            },
        )),
    };
    use pb::leaf_epoch::ViewChangeEvidence as V;
    let evidence = |v: V| pb::LeafEpoch {
        next_epoch_justify_qc_commit: None,
        next_drb_result: None,
        view_change_evidence: Some(v),
    };
    let revote = |cert: Vec<u8>| pb::EspressoMessage {
        kind: Some(pb::espresso_message::Kind::RevoteRequest(
            pb::ReVoteRequest {
                view: 120,
                epoch: 3,
                cert1_commit: cert,
                timeout_cert_commit: Some(c(4)),
            },
        )),
    };
    let upgrade = |old: Option<pb::Version>| pb::EspressoMessage {
        kind: Some(pb::espresso_message::Kind::UpgradeVote2(pb::UpgradeVote2 {
            view: 150,
            old_version: old,
            new_version: Some(pb::Version { major: 0, minor: 7 }),
            decide_by: 160,
            new_version_hash: vec![1; 32],
            old_version_last_view: 165,
            new_version_first_view: 170,
            epoch: 3,
        })),
    };
    let layout = "espresso.quorum_proposal.layout";
    let cases = [
        (
            proposal(pb::LeafLayout::NewProtocol, None),
            format!("{layout}: leaf layout NewProtocol hashes every leaf with_epoch, but the proposal has none"),
        ),
        (
            proposal(
                pb::LeafLayout::NewProtocol,
                Some(evidence(V::ViewSyncCertCommit(c(5)))),
            ),
            format!(
                "{layout}: the new protocol has no view sync: its proposals carry a timeout \
                 certificate as evidence, never a view-sync certificate"
            ),
        ),
        (
            proposal(
                pb::LeafLayout::NewProtocol,
                Some(pb::LeafEpoch {
                    next_epoch_justify_qc_commit: Some(c(6)),
                    ..Default::default()
                }),
            ),
            format!(
                "{layout}: a new-protocol leaf never hashes a next-epoch QC (Leaf2::from(Proposal) \
                 drops it), but the proposal carries one"
            ),
        ),
        (
            proposal(
                pb::LeafLayout::Epochs,
                Some(evidence(V::TimeoutCertV3Commit(c(5)))),
            ),
            format!(
                "{layout}: leaf layout Epochs predates the v3 timeout certificate (\"timeout cert \
                 v3\"), but the proposal carries one"
            ),
        ),
        (
            proposal(
                pb::LeafLayout::NewProtocol,
                Some(evidence(V::TimeoutCertV3Commit(vec![5; 31]))),
            ),
            "espresso.quorum_proposal.with_epoch.timeout_cert_v3_commit: expected 32 bytes, got 31"
                .to_owned(),
        ),
        (
            revote(vec![1; 33]),
            "espresso.revote_request.cert1_commit: expected 32 bytes, got 33".to_owned(),
        ),
        (
            upgrade(None),
            "espresso.upgrade_vote2.old_version: missing".to_owned(),
        ),
        (
            {
                let mut m = upgrade(Some(pb::Version { major: 0, minor: 6 }));
                if let Some(pb::espresso_message::Kind::UpgradeVote2(u)) = &mut m.kind {
                    u.new_version_hash = vec![1; 1025];
                }
                m
            },
            "espresso.upgrade_vote2.new_version_hash: 1025 bytes, at most 1024 accepted"
                .to_owned(),
        ),
        (
            pb::EspressoMessage {
                kind: Some(pb::espresso_message::Kind::UpgradeVote(pb::UpgradeVote {
                    view: 150,
                    old_version: Some(pb::Version { major: 0, minor: 2 }),
                    new_version: Some(pb::Version { major: 0, minor: 3 }),
                    new_version_hash: vec![1; 4096],
                    v2: true,
                    ..Default::default()
                })),
            },
            "espresso.upgrade_vote.new_version_hash: 4096 bytes, at most 1024 accepted"
                .to_owned(),
        ),
        (
            upgrade(Some(pb::Version {
                major: 70_000,
                minor: 6,
            })),
            "espresso.upgrade_vote2.old_version.major: does not fit in 16 bits".to_owned(),
        ),
    ];
    for (request, want) in cases {
        let err = espresso_message(&request).unwrap_err();
        assert_eq!(format!("{:?}", err.code()), "InvalidArgument", "{want}");
        assert_eq!(err.message(), want);
    }
    // The same proposal under the new protocol's layout with v3 evidence is accepted, and signs
    // a leaf commitment that differs from the one with v2 evidence.
    let v3 = espresso_message(&proposal(
        pb::LeafLayout::NewProtocol,
        Some(evidence(V::TimeoutCertV3Commit(c(5)))),
    ))
    .unwrap();
    let v2 = espresso_message(&proposal(
        pb::LeafLayout::NewProtocol,
        Some(evidence(V::TimeoutCertCommit(c(5)))),
    ))
    .unwrap();
    assert_eq!(v3.kind(), Kind::QuorumProposal);
    assert_ne!(v3.signing_message(), v2.signing_message());
}
