//! A quorum proposal as typed fields, and HotShot's `Leaf2::commit()` over them: the 32 bytes a
//! leader's BLS key signs for a proposal.
//!
//! Owns: [`ProposedLeaf`] (the parts of HotShot's `Leaf2` that its commitment covers) and the
//! exact byte layout of that commitment. Must not: accept a leaf commitment (or any other
//! digest that is signed as is) from a client, decide whether a proposal may be signed, or sign.
//!
//! # Layout
//! Read at EspressoSystems/espresso-network `crates/hotshot/types/src/data.rs` @ `02fb8756`
//! (`impl Committable for Leaf2`, `Leaf2::from_quorum_proposal`) and EspressoSystems/commit
//! `src/lib.rs` @ `a57ae4ae` (`RawCommitmentBuilder`). With `s ‖ C0 7F` written `s·`:
//! ```text
//! Keccak256( "leaf commitment"·
//!            "view number"· u64le(view)
//!            "parent leaf commitment"· parent_leaf
//!            "block header"· block_header_commit
//!            "justify qc"· justify_qc_commit
//!            "upgrade certificate"· (upgrade_certificate_commit | u64le(0))
//!            [ "with_epoch"·                                   -- only if the leaf has an epoch
//!              "next_epoch_justify_qc"· (next_epoch_justify_qc_commit | u64le(0))
//!              [ "next_drb_result"· drb_result ]
//!              [ "timeout cert"· commit | "viewsync cert"· commit
//!                | "timeout cert v3"· commit ] ] )
//! ```
//! Neither the block payload nor the light-client `state_cert` is hashed, and neither is the
//! epoch number itself: HotShot sets `with_epoch = proposal.epoch.is_some()`.
//!
//! # Layouts per release ([`LeafLayout`])
//! `Leaf2::commit()` takes no version: which clauses it hashes depends on whether the view's
//! protocol version has epochs (`with_epoch`, from 0.3 = `EPOCH_VERSION` on) and on the HotShot
//! source the node runs. Read in espresso-network `crates/hotshot/types/src/data.rs`:
//! - `Leaf::commit()` (protocol 0.1 / 0.2, no epochs; also `Leaf2` with `with_epoch = false`):
//!   the first six lines above and nothing else ([`LeafLayout::PreEpoch`]);
//! - the first `Leaf2` with epochs (the pre-merge HotShot source, `QuorumData2` without a block
//!   number; indexed copy, commit unknown): `with_epoch`, the next-epoch QC as `optional`, the
//!   DRB result only when present, and **no** view-change evidence: the commit destructured it
//!   as `view_change_evidence: _` ([`LeafLayout::EpochsWithoutEvidence`]);
//! - `02fb8756`, `d4cc0d58`, `386be1e9` (protocol 0.3 to 0.6 in `versions`): the above plus the
//!   `"timeout cert"` / `"viewsync cert"` clause ([`LeafLayout::Epochs`]). The recorded chains
//!   v3 (header version 0.3) and v5 (0.5) match it;
//! - `935a4c59` (the new protocol's epoch-binding timeouts): a third evidence form,
//!   `"timeout cert v3"` ([`ViewChangeEvidence::TimeoutCertV3`]). A new-protocol proposal
//!   converts to a `Leaf2` with `with_epoch` set, no next-epoch QC (the conversion drops it)
//!   and at most a timeout certificate (v2 or v3) as evidence ([`LeafLayout::NewProtocol`];
//!   [`super::new_protocol::NewProtocolLeaf`] builds such a leaf from the proposal's fields).
//!
//! The DRB result was hashed the same way (`"next_drb_result"` then 32 bytes, only when
//! present; never as `optional`) in every version read. [`ProposedLeaf::commit`] is the
//! unversioned form ([`LeafLayout::Unversioned`], the default): `with_epoch` alone decides.
//!
//! # Why sub-commitments are values, and the parent leaf is a field of its own
//! The block header, certificate and DRB values are data after the `"leaf commitment"` tag inside
//! one Keccak preimage; whatever a client puts there, the result is a leaf commitment, and it
//! equals another kind's signed bytes (a vote's `Keccak("Vote"·…)`) only through a Keccak-256
//! collision. HotShot sets the parent to `justify_qc.data.leaf_commit`; taking the justify QC
//! typed instead would make the signer re-implement the QC's commitment, which hashes a bincode
//! serialization of the aggregated signature and signer bit vector (`serialize_signature2`), to
//! gain no safety: a request whose parent does not match its QC yields a signature no validator
//! accepts (validators rebuild the leaf from the proposal they receive), and it still spends the
//! view's one proposal under the equivocation rule.
//!
//! To ensure correctness:
//! - field order, tags and the `optional` encoding (absent = `u64le(0)`) follow HotShot exactly;
//! - the epoch-only fields exist only inside [`EpochFields`], so a leaf without an epoch cannot
//!   carry values HotShot would not hash;
//! - known answers from HotShot's recorded chains are checked below and in
//!   `tests/vectors/espresso/leaf2.json` (with an independent Python implementation beside it).

