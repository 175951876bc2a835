//! The Raft consensus core: a pure state machine, in the style of etcd's raft and raft-rs.
//!
//! Events go in ([`Raft::tick`], [`Raft::step`], [`Raft::propose`], [`Raft::read_index`],
//! [`Raft::propose_config`], [`Raft::compact`]); everything the outside world must do comes
//! out of [`Raft::take_ready`] as a [`Ready`]. There is no clock (time is a count of ticks),
//! no socket and no file here, and the only randomness is a seeded generator, so a simulation
//! replays exactly from its seed.
//!
//! The contract of a [`Ready`] is **persist first, then send, then apply**: the hard state,
//! the snapshot and the new entries must be on stable storage before any of its messages
//! leaves the process, because those messages (a vote, a successful AppendEntries reply)
//! promise that the state is durable (Raft figure 2, "Updated on stable storage before
//! responding to RPCs").

mod log;
pub mod types;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub use types::*;

use log::RaftLog;

/// Tunables and switches of one server's core. Times are in ticks.
#[derive(Clone, Debug)]
pub struct Config {
    /// This server's id, unique in the cluster; it also salts the election-timeout generator, so
    /// servers given one seed do not time out together.
    pub id: NodeId,
    /// Lower bound of the randomized election timeout (Raft §5.2); also the check-quorum
    /// period and the leader-stickiness window.
    pub election_ticks_min: u32,
    /// Exclusive upper bound of the randomized election timeout.
    pub election_ticks_max: u32,
    /// Interval between leader heartbeats.
    pub heartbeat_ticks: u32,
    /// Run a pre-vote round before bumping the term (thesis §9.6), so that a server that was
    /// partitioned away cannot depose a healthy leader when it comes back.
    pub pre_vote: bool,
    /// A leader that has not heard from a quorum within an election timeout steps down
    /// (thesis §6.2), so an isolated leader stops accepting work it can never commit.
    pub check_quorum: bool,
    /// A follower that heard from its leader within the minimum election timeout ignores
    /// RequestVote (thesis §4.2.3), so removed or flapping servers cannot disrupt.
    pub leader_stickiness: bool,
    /// BUG SWITCH: grant votes without the up-to-date check of §5.4.1.
    pub vote_without_log_check: bool,
    /// Most entries in one AppendEntries message: batching without unbounded messages.
    pub max_entries_per_msg: usize,
    /// Most AppendEntries messages in flight to one follower in the pipelined state.
    pub max_inflight: usize,
    /// Seed of the election-timeout randomness.
    pub seed: u64,
}

impl Config {
    /// Defaults suited to the simulator: 10–20 tick elections, heartbeat every 2 ticks.
    pub fn new(id: NodeId, seed: u64) -> Self {
        Config {
            id,
            election_ticks_min: 10,
            election_ticks_max: 20,
            heartbeat_ticks: 2,
            pre_vote: true,
            check_quorum: true,
            leader_stickiness: true,
            vote_without_log_check: false,
            max_entries_per_msg: 256,
            max_inflight: 64,
            seed,
        }
    }
}

/// What a server had on stable storage when it (re)started.
#[derive(Clone, Debug, Default)]
pub struct Restore {
    /// Persisted term and vote (default if never written).
    pub hard_state: HardState,
    /// Latest persisted snapshot.
    pub snapshot: Option<Snapshot>,
    /// Persisted log entries after the snapshot, contiguous.
    pub entries: Vec<Entry>,
    /// The configuration before any configuration entry: the initial members from the
    /// command line, or empty for a server that joins an existing cluster and must wait to
    /// learn its configuration from the leader.
    pub bootstrap: Members,
}

/// A linearizable read that may now be served: once the state machine has applied `index`,
/// its state reflects every write acknowledged before the read was requested (thesis §6.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadState {
    /// The caller's token from [`Raft::read_index`].
    pub ctx: u64,
    /// Commit index at the time the read was registered.
    pub index: Index,
}

/// Everything the runtime must do after feeding events in, in this order:
/// 1. persist `snapshot` (replacing the on-disk log), then `hard_state`, `truncate_from` and
///    `entries`, and fsync;
/// 2. send `messages`;
/// 3. restore the state machine from `snapshot`, apply `committed` in order;
/// 4. answer `read_states` once applied, fail `aborted_reads`.
#[derive(Clone, Debug, Default)]
pub struct Ready {
    /// New term/vote to persist, if changed.
    pub hard_state: Option<HardState>,
    /// A snapshot received from the leader: persist it, drop the whole on-disk log, and
    /// reset the state machine from it.
    pub snapshot: Option<Snapshot>,
    /// Delete persisted entries from this index on before appending `entries`.
    pub truncate_from: Option<Index>,
    /// Entries to append to stable storage.
    pub entries: Vec<Entry>,
    /// Messages to send, only after the above is durable.
    pub messages: Vec<Message>,
    /// Newly committed entries to apply, in index order.
    pub committed: Vec<Entry>,
    /// Reads whose leadership check completed.
    pub read_states: Vec<ReadState>,
    /// Reads that can no longer complete here (leadership lost): answer "unknown".
    pub aborted_reads: Vec<u64>,
}

impl Ready {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none()
            && self.snapshot.is_none()
            && self.truncate_from.is_none()
            && self.entries.is_empty()
            && self.messages.is_empty()
            && self.committed.is_empty()
            && self.read_states.is_empty()
            && self.aborted_reads.is_empty()
    }
}

