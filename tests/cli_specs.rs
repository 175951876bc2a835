//! Where the `raftcheck` binary finds named specs (`raftcheck::spec::SpecRoots`): from
//! a directory that is not the checkout, a missing name is refused before anything starts, with
//! every place it looked; `RAFTCHECK_SPECS` is searched first. The order itself is unit-tested
//! in `src/cluster/spec.rs` with made-up layouts; this checks the process wiring (the current
//! directory, the variable, the executable's own path).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `raftcheck ARGS` in `cwd`, with `RAFTCHECK_SPECS` set to `specs` or removed.
fn raftcheck_in(cwd: &Path, specs: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_raftcheck"));
    cmd.current_dir(cwd).args(args);
    match specs {
        Some(d) => cmd.env("RAFTCHECK_SPECS", d),
        None => cmd.env_remove("RAFTCHECK_SPECS"),
    };
    cmd.output().expect("run raftcheck")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Copy a shipped spec (read through the source tree, which tests may use) to `dir/rel`.
fn copy_shipped(rel: &str, dir: &Path, to: &str) -> PathBuf {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel))
        .unwrap_or_else(|e| panic!("{rel}: {e}"));
    let p = dir.join(to);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(&p, text).expect("write spec");
    p
}

#[test]
fn a_missing_name_exits_2_listing_every_place_in_order() {
    let t = tempfile::tempdir().expect("tempdir");
    let specs = t.path().join("specs");
    std::fs::create_dir_all(&specs).expect("mkdir");
    let results = t.path().join("results");
    let o = raftcheck_in(
        t.path(),
        Some(&specs),
        &[
            "run",
            "--cluster",
            "no-such-server",
            "--results",
            results.to_str().expect("utf-8 temp path"),
        ],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    let exe_dir = Path::new(env!("CARGO_BIN_EXE_raftcheck"))
        .parent()
        .expect("exe dir");
    let places = [
        specs.join("clusters/no-such-server.toml"),
        PathBuf::from("./clusters/no-such-server.toml"),
        exe_dir.join("clusters/no-such-server.toml"),
    ];
    let at: Vec<usize> = places
        .iter()
        .map(|p| {
            let p = p.display().to_string();
            err.find(&p)
                .unwrap_or_else(|| panic!("{p} not listed in: {err}"))
        })
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "order: {err}");
    assert!(err.contains("RAFTCHECK_SPECS"), "{err}");
    assert!(!results.exists(), "a refused run leaves no results dir");
}

#[test]
fn raftcheck_specs_is_searched_before_the_current_directory() {
    let t = tempfile::tempdir().expect("tempdir");
    let (specs, cwd) = (t.path().join("specs"), t.path().join("cwd"));
    // The variable's directory has the cluster and a workload the current directory lacks;
    // the current directory has a workload of the same name that must lose.
    copy_shipped("clusters/raftkv.toml", &specs, "clusters/mine.toml");
    copy_shipped("workloads/register.toml", &specs, "workloads/mine.toml");
    std::fs::create_dir_all(cwd.join("workloads")).expect("mkdir");
    std::fs::write(cwd.join("workloads/mine.toml"), "not = [valid").expect("write");
    let args = [
        "run",
        "--cluster",
        "mine",
        "--workload",
        "mine",
        "--nemesis",
        "no-such-nemesis",
        "--results",
        "results",
    ];
    let o = raftcheck_in(&cwd, Some(&specs), &args);
    let err = stderr(&o);
    // Cluster and workload were found in $RAFTCHECK_SPECS (the broken one in the current
    // directory was never read); only the nemesis is missing.
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no nemesis named \"no-such-nemesis\""),
        "{err}"
    );
    // Without the variable the current directory's broken workload is the one found (and
    // refused when read, before anything starts).
    copy_shipped("clusters/raftkv.toml", &cwd, "clusters/mine.toml");
    copy_shipped("nemesis/none.toml", &cwd, "nemesis/none.toml");
    let mut args = args;
    args[6] = "none";
    let o = raftcheck_in(&cwd, None, &args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("./workloads/mine.toml"), "{err}");
}

#[test]
fn the_matrix_spec_is_found_by_name_and_a_path_is_taken_as_given() {
    let t = tempfile::tempdir().expect("tempdir");
    let specs = t.path().join("specs");
    copy_shipped("matrix.toml", &specs, "matrix.toml");
    let table = t.path().join("runs.jsonl");
    std::fs::write(&table, "").expect("write table");
    let results = t.path().join("results");
    let summarise = |spec: &str, env: Option<&Path>| {
        raftcheck_in(
            t.path(),
            env,
            &[
                "matrix",
                "--spec",
                spec,
                "--summarise",
                table.to_str().expect("utf-8"),
                "--results",
                results.to_str().expect("utf-8"),
            ],
        )
    };
    // The default name, found through RAFTCHECK_SPECS from a directory without one.
    let o = summarise("matrix.toml", Some(&specs));
    assert_ne!(o.status.code(), Some(2), "{}", stderr(&o));
    // A path with a '/' is not searched: ./matrix.toml does not exist here.
    let o = summarise("./matrix.toml", Some(&specs));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("no matrix named \"./matrix.toml\""), "{err}");
}
