//! The nemesis at work: walks the seeded schedule, injects each fault, heals it, and logs both
//! with the nodes involved and an outcome (installed / skipped / failed) to nemesis.jsonl.

use crate::client::MembershipError;
use crate::cluster::supervisor::Cluster;
use crate::nemesis::{grudge, resolve_target, Action, Planned};
use crate::spec::nemesis::{DamageKind, FaultKind, PartitionKind, Target};
use crate::store::{FaultOutcome, JsonlSink, NemesisEvent, Phase, StorageEffect};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The nemesis task's state.
pub(crate) struct Nemesis {
    /// The nodes the faults hit; partitions go into its network.
    pub cluster: Arc<Cluster>,
    /// Who leads now.
    pub monitor: Arc<super::monitor::Monitor>,
    /// The client adapter, used only to remove and add members for the membership fault.
    pub adapter: Arc<dyn crate::client::Adapter>,
    /// The nemesis.jsonl sink: a start line for each fault tried, a stop line for each heal, each
    /// with its outcome.
    pub log: Arc<JsonlSink>,
    /// The run's seed; the nodes each target and shape picks are drawn from it (mixed with a
    /// constant of their own, so they do not repeat the schedule's draws).
    pub seed: u64,
    /// The run's clock origin.
    pub start: Instant,
    /// Set when the fault phase ends (or on Ctrl-C).
    pub stop: Arc<AtomicBool>,
    /// Power losses keep a torn prefix of each node's last unsynced write.
    pub torn_writes: bool,
    /// The damage kinds a corrupt fault draws from.
    pub damage: Vec<DamageKind>,
}

/// How long a restarted node has to refuse its damaged data dir before it counts as running
/// on it (servers that check their files refuse at start-up, within milliseconds).
const REFUSAL_WINDOW: Duration = Duration::from_secs(2);

/// What a started fault needs for its heal.
struct Active {
    kind: FaultKind,
    label: String,
    nodes: Vec<usize>,
    /// Membership: the node was removed and wiped, so it must be restarted and added back
    /// (false: the removal's outcome is open, so only the add-back is tried).
    wiped: bool,
}

/// How long one membership request may take, and how long the nemesis keeps trying one.
const MEMBER_REQUEST: Duration = Duration::from_secs(5);
const MEMBER_PATIENCE: Duration = Duration::from_secs(15);

impl Nemesis {
    /// Sleep until `at` (from the run start) or until stopped; false if stopped.
    async fn sleep_until(&self, at: f64) -> bool {
        let until = self.start + Duration::from_secs_f64(at);
        while Instant::now() < until {
            if self.stop.load(Ordering::Relaxed) {
                return false;
            }
            let left = until - Instant::now();
            tokio::time::sleep(left.min(Duration::from_millis(50))).await;
        }
        !self.stop.load(Ordering::Relaxed)
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        event: Phase,
        fault: FaultKind,
        label: &str,
        nodes: &[usize],
        grudge: Option<BTreeMap<String, Vec<String>>>,
        outcome: FaultOutcome,
        reason: Option<String>,
        storage: Vec<StorageEffect>,
    ) {
        let names: Vec<String> = nodes
            .iter()
            .map(|&i| self.cluster.names[i].clone())
            .collect();
        self.log.append(|index, time| NemesisEvent {
            index,
            time,
            event,
            fault,
            label: label.into(),
            nodes: names,
            grudge,
            outcome,
            reason,
            storage,
        });
    }

