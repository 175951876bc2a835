//! Raft invariants judged from what the monitor saw (leaders.jsonl), beside linearizability.
//!
//! - Election safety (Raft §5.2): at most one leader per term. Two samples in which different
//!   nodes claim leadership in the same term are a violation, whenever they were taken.
//! - Term monotonicity: a node's current term never goes back, across restarts too, because
//!   term and vote are persisted before they are acted on. A sample with a lower term than an
//!   earlier sample of the same node catches a server that forgets its persisted term. The check
//!   restarts for a node whose data dir the harness wiped or damaged (`wiped` gives the time of
//!   each wipe or corruption).
//!
//! What it cannot see: the monitor samples every 100 ms, so a leader that exists for less than
//! that between two samples, or a term that rises and falls between samples, can be missed; a
//! node that is paused or cut off from the harness is not sampled at all.

use crate::client::Role;
use crate::spec::nemesis::FaultKind;
use crate::store::{NemesisEvent, Sample, Violation};
use std::collections::HashMap;

/// When the harness wiped or damaged each node's data dir (ns since the run started): the time
/// of every membership fault's "start" line that installed (written after the wipe), and of
/// every corrupt fault's for the nodes it damaged (written after the damage). A rollback or a
/// truncation can put back an older term the server has no way to know it lost: the harness
/// forgot it, not the server. Power losses do not count: a server must keep its term through
/// them.
pub(crate) fn wipes(events: &[NemesisEvent]) -> HashMap<String, Vec<u64>> {
    let mut out: HashMap<String, Vec<u64>> = HashMap::new();
    for e in events.iter().filter(|e| e.installed()) {
        let hit: Vec<&String> = match e.fault {
            FaultKind::Member => e.nodes.iter().collect(),
            FaultKind::Corrupt => e
                .storage
                .iter()
                .filter(|s| s.damage.is_some())
                .map(|s| &s.node)
                .collect(),
            _ => Vec::new(),
        };
        for n in hit {
            out.entry(n.clone()).or_default().push(e.time);
        }
    }
    out
}

