//! Applying admin-plane commands to the replicated state: the tally lives in
//! [`crate::admin::state`]; this module decodes a proposal's canonical bytes, applies an
//! approved action's effect on the key registry and the protection records, and describes
//! each command for the audit log.
//!
//! Must not: do IO (the replica persists what [`Changes`] names) or read a clock (`at_ms` is
//! the leader's, from the log entry).
//!
//! To ensure correctness (invariant I4, "what approvers sign is what executes"):
//! - a proposal carries only the canonical action bytes; they are decoded here with the one
//!   decoder ([`crate::admin::codec`]) and bytes that do not decode are refused (and audited);
//! - the action that executes is decoded from the challenge's bytes when the threshold is
//!   reached, so it is the action whose digest the approvers signed;
//! - attestation chains and interchange networks are checked here, against replicated state
//!   (the bootstrap's roots and genesis validators root), never against a node's config;
//! - the key registry and the audit log change only through an approved action: there is no
//!   other log command that touches them.

use super::{Applied, Changes, RecordKey};
use crate::admin::codec::{self, CanonicalAction};
use crate::admin::state::{Decided, Tally};
use crate::admin::{Action, AdminCommand, AdminOutcome, AdminRefusal, Prior};
use crate::audit::AuditEvent;
use crate::protection::interchange::{self, ImportPolicy};
use crate::registry::{KeyChange, KeyRefusal};
use std::collections::BTreeSet;

/// Apply one admin command. Refusals are outcomes, never errors.
pub(super) fn apply(
    applied: &mut Applied,
    command: &AdminCommand,
    at_ms: u64,
    changes: &mut Changes,
) -> AdminOutcome {
    changes.admin = true;
    match command {
        AdminCommand::Bootstrap(b) => match applied.admin.bootstrap(b) {
            Ok(()) => AdminOutcome::Bootstrapped,
            Err(r) => AdminOutcome::Refused(r),
        },
        AdminCommand::Propose {
            id,
            proposer,
            action_bytes,
        } => {
            let action = match CanonicalAction::decode(action_bytes) {
                Ok(action) => action,
                Err(e) => {
                    return AdminOutcome::Refused(AdminRefusal::MalformedAction(e.to_string()))
                }
            };
            // Key and protection actions are checked against the current state now, so a
            // hopeless one never collects approvals (admin-plane actions are checked by
            // `AdminState::propose`).
            let touches_records = matches!(
                action.action(),
                Action::AddKey(_)
                    | Action::SetKeyState { .. }
                    | Action::RotateKek(_)
                    | Action::ImportProtection { .. }
            );
            if touches_records {
                if let Err(refusal) = check(applied, action.action()) {
                    return AdminOutcome::Refused(refusal);
                }
            }
            match applied.admin.propose(*id, proposer, &action, at_ms) {
                Ok(c) => AdminOutcome::Proposed {
                    expires_at_ms: c.expires_at_ms,
                    threshold: applied.admin.policy.threshold,
                },
                Err(r) => AdminOutcome::Refused(r),
            }
        }
        AdminCommand::Approve {
            id,
            admin,
            signature,
        } => match applied.admin.approve(id, admin, signature, at_ms) {
            Err(r) => AdminOutcome::Refused(r),
            Ok(Tally::Pending {
                approvers,
                threshold,
            }) => AdminOutcome::Pending {
                approvers,
                threshold,
            },
            Ok(Tally::Reached {
                approvers,
                threshold,
                action,
            }) => {
                let decided = Decided {
                    at_ms,
                    threshold,
                    approvers: approvers.clone(),
                };
                // A membership change is carried out by the leader through Raft; its outcome
                // is committed later (`NodeChangeDone`): here it is only checked.
                if action.node_change().is_some() {
                    let result = applied
                        .admin
                        .clone()
                        .execute(&action)
                        .map_err(|r| r.to_string());
                    if let Ok(detail) = result {
                        applied.admin.start_node_change(id, decided);
                        return AdminOutcome::Started { approvers, detail };
                    }
                    applied.admin.finish(id, decided, &result);
                    return match result {
                        Ok(detail) => AdminOutcome::Executed { approvers, detail },
                        Err(reason) => AdminOutcome::Failed { approvers, reason },
                    };
                }
                let mut touched = Vec::new();
                let result = effect(applied, &action, &mut touched).map_err(|r| r.to_string());
                if result.is_ok() {
                    record_touched(&action, &mut changes.keys);
                    changes.records.extend(touched);
                }
                applied.admin.finish(id, decided, &result);
                match result {
                    Ok(detail) => AdminOutcome::Executed { approvers, detail },
                    Err(reason) => AdminOutcome::Failed { approvers, reason },
                }
            }
        },
        AdminCommand::NodeChangeDone { id, result } => {
            match applied.admin.finish_node_change(id, result) {
                Ok(decided) => match result {
                    Ok(detail) => AdminOutcome::Executed {
                        approvers: decided.approvers,
                        detail: detail.clone(),
                    },
                    Err(reason) => AdminOutcome::Failed {
                        approvers: decided.approvers,
                        reason: reason.clone(),
                    },
                },
                Err(r) => AdminOutcome::Refused(r),
            }
        }
    }
}

