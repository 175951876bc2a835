//! The runtime around the pure core: one OS thread owns the [`Raft`] core, the [`Storage`]
//! and the [`Kv`] state machine, takes events (peer messages, client requests, ticks) from a
//! channel, and carries out each [`crate::raft::Ready`]: persist, send, apply, answer.
//!
//! A dedicated thread rather than a tokio task, because fsync blocks and nothing here awaits;
//! HTTP handlers talk to it over a channel and wait on a oneshot for the answer.
//!
//! Client requests wait for commit and apply (writes) or for a ReadIndex confirmation and
//! apply (reads). A request whose fate becomes unknown (leadership lost, timeout) gets
//! [`Reply::Unavailable`] (HTTP 503), never a false success.

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::config::{Bug, Plan};
use crate::kv::{Command, Kv, Outcome, Value};
use crate::raft::{
    Config, ConfigChange, EntryData, Index, Members, Message, MessageBody, NodeId, ProposeError,
    Raft, Ready, Restore, Role, Term,
};
use crate::storage::{Loaded, Storage};

/// What a client request ended with; the HTTP layer maps it to a status code.
#[derive(Debug)]
pub enum Reply {
    /// 200 with a value (reads).
    Value(Option<Value>),
    /// 200 (writes, admin).
    Done,
    /// 409: cas precondition failed (or append to a register); carries the current value.
    Mismatch(Option<Value>),
    /// 421: this server is not the leader.
    NotLeader {
        /// Known leader, if any.
        leader: Option<NodeId>,
        /// Its address, if known.
        addr: Option<String>,
    },
    /// 503: the outcome is unknown or the request cannot be served now.
    Unavailable(String),
    /// 400: the request can never succeed.
    Invalid(String),
}

/// The body of `GET /status`.
#[derive(Clone, Debug, Serialize)]
pub struct StatusBody {
    /// This server's `--id`, the number `--peers` and the admin API use for it.
    pub id: NodeId,
    /// follower | precandidate | candidate | leader.
    pub role: &'static str,
    /// This server's current term, whatever its role. It is persisted before it is used, so it
    /// never goes back, even across a restart; the `forget-vote` bug breaks that, and raftcheck's
    /// term-monotonicity check catches it.
    pub term: Term,
    /// Known leader of the current term.
    pub leader: Option<NodeId>,
    /// Highest index this server knows committed; volatile, so after a restart it starts at the
    /// snapshot's index until the leader says more.
    pub commit_index: Index,
    /// Highest index applied to the state machine.
    pub last_applied: Index,
    /// Index of the last entry in this server's log, committed or not (the snapshot's index when no
    /// entry follows it).
    pub last_index: Index,
    /// Index covered by the latest snapshot.
    pub snapshot_index: Index,
    /// The configuration in force on this server: the latest one in its log, committed or not
    /// (thesis §4.1).
    pub members: Vec<MemberBody>,
    /// Active bug switch, if any.
    pub bug: Option<String>,
}

/// One member in `/status` and the admin API.
#[derive(Clone, Debug, Serialize)]
pub struct MemberBody {
    /// The member's server id, as `--id` gives it.
    pub id: NodeId,
    /// Where the member serves both the client API and peer RPC, `host:port`, as `--peers` or
    /// `/admin/add` gave it.
    pub addr: String,
}

/// Something for the node thread to handle.
pub enum Event {
    /// A batch of Raft messages one peer POSTed to `/raft/msgs`, stepped into the core in order.
    Peer(Vec<Message>),
    /// Put / cas / append.
    Write(Command, oneshot::Sender<Reply>),
    /// Read a key: answered once a ReadIndex round has confirmed leadership and the read index is
    /// applied (unless a read bug switch is on).
    Read(String, oneshot::Sender<Reply>),
    /// Add or remove a member; answered once the change's entry is applied.
    Config(ConfigChange, oneshot::Sender<Reply>),
    /// `GET /status`: answered at once from the thread's current state, without a Raft round.
    Status(oneshot::Sender<StatusBody>),
}

