//! `raftcheck run`: one test run, end to end (DESIGN.md "The run, end to end").
//!
//! Load the specs → pick the network mode → start the nodes and wait until they serve → run the
//! workers, the nemesis and the monitor together → final phase (heal everything, restart dead
//! nodes, wait for a leader, read every key) → stop the nodes and tear the network down → check
//! the history that is on disk → write results.json → verdict.
//!
//! The verdict a run reports is more than the checker's: a node that crashed on its own makes
//! the run invalid (a finding), and a run that never installed a fault it was asked for, or
//! recorded too few ok ops, says unknown rather than valid ("A run that tested nothing").

pub mod invariants;
pub mod monitor;
pub mod nemesis_loop;

use crate::checker::{self, CheckOptions, CheckResult, Verdict};
use crate::client::{self, Adapter};
use crate::cluster::net::{NetMode, Network};
use crate::cluster::spec::{resolve, ClusterSpec, SpecError};
use crate::cluster::supervisor::{Cluster, Crash};
use crate::cluster::{find_binary, ClusterError};
use crate::history;
use crate::nemesis::{FaultKind, NemesisSpec};
use crate::report::{self, OpCounts};
use crate::workload::recorder::JsonlSink;
use crate::workload::runner::{self, Counters, Ctx};
use crate::workload::{Generator, Shared, WorkloadSpec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which network mode to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetChoice {
    /// netns when possible (root, ip, iptables), else loopback.
    Auto,
    /// Force loopback.
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
    /// Root of results (default `results`).
    pub results_root: PathBuf,
    /// Network mode.
    pub net: NetChoice,
    /// Subnet for netns mode.
    pub subnet: Option<String>,
    /// Keep node data dirs after the run.
    pub keep_data: bool,
    /// Checker time limit (seconds).
    pub check_time_limit: Option<f64>,
    /// Draw a progress bar (only if stderr is a terminal).
    pub progress: bool,
    /// The command line, for the report's "reproduce" line.
    pub command: String,
    /// Set by Ctrl-C (or a test) to end the fault phase early.
    pub interrupt: Arc<AtomicBool>,
}

/// Why a run could not be carried out (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A bad spec or name.
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
    /// The cluster never became ready.
    #[error("cluster never became ready within {secs} s: {why}\n{logs}")]
    NotReady {
        /// The timeout.
        secs: f64,
        /// What was missing.
        why: String,
        /// Node log tails.
        logs: String,
    },
    /// Files in the results dir.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// One leader change seen by the monitor.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LeaderChange {
    /// ns since the run started.
    pub time: u64,
    /// The new leader.
    pub node: String,
    /// Its term.
    pub term: u64,
}

/// Outcome counts of one fault label ("kill leader").
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FaultCounts {
    /// Installed.
    pub installed: usize,
    /// Skipped (not possible here, e.g. a 5-node shape on 3 nodes).
    pub skipped: usize,
    /// Tried and failed.
    pub failed: usize,
}

/// What the run actually exercised.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Exercised {
    /// Fault kinds requested (after the network mode's filtering).
    pub requested: Vec<FaultKind>,
    /// Fault kinds dropped because the mode cannot do them, with why.
    pub unsupported: BTreeMap<String, String>,
    /// Outcomes by fault label.
    pub faults: BTreeMap<String, FaultCounts>,
    /// Leader changes seen.
    pub leader_changes: usize,
    /// Ops by f and outcome.
    pub ops: OpCounts,
}

/// Latency quantiles of ok ops of one function, in milliseconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Quantiles {
    /// Number of ok ops.
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
}

