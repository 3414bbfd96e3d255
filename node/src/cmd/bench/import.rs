//! The bench's interchange import: an EIP-3076 file of many validators (real BLS12-381 public
//! keys, one block and one attestation each) proposed and approved as an admin action on the
//! in-process cluster.
//!
//! Owns: building that file and timing the action. Must not: measure signing.

use super::local::{LocalCluster, CLUSTER_ID};
use anyhow::{anyhow, Context, Result};
use signer_node::pb;
use signer_node::scheme::bls12_381;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// What importing took.
pub struct Imported {
    /// Validators in the file.
    pub validators: usize,
    /// The file's size in bytes.
    pub bytes: usize,
    /// From sending the proposal to the approval's answer that the import executed.
    pub elapsed: Duration,
}

/// Import a file of `validators` validators with one admin approval; fails unless the
/// approval's answer says the import executed.
pub async fn import_interchange(cluster: &LocalCluster, validators: usize) -> Result<Imported> {
    let json = interchange(validators)?;
    let (pool, mut approver) = cluster.admin().await?;
    let started = Instant::now();
    let request = pb::propose_request::Request::ImportProtection(pb::ImportProtectionRequest {
        interchange_json: json.clone(),
        minify: false,
    });
    let (_, answer) = pool
        .propose_and_approve(request, CLUSTER_ID, &mut approver)
        .await
        .context("proposing and approving the import")?;
    let elapsed = started.elapsed();
    if answer.status != "executed" {
        return Err(anyhow!(
            "the import was not executed: {} ({})",
            answer.status,
            answer.detail
        ));
    }
    Ok(Imported {
        validators,
        bytes: json.len(),
        elapsed,
    })
}

/// An interchange document (format version 5, mainnet's genesis validators root) for
/// `validators` fresh keys, each with one block at slot 100 and one attestation 10 → 11.
fn interchange(validators: usize) -> Result<String> {
    let mut rng = rand::rngs::OsRng;
    let mut data = String::with_capacity(validators * 260);
    for i in 0..validators {
        let key = bls12_381::SecretKey::generate(&mut rng)
            .map_err(|e| anyhow!("generating a key: {e}"))?
            .public_key();
        if i > 0 {
            data.push(',');
        }
        write!(
            data,
            r#"{{"pubkey":"0x{}","signed_blocks":[{{"slot":"100"}}],"signed_attestations":[{{"source_epoch":"10","target_epoch":"11"}}]}}"#,
            hex::encode(key.to_bytes())
        )?;
    }
    Ok(format!(
        r#"{{"metadata":{{"interchange_format_version":"5","genesis_validators_root":"0x{}"}},"data":[{data}]}}"#,
        hex::encode(signer_node::config::MAINNET_GENESIS_VALIDATORS_ROOT)
    ))
}
