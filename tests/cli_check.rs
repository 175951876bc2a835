//! End-to-end tests of `raftcheck check`: exit codes, messages, results.json, many files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn raftcheck(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_raftcheck"))
        .args(args)
        .output()
        .expect("run raftcheck")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write history");
    p
}

const STALE: &str = r#"{"index":0,"type":"invoke","process":1,"f":"write","value":1,"time":0}
{"index":1,"type":"ok","process":1,"f":"write","value":1,"time":100}
{"index":2,"type":"invoke","process":1,"f":"write","value":2,"time":200}
{"index":3,"type":"ok","process":1,"f":"write","value":2,"time":300}
{"index":4,"type":"invoke","process":2,"f":"read","value":null,"time":400}
{"index":5,"type":"ok","process":2,"f":"read","value":1,"time":500}
"#;

const FINE: &str = r#"{"index":0,"type":"invoke","process":1,"f":"write","key":"a","value":1,"time":0}
{"index":1,"type":"invoke","process":2,"f":"read","key":"a","value":null,"time":50}
{"index":2,"type":"ok","process":1,"f":"write","key":"a","value":1,"time":100}
{"index":3,"type":"ok","process":2,"f":"read","key":"a","value":1,"time":150}
"#;

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn valid_history_exits_0_and_writes_results() {
    let dir = tempfile::tempdir().unwrap();
    let h = write(dir.path(), "fine.jsonl", FINE);
    let out = dir.path().join("out");
    let o = raftcheck(&["check", h.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("VALID (kv, 2 ops, 1 key"),
        "{}",
        stdout(&o)
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(r["verdict"], "valid");
    assert_eq!(r["histories"][0]["op_counts"]["read"]["ok"], 1);
}

#[test]
fn stale_read_exits_1_with_a_counterexample() {
    let dir = tempfile::tempdir().unwrap();
    let h = write(dir.path(), "stale.jsonl", STALE);
    let out = dir.path().join("out");
    let o = raftcheck(&["check", h.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let s = stdout(&o);
    assert!(
        s.contains("INVALID") && s.contains("cannot be placed"),
        "{s}"
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let c = &r["histories"][0]["check"]["keys"][0]["counterexample"];
    assert_eq!(c["unplaced"], 2, "{c}");
    assert_eq!(c["ops"].as_array().unwrap().len(), 3);
}

#[test]
fn malformed_line_exits_2_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}{{\"type\": nope}}\n",
        &FINE[..FINE.find('\n').unwrap() + 1]
    );
    let h = write(dir.path(), "bad.jsonl", &text);
    let o = raftcheck(&[
        "check",
        h.to_str().unwrap(),
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("bad.jsonl:2:"), "{}", stderr(&o));
}

#[test]
fn completion_without_invoke_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let h = write(
        dir.path(),
        "orphan.jsonl",
        "{\"index\":0,\"type\":\"ok\",\"process\":1,\"f\":\"read\",\"value\":1}\n",
    );
    let o = raftcheck(&[
        "check",
        h.to_str().unwrap(),
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("orphan.jsonl:1:") && stderr(&o).contains("never invoked"));
}

#[test]
fn many_files_report_each_and_exit_with_the_worst() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.jsonl", FINE);
    let b = write(dir.path(), "b.jsonl", STALE);
    let o = raftcheck(&[
        "check",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let s = stdout(&o);
    assert!(
        s.contains("a.jsonl: VALID") && s.contains("b.jsonl: INVALID"),
        "{s}"
    );
    assert!(
        s.contains("2 histories: 1 valid, 1 invalid, 0 unknown"),
        "{s}"
    );
}

#[test]
fn missing_file_and_bad_flags_exit_2() {
    let o = raftcheck(&["check", "/nonexistent/history.jsonl", "--out", "/tmp"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/nonexistent/history.jsonl"));
    let o = raftcheck(&["check", "x.jsonl", "--model", "bogus"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown model"), "{}", stderr(&o));
    let o = raftcheck(&["check", "x.jsonl", "--time-limit", "-1"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn model_that_does_not_fit_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let h = write(dir.path(), "fine.jsonl", FINE);
    let o = raftcheck(&[
        "check",
        h.to_str().unwrap(),
        "--model",
        "list-append",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(stderr(&o).contains("list-append model"), "{}", stderr(&o));
}

#[test]
fn hard_history_with_a_short_limit_exits_3() {
    use raftcheck::checker::synth::{synth, SynthSpec};
    let spec = SynthSpec::hard(3);
    let events = raftcheck::history::unpair(&synth(&spec));
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hard.jsonl");
    raftcheck::history::jsonl::write(std::fs::File::create(&p).unwrap(), &events).unwrap();
    let o = raftcheck(&[
        "check",
        p.to_str().unwrap(),
        "--time-limit",
        "0.3",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
    assert!(stdout(&o).contains("time limit reached"), "{}", stdout(&o));
}

#[test]
fn edn_history_is_checked_and_convert_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let edn = write(
        dir.path(),
        "h.edn",
        "[{:type :invoke, :f :write, :value 1, :process 0, :time 1, :index 0}\n\
          {:type :ok, :f :write, :value 1, :process 0, :time 2, :index 1}\n\
          {:type :info, :f :start, :value nil, :process :nemesis, :time 3}\n\
          {:type :invoke, :f :read, :value nil, :process 1, :time 4, :index 2}\n\
          {:type :ok, :f :read, :value 1, :process 1, :time 5, :index 3}]\n",
    );
    let o = raftcheck(&[
        "check",
        edn.to_str().unwrap(),
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let jsonl = dir.path().join("h.jsonl");
    let o = raftcheck(&["convert", edn.to_str().unwrap(), jsonl.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let back = dir.path().join("back.edn");
    let o = raftcheck(&["convert", jsonl.to_str().unwrap(), back.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = raftcheck(&[
        "check",
        back.to_str().unwrap(),
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
}
