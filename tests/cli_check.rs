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

/// Runs `raftcheck check FILE --out DIR --json` and returns (exit code, stdout JSON, stderr).
fn check_json(file: &Path, out: &Path, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let mut args = vec!["check", file.to_str().unwrap(), "--json", "--out"];
    args.push(out.to_str().unwrap());
    args.extend_from_slice(extra);
    let o = raftcheck(&args);
    let json = serde_json::from_str(&stdout(&o))
        .unwrap_or_else(|e| panic!("--json printed no JSON ({e}): {}", stdout(&o)));
    (o.status.code().unwrap_or(-1), json, stderr(&o))
}

#[test]
fn an_empty_history_is_unknown_not_valid() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        ("empty.jsonl", ""),
        ("blank.jsonl", "\n  \n\n"),
        ("empty.edn", "[]\n"),
        ("comment.edn", "; nothing but a comment\n"),
        (
            "nemesis-only.edn",
            "[{:process :nemesis, :type :info, :f :kill, :value nil}]\n",
        ),
    ] {
        let h = write(dir.path(), name, text);
        let out = dir.path().join(format!("out-{name}"));
        let o = raftcheck(&["check", h.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(3), "{name}: {}", stdout(&o));
        assert!(
            stdout(&o).contains("UNKNOWN") && stdout(&o).contains("tested nothing"),
            "{name}: {}",
            stdout(&o)
        );
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap())
                .unwrap();
        assert_eq!(r["verdict"], "unknown", "{name}");
        assert_eq!(
            r["histories"][0]["check"]["reason"]
                .as_str()
                .map(|s| s.contains("no operations")),
            Some(true)
        );
    }
}

#[test]
fn a_history_that_contradicts_itself_exits_2_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let l = |i: u32, ty: &str, p: u32, f: &str, rest: &str| {
        format!(
            "{{\"index\":{i},\"type\":\"{ty}\",\"process\":{p},\"f\":\"{f}\"{rest},\"time\":{}}}\n",
            i * 10
        )
    };
    let cases = [
        (
            "contradicting-write.jsonl",
            // Write 1 acknowledged as 2, then a read of 1: VALID if the ok were believed.
            [
                l(0, "invoke", 1, "write", ",\"value\":1"),
                l(1, "ok", 1, "write", ",\"value\":2"),
                l(2, "invoke", 2, "read", ",\"value\":null"),
                l(3, "ok", 2, "read", ",\"value\":1"),
            ]
            .concat(),
            ":2:",
            "with value 2 but invoked it with value 1",
        ),
        (
            "read-without-value.jsonl",
            [l(0, "invoke", 2, "read", ""), l(1, "ok", 2, "read", "")].concat(),
            ":2:",
            "ok read has no value",
        ),
        (
            "duplicate-index.jsonl",
            [
                l(0, "invoke", 1, "write", ",\"value\":1"),
                l(0, "ok", 1, "write", ",\"value\":1"),
            ]
            .concat(),
            ":2:",
            "index 0 repeats index 0 on line 1",
        ),
    ];
    for (name, text, line, msg) in cases {
        let h = write(dir.path(), name, &text);
        let out = dir.path().join(format!("out-{name}"));
        let o = raftcheck(&["check", h.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{name}: {}", stdout(&o));
        let err = stderr(&o);
        assert!(
            err.contains(&format!("{name}{line}")) && err.contains(msg),
            "{name}: {err}"
        );
        assert!(!stdout(&o).contains("VALID"), "{name}: {}", stdout(&o));
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap())
                .unwrap();
        assert_eq!(r["verdict"], "error", "{name}");
        assert_eq!(r["histories"][0]["verdict"], "error", "{name}");
        assert!(r["histories"][0]["error"].as_str().unwrap().contains(msg));
    }
}

