//! Operation records and the history file formats.
//!
//! A history is the ordered list of [`Event`]s a run recorded: every operation appears once as an
//! `invoke` and (usually) once more as its completion (`ok`, `fail` or `info`). The order of the
//! events in the file is the real-time order the harness observed, so the checker uses positions in
//! the file, not the `time` field, to decide which operations were concurrent. (`time` is kept for
//! plots and reports.)
//!
//! [`pair`] turns events into [`Op`]s, one per operation with its call and return positions; that is
//! the only form the checker consumes. Files are read and written by [`jsonl`] (the native format,
//! see DESIGN.md) and [`edn`] (Jepsen's `history.edn`, import and export).

pub mod edn;
pub mod jsonl;

use serde::{Deserialize, Deserializer, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A value carried by an operation: any JSON scalar or list. `null` means "absent" for reads.
pub type Value = serde_json::Value;

/// What an event says about its operation: started, or ended in one of three ways.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// The client is about to send the request.
    Invoke,
    /// The operation certainly took effect, with the recorded result.
    Ok,
    /// The operation certainly did not take effect.
    Fail,
    /// Unknown: the operation may or may not have taken effect (timeout, lost connection).
    Info,
}

/// The function an operation applies. The models give each one its meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Fun {
    /// Read a register (value) or a list (whole list).
    Read,
    /// Overwrite a register.
    Write,
    /// Compare-and-set a register: value is `[expected, new]`.
    Cas,
    /// Append one element to a list.
    Append,
}

impl Fun {
    /// The lower-case name used in every file format.
    pub fn name(self) -> &'static str {
        match self {
            Fun::Read => "read",
            Fun::Write => "write",
            Fun::Cas => "cas",
            Fun::Append => "append",
        }
    }
}

/// The error string that marks a failed cas as "the compare did not match" (an observation).
pub const MISMATCH: &str = "mismatch";

/// One line of `history.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the history; informative (the file order is what the checker trusts).
    pub index: u64,
    /// invoke, ok, fail or info.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// The logical client; a process has at most one operation outstanding.
    pub process: u64,
    /// The function.
    pub f: Fun,
    /// The key, absent for single-register histories.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_key"
    )]
    pub key: Option<String>,
    /// The value; see DESIGN.md for its meaning per function and event type.
    #[serde(default)]
    pub value: Value,
    /// Nanoseconds since the run started (monotonic).
    #[serde(default)]
    pub time: u64,
    /// The node the operation was sent to, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Why an operation failed or is unknown; `"mismatch"` on a cas marks an observation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Keys are strings, but hand-written or imported histories often use integers; accept both.
fn de_key<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(serde::de::Error::custom(format!(
            "key must be a string or an integer, got {other}"
        ))),
    }
}

/// How an operation ended, as the checker needs to know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Took effect; the result (for reads) is in [`Op::value`].
    Ok,
    /// Changed nothing and observed nothing.
    Fail,
    /// A cas whose compare failed: changed nothing, but saw a value other than the expected one.
    Mismatch,
    /// May or may not have taken effect, at any time after its invocation.
    Info,
}

/// One operation: an invocation paired with its completion.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// Position of this op in the paired list (stable id used by results and reports).
    pub id: usize,
    /// The process that ran it.
    pub process: u64,
    /// The function.
    pub f: Fun,
    /// The key, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// For reads: the value returned (null if not ok). Otherwise: the invoked argument.
    pub value: Value,
    /// How it ended.
    pub outcome: Outcome,
    /// File position of the invocation event.
    pub call: usize,
    /// File position of the completion event; `None` when the history ended first. The checker
    /// ignores it for `info` ops, which may take effect at any point after `call`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret: Option<usize>,
    /// Invocation time, ns since the run started.
    pub call_time: u64,
    /// Completion time, if the op completed (also set for info completions, for plots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret_time: Option<u64>,
    /// The node it was sent to, if recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// Bad history input. Every variant names where the problem is so the user can fix the file.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A line or form could not be parsed.
    #[error("{path}:{line}: {msg}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        msg: String,
    },
    /// Events that do not form a well-paired history.
    #[error("{path}:{line}: {msg}")]
    Pairing {
        /// The file.
        path: PathBuf,
        /// 1-based line (or event) number.
        line: usize,
        /// What was wrong.
        msg: String,
    },
}

/// Where each event came from, for error messages: the file and the 1-based line of each event.
#[derive(Clone, Debug, Default)]
pub struct Source {
    /// The file the events were read from (or a label such as `<memory>`).
    pub path: PathBuf,
    /// The line of each event, parallel to the event list.
    pub lines: Vec<usize>,
}

impl Source {
    /// A source for events built in memory: line i+1 for event i.
    pub fn memory(n: usize) -> Self {
        Source {
            path: PathBuf::from("<memory>"),
            lines: (1..=n).collect(),
        }
    }

