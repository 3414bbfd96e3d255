//! Turning `signerctl sign` arguments into one typed `SignRequest`.
//!
//! Owns: which options each message kind takes, parsing their values (hex, lengths), and
//! refusing options that do not apply. Must not: talk to the cluster, or decide anything about
//! whether a message may be signed.

use clap::{Args, ValueEnum};
use signer_client::pb;

/// The signing profile of the key (it must match the key's profile in the cluster).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProfileArg {
    /// Espresso HotShot consensus messages, BLS over BN254.
    Espresso,
    /// Ethereum consensus messages, BLS12-381.
    Eth2,
}

/// Which HotShot release's `Leaf2::commit()` a quorum proposal follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LeafLayoutArg {
    /// Protocol 0.1 and 0.2: no epoch clauses (--with-epoch refused).
    #[value(name = "v0.1-v0.2")]
    PreEpoch,
    /// The first epoch leaf: --with-epoch required, no view-change evidence.
    EpochsWithoutEvidence,
    /// Protocol 0.3 to 0.6: --with-epoch required, view-change evidence hashed.
    #[value(name = "v0.3-v0.6")]
    Epochs,
    /// The new protocol (after its cutover): --with-epoch required, no --next-epoch-qc-commit,
    /// evidence a timeout certificate (--timeout-cert-commit or --timeout-cert-v3-commit).
    NewProtocol,
}

/// What is being signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// Espresso quorum vote: --view, --commitment (leaf), [--epoch, --block-number].
    Quorum,
    /// Espresso next-epoch quorum vote: --view, --commitment (leaf), [--epoch, --block-number].
    NextEpochQuorum,
    /// Espresso DA vote: --view, --commitment (payload), [--next-epoch-commitment, --epoch].
    Da,
    /// Espresso timeout vote: --view, [--epoch].
    Timeout,
    /// Espresso view-sync pre-commit vote: --round, --relay, [--epoch].
    ViewSyncPrecommit,
    /// Espresso view-sync commit vote: --round, --relay, [--epoch].
    ViewSyncCommit,
    /// Espresso view-sync finalize vote: --round, --relay, [--epoch].
    ViewSyncFinalize,
    /// Espresso quorum proposal: the leaf's fields, from which the signer computes the leaf
    /// commitment it signs: --view, --parent-leaf, --block-header-commit, --justify-qc-commit,
    /// [--upgrade-cert-commit], [--with-epoch [--next-epoch-qc-commit] [--next-drb-result]
    /// [--timeout-cert-commit | --view-sync-cert-commit | --timeout-cert-v3-commit]],
    /// [--leaf-layout].
    QuorumProposal,
    /// Espresso DA proposal: --view, --transactions-hex (the signer signs their SHA-256).
    DaProposal,
    /// Ethereum block proposal as a raw signing root the client computed: --slot,
    /// --signing-root. Refused unless the client's grant trusts raw roots (`raw_roots`);
    /// typed requests (--request-json) are signed for every client.
    Block,
    /// Ethereum attestation as a raw signing root: --source-epoch, --target-epoch,
    /// --signing-root. Refused unless the client's grant trusts raw roots.
    Attestation,
}

impl Kind {
    fn profile(self) -> ProfileArg {
        match self {
            Kind::Block | Kind::Attestation => ProfileArg::Eth2,
            _ => ProfileArg::Espresso,
        }
    }

    /// The options this kind takes (required and optional), by flag name.
    fn options(self) -> &'static [&'static str] {
        match self {
            Kind::Quorum | Kind::NextEpochQuorum => {
                &["view", "commitment", "epoch", "block-number"]
            }
            Kind::Da => &["view", "commitment", "next-epoch-commitment", "epoch"],
            Kind::Timeout => &["view", "epoch"],
            Kind::ViewSyncPrecommit | Kind::ViewSyncCommit | Kind::ViewSyncFinalize => {
                &["round", "relay", "epoch"]
            }
            Kind::QuorumProposal => &[
                "view",
                "parent-leaf",
                "block-header-commit",
                "justify-qc-commit",
                "upgrade-cert-commit",
                "with-epoch",
                "next-epoch-qc-commit",
                "next-drb-result",
                "timeout-cert-commit",
                "view-sync-cert-commit",
                "timeout-cert-v3-commit",
                "leaf-layout",
            ],
            Kind::DaProposal => &["view", "transactions-hex"],
            Kind::Block => &["slot", "signing-root"],
            Kind::Attestation => &["source-epoch", "target-epoch", "signing-root"],
        }
    }
}