/// The same six events, once in an order whose times contradict it (the stale read hidden:
/// valid by line order) and once in time order (invalid).
#[test]
fn times_against_the_file_order_are_an_error_and_time_order_finds_the_stale_read() {
    let dir = tempfile::tempdir().unwrap();
    let ev = |i: u32, ty: &str, p: u32, f: &str, v: &str, t: u32| {
        format!("{{\"index\":{i},\"type\":\"{ty}\",\"process\":{p},\"f\":\"{f}\",\"value\":{v},\"time\":{t}}}\n")
    };
    let hidden = [
        ev(0, "invoke", 1, "write", "1", 0),
        ev(1, "ok", 1, "write", "1", 10),
        ev(2, "invoke", 2, "read", "null", 100),
        ev(3, "invoke", 1, "write", "2", 20),
        ev(4, "ok", 1, "write", "2", 30),
        ev(5, "ok", 2, "read", "1", 110),
    ]
    .concat();
    let h = write(dir.path(), "hidden.jsonl", &hidden);
    let (code, json, err) = check_json(&h, &dir.path().join("o1"), &[]);
    assert_eq!(code, 2, "{json}");
    assert!(
        err.contains("hidden.jsonl:4: time 20 is earlier than time 100 on line 3"),
        "{err}"
    );
    assert_eq!(json["verdict"], "error");
    // Told to trust the file order (as for Jepsen histories), the line order is used.
    let (code, json, _) = check_json(&h, &dir.path().join("o2"), &["--trust-file-order"]);
    assert_eq!((code, &json["verdict"]), (0, &serde_json::json!("valid")));
    // The same events in time order: the read began after write 2 returned.
    let in_time_order = [
        ev(0, "invoke", 1, "write", "1", 0),
        ev(1, "ok", 1, "write", "1", 10),
        ev(2, "invoke", 1, "write", "2", 20),
        ev(3, "ok", 1, "write", "2", 30),
        ev(4, "invoke", 2, "read", "null", 100),
        ev(5, "ok", 2, "read", "1", 110),
    ]
    .concat();
    let h = write(dir.path(), "time-order.jsonl", &in_time_order);
    let (code, json, _) = check_json(&h, &dir.path().join("o3"), &[]);
    assert_eq!((code, &json["verdict"]), (1, &serde_json::json!("invalid")));
    // A return before its own call.
    let back = [
        ev(0, "invoke", 1, "write", "1", 50),
        ev(1, "ok", 1, "write", "1", 10),
    ]
    .concat();
    let h = write(dir.path(), "back.jsonl", &back);
    let (code, _, err) = check_json(&h, &dir.path().join("o4"), &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("back.jsonl:2:") && err.contains("returns before its own call"),
        "{err}"
    );
    // EDN is held to the same rule.
    let edn = write(
        dir.path(),
        "back.edn",
        "[{:type :invoke, :f :write, :value 1, :process 0, :time 50}\n \
          {:type :ok, :f :write, :value 1, :process 0, :time 10}]\n",
    );
    let (code, _, err) = check_json(&edn, &dir.path().join("o5"), &[]);
    assert_eq!(code, 2);
    assert!(err.contains("back.edn:2:"), "{err}");
}

#[test]
fn json_never_says_valid_for_a_file_that_could_not_be_read() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.jsonl", FINE);
    let bad = write(dir.path(), "bad.jsonl", "{oops\n");
    let out = dir.path().join("out");
    let o = raftcheck(&[
        "check",
        good.to_str().unwrap(),
        bad.to_str().unwrap(),
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    for json in [
        serde_json::from_str::<serde_json::Value>(&stdout(&o)).unwrap(),
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap(),
    ] {
        assert_eq!(json["verdict"], "error", "{json}");
        assert_eq!(json["histories"][0]["verdict"], "valid");
        assert_eq!(json["histories"][1]["verdict"], "error");
        assert!(json["histories"][1]["error"]
            .as_str()
            .unwrap()
            .contains("bad.jsonl:1:"));
    }
}

#[test]
fn an_unreadable_path_writes_nothing_and_says_its_os_error_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.jsonl");
    let out = dir.path().join("out");
    let o = raftcheck(&[
        "check",
        missing.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    assert!(err.contains("missing.jsonl"), "{err}");
    assert!(
        !out.exists(),
        "results written for a path that could not be read"
    );
    assert!(!stdout(&o).contains("results:"), "{}", stdout(&o));
    // --json still answers on stdout, with verdict error.
    let (code, json, _) = check_json(&missing, &out, &[]);
    assert_eq!((code, &json["verdict"]), (2, &serde_json::json!("error")));
    assert!(!out.exists());
}

#[test]
fn check_out_writes_the_report_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let h = write(dir.path(), "stale.jsonl", STALE);
    let out = dir.path().join("out");
    let o = raftcheck(&["check", h.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let page = out.join("report.html");
    assert!(
        stdout(&o).contains(&format!("report: {}", page.display())),
        "{}",
        stdout(&o)
    );
    let html = std::fs::read_to_string(&page).expect("report.html written");
    assert!(html.contains("<h1>INVALID</h1>") && html.contains("cannot be placed"));
    assert!(out.join("latency.png").is_file());
}
