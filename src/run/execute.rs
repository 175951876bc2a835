//! Carrying out a [`RunPlan`]: the results dir, the network and the nodes, readiness, the fault
//! phase (workers, nemesis and monitor together), the final phase (heal, restart, read every
//! key), and the teardown. It only orchestrates: what the records mean is decided afterwards,
//! from the store, by [`crate::analysis`].
//!
//! Cleanup happens on every path out: the cluster's `Drop` stops the nodes and removes the
//! network, [`DataDirs`] removes the nodes' data, and the run's lock is held until the end.

use super::monitor::{self, Monitor};
use super::nemesis_loop::Nemesis;
use super::plan::RunPlan;
use super::{progress, RunError, RunOptions};
use crate::client::Adapter;
use crate::cluster::net::Network;
use crate::cluster::supervisor::{Cluster, Crash};
use crate::cluster::ClusterError;
use crate::nemesis::Action;
use crate::spec::nemesis::FaultKind;
use crate::store::{self, FaultOutcome, JsonlSink, NemesisEvent, Phase, RunDir};
use crate::workload::runner::{self, Counters, Ctx};
use crate::workload::{Generator, Shared};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What carrying out the plan produced besides the files in the run dir.
pub(crate) struct Executed {
    /// `<results root>/<cluster>-<workload>-<nemesis>/<UTC timestamp>/`, where every record goes.
    pub dir: RunDir,
    /// The run id every resource carried.
    pub run_id: String,
    /// When the run started (UTC).
    pub started: chrono::DateTime<chrono::Utc>,
    /// Each node's argv when first started, by node index (binary, filled-in spec args,
    /// `--node-arg`s), for results.json.
    pub node_argv: Vec<Vec<String>>,
    /// Nodes that exited on their own.
    pub crashes: Vec<Crash>,
    /// Whether a signal cut the fault phase short.
    pub interrupted: bool,
    /// How long the fault phase ran.
    pub phase: Duration,
    /// Problems of the final phase, as sentences.
    pub notes: Vec<String>,
    /// Keys the final phase could not read.
    pub unread_keys: Vec<Option<String>>,
    /// Whether the adapter could ask nodes for their role (the spec has a status request).
    pub roles_observed: bool,
}

