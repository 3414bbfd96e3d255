//! The peer wire format: every Raft message round-trips through the versioned binary format, a
//! payload of another version is refused by name, snapshots stream in chunks that the pure
//! stream check checks and the receiver writes to a file, and a snapshot travels end to end
//! over mutual TLS.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use openraft::entry::RaftEntry;
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, EntryPayload, Membership, StoredMembership};
use signer_node::audit::NodeEvent;
use signer_node::bytes::FixedBytes;
use signer_node::format::FormatError;
use signer_node::pb;
use signer_node::protection::ethereum::Eth2Intent;
use signer_node::protection::Intent;
use signer_node::replica::network::{
    encode_append_entries, from_message, snapshot_chunks, snapshot_deadline, to_message,
    PeerNetwork, PeerTls, SnapshotHeader, WireError, MAX_PEER_MESSAGE, MAX_PEER_PAYLOAD,
    MAX_SNAPSHOT, SNAPSHOT_CHUNK,
};
use signer_node::replica::{
    Command, Entry, LogId, Proposal, SignEntry, Snapshot, SnapshotData, SnapshotMeta, TypeConfig,
    Vote,
};
use signer_node::service::peer::{receive_snapshot, SnapshotStream, SnapshotStreamError};

use futures::StreamExt as _;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::{Request, Response, Status};

fn log_id(term: u64, node: u64, index: u64) -> LogId {
    openraft::testing::log_id::<TypeConfig>(term, node, index)
}

fn membership() -> Membership<u64, BasicNode> {
    let nodes: BTreeMap<u64, BasicNode> = (1..=3)
        .map(|id| (id, BasicNode::new(format!("127.0.0.1:700{id}"))))
        .collect();
    Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes).unwrap()
}

fn meta() -> SnapshotMeta {
    SnapshotMeta {
        last_log_id: Some(log_id(3, 1, 40)),
        last_membership: StoredMembership::new(Some(log_id(1, 1, 1)), membership()),
    }
}

fn sign_proposal() -> Proposal {
    Proposal {
        at_ms: 1_700_000_000_000,
        command: Command::Sign(vec![SignEntry {
            request_id: "req-7".into(),
            client: "seq-1".into(),
            key_id: "key-1".into(),
            intent: Intent::Eth2(Eth2Intent::Attestation {
                pubkey: FixedBytes([0xab; 48]),
                source_epoch: 9,
                target_epoch: 10,
                signing_root: FixedBytes([7; 32]),
            }),
        }]),
    }
}

fn events() -> Vec<NodeEvent> {
    vec![
        NodeEvent::KeyLoaded {
            node: 2,
            key_id: "key-1".into(),
        },
        NodeEvent::KmsFailure {
            node: 2,
            key_id: "key-2".into(),
            detail: "KMS unreachable".into(),
        },
    ]
}

/// `value` through a peer message and back.
fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned>(value: &T) -> T {
    let msg = to_message(value).unwrap();
    assert_eq!(
        &msg.payload[..4],
        b"QS\x04\x00",
        "magic and format version 4"
    );
    from_message(&msg).unwrap()
}

fn header(vote: Vote, len: u64) -> Vec<u8> {
    signer_node::format::encode(&SnapshotHeader {
        vote,
        meta: meta(),
        len,
    })
    .unwrap()
}

