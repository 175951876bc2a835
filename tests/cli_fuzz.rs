//! Fuzz-style property test of `raftcheck check` at the level a user meets it: the binary, its
//! exit code and its JSON, fed valid histories that were then damaged the ways files get damaged
//! (random byte changes, insertions and deletions, truncation, swapped and repeated lines).
//!
//! Some cases first change what a few reads returned (still well-formed), so that plenty of
//! the files reach the checker as non-linearizable histories rather than as parse errors.
//!
//! For every damaged file the test works out on its own what the answer must be, and demands
//! exactly that exit code:
//! - the file does not parse or pair, or its ops do not fit their model: 2 (bad input);
//! - it parses to no operations: 3 (it tested nothing);
//! - otherwise the exhaustive oracle of `tests/common` (written from the specification, not
//!   from the checker) decides: 0 if linearizable, 1 if not.
//!
//! And always: no panic (exit 101 or a signal), no hang past a deadline, and `--json` agrees with
//! the exit code. So a history that brute force calls invalid, or one that cannot be read, can
//! never come out as exit 0.
//!
//! Seeded and bounded: `FUZZ_CASES=N` sets the number of cases per format (default 250),
//! `FUZZ_SEED=S` shifts the seeds. A failure prints the seed and the damaged file.

mod common;

