//! The checker against an exhaustive oracle on tens of thousands of small random histories.
//!
//! Histories come from a simulated linearizable store (so they are valid by construction, which
//! the oracle must confirm) and from mutations of such histories (read values changed, values
//! swapped, outcomes changed, intervals shifted), with heavily overlapping intervals and repeated
//! values in the mix. For every history the checker's verdict, with and without splitting per
//! key, must equal the oracle's, every key's own verdict must equal the oracle on that key, and
//! every counterexample must itself be non-linearizable (per the oracle) and no larger than its
//! key's history. A disagreement prints the history as JSONL, plus a minimized form.
//!
//! A second test does the same on longer histories (65-140 ops, low concurrency, few unknown
//! ops) against the memoized form of the oracle, so that the search's linearized-set encoding
//! is exercised past one 64-bit word.
//!
//! `BRUTE_FORCE_SCALE=N` runs N times as many histories, `BRUTE_FORCE_SEED=S` other seeds:
//! `BRUTE_FORCE_SCALE=50 cargo test --release --test brute_force` checks 1.2 million.

mod common;

use common::{jsonl, linearizable, linearizable_memo, ops_of};
use raftcheck::checker::{check, CheckOptions, CheckResult, Model, Verdict};
use raftcheck::history::{pair, unpair, Event, EventType, Fun, Op, Outcome, Source, Value};
use rand::seq::IndexedRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::collections::HashMap;

/// Most ops in one generated history.
const MAX_OPS: usize = 8;

/// How a simulated op is going to end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    /// Takes effect inside its interval and reports the true result (a cas whose compare
    /// failed reports `fail`, with or without `"error":"mismatch"`).
    Normal,
    /// Ends `info`; takes effect (maybe, at any time after its invoke, even after the info
    /// completion) or never.
    Info,
    /// Ends `fail`; never takes effect.
    Fail,
    /// Never completes; may take effect at any time after its invoke.
    Never,
}

/// An op of the simulation.
struct Live {
    process: u64,
    slot: usize,
    f: Fun,
    key: Option<String>,
    arg: Value,
    fate: Fate,
    will_apply: bool,
    applied: bool,
    completed: bool,
    /// Read result, or whether a cas compare succeeded.
    result: Value,
    cas_ok: bool,
}

/// Shape of one generated history.
#[derive(Clone, Copy, Debug)]
struct Shape {
    model: Model,
    /// Invoke everything first (as far as processes allow), then take effect, then complete.
    overlap: bool,
    /// Draw values from a tiny range so they repeat.
    repeat: bool,
    /// Write some values as strings ("2" next to 2: distinct values that print alike).
    strings: bool,
    /// Fewest and most ops in the history.
    min_ops: usize,
    max_ops: usize,
    /// Most concurrent workers (unless `overlap`).
    max_slots: usize,
    /// Probability that an op ends info or never completes.
    unknown_rate: f64,
    /// Most ops that end info or never complete.
    max_unknown: usize,
}

struct Gen<'a> {
    rng: &'a mut ChaCha8Rng,
    shape: Shape,
    keys: Vec<Option<String>>,
    next_value: HashMap<Option<String>, i64>,
    written: HashMap<Option<String>, Vec<Value>>,
    /// The store: absent keys are missing.
    state: HashMap<Option<String>, Value>,
}

