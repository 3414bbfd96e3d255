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
//!              [ "timeout cert"· commit | "viewsync cert"· commit ] ] )
//! ```
//! Neither the block payload nor the light-client `state_cert` is hashed, and neither is the
//! epoch number itself: HotShot sets `with_epoch = proposal.epoch.is_some()`.
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
}

impl ProposedLeaf {
    /// HotShot's `Leaf2::commit()` for this leaf: the bytes the proposal's signature covers.
    pub fn commit(&self) -> [u8; 32] {
        self.builder().finalize()
    }

    /// The Keccak preimage of [`ProposedLeaf::commit`] (for tests that reason about it).
    #[cfg(test)]
    pub(super) fn preimage(&self) -> Vec<u8> {
        self.builder().into_preimage()
    }

    fn builder(&self) -> Builder {
        let mut b = Builder::new("leaf commitment")
            .u64_field("view number", self.view)
            .field("parent leaf commitment", &self.parent_leaf)
            .field("block header", &self.block_header_commit)
            .field("justify qc", &self.justify_qc_commit)
            .optional(
                "upgrade certificate",
                self.upgrade_certificate_commit.as_ref(),
            );
        if let Some(epoch) = &self.with_epoch {
            b = b.constant_str("with_epoch").optional(
                "next_epoch_justify_qc",
                epoch.next_epoch_justify_qc_commit.as_ref(),
            );
            if let Some(drb) = &epoch.next_drb_result {
                b = b.constant_str("next_drb_result").fixed_size_bytes(&drb.0);
            }
            match &epoch.view_change_evidence {
                Some(ViewChangeEvidence::TimeoutCert(c)) => b = b.field("timeout cert", c),
                Some(ViewChangeEvidence::ViewSyncCert(c)) => b = b.field("viewsync cert", c),
                None => {}
            }
        }
        b
    }
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