#[test]
fn append_entries_with_every_entry_kind_round_trips() {
    let entries: Vec<Entry> = vec![
        Entry::new(log_id(3, 1, 41), EntryPayload::Blank),
        Entry::new(log_id(3, 1, 42), EntryPayload::Normal(sign_proposal())),
        Entry::new(
            log_id(3, 1, 43),
            EntryPayload::Normal(Proposal {
                at_ms: 1_700_000_000_001,
                command: Command::Event(events()),
            }),
        ),
        Entry::new(
            log_id(3, 1, 44),
            EntryPayload::Normal(Proposal {
                at_ms: 1_700_000_000_002,
                command: Command::Admin(signer_node::admin::AdminCommand::Approve {
                    id: [5; 32],
                    admin: "alice".into(),
                    signature: vec![1, 2, 3, 0, 255],
                }),
            }),
        ),
        Entry::new(log_id(3, 1, 45), EntryPayload::Membership(membership())),
    ];
    let rpc = AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(3, 1),
        prev_log_id: Some(log_id(3, 1, 40)),
        entries: entries.clone(),
        leader_commit: Some(log_id(2, 1, 39)),
    };
    let back = round_trip(&rpc);
    assert_eq!(back.vote, rpc.vote);
    assert_eq!(back.prev_log_id, rpc.prev_log_id);
    assert_eq!(back.entries, entries);
    assert_eq!(back.leader_commit, rpc.leader_commit);
}

fn event_entry(index: u64, detail_len: usize) -> Entry {
    Entry::new(
        log_id(3, 1, index),
        EntryPayload::Normal(Proposal {
            at_ms: 1_700_000_000_000 + index,
            command: Command::Event(vec![NodeEvent::KmsFailure {
                node: 2,
                key_id: format!("key-{index}"),
                detail: "x".repeat(detail_len),
            }]),
        }),
    )
}

fn append(entries: Vec<Entry>) -> AppendEntriesRequest<TypeConfig> {
    AppendEntriesRequest {
        vote: Vote::new_committed(3, 1),
        prev_log_id: Some(log_id(3, 1, 10)),
        entries,
        leader_commit: Some(log_id(3, 1, 10)),
    }
}

#[test]
fn an_append_entries_batch_over_the_byte_cap_is_cut_to_the_prefix_that_fits() {
    let entries: Vec<Entry> = (11..=15).map(|i| event_entry(i, 1000)).collect();

    // Under the cap: everything, and nothing to report.
    let (message, last) = encode_append_entries(append(entries.clone()), MAX_PEER_PAYLOAD).unwrap();
    assert_eq!(last, None);
    let sent: AppendEntriesRequest<TypeConfig> = from_message(&message).unwrap();
    assert_eq!(sent.entries, entries);

    // Room for two entries (plus the varint slack), not three: the first two go, and the
    // caller learns that entry 12 is the last one sent.
    let two = to_message(&append(entries[..2].to_vec()))
        .unwrap()
        .payload
        .len();
    let (message, last) = encode_append_entries(append(entries.clone()), two + 9).unwrap();
    assert_eq!(last, Some(log_id(3, 1, 12)));
    assert_eq!(message.payload.len(), two);
    let sent: AppendEntriesRequest<TypeConfig> = from_message(&message).unwrap();
    assert_eq!(sent.entries, entries[..2].to_vec());
    assert_eq!(sent.prev_log_id, Some(log_id(3, 1, 10)));
    assert_eq!(sent.leader_commit, Some(log_id(3, 1, 10)));

    // A first entry that alone does not fit can never be sent.
    let empty = to_message(&append(Vec::new())).unwrap().payload.len();
    let entry_len = signer_node::format::encode(&entries[0]).unwrap().len() - 4;
    assert_eq!(
        encode_append_entries(append(entries.clone()), empty + 100).unwrap_err(),
        WireError::EntryTooLarge {
            log_id: log_id(3, 1, 11).to_string(),
            len: entry_len,
            max: empty + 100,
        }
    );
}