/// A client write waiting for its entry to be applied.
struct Waiter {
    /// Term the entry was proposed in: a different term at that index means it was lost.
    term: Term,
    /// Where to answer; `None` once answered early (ack-before-commit bug).
    reply: Option<oneshot::Sender<Reply>>,
    /// Answer as soon as the entry is durable on the leader (the ack-before-commit bug).
    ack_early: bool,
}

/// The node thread's state.
pub struct Node {
    /// The validated command line: id, peers, timings, bug switch.
    plan: Plan,
    /// The pure consensus core; only this thread steps it and carries out each Ready it produces.
    raft: Raft,
    /// The wal and snapshot in the data dir; a Ready's state is fsynced here before its votes and
    /// replies go out.
    storage: Storage,
    /// The state machine, fed committed entries in log order; restored from the snapshot at start.
    kv: Kv,
    /// Highest index applied to `kv`.
    last_applied: Index,
    /// Where each known server is reachable: --peers plus every configuration seen.
    addrs: Members,
    /// One outgoing queue per peer, drained by a sender task.
    outboxes: HashMap<NodeId, (String, mpsc::UnboundedSender<Vec<Message>>)>,
    /// Runtime to spawn peer sender tasks on.
    rt: tokio::runtime::Handle,
    /// Shared HTTP client for peer RPC (keeps connections alive).
    client: reqwest::Client,
    /// Writes and config changes awaiting apply, by log index.
    waiters: BTreeMap<Index, Waiter>,
    /// Reads awaiting leadership confirmation, by ctx.
    reads: HashMap<u64, (String, oneshot::Sender<Reply>)>,
    /// Confirmed reads awaiting apply of their read index.
    confirmed_reads: Vec<(Index, String, oneshot::Sender<Reply>)>,
    /// The ctx the next ReadIndex request gets, matching its confirmation to its entry in `reads`;
    /// counts up from 1.
    next_ctx: u64,
    /// (role, term, leader) last logged, to log every change once.
    last_seen: (Role, Term, Option<NodeId>),
}

impl Node {
    /// Build the node from the loaded durable state.
    pub fn new(plan: Plan, storage: Storage, loaded: Loaded, rt: tokio::runtime::Handle) -> Self {
        let mut cfg = Config::new(plan.id, seed_from_clock(plan.id));
        cfg.election_ticks_min = plan.election_ticks.0;
        cfg.election_ticks_max = plan.election_ticks.1;
        cfg.heartbeat_ticks = plan.heartbeat_ticks;
        cfg.max_entries_per_msg = 1024;
        cfg.max_inflight = 256;
        match plan.bug {
            Some(Bug::VoteWithoutLogCheck) => {
                cfg.vote_without_log_check = true;
                cfg.pre_vote = false;
                cfg.leader_stickiness = false;
            }
            Some(Bug::LeaderLocalRead) => cfg.check_quorum = false,
            // Pre-vote keeps a node's term from rising without a leader's entry soon after, so
            // a restart would almost never send the term back: it masks forgotten terms.
            Some(Bug::ForgetVote) => cfg.pre_vote = false,
            _ => {}
        }
        let (kv, last_applied) = match &loaded.snapshot {
            Some(s) => match Kv::from_snapshot(&s.data) {
                Ok(kv) => (kv, s.last_index),
                Err(e) => {
                    // Storage checked the CRC, so this is a format bug; refuse loudly.
                    tracing::error!("snapshot state does not decode: {e}");
                    std::process::exit(1);
                }
            },
            None => (Kv::default(), 0),
        };
        let mut addrs = plan.peers.clone();
        if let Some(s) = &loaded.snapshot {
            addrs.extend(s.members.clone());
        }
        let restore = Restore {
            hard_state: loaded.hard_state,
            snapshot: loaded.snapshot,
            entries: loaded.entries,
            bootstrap: plan.bootstrap.clone(),
        };
        let raft = Raft::new(cfg, restore);
        addrs.extend(raft.members().clone());
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(4)
            .tcp_nodelay(true)
            .build()
            .expect("reqwest client builds");
        Node {
            plan,
            raft,
            storage,
            kv,
            last_applied,
            addrs,
            outboxes: HashMap::new(),
            rt,
            client,
            waiters: BTreeMap::new(),
            reads: HashMap::new(),
            confirmed_reads: Vec::new(),
            next_ctx: 1,
            last_seen: (Role::Follower, 0, None),
        }
    }

