//! `signer init`: write a new cluster's directory — PKI, node configs, validator key files and
//! `cluster.json` — for nodes at given addresses, without starting anything.
//!
//! Owns: parsing `--node` specs and reporting what was written. Must not: overwrite an
//! existing directory or start processes (that is the operator's service manager, or
//! `signer dev-cluster` on one machine).

use anyhow::{bail, Context, Result};
use signer_node::client::NodeEndpoint;
use signer_node::devcluster::{write_cluster, LayoutOptions};
use signer_node::protection::Profile;
use std::net::SocketAddr;
use std::path::Path;

/// Parse `ID=CLIENT_ADDR,PEER_ADDR`, e.g. `1=10.0.0.1:7100,10.0.0.1:7101`.
pub fn parse_node(spec: &str) -> Result<NodeEndpoint, String> {
    let (id, addrs) = spec
        .split_once('=')
        .ok_or_else(|| format!("{spec:?}: expected ID=CLIENT_ADDR,PEER_ADDR"))?;
    let id: u64 = id
        .parse()
        .ok()
        .filter(|i| *i >= 1)
        .ok_or_else(|| format!("{spec:?}: node id must be an integer ≥ 1"))?;
    let (client, peer) = addrs
        .split_once(',')
        .ok_or_else(|| format!("{spec:?}: expected CLIENT_ADDR,PEER_ADDR after '='"))?;
    let parse = |a: &str, what: &str| -> Result<SocketAddr, String> {
        a.parse()
            .map_err(|_| format!("{spec:?}: {what} address {a:?} is not IP:PORT"))
    };
    Ok(NodeEndpoint {
        id,
        client_addr: parse(client, "client")?,
        peer_addr: parse(peer, "peer")?,
        web3signer_url: None,
    })
}

/// Parse `KEY_ID:PROFILE`, e.g. `validator-7:eth2`.
pub fn parse_key(spec: &str) -> Result<(String, Profile), String> {
    let (id, profile) = spec
        .rsplit_once(':')
        .ok_or_else(|| format!("{spec:?}: expected KEY_ID:PROFILE (profile eth2 or espresso)"))?;
    if id.is_empty()
        || id.len() > 128
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(format!(
            "{spec:?}: key ids use letters, digits, '-', '_' and '.' (at most 128)"
        ));
    }
    Ok((id.to_owned(), profile.parse()?))
}

/// Write the cluster directory.
pub fn run(
    dir: &Path,
    cluster_id: Option<String>,
    nodes: Vec<NodeEndpoint>,
    keys: Vec<(String, Profile)>,
) -> Result<()> {
    if ![1, 3, 5].contains(&nodes.len()) {
        bail!(
            "a cluster has 3 or 5 nodes (1 for experiments); got {}",
            nodes.len()
        );
    }
    if dir.exists() {
        bail!(
            "{} already exists; `signer init` never overwrites",
            dir.display()
        );
    }
    write_cluster(
        dir,
        LayoutOptions {
            endpoints: nodes.clone(),
            keys: keys.clone(),
            cluster_id,
            generated_by: "`signer init`",
            // Production nodes take their KEK from a KMS; the operator adds `[kek]`.
            local_kek: false,
            // The operator adds `[web3signer]` where validator clients should call.
            web3signer: false,
        },
    )
    .with_context(|| format!("writing {}", dir.display()))?;
    signer_client::outln!("wrote a new cluster in {}:", dir.display());
    for n in &nodes {
        signer_client::outln!(
            "  node-{}/node.toml   client {}  peer {}{}",
            n.id,
            n.client_addr,
            n.peer_addr,
            if n.id == nodes[0].id {
                "  (bootstraps the cluster)"
            } else {
                ""
            }
        );
    }
    signer_client::outln!(
        "  pki/                 CA, node-<id>, client-seq-1 and client-admin-1 certificates"
    );
    signer_client::outln!("  cluster.json         endpoints for signerctl --dir");
    for (id, profile) in &keys {
        signer_client::outln!("  key {id} ({profile}) in every node's keys/ directory");
    }
    if !keys.is_empty() {
        eprintln!(
            "warning: --key wrote {} secret key(s) in PLAINTEXT (mode 0600) to every node's \
             keys/ directory: development only. In production, generate or import keys in the \
             cluster (`signerctl key generate|import`), sealed under a KMS KEK.",
            keys.len()
        );
    }
    signer_client::outln!();
    signer_client::outln!(
        "Next: copy node-<id>/ and pki/{{ca.pem,node-<id>.pem,node-<id>.key}} to each host,"
    );
    signer_client::outln!(
        "keep pki/ca.key offline, and run `signer node --config node-<id>/node.toml` on each."
    );
    signer_client::outln!(
        "To generate or import keys with `signerctl key …` (as client admin-1), add the same \
         `[kek]` (AWS KMS) to every node.toml first."
    );
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn node_and_key_specs_parse_or_explain() {
        let n = parse_node("2=10.0.0.2:7100,10.0.0.2:7101").unwrap();
        assert_eq!(
            (n.id, n.client_addr.port(), n.peer_addr.port()),
            (2, 7100, 7101)
        );
        assert!(parse_node("0=1.2.3.4:1,1.2.3.4:2")
            .unwrap_err()
            .contains("≥ 1"));
        assert!(parse_node("1=1.2.3.4:1")
            .unwrap_err()
            .contains("CLIENT_ADDR,PEER_ADDR"));
        assert!(parse_node("1=host:1,1.2.3.4:2")
            .unwrap_err()
            .contains("not IP:PORT"));
        assert_eq!(
            parse_key("v-1:eth2").unwrap(),
            ("v-1".into(), Profile::Eth2)
        );
        assert!(parse_key("v 1:eth2").is_err());
        assert!(parse_key("v1:cosmos")
            .unwrap_err()
            .contains("unknown profile"));
    }
}