/// Arguments of `signerctl sign`.
#[derive(Args, Debug, Clone)]
pub struct SignArgs {
    /// The key to sign with, by id (see `signerctl key list`), e.g. demo-espresso, demo-eth2.
    #[arg(long, value_name = "KEY_ID")]
    pub key: String,
    /// The key's profile.
    #[arg(long, value_enum)]
    pub profile: ProfileArg,
    /// What to sign; each kind takes the options listed with it. Not with --request-json.
    #[arg(long, value_enum, required_unless_present = "request_json")]
    pub kind: Option<Kind>,
    /// Ethereum: a Web3Signer eth2 sign request body (JSON: `type`, `fork_info`, the typed
    /// object, optionally `signingRoot`), from FILE or `-` for stdin. Every Web3Signer type is
    /// accepted (BLOCK_V2, ATTESTATION, AGGREGATION_SLOT, AGGREGATE_AND_PROOF(_V2),
    /// RANDAO_REVEAL, VOLUNTARY_EXIT, SYNC_COMMITTEE_*, VALIDATOR_REGISTRATION, DEPOSIT); the
    /// cluster computes the signing root itself and refuses the request if a given
    /// `signingRoot` differs.
    #[arg(
        long,
        value_name = "FILE|-",
        conflicts_with = "kind",
        help_heading = "Ethereum"
    )]
    pub request_json: Option<std::path::PathBuf>,
    /// Espresso: the view number.
    #[arg(long, value_name = "N", help_heading = "Espresso")]
    pub view: Option<u64>,
    /// Espresso votes: the 32-byte commitment, hex (leaf commitment for quorum votes, payload
    /// commitment for DA votes). Quorum proposals take their leaf's fields instead.
    #[arg(long, value_name = "HEX", help_heading = "Espresso")]
    pub commitment: Option<String>,
    /// Espresso DA vote: the next epoch's payload commitment, hex.
    #[arg(long, value_name = "HEX", help_heading = "Espresso")]
    pub next_epoch_commitment: Option<String>,
    /// Espresso: the epoch (epoch-aware vote data).
    #[arg(long, value_name = "N", help_heading = "Espresso")]
    pub epoch: Option<u64>,
    /// Espresso quorum votes: the block number (epoch-aware vote data).
    #[arg(long, value_name = "N", help_heading = "Espresso")]
    pub block_number: Option<u64>,
    /// Espresso view-sync votes: the round (the view being synchronized).
    #[arg(long, value_name = "N", help_heading = "Espresso")]
    pub round: Option<u64>,
    /// Espresso view-sync votes: the relay index.
    #[arg(long, value_name = "N", help_heading = "Espresso")]
    pub relay: Option<u64>,
    /// Espresso DA proposals: the encoded transactions, hex (may be empty). The signer signs
    /// their SHA-256, which it computes itself.
    #[arg(long, value_name = "HEX", help_heading = "Espresso")]
    pub transactions_hex: Option<String>,
    /// Espresso quorum proposals: the parent leaf's commitment, 32 bytes hex (the justify QC's
    /// `data.leaf_commit`).
    #[arg(long, value_name = "HEX", help_heading = "Espresso quorum proposal")]
    pub parent_leaf: Option<String>,
    /// Espresso quorum proposals: the block header's commitment, 32 bytes hex (the `BLOCK~`
    /// hash).
    #[arg(long, value_name = "HEX", help_heading = "Espresso quorum proposal")]
    pub block_header_commit: Option<String>,
    /// Espresso quorum proposals: the justify QC's commitment, 32 bytes hex.
    #[arg(long, value_name = "HEX", help_heading = "Espresso quorum proposal")]
    pub justify_qc_commit: Option<String>,
    /// Espresso quorum proposals: the attached upgrade certificate's commitment, 32 bytes hex
    /// (omit when none is attached).
    #[arg(long, value_name = "HEX", help_heading = "Espresso quorum proposal")]
    pub upgrade_cert_commit: Option<String>,
    /// Espresso quorum proposals: the proposal has an epoch. The leaf commitment then also
    /// covers the next-epoch QC, DRB result and view-change evidence options (the epoch number
    /// itself is not hashed).
    #[arg(long, help_heading = "Espresso quorum proposal")]
    pub with_epoch: bool,
    /// Espresso quorum proposals with --with-epoch: the next epoch's justify QC commitment, 32
    /// bytes hex.
    #[arg(long, value_name = "HEX", help_heading = "Espresso quorum proposal")]
    pub next_epoch_qc_commit: Option<String>,
    /// Espresso quorum proposals with --with-epoch: the next epoch's DRB result, 32 bytes hex.
    #[arg(long, value_name = "HEX", help_heading = "Espresso quorum proposal")]
    pub next_drb_result: Option<String>,
    /// Espresso quorum proposals with --with-epoch: the timeout certificate's commitment, 32
    /// bytes hex (view-change evidence; not with --view-sync-cert-commit).
    #[arg(long, value_name = "HEX", help_heading = "Espresso quorum proposal")]
    pub timeout_cert_commit: Option<String>,
    /// Espresso quorum proposals with --with-epoch: the view-sync finalize certificate's
    /// commitment, 32 bytes hex (view-change evidence; not with --timeout-cert-commit).
    #[arg(long, value_name = "HEX", help_heading = "Espresso quorum proposal")]
    pub view_sync_cert_commit: Option<String>,
    /// Espresso quorum proposals with --with-epoch: the new protocol's v3 timeout certificate's
    /// commitment (`TimeoutCertificate3`), 32 bytes hex (view-change evidence; not with the
    /// other two).
    #[arg(long, value_name = "HEX", help_heading = "Espresso quorum proposal")]
    pub timeout_cert_v3_commit: Option<String>,
    /// Espresso quorum proposals: the release whose leaf layout the proposal follows; the
    /// cluster refuses a leaf carrying a field that layout does not hash, or lacking one it
    /// requires. Without it, --with-epoch alone decides what is hashed.
    #[arg(long, value_enum, help_heading = "Espresso quorum proposal")]
    pub leaf_layout: Option<LeafLayoutArg>,
    /// Ethereum blocks: the slot.
    #[arg(long, value_name = "N", help_heading = "Ethereum")]
    pub slot: Option<u64>,
    /// Ethereum: the 32-byte signing root, hex.
    #[arg(long, value_name = "HEX", help_heading = "Ethereum")]
    pub signing_root: Option<String>,
    /// Ethereum attestations: the source epoch.
    #[arg(long, value_name = "N", help_heading = "Ethereum")]
    pub source_epoch: Option<u64>,
    /// Ethereum attestations: the target epoch.
    #[arg(long, value_name = "N", help_heading = "Ethereum")]
    pub target_epoch: Option<u64>,
    /// A request id (up to 64 bytes), recorded with the decision in the audit log; one is
    /// generated when omitted. It is a label, not a cache key: a retried identical request
    /// re-signs to the same signature, and a conflicting one is refused, whatever its id.
    #[arg(long, value_name = "ID")]
    pub request_id: Option<String>,
}

