//! Each request shape of the safety review, reproduced on a real cluster with its exact
//! outcome: a request id reused with another key; digests copied across kinds; a registry key
//! taking a key file's id (refused where the proposing node holds the file; and where only a
//! follower holds it, the two keys still never sign for each other, also once that follower
//! leads); probing key ids without a grant; file modes of the data dir; the audit volume of a
//! burst of denied requests. (The random sequences over a cluster are in
//! `adversarial_cluster.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod adversarial;
mod oracle;
mod support;

use adversarial::*;
use oracle::requests::{quorum_vote_digest, Msg};
use oracle::Oracle;
use signer_node::audit::{self, AuditEvent, NodeEvent};
use signer_node::pb;
use std::time::{Duration, Instant};
use support::{local_kek, refusal_code, sign_retrying, Cluster, ESPRESSO_KEY, ETH2_KEY};
use tonic::Code;

// ---- the review's reproductions -------------------------------------------------------------

/// Sign `b` as `client` on node `node` (retrying UNAVAILABLE), telling the oracle about it.
async fn sign(
    cluster: &Cluster,
    oracle: &mut Oracle,
    node: u64,
    client: &str,
    b: &Asked,
) -> Result<pb::SignResponse, tonic::Status> {
    b.announce(oracle);
    let mut c = cluster.client(node, client).await;
    let result = sign_retrying(&mut c, b.request.clone()).await;
    if let Ok(resp) = &result {
        oracle.received(&resp.signature, &resp.signed_message, b.digest, &b.meaning);
    }
    result
}

fn assert_refused(result: Result<pb::SignResponse, tonic::Status>, code: &str) {
    let status = result.expect_err("refused");
    assert_eq!(refusal_code(&status).as_deref(), Some(code), "{status:?}");
}

fn vote(view: u64, leaf: u8) -> Msg {
    Msg::QuorumVote { view, leaf }
}

fn attestation(source: u64, target: u64, root: u8) -> Msg {
    Msg::Attestation {
        source,
        target,
        root,
    }
}

/// (1) A request id reused with another key: the second key decides by its own rules (a fresh
/// signature, recorded for that key), and neither key ever holds two conflicting signatures.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_id_reused_with_another_key_is_decided_by_that_keys_rules() {
    let (cluster, keys) = cluster_with_registry_keys().await;
    let mut oracle = keys.oracle();
    let cases = [
        (
            ESPRESSO_KEY,
            REGISTRY_ESPRESSO,
            vote(10, 1),
            vote(10, 2),
            "equivocation",
        ),
        (
            ETH2_KEY,
            REGISTRY_ETH2,
            attestation(1, 2, 1),
            attestation(1, 2, 2),
            "double_vote",
        ),
    ];
    for (file_key, registry_key, x, y, conflict) in cases {
        let first = sign(
            &cluster,
            &mut oracle,
            1,
            "seq-1",
            &request(file_key, "r1", &x),
        )
        .await
        .unwrap();
        assert!(!first.resigned);
        assert!(keys.verifies(file_key, &first.signed_message, &first.signature));
        // The same message and request id for the other key (through another node).
        let second = sign(
            &cluster,
            &mut oracle,
            2,
            "seq-1",
            &request(registry_key, "r1", &x),
        )
        .await
        .unwrap();
        assert!(!second.resigned, "a first signature for {registry_key}");
        assert_eq!(second.signed_message, first.signed_message);
        assert!(keys.verifies(registry_key, &second.signed_message, &second.signature));
        assert!(!keys.verifies(file_key, &second.signed_message, &second.signature));
        // It was recorded for the second key: Y is a conflict there, whatever the id.
        for id in ["r1", "r2", ""] {
            let y_req = request(registry_key, id, &y);
            assert_refused(
                sign(&cluster, &mut oracle, 3, "seq-2", &y_req).await,
                conflict,
            );
        }
        assert_refused(
            sign(
                &cluster,
                &mut oracle,
                1,
                "seq-1",
                &request(file_key, "r1", &y),
            )
            .await,
            conflict,
        );
        // The identical request again is a re-sign, for each key.
        let again = sign(
            &cluster,
            &mut oracle,
            3,
            "seq-3",
            &request(registry_key, "r1", &x),
        )
        .await
        .unwrap();
        assert!(again.resigned);
        assert_eq!(again.signature, second.signature);
    }
    assert_eq!(oracle.signatures(), 6);
    let conflicts = oracle.conflicts();
    assert!(conflicts.is_empty(), "{conflicts:#?}");
}