/// Check both invariants; at most one violation of each kind per (term) or (node) is reported.
pub fn check(samples: &[Sample], wiped: &HashMap<String, Vec<u64>>) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut leader_of_term: HashMap<u64, &Sample> = HashMap::new();
    let mut reported_terms = std::collections::HashSet::new();
    let mut last: HashMap<&str, &Sample> = HashMap::new();
    let mut reported_nodes = std::collections::HashSet::new();
    for s in samples {
        if s.role == Role::Leader {
            match leader_of_term.get(&s.term) {
                Some(first) if first.node != s.node && reported_terms.insert(s.term) => {
                    out.push(Violation {
                        invariant: "election-safety".into(),
                        explanation: format!(
                            "two leaders in term {}: {} (at {:.3} s) and {} (at {:.3} s)",
                            s.term,
                            first.node,
                            first.time as f64 / 1e9,
                            s.node,
                            s.time as f64 / 1e9
                        ),
                        first: (*first).clone(),
                        second: s.clone(),
                    });
                }
                Some(_) => {}
                None => {
                    leader_of_term.insert(s.term, s);
                }
            }
        }
        if let Some(prev) = last.get(s.node.as_str()) {
            let wiped_between = wiped
                .get(&s.node)
                .is_some_and(|ts| ts.iter().any(|&t| t > prev.time && t <= s.time));
            if s.term < prev.term && !wiped_between && reported_nodes.insert(s.node.clone()) {
                out.push(Violation {
                    invariant: "term-monotonicity".into(),
                    explanation: format!(
                        "{}'s term went back from {} (at {:.3} s) to {} (at {:.3} s): it forgot its persisted term",
                        s.node,
                        prev.term,
                        prev.time as f64 / 1e9,
                        s.term,
                        s.time as f64 / 1e9
                    ),
                    first: (*prev).clone(),
                    second: s.clone(),
                });
            }
        }
        last.insert(s.node.as_str(), s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(time: u64, node: &str, role: Role, term: u64) -> Sample {
        Sample {
            index: 0,
            time,
            node: node.into(),
            role,
            term,
            leader: None,
        }
    }

    #[test]
    fn two_leaders_in_one_term_is_a_violation_even_far_apart() {
        let v = check(
            &[
                s(1, "n1", Role::Leader, 3),
                s(2, "n2", Role::Follower, 3),
                s(9_000_000_000, "n2", Role::Leader, 3),
            ],
            &HashMap::new(),
        );
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].invariant, "election-safety");
        assert_eq!(v[0].first.node, "n1");
    }

    #[test]
    fn successive_leaders_in_rising_terms_are_fine() {
        let v = check(
            &[
                s(1, "n1", Role::Leader, 3),
                s(2, "n2", Role::Leader, 4),
                s(3, "n1", Role::Follower, 4),
                s(4, "n1", Role::Leader, 4),
            ],
            &HashMap::new(),
        );
        assert_eq!(v.len(), 1, "n1 and n2 both lead term 4: {v:?}");
        let v = check(
            &[s(1, "n1", Role::Leader, 3), s(2, "n1", Role::Leader, 3)],
            &HashMap::new(),
        );
        assert!(v.is_empty());
    }

    #[test]
    fn wipes_come_from_installed_membership_faults_and_damage_only() {
        use crate::store::{FaultOutcome, Phase};
        let ev = |time, fault, event: Phase, outcome: FaultOutcome| NemesisEvent {
            index: 0,
            time,
            event,
            fault,
            label: String::new(),
            nodes: vec!["n2".into()],
            grudge: None,
            outcome,
            reason: None,
            storage: Vec::new(),
        };
        let w = wipes(&[
            ev(5, FaultKind::Member, Phase::Start, FaultOutcome::Installed),
            ev(6, FaultKind::Member, Phase::Stop, FaultOutcome::Healed),
            ev(7, FaultKind::Member, Phase::Start, FaultOutcome::Failed),
            ev(8, FaultKind::Kill, Phase::Start, FaultOutcome::Installed),
            ev(9, FaultKind::Member, Phase::Start, FaultOutcome::Installed),
        ]);
        assert_eq!(w.len(), 1);
        assert_eq!(w["n2"], vec![5, 9]);
        // Corruption resets the check for the damaged nodes only; power loss never does.
        let mut c = ev(
            11,
            FaultKind::Corrupt,
            Phase::Start,
            FaultOutcome::Installed,
        );
        c.nodes = vec!["n1".into(), "n3".into()];
        let effect = |node: &str, damaged: bool| crate::store::StorageEffect {
            node: node.into(),
            summary: String::new(),
            discarded: None,
            damage: damaged.then(|| crate::cluster::damage::Damage {
                file: "wal".into(),
                kind: crate::spec::nemesis::DamageKind::Rollback,
                offset: 0,
                length: 10,
                bits: vec![],
                size_before: 20,
                size_after: 10,
                copy: None,
            }),
        };
        c.storage = vec![effect("n1", true), effect("n3", false)];
        let mut p = ev(
            12,
            FaultKind::PowerLoss,
            Phase::Start,
            FaultOutcome::Installed,
        );
        p.storage = vec![effect("n2", false)];
        let w = wipes(&[c, p]);
        assert_eq!(w.keys().collect::<Vec<_>>(), vec!["n1"]);
    }

    #[test]
    fn a_term_that_goes_back_is_caught_unless_the_node_was_wiped() {
        let samples = [s(1, "n3", Role::Follower, 7), s(5, "n3", Role::Follower, 2)];
        let v = check(&samples, &HashMap::new());
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].invariant, "term-monotonicity");
        let mut wiped = HashMap::new();
        wiped.insert("n3".to_string(), vec![3]);
        assert!(check(&samples, &wiped).is_empty());
    }
}
