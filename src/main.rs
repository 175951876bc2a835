//! The `raftcheck` command line: parse flags, call the library, map results to exit codes.
//!
//! Exit codes (DESIGN.md): 0 valid, 1 invalid, 2 bad input or a run that could not be carried
//! out, 3 unknown. Errors print one clear line on stderr.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use raftcheck::checker::{self, CheckOptions, Model};
use raftcheck::history;
use raftcheck::report::{self, text, CheckReport, Conclusion, HistoryCheck};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Where named specs are found (`raftcheck::spec::SpecRoots`), for `run --help` and
/// `matrix --help`.
const SPEC_DIRS_HELP: &str = "\
Spec directories: a name NAME for --cluster (or --workload, --nemesis, the matrix's --spec) is
looked up as clusters/NAME.toml (workloads/, nemesis/; matrix.toml itself) in the first of these
that has it:
  1. each directory in $RAFTCHECK_SPECS (':'-separated, like PATH)
  2. the current directory
  3. the directory of the raftcheck executable
  4. ../share/raftcheck beside it (an install: PREFIX/bin/raftcheck, PREFIX/share/raftcheck/clusters/)
  5. up to three directories above the executable's (a checkout's target/release/raftcheck finds
     the checkout two levels up)
For --cluster, --workload and --nemesis a value ending in .toml or containing a '/' is a path,
taken as given (relative to the current directory); for the matrix's --spec, a value with a '/'.
A name that is not found is an error listing every place tried (exit 2).";

#[derive(Parser)]
#[command(
    name = "raftcheck",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("RAFTCHECK_BUILD_COMMIT"), ")"),
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
    #[command(after_help = SPEC_DIRS_HELP)]
    Run(Box<RunArgs>),
    /// Re-render the report (report.html, PNG plots) of a finished run directory.
    Report {
        /// A run's results directory (the one holding results.json).
        run_dir: PathBuf,
    },
    /// Run the bug-detection matrix: every raftkv bug switch and the controls, several seeds.
    #[command(after_help = SPEC_DIRS_HELP)]
    Matrix(MatrixArgs),
    /// Remove what dead runs left behind (node processes, namespaces, links, rules, lock files);
    /// runs still going are skipped and listed. Exits 2 if something could not be removed.
    Clean {
        /// Also remove the resources of runs that are still going (they will then fail).
        #[arg(long)]
        force: bool,
        /// Also clean the hosts of this hosts file: node processes, iptables rules and run
        /// directories that runs over SSH left there.
        #[arg(long, value_name = "FILE")]
        hosts: Option<PathBuf>,
    },
    /// Convert a history between JSONL and Jepsen EDN (format chosen by the output's extension).
    Convert {
        /// Input history (.jsonl or .edn; detected by content).
        input: PathBuf,
        /// Output file: `.edn` writes EDN, anything else JSONL.
        output: PathBuf,
        /// Do not check `time` against the file order (see `check --trust-file-order`).
        #[arg(long)]
        trust_file_order: bool,
    },
}

#[derive(Args)]
struct RunArgs {
    /// Cluster spec: a name (raftkv, etcd, raftkv-http, ...) found as clusters/NAME.toml in the
    /// spec directories (see below), or a path (ending in .toml or containing a '/').
    #[arg(long, default_value = "raftkv")]
    cluster: String,
    /// Workload spec: a name (register, cas-register, kv, list-append) found as
    /// workloads/NAME.toml in the spec directories (see below), or a path.
    #[arg(long, default_value = "register")]
    workload: String,
    /// Nemesis spec: a name (none, kill, pause, partition, member, all, ...) found as
    /// nemesis/NAME.toml in the spec directories (see below), or a path.
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
    /// Run node i on host i of this hosts file, over SSH (format: docs/hosts.md). The cluster
    /// spec is the same as for a local run.
    #[arg(long, value_name = "FILE")]
    hosts: Option<PathBuf>,
    /// Where runs are stored.
    #[arg(long, default_value = "results")]
    results: PathBuf,
    /// Keep the nodes' data dirs in the results dir after the run.
    #[arg(long)]
    keep_data: bool,
    /// Mount every node's data dir on the FUSE power-loss layer even when the nemesis has no
    /// power-loss fault, to measure what the layer costs (needs root and /dev/fuse).
    #[arg(long)]
    storage_layer: bool,
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
    /// Matrix spec: a file name searched in the spec directories (see below), or a path (with
    /// a '/', e.g. ./my-matrix.toml). Its rows name clusters, workloads and nemeses the same way.
    #[arg(long, default_value = "matrix.toml")]
    spec: String,
    /// Only these rows (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    rows: Vec<String>,
    /// Only the CI-sized subset (rows with ci = true).
    #[arg(long)]
    ci: bool,
    /// Runs per row, seeded first-seed, first-seed + 1, ...
    #[arg(long, default_value_t = 10)]
    seeds: u64,
    /// Seed of each row's first run; the others count up from it.
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
    /// Run every row over SSH on the hosts of this file (as `run --hosts`); rows with
    /// power-loss faults are skipped.
    #[arg(long, value_name = "FILE")]
    hosts: Option<PathBuf>,
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
    /// Use the file order alone and do not check `time` against it. By default a time that goes
    /// back in file order is an error, because file order is the real-time order the checker
    /// uses. Jepsen's worker threads stamp times concurrently, so its histories can disagree
    /// with their order by microseconds; Knossos trusts the order, and so does this flag.
    #[arg(long)]
    trust_file_order: bool,
    /// Directory for results.json and report.html (default: results/check/<timestamp>).
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
        Cmd::Clean { force, hosts } => cmd_clean(force, hosts.as_deref()),
        Cmd::Matrix(args) => cmd_matrix(args),
        Cmd::Report { run_dir } => cmd_report(&run_dir).map(|_| 0),
        Cmd::Convert {
            input,
            output,
            trust_file_order,
        } => cmd_convert(&input, &output, trust_file_order).map(|_| 0),
    };
    match result {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("raftcheck: error: {}", error_chain(&e));
            ExitCode::from(2)
        }
    }
}

