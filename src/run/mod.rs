//! `raftcheck run`: one test run, end to end (DESIGN.md "The run, end to end").
//!
//! Three stages, each its own module:
//! 1. [`plan`]: flags → a [`RunPlan`]: specs resolved, overrides applied, network mode chosen,
//!    every refusal made before anything exists;
//! 2. [`execute`]: the plan carried out: nodes, workers, nemesis and monitor ([`monitor`],
//!    [`nemesis_loop`]), the final phase, the teardown; everything recorded goes to the store;
//! 3. here: the history read back from disk and checked, the verdict and its reasons from
//!    [`crate::analysis`], results.json written, the report rendered.
//!
//! The verdict a run reports is more than the checker's (see [`crate::analysis`]): a node that
//! crashed on its own makes the run invalid, and a run that never installed a fault it was asked
//! for, or recorded too few ok ops, says unknown rather than valid.

mod execute;
pub mod monitor;
pub mod nemesis_loop;
pub mod plan;
mod progress;

pub use plan::RunPlan;

use crate::analysis::{self, Evidence};
use crate::checker::{self, CheckOptions, Verdict};
use crate::client;
use crate::cluster::ClusterError;
use crate::report;
use crate::spec::SpecError;
use crate::store::{self, RunResults};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A request to end the fault phase early, and which signal made it: shared by every run of
/// `--test-count` and of the matrix, so one Ctrl-C or SIGTERM ends them all the same way (heal,
/// stop, clean, check), and the reasons name the signal that did it.
#[derive(Debug, Default)]
pub struct Interrupt(AtomicI32);

impl Interrupt {
    /// Record that `signal` asked to stop; returns whether a stop had been asked already.
    pub fn raise(&self, signal: i32) -> bool {
        self.0.swap(signal.max(1), Ordering::Relaxed) != 0
    }

    /// Whether a stop was asked for.
    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::Relaxed) != 0
    }

    /// How the reasons name the request: "Ctrl-C (SIGINT)", "SIGTERM", or "a stop request" for
    /// one made without a signal (a test).
    pub fn cause(&self) -> String {
        match self.0.load(Ordering::Relaxed) {
            0 => "nothing".into(),
            libc::SIGINT => "Ctrl-C (SIGINT)".into(),
            libc::SIGTERM => "SIGTERM".into(),
            libc::SIGHUP => "SIGHUP".into(),
            n if n > 1 => format!("signal {n}"),
            _ => "a stop request".into(),
        }
    }
}

/// Which network mode to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetChoice {
    /// netns when possible (root, ip, iptables), else loopback.
    Auto,
    /// Loopback even where netns would work (`--net loopback`): every node on 127.0.0.1, no
    /// partitions.
    Loopback,
    /// Require netns; an error if unavailable.
    Netns,
}

/// Everything a run needs, validated from the command line.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Cluster spec name or path.
    pub cluster: String,
    /// Workload spec name or path.
    pub workload: String,
    /// Nemesis spec name or path.
    pub nemesis: String,
    /// Override the workload's duration (seconds).
    pub time_limit: Option<f64>,
    /// Override the workload's concurrency.
    pub concurrency: Option<usize>,
    /// Override the workload's rate (ops/s).
    pub rate: Option<f64>,
    /// Override the cluster's node count.
    pub nodes: Option<usize>,
    /// Seed for the generator and the nemesis schedule.
    pub seed: u64,
    /// Extra argv for every node.
    pub node_args: Vec<String>,
    /// Where the run's dir is created, as `<root>/<cluster>-<workload>-<nemesis>/<timestamp>/`
    /// (`--results`, default `results`).
    pub results_root: PathBuf,
    /// Which network mode to use (`--net`); the plan settles `Auto` into netns or loopback.
    pub net: NetChoice,
    /// A /24 for the nodes' addresses in netns mode (`--subnet`); `None` picks a free one in
    /// 10.231.0.0/16. Refused in loopback mode.
    pub subnet: Option<String>,
    /// Keep node data dirs after the run.
    pub keep_data: bool,
    /// Mount data dirs on the power-loss layer even without power-loss faults
    /// (`--storage-layer`), to measure what the layer costs.
    pub storage_layer: bool,
    /// Run node i on host i of this hosts file, over SSH (see [`crate::spec::hosts`]).
    pub hosts: Option<PathBuf>,
    /// Seconds the checker may take before undecided keys make the run unknown; `None`: no limit.
    pub check_time_limit: Option<f64>,
    /// Draw a progress bar (only if stderr is a terminal).
    pub progress: bool,
    /// The command line, for the report's "reproduce" line.
    pub command: String,
    /// Raised by Ctrl-C or SIGTERM (or a test) to end the fault phase early.
    pub interrupt: Arc<Interrupt>,
}