    /// The event loop: runs until every sender of `rx` is gone.
    pub fn run(mut self, rx: Receiver<Event>) {
        let tick = Duration::from_millis(self.plan.tick_ms);
        let mut next_tick = Instant::now() + tick;
        tracing::info!(
            id = self.plan.id,
            term = self.raft.term(),
            last_index = self.raft.last_index(),
            members = ?self.raft.members().keys().collect::<Vec<_>>(),
            "node started"
        );
        loop {
            let now = Instant::now();
            let wait = next_tick.saturating_duration_since(now);
            match rx.recv_timeout(wait) {
                Ok(ev) => {
                    self.handle(ev);
                    // Batch: take whatever else is already queued (bounded), so one fsync
                    // and one message per peer cover many requests.
                    for _ in 0..4096 {
                        match rx.try_recv() {
                            Ok(ev) => self.handle(ev),
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            let now = Instant::now();
            let mut ticks = 0;
            while now >= next_tick && ticks < 10 {
                self.raft.tick();
                next_tick += tick;
                ticks += 1;
            }
            if now >= next_tick {
                next_tick = now + tick;
            }
            self.process_ready();
        }
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::Peer(msgs) => {
                for m in msgs {
                    self.raft.step(m);
                }
            }
            Event::Write(cmd, reply) => self.write(cmd, reply),
            Event::Read(key, reply) => self.read(key, reply),
            Event::Config(change, reply) => self.config(change, reply),
            Event::Status(reply) => {
                let _ = reply.send(self.status());
            }
        }
    }

    fn not_leader(&self) -> Reply {
        let leader = self.raft.leader().filter(|&l| l != self.plan.id);
        Reply::NotLeader {
            leader,
            addr: leader.and_then(|l| self.addrs.get(&l).cloned()),
        }
    }

    fn write(&mut self, cmd: Command, reply: oneshot::Sender<Reply>) {
        let ack_early = self.plan.bug == Some(Bug::AckBeforeCommit) && !cmd.is_conditional();
        let data = serde_json::to_string(&cmd).expect("Command always serializes");
        match self.raft.propose(data) {
            Ok((index, term)) => {
                self.waiters.insert(
                    index,
                    Waiter {
                        term,
                        reply: Some(reply),
                        ack_early,
                    },
                );
            }
            Err(_) => {
                let _ = reply.send(self.not_leader());
            }
        }
    }

    fn read(&mut self, key: String, reply: oneshot::Sender<Reply>) {
        match self.plan.bug {
            Some(Bug::StaleRead) => {
                let _ = reply.send(Reply::Value(self.kv.get(&key).cloned()));
                return;
            }
            Some(Bug::LeaderLocalRead) if self.raft.role() == Role::Leader => {
                let _ = reply.send(Reply::Value(self.kv.get(&key).cloned()));
                return;
            }
            _ => {}
        }
        let ctx = self.next_ctx;
        self.next_ctx += 1;
        match self.raft.read_index(ctx) {
            Ok(()) => {
                self.reads.insert(ctx, (key, reply));
            }
            Err(_) => {
                let _ = reply.send(self.not_leader());
            }
        }
    }

    fn config(&mut self, change: ConfigChange, reply: oneshot::Sender<Reply>) {
        if let ConfigChange::Add(id, addr) = &change {
            self.addrs.insert(*id, addr.clone());
        }
        match self.raft.propose_config(change) {
            Ok((index, term)) => {
                self.waiters.insert(
                    index,
                    Waiter {
                        term,
                        reply: Some(reply),
                        ack_early: false,
                    },
                );
            }
            Err(ProposeError::NotLeader) => {
                let _ = reply.send(self.not_leader());
            }
            Err(e @ (ProposeError::NotReady | ProposeError::ConfigChangeInProgress)) => {
                let _ = reply.send(Reply::Unavailable(e.to_string()));
            }
            Err(e @ ProposeError::InvalidConfigChange(_)) => {
                let _ = reply.send(Reply::Invalid(e.to_string()));
            }
        }
    }

    fn status(&self) -> StatusBody {
        let s = self.raft.status();
        StatusBody {
            id: s.id,
            role: s.role.as_str(),
            term: s.term,
            leader: s.leader,
            commit_index: s.commit_index,
            last_applied: self.last_applied,
            last_index: s.last_index,
            snapshot_index: self.raft.snapshot_index(),
            members: s
                .members
                .into_iter()
                .map(|(id, addr)| MemberBody { id, addr })
                .collect(),
            bug: self.plan.bug.map(|b| format!("{b:?}")),
        }
    }

    fn process_ready(&mut self) {
        for _ in 0..100 {
            let rd = self.raft.take_ready();
            if rd.is_empty() {
                break;
            }
            self.handle_ready(rd);
        }
        let seen = (self.raft.role(), self.raft.term(), self.raft.leader());
        if seen != self.last_seen {
            tracing::info!(role = seen.0.as_str(), term = seen.1, leader = ?seen.2, "raft state");
            self.last_seen = seen;
        }
        if self.raft.role() != Role::Leader && !self.waiters.is_empty() {
            // We may never learn whether these commit: unknown, not failed.
            for (_, w) in std::mem::take(&mut self.waiters) {
                if let Some(r) = w.reply {
                    let _ = r.send(Reply::Unavailable(
                        "leadership lost; outcome unknown".into(),
                    ));
                }
            }
        }
    }

    fn handle_ready(&mut self, rd: Ready) {
        // Thesis §10.2.1: the leader may send AppendEntries before its own fsync; it counts
        // itself towards commit only through responses, which this thread handles after the
        // fsync below returns. Everything else (votes, replies) waits for the disk.
        let (early, late): (Vec<Message>, Vec<Message>) =
            rd.messages.iter().cloned().partition(|m| {
                matches!(
                    m.body,
                    MessageBody::AppendEntries { .. } | MessageBody::Heartbeat { .. }
                )
            });
        // Only a leader produces these, with a term that was made durable when it campaigned.
        self.send(early);
        // 1. Persist.
        if let Err(e) = self.storage.persist(&rd) {
            tracing::error!("cannot persist raft state, stopping: {e}");
            std::process::exit(1);
        }
        if self.plan.bug == Some(Bug::AckBeforeCommit) && !rd.entries.is_empty() {
            let last = rd.entries.last().map_or(0, |e| e.index);
            for (_, w) in self.waiters.range_mut(..=last) {
                if w.ack_early {
                    if let Some(r) = w.reply.take() {
                        let _ = r.send(Reply::Done);
                    }
                }
            }
        }
        // 2. Send.
        self.send(late);
        // 3. Apply.
        if let Some(snap) = &rd.snapshot {
            match Kv::from_snapshot(&snap.data) {
                Ok(kv) => {
                    self.kv = kv;
                    self.last_applied = snap.last_index;
                    self.addrs.extend(snap.members.clone());
                    tracing::info!(index = snap.last_index, "installed snapshot from leader");
                }
                Err(e) => {
                    tracing::error!("snapshot from leader does not decode: {e}");
                    std::process::exit(1);
                }
            }
            let stale: Vec<Index> = self
                .waiters
                .range(..=snap.last_index)
                .map(|(&i, _)| i)
                .collect();
            for i in stale {
                if let Some(Waiter { reply: Some(r), .. }) = self.waiters.remove(&i) {
                    let _ = r.send(Reply::Unavailable("outcome unknown".into()));
                }
            }
        }
        for e in rd.committed {
            if e.index <= self.last_applied && self.raft.committed_overwrites == 0 {
                continue;
            }
            let outcome = match e.data {
                EntryData::Command(data) => match serde_json::from_str::<Command>(&data) {
                    Ok(cmd) => self.kv.apply(cmd),
                    Err(err) => {
                        tracing::error!(index = e.index, "undecodable command skipped: {err}");
                        Outcome::Ok
                    }
                },
                EntryData::Config(members) => {
                    tracing::info!(index = e.index, members = ?members.keys().collect::<Vec<_>>(), "configuration committed");
                    self.addrs.extend(members);
                    Outcome::Ok
                }
                EntryData::Noop => Outcome::Ok,
            };
            self.last_applied = e.index;
            if let Some(w) = self.waiters.remove(&e.index) {
                if let Some(r) = w.reply {
                    let reply = if w.term != e.term {
                        Reply::Unavailable("entry was overwritten by a new leader".into())
                    } else {
                        match outcome {
                            Outcome::Ok => Reply::Done,
                            Outcome::Mismatch(v) => Reply::Mismatch(v),
                        }
                    };
                    let _ = r.send(reply);
                }
            }
        }
        // 4. Reads.
        for rs in rd.read_states {
            if let Some((key, reply)) = self.reads.remove(&rs.ctx) {
                self.confirmed_reads.push((rs.index, key, reply));
            }
        }
        for ctx in rd.aborted_reads {
            if let Some((_, reply)) = self.reads.remove(&ctx) {
                let _ = reply.send(Reply::Unavailable(
                    "leadership lost before the read was confirmed".into(),
                ));
            }
        }
        if !self.confirmed_reads.is_empty() {
            let applied = self.last_applied;
            let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.confirmed_reads)
                .into_iter()
                .partition(|(i, _, _)| *i <= applied);
            self.confirmed_reads = later;
            for (_, key, reply) in now {
                let _ = reply.send(Reply::Value(self.kv.get(&key).cloned()));
            }
        }
        // 5. Compact.
        if self.last_applied >= self.raft.snapshot_index() + self.plan.snapshot_threshold {
            if let Some(snap) = self.raft.compact(self.last_applied, self.kv.to_snapshot()) {
                let rest = self.raft.entries_from(snap.last_index + 1);
                if let Err(e) = self.storage.compact(&snap, &rest) {
                    tracing::error!("cannot write snapshot, stopping: {e}");
                    std::process::exit(1);
                }
                tracing::info!(index = snap.last_index, "snapshot taken, log compacted");
            }
        }
    }

    fn send(&mut self, msgs: Vec<Message>) {
        let mut by_peer: BTreeMap<NodeId, Vec<Message>> = BTreeMap::new();
        for m in msgs {
            by_peer.entry(m.to).or_default().push(m);
        }
        for (to, batch) in by_peer {
            let Some(addr) = self.addrs.get(&to).cloned() else {
                tracing::warn!(to, "no address for peer; message dropped");
                continue;
            };
            let fresh = match self.outboxes.get(&to) {
                Some((a, tx)) if *a == addr && !tx.is_closed() => None,
                _ => Some(addr.clone()),
            };
            if let Some(addr) = fresh {
                let (tx, rx) = mpsc::unbounded_channel();
                self.rt
                    .spawn(peer_sender(self.client.clone(), addr.clone(), rx));
                self.outboxes.insert(to, (addr, tx));
            }
            if let Some((_, tx)) = self.outboxes.get(&to) {
                let _ = tx.send(batch);
            }
        }
    }
}

/// Deliver batches to one peer, one HTTP request at a time (which preserves order and
/// batches whatever queued up meanwhile). Failures drop the batch: Raft tolerates loss.
async fn peer_sender(
    client: reqwest::Client,
    addr: String,
    mut rx: mpsc::UnboundedReceiver<Vec<Message>>,
) {
    let url = format!("http://{addr}/raft/msgs");
    let mut failures = 0u32;
    while let Some(mut batch) = rx.recv().await {
        while batch.len() < 8192 {
            match rx.try_recv() {
                Ok(more) => batch.extend(more),
                Err(_) => break,
            }
        }
        let res = client
            .post(&url)
            .json(&batch)
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        match res {
            Ok(r) if r.status().is_success() => failures = 0,
            other => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(100) {
                    match other {
                        Ok(r) => tracing::debug!(%addr, status = %r.status(), "peer refused batch"),
                        Err(e) => tracing::debug!(%addr, "peer unreachable: {e}"),
                    }
                }
                // Back off a little so a dead peer does not spin this task.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

fn seed_from_clock(id: NodeId) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ id.rotate_left(32)
}

/// Start the node thread; returns the channel to feed it.
pub fn spawn(node: Node) -> Sender<Event> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("raft-node".into())
        .spawn(move || node.run(rx))
        .expect("spawn node thread");
    tx
}