impl Gen<'_> {
    fn list(&self) -> bool {
        self.shape.model == Model::ListAppend
    }

    fn fresh(&mut self, key: &Option<String>) -> Value {
        let n = if self.shape.repeat {
            self.rng.random_range(1..=3)
        } else {
            let n = self.next_value.entry(key.clone()).or_insert(0);
            *n += 1;
            *n
        };
        if self.shape.strings && self.rng.random_bool(0.5) {
            json!(n.to_string())
        } else {
            json!(n)
        }
    }

    fn new_op(&mut self) -> (Fun, Option<String>, Value) {
        let key = self.keys.choose(self.rng).expect("keys").clone();
        let x: f64 = self.rng.random();
        let f = match self.shape.model {
            Model::Register if x < 0.5 => Fun::Read,
            Model::Register => Fun::Write,
            Model::ListAppend if x < 0.45 => Fun::Read,
            Model::ListAppend => Fun::Append,
            _ if x < 0.35 => Fun::Read,
            _ if x < 0.65 => Fun::Write,
            _ => Fun::Cas,
        };
        let arg = match f {
            Fun::Read => Value::Null,
            Fun::Write | Fun::Append => {
                let v = self.fresh(&key);
                self.written.entry(key.clone()).or_default().push(v.clone());
                v
            }
            Fun::Cas => {
                let y: f64 = self.rng.random();
                let seen = self.written.get(&key).cloned().unwrap_or_default();
                let expected = if y < 0.4 && !seen.is_empty() {
                    seen.choose(self.rng).expect("non-empty").clone()
                } else if y < 0.6 {
                    Value::Null
                } else if y < 0.8 {
                    self.state.get(&key).cloned().unwrap_or(Value::Null)
                } else {
                    json!(self.rng.random_range(1..=4))
                };
                let new = self.fresh(&key);
                self.written
                    .entry(key.clone())
                    .or_default()
                    .push(new.clone());
                json!([expected, new])
            }
        };
        (f, key, arg)
    }

    /// Apply a live op to the store at this instant.
    fn apply(&mut self, op: &mut Live) {
        op.applied = true;
        let cur = self.state.get(&op.key).cloned();
        match op.f {
            Fun::Read => {
                op.result = match cur {
                    Some(v) => v,
                    // An absent list reads as [] or null: both mean empty.
                    None if self.list() && self.rng.random_bool(0.7) => json!([]),
                    None => Value::Null,
                };
            }
            Fun::Write => {
                self.state.insert(op.key.clone(), op.arg.clone());
            }
            Fun::Cas => {
                let cur = cur.unwrap_or(Value::Null);
                op.cas_ok = cur == op.arg[0];
                if op.cas_ok {
                    self.state.insert(op.key.clone(), op.arg[1].clone());
                }
            }
            Fun::Append => {
                let mut items = cur.and_then(|v| v.as_array().cloned()).unwrap_or_default();
                items.push(op.arg.clone());
                self.state.insert(op.key.clone(), Value::Array(items));
            }
        }
    }
}

fn ev(kind: EventType, op: &Live, value: Value, error: Option<&str>) -> Event {
    Event {
        index: 0,
        kind,
        process: op.process,
        f: op.f,
        key: op.key.clone(),
        value,
        time: 0,
        node: None,
        error: error.map(str::to_string),
    }
}

/// Number events and give them times in file order.
fn renumber(evs: &mut [Event]) {
    for (i, e) in evs.iter_mut().enumerate() {
        e.index = i as u64;
        e.time = i as u64 * 1000;
    }
}

