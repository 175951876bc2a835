//! The `raftcheck` command line: parse flags, call the library, map results to exit codes.
//!
//! Exit codes (DESIGN.md): 0 valid, 1 invalid, 2 bad input or a run that could not be carried
//! out, 3 unknown. Errors print one clear line on stderr.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use raftcheck::checker::{self, CheckOptions, Model, Verdict};
use raftcheck::history;
use raftcheck::report::{self, text, CheckReport, HistoryCheck};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "raftcheck",
    version,
    about = "Jepsen-style linearizability testing for Raft servers",
    long_about = "Jepsen-style linearizability testing for Raft servers.\n\n\
        Exit codes: 0 valid, 1 invalid (a violation was found), 2 bad input or a run that \
        could not be carried out, 3 unknown (a limit was reached or the run cannot vouch for \
        what it tested)."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Check history files (history.jsonl or Jepsen history.edn) for linearizability.
    Check(CheckArgs),
    /// Run a test: start a cluster, drive clients while the nemesis injects faults, check.
    Run(Box<RunArgs>),
    /// Re-render the report (report.html, PNG plots) of a finished run directory.
    Report {
        /// A run's results directory (the one holding results.json).
        run_dir: PathBuf,
    },
    /// Run the bug-detection matrix: every raftkv bug switch and the controls, several seeds.
    Matrix(MatrixArgs),
    /// Remove what dead runs left behind (node processes, namespaces, links, rules, lock files);
    /// runs still going are skipped and listed. Exits 2 if something could not be removed.
    Clean {
        /// Also remove the resources of runs that are still going (they will then fail).
        #[arg(long)]
        force: bool,
    },
    /// Convert a history between JSONL and Jepsen EDN (format chosen by the output's extension).
    Convert {
        /// Input history (.jsonl or .edn; detected by content).
        input: PathBuf,
        /// Output file: `.edn` writes EDN, anything else JSONL.
        output: PathBuf,
    },
}

#[derive(Args)]
struct RunArgs {
    /// Cluster spec: a name under clusters/ (raftkv, etcd, ...) or a path to a .toml file.
    #[arg(long, default_value = "raftkv")]
    cluster: String,
    /// Workload spec: a name under workloads/ (register, cas-register, kv, list-append) or a path.
    #[arg(long, default_value = "register")]
    workload: String,
    /// Nemesis spec: a name under nemesis/ (none, kill, pause, partition, all) or a path.
    #[arg(long, default_value = "all")]
    nemesis: String,
    /// Length of the fault phase in seconds (default: the workload's, 30 s in the shipped ones).
    #[arg(long, value_name = "SECONDS", value_parser = parse_positive)]
    time_limit: Option<f64>,
    /// Concurrent client workers (default: the workload's).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Target ops per second over all workers; 0 for as fast as possible (default: workload's).
    #[arg(long)]
    rate: Option<f64>,
    /// Number of nodes (default: the cluster spec's, 3 in the shipped ones).
    #[arg(long)]
    nodes: Option<usize>,
    /// Seed for the op generator and the fault schedule (default: random, printed and saved).
    #[arg(long)]
    seed: Option<u64>,
    /// Extra argument for every node, repeatable (e.g. --node-arg=--bug=stale-read for raftkv).
    #[arg(long = "node-arg", value_name = "ARG", allow_hyphen_values = true)]
    node_args: Vec<String>,
    /// Repeat the run this many times; the exit code is the worst verdict.
    #[arg(long, default_value_t = 1)]
    test_count: u32,
    /// Network mode: auto (netns when root with ip and iptables, else loopback), netns, loopback.
    #[arg(long, default_value = "auto", value_parser = ["auto", "netns", "loopback"])]
    net: String,
    /// Subnet for netns mode, e.g. 10.231.7.0/24 (default: a free /24 in 10.231.0.0/16).
    #[arg(long)]
    subnet: Option<String>,
    /// Where runs are stored.
    #[arg(long, default_value = "results")]
    results: PathBuf,
    /// Keep the nodes' data dirs in the results dir after the run.
    #[arg(long)]
    keep_data: bool,
    /// Checker time limit in seconds; undecided keys make the run unknown (exit 3).
    #[arg(long, value_name = "SECONDS", value_parser = parse_positive)]
    check_time_limit: Option<f64>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Also write a JUnit XML file for CI systems (one test case per run, per key if invalid).
    #[arg(long, value_name = "PATH")]
    junit: Option<PathBuf>,
}