impl SignArgs {
    /// The flag names given on the command line (among the kind-specific ones).
    fn given(&self) -> Vec<&'static str> {
        let flags: [(&'static str, bool); 24] = [
            ("view", self.view.is_some()),
            ("commitment", self.commitment.is_some()),
            (
                "next-epoch-commitment",
                self.next_epoch_commitment.is_some(),
            ),
            ("epoch", self.epoch.is_some()),
            ("block-number", self.block_number.is_some()),
            ("round", self.round.is_some()),
            ("relay", self.relay.is_some()),
            ("transactions-hex", self.transactions_hex.is_some()),
            ("parent-leaf", self.parent_leaf.is_some()),
            ("block-header-commit", self.block_header_commit.is_some()),
            ("justify-qc-commit", self.justify_qc_commit.is_some()),
            ("upgrade-cert-commit", self.upgrade_cert_commit.is_some()),
            ("with-epoch", self.with_epoch),
            ("next-epoch-qc-commit", self.next_epoch_qc_commit.is_some()),
            ("next-drb-result", self.next_drb_result.is_some()),
            ("timeout-cert-commit", self.timeout_cert_commit.is_some()),
            (
                "view-sync-cert-commit",
                self.view_sync_cert_commit.is_some(),
            ),
            (
                "timeout-cert-v3-commit",
                self.timeout_cert_v3_commit.is_some(),
            ),
            ("leaf-layout", self.leaf_layout.is_some()),
            ("slot", self.slot.is_some()),
            ("signing-root", self.signing_root.is_some()),
            ("source-epoch", self.source_epoch.is_some()),
            ("target-epoch", self.target_epoch.is_some()),
            ("request-id", false),
        ];
        flags
            .into_iter()
            .filter(|(_, given)| *given)
            .map(|(name, _)| name)
            .collect()
    }
}

fn required<T: Copy>(value: Option<T>, flag: &str, kind: Kind) -> Result<T, String> {
    value.ok_or_else(|| format!("--kind {} needs --{flag}", kind_name(kind)))
}

fn kind_name(kind: Kind) -> String {
    kind.to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default()
}

fn hex_bytes(text: &str, flag: &str) -> Result<Vec<u8>, String> {
    let digits = text.strip_prefix("0x").unwrap_or(text);
    hex::decode(digits).map_err(|e| format!("--{flag}: not hex ({e})"))
}

