//! Backup and restore over real clusters (`signer node` processes): clients sign on cluster A
//! while an auditor takes a backup; a restore next to live A and a restore of a tampered file
//! are refused with their exact messages; A stops; `signer restore` seeds a new cluster B on
//! the same hosts (empty data directories); every message A signed, and anything at or below
//! the backup's maxima plus the margins, is refused on B with its exact refusal code; new
//! messages above sign; the independent oracle (`oracle/`) over A's and B's signatures finds
//! no conflicting pair, and B's audit chain continues A's.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod adversarial;
mod oracle;
mod support;

use adversarial::{request, Asked};
use oracle::requests::Msg;
use signer_node::backup::margin::{self, Margin};
use signer_node::config::NodeConfig;
use signer_node::pb;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{refusal_code, sign_retrying, Cluster, ESPRESSO_KEY, ETH2_KEY};

const MARGIN: Margin = Margin {
    eth2_epochs: 5,
    espresso_views: 50,
};

/// Step `n`'s three messages: a block at slot n, an attestation n-1 → n, a quorum vote at view n.
fn step(n: u64) -> Vec<(&'static str, Msg)> {
    vec![
        (ETH2_KEY, Msg::Block { slot: n, body: 1 }),
        (
            ETH2_KEY,
            Msg::Attestation {
                source: n - 1,
                target: n,
                root: 1,
            },
        ),
        (ESPRESSO_KEY, Msg::QuorumVote { view: n, leaf: 1 }),
    ]
}

/// A backup through the Audit service, as auditor-1, from whichever node leads.
async fn backup(cluster: &Cluster) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for id in cluster.running() {
            let mut auditor = cluster.auditor(id);
            let Ok(stream) = auditor.backup(pb::BackupRequest {}).await else {
                continue;
            };
            let mut stream = stream.into_inner();
            let mut file = Vec::new();
            while let Some(chunk) = stream.message().await.unwrap() {
                file.extend_from_slice(&chunk.data);
            }
            return file;
        }
        assert!(Instant::now() < deadline, "no node took a backup");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `signer restore FILE --config CONFIG --eth2-margin-epochs … --espresso-margin-views …`:
