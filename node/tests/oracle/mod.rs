//! An independent double-sign oracle for adversarial tests.
//!
//! It knows only what clients asked, what they received and the cluster's public keys. It
//! computes every message's digest itself (its own small implementations of the Ethereum
//! signing root and of HotShot's committable layouts, written from the specs and
//! shared/notes, not the signer's code), verifies every received signature, maps each
//! signature to *every* requested message whose digest it covers (whatever kind or key it was
//! asked for), and reports any two meanings one public key signed that conflict:
//! - eth2: two blocks at one slot; two attestations for one target; a surround either way;
//! - espresso: two messages of one kind at one position (view, or view-sync round and relay).
//!
//! Must not: call the signer's digest or rule code; the whole point is a second opinion.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod requests;

use sha2::{Digest as _, Sha256};
use sha3::Keccak256;
use std::collections::{BTreeMap, BTreeSet};

/// What a signed digest can stand for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Meaning {
    /// An eth2 block proposal at a slot.
    Block { slot: u64 },
    /// An eth2 attestation (FFG source and target).
    Attestation { source: u64, target: u64 },
    /// An eth2 message that slashing rules do not cover (randao, selection proofs, …).
    Eth2Other { kind: &'static str },
    /// An espresso request or network authentication: signed freely, never a conflict.
    Request { kind: &'static str },
    /// An espresso message of a kind at a position.
    Espresso {
        kind: &'static str,
        view: u64,
        relay: u64,
    },
}

/// Which scheme a meaning is signed with (a digest only stands for meanings of its scheme).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scheme {
    Bls12381,
    Bn254,
}

impl Meaning {
    fn scheme(&self) -> Scheme {
        match self {
            Meaning::Espresso { .. } | Meaning::Request { .. } => Scheme::Bn254,
            _ => Scheme::Bls12381,
        }
    }

    /// Whether signing both `(self, d1)` and `(other, d2)` with one key is a double sign.
    fn conflicts(&self, d1: &[u8; 32], other: &Meaning, d2: &[u8; 32]) -> bool {
        if d1 == d2 {
            return false;
        }
        match (self, other) {
            (Meaning::Block { slot: a }, Meaning::Block { slot: b }) => a == b,
            (
                Meaning::Attestation {
                    source: s1,
                    target: t1,
                },
                Meaning::Attestation {
                    source: s2,
                    target: t2,
                },
            ) => t1 == t2 || (s1 < s2 && t2 < t1) || (s2 < s1 && t1 < t2),
            (
                Meaning::Espresso {
                    kind: k1,
                    view: v1,
                    relay: r1,
                },
                Meaning::Espresso {
                    kind: k2,
                    view: v2,
                    relay: r2,
                },
            ) => k1 == k2 && v1 == v2 && r1 == r2,
            _ => false,
        }
    }
}

/// One signature a client received, already verified.
#[derive(Clone, Debug)]
struct Received {
    public_key: Vec<u8>,
    digest: [u8; 32],
    /// What the signed request claimed to be. For a request whose digest the oracle computed
    /// this is also in the universe; for a client-chosen root (a raw-root block) it is only
    /// the client's claim, and it counts only for a signature on that very request: the
    /// same digest signed as what it really is (an attestation) is not a block.
    claimed: Meaning,
}

/// The oracle's record of a run.
#[derive(Default)]
pub struct Oracle {
    /// Public keys of the cluster, by scheme.
    keys: Vec<(Scheme, Vec<u8>)>,
    /// Every requested message: digest → meanings.
    universe: BTreeMap<[u8; 32], BTreeSet<Meaning>>,
    received: Vec<Received>,
}

impl Oracle {
    /// An oracle for a cluster with these public keys.
    pub fn new(keys: Vec<(Scheme, Vec<u8>)>) -> Self {
        Oracle {
            keys,
            ..Oracle::default()
        }
    }

    /// A client asked for `meaning` whose digest (computed by the oracle from the meaning's
    /// fields) is `digest`. A client-chosen digest is not announced: see `received`.
    pub fn asked(&mut self, meaning: Meaning, digest: [u8; 32]) {
        self.universe.entry(digest).or_default().insert(meaning);
    }

