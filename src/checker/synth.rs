//! Synthetic histories from a simulated linearizable store, for benchmarks and tests.
//!
//! Each worker runs ops back to back; every op gets an invocation time, a linearization point
//! inside its interval and a return time. Applying the ops to a true store in linearization
//! order gives each op its real result, so the history is linearizable by construction. An op
//! that ends `info` took effect or not at random, and its worker continues as a new process
//! (Jepsen's rule), which is what makes real histories hard.

use crate::history::{Fun, Op, Outcome, Value};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

/// The shape of a synthetic history.
#[derive(Clone, Debug)]
pub struct SynthSpec {
    /// Workers running ops back to back, concurrently with each other; one whose op ends `info`
    /// continues as a new process.
    pub workers: usize,
    /// Ops in the history, over all workers and keys.
    pub ops: usize,
    /// Keys (1 gives a single-register history without keys).
    pub keys: usize,
    /// Values drawn from `0..small_values` (repeating, like Jepsen's etcd test); `None`: unique.
    pub small_values: Option<u64>,
    /// Relative weights of read, write, cas, append.
    pub mix: [u32; 4],
    /// Chance that a write, cas or append ends `info` (unknown).
    pub info_rate: f64,
    /// Chance that a read ends `info`.
    pub read_info_rate: f64,
    /// Record failed cas compares as mismatch observations (else plain fail).
    pub mismatch: bool,
    /// Seed; the same seed gives the same history.
    pub seed: u64,
}

impl SynthSpec {
    /// Jepsen's etcd cas-register test as Porcupine's benchmark uses it: ~80 ops on one
    /// register, values 0..5, a quarter of writes/cas unknown, failed compares observed.
    pub fn etcd(seed: u64) -> SynthSpec {
        SynthSpec {
            workers: 5,
            ops: 80,
            keys: 1,
            small_values: Some(5),
            mix: [1, 1, 1, 0],
            info_rate: 0.25,
            read_info_rate: 0.05,
            mismatch: true,
            seed,
        }
    }
}

impl SynthSpec {
    /// A history built to be hard: 30 workers, 4000 ops on one key, 60% of writes unknown,
    /// values 0..4 (so unknown writes can neither be settled nor dropped), mismatch cas. Used
    /// to show that limits end in `unknown` on time.
    pub fn hard(seed: u64) -> SynthSpec {
        SynthSpec {
            workers: 30,
            ops: 4000,
            keys: 1,
            small_values: Some(4),
            mix: [1, 4, 1, 0],
            info_rate: 0.6,
            read_info_rate: 0.0,
            mismatch: true,
            seed,
        }
    }
}

struct Planned {
    worker: usize,
    process: u64,
    f: Fun,
    key: usize,
    arg: Value,
    invoke: u64,
    lin: u64,
    ret: u64,
    info: bool,
    took_effect: bool,
}

