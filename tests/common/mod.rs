//! Shared test helpers: an exhaustive linearizability oracle written from the specification
//! (DESIGN.md "History" and issue 3), independent of the checker's code, and a tiny parser that
//! turns lines like `"p1 invoke write 1"` into history events.
//!
//! The oracle is deliberately naive: a depth-first search over every sequence of operations that
//! respects real-time order, without memo or pruning beyond "the model rejects this step". It is
//! meant for histories of a handful of operations only.

#![allow(dead_code)]

use raftcheck::history::{pair, Event, EventType, Fun, Op, Outcome, Source, Value};
use std::collections::HashSet;

/// What one operation does in the oracle's sequential specification.
#[derive(Clone, Debug)]
enum Act {
    /// A register read that returned this value (null: absent).
    Read(Value),
    /// A list read that returned this list (null was turned into the empty list).
    ReadList(Vec<Value>),
    /// Overwrite the register.
    Write(Value),
    /// Compare-and-set: for a completed (ok) cas the compare must succeed; for an info cas a
    /// failed compare means "did nothing".
    Cas(Value, Value),
    /// A cas whose compare failed: the state was not this value; changes nothing.
    Mismatch(Value),
    /// Append an element to the list.
    Append(Value),
}

/// One operation as the oracle sees it.
#[derive(Clone, Debug)]
struct Cand {
    /// Index of the key (each distinct `Op::key`, `None` included, is its own key).
    key: usize,
    act: Act,
    /// Must take effect (ok, or a mismatched cas, which must be placed as an observation).
    /// Otherwise the op is `info`: it takes effect at most once, at any point after its invoke.
    required: bool,
    /// File position of the invocation.
    call: usize,
    /// File position of the completion; `usize::MAX` for info ops (they never precede anything).
    ret: usize,
}

/// Is this (paired) history linearizable? `list` selects the list-append model; otherwise each
/// key is a register (with cas when the history has cas ops). Keys are independent registers or
/// lists, but the oracle checks them together, as one map, so it does not rely on locality.
pub fn linearizable(ops: &[Op], list: bool) -> bool {
    oracle(ops, list, false)
}

/// The same oracle, remembering the (placed ops, state) pairs it has already explored, so it
/// copes with long histories of low concurrency. What follows a node depends only on which
/// ops are placed and on the state, so a node explored once without success fails again.
pub fn linearizable_memo(ops: &[Op], list: bool) -> bool {
    oracle(ops, list, true)
}

fn oracle(ops: &[Op], list: bool, memo: bool) -> bool {
    let mut keys: Vec<Option<String>> = Vec::new();
    let mut cands: Vec<Cand> = Vec::new();
    for o in ops {
        let required = match o.outcome {
            Outcome::Ok | Outcome::Mismatch => true,
            Outcome::Info => false,
            // A plain fail took no effect and observed nothing.
            Outcome::Fail => continue,
        };
        let act = match (o.f, o.outcome) {
            // An info read constrains nothing.
            (Fun::Read, Outcome::Info) => continue,
            (Fun::Read, _) if list => Act::ReadList(match &o.value {
                Value::Null => vec![],
                Value::Array(items) => items.clone(),
                other => panic!("a list read returned {other}"),
            }),
            (Fun::Read, _) => Act::Read(o.value.clone()),
            (Fun::Write, _) => Act::Write(o.value.clone()),
            (Fun::Append, _) => Act::Append(o.value.clone()),
            (Fun::Cas, outcome) => {
                let (a, b) = (o.value[0].clone(), o.value[1].clone());
                if outcome == Outcome::Mismatch {
                    Act::Mismatch(a)
                } else {
                    Act::Cas(a, b)
                }
            }
        };
        let key = match keys.iter().position(|k| *k == o.key) {
            Some(k) => k,
            None => {
                keys.push(o.key.clone());
                keys.len() - 1
            }
        };
        let ret = if required {
            o.ret.expect("a completed op has a completion position")
        } else {
            usize::MAX
        };
        cands.push(Cand {
            key,
            act,
            required,
            call: o.call,
            ret,
        });
    }
    let initial = if list {
        Value::Array(vec![])
    } else {
        Value::Null
    };
    let mut state = vec![initial; keys.len()];
    let mut placed = vec![false; cands.len()];
    let left = cands.iter().filter(|c| c.required).count();
    let mut memo = memo.then(HashSet::new);
    dfs(&cands, &mut placed, &mut state, left, &mut memo)
}

/// Explored (placed ops, state) nodes, for [`linearizable_memo`].
type Memo = Option<HashSet<(Vec<bool>, String)>>;

