//! What the HAProxy test asserts after the run, over the client's attempt log and the nodes'
//! protection export, and how it reports that log (the gaps after each kill, the client's
//! failures as timeline events).
//!
//! Owns: `Kill`, `Gap`, `Tally`, the `check_*` functions and the report lines.
//!
//! Must not: send requests, stop or start nodes, or compute SSZ itself (roots come from
//! `roots`); apart from reading the export, it only reads what the run recorded.

use super::roots::signing_root_of;
use super::validator::{secs, Attempt, Intent, Outcome};
use super::MAX_GAP;
use crate::support::Cluster;
use signer_node::protection::interchange;
use signer_node::scheme::bls12_381;
use std::collections::BTreeMap;
use std::time::Duration;

/// A SIGKILL of the leader, and when the node was started again (the gap is over by then).
pub struct Kill {
    pub node: u64,
    pub at: Duration,
    pub behind_haproxy: bool,
    pub restarted: Duration,
}

/// What the client saw after a kill at `at`, counting failures until `until`.
#[derive(Debug)]
pub struct Gap {
    /// The first answer (200 or 412) to a request sent after the kill.
    pub first_answer: Option<Duration>,
    /// The last 503 or transport error.
    pub last_failure: Option<Duration>,
    /// The first answer after the last failure: the gap is `at..end`.
    pub end: Option<Duration>,
}

pub fn gap(log: &[Attempt], at: Duration, until: Duration) -> Gap {
    let answered_from = |from: Duration| {
        log.iter()
            .filter(|a| a.started >= from && a.outcome.answered())
            .map(|a| a.ended)
            .min()
    };
    let last_failure = log
        .iter()
        .filter(|a| a.outcome.ambiguous() && a.ended >= at && a.ended < until)
        .map(|a| a.ended)
        .max();
    Gap {
        first_answer: answered_from(at),
        last_failure,
        end: answered_from(last_failure.unwrap_or(at)),
    }
}

/// Nothing but 200 and 412, except 503s and transport errors between a kill and the node's
/// restart; each gap (the kill to the first answer after its last failure) within `MAX_GAP`.
pub fn check_answers(log: &[Attempt], kills: &[Kill]) -> Vec<Gap> {
    if let Some(a) = log
        .iter()
        .find(|a| matches!(a.outcome, Outcome::Unexpected(_)))
    {
        panic!("unexpected answer:\n{}", a.describe());
    }
    let in_gap = |a: &Attempt| {
        kills
            .iter()
            .any(|k| a.ended >= k.at && a.ended < k.restarted)
    };
    if let Some(a) = log.iter().find(|a| a.outcome.ambiguous() && !in_gap(a)) {
        panic!(
            "a failure outside the gaps after the kills:\n{}",
            a.describe()
        );
    }
    let gaps: Vec<Gap> = kills.iter().map(|k| gap(log, k.at, k.restarted)).collect();
    for (k, g) in kills.iter().zip(&gaps) {
        let end = g.end.expect("answers after the gap");
        assert!(end - k.at <= MAX_GAP, "node {}: {g:?}", k.node);
    }
    gaps
}

