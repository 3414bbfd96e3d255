//! Membership changes as approved admin actions: what a change is ([`NodeChange`]), whether
//! the cluster can take it ([`check_change`]), and the names and addresses it carries.
//!
//! Owns: the rules every membership change must pass, as pure functions over a view of the
//! cluster ([`Members`]): at least [`MIN_VOTERS`] voters remain, a majority of the remaining
//! voters is caught up with the leader (so the new configuration can commit), a voter is not
//! added twice, a non-voter is not removed. Must not: read Raft, a clock or the network (the
//! node builds [`Members`] from its Raft metrics and passes it in), or carry a change out (the
//! leader does, through openraft, in `node/src/replica/membership.rs`).
//!
//! To ensure correctness:
//! - a change is refused whole, with a reason that names the node and the numbers, or allowed
//!   whole: [`check_change`] is asked at proposal (on the proposing node) and again by the
//!   leader right before it changes the membership;
//! - a node id is a node's identity (its certificates name `node-<id>`); an id removed from the
//!   cluster is never a member again (checked in [`super::AdminState`], which keeps the
//!   executed removals).

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A cluster keeps at least this many voters (it then survives one failure).
pub const MIN_VOTERS: usize = 3;

/// A member whose log is at most this many entries behind the leader's last entry, and who
/// answered the leader within [`MAX_ACK_AGE_MS`], is caught up.
pub const MAX_LAG: u64 = 64;

/// See [`MAX_LAG`].
pub const MAX_ACK_AGE_MS: u64 = 1_500;

/// A node to add: its id and where it listens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewNode {
    /// Its id; its certificates name `node-<id>`.
    pub id: u64,
    /// Where clients reach it (`HOST:PORT`).
    pub client_addr: String,
    /// Where peers reach it (`HOST:PORT`): the address Raft replicates to.
    pub peer_addr: String,
}

/// A membership change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeChange<'a> {
    /// Add a node: learner first, voter once caught up.
    Add(&'a NewNode),
    /// Remove a voter.
    Remove(u64),
    /// Add `new` as above, then replace `old` by it in one joint change.
    Replace {
        /// The voter to remove.
        old: u64,
        /// The node to add.
        new: &'a NewNode,
    },
}

/// The cluster as the leader sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Members {
    /// The voters.
    pub voters: BTreeSet<u64>,
    /// The learners (members that do not vote).
    pub learners: BTreeSet<u64>,
    /// The members caught up with the leader (the leader included). Unknown (a follower's
    /// view): `None`, and nothing is checked for it.
    pub caught_up: Option<BTreeSet<u64>>,
}

/// Why a membership change is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MembershipRefusal {
    /// The node is a voter already.
    #[error("node-{0} is already a voter of this cluster")]
    AlreadyVoter(u64),
    /// The node to remove is not a voter.
    #[error("node-{0} is not a voter of this cluster")]
    NotVoter(u64),
    /// Fewer than [`MIN_VOTERS`] voters would remain.
    #[error(
        "removing node-{id} would leave {left} voter(s); a cluster keeps at least {MIN_VOTERS} \
         (add a node first, or use `node replace`)"
    )]
    TooFewVoters {
        /// The node to remove.
        id: u64,
        /// Voters left.
        left: usize,
    },
    /// Too few of the remaining voters are caught up for the new configuration to commit.
    #[error(
        "removing node-{id} would leave {caught_up} of the {left} remaining voter(s) caught up, \
         fewer than a majority ({majority}): the cluster could not commit; bring the other \
         nodes back first"
    )]
    NotCaughtUp {
        /// The node to remove.
        id: u64,
        /// Remaining voters caught up.
        caught_up: usize,
        /// Remaining voters.
        left: usize,
        /// A majority of them.
        majority: usize,
    },
    /// A replacement names the same node twice.
    #[error("node-{0} cannot replace itself")]
    SameNode(u64),
    /// An id or address is not usable.
    #[error("{0}")]
    Invalid(String),
}

/// Whether the cluster `members` can take `change`.
pub fn check_change(members: &Members, change: &NodeChange<'_>) -> Result<(), MembershipRefusal> {
    match change {
        NodeChange::Add(new) => {
            check_new(new)?;
            if members.voters.contains(&new.id) {
                return Err(MembershipRefusal::AlreadyVoter(new.id));
            }
            Ok(())
        }
        NodeChange::Remove(id) => {
            let remaining: BTreeSet<u64> = without(members, *id)?;
            if remaining.len() < MIN_VOTERS {
                return Err(MembershipRefusal::TooFewVoters {
                    id: *id,
                    left: remaining.len(),
                });
            }
            check_majority(members, *id, &remaining, 0)
        }
        NodeChange::Replace { old, new } => {
            check_new(new)?;
            if *old == new.id {
                return Err(MembershipRefusal::SameNode(*old));
            }
            if members.voters.contains(&new.id) {
                return Err(MembershipRefusal::AlreadyVoter(new.id));
            }
            let remaining = without(members, *old)?;
            // The new node votes only once caught up: it counts as caught up.
            check_majority(members, *old, &remaining, 1)
        }
    }
}

