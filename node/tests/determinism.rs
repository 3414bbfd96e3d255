//! Determinism of the replicated decision (`signer_node::state::Applied::apply`): random command
//! sequences — sign batches over registered, unregistered and mismatched keys, node events,
//! admin proposals and approvals (pause, resume, view horizons, key state changes, audit compaction,
//! certificate revocations, forged approvals, undecodable actions) and membership changes — applied to two fresh states, and
//! to a snapshot taken at a random point (encoded in the binary format and decoded again) plus
//! the tail of the log, must give byte-identical results and states.
//!
//! The comparison is of the encoded snapshot body (protection records, registry, admin state,
//! audit chain and every kept audit record), so anything a replica could hold differently —
//! even in a field no test reads — fails the property.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod admin_log;

use admin_log::SoloAdmin;
use proptest::prelude::*;
use signer_node::admin::{Action, AdminCommand, Fingerprint};
use signer_node::audit::NodeEvent;
use signer_node::bytes::FixedBytes;
use signer_node::protection::espresso::message::{DaData, Message};
use signer_node::protection::espresso::{EspressoIntent, ViewHorizon};
use signer_node::protection::ethereum::Eth2Intent;
use signer_node::protection::{Intent, Profile};
use signer_node::registry::KeyState;
use signer_node::state::{Applied, Changes, Command, CommandResult, SignEntry, SnapshotBody};
use std::collections::BTreeMap;
use std::path::Path;

const AT_MS: u64 = 1_700_000_000_000;

/// Two eth2 keys and one Espresso key are registered; `eth2-x` is not (a key file's id).
fn eth2_pubkey(n: u8) -> FixedBytes<48> {
    FixedBytes([n; 48])
}
fn espresso_pubkey() -> FixedBytes<128> {
    FixedBytes([7; 128])
}

#[derive(Clone, Debug)]
enum Op {
    Sign(Vec<Req>),
    Events(u8),
    Pause,
    Resume,
    /// Set the Espresso view horizon (views).
    Horizon(u64),
    SetKeyState(u8, KeyState),
    Compact(u64),
    /// Revoke a certificate: the checked-in one (`None`, with the certificate, so apply reads
    /// its identity) or the fingerprint `[b; 32]` alone (repeats are refused: already revoked).
    Revoke(Option<u8>),
    ForgedApproval,
    Undecodable,
    Membership(Vec<u64>),
}

#[derive(Clone, Debug)]
enum Req {
    Block {
        key: u8,
        slot: u64,
        root: u8,
    },
    Attestation {
        key: u8,
        source: u64,
        target: u64,
        root: u8,
    },
    Randao {
        key: u8,
        root: u8,
    },
    Timeout {
        view: u64,
    },
    /// A DA vote: the cluster's view horizon decides whether it signs.
    DaVote {
        view: u64,
        payload: u8,
    },
    /// A registered id naming another key's public key.
    Mismatch {
        slot: u64,
    },
}