use super::committable::Builder;
use super::message::Commitment;
use crate::bytes::FixedBytes;
use serde::{Deserialize, Serialize};

/// Which release's `Leaf2::commit()` a quorum proposal follows. Serde names are the protocol
/// versions (`vbs` `major.minor`, `versions` crate: 0.2 `FEE_VERSION`, 0.3 `EPOCH_VERSION`,
/// 0.4 `DRB_AND_HEADER_UPGRADE_VERSION`, 0.5 `DA_UPGRADE_VERSION`, 0.6 `VID2_UPGRADE_VERSION`)
/// whose views hash that layout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LeafLayout {
    /// No layout named: `with_epoch` alone decides what is hashed (the signer's behaviour
    /// before layouts were named; every clause of [`LeafLayout::Epochs`] is accepted).
    #[default]
    #[serde(rename = "unversioned")]
    Unversioned,
    /// Protocol 0.1 and 0.2: `Leaf::commit()`, no epoch clauses; `with_epoch` is refused.
    #[serde(rename = "v0.1-v0.2", alias = "v0.1", alias = "v0.2")]
    PreEpoch,
    /// The first epoch-enabled `Leaf2::commit()`, which did not hash view-change evidence:
    /// `with_epoch` is required and `view_change_evidence` is refused.
    #[serde(rename = "epochs-without-evidence")]
    EpochsWithoutEvidence,
    /// Protocol 0.3 to 0.6 (HotShot source `02fb8756` … `386be1e9`): `with_epoch` is required;
    /// the timeout / view-sync evidence clause is hashed.
    #[serde(
        rename = "v0.3-v0.6",
        alias = "v0.3",
        alias = "v0.4",
        alias = "v0.5",
        alias = "v0.6"
    )]
    Epochs,
    /// The new consensus protocol (after its cutover, HotShot source `935a4c59` on):
    /// `Leaf2::from(Proposal)`. `with_epoch` is required, a next-epoch QC is refused (the
    /// conversion sets it to `None`), and the evidence, if any, is a timeout certificate,
    /// v2 or v3 (the new protocol has no view sync).
    #[serde(rename = "new-protocol")]
    NewProtocol,
}

/// A quorum proposal carries a field its named [`LeafLayout`] does not hash (or lacks one it
/// requires). Signing it anyway would sign bytes that are not the leaf the client described.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeafLayoutError {
    /// `with_epoch` under a pre-epoch layout.
    #[error("leaf layout {0:?} has no epoch clauses, but the proposal carries with_epoch")]
    EpochNotHashed(LeafLayout),
    /// No `with_epoch` under an epoch layout.
    #[error("leaf layout {0:?} hashes every leaf with_epoch, but the proposal has none")]
    EpochRequired(LeafLayout),
    /// View-change evidence under a layout that does not hash it.
    #[error("leaf layout {0:?} does not hash view-change evidence, but the proposal carries it")]
    EvidenceNotHashed(LeafLayout),
    /// `timeout cert v3` evidence under a layout from before it existed.
    #[error(
        "leaf layout {0:?} predates the v3 timeout certificate (\"timeout cert v3\"), but the \
         proposal carries one"
    )]
    TimeoutCertV3NotHashed(LeafLayout),
    /// A next-epoch QC in a new-protocol proposal.
    #[error(
        "a new-protocol leaf never hashes a next-epoch QC (Leaf2::from(Proposal) drops it), but \
         the proposal carries one"
    )]
    NextEpochQcNotHashed,
    /// A view-sync certificate in a new-protocol proposal.
    #[error(
        "the new protocol has no view sync: its proposals carry a timeout certificate as \
         evidence, never a view-sync certificate"
    )]
    ViewSyncInNewProtocol,
}