/// Why a run could not be carried out (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A spec that could not be found, read or parsed, or holds a bad value.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The cluster could not be set up.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// An adapter could not be built.
    #[error(transparent)]
    Client(#[from] client::ClientError),
    /// Bad combination of options.
    #[error("{0}")]
    Invalid(String),
    /// The cluster never became ready: a node exited, or the timeout passed.
    #[error("the cluster did not start: {why}\n{logs}")]
    NotReady {
        /// What happened, with how long it took.
        why: String,
        /// The last lines of each node's log, appended to the message: usually why it did not
        /// start.
        logs: String,
    },
    /// A record of the run could not be written (a full disk): the run stopped there, healed,
    /// stopped its nodes and cleaned up. What was written before stays a checkable prefix.
    #[error(
        "{path}: {source}: the run stopped, its nodes were stopped and its network removed; the \
         records written before the failure are in that file (`raftcheck check` reads a \
         history.jsonl as it is)"
    )]
    Record {
        /// The file that could not be written.
        path: PathBuf,
        /// The write error, usually a full disk.
        #[source]
        source: std::io::Error,
    },
    /// Files in the results dir.
    #[error("{path}: {source}")]
    Io {
        /// The run dir, a log that could not be created, or results.json.
        path: PathBuf,
        /// Why the OS refused (permission denied, a full disk, ...).
        source: std::io::Error,
    },
}

/// What the CLI prints and exits with.
pub struct RunOutcome {
    /// The verdict after the run's own rules (crashes, broken invariants, coverage), not only the
    /// checker's: what the exit code says.
    pub verdict: Verdict,
    /// The run's results dir.
    pub dir: PathBuf,
    /// What was written to results.json, for the command's summary and the matrix's records.
    pub results: RunResults,
}

/// Carry out one run: plan, execute, then judge what is on disk.
pub fn run(opts: &RunOptions) -> Result<RunOutcome, RunError> {
    let plan = RunPlan::resolve(opts)?;
    let done = execute::execute(&plan, opts)?;

    // Check what is on disk, not what was in memory: the file is what a user can re-check.
    let history_path = done.dir.file(store::HISTORY);
    let ops = store::read_history(&history_path).map_err(|e| {
        RunError::Invalid(format!(
            "the recorded history is malformed (a harness bug): {e}"
        ))
    })?;
    let check_opts = CheckOptions {
        model: Some(plan.workload.model()),
        time_limit: opts.check_time_limit.map(Duration::from_secs_f64),
        ..Default::default()
    };
    let check = checker::check(&ops, &check_opts)
        .map_err(|e| RunError::Invalid(format!("checking the history: {e}")))?;
    let nemesis = done.dir.nemesis();
    let samples = done.dir.samples();
    let leader_changes = analysis::leader_changes(&samples);
    let violations = analysis::invariants::check(&samples, &analysis::invariants::wipes(&nemesis));
    let cause = opts.interrupt.cause();
    let (verdict, reasons) = analysis::judge(&Evidence {
        check: &check,
        ops: &ops,
        nemesis: &nemesis,
        violations: &violations,
        crashes: &done.crashes,
        asked: &plan.asked,
        notes: &done.notes,
        interrupted_by: done.interrupted.then_some(cause.as_str()),
    });
    let results = RunResults {
        verdict,
        reasons,
        run_id: done.run_id,
        cluster: plan.names[0].clone(),
        workload: plan.names[1].clone(),
        nemesis: plan.names[2].clone(),
        seed: opts.seed,
        command: opts.command.clone(),
        net_mode: plan.mode,
        net_reason: plan.net_reason.clone(),
        nodes: plan.cluster.nodes,
        started: done.started.to_rfc3339(),
        duration_secs: done.phase.as_secs_f64(),
        interrupted: done.interrupted,
        workload_spec: plan.workload.clone(),
        nemesis_spec: plan.nemesis.clone(),
        node_argv: done.node_argv,
        crashes: done.crashes,
        exercised: analysis::exercised(
            &plan.asked,
            &nemesis,
            leader_changes.len().saturating_sub(1),
            &ops,
        ),
        latency_ms: analysis::latency(&ops),
        unavailability: analysis::unavailability(&ops, &leader_changes),
        leader_changes,
        unread_keys: done.unread_keys,
        roles_observed: done.roles_observed,
        invariants: violations,
        check,
    };
    done.dir.write_results(&results).map_err(|e| match e {
        store::StoreError::Io { path, source } => RunError::Io { path, source },
        other => RunError::Invalid(other.to_string()),
    })?;
    // The report is for people; failing to draw it never changes the verdict.
    if let Err(e) = report::render_run(done.dir.path()) {
        eprintln!("raftcheck: warning: could not render the report: {e}");
    }
    if let Err(e) = report::write_index(&opts.results_root) {
        eprintln!("raftcheck: warning: could not write the results index: {e}");
    }
    Ok(RunOutcome {
        verdict,
        dir: done.dir.path().to_path_buf(),
        results,
    })
}
