//! What the adversarial cluster tests share: the keys a support cluster publishes (key files
//! and registry keys generated through the admin plane), requests built from the oracle's
//! generator, and sending them as Sign or SignBatch with the retries a client makes.
//!
//! Must not: decide what is safe (the oracle does) or hide an error: every outcome is returned
//! with its status code and refusal code.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::oracle::requests::{build, Built, Msg};
use crate::oracle::{Meaning, Oracle, Scheme};
use crate::support::{local_kek, refusal_code, Cluster, ESPRESSO_KEY, ETH2_KEY};
use signer_node::pb;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tonic::Code;

/// Registry keys the tests generate through the admin plane (next to the key files
/// `demo-espresso` and `demo-eth2` that every node of a support cluster loads).
pub const REGISTRY_ESPRESSO: &str = "registry-espresso";
pub const REGISTRY_ETH2: &str = "registry-eth2";
pub const MISSING_KEY: &str = "no-such-key";
pub const CLIENTS: [&str; 3] = ["seq-1", "seq-2", "seq-3"];
/// Sequences per run and operations per sequence (all on one cluster).
pub const CASES: u32 = 2;
pub const OPS: usize = 60;
/// Every code the protection rules refuse with.
pub const REFUSALS: &[&str] = &[
    "double_block_proposal",
    "block_slot_not_above_watermark",
    "double_vote",
    "target_below_watermark",
    "source_below_watermark",
    "source_after_target",
    "view_below_watermark",
    "equivocation",
    "outside_window",
    "beyond_view_horizon",
    "vote2_after_timeout",
];

// ---- keys ------------------------------------------------------------------------------------

/// The keys the cluster publishes: key id → (scheme, public key).
#[derive(Clone, Debug, PartialEq)]
pub struct Keys(pub BTreeMap<String, (Scheme, Vec<u8>)>);

impl Keys {
    pub fn oracle(&self) -> Oracle {
        Oracle::new(self.0.values().cloned().collect())
    }

    pub fn public_key(&self, key_id: &str) -> &[u8] {
        &self.0[key_id].1
    }

    /// Whether `signature` over `message` verifies under `key_id`'s public key.
    pub fn verifies(&self, key_id: &str, message: &[u8], signature: &[u8]) -> bool {
        let (scheme, pk) = &self.0[key_id];
        verify(*scheme, pk, message, signature)
    }
}

pub fn verify(scheme: Scheme, pk: &[u8], message: &[u8], signature: &[u8]) -> bool {
    use signer_node::scheme::{bls12_381, bn254};
    match scheme {
        Scheme::Bls12381 => bls12_381::verify_bytes(pk, message, signature),
        Scheme::Bn254 => match (
            bn254::PublicKey::from_bytes(pk),
            bn254::Signature::from_bytes(signature),
        ) {
            (Ok(pk), Ok(sig)) => sig.verify(&pk, message),
            _ => false,
        },
    }
}

/// The keys a GetPublicKeys answer lists.
pub fn keys_of(listed: Vec<pb::KeyInfo>) -> Keys {
    Keys(
        listed
            .into_iter()
            .map(|k| {
                let scheme = match k.profile.as_str() {
                    "eth2" => Scheme::Bls12381,
                    "espresso" => Scheme::Bn254,
                    other => panic!("unknown profile {other:?}"),
                };
                (k.key_id, (scheme, k.public_key))
            })
            .collect(),
    )
}

/// GetPublicKeys on every running node (as seq-1, whose grant covers every key); every node
/// must publish the same keys.
pub async fn public_keys(cluster: &Cluster) -> Keys {
    let mut by_node = public_keys_by_node(cluster).await.into_iter();
    let (_, first) = by_node.next().unwrap();
    for (id, keys) in by_node {
        assert_eq!(first, keys, "node {id} publishes other keys");
    }
    first
}

pub async fn wait_registry_keys_loaded(cluster: &Cluster) {
    cluster
        .wait_all("registry keys loaded on every node", |s| {
            [REGISTRY_ESPRESSO, REGISTRY_ETH2]
                .iter()
                .all(|k| s.keys_loaded.iter().any(|l| l == k))
        })
        .await;
}

/// A cluster with a local KEK, and one registry key per profile generated through the admin
/// plane and loaded on every node.
pub async fn cluster_with_registry_keys() -> (Cluster, Keys) {
    let cluster = Cluster::start_with(3, local_kek).await;
    cluster
        .generate_key(REGISTRY_ESPRESSO, "espresso")
        .await
        .unwrap();
    cluster.generate_key(REGISTRY_ETH2, "eth2").await.unwrap();
    wait_registry_keys_loaded(&cluster).await;
    let keys = public_keys(&cluster).await;
    let ids: Vec<&str> = keys.0.keys().map(String::as_str).collect();
    assert_eq!(
        ids,
        [ESPRESSO_KEY, ETH2_KEY, REGISTRY_ESPRESSO, REGISTRY_ETH2],
        "two key files and two registry keys"
    );
    (cluster, keys)
}

// ---- requests and outcomes ----------------------------------------------------------------

/// A request for `msg` with `key_id`, with the oracle's meaning(s) and digest for it.
pub struct Asked {
    pub request: pb::SignRequest,
    pub meaning: Meaning,
    pub digest: [u8; 32],
    pub copied: Vec<(Meaning, [u8; 32])>,
    pub digest_chosen_by_client: bool,
}

