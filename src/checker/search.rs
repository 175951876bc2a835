//! The linearizability search: Wing–Gong/Lowe backtracking with a memo, as Porcupine does it.
//!
//! Call and return entries sit in a doubly linked list in real-time order. The search walks it
//! from the head: at a call entry it tries to linearize that op now (the model must accept it);
//! if the resulting (linearized set, state) was never seen, it lifts the op's two entries out
//! of the list, pushes a frame and starts again from the head. Reaching a return entry means an
//! op that already returned was not linearized on this path: pop a frame, put the op back and
//! try the next candidate after it. The history is linearizable once every completed op is
//! placed; pending (info) ops have no return entry, so they may be placed or left out.
//!
//! The memo is what makes this practical; it is also where the memory goes. A linearized set is
//! stored compactly: completed ops are numbered by call order, so a set is "every op below some
//! word, then a short window of bits"; pending ops (few after pruning) follow in their own words.
//! The hash is a Zobrist hash maintained incrementally, so a lookup costs the window's length.

use super::prepare::Problem;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Limits shared by every partition of one check.
pub(crate) struct Limits<'a> {
    /// Give up (unknown) after this instant.
    pub deadline: Option<Instant>,
    /// Bytes of memo all searches may hold together.
    pub memory_limit: u64,
    /// Bytes currently held by all searches.
    pub memory_used: &'a AtomicU64,
    /// Memo entries one search may create (the shrinker bounds each attempt with it).
    pub max_states: u64,
}

/// Why a search ended without an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exhausted {
    Time,
    Memory,
    States,
}

/// The deepest point a failed search reached: the ops it could place, in order, and the first
/// op that had to be placed next but could not.
#[derive(Clone, Debug, Default)]
pub(crate) struct Deepest {
    /// Search ids in linearization order.
    pub linearized: Vec<u32>,
    /// The completed op whose return was reached without being able to place it.
    pub stuck: Option<u32>,
    /// The model state after `linearized`.
    pub state: u32,
    /// Ops that were candidates at that point (called, not yet linearized).
    pub candidates: Vec<u32>,
}

/// The search's answer for one partition, before it becomes a key's verdict: the deepest point
/// reached when not linearizable, which budget ran out when unknown.
#[derive(Debug)]
pub(crate) enum Outcome {
    Linearizable,
    NotLinearizable(Option<Deepest>),
    Unknown(Exhausted),
}

/// Statistics kept for results.json.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Stats {
    /// Memo entries created.
    pub states: u64,
    /// Peak bytes of memo held.
    pub bytes: u64,
}

#[derive(Default)]
struct IdHasher(u64);
impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys are hashed")
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// SplitMix64: a cheap, well-mixed generator for Zobrist keys (seeded: results are repeatable).
fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The linearized set: completed ops in words `0..fw`, pending ops in words `fw..`.
struct LinSet {
    words: Vec<u64>,
    /// Words holding completed ops.
    fw: usize,
    /// Number of completed ops (bits beyond it in the last completed word stay zero).
    nf: usize,
    /// Every completed word below `lo` is full.
    lo: usize,
    /// Every completed word at or above `hi` is empty.
    hi: usize,
}

impl LinSet {
    fn new(nf: usize, np: usize) -> LinSet {
        let fw = nf.div_ceil(64);
        LinSet {
            words: vec![0; fw + np.div_ceil(64)],
            fw,
            nf,
            lo: 0,
            hi: 0,
        }
    }

    /// Bit position of search id `i`.
    #[inline]
    fn pos(&self, i: usize) -> usize {
        if i < self.nf {
            i
        } else {
            self.fw * 64 + (i - self.nf)
        }
    }

    #[inline]
    fn full(&self, w: usize) -> u64 {
        if w + 1 == self.fw && !self.nf.is_multiple_of(64) {
            (1u64 << (self.nf % 64)) - 1
        } else {
            u64::MAX
        }
    }