/// results.json of a run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunResults {
    /// The run's verdict (checker + crashes + coverage).
    pub verdict: Verdict,
    /// Why, when not simply the checker's valid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// Process exit code.
    pub exit_code: i32,
    /// Short run id (every resource the run created carries it).
    pub run_id: String,
    /// Cluster spec name.
    pub cluster: String,
    /// Workload spec name.
    pub workload: String,
    /// Nemesis spec name.
    pub nemesis: String,
    /// Seed.
    pub seed: u64,
    /// The command that reproduces the run.
    pub command: String,
    /// netns or loopback.
    pub net_mode: NetMode,
    /// Why that mode.
    pub net_reason: String,
    /// Node count.
    pub nodes: usize,
    /// Start time (UTC, RFC 3339).
    pub started: String,
    /// Fault-phase length actually run, seconds.
    pub duration_secs: f64,
    /// Whether Ctrl-C cut the run short.
    pub interrupted: bool,
    /// The workload as run (after flag overrides).
    pub workload_spec: WorkloadSpec,
    /// The nemesis as run.
    pub nemesis_spec: NemesisSpec,
    /// The argv of each node.
    pub node_argv: Vec<Vec<String>>,
    /// Nodes that exited on their own.
    pub crashes: Vec<Crash>,
    /// What was exercised.
    pub exercised: Exercised,
    /// Leader changes, in order.
    pub leader_changes: Vec<LeaderChange>,
    /// Latency quantiles by function.
    pub latency_ms: BTreeMap<String, Quantiles>,
    /// For each leader change, how long acknowledged writes stopped; median and max.
    #[serde(default)]
    pub unavailability: crate::report::Unavailability,
    /// Raft invariants broken, as seen by the monitor (election safety, term monotonicity).
    #[serde(default)]
    pub invariants: Vec<invariants::Violation>,
    /// Keys the final phase could not read.
    pub unread_keys: Vec<Option<String>>,
    /// The checker's answer.
    pub check: CheckResult,
}

/// What the CLI prints and exits with.
pub struct RunOutcome {
    /// The run's verdict.
    pub verdict: Verdict,
    /// The exit code.
    pub exit_code: i32,
    /// The run's results dir.
    pub dir: PathBuf,
    /// The results.
    pub results: RunResults,
}

fn stem(name: &str) -> String {
    Path::new(name)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.to_string())
}

