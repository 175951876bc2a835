//! Counterexamples a person can read: shrink an invalid key's history to a handful of ops.
//!
//! Shrinking must not invent a violation: the witness must be invalid *because* the original
//! is. So the shrinker only applies changes that relax the history, i.e. that can only turn an
//! invalid history valid, never the reverse; if the relaxed history is still invalid, so is the
//! original. The relaxations:
//! - cut the history after some point (linearizability is prefix-closed: ops still running at
//!   the cut become unknown);
//! - drop an observation (an ok read, or a mismatched cas): fewer constraints;
//! - turn a completed write, cas or append into an unknown one: it may now take effect later or
//!   never, a superset of what it could do before.
//!
//! Dropping a write outright is *not* a relaxation (a read of its value would lose its source),
//! which is why writes are weakened instead; the preparer then drops those nobody observed.

use super::model::Model;
use super::prepare::prepare;
use super::search::{search, Limits, Outcome as SearchOutcome, Stats};
use super::Counterexample;
use crate::history::{brief, Fun, Op, Outcome};
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

/// Time a single key may spend shrinking; the witness found so far is used when it runs out.
const BUDGET: Duration = Duration::from_secs(3);

/// Time the final explanation gets of its own, after shrinking (which may have used all of
/// its budget).
const EXPLAIN_BUDGET: Duration = Duration::from_secs(2);

/// Each shrinking attempt may explore at most this many times the states the original search
/// needed (and at least `MIN_ATTEMPT_STATES`). A relaxation can make a history much harder to
/// search (weakened writes become concurrent); such an attempt is abandoned and the
/// relaxation not taken, which keeps the witness cheap to explain. Unknown is never taken as
/// invalid, so this bound cannot make a witness unsound.
const ATTEMPT_FACTOR: u64 = 4;
const MIN_ATTEMPT_STATES: u64 = 5_000;

/// Build the counterexample for an invalid key's ops.
pub(crate) fn counterexample(
    ops: Vec<Op>,
    model: Model,
    limits: &Limits<'_>,
    shrink: bool,
    original_states: u64,
) -> Counterexample {
    let mut deadline = Instant::now() + BUDGET;
    if let Some(d) = limits.deadline {
        deadline = deadline.min(d.max(Instant::now() + Duration::from_millis(200)));
    }
    let used = AtomicU64::new(0);
    let attempt_states = original_states
        .saturating_mul(ATTEMPT_FACTOR)
        .max(MIN_ATTEMPT_STATES);
    let local = Limits {
        deadline: Some(deadline),
        memory_limit: limits.memory_limit / 4,
        memory_used: &used,
        max_states: attempt_states,
    };
    let original: HashMap<usize, Outcome> = ops.iter().map(|o| (o.id, o.outcome)).collect();
    let mut cur = ops;
    if shrink {
        cur = cut_prefix(cur, model, &local);
        // Observations first: dropping reads never makes the search harder, and with fewer
        // readers, weakened writes are less often pinned into a pile of concurrent ops.
        cur = relax(cur, model, &local, Relax::Observations);
        cur = relax(cur, model, &local, Relax::Writes);
    }
    let explain_limits = Limits {
        deadline: Some(Instant::now() + EXPLAIN_BUDGET),
        memory_limit: limits.memory_limit / 4,
        memory_used: &used,
        max_states: attempt_states.saturating_mul(4),
    };
    explain(cur, &original, model, &explain_limits)
}

fn invalid(ops: &[Op], model: Model, limits: &Limits<'_>) -> bool {
    let refs: Vec<&Op> = ops.iter().collect();
    let mut p = prepare(&refs, model);
    matches!(
        search(&mut p, limits, false, &mut Stats::default()),
        SearchOutcome::NotLinearizable(_)
    )
}

/// The history up to (not including) event position `cut`.
fn truncate(ops: &[Op], cut: usize) -> Vec<Op> {
    ops.iter()
        .filter(|o| o.call < cut)
        .map(|o| {
            let mut o = o.clone();
            if o.ret.is_none_or(|r| r >= cut) {
                o.outcome = Outcome::Info;
            }
            o
        })
        .collect()
}

/// Binary search for the shortest invalid prefix (monotone: a longer prefix of an invalid
/// prefix is invalid).
fn cut_prefix(ops: Vec<Op>, model: Model, limits: &Limits<'_>) -> Vec<Op> {
    let mut cuts: Vec<usize> = ops
        .iter()
        .flat_map(|o| [Some(o.call), o.ret])
        .flatten()
        .map(|p| p + 1)
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    // Invariant: cutting at cuts[hi] is invalid (the last cut keeps everything).
    let (mut lo, mut hi) = (0usize, cuts.len().saturating_sub(1));
    while lo < hi {
        let mid = (lo + hi) / 2;
        if invalid(&truncate(&ops, cuts[mid]), model, limits) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    match cuts.get(hi) {
        Some(&c) => truncate(&ops, c),
        None => ops,
    }
}

/// Which relaxations a pass applies.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Relax {
    /// Drop reads, mismatched cas and failed ops.
    Observations,
    /// Turn completed writes, cas and appends into unknown ones.
    Writes,
}

/// Apply one relaxation to an op; `None` when the pass has none for it, `Some(None)` drops it.
fn relaxed(o: &Op, pass: Relax) -> Option<Option<Op>> {
    match (o.f, o.outcome) {
        (Fun::Read, _) | (_, Outcome::Mismatch) | (_, Outcome::Fail) => {
            (pass == Relax::Observations).then_some(None)
        }
        (_, Outcome::Ok) if pass == Relax::Writes => {
            let mut w = o.clone();
            w.outcome = Outcome::Info;
            Some(Some(w))
        }
        // Unknown writes stay: removing one would force "never happened".
        _ => None,
    }
}

/// Delta-debugging over relaxations: try relaxing chunks, halving the chunk size, keeping every
/// change after which the history is still invalid.
fn relax(mut ops: Vec<Op>, model: Model, limits: &Limits<'_>, pass: Relax) -> Vec<Op> {
    let mut chunk = ops.len().div_ceil(2).max(1);
    loop {
        let mut i = 0;
        while i < ops.len() {
            if limits.deadline.is_some_and(|d| Instant::now() >= d) {
                return ops;
            }
            let end = (i + chunk).min(ops.len());
            let mut trial: Vec<Op> = ops[..i].to_vec();
            let mut changed = false;
            for o in &ops[i..end] {
                match relaxed(o, pass) {
                    Some(r) => {
                        changed = true;
                        trial.extend(r);
                    }
                    None => trial.push(o.clone()),
                }
            }
            let kept = trial.len();
            trial.extend_from_slice(&ops[end..]);
            if changed && invalid(&trial, model, limits) {
                ops = trial;
                // Ops that were weakened in place stay at their positions; continue after them.
                i = kept;
            } else {
                i = end;
            }
        }
        if chunk == 1 {
            return ops;
        }
        chunk = chunk.div_ceil(2);
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
    use serde_json::json;

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
