//! The in-memory view of the replicated log: a snapshot boundary followed by entries, plus the
//! commit index and how far committed entries have been handed out for applying.
//!
//! The storage layer holds the durable copy; the core keeps this one so that it can answer
//! consistency checks and build AppendEntries without I/O.

use super::types::{Entry, EntryData, Index, Members, Term};

/// The log as the core sees it.
#[derive(Clone, Debug)]
pub(crate) struct RaftLog {
    /// Index of the last entry covered by the snapshot (0 when there is none).
    pub snapshot_index: Index,
    /// Term of that entry (0 when there is none).
    pub snapshot_term: Term,
    /// Entries `snapshot_index + 1 ..`, contiguous.
    pub entries: Vec<Entry>,
    /// Highest index known to be committed (volatile, Raft figure 2).
    pub committed: Index,
    /// Highest index already handed to the application for applying.
    pub handed_out: Index,
}

impl RaftLog {
    /// A log restored from a snapshot boundary and the entries after it.
    pub fn new(snapshot_index: Index, snapshot_term: Term, entries: Vec<Entry>) -> Self {
        RaftLog {
            snapshot_index,
            snapshot_term,
            entries,
            committed: snapshot_index,
            handed_out: snapshot_index,
        }
    }

    /// Index of the last entry (or of the snapshot boundary when no entries follow it).
    pub fn last_index(&self) -> Index {
        self.snapshot_index + self.entries.len() as Index
    }

    /// Term of the last entry (or of the snapshot boundary).
    pub fn last_term(&self) -> Term {
        self.entries.last().map_or(self.snapshot_term, |e| e.term)
    }

    /// First index still held as an entry.
    pub fn first_index(&self) -> Index {
        self.snapshot_index + 1
    }

    /// The term at `index`, if this log knows it (the snapshot boundary counts).
    pub fn term(&self, index: Index) -> Option<Term> {
        if index == self.snapshot_index {
            return Some(self.snapshot_term);
        }
        self.entry(index).map(|e| e.term)
    }

    /// The entry at `index`, if held.
    pub fn entry(&self, index: Index) -> Option<&Entry> {
        if index <= self.snapshot_index {
            return None;
        }
        self.entries.get((index - self.snapshot_index - 1) as usize)
    }

    /// Entries `from ..= to`, at most `max` of them; empty if `from` is compacted.
    pub fn slice(&self, from: Index, to: Index, max: usize) -> Vec<Entry> {
        if from <= self.snapshot_index || from > to {
            return Vec::new();
        }
        let lo = (from - self.snapshot_index - 1) as usize;
        let hi = ((to - self.snapshot_index) as usize).min(self.entries.len());
        if lo >= hi {
            return Vec::new();
        }
        self.entries[lo..hi.min(lo.saturating_add(max))].to_vec()
    }

    /// Whether a candidate whose log ends at (`last_term`, `last_index`) is at least as up to
    /// date as this log (Raft §5.4.1: compare last terms, then lengths).
    pub fn is_up_to_date(&self, last_index: Index, last_term: Term) -> bool {
        last_term > self.last_term()
            || (last_term == self.last_term() && last_index >= self.last_index())
    }

    /// Delete every entry from `index` on (the conflicting suffix, §5.3).
    pub fn truncate_from(&mut self, index: Index) {
        if index <= self.snapshot_index {
            self.entries.clear();
            return;
        }
        let keep = (index - self.snapshot_index - 1) as usize;
        self.entries.truncate(keep);
    }

    /// The first index of the run of entries with the same term as `index`, not going below
    /// the first held entry: the fast back-up hint for the leader.
    pub fn first_index_of_term_at(&self, index: Index) -> Index {
        let Some(term) = self.term(index) else {
            return index;
        };
        let mut i = index;
        while i > self.first_index() && self.term(i - 1) == Some(term) {
            i -= 1;
        }
        i
    }

    /// The highest index holding an entry of `term`, if any (leader side of fast back-up).
    pub fn last_index_of_term(&self, term: Term) -> Option<Index> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.term == term)
            .map(|e| e.index)
            .or((self.snapshot_term == term && self.snapshot_index > 0)
                .then_some(self.snapshot_index))
    }

    /// The latest configuration entry at or below `index`, with its index.
    pub fn last_config_at_or_below(&self, index: Index) -> Option<(Index, Members)> {
        self.entries.iter().rev().find_map(|e| match &e.data {
            EntryData::Config(m) if e.index <= index => Some((e.index, m.clone())),
            _ => None,
        })
    }

    /// Drop entries up to and including `index`, which becomes the snapshot boundary.
    pub fn compact_to(&mut self, index: Index, term: Term) {
        if index <= self.snapshot_index {
            return;
        }
        if index >= self.last_index() {
            self.entries.clear();
        } else {
            let drop = (index - self.snapshot_index) as usize;
            self.entries.drain(..drop);
        }
        self.snapshot_index = index;
        self.snapshot_term = term;
        self.committed = self.committed.max(index);
        self.handed_out = self.handed_out.max(index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_of(terms: &[Term]) -> RaftLog {
        let entries = terms
            .iter()
            .enumerate()
            .map(|(i, &t)| Entry {
                term: t,
                index: i as Index + 1,
                data: EntryData::Noop,
            })
            .collect();
        RaftLog::new(0, 0, entries)
    }

    #[test]
    fn up_to_date_compares_last_term_then_length() {
        // Reference: Raft §5.4.1, "If the logs have last entries with different terms, then
        // the log with the later term is more up-to-date. If the logs end with the same term,
        // then whichever log is longer is more up-to-date."
        let log = log_of(&[1, 1, 2]);
        assert!(
            log.is_up_to_date(1, 3),
            "later last term wins even if shorter"
        );
        assert!(
            !log.is_up_to_date(5, 1),
            "earlier last term loses even if longer"
        );
        assert!(log.is_up_to_date(3, 2), "same term, same length");
        assert!(!log.is_up_to_date(2, 2), "same term, shorter");
    }

    #[test]
    fn compaction_keeps_terms_at_the_boundary() {
        let mut log = log_of(&[1, 1, 2, 3]);
        log.compact_to(2, 1);
        assert_eq!(log.term(2), Some(1));
        assert_eq!(log.term(1), None);
        assert_eq!(log.last_index(), 4);
        assert_eq!(log.slice(3, 4, 10).len(), 2);
        assert_eq!(log.first_index_of_term_at(4), 4);
        assert_eq!(log.last_index_of_term(1), Some(2));
    }
}
