//! Counterexamples a person can read: shrink an invalid key's history to a handful of ops.
//!
//! Shrinking must not invent a violation: the witness must be invalid *because* the original
//! is. So every witness is a *relaxation* of the history: a history such that every
//! linearization of the original, restricted to the ops that remain, is one of it. A relaxation
//! can only turn an invalid history valid, never the reverse, so an invalid relaxation proves
//! the original invalid. The relaxations used:
//! - for list-append, project onto a few elements: drop the other elements' appends and filter
//!   every read down to the kept elements (in a linearization, a read's list is the sequence of
//!   appends before it; filtering both sides keeps that true);
//! - drop an observation (a read, a failed or mismatched cas): fewer constraints;
//! - drop a write together with every op that may have observed it. For a list, an append's
//!   observers are the reads holding its element. For a register, an op may observe write `w`
//!   if it reads (or, as a cas, expects) `w`'s value, or is a mismatched cas, and it can
//!   linearize while `w` is the latest write: it does not end before `w` begins, and no write
//!   certain to take effect (an ok write or cas) lies wholly between them in real time. In a
//!   linearization each remaining op still follows its own latest write, which is not a dropped
//!   one;
//! - turn a completed write, cas or append into an unknown one: it may now take effect later or
//!   never, a superset of what it could do before.
//!
//! The witness is built bottom-up: starting from the op at the search's deepest dead end, ops
//! are added nearest first, each time with everything the kept ops may have observed (which
//! makes the set a relaxation), until the set is invalid; a search over a dozen ops costs
//! nothing, so this is cheap however hard the whole history was to search. Delta debugging
//! then removes what the violation does not need, and completed writes that need not be
//! completed are weakened. Every step also keeps the witness readable: a read keeps a write of
//! the value it returned whenever the history has one, so a stale read shows the write it saw
//! and the one that overwrote it, not a value from nowhere.
//!
//! The shrinker is deterministic: it is bounded by a count of searches and of search states,
//! never by the clock, so the same history gives the same witness on a busy machine and an idle
//! one. A search that reaches its bound counts as "not shown invalid" and its step is not taken,
//! which can make a witness larger but never unsound.

use super::model::Model;
use super::prepare::prepare;
use super::search::{search, Limits, Outcome as SearchOutcome, Stats};
use super::Counterexample;
use crate::history::{brief, Fun, Op, Outcome, Value};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::AtomicU64;

/// Each attempt may explore at most this many times the states its last successful attempt
/// needed (and at least `MIN_ATTEMPT_STATES`). The witness only shrinks, and so, mostly, does the
/// cost of proving it invalid; a trial that costs far more is abandoned and its step not taken.
const ATTEMPT_FACTOR: u64 = 2;
const MIN_ATTEMPT_STATES: u64 = 2_000;

/// Searches one key's shrinking may run: growth and delta debugging need a few per op.
const MAX_ATTEMPTS: u32 = 2_000;

/// Search states one key's shrinking may explore in all, as a multiple of the original search's
/// plus `MIN_TOTAL_STATES`: shrinking stays within a small multiple of the check itself.
const TOTAL_FACTOR: u64 = 2;
const MIN_TOTAL_STATES: u64 = 20_000;

/// Single elements tried first when projecting a list-append history, and the leading elements
/// whose pairs are tried after them (an order anomaly needs two).
const SINGLE_TRIES: usize = 64;
const PAIR_POOL: usize = 6;