fn hex32(text: Option<&String>, flag: &str, kind: Kind) -> Result<Vec<u8>, String> {
    let text = text.ok_or_else(|| format!("--kind {} needs --{flag}", kind_name(kind)))?;
    let bytes = hex_bytes(text, flag)?;
    if bytes.len() != 32 {
        return Err(format!("--{flag}: expected 32 bytes, got {}", bytes.len()));
    }
    Ok(bytes)
}

/// A quorum proposal's leaf fields; the epoch-only ones need --with-epoch.
fn quorum_proposal(args: &SignArgs) -> Result<pb::QuorumProposal, String> {
    let kind = Kind::QuorumProposal;
    let optional = |text: &Option<String>, flag: &str| {
        text.as_ref()
            .map(|t| hex32(Some(t), flag, kind))
            .transpose()
    };
    let epoch_only = [
        ("next-epoch-qc-commit", args.next_epoch_qc_commit.is_some()),
        ("next-drb-result", args.next_drb_result.is_some()),
        ("timeout-cert-commit", args.timeout_cert_commit.is_some()),
        (
            "view-sync-cert-commit",
            args.view_sync_cert_commit.is_some(),
        ),
        (
            "timeout-cert-v3-commit",
            args.timeout_cert_v3_commit.is_some(),
        ),
    ];
    if !args.with_epoch {
        if let Some((flag, _)) = epoch_only.iter().find(|(_, given)| *given) {
            return Err(format!(
                "--{flag} needs --with-epoch (the leaf commitment covers it only for a leaf with an epoch)"
            ));
        }
    }
    use pb::leaf_epoch::ViewChangeEvidence as V;
    let given: Vec<&str> = epoch_only[2..]
        .iter()
        .filter(|(_, given)| *given)
        .map(|(flag, _)| *flag)
        .collect();
    if given.len() > 1 {
        return Err(format!(
            "--{} exclude each other (one view-change evidence)",
            given.join(" and --")
        ));
    }
    let evidence = match (
        &args.timeout_cert_commit,
        &args.view_sync_cert_commit,
        &args.timeout_cert_v3_commit,
    ) {
        (Some(t), _, _) => Some(V::TimeoutCertCommit(hex32(
            Some(t),
            "timeout-cert-commit",
            kind,
        )?)),
        (_, Some(t), _) => Some(V::ViewSyncCertCommit(hex32(
            Some(t),
            "view-sync-cert-commit",
            kind,
        )?)),
        (_, _, Some(t)) => Some(V::TimeoutCertV3Commit(hex32(
            Some(t),
            "timeout-cert-v3-commit",
            kind,
        )?)),
        (None, None, None) => None,
    };
    let with_epoch = if args.with_epoch {
        Some(pb::LeafEpoch {
            next_epoch_justify_qc_commit: optional(
                &args.next_epoch_qc_commit,
                "next-epoch-qc-commit",
            )?,
            next_drb_result: optional(&args.next_drb_result, "next-drb-result")?,
            view_change_evidence: evidence,
        })
    } else {
        None
    };
    Ok(pb::QuorumProposal {
        view: required(args.view, "view", kind)?,
        parent_leaf: hex32(args.parent_leaf.as_ref(), "parent-leaf", kind)?,
        block_header_commit: hex32(
            args.block_header_commit.as_ref(),
            "block-header-commit",
            kind,
        )?,
        justify_qc_commit: hex32(args.justify_qc_commit.as_ref(), "justify-qc-commit", kind)?,
        upgrade_certificate_commit: optional(&args.upgrade_cert_commit, "upgrade-cert-commit")?,
        with_epoch,
        layout: match args.leaf_layout {
            None => pb::LeafLayout::Unspecified,
            Some(LeafLayoutArg::PreEpoch) => pb::LeafLayout::PreEpoch,
            Some(LeafLayoutArg::EpochsWithoutEvidence) => pb::LeafLayout::EpochsWithoutEvidence,
            Some(LeafLayoutArg::Epochs) => pb::LeafLayout::Epochs,
            Some(LeafLayoutArg::NewProtocol) => pb::LeafLayout::NewProtocol,
        } as i32,
    })
}

/// The request for a Web3Signer JSON body (`--request-json`), or what is wrong with it.
pub fn build_json(args: &SignArgs, body: &[u8]) -> Result<pb::SignRequest, String> {
    if args.profile != ProfileArg::Eth2 {
        return Err("--request-json takes an eth2 (Web3Signer) body; use --profile eth2".into());
    }
    if let Some(extra) = args.given().into_iter().next() {
        return Err(format!(
            "--{extra} does not apply to --request-json (the body holds the message)"
        ));
    }
    check_request_id(args)?;
    let message = signer_client::eth2::from_web3signer_json(body)
        .map_err(|e| format!("--request-json: {e}"))?;
    Ok(pb::SignRequest {
        request_id: args.request_id.clone().unwrap_or_default(),
        key_id: args.key.clone(),
        message: Some(message),
    })
}

