//! Target `peer_message`: the payloads a cluster member sends another on the peer port
//! (`signer.v1.Raft`), in the versioned binary format, decoded as the receiving node decodes
//! them (`replica::network::from_message`, `format::decode_upgrading` for a snapshot), and what
//! the receiver then does with them: a follower applies the leader's log entries
//! (`Applied::apply`), the leader converts a forwarded request (`convert::intent`), a node
//! installs a snapshot (`state::open_snapshot_body`, checked against the whole decoding;
//! `SnapshotBody::into_state`, `audit::verify_chain`).
//!
//! Owns: the selector framing of this target (first byte: which message; the rest: its
//! payload) and the properties. Must not: open sockets or storage (the services around these
//! calls need a running node).
//!
//! Properties: every decoded value encodes, and decoding that encoding gives a value that
//! encodes to the same bytes (a stable round trip); applying decoded log entries never panics
//! and is deterministic (two replicas reach equal states, results and changes); every audit
//! record apply writes decodes and re-encodes to its own bytes and the chain verifies; a
//! forwarded request passes [`crate::grpc_sign::check_intents`]; a snapshot body read as it
//! streams is exactly the whole decoding's (or both refuse it); a snapshot body that installs
//! snapshots back to the same bytes and goes on applying entries.

use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::EntryPayload;
use serde::de::DeserializeOwned;
use serde::Serialize;
use signer_node::audit::{self, NodeEvent};
use signer_node::format;
use signer_node::pb::RaftMessage;
use signer_node::replica::network::{from_message, to_message, SnapshotHeader};
use signer_node::replica::TypeConfig;
use signer_node::service::convert;
use signer_node::service::signing::{ForwardedSign, SignError, Signed};
use signer_node::state::upgrade;
use signer_node::state::{
    open_snapshot_body, Applied, Changes, Command, OpenedSnapshotBody, SnapshotBody, SnapshotState,
    StoredRecords,
};

/// The messages of this target, by the selector byte (`data[0] % COUNT`).
pub const MESSAGES: [&str; 10] = [
    "append_entries",
    "vote",
    "forward_typed_sign",
    "forward_events",
    "snapshot_header",
    "forward_answer",
    "append_entries_answer",
    "vote_answer",
    "snapshot_answer",
    "snapshot_body",
];

/// One fuzz input.
pub fn check(data: &[u8]) {
    let Some((&selector, payload)) = data.split_first() else {
        return;
    };
    let msg = RaftMessage {
        payload: payload.to_vec(),
    };
    match usize::from(selector) % MESSAGES.len() {
        0 => {
            if let Some(rpc) = round_trip::<AppendEntriesRequest<TypeConfig>>(&msg) {
                apply_entries(&rpc);
            }
        }
        1 => {
            round_trip::<VoteRequest<TypeConfig>>(&msg);
        }
        2 => {
            if let Some(fwd) = round_trip::<ForwardedSign>(&msg) {
                if fwd.request.check_ids().is_ok() {
                    crate::grpc_sign::check_intents(&fwd.request, None);
                }
            }
        }
        3 => {
            if let Some(events) = round_trip::<Vec<NodeEvent>>(&msg) {
                let events = events.into_iter().map(|e| e.with_node(2)).collect();
                apply_twice(&[(Command::Event(events), 1, 1_700_000_000_000)]);
            }
        }
        4 => {
            round_trip::<SnapshotHeader>(&msg);
        }
        5 => {
            if let Some(Err(e)) = round_trip::<Result<Signed, SignError>>(&msg) {
                let _ = convert::status(e);
            }
        }
        6 => {
            round_trip::<Result<AppendEntriesResponse<TypeConfig>, String>>(&msg);
        }
        7 => {
            round_trip::<Result<VoteResponse<TypeConfig>, String>>(&msg);
        }
        8 => {
            round_trip::<Result<SnapshotResponse<TypeConfig>, String>>(&msg);
        }
        _ => install_snapshot(payload),
    }
}

/// Decode as the receiver does, then check that the value's encoding is stable.
fn round_trip<T: Serialize + DeserializeOwned>(msg: &RaftMessage) -> Option<T> {
    let value: T = from_message(msg).ok()?;
    let encoded = to_message(&value).expect("a decoded peer message encodes");
    let again: T = from_message(&encoded).expect("an encoded peer message decodes");
    let twice = to_message(&again).expect("a decoded peer message encodes");
    assert_eq!(
        encoded.payload, twice.payload,
        "the encoding of a peer message is not stable"
    );
    Some(value)
}

