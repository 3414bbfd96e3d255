//! The `signer.v1.Audit` service: tail, follow, get and verify the audit log of this node, and
//! take a backup of the replicated state.
//!
//! Owns: authorizing auditors, reading records from this node's state database, filtering,
//! following new records, and the backup read (on the leader, after a linearizable read, so a
//! backup holds everything acknowledged before it was asked for). Must not: change anything,
//! or answer from memory what must come from the database (Verify recomputes the chain from
//! redb).
//!
//! Authorization: the caller's client certificate, not revoked ([`super::authn`]), must name an
//! `auditor-…` identity or an enrolled admin. A `Tail` that follows ends with UNAUTHENTICATED
//! once its caller's certificate is revoked.

use super::authn::{Authenticator, Caller};
use super::convert;
use crate::audit::{self, AuditFilter, ChainPoint};
use crate::pb;
use crate::replica::{NodeId, Raft, StateMachine};
use openraft::async_runtime::WatchReceiver;
use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

/// Records read from the database at a time.
const PAGE: usize = 512;
/// Records a `Tail` may ask for with `last`.
const MAX_LAST: u32 = 100_000;

/// The audit service.
pub struct AuditService {
    authn: Authenticator,
    node_id: NodeId,
    cluster_id: String,
    raft: Raft,
    state: StateMachine,
}

impl AuditService {
    /// An audit service over this node's state (of cluster `cluster_id`), authenticating
    /// callers with `authn`.
    pub fn new(
        authn: Authenticator,
        node_id: NodeId,
        cluster_id: String,
        raft: Raft,
        state: StateMachine,
    ) -> Self {
        AuditService {
            authn,
            node_id,
            cluster_id,
            raft,
            state,
        }
    }
}

/// Auditors (`auditor-…` identities) and enrolled admins may read the audit log, with a
/// certificate the admins did not revoke.
fn authorize<T>(
    authn: &Authenticator,
    state: &StateMachine,
    req: &Request<T>,
) -> Result<Caller, Status> {
    let caller = authn
        .request_caller(req)
        .map_err(|e| convert::authn_status(e, "a client certificate is required"))?;
    let identity = &caller.identity;
    if identity.starts_with("auditor-") || state.read().admin.admins.contains_key(identity) {
        Ok(caller)
    } else {
        Err(Status::permission_denied(format!(
            "{identity:?} is not an auditor or an enrolled admin"
        )))
    }
}

fn storage(e: std::io::Error) -> Status {
    Status::internal(format!("reading the audit log: {e}"))
}

/// The filter a client asked for; a result word no record can hold is INVALID_ARGUMENT (an
/// unknown word would otherwise match nothing and look like an empty log).
fn filter(f: Option<pb::AuditFilter>) -> Result<AuditFilter, Status> {
    let f = f.unwrap_or_default();
    if !f.result.is_empty() && !audit::RESULT_WORDS.contains(&f.result.as_str()) {
        return Err(Status::invalid_argument(format!(
            "filter.result: {:?} is not a result any record holds; one of: {}",
            f.result,
            audit::RESULT_WORDS.join(", ")
        )));
    }
    let text = |s: String| (!s.is_empty()).then_some(s);
    Ok(AuditFilter {
        key_id: text(f.key_id),
        client: text(f.client),
        result: text(f.result),
        since_ms: (f.since_ms != 0).then_some(f.since_ms),
        until_ms: (f.until_ms != 0).then_some(f.until_ms),
    })
}

/// The wire form of a stored record; `None` when it does not pass `filter`. A record that does
/// not decode passes no filter but is sent unfiltered (so `verify` and `export` see it).
fn entry(seq: u64, bytes: Vec<u8>, filter: &AuditFilter) -> Option<pb::AuditEntry> {
    let hash = audit::hash_bytes(&bytes).to_vec();
    match audit::decode(&bytes) {
        Ok(r) if filter.matches(&r) => Some(pb::AuditEntry {
            seq,
            hash,
            summary: r.summary(),
            record: bytes,
        }),
        Ok(_) => None,
        Err(e) => Some(pb::AuditEntry {
            seq,
            hash,
            summary: format!("{seq:>8}  <undecodable: {e}>"),
            record: bytes,
        }),
    }
}