/// The registry change of a key action (a re-wrap of nothing is refused); `None` for every
/// other action.
fn key_change(action: &Action) -> Result<Option<KeyChange>, AdminRefusal> {
    Ok(Some(match action {
        Action::AddKey(record) => KeyChange::Add(record.clone()),
        Action::SetKeyState { key_id, state } => KeyChange::SetState {
            key_id: key_id.clone(),
            state: *state,
        },
        Action::RotateKek(items) if items.is_empty() => {
            return Err(AdminRefusal::Invalid("nothing to re-wrap".to_owned()))
        }
        Action::RotateKek(items) => KeyChange::Rewrap(items.clone()),
        _ => return Ok(None),
    }))
}

fn key_refusal(e: KeyRefusal) -> AdminRefusal {
    match e {
        KeyRefusal::IdTaken(_) | KeyRefusal::PublicKeyTaken(_) => {
            AdminRefusal::Conflict(e.to_string())
        }
        other => AdminRefusal::Invalid(other.to_string()),
    }
}

/// Whether a key or protection `action` would apply now, changing nothing: so that a hopeless
/// proposal never collects approvals. Admin-plane actions are checked by
/// `AdminState::propose`.
fn check(applied: &Applied, action: &Action) -> Result<(), AdminRefusal> {
    if let Some(change) = key_change(action)? {
        return applied.registry.check(&change).map_err(key_refusal);
    }
    if let Action::ImportProtection {
        interchange: text,
        minify,
        prior,
    } = action
    {
        // Rare, and the eth2 records only: the import is tried on a copy of them.
        let mut eth2 = applied.protection.eth2.clone();
        import(&mut eth2, &applied.admin, text, *minify, prior)?;
    }
    Ok(())
}

/// Apply `action`'s effect on the registry, the protection records or the admin state, in
/// place: `Ok` with what it did, or why it changed nothing. `touched` collects the protection
/// records it changed (to persist).
///
/// Nothing is copied for key and import actions: each checks everything before it changes
/// anything (`Registry::apply`, `interchange::import` after `check_seen`), so a refusal
/// leaves the state as it was, and an action's cost does not grow with the size of the
/// registry (a cluster of 10,000 keys adds each key with one action). Admin-plane actions
/// (few, small state) run on a copy of the admin state, taken over only when they succeed.
fn effect(
    applied: &mut Applied,
    action: &Action,
    touched: &mut Vec<RecordKey>,
) -> Result<String, AdminRefusal> {
    if let Some(change) = key_change(action)? {
        let changed = applied.registry.apply(&change).map_err(key_refusal)?;
        return Ok(match action {
            Action::RotateKek(items) => format!("{} key(s) re-wrapped", items.len()),
            _ => format!("key {changed:?} changed"),
        });
    }
    match action {
        Action::ImportProtection {
            interchange: text,
            minify,
            prior,
        } => {
            let (detail, validators) = import(
                &mut applied.protection.eth2,
                &applied.admin,
                text,
                *minify,
                prior,
            )?;
            touched.extend(validators.into_iter().map(RecordKey::Eth2));
            Ok(detail)
        }
        // Applied by the state machine right after this entry's tally (it needs the stored
        // records); a refusal there marks the challenge failed.
        Action::CompactAudit { up_to_seq } => Ok(format!("audit compaction up to {up_to_seq}")),
        other => {
            let mut admin = applied.admin.clone();
            let detail = admin.execute(other)?;
            applied.admin = admin;
            Ok(detail)
        }
    }
}

/// An approved interchange import into `eth2`: refused, changing nothing, for another
/// network's file, records that are no longer the ones reviewed, or (without `minify`) a file
/// that is slashable on its own. Returns what it did and the validators it touched.
fn import(
    eth2: &mut crate::protection::ethereum::Eth2State,
    admin: &crate::admin::AdminState,
    text: &str,
    minify: bool,
    prior: &Prior<Vec<Option<interchange::review::RecordSeen>>>,
) -> Result<(String, Vec<crate::protection::ethereum::BlsPubkey>), AdminRefusal> {
    let invalid = |m: String| AdminRefusal::Invalid(m);
    // The cluster's network, from replicated state: not the file's own claim, and not a
    // node's config.
    let cluster_gvr = admin
        .genesis_validators_root
        .ok_or(AdminRefusal::NoGenesisRoot)?;
    let doc = interchange::parse(text).map_err(|e| invalid(e.to_string()))?;
    if doc.genesis_validators_root != cluster_gvr {
        return Err(AdminRefusal::GenesisMismatch {
            expected: cluster_gvr,
            found: doc.genesis_validators_root,
        });
    }
    // What the approvers reviewed as the change must still hold (watermarks may have risen:
    // then the import changes less than reviewed, never more).
    if let Prior::Recorded(seen) = prior {
        interchange::review::check_seen(eth2, &doc, seen).map_err(|e| {
            invalid(format!(
                "the protection records are not the ones this import was reviewed against: \
                 {e}; propose the import again"
            ))
        })?;
    }
    let policy = if minify {
        ImportPolicy::Minify
    } else {
        ImportPolicy::RefuseSlashable
    };
    let summary =
        interchange::import(eth2, cluster_gvr, &doc, policy).map_err(|e| invalid(e.to_string()))?;
    Ok((
        format!(
            "imported {} validator(s), {} block and {} attestation record(s)",
            summary.validators, summary.blocks, summary.attestations
        ),
        doc.data.iter().map(|v| v.pubkey).collect(),
    ))
}

