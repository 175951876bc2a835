//! The linearizability checker: models, the search, partitioning, counterexamples.
//!
//! Entry point: [`check`]. It splits a history per key (P-compositionality: a history of
//! independent keys is linearizable iff each key's sub-history is), prepares each part
//! ([`prepare`]: pruning and settling that provably keep the verdict), runs the Wing–Gong/Lowe
//! search on each in parallel ([`search`]), and for each invalid key shrinks the history to a
//! small witness ([`shrink`]). Every key keeps its own verdict; the overall verdict merges them
//! with invalid over unknown over valid, as Jepsen does.
//!
//! Imports only [`crate::history`]: the checker is pure and never sees a cluster.

pub mod model;
pub(crate) mod prepare;
pub(crate) mod search;
pub(crate) mod shrink;
pub mod synth;

pub use model::Model;

use crate::history::{Op, Value};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

/// The three-way answer, carried unchanged to the exit code (0 / 1 / 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Linearizable: some order of the ops, each taking effect between its call and its return,
    /// explains every result.
    Valid,
    /// The checker could not decide within its limits.
    Unknown,
    /// Not linearizable: a counterexample exists.
    Invalid,
}

impl Verdict {
    /// Merge two verdicts: invalid beats unknown beats valid.
    pub fn merge(self, other: Verdict) -> Verdict {
        self.max(other)
    }

    /// The lower-case name used in results.json, the matrix tables and printed output (`valid`,
    /// `invalid`, `unknown`).
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::Invalid => "invalid",
            Verdict::Unknown => "unknown",
        }
    }
}

/// How to check. The defaults suit a CI run: no time limit, 2 GiB of memo, split per key.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// The model; inferred from the ops when `None`.
    pub model: Option<Model>,
    /// Wall-clock limit for the whole check; keys not finished by then are `unknown`.
    pub time_limit: Option<Duration>,
    /// Bytes of search memo all keys may hold together; past it, keys end `unknown`.
    pub memory_limit: u64,
    /// Check each key on its own (P-compositionality). Off: one search over all keys.
    pub split_keys: bool,
    /// Shrink counterexamples to a few ops (costs a little time per invalid key).
    pub shrink: bool,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            model: None,
            time_limit: None,
            memory_limit: 2 << 30,
            split_keys: true,
            shrink: true,
        }
    }
}

/// A history the checker cannot judge (bad input, not a verdict).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// An operation the model has no meaning for.
    #[error("op {op}: {msg}")]
    Model {
        /// The offending op's [`Op::id`] (its position in the paired list).
        op: usize,
        /// Why it does not fit.
        msg: String,
    },
}

/// Why a counterexample is what it is: the witness ops and where the search got stuck.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Counterexample {
    /// A small history that is itself not linearizable, and whose failure implies the
    /// original's: some of the original's ops (list reads possibly projected, see
    /// `projection`), chosen so that each dropped op only removes constraints, and some
    /// completed writes treated as unknown.
    pub ops: Vec<Op>,
    /// Ids of ops that the shrinker turned from completed into unknown.
    pub weakened: Vec<usize>,
    /// For a list-append witness, the elements it was projected onto: its reads show only
    /// these elements, in the order read. A projection of a linearizable history is
    /// linearizable, so an invalid projection proves the original invalid, and two or three
    /// elements are what a person can follow. Empty when the witness was not projected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub projection: Vec<Value>,
    /// The longest linearizable order found, as op ids.
    pub linearized: Vec<usize>,
    /// The model's state after `linearized`, as JSON (a register's value, a list, or an array of
    /// them for several slots); null when the search ran out of budget.
    pub state: Value,
    /// The completed op that had to be placed next but could not be, if any.
    pub unplaced: Option<usize>,
    /// Ops that could have gone next but led nowhere.
    pub candidates: Vec<usize>,
    /// A sentence for people (text summary, report, JUnit, first finding): how many ops linearized,
    /// the state then, and which op could not take effect.
    pub explanation: String,
}

/// The verdict and figures for one key (or the whole history when not split).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyResult {
    /// The key; `None` for a single-register history or an unsplit check.
    pub key: Option<String>,
    /// The key's own verdict.
    pub verdict: Verdict,
    /// Ops in this key's sub-history as paired, before `pruned` of them were removed.
    pub ops: usize,
    /// Ops removed by sound pruning before the search.
    pub pruned: usize,
    /// Unknown writes pinned down by an observation before the search.
    pub settled: usize,
    /// Memo entries the search created.
    pub states: u64,
    /// The most memory this key's search memo held at once, in bytes; all keys together stay under
    /// the check's `memory_limit`.
    pub peak_bytes: u64,
    /// Wall time of this key's search, milliseconds.
    pub millis: f64,
    /// Why the verdict is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Set for an invalid key only: the witness, shrunk unless shrinking was turned off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counterexample: Option<Counterexample>,
}