    /// A client received `signature` on `signed_message` in answer to a request for
    /// `claimed` whose digest is `expected_digest`. The signature must verify under one of
    /// the cluster's public keys, and the signer must have signed the requested message.
    pub fn received(
        &mut self,
        signature: &[u8],
        signed_message: &[u8],
        expected_digest: [u8; 32],
        claimed: &Meaning,
    ) {
        self.received_bytes(
            signature,
            signed_message,
            &expected_digest,
            expected_digest,
            claimed,
        );
    }

    /// `received` for a message whose signed bytes (`expected`, built by the oracle) need not
    /// be 32 bytes: `digest` is its identifier (`requests::Built::digest`).
    pub fn received_bytes(
        &mut self,
        signature: &[u8],
        signed_message: &[u8],
        expected: &[u8],
        expected_digest: [u8; 32],
        claimed: &Meaning,
    ) {
        assert_eq!(
            signed_message, expected,
            "the signer signed other bytes than the ones the request stands for"
        );
        let signers: Vec<Vec<u8>> = self
            .keys
            .iter()
            .filter(|(scheme, pk)| verify(*scheme, pk, signed_message, signature))
            .map(|(_, pk)| pk.clone())
            .collect();
        assert_eq!(
            signers.len(),
            1,
            "a received signature must verify under exactly one cluster key"
        );
        self.received.push(Received {
            public_key: signers[0].clone(),
            digest: expected_digest,
            claimed: claimed.clone(),
        });
    }

    /// Whether `signature` verifies over `message` under any cluster key.
    pub fn verifies_as(&self, signature: &[u8], message: &[u8]) -> bool {
        self.keys
            .iter()
            .any(|(scheme, pk)| verify(*scheme, pk, message, signature))
    }

    /// How many signatures were received.
    pub fn signatures(&self) -> usize {
        self.received.len()
    }

    /// Every conflicting pair: (public key, meaning 1, meaning 2), described.
    pub fn conflicts(&self) -> Vec<String> {
        let mut by_key: BTreeMap<&[u8], Vec<&Received>> = BTreeMap::new();
        for r in &self.received {
            by_key.entry(&r.public_key).or_default().push(r);
        }
        let scheme_of = |pk: &[u8]| {
            self.keys
                .iter()
                .find(|(_, k)| k == pk)
                .map(|(s, _)| *s)
                .unwrap()
        };
        let mut found = Vec::new();
        for (pk, received) in by_key {
            let scheme = scheme_of(pk);
            let meanings: BTreeSet<(&Meaning, &[u8; 32])> = received
                .iter()
                .flat_map(|r| {
                    self.universe
                        .get(&r.digest)
                        .into_iter()
                        .flatten()
                        .chain(std::iter::once(&r.claimed))
                        .filter(|m| m.scheme() == scheme)
                        .map(move |m| (m, &r.digest))
                })
                .collect();
            let meanings: Vec<_> = meanings.into_iter().collect();
            for (i, (m1, d1)) in meanings.iter().enumerate() {
                for (m2, d2) in &meanings[i + 1..] {
                    if m1.conflicts(d1, m2, d2) {
                        found.push(format!(
                            "key {}…: {m1:?} ({}…) and {m2:?} ({}…)",
                            hex::encode(&pk[..6]),
                            hex::encode(&d1[..6]),
                            hex::encode(&d2[..6])
                        ));
                    }
                }
            }
        }
        found
    }
}

fn verify(scheme: Scheme, pk: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    match scheme {
        Scheme::Bls12381 => signer_node::scheme::bls12_381::verify_bytes(pk, msg, sig),
        Scheme::Bn254 => {
            let (Ok(pk), Ok(sig)) = (
                signer_node::scheme::bn254::PublicKey::from_bytes(pk),
                signer_node::scheme::bn254::Signature::from_bytes(sig),
            ) else {
                return false;
            };
            sig.verify(&pk, msg)
        }
    }
}

// ---- eth2: SSZ roots of the fixed-size containers, from the consensus specs ----------------

fn sha(a: &[u8], b: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(a);
    h.update(b);
    h.finalize().into()
}

fn chunk(v: u64) -> [u8; 32] {
    let mut c = [0u8; 32];
    c[..8].copy_from_slice(&v.to_le_bytes());
    c
}