/// A history of a simulated linearizable store: each op takes effect at one instant inside its
/// interval (or, for info and unfinished ops, at any instant after its invoke, or never).
fn simulate(rng: &mut ChaCha8Rng, shape: Shape) -> Vec<Event> {
    let nkeys = rng.random_range(1..=3);
    let keys: Vec<Option<String>> =
        if nkeys == 1 && shape.model != Model::Kv && rng.random_bool(0.5) {
            vec![None]
        } else {
            (0..nkeys).map(|i| Some(format!("k{i}"))).collect()
        };
    let nops = rng.random_range(shape.min_ops..=shape.max_ops);
    let nslots = if shape.overlap {
        nops
    } else {
        rng.random_range(1..=shape.max_slots)
    };
    let mut g = Gen {
        rng,
        shape,
        keys,
        next_value: HashMap::new(),
        written: HashMap::new(),
        state: HashMap::new(),
    };
    let mut slot_process: Vec<u64> = (0..nslots as u64).collect();
    let mut slot_busy = vec![false; nslots];
    let mut next_process = nslots as u64;
    let mut live: Vec<Live> = Vec::new();
    let mut evs: Vec<Event> = Vec::new();

    for _step in 0..100_000 {
        let idle: Vec<usize> = (0..nslots).filter(|&s| !slot_busy[s]).collect();
        let can_invoke = live.len() < nops && !idle.is_empty();
        let appliable: Vec<usize> = (0..live.len())
            .filter(|&i| {
                let o = &live[i];
                o.will_apply && !o.applied && (o.fate != Fate::Normal || !o.completed)
            })
            .collect();
        let completable: Vec<usize> = (0..live.len())
            .filter(|&i| {
                let o = &live[i];
                !o.completed
                    && match o.fate {
                        Fate::Normal => o.applied,
                        Fate::Fail | Fate::Info => true,
                        Fate::Never => false,
                    }
            })
            .collect();
        let must_finish = live
            .iter()
            .any(|o| !o.completed && matches!(o.fate, Fate::Normal | Fate::Fail | Fate::Info));
        if !can_invoke && !must_finish {
            break;
        }
        // Pick an action: invoke / apply / complete.
        let choice = if can_invoke && (g.shape.overlap || g.rng.random_bool(0.4)) {
            0
        } else {
            let mut options = Vec::new();
            if can_invoke {
                options.push(0);
            }
            if !appliable.is_empty() {
                options.push(1);
            }
            if !completable.is_empty() {
                options.push(2);
            }
            if g.shape.overlap && options.contains(&1) {
                1
            } else {
                *options.choose(g.rng).expect("some action is possible")
            }
        };
        match choice {
            0 => {
                let slot = *idle.choose(g.rng).expect("idle slot");
                let (f, key, arg) = g.new_op();
                let x: f64 = g.rng.random();
                let unknown = live
                    .iter()
                    .filter(|o| matches!(o.fate, Fate::Info | Fate::Never))
                    .count();
                let u = if unknown < g.shape.max_unknown {
                    g.shape.unknown_rate
                } else {
                    0.0
                };
                let fate = if x < u * 0.7 {
                    Fate::Info
                } else if x < u {
                    Fate::Never
                } else if x < u + 0.09 {
                    Fate::Fail
                } else {
                    Fate::Normal
                };
                let will_apply = match fate {
                    Fate::Normal => true,
                    Fate::Fail => false,
                    Fate::Info | Fate::Never => g.rng.random_bool(0.5),
                };
                let op = Live {
                    process: slot_process[slot],
                    slot,
                    f,
                    key,
                    arg: arg.clone(),
                    fate,
                    will_apply,
                    applied: false,
                    completed: false,
                    result: Value::Null,
                    cas_ok: false,
                };
                evs.push(ev(EventType::Invoke, &op, arg, None));
                if fate == Fate::Never {
                    // The worker gives up on it and continues as a new process.
                    slot_process[slot] = next_process;
                    next_process += 1;
                } else {
                    slot_busy[slot] = true;
                }
                live.push(op);
            }
            1 => {
                let i = *appliable.choose(g.rng).expect("appliable");
                g.apply(&mut live[i]);
            }
            _ => {
                let i = *completable.choose(g.rng).expect("completable");
                let op = &live[i];
                let e = match (op.fate, op.f) {
                    (Fate::Normal, Fun::Read) => ev(EventType::Ok, op, op.result.clone(), None),
                    (Fate::Normal, Fun::Cas) if !op.cas_ok => {
                        let err = if g.rng.random_bool(0.7) {
                            Some("mismatch")
                        } else {
                            None
                        };
                        ev(EventType::Fail, op, op.arg.clone(), err)
                    }
                    (Fate::Normal, _) => ev(EventType::Ok, op, op.arg.clone(), None),
                    (Fate::Fail, _) => {
                        let v = if op.f == Fun::Read {
                            Value::Null
                        } else {
                            op.arg.clone()
                        };
                        ev(EventType::Fail, op, v, Some("unavailable"))
                    }
                    (_, _) => {
                        let v = if op.f == Fun::Read {
                            Value::Null
                        } else {
                            op.arg.clone()
                        };
                        ev(EventType::Info, op, v, Some("timeout"))
                    }
                };
                evs.push(e);
                let slot = op.slot;
                slot_busy[slot] = false;
                if op.fate == Fate::Info {
                    slot_process[slot] = next_process;
                    next_process += 1;
                }
                live[i].completed = true;
            }
        }
    }
    renumber(&mut evs);
    evs
}