impl LeafLayout {
    /// Whether `leaf` has exactly the fields this layout hashes.
    pub fn check(self, leaf: &ProposedLeaf) -> Result<(), LeafLayoutError> {
        use ViewChangeEvidence::{TimeoutCertV3, ViewSyncCert};
        let Some(e) = &leaf.with_epoch else {
            return match self {
                LeafLayout::Unversioned | LeafLayout::PreEpoch => Ok(()),
                _ => Err(LeafLayoutError::EpochRequired(self)),
            };
        };
        let evidence = e.view_change_evidence.as_ref();
        match self {
            LeafLayout::Unversioned => Ok(()),
            LeafLayout::PreEpoch => Err(LeafLayoutError::EpochNotHashed(self)),
            LeafLayout::EpochsWithoutEvidence if evidence.is_some() => {
                Err(LeafLayoutError::EvidenceNotHashed(self))
            }
            LeafLayout::Epochs if matches!(evidence, Some(TimeoutCertV3(_))) => {
                Err(LeafLayoutError::TimeoutCertV3NotHashed(self))
            }
            LeafLayout::EpochsWithoutEvidence | LeafLayout::Epochs => Ok(()),
            LeafLayout::NewProtocol if e.next_epoch_justify_qc_commit.is_some() => {
                Err(LeafLayoutError::NextEpochQcNotHashed)
            }
            LeafLayout::NewProtocol if matches!(evidence, Some(ViewSyncCert(_))) => {
                Err(LeafLayoutError::ViewSyncInNewProtocol)
            }
            LeafLayout::NewProtocol => Ok(()),
        }
    }
}

/// A quorum proposal that names the layout its leaf commitment follows. Deserializing one
/// checks the leaf against the layout ([`LeafLayout::check`]), so a value of this type always
/// has exactly the fields its layout hashes. In JSON: the leaf's own fields (as
/// [`ProposedLeaf`]) and `layout`, which defaults to [`LeafLayout::Unversioned`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VersionedLeaf {
    /// The layout named.
    pub layout: LeafLayout,
    /// The leaf.
    #[serde(flatten)]
    leaf: ProposedLeaf,
}

impl VersionedLeaf {
    /// `leaf` under `layout`, refused if the leaf carries a field the layout does not hash.
    pub fn new(layout: LeafLayout, leaf: ProposedLeaf) -> Result<Self, LeafLayoutError> {
        layout.check(&leaf)?;
        Ok(VersionedLeaf { layout, leaf })
    }

    /// `leaf` under `layout`, for a caller whose types already guarantee that the leaf has
    /// the layout's fields (a [`super::new_protocol::NewProtocolLeaf`]'s conversion).
    pub(super) fn from_checked(layout: LeafLayout, leaf: ProposedLeaf) -> Self {
        debug_assert_eq!(layout.check(&leaf), Ok(()));
        VersionedLeaf { layout, leaf }
    }

    /// The leaf (read-only: changing it could break the layout check).
    pub fn leaf(&self) -> &ProposedLeaf {
        &self.leaf
    }

    /// The leaf commitment under the named layout: the bytes the proposal's signature covers.
    pub fn commit(&self) -> [u8; 32] {
        // The layout was checked on construction; every layout hashes exactly the fields it
        // accepts, so the unversioned builder gives that layout's bytes.
        self.leaf.commit()
    }
}