#[derive(Args)]
struct MatrixArgs {
    /// Matrix spec.
    #[arg(long, default_value = "matrix.toml")]
    spec: PathBuf,
    /// Only these rows (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    rows: Vec<String>,
    /// Only the CI-sized subset (rows with ci = true).
    #[arg(long)]
    ci: bool,
    /// Seeds per row.
    #[arg(long, default_value_t = 10)]
    seeds: u64,
    /// First seed.
    #[arg(long, default_value_t = 1)]
    first_seed: u64,
    /// Override every row's fault-phase seconds.
    #[arg(long, value_parser = parse_positive)]
    time_limit: Option<f64>,
    /// Where runs are stored.
    #[arg(long, default_value = "results")]
    results: PathBuf,
    /// Append each run's line (seed, commit, verdict, time to first violation) to this table.
    #[arg(long)]
    record: Option<PathBuf>,
    /// Summarise an existing table instead of running (e.g. docs/matrix/runs.jsonl).
    #[arg(long)]
    summarise: Option<PathBuf>,
}

fn parse_positive(s: &str) -> Result<f64, String> {
    parse_seconds(s).map(|d| d.as_secs_f64())
}

#[derive(Args)]
struct CheckArgs {
    /// History files; each is checked on its own and gets one line of output.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Model: register, cas-register, kv or list-append (inferred from the ops if omitted).
    #[arg(long, value_parser = parse_model)]
    model: Option<Model>,
    /// Give up after this many seconds per file; undecided keys are reported unknown (exit 3).
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    time_limit: Option<Duration>,
    /// Memory the search memo may use, in MiB; past it, undecided keys are unknown.
    #[arg(long, value_name = "MIB", default_value_t = 2048)]
    memory_limit: u64,
    /// Check all keys as one history instead of splitting per key (slower; for comparison).
    #[arg(long)]
    no_split: bool,
    /// Keep counterexamples whole instead of shrinking them to a few ops.
    #[arg(long)]
    no_shrink: bool,
    /// Read Jepsen EDN `:fail` cas ops as "compare mismatched" observations (default: plain
    /// fail, as Knossos reads them).
    #[arg(long)]
    edn_fail_cas_is_mismatch: bool,
    /// Directory for results.json (default: results/check/<timestamp>).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Print results.json on stdout instead of the human summary.
    #[arg(long)]
    json: bool,
}

