//! The situations the Raft paper draws, replayed on the pure core with hand-delivered
//! messages. Each test cites the section it pins.

mod sim;

use raftkv::raft::{Config, ConfigChange, HardState, MessageBody, NodeId, Role};
use sim::{Faults, Sim};

/// A config whose election timer fires late (`slow`) or early, so a test picks who campaigns.
fn cfg(id: NodeId, slow: bool) -> Config {
    let mut c = Config::new(id, 1);
    if slow {
        c.election_ticks_min = 10_000;
        c.election_ticks_max = 10_001;
    } else {
        c.election_ticks_min = 5;
        c.election_ticks_max = 6;
    }
    c
}

/// Tick `id` until it campaigns and delivers only vote traffic until it is leader (bounded).
fn elect(sim: &mut Sim, id: NodeId) {
    for _ in 0..50 {
        sim.tick(id);
        sim.deliver_where(
            |m| {
                matches!(
                    m.body,
                    MessageBody::RequestVote { .. } | MessageBody::RequestVoteResponse { .. }
                )
            },
            100,
        );
        if sim.raft(id).role() == Role::Leader {
            return;
        }
    }
    panic!("node {id} did not become leader");
}

fn hs(term: u64) -> HardState {
    HardState { term, vote: None }
}

#[test]
fn figure_7_leader_brings_every_follower_log_in_line() {
    // Reference: Raft §5.3, figure 7. The leader of term 8 starts with
    //   [1 1 1 4 4 5 5 6 6 6]; followers (a)-(f) hold the logs of the figure: missing
    // entries (a, b, e), extra uncommitted entries (c, d) or both (f). AppendEntries with
    // the consistency check and conflict deletion make every follower's log equal the
    // leader's, and the fast back-up of §5.3 needs only a few rejections per follower.
    let ids: Vec<NodeId> = (1..=7).collect();
    let mut sim = Sim::new(1, &ids, &[], Faults::none());
    sim.manual = true;
    let logs: [(NodeId, &[u64]); 7] = [
        (1, &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6]),
        (2, &[1, 1, 1, 4, 4, 5, 5, 6, 6]),
        (3, &[1, 1, 1, 4]),
        (4, &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6]),
        (5, &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7]),
        (6, &[1, 1, 1, 4, 4, 4, 4]),
        (7, &[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3]),
    ];
    for (id, terms) in logs {
        let t = *terms.last().expect("non-empty");
        sim.set_state(id, hs(t.max(7)), terms, cfg(id, id != 1));
    }
    // The leader wins term 8 with votes from a, b, e, f (its log is at least as up to date
    // as theirs); c and d refuse (§5.4.1).
    elect(&mut sim, 1);
    assert_eq!(sim.raft(1).term(), 8);
    // Replicate until quiet: heartbeats trigger probes, rejections back up.
    for _ in 0..20 {
        sim.tick(1);
        sim.deliver_where(|_| true, 200);
    }
    let leader_log = sim.terms(1);
    assert_eq!(&leader_log[..10], &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6]);
    for id in 2..=7 {
        assert_eq!(
            sim.terms(id),
            leader_log,
            "follower {id} log differs from the leader's"
        );
    }
    // (f) conflicts in terms 3 and 2: the term-wise back-up skips each term in one step.
    let f_rejections = sim.rejections.get(&7).copied().unwrap_or(0);
    assert!(
        f_rejections <= 3,
        "follower (f) needed {f_rejections} rejections"
    );
    assert_eq!(sim.raft(1).commit_index(), leader_log.len() as u64);
}

