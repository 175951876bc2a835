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
    /// Convert a history between JSONL and Jepsen EDN (format chosen by the output's extension).
    Convert {
        /// Input history (.jsonl or .edn; detected by content).
        input: PathBuf,
        /// Output file: `.edn` writes EDN, anything else JSONL.
        output: PathBuf,
    },
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

fn check_one(path: &Path, args: &CheckArgs, opts: &CheckOptions) -> HistoryCheck {
    let file = path.display().to_string();
    let checked = read_ops(path, args.edn_fail_cas_is_mismatch).and_then(|ops| {
        let counts = report::op_counts(&ops);
        let r = checker::check(&ops, opts).with_context(|| file.clone())?;
        Ok((counts, r))
    });
    match checked {
        Ok((op_counts, r)) => HistoryCheck {
            file,
            verdict: Some(r.verdict),
            error: None,
            op_counts,
            check: Some(r),
        },
        Err(e) => HistoryCheck {
            file,
            verdict: None,
            error: Some(format!("{e:#}")),
            op_counts: Default::default(),
            check: None,
        },
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
    for path in &args.files {
        let h = check_one(path, &args, &opts);
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
    }
    // Bad input wins: the user must fix the invocation before any verdict means anything.
    Ok(if errors { 2 } else { verdict.exit_code() })
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