/// Values that appear anywhere in the history (for plausible mutations).
fn values_in(evs: &[Event]) -> Vec<Value> {
    let mut vals = vec![Value::Null];
    for e in evs {
        match &e.value {
            Value::Array(items) => vals.extend(items.iter().cloned()),
            Value::Null => {}
            v => vals.push(v.clone()),
        }
    }
    vals.push(json!(99));
    vals
}

/// Change a list as a buggy store might: lose, reorder, duplicate or invent an element.
fn mutate_list(rng: &mut ChaCha8Rng, items: &[Value], pool: &[Value]) -> Value {
    let mut items = items.to_vec();
    match rng.random_range(0..6) {
        0 if !items.is_empty() => {
            let i = rng.random_range(0..items.len());
            items.remove(i);
        }
        1 if items.len() >= 2 => {
            let i = rng.random_range(0..items.len() - 1);
            items.swap(i, i + 1);
        }
        2 if !items.is_empty() => {
            let i = rng.random_range(0..items.len());
            let x = items[i].clone();
            items.push(x);
        }
        3 => {
            let x = pool.choose(rng).cloned().unwrap_or(json!(99));
            if !x.is_null() {
                let i = rng.random_range(0..=items.len());
                items.insert(i, x);
            }
        }
        4 => items.reverse(),
        _ => {
            return if rng.random_bool(0.5) {
                Value::Null
            } else {
                json!([])
            }
        }
    }
    Value::Array(items)
}

/// A read result for `f` on a model, for turning an op into an ok read.
fn some_read_value(rng: &mut ChaCha8Rng, list: bool, pool: &[Value]) -> Value {
    if list {
        mutate_list(rng, &[], pool)
    } else {
        pool.choose(rng).cloned().unwrap_or(Value::Null)
    }
}