/// The checker's whole answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckResult {
    /// Every key's verdict merged, invalid over unknown over valid; unknown for a history with no
    /// ops.
    pub verdict: Verdict,
    /// The model the ops were checked against: the one asked for, or inferred from the ops.
    pub model: Model,
    /// Ops in the paired history, all keys together, before pruning.
    pub ops: usize,
    /// Wall time of the check, milliseconds.
    pub millis: f64,
    /// Why the verdict is unknown, if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Per key, invalid keys first, then unknown, then valid, by key.
    pub keys: Vec<KeyResult>,
}

/// The reason an empty history is unknown rather than valid.
pub(crate) const NO_OPERATIONS: &str = "the history has no operations: it tested nothing";

/// Check a paired history. An empty one is [`Verdict::Unknown`] ([`NO_OPERATIONS`]).
pub fn check(ops: &[Op], opts: &CheckOptions) -> Result<CheckResult, CheckError> {
    let start = Instant::now();
    let model = opts.model.unwrap_or_else(|| Model::infer(ops));
    if ops.is_empty() {
        // Vacuously linearizable, but a history with no operations tested nothing: saying
        // valid would let an empty or truncated file pass a release gate.
        return Ok(CheckResult {
            verdict: Verdict::Unknown,
            model,
            ops: 0,
            millis: start.elapsed().as_secs_f64() * 1e3,
            reason: Some(NO_OPERATIONS.to_string()),
            keys: Vec::new(),
        });
    }
    model
        .validate(ops)
        .map_err(|(op, msg)| CheckError::Model { op, msg })?;
    let mut groups: BTreeMap<Option<&str>, Vec<&Op>> = BTreeMap::new();
    for o in ops {
        let k = if opts.split_keys {
            o.key.as_deref()
        } else {
            None
        };
        groups.entry(k).or_default().push(o);
    }
    let mut groups: Vec<(Option<String>, Vec<&Op>)> = groups
        .into_iter()
        .map(|(k, v)| (k.map(str::to_string), v))
        .collect();
    // Biggest first, so the long poles start early.
    groups.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
    let used = AtomicU64::new(0);
    let limits = search::Limits {
        deadline: opts.time_limit.map(|t| start + t),
        memory_limit: opts.memory_limit,
        memory_used: &used,
        max_states: u64::MAX,
    };
    let mut keys: Vec<KeyResult> = if groups.len() == 1 {
        // One part: no thread hand-off (it costs more than a small history's whole check).
        groups
            .into_iter()
            .map(|(key, part)| check_part(key, &part, model, &limits, opts.shrink))
            .collect()
    } else {
        groups
            .into_par_iter()
            .map(|(key, part)| check_part(key, &part, model, &limits, opts.shrink))
            .collect()
    };
    keys.sort_by(|a, b| b.verdict.cmp(&a.verdict).then_with(|| a.key.cmp(&b.key)));
    let verdict = keys.iter().fold(Verdict::Valid, |v, k| v.merge(k.verdict));
    let reason = (verdict == Verdict::Unknown).then(|| {
        let n = keys
            .iter()
            .filter(|k| k.verdict == Verdict::Unknown)
            .count();
        let why = keys
            .iter()
            .find_map(|k| k.reason.clone())
            .unwrap_or_default();
        format!("{n} of {} keys undecided: {why}", keys.len())
    });
    Ok(CheckResult {
        verdict,
        model,
        ops: ops.len(),
        millis: start.elapsed().as_secs_f64() * 1e3,
        reason,
        keys,
    })
}

fn check_part(
    key: Option<String>,
    part: &[&Op],
    model: Model,
    limits: &search::Limits<'_>,
    shrink: bool,
) -> KeyResult {
    let start = Instant::now();
    let mut problem = prepare::prepare(part, model);
    let mut stats = search::Stats::default();
    // The deepest dead end costs little to keep and tells the shrinker where to start.
    let outcome = search::search(&mut problem, limits, shrink, &mut stats);
    let mut res = KeyResult {
        key,
        verdict: Verdict::Valid,
        ops: part.len(),
        pruned: problem.dropped,
        settled: problem.settled,
        states: stats.states,
        peak_bytes: stats.bytes,
        millis: 0.0,
        reason: None,
        counterexample: None,
    };
    match outcome {
        search::Outcome::Linearizable => {}
        search::Outcome::Unknown(why) => {
            res.verdict = Verdict::Unknown;
            res.reason = Some(
                match why {
                    search::Exhausted::Time => "time limit reached",
                    search::Exhausted::Memory => "memory limit reached",
                    search::Exhausted::States => "state limit reached",
                }
                .to_string(),
            );
        }
        search::Outcome::NotLinearizable(deepest) => {
            res.verdict = Verdict::Invalid;
            let owned = part.iter().map(|&o| o.clone()).collect();
            let stuck = deepest
                .and_then(|d| d.stuck)
                .map(|s| problem.ops[s as usize].orig);
            res.counterexample = Some(shrink::counterexample(
                owned,
                model,
                limits,
                shrink,
                stats.states,
                stuck,
            ));
        }
    }
    res.millis = start.elapsed().as_secs_f64() * 1e3;
    res
}