async fn read(
    state: &StateMachine,
    from: u64,
    limit: usize,
) -> Result<Vec<(u64, Vec<u8>)>, Status> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || state.audit_records(from, limit))
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(storage)
}

/// The first seq of the last `last` records matching `filter`.
async fn start_of_last(
    state: &StateMachine,
    filter: &AuditFilter,
    last: u32,
) -> Result<u64, Status> {
    let mut window: VecDeque<u64> = VecDeque::new();
    let mut from = 0;
    loop {
        let page = read(state, from, PAGE).await?;
        let Some(&(end, _)) = page.last() else { break };
        for (seq, bytes) in page {
            if entry(seq, bytes, filter).is_some() {
                window.push_back(seq);
                if window.len() > last as usize {
                    window.pop_front();
                }
            }
        }
        from = end + 1;
    }
    Ok(window.front().copied().unwrap_or(from))
}

type TailStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::AuditEntry, Status>> + Send + 'static>>;

type BackupStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::BackupChunk, Status>> + Send + 'static>>;

/// Bytes per backup chunk.
const BACKUP_CHUNK: usize = 1 << 20;

/// Confirm leadership with a quorum (a linearizable read) and read the applied state it covers,
/// as a backup file. A follower, or a leader that lost its quorum, answers UNAVAILABLE (clients
/// try the next node).
async fn take_backup(
    raft: &Raft,
    state: &StateMachine,
    cluster_id: &str,
) -> Result<Vec<u8>, Status> {
    use crate::backup::{self, AppliedPosition, BackupHeader, Member};
    use openraft::ReadPolicy;
    let read_log_id = raft
        .ensure_linearizable(ReadPolicy::ReadIndex)
        .await
        .map_err(|e| Status::unavailable(format!("backup: not the leader or no quorum: {e}")))?;
    let (body, last_applied, membership, audit_head) =
        state.backup_state().await.map_err(storage)?;
    // The read index is applied before ensure_linearizable returns; checked, not assumed.
    let applied_index = last_applied.as_ref().map_or(0, |l| l.index);
    let read_index = read_log_id.log_id().index;
    if applied_index < read_index {
        return Err(Status::unavailable(format!(
            "backup: applied index {applied_index} is below the read index {read_index}"
        )));
    }
    let created_at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let members = membership
        .membership()
        .nodes()
        .filter(|(id, _)| membership.membership().voter_ids().any(|v| v == **id))
        .map(|(id, node)| Member {
            id: *id,
            peer_addr: node.addr.clone(),
        })
        .collect();
    let header = BackupHeader {
        version: backup::VERSION,
        cluster_id: cluster_id.to_owned(),
        applied: last_applied.map_or(AppliedPosition::default(), |l| AppliedPosition {
            term: l.leader_id.term,
            leader: l.leader_id.node_id,
            index: l.index,
        }),
        created_at_ms,
        audit_head,
        members,
    };
    backup::encode(&header, &body).map_err(|e| Status::internal(format!("backup: {e}")))
}

#[tonic::async_trait]
impl pb::audit_server::Audit for AuditService {
    type TailStream = TailStream;
    type BackupStream = BackupStream;

    async fn backup(
        &self,
        request: Request<pb::BackupRequest>,
    ) -> Result<Response<Self::BackupStream>, Status> {
        let caller = authorize(&self.authn, &self.state, &request)?;
        let file = take_backup(&self.raft, &self.state, &self.cluster_id).await?;
        tracing::info!(identity = %caller.identity, bytes = file.len(), "backup taken");
        let chunks: Vec<Result<pb::BackupChunk, Status>> = file
            .chunks(BACKUP_CHUNK)
            .map(|c| Ok(pb::BackupChunk { data: c.to_vec() }))
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }

    async fn tail(
        &self,
        request: Request<pb::AuditTailRequest>,
    ) -> Result<Response<Self::TailStream>, Status> {
        let caller = authorize(&self.authn, &self.state, &request)?;
        let req = request.into_inner();
        let filter = filter(req.filter)?;
        if req.last > MAX_LAST {
            return Err(Status::invalid_argument(format!(
                "last: at most {MAX_LAST}"
            )));
        }
        let mut next = if req.from_seq == 0 && req.last > 0 {
            start_of_last(&self.state, &filter, req.last).await?
        } else {
            req.from_seq
        };
        let state = self.state.clone();
        let authn = self.authn.clone();
        let follow = req.follow;
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            let mut changes = state.watch_audit();
            loop {
                changes.borrow_and_update();
                // A stream outlives its start: a certificate revoked meanwhile ends it.
                if let Err(revoked) = authn.recheck(&caller) {
                    let status = convert::authn_status(revoked.into(), "");
                    let _ = tx.send(Err(status)).await;
                    return;
                }
                let page = match read(&state, next, PAGE).await {
                    Ok(p) => p,
                    Err(s) => {
                        let _ = tx.send(Err(s)).await;
                        return;
                    }
                };
                let full = page.len() == PAGE;
                for (seq, bytes) in page {
                    next = seq + 1;
                    if let Some(e) = entry(seq, bytes, &filter) {
                        if tx.send(Ok(e)).await.is_err() {
                            return;
                        }
                    }
                }
                if full {
                    continue;
                }
                if !follow {
                    return;
                }
                // Wake on new records; re-check now and then in case a notification raced.
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { return },
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn get(
        &self,
        request: Request<pb::AuditGetRequest>,
    ) -> Result<Response<pb::AuditEntry>, Status> {
        authorize(&self.authn, &self.state, &request)?;
        let seq = request.into_inner().seq;
        let page = read(&self.state, seq, 1).await?;
        match page.into_iter().next() {
            Some((s, bytes)) if s == seq => entry(s, bytes, &AuditFilter::default())
                .map(Response::new)
                .ok_or_else(|| Status::internal("record filtered")),
            _ => {
                let chain = self.state.read().audit.chain;
                Err(Status::not_found(format!(
                    "seq: no audit record {seq} on node {} (kept: {}..={})",
                    self.node_id,
                    chain.anchor.seq + 1,
                    chain.head.seq
                )))
            }
        }
    }

    async fn verify(
        &self,
        request: Request<pb::AuditVerifyRequest>,
    ) -> Result<Response<pb::AuditVerifyResponse>, Status> {
        authorize(&self.authn, &self.state, &request)?;
        let at_seq = request.into_inner().at_seq;
        let state = self.state.clone();
        let (chain, result, at_hash) = tokio::task::spawn_blocking(move || {
            let (chain, result) = state.audit_verify()?;
            let at_hash = if at_seq == 0 {
                Vec::new()
            } else if at_seq == chain.anchor.seq {
                chain.anchor.hash.to_vec()
            } else {
                match state.audit_records(at_seq, 1)?.into_iter().next() {
                    Some((s, bytes)) if s == at_seq => audit::hash_bytes(&bytes).to_vec(),
                    _ => Vec::new(),
                }
            };
            Ok::<_, std::io::Error>((chain, result, at_hash))
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(storage)?;
        let last_applied_index = self
            .raft
            .metrics()
            .borrow_watched()
            .last_applied
            .map(|l| l.index)
            .unwrap_or(0);
        let point = |p: ChainPoint| (p.seq, p.hash.to_vec());
        let (anchor_seq, anchor_hash) = point(chain.anchor);
        let (head_seq, head_hash) = point(chain.head);
        let mut resp = pb::AuditVerifyResponse {
            node_id: self.node_id,
            ok: true,
            anchor_seq,
            anchor_hash,
            head_seq,
            head_hash,
            first_bad_seq: 0,
            reason: String::new(),
            records: head_seq.saturating_sub(anchor_seq),
            at_hash,
            last_applied_index,
        };
        if let Err(e) = result {
            tracing::error!(first_bad_seq = e.first_bad_seq, reason = %e.reason, "audit chain does not verify");
            resp.ok = false;
            resp.first_bad_seq = e.first_bad_seq;
            resp.reason = e.reason;
        }
        Ok(Response::new(resp))
    }
}