/// Build the counterexample for an invalid key's ops; `dead_end` is where the check's own search
/// got deepest, in `ops`' indices (the op that could not be placed, if any).
pub(crate) fn counterexample(
    ops: Vec<Op>,
    model: Model,
    limits: &Limits<'_>,
    shrink: bool,
    original_states: u64,
    dead_end: Option<usize>,
) -> Counterexample {
    let used = AtomicU64::new(0);
    let mut sh = Shrinker {
        model,
        used: &used,
        memory_limit: limits.memory_limit / 4,
        attempt_states: original_states
            .saturating_mul(ATTEMPT_FACTOR)
            .max(MIN_ATTEMPT_STATES),
        states_left: original_states
            .saturating_mul(TOTAL_FACTOR)
            .saturating_add(MIN_TOTAL_STATES),
        attempts_left: MAX_ATTEMPTS,
        written_in_history: ops
            .iter()
            .filter_map(written)
            .map(Value::to_string)
            .collect(),
    };
    let original: HashMap<usize, Outcome> = ops.iter().map(|o| (o.id, o.outcome)).collect();
    let mut cur = ops;
    let mut projection = Vec::new();
    if shrink {
        let stuck = dead_end.and_then(|i| cur.get(i)).map(|o| o.id);
        if model == Model::ListAppend {
            if let Some((elements, projected)) = sh.project(&cur, stuck) {
                projection = elements;
                cur = projected;
            }
        }
        if let Some(grown) = stuck.and_then(|x| sh.grow(&cur, x)) {
            cur = grown;
        }
        // Observations first: dropping them cascades to nothing, and with fewer readers a
        // write more often has no observer left to take with it.
        cur = sh.drop_ops(cur, |o| written(o).is_none());
        cur = sh.drop_ops(cur, |_| true);
        cur = sh.weaken(cur);
    }
    let explain_limits = Limits {
        deadline: None,
        memory_limit: limits.memory_limit / 4,
        memory_used: &used,
        max_states: sh.attempt_states.saturating_mul(4),
    };
    let mut c = explain(cur, &original, model, &explain_limits);
    c.projection = projection;
    c
}

/// The bounded budget of one key's shrinking.
struct Shrinker<'a> {
    model: Model,
    used: &'a AtomicU64,
    memory_limit: u64,
    attempt_states: u64,
    states_left: u64,
    attempts_left: u32,
    /// Values some op of the key's history writes (canonical JSON): a witness read of such a
    /// value keeps a write of it, so no witness shows a value from nowhere.
    written_in_history: BTreeSet<String>,
}