use raftcheck::checker::synth::{synth, SynthSpec};
use raftcheck::checker::Model;
use raftcheck::history::{self, edn, jsonl, EventType, Fun, Value};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest a single `raftcheck check` of a small file may take before it counts as a hang (the
/// checker is also given `--time-limit`, far below this).
const DEADLINE: Duration = Duration::from_secs(30);

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small valid history (few enough ops for the exhaustive oracle), as text in one format.
fn base_history(rng: &mut ChaCha8Rng, as_edn: bool) -> Vec<u8> {
    let list = rng.random_bool(0.3);
    let spec = SynthSpec {
        workers: rng.random_range(2..=3),
        ops: rng.random_range(3..=7),
        keys: rng.random_range(1..=2),
        small_values: if rng.random_bool(0.5) { Some(3) } else { None },
        mix: if list { [1, 0, 0, 1] } else { [2, 2, 1, 0] },
        info_rate: 0.2,
        read_info_rate: 0.1,
        mismatch: true,
        seed: rng.random(),
    };
    let mut events = history::unpair(&synth(&spec));
    // Half the time, first change what some reads returned (still well-formed): the damage
    // that makes a history non-linearizable rather than unreadable.
    if rng.random_bool(0.5) {
        for _ in 0..rng.random_range(1..=2) {
            let reads: Vec<usize> = (0..events.len())
                .filter(|&i| events[i].f == Fun::Read && events[i].kind == EventType::Ok)
                .collect();
            if reads.is_empty() {
                break;
            }
            let e = &mut events[reads[rng.random_range(0..reads.len())]];
            e.value = match (&e.value, rng.random_range(0..3)) {
                (Value::Array(items), 0) if !items.is_empty() => {
                    let mut items = items.clone();
                    items.swap_remove(rng.random_range(0..items.len()));
                    Value::Array(items)
                }
                (Value::Array(items), _) => {
                    let mut items = items.clone();
                    items.push(Value::from(rng.random_range(0..4u64)));
                    Value::Array(items)
                }
                (_, 0) => Value::Null,
                _ => Value::from(rng.random_range(0..4u64)),
            };
        }
    }
    let mut out = Vec::new();
    if as_edn {
        edn::write(&mut out, &events).expect("EDN to memory");
    } else {
        jsonl::write(&mut out, &events).expect("JSONL to memory");
    }
    out
}

/// Bytes a mutation inserts: mostly the ones that change meaning in these formats.
fn interesting_byte(rng: &mut ChaCha8Rng) -> u8 {
    const SPECIAL: &[u8] = b"0123456789-.,:[]{}\"\\ \nnulltrue:;#";
    if rng.random_bool(0.8) {
        SPECIAL[rng.random_range(0..SPECIAL.len())]
    } else {
        rng.random()
    }
}

/// Damage the file once, in one of the ways files get damaged.
fn mutate_once(rng: &mut ChaCha8Rng, bytes: &mut Vec<u8>) -> String {
    if bytes.is_empty() {
        bytes.push(interesting_byte(rng));
        return "insert into empty".into();
    }
    let at = rng.random_range(0..bytes.len());
    let digits: Vec<usize> = (0..bytes.len())
        .filter(|&i| bytes[i].is_ascii_digit())
        .collect();
    if !digits.is_empty() && rng.random_bool(0.6) {
        // A changed digit keeps the file parseable but changes a value, a process, an index or
        // a time: the damage that reaches the checker rather than the parser.
        let i = digits[rng.random_range(0..digits.len())];
        let d = b'0' + rng.random_range(0..10u8);
        bytes[i] = d;
        return format!("set digit at {i} to {}", d as char);
    }
    match rng.random_range(0..7) {
        0 => {
            let b = interesting_byte(rng);
            bytes[at] = b;
            format!("set byte {at} to {b:#04x}")
        }
        1 => {
            bytes.insert(at, interesting_byte(rng));
            format!("insert at {at}")
        }
        2 => {
            let end = (at + rng.random_range(1..=8)).min(bytes.len());
            bytes.drain(at..end);
            format!("delete {at}..{end}")
        }
        3 => {
            bytes.truncate(at);
            format!("truncate at {at}")
        }
        kind => {
            let mut lines: Vec<Vec<u8>> =
                bytes.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
            let n = lines.len();
            let (i, j) = (rng.random_range(0..n), rng.random_range(0..n));
            let what = match kind {
                4 | 5 => {
                    lines.swap(i, j);
                    format!("swap lines {} and {}", i + 1, j + 1)
                }
                _ => {
                    let l = lines[i].clone();
                    lines.insert(j, l);
                    format!("copy line {} before line {}", i + 1, j + 1)
                }
            };
            *bytes = lines.join(&b'\n');
            what
        }
    }
}

/// What `raftcheck check` must answer for this file, decided without the checker.
fn expected_exit(path: &Path) -> (i32, String) {
    let Ok((events, src)) = history::read_file(path) else {
        return (2, "does not parse".into());
    };
    let Ok(ops) = history::pair(&events, &src) else {
        return (2, "does not pair".into());
    };
    if ops.is_empty() {
        return (3, "no operations".into());
    }
    let model = Model::infer(&ops);
    if model.validate(&ops).is_err() {
        return (2, format!("does not fit the {} model", model.name()));
    }
    let list = ops.iter().any(|o| o.f == Fun::Append);
    if common::linearizable(&ops, list) {
        (0, format!("{} ops, linearizable", ops.len()))
    } else {
        (1, format!("{} ops, not linearizable", ops.len()))
    }
}

/// For a JSONL file the checker accepted: an independent reading of DESIGN.md's rules (not the
/// library's parser), so that a file the library wrongly accepts is caught too. Returns what is
/// wrong, if anything.
fn jsonl_breaks_the_rules(bytes: &[u8]) -> Option<String> {
    use serde_json::Value as J;
    let text = std::str::from_utf8(bytes).ok()?;
    let mut last_index: Option<u64> = None;
    let mut last_time: Option<u64> = None;
    let mut open: std::collections::HashMap<u64, J> = Default::default();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let n = n + 1;
        let Ok(J::Object(e)) = serde_json::from_str::<J>(line) else {
            return Some(format!("line {n} is not a JSON object"));
        };
        let index = e.get("index").and_then(J::as_u64);
        let Some(index) = index else {
            return Some(format!("line {n} has no index"));
        };
        if last_index.is_some_and(|l| index <= l) {
            return Some(format!("line {n}: index does not ascend"));
        }
        last_index = Some(index);
        if let Some(t) = e.get("time").and_then(J::as_u64) {
            if last_time.is_some_and(|l| t < l) {
                return Some(format!("line {n}: time goes back"));
            }
            last_time = Some(t);
        }
        let (Some(ty), Some(p), Some(f)) = (
            e.get("type").and_then(J::as_str),
            e.get("process").and_then(J::as_u64),
            e.get("f").and_then(J::as_str),
        ) else {
            return Some(format!("line {n} lacks type, process or f"));
        };
        let value = e.get("value");
        if ty == "invoke" {
            if open.insert(p, J::Object(e.clone())).is_some() {
                return Some(format!("line {n}: process {p} invokes twice"));
            }
            continue;
        }
        let Some(J::Object(inv)) = open.remove(&p) else {
            return Some(format!("line {n}: completion without invocation"));
        };
        if inv.get("f").and_then(J::as_str) != Some(f) {
            return Some(format!("line {n}: completes another function"));
        }
        if f == "read" {
            if ty == "ok" && value.is_none() {
                return Some(format!("line {n}: ok read without a value"));
            }
        } else if let Some(v) = value {
            let claims = !(v.is_null() && ty != "ok");
            if claims && Some(v) != inv.get("value") {
                return Some(format!(
                    "line {n}: completion value differs from the invocation's"
                ));
            }
        }
    }
    None
}

