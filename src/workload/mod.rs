//! Workloads: what the clients do. A spec (`workloads/*.toml`) names the op mix, the keys and
//! the pace; the [`Generator`] turns it into operations with the value rules of DESIGN.md.
//!
//! Value rules, and why: written values and appended elements are unique per key (a global
//! counter), so an unobserved write is recognisable and the checker can settle or drop unknown
//! writes; cas takes its expected value from values recently written or read on that key, so
//! cas often succeeds instead of failing its compare every time.
//!
//! Imports [`crate::history`], [`crate::client`], [`crate::spec`] and [`crate::store`] (the history
//! sink).

pub mod runner;

use crate::client::Request;
use crate::history::{Fun, Value};
use crate::spec::workload::{KeyDist, WorkloadSpec};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// State shared by all workers' generators: the unique-value counter and the values recently
/// seen per key.
#[derive(Default)]
pub struct Shared {
    next_value: AtomicU64,
    recent: Mutex<HashMap<Option<String>, VecDeque<Value>>>,
}

impl Shared {
    /// Remember a value written or read on a key, for later cas expectations.
    pub fn saw(&self, key: &Option<String>, v: &Value) {
        if let Ok(mut r) = self.recent.lock() {
            let q = r.entry(key.clone()).or_default();
            q.push_back(v.clone());
            if q.len() > 4 {
                q.pop_front();
            }
        }
    }

    fn fresh(&self) -> u64 {
        self.next_value.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn recent(&self, key: &Option<String>, rng: &mut ChaCha8Rng) -> Value {
        let r = match self.recent.lock() {
            Ok(r) => r,
            Err(_) => return Value::Null,
        };
        match r.get(key) {
            Some(q) if !q.is_empty() => q[rng.random_range(0..q.len())].clone(),
            _ => Value::Null,
        }
    }
}

/// One worker's seeded op source.
pub struct Generator {
    rng: ChaCha8Rng,
    keys: Vec<Option<String>>,
    weights: Vec<f64>,
    mix: [u32; 4],
}

impl Generator {
    /// A generator for worker `worker` of a run seeded with `seed`.
    pub fn new(spec: &WorkloadSpec, seed: u64, worker: usize) -> Generator {
        let keys = spec.key_names();
        let weights = (0..keys.len())
            .map(|i| match spec.key_distribution {
                KeyDist::Uniform => 1.0,
                KeyDist::Zipf => 1.0 / (i as f64 + 1.0),
            })
            .collect();
        let m = &spec.mix;
        Generator {
            rng: ChaCha8Rng::seed_from_u64(
                seed ^ (worker as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            ),
            keys,
            weights,
            mix: [m.read, m.write, m.cas, m.append],
        }
    }

    fn key(&mut self) -> Option<String> {
        if self.keys.len() == 1 {
            return self.keys[0].clone();
        }
        let total: f64 = self.weights.iter().sum();
        let mut x = self.rng.random_range(0.0..total);
        for (i, w) in self.weights.iter().enumerate() {
            if x < *w {
                return self.keys[i].clone();
            }
            x -= w;
        }
        self.keys.last().cloned().flatten()
    }

    /// Draw the next op: its function by the mix's weights, its key by the key distribution, a
    /// fresh unique value to write or append, and for a cas a value recently seen on the key as the
    /// expected one.
    pub fn next(&mut self, shared: &Shared) -> Request {
        let total: u32 = self.mix.iter().sum::<u32>().max(1);
        let mut pick = self.rng.random_range(0..total);
        let mut f = Fun::Read;
        for (i, w) in self.mix.iter().enumerate() {
            if pick < *w {
                f = [Fun::Read, Fun::Write, Fun::Cas, Fun::Append][i];
                break;
            }
            pick -= w;
        }
        let key = self.key();
        let value = match f {
            Fun::Read => Value::Null,
            Fun::Write | Fun::Append => Value::from(shared.fresh()),
            Fun::Cas => {
                let expected = shared.recent(&key, &mut self.rng);
                Value::Array(vec![expected, Value::from(shared.fresh())])
            }
        };
        Request { f, key, value }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::workload::Mix;
    use std::path::Path;

    fn spec(model: &str, mix: Mix, keys: usize) -> WorkloadSpec {
        WorkloadSpec {
            model: model.into(),
            mix,
            keys,
            key_distribution: KeyDist::Uniform,
            concurrency: 4,
            rate: 10.0,
            op_timeout_secs: 1.0,
            duration_secs: 1.0,
            min_ok_ops: 1,
        }
    }

    #[test]
    fn writes_are_unique_and_cas_expects_recent_values() {
        let s = spec(
            "kv",
            Mix {
                read: 1,
                write: 1,
                cas: 1,
                append: 0,
            },
            3,
        );
        let shared = Shared::default();
        let mut g = Generator::new(&s, 7, 0);
        let mut written = std::collections::HashSet::new();
        let mut cas_hits = 0;
        for _ in 0..300 {
            let r = g.next(&shared);
            match r.f {
                Fun::Write => {
                    assert!(written.insert(r.value.clone()), "duplicate {}", r.value);
                    shared.saw(&r.key, &r.value);
                }
                Fun::Cas => {
                    if !r.value[0].is_null() {
                        cas_hits += 1;
                        assert!(written.contains(&r.value[0]));
                    }
                    assert!(written.insert(r.value[1].clone()));
                }
                _ => {}
            }
            assert!(r.key.is_some());
        }
        assert!(
            cas_hits > 20,
            "cas expected values should come from recent writes"
        );
    }

    #[test]
    fn same_seed_same_ops() {
        let s = spec(
            "register",
            Mix {
                read: 1,
                write: 1,
                cas: 0,
                append: 0,
            },
            1,
        );
        let (a, b) = (Shared::default(), Shared::default());
        let mut g1 = Generator::new(&s, 3, 1);
        let mut g2 = Generator::new(&s, 3, 1);
        for _ in 0..50 {
            assert_eq!(g1.next(&a), g2.next(&b));
        }
    }

    #[test]
    fn bad_values_name_the_field() {
        let s = spec(
            "list-append",
            Mix {
                read: 1,
                write: 1,
                cas: 0,
                append: 1,
            },
            2,
        );
        let e = s.validate(Path::new("w.toml")).unwrap_err().to_string();
        assert!(e.contains("w.toml") && e.contains("`mix`"), "{e}");
        let mut s = spec(
            "kv",
            Mix {
                read: 1,
                ..Default::default()
            },
            2,
        );
        s.concurrency = 0;
        let e = s.validate(Path::new("w.toml")).unwrap_err().to_string();
        assert!(e.contains("concurrency"), "{e}");
    }

    #[test]
    fn shipped_workloads_load() {
        for name in ["register", "cas-register", "kv", "list-append"] {
            let p = crate::spec::resolve("workload", "workloads", name).unwrap();
            WorkloadSpec::load(&p).unwrap();
        }
    }
}
