//! What a run's records mean: the verdict rules and the figures, as pure functions of what the
//! [`crate::store`] holds. No clock, no cluster, no files: everything here is unit-tested on
//! recorded data.
//!
//! The verdict rules ([`judge`]), beyond the checker's own answer:
//! - a broken Raft invariant ([`invariants`]) or a node that crashed on its own is a finding:
//!   invalid;
//! - a run that tested nothing does not say valid: a fault kind that was scheduled but never
//!   installed, or fewer ok ops than the workload's floor, makes it unknown;
//! - a kind the schedule could not fit into the fault phase, a kind the run could not do at all
//!   (partitions in loopback mode), problems of the final phase and an interrupt are written
//!   into the reasons without changing the verdict, so that a VALID always says what it covers.
//!
//! Imports: history, checker, spec and store only (never run, report or matrix).

mod figures;
pub mod invariants;

pub(crate) use figures::first_violation;
pub use figures::{latency, leader_changes, op_counts, unavailability};

use crate::checker::{CheckResult, Verdict};
use crate::cluster::supervisor::Crash;
use crate::history::{Op, Outcome};
use crate::spec::nemesis::FaultKind;
use crate::store::{Exercised, FaultOutcome, NemesisEvent, Phase, Violation};
use std::collections::{BTreeMap, BTreeSet};

/// What a run asked the nemesis for and what the schedule made of it.
#[derive(Clone, Debug, Default)]
pub struct Asked {
    /// Fault kinds requested, after the network mode's filtering.
    pub kinds: Vec<FaultKind>,
    /// Kinds the schedule fit into the fault phase.
    pub planned: BTreeSet<FaultKind>,
    /// Kinds asked for (through `all`) that this run cannot do at all, with why.
    pub unsupported: BTreeMap<String, String>,
    /// Length of the fault phase asked for, seconds.
    pub duration_secs: f64,
    /// One fault and one healthy interval, seconds (for the "raise --time-limit" hint).
    pub cycle_secs: f64,
    /// The workload's floor of ok ops.
    pub min_ok_ops: usize,
}

/// Everything [`judge`] looks at, borrowed from what the run recorded.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Evidence<'a> {
    /// The checker's answer on the history.
    pub check: &'a CheckResult,
    /// The paired ops of the history as read back from disk.
    pub ops: &'a [Op],
    /// nemesis.jsonl's events, from which the coverage rules see which kinds were installed.
    pub nemesis: &'a [NemesisEvent],
    /// Raft invariants broken.
    pub violations: &'a [Violation],
    /// Nodes that exited on their own.
    pub crashes: &'a [Crash],
    /// What the run asked the nemesis and the workload for, to hold against what happened.
    pub asked: &'a Asked,
    /// Problems of the final phase (heal, restart, recovery), as sentences.
    pub notes: &'a [String],
    /// What cut the fault phase short, if something did ("SIGTERM").
    pub interrupted_by: Option<&'a str>,
}

