//! `signerctl audit tail|show|verify|export`: the auditor's view of the replicated,
//! hash-chained audit log.
//!
//! Owns: these commands' arguments, their text and JSON output, and the cross-node comparison
//! of `verify` (every node recomputes its own chain from its database; this compares the
//! heads at a common seq). Must not: change anything in the cluster, or trust a record's
//! readable fields over its canonical bytes (`signer_core::audit` decodes and hashes those).

use crate::{exit, Failure};
use clap::{Args, Subcommand};
use signer_client::pb;
use signer_client::{ClientError, SignerPool};
use signer_core::audit::{self, ChainPoint};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;

/// Exit code when a chain does not verify or the nodes disagree.
const EXIT_BROKEN: u8 = exit::AUDIT_BROKEN;

/// The audit commands' identity note and exit codes.
pub const AUDIT_EXIT_CODES: &str = concat!(
    "\
Audit commands authenticate as client auditor-1 unless --client names another auditor-… or
admin-… identity. `verify` exits 0 only when every node's chain verifies and all agree, 4 when
some node did not answer, 9 when a chain does not verify (the node and first bad record are
named) or nodes disagree at a common record.

",
    exit::exit_code_table!()
);

/// `signerctl audit …`.
#[derive(Subcommand)]
pub enum AuditCommand {
    /// The newest records (20 unless -n), oldest first; --follow keeps printing new ones.
    ///
    /// One line per record: seq, time (UTC), type and what happened. With --json, one JSON
    /// object per line, as `export` writes them.
    #[command(after_help = AUDIT_EXIT_CODES)]
    Tail(TailArgs),
    /// One record in full: its fields, hash and the hash it links to.
    #[command(after_help = AUDIT_EXIT_CODES)]
    Show(ShowArgs),
    /// Recompute the chain on every node and compare them; or verify an export file.
    ///
    /// Each node re-reads its audit records from its database and recomputes every hash from
    /// the compaction anchor (or the first record) to its head; a record that was edited,
    /// deleted or reordered is named. The nodes' hashes are then compared at the highest seq
    /// all of them hold, which shows they hold the same history. With --file, the records of
    /// an export are verified offline (bytes, links, and that the readable fields match the
    /// bytes), and the last one is compared with the cluster's record of the same seq.
    #[command(after_help = AUDIT_EXIT_CODES)]
    Verify(VerifyArgs),
    /// Every kept record as JSON lines, oldest first, for archiving and `verify --file`.
    ///
    /// Each line holds the record's fields, `hash`, `prev_hash` and `encoded` (the canonical
    /// bytes the hashes are computed over). Filters make an export that is not a chain
    /// (verify reports the gaps); export everything to archive before a compaction.
    #[command(after_help = AUDIT_EXIT_CODES)]
    Export(ExportArgs),
}

/// Which records to show.
#[derive(Args, Clone, Debug, Default)]
pub struct FilterArgs {
    /// Only records about this key.
    #[arg(long, value_name = "KEY_ID")]
    key: Option<String>,
    /// Only records about this client (or admin) identity.
    #[arg(long = "by-client", value_name = "NAME")]
    by_client: Option<String>,
    /// Only records with this result. Sign decisions: signed, resigned, refused,
    /// key_inactive, paused; access denials: denied; KMS failures: failed; admin actions:
    /// open, pending, executed, failed, refused, ok (bootstrap); other records: ok.
    #[arg(long, value_name = "RESULT", value_parser = clap::builder::PossibleValuesParser::new(audit::RESULT_WORDS))]
    result: Option<String>,
    /// Only records at or after this time: RFC 3339 (2024-05-01T12:00:00Z, 2024-05-01) or
    /// milliseconds since the Unix epoch.
    #[arg(long, value_name = "TIME", value_parser = audit::parse_time)]
    since: Option<u64>,
    /// Only records before this time (same forms as --since).
    #[arg(long, value_name = "TIME", value_parser = audit::parse_time)]
    until: Option<u64>,
}

impl FilterArgs {
    fn to_pb(&self) -> pb::AuditFilter {
        pb::AuditFilter {
            key_id: self.key.clone().unwrap_or_default(),
            client: self.by_client.clone().unwrap_or_default(),
            result: self.result.clone().unwrap_or_default(),
            since_ms: self.since.unwrap_or(0),
            until_ms: self.until.unwrap_or(0),
        }
    }

    fn is_empty(&self) -> bool {
        self.to_pb() == pb::AuditFilter::default()
    }
}

