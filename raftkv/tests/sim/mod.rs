//! A deterministic simulator for the pure Raft core: a seeded network with loss, duplication,
//! delay (hence reordering) and partitions, crashes that lose everything but the simulated
//! disk, and invariant checks after every step (Raft figure 3's safety properties).
//!
//! Shared by the randomized tests and the paper-scenario tests.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use raftkv::raft::{
    Config, Entry, EntryData, HardState, Index, Members, Message, MessageBody, NodeId, Raft, Ready,
    Restore, Role, Snapshot, Term,
};

/// A tiny seeded generator (SplitMix64) so the simulator needs no crate.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0xD1B5_4A32_D192_ED03)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// What a node has on its simulated disk: survives crashes.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    pub hard_state: HardState,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
}

impl Disk {
    fn persist(&mut self, rd: &Ready) {
        if let Some(s) = &rd.snapshot {
            self.snapshot = Some(s.clone());
            self.entries.clear();
        }
        if let Some(hs) = &rd.hard_state {
            self.hard_state = hs.clone();
        }
        if let Some(from) = rd.truncate_from {
            self.entries.retain(|e| e.index < from);
        }
        self.entries.extend(rd.entries.iter().cloned());
        for w in self.entries.windows(2) {
            assert_eq!(w[0].index + 1, w[1].index, "disk log must be contiguous");
        }
    }
}

/// The simulated state machine: a hash chain over applied entries, so two replicas agree on
/// their state iff they applied the same sequence.
#[derive(Clone, Debug, Default)]
pub struct StateMachine {
    pub applied: Index,
    pub digest: u64,
}