/// (2) Digests chosen by clients: a vote's digest inside a quorum proposal is signed only as
/// part of the proposal's own leaf commitment; an attestation's root sent as a raw block root
/// is refused for a client whose grant does not trust raw roots.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn digests_copied_across_kinds_are_never_signed_as_the_other_kind() {
    let cluster = Cluster::start(3).await;
    let keys = public_keys(&cluster).await;
    let mut oracle = keys.oracle();
    let x = request(ESPRESSO_KEY, "", &vote(10, 1));
    sign(&cluster, &mut oracle, 1, "seq-1", &x).await.unwrap();
    let y = request(ESPRESSO_KEY, "", &vote(10, 2));
    assert_refused(
        sign(&cluster, &mut oracle, 2, "seq-1", &y).await,
        "equivocation",
    );
    // A proposal at view 11 whose every 32-byte field is Y's vote digest.
    let copying = Msg::ProposalCopyingVote {
        view: 11,
        vote_view: 10,
        vote_leaf: 2,
    };
    let proposal = request(ESPRESSO_KEY, "", &copying);
    let resp = sign(&cluster, &mut oracle, 3, "seq-1", &proposal)
        .await
        .unwrap();
    let y_digest = quorum_vote_digest(10, 2);
    assert_eq!(y.digest, y_digest);
    assert_ne!(resp.signed_message, y_digest.to_vec());
    assert_eq!(
        resp.signed_message,
        proposal.digest.to_vec(),
        "the leaf2 commitment"
    );
    assert!(!keys.verifies(ESPRESSO_KEY, &y_digest, &resp.signature));

    // eth2: an attestation is signed; its root (and a conflicting one's) as a raw block root
    // is refused before anything is proposed.
    let att = request(ETH2_KEY, "", &attestation(1, 2, 1));
    sign(&cluster, &mut oracle, 1, "seq-1", &att).await.unwrap();
    for root in [1, 2] {
        let raw = Msg::RawBlockCopyingAttestation {
            slot: 40,
            source: 1,
            target: 2,
            root,
        };
        let status = sign(
            &cluster,
            &mut oracle,
            2,
            "seq-1",
            &request(ETH2_KEY, "", &raw),
        )
        .await
        .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        assert!(
            status.message().contains(
                "raw signing roots are accepted only from a client whose grant trusts them"
            ),
            "{status:?}"
        );
    }
    // The raw attestation form too.
    let raw_attestation = pb::SignRequest {
        request_id: String::new(),
        key_id: ETH2_KEY.into(),
        message: Some(pb::sign_request::Message::Eth2(pb::Eth2Request {
            form: Some(pb::eth2_request::Form::RootAttestation(
                pb::RootAttestation {
                    source_epoch: 1,
                    target_epoch: 2,
                    signing_root: quorum_vote_digest(10, 2).to_vec(),
                },
            )),
            signing_root: Vec::new(),
        })),
    };
    let status = cluster
        .client(3, "seq-1")
        .await
        .sign(raw_attestation)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    // A typed block that names the attestation's root as the root it expects is refused: the
    // signer computes the block's own root and never signs the one the client sent.
    let block = request(ETH2_KEY, "", &Msg::Block { slot: 40, body: 1 });
    let mut typed = block.request.clone();
    if let Some(pb::sign_request::Message::Eth2(r)) = &mut typed.message {
        r.signing_root = att.digest.to_vec();
    }
    let status = cluster
        .client(1, "seq-1")
        .await
        .sign(typed)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().starts_with(&format!(
            "eth2.signing_root: the signer computed 0x{} for this BLOCK_V2 message",
            hex::encode(block.digest)
        )),
        "{status:?}"
    );
    assert_eq!(oracle.signatures(), 3);
    let conflicts = oracle.conflicts();
    assert!(conflicts.is_empty(), "{conflicts:#?}");
}