impl<'de> Deserialize<'de> for VersionedLeaf {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// The wire form: `ProposedLeaf`'s fields plus `layout` (`flatten` cannot be combined
        /// with `deny_unknown_fields`, so the fields are listed here).
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Wire {
            #[serde(default)]
            layout: LeafLayout,
            view: u64,
            parent_leaf: Commitment,
            block_header_commit: Commitment,
            justify_qc_commit: Commitment,
            #[serde(default)]
            upgrade_certificate_commit: Option<Commitment>,
            #[serde(default)]
            with_epoch: Option<EpochFields>,
        }
        let w = Wire::deserialize(d)?;
        let leaf = ProposedLeaf {
            view: w.view,
            parent_leaf: w.parent_leaf,
            block_header_commit: w.block_header_commit,
            justify_qc_commit: w.justify_qc_commit,
            upgrade_certificate_commit: w.upgrade_certificate_commit,
            with_epoch: w.with_epoch,
        };
        VersionedLeaf::new(w.layout, leaf).map_err(serde::de::Error::custom)
    }
}

/// HotShot's `DrbResult`: 32 bytes.
pub type DrbResult = FixedBytes<32>;

/// A quorum proposal, as the parts of HotShot's `Leaf2` that `Leaf2::commit()` covers
/// (`Leaf2::from_quorum_proposal`). Every digest here is data inside the leaf's preimage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProposedLeaf {
    /// View of the proposal (`view_number`).
    pub view: u64,
    /// The parent leaf's commitment: `justify_qc.data.leaf_commit`.
    pub parent_leaf: Commitment,
    /// The block header's commitment (`Header::commit()`, the `BLOCK~` hash).
    pub block_header_commit: Commitment,
    /// The justify QC's commitment (`QuorumCertificate2::commit()`).
    pub justify_qc_commit: Commitment,
    /// The attached upgrade certificate's commitment, if any.
    #[serde(default)]
    pub upgrade_certificate_commit: Option<Commitment>,
    /// Present exactly when the proposal has an epoch (HotShot's `with_epoch`).
    #[serde(default)]
    pub with_epoch: Option<EpochFields>,
}

/// The fields `Leaf2::commit()` hashes only for a leaf with an epoch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpochFields {
    /// The next epoch's justify QC commitment (`NextEpochQuorumCertificate2::commit()`), if any.
    #[serde(default)]
    pub next_epoch_justify_qc_commit: Option<Commitment>,
    /// The next epoch's DRB result, if any (the last block of an epoch carries it).
    #[serde(default)]
    pub next_drb_result: Option<DrbResult>,
    /// The timeout or view-sync certificate justifying a view change, if any.
    #[serde(default)]
    pub view_change_evidence: Option<ViewChangeEvidence>,
}

/// HotShot's `ViewChangeEvidence2`, as the certificate's commitment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ViewChangeEvidence {
    /// `TimeoutCertificate2::commit()`.
    TimeoutCert(Commitment),
    /// `ViewSyncFinalizeCertificate2::commit()`.
    ViewSyncCert(Commitment),
    /// `TimeoutCertificate3::commit()` (the new protocol's epoch-binding timeouts).
    TimeoutCertV3(Commitment),
}

impl ProposedLeaf {
    /// HotShot's `Leaf2::commit()` for this leaf: the bytes the proposal's signature covers.
    pub fn commit(&self) -> [u8; 32] {
        self.builder().finalize()
    }

    /// The leaf commitment under a named layout, refused (with the reason) if the leaf
    /// carries a field that layout does not hash or lacks one it requires.
    pub fn commit_as(&self, layout: LeafLayout) -> Result<[u8; 32], LeafLayoutError> {
        layout.check(self)?;
        Ok(self.commit())
    }

    /// The Keccak preimage of [`ProposedLeaf::commit`] (for tests that reason about it).
    #[cfg(test)]
    pub(super) fn preimage(&self) -> Vec<u8> {
        self.builder().into_preimage()
    }