impl Shrinker<'_> {
    /// One bounded search and the states it explored; `None` once the budget is spent.
    fn run(&mut self, ops: &[Op]) -> Option<(SearchOutcome, u64)> {
        if self.spent() {
            return None;
        }
        self.attempts_left -= 1;
        let limits = Limits {
            deadline: None,
            memory_limit: self.memory_limit,
            memory_used: self.used,
            max_states: self.attempt_states.min(self.states_left),
        };
        let refs: Vec<&Op> = ops.iter().collect();
        let mut p = prepare(&refs, self.model);
        let mut stats = Stats::default();
        let out = search(&mut p, &limits, false, &mut stats);
        self.states_left = self.states_left.saturating_sub(stats.states);
        Some((out, stats.states))
    }

    /// Whether the budget is used up, so that no further step can be taken.
    fn spent(&self) -> bool {
        self.attempts_left == 0 || self.states_left == 0
    }

    /// Whether `ops` is shown invalid within this attempt's bound (false once the budget is
    /// spent: the step is then not taken).
    fn invalid(&mut self, ops: &[Op]) -> bool {
        let Some((out, states)) = self.run(ops) else {
            return false;
        };
        let invalid = matches!(out, SearchOutcome::NotLinearizable(_));
        if invalid {
            self.attempt_states = states
                .saturating_mul(ATTEMPT_FACTOR)
                .max(MIN_ATTEMPT_STATES)
                .min(self.attempt_states);
        }
        invalid
    }

    /// Whether every read in `ops` (and every cas's expected value) has a write of its value in
    /// `ops`, where the history has one.
    fn readable(&self, ops: &[Op]) -> bool {
        let here: BTreeSet<String> = ops
            .iter()
            .filter_map(written)
            .map(Value::to_string)
            .collect();
        ops.iter().all(|o| {
            observed(o, self.model).iter().all(|v| {
                v.is_null() || here.contains(&v.to_string()) || {
                    !self.written_in_history.contains(&v.to_string())
                }
            })
        })
    }

    /// Bottom-up: from op `x`, add the nearest ops one at a time (with what they may have
    /// observed, and a write of each value they read) until the set is invalid.
    fn grow(&mut self, ops: &[Op], x: usize) -> Option<Vec<Op>> {
        let xo = ops.iter().find(|o| o.id == x)?;
        let (c, r) = (xo.call, ends(xo).unwrap_or(usize::MAX));
        let distance = |o: &Op| match ends(o) {
            _ if o.id == x => 0,
            Some(ret) if ret < c => c - ret,
            _ if o.call > r => o.call - r,
            // Overlapping X (an unknown op overlaps everything after its call): nearest first
            // by call.
            _ => c.abs_diff(o.call) / 4,
        };
        let mut order: Vec<&Op> = ops.iter().collect();
        order.sort_by_key(|o| (distance(o), o.id));
        // The closure is taken afresh from the ops chosen so far: a write added later may
        // separate an earlier read from writes it could otherwise have observed.
        let mut core: BTreeSet<usize> = BTreeSet::new();
        let mut kept: BTreeSet<usize> = BTreeSet::new();
        for o in order {
            if kept.contains(&o.id) || !core.insert(o.id) {
                continue;
            }
            kept = self.closed(ops, core.clone());
            let trial: Vec<Op> = ops
                .iter()
                .filter(|o| kept.contains(&o.id))
                .cloned()
                .collect();
            if trial.len() == ops.len() {
                return None;
            }
            if self.invalid(&trial) {
                return Some(trial);
            }
            if self.spent() {
                return None;
            }
        }
        None
    }

    /// `kept` with every write a kept op may have observed (transitively), and the latest write
    /// of each value a kept op reads where none is kept yet.
    fn closed(&self, ops: &[Op], mut kept: BTreeSet<usize>) -> BTreeSet<usize> {
        let list = self.model == Model::ListAppend;
        let seps = Separators::new(ops);
        loop {
            let mut add = Vec::new();
            for o in ops.iter().filter(|o| kept.contains(&o.id)) {
                let seen = observed(o, self.model);
                let mismatch = o.outcome == Outcome::Mismatch;
                if seen.is_empty() && !mismatch {
                    continue;
                }
                let mut sourced = vec![false; seen.len()];
                let mut latest: Vec<Option<&Op>> = vec![None; seen.len()];
                for w in ops.iter().filter(|w| w.key == o.key && w.id != o.id) {
                    let Some(v) = written(w) else { continue };
                    let slot = seen.iter().position(|s| *s == v);
                    let observes = if list {
                        slot.is_some()
                    } else {
                        (slot.is_some() || mismatch) && may_follow(&seps, w, o)
                    };
                    if observes && !kept.contains(&w.id) {
                        add.push(w.id);
                    }
                    if let Some(i) = slot {
                        sourced[i] |= kept.contains(&w.id) || observes;
                        if w.call < ends(o).unwrap_or(usize::MAX)
                            && latest[i].is_none_or(|l| l.call < w.call)
                        {
                            latest[i] = Some(w);
                        }
                    }
                }
                for (i, s) in sourced.iter().enumerate() {
                    if !s {
                        if let Some(w) = latest[i] {
                            add.push(w.id);
                        }
                    }
                }
            }
            let before = kept.len();
            kept.extend(add);
            if kept.len() == before {
                return kept;
            }
        }
    }

    /// The smallest set of list elements found whose projection is still invalid, and that
    /// projection: single elements first (a lost or invented element), the elements the search
    /// got stuck on leading; then pairs (two elements read in both orders); then delta debugging
    /// over all elements. `None` when no proper subset was shown invalid.
    fn project(&mut self, ops: &[Op], stuck: Option<usize>) -> Option<(Vec<Value>, Vec<Op>)> {
        let universe = elements(ops);
        if universe.len() <= 1 {
            return None;
        }
        let order = self.priority(ops, &universe, stuck);
        for e in order.iter().take(SINGLE_TRIES) {
            let p = projected(ops, std::slice::from_ref(e));
            if self.invalid(&p) {
                return Some((vec![e.clone()], p));
            }
        }
        let pool = &order[..order.len().min(PAIR_POOL)];
        for (i, a) in pool.iter().enumerate() {
            for b in &pool[i + 1..] {
                let pair = [a.clone(), b.clone()];
                let p = projected(ops, &pair);
                if self.invalid(&p) {
                    return Some((pair.to_vec(), p));
                }
            }
        }
        let kept = ddmin(universe.clone(), |subset| {
            self.invalid(&projected(ops, subset))
        });
        (kept.len() < universe.len()).then(|| {
            let p = projected(ops, &kept);
            (kept, p)
        })
    }

    /// The elements in the order the projection tries them: those where the stuck read and the
    /// acknowledged appends before it differ, then the rest, latest first (a violation tends to
    /// sit where the search got stuck, late in the history).
    fn priority(&mut self, ops: &[Op], universe: &[Value], stuck: Option<usize>) -> Vec<Value> {
        let mut first: Vec<Value> = Vec::new();
        if let Some((state, read)) = stuck.and_then(|x| dead_end(ops, x)) {
            let (a, b) = (
                state.as_array().cloned().unwrap_or_default(),
                read.as_array().cloned().unwrap_or_default(),
            );
            first.extend(a.iter().filter(|x| !b.contains(x)).cloned());
            first.extend(b.iter().filter(|x| !a.contains(x)).cloned());
            if let Some(i) = a.iter().zip(&b).position(|(x, y)| x != y) {
                first.push(a[i].clone());
                first.push(b[i].clone());
            }
        }
        let mut seen = BTreeSet::new();
        let mut order = Vec::with_capacity(universe.len());
        for e in first.into_iter().chain(universe.iter().rev().cloned()) {
            if universe.contains(&e) && seen.insert(e.to_string()) {
                order.push(e);
            }
        }
        order
    }

    /// Delta debugging over "drop this op and what may have observed it", keeping every drop
    /// after which the history is still invalid and readable.
    fn drop_ops(&mut self, ops: Vec<Op>, candidate: impl Fn(&Op) -> bool) -> Vec<Op> {
        let model = self.model;
        let ids: Vec<usize> = ops.iter().filter(|o| candidate(o)).map(|o| o.id).collect();
        let fixed: Vec<usize> = ops.iter().filter(|o| !candidate(o)).map(|o| o.id).collect();
        let remaining = |keep: &[usize]| -> Vec<Op> {
            let keep: BTreeSet<usize> = keep.iter().chain(&fixed).copied().collect();
            let dropped: Vec<&Op> = ops.iter().filter(|o| !keep.contains(&o.id)).collect();
            let gone = with_observers(&ops, &dropped, model);
            ops.iter()
                .filter(|o| !gone.contains(&o.id))
                .cloned()
                .collect()
        };
        let kept = ddmin(ids, |keep| {
            // Once the budget is spent no trial can be taken: skip building them.
            if self.spent() {
                return false;
            }
            let trial = remaining(keep);
            self.readable(&trial) && self.invalid(&trial)
        });
        remaining(&kept)
    }

    /// Turn completed writes into unknown ones, one at a time, where the witness stays invalid:
    /// what is left completed is what the violation needs acknowledged.
    fn weaken(&mut self, mut ops: Vec<Op>) -> Vec<Op> {
        for i in 0..ops.len() {
            if ops[i].f == Fun::Read || ops[i].outcome != Outcome::Ok {
                continue;
            }
            let mut trial = ops.clone();
            trial[i].outcome = Outcome::Info;
            if self.invalid(&trial) {
                ops = trial;
            }
        }
        ops
    }
}

