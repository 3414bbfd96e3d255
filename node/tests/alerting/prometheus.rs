//! A real Prometheus server for a test: Debian's `prometheus` binary on a reserved loopback
//! port, with a temporary data directory, scraping the given targets every second and
//! evaluating the given rules every second; killed when dropped and, through the support
//! module's parent-death signal, when the test process dies. And a small client for its
//! HTTP API (`/api/v1/query`, `/api/v1/alerts`, `/api/v1/rules`, `/api/v1/targets`).
//!
//! Owns: that process and its files. Must not: listen anywhere but 127.0.0.1, or outlive the
//! test.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::support::{spawn_tied, Reservation};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct Prometheus {
    child: Child,
    pub addr: SocketAddr,
    _port: Reservation,
    dir: tempfile::TempDir,
}

/// One active alert as `/api/v1/alerts` reports it.
#[derive(Debug, Clone)]
pub struct Alert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// `pending` or `firing`.
    pub state: String,
    pub value: String,
}

impl Alert {
    pub fn name(&self) -> &str {
        self.labels.get("alertname").map_or("", String::as_str)
    }
}

fn strings(v: &serde_json::Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

impl Prometheus {
    /// Start Prometheus scraping `targets` (a `node` label and the address of each node's
    /// metrics endpoint) as job `quorum-signer` with label `cluster`, evaluating `rules`
    /// (rule-file YAML); returns once it is ready.
    pub async fn start(targets: &[(String, SocketAddr)], cluster: &str, rules: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("alerts.yml"), rules).unwrap();
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 800ms\n  evaluation_interval: 1s\n\
             rule_files:\n  - alerts.yml\nscrape_configs:\n  - job_name: quorum-signer\n    static_configs:\n",
        );
        for (node, addr) in targets {
            assert!(addr.ip().is_loopback(), "{addr}");
            config.push_str(&format!(
                "      - targets: ['{addr}']\n        labels: {{ node: '{node}', cluster: '{cluster}' }}\n"
            ));
        }
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, &config).unwrap();
        let (ok, out) = super::rules::promtool(&["check", "config", config_path.to_str().unwrap()]);
        assert!(ok, "promtool check config:\n{out}\n{config}");

        let port = Reservation::new();
        let addr = port.addr;
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let mut command = Command::new("prometheus");
        command
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--storage.tsdb.retention.time=1h")
            .arg("--log.level=warn")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let child = spawn_tied(command, &[]).unwrap_or_else(|e| {
            panic!("cannot start prometheus ({e}): ./test.sh installs Debian's prometheus")
        });
        let prom = Prometheus {
            child,
            addr,
            _port: port,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) = get(addr, "/-/ready").await {
                return prom;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready in 30 s:\n{}",
                prom.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    async fn api(&self, path: &str) -> serde_json::Value {
        let (status, body) = get(self.addr, path)
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.log()));
        let v: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("GET {path}: {status}: {e}: {body}"));
        assert_eq!(v["status"], "success", "GET {path}: {status}: {body}");
        v["data"].clone()
    }

    /// The active (pending or firing) alerts.
    pub async fn alerts(&self) -> Vec<Alert> {
        let data = self.api("/api/v1/alerts").await;
        data["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| Alert {
                labels: strings(&a["labels"]),
                annotations: strings(&a["annotations"]),
                state: a["state"].as_str().unwrap().to_owned(),
                value: a["value"].as_str().unwrap_or_default().to_owned(),
            })
            .collect()
    }

    /// The alerting rules loaded: name -> health (`unknown` until first evaluated, then `ok`
    /// or `err`).
    pub async fn rules(&self) -> BTreeMap<String, String> {
        let data = self.api("/api/v1/rules?type=alert").await;
        let mut rules = BTreeMap::new();
        for group in data["groups"].as_array().unwrap() {
            for rule in group["rules"].as_array().unwrap() {
                let name = rule["name"].as_str().unwrap().to_owned();
                let health = rule["health"].as_str().unwrap().to_owned();
                assert!(rules.insert(name, health).is_none(), "duplicate {rule}");
            }
        }
        rules
    }

    /// An instant query's result: each series' labels and value (a scalar is one unlabelled
    /// value). Panics on a query Prometheus rejects.
    pub async fn query_values(&self, promql: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        let data = self
            .api(&format!("/api/v1/query?query={}", encode(promql)))
            .await;
        let number = |v: &serde_json::Value| -> f64 {
            match v.as_str().unwrap() {
                "NaN" => f64::NAN,
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                s => s.parse().unwrap(),
            }
        };
        match data["resultType"].as_str().unwrap() {
            "vector" => data["result"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| (strings(&s["metric"]), number(&s["value"][1])))
                .collect(),
            "scalar" => vec![(BTreeMap::new(), number(&data["result"][1]))],
            other => panic!("{promql}: result type {other}"),
        }
    }

    /// Wait until `n` targets are up.
    pub async fn wait_targets_up(&self, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let up = self.query_values("up == 1").await;
            if up.len() == n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} targets up after {within:?}: {up:?}\n{}",
                up.len(),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encode a query parameter.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `GET path` over HTTP/1.0 (so the body is neither chunked nor kept alive): status and body.
async fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| std::io::Error::other("no answer in 10 s"))??;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no header end: {text:?}")))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status: {head:?}")))?;
    Ok((status, body.to_owned()))
}