/// Why a proposal was refused; the caller answers the client accordingly.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// Only the leader accepts proposals and reads.
    #[error("not the leader")]
    NotLeader,
    /// The leader has not yet committed an entry of its own term. Single-server changes
    /// must wait for this (the fix published on raft-dev in 2015 for the bug in the thesis's
    /// one-at-a-time algorithm).
    #[error("leader has not committed an entry of its term yet; retry")]
    NotReady,
    /// One configuration change at a time: the previous one is not committed yet.
    #[error("a configuration change is already in progress; retry")]
    ConfigChangeInProgress,
    /// The change would change nothing or leave no members.
    #[error("invalid configuration change: {0}")]
    InvalidConfigChange(String),
}

/// A one-server membership change (thesis §4.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigChange {
    /// Add a voting member reachable at the address.
    Add(NodeId, String),
    /// Remove a member (possibly the leader itself).
    Remove(NodeId),
}

/// The leader's view of one follower (Raft figure 2's nextIndex/matchIndex, plus flow control).
#[derive(Clone, Debug)]
struct Progress {
    /// Highest index known replicated on the follower.
    match_index: Index,
    /// Index of the next entry to send this follower; reset to `match_index + 1` when it drops back
    /// to probing.
    next_index: Index,
    /// Whether to probe one message at a time, stream up to `max_inflight`, or wait for a
    /// snapshot's reply.
    state: ProgressState,
    /// Last indexes of AppendEntries in flight (pipelined state only).
    inflight: VecDeque<Index>,
    /// In probe state, whether a probe is outstanding (one at a time until it is answered).
    probe_sent: bool,
    /// Heard from since the last check-quorum round.
    recent_active: bool,
    /// Highest ReadIndex round the follower has acknowledged.
    acked_read_seq: u64,
    /// `match_index` at the previous heartbeat, to notice a stalled pipeline (lost message).
    match_at_last_heartbeat: Index,
    /// Ticks since the snapshot was sent, to resend one that got lost.
    snapshot_ticks: u32,
}

/// How the leader sends to one follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProgressState {
    /// Finding the match point: one AppendEntries at a time.
    Probe,
    /// Matched: stream entries optimistically, up to `max_inflight` messages.
    Replicate,
    /// Waiting for an InstallSnapshot reply.
    Snapshot,
}

impl Progress {
    fn new(next_index: Index) -> Self {
        Progress {
            match_index: 0,
            next_index,
            state: ProgressState::Probe,
            inflight: VecDeque::new(),
            probe_sent: false,
            recent_active: true,
            acked_read_seq: 0,
            match_at_last_heartbeat: 0,
            snapshot_ticks: 0,
        }
    }

    fn become_probe(&mut self) {
        self.state = ProgressState::Probe;
        self.next_index = self.match_index + 1;
        self.inflight.clear();
        self.probe_sent = false;
    }
}

/// A read waiting for a quorum to confirm leadership.
#[derive(Clone, Copy, Debug)]
struct PendingRead {
    ctx: u64,
    index: Index,
    seq: u64,
}

/// A snapshot of the core's externally visible state, for `/status` and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The id of the server this status is from.
    pub id: NodeId,
    /// The role at the time of the call; a leader cut off from the others still says leader until
    /// check-quorum makes it step down.
    pub role: Role,
    /// The latest term this server has seen; persisted before it is acted on, so it never goes back
    /// across a restart (unless the `forget-vote` bug is on).
    pub term: Term,
    /// Known leader of the current term.
    pub leader: Option<NodeId>,
    /// Highest index known committed here; volatile, so after a restart it starts at the snapshot's
    /// index until the leader says more.
    pub commit_index: Index,
    /// Index of the last entry, or the snapshot's index when no entry follows it.
    pub last_index: Index,
    /// Current configuration (latest appended, per thesis §4.1).
    pub members: Members,
}

/// One server's consensus state.
pub struct Raft {
    /// Timeouts in ticks, batching limits, protocol options (pre-vote, check-quorum) and bug
    /// switches, fixed at start.
    cfg: Config,
    /// Latest term seen (persistent).
    term: Term,
    /// Vote in `term` (persistent).
    vote: Option<NodeId>,
    /// Follower at every (re)start: roles are not persisted.
    role: Role,
    /// Leader of `term`, when known.
    leader: Option<NodeId>,
    /// The log and commit index.
    log: RaftLog,
    /// Configuration in force: the latest in the log, else `base_members`.
    members: Members,
    /// Configuration at the snapshot boundary (or the bootstrap one).
    base_members: Members,
    /// The latest snapshot, kept to send to followers that fell behind.
    snapshot: Option<Snapshot>,
    /// Leader only: per-follower replication state.
    progress: BTreeMap<NodeId, Progress>,
    /// Candidate only: votes received in this round.
    votes: BTreeMap<NodeId, bool>,
    /// Ticks since the last heartbeat from a leader / since the last check-quorum round.
    election_elapsed: u32,
    /// Leader only: ticks since the last heartbeat broadcast.
    heartbeat_elapsed: u32,
    /// This round's randomized election timeout.
    randomized_timeout: u32,
    /// Seeded generator state (SplitMix64).
    rng: u64,
    /// Leader only: index of the no-op that opened this term.
    term_start_index: Index,
    /// Leader only: index of the latest configuration entry proposed.
    pending_config_index: Index,
    /// Leader only: ReadIndex round counter (thesis §6.4).
    read_seq: u64,
    /// Leader only: highest `read_seq` already broadcast in a heartbeat.
    read_seq_broadcast: u64,
    /// Reads waiting for the quorum confirmation.
    pending_reads: VecDeque<PendingRead>,
    /// Reads waiting for this leader's first commit (its commit index is stale until then).
    reads_waiting_commit: Vec<u64>,
    /// Completed reads not yet handed out.
    ready_reads: Vec<ReadState>,
    /// Ctxs of reads that can no longer complete here (leadership lost), handed out in the next
    /// Ready for the runtime to answer "unknown".
    aborted_reads: Vec<u64>,
    /// Outgoing messages not yet handed out.
    msgs: Vec<Message>,
    /// Lowest log index changed since the last `Ready`.
    unstable_from: Option<Index>,
    /// A received snapshot not yet handed out.
    pending_snapshot: Option<Snapshot>,
    /// The hard state last handed out, to emit only changes.
    prev_hard: HardState,
    /// Leader only: new entries await a broadcast (batched until `take_ready`).
    need_broadcast: bool,
    /// Count of times this server had to overwrite an entry it believed committed. Always 0
    /// in a correct cluster; non-zero only under a bug switch.
    pub committed_overwrites: u64,
}