/// One random mutation of a history; `None` if the chosen mutation did not apply.
fn mutate_once(rng: &mut ChaCha8Rng, evs: &[Event], list: bool) -> Option<Vec<Event>> {
    let mut evs = evs.to_vec();
    let pool = values_in(&evs);
    let n = evs.len();
    if n == 0 {
        return None;
    }
    match rng.random_range(0..6) {
        // Change the value an ok read returned.
        0 => {
            let reads: Vec<usize> = (0..n)
                .filter(|&i| evs[i].kind == EventType::Ok && evs[i].f == Fun::Read)
                .collect();
            let &i = reads.choose(rng)?;
            evs[i].value = if list {
                let items = evs[i].value.as_array().cloned().unwrap_or_default();
                mutate_list(rng, &items, &pool)
            } else {
                let v = pool.choose(rng).cloned().unwrap_or(Value::Null);
                if v == evs[i].value {
                    return None;
                }
                v
            };
        }
        // Swap the values of two writes/appends/cas ops (both invoke and completion), or of two
        // reads' results.
        1 => {
            let pick_reads = rng.random_bool(0.3);
            let ops = ops_of(&evs);
            let cands: Vec<&Op> = ops
                .iter()
                .filter(|o| {
                    if pick_reads {
                        o.f == Fun::Read && o.outcome == Outcome::Ok
                    } else {
                        o.f != Fun::Read
                    }
                })
                .collect();
            if cands.len() < 2 {
                return None;
            }
            let a = cands[rng.random_range(0..cands.len())];
            let b = cands[rng.random_range(0..cands.len())];
            if a.id == b.id || a.value == b.value || (a.f == Fun::Cas) != (b.f == Fun::Cas) {
                return None;
            }
            let set = |evs: &mut Vec<Event>, o: &Op, v: &Value| {
                if o.f != Fun::Read {
                    evs[o.call].value = v.clone();
                }
                if let Some(r) = o.ret {
                    evs[r].value = v.clone();
                }
            };
            set(&mut evs, a, &b.value);
            set(&mut evs, b, &a.value);
        }
        // Change an outcome.
        2 => {
            let done: Vec<usize> = (0..n)
                .filter(|&i| evs[i].kind != EventType::Invoke)
                .collect();
            let &i = done.choose(rng)?;
            let e = &mut evs[i];
            let was_read_ok = e.f == Fun::Read && e.kind == EventType::Ok;
            let choices: &[(EventType, Option<&str>)] = if e.f == Fun::Cas {
                &[
                    (EventType::Ok, None),
                    (EventType::Fail, Some("mismatch")),
                    (EventType::Fail, None),
                    (EventType::Info, None),
                ]
            } else {
                &[
                    (EventType::Ok, None),
                    (EventType::Fail, None),
                    (EventType::Info, None),
                ]
            };
            let &(kind, err) = choices.choose(rng)?;
            if kind == e.kind && err == e.error.as_deref() {
                return None;
            }
            e.kind = kind;
            e.error = err.map(str::to_string);
            if e.f == Fun::Read {
                e.value = if kind == EventType::Ok && !was_read_ok {
                    some_read_value(rng, list, &pool)
                } else if kind == EventType::Ok {
                    e.value.clone()
                } else {
                    Value::Null
                };
            }
        }
        // Shift an interval: move one event elsewhere (pairing decides if the result is sane).
        3 => {
            let i = rng.random_range(0..n);
            let j = rng.random_range(0..n);
            if i == j {
                return None;
            }
            let e = evs.remove(i);
            evs.insert(j, e);
        }
        // Drop a completion: the op never finished (only legal for a process's last op).
        4 => {
            let done: Vec<usize> = (0..n)
                .filter(|&i| evs[i].kind != EventType::Invoke)
                .collect();
            let &i = done.choose(rng)?;
            let p = evs[i].process;
            if evs[i + 1..].iter().any(|e| e.process == p) {
                return None;
            }
            evs.remove(i);
        }
        // Change what a write/append/cas writes or expects.
        _ => {
            let ops = ops_of(&evs);
            let cands: Vec<&Op> = ops.iter().filter(|o| o.f != Fun::Read).collect();
            let o = *cands.choose(rng)?;
            let v = pool
                .iter()
                .filter(|v| !v.is_null())
                .collect::<Vec<_>>()
                .choose(rng)
                .map(|v| (*v).clone())?;
            let nv = if o.f == Fun::Cas {
                let mut a = o.value.as_array().cloned()?;
                let k = rng.random_range(0..2);
                a[k] = if k == 0 && rng.random_bool(0.3) {
                    Value::Null
                } else {
                    v
                };
                Value::Array(a)
            } else {
                v
            };
            if nv == o.value {
                return None;
            }
            evs[o.call].value = nv.clone();
            if let Some(r) = o.ret {
                evs[r].value = nv;
            }
        }
    }
    renumber(&mut evs);
    pair(&evs, &Source::memory(evs.len())).ok()?;
    Some(evs)
}

/// Apply one or two mutations (bounded retries).
fn mutate(rng: &mut ChaCha8Rng, evs: &[Event], list: bool) -> Vec<Event> {
    let mut cur = evs.to_vec();
    let want = rng.random_range(1..=2);
    let mut done = 0;
    for _attempt in 0..40 {
        if done == want {
            break;
        }
        if let Some(m) = mutate_once(rng, &cur, list) {
            cur = m;
            done += 1;
        }
    }
    cur
}

/// An oracle: is this history linearizable (`true` selects list-append)?
type Oracle = fn(&[Op], bool) -> bool;