    fn builder(&self) -> Builder {
        let head = leaf_head(
            self.view,
            &self.parent_leaf,
            &self.block_header_commit,
            &self.justify_qc_commit,
            self.upgrade_certificate_commit.as_ref(),
        );
        let Some(epoch) = &self.with_epoch else {
            return head;
        };
        let evidence = epoch.view_change_evidence.as_ref().map(|e| match e {
            ViewChangeEvidence::TimeoutCert(c) => ("timeout cert", c),
            ViewChangeEvidence::ViewSyncCert(c) => ("viewsync cert", c),
            ViewChangeEvidence::TimeoutCertV3(c) => ("timeout cert v3", c),
        });
        epoch_tail(
            head,
            epoch.next_epoch_justify_qc_commit.as_ref(),
            epoch.next_drb_result.as_ref(),
            evidence,
        )
    }
}

/// The clauses every `Leaf` / `Leaf2` commitment starts with.
fn leaf_head(
    view: u64,
    parent_leaf: &Commitment,
    block_header_commit: &Commitment,
    justify_qc_commit: &Commitment,
    upgrade_certificate_commit: Option<&Commitment>,
) -> Builder {
    Builder::new("leaf commitment")
        .u64_field("view number", view)
        .field("parent leaf commitment", parent_leaf)
        .field("block header", block_header_commit)
        .field("justify qc", justify_qc_commit)
        .optional("upgrade certificate", upgrade_certificate_commit)
}

