//! `signerctl key list`, `signerctl status` and `signerctl health`: what the Signer and the
//! standard health service report about keys and
//! nodes (each node's loaded keys, and the registry keys it has not loaded, with why), as text
//! or JSON.
//!
//! Owns: these two commands' output. Must not: change anything in the cluster.

use crate::{exit, Failure};
use clap::Args;
use signer_client::{ClientError, ClusterDescriptor, ServingStatus, SignerPool};

pub async fn key_list(pool: &SignerPool, json: bool) -> Result<(), Failure> {
    let keys = pool.public_keys().await?;
    if json {
        let list: Vec<_> = keys
            .iter()
            .map(|k| {
                serde_json::json!({
                    "key_id": k.key_id,
                    "profile": k.profile,
                    "scheme": k.scheme,
                    "public_key": k.public_key_text,
                })
            })
            .collect();
        signer_client::outln!("{}", serde_json::Value::Array(list));
        return Ok(());
    }
    let width = keys
        .iter()
        .map(|k| k.key_id.len())
        .max()
        .unwrap_or(0)
        .max(6);
    signer_client::outln!(
        "{:<width$}  {:<8}  {:<9}  PUBLIC KEY",
        "KEY ID",
        "PROFILE",
        "SCHEME"
    );
    for k in &keys {
        signer_client::outln!(
            "{:<width$}  {:<8}  {:<9}  {}",
            k.key_id,
            k.profile,
            k.scheme,
            k.public_key_text
        );
    }
    Ok(())
}

pub async fn status(
    pool: &SignerPool,
    descriptor: &ClusterDescriptor,
    json: bool,
) -> Result<(), Failure> {
    let statuses = pool.cluster_statuses().await;
    let answered = statuses.iter().filter(|(_, s)| s.is_ok()).count();
    let addr = |id: u64| {
        descriptor
            .node(id)
            .map(|n| n.client_addr.to_string())
            .unwrap_or_default()
    };
    if json {
        let list: Vec<_> = statuses
            .iter()
            .map(|(id, s)| match s {
                Ok(s) => serde_json::json!({
                    "node_id": id,
                    "client_addr": addr(*id),
                    "leader_id": s.leader_id,
                    "term": s.term,
                    "last_applied_index": s.last_applied_index,
                    "voters": s.voters,
                    "keys_loaded": s.keys_loaded,
                    "keys_pending": s.keys_pending.iter().map(|p| serde_json::json!({
                        "key_id": p.key_id,
                        "reason": p.reason,
                    })).collect::<Vec<_>>(),
                }),
                Err(e) => serde_json::json!({
                    "node_id": id,
                    "client_addr": addr(*id),
                    "error": unreachable_text(e),
                }),
            })
            .collect();
        signer_client::outln!("{}", serde_json::Value::Array(list));
    } else {
        signer_client::outln!("cluster {}", descriptor.cluster_id);
        for (id, s) in &statuses {
            match s {
                Ok(s) => {
                    signer_client::outln!(
                        "  node-{id}  {}  {}",
                        addr(*id),
                        signer_client::describe_view(s)
                    );
                    for p in &s.keys_pending {
                        signer_client::outln!("    pending {}: {}", p.key_id, p.reason);
                    }
                }
                Err(e) => {
                    signer_client::outln!("  node-{id}  {}  {}", addr(*id), unreachable_text(e))
                }
            }
        }
    }
    if answered == 0 {
        return Err(Failure::new(
            exit::UNAVAILABLE,
            "unavailable: no node answered",
        ));
    }
    Ok(())
}

fn unreachable_text(e: &ClientError) -> String {
    match e {
        ClientError::Unavailable { last_error, .. } => format!("unreachable: {last_error}"),
        other => format!("error: {other}"),
    }
}

/// Arguments of `health`.
#[derive(Args, Clone, Debug)]
pub struct HealthArgs {
    /// The service to ask about: "" (the node as a whole) or `signer.v1.Signer` (the same
    /// answer).
    #[arg(long, value_name = "NAME", default_value = "")]
    service: String,
}

/// `health`: each node's grpc.health.v1 answer.
pub async fn health(
    pool: &SignerPool,
    descriptor: &ClusterDescriptor,
    args: &HealthArgs,
    json: bool,
) -> Result<(), Failure> {
    let asks = descriptor.nodes.iter().map(|n| async move {
        let answer = pool.health(n.id, &args.service).await;
        (n, answer)
    });
    let answers = futures::future::join_all(asks).await;
    let text = |answer: &Result<_, ClientError>| match answer {
        Ok(status) => ServingStatus::as_str_name(status).to_owned(),
        Err(e) => unreachable_text(e),
    };
    if json {
        let list: Vec<_> = answers
            .iter()
            .map(|(n, answer)| {
                serde_json::json!({
                    "node_id": n.id,
                    "client_addr": n.client_addr.to_string(),
                    "status": text(answer),
                })
            })
            .collect();
        signer_client::outln!("{}", serde_json::Value::Array(list));
    } else {
        for (n, answer) in &answers {
            signer_client::outln!("node-{}  {}  {}", n.id, n.client_addr, text(answer));
        }
    }
    let not_serving = answers
        .iter()
        .filter(|(_, a)| !matches!(a, Ok(ServingStatus::Serving)))
        .count();
    if not_serving > 0 {
        return Err(Failure::new(
            exit::UNAVAILABLE,
            format!(
                "unavailable: {not_serving} of {} node(s) not serving",
                answers.len()
            ),
        ));
    }
    Ok(())
}