/// Arguments of `audit tail`.
#[derive(Args, Clone, Debug)]
pub struct TailArgs {
    /// How many of the newest matching records to print first.
    #[arg(short = 'n', long = "lines", value_name = "N", default_value_t = 20)]
    lines: u32,
    /// Keep running and print new records as they are committed (Ctrl-C stops).
    #[arg(short, long)]
    follow: bool,
    #[command(flatten)]
    filter: FilterArgs,
}

/// Arguments of `audit show`.
#[derive(Args, Clone, Debug)]
pub struct ShowArgs {
    /// The record's seq.
    #[arg(value_name = "SEQ")]
    seq: u64,
}

/// Arguments of `audit verify`.
#[derive(Args, Clone, Debug)]
pub struct VerifyArgs {
    /// Verify this export (from `audit export --jsonl`) instead of the nodes' databases.
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
}

/// Arguments of `audit export`.
#[derive(Args, Clone, Debug)]
pub struct ExportArgs {
    /// JSON lines, one record per line (the only format; required for clarity).
    #[arg(long, required = true)]
    jsonl: bool,
    #[command(flatten)]
    filter: FilterArgs,
}

fn hex32(h: &[u8]) -> String {
    format!("0x{}", hex::encode(h))
}

/// A client error as a failure: PERMISSION_DENIED exits 5, the rest as everywhere.
fn failure(e: ClientError) -> Failure {
    match &e {
        ClientError::Other(status) if status.code() == tonic::Code::PermissionDenied => {
            Failure::new(
                exit::NOT_PERMITTED,
                format!("not permitted: {}", status.message()),
            )
        }
        _ => Failure::from(e),
    }
}

fn stream_error(e: tonic::Status) -> Failure {
    failure(ClientError::Other(Box::new(e)))
}

/// Decode a wire entry; the JSON rendering, or a failure naming the seq.
fn entry_json(e: &pb::AuditEntry) -> Result<serde_json::Value, Failure> {
    let record = audit::decode(&e.record)
        .map_err(|err| Failure::new(EXIT_BROKEN, format!("record {}: {err}", e.seq)))?;
    Ok(audit::to_json(
        &record,
        &audit::hash_bytes(&e.record),
        &e.record,
    ))
}

/// Run an audit command.
pub async fn run(pool: &SignerPool, command: &AuditCommand, json: bool) -> Result<(), Failure> {
    match command {
        AuditCommand::Tail(args) => tail(pool, args, json).await,
        AuditCommand::Show(args) => show(pool, args.seq, json).await,
        AuditCommand::Verify(VerifyArgs { file: Some(path) }) => {
            verify_file(pool, path, json).await
        }
        AuditCommand::Verify(VerifyArgs { file: None }) => verify_nodes(pool, json).await,
        AuditCommand::Export(args) => export(pool, &args.filter).await,
    }
}

async fn print_stream(
    mut stream: tonic::Streaming<pb::AuditEntry>,
    json: bool,
) -> Result<u64, Failure> {
    let mut count = 0;
    let mut out = std::io::stdout().lock();
    while let Some(e) = stream.message().await.map_err(stream_error)? {
        let line = if json {
            entry_json(&e)?.to_string()
        } else {
            e.summary.clone()
        };
        writeln!(out, "{line}").map_err(|e| Failure::new(1, format!("stdout: {e}")))?;
        out.flush().ok();
        count += 1;
    }
    Ok(count)
}

async fn tail(pool: &SignerPool, args: &TailArgs, json: bool) -> Result<(), Failure> {
    let (_, stream) = pool
        .audit_tail(pb::AuditTailRequest {
            from_seq: 0,
            last: args.lines.max(1),
            follow: args.follow,
            filter: Some(args.filter.to_pb()),
        })
        .await
        .map_err(failure)?;
    print_stream(stream, json).await.map(|_| ())
}

async fn export(pool: &SignerPool, filter: &FilterArgs) -> Result<(), Failure> {
    if !filter.is_empty() {
        eprintln!("note: a filtered export is not a whole chain; `audit verify --file` will report its gaps");
    }
    let (node, stream) = pool
        .audit_tail(pb::AuditTailRequest {
            from_seq: 0,
            last: 0,
            follow: false,
            filter: Some(filter.to_pb()),
        })
        .await
        .map_err(failure)?;
    let count = print_stream(stream, true).await?;
    eprintln!("exported {count} records from node-{node}");
    Ok(())
}

async fn show(pool: &SignerPool, seq: u64, json: bool) -> Result<(), Failure> {
    let (node, e) = pool.audit_get(seq).await.map_err(failure)?;
    let value = entry_json(&e)?;
    if json {
        signer_client::outln!("{value}");
        return Ok(());
    }
    signer_client::outln!("{}", e.summary);
    signer_client::outln!("  hash       {}", hex32(&e.hash));
    // Strings bare (like the hash above), everything else as JSON.
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    for field in ["prev_hash", "log_index", "at", "at_ms", "type"] {
        signer_client::outln!("  {field:<10} {}", text(&value[field]));
    }
    if let Some(event) = value["event"].as_object() {
        for (k, v) in event {
            signer_client::outln!("  {k:<10} {}", text(v));
        }
    }
    signer_client::outln!("  (from node-{node})");
    Ok(())
}

