//! The bench's local AWS KMS: `moto_server` (the KMS API, keys in memory) on a free loopback
//! port, with one symmetric KMS key created in it, for the many-keys part to seal and unseal
//! registry keys through the real KMS API (`GenerateDataKey`, `Decrypt` over HTTP), as a
//! cluster with `kek = { backend = "aws-kms", … }` does.
//!
//! Owns: starting and stopping that server, creating the key, and the node configuration and
//! (fake, moto-only) credentials that point nodes at it. Must not: measure anything, or be
//! pointed at a real AWS account (the credentials are moto's placeholders).

use anyhow::{anyhow, Context, Result};
use signer_node::config::NodeConfig;
use signer_node::custody::KekConfig;
use signer_node::devcluster::DevCluster;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The region the key is created in and the nodes are configured with.
const REGION: &str = "us-east-1";

/// Placeholder credentials moto accepts (any value does); set for the node processes only.
const CREDENTIALS_ENV: [(&str, &str); 5] = [
    ("AWS_ACCESS_KEY_ID", "moto"),
    ("AWS_SECRET_ACCESS_KEY", "moto"),
    ("AWS_CONFIG_FILE", "/nonexistent/aws-config"),
    (
        "AWS_SHARED_CREDENTIALS_FILE",
        "/nonexistent/aws-credentials",
    ),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

/// Where `moto_server` is looked for when `--moto-server` is not given: the virtualenv the
/// test command creates (`./test.sh`), relative to the working directory.
pub fn default_moto_server() -> PathBuf {
    PathBuf::from(".venv/bin/moto_server")
}

/// A running `moto_server` and the KMS key created in it; the server is killed on drop.
pub struct LocalKms {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The key's id.
    pub key_id: String,
}

impl LocalKms {
    /// Start `moto_server` and create one key.
    pub async fn start(moto_server: &Path) -> Result<LocalKms> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(moto_server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", moto_server.display()))?;
        let mut kms = LocalKms {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            key_id: String::new(),
        };
        kms.wait_serving(port, Duration::from_secs(30))?;
        kms.key_id = kms.create_key().await?;
        Ok(kms)
    }

    /// Wait until the server answers HTTP 200 (or fail when it exits or `within` passes).
    fn wait_serving(&mut self, port: u16, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(anyhow!("moto_server exited with {status}"));
            }
            if answers_http(port) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(anyhow!("moto_server did not answer within {within:?}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    async fn create_key(&self) -> Result<String> {
        let config = aws_sdk_kms::Config::builder()
            .behavior_version_latest()
            .region(aws_sdk_kms::config::Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_kms::config::Credentials::new(
                "moto", "moto", None, None, "moto",
            ))
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build();
        let created = aws_sdk_kms::Client::from_conf(config)
            .create_key()
            .send()
            .await
            .context("creating a key in moto")?;
        created
            .key_metadata()
            .map(|m| m.key_id().to_owned())
            .ok_or_else(|| anyhow!("moto created a key without metadata"))
    }

    /// Point every node of `cluster` at this KMS key (its current KEK, replacing the local
    /// one) and give its processes moto's placeholder credentials.
    pub fn configure(&self, cluster: &mut DevCluster) -> Result<()> {
        let ids: Vec<u64> = cluster.descriptor().nodes.iter().map(|n| n.id).collect();
        for id in ids {
            let path = cluster.config_path(id);
            let mut config = NodeConfig::load(&path)?;
            config.kek = Some(KekConfig::AwsKms {
                key_id: self.key_id.clone(),
                region: Some(REGION.to_owned()),
                endpoint_url: Some(self.endpoint.clone()),
            });
            std::fs::write(&path, config.to_toml()?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        for (key, value) in CREDENTIALS_ENV {
            cluster.set_node_env(key, value);
        }
        Ok(())
    }
}

impl Drop for LocalKms {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether an HTTP server on `port` answers `GET /moto-api/` with 200.
fn answers_http(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /moto-api/ HTTP/1.1\r\nHost: moto\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}