/// The run's verdict and every reason for it, in the order a reader needs them: the checker's
/// limit, findings, what made it unknown, what it did not cover, notes, the interrupt.
pub(crate) fn judge(e: &Evidence<'_>) -> (Verdict, Vec<String>) {
    let mut verdict = e.check.verdict;
    let mut reasons = Vec::new();
    if let Some(r) = &e.check.reason {
        reasons.push(format!("checker: {r}"));
    }
    for v in e.violations {
        verdict = verdict.merge(Verdict::Invalid);
        reasons.push(format!(
            "Raft invariant broken ({}): {}",
            v.invariant, v.explanation
        ));
    }
    for c in e.crashes {
        verdict = verdict.merge(Verdict::Invalid);
        reasons.push(format!("node {} crashed on its own ({})", c.node, c.status));
    }
    let mut not_scheduled = Vec::new();
    for k in &e.asked.kinds {
        let installed = e
            .nemesis
            .iter()
            .filter(|ev| ev.installed() && ev.fault == *k)
            .count();
        if !e.asked.planned.contains(k) {
            // Not a failure to inject: the fault phase was too short to reach this kind.
            not_scheduled.push(format!(
                "no {} fault was scheduled: {:.0} s of faults fit only {} (a fault and a healthy \
                 interval each take about {:.0} s; raise --time-limit)",
                k.name(),
                e.asked.duration_secs,
                if e.asked.planned.is_empty() {
                    "none".to_string()
                } else {
                    e.asked
                        .planned
                        .iter()
                        .map(|k| k.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                e.asked.cycle_secs
            ));
        } else if installed == 0 {
            verdict = verdict.merge(Verdict::Unknown);
            reasons.push(format!(
                "the nemesis was asked for {} faults but never installed one (see nemesis.jsonl)",
                k.name()
            ));
        }
    }
    let ok_ops = e.ops.iter().filter(|o| o.outcome == Outcome::Ok).count();
    if ok_ops < e.asked.min_ok_ops {
        verdict = verdict.merge(Verdict::Unknown);
        reasons.push(format!(
            "only {ok_ops} ops succeeded, below the workload's floor of {} (min_ok_ops): the run \
             tested too little to vouch for anything",
            e.asked.min_ok_ops
        ));
    }
    // Faults asked for that this run could not do: VALID must not read as "survived them".
    for (kind, why) in &e.asked.unsupported {
        let why = why.strip_prefix("skipped: ").unwrap_or(why);
        reasons.push(format!("{kind} faults were asked for but skipped: {why}"));
    }
    reasons.extend(e.notes.iter().cloned());
    reasons.extend(not_scheduled);
    if let Some(by) = e.interrupted_by {
        reasons.push(format!(
            "interrupted by {by}: the fault phase was cut short"
        ));
    }
    (verdict, reasons)
}

/// What the run exercised: faults by label and outcome, leader changes, ops by f and outcome.
pub fn exercised(
    asked: &Asked,
    nemesis: &[NemesisEvent],
    leader_changes: usize,
    ops: &[Op],
) -> Exercised {
    let mut ex = Exercised {
        requested: asked.kinds.clone(),
        unsupported: asked.unsupported.clone(),
        faults: BTreeMap::new(),
        leader_changes,
        ops: op_counts(ops),
    };
    for e in nemesis.iter().filter(|e| e.event == Phase::Start) {
        let c = ex.faults.entry(e.label.clone()).or_default();
        match e.outcome {
            FaultOutcome::Installed => c.installed += 1,
            FaultOutcome::Skipped => c.skipped += 1,
            FaultOutcome::Failed | FaultOutcome::Healed => c.failed += 1,
        }
    }
    ex
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::{self, CheckOptions};
    use crate::history::{self, Event, EventType, Fun, Source};

    /// A valid history of `n` ok writes by one process.
    fn writes(n: usize) -> Vec<Op> {
        let mut evs = Vec::new();
        for i in 0..n {
            for kind in [EventType::Invoke, EventType::Ok] {
                evs.push(Event {
                    index: evs.len() as u64,
                    kind,
                    process: 1,
                    f: Fun::Write,
                    key: None,
                    value: serde_json::json!(i),
                    time: evs.len() as u64 * 1000,
                    node: None,
                    error: None,
                });
            }
        }
        history::pair(&evs, &Source::memory(evs.len())).expect("well formed")
    }

    fn start(fault: FaultKind, outcome: FaultOutcome) -> NemesisEvent {
        NemesisEvent {
            index: 0,
            time: 1_000_000_000,
            event: Phase::Start,
            fault,
            label: format!("{} random", fault.name()),
            nodes: vec!["n1".into()],
            grudge: None,
            outcome,
            reason: None,
            storage: Vec::new(),
        }
    }

    struct Case {
        ops: Vec<Op>,
        check: CheckResult,
        asked: Asked,
        nemesis: Vec<NemesisEvent>,
        crashes: Vec<Crash>,
        notes: Vec<String>,
        interrupted_by: Option<&'static str>,
    }

    impl Case {
        fn new(ops: usize) -> Case {
            let ops = writes(ops);
            let check = checker::check(&ops, &CheckOptions::default()).expect("checks");
            Case {
                ops,
                check,
                asked: Asked {
                    kinds: vec![FaultKind::Kill],
                    planned: [FaultKind::Kill].into(),
                    duration_secs: 30.0,
                    cycle_secs: 8.0,
                    min_ok_ops: 5,
                    ..Asked::default()
                },
                nemesis: vec![start(FaultKind::Kill, FaultOutcome::Installed)],
                crashes: vec![],
                notes: vec![],
                interrupted_by: None,
            }
        }

        fn judge(&self) -> (Verdict, Vec<String>) {
            judge(&Evidence {
                check: &self.check,
                ops: &self.ops,
                nemesis: &self.nemesis,
                violations: &[],
                crashes: &self.crashes,
                asked: &self.asked,
                notes: &self.notes,
                interrupted_by: self.interrupted_by,
            })
        }
    }

    #[test]
    fn a_run_that_installed_what_it_asked_for_is_the_checkers_verdict() {
        let (v, reasons) = Case::new(10).judge();
        assert_eq!(v, Verdict::Valid);
        assert!(reasons.is_empty(), "{reasons:?}");
    }

    #[test]
    fn a_scheduled_fault_that_never_installed_makes_the_run_unknown() {
        let mut c = Case::new(10);
        c.nemesis = vec![start(FaultKind::Kill, FaultOutcome::Failed)];
        let (v, reasons) = c.judge();
        assert_eq!(v, Verdict::Unknown);
        assert!(reasons[0].contains("never installed"), "{reasons:?}");
    }

    #[test]
    fn a_kind_the_schedule_could_not_fit_is_a_note_not_unknown() {
        let mut c = Case::new(10);
        c.asked.kinds.push(FaultKind::Pause);
        let (v, reasons) = c.judge();
        assert_eq!(v, Verdict::Valid);
        assert!(
            reasons[0].contains("no pause fault was scheduled"),
            "{reasons:?}"
        );
        assert!(reasons[0].contains("fit only kill"), "{reasons:?}");
    }

    #[test]
    fn too_few_ok_ops_is_unknown() {
        let (v, reasons) = Case::new(3).judge();
        assert_eq!(v, Verdict::Unknown);
        assert!(reasons[0].contains("only 3 ops succeeded"), "{reasons:?}");
    }

    #[test]
    fn a_crash_is_a_finding() {
        let mut c = Case::new(10);
        c.crashes.push(Crash {
            node: "n2".into(),
            status: "exit status: 1".into(),
            log_tail: String::new(),
        });
        let (v, reasons) = c.judge();
        assert_eq!(v, Verdict::Invalid);
        assert!(reasons[0].contains("node n2 crashed on its own"));
    }

    #[test]
    fn skipped_kinds_notes_and_the_interrupt_are_said_without_changing_a_valid() {
        let mut c = Case::new(10);
        c.asked.unsupported.insert(
            "partition".into(),
            "skipped: loopback mode (not root)".into(),
        );
        c.notes.push("final heal of the network failed: x".into());
        c.interrupted_by = Some("SIGTERM");
        let (v, reasons) = c.judge();
        assert_eq!(v, Verdict::Valid);
        assert_eq!(
            reasons,
            [
                "partition faults were asked for but skipped: loopback mode (not root)",
                "final heal of the network failed: x",
                "interrupted by SIGTERM: the fault phase was cut short",
            ]
        );
    }

    #[test]
    fn exercised_counts_start_lines_by_label_and_outcome() {
        let c = Case::new(4);
        let mut evs = vec![
            start(FaultKind::Kill, FaultOutcome::Installed),
            start(FaultKind::Kill, FaultOutcome::Skipped),
            start(FaultKind::Kill, FaultOutcome::Failed),
        ];
        let mut stop = start(FaultKind::Kill, FaultOutcome::Healed);
        stop.event = Phase::Stop;
        evs.push(stop);
        let ex = exercised(&c.asked, &evs, 2, &c.ops);
        let k = &ex.faults["kill random"];
        assert_eq!((k.installed, k.skipped, k.failed), (1, 1, 1));
        assert_eq!(ex.leader_changes, 2);
        assert_eq!(ex.ops["write"]["ok"], 4);
    }
}