fn check_request_id(args: &SignArgs) -> Result<(), String> {
    match &args.request_id {
        Some(id) if id.is_empty() || id.len() > 64 => Err("--request-id: 1 to 64 bytes".into()),
        _ => Ok(()),
    }
}

/// Build the request from `--kind` and its options, or say (naming the flag) what is missing,
/// malformed or out of place.
pub fn build(args: &SignArgs) -> Result<pb::SignRequest, String> {
    let kind = args
        .kind
        .ok_or_else(|| "--kind is required (or --request-json for eth2)".to_owned())?;
    let mismatch = match (args.profile, kind.profile()) {
        (ProfileArg::Eth2, ProfileArg::Espresso) => {
            Some("is an espresso message; --profile eth2 signs --kind block or attestation")
        }
        (ProfileArg::Espresso, ProfileArg::Eth2) => Some("is an eth2 message; use --profile eth2"),
        _ => None,
    };
    if let Some(why) = mismatch {
        return Err(format!("--kind {} {why}", kind_name(kind)));
    }
    let allowed = kind.options();
    if let Some(extra) = args.given().into_iter().find(|f| !allowed.contains(f)) {
        return Err(format!(
            "--{extra} does not apply to --kind {} (it takes {})",
            kind_name(kind),
            allowed
                .iter()
                .map(|f| format!("--{f}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    check_request_id(args)?;
    use pb::espresso_message::Kind as E;
    let espresso = |kind: E| {
        Some(pb::sign_request::Message::Espresso(pb::EspressoMessage {
            kind: Some(kind),
        }))
    };
    let view_sync = |phase: pb::ViewSyncPhase| -> Result<_, String> {
        Ok(espresso(E::ViewSyncVote(pb::ViewSyncVote {
            phase: phase as i32,
            round: required(args.round, "round", kind)?,
            relay: required(args.relay, "relay", kind)?,
            epoch: args.epoch,
        })))
    };
    let quorum = || -> Result<_, String> {
        Ok(pb::QuorumVote {
            view: required(args.view, "view", kind)?,
            leaf_commit: hex32(args.commitment.as_ref(), "commitment", kind)?,
            epoch: args.epoch,
            block_number: args.block_number,
        })
    };
    let message = match kind {
        Kind::Quorum => espresso(E::QuorumVote(quorum()?)),
        Kind::NextEpochQuorum => espresso(E::NextEpochQuorumVote(quorum()?)),
        Kind::Da => espresso(E::DaVote(pb::DaVote {
            view: required(args.view, "view", kind)?,
            payload_commit: hex32(args.commitment.as_ref(), "commitment", kind)?,
            next_epoch_payload_commit: args
                .next_epoch_commitment
                .as_ref()
                .map(|t| hex32(Some(t), "next-epoch-commitment", kind))
                .transpose()?,
            epoch: args.epoch,
        })),
        Kind::Timeout => espresso(E::TimeoutVote(pb::TimeoutVote {
            view: required(args.view, "view", kind)?,
            epoch: args.epoch,
        })),
        Kind::ViewSyncPrecommit => view_sync(pb::ViewSyncPhase::PreCommit)?,
        Kind::ViewSyncCommit => view_sync(pb::ViewSyncPhase::Commit)?,
        Kind::ViewSyncFinalize => view_sync(pb::ViewSyncPhase::Finalize)?,
        Kind::QuorumProposal => espresso(E::QuorumProposal(quorum_proposal(args)?)),
        Kind::DaProposal => {
            let text = args
                .transactions_hex
                .as_ref()
                .ok_or_else(|| "--kind da-proposal needs --transactions-hex".to_owned())?;
            espresso(E::DaProposal(pb::DaProposal {
                view: required(args.view, "view", kind)?,
                encoded_transactions: hex_bytes(text, "transactions-hex")?,
            }))
        }
        Kind::Block => eth2_raw(pb::eth2_request::Form::RootBlock(pb::RootBlock {
            slot: required(args.slot, "slot", kind)?,
            signing_root: hex32(args.signing_root.as_ref(), "signing-root", kind)?,
        })),
        Kind::Attestation => eth2_raw(pb::eth2_request::Form::RootAttestation(
            pb::RootAttestation {
                source_epoch: required(args.source_epoch, "source-epoch", kind)?,
                target_epoch: required(args.target_epoch, "target-epoch", kind)?,
                signing_root: hex32(args.signing_root.as_ref(), "signing-root", kind)?,
            },
        )),
    };
    Ok(pb::SignRequest {
        request_id: args.request_id.clone().unwrap_or_default(),
        key_id: args.key.clone(),
        message,
    })
}

/// A raw-root eth2 request (for a client whose grant trusts raw roots).
fn eth2_raw(form: pb::eth2_request::Form) -> Option<pb::sign_request::Message> {
    Some(pb::sign_request::Message::Eth2(pb::Eth2Request {
        form: Some(form),
        signing_root: Vec::new(),
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        args: SignArgs,
    }

    fn parse(line: &str) -> Result<pb::SignRequest, String> {
        let argv = std::iter::once("sign").chain(line.split_whitespace());
        build(&Wrap::try_parse_from(argv).map_err(|e| e.to_string())?.args)
    }

    const C: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";

    #[test]
    fn espresso_kinds() {
        let r = parse(&format!(
            "--key k --profile espresso --kind quorum --view 7 --commitment {C} --epoch 2 --block-number 9 --request-id r1"
        ))
        .unwrap();
        assert_eq!(r.key_id, "k");
        assert_eq!(r.request_id, "r1");
        let Some(pb::sign_request::Message::Espresso(pb::EspressoMessage {
            kind: Some(pb::espresso_message::Kind::QuorumVote(v)),
        })) = r.message
        else {
            panic!("{:?}", r.message)
        };
        assert_eq!((v.view, v.epoch, v.block_number), (7, Some(2), Some(9)));
        assert_eq!(v.leaf_commit, vec![0x11; 32]);

        let r = parse("--key k --profile espresso --kind view-sync-commit --round 4 --relay 1")
            .unwrap();
        let Some(pb::sign_request::Message::Espresso(pb::EspressoMessage {
            kind: Some(pb::espresso_message::Kind::ViewSyncVote(v)),
        })) = r.message
        else {
            panic!()
        };
        assert_eq!(v.phase, pb::ViewSyncPhase::Commit as i32);
        assert_eq!((v.round, v.relay), (4, 1));

        let r = parse(
            "--key k --profile espresso --kind da-proposal --view 3 --transactions-hex 0xabcd",
        )
        .unwrap();
        let Some(pb::sign_request::Message::Espresso(pb::EspressoMessage {
            kind: Some(pb::espresso_message::Kind::DaProposal(p)),
        })) = r.message
        else {
            panic!()
        };
        assert_eq!(p.encoded_transactions, vec![0xab, 0xcd]);

        for line in [
            format!("--key k --profile espresso --kind next-epoch-quorum --view 1 --commitment {C}"),
            format!("--key k --profile espresso --kind da --view 1 --commitment {C} --next-epoch-commitment {C}"),
            "--key k --profile espresso --kind timeout --view 1 --epoch 3".into(),
            "--key k --profile espresso --kind view-sync-precommit --round 1 --relay 0".into(),
            "--key k --profile espresso --kind view-sync-finalize --round 1 --relay 0".into(),
        ] {
            assert!(parse(&line).is_ok(), "{line}");
        }
    }

    #[test]
    fn quorum_proposals_carry_the_leaf_fields() {
        const D: &str = "0x2222222222222222222222222222222222222222222222222222222222222222";
        let proposal = |line: &str| -> Result<pb::QuorumProposal, String> {
            let r = parse(&format!(
                "--key k --profile espresso --kind quorum-proposal --view 9 --parent-leaf {C} \
                 --block-header-commit {D} --justify-qc-commit {C} {line}"
            ))?;
            match r.message {
                Some(pb::sign_request::Message::Espresso(pb::EspressoMessage {
                    kind: Some(pb::espresso_message::Kind::QuorumProposal(p)),
                })) => Ok(p),
                other => panic!("{other:?}"),
            }
        };
        let p = proposal("").unwrap();
        assert_eq!(p.view, 9);
        assert_eq!(p.parent_leaf, vec![0x11; 32]);
        assert_eq!(p.block_header_commit, vec![0x22; 32]);
        assert_eq!(p.justify_qc_commit, vec![0x11; 32]);
        assert_eq!(p.upgrade_certificate_commit, None);
        assert_eq!(p.with_epoch, None);
        assert_eq!(p.layout, pb::LeafLayout::Unspecified as i32);
        for (name, layout) in [
            ("v0.1-v0.2", pb::LeafLayout::PreEpoch),
            (
                "epochs-without-evidence",
                pb::LeafLayout::EpochsWithoutEvidence,
            ),
            ("v0.3-v0.6", pb::LeafLayout::Epochs),
        ] {
            let p = proposal(&format!("--leaf-layout {name}")).unwrap();
            assert_eq!(p.layout, layout as i32, "{name}");
        }
        let unknown = proposal("--leaf-layout v0.7").unwrap_err();
        assert!(
            unknown.contains("invalid value 'v0.7' for '--leaf-layout"),
            "{unknown}"
        );

        let p = proposal(&format!(
            "--upgrade-cert-commit {D} --with-epoch --next-epoch-qc-commit {C} \
             --next-drb-result {D} --view-sync-cert-commit {C}"
        ))
        .unwrap();
        assert_eq!(p.upgrade_certificate_commit, Some(vec![0x22; 32]));
        assert_eq!(
            p.with_epoch,
            Some(pb::LeafEpoch {
                next_epoch_justify_qc_commit: Some(vec![0x11; 32]),
                next_drb_result: Some(vec![0x22; 32]),
                view_change_evidence: Some(pb::leaf_epoch::ViewChangeEvidence::ViewSyncCertCommit(
                    vec![0x11; 32]
                )),
            })
        );
        let p = proposal(&format!(
            "--with-epoch --timeout-cert-v3-commit {D} --leaf-layout new-protocol"
        ))
        .unwrap();
        assert_eq!(p.layout, pb::LeafLayout::NewProtocol as i32);
        assert_eq!(
            p.with_epoch.unwrap().view_change_evidence,
            Some(pb::leaf_epoch::ViewChangeEvidence::TimeoutCertV3Commit(
                vec![0x22; 32]
            ))
        );
        let p = proposal(&format!("--with-epoch --timeout-cert-commit {D}")).unwrap();
        assert_eq!(
            p.with_epoch,
            Some(pb::LeafEpoch {
                next_epoch_justify_qc_commit: None,
                next_drb_result: None,
                view_change_evidence: Some(pb::leaf_epoch::ViewChangeEvidence::TimeoutCertCommit(
                    vec![0x22; 32]
                )),
            })
        );

        for (extra, want) in [
            (
                format!("--next-drb-result {D}"),
                "--next-drb-result needs --with-epoch",
            ),
            (
                format!("--timeout-cert-commit {D}"),
                "--timeout-cert-commit needs --with-epoch",
            ),
            (
                format!("--with-epoch --timeout-cert-commit {D} --view-sync-cert-commit {D}"),
                "--timeout-cert-commit and --view-sync-cert-commit exclude each other",
            ),
            (
                format!("--with-epoch --view-sync-cert-commit {D} --timeout-cert-v3-commit {D}"),
                "--view-sync-cert-commit and --timeout-cert-v3-commit exclude each other",
            ),
            (
                format!("--timeout-cert-v3-commit {D}"),
                "--timeout-cert-v3-commit needs --with-epoch",
            ),
            (
                "--upgrade-cert-commit 0x11".into(),
                "--upgrade-cert-commit: expected 32 bytes, got 1",
            ),
            (format!("--commitment {C}"), "--commitment does not apply"),
        ] {
            let err = proposal(&extra).expect_err(&extra);
            assert!(err.contains(want), "{extra}: {err}");
        }
        for (line, want) in [
            (
                format!("--kind quorum-proposal --view 1 --block-header-commit {C} --justify-qc-commit {C}"),
                "needs --parent-leaf",
            ),
            (
                format!("--kind quorum-proposal --view 1 --parent-leaf {C} --justify-qc-commit {C}"),
                "needs --block-header-commit",
            ),
            (
                format!("--kind quorum-proposal --view 1 --parent-leaf {C} --block-header-commit {C}"),
                "needs --justify-qc-commit",
            ),
            (format!("--kind quorum --view 1 --commitment {C} --with-epoch"), "--with-epoch does not apply"),
            (
                format!("--kind da-proposal --view 1 --transactions-hex 00 --parent-leaf {C}"),
                "--parent-leaf does not apply",
            ),
        ] {
            let err = parse(&format!("--key k --profile espresso {line}")).expect_err(&line);
            assert!(err.contains(want), "{line}: {err}");
        }
    }

    #[test]
    fn eth2_kinds() {
        let r = parse(&format!(
            "--key e --profile eth2 --kind block --slot 5 --signing-root {C}"
        ))
        .unwrap();
        let Some(pb::sign_request::Message::Eth2(pb::Eth2Request {
            form: Some(pb::eth2_request::Form::RootBlock(b)),
            ..
        })) = r.message
        else {
            panic!()
        };
        assert_eq!(b.slot, 5);
        assert_eq!(r.request_id, "");
        let r = parse(&format!(
            "--key e --profile eth2 --kind attestation --source-epoch 1 --target-epoch 2 --signing-root {C}"
        ))
        .unwrap();
        let Some(pb::sign_request::Message::Eth2(pb::Eth2Request {
            form: Some(pb::eth2_request::Form::RootAttestation(a)),
            ..
        })) = r.message
        else {
            panic!()
        };
        assert_eq!((a.source_epoch, a.target_epoch), (1, 2));
    }

    /// Web3Signer's published RANDAO_REVEAL example body and signing root (its OpenAPI spec, as
    /// in tests/vectors/eth2-signing-roots/web3signer-openapi.json).
    const RANDAO: &str = r#"{"type":"RANDAO_REVEAL","fork_info":{"fork":{"previous_version":"0x00000001","current_version":"0x00000001","epoch":"1"},"genesis_validators_root":"0x04700007fabc8282644aed6d1c7c9e21d38a03a0c4ba193f3afe428824b3a673"},"signingRoot":"0x3d047c51a8b03630781dc4c5519c17f7de87174246ff2deed0f195c6c775f91e","randao_reveal":{"epoch":"3"}}"#;

    fn parse_json(line: &str, body: &str) -> Result<pb::SignRequest, String> {
        let argv = std::iter::once("sign").chain(line.split_whitespace());
        build_json(
            &Wrap::try_parse_from(argv).map_err(|e| e.to_string())?.args,
            body.as_bytes(),
        )
    }

    #[test]
    fn web3signer_json_becomes_a_typed_request() {
        let r = parse_json("--key e --profile eth2 --request-json -", RANDAO).unwrap();
        let Some(pb::sign_request::Message::Eth2(pb::Eth2Request {
            form: Some(pb::eth2_request::Form::Typed(bytes)),
            signing_root,
        })) = r.message
        else {
            panic!("{:?}", r.message)
        };
        let message = eth2_messages::Eth2Message::from_bytes(&bytes).unwrap();
        assert_eq!(message.kind(), "RANDAO_REVEAL");
        assert_eq!(message.epoch(), Some(3));
        assert_eq!(
            hex::encode(signing_root),
            "3d047c51a8b03630781dc4c5519c17f7de87174246ff2deed0f195c6c775f91e"
        );
        let cases = [
            (
                "--key e --profile espresso --request-json -",
                RANDAO,
                "use --profile eth2",
            ),
            (
                "--key e --profile eth2 --request-json - --slot 3",
                RANDAO,
                "--slot does not apply to --request-json",
            ),
            (
                "--key e --profile eth2 --request-json -",
                r#"{"type":"NOT_A_TYPE"}"#,
                "--request-json: ",
            ),
        ];
        for (line, body, expected) in cases {
            let err = parse_json(line, body).unwrap_err();
            assert!(err.contains(expected), "{line}: {err}");
        }
        let both = parse_json(
            "--key e --profile eth2 --kind block --request-json -",
            RANDAO,
        );
        assert!(both.unwrap_err().contains("cannot be used with"));
    }

    #[test]
    fn mistakes_are_named() {
        let cases = [
            (
                "--key k --profile eth2 --kind quorum --view 1",
                "is an espresso message",
            ),
            (
                "--key k --profile espresso --kind block --slot 1",
                "use --profile eth2",
            ),
            (
                "--key k --profile espresso --kind quorum --commitment 0x11",
                "needs --view",
            ),
            (
                "--key k --profile espresso --kind quorum --view 1",
                "needs --commitment",
            ),
            (
                "--key k --profile espresso --kind quorum --view 1 --commitment 0x11",
                "expected 32 bytes, got 1",
            ),
            (
                "--key k --profile espresso --kind quorum --view 1 --commitment zz",
                "not hex",
            ),
            (
                "--key k --profile espresso --kind timeout --view 1 --slot 3",
                "--slot does not apply",
            ),
            (
                "--key k --profile eth2 --kind block --signing-root 0x00",
                "needs --slot",
            ),
            (
                "--key k --profile espresso --kind view-sync-commit --round 1",
                "needs --relay",
            ),
            (
                "--key k --profile espresso --kind da-proposal --view 1",
                "needs --transactions-hex",
            ),
        ];
        for (line, want) in cases {
            let err = parse(line).expect_err(line);
            assert!(err.contains(want), "{line}: {err}");
        }
        let long = "x".repeat(65);
        let err = parse(&format!(
            "--key k --profile eth2 --kind block --slot 1 --signing-root {C} --request-id {long}"
        ))
        .unwrap_err();
        assert!(err.contains("--request-id"), "{err}");
    }
}