fn parse_model(s: &str) -> Result<Model, String> {
    Model::parse(s).ok_or_else(|| {
        let names: Vec<&str> = Model::ALL.iter().map(|m| m.name()).collect();
        format!("unknown model {s:?}; expected one of {}", names.join(", "))
    })
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("not a number of seconds: {s:?}"))?;
    if !(v.is_finite() && v > 0.0) {
        return Err(format!("must be a positive number of seconds, got {s}"));
    }
    Ok(Duration::from_secs_f64(v))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Check(args) => cmd_check(args),
        Cmd::Run(args) => cmd_run(*args),
        Cmd::Clean { force } => cmd_clean(force),
        Cmd::Matrix(args) => cmd_matrix(args),
        Cmd::Report { run_dir } => cmd_report(&run_dir).map(|_| 0),
        Cmd::Convert { input, output } => cmd_convert(&input, &output).map(|_| 0),
    };
    match result {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("raftcheck: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn read_ops(path: &Path, edn_mismatch: bool) -> Result<Vec<history::Op>> {
    let (events, src) = history::read_file_with(path, edn_mismatch)?;
    Ok(history::pair(&events, &src)?)
}

fn check_one(
    path: &Path,
    args: &CheckArgs,
    opts: &CheckOptions,
) -> (HistoryCheck, Option<Vec<history::Op>>) {
    let file = path.display().to_string();
    let checked = read_ops(path, args.edn_fail_cas_is_mismatch).and_then(|ops| {
        let counts = report::op_counts(&ops);
        let r = checker::check(&ops, opts).with_context(|| file.clone())?;
        Ok((counts, r, ops))
    });
    let (h, ops) = match checked {
        Ok((op_counts, r, ops)) => (
            HistoryCheck {
                file,
                verdict: Some(r.verdict),
                error: None,
                op_counts,
                check: Some(r),
            },
            Some(ops),
        ),
        Err(e) => (
            HistoryCheck {
                file,
                verdict: None,
                error: Some(format!("{e:#}")),
                op_counts: Default::default(),
                check: None,
            },
            None,
        ),
    };
    (h, ops)
}

fn cmd_check(args: CheckArgs) -> Result<i32> {
    let opts = CheckOptions {
        model: args.model,
        time_limit: args.time_limit,
        memory_limit: args.memory_limit.saturating_mul(1 << 20),
        split_keys: !args.no_split,
        shrink: !args.no_shrink,
    };
    let mut histories = Vec::new();
    let mut ops_by_file = std::collections::BTreeMap::new();
    for path in &args.files {
        let (h, ops) = check_one(path, &args, &opts);
        if let Some(ops) = ops {
            ops_by_file.insert(h.file.clone(), ops);
        }
        if !args.json {
            match (&h.check, &h.error) {
                (Some(r), _) => {
                    println!("{}", text::verdict_line(&h.file, r));
                    print!("{}", text::details(r));
                }
                (None, Some(e)) => eprintln!("raftcheck: error: {e}"),
                (None, None) => {}
            }
        }
        histories.push(h);
    }
    let verdict = histories
        .iter()
        .filter_map(|h| h.verdict)
        .fold(Verdict::Valid, Verdict::merge);
    let errors = histories.iter().any(|h| h.error.is_some());
    let rep = CheckReport {
        verdict,
        errors,
        histories,
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| Path::new("results").join("check").join(report::timestamp()));
    let results = out.join("results.json");
    report::write_json(&results, &rep).with_context(|| format!("writing {}", results.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rep)?);
    } else {
        if rep.histories.len() > 1 {
            let n = |v: Verdict| {
                rep.histories
                    .iter()
                    .filter(|h| h.verdict == Some(v))
                    .count()
            };
            println!(
                "{} histories: {} valid, {} invalid, {} unknown, {} not checkable",
                rep.histories.len(),
                n(Verdict::Valid),
                n(Verdict::Invalid),
                n(Verdict::Unknown),
                rep.histories.iter().filter(|h| h.error.is_some()).count()
            );
        }
        println!("results: {}", results.display());
        println!("report: {}", out.join("report.html").display());
    }
    // Bad input wins: the user must fix the invocation before any verdict means anything.
    Ok(if errors { 2 } else { verdict.exit_code() })
}

