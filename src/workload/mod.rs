//! Workloads: what the clients do. A spec (`workloads/*.toml`) names the op mix, the keys and
//! the pace; the [`Generator`] turns it into operations with the value rules of DESIGN.md.
//!
//! Value rules, and why: written values and appended elements are unique per key (a global
//! counter), so an unobserved write is recognisable and the checker can settle or drop unknown
//! writes; cas takes its expected value from values recently written or read on that key, so
//! cas often succeeds instead of failing its compare every time.

pub mod recorder;
pub mod runner;

use crate::checker::Model;
use crate::client::Request;
use crate::cluster::spec::{load_toml, SpecError};
use crate::history::{Fun, Value};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Relative weights of each function.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    /// Reads.
    #[serde(default)]
    pub read: u32,
    /// Writes.
    #[serde(default)]
    pub write: u32,
    /// Compare-and-sets.
    #[serde(default)]
    pub cas: u32,
    /// List appends.
    #[serde(default)]
    pub append: u32,
}

/// How keys are picked.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum KeyDist {
    /// Every key equally often.
    #[default]
    Uniform,
    /// Key i with weight 1/(i+1): a few hot keys, as real traffic has.
    Zipf,
}

/// A named workload (`workloads/*.toml`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    /// The checker model: register, cas-register, kv or list-append.
    pub model: String,
    /// Op mix.
    pub mix: Mix,
    /// Number of keys; with 1 and a register model, ops carry no key (a single register).
    #[serde(default = "one")]
    pub keys: usize,
    /// How keys are chosen.
    #[serde(default)]
    pub key_distribution: KeyDist,
    /// Concurrent client workers.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Ops per second over all workers (0: as fast as the cluster answers).
    #[serde(default = "default_rate")]
    pub rate: f64,
    /// Per-op timeout; past it the op is `info`. Keep it below etcd's own 7 s.
    #[serde(default = "default_op_timeout")]
    pub op_timeout_secs: f64,
    /// Length of the fault phase.
    #[serde(default = "default_duration")]
    pub duration_secs: f64,
    /// A run with fewer ok ops than this tested nothing: its verdict is unknown.
    #[serde(default = "default_min_ok")]
    pub min_ok_ops: usize,
}

fn one() -> usize {
    1
}
fn default_concurrency() -> usize {
    6
}
fn default_rate() -> f64 {
    100.0
}
fn default_op_timeout() -> f64 {
    2.0
}
fn default_duration() -> f64 {
    30.0
}
fn default_min_ok() -> usize {
    20
}

impl WorkloadSpec {
    /// Load and validate.
    pub fn load(path: &Path) -> Result<WorkloadSpec, SpecError> {
        let w: WorkloadSpec = load_toml(path)?;
        w.validate(path)?;
        Ok(w)
    }

    /// Check values that parse but make no sense, naming the field.
    pub fn validate(&self, path: &Path) -> Result<(), SpecError> {
        let bad = |field: &str, msg: String| SpecError::Invalid {
            path: path.to_path_buf(),
            field: field.into(),
            msg,
        };
        let model = Model::parse(&self.model).ok_or_else(|| {
            bad(
                "model",
                format!(
                    "unknown model {:?}; expected register, cas-register, kv or list-append",
                    self.model
                ),
            )
        })?;
        let m = &self.mix;
        if m.read + m.write + m.cas + m.append == 0 {
            return Err(bad("mix", "all weights are zero".into()));
        }
        let list = model == Model::ListAppend;
        if list && (m.write > 0 || m.cas > 0) {
            return Err(bad("mix", "list-append takes only read and append".into()));
        }
        if !list && m.append > 0 {
            return Err(bad("mix", format!("{} has no append", self.model)));
        }
        if model == Model::Register && m.cas > 0 {
            return Err(bad("mix", "register has no cas (use cas-register)".into()));
        }
        if self.keys == 0 || self.keys > 100_000 {
            return Err(bad(
                "keys",
                format!("must be 1 to 100000, got {}", self.keys),
            ));
        }
        if self.concurrency == 0 || self.concurrency > 1000 {
            return Err(bad(
                "concurrency",
                format!("must be 1 to 1000, got {}", self.concurrency),
            ));
        }
        if !(self.rate >= 0.0 && self.rate.is_finite()) {
            return Err(bad("rate", "must be >= 0".into()));
        }
        if !(self.op_timeout_secs > 0.0 && self.op_timeout_secs <= 60.0) {
            return Err(bad("op_timeout_secs", "must be in (0, 60]".into()));
        }
        if !(self.duration_secs > 0.0 && self.duration_secs.is_finite()) {
            return Err(bad("duration_secs", "must be positive".into()));
        }
        Ok(())
    }

    /// The checker model (validated on load).
    pub fn model(&self) -> Model {
        Model::parse(&self.model).unwrap_or(Model::Kv)
    }

    /// Whether ops carry keys: several keys, or any model that is per key by nature.
    pub fn keyed(&self) -> bool {
        self.keys > 1 || matches!(self.model(), Model::Kv | Model::ListAppend)
    }

    /// Every key this workload may touch (`None` for a single register).
    pub fn key_names(&self) -> Vec<Option<String>> {
        if self.keyed() {
            (0..self.keys).map(|i| Some(format!("k{i}"))).collect()
        } else {
            vec![None]
        }
    }
}

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

    /// The next operation.
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
            let p = crate::cluster::spec::resolve("workload", "workloads", name).unwrap();
            WorkloadSpec::load(&p).unwrap();
        }
    }
}