/// An error and its causes on one line, each cause once: library errors often show their
/// source in their own message already (`path: No such file or directory`), and printing the
/// chain naively would say it twice.
fn error_chain(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// One file's conclusion, its paired ops when it could be read and paired, and whether its bytes
/// could be read at all (an unreadable path writes no results; a malformed file does).
fn check_one(
    path: &Path,
    args: &CheckArgs,
    opts: &CheckOptions,
) -> (HistoryCheck, Option<Vec<history::Op>>, bool) {
    let file = path.display().to_string();
    let failed = |error: String| HistoryCheck {
        file: file.clone(),
        verdict: Conclusion::Error,
        error: Some(error),
        op_counts: Default::default(),
        check: None,
    };
    let read = match history::read_file_with(path, args.edn_fail_cas_is_mismatch) {
        Ok(read) => read,
        Err(e @ history::HistoryError::Io { .. }) => return (failed(e.to_string()), None, false),
        Err(e) => return (failed(e.to_string()), None, true),
    };
    let pairing = history::PairOptions {
        check_times: !args.trust_file_order,
    };
    let ops = match history::pair_with(&read.0, &read.1, pairing) {
        Ok(ops) => ops,
        Err(e) => return (failed(e.to_string()), None, true),
    };
    match checker::check(&ops, opts) {
        Ok(r) => (
            HistoryCheck {
                file: file.clone(),
                verdict: r.verdict.into(),
                error: None,
                op_counts: raftcheck::analysis::op_counts(&ops),
                check: Some(r),
            },
            Some(ops),
            true,
        ),
        Err(e) => (failed(format!("{file}: {e}")), None, true),
    }
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
    let mut any_read = false;
    for path in &args.files {
        let (h, ops, read) = check_one(path, &args, &opts);
        any_read |= read;
        if let Some(ops) = ops {
            ops_by_file.insert(h.file.clone(), ops);
        }
        // Errors go to stderr even with --json, whose stdout is only the JSON.
        match (&h.check, &h.error) {
            (Some(r), _) if !args.json => {
                println!("{}", text::verdict_line(&h.file, r));
                print!("{}", text::details(r, &h.file));
            }
            (None, Some(e)) => eprintln!("raftcheck: error: {e}"),
            _ => {}
        }
        histories.push(h);
    }
    let verdict = histories
        .iter()
        .fold(Conclusion::Valid, |v, h| v.merge(h.verdict));
    let rep = CheckReport { verdict, histories };
    // Nothing could be read at all: there is nothing to keep, so nothing is written (a results
    // dir holding only "could not read" would look like a check that happened).
    let out = any_read.then(|| {
        args.out
            .clone()
            .unwrap_or_else(|| Path::new("results").join("check").join(report::timestamp()))
    });
    let mut written = Vec::new();
    if let Some(out) = &out {
        let results = out.join("results.json");
        report::write_json(&results, &rep)
            .with_context(|| format!("writing {}", results.display()))?;
        written.push(("results", results));
        // The page is for people: failing to draw it never changes the exit code.
        match report::render_check(out, &rep, &ops_by_file) {
            Ok(_) => written.push(("report", out.join("report.html"))),
            Err(e) => eprintln!("raftcheck: warning: could not write the report: {e}"),
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rep)?);
    } else {
        if rep.histories.len() > 1 {
            let n = |v: Conclusion| rep.histories.iter().filter(|h| h.verdict == v).count();
            println!(
                "{} histories: {} valid, {} invalid, {} unknown, {} not checkable",
                rep.histories.len(),
                n(Conclusion::Valid),
                n(Conclusion::Invalid),
                n(Conclusion::Unknown),
                n(Conclusion::Error)
            );
        }
        for (what, path) in &written {
            println!("{what}: {}", path.display());
        }
    }
    Ok(i32::from(rep.verdict.exit_code()))
}