/// Merkle root of up to 8 chunks (zero-padded to 8 leaves).
fn root8(chunks: &[[u8; 32]]) -> [u8; 32] {
    let mut leaves = [[0u8; 32]; 8];
    leaves[..chunks.len()].copy_from_slice(chunks);
    let l1: Vec<[u8; 32]> = leaves.chunks(2).map(|p| sha(&p[0], &p[1])).collect();
    let l2: Vec<[u8; 32]> = l1.chunks(2).map(|p| sha(&p[0], &p[1])).collect();
    sha(&l2[0], &l2[1])
}

/// `compute_domain(domain_type, version, gvr)`.
pub fn domain(domain_type: u32, version: [u8; 4], gvr: [u8; 32]) -> [u8; 32] {
    let mut v = [0u8; 32];
    v[..4].copy_from_slice(&version);
    let fork_data_root = sha(&v, &gvr);
    let mut d = [0u8; 32];
    d[..4].copy_from_slice(&domain_type.to_le_bytes());
    d[4..].copy_from_slice(&fork_data_root[..28]);
    d
}

/// `compute_signing_root(object_root, domain)`.
pub fn signing_root(object_root: [u8; 32], domain: [u8; 32]) -> [u8; 32] {
    sha(&object_root, &domain)
}

/// `hash_tree_root(uint64)`: the value in the first 8 bytes of one chunk.
pub fn uint64_root(v: u64) -> [u8; 32] {
    chunk(v)
}

/// `hash_tree_root(BeaconBlockHeader)`.
pub fn header_root(
    slot: u64,
    proposer: u64,
    parent: [u8; 32],
    state: [u8; 32],
    body: [u8; 32],
) -> [u8; 32] {
    root8(&[chunk(slot), chunk(proposer), parent, state, body])
}

/// `hash_tree_root(AttestationData)`.
pub fn attestation_data_root(
    slot: u64,
    index: u64,
    block_root: [u8; 32],
    source: (u64, [u8; 32]),
    target: (u64, [u8; 32]),
) -> [u8; 32] {
    let checkpoint = |(epoch, root): (u64, [u8; 32])| sha(&chunk(epoch), &root);
    root8(&[
        chunk(slot),
        chunk(index),
        block_root,
        checkpoint(source),
        checkpoint(target),
    ])
}

// ---- espresso: HotShot's committable layouts (shared/notes/hotshot-signing.md) ------------

/// `RawCommitmentBuilder`: Keccak256 over `tag ‖ C0 7F` and the appended fields.
pub struct Commit(Vec<u8>);

