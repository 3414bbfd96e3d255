//! Carrying out approved membership changes through openraft: the leader adds a new node as
//! a learner, waits until it is caught up, then changes the voters (one joint change), and
//! commits the outcome into the replicated admin state.
//!
//! Owns: the node's view of the membership for the rules ([`members`]), and the task that, on
//! whichever node leads, finishes the change in progress ([`spawn`]). Must not: decide whether
//! a change was approved (the state machine did: a change is in progress only after its
//! approvals reached the threshold in a committed entry), or change the membership for any
//! other reason.
//!
//! To ensure correctness:
//! - every step is idempotent and starts from Raft's current membership, so a new leader
//!   finishes a change its predecessor left half done (a learner added, a joint configuration
//!   committed), and a change already done is reported done, not done twice;
//! - the rules ([`signer_core::admin::membership::check_change`]) are checked again on the
//!   leader, against its replication view, right before the voters change;
//! - the outcome is committed ([`AdminCommand::NodeChangeDone`]) only by the leader that
//!   carried the change out; a node that stops leading leaves it to the next leader;
//! - a learner that does not catch up within [`CATCH_UP`] is removed again, and the change
//!   fails with the reason.

use super::{commit_admin, NodeId, Raft, StateMachine, TypeConfig};
use crate::admin::membership::{self, node_name, Members, NewNode, NodeChange};
use crate::admin::{Action, AdminCommand};
use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How long a new node has to catch up (install the snapshot, replay the log) before the
/// change fails.
pub const CATCH_UP: Duration = Duration::from_secs(120);

/// The membership as this node's Raft sees it; who is caught up only when it leads.
pub fn members(raft: &Raft, node_id: NodeId) -> Members {
    let m = raft.metrics().borrow_watched().clone();
    let membership = m.membership_config.membership();
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    let learners: BTreeSet<u64> = membership.learner_ids().collect();
    let caught_up = match (&m.replication, &m.heartbeat) {
        (Some(replication), Some(heartbeat)) if m.current_leader == Some(node_id) => {
            let last = m.last_log_index.unwrap_or(0);
            let lag: BTreeMap<u64, Option<u64>> = replication
                .iter()
                .map(|(id, matched)| (*id, matched.map(|l| last.saturating_sub(l.index))))
                .collect();
            let ack_age_ms: BTreeMap<u64, Option<u64>> = heartbeat
                .iter()
                .map(|(id, at)| {
                    let age = at
                        .as_ref()
                        .map(|at| openraft::Instant::elapsed(&**at).as_millis() as u64);
                    (*id, age)
                })
                .collect();
            Some(membership::caught_up(node_id, &lag, &ack_age_ms))
        }
        _ => None,
    };
    Members {
        voters,
        learners,
        caught_up,
    }
}

/// Start the task that finishes the approved membership change in progress whenever this
/// node leads, until `stop` resolves.
pub fn spawn(
    node_id: NodeId,
    raft: Raft,
    state: StateMachine,
    stop: impl Future<Output = ()> + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        tokio::select! {
            () = stop => {}
            () = drive(node_id, &raft, &state) => {}
        }
    })
}

async fn drive(node_id: NodeId, raft: &Raft, state: &StateMachine) {
    let mut metrics = raft.metrics();
    loop {
        let leading = metrics.borrow_watched().current_leader == Some(node_id);
        let in_progress = state
            .read()
            .admin
            .node_change_in_progress()
            .map(|(c, action)| (c.id, action));
        if let (true, Some((id, action))) = (leading, in_progress) {
            match carry_out(raft, node_id, &action).await {
                Step::Done(result) => {
                    tracing::info!(challenge = %hex::encode(id), ?result, "membership change finished");
                    let command = AdminCommand::NodeChangeDone { id, result };
                    if let Err(e) = commit_admin(raft, command).await {
                        tracing::warn!(error = %e, "membership change outcome not committed; the leader retries");
                    }
                }
                Step::Later(why) => {
                    tracing::info!(challenge = %hex::encode(id), %why, "membership change continues later");
                }
            }
        }
        let changed = tokio::time::timeout(Duration::from_millis(500), metrics.changed()).await;
        if let Ok(Err(_)) = changed {
            return; // Raft stopped.
        }
    }
}

/// What a pass over the change in progress came to.
#[derive(Debug)]
enum Step {
    /// Finished: what was done, or why it cannot be.
    Done(Result<String, String>),
    /// Not now (this node stopped leading, or openraft is finishing another change).
    Later(String),
}

/// Take `action` (a membership change) as far as it goes from the current membership.
async fn carry_out(raft: &Raft, me: NodeId, action: &Action) -> Step {
    match action.node_change() {
        Some(NodeChange::Add(new)) => join(raft, me, new, None).await,
        Some(NodeChange::Replace { old, new }) => join(raft, me, new, Some(old)).await,
        Some(NodeChange::Remove(id)) => remove(raft, me, id).await,
        None => Step::Done(Err("not a membership change".to_owned())),
    }
}