impl Raft {
    /// Start (or restart) a server from what it had persisted.
    pub fn new(cfg: Config, restore: Restore) -> Self {
        let (snap_index, snap_term, base_members) = match &restore.snapshot {
            Some(s) => (s.last_index, s.last_term, s.members.clone()),
            None => (0, 0, restore.bootstrap.clone()),
        };
        let entries: Vec<Entry> = restore
            .entries
            .into_iter()
            .filter(|e| e.index > snap_index)
            .collect();
        let log = RaftLog::new(snap_index, snap_term, entries);
        // A correct server never holds an entry newer than its persisted term; if the hard
        // state was lost (the forget-vote bug), fall back to the last log term and no vote.
        let (term, vote) = if restore.hard_state.term >= log.last_term() {
            (restore.hard_state.term, restore.hard_state.vote)
        } else {
            (log.last_term(), None)
        };
        let mut raft = Raft {
            rng: cfg.seed ^ cfg.id.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            cfg,
            term,
            vote,
            role: Role::Follower,
            leader: None,
            log,
            members: base_members.clone(),
            base_members,
            snapshot: restore.snapshot,
            progress: BTreeMap::new(),
            votes: BTreeMap::new(),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_timeout: 0,
            term_start_index: 0,
            pending_config_index: 0,
            read_seq: 0,
            read_seq_broadcast: 0,
            pending_reads: VecDeque::new(),
            reads_waiting_commit: Vec::new(),
            ready_reads: Vec::new(),
            aborted_reads: Vec::new(),
            msgs: Vec::new(),
            unstable_from: None,
            pending_snapshot: None,
            prev_hard: restore.hard_state,
            need_broadcast: false,
            committed_overwrites: 0,
        };
        raft.reload_members();
        raft.reset_election_timer();
        raft
    }

    // ----- queries -----

    /// This server's id as configured (raftkv's `--id`).
    pub fn id(&self) -> NodeId {
        self.cfg.id
    }

    /// The latest term seen; a change reaches stable storage through the next Ready's `hard_state`.
    pub fn term(&self) -> Term {
        self.term
    }

    /// The role now; a leader cut off from the others still says leader until check-quorum makes it
    /// step down.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Known leader of the current term.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// Highest index known committed; volatile, so after a restart it starts at the snapshot's
    /// index.
    pub fn commit_index(&self) -> Index {
        self.log.committed
    }

    /// Index of the last log entry, or the snapshot's when no entry follows it.
    pub fn last_index(&self) -> Index {
        self.log.last_index()
    }

    /// Index of the last entry the latest snapshot covers (0 with none); entries up to it are no
    /// longer held.
    pub fn snapshot_index(&self) -> Index {
        self.log.snapshot_index
    }

    /// The configuration in force: the latest configuration entry in the log, committed or not
    /// (thesis §4.1), else the snapshot's or the bootstrap one.
    pub fn members(&self) -> &Members {
        &self.members
    }