/// Carry out one run.
pub fn run(opts: &RunOptions) -> Result<RunOutcome, RunError> {
    // 1. Specs, with flag overrides.
    let cluster_path = resolve("cluster", "clusters", &opts.cluster)?;
    let workload_path = resolve("workload", "workloads", &opts.workload)?;
    let nemesis_path = resolve("nemesis", "nemesis", &opts.nemesis)?;
    let mut cspec = ClusterSpec::load(&cluster_path)?;
    let mut wspec = WorkloadSpec::load(&workload_path)?;
    let nspec = NemesisSpec::load(&nemesis_path)?;
    if let Some(n) = opts.nodes {
        if !(1..=9).contains(&n) {
            return Err(RunError::Invalid(format!(
                "--nodes must be 1 to 9, got {n}"
            )));
        }
        cspec.nodes = n;
    }
    if let Some(t) = opts.time_limit {
        wspec.duration_secs = t;
    }
    if let Some(c) = opts.concurrency {
        wspec.concurrency = c;
    }
    if let Some(r) = opts.rate {
        wspec.rate = r;
    }
    wspec.validate(Path::new("(command-line overrides)"))?;
    let binary = find_binary(&cspec.binary)?;

    // 2. Network mode.
    let (detected, why) = Network::detect();
    let (mode, net_reason) = match opts.net {
        NetChoice::Auto => (detected, why),
        NetChoice::Loopback => (
            NetMode::Loopback,
            "loopback requested with --net".to_string(),
        ),
        NetChoice::Netns if detected == NetMode::Netns => (NetMode::Netns, why),
        NetChoice::Netns => {
            return Err(RunError::Invalid(format!(
                "--net netns is not possible here: {why}"
            )))
        }
    };
    let partitions_ok = mode == NetMode::Netns;
    if !partitions_ok && nspec.names_partition() {
        return Err(RunError::Invalid(format!(
            "{}: this nemesis needs network partitions, which need netns mode; this run is in \
             loopback mode ({net_reason}). Run as root with ip and iptables installed, or pick \
             a nemesis without partitions (kill, pause, all).",
            nemesis_path.display()
        )));
    }
    let membership_why = cspec.membership_unsupported();
    if let (Some(why), true) = (&membership_why, nspec.names(FaultKind::Member)) {
        return Err(RunError::Invalid(format!(
            "{}: this nemesis changes membership, which {} cannot do: {why}",
            nemesis_path.display(),
            cluster_path.display()
        )));
    }
    let kinds = nspec.kinds(partitions_ok, membership_why.is_none());
    let wants_all = nspec.faults.iter().any(|f| f == "all");
    let mut unsupported = BTreeMap::new();
    if !partitions_ok && wants_all {
        unsupported.insert(
            "partition".to_string(),
            format!("skipped: loopback mode ({net_reason})"),
        );
    }
    if let (Some(why), true) = (&membership_why, wants_all) {
        unsupported.insert("member".to_string(), format!("skipped: {why}"));
    }

    // 3. Results dir.
    let names = format!(
        "{}-{}-{}",
        stem(&opts.cluster),
        stem(&opts.workload),
        stem(&opts.nemesis)
    );
    let started = chrono::Utc::now();
    let dir = opts
        .results_root
        .join(&names)
        .join(started.format("%Y%m%dT%H%M%S%.3fZ").to_string());
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RunError::Io { path, source }
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    point_latest(&opts.results_root, &dir);
    // Held until this function returns, on every path (errors included): while it is held,
    // `raftcheck clean` leaves this run alone. It is taken before the first resource.
    let run_lock = crate::cluster::net::new_run_id()?;
    let run_id = run_lock.run_id().to_string();
    eprintln!(
        "raftcheck: run {run_id}: {} nodes of {}, workload {}, nemesis {}, {} mode ({net_reason})",
        cspec.nodes,
        binary.display(),
        stem(&opts.workload),
        stem(&opts.nemesis),
        match mode {
            NetMode::Netns => "netns",
            NetMode::Loopback => "loopback",
        }
    );
    if let Some(why) = unsupported.get("partition") {
        eprintln!("raftcheck: nemesis \"all\": partitions {why}");
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| RunError::Invalid(format!("starting the async runtime: {e}")))?;

    // 4. Network and nodes. The cluster's Drop stops nodes and tears the network down, on
    // every path out of here.
    let network = Network::create(&run_id, cspec.nodes, mode, opts.subnet.as_deref())?;
    let cluster = Arc::new(Cluster::start(
        &cspec,
        &binary,
        network,
        &dir,
        &run_id,
        &opts.node_args,
    )?);
    let node_argv: Vec<Vec<String>> = (0..cluster.len())
        .map(|i| cluster.argv(i).to_vec())
        .collect();
    let adapter: Arc<dyn Adapter> = client::make(&cspec, cluster.endpoints.clone())?;
    let ready = Duration::from_secs_f64(cspec.ready_timeout_secs);
    if let Err(why) = rt.block_on(monitor::wait_ready(&cluster, adapter.as_ref(), ready)) {
        let logs = (0..cluster.len())
            .map(|i| {
                format!(
                    "--- {} log tail ({}):\n{}",
                    cluster.names[i],
                    cluster.log_path(i).display(),
                    cluster.log_tail(i, 15)
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        return Err(RunError::NotReady {
            secs: cspec.ready_timeout_secs,
            why,
            logs,
        });
    }

    // 5. The fault phase.
    let start = Instant::now();
    let history_path = dir.join("history.jsonl");
    let history = JsonlSink::create(&history_path, start).map_err(io(&history_path))?;
    let nemesis_log = JsonlSink::create(&dir.join("nemesis.jsonl"), start).map_err(io(&dir))?;
    let leaders_log = JsonlSink::create(&dir.join("leaders.jsonl"), start).map_err(io(&dir))?;
    let counters = Arc::new(Counters::default());
    // This run's own stop flag: set when the fault phase ends, or when the user interrupts
    // (`opts.interrupt` outlives the run and is shared by every run of --test-count/matrix).
    let stop = Arc::new(AtomicBool::new(false));
    let mon = Arc::new(monitor::Monitor::new(
        cluster.clone(),
        adapter.clone(),
        leaders_log.clone(),
    ));
    let ctx = Arc::new(Ctx {
        adapter: adapter.clone(),
        history: history.clone(),
        shared: Arc::new(Shared::default()),
        counters: counters.clone(),
        node_names: cluster.names.clone(),
        op_timeout: Duration::from_secs_f64(wspec.op_timeout_secs),
        stop: stop.clone(),
        leader_hint: adapter
            .writes_acknowledged_by_leader()
            .then(|| mon.hint.clone()),
    });
    let duration = Duration::from_secs_f64(wspec.duration_secs);
    let plan =
        crate::nemesis::schedule(&nspec, &kinds, opts.seed, wspec.duration_secs, cspec.nodes);
    let planned: std::collections::BTreeSet<FaultKind> = plan
        .iter()
        .flat_map(|p| &p.actions)
        .map(|a| a.kind())
        .collect();
    if kinds.contains(&FaultKind::Partition) {
        // Shapes this cluster is too small for are reported skipped once, up front.
        for shape in nspec
            .partitions
            .iter()
            .filter(|p| p.min_nodes() > cspec.nodes)
        {
            if plan
                .iter()
                .flat_map(|p| &p.actions)
                .any(|a| *a == crate::nemesis::Action::Partition { shape: *shape })
            {
                continue; // drawn anyway (nothing else fits): skipped when it fires
            }
            let label = crate::nemesis::Action::Partition { shape: *shape }.label();
            nemesis_log.append(|index, time| nemesis_loop::NemesisEvent {
                index,
                time,
                event: "start".into(),
                fault: FaultKind::Partition,
                label: label.clone(),
                nodes: vec![],
                grudge: None,
                outcome: "skipped".into(),
                reason: Some(format!(
                    "{label} needs at least {} nodes; this cluster has {}",
                    shape.min_nodes(),
                    cspec.nodes
                )),
            });
        }
    }
    let outcome = rt.block_on(async {
        let mon_stop = Arc::new(AtomicBool::new(false));
        let mon_task = tokio::spawn(monitor::run(mon.clone(), mon_stop.clone()));
        let watch = {
            let (interrupt, stop) = (opts.interrupt.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if interrupt.load(Ordering::Relaxed) {
                        stop.store(true, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        };
        let nem = nemesis_loop::Nemesis {
            cluster: cluster.clone(),
            monitor: mon.clone(),
            adapter: adapter.clone(),
            log: nemesis_log.clone(),
            seed: opts.seed,
            start,
            stop: stop.clone(),
        };
        let nem_task = tokio::spawn(nem.run(plan));
        let until = start + duration;
        let interval = if wspec.rate > 0.0 {
            Duration::from_secs_f64(wspec.concurrency as f64 / wspec.rate)
        } else {
            Duration::ZERO
        };
        let mut workers = Vec::new();
        for i in 0..wspec.concurrency {
            let g = Generator::new(&wspec, opts.seed, i);
            workers.push(tokio::spawn(runner::worker(
                ctx.clone(),
                g,
                i,
                wspec.concurrency,
                interval,
                until,
            )));
        }
        let bar = progress::start(
            opts.progress,
            duration,
            counters.clone(),
            mon.clone(),
            start,
        );
        for w in workers {
            let _ = w.await;
        }
        let interrupted = opts.interrupt.load(Ordering::Relaxed);
        let phase = start.elapsed();
        // The nemesis heals its current fault when told to stop.
        stop.store(true, Ordering::Relaxed);
        let _ = nem_task.await;
        let _ = watch.await;
        progress::finish(bar, "final phase: healing, restarting, reading every key");

        // 6. Final phase.
        let mut notes = Vec::new();
        if let Err(e) = cluster
            .network
            .lock()
            .map_err(|_| ClusterError::Other("poisoned".into()))
            .and_then(|n| n.heal())
        {
            notes.push(format!("final heal of the network failed: {e}"));
        }
        match cluster.heal_processes() {
            Ok(restarted) if !restarted.is_empty() => {
                tracing::info!("final phase restarted {restarted:?}");
            }
            Ok(_) => {}
            Err(e) => notes.push(format!("final restart failed: {e}")),
        }
        let recovery = monitor::wait_ready(&cluster, adapter.as_ref(), ready).await;
        if let Err(why) = &recovery {
            notes.push(format!("cluster did not recover after healing: {why}"));
        }
        let keys = wspec.key_names();
        let first = (wspec.concurrency as u64 + 1) * 1_000_000;
        let final_ctx = Ctx {
            adapter: adapter.clone(),
            history: history.clone(),
            shared: ctx.shared.clone(),
            counters: counters.clone(),
            node_names: cluster.names.clone(),
            op_timeout: ctx.op_timeout,
            stop: Arc::new(AtomicBool::new(false)),
            leader_hint: None,
        };
        let unread = runner::final_reads(&final_ctx, &keys, first, Instant::now() + ready).await;
        mon_stop.store(true, Ordering::Relaxed);
        let _ = mon_task.await;
        (interrupted, phase, notes, unread)
    });
    let (interrupted, phase, mut notes, unread_keys) = outcome;
    let mut crashes = mon.crashes();
    crashes.extend(cluster.new_crashes());
    cluster.stop_all(Duration::from_secs(3));
    for s in [&history, &nemesis_log, &leaders_log] {
        s.finish().map_err(io(&dir))?;
    }
    drop(rt);
    // The monitor holds the last other reference to the cluster; with it gone, dropping the
    // cluster tears the network down.
    drop(mon);
    match Arc::try_unwrap(cluster) {
        Ok(c) => drop(c),
        Err(c) => {
            // Something still holds it; tear down explicitly.
            c.stop_all(Duration::from_secs(1));
            let left = c
                .network
                .lock()
                .map(|mut n| n.teardown())
                .unwrap_or_default();
            for l in left {
                eprintln!("raftcheck: warning: could not remove {l} (run `raftcheck clean`)");
            }
        }
    }
    if !opts.keep_data {
        for e in std::fs::read_dir(dir.join("nodes"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = std::fs::remove_dir_all(e.path().join("data"));
        }
    }

    // 7. Check what is on disk.
    let check_opts = CheckOptions {
        model: Some(wspec.model()),
        time_limit: opts.check_time_limit.map(Duration::from_secs_f64),
        ..Default::default()
    };
    let (events, src) = history::read_file(&history_path)
        .map_err(|e| RunError::Invalid(format!("reading back the history: {e}")))?;
    let ops = history::pair(&events, &src).map_err(|e| {
        RunError::Invalid(format!(
            "the recorded history is malformed (a harness bug): {e}"
        ))
    })?;
    let check = checker::check(&ops, &check_opts)
        .map_err(|e| RunError::Invalid(format!("checking the history: {e}")))?;

    let nemesis_events = nemesis_loop::read_log(&dir.join("nemesis.jsonl"));
    let mut exercised = Exercised {
        requested: kinds.clone(),
        unsupported,
        faults: BTreeMap::new(),
        leader_changes: 0,
        ops: report::op_counts(&ops),
    };
    for e in nemesis_events.iter().filter(|e| e.event == "start") {
        let c = exercised.faults.entry(e.label.clone()).or_default();
        match e.outcome.as_str() {
            "installed" => c.installed += 1,
            "skipped" => c.skipped += 1,
            _ => c.failed += 1,
        }
    }
    let leader_changes = monitor::leader_changes(&dir.join("leaders.jsonl"));
    let samples = invariants::read_samples(&dir.join("leaders.jsonl"));
    let violations = invariants::check(&samples, &invariants::wipes(&nemesis_events));
    exercised.leader_changes = leader_changes.len().saturating_sub(1);

    // 8. The run's verdict.
    let mut verdict = check.verdict;
    let mut reasons = Vec::new();
    if let Some(r) = &check.reason {
        reasons.push(format!("checker: {r}"));
    }
    for v in &violations {
        verdict = verdict.merge(Verdict::Invalid);
        reasons.push(format!(
            "Raft invariant broken ({}): {}",
            v.invariant, v.explanation
        ));
    }
    for c in &crashes {
        verdict = verdict.merge(Verdict::Invalid);
        reasons.push(format!("node {} crashed on its own ({})", c.node, c.status));
    }
    for k in &kinds {
        let installed: usize = nemesis_events
            .iter()
            .filter(|e| e.event == "start" && e.fault == *k && e.outcome == "installed")
            .count();
        if !planned.contains(k) {
            // Not a failure to inject: the fault phase was too short to reach this kind.
            notes.push(format!(
                "no {} fault was scheduled: {:.0} s of faults fit only {} (a fault and a healthy \
                 interval each take about {:.0} s; raise --time-limit)",
                k.name(),
                wspec.duration_secs,
                if planned.is_empty() {
                    "none".to_string()
                } else {
                    planned
                        .iter()
                        .map(|k| k.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                nspec.fault_secs + nspec.interval_secs
            ));
        } else if installed == 0 {
            verdict = verdict.merge(Verdict::Unknown);
            reasons.push(format!(
                "the nemesis was asked for {} faults but never installed one (see nemesis.jsonl)",
                k.name()
            ));
        }
    }
    let ok_ops = ops
        .iter()
        .filter(|o| o.outcome == history::Outcome::Ok)
        .count();
    if ok_ops < wspec.min_ok_ops {
        verdict = verdict.merge(Verdict::Unknown);
        reasons.push(format!(
            "only {ok_ops} ops succeeded, below the workload's floor of {} (min_ok_ops): the run tested too little to vouch for anything",
            wspec.min_ok_ops
        ));
    }
    reasons.extend(notes);
    if interrupted {
        reasons.push("interrupted by Ctrl-C: the fault phase was cut short".into());
    }
    let unavailability = crate::report::unavailability(&ops, &leader_changes);
    let results = RunResults {
        verdict,
        reasons,
        exit_code: verdict.exit_code(),
        run_id,
        cluster: stem(&opts.cluster),
        workload: stem(&opts.workload),
        nemesis: stem(&opts.nemesis),
        seed: opts.seed,
        command: opts.command.clone(),
        net_mode: mode,
        net_reason,
        nodes: cspec.nodes,
        started: started.to_rfc3339(),
        duration_secs: phase.as_secs_f64(),
        interrupted,
        workload_spec: wspec.clone(),
        nemesis_spec: nspec.clone(),
        node_argv,
        crashes,
        exercised,
        leader_changes,
        latency_ms: latency(&ops),
        unavailability,
        unread_keys,
        invariants: violations,
        check,
    };
    let path = dir.join("results.json");
    report::write_json(&path, &results).map_err(io(&path))?;
    // The report is for people; failing to draw it never changes the verdict.
    if let Err(e) = report::render_run(&dir) {
        eprintln!("raftcheck: warning: could not render the report: {e}");
    }
    if let Err(e) = report::write_index(&opts.results_root) {
        eprintln!("raftcheck: warning: could not write the results index: {e}");
    }
    Ok(RunOutcome {
        verdict,
        exit_code: verdict.exit_code(),
        dir,
        results,
    })
}

/// Latency quantiles of ok ops by function.
pub fn latency(ops: &[history::Op]) -> BTreeMap<String, Quantiles> {
    let mut by: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for o in ops.iter().filter(|o| o.outcome == history::Outcome::Ok) {
        if let Some(r) = o.ret_time {
            by.entry(o.f.name().to_string())
                .or_default()
                .push(r.saturating_sub(o.call_time) as f64 / 1e6);
        }
    }
    by.into_iter()
        .map(|(f, mut v)| {
            v.sort_by(f64::total_cmp);
            let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
            (
                f,
                Quantiles {
                    count: v.len(),
                    p50: q(0.5),
                    p90: q(0.9),
                    p99: q(0.99),
                    max: q(1.0),
                },
            )
        })
        .collect()
}

/// Point `results/latest` at the newest run (a relative symlink, replaced atomically).
fn point_latest(root: &Path, dir: &Path) {
    let Ok(rel) = dir.strip_prefix(root) else {
        return;
    };
    let tmp = root.join(".latest.tmp");
    let _ = std::fs::remove_file(&tmp);
    if std::os::unix::fs::symlink(rel, &tmp).is_ok() {
        let _ = std::fs::rename(&tmp, root.join("latest"));
    }
}

mod progress {
    //! The progress bar: elapsed/total, ops ok/fail/info, ops/s, leader and term, active fault.
    //! indicatif draws nothing when stderr is not a terminal.

    use super::monitor::Monitor;
    use crate::workload::runner::Counters;
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    pub(super) fn start(
        enabled: bool,
        total: Duration,
        counters: Arc<Counters>,
        mon: Arc<Monitor>,
        start: Instant,
    ) -> Option<ProgressBar> {
        if !enabled {
            return None;
        }
        let bar =
            ProgressBar::with_draw_target(Some(total.as_secs()), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{elapsed_precise}/{len}s [{bar:30}] {msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        let b = bar.clone();
        tokio::spawn(async move {
            while !b.is_finished() {
                let (ok, fail, info) = (
                    counters.ok.load(Ordering::Relaxed),
                    counters.fail.load(Ordering::Relaxed),
                    counters.info.load(Ordering::Relaxed),
                );
                let secs = start.elapsed().as_secs_f64().max(0.001);
                let leader = mon
                    .leader()
                    .map_or("none".to_string(), |(n, t)| format!("{n} term {t}"));
                b.set_position(start.elapsed().as_secs().min(total.as_secs()));
                b.set_message(format!(
                    "ok {ok} fail {fail} info {info} | {:.0} ops/s | leader {leader} | fault: {}",
                    (ok + fail + info) as f64 / secs,
                    mon.fault().unwrap_or_else(|| "none".into())
                ));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Some(bar)
    }

    pub(super) fn finish(bar: Option<ProgressBar>, msg: &'static str) {
        if let Some(b) = bar {
            b.finish_with_message(msg);
        }
    }
}