/// For the list read the search got stuck on: the elements of the appends acknowledged before
/// the read began (what it must at least contain, in call order) and what it returned. Their
/// differences are the elements a projection most likely needs.
fn dead_end(ops: &[Op], x: usize) -> Option<(Value, Value)> {
    let read = ops.iter().find(|o| o.id == x && o.f == Fun::Read)?;
    let acknowledged: Vec<Value> = ops
        .iter()
        .filter(|o| o.f == Fun::Append && o.outcome == Outcome::Ok)
        .filter(|o| ends(o).is_some_and(|r| r < read.call))
        .map(|o| o.value.clone())
        .collect();
    Some((Value::Array(acknowledged), read.value.clone()))
}

/// Delta debugging (Zeller's ddmin, complement steps only): remove chunks of `items`, halving the
/// chunk size down to one, keeping each removal after which `still` holds of what remains.
fn ddmin<T: Clone>(mut items: Vec<T>, mut still: impl FnMut(&[T]) -> bool) -> Vec<T> {
    let mut chunk = items.len().div_ceil(2).max(1);
    loop {
        let mut i = 0;
        while i < items.len() {
            let end = (i + chunk).min(items.len());
            if end - i < items.len() {
                let mut trial = items[..i].to_vec();
                trial.extend_from_slice(&items[end..]);
                if still(&trial) {
                    items = trial;
                    continue;
                }
            }
            i = end;
        }
        if chunk == 1 {
            return items;
        }
        chunk = chunk.div_ceil(2);
    }
}