/// (3) A key id shared by a key file and a registry key: the admin plane refuses a registry
/// key whose id a key file on the proposing node holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_registry_key_cannot_take_the_id_of_a_key_file() {
    let cluster = Cluster::start_with(3, local_kek).await;
    let proposed = cluster
        .propose(pb::propose_request::Request::GenerateKey(
            pb::GenerateKeyRequest {
                key_id: ESPRESSO_KEY.into(),
                profile: "espresso".into(),
            },
        ))
        .await;
    match proposed {
        Err(status) => {
            assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
            let message = status.message();
            assert!(
                message.contains(&format!("{ESPRESSO_KEY:?}")) && message.contains("key file"),
                "{status:?}"
            );
        }
        Ok(challenge) => {
            // Accepted: record what it leads to, for the bug report, then fail.
            let approved = cluster.approve_as("admin-1", &challenge).await;
            let record = cluster.key_info(ESPRESSO_KEY).await;
            let mut c = cluster.client(1, "seq-1").await;
            let signed = sign_retrying(&mut c, support::quorum_vote(10, 1, "")).await;
            let outcome = signed
                .as_ref()
                .map(|r| hex::encode(&r.signature[..8]))
                .map_err(|s| (s.code(), refusal_code(s), s.message().to_owned()));
            panic!(
                "the admin plane accepted a registry key with the id of key file {ESPRESSO_KEY:?}: \
                 challenge {:?} ({}); approval: {:?}; registry record: {record:?}; a vote with \
                 {ESPRESSO_KEY:?} afterwards: {outcome:?}",
                challenge.description,
                hex::encode(&challenge.id),
                approved.map(|a| a.status)
            );
        }
    }
    // Importing under the other key file's id is refused the same way.
    let status = cluster
        .import_key(ETH2_KEY, "eth2", &[0x5a; 32])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    assert!(
        status.message().contains(&format!("{ETH2_KEY:?}"))
            && status.message().contains("key file"),
        "{status:?}"
    );
    // Nothing changed: the registry has no such key, and the key file signs as before.
    assert!(cluster.key_info(ESPRESSO_KEY).await.is_none());
    assert!(cluster.key_info(ETH2_KEY).await.is_none());
    let keys = public_keys(&cluster).await;
    let mut c = cluster.client(2, "seq-1").await;
    let resp = sign_retrying(&mut c, support::quorum_vote(10, 1, ""))
        .await
        .unwrap();
    assert_eq!(keys.public_key(ESPRESSO_KEY), cluster.espresso_public_key);
    assert!(keys.verifies(ESPRESSO_KEY, &resp.signed_message, &resp.signature));
}

/// Node `id`'s status once it answers.
async fn status_of(cluster: &Cluster, id: u64) -> pb::ClusterStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(s) = cluster.status(id).await {
            return s;
        }
        assert!(Instant::now() < deadline, "node {id} does not answer");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// (3) The same id as a key file on one follower only (which the proposing leader cannot