/// The voters without `id`, which must be one.
fn without(members: &Members, id: u64) -> Result<BTreeSet<u64>, MembershipRefusal> {
    if !members.voters.contains(&id) {
        return Err(MembershipRefusal::NotVoter(id));
    }
    Ok(members
        .voters
        .iter()
        .copied()
        .filter(|v| *v != id)
        .collect())
}

/// A majority of `remaining` (plus `joining` caught-up newcomers) must be caught up.
fn check_majority(
    members: &Members,
    id: u64,
    remaining: &BTreeSet<u64>,
    joining: usize,
) -> Result<(), MembershipRefusal> {
    let Some(caught_up) = &members.caught_up else {
        return Ok(());
    };
    let left = remaining.len() + joining;
    let majority = left / 2 + 1;
    let caught = remaining.intersection(caught_up).count() + joining;
    if caught < majority {
        return Err(MembershipRefusal::NotCaughtUp {
            id,
            caught_up: caught,
            left,
            majority,
        });
    }
    Ok(())
}

/// A new node's id and addresses are usable.
pub fn check_new(new: &NewNode) -> Result<(), MembershipRefusal> {
    if new.id == 0 {
        return Err(MembershipRefusal::Invalid(
            "node ids start at 1 (node-1)".to_owned(),
        ));
    }
    for (what, addr) in [
        ("client address", &new.client_addr),
        ("peer address", &new.peer_addr),
    ] {
        check_addr(addr).map_err(|why| {
            MembershipRefusal::Invalid(format!("node-{}: {what} {addr:?}: {why}", new.id))
        })?;
    }
    if new.client_addr == new.peer_addr {
        return Err(MembershipRefusal::Invalid(format!(
            "node-{}: the client and peer addresses must differ",
            new.id
        )));
    }
    Ok(())
}

/// `HOST:PORT`: a host of 1 to 253 letters, digits, '.', '-' or ':' (IPv6 in brackets), and a
/// port from 1 to 65535.
fn check_addr(addr: &str) -> Result<(), &'static str> {
    let (host, port) = addr.rsplit_once(':').ok_or("expected HOST:PORT")?;
    let port: u16 = port.parse().map_err(|_| "the port is not 1 to 65535")?;
    if port == 0 {
        return Err("the port is not 1 to 65535");
    }
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if host_ok {
        Ok(())
    } else {
        Err("the host is not a name or an IP address")
    }
}

/// `node-<id>`, the name a node's certificates carry.
pub fn node_name(id: u64) -> String {
    format!("node-{id}")
}

/// The id in a node name: `node-4` (or `4`) is 4.
pub fn parse_node_name(name: &str) -> Result<u64, String> {
    let digits = name.strip_prefix("node-").unwrap_or(name);
    match digits.parse::<u64>() {
        Ok(id) if id > 0 && !digits.starts_with('0') => Ok(id),
        _ => Err(format!(
            "{name:?} is not a node name (node-N, N from 1, as its certificate names it)"
        )),
    }
}