/// Generate a linearizable history of the given shape.
pub fn synth(spec: &SynthSpec) -> Vec<Op> {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let workers = spec.workers.max(1);
    let mut clock = vec![0u64; workers];
    let mut process: Vec<u64> = (0..workers as u64).collect();
    let mut next_process = workers as u64;
    let mut next_unique = 1u64;
    let total: u32 = spec.mix.iter().sum::<u32>().max(1);
    let mut plan: Vec<Planned> = Vec::with_capacity(spec.ops);
    for _ in 0..spec.ops {
        // The worker that is free first goes next.
        let w = (0..workers).min_by_key(|&w| clock[w]).unwrap_or(0);
        let mut pick = rng.random_range(0..total);
        let mut f = Fun::Read;
        for (i, weight) in spec.mix.iter().enumerate() {
            if pick < *weight {
                f = [Fun::Read, Fun::Write, Fun::Cas, Fun::Append][i];
                break;
            }
            pick -= weight;
        }
        let mut value = || match spec.small_values {
            Some(n) => rng.random_range(0..n.max(1)),
            None => {
                next_unique += 1;
                next_unique
            }
        };
        let arg = match f {
            Fun::Read => Value::Null,
            Fun::Cas => Value::from(vec![Value::from(value()), Value::from(value())]),
            _ => Value::from(value()),
        };
        let invoke = clock[w] + rng.random_range(10_000..200_000);
        let latency = rng.random_range(500_000..5_000_000);
        let lin = invoke + rng.random_range(1..latency);
        let ret = invoke + latency;
        let rate = if f == Fun::Read {
            spec.read_info_rate
        } else {
            spec.info_rate
        };
        let info = rng.random_bool(rate.clamp(0.0, 1.0));
        let took_effect = !info || rng.random_bool(0.5);
        let key = rng.random_range(0..spec.keys.max(1));
        plan.push(Planned {
            worker: w,
            process: process[w],
            f,
            key,
            arg,
            invoke,
            lin,
            ret,
            info,
            took_effect,
        });
        clock[w] = ret;
        if info {
            process[w] = next_process;
            next_process += 1;
        }
    }

    // Apply in linearization order to a true store to learn each op's result.
    let mut order: Vec<usize> = (0..plan.len()).collect();
    order.sort_by_key(|&i| plan[i].lin);
    let mut regs: HashMap<usize, Value> = HashMap::new();
    let mut lists: HashMap<usize, Vec<Value>> = HashMap::new();
    let mut results: Vec<(Outcome, Value)> = vec![(Outcome::Ok, Value::Null); plan.len()];
    // Cas expected values: half the time the current value, so that many succeed.
    for &i in &order {
        let p = &mut plan[i];
        let cur = regs.get(&p.key).cloned().unwrap_or(Value::Null);
        if p.f == Fun::Cas && rng.random_bool(0.5) {
            if let Value::Array(a) = &mut p.arg {
                a[0] = cur.clone();
            }
        }
        if !p.took_effect {
            results[i] = (Outcome::Info, p.arg.clone());
            continue;
        }
        let outcome = match p.f {
            Fun::Read => {
                let v = if spec.mix[3] > 0 {
                    Value::from(lists.get(&p.key).cloned().unwrap_or_default())
                } else {
                    cur
                };
                (Outcome::Ok, v)
            }
            Fun::Write => {
                regs.insert(p.key, p.arg.clone());
                (Outcome::Ok, p.arg.clone())
            }
            Fun::Cas => {
                let (from, to) = match &p.arg {
                    Value::Array(a) if a.len() == 2 => (a[0].clone(), a[1].clone()),
                    _ => (Value::Null, Value::Null),
                };
                if cur == from {
                    regs.insert(p.key, to);
                    (Outcome::Ok, p.arg.clone())
                } else if spec.mismatch {
                    (Outcome::Mismatch, p.arg.clone())
                } else {
                    (Outcome::Fail, p.arg.clone())
                }
            }
            Fun::Append => {
                lists.entry(p.key).or_default().push(p.arg.clone());
                (Outcome::Ok, p.arg.clone())
            }
        };
        results[i] = if p.info {
            (Outcome::Info, p.arg.clone())
        } else {
            outcome
        };
    }

    // Events in time order give each op its call and return positions.
    let mut events: Vec<(u64, usize, bool)> = Vec::with_capacity(plan.len() * 2);
    for (i, p) in plan.iter().enumerate() {
        events.push((p.invoke, i, true));
        events.push((p.ret, i, false));
    }
    events.sort_by_key(|&(t, i, call)| (t, !call, i));
    let mut call = vec![0; plan.len()];
    let mut ret = vec![0; plan.len()];
    for (pos, &(_, i, is_call)) in events.iter().enumerate() {
        if is_call {
            call[i] = pos;
        } else {
            ret[i] = pos;
        }
    }
    let keyed = spec.keys > 1;
    plan.iter()
        .enumerate()
        .map(|(i, p)| {
            let (outcome, value) = results[i].clone();
            let _ = p.worker;
            Op {
                id: i,
                process: p.process,
                f: p.f,
                key: keyed.then(|| format!("k{}", p.key)),
                value: if p.f == Fun::Read && outcome != Outcome::Ok {
                    Value::Null
                } else {
                    value
                },
                outcome,
                call: call[i],
                ret: Some(ret[i]),
                call_time: p.invoke,
                ret_time: Some(p.ret),
                node: None,
            }
        })
        .collect()
}