/// What went wrong with one history, if anything: a verdict the oracle disagrees with, or a
/// counterexample that is not a projection of the history or is linearizable itself.
fn disagreement(evs: &[Event], model: Model, linearizable: Oracle) -> Option<String> {
    let list = model == Model::ListAppend;
    let ops = ops_of(evs);
    let expected = if linearizable(&ops, list) {
        Verdict::Valid
    } else {
        Verdict::Invalid
    };
    let multi_key = {
        let mut ks: Vec<&Option<String>> = ops.iter().map(|o| &o.key).collect();
        ks.sort();
        ks.dedup();
        ks.len() > 1
    };
    let mut runs = vec![true];
    if multi_key {
        runs.push(false);
    }
    for split in runs {
        let opts = CheckOptions {
            model: Some(model),
            split_keys: split,
            ..Default::default()
        };
        let res = match check(&ops, &opts) {
            Ok(r) => r,
            Err(e) => return Some(format!("split={split}: checker refused the history: {e}")),
        };
        if res.verdict != expected {
            return Some(format!(
                "split={split}: checker says {:?}, brute force says {expected:?}",
                res.verdict
            ));
        }
        if let Some(why) = check_keys(&ops, &res, list, split, linearizable) {
            return Some(format!("split={split}: {why}"));
        }
    }
    None
}

/// Per-key verdicts and counterexamples.
fn check_keys(
    ops: &[Op],
    res: &CheckResult,
    list: bool,
    split: bool,
    linearizable: Oracle,
) -> Option<String> {
    for k in &res.keys {
        let part: Vec<Op> = ops
            .iter()
            .filter(|o| !split || o.key == k.key)
            .cloned()
            .collect();
        let expected = if linearizable(&part, list) {
            Verdict::Valid
        } else {
            Verdict::Invalid
        };
        if k.verdict != expected {
            return Some(format!(
                "key {:?}: checker says {:?}, brute force says {expected:?}",
                k.key, k.verdict
            ));
        }
        if k.verdict != Verdict::Invalid {
            continue;
        }
        let Some(cx) = &k.counterexample else {
            return Some(format!("key {:?}: invalid without a counterexample", k.key));
        };
        if cx.ops.len() > part.len() {
            return Some(format!(
                "key {:?}: counterexample has {} ops, the key only {}",
                k.key,
                cx.ops.len(),
                part.len()
            ));
        }
        let mut witness = cx.ops.clone();
        for o in &mut witness {
            let Some(orig) = part.iter().find(|p| p.id == o.id) else {
                return Some(format!("counterexample op {} is not in the history", o.id));
            };
            if o.f != orig.f || o.key != orig.key || o.call != orig.call {
                return Some(format!(
                    "counterexample op {} differs from the history",
                    o.id
                ));
            }
            // A projected witness shows each read filtered to the projection's elements and
            // only appends of those elements; anything else would be an invented observation.
            let expected_value = match (&orig.value, cx.projection.is_empty()) {
                (serde_json::Value::Array(items), false) if o.f == Fun::Read => {
                    serde_json::Value::Array(
                        items
                            .iter()
                            .filter(|v| cx.projection.contains(v))
                            .cloned()
                            .collect(),
                    )
                }
                _ => orig.value.clone(),
            };
            if o.value != expected_value
                || (!cx.projection.is_empty()
                    && o.f == Fun::Append
                    && !cx.projection.contains(&o.value))
            {
                return Some(format!(
                    "counterexample op {} shows {} where the history, projected onto {:?}, has {}",
                    o.id, o.value, cx.projection, expected_value
                ));
            }
            if cx.weakened.contains(&o.id) {
                o.outcome = Outcome::Info;
            } else if o.outcome != orig.outcome {
                return Some(format!(
                    "counterexample op {} changed outcome without being listed as weakened",
                    o.id
                ));
            }
        }
        if linearizable(&witness, list) {
            let evs = unpair(&witness);
            return Some(format!(
                "key {:?}: the counterexample is linearizable per the brute force:\n{}",
                k.key,
                jsonl(&evs)
            ));
        }
    }
    None
}

