//! The alert rules and the dashboard against the real thing: Debian's Prometheus scrapes a
//! real 3-node cluster (real node processes, mutual TLS, Raft, a local KMS server per node
//! behind a proxy the test can cut) every second and evaluates a copy of
//! `deploy/prometheus/alerts.yml` whose durations are divided by 20 (a `for:` of minutes
//! becomes seconds, at least 5 s; `[5m]` becomes `[15s]`; thresholds and expressions are
//! unchanged), so the whole story runs in about two minutes. The shipped durations are
//! tested by `promtool test rules` (node/tests/alert_rules.rs).
//!
//! Each fault is injected, and Prometheus's HTTP API must then show exactly the expected
//! alerts firing — named by node, key or client — after going through `pending` when they
//! have a `for:`, no other alert firing, and every alert gone again after recovery:
//! - client misbehaviour (an equivocation, requests below the watermark, a burst of access
//!   denials, a client over its rate limit), while identical re-signs alert nothing;
//! - the leader SIGKILLed (and restarted);
//! - a follower stopped (SIGSTOP) while the leader keeps signing (and continued);
//! - one node's KMS unreachable while a new key is generated (and reachable again);
//! - one record of one node's audit chain altered on disk (and put back).
//!
//! The series behind the alerts are checked against what the test did (the gRPC answers it
//! got, the certificates' notAfter as openssl reads them, the tampered record's seq as the
//! Audit service names it), and finally every PromQL query of the Grafana dashboard
//! (`deploy/grafana/quorum-signer.json`) is run against this Prometheus and must return data.
#![cfg(feature = "aws-kms")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "alerting/prometheus.rs"]
mod prom;
#[path = "alerting/rules.rs"]
mod rules;
mod support;

use prom::{Alert, Prometheus};
use signer_node::custody::KekConfig;
use signer_node::pb;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::moto::{KmsProxy, Moto, REGION};
use support::*;

/// The `cluster` label the scrape configuration gives every node.
const CLUSTER: &str = "qs-test";

/// An alert the test expects: its name and the labels that must name what it is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Expected {
    name: &'static str,
    labels: Vec<(&'static str, String)>,
}

fn expected(name: &'static str, labels: &[(&'static str, &str)]) -> Expected {
    Expected {
        name,
        labels: labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
    }
}

impl Expected {
    fn matches(&self, alert: &Alert) -> bool {
        alert.name() == self.name
            && self
                .labels
                .iter()
                .all(|(k, v)| alert.labels.get(*k) == Some(v))
    }
}

fn node_name(id: u64) -> String {
    format!("node-{id}")
}