fn mix(digest: u64, e: &Entry) -> u64 {
    let mut h = digest ^ 0xcbf2_9ce4_8422_2325;
    let data = format!("{}:{}:{:?}", e.index, e.term, e.data);
    for b in data.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// One simulated server.
pub struct Node {
    pub cfg: Config,
    pub raft: Option<Raft>,
    pub disk: Disk,
    pub sm: StateMachine,
    pub bootstrap: Members,
}

/// Knobs of a randomized run.
#[derive(Clone, Debug)]
pub struct Faults {
    pub loss: f64,
    pub duplicate: f64,
    pub max_delay: u64,
    pub crash: f64,
    pub partition: f64,
    pub propose: f64,
    pub read: f64,
    pub membership: f64,
    pub snapshot_threshold: u64,
    /// Turn on the core's `vote_without_log_check` bug switch (to prove the checks bite).
    pub vote_bug: bool,
}

impl Faults {
    pub fn none() -> Self {
        Faults {
            loss: 0.0,
            duplicate: 0.0,
            max_delay: 1,
            crash: 0.0,
            partition: 0.0,
            propose: 0.0,
            read: 0.0,
            membership: 0.0,
            snapshot_threshold: 1_000_000,
            vote_bug: false,
        }
    }
    pub fn chaos() -> Self {
        Faults {
            loss: 0.05,
            duplicate: 0.02,
            max_delay: 4,
            crash: 0.002,
            partition: 0.004,
            propose: 0.3,
            read: 0.1,
            membership: 0.0,
            snapshot_threshold: 40,
            vote_bug: false,
        }
    }
}

struct Flight {
    at: u64,
    msg: Message,
}

/// The whole simulated cluster plus the global records the invariants are checked against.
pub struct Sim {
    pub rng: Rng,
    pub time: u64,
    pub nodes: BTreeMap<NodeId, Node>,
    flights: Vec<Flight>,
    /// Pairs (from, to) whose messages are dropped.
    pub blocked: BTreeSet<(NodeId, NodeId)>,
    pub faults: Faults,
    /// When set, messages are queued but only delivered by the test itself.
    pub manual: bool,
    /// Every entry applied anywhere, by index: state machine safety is checked against it.
    pub applied: BTreeMap<Index, Entry>,
    /// State-machine digest after applying each index.
    pub digests: BTreeMap<Index, u64>,
    /// Leader of each term ever observed: election safety.
    pub leaders: BTreeMap<Term, NodeId>,
    /// Outstanding reads: ctx → highest index known committed when the read was issued.
    reads: BTreeMap<u64, Index>,
    next_ctx: u64,
    /// Proposals: (index, term) → ctx. Acknowledged ones are recorded in `acked`.
    proposals: BTreeMap<(Index, Term), u64>,
    pub acked: BTreeMap<u64, Index>,
    pub completed_reads: u64,
    pub rejections: BTreeMap<NodeId, u64>,
    partition_until: u64,
    restart_at: BTreeMap<NodeId, u64>,
    pub stats: BTreeMap<&'static str, u64>,
}

impl Sim {
    /// A cluster whose initial members are `ids`, plus `spares` that start with no
    /// configuration (they join through membership changes).
    pub fn new(seed: u64, ids: &[NodeId], spares: &[NodeId], faults: Faults) -> Self {
        let members: Members = ids.iter().map(|&i| (i, format!("n{i}"))).collect();
        let mut nodes = BTreeMap::new();
        for &id in ids.iter().chain(spares) {
            let mut cfg = Config::new(id, seed);
            cfg.max_entries_per_msg = 16;
            cfg.max_inflight = 8;
            if faults.vote_bug {
                cfg.vote_without_log_check = true;
                cfg.pre_vote = false;
                cfg.leader_stickiness = false;
            }
            let bootstrap = if ids.contains(&id) {
                members.clone()
            } else {
                Members::new()
            };
            let raft = Raft::new(
                cfg.clone(),
                Restore {
                    bootstrap: bootstrap.clone(),
                    ..Default::default()
                },
            );
            nodes.insert(
                id,
                Node {
                    cfg,
                    raft: Some(raft),
                    disk: Disk::default(),
                    sm: Default::default(),
                    bootstrap,
                },
            );
        }
        Sim {
            rng: Rng::new(seed),
            time: 0,
            nodes,
            flights: Vec::new(),
            blocked: BTreeSet::new(),
            faults,
            manual: false,
            applied: BTreeMap::new(),
            digests: BTreeMap::new(),
            leaders: BTreeMap::new(),
            reads: BTreeMap::new(),
            next_ctx: 1,
            proposals: BTreeMap::new(),
            acked: BTreeMap::new(),
            completed_reads: 0,
            rejections: BTreeMap::new(),
            partition_until: 0,
            restart_at: BTreeMap::new(),
            stats: BTreeMap::new(),
        }
    }

    /// A node restored from a hand-made persisted state (for the paper's figures).
    pub fn set_state(&mut self, id: NodeId, hard_state: HardState, terms: &[Term], cfg: Config) {
        let node = self.nodes.get_mut(&id).expect("node exists");
        let entries: Vec<Entry> = terms
            .iter()
            .enumerate()
            .map(|(i, &t)| Entry {
                term: t,
                index: i as Index + 1,
                data: EntryData::Command(format!("fig-{}-{}", i + 1, t)),
            })
            .collect();
        node.disk = Disk {
            hard_state: hard_state.clone(),
            snapshot: None,
            entries: entries.clone(),
        };
        node.cfg = cfg.clone();
        node.raft = Some(Raft::new(
            cfg,
            Restore {
                hard_state,
                snapshot: None,
                entries,
                bootstrap: node.bootstrap.clone(),
            },
        ));
        node.sm = StateMachine::default();
    }

    pub fn raft(&self, id: NodeId) -> &Raft {
        self.nodes[&id].raft.as_ref().expect("node is up")
    }

    pub fn raft_mut(&mut self, id: NodeId) -> &mut Raft {
        self.nodes
            .get_mut(&id)
            .and_then(|n| n.raft.as_mut())
            .expect("node is up")
    }

    pub fn terms(&self, id: NodeId) -> Vec<Term> {
        let r = self.raft(id);
        (1..=r.last_index())
            .map(|i| r.term_at(i).unwrap_or(0))
            .collect()
    }

    pub fn leader(&self) -> Option<NodeId> {
        let mut best: Option<(Term, NodeId)> = None;
        for (&id, n) in &self.nodes {
            if let Some(r) = &n.raft {
                if r.role() == Role::Leader && best.is_none_or(|(t, _)| r.term() > t) {
                    best = Some((r.term(), id));
                }
            }
        }
        best.map(|(_, id)| id)
    }

    pub fn crash(&mut self, id: NodeId) {
        if let Some(n) = self.nodes.get_mut(&id) {
            n.raft = None;
        }
        *self.stats.entry("crash").or_default() += 1;
    }

    pub fn restart(&mut self, id: NodeId) {
        let n = self.nodes.get_mut(&id).expect("node exists");
        if n.raft.is_some() {
            return;
        }
        let restore = Restore {
            hard_state: n.disk.hard_state.clone(),
            snapshot: n.disk.snapshot.clone(),
            entries: n.disk.entries.clone(),
            bootstrap: n.bootstrap.clone(),
        };
        n.raft = Some(Raft::new(n.cfg.clone(), restore));
        n.sm = match &n.disk.snapshot {
            Some(s) => StateMachine {
                applied: s.last_index,
                digest: s.data.parse().expect("digest"),
            },
            None => StateMachine::default(),
        };
        self.process(id);
    }

    /// Put a message on the wire, subject to loss, duplication and delay.
    fn send(&mut self, msg: Message) {
        *self.stats.entry(msg.body.kind()).or_default() += 1;
        if !self.manual && self.rng.chance(self.faults.loss) {
            return;
        }
        let copies = if !self.manual && self.rng.chance(self.faults.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let at = self.time + 1 + self.rng.below(self.faults.max_delay);
            self.flights.push(Flight {
                at,
                msg: msg.clone(),
            });
        }
    }

    /// Messages queued and not yet delivered (manual mode).
    pub fn queued(&self) -> Vec<Message> {
        self.flights.iter().map(|f| f.msg.clone()).collect()
    }

    /// Deliver (manual mode) every queued message matching `pred`, dropping those that
    /// match `drop`; repeat until nothing matches. Returns the number delivered.
    pub fn deliver_where(&mut self, pred: impl Fn(&Message) -> bool, max_rounds: usize) -> usize {
        let mut n = 0;
        for _ in 0..max_rounds {
            let (now, later): (Vec<Flight>, Vec<Flight>) = std::mem::take(&mut self.flights)
                .into_iter()
                .partition(|f| pred(&f.msg));
            self.flights = later;
            if now.is_empty() {
                break;
            }
            for f in now {
                n += 1;
                self.deliver(f.msg);
            }
        }
        n
    }

    /// Drop every queued message matching `pred`.
    pub fn drop_where(&mut self, pred: impl Fn(&Message) -> bool) {
        self.flights.retain(|f| !pred(&f.msg));
    }

    pub fn inject(&mut self, msg: Message) {
        self.deliver(msg);
    }

    fn deliver(&mut self, msg: Message) {
        if self.blocked.contains(&(msg.from, msg.to)) {
            return;
        }
        if let MessageBody::AppendEntriesResponse { success: false, .. } = msg.body {
            *self.rejections.entry(msg.from).or_default() += 1;
        }
        let to = msg.to;
        let Some(r) = self.nodes.get_mut(&to).and_then(|n| n.raft.as_mut()) else {
            return;
        };
        r.step(msg);
        self.process(to);
    }

    pub fn tick(&mut self, id: NodeId) {
        if let Some(r) = self.nodes.get_mut(&id).and_then(|n| n.raft.as_mut()) {
            r.tick();
            self.process(id);
        }
    }

    /// Propose a command on `id`; returns the ctx used to track its acknowledgement.
    pub fn propose(&mut self, id: NodeId) -> Option<u64> {
        let ctx = self.next_ctx;
        self.next_ctx += 1;
        let r = self.nodes.get_mut(&id)?.raft.as_mut()?;
        let (index, term) = r.propose(format!("cmd-{ctx}")).ok()?;
        self.proposals.insert((index, term), ctx);
        self.process(id);
        Some(ctx)
    }

    pub fn read(&mut self, id: NodeId) {
        let ctx = self.next_ctx;
        self.next_ctx += 1;
        let known = self.applied.keys().next_back().copied().unwrap_or(0);
        let Some(r) = self.nodes.get_mut(&id).and_then(|n| n.raft.as_mut()) else {
            return;
        };
        if r.read_index(ctx).is_ok() {
            self.reads.insert(ctx, known);
            self.process(id);
        }
    }

    /// Run the Ready protocol for one node: persist, then send, then apply.
    pub fn process(&mut self, id: NodeId) {
        for _ in 0..100 {
            let Some(node) = self.nodes.get_mut(&id) else {
                return;
            };
            let Some(raft) = node.raft.as_mut() else {
                return;
            };
            let rd = raft.take_ready();
            if rd.is_empty() {
                break;
            }
            // 1. persist
            node.disk.persist(&rd);
            // 3. apply (done before sending here only to keep borrows simple; the messages
            //    were produced before applying and do not depend on it)
            if let Some(s) = &rd.snapshot {
                let digest: u64 = s.data.parse().expect("digest");
                if let Some(&d) = self.digests.get(&s.last_index) {
                    assert_eq!(
                        d, digest,
                        "state machine safety: snapshot at {} differs",
                        s.last_index
                    );
                }
                node.sm = StateMachine {
                    applied: s.last_index,
                    digest,
                };
            }
            for e in &rd.committed {
                assert_eq!(
                    e.index,
                    node.sm.applied + 1,
                    "node {id} applies out of order"
                );
                node.sm.digest = mix(node.sm.digest, e);
                node.sm.applied = e.index;
                match self.applied.get(&e.index) {
                    Some(prev) => assert_eq!(
                        prev, e,
                        "state machine safety (§5.4.3): node {id} applied a different entry at {}",
                        e.index
                    ),
                    None => {
                        self.applied.insert(e.index, e.clone());
                    }
                }
                let d = *self.digests.entry(e.index).or_insert(node.sm.digest);
                assert_eq!(
                    d, node.sm.digest,
                    "state machine digest differs at {}",
                    e.index
                );
                if let Some(ctx) = self.proposals.remove(&(e.index, e.term)) {
                    self.acked.insert(ctx, e.index);
                }
            }
            for rs in &rd.read_states {
                if let Some(known) = self.reads.remove(&rs.ctx) {
                    assert!(
                        rs.index >= known,
                        "ReadIndex (thesis §6.4): read index {} below index {} committed before the read",
                        rs.index,
                        known
                    );
                    self.completed_reads += 1;
                }
            }
            for ctx in &rd.aborted_reads {
                self.reads.remove(ctx);
            }
            // Compaction once enough has been applied.
            let threshold = self.faults.snapshot_threshold;
            let raft = node.raft.as_mut().expect("up");
            if node.sm.applied >= raft.snapshot_index() + threshold {
                if let Some(s) = raft.compact(node.sm.applied, node.sm.digest.to_string()) {
                    node.disk.entries.retain(|e| e.index > s.last_index);
                    node.disk.snapshot = Some(s);
                }
            }
            // 2. send
            for m in rd.messages {
                self.send(m);
            }
        }
        self.check_invariants();
    }

    /// Election safety, log matching and leader completeness (Raft figure 3).
    pub fn check_invariants(&mut self) {
        for (&id, n) in &self.nodes {
            let Some(r) = &n.raft else { continue };
            if r.role() == Role::Leader {
                match self.leaders.get(&r.term()) {
                    Some(&other) => assert_eq!(
                        other,
                        id,
                        "election safety (§5.2): two leaders in term {}",
                        r.term()
                    ),
                    None => {
                        self.leaders.insert(r.term(), id);
                        // Leader completeness (§5.4): every entry known committed is here.
                        for (&idx, e) in &self.applied {
                            if idx > r.snapshot_index() {
                                assert_eq!(
                                    r.term_at(idx),
                                    Some(e.term),
                                    "leader completeness (§5.4.1): leader {id} of term {} lacks committed entry {idx}",
                                    r.term()
                                );
                            }
                        }
                    }
                }
            }
        }
        // Log matching (§5.3): if two logs agree on the term at an index, they agree on all
        // entries up to it.
        let ups: Vec<&Raft> = self
            .nodes
            .values()
            .filter_map(|n| n.raft.as_ref())
            .collect();
        for (i, a) in ups.iter().enumerate() {
            for b in &ups[i + 1..] {
                let lo = a.snapshot_index().max(b.snapshot_index()) + 1;
                let hi = a.last_index().min(b.last_index());
                let mut top = None;
                let mut idx = hi;
                while idx >= lo {
                    if a.term_at(idx) == b.term_at(idx) {
                        top = Some(idx);
                        break;
                    }
                    idx -= 1;
                }
                if let Some(top) = top {
                    for j in lo..=top {
                        assert_eq!(
                            a.entry(j),
                            b.entry(j),
                            "log matching (§5.3): nodes {} and {} agree at {top} but differ at {j}",
                            a.id(),
                            b.id()
                        );
                    }
                }
            }
        }
    }

    /// One unit of simulated time: random faults and client work, every live node ticks,
    /// due messages are delivered in random order.
    pub fn step(&mut self) {
        self.time += 1;
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        // Restarts and crashes.
        let due: Vec<NodeId> = self
            .restart_at
            .iter()
            .filter(|(_, &t)| t <= self.time)
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            self.restart_at.remove(&id);
            self.restart(id);
        }
        for &id in &ids {
            if self.nodes[&id].raft.is_some() && self.rng.chance(self.faults.crash) {
                self.crash(id);
                let back = self.time + 5 + self.rng.below(150);
                self.restart_at.insert(id, back);
            }
        }
        // Partitions.
        if self.partition_until != 0 && self.time >= self.partition_until {
            self.blocked.clear();
            self.partition_until = 0;
        } else if self.partition_until == 0 && self.rng.chance(self.faults.partition) {
            let side: BTreeMap<NodeId, bool> =
                ids.iter().map(|&i| (i, self.rng.chance(0.5))).collect();
            for &a in &ids {
                for &b in &ids {
                    if side[&a] != side[&b] {
                        self.blocked.insert((a, b));
                    }
                }
            }
            self.partition_until = self.time + 20 + self.rng.below(200);
            *self.stats.entry("partition").or_default() += 1;
        }
        // Client work.
        if self.rng.chance(self.faults.propose) {
            let id = ids[self.rng.below(ids.len() as u64) as usize];
            self.propose(id);
        }
        if self.rng.chance(self.faults.read) {
            let id = ids[self.rng.below(ids.len() as u64) as usize];
            self.read(id);
        }
        if self.rng.chance(self.faults.membership) {
            self.random_membership_change(&ids);
        }
        for &id in &ids {
            self.tick(id);
        }
        // Deliver due messages in random order (reordering).
        let (mut now, later): (Vec<Flight>, Vec<Flight>) = std::mem::take(&mut self.flights)
            .into_iter()
            .partition(|f| f.at <= self.time);
        self.flights = later;
        for i in (1..now.len()).rev() {
            let j = self.rng.below(i as u64 + 1) as usize;
            now.swap(i, j);
        }
        for f in now {
            self.deliver(f.msg);
        }
    }

    fn random_membership_change(&mut self, pool: &[NodeId]) {
        let Some(leader) = self.leader() else { return };
        let members = self.raft(leader).members().clone();
        let change = if members.len() <= 3 || (members.len() < 5 && self.rng.chance(0.5)) {
            let outside: Vec<NodeId> = pool
                .iter()
                .copied()
                .filter(|p| !members.contains_key(p))
                .collect();
            if outside.is_empty() {
                return;
            }
            let id = outside[self.rng.below(outside.len() as u64) as usize];
            raftkv::raft::ConfigChange::Add(id, format!("n{id}"))
        } else {
            let inside: Vec<NodeId> = members.keys().copied().collect();
            let id = inside[self.rng.below(inside.len() as u64) as usize];
            raftkv::raft::ConfigChange::Remove(id)
        };
        if self.raft_mut(leader).propose_config(change).is_ok() {
            *self.stats.entry("config_change").or_default() += 1;
            self.process(leader);
        }
    }

    /// Heal everything, restart every node, and run fault-free for `ticks`.
    pub fn heal(&mut self) {
        self.blocked.clear();
        self.partition_until = 0;
        self.restart_at.clear();
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.restart(id);
        }
        self.faults = Faults {
            snapshot_threshold: self.faults.snapshot_threshold,
            ..Faults::none()
        };
    }

    /// Run `ticks` steps or until `cond` holds. Returns whether it held.
    pub fn run_until(&mut self, ticks: u64, cond: impl Fn(&Sim) -> bool) -> bool {
        for _ in 0..ticks {
            if cond(self) {
                return true;
            }
            self.step();
        }
        cond(self)
    }
}