    fn line(&self, i: usize) -> usize {
        self.lines.get(i).copied().unwrap_or(i + 1)
    }
}

/// Read a history file, choosing the format: EDN for a `.edn` file or one whose first non-blank
/// character is `[`, `(`, `;`, `#`, or `{` followed by a keyword; JSONL otherwise.
pub fn read_file(path: &Path) -> Result<(Vec<Event>, Source), HistoryError> {
    read_file_with(path, false)
}

/// [`read_file`], saying how EDN `:fail` cas ops are read: as plain fails (Knossos's meaning,
/// the default) or as compare mismatches (Porcupine's, when the history's producer means it).
pub fn read_file_with(
    path: &Path,
    edn_fail_cas_is_mismatch: bool,
) -> Result<(Vec<Event>, Source), HistoryError> {
    let text = std::fs::read_to_string(path).map_err(|source| HistoryError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if path.extension().is_some_and(|e| e == "edn") || looks_like_edn(&text) {
        let opts = edn::EdnOptions {
            fail_cas_is_mismatch: edn_fail_cas_is_mismatch,
        };
        edn::parse_history_with(&text, path, opts)
    } else {
        jsonl::parse(&text, path)
    }
}

fn looks_like_edn(text: &str) -> bool {
    let t = text.trim_start();
    if t.starts_with(['[', '(', ';', '#']) {
        return true;
    }
    if let Some(rest) = t.strip_prefix('{') {
        return rest.trim_start().starts_with(':');
    }
    false
}

/// Pair invocations with completions.
///
/// Rules (DESIGN.md): a completion without an outstanding invocation by the same process, or a
/// second invocation while one is outstanding, is bad input. An invocation that never completes is
/// treated as `info`. A `fail` cas whose error is `"mismatch"` becomes [`Outcome::Mismatch`].
pub fn pair(events: &[Event], src: &Source) -> Result<Vec<Op>, HistoryError> {
    let mut open: HashMap<u64, usize> = HashMap::new();
    let mut ops: Vec<Op> = Vec::with_capacity(events.len() / 2 + 1);
    let err = |i: usize, msg: String| HistoryError::Pairing {
        path: src.path.clone(),
        line: src.line(i),
        msg,
    };
    for (pos, e) in events.iter().enumerate() {
        match e.kind {
            EventType::Invoke => {
                if let Some(&prev) = open.get(&e.process) {
                    let prev_line = src.line(ops[prev].call);
                    return Err(err(
                        pos,
                        format!(
                            "process {} invokes {} while its {} invoked on line {} is still open",
                            e.process,
                            e.f.name(),
                            ops[prev].f.name(),
                            prev_line
                        ),
                    ));
                }
                validate_invoke(e).map_err(|m| err(pos, m))?;
                let id = ops.len();
                open.insert(e.process, id);
                ops.push(Op {
                    id,
                    process: e.process,
                    f: e.f,
                    key: e.key.clone(),
                    value: if e.f == Fun::Read {
                        Value::Null
                    } else {
                        e.value.clone()
                    },
                    outcome: Outcome::Info,
                    call: pos,
                    ret: None,
                    call_time: e.time,
                    ret_time: None,
                    node: e.node.clone(),
                });
            }
            kind => {
                let Some(id) = open.remove(&e.process) else {
                    return Err(err(
                        pos,
                        format!(
                            "process {} completes a {} ({:?}) that it never invoked",
                            e.process,
                            e.f.name(),
                            kind
                        )
                        .to_lowercase(),
                    ));
                };
                let op = &mut ops[id];
                if op.f != e.f {
                    return Err(err(
                        pos,
                        format!(
                            "process {} completes {} but invoked {}",
                            e.process,
                            e.f.name(),
                            op.f.name()
                        ),
                    ));
                }
                if op.key != e.key && e.key.is_some() {
                    return Err(err(
                        pos,
                        format!(
                            "process {} completes on key {:?} but invoked on key {:?}",
                            e.process, e.key, op.key
                        ),
                    ));
                }
                op.ret_time = Some(e.time);
                match kind {
                    EventType::Ok => {
                        op.outcome = Outcome::Ok;
                        op.ret = Some(pos);
                        if op.f == Fun::Read {
                            op.value = e.value.clone();
                        }
                    }
                    EventType::Fail => {
                        op.ret = Some(pos);
                        op.outcome = if op.f == Fun::Cas && e.error.as_deref() == Some(MISMATCH) {
                            Outcome::Mismatch
                        } else {
                            Outcome::Fail
                        };
                    }
                    _ => {
                        op.outcome = Outcome::Info;
                        op.ret = Some(pos);
                    }
                }
            }
        }
    }
    Ok(ops)
}

fn validate_invoke(e: &Event) -> Result<(), String> {
    match e.f {
        Fun::Cas => match &e.value {
            Value::Array(a) if a.len() == 2 => Ok(()),
            other => Err(format!("cas value must be [expected, new], got {other}")),
        },
        Fun::Write | Fun::Append if e.value.is_null() => {
            Err(format!("{} needs a value, got null", e.f.name()))
        }
        _ => Ok(()),
    }
}

/// A value short enough for one line: long lists show their length and last few elements.
pub fn brief(v: &Value) -> String {
    match v.as_array() {
        Some(items) if items.len() > 8 => {
            let tail: Vec<String> = items[items.len() - 4..]
                .iter()
                .map(|x| x.to_string())
                .collect();
            format!(
                "a list of {} ending [..., {}]",
                items.len(),
                tail.join(", ")
            )
        }
        _ => v.to_string(),
    }
}

/// Turn ops back into events in real-time order (used for export and for tests).
pub fn unpair(ops: &[Op]) -> Vec<Event> {
    let mut evs: Vec<(usize, Event)> = Vec::with_capacity(ops.len() * 2);
    for op in ops {
        let invoke_value = if op.f == Fun::Read {
            Value::Null
        } else {
            op.value.clone()
        };
        evs.push((
            op.call,
            Event {
                index: 0,
                kind: EventType::Invoke,
                process: op.process,
                f: op.f,
                key: op.key.clone(),
                value: invoke_value,
                time: op.call_time,
                node: op.node.clone(),
                error: None,
            },
        ));
        if let Some(ret) = op.ret {
            let (kind, error) = match op.outcome {
                Outcome::Ok => (EventType::Ok, None),
                Outcome::Fail => (EventType::Fail, None),
                Outcome::Mismatch => (EventType::Fail, Some(MISMATCH.to_string())),
                Outcome::Info => (EventType::Info, None),
            };
            evs.push((
                ret,
                Event {
                    index: 0,
                    kind,
                    process: op.process,
                    f: op.f,
                    key: op.key.clone(),
                    value: op.value.clone(),
                    time: op.ret_time.unwrap_or(op.call_time),
                    node: op.node.clone(),
                    error,
                },
            ));
        }
    }
    evs.sort_by_key(|(p, _)| *p);
    evs.into_iter()
        .enumerate()
        .map(|(i, (_, mut e))| {
            e.index = i as u64;
            e
        })
        .collect()
}

/// An event with only the fields most unit tests care about.
#[cfg(test)]
pub(crate) fn test_event(kind: EventType, process: u64, f: Fun, value: Value) -> Event {
    Event {
        index: 0,
        kind,
        process,
        f,
        key: None,
        value,
        time: 0,
        node: None,
        error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventType, process: u64, f: Fun, value: Value) -> Event {
        test_event(kind, process, f, value)
    }

    #[test]
    fn completion_without_invoke_is_an_error_naming_the_line() {
        let evs = vec![ev(EventType::Ok, 1, Fun::Read, Value::Null)];
        let e = pair(&evs, &Source::memory(1)).unwrap_err().to_string();
        assert!(e.contains("<memory>:1"), "{e}");
        assert!(e.contains("never invoked"), "{e}");
    }

    #[test]
    fn double_invoke_is_an_error() {
        let evs = vec![
            ev(EventType::Invoke, 1, Fun::Read, Value::Null),
            ev(EventType::Invoke, 1, Fun::Read, Value::Null),
        ];
        let e = pair(&evs, &Source::memory(2)).unwrap_err().to_string();
        assert!(e.contains(":2:") && e.contains("still open"), "{e}");
    }

    #[test]
    fn unfinished_invoke_is_info_and_mismatch_is_recognised() {
        let mut fail = ev(EventType::Fail, 2, Fun::Cas, serde_json::json!([1, 2]));
        fail.error = Some("mismatch".into());
        let evs = vec![
            ev(EventType::Invoke, 1, Fun::Write, serde_json::json!(3)),
            ev(EventType::Invoke, 2, Fun::Cas, serde_json::json!([1, 2])),
            fail,
        ];
        let ops = pair(&evs, &Source::memory(3)).unwrap();
        assert_eq!(ops[0].outcome, Outcome::Info);
        assert_eq!(ops[0].ret, None);
        assert_eq!(ops[1].outcome, Outcome::Mismatch);
        assert_eq!(ops[1].ret, Some(2));
    }

    #[test]
    fn unpair_round_trips_pair() {
        let evs = vec![
            ev(EventType::Invoke, 1, Fun::Write, serde_json::json!(3)),
            ev(EventType::Invoke, 2, Fun::Read, Value::Null),
            ev(EventType::Ok, 2, Fun::Read, serde_json::json!(3)),
            ev(EventType::Info, 1, Fun::Write, serde_json::json!(3)),
        ];
        let src = Source::memory(4);
        let ops = pair(&evs, &src).unwrap();
        let back = unpair(&ops);
        assert_eq!(pair(&back, &src).unwrap(), ops);
    }
}