/// Greedily drop whole ops while the disagreement persists (bounded).
fn minimize(evs: &[Event], model: Model, linearizable: Oracle) -> Vec<Event> {
    let mut cur = evs.to_vec();
    for _round in 0..evs.len() {
        let ops = ops_of(&cur);
        let mut shrunk = false;
        for skip in 0..ops.len() {
            let rest: Vec<Op> = ops.iter().filter(|o| o.id != skip).cloned().collect();
            let mut cand = unpair(&rest);
            renumber(&mut cand);
            if pair(&cand, &Source::memory(cand.len())).is_ok()
                && disagreement(&cand, model, linearizable).is_some()
            {
                cur = cand;
                shrunk = true;
                break;
            }
        }
        if !shrunk {
            break;
        }
    }
    cur
}

/// What to generate in one run.
#[derive(Clone, Copy)]
struct Plan {
    model: Model,
    seed: u64,
    histories: usize,
    /// Long histories of low concurrency (checked with the memoized oracle) instead of tiny ones.
    long: bool,
}

/// Generate histories, compare everything, return (valid, invalid).
fn run(plan: Plan) -> (usize, usize) {
    let Plan {
        model,
        seed,
        histories: n,
        long,
    } = plan;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let list = model == Model::ListAppend;
    let linearizable: Oracle = if long {
        linearizable_memo
    } else {
        linearizable
    };
    let (mut valid, mut invalid) = (0usize, 0usize);
    let mut failures: Vec<String> = Vec::new();
    let (mut with_info, mut with_mismatch) = (0usize, 0usize);
    for case in 0..n {
        let shape = if long {
            Shape {
                model,
                overlap: false,
                repeat: rng.random_bool(0.3),
                strings: rng.random_bool(0.1),
                min_ops: 65,
                max_ops: 140,
                max_slots: 3,
                unknown_rate: 0.03,
                max_unknown: 3,
            }
        } else {
            Shape {
                model,
                overlap: rng.random_bool(0.25),
                repeat: rng.random_bool(0.3),
                strings: rng.random_bool(0.15),
                min_ops: 1,
                max_ops: MAX_OPS,
                max_slots: 4,
                unknown_rate: 0.23,
                max_unknown: MAX_OPS,
            }
        };
        let base = simulate(&mut rng, shape);
        let mutated = case % 2 == 1;
        if !mutated {
            // The simulated store is linearizable: the oracle must agree (tests the tests).
            assert!(
                linearizable(&ops_of(&base), list),
                "oracle rejects a simulated history ({model:?}, case {case}):\n{}",
                jsonl(&base)
            );
        }
        let evs = if !mutated {
            base
        } else if rng.random_bool(0.2) {
            mutate(&mut rng, &base, list)
        } else {
            // Seek a violation: most single mutations of a small history stay linearizable.
            let mut m = mutate(&mut rng, &base, list);
            for _try in 0..if long { 4 } else { 12 } {
                if !linearizable(&ops_of(&m), list) {
                    break;
                }
                m = mutate(&mut rng, &base, list);
            }
            m
        };
        let ops = ops_of(&evs);
        if ops
            .iter()
            .any(|o| o.outcome == Outcome::Info && o.f != Fun::Read)
        {
            with_info += 1;
        }
        if ops.iter().any(|o| o.outcome == Outcome::Mismatch) {
            with_mismatch += 1;
        }
        if linearizable(&ops, list) {
            valid += 1;
        } else {
            invalid += 1;
        }
        if let Some(why) = disagreement(&evs, model, linearizable) {
            if failures.len() < 5 {
                let small = minimize(&evs, model, linearizable);
                let why_small = disagreement(&small, model, linearizable).unwrap_or_default();
                failures.push(format!(
                    "model {} seed {seed} case {case} {shape:?}: {why}\nhistory:\n{}\n\
                     minimized ({why_small}):\n{}\n",
                    model.name(),
                    jsonl(&evs),
                    jsonl(&small)
                ));
            } else {
                failures.push(String::new());
            }
        }
    }
    let total = valid + invalid;
    eprintln!(
        "{}{}: {total} histories, {valid} valid, {invalid} invalid ({with_info} with info \
         writes, {with_mismatch} with mismatched cas), {} disagreements",
        model.name(),
        if long { " (long)" } else { "" },
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {total} {} histories disagree with the brute force; first ones:\n{}",
        failures.len(),
        model.name(),
        failures.join("\n")
    );
    assert!(
        valid * 5 >= total,
        "too few valid histories: {valid} of {total}"
    );
    assert!(
        invalid * 5 >= total,
        "too few invalid histories: {invalid} of {total}"
    );
    (valid, invalid)
}