/// Carry the plan out. Returns once the nodes are stopped and the network is gone.
pub(crate) fn execute(plan: &RunPlan, opts: &RunOptions) -> Result<Executed, RunError> {
    let started = chrono::Utc::now();
    let dir = opts
        .results_root
        .join(plan.names.join("-"))
        .join(started.format("%Y%m%dT%H%M%S%.3fZ").to_string());
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    // Declared before the cluster, so dropped after its nodes are stopped.
    let data_dirs = DataDirs {
        nodes: dir.join("nodes"),
        keep: opts.keep_data,
    };
    // Held until this function returns, on every path (errors included): while it is held,
    // `raftcheck clean` leaves this run alone. It is taken before the first resource.
    let run_lock = crate::cluster::net::new_run_id()?;
    let run_id = run_lock.run_id().to_string();
    eprintln!(
        "raftcheck: run {run_id}: {} nodes of {}, workload {}, nemesis {}, {} mode ({})",
        plan.cluster.nodes,
        plan.binary.display(),
        plan.names[1],
        plan.names[2],
        plan.mode,
        plan.net_reason
    );
    if let Some(why) = plan.asked.unsupported.get("partition") {
        eprintln!("raftcheck: nemesis \"all\": partitions {why}");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| RunError::Invalid(format!("starting the async runtime: {e}")))?;

    let network = match match &plan.ssh {
        Some(conns) => Network::over_ssh(&run_id, conns),
        None => Network::create(
            &run_id,
            plan.cluster.nodes,
            plan.mode,
            opts.subnet.as_deref(),
        ),
    } {
        Ok(n) => n,
        Err(e) => {
            // Nothing ran: leave no empty run dir behind to look like a run.
            remove_empty_run_dir(&opts.results_root, &dir);
            return Err(e.into());
        }
    };
    let cluster = Arc::new(Cluster::start(
        &plan.cluster,
        &plan.binary,
        network,
        &dir,
        &run_id,
        &opts.node_args,
        plan.storage_layer.then_some(plan.nemesis.fs_model),
    )?);
    cluster.keep_data(opts.keep_data);
    let node_argv = (0..cluster.len())
        .map(|i| cluster.argv(i).to_vec())
        .collect();
    let adapter: Arc<dyn Adapter> = plan.cluster.adapter(cluster.endpoints.clone())?;
    let roles_observed = adapter.reports_roles();
    if !roles_observed {
        eprintln!(
            "raftcheck: note: the cluster spec has no status request: readiness is judged by \
             reads, the leader timeline and Raft invariants are not observed, and `leader` \
             fault targets choose random nodes"
        );
    }
    let ready = Duration::from_secs_f64(plan.cluster.ready_timeout_secs);
    let all: Vec<usize> = (0..cluster.len()).collect();
    let came_up = if cluster.staged() {
        // The others join the first node: it must serve alone before they start.
        rt.block_on(monitor::wait_ready(&cluster, adapter.as_ref(), &[0], ready))
            .map_err(|why| {
                format!("the first node, which the others join, did not serve alone: {why}")
            })
            .and_then(|()| {
                cluster
                    .start_the_rest()
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
            .and_then(|()| {
                rt.block_on(monitor::wait_ready(&cluster, adapter.as_ref(), &all, ready))
            })
    } else {
        rt.block_on(monitor::wait_ready(&cluster, adapter.as_ref(), &all, ready))
    };
    if let Err(why) = came_up {
        return Err(RunError::NotReady {
            why,
            logs: log_tails(&cluster),
        });
    }

    // The fault phase. From here on this is a run worth pointing at.
    point_latest(&opts.results_root, &dir);
    let run_dir = RunDir::new(&dir);
    let start = Instant::now();
    let sink = |name: &str| {
        let path = run_dir.file(name);
        JsonlSink::create(&path, start).map_err(io(&path))
    };
    let history = sink(store::HISTORY)?;
    let nemesis_log = sink(store::NEMESIS)?;
    let leaders_log = sink(store::LEADERS)?;
    let sinks = [history.clone(), nemesis_log.clone(), leaders_log.clone()];
    log_shapes_too_big(plan, &nemesis_log);
    // This run's own stop flag: set when the fault phase ends, when a record cannot be
    // written, or when the user interrupts (`opts.interrupt` is shared by every run).
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let mon = Arc::new(Monitor::new(
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
        op_timeout: Duration::from_secs_f64(plan.workload.op_timeout_secs),
        stop: stop.clone(),
        leader_hint: adapter
            .writes_acknowledged_by_leader()
            .then(|| mon.hint.clone()),
    });
    let (interrupted, phase, notes, unread_keys) = rt.block_on(async {
        let mon_stop = Arc::new(AtomicBool::new(false));
        let mon_task = tokio::spawn(monitor::run(mon.clone(), mon_stop.clone()));
        let watch = {
            let (interrupt, stop, sinks) = (opts.interrupt.clone(), stop.clone(), sinks.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    // A record that cannot be written (a full disk) ends the fault phase at
                    // once: going on would test what nobody can check.
                    if interrupt.is_raised() || sinks.iter().any(|s| s.failed()) {
                        stop.store(true, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        };
        let nem = Nemesis {
            cluster: cluster.clone(),
            monitor: mon.clone(),
            adapter: adapter.clone(),
            log: nemesis_log.clone(),
            seed: opts.seed,
            start,
            stop: stop.clone(),
            torn_writes: plan.nemesis.torn_writes,
            damage: plan.nemesis.damage.clone(),
        };
        let nem_task = tokio::spawn(nem.run(plan.schedule.clone()));
        let duration = Duration::from_secs_f64(plan.workload.duration_secs);
        let interval = if plan.workload.rate > 0.0 {
            Duration::from_secs_f64(plan.workload.concurrency as f64 / plan.workload.rate)
        } else {
            Duration::ZERO
        };
        let workers: Vec<_> = (0..plan.workload.concurrency)
            .map(|i| {
                let g = Generator::new(&plan.workload, opts.seed, i);
                tokio::spawn(runner::worker(
                    ctx.clone(),
                    g,
                    i,
                    plan.workload.concurrency,
                    interval,
                    start + duration,
                ))
            })
            .collect();
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
        let interrupted = opts.interrupt.is_raised();
        let phase = start.elapsed();
        // The nemesis heals its current fault when told to stop.
        stop.store(true, Ordering::Relaxed);
        let _ = nem_task.await;
        let _ = watch.await;
        progress::finish(bar, "final phase: healing, restarting, reading every key");

        // The final phase.
        let mut notes = Vec::new();
        if !roles_observed {
            notes.push(
                "roles not observed (the cluster spec has no status request): no leader \
                 timeline, no Raft-invariant check, and `leader` fault targets chose random nodes"
                    .to_string(),
            );
        }
        if let Err(e) = cluster
            .network
            .lock()
            .map_err(|_| ClusterError::Other("poisoned".into()))
            .and_then(|n| n.heal())
        {
            notes.push(format!("final heal of the network failed: {e}"));
        }
        let mut unread = Vec::new();
        if !sinks.iter().any(|s| s.failed()) {
            match cluster.heal_processes() {
                Ok(restarted) if !restarted.is_empty() => {
                    tracing::info!("final phase restarted {restarted:?}");
                }
                Ok(_) => {}
                Err(e) => notes.push(format!("final restart failed: {e}")),
            }
            if let Err(why) = monitor::wait_ready(&cluster, adapter.as_ref(), &all, ready).await {
                notes.push(format!("cluster did not recover after healing: {why}"));
            }
            let final_ctx = Ctx {
                stop: Arc::new(AtomicBool::new(false)),
                leader_hint: None,
                ..(*ctx).clone()
            };
            let first = (plan.workload.concurrency as u64 + 1) * 1_000_000;
            let keys = plan.workload.key_names();
            unread = runner::final_reads(&final_ctx, &keys, first, Instant::now() + ready).await;
        }
        // Else nothing more can be recorded: no restarts, no final reads; stop and clean up.
        mon_stop.store(true, Ordering::Relaxed);
        let _ = mon_task.await;
        (interrupted, phase, notes, unread)
    });
    let mut crashes = mon.crashes();
    crashes.extend(cluster.new_crashes());
    cluster.stop_all(Duration::from_secs(3));
    // The first file that could not be written; the run ends with it after the teardown.
    let write_error = sinks
        .iter()
        .find_map(|s| s.finish().err().map(|e| (s.path().to_path_buf(), e)));
    drop(rt);
    drop(ctx);
    // The monitor holds the last other reference to the cluster; with it gone, dropping the
    // cluster tears the network down.
    drop(mon);
    teardown(cluster);
    drop(data_dirs);
    if let Some((path, source)) = write_error {
        return Err(RunError::Record { path, source });
    }
    Ok(Executed {
        dir: run_dir,
        run_id,
        started,
        node_argv,
        crashes,
        interrupted,
        phase,
        notes,
        unread_keys,
        roles_observed,
    })
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RunError {
    let path = path.to_path_buf();
    move |source| RunError::Io { path, source }
}

/// Every node's log tail, for a cluster that never became ready.
fn log_tails(cluster: &Cluster) -> String {
    (0..cluster.len())
        .map(|i| {
            format!(
                "--- {} log tail ({}):\n{}",
                cluster.names[i],
                cluster.log_path(i).display(),
                cluster.log_tail(i, 15)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Partition shapes this cluster is too small for are logged skipped once, up front (unless
/// the schedule drew one anyway because nothing else fits: then it is skipped when it fires).
fn log_shapes_too_big(plan: &RunPlan, log: &JsonlSink) {
    if !plan.asked.kinds.contains(&FaultKind::Partition) {
        return;
    }
    let nodes = plan.cluster.nodes;
    for shape in plan
        .nemesis
        .partitions
        .iter()
        .filter(|p| p.min_nodes() > nodes)
    {
        let action = Action::Partition { shape: *shape };
        if plan
            .schedule
            .iter()
            .flat_map(|p| &p.actions)
            .any(|a| *a == action)
        {
            continue;
        }
        let label = action.label();
        log.append(|index, time| NemesisEvent {
            index,
            time,
            event: Phase::Start,
            fault: FaultKind::Partition,
            label: label.clone(),
            nodes: vec![],
            grudge: None,
            outcome: FaultOutcome::Skipped,
            reason: Some(format!(
                "{label} needs at least {} nodes; this cluster has {nodes}",
                shape.min_nodes()
            )),
            storage: Vec::new(),
        });
    }
}

/// Stop the nodes and remove the network, saying what could not be removed.
fn teardown(cluster: Arc<Cluster>) {
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
}

/// Removes every node's data dir when dropped, unless `--keep-data`: the data dirs can be large,
/// and a run that fails half-way (a full disk) must not leave them behind either.
struct DataDirs {
    /// The run's `nodes/` dir (node `nK`'s data is `nodes/nK/data`).
    nodes: PathBuf,
    /// Set by `--keep-data`: leave the data dirs in place for inspection after the run.
    keep: bool,
}

impl Drop for DataDirs {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        for e in std::fs::read_dir(&self.nodes)
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = std::fs::remove_dir_all(e.path().join("data"));
        }
    }
}

/// Remove a run dir that holds nothing (and its `cluster-workload-nemesis` parent if that is
/// empty too). Only empty dirs are removed, so nothing a user kept is lost.
fn remove_empty_run_dir(root: &Path, dir: &Path) {
    let _ = std::fs::remove_dir(dir);
    if let Some(parent) = dir.parent().filter(|p| *p != root) {
        let _ = std::fs::remove_dir(parent);
    }
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