#[test]
fn every_answer_round_trips_as_result_with_a_string_error() {
    let answers: Vec<Result<AppendEntriesResponse<TypeConfig>, String>> = vec![
        Ok(AppendEntriesResponse::Success),
        Ok(AppendEntriesResponse::PartialSuccess(Some(log_id(
            3, 1, 42,
        )))),
        Ok(AppendEntriesResponse::PartialSuccess(None)),
        Ok(AppendEntriesResponse::Conflict),
        Ok(AppendEntriesResponse::HigherVote(Vote::new(4, 2))),
        Err("raft is shutting down".into()),
    ];
    for answer in &answers {
        assert_eq!(&round_trip(answer), answer);
    }

    let vote_answers: Vec<Result<VoteResponse<TypeConfig>, String>> = vec![
        Ok(VoteResponse::new(
            Vote::new(4, 2),
            Some(log_id(3, 1, 42)),
            true,
        )),
        Ok(VoteResponse::new(Vote::new_committed(5, 3), None, false)),
        Err("stopping".into()),
    ];
    for answer in &vote_answers {
        assert_eq!(&round_trip(answer), answer);
    }

    let snapshot_answers: Vec<Result<SnapshotResponse<TypeConfig>, String>> = vec![
        Ok(SnapshotResponse::new(Vote::new_committed(3, 1))),
        Err("fatal: storage".into()),
    ];
    for answer in &snapshot_answers {
        assert_eq!(&round_trip(answer), answer);
    }
}

#[test]
fn vote_requests_snapshot_headers_and_forwarded_events_round_trip() {
    let mut transfer = VoteRequest::<TypeConfig>::new(Vote::new(4, 2), Some(log_id(3, 1, 42)));
    transfer.leadership_transfer = true;
    for rpc in [
        VoteRequest::<TypeConfig>::new(Vote::new(4, 2), None),
        transfer,
    ] {
        assert_eq!(round_trip(&rpc), rpc);
    }

    let header = SnapshotHeader {
        vote: Vote::new_committed(3, 1),
        meta: meta(),
        len: 5 << 30,
    };
    assert_eq!(round_trip(&header), header);

    assert_eq!(round_trip(&events()), events());
    assert_eq!(
        round_trip(&Vec::<NodeEvent>::new()),
        Vec::<NodeEvent>::new()
    );
}

#[test]
fn a_payload_of_another_version_or_format_is_refused_by_name() {
    let mut msg = to_message(&VoteRequest::<TypeConfig>::new(Vote::new(4, 2), None)).unwrap();
    msg.payload[2] = 5;
    let err = from_message::<VoteRequest<TypeConfig>>(&msg).unwrap_err();
    assert_eq!(
        err,
        FormatError::Newer {
            found: 5,
            supported: 4
        }
    );
    assert_eq!(
        err.to_string(),
        "written in format version 5, newer than this binary's format version 4: \
         run a signer that reads format 5"
    );
    // Peers run one format: an older peer's message is refused (stored data of formats 1
    // to 3 is read; peer messages are not).
    for older in [3, 2, 1, 0] {
        msg.payload[2] = older;
        assert_eq!(
            from_message::<VoteRequest<TypeConfig>>(&msg).unwrap_err(),
            FormatError::Older {
                found: u16::from(older),
                supported: 4
            }
        );
    }
    // The JSON of earlier builds is not read by guess.
    let json = pb::RaftMessage {
        payload: br#"{"vote":{"leader_id":{"term":4,"node_id":2},"committed":false}}"#.to_vec(),
    };
    assert_eq!(
        from_message::<VoteRequest<TypeConfig>>(&json).unwrap_err(),
        FormatError::NotThisFormat
    );
}

/// The chunks `snapshot_chunks` streams for `data`.
async fn chunks_of(vote: Vote, data: SnapshotData) -> Vec<pb::SnapshotChunk> {
    snapshot_chunks(vote, meta(), data).unwrap().collect().await
}

/// Each chunk as (has a header, data bytes).
fn shape_of(chunks: &[pb::SnapshotChunk]) -> Vec<(bool, usize)> {
    chunks
        .iter()
        .map(|c| (c.header.is_some(), c.data.len()))
        .collect()
}

/// `chunks` fed to a receiver's stream check, in order, and the data it let through.
fn assembled(chunks: &[pb::SnapshotChunk]) -> (SnapshotStream, Vec<u8>) {
    let mut stream = SnapshotStream::new(MAX_SNAPSHOT);
    let mut data = Vec::new();
    for c in chunks {
        stream.feed(c.header.as_deref(), &c.data).unwrap();
        data.extend_from_slice(&c.data);
    }
    (stream, data)
}