/// (success, stdout, stderr).
fn restore(file: &Path, config: &Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_signer"))
        .arg("restore")
        .arg(file)
        .arg("--config")
        .arg(config)
        .args(["--eth2-margin-epochs", &MARGIN.eth2_epochs.to_string()])
        .args([
            "--espresso-margin-views",
            &MARGIN.espresso_views.to_string(),
        ])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A copy of node `id`'s config whose data directory is `data_dir`.
fn config_with_data_dir(cluster: &Cluster, id: u64, data_dir: PathBuf) -> PathBuf {
    let path = cluster
        .node(id)
        .config_path
        .with_file_name("restore-probe.toml");
    let mut config = NodeConfig::load(&cluster.node(id).config_path).unwrap();
    config.data_dir = data_dir;
    std::fs::write(&path, config.to_toml().unwrap()).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restored_cluster_refuses_everything_the_backup_and_its_margin_cover() {
    let cluster = Cluster::start(3).await;
    let keys = adversarial::public_keys(&cluster).await;
    let mut oracle = keys.oracle();

    // ---- cluster A: sign while an auditor takes a backup ---------------------------------
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let mut client = cluster.client(1, "seq-1").await;
    let signing = tokio::spawn(async move {
        let mut signed: Vec<(Asked, pb::SignResponse)> = Vec::new();
        let mut n = 1u64;
        // After the stop, two more steps: what A signs after the backup stays in the margins.
        let mut after_stop = 0;
        while after_stop < 2 {
            if stopped.load(Ordering::SeqCst) {
                after_stop += 1;
            }
            for (key, msg) in step(n) {
                let asked = request(key, &format!("a-{n}-{key}"), &msg);
                let r = sign_retrying(&mut client, asked.request.clone())
                    .await
                    .unwrap_or_else(|s| panic!("A refused step {n}: {s:?}"));
                signed.push((asked, r));
            }
            n += 1;
        }
        signed
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let file = backup(&cluster).await;
    stop.store(true, Ordering::SeqCst);
    let signed_on_a = signing.await.unwrap();
    for (asked, r) in &signed_on_a {
        asked.announce(&mut oracle);
        oracle.received(
            &r.signature,
            &r.signed_message,
            asked.digest,
            &asked.meaning,
        );
    }
    let verified = signer_node::backup::decode(&file).unwrap();
    assert_eq!(verified.header.cluster_id, "test-cluster");
    assert_eq!(verified.header.members.len(), 3);
    let floors = margin::floors(&verified.body.protection, MARGIN);
    let (eth2_epoch, eth2_slot, view) = (
        floors.eth2_epoch.unwrap(),
        floors.eth2_slot.unwrap(),
        floors.espresso_view.unwrap(),
    );
    let steps_on_a = signed_on_a.len() as u64 / 3;
    assert!(steps_on_a >= 3, "A signed only {steps_on_a} steps");
    assert!(
        steps_on_a <= eth2_epoch && steps_on_a <= view,
        "A signed past the margins"
    );

    let dir = cluster.dir().to_path_buf();
    let backup_file = dir.join("cluster-a.backup");
    std::fs::write(&backup_file, &file).unwrap();

    // ---- refusals while A runs -----------------------------------------------------------
    let probe = config_with_data_dir(&cluster, 1, dir.join("empty-data"));
    let (ok, _, stderr) = restore(&backup_file, &probe);
    assert!(!ok);
    assert_eq!(
        stderr.trim(),
        format!(
            "error: refusing to restore: node 1 of the backed-up cluster answers on {}; stop every \
             node of the backed-up cluster, and start no node of the new one, before restoring (a \
             restored cluster next to a live one could sign conflicting messages)",
            cluster.node(1).peer_addr
        )
    );
    let tampered_file = dir.join("tampered.backup");
    let mut tampered = file.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x40;
    std::fs::write(&tampered_file, &tampered).unwrap();
    let (ok, _, stderr) = restore(&tampered_file, &probe);
    assert!(!ok);
    assert!(
        stderr.starts_with(&format!(
            "error: refusing to restore {}: backup digest mismatch: the file was changed or cut \
             short after it was written",
            tampered_file.display()
        )),
        "{stderr}"
    );
    assert!(!dir.join("empty-data").exists(), "a refused restore wrote");

    // ---- stop A; restore into B on the same hosts ----------------------------------------
    for id in 1..=3 {
        cluster.kill(id);
        let data = NodeConfig::load(&cluster.node(id).config_path)
            .unwrap()
            .data_dir;
        std::fs::rename(&data, data.with_file_name("data-of-a")).unwrap();
    }
    let (ok, _, stderr) = restore(&backup_file, &cluster.node(2).config_path);
    assert!(!ok);
    assert!(
        stderr.contains("refusing to restore on node 2: its config has bootstrap = false"),
        "{stderr}"
    );
    let (ok, stdout, stderr) = restore(&backup_file, &cluster.node(1).config_path);
    assert!(ok, "{stderr}");
    assert!(
        stdout.starts_with(&format!(
            "restored backup sha256:{}",
            hex::encode(verified.digest)
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "eth2 floor: epoch {eth2_epoch} (blocks refused up to slot {eth2_slot})"
        )),
        "{stdout}"
    );
    let (ok, _, stderr) = restore(&backup_file, &cluster.node(1).config_path);
    assert!(!ok);
    assert!(
        stderr.contains("the data directory is not empty"),
        "{stderr}"
    );
    for id in 1..=3 {
        cluster.spawn(id);
    }
    cluster.wait_leader(Duration::from_secs(30)).await;
    cluster.wait_bootstrapped().await;

    // ---- B refuses everything A signed, and everything up to the floors ------------------
    let mut clients = Vec::new();
    for id in 1..=3 {
        clients.push(cluster.client(id, "seq-2").await);
    }
    for (i, (asked, _)) in signed_on_a.iter().enumerate() {
        let expected = match asked.request.key_id.as_str() {
            ESPRESSO_KEY => "view_below_watermark",
            _ if matches!(asked.meaning, oracle::Meaning::Block { .. }) => {
                "block_slot_not_above_watermark"
            }
            _ => "source_below_watermark",
        };
        let status = sign_retrying(&mut clients[i % 3], asked.request.clone())
            .await
            .expect_err("B signed a message A signed");
        assert_eq!(
            refusal_code(&status).as_deref(),
            Some(expected),
            "{status:?}"
        );
    }
    // Conflicting messages at what A signed, at the floors, and just above them.
    let on_b = |key: &'static str, msg: Msg| request(key, "b", &msg);
    let cases: Vec<(Asked, Option<&str>)> = vec![
        (
            on_b(ETH2_KEY, Msg::Block { slot: 2, body: 9 }),
            Some("block_slot_not_above_watermark"),
        ),
        (
            on_b(ESPRESSO_KEY, Msg::QuorumVote { view: 2, leaf: 9 }),
            Some("view_below_watermark"),
        ),
        (
            on_b(
                ETH2_KEY,
                Msg::Block {
                    slot: eth2_slot,
                    body: 9,
                },
            ),
            Some("double_block_proposal"),
        ),
        (
            on_b(
                ETH2_KEY,
                Msg::Attestation {
                    source: eth2_epoch,
                    target: eth2_epoch,
                    root: 9,
                },
            ),
            Some("double_vote"),
        ),
        (
            on_b(
                ETH2_KEY,
                Msg::Attestation {
                    source: eth2_epoch - 1,
                    target: eth2_epoch + 1,
                    root: 9,
                },
            ),
            Some("source_below_watermark"),
        ),
        (
            on_b(ESPRESSO_KEY, Msg::QuorumVote { view, leaf: 9 }),
            Some("equivocation"),
        ),
        (
            on_b(
                ETH2_KEY,
                Msg::Block {
                    slot: eth2_slot + 1,
                    body: 9,
                },
            ),
            None,
        ),
        (
            on_b(
                ETH2_KEY,
                Msg::Attestation {
                    source: eth2_epoch,
                    target: eth2_epoch + 1,
                    root: 9,
                },
            ),
            None,
        ),
        (
            on_b(
                ESPRESSO_KEY,
                Msg::QuorumVote {
                    view: view + 1,
                    leaf: 9,
                },
            ),
            None,
        ),
    ];
    for (i, (asked, refused)) in cases.iter().enumerate() {
        asked.announce(&mut oracle);
        match (
            sign_retrying(&mut clients[i % 3], asked.request.clone()).await,
            refused,
        ) {
            (Ok(r), None) => oracle.received(
                &r.signature,
                &r.signed_message,
                asked.digest,
                &asked.meaning,
            ),
            (Err(s), Some(code)) => {
                assert_eq!(
                    refusal_code(&s).as_deref(),
                    Some(*code),
                    "{:?}: {s:?}",
                    asked.meaning
                )
            }
            (other, _) => panic!(
                "{:?}: {other:?}, expected refusal {refused:?}",
                asked.meaning
            ),
        }
    }
    let conflicts = oracle.conflicts();
    assert!(conflicts.is_empty(), "{conflicts:#?}");
    assert_eq!(oracle.signatures(), signed_on_a.len() + 3);

    // B's chain continues A's from the backup's head, on every node.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut heads = Vec::new();
        for id in 1..=3 {
            let v = cluster.audit_verify(id).await;
            assert!(v.ok, "node {id}: {v:?}");
            assert!(v.head_seq > verified.header.audit_head.seq);
            heads.push(v.head_seq);
        }
        if heads.windows(2).all(|w| w[0] == w[1]) {
            break;
        }
        assert!(Instant::now() < deadline, "audit heads differ: {heads:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