/// The clauses a `Leaf2` with `with_epoch` adds; `evidence` is the clause name and the
/// certificate's commitment.
fn epoch_tail(
    head: Builder,
    next_epoch_justify_qc_commit: Option<&Commitment>,
    next_drb_result: Option<&DrbResult>,
    evidence: Option<(&str, &Commitment)>,
) -> Builder {
    let mut b = head
        .constant_str("with_epoch")
        .optional("next_epoch_justify_qc", next_epoch_justify_qc_commit);
    if let Some(drb) = next_drb_result {
        b = b.constant_str("next_drb_result").fixed_size_bytes(&drb.0);
    }
    if let Some((name, c)) = evidence {
        b = b.field(name, c);
    }
    b
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::protection::espresso::message::commitment_from_tagged;

    fn c(text: &str) -> Commitment {
        commitment_from_tagged(text).unwrap()
    }

    /// Block hashes are tagged `BLOCK~` upstream.
    fn block(text: &str) -> Commitment {
        let bytes = crate::scheme::bn254::tagged::decode(text, "BLOCK").unwrap();
        FixedBytes::from_slice(&bytes).unwrap()
    }

    fn h(text: &str) -> Commitment {
        FixedBytes::from_hex(text).unwrap()
    }

    /// Leaves recorded from HotShot, whose commitments HotShot computed (the `qc.data.leaf_commit`
    /// of the same record): espresso-network `data/legacy-chains/v5/blocks.json` @ `988a9712`
    /// and `data/legacy-chains/v2-v3/blocks.json` @ `70ed399e`. The block header commitment is the
    /// record's `block.hash`; the QC and upgrade-certificate commitments were computed from the
    /// recorded certificates by `tests/vectors/espresso/leaf2_ref.py` (an independent
    /// implementation); a wrong one could not make the leaf commitment match.
    #[test]
    fn known_answers_from_recorded_hotshot_leaves() {
        // v5 view 9: epoch transition, next-epoch QC and a DRB result.
        let v9 = ProposedLeaf {
            view: 9,
            parent_leaf: c("COMMIT~7lcFGakUYy5VPuEXz1QDNmx6UGLBhlRV_GqaP63agE8d"),
            block_header_commit: block("BLOCK~6nVUdGQtmBqJbW_gb6p43HUI5afllbD9g-4bjwr_E5ff"),
            justify_qc_commit: h(
                "36de4108c6ed6424bea4ab4a76754097899b67c41596e26f5a72df69f776a021",
            ),
            upgrade_certificate_commit: None,
            with_epoch: Some(EpochFields {
                next_epoch_justify_qc_commit: Some(h(
                    "36de4108c6ed6424bea4ab4a76754097899b67c41596e26f5a72df69f776a021",
                )),
                next_drb_result: Some(FixedBytes([0; 32])),
                view_change_evidence: None,
            }),
        };
        assert_eq!(
            v9.commit(),
            c("COMMIT~qtKYGuFzYwkuipddqZ22vslHCWwLjGwCGvc3d3-yhgSV").0
        );
        // v2-v3 view 253: no epoch, an upgrade certificate.
        let v253 = ProposedLeaf {
            view: 253,
            parent_leaf: c("COMMIT~uAlNrvxaIeHOIRJpWaGaCAtfvUZZCKFpqCCkGQNkX8Y_"),
            block_header_commit: block("BLOCK~9Pm957sW7t4KFfg8rwGeI0Bj2U7F6zmOWT-YpNSjOM7x"),
            justify_qc_commit: h(
                "1f770d0fdd33d5b3379f3a22d33cb0b9c09f0c0f3513fc8a245c422266c61bf1",
            ),
            upgrade_certificate_commit: Some(h(
                "5b65a8cd90447773b30aab9b9e80c1eceffc9508c3c29ad7a4c38e5b1c03cd7d",
            )),
            with_epoch: None,
        };
        assert_eq!(
            v253.commit(),
            c("COMMIT~cHq2y6ggHsWfh4ETXurkMcOZigT4yzr2q-XesdXdCsM1").0
        );
    }

    const LEAF2_VECTORS: &str = include_str!("../../../../tests/vectors/espresso/leaf2.json");

    fn layout(v: &serde_json::Value) -> LeafLayout {
        serde_json::from_value(v.clone()).unwrap()
    }

    /// Every case of `leaf2.json` (HotShot-recorded leaves of protocol 0.2, 0.3 and 0.5, and
    /// derived shapes) under the layout it names, and refused by each layout it must not pass.
    #[test]
    fn leaf2_vectors_under_their_layouts() {
        let doc: serde_json::Value = serde_json::from_str(LEAF2_VECTORS).unwrap();
        let cases = doc["cases"].as_array().unwrap();
        let mut versions = std::collections::BTreeSet::new();
        for case in cases {
            let name = case["name"].as_str().unwrap();
            let proposal = &case["message"]["quorum_proposal"];
            let leaf: ProposedLeaf = serde_json::from_value(proposal.clone()).unwrap();
            let want = h(case["leaf_commit_hex"].as_str().unwrap()).0;
            let named = layout(&case["layout"]);
            assert_eq!(leaf.commit_as(named), Ok(want), "{name}");
            assert_eq!(leaf.commit_as(LeafLayout::Unversioned), Ok(want), "{name}");
            for refusing in case["layouts_refusing"].as_array().unwrap() {
                assert!(
                    leaf.commit_as(layout(refusing)).is_err(),
                    "{name}: {refusing}"
                );
            }
            // The same request naming its layout, as JSON.
            let mut wire = proposal.clone();
            wire["layout"] = case["layout"].clone();
            let versioned: VersionedLeaf = serde_json::from_value(wire).unwrap();
            assert_eq!(
                (versioned.layout, versioned.commit()),
                (named, want),
                "{name}"
            );
            assert_eq!(versioned.leaf(), &leaf);
            if let Some(v) = case["protocol_version"].as_str() {
                let by_version = layout(&serde_json::json!(format!("v{v}")));
                assert_eq!(by_version, named, "{name}: the version's serde alias");
                versions.insert(v.to_string());
            }
        }
        assert_eq!(
            versions.len(),
            3,
            "recorded leaves of 0.2, 0.3 and 0.5: {versions:?}"
        );
    }

    #[test]
    fn layouts_refuse_fields_they_do_not_hash() {
        let plain = ProposedLeaf {
            view: 5,
            parent_leaf: FixedBytes([1; 32]),
            block_header_commit: FixedBytes([2; 32]),
            justify_qc_commit: FixedBytes([3; 32]),
            upgrade_certificate_commit: None,
            with_epoch: None,
        };
        let epoch = ProposedLeaf {
            with_epoch: Some(EpochFields::default()),
            ..plain.clone()
        };
        let evidence = ProposedLeaf {
            with_epoch: Some(EpochFields {
                view_change_evidence: Some(ViewChangeEvidence::TimeoutCert(FixedBytes([4; 32]))),
                ..EpochFields::default()
            }),
            ..plain.clone()
        };
        use LeafLayout::*;
        use LeafLayoutError::*;
        assert_eq!(plain.commit_as(PreEpoch), Ok(plain.commit()));
        assert_eq!(plain.commit_as(Epochs), Err(EpochRequired(Epochs)));
        assert_eq!(
            plain.commit_as(EpochsWithoutEvidence),
            Err(EpochRequired(EpochsWithoutEvidence))
        );
        assert_eq!(epoch.commit_as(PreEpoch), Err(EpochNotHashed(PreEpoch)));
        assert_eq!(epoch.commit_as(EpochsWithoutEvidence), Ok(epoch.commit()));
        assert_eq!(epoch.commit_as(Epochs), Ok(epoch.commit()));
        assert_eq!(
            evidence.commit_as(EpochsWithoutEvidence),
            Err(EvidenceNotHashed(EpochsWithoutEvidence))
        );
        assert_eq!(evidence.commit_as(Epochs), Ok(evidence.commit()));
        for leaf in [&plain, &epoch, &evidence] {
            assert_eq!(leaf.commit_as(Unversioned), Ok(leaf.commit()));
        }
        let err = evidence.commit_as(EpochsWithoutEvidence).unwrap_err();
        assert!(err
            .to_string()
            .contains("does not hash view-change evidence"));

        // The new protocol: with_epoch required, a timeout certificate (v2 or v3) as the only
        // evidence, no next-epoch QC; the v3 evidence is unknown to the 0.3-0.6 layout.
        let with = |e: EpochFields| ProposedLeaf {
            with_epoch: Some(e),
            ..plain.clone()
        };
        let v3 = with(EpochFields {
            view_change_evidence: Some(ViewChangeEvidence::TimeoutCertV3(FixedBytes([4; 32]))),
            ..EpochFields::default()
        });
        let view_sync = with(EpochFields {
            view_change_evidence: Some(ViewChangeEvidence::ViewSyncCert(FixedBytes([4; 32]))),
            ..EpochFields::default()
        });
        let next_qc = with(EpochFields {
            next_epoch_justify_qc_commit: Some(FixedBytes([5; 32])),
            ..EpochFields::default()
        });
        assert_eq!(
            plain.commit_as(NewProtocol),
            Err(EpochRequired(NewProtocol))
        );
        for leaf in [&epoch, &evidence, &v3] {
            assert_eq!(leaf.commit_as(NewProtocol), Ok(leaf.commit()));
        }
        assert_eq!(view_sync.commit_as(NewProtocol), Err(ViewSyncInNewProtocol));
        assert_eq!(next_qc.commit_as(NewProtocol), Err(NextEpochQcNotHashed));
        assert_eq!(v3.commit_as(Epochs), Err(TimeoutCertV3NotHashed(Epochs)));
        assert_eq!(
            v3.commit_as(EpochsWithoutEvidence),
            Err(EvidenceNotHashed(EpochsWithoutEvidence))
        );
        assert_eq!(v3.commit_as(Unversioned), Ok(v3.commit()));
        assert_eq!(
            TimeoutCertV3NotHashed(Epochs).to_string(),
            "leaf layout Epochs predates the v3 timeout certificate (\"timeout cert v3\"), but \
             the proposal carries one"
        );
        // The v3 clause is its own tag: the same certificate as v2 evidence hashes otherwise.
        assert_ne!(v3.commit(), evidence.commit());
    }

    #[test]
    fn versioned_leaf_serde() {
        let leaf = serde_json::json!({
            "view": 5,
            "parent_leaf": format!("0x{}", "01".repeat(32)),
            "block_header_commit": format!("0x{}", "02".repeat(32)),
            "justify_qc_commit": format!("0x{}", "03".repeat(32)),
            "with_epoch": {"view_change_evidence": {"view_sync_cert": format!("0x{}", "04".repeat(32))}},
        });
        // No layout named: today's behaviour.
        let v: VersionedLeaf = serde_json::from_value(leaf.clone()).unwrap();
        assert_eq!(v.layout, LeafLayout::Unversioned);
        let plain: ProposedLeaf = serde_json::from_value(leaf.clone()).unwrap();
        assert_eq!(v.commit(), plain.commit());
        // Names and aliases.
        for (name, want) in [
            ("v0.3-v0.6", LeafLayout::Epochs),
            ("v0.4", LeafLayout::Epochs),
            ("v0.6", LeafLayout::Epochs),
            ("v0.1-v0.2", LeafLayout::PreEpoch),
            ("v0.1", LeafLayout::PreEpoch),
            ("epochs-without-evidence", LeafLayout::EpochsWithoutEvidence),
            ("unversioned", LeafLayout::Unversioned),
        ] {
            assert_eq!(layout(&serde_json::json!(name)), want, "{name}");
        }
        assert!(serde_json::from_value::<LeafLayout>(serde_json::json!("v0.7")).is_err());
        let mut named = leaf.clone();
        named["layout"] = serde_json::json!("v0.5");
        let v: VersionedLeaf = serde_json::from_value(named.clone()).unwrap();
        assert_eq!(v.layout, LeafLayout::Epochs);
        // Serialized with its layout's canonical name, and read back the same.
        let back: VersionedLeaf =
            serde_json::from_value(serde_json::to_value(&v).unwrap()).unwrap();
        assert_eq!(back, v);
        named["layout"] = serde_json::json!("epochs-without-evidence");
        let err = serde_json::from_value::<VersionedLeaf>(named.clone()).unwrap_err();
        assert!(err.to_string().contains("view-change evidence"), "{err}");
        named["layout"] = serde_json::json!("v0.2");
        assert!(serde_json::from_value::<VersionedLeaf>(named.clone()).is_err());
        named["layout"] = serde_json::json!("v0.3");
        named["unknown"] = serde_json::json!(1);
        assert!(serde_json::from_value::<VersionedLeaf>(named).is_err());
    }

    #[test]
    fn preimage_layout() {
        let leaf = ProposedLeaf {
            view: 0x0102,
            parent_leaf: FixedBytes([0xAA; 32]),
            block_header_commit: FixedBytes([0xBB; 32]),
            justify_qc_commit: FixedBytes([0xCC; 32]),
            upgrade_certificate_commit: None,
            with_epoch: None,
        };
        let tag = |s: &str| [s.as_bytes(), &[0xC0, 0x7F]].concat();
        let mut want = [
            tag("leaf commitment"),
            tag("view number"),
            0x0102u64.to_le_bytes().to_vec(),
            tag("parent leaf commitment"),
            vec![0xAA; 32],
            tag("block header"),
            vec![0xBB; 32],
            tag("justify qc"),
            vec![0xCC; 32],
            tag("upgrade certificate"),
            vec![0; 8],
        ]
        .concat();
        assert_eq!(leaf.preimage(), want);
        let with = ProposedLeaf {
            upgrade_certificate_commit: Some(FixedBytes([0xDD; 32])),
            with_epoch: Some(EpochFields {
                next_epoch_justify_qc_commit: None,
                next_drb_result: Some(FixedBytes([0xEE; 32])),
                view_change_evidence: Some(ViewChangeEvidence::TimeoutCert(FixedBytes([0x11; 32]))),
            }),
            ..leaf
        };
        want.truncate(want.len() - 8);
        let want = [
            want,
            vec![0xDD; 32],
            tag("with_epoch"),
            tag("next_epoch_justify_qc"),
            vec![0; 8],
            tag("next_drb_result"),
            vec![0xEE; 32],
            tag("timeout cert"),
            vec![0x11; 32],
        ]
        .concat();
        assert_eq!(with.preimage(), want);
    }
}