/// Every signature verifies against the root computed here; identical data always gets the
/// identical signature; no slot or target has two signed roots. Returns the signed root per
/// position.
pub fn check_signatures(log: &[Attempt], pk: &[u8]) -> BTreeMap<(&'static str, u64), [u8; 32]> {
    let mut signature_of: BTreeMap<[u8; 32], &Vec<u8>> = BTreeMap::new();
    let mut signed_at: BTreeMap<(&'static str, u64), [u8; 32]> = BTreeMap::new();
    for a in log {
        let Outcome::Signed(sig) = &a.outcome else {
            continue;
        };
        let root = signing_root_of(&a.duty.body()).unwrap();
        assert!(
            bls12_381::verify_bytes(pk, &root, sig),
            "the signature does not verify:\n{}",
            a.describe()
        );
        let first = *signature_of.entry(root).or_insert(sig);
        assert_eq!(first, sig, "two signatures for one root:\n{}", a.describe());
        let signed = *signed_at.entry(a.duty.position()).or_insert(root);
        assert_eq!(
            signed,
            root,
            "conflicting signatures at {:?}:\n{}",
            a.duty.position(),
            a.describe()
        );
    }
    signed_at
}

/// How many requests the client made, and of which kinds.
#[derive(Debug, Default)]
pub struct Tally {
    pub requests: usize,
    pub conflicts: usize,
    pub after_ambiguity: usize,
    pub resends: usize,
}

/// Per request: fresh and resent ones end signed and are never refused (an identical retry
/// after an ambiguous failure is re-signed); conflicting ones end refused with their code and
/// are never signed. A fresh request never answered would be "possibly signed": that fails the
/// test too (the client retries longer than a gap may last).
pub fn check_requests(log: &[Attempt]) -> Tally {
    let mut requests: BTreeMap<u64, Vec<&Attempt>> = BTreeMap::new();
    for a in log {
        requests.entry(a.request).or_default().push(a);
    }
    let mut tally = Tally {
        requests: requests.len(),
        ..Tally::default()
    };
    let mut possibly_signed = Vec::new();
    for attempts in requests.values() {
        let last = attempts.last().unwrap();
        match last.intent {
            Intent::Fresh | Intent::Resend => {
                if let Some(a) = attempts
                    .iter()
                    .find(|a| matches!(a.outcome, Outcome::Refused(_)))
                {
                    panic!("an honest request was refused:\n{}", a.describe());
                }
                tally.resends += usize::from(last.intent == Intent::Resend);
                if !matches!(last.outcome, Outcome::Signed(_)) {
                    possibly_signed.push(last.duty);
                }
            }
            Intent::Conflict {
                code,
                after_ambiguity,
            } => {
                tally.conflicts += 1;
                tally.after_ambiguity += usize::from(after_ambiguity);
                assert_eq!(
                    last.outcome,
                    Outcome::Refused(code.into()),
                    "conflicting request:\n{}",
                    last.describe()
                );
            }
        }
    }
    assert!(
        possibly_signed.is_empty(),
        "requests never answered (possibly signed): {possibly_signed:?}"
    );
    tally
}

/// Every node exports what the client saw: the highest signed slot with its root, and the
/// highest source and target with the root signed at the target. Returns (slot, target).
pub async fn check_export(
    cluster: &Cluster,
    signed_at: &BTreeMap<(&'static str, u64), [u8; 32]>,
) -> (u64, u64) {
    let export = cluster
        .converged_protection(3, Duration::from_secs(30))
        .await;
    let doc = interchange::parse(&export).unwrap();
    let pk = &cluster.eth2_public_key;
    let history: Vec<_> = doc.data.iter().filter(|h| h.pubkey.0 == pk[..]).collect();
    let blocks: Vec<_> = history.iter().flat_map(|h| &h.signed_blocks).collect();
    let votes: Vec<_> = history
        .iter()
        .flat_map(|h| &h.signed_attestations)
        .collect();
    let highest = |kind: &'static str| {
        let ((_, n), root) = signed_at
            .range((kind, 0)..=(kind, u64::MAX))
            .last()
            .unwrap();
        (*n, *root)
    };
    let (slot, block_root) = highest("block");
    let (target, vote_root) = highest("attestation");
    assert_eq!(blocks.len(), 1, "{export}");
    assert_eq!(
        (blocks[0].slot, blocks[0].signing_root.map(|r| r.0)),
        (slot, Some(block_root)),
        "{export}"
    );
    assert_eq!(votes.len(), 1, "{export}");
    assert_eq!(
        (
            votes[0].source_epoch,
            votes[0].target_epoch,
            votes[0].signing_root.map(|r| r.0)
        ),
        (target - 1, target, Some(vote_root)),
        "{export}"
    );
    (slot, target)
}

/// Each kill's gap in one line, for the summary.
pub fn describe_gaps(kills: &[Kill], gaps: &[Gap]) -> String {
    let text: Vec<String> = kills
        .iter()
        .zip(gaps)
        .map(|(k, g)| {
            let behind = match k.behind_haproxy {
                true => "the node behind HAProxy",
                false => "not the node behind HAProxy",
            };
            let length = secs(g.end.unwrap() - k.at);
            match (g.first_answer, g.last_failure) {
                (Some(first), Some(last)) if last > first => format!(
                    "node-{} ({behind}) {length} (answered after {}, failures until {})",
                    k.node,
                    secs(first - k.at),
                    secs(last - k.at)
                ),
                _ => format!("node-{} ({behind}) {length}", k.node),
            }
        })
        .collect();
    text.join(", ")
}

/// The client's unanswered attempts as timeline events: one per run of the same kind, naming
/// the request(s) it hit.
pub fn client_events(log: &[Attempt]) -> Vec<(Duration, String)> {
    struct Run {
        from: Duration,
        to: Duration,
        kind: &'static str,
        text: String,
        attempts: usize,
        requests: Vec<String>,
    }
    let flush = |run: Run| {
        let line = format!(
            "client: {} x {} until {} on {}: {}",
            run.attempts,
            run.kind,
            secs(run.to),
            run.requests.join(", "),
            run.text
        );
        (run.from, line)
    };
    let mut out = Vec::new();
    let mut current: Option<Run> = None;
    for a in log {
        let kind = match &a.outcome {
            Outcome::Unavailable(text) => Some(("503", text)),
            Outcome::Transport(e) => Some(("transport error", e)),
            _ => None,
        };
        let request = format!("#{} {:?} {:?}", a.request, a.duty, a.intent);
        match (&mut current, kind) {
            (Some(run), Some((k, _))) if run.kind == k => {
                run.to = a.ended;
                run.attempts += 1;
                if !run.requests.contains(&request) {
                    run.requests.push(request);
                }
            }
            (_, kind) => {
                out.extend(current.take().map(flush));
                current = kind.map(|(kind, text)| Run {
                    from: a.ended,
                    to: a.ended,
                    kind,
                    text: text.clone(),
                    attempts: 1,
                    requests: vec![request],
                });
            }
        }
    }
    out.extend(current.map(flush));
    out
}