impl Commit {
    pub fn new(tag: &str) -> Self {
        let mut b = tag.as_bytes().to_vec();
        b.extend_from_slice(&[0xC0, 0x7F]);
        Commit(b)
    }
    pub fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn var(mut self, b: &[u8]) -> Self {
        self = self.u64(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }
    pub fn fixed(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
    pub fn u64_field(self, name: &str, v: u64) -> Self {
        self.fixed(name.as_bytes()).fixed(&[0xC0, 0x7F]).u64(v)
    }
    pub fn field(self, name: &str, commit: &[u8; 32]) -> Self {
        self.fixed(name.as_bytes())
            .fixed(&[0xC0, 0x7F])
            .fixed(commit)
    }
    pub fn optional(self, name: &str, commit: Option<&[u8; 32]>) -> Self {
        match commit {
            Some(c) => self.field(name, c),
            None => self.u64_field(name, 0),
        }
    }
    pub fn finish(self) -> [u8; 32] {
        Keccak256::digest(&self.0).into()
    }
}

/// `VersionedVoteData{data, view}.commit()`: what every vote signs.
pub fn vote(data: [u8; 32], view: u64) -> [u8; 32] {
    Commit::new("Vote").var(&data).u64(view).finish()
}

/// `QuorumData{leaf_commit}.commit()` (v1: no epoch, no block number).
pub fn quorum_data(leaf: [u8; 32]) -> [u8; 32] {
    Commit::new("Quorum data").var(&leaf).finish()
}

/// `DaData{payload_commit}.commit()` (v1).
pub fn da_data(payload: [u8; 32]) -> [u8; 32] {
    Commit::new("DA data").var(&payload).finish()
}

/// `TimeoutData{view}.commit()`.
pub fn timeout_data(view: u64) -> [u8; 32] {
    Commit::new("Timeout data").u64(view).finish()
}

/// The new protocol's `Vote2Data{leaf_commit, epoch, block_number}.commit()`: its fields,
/// then the constant "Vote2" (HotShot's new-protocol message module).
pub fn vote2_data(leaf: [u8; 32], epoch: u64, block_number: u64) -> [u8; 32] {
    Commit::new("Vote2Data")
        .var(&leaf)
        .u64(epoch)
        .u64(block_number)
        .fixed(b"Vote2")
        .fixed(&[0xC0, 0x7F])
        .finish()
}

/// `TimeoutData3{view, epoch, lock: None}.commit()`: named fields, the lock as a 0 flag.
pub fn timeout_data3(view: u64, epoch: u64) -> [u8; 32] {
    Commit::new("Timeout data v3")
        .u64_field("view number", view)
        .u64_field("epoch number", epoch)
        .u64_field("lock", 0)
        .finish()
}

/// View-sync data for `phase` (0 pre-commit, 1 commit, 2 finalize), without an epoch.
pub fn view_sync_data(phase: u8, round: u64, relay: u64) -> [u8; 32] {
    let tag = [
        "View Sync Precommit",
        "View Sync Commit",
        "View Sync Finalize",
    ][phase as usize];
    Commit::new(tag).u64(round).u64(relay).finish()
}

/// `Leaf2::commit()` of a leaf without an epoch and without an upgrade certificate: what a
/// quorum proposal signs (layout from shared/notes/hotshot-signing.md).
pub fn leaf2(view: u64, parent: [u8; 32], header: [u8; 32], justify_qc: [u8; 32]) -> [u8; 32] {
    Commit::new("leaf commitment")
        .u64_field("view number", view)
        .field("parent leaf commitment", &parent)
        .field("block header", &header)
        .field("justify qc", &justify_qc)
        .optional("upgrade certificate", None)
        .finish()
}

/// A new-protocol proposal's `Leaf2::commit()` (with_epoch, no next-epoch QC) whose every
/// 32-byte field, the DRB result and the v3 timeout certificate included, is `c`.
pub fn new_protocol_leaf(view: u64, c: [u8; 32]) -> [u8; 32] {
    Commit::new("leaf commitment")
        .u64_field("view number", view)
        .field("parent leaf commitment", &c)
        .field("block header", &c)
        .field("justify qc", &c)
        .optional("upgrade certificate", None)
        .fixed(b"with_epoch")
        .fixed(&[0xC0, 0x7F])
        .optional("next_epoch_justify_qc", None)
        .fixed(b"next_drb_result")
        .fixed(&[0xC0, 0x7F])
        .fixed(&c)
        .field("timeout cert v3", &c)
        .finish()
}

/// The new protocol's `ReVote{view, epoch, cert1, timeout_cert: None}.commit()`: what a
/// leader's re-vote request signs, as is.
pub fn revote(view: u64, epoch: u64, cert1: [u8; 32]) -> [u8; 32] {
    Commit::new("Re-vote request")
        .u64_field("view number", view)
        .u64_field("epoch number", epoch)
        .field("certificate1", &cert1)
        .optional("timeout certificate", None)
        .finish()
}

/// `UpgradeProposalData2::commit()`: the v1 upgrade data's fields (minor before major), then
/// the epoch as a named field.
pub fn upgrade_data2(
    old: (u16, u16),
    new: (u16, u16),
    decide_by: u64,
    hash: &[u8],
    old_last_view: u64,
    new_first_view: u64,
    epoch: u64,
) -> [u8; 32] {
    Commit::new("Upgrade data v2")
        .u64(decide_by)
        .u64(new_first_view)
        .u64(old_last_view)
        .var(hash)
        .fixed(&new.1.to_le_bytes())
        .fixed(&new.0.to_le_bytes())
        .fixed(&old.1.to_le_bytes())
        .fixed(&old.0.to_le_bytes())
        .u64_field("epoch number", epoch)
        .finish()
}

/// `SHA-256(encoded_transactions)`: what a DA proposal signs.
pub fn da_proposal(payload: &[u8]) -> [u8; 32] {
    Sha256::digest(payload).into()
}