/// Which key-registry records an applied action changed (protection records are collected
/// by [`effect`] in its `touched`).
fn record_touched(action: &Action, keys_touched: &mut BTreeSet<String>) {
    match action {
        Action::AddKey(r) => {
            keys_touched.insert(r.key_id.clone());
        }
        Action::SetKeyState { key_id, .. } => {
            keys_touched.insert(key_id.clone());
        }
        Action::RotateKek(items) => {
            keys_touched.extend(items.iter().map(|i| i.key_id.clone()));
        }
        _ => {}
    }
}

/// The audit compaction an approval just executed, if any.
pub(super) fn approved_compaction(
    applied: &Applied,
    command: &AdminCommand,
    outcome: &AdminOutcome,
) -> Option<([u8; 32], u64)> {
    let (AdminCommand::Approve { id, .. }, AdminOutcome::Executed { .. }) = (command, outcome)
    else {
        return None;
    };
    match applied.admin.challenges.get(&hex::encode(id))?.action() {
        Ok(Action::CompactAudit { up_to_seq }) => Some((*id, up_to_seq)),
        _ => None,
    }
}

/// Record that an approved action failed when applied after its tally.
pub(super) fn fail_executed(
    applied: &mut Applied,
    id: &[u8; 32],
    at_ms: u64,
    outcome: AdminOutcome,
    reason: String,
) -> AdminOutcome {
    let decided = applied
        .admin
        .challenges
        .get(&hex::encode(id))
        .and_then(|c| c.status.decided().cloned())
        .unwrap_or(Decided {
            at_ms,
            threshold: applied.admin.policy.threshold,
            approvers: Vec::new(),
        });
    applied.admin.finish(id, decided, &Err(reason.clone()));
    match outcome {
        AdminOutcome::Executed { approvers, .. } => AdminOutcome::Failed { approvers, reason },
        other => other,
    }
}

/// The audit record of an admin command and its outcome.
pub(super) fn audit_event(
    applied: &Applied,
    command: &AdminCommand,
    outcome: &AdminOutcome,
) -> AuditEvent {
    let challenge = |id: &[u8; 32]| applied.admin.challenges.get(&hex::encode(id));
    let (action, actor) = match command {
        AdminCommand::Bootstrap(b) => (
            format!(
                "bootstrap: {} admin(s), threshold {}, {} client grant(s)",
                b.admins.len(),
                b.policy.threshold,
                b.clients.len()
            ),
            "cluster".to_owned(),
        ),
        AdminCommand::Propose {
            id,
            proposer,
            action_bytes,
        } => (
            format!(
                "propose {}: {}",
                hex::encode(id),
                codec::describe_bytes(action_bytes)
            ),
            proposer.clone(),
        ),
        AdminCommand::Approve { id, admin, .. } => {
            let what = challenge(id)
                .map(|c| codec::describe_bytes(&c.action_bytes))
                .unwrap_or_else(|| "unknown challenge".to_owned());
            (
                format!("approve {}: {what}", hex::encode(id)),
                admin.clone(),
            )
        }
        AdminCommand::NodeChangeDone { id, .. } => {
            let what = challenge(id)
                .map(|c| codec::describe_bytes(&c.action_bytes))
                .unwrap_or_else(|| "unknown challenge".to_owned());
            (
                format!("membership change {}: {what}", hex::encode(id)),
                "leader".to_owned(),
            )
        }
    };
    let (approvers, result) = match outcome {
        AdminOutcome::Bootstrapped => (Vec::new(), "ok".to_owned()),
        AdminOutcome::Proposed { threshold, .. } => {
            (Vec::new(), format!("open, needs {threshold} approval(s)"))
        }
        AdminOutcome::Pending {
            approvers,
            threshold,
        } => (
            approvers.clone(),
            format!("pending ({} of {threshold})", approvers.len()),
        ),
        AdminOutcome::Executed { approvers, detail } => {
            (approvers.clone(), format!("executed: {detail}"))
        }
        AdminOutcome::Failed { approvers, reason } => {
            (approvers.clone(), format!("failed: {reason}"))
        }
        AdminOutcome::Refused(r) => (Vec::new(), format!("refused: {r}")),
        AdminOutcome::Started { approvers, detail } => {
            (approvers.clone(), format!("executing: {detail}"))
        }
    };
    AuditEvent::Admin {
        action,
        actor,
        approvers,
        result,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
