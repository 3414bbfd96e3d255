//! The `signer.v1.Audit` calls of [`SignerPool`]: tail (optionally following), get, verify and
//! backup.
//!
//! Owns: building audit requests and running them on one node or through the failover loop.
//! Must not: judge the chain (callers compare nodes; `signer_node::audit` verifies bytes).
//!
//! Authorization is the pool's client certificate: it must name an `auditor-…` or `admin-…`
//! identity, else every call answers PERMISSION_DENIED ([`ClientError::Other`]).

use super::failover::single;
use super::{ClientError, SignerPool};
use crate::pb;
use crate::pb::audit_client::AuditClient;

impl SignerPool {
    /// Open a record stream on whichever node answers; returns that node's id and the stream.
    /// With `follow`, the stream stays open (a dropped node ends it with an error).
    pub async fn audit_tail(
        &self,
        request: pb::AuditTailRequest,
    ) -> Result<(u64, tonic::Streaming<pb::AuditEntry>), ClientError> {
        self.with_failover(ClientError::from_admin_answer, |channel, timeout| {
            let mut client = AuditClient::new(channel);
            let mut rpc = tonic::Request::new(request.clone());
            // Bounds the call's start only when not following; a follow stream has no end.
            if !request.follow {
                rpc.set_timeout(timeout.max(std::time::Duration::from_secs(60)));
            }
            async move { client.tail(rpc).await.map(tonic::Response::into_inner) }
        })
        .await
    }

    /// A backup file of the cluster's replicated state, from whichever node leads (followers
    /// answer UNAVAILABLE and the next node is tried). The bytes are as the leader sent them;
    /// `signer_core::backup::decode` verifies them.
    pub async fn backup(&self) -> Result<(u64, Vec<u8>), ClientError> {
        self.with_failover(ClientError::from_admin_answer, |channel, timeout| {
            let mut client = AuditClient::new(channel);
            let mut rpc = tonic::Request::new(pb::BackupRequest {});
            rpc.set_timeout(timeout.max(std::time::Duration::from_secs(60)));
            async move {
                let mut stream = client.backup(rpc).await?.into_inner();
                let mut file = Vec::new();
                while let Some(chunk) = stream.message().await? {
                    file.extend_from_slice(&chunk.data);
                }
                Ok(file)
            }
        })
        .await
    }

    /// Record `seq` from whichever node answers.
    pub async fn audit_get(&self, seq: u64) -> Result<(u64, pb::AuditEntry), ClientError> {
        self.with_failover(ClientError::from_admin_answer, |channel, timeout| {
            let mut client = AuditClient::new(channel);
            let mut rpc = tonic::Request::new(pb::AuditGetRequest { seq });
            rpc.set_timeout(timeout);
            async move { client.get(rpc).await.map(tonic::Response::into_inner) }
        })
        .await
    }

    /// Node `node_id` recomputes its chain from its database; with `at_seq` > 0 it also
    /// reports its hash of that record.
    pub async fn audit_verify(
        &self,
        node_id: u64,
        at_seq: u64,
    ) -> Result<pb::AuditVerifyResponse, ClientError> {
        let node = self.node(node_id)?;
        // Recomputing a long chain takes a while.
        let timeout = self
            .options
            .rpc_timeout
            .max(std::time::Duration::from_secs(60));
        let mut rpc = tonic::Request::new(pb::AuditVerifyRequest { at_seq });
        rpc.set_timeout(timeout);
        let mut client = AuditClient::new(node.channel.clone());
        single(node_id, timeout, async move {
            client.verify(rpc).await.map(tonic::Response::into_inner)
        })
        .await
    }

    /// [`Self::audit_verify`] on every node concurrently, in pool order.
    pub async fn audit_verify_all(
        &self,
        at_seq: u64,
    ) -> Vec<(u64, Result<pb::AuditVerifyResponse, ClientError>)> {
        let asks = self.nodes.iter().map(|n| async move {
            let r = self.audit_verify(n.id, at_seq).await;
            (n.id, r)
        });
        futures::future::join_all(asks).await
    }
}