/// Follow one fault through Prometheus: poll the alerts API until every expected alert fires,
/// then check that the firing set is exactly the expected one. Fails at once when an alert
/// that is not expected fires, or when an expected alert with a `for:` fired without having
/// been seen pending. Pending alerts that are not expected are allowed (an election makes
/// `SignerNoLeader` pending for a moment) and printed.
async fn expect_firing(
    prom: &Prometheus,
    phase: &str,
    expected: &[Expected],
    for_of: &BTreeMap<String, Duration>,
    within: Duration,
) {
    let started = Instant::now();
    let deadline = started + within;
    let mut seen_pending: BTreeSet<usize> = BTreeSet::new();
    let mut transient: BTreeSet<String> = BTreeSet::new();
    loop {
        let alerts = prom.alerts().await;
        for a in &alerts {
            let hit = expected.iter().position(|e| e.matches(a));
            match (hit, a.state.as_str()) {
                (Some(i), "pending") => {
                    seen_pending.insert(i);
                }
                (None, "firing") => {
                    panic!("{phase}: unexpected alert firing: {a:?}\nall alerts: {alerts:#?}")
                }
                (None, _) => {
                    transient.insert(format!("{} {:?}", a.name(), a.labels));
                }
                _ => {}
            }
        }
        let firing: Vec<&Alert> = alerts.iter().filter(|a| a.state == "firing").collect();
        let all_fire = expected.iter().all(|e| firing.iter().any(|a| e.matches(a)));
        if all_fire {
            assert_eq!(
                firing.len(),
                expected.len(),
                "{phase}: firing {firing:#?}, expected exactly {expected:#?}"
            );
            for (i, e) in expected.iter().enumerate() {
                let has_for = !for_of[e.name].is_zero();
                assert!(
                    !has_for || seen_pending.contains(&i),
                    "{phase}: {} has a for: of {:?} but was never seen pending",
                    e.name,
                    for_of[e.name]
                );
            }
            println!(
                "{phase}: {} firing after {:.1} s ({}){}",
                expected.len(),
                started.elapsed().as_secs_f64(),
                expected
                    .iter()
                    .map(|e| e.name)
                    .collect::<Vec<_>>()
                    .join(", "),
                if transient.is_empty() {
                    String::new()
                } else {
                    format!("; pending for a moment, never firing: {transient:?}")
                }
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{phase}: expected alerts did not all fire within {within:?}: expected {expected:#?}\nactive: {alerts:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Poll until Prometheus has no alert at all (pending or firing); an alert that was not
/// firing before must not start firing meanwhile.
async fn expect_clear(prom: &Prometheus, phase: &str, expected: &[Expected], within: Duration) {
    let started = Instant::now();
    let deadline = started + within;
    loop {
        let alerts = prom.alerts().await;
        for a in alerts.iter().filter(|a| a.state == "firing") {
            assert!(
                expected.iter().any(|e| e.matches(a)),
                "{phase}, recovering: unexpected alert firing: {a:?}"
            );
        }
        if alerts.is_empty() {
            println!(
                "{phase}: every alert cleared {:.1} s after recovery",
                started.elapsed().as_secs_f64()
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{phase}: alerts still active {within:?} after recovery: {alerts:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Send SIGSTOP or SIGCONT to node `id`'s process.
fn signal(cluster: &Cluster, id: u64, sig: &str) {
    let pid = cluster
        .node(id)
        .child
        .lock()
        .unwrap()
        .as_ref()
        .unwrap()
        .id();
    let status = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig} {pid}");
}

/// Stop node `id` with SIGTERM (a clean shutdown syncs its state database) and reap it.
fn stop_clean(cluster: &Cluster, id: u64) {
    let mut slot = cluster.node(id).child.lock().unwrap();
    let mut child = slot.take().unwrap();
    signal_pid(child.id(), "-TERM");
    child.wait().unwrap();
}

fn signal_pid(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig} {pid}");
}

/// The leader once every node agrees on it and on the term, three times over one second (a
/// node that was stopped may start an election when it runs again).
async fn stable_leader(cluster: &Cluster) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut agreed = Vec::new();
    loop {
        let mut views = Vec::new();
        for id in 1..=3 {
            if let Some(s) = cluster.status(id).await {
                views.push((s.leader_id, s.term));
            }
        }
        let one = views.len() == 3 && views[0].0 != 0 && views.iter().all(|v| *v == views[0]);
        if one {
            agreed.push(views[0]);
            if agreed.len() >= 3 && agreed.iter().rev().take(3).all(|v| *v == views[0]) {
                return views[0].0;
            }
        } else {
            agreed.clear();
        }
        assert!(Instant::now() < deadline, "no stable leader: {views:?}");
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
}

/// A follower other than `avoid` when there is one (so the node that answered the clients
/// keeps its counters for the dashboard), else any follower.
fn follower(leader: u64, avoid: u64) -> u64 {
    (1..=3)
        .find(|&id| id != leader && id != avoid)
        .unwrap_or_else(|| (1..=3).find(|&id| id != leader).unwrap())
}

/// `notAfter` of the PEM certificate at `path` in Unix seconds, and its subject, as openssl
/// reads them (independently of the node's x509 parser).
fn openssl_not_after(path: &std::path::Path) -> (i64, String) {
    let out = std::process::Command::new("openssl")
        .args([
            "x509", "-noout", "-enddate", "-subject", "-nameopt", "RFC2253", "-in",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .to_owned()
    };
    let date = field("notAfter=");
    let secs = std::process::Command::new("date")
        .args(["-u", "-d", &date, "+%s"])
        .output()
        .unwrap();
    let secs: i64 = String::from_utf8(secs.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (secs, field("subject="))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn alerts_fire_and_clear_on_real_faults_and_every_dashboard_query_returns_data() {
    let started = Instant::now();
    // The nodes' data directories (and Prometheus's) go to a tmpfs: the shared disk of a build
    // machine is often more than 90% full of build artifacts, and SignerDataDirNearlyFull
    // would then rightly fire — or flap — in the middle of the other faults. That rule is
    // tested by promtool; its gauge is compared with df in `metrics::files::tests`.
    if std::path::Path::new("/dev/shm").is_dir() {
        std::env::set_var("TMPDIR", "/dev/shm");
    }
    let shipped = std::fs::read_to_string(rules::alerts_path()).unwrap();
    let rule_list = rules::parse_rules(&shipped);
    let scaled = rules::scale_rules(&shipped);
    let for_of: BTreeMap<String, Duration> = rules::parse_rules(&scaled)
        .into_iter()
        .map(|r| (r.name, r.for_))
        .collect();

    // A KMS for the cluster, behind one proxy per node so one node's KMS can be cut.
    let moto = Moto::start();
    let kms_key = moto.create_key().await;
    let mut proxies = Vec::new();
    for _ in 0..3 {
        proxies.push(KmsProxy::start(moto.port).await);
    }
    let endpoints: Vec<String> = proxies.iter().map(KmsProxy::endpoint).collect();
    let cluster = Cluster::start_configured(
        3,
        |_| None,
        |config| {
            config.kek = Some(KekConfig::AwsKms {
                key_id: kms_key.clone(),
                region: Some(REGION.into()),
                endpoint_url: Some(endpoints[config.node_id as usize - 1].clone()),
            });
            // seq-3 may sign once a second (burst 1): the rate-limit fault.
            for client in &mut config.admin.clients {
                if client.identity == "seq-3" {
                    client.rate_per_second = 1;
                    client.rate_burst = 1;
                }
            }
        },
    )
    .await;
    let leader = cluster.wait_leader(Duration::from_secs(30)).await;

    let targets: Vec<(String, std::net::SocketAddr)> = cluster
        .nodes
        .iter()
        .map(|n| (node_name(n.id), n.metrics_addr))
        .collect();
    let prom = Prometheus::start(&targets, CLUSTER, &scaled).await;

    // The rules Prometheus loaded are exactly the shipped file's alerts.
    let names: BTreeSet<String> = rule_list.iter().map(|r| r.name.clone()).collect();
    let loaded: BTreeSet<String> = prom.rules().await.into_keys().collect();
    assert_eq!(loaded, names);
    prom.wait_targets_up(3, Duration::from_secs(20)).await;
    // A healthy cluster: no alert at all, over a few evaluations (once the first evaluations,
    // which may have run before every target was scraped, are replaced).
    let quiet = Instant::now() + Duration::from_secs(10);
    while !prom.alerts().await.is_empty() {
        assert!(Instant::now() < quiet, "{:#?}", prom.alerts().await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for _ in 0..10 {
        let alerts = prom.alerts().await;
        assert!(alerts.is_empty(), "healthy cluster, yet: {alerts:#?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Every rule evaluates without error against the real series.
    let health = prom.rules().await;
    assert!(health.values().all(|h| h == "ok"), "{health:#?}");
    println!(
        "cluster and Prometheus up, no alert, after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // ---- certificates: what the nodes export is what openssl reads from their files.
    for id in 1..=3u64 {
        for (certificate, path) in [
            ("node", cluster.pki.node_cert_path(id)),
            ("ca", cluster.pki.ca_cert_path()),
        ] {
            let (not_after, subject) = openssl_not_after(&path);
            let got = prom
                .query_values(&format!(
                    "signer_certificate_not_after_seconds{{node=\"{}\",certificate=\"{certificate}\"}}",
                    node_name(id)
                ))
                .await;
            assert_eq!(got.len(), 1, "node {id} {certificate}: {got:?}");
            assert_eq!(got[0].0.get("subject"), Some(&subject), "{got:?}");
            assert_eq!(got[0].1, not_after as f64, "node {id} {certificate}");
        }
    }

    // ---- A: client misbehaviour, all on one follower (it counts what its clients were told).
    let a = follower(leader, 0);
    let node_a = node_name(a);
    let mut seq1 = cluster.client(a, "seq-1").await;
    seq1.sign(quorum_vote(200, 1, "")).await.unwrap();
    seq1.sign(eth2_block(7, 1)).await.unwrap();
    // Identical retries are re-signed: normal, no alert.
    for _ in 0..5 {
        seq1.sign(quorum_vote(200, 1, "")).await.unwrap();
    }
    // Six requests below the watermark.
    for view in 190..196 {
        let e = seq1.sign(quorum_vote(view, 1, "")).await.unwrap_err();
        assert_eq!(refusal_code(&e).as_deref(), Some("view_below_watermark"));
    }
    // An equivocation.
    let mut seq2 = cluster.client(a, "seq-2").await;
    seq2.sign(quorum_vote(300, 1, "")).await.unwrap();
    let e = seq2.sign(quorum_vote(300, 2, "")).await.unwrap_err();
    assert_eq!(refusal_code(&e).as_deref(), Some("equivocation"));
    // seq-3 over its rate limit.
    let mut seq3 = cluster.client(a, "seq-3").await;
    let mut limited = 0u64;
    for view in 400..406 {
        match seq3.sign(quorum_vote(view, 1, "")).await {
            Ok(_) => {}
            Err(s) if s.code() == tonic::Code::ResourceExhausted => limited += 1,
            Err(s) => panic!("seq-3: {s:?}"),
        }
    }
    assert!(limited >= 3, "only {limited} of 6 rate limited");
    // An identity without a grant, twelve times.
    let mut nobody = cluster.client(a, "nobody-1").await;
    for view in 500..512 {
        let e = nobody.sign(quorum_vote(view, 1, "")).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    }
    let phase_a = [
        expected(
            "SignerEquivocationAttempt",
            &[
                ("node", &node_a),
                ("client", "seq-2"),
                ("profile", "espresso"),
                ("reason", "equivocation"),
            ],
        ),
        expected(
            "SignerSignRequestsRefused",
            &[
                ("node", &node_a),
                ("client", "seq-1"),
                ("profile", "espresso"),
                ("reason", "view_below_watermark"),
            ],
        ),
        expected(
            "SignerAccessDeniedBurst",
            &[("node", &node_a), ("client", "(ungranted)")],
        ),
        expected(
            "SignerClientRateLimited",
            &[("node", &node_a), ("client", "seq-3")],
        ),
    ];
    expect_firing(
        &prom,
        "A: client misbehaviour",
        &phase_a,
        &for_of,
        Duration::from_secs(20),
    )
    .await;
    // The counts behind them are exactly what the clients were told.
    let refusals = prom
        .query_values(&format!(
            "signer_client_refusals_total{{node=\"{node_a}\"}}"
        ))
        .await;
    let mut by: BTreeMap<(String, String), f64> = BTreeMap::new();
    for (labels, v) in &refusals {
        by.insert((labels["client"].clone(), labels["reason"].clone()), *v);
    }
    let want: BTreeMap<(String, String), f64> = [
        (("seq-1", "view_below_watermark"), 6.0),
        (("seq-2", "equivocation"), 1.0),
        (("(ungranted)", "access_denied"), 12.0),
    ]
    .into_iter()
    .map(|((c, r), v)| ((c.to_owned(), r.to_owned()), v))
    .collect();
    assert_eq!(by, want);
    let rate_limited = prom
        .query_values(&format!(
            "signer_rate_limited_total{{node=\"{node_a}\",client=\"seq-3\"}}"
        ))
        .await;
    assert_eq!(rate_limited.len(), 1);
    assert_eq!(rate_limited[0].1, limited as f64);
    let resigned = prom
        .query_values(&format!(
            "signer_sign_requests_total{{node=\"{node_a}\",outcome=\"resigned\",profile=\"espresso\"}}"
        ))
        .await;
    assert_eq!(resigned[0].1, 5.0);
    expect_clear(
        &prom,
        "A: client misbehaviour",
        &phase_a,
        Duration::from_secs(60),
    )
    .await;

    // ---- B: the leader is SIGKILLed.
    let leader = stable_leader(&cluster).await;
    cluster.kill(leader);
    let phase_b = [expected("SignerNodeDown", &[("node", &node_name(leader))])];
    expect_firing(
        &prom,
        "B: leader killed",
        &phase_b,
        &for_of,
        Duration::from_secs(30),
    )
    .await;
    cluster.spawn(leader);
    expect_clear(&prom, "B: leader killed", &phase_b, Duration::from_secs(60)).await;

    // ---- C: a follower stops (SIGSTOP) while the leader signs on.
    let leader = stable_leader(&cluster).await;
    let stopped = follower(leader, a);
    signal(&cluster, stopped, "-STOP");
    let signing = Arc::new(AtomicBool::new(true));
    let signed = Arc::new(AtomicU64::new(0));
    let load = {
        let (signing, signed) = (signing.clone(), signed.clone());
        let mut client = cluster.client(leader, "seq-1").await;
        tokio::spawn(async move {
            let mut view = 10_000;
            while signing.load(Ordering::SeqCst) {
                view += 1;
                if client.sign(quorum_vote(view, 1, "")).await.is_ok() {
                    signed.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let phase_c = [
        expected("SignerNodeDown", &[("node", &node_name(stopped))]),
        expected(
            "SignerReplicationLagGrowing",
            &[("node", &node_name(leader)), ("peer", &stopped.to_string())],
        ),
    ];
    expect_firing(
        &prom,
        "C: follower stopped",
        &phase_c,
        &for_of,
        Duration::from_secs(60),
    )
    .await;
    signing.store(false, Ordering::SeqCst);
    load.await.unwrap();
    println!(
        "C: {} signatures while node {stopped} was stopped",
        signed.load(Ordering::SeqCst)
    );
    signal(&cluster, stopped, "-CONT");
    expect_clear(
        &prom,
        "C: follower stopped",
        &phase_c,
        Duration::from_secs(60),
    )
    .await;

    // ---- D: one node's KMS becomes unreachable while a new key is generated.
    let leader = stable_leader(&cluster).await;
    let cut = follower(leader, a);
    proxies[cut as usize - 1].set_up(false);
    // Proposed on the leader itself: the node that prepares the action seals the new key with
    // its own KMS (asked on the cut node, that fails, and SignerKmsErrors says so for
    // generate_data_key).
    let challenge = cluster
        .admin(leader)
        .await
        .propose(pb::ProposeRequest {
            request: Some(pb::propose_request::Request::GenerateKey(
                pb::GenerateKeyRequest {
                    key_id: "kms-2".into(),
                    profile: "espresso".into(),
                },
            )),
        })
        .await
        .unwrap()
        .into_inner();
    let approved = cluster.approve_as("admin-1", &challenge).await.unwrap();
    assert_eq!(approved.status, "executed", "{approved:?}");
    // The node that answered applied it; the leader the listing asks may be a moment behind.
    let deadline = Instant::now() + Duration::from_secs(10);
    let info = loop {
        if let Some(info) = cluster.key_info("kms-2").await {
            break info;
        }
        assert!(Instant::now() < deadline, "kms-2 never listed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(info.kek, format!("aws-kms:{kms_key}"));
    let phase_d = [
        expected(
            "SignerKeyPending",
            &[("node", &node_name(cut)), ("key", "kms-2")],
        ),
        expected(
            "SignerKmsErrors",
            &[
                ("node", &node_name(cut)),
                ("backend", "aws-kms"),
                ("op", "unwrap_data_key"),
            ],
        ),
    ];
    expect_firing(
        &prom,
        "D: KMS unreachable for one node",
        &phase_d,
        &for_of,
        Duration::from_secs(60),
    )
    .await;
    let pending = cluster.status(cut).await.unwrap().keys_pending;
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].key_id, "kms-2");
    let gauge = prom
        .query_values(&format!(
            "signer_keys_pending{{node=\"{}\"}}",
            node_name(cut)
        ))
        .await;
    assert_eq!(gauge[0].1, 1.0);
    proxies[cut as usize - 1].set_up(true);
    cluster
        .wait_all("kms-2 loaded everywhere", |s| {
            s.keys_loaded.iter().any(|k| k == "kms-2") && s.keys_pending.is_empty()
        })
        .await;
    expect_clear(
        &prom,
        "D: KMS unreachable for one node",
        &phase_d,
        Duration::from_secs(60),
    )
    .await;

    // ---- E: one audit record altered on one node's disk.
    let leader = stable_leader(&cluster).await;
    let victim = follower(leader, a);
    let target = cluster
        .audit_entries(victim)
        .await
        .into_iter()
        .map(|e| e.seq)
        .nth(3)
        .unwrap();
    stop_clean(&cluster, victim);
    let path = cluster.dir().join(format!("node-{victim}/data/state.redb"));
    flip_audit_byte(&path, target);
    cluster.spawn(victim);
    let phase_e = [expected(
        "SignerAuditChainBroken",
        &[("node", &node_name(victim))],
    )];
    expect_firing(
        &prom,
        "E: audit record altered",
        &phase_e,
        &for_of,
        Duration::from_secs(30),
    )
    .await;
    // The gauge names the record the Audit service names, which is the one the test changed.
    let verify = cluster.audit_verify(victim).await;
    assert!(!verify.ok);
    assert_eq!(verify.first_bad_seq, target);
    let bad = prom
        .query_values(&format!(
            "signer_audit_chain_first_bad_seq{{node=\"{}\"}}",
            node_name(victim)
        ))
        .await;
    assert_eq!(bad[0].1, target as f64);
    // Put the byte back and restart: a stand-in for a repair. The in-place rebuild (an empty
    // data directory) is not possible in this version: the leader's Raft stops when a
    // follower's log goes backwards (openraft's log-reversion check), and replacing the node
    // under a new id needs membership changes, which are not built (see the playbook).
    stop_clean(&cluster, victim);
    flip_audit_byte(&path, target);
    cluster.spawn(victim);
    expect_clear(
        &prom,
        "E: audit record altered",
        &phase_e,
        Duration::from_secs(60),
    )
    .await;

    // The repaired node holds the same chain as the others, and it verifies.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut heads = Vec::new();
        for id in 1..=3 {
            let v = cluster.audit_verify(id).await;
            heads.push((v.ok, v.head_seq, v.head_hash, v.last_applied_index));
        }
        if heads.iter().all(|h| h.0)
            && heads
                .windows(2)
                .all(|w| w[0].1 == w[1].1 && w[0].2 == w[1].2)
        {
            break;
        }
        if Instant::now() > deadline {
            let log = cluster.log_of(victim);
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            panic!(
                "the repaired node {victim} does not converge: {:?}\n--- its log, newest first:\n{}",
                heads.iter().map(|h| (h.0, h.1, h.3)).collect::<Vec<_>>(),
                tail.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // ---- Every query of the dashboard returns data from this Prometheus.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(rules::deploy_dir().join("grafana/quorum-signer.json")).unwrap(),
    )
    .unwrap();
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 20, "{} queries", exprs.len());
    for expr in &exprs {
        let query = expr
            .replace("$cluster", CLUSTER)
            .replace("$__rate_interval", "5m")
            .replace("$__range", "1h");
        let values = prom.query_values(&query).await;
        assert!(
            values.iter().any(|(_, v)| !v.is_nan()),
            "dashboard query returned no data: {query}\n{values:?}"
        );
    }
    println!(
        "{} dashboard queries return data; {:.1} s in all",
        exprs.len(),
        started.elapsed().as_secs_f64()
    );
}

/// Flip the last byte of audit record `seq` in the state database at `path` (the node is
/// stopped); flipping it again restores it.
fn flip_audit_byte(path: &std::path::Path, seq: u64) {
    use redb::{ReadableTable, TableDefinition};
    const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut table = txn.open_table(AUDIT).unwrap();
        let mut bytes = table.get(seq).unwrap().unwrap().value().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        table.insert(seq, bytes.as_slice()).unwrap();
    }
    txn.commit().unwrap();
}

/// Every `expr` of every target of every panel, rows' panels included.
fn collect_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            if let (Some(serde_json::Value::String(e)), Some(_)) =
                (map.get("expr"), map.get("refId"))
            {
                out.push(e.clone());
            }
            for value in map.values() {
                collect_exprs(value, out);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                collect_exprs(item, out);
            }
        }
        _ => {}
    }
}