/// Which members are caught up, from the leader's view: each member's lag behind the leader's
/// last log entry (`None`: nothing matched yet) and the age of its last acknowledgement in ms
/// (`None`: never). The leader itself is always caught up.
pub fn caught_up(
    leader: u64,
    lag: &BTreeMap<u64, Option<u64>>,
    ack_age_ms: &BTreeMap<u64, Option<u64>>,
) -> BTreeSet<u64> {
    let mut ids: BTreeSet<u64> = lag
        .iter()
        .filter(|(id, lag)| {
            lag.is_some_and(|l| l <= MAX_LAG)
                && ack_age_ms
                    .get(id)
                    .copied()
                    .flatten()
                    .is_some_and(|a| a <= MAX_ACK_AGE_MS)
        })
        .map(|(id, _)| *id)
        .collect();
    ids.insert(leader);
    ids
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn members(voters: &[u64], caught_up: Option<&[u64]>) -> Members {
        Members {
            voters: voters.iter().copied().collect(),
            learners: BTreeSet::new(),
            caught_up: caught_up.map(|c| c.iter().copied().collect()),
        }
    }

    fn new(id: u64) -> NewNode {
        NewNode {
            id,
            client_addr: format!("127.0.0.1:{}", 7000 + 2 * id),
            peer_addr: format!("127.0.0.1:{}", 7001 + 2 * id),
        }
    }

    #[test]
    fn changes_are_checked_against_the_voters_and_who_is_caught_up() {
        let n4 = new(4);
        let n1 = new(1);
        let (n2, n3) = (new(2), new(3));
        let bad_addr = NewNode {
            peer_addr: "127.0.0.1".into(),
            ..new(4)
        };
        let same_addr = NewNode {
            peer_addr: n4.client_addr.clone(),
            ..new(4)
        };
        let zero = NewNode { id: 0, ..new(4) };
        let all3 = Some(&[1, 2, 3][..]);
        let table: Vec<(Members, NodeChange, Result<(), String>)> =
            vec![
            (members(&[1, 2, 3], all3), NodeChange::Add(&n4), Ok(())),
            (
                members(&[1, 2, 3], all3),
                NodeChange::Add(&n1),
                Err("node-1 is already a voter of this cluster".into()),
            ),
            (
                members(&[1, 2, 3], all3),
                NodeChange::Add(&bad_addr),
                Err("node-4: peer address \"127.0.0.1\": expected HOST:PORT".into()),
            ),
            (
                members(&[1, 2, 3], all3),
                NodeChange::Add(&same_addr),
                Err("node-4: the client and peer addresses must differ".into()),
            ),
            (
                members(&[1, 2, 3], all3),
                NodeChange::Add(&zero),
                Err("node ids start at 1 (node-1)".into()),
            ),
            (
                members(&[1, 2, 3], all3),
                NodeChange::Remove(3),
                Err("removing node-3 would leave 2 voter(s); a cluster keeps at least 3 (add a \
                     node first, or use `node replace`)"
                    .into()),
            ),
            (
                members(&[1, 2, 3, 4], Some(&[1, 2, 3, 4])),
                NodeChange::Remove(4),
                Ok(()),
            ),
            (
                members(&[1, 2, 3], all3),
                NodeChange::Remove(9),
                Err("node-9 is not a voter of this cluster".into()),
            ),
            // Five voters, two down: removing a live one leaves 2 of 4 caught up.
            (
                members(&[1, 2, 3, 4, 5], Some(&[1, 2, 3])),
                NodeChange::Remove(3),
                Err("removing node-3 would leave 2 of the 4 remaining voter(s) caught up, \
                     fewer than a majority (3): the cluster could not commit; bring the other \
                     nodes back first"
                    .into()),
            ),
            // Removing a dead one leaves 3 of 4.
            (
                members(&[1, 2, 3, 4, 5], Some(&[1, 2, 3])),
                NodeChange::Remove(5),
                Ok(()),
            ),
            // A follower's view: who is caught up is not known; the leader checks again.
            (members(&[1, 2, 3, 4, 5], None), NodeChange::Remove(3), Ok(())),
            (
                members(&[1, 2, 3], Some(&[1, 2])),
                NodeChange::Replace { old: 3, new: &n4 },
                Ok(()),
            ),
            // The leader and the newcomer: 2 of 3.
            (
                members(&[1, 2, 3], Some(&[1])),
                NodeChange::Replace { old: 3, new: &n4 },
                Ok(()),
            ),
            (
                members(&[1, 2, 3], all3),
                NodeChange::Replace { old: 3, new: &n3 },
                Err("node-3 cannot replace itself".into()),
            ),
            (
                members(&[1, 2, 3], all3),
                NodeChange::Replace { old: 3, new: &n2 },
                Err("node-2 is already a voter of this cluster".into()),
            ),
            (
                members(&[1, 2, 3], all3),
                NodeChange::Replace { old: 7, new: &n4 },
                Err("node-7 is not a voter of this cluster".into()),
            ),
        ];
        for (m, change, expected) in table {
            let got = check_change(&m, &change).map_err(|e| e.to_string());
            assert_eq!(got, expected, "{change:?} on {m:?}");
        }
    }

    #[test]
    fn a_replacement_counts_the_newcomer_as_caught_up_and_no_one_else() {
        // Voters 1..5, only the leader caught up: 1 + the newcomer of 5 is not a majority.
        let n6 = new(6);
        let m = members(&[1, 2, 3, 4, 5], Some(&[1]));
        assert_eq!(
            check_change(&m, &NodeChange::Replace { old: 5, new: &n6 }),
            Err(MembershipRefusal::NotCaughtUp {
                id: 5,
                caught_up: 2,
                left: 5,
                majority: 3
            })
        );
        let m = members(&[1, 2, 3, 4, 5], Some(&[1, 2]));
        assert_eq!(
            check_change(&m, &NodeChange::Replace { old: 5, new: &n6 }),
            Ok(())
        );
    }

    #[test]
    fn caught_up_needs_a_small_lag_and_a_recent_answer() {
        let lag = BTreeMap::from([
            (2, Some(0)),
            (3, Some(MAX_LAG)),
            (4, Some(MAX_LAG + 1)),
            (5, None),
            (6, Some(0)),
            (7, Some(0)),
        ]);
        let ack = BTreeMap::from([
            (2, Some(0)),
            (3, Some(MAX_ACK_AGE_MS)),
            (4, Some(0)),
            (5, Some(0)),
            (6, Some(MAX_ACK_AGE_MS + 1)),
            (7, None),
        ]);
        assert_eq!(caught_up(1, &lag, &ack), BTreeSet::from([1, 2, 3]));
    }

    #[test]
    fn node_names_are_node_dash_id() {
        assert_eq!(node_name(4), "node-4");
        assert_eq!(parse_node_name("node-4"), Ok(4));
        assert_eq!(parse_node_name("12"), Ok(12));
        for bad in ["node-0", "node-", "node-04", "seq-1", "node-x", ""] {
            assert_eq!(
                parse_node_name(bad),
                Err(format!(
                    "{bad:?} is not a node name (node-N, N from 1, as its certificate names it)"
                ))
            );
        }
    }
}