    #[inline]
    fn set(&mut self, i: usize) {
        let p = self.pos(i);
        self.words[p / 64] |= 1 << (p % 64);
        if i < self.nf && p / 64 >= self.hi {
            self.hi = p / 64 + 1;
        }
    }

    #[inline]
    fn clear(&mut self, i: usize) {
        let p = self.pos(i);
        self.words[p / 64] &= !(1 << (p % 64));
        if i < self.nf && p / 64 < self.lo {
            self.lo = p / 64;
        }
    }

    /// Write the canonical compact form into `out`.
    fn encode(&mut self, out: &mut Vec<u64>) {
        while self.lo < self.fw && self.words[self.lo] == self.full(self.lo) {
            self.lo += 1;
        }
        if self.hi < self.lo {
            self.hi = self.lo;
        }
        while self.hi > self.lo && self.words[self.hi - 1] == 0 {
            self.hi -= 1;
        }
        out.clear();
        out.push((self.lo as u64) << 32 | (self.hi - self.lo) as u64);
        out.extend_from_slice(&self.words[self.lo..self.hi]);
        out.extend_from_slice(&self.words[self.fw..]);
    }
}

/// The memo of visited (linearized set, state) pairs.
struct Memo {
    table: HashMap<u64, u32, BuildHasherDefault<IdHasher>>,
    /// Per entry: offset into `arena`, length, state, next entry with the same hash.
    entries: Vec<(u32, u32, u32, u32)>,
    arena: Vec<u64>,
}

const NONE: u32 = u32::MAX;

impl Memo {
    fn bytes(&self) -> u64 {
        (self.arena.capacity() * 8 + self.entries.capacity() * 16 + self.table.capacity() * 16)
            as u64
    }

    /// Insert; false if already present.
    fn insert(&mut self, hash: u64, key: &[u64], state: u32) -> bool {
        let head = self.table.get(&hash).copied().unwrap_or(NONE);
        let mut e = head;
        while e != NONE {
            let (off, len, st, next) = self.entries[e as usize];
            if st == state && &self.arena[off as usize..(off + len) as usize] == key {
                return false;
            }
            e = next;
        }
        let id = self.entries.len() as u32;
        self.entries
            .push((self.arena.len() as u32, key.len() as u32, state, head));
        self.arena.extend_from_slice(key);
        self.table.insert(hash, id);
        true
    }
}