/// A stored snapshot body: `head`, then the first `records_len` bytes of a file holding
/// `file`.
fn stored_body(head: &[u8], file: &[u8], records_len: u64) -> SnapshotData {
    let mut f = tempfile::tempfile().unwrap();
    std::io::Write::write_all(&mut f, file).unwrap();
    SnapshotData::Stored {
        head: head.to_vec(),
        records: Arc::new(f),
        records_len,
    }
}

#[tokio::test]
async fn a_snapshot_is_split_into_a_header_chunk_and_one_mib_pieces_and_reassembled() {
    let data: Vec<u8> = (0..(2 * SNAPSHOT_CHUNK + SNAPSHOT_CHUNK / 2))
        .map(|i| (i % 251) as u8)
        .collect();
    let vote = Vote::new_committed(3, 1);
    let chunks = chunks_of(vote, SnapshotData::InMemory(data.clone())).await;
    let shape = shape_of(&chunks);
    assert_eq!(
        shape,
        vec![
            (true, 0),
            (false, SNAPSHOT_CHUNK),
            (false, SNAPSHOT_CHUNK),
            (false, SNAPSHOT_CHUNK / 2)
        ]
    );
    let (stream, received) = assembled(&chunks);
    assert_eq!(stream.vote(), Some(&vote));
    assert_eq!(stream.finish().unwrap(), (vote, meta()));
    assert_eq!(received, data);

    // An empty snapshot is the header alone.
    let chunks = chunks_of(vote, SnapshotData::InMemory(Vec::new())).await;
    assert_eq!(chunks.len(), 1);
    let mut stream = SnapshotStream::new(MAX_SNAPSHOT);
    stream
        .feed(chunks[0].header.as_deref(), &chunks[0].data)
        .unwrap();
    assert_eq!(stream.finish().unwrap(), (vote, meta()));

    // The header may also share the first chunk with data.
    let mut stream = SnapshotStream::new(10);
    stream.feed(Some(&header(vote, 5)), b"abc").unwrap();
    stream.feed(None, b"de").unwrap();
    assert_eq!(stream.finish().unwrap(), (vote, meta()));
}

#[tokio::test]
async fn a_stored_snapshot_streams_its_head_then_the_records_its_head_counts_from_the_file() {
    let vote = Vote::new_committed(3, 1);
    let head: Vec<u8> = (0..1000).map(|i| (i % 7) as u8).collect();
    let records: Vec<u8> = (0..(SNAPSHOT_CHUNK + 5)).map(|i| (i % 253) as u8).collect();
    // Bytes past the counted length (a later build's append) are not this snapshot's.
    let mut file = records.clone();
    file.extend_from_slice(b"appended later");
    let chunks = chunks_of(vote, stored_body(&head, &file, records.len() as u64)).await;
    let shape = shape_of(&chunks);
    assert_eq!(
        shape,
        vec![(true, 0), (false, SNAPSHOT_CHUNK), (false, 1005)]
    );
    let (stream, received) = assembled(&chunks);
    let expected: Vec<u8> = head.iter().chain(&records).copied().collect();
    assert_eq!(stream.finish().unwrap(), (vote, meta()));
    assert_eq!(received, expected);

    // A records file cut short after the head was read: the stream ends where the file does
    // (the head's chunk and the head's bytes), and the receiver refuses it as truncated.
    let chunks = chunks_of(
        vote,
        stored_body(&head, &records[..10], records.len() as u64),
    )
    .await;
    let shape = shape_of(&chunks);
    assert_eq!(shape, vec![(true, 0)]);
    let (stream, _) = assembled(&chunks);
    assert_eq!(
        stream.finish().unwrap_err(),
        SnapshotStreamError::Truncated {
            received: 0,
            declared: (head.len() + records.len()) as u64,
        }
    );
}