    /// Walk the schedule; heal whatever is active when stopped.
    pub async fn run(self, plan: Vec<Planned>) {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0x7461_7267_6574);
        for p in plan {
            if !self.sleep_until(p.start).await {
                break;
            }
            let mut active = Vec::new();
            for &action in &p.actions {
                if let Some(a) = self.inject(action, &mut rng).await {
                    active.push((action, a));
                }
            }
            let half = (p.start + p.end) / 2.0;
            let staggered = |x: &Action| {
                matches!(
                    x,
                    Action::Kill {
                        target: Target::Staggered
                    } | Action::PowerLoss {
                        target: Target::Staggered
                    }
                )
            };
            if active.iter().any(|(x, _)| staggered(x)) && self.sleep_until(half).await {
                for (x, a) in active.iter_mut() {
                    if staggered(x) {
                        self.kill_the_rest(a).await;
                    }
                }
            }
            let _ = self.sleep_until(p.end).await;
            // Heal in reverse order of injection.
            while let Some((_, a)) = active.pop() {
                self.heal(a).await;
            }
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
        }
    }

    /// Why a `leader` target became a random node.
    fn no_leader_reason(&self) -> String {
        if self.monitor.observes_roles() {
            "no leader known: chose a random node".into()
        } else {
            "the cluster spec has no status request, so no leader is known: chose a random node"
                .into()
        }
    }

    async fn inject(&self, action: Action, rng: &mut ChaCha8Rng) -> Option<Active> {
        let n = self.cluster.len();
        let leader = self.monitor.leader_index().map(|(i, _)| i);
        let label = action.label();
        let kind = action.kind();
        let cluster = self.cluster.clone();
        match action {
            Action::Kill { target } | Action::Pause { target } => {
                let nodes = resolve_target(target, n, leader, rng);
                let reason =
                    (target == Target::Leader && leader.is_none()).then(|| self.no_leader_reason());
                let ns = nodes.clone();
                let res = tokio::task::spawn_blocking(move || {
                    for &i in &ns {
                        match kind {
                            FaultKind::Kill => cluster.kill(i)?,
                            _ => cluster.pause(i)?,
                        }
                    }
                    Ok::<(), crate::cluster::ClusterError>(())
                })
                .await;
                let (outcome, err) = installed_or_failed(res);
                self.record(
                    Phase::Start,
                    kind,
                    &label,
                    &nodes,
                    None,
                    outcome,
                    err.or(reason),
                    Vec::new(),
                );
                self.monitor.set_fault(Some(label.clone()));
                Some(Active {
                    kind,
                    label,
                    nodes,
                    wiped: false,
                })
            }
            Action::PowerLoss { target } | Action::Corrupt { target } => {
                let nodes = resolve_target(target, n, leader, rng);
                let reason =
                    (target == Target::Leader && leader.is_none()).then(|| self.no_leader_reason());
                let (outcome, err, storage) = self.storage_fault(kind, &nodes, rng).await;
                self.record(
                    Phase::Start,
                    kind,
                    &label,
                    &nodes,
                    None,
                    outcome,
                    err.or(reason),
                    storage,
                );
                self.monitor.set_fault(Some(label.clone()));
                Some(Active {
                    kind,
                    label,
                    nodes,
                    wiped: false,
                })
            }
            Action::Member { target } => {
                let node = resolve_target(target, n, leader, rng)[0];
                let reason =
                    (target == Target::Leader && leader.is_none()).then(|| self.no_leader_reason());
                let a = self.remove_member(node, reason, &label).await;
                self.monitor.set_fault(Some(label.clone()));
                Some(a)
            }
            Action::Partition { shape } => {
                let Some(g) = grudge(shape, n, leader, rng) else {
                    self.record(
                        Phase::Start,
                        kind,
                        &label,
                        &[],
                        None,
                        FaultOutcome::Skipped,
                        Some(format!(
                            "{label} needs at least 5 nodes; this cluster has {n}"
                        )),
                        Vec::new(),
                    );
                    return None;
                };
                let names = |i: &usize| self.cluster.names[*i].clone();
                let shown: BTreeMap<String, Vec<String>> = g
                    .iter()
                    .map(|(k, v)| (names(k), v.iter().map(names).collect()))
                    .collect();
                let nodes: Vec<usize> = g.keys().copied().collect();
                let g2 = g.clone();
                let res = tokio::task::spawn_blocking(move || {
                    cluster
                        .network
                        .lock()
                        .map_err(|_| {
                            crate::cluster::ClusterError::Other("network lock poisoned".into())
                        })
                        .and_then(|net| net.partition(&g2))
                })
                .await;
                let (outcome, err) = installed_or_failed(res);
                self.record(
                    Phase::Start,
                    kind,
                    &label,
                    &nodes,
                    Some(shown),
                    outcome,
                    err.or_else(|| {
                        (shape == PartitionKind::IsolateLeader && leader.is_none())
                            .then(|| self.no_leader_reason())
                    }),
                    Vec::new(),
                );
                self.monitor.set_fault(Some(label.clone()));
                Some(Active {
                    kind,
                    label,
                    nodes,
                    wiped: false,
                })
            }
        }
    }

    /// Stop `nodes` and apply a power loss or a corruption to each one's data dir. Every target
    /// is killed before any disk is touched, so a power loss of several nodes is one
    /// coordinated failure. The outcome is installed when every node's disk was handled (a
    /// power loss that found nothing unsynced still happened, and says so), skipped when a
    /// corruption found no file to damage anywhere, failed on any error.
    async fn storage_fault(
        &self,
        kind: FaultKind,
        nodes: &[usize],
        rng: &mut ChaCha8Rng,
    ) -> (FaultOutcome, Option<String>, Vec<StorageEffect>) {
        let seeds: Vec<u64> = nodes.iter().map(|_| rng.random()).collect();
        let cluster = self.cluster.clone();
        let targets = nodes.to_vec();
        let torn = self.torn_writes;
        let damage = self.damage.clone();
        let label = format!("copy taken at {:.1} s", self.start.elapsed().as_secs_f64());
        let res = tokio::task::spawn_blocking(move || {
            let mut errors = Vec::new();
            for &i in &targets {
                if let Err(e) = cluster.kill(i) {
                    errors.push(e.to_string());
                }
            }
            let mut effects = Vec::new();
            for (&i, seed) in targets.iter().zip(seeds) {
                let node = cluster.names[i].clone();
                if kind == FaultKind::PowerLoss {
                    match cluster.power_loss(i, torn.then_some(seed)) {
                        Ok(d) => effects.push(StorageEffect {
                            node,
                            summary: d.summary(),
                            discarded: Some(d),
                            damage: None,
                        }),
                        Err(e) => errors.push(e.to_string()),
                    }
                    continue;
                }
                let mut r = ChaCha8Rng::seed_from_u64(seed);
                match cluster.corrupt(i, &damage, &label, &mut r) {
                    Ok(Some(d)) => effects.push(StorageEffect {
                        node,
                        summary: d.summary(),
                        discarded: None,
                        damage: Some(d),
                    }),
                    Ok(None) => effects.push(StorageEffect {
                        node,
                        summary: "no file to damage (none is non-empty and matches \
                                  corrupt_paths)"
                            .into(),
                        discarded: None,
                        damage: None,
                    }),
                    Err(e) => errors.push(e.to_string()),
                }
            }
            (effects, errors)
        })
        .await;
        let (effects, errors) = match res {
            Ok(x) => x,
            Err(e) => (Vec::new(), vec![e.to_string()]),
        };
        if !errors.is_empty() {
            return (FaultOutcome::Failed, Some(errors.join("; ")), effects);
        }
        if kind == FaultKind::Corrupt && effects.iter().all(|e| e.damage.is_none()) {
            return (
                FaultOutcome::Skipped,
                Some("no node had a file to damage".into()),
                effects,
            );
        }
        (FaultOutcome::Installed, None, effects)
    }

    /// Heal a corrupt fault: restart the nodes, give each [`REFUSAL_WINDOW`] to refuse its
    /// damaged data dir (exit), and restore the copy taken before the damage for those that
    /// did, then start them again. The reason says who refused.
    fn heal_corrupt(cluster: &Cluster, nodes: &[usize]) -> Result<Option<String>, String> {
        cluster.restart(nodes).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + REFUSAL_WINDOW;
        let mut refused: Vec<(usize, String)> = Vec::new();
        while Instant::now() < deadline && refused.len() < nodes.len() {
            std::thread::sleep(Duration::from_millis(100));
            for &i in nodes {
                if refused.iter().any(|(j, _)| *j == i) {
                    continue;
                }
                if let Some(status) = cluster.refused_damage(i).map_err(|e| e.to_string())? {
                    refused.push((i, status));
                }
            }
        }
        let again: Vec<usize> = refused.iter().map(|(i, _)| *i).collect();
        let restarted = cluster.restart(&again).map_err(|e| e.to_string());
        for &i in nodes {
            cluster.settle_damaged(i);
        }
        restarted?;
        if refused.is_empty() {
            return Ok(None);
        }
        let who: Vec<String> = refused
            .iter()
            .map(|(i, st)| format!("{} ({st})", cluster.names[*i]))
            .collect();
        Ok(Some(format!(
            "refused its damaged data dir and was restored from the copy taken before the \
             damage: {}",
            who.join(", ")
        )))
    }

    /// The node to send a membership request to: the leader the monitor knows, unless that is
    /// the node being changed and others exist, else the next node.
    fn via(&self, changed: usize) -> usize {
        match self.monitor.leader_index().map(|(i, _)| i) {
            Some(l) if l != changed => l,
            _ => (changed + 1) % self.cluster.len(),
        }
    }

    /// First half of a membership fault: remove `node` through the leader (retrying refusals
    /// such as "a change is already in progress" for a while), then kill it and wipe its data
    /// dir. The wipe happens only after the removal is known to have committed: wiping a member
    /// would be the harness forgetting a vote, not the server. The "start" line's time is the
    /// wipe time the term-monotonicity check resets at.
    async fn remove_member(&self, node: usize, mut reason: Option<String>, label: &str) -> Active {
        let id = self.cluster.endpoints[node].id;
        let removal = self
            .persist(false, || async move {
                match self.adapter.membership() {
                    Some(m) => m.remove_member(self.via(node), id, MEMBER_REQUEST).await,
                    None => Err(MembershipError(
                        "this adapter cannot change membership".into(),
                    )),
                }
            })
            .await;
        let wipe = match removal {
            Ok(()) => {
                let cluster = self.cluster.clone();
                match tokio::task::spawn_blocking(move || cluster.wipe(node)).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(format!("removed, but: {e}")),
                    Err(e) => Err(format!("removed, but: {e}")),
                }
            }
            Err(e) => Err(e),
        };
        let wiped = wipe.is_ok();
        let outcome = if wiped {
            FaultOutcome::Installed
        } else {
            FaultOutcome::Failed
        };
        if let Err(e) = wipe {
            reason = Some(format!("{e}; the node was not wiped"));
        }
        self.record(
            Phase::Start,
            FaultKind::Member,
            label,
            &[node],
            None,
            outcome,
            reason,
            Vec::new(),
        );
        Active {
            kind: FaultKind::Member,
            label: label.to_string(),
            nodes: vec![node],
            wiped,
        }
    }

    /// Second half: start the wiped node (with the rejoin args) and add it back through the
    /// leader, retrying while it boots or leadership moves.
    async fn add_member_back(&self, a: &Active) -> Result<(), String> {
        let node = a.nodes[0];
        if a.wiped {
            let cluster = self.cluster.clone();
            tokio::task::spawn_blocking(move || cluster.restart(&[node]))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
        }
        let ep = &self.cluster.endpoints[node];
        // A heal: keeps trying after the run's stop flag is set.
        self.persist(true, || async move {
            match self.adapter.membership() {
                Some(m) => {
                    m.add_member(self.via(node), ep.id, ep.addr, MEMBER_REQUEST)
                        .await
                }
                None => Err(MembershipError(
                    "this adapter cannot change membership".into(),
                )),
            }
        })
        .await
        .map_err(|e| format!("{} was not added back: {e}", ep.name))
    }

    /// Repeat a membership request until it succeeds, for at most [`MEMBER_PATIENCE`] and 30
    /// attempts, 300 ms apart (refusals such as "a change is already in progress" or "not the
    /// leader" pass as leadership settles); unless `through_stop`, also until the run stops.
    async fn persist<F, Fut>(&self, through_stop: bool, mut call: F) -> Result<(), String>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), MembershipError>>,
    {
        let deadline = Instant::now() + MEMBER_PATIENCE;
        let mut last = String::from("not tried: the run was stopping");
        for attempt in 1..=30 {
            if Instant::now() >= deadline || (!through_stop && self.stop.load(Ordering::Relaxed)) {
                break;
            }
            match call().await {
                Ok(()) => return Ok(()),
                Err(e) => last = format!("{e} (after {attempt} attempts)"),
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        Err(last)
    }

    /// Second step of a staggered kill or power loss: the nodes the first step left running.
    async fn kill_the_rest(&self, a: &mut Active) {
        let rest: Vec<usize> = (0..self.cluster.len())
            .filter(|i| !a.nodes.contains(i))
            .collect();
        let label = format!("{} (rest)", a.label);
        let (outcome, err, storage) = if a.kind == FaultKind::PowerLoss {
            let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0x7265_7374 ^ rest.len() as u64);
            self.storage_fault(FaultKind::PowerLoss, &rest, &mut rng)
                .await
        } else {
            let cluster = self.cluster.clone();
            let r2 = rest.clone();
            let res =
                tokio::task::spawn_blocking(move || r2.iter().try_for_each(|&i| cluster.kill(i)))
                    .await;
            let (outcome, err) = installed_or_failed(res);
            (outcome, err, Vec::new())
        };
        self.record(
            Phase::Start,
            a.kind,
            &label,
            &rest,
            None,
            outcome,
            err,
            storage,
        );
        a.nodes.extend(rest);
    }

    async fn heal(&self, a: Active) {
        if a.kind == FaultKind::Member {
            let res = self.add_member_back(&a).await;
            let outcome = if res.is_ok() {
                FaultOutcome::Healed
            } else {
                FaultOutcome::Failed
            };
            self.record(
                Phase::Stop,
                a.kind,
                &a.label,
                &a.nodes,
                None,
                outcome,
                res.err(),
                Vec::new(),
            );
            self.monitor.set_fault(None);
            return;
        }
        let cluster = self.cluster.clone();
        let nodes = a.nodes.clone();
        let kind = a.kind;
        let res = tokio::task::spawn_blocking(move || {
            let done = match kind {
                FaultKind::Kill | FaultKind::Member | FaultKind::PowerLoss => {
                    cluster.restart(&nodes).map(|_| ())
                }
                FaultKind::Corrupt => return Nemesis::heal_corrupt(&cluster, &nodes),
                FaultKind::Pause => nodes.iter().try_for_each(|&i| cluster.resume(i)),
                FaultKind::Partition => cluster
                    .network
                    .lock()
                    .map_err(|_| {
                        crate::cluster::ClusterError::Other("network lock poisoned".into())
                    })
                    .and_then(|n| n.heal()),
            };
            done.map(|()| None).map_err(|e| e.to_string())
        })
        .await;
        let (outcome, reason) = match res {
            Ok(Ok(note)) => (FaultOutcome::Healed, note),
            Ok(Err(e)) => (FaultOutcome::Failed, Some(e)),
            Err(e) => (FaultOutcome::Failed, Some(e.to_string())),
        };
        self.record(
            Phase::Stop,
            a.kind,
            &a.label,
            &a.nodes,
            None,
            outcome,
            reason,
            Vec::new(),
        );
        self.monitor.set_fault(None);
    }
}

/// How a blocking injection ended: installed, or failed with the error (the cluster's, or the
/// blocking task's own panic).
fn installed_or_failed(
    res: Result<Result<(), crate::cluster::ClusterError>, tokio::task::JoinError>,
) -> (FaultOutcome, Option<String>) {
    match res {
        Ok(Ok(())) => (FaultOutcome::Installed, None),
        Ok(Err(e)) => (FaultOutcome::Failed, Some(e.to_string())),
        Err(e) => (FaultOutcome::Failed, Some(e.to_string())),
    }
}
