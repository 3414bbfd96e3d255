//! The bench's process clusters: a dev cluster of `signer node` processes (the binary running
//! the bench) in a temporary directory, on free loopback ports, taken down when dropped.
//!
//! Owns: creating and stopping such a cluster. Must not: measure anything.

use anyhow::{Context, Result};
use signer_node::devcluster::DevCluster;
use std::path::PathBuf;
use std::time::Duration;

/// How long the nodes get to stop before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(30);

/// A dev cluster whose processes stop when this is dropped, however the measurement ended.
pub struct Processes {
    pub cluster: DevCluster,
    /// The `signer` binary the nodes run.
    pub exe: PathBuf,
    _temp: tempfile::TempDir,
}

impl Processes {
    /// Write a new cluster of `nodes` nodes in a temporary directory named `prefix…`
    /// (nothing is started yet).
    pub fn create(prefix: &str, nodes: usize) -> Result<Processes> {
        let temp = tempfile::Builder::new().prefix(prefix).tempdir()?;
        let exe = std::env::current_exe().context("finding the signer binary")?;
        let base_port = super::super::free_base_port(nodes)?;
        let cluster = DevCluster::create(&temp.path().join("cluster"), nodes, base_port)?;
        Ok(Processes {
            cluster,
            exe,
            _temp: temp,
        })
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        if let Err(e) = self.cluster.stop(STOP_GRACE) {
            eprintln!("stopping the bench's node processes: {e}");
        }
    }
}