#[test]
fn the_stream_check_refuses_streams_out_of_order_too_long_or_cut_short() {
    let vote = Vote::new_committed(3, 1);
    type Feed = Vec<(Option<Vec<u8>>, Vec<u8>)>;
    let cases: Vec<(&str, Feed, SnapshotStreamError)> = vec![
        ("no chunks", vec![], SnapshotStreamError::NoHeader),
        (
            "data before the header",
            vec![(None, b"abc".to_vec()), (Some(header(vote, 3)), vec![])],
            SnapshotStreamError::DataBeforeHeader,
        ),
        (
            "an empty first chunk without a header",
            vec![(None, vec![])],
            SnapshotStreamError::DataBeforeHeader,
        ),
        (
            "a second header",
            vec![
                (Some(header(vote, 3)), vec![]),
                (Some(header(vote, 3)), vec![]),
            ],
            SnapshotStreamError::HeaderNotFirst { chunk: 1 },
        ),
        (
            "a header in JSON",
            vec![(Some(br#"{"len":3}"#.to_vec()), vec![])],
            SnapshotStreamError::Header(FormatError::NotThisFormat),
        ),
        (
            "a header of format 5",
            vec![(
                Some({
                    let mut h = header(vote, 3);
                    h[2] = 5;
                    h
                }),
                vec![],
            )],
            SnapshotStreamError::Header(FormatError::Newer {
                found: 5,
                supported: 4,
            }),
        ),
        (
            "a declared length over the cap",
            vec![(Some(header(vote, 11)), vec![])],
            SnapshotStreamError::TooLarge { len: 11, cap: 10 },
        ),
        (
            "more bytes than declared",
            vec![
                (Some(header(vote, 10)), vec![]),
                (None, vec![1; 6]),
                (None, vec![2; 6]),
            ],
            SnapshotStreamError::Overrun {
                chunk: 2,
                declared: 10,
            },
        ),
        (
            "fewer bytes than declared",
            vec![(Some(header(vote, 10)), vec![]), (None, vec![1; 4])],
            SnapshotStreamError::Truncated {
                received: 4,
                declared: 10,
            },
        ),
        (
            "a chunk over 1 MiB",
            vec![
                (Some(header(vote, 10)), vec![]),
                (None, vec![0; SNAPSHOT_CHUNK + 1]),
            ],
            SnapshotStreamError::ChunkTooLarge {
                chunk: 1,
                len: SNAPSHOT_CHUNK + 1,
                max: SNAPSHOT_CHUNK,
            },
        ),
    ];
    for (name, feed, expected) in cases {
        let mut stream = SnapshotStream::new(10);
        let mut outcome = Ok(());
        for (h, data) in &feed {
            outcome = stream.feed(h.as_deref(), data);
            if outcome.is_err() {
                break;
            }
        }
        let outcome = outcome.and_then(|()| stream.finish().map(|_| ()));
        assert_eq!(outcome, Err(expected), "{name}");
    }

    assert_eq!(
        SnapshotStreamError::TooLarge {
            len: 5 << 30,
            cap: MAX_SNAPSHOT
        }
        .to_string(),
        "snapshot stream: the snapshot has 5368709120 bytes, more than the cap of 2147483648 bytes"
    );
    assert_eq!(
        SnapshotStreamError::DataBeforeHeader.to_string(),
        "snapshot stream: chunk 0 has no header: the header comes first, before any snapshot bytes"
    );
}

fn chunk(header: Option<Vec<u8>>, data: &[u8]) -> Result<pb::SnapshotChunk, Status> {
    Ok(pb::SnapshotChunk {
        header,
        data: data.to_vec(),
    })
}

#[tokio::test]
async fn a_snapshot_stream_must_speak_for_its_sender_and_stay_under_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let files_in_dir = || std::fs::read_dir(dir.path()).unwrap().count();
    // Node 2 sends a header whose vote names node 3: refused on the first chunk, before the
    // rest of the stream is read (the next item would be a transport error).
    let forged = tokio_stream::iter(vec![
        chunk(Some(header(Vote::new_committed(7, 3), 3)), &[]),
        Err(Status::data_loss("read past the header")),
    ]);
    let err = receive_snapshot(2, forged, MAX_SNAPSHOT, dir.path())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    assert_eq!(err.message(), "node 2 sent a message on behalf of node 3");

    let vote = Vote::new_committed(7, 2);
    let too_big = tokio_stream::iter(vec![chunk(Some(header(vote, 11)), &[])]);
    let err = receive_snapshot(2, too_big, 10, dir.path())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        err.message(),
        "snapshot stream: the snapshot has 11 bytes, more than the cap of 10 bytes"
    );

    let headless = tokio_stream::iter(vec![chunk(None, b"abc")]);
    let err = receive_snapshot(2, headless, 10, dir.path())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        err.message(),
        SnapshotStreamError::DataBeforeHeader.to_string()
    );

    let empty = tokio_stream::iter(Vec::<Result<pb::SnapshotChunk, Status>>::new());
    let err = receive_snapshot(2, empty, 10, dir.path())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(err.message(), "snapshot stream: ended without a header");

    let broken = tokio_stream::iter(vec![
        chunk(Some(header(vote, 6)), b"abc"),
        Err(Status::cancelled("sender went away")),
    ]);
    let err = receive_snapshot(2, broken, 10, dir.path())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Cancelled);

    let good = tokio_stream::iter(vec![
        chunk(Some(header(vote, 6)), &[]),
        chunk(None, b"abc"),
        chunk(None, b"def"),
    ]);
    let (got_vote, got_meta, body) = receive_snapshot(2, good, 10, dir.path()).await.unwrap();
    assert_eq!((got_vote, got_meta), (vote, meta()));
    // The body is in a file that no longer has a name in the directory: nothing is left
    // behind by a refused stream or a crash, and the bytes live as long as the handle.
    assert!(matches!(body, SnapshotData::Received { len: 6, .. }));
    assert_eq!(files_in_dir(), 0);
    assert_eq!(body.into_bytes().unwrap(), b"abcdef".to_vec());

    // A directory the body cannot be written to: the stream is refused naming the file's
    // error, after the header spoke for its sender.
    let missing = dir.path().join("gone");
    let good = tokio_stream::iter(vec![chunk(Some(header(vote, 3)), b"abc")]);
    let err = receive_snapshot(2, good, 10, &missing).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Internal);
    // The file's name ends in a per-process counter: everything else is fixed.
    let prefix = format!(
        "snapshot stream: storing the received body: {}/state.snapshot-incoming-{}-",
        missing.display(),
        std::process::id()
    );
    let counter = err
        .message()
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix(": No such file or directory (os error 2)"))
        .unwrap_or_else(|| panic!("unexpected message: {}", err.message()));
    assert!(counter.parse::<u64>().is_ok(), "{counter}");
}

