//! Golden tests on recorded invalid runs: one fixture per raftkv bug row that the checker finds
//! (tests/fixtures/bugs/<row>/history.jsonl, a trimmed real run; see the README there), each
//! pinning the size of the counterexample witness the shrinker gives it.
//!
//! The sizes in [`WITNESS`] are what the shrinker gives now. A change to the shrinker that
//! makes a witness smaller (or, deliberately, larger) updates the table; anything else that
//! moves a number is a regression. forget-vote has no fixture: it is found by the
//! term-monotonicity invariant, and its histories are linearizable.

use raftcheck::checker::{check, CheckOptions, CheckResult, Counterexample, Verdict};
use raftcheck::history::{self, Op};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

/// Each fixture (a directory under tests/fixtures/bugs) and the number of ops in its witness.
const WITNESS: &[(&str, usize)] = &[
    ("stale-read", 3),
    ("leader-local-read", 3),
    ("ack-before-commit", 2),
    ("vote-without-log-check", 2),
];

fn fixture(row: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/bugs")
        .join(row)
        .join("history.jsonl")
}

fn read(row: &str) -> Vec<Op> {
    let path = fixture(row);
    let (events, src) = history::read_file(&path).unwrap_or_else(|e| panic!("{row}: {e}"));
    history::pair(&events, &src).unwrap_or_else(|e| panic!("{row}: {e}"))
}

fn check_default(row: &str, ops: &[Op]) -> CheckResult {
    check(ops, &CheckOptions::default()).unwrap_or_else(|e| panic!("{row}: {e}"))
}

/// The counterexample of the fixture's one invalid key.
fn witness<'a>(row: &str, res: &'a CheckResult) -> &'a Counterexample {
    assert_eq!(res.verdict, Verdict::Invalid, "{row}: {res:#?}");
    let bad: Vec<_> = res
        .keys
        .iter()
        .filter(|k| k.verdict == Verdict::Invalid)
        .collect();
    assert_eq!(
        bad.len(),
        1,
        "{row}: expected one invalid key, got {:?}",
        bad.iter().map(|k| &k.key).collect::<Vec<_>>()
    );
    bad[0]
        .counterexample
        .as_ref()
        .unwrap_or_else(|| panic!("{row}: invalid key {:?} has no counterexample", bad[0].key))
}

fn ids(cx: &Counterexample) -> Vec<usize> {
    cx.ops.iter().map(|o| o.id).collect()
}

#[test]
fn every_bug_fixture_is_invalid_with_its_pinned_witness_size() {
    let mut wrong = Vec::new();
    for &(row, size) in WITNESS {
        let ops = read(row);
        let res = check_default(row, &ops);
        let cx = witness(row, &res);
        if cx.ops.len() != size {
            wrong.push(format!(
                "{row}: witness has {} ops, pinned {size} (ids {:?})",
                cx.ops.len(),
                ids(cx)
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn witness_ops_are_ops_of_the_history() {
    for &(row, _) in WITNESS {
        let ops = read(row);
        let by_id: HashMap<usize, &Op> = ops.iter().map(|o| (o.id, o)).collect();
        let res = check_default(row, &ops);
        let cx = witness(row, &res);
        assert!(!cx.ops.is_empty(), "{row}: empty witness");
        for w in &cx.ops {
            let o = by_id
                .get(&w.id)
                .unwrap_or_else(|| panic!("{row}: witness op {} is not in the history", w.id));
            assert_eq!(
                (w.process, w.f, &w.key),
                (o.process, o.f, &o.key),
                "{row}: witness op {} differs from the history's op {}: {w:?} vs {o:?}",
                w.id,
                o.id
            );
        }
    }
}

#[test]
fn the_witness_alone_is_invalid() {
    for &(row, _) in WITNESS {
        let ops = read(row);
        let res = check_default(row, &ops);
        let cx = witness(row, &res);
        // As the witness is (weakened ops unknown, reads projected if `projection` is set).
        let opts = CheckOptions {
            model: Some(res.model),
            shrink: false,
            ..Default::default()
        };
        let again = check(&cx.ops, &opts).unwrap_or_else(|e| panic!("{row} witness: {e}"));
        assert_eq!(
            again.verdict,
            Verdict::Invalid,
            "{row}: the witness (ids {:?}, projection {:?}) checks {:?} on its own",
            ids(cx),
            cx.projection,
            again.verdict
        );
    }
}

#[test]
fn the_witness_is_deterministic() {
    for &(row, _) in WITNESS {
        let ops = read(row);
        let first = check_default(row, &ops);
        let second = check_default(row, &ops);
        assert_eq!(
            ids(witness(row, &first)),
            ids(witness(row, &second)),
            "{row}: two checks gave different witnesses"
        );
    }
}

#[test]
fn raftcheck_check_exits_1_on_every_bug_fixture() {
    let dir = tempfile::tempdir().unwrap();
    for &(row, _) in WITNESS {
        let out = dir.path().join(row);
        let o = Command::new(env!("CARGO_BIN_EXE_raftcheck"))
            .arg("check")
            .arg(fixture(row))
            .arg("--out")
            .arg(&out)
            .output()
            .expect("run raftcheck");
        assert_eq!(
            o.status.code(),
            Some(1),
            "{row}:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        let text = std::fs::read_to_string(out.join("results.json")).unwrap();
        let r: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(r["verdict"], "invalid", "{row}: {r}");
    }
}
