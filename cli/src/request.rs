//! Turning `signerctl sign` arguments into one typed `SignRequest`.
//!
//! Owns: which options each message kind takes, parsing their values (hex, lengths), and
//! refusing options that do not apply. Must not: talk to the cluster, or decide anything about
//! whether a message may be signed.

use clap::{Args, ValueEnum};
use signer::pb;

/// The signing profile of the key (it must match the key's profile in the cluster).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProfileArg {
    /// Espresso HotShot consensus messages, BLS over BN254.
    Espresso,
    /// Ethereum consensus messages, BLS12-381.
    Eth2,
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
    /// Espresso quorum proposal: --view, --commitment (leaf).
    QuorumProposal,
    /// Espresso DA proposal: --view, --transactions-hex (the signer signs their SHA-256).
    DaProposal,
    /// Ethereum block proposal: --slot, --signing-root.
    Block,
    /// Ethereum attestation: --source-epoch, --target-epoch, --signing-root.
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
            Kind::QuorumProposal => &["view", "commitment"],
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
    /// What to sign; each kind takes the options listed with it.
    #[arg(long, value_enum)]
    pub kind: Kind,
    /// Espresso: the view number.
    #[arg(long, value_name = "N", help_heading = "Espresso")]
    pub view: Option<u64>,
    /// Espresso: the 32-byte commitment, hex (leaf commitment for quorum votes and quorum
    /// proposals, payload commitment for DA votes).
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
    /// Espresso DA proposals: the encoded transactions, hex (may be empty).
    #[arg(long, value_name = "HEX", help_heading = "Espresso")]
    pub transactions_hex: Option<String>,
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
    /// A request id (up to 64 bytes); retrying with the same id returns the same outcome.
    /// One is generated when omitted.
    #[arg(long, value_name = "ID")]
    pub request_id: Option<String>,
}

impl SignArgs {
    /// The flag names given on the command line (among the kind-specific ones).
    fn given(&self) -> Vec<&'static str> {
        let flags: [(&'static str, bool); 13] = [
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

/// Build the request, or say (naming the flag) what is missing, malformed or out of place.
pub fn build(args: &SignArgs) -> Result<pb::SignRequest, String> {
    let kind = args.kind;
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
    if let Some(id) = &args.request_id {
        if id.is_empty() || id.len() > 64 {
            return Err("--request-id: 1 to 64 bytes".into());
        }
    }
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
        Kind::QuorumProposal => espresso(E::QuorumProposal(pb::QuorumProposal {
            view: required(args.view, "view", kind)?,
            leaf_commit: hex32(args.commitment.as_ref(), "commitment", kind)?,
        })),
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
        Kind::Block => Some(pb::sign_request::Message::Eth2Block(pb::Eth2Block {
            form: Some(pb::eth2_block::Form::Root(pb::RootBlock {
                slot: required(args.slot, "slot", kind)?,
                signing_root: hex32(args.signing_root.as_ref(), "signing-root", kind)?,
            })),
        })),
        Kind::Attestation => Some(pb::sign_request::Message::Eth2Attestation(
            pb::Eth2Attestation {
                form: Some(pb::eth2_attestation::Form::Root(pb::RootAttestation {
                    source_epoch: required(args.source_epoch, "source-epoch", kind)?,
                    target_epoch: required(args.target_epoch, "target-epoch", kind)?,
                    signing_root: hex32(args.signing_root.as_ref(), "signing-root", kind)?,
                })),
            },
        )),
    };
    Ok(pb::SignRequest {
        request_id: args.request_id.clone().unwrap_or_default(),
        key_id: args.key.clone(),
        message,
    })
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
            format!("--key k --profile espresso --kind quorum-proposal --view 1 --commitment {C}"),
        ] {
            assert!(parse(&line).is_ok(), "{line}");
        }
    }

    #[test]
    fn eth2_kinds() {
        let r = parse(&format!(
            "--key e --profile eth2 --kind block --slot 5 --signing-root {C}"
        ))
        .unwrap();
        let Some(pb::sign_request::Message::Eth2Block(pb::Eth2Block {
            form: Some(pb::eth2_block::Form::Root(b)),
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
        let Some(pb::sign_request::Message::Eth2Attestation(pb::Eth2Attestation {
            form: Some(pb::eth2_attestation::Form::Root(a)),
        })) = r.message
        else {
            panic!()
        };
        assert_eq!((a.source_epoch, a.target_epoch), (1, 2));
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
