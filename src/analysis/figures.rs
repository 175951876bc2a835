//! Figures a run's results carry, computed from what was recorded: op counts, latency quantiles,
//! leader changes, the unavailability around them, the first violation. Pure functions of the
//! store's records, shared by the run (which writes them into results.json), the report and the
//! matrix, so all three say the same.

use crate::client::Role;
use crate::history::{Fun, Op, Outcome};
use crate::store::{
    LeaderChange, OpCounts, Quantiles, RunResults, Sample, Unavailability, UnavailableWindow,
};
use std::collections::BTreeMap;

/// Count ops by f and outcome, the table every report shows first.
pub fn op_counts(ops: &[Op]) -> OpCounts {
    let mut m = OpCounts::new();
    for o in ops {
        let outcome = match o.outcome {
            Outcome::Ok => "ok",
            Outcome::Fail | Outcome::Mismatch => "fail",
            Outcome::Info => "info",
        };
        *m.entry(o.f.name().to_string())
            .or_default()
            .entry(outcome.to_string())
            .or_default() += 1;
    }
    m
}

/// Latency quantiles of ok ops by function.
pub fn latency(ops: &[Op]) -> BTreeMap<String, Quantiles> {
    let mut by: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for o in ops.iter().filter(|o| o.outcome == Outcome::Ok) {
        if let Some(r) = o.ret_time {
            by.entry(o.f.name().to_string())
                .or_default()
                .push(r.saturating_sub(o.call_time) as f64 / 1e6);
        }
    }
    by.into_iter()
        .map(|(f, mut v)| {
            v.sort_by(f64::total_cmp);
            let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
            (
                f,
                Quantiles {
                    count: v.len(),
                    p50: q(0.5),
                    p90: q(0.9),
                    p99: q(0.99),
                    max: q(1.0),
                },
            )
        })
        .collect()
}

/// Leader changes from the monitor's samples: the first leader, then every sample that shows a
/// leader in a higher term (or another node leading in the same term).
pub fn leader_changes(samples: &[Sample]) -> Vec<LeaderChange> {
    let mut out: Vec<LeaderChange> = Vec::new();
    for s in samples {
        if s.role != Role::Leader {
            continue;
        }
        let newer = match out.last() {
            None => true,
            Some(l) => s.term > l.term || (s.term == l.term && s.node != l.node),
        };
        if newer {
            out.push(LeaderChange {
                time: s.time,
                node: s.node.clone(),
                term: s.term,
            });
        }
    }
    out
}

/// For each leader change, the time from the last acknowledged (ok) write-ish op (write, cas,
/// append) completed at or before it to the first completed after it; plus median and max.
///
/// `changes` is a run's `leader_changes`: its first entry is the leader found at start, not a
/// change, and is skipped. Writes are what a leader change interrupts (a Raft read may be
/// served by a lease or ReadIndex on the old leader, or fail over sooner), so only they count;
/// reads would hide the gap. The change time is the monitor's first sample showing the new
/// leader, up to one sample interval (100 ms) after the election itself, which does not matter
/// here: the window is bounded by acknowledged ops on both sides, not by the change time.
pub fn unavailability(ops: &[Op], changes: &[LeaderChange]) -> Unavailability {
    let mut acks: Vec<u64> = ops
        .iter()
        .filter(|o| o.outcome == Outcome::Ok && matches!(o.f, Fun::Write | Fun::Cas | Fun::Append))
        .filter_map(|o| o.ret_time)
        .collect();
    acks.sort_unstable();
    let windows: Vec<UnavailableWindow> = changes
        .iter()
        .skip(1)
        .map(|c| {
            let after = acks.partition_point(|&t| t <= c.time);
            let last_ok_before = after.checked_sub(1).map(|i| acks[i]);
            let first_ok_after = acks.get(after).copied();
            let ms = match (last_ok_before, first_ok_after) {
                (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / 1e6),
                _ => None,
            };
            UnavailableWindow {
                time: c.time,
                node: c.node.clone(),
                term: c.term,
                last_ok_before,
                first_ok_after,
                ms,
            }
        })
        .collect();
    let mut measured: Vec<f64> = windows.iter().filter_map(|w| w.ms).collect();
    measured.sort_by(f64::total_cmp);
    let median_ms = match measured.len() {
        0 => None,
        n if n % 2 == 1 => Some(measured[n / 2]),
        n => Some((measured[n / 2 - 1] + measured[n / 2]) / 2.0),
    };
    Unavailability {
        windows,
        median_ms,
        max_ms: measured.last().copied(),
    }
}

/// The earliest evidence in a run: the unplaced op of each counterexample, or the later sample
/// of an invariant violation.
pub(crate) fn first_violation(r: &RunResults) -> Option<(f64, String)> {
    let mut found: Vec<(u64, String)> = Vec::new();
    for k in &r.check.keys {
        if let Some(c) = &k.counterexample {
            let at = c
                .ops
                .iter()
                .find(|o| Some(o.id) == c.unplaced)
                .or_else(|| {
                    c.ops
                        .iter()
                        .max_by_key(|o| o.ret_time.unwrap_or(o.call_time))
                })
                .map(|o| o.ret_time.unwrap_or(o.call_time));
            if let Some(t) = at {
                let key = k
                    .key
                    .as_deref()
                    .map(|k| format!("key {k}: "))
                    .unwrap_or_default();
                found.push((t, format!("{key}{}", c.explanation)));
            }
        }
    }
    for v in &r.invariants {
        found.push((v.second.time, v.explanation.clone()));
    }
    for c in &r.crashes {
        found.push((u64::MAX, format!("node {} crashed ({})", c.node, c.status)));
    }
    found.into_iter().min_by_key(|(t, _)| *t).map(|(t, s)| {
        (
            if t == u64::MAX {
                f64::NAN
            } else {
                t as f64 / 1e9
            },
            s,
        )
    })
}