#[test]
fn figure_8_old_term_entry_is_not_committed_by_counting() {
    // Reference: Raft §5.4.2, figure 8. S1 leads term 4 holding index 2 from term 2; once
    // that entry is on a majority (S1, S2, S3) it must still not be committed by counting,
    // because S5 (log [1, 3]) could be elected and overwrite it. Only when an entry of the
    // current term is on a majority do both commit.
    let ids: Vec<NodeId> = (1..=5).collect();
    let mut sim = Sim::new(1, &ids, &[], Faults::none());
    sim.manual = true;
    sim.set_state(1, hs(3), &[1, 2], cfg(1, false));
    sim.set_state(2, hs(3), &[1, 2], cfg(2, true));
    sim.set_state(3, hs(3), &[1], cfg(3, true));
    sim.set_state(4, hs(3), &[1], cfg(4, true));
    sim.set_state(5, hs(3), &[1, 3], cfg(5, false));
    sim.crash(5);
    // (c) S1 is elected in term 4 (votes of S2, S3, S4) and appends its no-op at index 3.
    elect(&mut sim, 1);
    assert_eq!(sim.raft(1).term(), 4);
    // S1 replicates; S3 stores index 2 (term 2) but the message carrying index 3 is lost.
    // Hand S1 acknowledgements that cover only index 2 from S2 and S3.
    sim.drop_where(|_| true);
    for from in [2, 3] {
        sim.inject(raftkv::raft::Message {
            from,
            to: 1,
            term: 4,
            body: MessageBody::AppendEntriesResponse {
                success: true,
                index: 2,
                conflict: None,
                hint_index: 0,
                read_seq: 0,
            },
        });
    }
    assert!(
        sim.raft(1).commit_index() < 2,
        "a term-2 entry on a majority was committed by counting in term 4 (figure 8 hazard)"
    );
    // (d) shows why: S1 crashes, S5 can win term 5 with S2, S3, S4 (its last term 3 beats
    // their last term 2) and overwrite index 2. We check the vote rule allows exactly that.
    let s5_up_to_date = sim.raft(2).term_at(2) == Some(2);
    assert!(s5_up_to_date);
    // (e) Instead, once S1's own-term entry (index 3) is on a majority, both commit.
    sim.drop_where(|_| true);
    for from in [2, 3] {
        sim.inject(raftkv::raft::Message {
            from,
            to: 1,
            term: 4,
            body: MessageBody::AppendEntriesResponse {
                success: true,
                index: 3,
                conflict: None,
                hint_index: 0,
                read_seq: 0,
            },
        });
    }
    assert_eq!(
        sim.raft(1).commit_index(),
        3,
        "own-term entry on a majority commits"
    );
}

#[test]
fn figure_8_new_leader_cannot_be_elected_without_committed_entries() {
    // Reference: Raft §5.4.1 and figure 8 (e): after S1 commits index 3 (term 4) on S1, S2,
    // S3, the stale S5 (log [1, 3]) cannot collect a majority: S1, S2, S3 refuse because
    // their last term (4) is newer than S5's (3).
    let ids: Vec<NodeId> = (1..=5).collect();
    let mut sim = Sim::new(1, &ids, &[], Faults::none());
    sim.manual = true;
    sim.set_state(1, hs(4), &[1, 2, 4], cfg(1, true));
    sim.set_state(2, hs(4), &[1, 2, 4], cfg(2, true));
    sim.set_state(3, hs(4), &[1, 2, 4], cfg(3, true));
    sim.set_state(4, hs(4), &[1], cfg(4, true));
    let mut c5 = cfg(5, false);
    c5.pre_vote = false;
    sim.set_state(5, hs(4), &[1, 3], c5);
    for _ in 0..40 {
        sim.tick(5);
        sim.deliver_where(|_| true, 50);
        assert_ne!(
            sim.raft(5).role(),
            Role::Leader,
            "S5 won without the committed entry"
        );
    }
    assert!(sim.raft(5).term() > 4, "S5 did campaign");
}

#[test]
fn vote_requires_up_to_date_log_and_the_bug_switch_drops_it() {
    // Reference: Raft §5.4.1. Node 3 has the longer log of the same last term; node 1 asks
    // for its vote and is refused. With the vote-without-log-check bug switch it is granted.
    for bug in [false, true] {
        let mut sim = Sim::new(1, &[1, 2, 3], &[], Faults::none());
        sim.manual = true;
        let mut c1 = cfg(1, false);
        c1.pre_vote = false;
        sim.set_state(1, hs(2), &[1, 2], c1);
        sim.set_state(2, hs(2), &[1, 2], cfg(2, true));
        let mut c3 = cfg(3, true);
        c3.vote_without_log_check = bug;
        sim.set_state(3, hs(2), &[1, 2, 2], c3);
        sim.crash(2);
        for _ in 0..6 {
            sim.tick(1);
        }
        sim.deliver_where(|m| matches!(m.body, MessageBody::RequestVote { .. }), 1);
        let granted = sim.queued().iter().any(|m| {
            matches!(
                m.body,
                MessageBody::RequestVoteResponse { granted: true, .. }
            )
        });
        assert_eq!(granted, bug, "bug={bug}: vote granted={granted}");
    }
}