pub fn request(key_id: &str, request_id: &str, msg: &Msg) -> Asked {
    let Built {
        message,
        meaning,
        digest,
        signed: _,
        copied,
        digest_chosen_by_client,
    } = build(msg);
    Asked {
        request: pb::SignRequest {
            request_id: request_id.into(),
            key_id: key_id.into(),
            message: Some(message),
        },
        meaning,
        digest,
        copied,
        digest_chosen_by_client,
    }
}

impl Asked {
    /// Tell the oracle what this request's digest stands for (a client-chosen digest stands
    /// only for what it was copied from; the claim counts once it is signed, see `received`).
    pub fn announce(&self, oracle: &mut Oracle) {
        if !self.digest_chosen_by_client {
            oracle.asked(self.meaning.clone(), self.digest);
        }
        for (m, d) in &self.copied {
            oracle.asked(m.clone(), *d);
        }
    }
}

pub fn is_eth2(msg: &Msg) -> bool {
    matches!(
        msg,
        Msg::Block { .. }
            | Msg::Attestation { .. }
            | Msg::RawBlockCopyingAttestation { .. }
            | Msg::Randao { .. }
            | Msg::AggregationSlot { .. }
    )
}

/// How one request ended, whether answered by Sign or inside a SignBatch.
#[derive(Debug)]
pub enum Outcome {
    Signed(pb::SignResponse),
    Failed {
        code: Code,
        message: String,
        refusal: Option<String>,
    },
}

impl Outcome {
    pub fn of(result: Result<pb::SignResponse, tonic::Status>) -> Outcome {
        match result {
            Ok(r) => Outcome::Signed(r),
            Err(s) => Outcome::Failed {
                code: s.code(),
                message: s.message().to_owned(),
                refusal: refusal_code(&s),
            },
        }
    }

    pub fn of_batch(result: pb::SignBatchResult) -> Outcome {
        use pb::sign_batch_result::Result as R;
        match result.result {
            Some(R::Signed(r)) => Outcome::Signed(r),
            Some(R::Error(e)) => Outcome::Failed {
                code: Code::from_i32(e.code),
                message: e.message,
                refusal: e.refusal.map(|r| r.code),
            },
            None => panic!("a batch result without a result"),
        }
    }

    pub fn code(&self) -> Code {
        match self {
            Outcome::Signed(_) => Code::Ok,
            Outcome::Failed { code, .. } => *code,
        }
    }

    /// The outcome class counted in the report.
    pub fn class(&self) -> String {
        match self {
            Outcome::Signed(r) if r.resigned => "resigned".into(),
            Outcome::Signed(_) => "signed".into(),
            Outcome::Failed {
                refusal: Some(r), ..
            } => format!("refused:{r}"),
            Outcome::Failed { code, .. } => format!("{code:?}"),
        }
    }
}

/// Send `requests` as `client` starting at the `node`-th running node: one Sign for a single
/// request, else one SignBatch. Requests answered UNAVAILABLE are sent again (the identical
/// request, as `support::sign_retrying` does) on the next running node until a 20 s deadline.
/// Returns the outcomes in request order and how many UNAVAILABLE answers were retried.
pub async fn send(
    cluster: &Cluster,
    client: &str,
    node: usize,
    requests: &[pb::SignRequest],
) -> (Vec<Outcome>, usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut outcomes: Vec<Option<Outcome>> = requests.iter().map(|_| None).collect();
    let mut pending: Vec<usize> = (0..requests.len()).collect();
    let (mut retried, mut attempt) = (0, 0);
    while !pending.is_empty() {
        let running = cluster.running();
        let id = running[(node + attempt) % running.len()];
        attempt += 1;
        let mut c = cluster.client(id, client).await;
        let answers: Vec<Outcome> = if requests.len() == 1 {
            vec![Outcome::of(
                c.sign(requests[0].clone())
                    .await
                    .map(tonic::Response::into_inner),
            )]
        } else {
            let batch = pb::SignBatchRequest {
                requests: pending.iter().map(|&i| requests[i].clone()).collect(),
            };
            match c.sign_batch(batch).await {
                Ok(r) => {
                    let results = r.into_inner().results;
                    assert_eq!(results.len(), pending.len(), "one result per request");
                    results.into_iter().map(Outcome::of_batch).collect()
                }
                Err(s) => pending
                    .iter()
                    .map(|_| Outcome::Failed {
                        code: s.code(),
                        message: s.message().to_owned(),
                        refusal: None,
                    })
                    .collect(),
            }
        };
        let mut again = Vec::new();
        for (i, outcome) in pending.iter().zip(answers) {
            if outcome.code() == Code::Unavailable && Instant::now() < deadline {
                again.push(*i);
                retried += 1;
            } else {
                outcomes[*i] = Some(outcome);
            }
        }
        pending = again;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    (outcomes.into_iter().map(Option::unwrap).collect(), retried)
}

/// GetPublicKeys on every running node, as (node, keys).
pub async fn public_keys_by_node(cluster: &Cluster) -> Vec<(u64, Keys)> {
    let mut out = Vec::new();
    for id in cluster.running() {
        let listed = cluster
            .client(id, "seq-1")
            .await
            .get_public_keys(pb::GetPublicKeysRequest {})
            .await
            .unwrap()
            .into_inner()
            .keys;
        out.push((id, keys_of(listed)));
    }
    out
}