/// see) and as a registry key: the two keys never sign for each other. While another node
/// leads, the registry key signs; once the node with the key file leads, requests for the id
/// are refused `key_mismatch` (it never signs with its file key for the registry's record).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_file_on_one_node_and_a_registry_key_never_sign_for_each_other() {
    const SHARED: &str = "node-local";
    let cluster = Cluster::start_with(3, local_kek).await;
    let leader = cluster.wait_leader(Duration::from_secs(10)).await;
    let holder = (1..=3).find(|id| *id != leader).unwrap();
    cluster.kill(holder);
    signer_node::keyring::KeyFile::generate(SHARED, signer_node::protection::Profile::Espresso)
        .unwrap()
        .write_new(
            &cluster
                .dir()
                .join(format!("node-{holder}/keys/{SHARED}.key")),
        )
        .unwrap();
    cluster.spawn(holder);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !status_of(&cluster, holder)
        .await
        .keys_loaded
        .iter()
        .any(|k| k == SHARED)
    {
        assert!(
            Instant::now() < deadline,
            "node {holder} did not load its key file"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // It was killed right after the start and may not have applied the bootstrap yet.
    cluster.wait_bootstrapped().await;
    let (_, file_pk) = public_keys_by_node(&cluster)
        .await
        .into_iter()
        .find(|(id, _)| *id == holder)
        .unwrap();
    assert_eq!(cluster.wait_leader(Duration::from_secs(10)).await, leader);

    // The node holding the key file refuses to prepare the key; the leader, which does not
    // hold it, prepares it.
    let generate = pb::ProposeRequest {
        request: Some(pb::propose_request::Request::GenerateKey(
            pb::GenerateKeyRequest {
                key_id: SHARED.into(),
                profile: "espresso".into(),
            },
        )),
    };
    let status = cluster
        .admin(holder)
        .await
        .propose(generate.clone())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    let challenge = cluster
        .admin(leader)
        .await
        .propose(generate)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        cluster
            .approve_as("admin-1", &challenge)
            .await
            .unwrap()
            .status,
        "executed"
    );
    let registry_pk = cluster.key_info(SHARED).await.unwrap().public_key;
    // Every node but the holder loads the registry key; the holder keeps its file key under
    // the id, reports the registry key pending, and lists neither in GetPublicKeys.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let holder_status = status_of(&cluster, holder).await;
        let pending = holder_status
            .keys_pending
            .iter()
            .any(|p| p.key_id == SHARED);
        let keys = public_keys_by_node(&cluster).await;
        let others_loaded = keys
            .iter()
            .filter(|(id, _)| *id != holder)
            .all(|(_, k)| k.0.get(SHARED).map(|e| &e.1) == Some(&registry_pk));
        if pending && others_loaded {
            // The holder offers no key under the id: its file key cannot sign for the
            // registry's id, and the registry key is not loaded there.
            let on_holder = &keys.iter().find(|(id, _)| *id == holder).unwrap().1;
            assert!(
                !on_holder.0.contains_key(SHARED),
                "the holder lists {SHARED}: {on_holder:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "registry key not loaded: {keys:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (scheme, file_key) = file_pk.0[SHARED].clone();
    let vote_request = |view| request(SHARED, "", &vote(view, 1)).request;
    // Another node leads: the registry key signs, whichever node is asked.
    for id in 1..=3 {
        let mut c = cluster.client(id, "seq-1").await;
        let resp = sign_retrying(&mut c, vote_request(1)).await.unwrap();
        assert!(verify(
            scheme,
            &registry_pk,
            &resp.signed_message,
            &resp.signature
        ));
        assert!(!verify(
            scheme,
            &file_key,
            &resp.signed_message,
            &resp.signature
        ));
    }
    // The holder leads: it holds the id under another public key than the registry's, so it
    // refuses, for a new view and for the view the registry key signed. An answer counts only
    // if the holder led, in one term, from before the request until after it.
    for view in [2, 1] {
        let mut attempts = 0;
        loop {
            attempts += 1;
            assert!(attempts <= 10, "node {holder} did not keep the leadership");
            make_leader(&cluster, holder).await;
            let before = status_of(&cluster, holder).await;
            let mut c = cluster.client(holder, "seq-1").await;
            let result = sign_retrying(&mut c, vote_request(view)).await;
            let after = status_of(&cluster, holder).await;
            let held = before.leader_id == holder
                && after.leader_id == holder
                && after.term == before.term;
            if held {
                let status = result.unwrap_err();
                assert_eq!(
                    refusal_code(&status).as_deref(),
                    Some("key_mismatch"),
                    "{status:?}"
                );
                break;
            }
            // Another node led meanwhile: whatever was signed is the registry key's.
            if let Ok(resp) = result {
                assert!(verify(
                    scheme,
                    &registry_pk,
                    &resp.signed_message,
                    &resp.signature
                ));
            }
        }
    }
}

/// SIGKILL the leader (and start it again) until node `id` wins an election.
async fn make_leader(cluster: &Cluster, id: u64) {
    let mut attempts = 0;
    loop {
        let current = cluster.wait_leader(Duration::from_secs(30)).await;
        if current == id {
            return;
        }
        attempts += 1;
        assert!(attempts <= 12, "node {id} never won an election");
        cluster.kill(current);
        cluster.wait_leader(Duration::from_secs(30)).await;
        cluster.spawn(current);
    }
}

/// (5) Probing: an identity without a grant gets the same answer for an existing and a
/// nonexistent key id (it learns nothing about which ids exist); a granted client gets
/// NOT_FOUND for an id no key has.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn probing_key_ids_without_a_grant_learns_nothing() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.wait_leader(Duration::from_secs(10)).await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let cases = [
        (ESPRESSO_KEY, vote(5, 1)),
        (ETH2_KEY, Msg::Block { slot: 5, body: 1 }),
    ];
    for node in [leader, follower] {
        for (existing, msg) in &cases {
            let mut c = cluster.client(node, "nobody-1").await;
            let on_existing = c
                .sign(request(existing, "", msg).request)
                .await
                .unwrap_err();
            let on_missing = c
                .sign(request(MISSING_KEY, "", msg).request)
                .await
                .unwrap_err();
            for s in [&on_existing, &on_missing] {
                assert_eq!(s.code(), Code::PermissionDenied, "node {node}: {s:?}");
                assert_eq!(
                    s.message(),
                    "client \"nobody-1\" has no access grant",
                    "node {node}"
                );
            }
            assert_eq!(on_existing.message(), on_missing.message());
            assert!(on_existing.details().is_empty() && on_missing.details().is_empty());
            // The same inside a batch.
            let batch = pb::SignBatchRequest {
                requests: vec![
                    request(existing, "", msg).request,
                    request(MISSING_KEY, "", msg).request,
                ],
            };
            let results = cluster
                .client(node, "nobody-1")
                .await
                .sign_batch(batch)
                .await
                .unwrap()
                .into_inner()
                .results;
            let answers: Vec<Outcome> = results.into_iter().map(Outcome::of_batch).collect();
            for a in &answers {
                let Outcome::Failed { code, message, .. } = a else {
                    panic!("node {node}: {a:?}")
                };
                assert_eq!(*code, Code::PermissionDenied, "node {node}: {a:?}");
                assert_eq!(message, on_existing.message());
            }
        }
        // Nor does listing the keys tell it anything.
        let status = cluster
            .client(node, "nobody-1")
            .await
            .get_public_keys(pb::GetPublicKeysRequest {})
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        assert_eq!(status.message(), "client \"nobody-1\" has no access grant");
        // A granted client is told the id does not exist.
        let status = cluster
            .client(node, "seq-1")
            .await
            .sign(request(MISSING_KEY, "", &vote(5, 1)).request)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        assert_eq!(
            status.message(),
            format!("key_id: no active key {MISSING_KEY:?} on this cluster")
        );
    }
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// (5) File modes: a started node's data dir is 0700 and its databases 0600, and a node
/// tightens modes that were loosened while it was down.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn data_dir_and_databases_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let cluster = Cluster::start(3).await;
    let data = |id: u64| cluster.dir().join(format!("node-{id}/data"));
    let files = ["raft-log.redb", "raft-log.journal", "state.redb"];
    for id in 1..=3 {
        assert_eq!(mode(&data(id)), 0o700, "node {id}'s data dir");
        for f in files {
            assert_eq!(mode(&data(id).join(f)), 0o600, "node {id}'s {f}");
        }
    }
    cluster.kill(3);
    let loosen = |path: &std::path::Path, m: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(m)).unwrap();
    };
    loosen(&data(3), 0o755);
    for f in files {
        loosen(&data(3).join(f), 0o644);
    }
    cluster.spawn(3);
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster.status(3).await.is_none() {
        assert!(Instant::now() < deadline, "node 3 did not come back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(mode(&data(3)), 0o700, "node 3's data dir after the restart");
    for f in files {
        assert_eq!(
            mode(&data(3).join(f)),
            0o600,
            "node 3's {f} after the restart"
        );
    }
}

/// Node `id`'s audit records, decoded.
async fn audit_records(cluster: &Cluster, id: u64) -> Vec<audit::AuditRecord> {
    cluster
        .audit_entries(id)
        .await
        .iter()
        .map(|e| audit::decode(&e.record).unwrap())
        .collect()
}

/// (node, client) of every access-denied record.
fn denials(records: &[audit::AuditRecord]) -> Vec<(u64, String)> {
    records
        .iter()
        .filter_map(|r| match &r.event {
            AuditEvent::Node(NodeEvent::AccessDenied { node, client, .. }) => {
                Some((*node, client.clone()))
            }
            _ => None,
        })
        .collect()
}

/// (5) A burst of requests from an identity without a grant adds one audit record on the node
/// it called (later denials within the interval are only counted).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_denied_requests_is_audited_once() {
    let cluster = Cluster::start(3).await;
    let node = 2;
    assert!(denials(&audit_records(&cluster, node).await).is_empty());
    let c = cluster.client(node, "nobody-1").await;
    let burst = (0..50u64).map(|i| {
        let mut c = c.clone();
        async move {
            c.sign(support::quorum_vote(100 + i, 1, &format!("burst-{i}")))
                .await
        }
    });
    for result in futures::future::join_all(burst).await {
        let status = result.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    }
    // A marker: admin-2 has no client grant either; its denial is queued on the same node
    // after the burst's, so once it is in the log the burst's records are too.
    let marker = cluster
        .client(node, "admin-2")
        .await
        .sign(support::quorum_vote(1, 1, ""))
        .await
        .unwrap_err();
    assert_eq!(marker.code(), Code::PermissionDenied);
    let deadline = Instant::now() + Duration::from_secs(30);
    let found = loop {
        let found = denials(&audit_records(&cluster, node).await);
        if found.iter().any(|(_, client)| client == "admin-2") {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "the marker denial never reached the log: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let burst: Vec<_> = found.iter().filter(|(_, c)| c == "nobody-1").collect();
    assert_eq!(burst, [&(node, "nobody-1".to_owned())], "{found:?}");
    // Every node holds the same records.
    let deadline = Instant::now() + Duration::from_secs(30);
    for id in 1..=3 {
        loop {
            if denials(&audit_records(&cluster, id).await) == found {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {id} has other denial records"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