/// Add `new` as a learner, wait until it is caught up, then make it a voter (in place of
/// `old`, when replacing).
async fn join(raft: &Raft, me: NodeId, new: &NewNode, old: Option<u64>) -> Step {
    let done =
        |m: &Members| m.voters.contains(&new.id) && old.is_none_or(|old| !m.voters.contains(&old));
    let detail = match old {
        None => format!(
            "{} joined as a voter (client {}, peer {})",
            node_name(new.id),
            new.client_addr,
            new.peer_addr
        ),
        Some(old) => format!(
            "{} replaced {} as a voter (client {}, peer {})",
            node_name(new.id),
            node_name(old),
            new.client_addr,
            new.peer_addr
        ),
    };
    let change = |old: Option<u64>| match old {
        None => NodeChange::Add(new),
        Some(old) => NodeChange::Replace { old, new },
    };
    let m = members(raft, me);
    if done(&m) {
        return Step::Done(Ok(detail));
    }
    if let Err(e) = membership::check_change(&m, &change(old)) {
        return Step::Done(Err(e.to_string()));
    }
    if !m.learners.contains(&new.id) {
        let node = BasicNode::new(new.peer_addr.clone());
        if let Err(step) = outcome(raft.add_learner(new.id, node, false).await) {
            return step;
        }
    }
    let caught_up = match wait_caught_up(raft, me, new.id, CATCH_UP).await {
        Ok(caught_up) => caught_up,
        Err(NotLeading) => return Step::Later("not the leader any more".to_owned()),
    };
    if !caught_up {
        if members(raft, me).learners.contains(&new.id) {
            let ids = BTreeSet::from([new.id]);
            if let Err(step) = outcome(
                raft.change_membership(ChangeMembers::RemoveNodes(ids), false)
                    .await,
            ) {
                return step;
            }
        }
        return Step::Done(Err(format!(
            "{} did not catch up within {} s (is it running, reachable at {}, with a \
             certificate naming it?); it is no longer a learner",
            node_name(new.id),
            CATCH_UP.as_secs(),
            new.peer_addr
        )));
    }
    let m = members(raft, me);
    if let Err(e) = membership::check_change(&m, &change(old)) {
        return Step::Done(Err(e.to_string()));
    }
    let members_change = match old {
        None => ChangeMembers::AddVoterIds(BTreeSet::from([new.id])),
        Some(old) => {
            let mut voters = m.voters.clone();
            voters.remove(&old);
            voters.insert(new.id);
            ChangeMembers::ReplaceAllVoters(voters)
        }
    };
    match outcome(raft.change_membership(members_change, false).await) {
        Ok(()) => Step::Done(Ok(detail)),
        Err(step) => step,
    }
}

/// Remove the voter `id` (and keep it neither as a learner).
async fn remove(raft: &Raft, me: NodeId, id: u64) -> Step {
    let detail = format!("{} removed from the cluster", node_name(id));
    let m = members(raft, me);
    if !m.voters.contains(&id) && !m.learners.contains(&id) {
        return Step::Done(Ok(detail));
    }
    if let Err(e) = membership::check_change(&m, &NodeChange::Remove(id)) {
        return Step::Done(Err(e.to_string()));
    }
    let ids = BTreeSet::from([id]);
    match outcome(
        raft.change_membership(ChangeMembers::RemoveVoters(ids), false)
            .await,
    ) {
        Ok(()) => Step::Done(Ok(detail)),
        Err(step) => step,
    }
}

/// This node stopped leading (or Raft stopped).
struct NotLeading;

/// Whether `id` caught up with this leader within `within`.
async fn wait_caught_up(
    raft: &Raft,
    me: NodeId,
    id: u64,
    within: Duration,
) -> Result<bool, NotLeading> {
    let deadline = tokio::time::Instant::now() + within;
    let mut metrics = raft.metrics();
    loop {
        let m = members(raft, me);
        match m.caught_up {
            Some(caught_up) if caught_up.contains(&id) => return Ok(true),
            Some(_) => {}
            None => return Err(NotLeading),
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        let wait = tokio::time::timeout(Duration::from_millis(200), metrics.changed()).await;
        if let Ok(Err(_)) = wait {
            return Err(NotLeading);
        }
    }
}

/// An openraft membership call's result: done, or the step it comes to.
fn outcome<T>(
    r: Result<T, RaftError<TypeConfig, ClientWriteError<TypeConfig>>>,
) -> Result<(), Step> {
    match r {
        Ok(_) => Ok(()),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => Err(Step::Later(
            format!("not the leader any more (leader: {:?})", f.leader_id),
        )),
        Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
            ChangeMembershipError::InProgress(e),
        ))) => Err(Step::Later(e.to_string())),
        Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
            Err(Step::Done(Err(e.to_string())))
        }
        Err(e) => Err(Step::Later(e.to_string())),
    }
}