#[test]
fn the_snapshot_deadline_grows_with_its_size() {
    let mib = 1024 * 1024;
    assert_eq!(
        snapshot_deadline(Duration::from_secs(1), 0),
        Duration::from_secs(10)
    );
    assert_eq!(
        snapshot_deadline(Duration::from_secs(30), 4 * mib - 1),
        Duration::from_secs(30)
    );
    assert_eq!(
        snapshot_deadline(Duration::from_secs(10), 40 * mib),
        Duration::from_secs(20)
    );
    assert_eq!(
        snapshot_deadline(Duration::from_secs(10), MAX_SNAPSHOT),
        Duration::from_secs(10 + 512)
    );
}

/// What the test peer answers.
#[derive(Clone, Copy)]
enum Answer {
    Installed,
    RemoteError,
    NewerFormat,
}

/// The snapshots a test peer received.
type Received = Arc<Mutex<Vec<(Vote, SnapshotMeta, Vec<u8>)>>>;

/// A peer server that receives snapshots (authenticating the sender like `PeerService`) and
/// accepts append entries, recording how many entries each carried.
struct TestPeer {
    answer: Answer,
    snapshots: Received,
    appended: Arc<Mutex<Vec<usize>>>,
}

impl TestPeer {
    fn reply<T: serde::Serialize>(&self, ok: T) -> Response<pb::RaftMessage> {
        let answer: Result<T, String> = match self.answer {
            Answer::RemoteError => Err("raft is shutting down".into()),
            _ => Ok(ok),
        };
        let mut msg = to_message(&answer).unwrap();
        if let Answer::NewerFormat = self.answer {
            msg.payload[2] = 5;
        }
        Response::new(msg)
    }
}

