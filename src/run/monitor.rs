//! The monitor: samples every node's (role, term, leader) every 100 ms into leaders.jsonl, and at
//! once whenever clients see a different node acknowledge writes (a leader change as the
//! adapter observes it); keeps the latest view for the nemesis ("kill the leader") and the
//! progress bar, and notices nodes that exit on their own.

use crate::client::{Adapter, Completion, NodeStatus, Request, Role};
use crate::cluster::supervisor::{Cluster, Crash};
use crate::history::{Fun, Value};
use crate::store::{JsonlSink, Sample};
use crate::workload::runner::LeaderHint;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often every node is asked.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// Shared view of the cluster.
pub(crate) struct Monitor {
    cluster: Arc<Cluster>,
    adapter: Arc<dyn Adapter>,
    log: Arc<JsonlSink>,
    latest: Mutex<Vec<Option<NodeStatus>>>,
    fault: Mutex<Option<String>>,
    crashes: Mutex<Vec<Crash>>,
    /// Extra samples on client-observed leader changes.
    pub hint: Arc<LeaderHint>,
}

impl Monitor {
    /// A monitor over `cluster`, logging to `log`.
    pub fn new(cluster: Arc<Cluster>, adapter: Arc<dyn Adapter>, log: Arc<JsonlSink>) -> Monitor {
        let n = cluster.len();
        Monitor {
            cluster,
            adapter,
            log,
            latest: Mutex::new(vec![None; n]),
            fault: Mutex::new(None),
            crashes: Mutex::new(Vec::new()),
            hint: Arc::new(LeaderHint::default()),
        }
    }

    /// The node that claims leadership in the highest term, with that term.
    pub(crate) fn leader_index(&self) -> Option<(usize, u64)> {
        let latest = self.latest.lock().ok()?;
        latest
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                s.as_ref()
                    .filter(|s| s.role == Role::Leader)
                    .map(|s| (i, s.term))
            })
            .max_by_key(|&(_, t)| t)
    }

    /// Whether nodes can be asked for their role at all (the spec has a status request).
    pub(crate) fn observes_roles(&self) -> bool {
        self.adapter.reports_roles()
    }

    /// Leader name and term, for display.
    pub fn leader(&self) -> Option<(String, u64)> {
        self.leader_index()
            .map(|(i, t)| (self.cluster.names[i].clone(), t))
    }

    /// The fault in force, as the nemesis labelled it.
    pub fn fault(&self) -> Option<String> {
        self.fault.lock().ok().and_then(|f| f.clone())
    }

    /// Set by the nemesis when a fault starts (Some) or heals (None).
    pub(crate) fn set_fault(&self, f: Option<String>) {
        if let Ok(mut g) = self.fault.lock() {
            *g = f;
        }
    }

    /// Nodes that crashed so far.
    pub(crate) fn crashes(&self) -> Vec<Crash> {
        self.crashes.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Ask every node once; log and remember the answers.
    pub async fn sample(&self) {
        let mut set = tokio::task::JoinSet::new();
        // A server with no status request is not asked; crashes are still noticed below.
        let asked = if self.adapter.reports_roles() {
            self.cluster.len()
        } else {
            0
        };
        for i in 0..asked {
            let a = self.adapter.clone();
            set.spawn(async move { (i, a.status(i, Duration::from_millis(300)).await) });
        }
        while let Some(r) = set.join_next().await {
            let Ok((i, r)) = r else { continue };
            let status = r.ok();
            if let Some(s) = &status {
                let node = self.cluster.names[i].clone();
                let leader = s.leader.and_then(|l| self.cluster.names.get(l).cloned());
                self.log.append(|index, time| Sample {
                    index,
                    time,
                    node,
                    role: s.role,
                    term: s.term,
                    leader,
                });
            }
            if let Ok(mut l) = self.latest.lock() {
                l[i] = status;
            }
        }
        let new = self.cluster.new_crashes();
        if !new.is_empty() {
            for c in &new {
                eprintln!(
                    "raftcheck: node {} exited on its own ({}): a crash",
                    c.node, c.status
                );
            }
            if let Ok(mut g) = self.crashes.lock() {
                g.extend(new);
            }
        }
    }
}

/// The shortest gap between two samples, so that clients flapping between two nodes that both
/// acknowledge writes cannot turn the monitor into a busy loop.
const MIN_GAP: Duration = Duration::from_millis(10);