/// Tiny histories per model: 4 x 6,000 = 24,000 in all.
const PER_MODEL: usize = 6_000;

/// Long histories per model (more than 64 ops, so the search's set windows span words).
const LONG_PER_MODEL: usize = 40;

/// `BRUTE_FORCE_SCALE=N` multiplies the number of histories (for a longer hunt, e.g. in a
/// release build); `BRUTE_FORCE_SEED=S` shifts every seed.
fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn tiny(model: Model, seed: u64) {
    run(Plan {
        model,
        seed: seed + env("BRUTE_FORCE_SEED", 0) * 1000,
        histories: PER_MODEL * env("BRUTE_FORCE_SCALE", 1) as usize,
        long: false,
    });
}

fn long(model: Model, seed: u64) {
    run(Plan {
        model,
        seed: seed + env("BRUTE_FORCE_SEED", 0) * 1000,
        histories: LONG_PER_MODEL * env("BRUTE_FORCE_SCALE", 1) as usize,
        long: true,
    });
}

#[test]
fn register_agrees_with_brute_force() {
    tiny(Model::Register, 1);
}

#[test]
fn cas_register_agrees_with_brute_force() {
    tiny(Model::CasRegister, 2);
}

#[test]
fn kv_agrees_with_brute_force() {
    tiny(Model::Kv, 3);
}

#[test]
fn list_append_agrees_with_brute_force() {
    tiny(Model::ListAppend, 4);
}

#[test]
fn long_histories_agree_with_memoized_brute_force() {
    for (i, model) in Model::ALL.into_iter().enumerate() {
        long(model, 100 + i as u64);
    }
}

/// The oracle itself, on the histories the issue names, so a broken oracle cannot make the
/// comparison above vacuous.
#[test]
fn oracle_sanity() {
    use common::ops;
    // Stale read after a completed write.
    assert!(!linearizable(
        &ops(&[
            "p1 invoke write 1",
            "p1 ok write 1",
            "p2 invoke read",
            "p2 ok read nil"
        ]),
        false
    ));
    // The history: valid only through the unobserved info write 2.
    let with_w2 = [
        "p1 invoke write 1",
        "p1 ok write 1",
        "p2 invoke write 2",
        "p3 invoke cas [1,3]",
        "p3 fail cas [1,3] mismatch",
        "p2 info write 2",
        "p4 invoke write 4",
        "p4 ok write 4",
        "p4 invoke read",
        "p4 ok read 4",
    ];
    assert!(linearizable(&ops(&with_w2), false));
    let without: Vec<&str> = with_w2
        .iter()
        .copied()
        .filter(|l| !l.contains("2"))
        .collect();
    assert!(!linearizable(&ops(&without), false));
    // A plain fail observes nothing.
    let plain: Vec<String> = without.iter().map(|l| l.replace(" mismatch", "")).collect();
    let plain: Vec<&str> = plain.iter().map(String::as_str).collect();
    assert!(linearizable(&ops(&plain), false));
    // Lists: null is the empty list; order matters.
    assert!(linearizable(
        &ops(&["p1 invoke read", "p1 ok read nil"]),
        true
    ));
    assert!(!linearizable(
        &ops(&[
            "p1 invoke append 1",
            "p2 invoke append 2",
            "p1 ok append 1",
            "p2 ok append 2",
            "p3 invoke read",
            "p3 ok read [1,2]",
            "p3 invoke read",
            "p3 ok read [2,1]",
        ]),
        true
    ));
}
