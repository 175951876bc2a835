//! Operation records and the history file formats.
//!
//! A history is the ordered list of [`Event`]s a run recorded: every operation appears once as an
//! `invoke` and (usually) once more as its completion (`ok`, `fail` or `info`).
//!
//! # Which order is authoritative
//!
//! The order of the events in the file is the real-time order, and it is the only order the
//! checker uses to decide which operations were concurrent. `time` and `index` are checked
//! against it rather than trusted or ignored: where events carry them, indices must ascend and
//! times must never go back in file order (equal times are fine: clocks are coarse). A file whose
//! times contradict its order would be judged differently by a reader that sorted by time (a
//! stale read hidden by the line order is VALID one way and INVALID the other), so it is refused
//! as malformed, naming the line, instead of silently judged one way. raftcheck's own recorder
//! takes the index and the time under the lock that writes the line, so its files always agree.
//!
//! [`pair`] turns events into [`Op`]s, one per operation with its call and return positions; that is
//! the only form the checker consumes, and it refuses histories that contradict themselves (a
//! completion whose value is not its invocation's, an ok read that does not say what it read,
//! indices or times against the file order). Files are read and written by [`jsonl`] (the native
//! format, see DESIGN.md) and [`edn`] (Jepsen's `history.edn`, import and export).
//!
//! Imports nothing of the crate: every other part builds on it.

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
    /// Overwrite a register; `value` is the new value (unique per key in raftcheck's own runs).
    Write,
    /// Compare-and-set a register: value is `[expected, new]`.
    Cas,
    /// Append one element (`value`) to a list; elements are unique per key in raftcheck's own runs,
    /// so a read shows which appends took effect and in what order.
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
pub(crate) const MISMATCH: &str = "mismatch";

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
    /// Which function the operation applies; a completion must name its invocation's. See [`Fun`]
    /// for what `value` then holds.
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
pub(crate) fn de_key<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
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
    /// The logical client that ran it; one process's ops never overlap in time.
    pub process: u64,
    /// Which function it applies; with `outcome`, this decides what `value` holds.
    pub f: Fun,
    /// The key, `None` in a single-register history; the checker splits a history by key and checks
    /// each part on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// For reads: the value returned (null if not ok). Otherwise: the invoked argument.
    pub value: Value,
    /// How it ended, as the checker reads it: a `fail` cas with error `"mismatch"` is
    /// [`Outcome::Mismatch`], and an op never completed is `Info`.
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
        /// The history file as given; the message starts with it.
        path: PathBuf,
        /// Why it could not be read (no such file, not UTF-8, ...).
        source: std::io::Error,
    },
    /// A line or form could not be parsed.
    #[error("{path}:{line}: {msg}")]
    Parse {
        /// The history file; with `line`, the message reads `path:line: msg`, as compilers print
        /// it.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What the parser found there (serde_json's message, or the EDN reader's).
        msg: String,
    },
    /// Events that do not form a well-paired history.
    #[error("{path}:{line}: {msg}")]
    Pairing {
        /// The history file, or `<memory>` for events built in memory.
        path: PathBuf,
        /// 1-based line (or event) number.
        line: usize,
        /// Which pairing or ordering rule the events break, naming the other line involved
        /// (`process 3 invokes read while its write invoked on line 12 is still open`).
        msg: String,
    },
}

/// Where each event came from, for error messages and for [`pair`]'s consistency checks: the
/// file, the 1-based line of each event, and which optional fields each event really carried.
#[derive(Clone, Debug, Default)]
pub struct Source {
    /// The file the events were read from (or a label such as `<memory>`).
    pub path: PathBuf,
    /// The line of each event, parallel to the event list.
    pub lines: Vec<usize>,
    /// Which optional fields each event carried in the file, parallel to the event list; an
    /// event past its end (events built in memory) counts as carrying all of them. Needed
    /// because a missing field and its default look the same once parsed (an ok read with no
    /// `value` is not a read of null).
    pub carried: Vec<Carried>,
}