/// What a follower does with appended entries once they commit: apply them in order.
fn apply_entries(rpc: &AppendEntriesRequest<TypeConfig>) {
    let mut steps = Vec::new();
    let mut replica = Applied::default();
    for entry in &rpc.entries {
        match &entry.payload {
            EntryPayload::Blank => {}
            EntryPayload::Normal(p) => steps.push((p.command.clone(), entry.log_id.index, p.at_ms)),
            EntryPayload::Membership(m) => {
                // Applied on its own replica too: no panic, a record that round-trips.
                let changes = replica.apply_membership(
                    m.voter_ids().collect(),
                    m.learner_ids().collect(),
                    entry.log_id.index,
                );
                check_records(&changes);
            }
        }
    }
    apply_twice(&steps);
}

/// Apply `steps` on two fresh replicas: equal results, changes and states; records that
/// round-trip and a chain that verifies.
fn apply_twice(steps: &[(Command, u64, u64)]) {
    let mut a = Applied::default();
    let mut b = Applied::default();
    let mut records = Vec::new();
    for (command, index, at_ms) in steps {
        let (ra, ca) = a.apply(command, *index, *at_ms);
        let (rb, cb) = b.apply(command, *index, *at_ms);
        assert_eq!(ra, rb, "apply is not deterministic (result)");
        assert_eq!(ca, cb, "apply is not deterministic (changes)");
        check_records(&ca);
        records.extend(ca.audit);
    }
    assert_eq!(a, b, "apply is not deterministic (state)");
    if !records.is_empty() {
        let anchor = a.audit.chain.anchor;
        // Compaction can drop records from the front: verify what the chain still keeps.
        let kept: Vec<(u64, Vec<u8>)> = records
            .into_iter()
            .filter(|(seq, _)| *seq > anchor.seq)
            .collect();
        audit::verify_chain(&kept, anchor, Some(a.audit.chain.head))
            .expect("the records apply wrote verify against its chain");
    }
}

fn check_records(changes: &Changes) {
    for (seq, bytes) in &changes.audit {
        let record = audit::decode(bytes).expect("an audit record apply wrote decodes");
        assert_eq!(record.seq, *seq);
        assert_eq!(&audit::encode(&record), bytes, "audit record re-encodes");
    }
}

/// The body as the node reads a snapshot it installs (`open_snapshot_body`: the state, then
/// the records one at a time).
fn read_streamed(bytes: &[u8]) -> Result<(SnapshotState, StoredRecords), format::FormatError> {
    match open_snapshot_body(bytes, bytes.len() as u64)? {
        OpenedSnapshotBody::Whole(body) => Ok(body.into_parts()),
        OpenedSnapshotBody::Streamed { state, records } => {
            Ok((state, records.collect::<Result<_, _>>()?))
        }
    }
}

/// What `StateMachine::install_snapshot` does with a snapshot a peer streamed.
fn install_snapshot(bytes: &[u8]) {
    // The node reads a body as it streams from a file; that reading must accept exactly
    // the bodies the whole decoding accepts, as the same value.
    let whole = upgrade::decode_snapshot_body(bytes);
    match (&whole, read_streamed(bytes)) {
        (Ok(whole), Ok(streamed)) => assert_eq!(
            streamed,
            whole.clone().into_parts(),
            "streamed body differs"
        ),
        (Err(_), Err(_)) => {}
        (whole, streamed) => panic!(
            "the streamed reading disagrees with the whole decoding: {:?} against {:?}",
            streamed.map(|_| ()),
            whole.as_ref().map(|_| ())
        ),
    }
    let Ok(body) = whole else {
        return;
    };
    let encoded = format::encode(&body).expect("a decoded snapshot body encodes");
    let again: SnapshotBody = format::decode(&encoded).expect("an encoded snapshot decodes");
    assert_eq!(again, body, "snapshot body round trip");
    let Ok((state, records)) = body.into_state() else {
        return;
    };
    // The node logs a chain that does not verify; it must not panic reading it.
    let _ = audit::verify_chain(
        &records,
        state.audit.chain.anchor,
        Some(state.audit.chain.head),
    );
    let snapshot = state.snapshot_body(records);
    assert_eq!(
        format::encode(&snapshot).expect("the installed state snapshots"),
        encoded,
        "a snapshot installed and taken again differs"
    );
    // The installed state goes on applying entries (here: an event, which always appends an
    // audit record).
    let mut state = state;
    let head = state.audit.chain.head.seq;
    let event = NodeEvent::KeyLoaded {
        node: 1,
        key_id: "k".into(),
    };
    let (_, changes) = state.apply(&Command::Event(vec![event]), 1, 1_700_000_000_000);
    check_records(&changes);
    assert_eq!(Some(state.audit.chain.head.seq), head.checked_add(1));
}
