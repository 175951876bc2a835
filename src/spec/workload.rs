//! Workload specs (`workloads/*.toml`): the op mix, the keys and their distribution, the pace,
//! the timeouts and the floor of ok ops below which a run tested too little. Pure data with its
//! validation; [`crate::workload`] turns a spec into operations.

use super::{load_toml, SpecError};
use crate::checker::Model;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Relative weights of each function.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    /// Weight of reads; a weight is a share of the sum of all four, not a percentage.
    #[serde(default)]
    pub read: u32,
    /// Weight of writes (register, cas-register and kv models only).
    #[serde(default)]
    pub write: u32,
    /// Weight of cas ops (cas-register and kv only; the expected value is one recently seen on the
    /// key).
    #[serde(default)]
    pub cas: u32,
    /// Weight of appends (list-append only, which also takes reads and nothing else).
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

/// A workload spec (`workloads/<name>.toml`): what the clients send and how fast;
/// [`WorkloadSpec::load`] validates it.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    /// The checker model: register, cas-register, kv or list-append.
    pub model: String,
    /// Relative weights of read, write, cas and append; [`WorkloadSpec::validate`] refuses all-zero
    /// weights and functions the model does not have.
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
    /// Parse the file, then [`WorkloadSpec::validate`] it; errors name the file and the field.
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
    pub(crate) fn key_names(&self) -> Vec<Option<String>> {
        if self.keyed() {
            (0..self.keys).map(|i| Some(format!("k{i}"))).collect()
        } else {
            vec![None]
        }
    }
}