#[tonic::async_trait]
impl pb::raft_server::Raft for TestPeer {
    async fn append_entries(
        &self,
        request: Request<pb::RaftMessage>,
    ) -> Result<Response<pb::RaftMessage>, Status> {
        let rpc: AppendEntriesRequest<TypeConfig> = from_message(request.get_ref()).unwrap();
        self.appended.lock().unwrap().push(rpc.entries.len());
        Ok(self.reply(AppendEntriesResponse::<TypeConfig>::Success))
    }

    async fn vote(&self, _: Request<pb::RaftMessage>) -> Result<Response<pb::RaftMessage>, Status> {
        Err(Status::unimplemented("vote"))
    }

    async fn install_snapshot_chunks(
        &self,
        request: Request<tonic::Streaming<pb::SnapshotChunk>>,
    ) -> Result<Response<pb::RaftMessage>, Status> {
        let identity = signer_node::tls::peer_identity(request.peer_certs()).unwrap();
        let peer = signer_node::tls::node_id_from_identity(&identity).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (vote, meta, data) =
            receive_snapshot(peer, request.into_inner(), MAX_SNAPSHOT, dir.path()).await?;
        let data = data.into_bytes().unwrap();
        self.snapshots.lock().unwrap().push((vote, meta, data));
        Ok(
            self.reply(SnapshotResponse::<TypeConfig>::new(Vote::new_committed(
                7, 2,
            ))),
        )
    }

    async fn forward_typed_sign(
        &self,
        _: Request<pb::RaftMessage>,
    ) -> Result<Response<pb::RaftMessage>, Status> {
        Err(Status::unimplemented("forward_typed_sign"))
    }

    async fn forward_events(
        &self,
        _: Request<pb::RaftMessage>,
    ) -> Result<Response<pb::RaftMessage>, Status> {
        Err(Status::unimplemented("forward_events"))
    }
}

