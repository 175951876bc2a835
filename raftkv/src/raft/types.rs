//! The data the consensus core exchanges with the outside world: log entries, snapshots,
//! membership, the persistent hard state and the peer messages.
//!
//! Everything here is plain data with serde derives, because the same values are written to
//! disk by the storage layer and sent over HTTP by the transport.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A server's identity within the cluster; stable across restarts.
pub type NodeId = u64;
/// A Raft term number (Raft §5.1).
pub type Term = u64;
/// A position in the replicated log; the first real entry is index 1.
pub type Index = u64;

/// The voting members of the cluster, each with the address peers and clients reach it at.
///
/// The address travels with the id so that a server added at run time (which appears in no
/// `--peers` flag) can be reached by every member once the change is in the log.
pub type Members = BTreeMap<NodeId, String>;

/// What one log entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryData {
    /// Appended by every new leader at the start of its term, so that it has an entry of its
    /// own term to commit (Raft §5.4.2 / §8): only then are earlier entries and reads settled.
    Noop,
    /// An opaque state-machine command (the KV layer stores JSON here).
    Command(String),
    /// A new configuration: the full member set after a one-server change (thesis §4.1).
    /// It takes effect as soon as it is appended, not when committed.
    Config(Members),
}

/// One record of the replicated log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Term of the leader that created the entry.
    pub term: Term,
    /// Position of the entry in the log.
    pub index: Index,
    /// What the entry carries: a new leader's no-op, a client command, or a configuration (in force
    /// once appended).
    pub data: EntryData,
}

/// The state that must be on stable storage before the server answers anything that depends
/// on it (Raft figure 2, "Persistent state on all servers").
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    /// Latest term this server has seen.
    pub term: Term,
    /// Candidate voted for in `term`, if any; at most one vote per term.
    pub vote: Option<NodeId>,
}

/// A compacted prefix of the log: the state machine image at `last_index`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Index of the last entry the snapshot replaces.
    pub last_index: Index,
    /// Term of that entry, needed for the AppendEntries consistency check at the boundary.
    pub last_term: Term,
    /// The configuration in effect at `last_index`; the log no longer holds it.
    pub members: Members,
    /// The serialized state machine, opaque to the core.
    pub data: String,
}

/// A peer-to-peer message. `term` is the sender's term (for a pre-vote request: the term the
/// sender would campaign in), used by the receiver to detect stale leaders and candidates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The sending server's id; replies go back to it.
    pub from: NodeId,
    /// The server it is addressed to; the runtime routes it by this id through the members'
    /// addresses.
    pub to: NodeId,
    /// Sender's term.
    pub term: Term,
    /// Which RPC or reply this is, with its arguments.
    pub body: MessageBody,
}

/// The RPCs of Raft figure 2 plus the heartbeat, pre-vote and snapshot variants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageBody {
    /// RequestVote (§5.2), or PreVote (thesis §9.6) when `pre_vote` is set.
    RequestVote {
        /// True for the pre-vote round: the receiver grants without changing its state.
        pre_vote: bool,
        /// Candidate's last log index, for the up-to-date check (§5.4.1).
        last_log_index: Index,
        /// Candidate's last log term, for the up-to-date check (§5.4.1).
        last_log_term: Term,
    },
    /// The reply to RequestVote or PreVote; with the message's `term`, a stale candidate learns to
    /// step down.
    RequestVoteResponse {
        /// Echoes the request's pre-vote flag.
        pre_vote: bool,
        /// Whether the vote was granted.
        granted: bool,
    },
    /// AppendEntries (§5.3): store `entries` after `prev_log_index` if the follower's log matches
    /// there; with no entries, a probe for the match point.
    AppendEntries {
        /// Index of the entry immediately preceding `entries`.
        prev_log_index: Index,
        /// Term of that entry: the consistency check.
        prev_log_term: Term,
        /// Entries to store (empty for a probe).
        entries: Vec<Entry>,
        /// The leader's commit index; the follower commits up to it, but no further than the last
        /// entry this message confirmed.
        leader_commit: Index,
        /// Leader's ReadIndex round counter, echoed back so the reply confirms leadership.
        read_seq: u64,
    },
    /// The reply to AppendEntries: success with the matched index, or failure with a hint where to
    /// back up to.
    AppendEntriesResponse {
        /// Whether the consistency check passed.
        success: bool,
        /// On success: the highest index now known to match the leader's log.
        /// On failure: the `prev_log_index` that was rejected (lets the leader drop stale replies).
        index: Index,
        /// On failure, the fast back-up hint (§5.3, "the follower can include the term of the
        /// conflicting entry and the first index it stores for that term"): `Some((term,
        /// first_index))`, or `None` with `hint_index` = follower's last index + 1 when the
        /// follower's log is too short.
        conflict: Option<(Term, Index)>,
        /// With `conflict` `None`, where the leader should resume: the follower's last index + 1.
        /// Ignored when `conflict` is set.
        hint_index: Index,
        /// Echo of the request's `read_seq`.
        read_seq: u64,
    },
    /// Heartbeat: keeps followers from campaigning and confirms leadership for ReadIndex.
    Heartbeat {
        /// min(leader commit, follower's match index): safe for the follower to commit.
        commit: Index,
        /// Leader's ReadIndex round counter.
        read_seq: u64,
    },
    /// The reply to a heartbeat; echoing `read_seq` counts the follower toward confirming the
    /// leader's pending reads.
    HeartbeatResponse {
        /// Echo of the heartbeat's `read_seq`.
        read_seq: u64,
    },
    /// InstallSnapshot (§7), sent whole (the state machines here are small).
    InstallSnapshot {
        /// The leader's latest snapshot.
        snapshot: Snapshot,
    },
    /// The reply to InstallSnapshot, telling the leader where to resume replication.
    InstallSnapshotResponse {
        /// Highest index the follower now holds (its snapshot or commit index).
        index: Index,
    },
}

impl MessageBody {
    /// A short name for logs and the simulator's statistics.
    pub fn kind(&self) -> &'static str {
        match self {
            MessageBody::RequestVote { pre_vote: true, .. } => "PreVote",
            MessageBody::RequestVote { .. } => "RequestVote",
            MessageBody::RequestVoteResponse { pre_vote: true, .. } => "PreVoteResponse",
            MessageBody::RequestVoteResponse { .. } => "RequestVoteResponse",
            MessageBody::AppendEntries { .. } => "AppendEntries",
            MessageBody::AppendEntriesResponse { .. } => "AppendEntriesResponse",
            MessageBody::Heartbeat { .. } => "Heartbeat",
            MessageBody::HeartbeatResponse { .. } => "HeartbeatResponse",
            MessageBody::InstallSnapshot { .. } => "InstallSnapshot",
            MessageBody::InstallSnapshotResponse { .. } => "InstallSnapshotResponse",
        }
    }
}

/// A server's role (Raft figure 4, plus the pre-candidate of thesis §9.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Passive: answers leaders and candidates.
    Follower,
    /// Asking whether it could win before disturbing anyone's term.
    PreCandidate,
    /// Campaigning in a new term.
    Candidate,
    /// Accepts client requests and replicates the log.
    Leader,
}

impl Role {
    /// The lowercase name used in `/status`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Follower => "follower",
            Role::PreCandidate => "precandidate",
            Role::Candidate => "candidate",
            Role::Leader => "leader",
        }
    }
}