/// Where an op's interval ends for the checker: its return, or never for an unknown op.
fn ends(o: &Op) -> Option<usize> {
    (o.outcome != Outcome::Info).then_some(o.ret).flatten()
}

/// Every list element appended or read, in first-seen order.
fn elements(ops: &[Op]) -> Vec<Value> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for o in ops {
        let items: Vec<&Value> = match o.f {
            Fun::Append => vec![&o.value],
            Fun::Read if o.outcome == Outcome::Ok => o
                .value
                .as_array()
                .map(|a| a.iter().collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        for v in items {
            if seen.insert(v.to_string()) {
                out.push(v.clone());
            }
        }
    }
    out
}

/// The list history projected onto `keep`: other elements' appends dropped, reads filtered.
fn projected(ops: &[Op], keep: &[Value]) -> Vec<Op> {
    ops.iter()
        .filter(|o| o.f != Fun::Append || keep.contains(&o.value))
        .map(|o| {
            let mut o = o.clone();
            if o.f == Fun::Read {
                if let Some(items) = o.value.as_array() {
                    o.value =
                        Value::Array(items.iter().filter(|v| keep.contains(v)).cloned().collect());
                }
            }
            o
        })
        .collect()
}

/// The values an op observed: an ok read's value (a list read's elements), a cas's expected
/// value (not a mismatched cas's: it saw only that the state was something else).
fn observed(o: &Op, model: Model) -> Vec<&Value> {
    match (o.f, o.outcome) {
        (Fun::Read, Outcome::Ok) if model == Model::ListAppend => o
            .value
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default(),
        (Fun::Read, Outcome::Ok) => vec![&o.value],
        (Fun::Cas, Outcome::Ok | Outcome::Info) => cas_parts(o).0.into_iter().collect(),
        _ => Vec::new(),
    }
}

/// The ids of `dropped` and of every op that may have observed what they wrote, transitively
/// (see the module doc for why dropping these together is a relaxation).
fn with_observers(ops: &[Op], dropped: &[&Op], model: Model) -> BTreeSet<usize> {
    let list = model == Model::ListAppend;
    let seps = Separators::new(ops);
    let mut gone: BTreeSet<usize> = BTreeSet::new();
    let mut queue: Vec<&Op> = dropped.to_vec();
    while let Some(d) = queue.pop() {
        if !gone.insert(d.id) {
            continue;
        }
        let Some(written) = written(d) else {
            continue;
        };
        for o in ops {
            if gone.contains(&o.id) || o.key != d.key || o.outcome == Outcome::Fail {
                continue;
            }
            let observes = if list {
                // Every read after an append holds its element, and no read before one does.
                o.f == Fun::Read
                    && o.outcome == Outcome::Ok
                    && o.value
                        .as_array()
                        .is_some_and(|items| items.contains(written))
            } else {
                let reads_it = match (o.f, o.outcome) {
                    (Fun::Read, Outcome::Ok) => &o.value == written,
                    (Fun::Cas, Outcome::Ok | Outcome::Info) => cas_parts(o).0 == Some(written),
                    // A mismatch saw only "not my expected value": without the write, the state
                    // where it sits may become exactly that value.
                    (Fun::Cas, Outcome::Mismatch) => true,
                    _ => false,
                };
                reads_it && may_follow(&seps, d, o)
            };
            if observes {
                queue.push(o);
            }
        }
    }
    gone
}

/// Whether `o` can linearize while `w`'s write is the key's latest: `o` does not end before `w`
/// begins, and no write certain to take effect (an ok write or cas) lies wholly between them in
/// real time, which would separate them in every linearization.
fn may_follow(seps: &Separators<'_>, w: &Op, o: &Op) -> bool {
    if ends(o).is_some_and(|r| r < w.call) {
        return false;
    }
    let Some(w_ret) = ends(w) else {
        return true;
    };
    !seps.between(w.key.as_deref(), w_ret, o.call)
}

/// The writes certain to take effect (ok writes and cas), per key, by call position, with the
/// earliest return among each suffix: whether one lies wholly between two positions is one
/// binary search, so the closures stay near-linear on keys of many thousands of ops.
struct Separators<'a> {
    by_key: HashMap<Option<&'a str>, (Vec<usize>, Vec<usize>)>,
}