fn req() -> impl Strategy<Value = Req> {
    prop_oneof![
        (0u8..3, 0u64..6, 0u8..3).prop_map(|(key, slot, root)| Req::Block { key, slot, root }),
        (0u8..3, 0u64..4, 0u64..6, 0u8..3).prop_map(|(key, source, target, root)| {
            Req::Attestation {
                key,
                source,
                target,
                root,
            }
        }),
        (0u8..3, 0u8..3).prop_map(|(key, root)| Req::Randao { key, root }),
        (0u64..8).prop_map(|view| Req::Timeout { view }),
        (0u64..16, 0u8..2).prop_map(|(view, payload)| Req::DaVote { view, payload }),
        (0u64..6).prop_map(|slot| Req::Mismatch { slot }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => proptest::collection::vec(req(), 1..5).prop_map(Op::Sign),
        2 => (1u8..4).prop_map(Op::Events),
        1 => Just(Op::Pause),
        1 => (1u64..=8).prop_map(Op::Horizon),
        1 => Just(Op::Resume),
        1 => (0u8..2, prop_oneof![Just(KeyState::Active), Just(KeyState::Disabled), Just(KeyState::Deleted)])
            .prop_map(|(k, s)| Op::SetKeyState(k, s)),
        1 => (0u64..40).prop_map(Op::Compact),
        1 => proptest::option::of(0u8..3).prop_map(Op::Revoke),
        1 => Just(Op::ForgedApproval),
        1 => Just(Op::Undecodable),
        1 => proptest::collection::vec(1u64..6, 1..4).prop_map(Op::Membership),
    ]
}

/// A log entry's content, as the replica hands it to the state.
#[derive(Clone, Debug)]
enum Entry {
    Command(Command),
    Membership(Vec<u64>),
}

fn key_id(key: u8) -> String {
    match key {
        0 => "eth2-a".into(),
        1 => "eth2-b".into(),
        _ => "eth2-x".into(),
    }
}

fn sign_entry(n: usize, r: &Req) -> SignEntry {
    let root = |b: u8| FixedBytes([b; 32]);
    let (key_id, intent) = match *r {
        Req::Block { key, slot, root: b } => (
            key_id(key),
            Intent::Eth2(Eth2Intent::Block {
                pubkey: eth2_pubkey(key),
                slot,
                signing_root: root(b),
            }),
        ),
        Req::Attestation {
            key,
            source,
            target,
            root: b,
        } => (
            key_id(key),
            Intent::Eth2(Eth2Intent::Attestation {
                pubkey: eth2_pubkey(key),
                source_epoch: source,
                target_epoch: target,
                signing_root: root(b),
            }),
        ),
        Req::Randao { key, root: b } => (
            key_id(key),
            Intent::Eth2(Eth2Intent::Unslashable {
                pubkey: eth2_pubkey(key),
                kind: "RANDAO_REVEAL".into(),
                signing_root: root(b),
            }),
        ),
        Req::Timeout { view } => (
            "espresso-a".into(),
            Intent::Espresso(EspressoIntent {
                public_key: espresso_pubkey(),
                message: Message::TimeoutVote { view, epoch: None },
            }),
        ),
        Req::DaVote { view, payload } => (
            "espresso-a".into(),
            Intent::Espresso(EspressoIntent {
                public_key: espresso_pubkey(),
                message: Message::DaVote {
                    view,
                    data: DaData {
                        payload_commit: root(payload),
                        next_epoch_payload_commit: None,
                        epoch: None,
                    },
                },
            }),
        ),
        Req::Mismatch { slot } => (
            "eth2-a".into(),
            Intent::Eth2(Eth2Intent::Block {
                pubkey: eth2_pubkey(1),
                slot,
                signing_root: root(9),
            }),
        ),
    };
    SignEntry {
        request_id: format!("r{n}"),
        client: "client-1".into(),
        key_id,
        intent,
    }
}

/// The log a sequence of ops makes: bootstrap, the registry, then the ops.
fn log(ops: &[Op]) -> Vec<Entry> {
    let admin = SoloAdmin::new("determinism", 1);
    let mut entries = vec![Entry::Command(admin.bootstrap())];
    let challenge = std::cell::Cell::new(0u8);
    let next_challenge = || {
        challenge.set(challenge.get().wrapping_add(1));
        challenge.get()
    };
    let approved = |action: &Action, entries: &mut Vec<Entry>| {
        for c in admin.approved(next_challenge(), action, AT_MS) {
            entries.push(Entry::Command(c));
        }
    };
    approved(
        &Action::AddKey(admin_log::record(
            "eth2-a",
            Profile::Eth2,
            eth2_pubkey(0).0.to_vec(),
        )),
        &mut entries,
    );
    approved(
        &Action::AddKey(admin_log::record(
            "eth2-b",
            Profile::Eth2,
            eth2_pubkey(1).0.to_vec(),
        )),
        &mut entries,
    );
    approved(
        &Action::AddKey(admin_log::record(
            "espresso-a",
            Profile::Espresso,
            espresso_pubkey().0.to_vec(),
        )),
        &mut entries,
    );
    for (n, op) in ops.iter().enumerate() {
        match op {
            Op::Sign(reqs) => entries.push(Entry::Command(Command::Sign(
                reqs.iter()
                    .enumerate()
                    .map(|(i, r)| sign_entry(n * 10 + i, r))
                    .collect(),
            ))),
            Op::Events(count) => entries.push(Entry::Command(Command::Event(
                (0..*count)
                    .map(|i| NodeEvent::KeyLoaded {
                        node: u64::from(i) + 1,
                        key_id: format!("k{n}"),
                    })
                    .collect(),
            ))),
            Op::Pause => approved(&Action::Pause, &mut entries),
            Op::Horizon(views) => approved(
                &Action::SetEspressoViewHorizon(ViewHorizon::new(*views).unwrap()),
                &mut entries,
            ),
            Op::Resume => approved(&Action::Resume, &mut entries),
            Op::SetKeyState(k, state) => approved(
                &Action::SetKeyState {
                    key_id: key_id(*k),
                    state: *state,
                },
                &mut entries,
            ),
            Op::Compact(up_to_seq) => approved(
                &Action::CompactAudit {
                    up_to_seq: *up_to_seq,
                },
                &mut entries,
            ),
            Op::Revoke(by) => {
                let certificate = match by {
                    None => std::fs::read(
                        Path::new(env!("CARGO_MANIFEST_DIR"))
                            .join("tests/data/format-v2/revoked-seq-9.der"),
                    )
                    .unwrap(),
                    Some(_) => Vec::new(),
                };
                let fingerprint = match by {
                    None => Fingerprint::of(&certificate),
                    Some(b) => Fingerprint([*b; 32]),
                };
                approved(
                    &Action::RevokeCertificate {
                        fingerprint,
                        certificate,
                    },
                    &mut entries,
                )
            }
            Op::ForgedApproval => {
                let mut pair = admin.approved(next_challenge(), &Action::Pause, AT_MS);
                if let Command::Admin(AdminCommand::Approve { signature, .. }) = &mut pair[1] {
                    signature[0] ^= 1;
                }
                entries.extend(pair.into_iter().map(Entry::Command));
            }
            Op::Undecodable => {
                let id = next_challenge();
                entries.push(Entry::Command(Command::Admin(AdminCommand::Propose {
                    id: [id; 32],
                    proposer: "admin-1".into(),
                    action_bytes: vec![0xff, 0x01, 0x02],
                })));
            }
            Op::Membership(voters) => entries.push(Entry::Membership(voters.clone())),
        }
    }
    entries
}

/// A replica as the storage adapter keeps it: the state and the stored audit records.
#[derive(Default)]
struct Replica {
    state: Applied,
    records: BTreeMap<u64, Vec<u8>>,
}

impl Replica {
    fn from_snapshot(bytes: &[u8]) -> Replica {
        let body: SnapshotBody = signer_node::format::decode(bytes).unwrap();
        let (state, records) = body.into_state().unwrap();
        Replica {
            state,
            records: records.into_iter().collect(),
        }
    }

    /// Apply entries from log index `first`; returns each entry's result and changes.
    fn apply(&mut self, entries: &[Entry], first: u64) -> Vec<(CommandResult, Changes)> {
        entries
            .iter()
            .zip(first..)
            .map(|(entry, index)| {
                let (result, changes) = match entry {
                    Entry::Command(c) => self.state.apply(c, index, AT_MS),
                    Entry::Membership(v) => (
                        CommandResult::None,
                        self.state.apply_membership(v.clone(), vec![], index),
                    ),
                };
                // What the storage adapter does with the changes.
                for (seq, bytes) in &changes.audit {
                    self.records.insert(*seq, bytes.clone());
                }
                if let Some(up_to) = changes.compacted_to {
                    self.records.retain(|seq, _| *seq > up_to);
                }
                (result, changes)
            })
            .collect()
    }

    /// The snapshot of this replica, checked to be what the node writes: the streamed body
    /// (records read one at a time) encodes to exactly the bytes of the owned one.
    fn snapshot(&self) -> Vec<u8> {
        let records = self.records.iter().map(|(s, b)| (*s, b.clone())).collect();
        let owned = signer_node::format::encode(&self.state.snapshot_body(records)).unwrap();
        let in_place = self
            .records
            .iter()
            .map(|(seq, bytes)| Ok::<_, String>((*seq, bytes)));
        let streamed = signer_node::format::encode(&signer_node::state::StreamedSnapshotBody::new(
            &self.state,
            in_place,
        ))
        .unwrap();
        assert_eq!(streamed, owned, "the streamed snapshot body differs");
        owned
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn replicas_and_snapshot_replays_reach_byte_identical_states(
        ops in proptest::collection::vec(op(), 1..40),
        split in any::<proptest::sample::Index>(),
    ) {
        let entries = log(&ops);
        let mut a = Replica::default();
        let mut b = Replica::default();
        let results_a = a.apply(&entries, 1);
        let results_b = b.apply(&entries, 1);
        prop_assert_eq!(&results_a, &results_b);
        let final_a = a.snapshot();
        prop_assert_eq!(&final_a, &b.snapshot());

        // A snapshot after `k` entries, through the binary format, then the tail.
        let k = split.index(entries.len() + 1);
        let mut c = Replica::default();
        c.apply(&entries[..k], 1);
        let mut d = Replica::from_snapshot(&c.snapshot());
        prop_assert_eq!(&d.state, &c.state);
        let tail = d.apply(&entries[k..], k as u64 + 1);
        prop_assert_eq!(&tail[..], &results_a[k..]);
        prop_assert_eq!(&d.snapshot(), &final_a);

        // And the kept records still verify from the anchor to the head.
        let chain = a.state.audit.chain;
        let kept: Vec<(u64, Vec<u8>)> = a.records.into_iter().collect();
        prop_assert_eq!(
            signer_node::audit::verify_chain(&kept, chain.anchor, Some(chain.head)),
            Ok(chain.head)
        );
    }
}

/// The property above must be able to fail: a replica that applies one entry at another log
/// index (so its audit records name another index) ends in another state.
#[test]
fn a_replica_that_saw_another_index_differs() {
    let entries = log(&[Op::Sign(vec![Req::Block {
        key: 0,
        slot: 1,
        root: 1,
    }])]);
    let mut a = Replica::default();
    let mut b = Replica::default();
    a.apply(&entries, 1);
    b.apply(&entries, 2);
    assert_ne!(a.snapshot(), b.snapshot());
}

/// Every sequence above starts from real decisions: the generated log signs, refuses and
/// pauses (a check that the generator is not producing only refusals).
#[test]
fn the_generated_log_exercises_every_sign_outcome() {
    let entries = log(&[
        Op::Sign(vec![
            Req::Block {
                key: 0,
                slot: 2,
                root: 1,
            },
            Req::Block {
                key: 0,
                slot: 2,
                root: 1,
            },
            Req::Block {
                key: 0,
                slot: 2,
                root: 2,
            },
            Req::Mismatch { slot: 3 },
        ]),
        Op::SetKeyState(1, KeyState::Disabled),
        Op::Sign(vec![Req::Block {
            key: 1,
            slot: 1,
            root: 1,
        }]),
        Op::Pause,
        Op::Sign(vec![Req::Timeout { view: 1 }]),
    ]);
    let mut a = Replica::default();
    let outcomes: Vec<String> = a
        .apply(&entries, 1)
        .into_iter()
        .filter_map(|(r, _)| match r {
            CommandResult::Sign(o) => Some(
                o.iter()
                    .map(|o| format!("{o:?}"))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            _ => None,
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            format!(
                "Signed,Resigned,Refused(DoubleBlockProposal {{ slot: 2, signed_root: \
                 Some({}), requested_root: {} }}),KeyMismatch",
                "0x".to_owned() + &"01".repeat(32),
                "0x".to_owned() + &"02".repeat(32)
            ),
            "KeyInactive".to_owned(),
            "Paused".to_owned(),
        ]
    );
}

/// The generator's horizon changes take effect: a DA vote 5 views above the key's timeout vote
/// is refused under a horizon of 4 (naming it) and signed once the admins set 5.
#[test]
fn the_generated_log_applies_the_horizon_the_admins_set() {
    let da = Req::DaVote {
        view: 6,
        payload: 1,
    };
    let entries = log(&[
        Op::Sign(vec![Req::Timeout { view: 1 }]),
        Op::Horizon(4),
        Op::Sign(vec![da.clone()]),
        Op::Horizon(5),
        Op::Sign(vec![da]),
    ]);
    let mut a = Replica::default();
    let outcomes: Vec<String> = a
        .apply(&entries, 1)
        .into_iter()
        .filter_map(|(r, _)| match r {
            CommandResult::Sign(o) => Some(format!("{o:?}")),
            _ => None,
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            "[Signed]",
            "[Refused(BeyondViewHorizon { kind: DaVote, view: 6, anchor_view: 1, horizon: 4 })]",
            "[Signed]",
        ]
    );
}

/// The generator's revocations take effect: the checked-in certificate is recorded with its
/// identity, a bare fingerprint without one, and a second revocation of it is refused.
#[test]
fn the_generated_log_revokes_certificates() {
    let entries = log(&[Op::Revoke(None), Op::Revoke(Some(1)), Op::Revoke(Some(1))]);
    let mut a = Replica::default();
    let refused = a
        .apply(&entries, 1)
        .into_iter()
        .filter(|(r, _)| {
            matches!(
                r,
                CommandResult::Admin(signer_node::admin::AdminOutcome::Refused(_))
            )
        })
        .count();
    // The proposal of the repeat, and its approval of a challenge that never opened.
    assert_eq!(refused, 2);
    let revoked: Vec<Option<&str>> = a
        .state
        .admin
        .revoked
        .values()
        .map(|r| r.identity.as_deref())
        .collect();
    assert_eq!(revoked.len(), 2);
    assert!(revoked.contains(&Some("seq-9")) && revoked.contains(&None));
    assert!(a.state.admin.revocation(&Fingerprint([1; 32])).is_some());
}
