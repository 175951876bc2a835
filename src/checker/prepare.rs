//! From a partition's operations to a search problem: interning, pruning and settling.
//!
//! The search (Wing–Gong/Lowe) is exponential in the number of operations that may linearize in
//! many places. Operations whose outcome is unknown (`info`) are the worst: they stay pending
//! until the end of the history. This module removes or pins down everything it can *prove*
//! does not change the verdict, and each rule below says why it is sound. Every rule is
//! cross-checked against a brute-force checker in `tests/brute_force.rs`.
//!
//! 1. A `fail` op (other than a mismatched cas) certainly changed nothing and observed nothing:
//!    dropped.
//! 2. An `info` read has no effect and its result is unknown: dropped. A linearization of the
//!    rest extends to one with the read placed anywhere (a read changes no state), so nothing is
//!    lost.
//! 3. Settling an observed unknown write. Let `w` be an info write, info cas or info append whose
//!    written value `v` no other operation writes (and which is not null, the initial state).
//!    If some `ok` operation observed `v` (a read returning `v`, a cas that succeeded from `v`,
//!    a list read containing `v`), then in every linearization `w` took effect, and before that
//!    observer linearized, hence before the observer returned. So `w` is treated as completed
//!    at the earliest such return (placed just before it) and must succeed: a cas so settled
//!    must find its expected value. Conversely every linearization of the settled history is one
//!    of the original (its intervals are narrower), so the verdict is unchanged.
//! 4. Dropping an unobserved unknown write. Let `w` write a value `v` (unique, as above) that no
//!    operation observes: no read returns it, no cas (ok or info) expects it, no list read holds
//!    it. Take any linearization where `w` took effect at point p, and let q be the next op that
//!    changes the state. Between p and q the state is `v`; no read or successful cas can sit
//!    there (they would observe `v`); an info cas there did nothing and can be moved to "never";
//!    so only a mismatched cas could sit there, and removing `w` could make its compare succeed.
//!    Hence `w` is dropped only when no mismatched cas on its key can linearize after it, i.e.
//!    none returns after `w` was invoked. (The history "write 1 ok, write 2 info, cas 1->3
//!    mismatch, write 4 ok, read 4" is valid only through the unobserved write 2, and is kept.)
//!    For list-append no such caveat exists: every read after an append would contain it.
//!
//! Everything left that is still `info` may linearize anywhere after its invocation or never; in
//! the search it has no return event, and the search succeeds once every completed op is placed.

use super::model::{Action, Model, Space};
use crate::history::{Fun, Op, Outcome};
use rustc_hash::FxHashMap as HashMap;

/// One operation as the search sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SOp {
    /// Index into the partition's op list (and from there to the history).
    pub orig: usize,
    /// Which key of the partition it touches (always 0 when split per key).
    pub slot: usize,
    /// Its effect on the key's state, with values interned into [`Space`] ids.
    pub action: Action,
    /// True for an op whose outcome is unknown and that may never take effect.
    pub pending: bool,
}

/// A boundary of an operation's interval, in real-time order.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    /// The op's search id: an index into [`Problem::ops`].
    pub op: u32,
    /// Call (true) or return (false).
    pub call: bool,
}

/// Everything the search needs for one partition.
pub(crate) struct Problem {
    /// Ops by search id: completed (or settled) ops first, `0..n_finite`, then pending ones.
    pub ops: Vec<SOp>,
    /// Number of ops that must be linearized.
    pub n_finite: usize,
    /// Call and return entries in real-time order.
    pub entries: Vec<Entry>,
    /// Interned values and states.
    pub space: Space,
    /// How many ops the rules removed (fail, info reads, unobserved unknown writes).
    pub dropped: usize,
    /// How many unknown writes were settled by rule 3.
    pub settled: usize,
}