/// Reads tried per history when planting a violation.
const PLANT_TRIES: usize = 40;

/// Make a linearizable history invalid with one wrong read, as a buggy server would return it:
/// a register read returns another value written in the history (a stale or a future one), a
/// list read loses one element. Reads in the second half are tried in a seeded order, and the
/// first change the search proves invalid within `max_states` states is kept, so the violation
/// is real, not assumed, and as cheap to prove as asked (a bound on states, not on time, so the
/// same seed plants the same violation on every machine). `None` when no tried change
/// qualifies (small value sets often make a changed read legal).
pub fn plant_violation(ops: &[Op], seed: u64, max_states: u64) -> Option<Vec<Op>> {
    use super::{prepare::prepare, search, Model};
    use std::sync::atomic::AtomicU64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x9E37_79B9_7F4A_7C15);
    let written: Vec<Value> = ops
        .iter()
        .filter(|o| o.f == Fun::Write)
        .map(|o| o.value.clone())
        .collect();
    let mut reads: Vec<usize> = ops
        .iter()
        .filter(|o| o.f == Fun::Read && o.outcome == Outcome::Ok && o.call >= ops.len())
        .map(|o| o.id)
        .collect();
    let model = Model::infer(ops);
    let used = AtomicU64::new(0);
    let limits = search::Limits {
        deadline: None,
        memory_limit: 1 << 30,
        memory_used: &used,
        max_states,
    };
    for _ in 0..PLANT_TRIES {
        if reads.is_empty() {
            return None;
        }
        let r = reads.swap_remove(rng.random_range(0..reads.len()));
        let mut planted = ops.to_vec();
        let read = planted.iter_mut().find(|o| o.id == r)?;
        match &mut read.value {
            Value::Array(items) if !items.is_empty() => {
                let i = rng.random_range(0..items.len());
                items.remove(i);
            }
            Value::Array(_) => continue,
            v => {
                let others: Vec<&Value> = written.iter().filter(|w| *w != v).collect();
                if others.is_empty() {
                    continue;
                }
                *v = others[rng.random_range(0..others.len())].clone();
            }
        }
        // Per key, as the checker splits; one invalid key makes the history invalid.
        let mut keys: Vec<Option<&str>> = planted.iter().map(|o| o.key.as_deref()).collect();
        keys.sort_unstable();
        keys.dedup();
        let proven = keys.into_iter().any(|k| {
            let part: Vec<&Op> = planted.iter().filter(|o| o.key.as_deref() == k).collect();
            let mut p = prepare(&part, model);
            matches!(
                search::search(&mut p, &limits, false, &mut search::Stats::default()),
                search::Outcome::NotLinearizable(_)
            )
        });
        if proven {
            return Some(planted);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::{check, CheckOptions, Verdict};

    #[test]
    fn synthetic_histories_are_linearizable() {
        for seed in 0..50 {
            let mut spec = SynthSpec::etcd(seed);
            spec.ops = 40;
            let ops = synth(&spec);
            let r = check(&ops, &CheckOptions::default()).unwrap();
            assert_eq!(r.verdict, Verdict::Valid, "seed {seed}");
        }
    }

    #[test]
    fn planted_violations_are_invalid_and_deterministic() {
        let mut planted = 0;
        for seed in 0..20 {
            let ops = synth(&SynthSpec::etcd(seed));
            let Some(bad) = plant_violation(&ops, seed, 20_000) else {
                continue;
            };
            planted += 1;
            assert_eq!(plant_violation(&ops, seed, 20_000).as_ref(), Some(&bad));
            let changed = ops.iter().zip(&bad).filter(|(a, b)| a != b).count();
            assert_eq!(changed, 1, "seed {seed}: one read changed");
            let r = check(&bad, &CheckOptions::default()).unwrap();
            assert_eq!(r.verdict, Verdict::Invalid, "seed {seed}");
        }
        assert!(planted >= 5, "only {planted} of 20 planted");
    }

    #[test]
    fn same_seed_same_history() {
        let a = synth(&SynthSpec::etcd(7));
        let b = synth(&SynthSpec::etcd(7));
        assert_eq!(a, b);
    }
}