/// Run the search. With `deepest` set, remember the deepest dead end (for counterexamples).
pub(crate) fn search(
    p: &mut Problem,
    limits: &Limits<'_>,
    deepest: bool,
    stats: &mut Stats,
) -> Outcome {
    let n = p.ops.len();
    if p.n_finite == 0 {
        return Outcome::Linearizable;
    }
    // Linked list over entries: node 0 is the head sentinel, node k+1 is entries[k].
    let m = p.entries.len();
    let mut next: Vec<u32> = (1..=m as u32 + 1).collect();
    let mut prev: Vec<u32> = (0..=m as u32).map(|i| i.wrapping_sub(1)).collect();
    next.push(NONE);
    prev.push(m as u32);
    let tail = m as u32 + 1;
    let mut call_node = vec![0u32; n];
    let mut ret_node = vec![NONE; n];
    for (k, e) in p.entries.iter().enumerate() {
        if e.call {
            call_node[e.op as usize] = k as u32 + 1;
        } else {
            ret_node[e.op as usize] = k as u32 + 1;
        }
    }
    let mut seed = 0x5EED_u64;
    let zobrist: Vec<u64> = (0..n).map(|_| splitmix(&mut seed)).collect();

    let mut lin = LinSet::new(p.n_finite, n - p.n_finite);
    let mut hash = 0u64;
    // Most valid histories need a few states per op; start there to skip early rehashing.
    let guess = 4 * n + 16;
    let mut memo = Memo {
        table: HashMap::with_capacity_and_hasher(guess, Default::default()),
        entries: Vec::with_capacity(guess),
        arena: Vec::with_capacity(guess * 4),
    };
    let mut key = Vec::new();
    let mut stack: Vec<(u32, u32)> = Vec::new(); // (op, state before it)
    let mut state = 0u32;
    let mut done = 0usize;
    let mut best: Option<Deepest> = None;
    let mut charged = 0u64;
    let mut iter = 0u64;
    let mut node = next[0];

    let outcome = loop {
        iter += 1;
        if iter & 0xFFF == 0 {
            if limits.deadline.is_some_and(|d| Instant::now() >= d) {
                break Outcome::Unknown(Exhausted::Time);
            }
            let now = memo.bytes() + p.space.bytes() as u64;
            if now > charged {
                limits
                    .memory_used
                    .fetch_add(now - charged, Ordering::Relaxed);
                charged = now;
                stats.bytes = stats.bytes.max(now);
            }
            if limits.memory_used.load(Ordering::Relaxed) > limits.memory_limit {
                break Outcome::Unknown(Exhausted::Memory);
            }
        }
        let entry = if node == tail || node == NONE {
            None
        } else {
            Some(p.entries[node as usize - 1])
        };
        match entry {
            Some(e) if e.call => {
                let i = e.op as usize;
                let op = p.ops[i];
                if let Some(ns) = p.space.step(state, op.slot, op.action, op.pending) {
                    lin.set(i);
                    let h = hash ^ zobrist[i];
                    lin.encode(&mut key);
                    let mixed = h ^ (ns as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    if memo.insert(mixed, &key, ns) {
                        stats.states += 1;
                        if stats.states > limits.max_states {
                            break Outcome::Unknown(Exhausted::States);
                        }
                        hash = h;
                        stack.push((e.op, state));
                        state = ns;
                        // Lift the op's entries out of the list.
                        unlink(&mut next, &mut prev, call_node[i]);
                        if ret_node[i] != NONE {
                            unlink(&mut next, &mut prev, ret_node[i]);
                        }
                        if !op.pending {
                            done += 1;
                            if done == p.n_finite {
                                break Outcome::Linearizable;
                            }
                        }
                        node = next[0];
                        continue;
                    }
                    lin.clear(i);
                }
                node = next[node as usize];
            }
            _ => {
                // A return entry (or the end): the op it closes was not placed on this path.
                if deepest
                    && best
                        .as_ref()
                        .is_none_or(|b| stack.len() > b.linearized.len())
                {
                    let stuck = entry.map(|e| e.op);
                    let mut candidates = Vec::new();
                    let mut c = next[0];
                    while c != tail && c != node {
                        let ce = p.entries[c as usize - 1];
                        if ce.call {
                            candidates.push(ce.op);
                        }
                        c = next[c as usize];
                    }
                    best = Some(Deepest {
                        linearized: stack.iter().map(|&(o, _)| o).collect(),
                        stuck,
                        state,
                        candidates,
                    });
                }
                let Some((o, before)) = stack.pop() else {
                    break Outcome::NotLinearizable(best.take());
                };
                let i = o as usize;
                state = before;
                lin.clear(i);
                hash ^= zobrist[i];
                if ret_node[i] != NONE {
                    relink(&mut next, &mut prev, ret_node[i]);
                }
                relink(&mut next, &mut prev, call_node[i]);
                if !p.ops[i].pending {
                    done -= 1;
                }
                node = next[call_node[i] as usize];
            }
        }
    };
    let total = memo.bytes() + p.space.bytes() as u64;
    stats.bytes = stats.bytes.max(total);
    limits.memory_used.fetch_sub(charged, Ordering::Relaxed);
    outcome
}

#[inline]
fn unlink(next: &mut [u32], prev: &mut [u32], x: u32) {
    let (p, n) = (prev[x as usize], next[x as usize]);
    next[p as usize] = n;
    prev[n as usize] = p;
}

#[inline]
fn relink(next: &mut [u32], prev: &mut [u32], x: u32) {
    let (p, n) = (prev[x as usize], next[x as usize]);
    next[p as usize] = x;
    prev[n as usize] = x;
}