/// Build the search problem for `ops` (all ops of one partition, any order).
pub(crate) fn prepare(ops: &[&Op], model: Model) -> Problem {
    // Keys of this partition, in first-seen order.
    let mut slots: HashMap<Option<&str>, usize> = HashMap::default();
    for o in ops {
        let n = slots.len();
        slots.entry(o.key.as_deref()).or_insert(n);
    }
    let mut space = Space::new(slots.len());
    let list = model == Model::ListAppend;

    struct Cand {
        orig: usize,
        slot: usize,
        action: Action,
        info: bool,
        call: usize,
        /// Return position times two (+1 for a normal return; settled returns sort before).
        ret2: Option<usize>,
    }
    let mut cands: Vec<Cand> = Vec::with_capacity(ops.len());
    let mut dropped = 0;
    for (i, o) in ops.iter().enumerate() {
        let slot = slots[&o.key.as_deref()];
        let info = o.outcome == Outcome::Info;
        let action = match (o.f, o.outcome) {
            (_, Outcome::Fail) | (Fun::Read, Outcome::Info) => None,
            (Fun::Read, _) if list => Some(Action::ReadList(match o.value.as_array() {
                Some(items) => space.list(items),
                None => 0,
            })),
            (Fun::Read, _) => Some(Action::Read(space.value(&o.value))),
            (Fun::Write, _) => Some(Action::Write(space.value(&o.value))),
            (Fun::Append, _) => Some(Action::Append(space.value(&o.value))),
            (Fun::Cas, outcome) => {
                let (from, to) = match o.value.as_array().map(|a| a.as_slice()) {
                    Some([a, b]) => (space.value(a), space.value(b)),
                    _ => (0, 0),
                };
                Some(if outcome == Outcome::Mismatch {
                    Action::Mismatch { from }
                } else {
                    Action::Cas { from, to }
                })
            }
        };
        let Some(action) = action else {
            dropped += 1;
            continue;
        };
        cands.push(Cand {
            orig: i,
            slot,
            action,
            info,
            call: o.call,
            ret2: if info { None } else { o.ret.map(|r| 2 * r + 1) },
        });
    }

    // Facts per (slot, value): how many ops write it, the earliest return of an ok op that
    // observed it, and whether any op at all (ok or info) could observe it.
    #[derive(Default)]
    struct Facts {
        writers: u32,
        first_ok_observer_ret: Option<usize>,
        observed: bool,
    }
    let mut facts: HashMap<(usize, u32), Facts> = HashMap::default();
    let mut last_mismatch_ret: HashMap<usize, usize> = HashMap::default();
    let observe = |facts: &mut HashMap<(usize, u32), Facts>, slot, v, ok_ret: Option<usize>| {
        let f = facts.entry((slot, v)).or_default();
        f.observed = true;
        if let Some(r) = ok_ret {
            f.first_ok_observer_ret = Some(f.first_ok_observer_ret.map_or(r, |x: usize| x.min(r)));
        }
    };
    for c in &cands {
        let ok_ret = if c.info { None } else { c.ret2 };
        if let Some(v) = c.action.written() {
            facts.entry((c.slot, v)).or_default().writers += 1;
        }
        match c.action {
            Action::Read(v) => observe(&mut facts, c.slot, v, ok_ret),
            Action::Cas { from, .. } => observe(&mut facts, c.slot, from, ok_ret),
            Action::ReadList(node) => {
                // Every element of the list read was observed by this read.
                for e in space.list_elems(node) {
                    observe(&mut facts, c.slot, e, ok_ret);
                }
            }
            Action::Mismatch { .. } => {
                let r = c.ret2.unwrap_or(usize::MAX);
                let m = last_mismatch_ret.entry(c.slot).or_insert(0);
                *m = (*m).max(r);
            }
            _ => {}
        }
    }

    // Apply rules 3 and 4 to unknown writes.
    let mut settled = 0;
    let mut keep: Vec<Cand> = Vec::with_capacity(cands.len());
    for mut c in cands {
        if c.info {
            if let Some(v) = c.action.written().filter(|&v| v != 0) {
                let f = &facts[&(c.slot, v)];
                if f.writers == 1 {
                    match f.first_ok_observer_ret {
                        // Rule 3; the observer must have returned after w was invoked, else
                        // it saw v before anyone could write it and the search will say so.
                        Some(r) if r > 2 * c.call + 1 => {
                            c.info = false;
                            c.ret2 = Some(r - 1);
                            settled += 1;
                        }
                        _ if !f.observed => {
                            let mismatch_after = last_mismatch_ret
                                .get(&c.slot)
                                .is_some_and(|&r| r > 2 * c.call + 1);
                            if list || !mismatch_after {
                                dropped += 1;
                                continue; // Rule 4.
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        keep.push(c);
    }

    // Search ids: finite ops first by call order, then pending ones.
    keep.sort_by_key(|c| (c.info, c.call));
    let n_finite = keep.iter().filter(|c| !c.info).count();
    let mut entries: Vec<(usize, Entry)> = Vec::with_capacity(keep.len() * 2);
    let mut sops = Vec::with_capacity(keep.len());
    for (id, c) in keep.iter().enumerate() {
        entries.push((
            2 * c.call + 1,
            Entry {
                op: id as u32,
                call: true,
            },
        ));
        if !c.info {
            let r = c.ret2.unwrap_or(usize::MAX);
            entries.push((
                r,
                Entry {
                    op: id as u32,
                    call: false,
                },
            ));
        }
        sops.push(SOp {
            orig: c.orig,
            slot: c.slot,
            action: c.action,
            pending: c.info,
        });
    }
    entries.sort_by_key(|(k, e)| (*k, e.call));
    Problem {
        ops: sops,
        n_finite,
        entries: entries.into_iter().map(|(_, e)| e).collect(),
        space,
        dropped,
        settled,
    }
}