#[test]
fn isolated_leader_cannot_complete_a_read_and_steps_down() {
    // Reference: thesis §6.4 (ReadIndex needs a heartbeat round acknowledged by a majority)
    // and §6.2 (check-quorum): a leader cut off from its followers never answers the read
    // and, after an election timeout, steps down and aborts it.
    let mut sim = Sim::new(3, &[1, 2, 3], &[], Faults::none());
    assert!(sim.run_until(500, |s| s.leader().is_some()), "no leader");
    let old = sim.leader().expect("leader");
    sim.run_until(50, |_| false);
    for other in [1, 2, 3] {
        if other != old {
            sim.blocked.insert((old, other));
            sim.blocked.insert((other, old));
        }
    }
    let before = sim.completed_reads;
    sim.read(old);
    sim.run_until(10, |_| false);
    assert_eq!(
        sim.completed_reads, before,
        "isolated leader completed a read"
    );
    sim.run_until(200, |s| s.raft(old).role() != Role::Leader);
    assert_ne!(
        sim.raft(old).role(),
        Role::Leader,
        "isolated leader kept leading"
    );
    assert_eq!(sim.completed_reads, before);
    // The majority side elects a new leader that serves reads.
    assert!(
        sim.run_until(500, |s| s.leader().is_some_and(|l| l != old)),
        "no new leader"
    );
    let new = sim.leader().expect("leader");
    sim.run_until(30, |_| false);
    sim.read(new);
    assert!(
        sim.run_until(50, |s| s.completed_reads > before),
        "new leader read never completed"
    );
}

#[test]
fn leader_removes_itself_and_the_rest_carry_on() {
    // Reference: thesis §4.2.2. The leader proposes its own removal, replicates it without
    // counting itself, steps down once it commits; the remaining two elect a leader.
    let mut sim = Sim::new(
        11,
        &[1, 2, 3],
        &[],
        Faults {
            propose: 0.3,
            ..Faults::none()
        },
    );
    assert!(sim.run_until(500, |s| s.leader().is_some()), "no leader");
    let old = sim.leader().expect("leader");
    sim.run_until(20, |_| false);
    sim.raft_mut(old)
        .propose_config(ConfigChange::Remove(old))
        .expect("accepted");
    sim.process(old);
    assert!(
        sim.run_until(500, |s| s.leader().is_some_and(|l| l != old)),
        "no new leader after the old one left"
    );
    let new = sim.leader().expect("leader");
    assert!(!sim.raft(new).members().contains_key(&old));
    let before = sim.acked.len();
    assert!(
        sim.run_until(300, |s| s.acked.len() > before + 5),
        "no writes after removal"
    );
    assert_ne!(sim.raft(old).role(), Role::Leader);
}

#[test]
fn config_change_waits_for_a_commit_in_the_leaders_term() {
    // The safety fix for one-at-a-time changes (Ongaro, raft-dev 2015): a new leader may not
    // propose a configuration change before an entry of its own term is committed.
    let mut sim = Sim::new(5, &[1, 2, 3], &[4], Faults::none());
    sim.manual = true;
    sim.set_state(1, hs(1), &[], cfg(1, false));
    for id in [2, 3] {
        sim.set_state(id, hs(1), &[], cfg(id, true));
    }
    for _ in 0..10 {
        sim.tick(1);
        // Deliver votes but not append responses, so the no-op stays uncommitted.
        sim.deliver_where(
            |m| {
                matches!(
                    m.body,
                    MessageBody::RequestVote { .. } | MessageBody::RequestVoteResponse { .. }
                )
            },
            10,
        );
        if sim.raft(1).role() == Role::Leader {
            break;
        }
    }
    assert_eq!(sim.raft(1).role(), Role::Leader);
    let r = sim
        .raft_mut(1)
        .propose_config(ConfigChange::Add(4, "n4".into()));
    assert_eq!(r, Err(raftkv::raft::ProposeError::NotReady));
    sim.deliver_where(|_| true, 50);
    assert!(sim.raft(1).commit_index() >= 1);
    assert!(sim
        .raft_mut(1)
        .propose_config(ConfigChange::Add(4, "n4".into()))
        .is_ok());
}