fn cmd_run(args: RunArgs) -> Result<i32> {
    use raftcheck::run::{self, NetChoice, RunOptions};
    use std::io::IsTerminal;
    if args.test_count == 0 {
        bail!("--test-count must be at least 1");
    }
    let interrupt = on_signals()?;
    let mut worst = Conclusion::Valid;
    let mut finished: Vec<(PathBuf, raftcheck::store::RunResults)> = Vec::new();
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
            storage_layer: args.storage_layer,
            hosts: args.hosts.clone(),
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
            "{} — {} {} {}, seed {}: {} ops ({} ok), {}, faults: {}",
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
            if r.roles_observed {
                format!("{} leader changes", r.exercised.leader_changes)
            } else {
                "leaders not observed".to_string()
            },
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
        let history = out.dir.join("history.jsonl");
        print!(
            "{}",
            text::details(&r.check, &history.display().to_string())
        );
        for reason in &r.reasons {
            println!("  {reason}");
        }
        println!("report: {}", out.dir.join("report.html").display());
        let conclusion = Conclusion::from(out.verdict);
        finished.push((out.dir.clone(), out.results));
        if let Some(path) = &args.junit {
            let runs: Vec<(&Path, &raftcheck::store::RunResults)> =
                finished.iter().map(|(d, r)| (d.as_path(), r)).collect();
            report::write_junit(path, &runs)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        worst = worst.merge(conclusion);
        if interrupt.is_raised() {
            break;
        }
    }
    Ok(i32::from(worst.exit_code()))
}

fn rand_seed() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    (t ^ (std::process::id() as u64).rotate_left(32)) % 1_000_000
}

/// SIGINT and SIGTERM end the fault phase of the current run (which then heals, stops, cleans
/// and checks) and start no further run; a second signal only says that cleanup is under way.
fn on_signals() -> Result<std::sync::Arc<raftcheck::run::Interrupt>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let interrupt = std::sync::Arc::new(raftcheck::run::Interrupt::default());
    let flag = interrupt.clone();
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::spawn(move || {
        for sig in signals.forever() {
            if flag.raise(sig) {
                eprintln!("raftcheck: still cleaning up; a third signal changes nothing, wait");
            } else {
                eprintln!(
                    "raftcheck: interrupted by {}: healing, stopping nodes, checking what was recorded",
                    flag.cause()
                );
            }
        }
    });
    Ok(interrupt)
}

fn cmd_matrix(args: MatrixArgs) -> Result<i32> {
    use raftcheck::matrix::{self, MatrixOptions, MatrixSpec};
    let spec_path = raftcheck::spec::resolve_file("matrix", &args.spec)?;
    let spec = MatrixSpec::load(&spec_path)?;
    let out = args.results.join("matrix").join(report::timestamp());
    let interrupt = on_signals()?;
    let records = match &args.summarise {
        Some(table) => raftcheck::store::matrix::read_table(table),
        None => matrix::run_matrix(
            &spec,
            &MatrixOptions {
                rows: args.rows.clone(),
                ci: args.ci,
                seeds: args.seeds,
                first_seed: args.first_seed,
                time_limit: args.time_limit,
                results_root: args.results.clone(),
                record: args.record.clone(),
                hosts: args.hosts.clone(),
                interrupt: interrupt.clone(),
            },
        )?,
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
    if !failed.is_empty() {
        eprintln!("raftcheck matrix: targets not met: {}", failed.join(", "));
        Ok(1)
    } else if interrupt.is_raised() {
        // What finished met its targets, but the matrix did not run to its end.
        eprintln!(
            "raftcheck matrix: interrupted by {}: the summary covers only the runs that finished",
            interrupt.cause()
        );
        Ok(3)
    } else {
        Ok(0)
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
fn cmd_clean(force: bool, hosts: Option<&std::path::Path>) -> Result<i32> {
    use raftcheck::cluster::clean::{clean, CleanOptions};
    // A bad hosts file is refused before anything is removed.
    let hosts = hosts
        .map(raftcheck::spec::hosts::HostsFile::load)
        .transpose()?;
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
    let mut code = report.exit_code();
    if let Some(h) = &hosts {
        let r = raftcheck::cluster::ssh::clean_hosts(h, force);
        for line in &r.removed {
            println!("{line}");
        }
        for line in &r.skipped {
            println!("{line}");
        }
        for f in &r.failed {
            eprintln!("raftcheck: {f}");
        }
        if r.removed.is_empty() && r.failed.is_empty() {
            println!("nothing to clean on the {} hosts", h.hosts.len());
        }
        if !r.failed.is_empty() {
            code = code.max(2);
        }
    }
    Ok(code)
}

fn cmd_convert(input: &Path, output: &Path, trust_file_order: bool) -> Result<()> {
    let (events, src) = history::read_file(input)?;
    // Refuse to convert a malformed or empty history, before creating the output.
    let pairing = history::PairOptions {
        check_times: !trust_file_order,
    };
    history::pair_with(&events, &src, pairing)?;
    if events.is_empty() {
        bail!("{}: no events", input.display());
    }
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
    Ok(())
}