impl<'a> Separators<'a> {
    fn new(ops: &'a [Op]) -> Separators<'a> {
        let mut spans: HashMap<Option<&str>, Vec<(usize, usize)>> = HashMap::new();
        for x in ops {
            if x.outcome == Outcome::Ok && matches!(x.f, Fun::Write | Fun::Cas) {
                if let Some(r) = ends(x) {
                    spans.entry(x.key.as_deref()).or_default().push((x.call, r));
                }
            }
        }
        let by_key = spans
            .into_iter()
            .map(|(k, mut v)| {
                v.sort_unstable();
                let calls = v.iter().map(|&(c, _)| c).collect();
                let mut min_ret: Vec<usize> = v.iter().map(|&(_, r)| r).collect();
                for i in (0..min_ret.len().saturating_sub(1)).rev() {
                    min_ret[i] = min_ret[i].min(min_ret[i + 1]);
                }
                (k, (calls, min_ret))
            })
            .collect();
        Separators { by_key }
    }

    /// Whether some such write of `key` is called after `after` and returns before `before`.
    fn between(&self, key: Option<&str>, after: usize, before: usize) -> bool {
        let Some((calls, min_ret)) = self.by_key.get(&key) else {
            return false;
        };
        let i = calls.partition_point(|&c| c <= after);
        i < calls.len() && min_ret[i] < before
    }
}

/// The value an op may have written: a write's or append's argument, a cas's new value; `None`
/// for reads, failed ops and mismatched cas.
fn written(o: &Op) -> Option<&Value> {
    match (o.f, o.outcome) {
        (_, Outcome::Fail | Outcome::Mismatch) | (Fun::Read, _) => None,
        (Fun::Write | Fun::Append, _) => Some(&o.value),
        (Fun::Cas, _) => cas_parts(o).1,
    }
}

/// A cas's expected and new values (`value` is `[expected, new]`).
fn cas_parts(o: &Op) -> (Option<&Value>, Option<&Value>) {
    match o.value.as_array().map(Vec::as_slice) {
        Some([a, b]) => (Some(a), Some(b)),
        _ => (None, None),
    }
}

/// Describe the witness: which ops remain, where the search got stuck.
fn explain(
    ops: Vec<Op>,
    original: &HashMap<usize, Outcome>,
    model: Model,
    limits: &Limits<'_>,
) -> Counterexample {
    let refs: Vec<&Op> = ops.iter().collect();
    let mut p = prepare(&refs, model);
    let deepest = match search(&mut p, limits, true, &mut Stats::default()) {
        SearchOutcome::NotLinearizable(d) => d,
        _ => None,
    };
    let id = |s: u32| ops[p.ops[s as usize].orig].id;
    let mut kept: Vec<Op> = p.ops.iter().map(|s| ops[s.orig].clone()).collect();
    kept.sort_by_key(|o| o.call);
    let weakened: Vec<usize> = kept
        .iter()
        .filter(|o| original.get(&o.id).is_some_and(|&was| was != o.outcome))
        .map(|o| o.id)
        .collect();
    let show_state = |state: u32| {
        let slots = p.space.slots_of(state);
        let one = |s: u32| {
            if model == Model::ListAppend {
                p.space.show_list(s)
            } else {
                p.space.show_value(s)
            }
        };
        if slots.len() == 1 {
            one(slots[0])
        } else {
            serde_json::Value::Array(slots.into_iter().map(one).collect())
        }
    };
    match deepest {
        Some(d) => {
            let unplaced = d.stuck.map(id);
            let state = show_state(d.state);
            let explanation = match d.stuck.map(|s| &ops[p.ops[s as usize].orig]) {
                Some(op) => format!(
                    "after {} ops linearize, the state is {}; op {} ({} {} by process {}) \
                     has returned but cannot take effect in that state or any other order{}",
                    d.linearized.len(),
                    brief(&state),
                    op.id,
                    op.f.name(),
                    brief(&op.value),
                    op.process,
                    list_difference(&state, &op.value)
                ),
                None => "no order of these ops is legal for the model".to_string(),
            };
            Counterexample {
                ops: kept,
                weakened,
                projection: Vec::new(),
                linearized: d.linearized.iter().map(|&s| id(s)).collect(),
                state,
                unplaced,
                candidates: d.candidates.iter().map(|&s| id(s)).collect(),
                explanation,
            }
        }
        None => Counterexample {
            ops: kept,
            weakened,
            projection: Vec::new(),
            linearized: vec![],
            state: serde_json::Value::Null,
            unplaced: None,
            candidates: vec![],
            explanation: "the search ran out of budget while explaining this key".into(),
        },
    }
}

/// For a list read that the state does not explain, where the two first differ.
fn list_difference(state: &serde_json::Value, read: &serde_json::Value) -> String {
    let (Some(a), Some(b)) = (state.as_array(), read.as_array()) else {
        return String::new();
    };
    let missing: Vec<String> = a
        .iter()
        .filter(|x| !b.contains(x))
        .take(5)
        .map(|x| x.to_string())
        .collect();
    let extra: Vec<String> = b
        .iter()
        .filter(|x| !a.contains(x))
        .take(5)
        .map(|x| x.to_string())
        .collect();
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("the read lacks {}", missing.join(", ")));
    }
    if !extra.is_empty() {
        parts.push(format!(
            "the read has {} that no legal order appended yet",
            extra.join(", ")
        ));
    }
    if parts.is_empty() {
        if let Some(i) = a.iter().zip(b).position(|(x, y)| x != y) {
            parts.push(format!(
                "the order differs at position {i}: {} vs {}",
                a[i], b[i]
            ));
        }
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::{check, CheckOptions, Verdict};
    use serde_json::json;

    /// Ops from `(process, f, value, outcome, call, ret)`, positions as event indices.
    fn ops(spec: &[(u64, Fun, Value, Outcome, usize, usize)]) -> Vec<Op> {
        spec.iter()
            .enumerate()
            .map(|(id, (process, f, value, outcome, call, ret))| Op {
                id,
                process: *process,
                f: *f,
                key: None,
                value: value.clone(),
                outcome: *outcome,
                call: *call,
                ret: Some(*ret),
                call_time: *call as u64 * 1000,
                ret_time: Some(*ret as u64 * 1000),
                node: None,
            })
            .collect()
    }

    fn witness(history: &[Op]) -> Counterexample {
        let r = check(history, &CheckOptions::default()).unwrap();
        assert_eq!(r.verdict, Verdict::Invalid);
        r.keys[0].counterexample.clone().unwrap()
    }

    #[test]
    fn a_stale_read_keeps_the_write_it_saw_and_the_one_that_overwrote_it() {
        use Fun::*;
        use Outcome::Ok as K;
        // Noise around: other processes read and write values nobody contradicts.
        let h = ops(&[
            (1, Write, json!(3), K, 0, 1),
            (2, Read, json!(3), K, 2, 3),
            (1, Write, json!(5), K, 4, 5),
            (3, Write, json!(6), K, 6, 9),
            (2, Read, json!(3), K, 7, 8),
            (4, Read, json!(6), K, 10, 11),
        ]);
        let c = witness(&h);
        let ids: Vec<usize> = c.ops.iter().map(|o| o.id).collect();
        // The bare read alone would also be invalid (no write of 3 can be its latest), but it
        // would show a value from nowhere; the witness keeps write 3 and write 5.
        assert_eq!(ids, vec![0, 2, 4], "{c:?}");
        assert!(c.projection.is_empty());
    }

    #[test]
    fn a_lost_append_is_shown_as_two_ops_projected_onto_its_element() {
        use Fun::*;
        use Outcome::Ok as K;
        let h = ops(&[
            (1, Append, json!(1), K, 0, 1),
            (2, Append, json!(2), K, 2, 3),
            (3, Read, json!([1, 2]), K, 4, 5),
            (1, Append, json!(3), K, 6, 7),
            (2, Append, json!(4), K, 8, 9),
            (3, Read, json!([1, 2, 4]), K, 10, 11),
        ]);
        let c = witness(&h);
        let ids: Vec<usize> = c.ops.iter().map(|o| o.id).collect();
        assert_eq!(ids, vec![3, 5], "{c:?}");
        assert_eq!(c.projection, vec![json!(3)]);
        assert_eq!(c.ops[1].value, json!([]));
        assert!(
            c.explanation.contains("the read lacks 3"),
            "{}",
            c.explanation
        );
    }

    #[test]
    fn an_unknown_write_of_the_read_value_is_never_dropped_from_under_the_read() {
        use Fun::*;
        use Outcome::{Info, Ok as K};
        // Write 7 is unknown and may land at any time after its call, so the read of 7 is legal;
        // the violation is the read of 3 after write 5. A witness without write 7 but with the
        // read of 7 would invent a violation; the shrinker must drop both or keep both.
        let h = ops(&[
            (1, Write, json!(3), K, 0, 1),
            (9, Write, json!(7), Info, 2, 20),
            (1, Write, json!(5), K, 3, 4),
            (2, Read, json!(3), K, 5, 6),
            (3, Read, json!(7), K, 7, 8),
        ]);
        let c = witness(&h);
        let has = |id: usize| c.ops.iter().any(|o| o.id == id);
        assert!(has(3), "{c:?}");
        assert!(!has(4) || has(1), "{c:?}");
    }

    #[test]
    fn shrinking_is_deterministic() {
        use crate::checker::synth::{plant_violation, synth, SynthSpec};
        for seed in 0..30 {
            let Some(h) = plant_violation(&synth(&SynthSpec::etcd(seed)), seed, 20_000) else {
                continue;
            };
            let a = witness(&h);
            let b = witness(&h);
            assert_eq!(
                a.ops.iter().map(|o| o.id).collect::<Vec<_>>(),
                b.ops.iter().map(|o| o.id).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn long_lists_are_abbreviated_and_differences_named() {
        let state = json!([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        let read = json!([1, 2, 3, 4, 5, 6, 7, 8, 10]);
        assert_eq!(brief(&state), "a list of 10 ending [..., 7, 8, 9, 10]");
        assert_eq!(list_difference(&state, &read), " (the read lacks 9)");
        assert_eq!(
            list_difference(&json!([1, 2]), &json!([2, 1])),
            " (the order differs at position 0: 1 vs 2)"
        );
        assert_eq!(list_difference(&json!(1), &json!(2)), "");
    }
}