/// What one node said.
struct NodeVerdict {
    id: u64,
    answer: Result<pb::AuditVerifyResponse, ClientError>,
}

async fn verify_nodes(pool: &SignerPool, json: bool) -> Result<(), Failure> {
    let first: Vec<NodeVerdict> = pool
        .audit_verify_all(0)
        .await
        .into_iter()
        .map(|(id, answer)| NodeVerdict { id, answer })
        .collect();
    let mut problems: Vec<String> = Vec::new();
    let mut unreachable = 0;
    let mut ok: Vec<&pb::AuditVerifyResponse> = Vec::new();
    for v in &first {
        match &v.answer {
            Ok(r) if r.ok => ok.push(r),
            Ok(r) => problems.push(format!(
                "node-{}: chain broken at record {}: {}",
                v.id, r.first_bad_seq, r.reason
            )),
            Err(ClientError::Other(status)) if status.code() == tonic::Code::PermissionDenied => {
                return Err(Failure::new(
                    5,
                    format!("not permitted: {}", status.message()),
                ));
            }
            Err(e) => {
                unreachable += 1;
                problems.push(format!("node-{}: not verified: {e}", v.id));
            }
        }
    }
    // Compare at the highest seq every verified node holds.
    let common = ok.iter().map(|r| r.head_seq).min().unwrap_or(0);
    let mut at_common: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    if ok.iter().all(|r| r.head_seq == common) {
        for r in &ok {
            at_common.insert(r.node_id, r.head_hash.clone());
        }
    } else {
        for (id, answer) in pool.audit_verify_all(common).await {
            match answer {
                Ok(r) if ok.iter().any(|o| o.node_id == id) => {
                    if r.at_hash.is_empty() {
                        problems.push(format!(
                            "node-{id}: record {common} is not kept there (compacted); not compared"
                        ));
                    } else {
                        at_common.insert(id, r.at_hash);
                    }
                }
                _ => {}
            }
        }
    }
    let mut groups: BTreeMap<Vec<u8>, Vec<u64>> = BTreeMap::new();
    for (id, h) in &at_common {
        groups.entry(h.clone()).or_default().push(*id);
    }
    if groups.len() > 1 {
        let majority = groups
            .iter()
            .max_by_key(|(_, ids)| ids.len())
            .map(|(h, _)| h.clone())
            .unwrap_or_default();
        for (h, ids) in &groups {
            if *h != majority {
                for id in ids {
                    problems.push(format!(
                        "node-{id}: record {common} has hash {} but {} other node(s) have {}",
                        hex32(h),
                        groups.get(&majority).map_or(0, Vec::len),
                        hex32(&majority)
                    ));
                }
            }
        }
    }
    let broken = first.iter().any(|v| matches!(&v.answer, Ok(r) if !r.ok)) || groups.len() > 1;
    if json {
        let nodes: Vec<_> = first
            .iter()
            .map(|v| match &v.answer {
                Ok(r) => serde_json::json!({
                    "node_id": v.id,
                    "ok": r.ok,
                    "anchor_seq": r.anchor_seq,
                    "anchor_hash": hex32(&r.anchor_hash),
                    "head_seq": r.head_seq,
                    "head_hash": hex32(&r.head_hash),
                    "first_bad_seq": if r.ok { 0 } else { r.first_bad_seq },
                    "reason": r.reason,
                    "hash_at_common": at_common.get(&v.id).map(|h| hex32(h)),
                }),
                Err(e) => serde_json::json!({"node_id": v.id, "error": e.to_string()}),
            })
            .collect();
        signer_client::outln!(
            "{}",
            serde_json::json!({
                "ok": problems.is_empty(),
                "common_seq": common,
                "nodes": nodes,
                "problems": problems,
            })
        );
    } else {
        for v in &first {
            if let Ok(r) = &v.answer {
                if r.ok {
                    signer_client::outln!(
                        "node-{}: chain verified, records {}..={} (anchor {} {}), head {}",
                        v.id,
                        r.anchor_seq + 1,
                        r.head_seq,
                        r.anchor_seq,
                        short(&r.anchor_hash),
                        short(&r.head_hash)
                    );
                }
            }
        }
        if problems.is_empty() {
            signer_client::outln!(
                "all {} nodes agree at record {common}: {}",
                at_common.len(),
                at_common
                    .values()
                    .next()
                    .map(|h| hex32(h))
                    .unwrap_or_default()
            );
        }
        for p in &problems {
            eprintln!("{p}");
        }
    }
    if broken {
        return Err(Failure::new(
            EXIT_BROKEN,
            "audit verify: FAILED (see above)".to_owned(),
        ));
    }
    if unreachable > 0 {
        return Err(Failure::new(
            4,
            format!("audit verify: {unreachable} node(s) could not be verified"),
        ));
    }
    Ok(())
}