    /// Persistent state as the core believes it to be.
    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
        }
    }

    /// Entries from `from` to the end (for rewriting the log file after compaction and for
    /// the simulator's invariant checks).
    pub fn entries_from(&self, from: Index) -> Vec<Entry> {
        self.log.slice(
            from.max(self.log.first_index()),
            self.log.last_index(),
            usize::MAX,
        )
    }

    /// The entry at `index`, if held (not compacted).
    pub fn entry(&self, index: Index) -> Option<&Entry> {
        self.log.entry(index)
    }

    /// The term of the entry at `index`, if known (the snapshot boundary counts).
    pub fn term_at(&self, index: Index) -> Option<Term> {
        self.log.term(index)
    }

    /// A copy of the externally visible state (role, term, leader, indexes, members), which raftkv
    /// serves as `GET /status`.
    pub fn status(&self) -> Status {
        Status {
            id: self.cfg.id,
            role: self.role,
            term: self.term,
            leader: self.leader,
            commit_index: self.log.committed,
            last_index: self.log.last_index(),
            members: self.members.clone(),
        }
    }

    // ----- inputs -----

    /// Advance logical time by one tick.
    pub fn tick(&mut self) {
        self.election_elapsed += 1;
        if self.role == Role::Leader {
            self.heartbeat_elapsed += 1;
            if self.election_elapsed >= self.cfg.election_ticks_min {
                self.election_elapsed = 0;
                if self.cfg.check_quorum && !self.quorum_recently_active() {
                    // Thesis §6.2: a leader that cannot reach a majority steps down.
                    self.become_follower(self.term, None);
                    return;
                }
                for pr in self.progress.values_mut() {
                    pr.recent_active = false;
                }
            }
            if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks {
                self.heartbeat_elapsed = 0;
                self.on_heartbeat_timer();
            }
        } else if self.promotable() && self.election_elapsed >= self.randomized_timeout {
            self.election_elapsed = 0;
            self.campaign(self.cfg.pre_vote);
        }
    }

    /// Handle one message from a peer.
    pub fn step(&mut self, msg: Message) {
        if msg.to != self.cfg.id {
            return;
        }
        if msg.term > self.term {
            match &msg.body {
                MessageBody::RequestVote { pre_vote, .. } => {
                    if self.in_lease() {
                        // Thesis §4.2.3: we heard from a live leader recently; ignore.
                        return;
                    }
                    if !pre_vote {
                        self.become_follower(msg.term, None);
                    }
                }
                // A granted pre-vote carries the term we would campaign in; not a new term.
                MessageBody::RequestVoteResponse {
                    pre_vote: true,
                    granted: true,
                } => {}
                MessageBody::AppendEntries { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::InstallSnapshot { .. } => {
                    self.become_follower(msg.term, Some(msg.from));
                }
                _ => self.become_follower(msg.term, None),
            }
        } else if msg.term < self.term {
            match &msg.body {
                MessageBody::AppendEntries { .. } | MessageBody::Heartbeat { .. }
                    if self.cfg.check_quorum || self.cfg.pre_vote =>
                {
                    // A stale leader that kept its term (pre-vote stopped us from telling it
                    // through a vote) learns the new term from this reply and steps down.
                    self.send(msg.from, MessageBody::HeartbeatResponse { read_seq: 0 });
                }
                MessageBody::RequestVote { pre_vote: true, .. } => {
                    self.send(
                        msg.from,
                        MessageBody::RequestVoteResponse {
                            pre_vote: true,
                            granted: false,
                        },
                    );
                }
                _ => {}
            }
            return;
        }

        let from = msg.from;
        match msg.body {
            MessageBody::RequestVote {
                pre_vote,
                last_log_index,
                last_log_term,
            } => self.handle_request_vote(from, msg.term, pre_vote, last_log_index, last_log_term),
            MessageBody::RequestVoteResponse { pre_vote, granted } => {
                self.handle_vote_response(from, pre_vote, granted)
            }
            MessageBody::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
                read_seq,
            } => {
                self.follow(from);
                self.handle_append(
                    from,
                    prev_log_index,
                    prev_log_term,
                    entries,
                    leader_commit,
                    read_seq,
                );
            }
            MessageBody::Heartbeat { commit, read_seq } => {
                self.follow(from);
                let commit = commit.min(self.log.last_index());
                self.commit_to(commit);
                self.send(from, MessageBody::HeartbeatResponse { read_seq });
            }
            MessageBody::InstallSnapshot { snapshot } => {
                self.follow(from);
                self.handle_snapshot(from, snapshot);
            }
            MessageBody::AppendEntriesResponse {
                success,
                index,
                conflict,
                hint_index,
                read_seq,
            } => {
                if self.role == Role::Leader {
                    self.handle_append_response(
                        from, success, index, conflict, hint_index, read_seq,
                    );
                }
            }
            MessageBody::HeartbeatResponse { read_seq } => {
                if self.role == Role::Leader {
                    self.handle_heartbeat_response(from, read_seq);
                }
            }
            MessageBody::InstallSnapshotResponse { index } => {
                if self.role == Role::Leader {
                    self.handle_snapshot_response(from, index);
                }
            }
        }
    }

    /// Append a client command to the leader's log. Returns its (index, term): the command
    /// took effect iff the entry applied at that index has that term.
    pub fn propose(&mut self, command: String) -> Result<(Index, Term), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader);
        }
        let index = self.append_as_leader(EntryData::Command(command));
        Ok((index, self.term))
    }

    /// Propose a one-server membership change.
    pub fn propose_config(&mut self, change: ConfigChange) -> Result<(Index, Term), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader);
        }
        if self.log.committed < self.term_start_index {
            return Err(ProposeError::NotReady);
        }
        if self.pending_config_index > self.log.committed {
            return Err(ProposeError::ConfigChangeInProgress);
        }
        let mut members = self.members.clone();
        match change {
            ConfigChange::Add(id, addr) => {
                if members.get(&id) == Some(&addr) {
                    return Err(ProposeError::InvalidConfigChange(format!(
                        "{id} is already a member"
                    )));
                }
                members.insert(id, addr);
            }
            ConfigChange::Remove(id) => {
                if members.remove(&id).is_none() {
                    return Err(ProposeError::InvalidConfigChange(format!(
                        "{id} is not a member"
                    )));
                }
                if members.is_empty() {
                    return Err(ProposeError::InvalidConfigChange(
                        "cannot remove the last member".into(),
                    ));
                }
            }
        }
        let index = self.append_as_leader(EntryData::Config(members));
        self.pending_config_index = index;
        Ok((index, self.term))
    }

    /// Ask for a linearizable read (ReadIndex, thesis §6.4). `ctx` comes back in a
    /// [`ReadState`] once a quorum has confirmed this server is still leader, or in
    /// `aborted_reads` if it loses leadership first.
    pub fn read_index(&mut self, ctx: u64) -> Result<(), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader);
        }
        if self.log.committed < self.term_start_index {
            // Until its no-op commits, a new leader does not know the latest commit index.
            self.reads_waiting_commit.push(ctx);
            return Ok(());
        }
        self.register_read(ctx);
        Ok(())
    }

    /// The application has applied up to `index` and serialized its state into `data`:
    /// compact the log and keep the snapshot for followers that fall behind. Returns the
    /// snapshot to persist (atomically, before rewriting the log file).
    pub fn compact(&mut self, index: Index, data: String) -> Option<Snapshot> {
        if index <= self.log.snapshot_index || index > self.log.handed_out {
            return None;
        }
        let term = self.log.term(index)?;
        let members = self
            .log
            .last_config_at_or_below(index)
            .map(|(_, m)| m)
            .unwrap_or_else(|| self.base_members.clone());
        let snap = Snapshot {
            last_index: index,
            last_term: term,
            members: members.clone(),
            data,
        };
        self.log.compact_to(index, term);
        self.base_members = members;
        self.snapshot = Some(snap.clone());
        Some(snap)
    }

    /// Collect what the runtime must do. See [`Ready`] for the order.
    pub fn take_ready(&mut self) -> Ready {
        if self.role == Role::Leader {
            if self.need_broadcast {
                self.need_broadcast = false;
                self.broadcast_append();
            }
            if self.read_seq > self.read_seq_broadcast {
                self.broadcast_heartbeat();
            }
        }
        let hs = self.hard_state();
        let hard_state = (hs != self.prev_hard).then(|| {
            self.prev_hard = hs.clone();
            hs
        });
        let (truncate_from, entries) = match self.unstable_from.take() {
            Some(from) => (
                Some(from),
                self.log.slice(from, self.log.last_index(), usize::MAX),
            ),
            None => (None, Vec::new()),
        };
        let committed = self
            .log
            .slice(self.log.handed_out + 1, self.log.committed, usize::MAX);
        if let Some(last) = committed.last() {
            self.log.handed_out = last.index;
        }
        Ready {
            hard_state,
            snapshot: self.pending_snapshot.take(),
            truncate_from,
            entries,
            messages: std::mem::take(&mut self.msgs),
            committed,
            read_states: std::mem::take(&mut self.ready_reads),
            aborted_reads: std::mem::take(&mut self.aborted_reads),
        }
    }

    // ----- elections -----

    fn promotable(&self) -> bool {
        self.members.contains_key(&self.cfg.id)
    }

    /// Whether a recent leader contact makes us ignore RequestVote (leader stickiness).
    fn in_lease(&self) -> bool {
        self.cfg.leader_stickiness
            && !self.cfg.vote_without_log_check
            && self.role == Role::Follower
            && self.leader.is_some()
            && self.election_elapsed < self.cfg.election_ticks_min
    }

    fn next_rand(&mut self) -> u64 {
        // SplitMix64: tiny, seedable, good enough for timeouts.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        let span = self
            .cfg
            .election_ticks_max
            .saturating_sub(self.cfg.election_ticks_min)
            .max(1);
        self.randomized_timeout =
            self.cfg.election_ticks_min + (self.next_rand() % span as u64) as u32;
    }

    fn campaign(&mut self, pre_vote: bool) {
        let pre_vote = pre_vote && !self.cfg.vote_without_log_check;
        if pre_vote {
            // Thesis §9.6: ask first, keep our term, so a failed attempt disturbs nobody.
            self.role = Role::PreCandidate;
            self.leader = None;
            self.reset_election_timer();
        } else {
            self.role = Role::Candidate;
            self.term += 1;
            self.vote = Some(self.cfg.id);
            self.leader = None;
            self.reset_election_timer();
        }
        self.abort_reads();
        self.progress.clear();
        self.votes.clear();
        self.votes.insert(self.cfg.id, true);
        if self.vote_quorum_reached() {
            if pre_vote {
                self.campaign(false);
            } else {
                self.become_leader();
            }
            return;
        }
        let term = if pre_vote { self.term + 1 } else { self.term };
        let (last_log_index, last_log_term) = (self.log.last_index(), self.log.last_term());
        let peers: Vec<NodeId> = self
            .members
            .keys()
            .copied()
            .filter(|&p| p != self.cfg.id)
            .collect();
        for p in peers {
            self.msgs.push(Message {
                from: self.cfg.id,
                to: p,
                term,
                body: MessageBody::RequestVote {
                    pre_vote,
                    last_log_index,
                    last_log_term,
                },
            });
        }
    }

    fn vote_quorum_reached(&self) -> bool {
        let granted = self
            .members
            .keys()
            .filter(|id| self.votes.get(id) == Some(&true))
            .count();
        granted > self.members.len() / 2
    }

    fn vote_quorum_lost(&self) -> bool {
        let rejected = self
            .members
            .keys()
            .filter(|id| self.votes.get(id) == Some(&false))
            .count();
        rejected > self.members.len() / 2
    }

    fn handle_request_vote(
        &mut self,
        from: NodeId,
        msg_term: Term,
        pre_vote: bool,
        last_log_index: Index,
        last_log_term: Term,
    ) {
        // Raft §5.2: at most one vote per term, first come first served; a follower that
        // knows the leader of this term does not vote for anyone else.
        let can_vote = self.vote == Some(from)
            || (self.vote.is_none() && self.leader.is_none())
            || (pre_vote && msg_term > self.term);
        // Raft §5.4.1: only for a candidate whose log is at least as up to date as ours.
        let up_to_date = self.cfg.vote_without_log_check
            || self.log.is_up_to_date(last_log_index, last_log_term);
        let granted = can_vote && up_to_date;
        if granted && !pre_vote {
            self.vote = Some(from);
            self.election_elapsed = 0;
        }
        let term = if pre_vote && granted {
            msg_term
        } else {
            self.term
        };
        self.msgs.push(Message {
            from: self.cfg.id,
            to: from,
            term,
            body: MessageBody::RequestVoteResponse { pre_vote, granted },
        });
    }

    fn handle_vote_response(&mut self, from: NodeId, pre_vote: bool, granted: bool) {
        let expected = match self.role {
            Role::PreCandidate => pre_vote,
            Role::Candidate => !pre_vote,
            _ => return,
        };
        if !expected {
            return;
        }
        self.votes.insert(from, granted);
        if self.vote_quorum_reached() {
            if pre_vote {
                self.campaign(false);
            } else {
                self.become_leader();
            }
        } else if self.vote_quorum_lost() {
            self.become_follower(self.term, None);
        }
    }

    fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        if self.role == Role::Leader || !self.pending_reads.is_empty() {
            self.abort_reads();
        }
        if term != self.term {
            self.term = term;
            self.vote = None;
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.progress.clear();
        self.need_broadcast = false;
        self.reset_election_timer();
    }

    /// A message from the leader of our term: make sure we are its follower.
    fn follow(&mut self, leader: NodeId) {
        if self.role != Role::Follower {
            self.become_follower(self.term, Some(leader));
        }
        self.leader = Some(leader);
        self.election_elapsed = 0;
    }

    fn become_leader(&mut self) {
        self.role = Role::Leader;
        self.leader = Some(self.cfg.id);
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.read_seq = 0;
        self.read_seq_broadcast = 0;
        self.reset_progress();
        // Raft §8: a new leader commits a blank entry of its own term; this also settles any
        // configuration entry left uncommitted by the previous leader before we may propose
        // another (pending_config_index guards that).
        self.pending_config_index = self.log.last_index() + 1;
        self.term_start_index = self.append_as_leader(EntryData::Noop);
    }

    fn reset_progress(&mut self) {
        let next = self.log.last_index() + 1;
        self.progress = self
            .members
            .keys()
            .filter(|&&id| id != self.cfg.id)
            .map(|&id| (id, Progress::new(next)))
            .collect();
    }

    fn quorum_recently_active(&self) -> bool {
        let active = self
            .members
            .keys()
            .filter(|&&id| {
                id == self.cfg.id || self.progress.get(&id).is_some_and(|p| p.recent_active)
            })
            .count();
        active > self.members.len() / 2
    }

    // ----- replication, leader side -----

    fn append_as_leader(&mut self, data: EntryData) -> Index {
        let index = self.log.last_index() + 1;
        let is_config = matches!(data, EntryData::Config(_));
        self.log.entries.push(Entry {
            term: self.term,
            index,
            data,
        });
        self.mark_unstable(index);
        if is_config {
            self.reload_members();
        }
        self.need_broadcast = true;
        self.maybe_commit();
        index
    }

    fn mark_unstable(&mut self, index: Index) {
        self.unstable_from = Some(self.unstable_from.map_or(index, |u| u.min(index)));
    }

    fn broadcast_append(&mut self) {
        let peers: Vec<NodeId> = self.progress.keys().copied().collect();
        for p in peers {
            // Keep sending while the window allows and entries remain (batches of
            // max_entries_per_msg).
            let mut guard = 0;
            while self.send_append(p, false) && guard < self.cfg.max_inflight {
                guard += 1;
            }
        }
    }

    fn broadcast_heartbeat(&mut self) {
        self.read_seq_broadcast = self.read_seq;
        let peers: Vec<(NodeId, Index)> = self
            .progress
            .iter()
            .map(|(&id, p)| (id, p.match_index))
            .collect();
        for (p, m) in peers {
            let commit = self.log.committed.min(m);
            self.send(
                p,
                MessageBody::Heartbeat {
                    commit,
                    read_seq: self.read_seq,
                },
            );
        }
    }

    fn on_heartbeat_timer(&mut self) {
        let last = self.log.last_index();
        let resend_after = self.cfg.election_ticks_max * 2;
        let hb = self.cfg.heartbeat_ticks;
        for pr in self.progress.values_mut() {
            match pr.state {
                ProgressState::Replicate => {
                    // A pipeline that made no progress for a whole heartbeat interval lost a
                    // message: fall back to probing from the match point.
                    if pr.match_index < last && pr.match_index == pr.match_at_last_heartbeat {
                        pr.become_probe();
                    }
                }
                ProgressState::Snapshot => {
                    pr.snapshot_ticks += hb;
                    if pr.snapshot_ticks >= resend_after {
                        pr.become_probe();
                    }
                }
                ProgressState::Probe => pr.probe_sent = false,
            }
            pr.match_at_last_heartbeat = pr.match_index;
        }
        self.broadcast_heartbeat();
    }

    /// Send the next AppendEntries (or the snapshot) to `to`. Returns whether a message with
    /// entries was sent and more could follow.
    fn send_append(&mut self, to: NodeId, allow_empty: bool) -> bool {
        let last = self.log.last_index();
        let committed = self.log.committed;
        let read_seq = self.read_seq;
        let max_entries = self.cfg.max_entries_per_msg;
        let max_inflight = self.cfg.max_inflight;
        let Some(pr) = self.progress.get_mut(&to) else {
            return false;
        };
        match pr.state {
            ProgressState::Snapshot => return false,
            ProgressState::Probe if pr.probe_sent => return false,
            ProgressState::Replicate if pr.inflight.len() >= max_inflight => return false,
            _ => {}
        }
        let prev = pr.next_index - 1;
        let Some(prev_term) = self.log.term(prev) else {
            // The entries the follower needs are compacted away: InstallSnapshot (§7).
            let Some(snap) = self.snapshot.clone() else {
                return false;
            };
            pr.state = ProgressState::Snapshot;
            pr.snapshot_ticks = 0;
            pr.inflight.clear();
            self.send(to, MessageBody::InstallSnapshot { snapshot: snap });
            return false;
        };
        let entries = self.log.slice(pr.next_index, last, max_entries);
        if entries.is_empty() && !allow_empty && pr.state == ProgressState::Replicate {
            return false;
        }
        let sent_entries = !entries.is_empty();
        match pr.state {
            ProgressState::Replicate => {
                if let Some(e) = entries.last() {
                    pr.next_index = e.index + 1;
                    pr.inflight.push_back(e.index);
                }
            }
            _ => pr.probe_sent = true,
        }
        let more = pr.state == ProgressState::Replicate && pr.next_index <= last;
        self.send(
            to,
            MessageBody::AppendEntries {
                prev_log_index: prev,
                prev_log_term: prev_term,
                entries,
                leader_commit: committed,
                read_seq,
            },
        );
        sent_entries && more
    }

    fn handle_append_response(
        &mut self,
        from: NodeId,
        success: bool,
        index: Index,
        conflict: Option<(Term, Index)>,
        hint_index: Index,
        read_seq: u64,
    ) {
        self.note_ack(from, read_seq);
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        if success {
            if index > pr.match_index {
                pr.match_index = index;
                pr.next_index = pr.next_index.max(index + 1);
                pr.inflight.retain(|&i| i > index);
                match pr.state {
                    ProgressState::Probe => {
                        pr.state = ProgressState::Replicate;
                        pr.inflight.clear();
                        pr.next_index = index + 1;
                    }
                    ProgressState::Snapshot => pr.become_probe(),
                    ProgressState::Replicate => {}
                }
                self.maybe_commit();
            } else if pr.state == ProgressState::Probe {
                pr.probe_sent = false;
            }
            if self.role == Role::Leader {
                let mut guard = 0;
                while self.send_append(from, false) && guard < self.cfg.max_inflight {
                    guard += 1;
                }
            }
            return;
        }
        // Rejected. Drop replies to messages we have since superseded.
        if index <= pr.match_index
            || (pr.state == ProgressState::Probe && index + 1 != pr.next_index)
            || pr.state == ProgressState::Snapshot
        {
            return;
        }
        // Fast back-up (§5.3): skip the follower's whole conflicting term at once.
        let new_next = match conflict {
            Some((term, first)) => self.log.last_index_of_term(term).map_or(first, |i| i + 1),
            None => hint_index,
        };
        let pr = self.progress.get_mut(&from).expect("checked above");
        pr.state = ProgressState::Probe;
        pr.inflight.clear();
        pr.probe_sent = false;
        pr.next_index = new_next.min(index).max(pr.match_index + 1);
        self.send_append(from, true);
    }

    fn handle_heartbeat_response(&mut self, from: NodeId, read_seq: u64) {
        self.note_ack(from, read_seq);
        let last = self.log.last_index();
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        if pr.state == ProgressState::Probe {
            pr.probe_sent = false;
        }
        if pr.match_index < last || pr.state == ProgressState::Probe {
            self.send_append(from, true);
        }
    }

    fn handle_snapshot_response(&mut self, from: NodeId, index: Index) {
        self.note_ack(from, 0);
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        if pr.state != ProgressState::Snapshot {
            return;
        }
        pr.match_index = pr.match_index.max(index);
        pr.become_probe();
        self.maybe_commit();
        if self.role == Role::Leader {
            self.send_append(from, true);
        }
    }

    fn note_ack(&mut self, from: NodeId, read_seq: u64) {
        if let Some(pr) = self.progress.get_mut(&from) {
            pr.recent_active = true;
            if read_seq > pr.acked_read_seq {
                pr.acked_read_seq = read_seq;
                self.check_reads();
            }
        }
    }

    /// Raft §5.3/§5.4.2: commit the highest index stored on a majority, but only if it is
    /// an entry of the current term; earlier entries commit with it (figure 8).
    fn maybe_commit(&mut self) {
        if self.role != Role::Leader || self.members.is_empty() {
            return;
        }
        let mut matches: Vec<Index> = self
            .members
            .keys()
            .map(|&id| {
                if id == self.cfg.id {
                    self.log.last_index()
                } else {
                    self.progress.get(&id).map_or(0, |p| p.match_index)
                }
            })
            .collect();
        matches.sort_unstable_by(|a, b| b.cmp(a));
        let candidate = matches[self.members.len() / 2];
        if candidate > self.log.committed && self.log.term(candidate) == Some(self.term) {
            self.commit_to(candidate);
        }
    }

    fn commit_to(&mut self, index: Index) {
        if index <= self.log.committed {
            return;
        }
        self.log.committed = index;
        if self.role != Role::Leader {
            return;
        }
        if self.log.committed >= self.term_start_index && !self.reads_waiting_commit.is_empty() {
            for ctx in std::mem::take(&mut self.reads_waiting_commit) {
                self.register_read(ctx);
            }
        }
        // Thesis §4.2.2: a leader removed from the configuration steps down once the change
        // is committed (it managed the cluster without counting itself until then).
        if !self.members.contains_key(&self.cfg.id)
            && self.log.committed >= self.pending_config_index
        {
            self.become_follower(self.term, None);
        }
    }

    // ----- ReadIndex -----

    fn register_read(&mut self, ctx: u64) {
        self.read_seq += 1;
        self.pending_reads.push_back(PendingRead {
            ctx,
            index: self.log.committed,
            seq: self.read_seq,
        });
        self.check_reads();
    }

    /// Release reads whose round a quorum has acknowledged (the leader counts itself if it
    /// is a member).
    fn check_reads(&mut self) {
        if self.pending_reads.is_empty() || self.members.is_empty() {
            return;
        }
        let mut acked: Vec<u64> = self
            .members
            .keys()
            .map(|&id| {
                if id == self.cfg.id {
                    u64::MAX
                } else {
                    self.progress.get(&id).map_or(0, |p| p.acked_read_seq)
                }
            })
            .collect();
        acked.sort_unstable_by(|a, b| b.cmp(a));
        let confirmed = acked[self.members.len() / 2];
        while let Some(r) = self.pending_reads.front() {
            if r.seq > confirmed {
                break;
            }
            self.ready_reads.push(ReadState {
                ctx: r.ctx,
                index: r.index,
            });
            self.pending_reads.pop_front();
        }
    }

    fn abort_reads(&mut self) {
        self.aborted_reads
            .extend(self.pending_reads.drain(..).map(|r| r.ctx));
        self.aborted_reads.append(&mut self.reads_waiting_commit);
    }

    // ----- replication, follower side -----

    fn handle_append(
        &mut self,
        from: NodeId,
        prev_log_index: Index,
        prev_log_term: Term,
        entries: Vec<Entry>,
        leader_commit: Index,
        read_seq: u64,
    ) {
        if prev_log_index < self.log.committed {
            // Everything up to our commit index already matches the leader (§5.4).
            let index = self.log.committed;
            self.reply_append(from, true, index, None, 0, read_seq);
            return;
        }
        if self.log.term(prev_log_index) != Some(prev_log_term) {
            // Consistency check failed (§5.3): tell the leader where to back up to.
            let (conflict, hint) = if prev_log_index > self.log.last_index() {
                (None, self.log.last_index() + 1)
            } else {
                let term = self.log.term(prev_log_index).unwrap_or(0);
                let first = self.log.first_index_of_term_at(prev_log_index);
                (Some((term, first)), first)
            };
            self.reply_append(from, false, prev_log_index, conflict, hint, read_seq);
            return;
        }
        let last_new = prev_log_index + entries.len() as Index;
        let mut config_touched = false;
        let mut start = entries.len();
        for (i, e) in entries.iter().enumerate() {
            match self.log.term(e.index) {
                Some(t) if t == e.term => continue,
                Some(_) => {
                    // Conflict: delete the existing entry and all that follow it (§5.3).
                    if e.index <= self.log.committed {
                        // Only possible under a bug switch; count it, never crash.
                        self.committed_overwrites += 1;
                        self.log.committed = e.index - 1;
                        self.log.handed_out = self.log.handed_out.min(e.index - 1);
                    }
                    config_touched |= self
                        .log
                        .entries
                        .iter()
                        .any(|x| x.index >= e.index && matches!(x.data, EntryData::Config(_)));
                    self.log.truncate_from(e.index);
                    start = i;
                    break;
                }
                None => {
                    start = i;
                    break;
                }
            }
        }
        for e in entries.into_iter().skip(start) {
            if e.index != self.log.last_index() + 1 {
                break;
            }
            config_touched |= matches!(e.data, EntryData::Config(_));
            self.mark_unstable(e.index);
            self.log.entries.push(e);
        }
        if config_touched {
            self.reload_members();
        }
        self.commit_to(leader_commit.min(last_new));
        self.reply_append(from, true, last_new, None, 0, read_seq);
    }

    fn reply_append(
        &mut self,
        to: NodeId,
        success: bool,
        index: Index,
        conflict: Option<(Term, Index)>,
        hint_index: Index,
        read_seq: u64,
    ) {
        self.send(
            to,
            MessageBody::AppendEntriesResponse {
                success,
                index,
                conflict,
                hint_index,
                read_seq,
            },
        );
    }

    fn handle_snapshot(&mut self, from: NodeId, snap: Snapshot) {
        let index = snap.last_index;
        if index <= self.log.committed {
            let committed = self.log.committed;
            self.send(
                from,
                MessageBody::InstallSnapshotResponse { index: committed },
            );
            return;
        }
        if self.log.term(index) == Some(snap.last_term) {
            // We already hold that prefix: just learn that it is committed.
            self.commit_to(index);
        } else {
            // §7: discard the entire log; the snapshot supersedes it.
            self.log = RaftLog::new(index, snap.last_term, Vec::new());
            self.base_members = snap.members.clone();
            self.unstable_from = None;
            self.snapshot = Some(snap.clone());
            self.pending_snapshot = Some(snap);
            self.reload_members();
        }
        self.send(from, MessageBody::InstallSnapshotResponse { index });
    }

    // ----- helpers -----

    fn reload_members(&mut self) {
        self.members = self
            .log
            .last_config_at_or_below(self.log.last_index())
            .map(|(_, m)| m)
            .unwrap_or_else(|| self.base_members.clone());
        if self.role == Role::Leader {
            let next = self.log.last_index() + 1;
            let me = self.cfg.id;
            self.progress.retain(|id, _| self.members.contains_key(id));
            for &id in self.members.keys() {
                if id != me {
                    self.progress
                        .entry(id)
                        .or_insert_with(|| Progress::new(next));
                }
            }
        }
    }

    fn send(&mut self, to: NodeId, body: MessageBody) {
        self.msgs.push(Message {
            from: self.cfg.id,
            to,
            term: self.term,
            body,
        });
    }
}

/// The voters of a configuration, for callers that need a set.
pub fn voters(members: &Members) -> BTreeSet<NodeId> {
    members.keys().copied().collect()
}