fn cmd_run(args: RunArgs) -> Result<i32> {
    use raftcheck::run::{self, NetChoice, RunOptions};
    use std::io::IsTerminal;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    if args.test_count == 0 {
        bail!("--test-count must be at least 1");
    }
    let interrupt = Arc::new(AtomicBool::new(false));
    {
        // Ctrl-C ends the fault phase; the run then heals, stops, cleans and checks.
        let flag = interrupt.clone();
        let mut signals = signal_hook_stream()?;
        std::thread::spawn(move || {
            for _ in signals.forever() {
                if flag.swap(true, Ordering::Relaxed) {
                    eprintln!("raftcheck: still cleaning up; press Ctrl-C again to wait");
                } else {
                    eprintln!("raftcheck: interrupted: healing, stopping nodes, checking what was recorded");
                }
            }
        });
    }
    let mut worst: Option<i32> = None;
    let mut finished: Vec<(PathBuf, run::RunResults)> = Vec::new();
    let command: Vec<String> = std::env::args().collect();
    for i in 0..args.test_count {
        let seed = args.seed.map(|s| s + i as u64).unwrap_or_else(rand_seed);
        let mut cmd = command.clone();
        if args.seed.is_none() {
            cmd.push(format!("--seed={seed}"));
        }
        let opts = RunOptions {
            cluster: args.cluster.clone(),
            workload: args.workload.clone(),
            nemesis: args.nemesis.clone(),
            time_limit: args.time_limit,
            concurrency: args.concurrency,
            rate: args.rate,
            nodes: args.nodes,
            seed,
            node_args: args.node_args.clone(),
            results_root: args.results.clone(),
            net: match args.net.as_str() {
                "netns" => NetChoice::Netns,
                "loopback" => NetChoice::Loopback,
                _ => NetChoice::Auto,
            },
            subnet: args.subnet.clone(),
            keep_data: args.keep_data,
            check_time_limit: args.check_time_limit,
            progress: !args.quiet && std::io::stderr().is_terminal(),
            command: cmd.join(" "),
            interrupt: interrupt.clone(),
        };
        if args.test_count > 1 {
            eprintln!(
                "raftcheck: run {} of {} (seed {seed})",
                i + 1,
                args.test_count
            );
        }
        let out = run::run(&opts)?;
        let r = &out.results;
        println!(
            "{} — {} {} {}, seed {}: {} ops ({} ok), {} leader changes, faults: {}",
            text::verdict_word(out.verdict),
            r.cluster,
            r.workload,
            r.nemesis,
            r.seed,
            r.check.ops,
            r.exercised
                .ops
                .values()
                .map(|m| m.get("ok").copied().unwrap_or(0))
                .sum::<usize>(),
            r.exercised.leader_changes,
            if r.exercised.faults.is_empty() {
                "none".to_string()
            } else {
                r.exercised
                    .faults
                    .iter()
                    .map(|(k, c)| match (c.installed, c.skipped, c.failed) {
                        (i, 0, 0) => format!("{k} x{i}"),
                        (i, s, f) => format!("{k} x{i} ({s} skipped, {f} failed)"),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        print!("{}", text::details(&r.check));
        for reason in &r.reasons {
            println!("  {reason}");
        }
        println!("report: {}", out.dir.join("report.html").display());
        let code = out.exit_code;
        finished.push((out.dir.clone(), out.results));
        if let Some(path) = &args.junit {
            let runs: Vec<(&Path, &run::RunResults)> =
                finished.iter().map(|(d, r)| (d.as_path(), r)).collect();
            report::write_junit(path, &runs)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        worst = Some(match worst {
            None => code,
            Some(w) => worse(w, code),
        });
        if interrupt.load(Ordering::Relaxed) {
            break;
        }
    }
    Ok(worst.unwrap_or(0))
}

/// Order exit codes by severity: invalid (1) over unknown (3) over valid (0).
fn worse(a: i32, b: i32) -> i32 {
    let rank = |c: i32| match c {
        1 => 3,
        2 => 4,
        3 => 2,
        _ => 1,
    };
    if rank(a) >= rank(b) {
        a
    } else {
        b
    }
}

fn rand_seed() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    (t ^ (std::process::id() as u64).rotate_left(32)) % 1_000_000
}

fn signal_hook_stream() -> Result<signal_hook::iterator::Signals> {
    Ok(signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])?)
}

fn cmd_matrix(args: MatrixArgs) -> Result<i32> {
    use raftcheck::matrix::{self, MatrixOptions, MatrixSpec};
    let spec_path = if args.spec.is_file() {
        args.spec.clone()
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(&args.spec)
    };
    let spec = MatrixSpec::load(&spec_path)?;
    let out = args.results.join("matrix").join(report::timestamp());
    let records = match &args.summarise {
        Some(table) => matrix::read_table(table),
        None => {
            let interrupt = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            matrix::run_matrix(
                &spec,
                &MatrixOptions {
                    rows: args.rows.clone(),
                    ci: args.ci,
                    seeds: args.seeds,
                    first_seed: args.first_seed,
                    time_limit: args.time_limit,
                    results_root: args.results.clone(),
                    record: args.record.clone(),
                    interrupt,
                },
            )?
        }
    };
    let rows = matrix::write_summary(&out, &spec, &records, args.ci)?;
    let ran: Vec<_> = rows.into_iter().filter(|r| r.runs > 0).collect();
    print!("{}", matrix::markdown(&ran));
    println!("matrix: {}", out.display());
    match report::write_index(&args.results) {
        Ok(p) => println!("wrote {}", p.display()),
        Err(e) => eprintln!("raftcheck matrix: warning: results index not written: {e}"),
    }
    let failed: Vec<&str> = ran
        .iter()
        .filter(|r| !r.pass)
        .map(|r| r.row.as_str())
        .collect();
    if failed.is_empty() {
        Ok(0)
    } else {
        eprintln!("raftcheck matrix: targets not met: {}", failed.join(", "));
        Ok(1)
    }
}

fn cmd_report(dir: &Path) -> Result<()> {
    if !dir.join("results.json").is_file() {
        bail!("{}: not a run directory (no results.json)", dir.display());
    }
    for p in report::render_run(dir)? {
        println!("wrote {}", p.display());
    }
    // results/<cluster-workload-nemesis>/<timestamp>/ -> results/
    if let Some(root) = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.parent()?.parent().map(Path::to_path_buf))
    {
        if root.join("latest").exists() || root.file_name().is_some_and(|n| n == "results") {
            println!("wrote {}", report::write_index(&root)?.display());
        }
    }
    Ok(())
}

/// `raftcheck clean`: what was judged stale and removed on stdout, live runs skipped on
/// stdout, what could not be removed on stderr; exit 2 if anything could not be.
fn cmd_clean(force: bool) -> Result<i32> {
    use raftcheck::cluster::clean::{clean, CleanOptions};
    let report = clean(&CleanOptions { force, only: None })?;
    for run in &report.forced {
        println!(
            "removing live run {} anyway (--force; {}): {}",
            run.run_id, run.why, run.kept
        );
    }
    for run in &report.stale {
        println!("stale run {} ({}): removing", run.run_id, run.why);
    }
    for line in report.removed_lines() {
        println!("{line}");
    }
    for run in &report.skipped {
        println!("{run}");
    }
    if !report.skipped.is_empty() {
        println!(
            "raftcheck clean leaves live runs alone; `raftcheck clean --force` removes them too"
        );
    }
    for note in &report.unchecked {
        eprintln!("raftcheck: warning: {note}");
    }
    for f in &report.failed {
        eprintln!("raftcheck: {f}");
    }
    if report.nothing_to_clean() {
        println!("nothing to clean");
    }
    if !report.failed.is_empty() {
        let hint = if !nix::unistd::geteuid().is_root() {
            "; namespaces, links and iptables rules need root: run it as root (sudo)"
        } else {
            ""
        };
        eprintln!(
            "raftcheck: error: clean could not remove {} of the {} things it found stale{hint}",
            report.failed.len(),
            report.failed.len() + report.removed.len()
        );
    }
    Ok(report.exit_code())
}

fn cmd_convert(input: &Path, output: &Path) -> Result<()> {
    let (events, src) = history::read_file(input)?;
    history::pair(&events, &src)?; // refuse to convert a malformed history
    let file =
        std::fs::File::create(output).with_context(|| format!("creating {}", output.display()))?;
    let w = std::io::BufWriter::new(file);
    let edn = output.extension().is_some_and(|e| e == "edn");
    if edn {
        history::edn::write(w, &events)
    } else {
        history::jsonl::write(w, &events)
    }
    .with_context(|| format!("writing {}", output.display()))?;
    if events.is_empty() {
        bail!("{}: no events", input.display());
    }
    Ok(())
}