/// Node 1 serving a [`TestPeer`] on a port-0 listener, and node 2's client to it.
struct Pair {
    _dir: tempfile::TempDir,
    client: signer_node::replica::network::PeerClient,
    snapshots: Received,
    appended: Arc<Mutex<Vec<usize>>>,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Pair {
    async fn start(answer: Answer) -> Pair {
        let dir = tempfile::tempdir().unwrap();
        let pki = signer_node::tls::DevPki::create(dir.path(), &[1, 2], &[]).unwrap();
        let node1 = signer_node::tls::TlsMaterial::read(
            &pki.ca_cert_path(),
            &pki.node_cert_path(1),
            &pki.node_key_path(1),
        )
        .unwrap();
        let tls = PeerTls {
            ca_pem: std::fs::read(pki.ca_cert_path()).unwrap(),
            cert_pem: std::fs::read(pki.node_cert_path(2)).unwrap(),
            key_pem: std::fs::read(pki.node_key_path(2)).unwrap(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let snapshots = Received::default();
        let appended = Arc::new(Mutex::new(Vec::new()));
        // The node's own limit for unary messages, as `node.rs` sets it.
        let service = pb::raft_server::RaftServer::new(TestPeer {
            answer,
            snapshots: snapshots.clone(),
            appended: appended.clone(),
        })
        .max_decoding_message_size(MAX_PEER_MESSAGE);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .tls_config(node1.server_config().unwrap())
                .unwrap()
                .add_service(service)
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    async {
                        let _ = stopped.await;
                    },
                ),
        );
        let client = PeerNetwork::new(tls)
            .new_client(1, &BasicNode::new(addr.to_string()))
            .await;
        Pair {
            _dir: dir,
            client,
            snapshots,
            appended,
            stop,
            server,
        }
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.server.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_streams_in_chunks_over_mutual_tls_and_remote_errors_keep_their_meaning() {
    // 9.5 MiB in ten chunks.
    let data: Vec<u8> = (0..(9 * SNAPSHOT_CHUNK + SNAPSHOT_CHUNK / 2))
        .map(|i| (i % 253) as u8)
        .collect();
    let vote = Vote::new_committed(7, 2);

    // Each answer to a body in memory and to a stored one (its head, then records read from
    // their file as they are sent; the file holds more than the head counts).
    let in_memory = || SnapshotData::InMemory(data.clone());
    let stored = || {
        let mut file = data[1000..].to_vec();
        file.extend_from_slice(b"a later build's records");
        stored_body(&data[..1000], &file, (data.len() - 1000) as u64)
    };
    let cases = [Answer::Installed, Answer::RemoteError, Answer::NewerFormat]
        .into_iter()
        .flat_map(|answer| [(answer, in_memory()), (answer, stored())]);
    for (answer, body) in cases {
        let mut pair = Pair::start(answer).await;
        let snapshot = Snapshot {
            meta: meta(),
            snapshot: body,
        };
        let result = pair
            .client
            .full_snapshot(
                vote,
                snapshot,
                std::future::pending(),
                RPCOption::new(Duration::from_secs(10)),
            )
            .await;
        match answer {
            Answer::Installed => {
                assert_eq!(
                    result.unwrap(),
                    SnapshotResponse::new(Vote::new_committed(7, 2))
                );
            }
            Answer::RemoteError => {
                // A remote Raft error counts as unreachable, so openraft backs off.
                let err = result.unwrap_err();
                assert!(
                    matches!(err, openraft::errors::StreamingError::Unreachable(_)),
                    "{err:?}"
                );
                assert_eq!(
                    err.to_string(),
                    "Unreachable node: peer error: raft is shutting down"
                );
            }
            Answer::NewerFormat => {
                let err = result.unwrap_err();
                assert!(
                    matches!(err, openraft::errors::StreamingError::Network(_)),
                    "{err:?}"
                );
                assert_eq!(
                    err.to_string(),
                    "NetworkError: node 1: payload: written in format version 5, newer than \
                     this binary's format version 4: run a signer that reads format 5"
                );
            }
        }
        let snapshots = pair.snapshots.lock().unwrap().clone();
        assert_eq!(snapshots, vec![(vote, meta(), data.clone())]);
        pair.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_entries_batch_over_the_peer_message_limit_is_sent_in_part() {
    // Twenty entries of 4 MiB: 80 MiB, over the 64 MiB limit. Fifteen fit.
    let entries: Vec<Entry> = (11..=30).map(|i| event_entry(i, 4 * 1024 * 1024)).collect();
    let mut pair = Pair::start(Answer::Installed).await;
    let answer = pair
        .client
        .append_entries(append(entries), RPCOption::new(Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(
        answer,
        AppendEntriesResponse::PartialSuccess(Some(log_id(3, 1, 25)))
    );
    assert_eq!(*pair.appended.lock().unwrap(), vec![15]);

    // A batch that fits is answered as the peer answered it.
    let answer = pair
        .client
        .append_entries(
            append(vec![event_entry(11, 10)]),
            RPCOption::new(Duration::from_secs(30)),
        )
        .await
        .unwrap();
    assert_eq!(answer, AppendEntriesResponse::Success);
    assert_eq!(*pair.appended.lock().unwrap(), vec![15, 1]);
    pair.stop().await;
}