/// The optional fields one event carried in its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Carried {
    /// `index` was given (EDN may omit it; JSONL requires it).
    pub index: bool,
    /// `time` was given; an event without one is left out of the time-order check, where its
    /// default 0 would look like a clock going back.
    pub time: bool,
    /// `value` was given (possibly as null).
    pub value: bool,
}

impl Carried {
    /// Every optional field present, as for events built in memory.
    pub const ALL: Carried = Carried {
        index: true,
        time: true,
        value: true,
    };
}

impl Source {
    /// A source for events built in memory: line i+1 for event i, every field carried.
    pub fn memory(n: usize) -> Self {
        Source {
            path: PathBuf::from("<memory>"),
            lines: (1..=n).collect(),
            carried: Vec::new(),
        }
    }

    fn line(&self, i: usize) -> usize {
        self.lines.get(i).copied().unwrap_or(i + 1)
    }

    fn carried(&self, i: usize) -> Carried {
        self.carried.get(i).copied().unwrap_or(Carried::ALL)
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
///
/// A history that contradicts itself is bad input too, never a verdict (module doc): an index not
/// above the previous one, a time earlier than an earlier line's, a completion whose value is not
/// the value its write, cas or append was invoked with, an ok read that carries no `value`.
pub fn pair(events: &[Event], src: &Source) -> Result<Vec<Op>, HistoryError> {
    pair_with(events, src, PairOptions::default())
}

/// How strictly [`pair_with`] reads a history; the default is the strict reading [`pair`] uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PairOptions {
    /// Refuse times that go back in file order (the default). Off, `time` is kept for plots and
    /// not checked: for producers whose file order is known to be the real-time order while
    /// their clocks are not, such as Jepsen, whose worker threads stamp times concurrently (seen
    /// in Knossos's own test data: an invocation 81 ns earlier than the line above it).
    pub check_times: bool,
}

impl Default for PairOptions {
    fn default() -> Self {
        PairOptions { check_times: true }
    }
}

/// [`pair`], with the time check optional ([`PairOptions::check_times`]).
pub fn pair_with(
    events: &[Event],
    src: &Source,
    opts: PairOptions,
) -> Result<Vec<Op>, HistoryError> {
    let mut open: HashMap<u64, usize> = HashMap::new();
    let mut ops: Vec<Op> = Vec::with_capacity(events.len() / 2 + 1);
    let err = |i: usize, msg: String| HistoryError::Pairing {
        path: src.path.clone(),
        line: src.line(i),
        msg,
    };
    // The last index and the latest time seen so far, with the event that carried them.
    let mut last_index: Option<(u64, usize)> = None;
    let mut latest_time: Option<(u64, usize)> = None;
    for (pos, e) in events.iter().enumerate() {
        let carried = src.carried(pos);
        if carried.index {
            if let Some((prev, at)) = last_index.filter(|(prev, _)| e.index <= *prev) {
                let what = if e.index == prev {
                    "repeats"
                } else {
                    "is below"
                };
                return Err(err(
                    pos,
                    format!(
                        "index {} {what} index {prev} on line {}: indices must ascend in file order",
                        e.index,
                        src.line(at)
                    ),
                ));
            }
            last_index = Some((e.index, pos));
        }
        if carried.time && opts.check_times {
            if let Some((prev, at)) = latest_time.filter(|(prev, _)| e.time < *prev) {
                let own_call = open
                    .get(&e.process)
                    .map(|&id| ops[id].call)
                    .filter(|&call| e.kind != EventType::Invoke && src.carried(call).time)
                    .filter(|&call| e.time < events[call].time);
                return Err(err(
                    pos,
                    match own_call {
                        Some(call) => format!(
                            "time {}: this {} returns before its own call (time {} on line {}); \
                             file order is real-time order, and these times contradict it",
                            e.time,
                            e.f.name(),
                            events[call].time,
                            src.line(call)
                        ),
                        None => format!(
                            "time {} is earlier than time {prev} on line {}: file order is \
                             real-time order, and these times contradict it",
                            e.time,
                            src.line(at)
                        ),
                    },
                ));
            }
            latest_time = Some((e.time, pos));
        }
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
                if op.f == Fun::Read {
                    if kind == EventType::Ok && !carried.value {
                        return Err(err(
                            pos,
                            format!(
                                "process {}: this ok read has no value; an ok read must say \
                                 what it read (null for an absent key)",
                                e.process
                            ),
                        ));
                    }
                } else if carried.value
                    && e.value != op.value
                    && !(e.value.is_null() && kind != EventType::Ok)
                {
                    return Err(err(
                        pos,
                        format!(
                            "process {} completes {} with value {} but invoked it with value {} \
                             on line {}",
                            e.process,
                            op.f.name(),
                            brief(&e.value),
                            brief(&op.value),
                            src.line(op.call)
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
pub(crate) fn brief(v: &Value) -> String {
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

    /// Indices 0, 1, 2, ... and times 0, 10, 20, ... in file order, as a recorder writes them.
    fn numbered(mut evs: Vec<Event>) -> Vec<Event> {
        for (i, e) in evs.iter_mut().enumerate() {
            e.index = i as u64;
            e.time = i as u64 * 10;
        }
        evs
    }

    fn pair_err(evs: &[Event]) -> String {
        pair(evs, &Source::memory(evs.len()))
            .unwrap_err()
            .to_string()
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
        let evs = numbered(vec![
            ev(EventType::Invoke, 1, Fun::Read, Value::Null),
            ev(EventType::Invoke, 1, Fun::Read, Value::Null),
        ]);
        let e = pair(&evs, &Source::memory(2)).unwrap_err().to_string();
        assert!(e.contains(":2:") && e.contains("still open"), "{e}");
    }

    #[test]
    fn unfinished_invoke_is_info_and_mismatch_is_recognised() {
        let mut fail = ev(EventType::Fail, 2, Fun::Cas, serde_json::json!([1, 2]));
        fail.error = Some("mismatch".into());
        let evs = numbered(vec![
            ev(EventType::Invoke, 1, Fun::Write, serde_json::json!(3)),
            ev(EventType::Invoke, 2, Fun::Cas, serde_json::json!([1, 2])),
            fail,
        ]);
        let ops = pair(&evs, &Source::memory(3)).unwrap();
        assert_eq!(ops[0].outcome, Outcome::Info);
        assert_eq!(ops[0].ret, None);
        assert_eq!(ops[1].outcome, Outcome::Mismatch);
        assert_eq!(ops[1].ret, Some(2));
    }

    #[test]
    fn unpair_round_trips_pair() {
        let evs = numbered(vec![
            ev(EventType::Invoke, 1, Fun::Write, serde_json::json!(3)),
            ev(EventType::Invoke, 2, Fun::Read, Value::Null),
            ev(EventType::Ok, 2, Fun::Read, serde_json::json!(3)),
            ev(EventType::Info, 1, Fun::Write, serde_json::json!(3)),
        ]);
        let src = Source::memory(4);
        let ops = pair(&evs, &src).unwrap();
        let back = unpair(&ops);
        assert_eq!(pair(&back, &src).unwrap(), ops);
    }

    #[test]
    fn a_completion_that_contradicts_its_invocation_is_an_error() {
        // Written 1, acknowledged as 2: reading 1 afterwards would otherwise pass.
        let evs = numbered(vec![
            ev(EventType::Invoke, 1, Fun::Write, serde_json::json!(1)),
            ev(EventType::Ok, 1, Fun::Write, serde_json::json!(2)),
        ]);
        let e = pair_err(&evs);
        assert!(e.starts_with("<memory>:2:") && e.contains("value 2 but invoked it with value 1"));
        // A cas whose completion names other operands.
        let evs = numbered(vec![
            ev(EventType::Invoke, 1, Fun::Cas, serde_json::json!([1, 2])),
            ev(EventType::Ok, 1, Fun::Cas, serde_json::json!([1, 3])),
        ]);
        assert!(pair_err(&evs).contains("completes cas"));
        // An info or fail that says null claims nothing; an ok that says null contradicts.
        for (kind, fine) in [
            (EventType::Info, true),
            (EventType::Fail, true),
            (EventType::Ok, false),
        ] {
            let evs = numbered(vec![
                ev(EventType::Invoke, 1, Fun::Append, serde_json::json!(5)),
                ev(kind, 1, Fun::Append, Value::Null),
            ]);
            assert_eq!(pair(&evs, &Source::memory(2)).is_ok(), fine, "{kind:?}");
        }
    }

    #[test]
    fn an_ok_read_without_a_value_is_an_error_but_a_read_of_null_is_not() {
        let evs = numbered(vec![
            ev(EventType::Invoke, 1, Fun::Read, Value::Null),
            ev(EventType::Ok, 1, Fun::Read, Value::Null),
        ]);
        assert!(pair(&evs, &Source::memory(2)).is_ok());
        let mut src = Source::memory(2);
        src.carried = vec![
            Carried::ALL,
            Carried {
                value: false,
                ..Carried::ALL
            },
        ];
        let e = pair(&evs, &src).unwrap_err().to_string();
        assert!(
            e.starts_with("<memory>:2:") && e.contains("has no value"),
            "{e}"
        );
    }

    #[test]
    fn indices_must_ascend_in_file_order() {
        let mut evs = numbered(vec![
            ev(EventType::Invoke, 1, Fun::Write, serde_json::json!(1)),
            ev(EventType::Ok, 1, Fun::Write, serde_json::json!(1)),
            ev(EventType::Invoke, 1, Fun::Read, Value::Null),
        ]);
        evs[2].index = 1;
        assert!(pair_err(&evs).contains("<memory>:3: index 1 repeats index 1 on line 2"));
        evs[2].index = 0;
        assert!(pair_err(&evs).contains("index 0 is below index 1"));
        // Sparse indices are fine (a filtered history), and so are missing ones.
        evs[2].index = 7;
        assert!(pair(&evs, &Source::memory(3)).is_ok());
        evs[2].index = 0;
        let mut src = Source::memory(3);
        src.carried = vec![
            Carried::ALL,
            Carried::ALL,
            Carried {
                index: false,
                ..Carried::ALL
            },
        ];
        assert!(pair(&evs, &src).is_ok());
    }

    #[test]
    fn times_must_not_go_back_in_file_order_unless_told_to_trust_the_order() {
        // The stale read that line order hides: by line order the read overlaps write 2, by
        // time it starts after write 2 returned.
        let mut evs = numbered(vec![
            ev(EventType::Invoke, 1, Fun::Write, serde_json::json!(1)),
            ev(EventType::Ok, 1, Fun::Write, serde_json::json!(1)),
            ev(EventType::Invoke, 2, Fun::Read, Value::Null),
            ev(EventType::Invoke, 1, Fun::Write, serde_json::json!(2)),
            ev(EventType::Ok, 1, Fun::Write, serde_json::json!(2)),
            ev(EventType::Ok, 2, Fun::Read, serde_json::json!(1)),
        ]);
        evs[2].time = 100;
        evs[5].time = 110;
        let e = pair_err(&evs);
        assert!(
            e.contains("<memory>:4: time 30 is earlier than time 100 on line 3"),
            "{e}"
        );
        let trusting = PairOptions { check_times: false };
        assert!(pair_with(&evs, &Source::memory(6), trusting).is_ok());
        // Equal times are fine: clocks are coarse.
        for e in &mut evs {
            e.time = 5;
        }
        assert!(pair(&evs, &Source::memory(6)).is_ok());
        // A return before its own call names the call.
        let mut evs = numbered(vec![
            ev(EventType::Invoke, 1, Fun::Write, serde_json::json!(1)),
            ev(EventType::Ok, 1, Fun::Write, serde_json::json!(1)),
        ]);
        evs[0].time = 50;
        let e = pair_err(&evs);
        assert!(
            e.contains("returns before its own call (time 50 on line 1)"),
            "{e}"
        );
        // An event without a time is not compared.
        let mut src = Source::memory(2);
        src.carried = vec![
            Carried {
                time: false,
                ..Carried::ALL
            },
            Carried::ALL,
        ];
        assert!(pair(&evs, &src).is_ok());
    }
}