/// Try every op that may go next; succeed once every required op is placed (the info ops not
/// placed never took effect).
fn dfs(c: &[Cand], placed: &mut [bool], state: &mut [Value], left: usize, memo: &mut Memo) -> bool {
    if left == 0 {
        return true;
    }
    if let Some(seen) = memo {
        let node = (
            placed.to_vec(),
            serde_json::to_string(&*state).expect("state"),
        );
        if !seen.insert(node) {
            return false;
        }
    }
    // Real time: every required op that completed before op i was invoked goes before i. So
    // op i may go next iff it was invoked before the earliest completion of an unplaced
    // required op.
    let first_ret = (0..c.len())
        .filter(|&j| !placed[j] && c[j].required)
        .map(|j| c[j].ret)
        .min()
        .unwrap_or(usize::MAX);
    for i in 0..c.len() {
        if placed[i] || c[i].call > first_ret {
            continue;
        }
        let cur = &state[c[i].key];
        let next: Option<Value> = match &c[i].act {
            Act::Read(v) => (cur == v).then(|| cur.clone()),
            Act::ReadList(items) => (cur.as_array() == Some(items)).then(|| cur.clone()),
            Act::Write(v) => Some(v.clone()),
            Act::Cas(a, b) => {
                if cur == a {
                    Some(b.clone())
                } else if !c[i].required {
                    Some(cur.clone())
                } else {
                    None
                }
            }
            Act::Mismatch(a) => (cur != a).then(|| cur.clone()),
            Act::Append(x) => {
                let mut items = cur.as_array().cloned().expect("list state");
                items.push(x.clone());
                Some(Value::Array(items))
            }
        };
        let Some(next) = next else { continue };
        let before = std::mem::replace(&mut state[c[i].key], next);
        placed[i] = true;
        let found = dfs(c, placed, state, left - usize::from(c[i].required), memo);
        placed[i] = false;
        state[c[i].key] = before;
        if found {
            return true;
        }
    }
    false
}

/// Parse one history line: `p<process> <invoke|ok|fail|info> <f> [value] [@key] [mismatch]
/// [!error]`. The value is JSON (`nil` is accepted for null); a read invoke needs no value.
pub fn event(line: &str) -> Event {
    let toks: Vec<&str> = line.split_whitespace().collect();
    assert!(toks.len() >= 3, "bad history line {line:?}");
    let process: u64 = toks[0]
        .strip_prefix('p')
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("bad process in {line:?}"));
    let kind = match toks[1] {
        "invoke" => EventType::Invoke,
        "ok" => EventType::Ok,
        "fail" => EventType::Fail,
        "info" => EventType::Info,
        other => panic!("bad event type {other:?} in {line:?}"),
    };
    let f = match toks[2] {
        "read" => Fun::Read,
        "write" => Fun::Write,
        "cas" => Fun::Cas,
        "append" => Fun::Append,
        other => panic!("bad function {other:?} in {line:?}"),
    };
    let mut key = None;
    let mut error = None;
    let mut value_toks = Vec::new();
    for t in &toks[3..] {
        if let Some(k) = t.strip_prefix('@') {
            key = Some(k.to_string());
        } else if *t == "mismatch" {
            error = Some("mismatch".to_string());
        } else if let Some(e) = t.strip_prefix('!') {
            error = Some(e.to_string());
        } else {
            value_toks.push(*t);
        }
    }
    let text = value_toks.join(" ").replace("nil", "null");
    let value: Value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad value in {line:?}: {e}"))
    };
    Event {
        index: 0,
        kind,
        process,
        f,
        key,
        value,
        time: 0,
        node: None,
        error,
    }
}

/// Parse history lines into events, numbered in order.
pub fn events(lines: &[&str]) -> Vec<Event> {
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let mut e = event(l);
            e.index = i as u64;
            e.time = i as u64 * 1000;
            e
        })
        .collect()
}

/// Pair events into ops (panics on bad input: test histories are well formed).
pub fn ops_of(evs: &[Event]) -> Vec<Op> {
    pair(evs, &Source::memory(evs.len())).expect("well-paired history")
}

/// Parse history lines straight into ops.
pub fn ops(lines: &[&str]) -> Vec<Op> {
    ops_of(&events(lines))
}

/// The history as JSONL, for reproducing a failure with `raftcheck check`.
pub fn jsonl(evs: &[Event]) -> String {
    evs.iter()
        .map(|e| serde_json::to_string(e).expect("event serializes"))
        .collect::<Vec<_>>()
        .join("\n")
}