/// Sample every [`SAMPLE_EVERY`], and at once when the leader hint fires, until `stop` is set.
pub(crate) async fn run(mon: Arc<Monitor>, stop: Arc<AtomicBool>) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::Relaxed) {
        tokio::select! {
            _ = tick.tick() => {}
            _ = mon.hint.changed() => {}
        }
        mon.sample().await;
        tokio::time::sleep(MIN_GAP).await;
    }
}

/// Wait until `nodes` are ready, failing fast if a node process exits (saying how long after
/// the wait began and how it ended: a node that dies at once must not look slow). The error is
/// a whole sentence, with no Rust debug output.
///
/// With a status request: every one of `nodes` answers it, one claims leadership, and a read
/// through that leader succeeds. Without one (a server with no status endpoint): every one of
/// `nodes` accepts connections on its client port and a read through one of them succeeds; a
/// read is the only thing such a server is known to answer.
pub(crate) async fn wait_ready(
    cluster: &Cluster,
    adapter: &dyn Adapter,
    nodes: &[usize],
    timeout: Duration,
) -> Result<(), String> {
    let begun = Instant::now();
    let deadline = begun + timeout;
    let mut last = String::from("no answer yet");
    let probe = Request {
        f: Fun::Read,
        key: Some("raftcheck-ready".into()),
        value: Value::Null,
    };
    while Instant::now() < deadline {
        for &i in nodes {
            if let Some(status) = cluster.exit_status(i) {
                return Err(format!(
                    "node {} exited {:.1} s into the wait for the cluster to be ready ({status})",
                    cluster.names[i],
                    begun.elapsed().as_secs_f64()
                ));
            }
        }
        let step = if adapter.reports_roles() {
            ready_by_status(cluster, adapter, nodes, &probe).await
        } else {
            ready_by_reads(cluster, adapter, nodes, &probe).await
        };
        match step {
            Ok(()) => return Ok(()),
            Err(why) => last = why,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!(
        "not ready within {:.0} s: {last}",
        timeout.as_secs_f64()
    ))
}

async fn ready_by_status(
    cluster: &Cluster,
    adapter: &dyn Adapter,
    nodes: &[usize],
    probe: &Request,
) -> Result<(), String> {
    let mut leader = None;
    let mut missing = Vec::new();
    for &i in nodes {
        match adapter.status(i, Duration::from_millis(500)).await {
            Ok(s) if s.role == Role::Leader => leader = Some(i),
            Ok(_) => {}
            Err(e) => missing.push(format!("{}: {e}", cluster.names[i])),
        }
    }
    if !missing.is_empty() {
        return Err(format!("no status from {}", missing.join("; ")));
    }
    let Some(l) = leader else {
        return Err("every node answers, but none is leader".into());
    };
    match adapter.invoke(l, probe, Duration::from_secs(2)).await {
        Completion::Ok { .. } => Ok(()),
        other => Err(format!(
            "leader {} does not serve reads yet ({})",
            cluster.names[l],
            describe(&other)
        )),
    }
}

async fn ready_by_reads(
    cluster: &Cluster,
    adapter: &dyn Adapter,
    nodes: &[usize],
    probe: &Request,
) -> Result<(), String> {
    let mut closed = Vec::new();
    for &i in nodes {
        let addr = cluster.endpoints[i].addr;
        let connect = tokio::net::TcpStream::connect(addr);
        match tokio::time::timeout(Duration::from_millis(500), connect).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => closed.push(format!("{} ({addr}): {e}", cluster.names[i])),
            Err(_) => closed.push(format!(
                "{} ({addr}): no answer in 500 ms",
                cluster.names[i]
            )),
        }
    }
    if !closed.is_empty() {
        return Err(format!("client port not open on {}", closed.join("; ")));
    }
    let mut refused = Vec::new();
    for &i in nodes {
        match adapter.invoke(i, probe, Duration::from_secs(2)).await {
            Completion::Ok { .. } => return Ok(()),
            other => refused.push(format!("{}: {}", cluster.names[i], describe(&other))),
        }
    }
    Err(format!(
        "no node serves reads yet (the spec has no status request, so readiness is a read): {}",
        refused.join("; ")
    ))
}

/// An op's completion in words, for messages users read.
pub(crate) fn describe(c: &Completion) -> String {
    match c {
        Completion::Ok { value, .. } => format!("ok {value}"),
        Completion::Fail { error, .. } => format!("fail: {error}"),
        Completion::Info { error, .. } => format!("unknown outcome: {error}"),
    }
}
