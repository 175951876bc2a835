//! The `[command]` section of a cluster spec, as written: every table rejects unknown fields,
//! and [`parse_spec`] names the field of any error (`command.cas.match[0]`).

use super::plan::{Plan, ProgramLookup};
use crate::client::outcome::{MatchSpec, ValueForm};
use crate::client::transport::DEFAULT_KEY;
use crate::client::ClientError;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The `[command]` section as written; see the module docs and docs/command-adapter.md.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSpec {
    /// Key used by single-register workloads, which send none.
    #[serde(default = "default_key")]
    pub default_key: String,
    /// A cap on each process's run time, below the op's timeout, so that a CLI that hangs is
    /// killed early; the op's own timeout applies when this is absent or larger.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Extra environment for every process (values may use the node placeholders), on top of
    /// the harness's own, e.g. `ETCDCTL_API = "3"`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// How to read a key (also used for list reads).
    pub read: OpSpec,
    /// How to overwrite a key.
    pub write: OpSpec,
    /// How to compare-and-set a key whose expected value is not null; needed by cas workloads.
    #[serde(default)]
    pub cas: Option<OpSpec>,
    /// How to compare-and-set a key that must be absent (expected value null): CLIs usually
    /// say "absent" differently from "equals" (etcd: `create("k") = "0"`).
    #[serde(default)]
    pub cas_absent: Option<OpSpec>,
    /// How to append to a list; needed by list-append workloads only.
    #[serde(default)]
    pub append: Option<OpSpec>,
}

fn default_key() -> String {
    DEFAULT_KEY.into()
}
fn default_ok() -> Vec<i64> {
    vec![0]
}

/// One operation: the process to run and how to read what it did.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpSpec {
    /// The program and its arguments, one element per argument (no shell); placeholders are
    /// filled per op. The program (the first element) takes none: it is found when the spec
    /// loads.
    pub argv: Vec<String>,
    /// Text written to the process's standard input, then closed (some CLIs read a
    /// transaction there); without it stdin is empty.
    #[serde(default)]
    pub stdin: Option<String>,
    /// Reads: how stdout holds the value; `text` (the default) is the value's text, empty for
    /// an absent key.
    #[serde(default)]
    pub value_form: Option<ValueForm>,
    /// Reads with `value_form` `json` or `string`: JSON pointer to the value in stdout.
    #[serde(default)]
    pub value: Option<String>,
    /// Exit codes meaning "done" when no matcher matched.
    #[serde(default = "default_ok")]
    pub ok: Vec<i64>,
    /// Exit codes meaning "certainly not done".
    #[serde(default)]
    pub fail: Vec<i64>,
    /// Reads: exit codes meaning "absent" (the read returns null).
    #[serde(default)]
    pub not_found: Vec<i64>,
    /// Cas: exit codes meaning "the compare failed".
    #[serde(default)]
    pub mismatch: Vec<i64>,
    /// Matchers on stdout or stderr, tried in order before any exit-code list.
    #[serde(default, rename = "match")]
    pub matchers: Vec<MatchSpec>,
}

/// Parse and check a `[command]` section, programs included (each must be found now, so that a
/// missing CLI stops the run before any node starts). Errors name the field.
pub(crate) fn parse_spec(v: &toml::Value) -> Result<CommandSpec, ClientError> {
    parse_with(v, &ProgramLookup::Search)
}

/// [`parse_spec`] with a chosen way of finding programs (tests check shipped specs without the
/// CLIs they name).
pub(crate) fn parse_with(
    v: &toml::Value,
    lookup: &ProgramLookup,
) -> Result<CommandSpec, ClientError> {
    let spec: CommandSpec = v.clone().try_into().map_err(|e: toml::de::Error| {
        // toml says "<message>\nin `read.ok`"; turn that into the field's full name.
        let text = e.to_string();
        let text = text.trim();
        match text.rsplit_once("\nin `") {
            Some((msg, path)) => ClientError(format!(
                "[command] field `command.{}`: {}",
                path.trim_end_matches('`'),
                msg.trim()
            )),
            None => ClientError(format!("[command]: {text}")),
        }
    })?;
    Plan::new(&spec, lookup)?;
    Ok(spec)
}

/// An error about field `command.FIELD`.
pub(super) fn bad(field: &str, msg: impl std::fmt::Display) -> ClientError {
    ClientError(format!("[command] field `command.{field}`: {msg}"))
}