/// Run `raftcheck check FILE --json` with a deadline; returns the exit code and stdout.
fn run_check(path: &Path, out: &Path) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_raftcheck"))
        .args(["check", "--json", "--time-limit", "5", "--out"])
        .arg(out)
        .arg(path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start raftcheck");
    let start = Instant::now();
    loop {
        match child.try_wait().expect("wait for raftcheck") {
            Some(status) => {
                let mut stdout = String::new();
                if let Some(mut s) = child.stdout.take() {
                    use std::io::Read;
                    let _ = s.read_to_string(&mut stdout);
                }
                // A signal (e.g. SIGABRT) has no code: report it as -1.
                return (status.code().unwrap_or(-1), stdout);
            }
            None if start.elapsed() > DEADLINE => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("raftcheck check {} hung past {DEADLINE:?}", path.display());
            }
            None => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

fn fuzz(as_edn: bool, first_seed: u64) {
    let cases = env("FUZZ_CASES", 250);
    let seed0 = first_seed + env("FUZZ_SEED", 0) * 1_000_000;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(if as_edn { "h.edn" } else { "h.jsonl" });
    let mut tally = std::collections::BTreeMap::<i32, usize>::new();
    for case in 0..cases {
        let seed = seed0 + case;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut bytes = base_history(&mut rng, as_edn);
        let damage = if rng.random_bool(0.7) {
            rng.random_range(1..=3)
        } else {
            0
        };
        let steps: Vec<String> = (0..damage)
            .map(|_| mutate_once(&mut rng, &mut bytes))
            .collect();
        std::fs::write(&path, &bytes).expect("write the damaged history");
        let (want, why) = expected_exit(&path);
        let out = dir.path().join(format!("out-{case}"));
        let (got, stdout) = run_check(&path, &out);
        let show = || {
            format!(
                "seed {seed} ({}; {}): expected exit {want} ({why}), got {got}\n--- file ---\n{}",
                if as_edn { "EDN" } else { "JSONL" },
                steps.join(", "),
                String::from_utf8_lossy(&bytes)
            )
        };
        assert_eq!(got, want, "{}", show());
        let json: serde_json::Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("--json printed no JSON ({e}): {}", show()));
        let verdict = match want {
            0 => "valid",
            1 => "invalid",
            2 => "error",
            _ => "unknown",
        };
        assert_eq!(json["verdict"], verdict, "{}", show());
        if !as_edn && got != 2 {
            if let Some(broken) = jsonl_breaks_the_rules(&bytes) {
                panic!(
                    "accepted a file that breaks the rules ({broken}): {}",
                    show()
                );
            }
        }
        *tally.entry(got).or_default() += 1;
    }
    eprintln!(
        "{} {cases} damaged histories: exit codes {tally:?}",
        if as_edn { "EDN" } else { "JSONL" }
    );
    // The damage must reach every answer, or the test proves less than it claims.
    if cases >= 200 {
        for code in [0, 1, 2] {
            assert!(
                tally.get(&code).copied().unwrap_or(0) > 0,
                "no case ended with exit {code}: {tally:?}"
            );
        }
    }
}

#[test]
fn damaged_jsonl_histories_never_pass_wrongly() {
    fuzz(false, 1);
}

#[test]
fn damaged_edn_histories_never_pass_wrongly() {
    fuzz(true, 500_000);
}
