//! `signerctl key list` and `signerctl status`: what the Signer service reports about keys and
//! nodes, as text or JSON.
//!
//! Owns: these two commands' output. Must not: change anything in the cluster.

use crate::Failure;
use signer_client::{ClientError, ClusterDescriptor, SignerPool};

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
        println!("{}", serde_json::Value::Array(list));
        return Ok(());
    }
    let width = keys
        .iter()
        .map(|k| k.key_id.len())
        .max()
        .unwrap_or(0)
        .max(6);
    println!(
        "{:<width$}  {:<8}  {:<9}  PUBLIC KEY",
        "KEY ID", "PROFILE", "SCHEME"
    );
    for k in &keys {
        println!(
            "{:<width$}  {:<8}  {:<9}  {}",
            k.key_id, k.profile, k.scheme, k.public_key_text
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
                }),
                Err(e) => serde_json::json!({
                    "node_id": id,
                    "client_addr": addr(*id),
                    "error": unreachable_text(e),
                }),
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else {
        println!("cluster {}", descriptor.cluster_id);
        for (id, s) in &statuses {
            match s {
                Ok(s) => println!(
                    "  node-{id}  {}  leader {}  term {}  applied {}  voters {:?}  keys {}",
                    addr(*id),
                    if s.leader_id == 0 {
                        "none".to_owned()
                    } else {
                        format!("node-{}", s.leader_id)
                    },
                    s.term,
                    s.last_applied_index,
                    s.voters,
                    s.keys_loaded.join(",")
                ),
                Err(e) => println!("  node-{id}  {}  {}", addr(*id), unreachable_text(e)),
            }
        }
    }
    if answered == 0 {
        return Err(Failure::new(4, "unavailable: no node answered"));
    }
    Ok(())
}

fn unreachable_text(e: &ClientError) -> String {
    match e {
        ClientError::Unavailable { last_error, .. } => format!("unreachable: {last_error}"),
        other => format!("error: {other}"),
    }
}