fn short(h: &[u8]) -> String {
    let full = hex::encode(h);
    format!("0x{}…", &full[..full.len().min(16)])
}

/// Verify an export file offline, then compare its last record with the cluster's.
async fn verify_file(pool: &SignerPool, path: &PathBuf, json: bool) -> Result<(), Failure> {
    let file = std::fs::File::open(path)
        .map_err(|e| Failure::new(1, format!("error: {}: {e}", path.display())))?;
    let mut records: Vec<(u64, Vec<u8>)> = Vec::new();
    let broken = |seq: u64, why: String| {
        Failure::new(
            EXIT_BROKEN,
            format!("{}: record {seq}: {why}", path.display()),
        )
    };
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| Failure::new(1, format!("error: {}: {e}", path.display())))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(&line).map_err(|e| {
            Failure::new(
                EXIT_BROKEN,
                format!("{}: line {}: {e}", path.display(), n + 1),
            )
        })?;
        let seq = value["seq"].as_u64().ok_or_else(|| {
            Failure::new(
                EXIT_BROKEN,
                format!("{}: line {}: no seq", path.display(), n + 1),
            )
        })?;
        let bytes = value["encoded"]
            .as_str()
            .and_then(|s| hex::decode(s).ok())
            .ok_or_else(|| broken(seq, "no canonical bytes (`encoded`)".into()))?;
        let record = audit::decode(&bytes).map_err(|e| broken(seq, e.to_string()))?;
        // The readable fields must say what the bytes say.
        let expected = audit::to_json(&record, &audit::hash_bytes(&bytes), &bytes);
        if expected != value {
            return Err(broken(
                seq,
                "its readable fields differ from its canonical bytes".into(),
            ));
        }
        records.push((seq, bytes));
    }
    let Some((first_seq, first_bytes)) = records.first() else {
        return Err(Failure::new(1, format!("{}: no records", path.display())));
    };
    let first = audit::decode(first_bytes).map_err(|e| broken(*first_seq, e.to_string()))?;
    let anchor = ChainPoint {
        seq: first_seq - 1,
        hash: first.prev_hash,
    };
    if anchor.seq == 0 && anchor.hash != audit::GENESIS {
        return Err(broken(
            1,
            "record 1 does not link to the genesis hash".into(),
        ));
    }
    let head = audit::verify_chain(&records, anchor, None).map_err(|e| {
        Failure::new(
            EXIT_BROKEN,
            format!(
                "{}: record {}: {}",
                path.display(),
                e.first_bad_seq,
                e.reason
            ),
        )
    })?;
    // The same record on the nodes.
    let mut matches = Vec::new();
    let mut differs = Vec::new();
    let mut unknown = Vec::new();
    for (id, answer) in pool.audit_verify_all(head.seq).await {
        match answer {
            Ok(r) if r.at_hash == head.hash => matches.push(id),
            Ok(r) if r.at_hash.is_empty() => unknown.push(id),
            Ok(_) => differs.push(id),
            Err(_) => unknown.push(id),
        }
    }
    if json {
        signer_client::outln!(
            "{}",
            serde_json::json!({
                "ok": differs.is_empty(),
                "first_seq": first_seq,
                "last_seq": head.seq,
                "anchor_hash": hex32(&anchor.hash),
                "last_hash": hex32(&head.hash),
                "nodes_matching": matches,
                "nodes_differing": differs,
                "nodes_not_compared": unknown,
            })
        );
    } else {
        signer_client::outln!(
            "{}: {} records {}..={} verified (anchor {}), last hash {}",
            path.display(),
            records.len(),
            first_seq,
            head.seq,
            short(&anchor.hash),
            hex32(&head.hash)
        );
        if !matches.is_empty() {
            signer_client::outln!("record {} matches on node(s) {matches:?}", head.seq);
        }
        if !unknown.is_empty() {
            signer_client::outln!(
                "not compared on node(s) {unknown:?} (unreachable, or record not kept)"
            );
        }
    }
    if !differs.is_empty() {
        return Err(Failure::new(
            EXIT_BROKEN,
            format!("record {} differs on node(s) {differs:?}", head.seq),
        ));
    }
    Ok(())
}
