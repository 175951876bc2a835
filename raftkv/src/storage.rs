//! Durable Raft state in a data directory: the write-ahead log (`wal`) and the latest
//! snapshot (`snapshot`).
//!
//! `wal` is a sequence of records, each `[len u32][header crc u32][payload crc u32][payload]`
//! (little endian, CRC-32 from `crc32fast`), the payload a JSON [`WalRecord`]. Term/vote
//! changes, truncations and entries are appended in the order the core produced them and
//! replayed in that order on load; a [`Ready`] is written with one `write` and one fsync
//! before any of its messages is sent.
//!
//! Crash handling on load: a record cut short by the end of the file, or a last record whose
//! tail is still zero-filled, is a torn write from a crash and is truncated away with a
//! warning (it was never acknowledged: acknowledgement waits for the fsync). Any other bad
//! record, including a complete last record with a wrong checksum, is corruption, and the
//! server refuses to start, naming the file and offset.
//!
//! `snapshot` is written as `snapshot.tmp`, fsynced, renamed over, and the directory fsynced,
//! so a crash leaves either the old or the new snapshot, never half of one. After a snapshot
//! the log is rewritten the same way (`wal.tmp` → `wal`) without the compacted prefix.
//!
//! Three bug switches weaken this ([`Durability`]); none of them shows after a SIGKILL,
//! because the page cache survives a killed process, only a lost disk cache or a damaged
//! disk tells:
//! - `ack-before-fsync`: a Ready is only written; a background thread fsyncs the current log
//!   file every interval (as NATS JetStream does by default), so whatever was acknowledged
//!   since the last tick dies with a power loss. The rare snapshot and log rewrites stay
//!   fsynced.
//! - `no-dir-fsync`: the directory is never fsynced, so a power loss can undo the creation of
//!   `wal` or the renames of a compaction.
//! - `ignore-checksum`: loading trusts the length fields alone: a record with a wrong
//!   checksum is used if it decodes, and one that does not decode becomes a no-op entry, so a
//!   flipped bit makes this node's log differ from the others'.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::raft::{Entry, EntryData, HardState, Index, Ready, Snapshot, Term};

/// Largest record accepted on load; larger means a corrupted length field.
const MAX_RECORD: u32 = 256 * 1024 * 1024;
const HEADER: usize = 12;

/// One record of the write-ahead log.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum WalRecord {
    /// New term and vote.
    HardState(HardState),
    /// Delete entries from this index on.
    Truncate(Index),
    /// A log entry; on replay it replaces any entry at its index or later, and must directly follow
    /// the one before it.
    Entry(Entry),
}

/// How carefully [`Storage`] makes state durable and checks it when loading. The storage bug
/// switches live here rather than in the node, so that unit tests can drive each one against
/// a real directory; [`Durability::default`] is the correct server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Durability {
    /// BUG SWITCH `forget-vote`: never write term and vote.
    pub forget_vote: bool,
    /// BUG SWITCH `ack-before-fsync` when `Some`: a persist only writes the log, and a
    /// background thread fsyncs it this often, so replies and votes no longer wait for the disk.
    /// `None` (correct): every persist fsyncs before it returns.
    pub fsync_interval: Option<Duration>,
    /// `false` under BUG SWITCH `no-dir-fsync`: the data directory is never fsynced, so the
    /// creation of `wal` and the renames of a compaction are not durable across a power loss.
    pub dir_fsync: bool,
    /// `false` under BUG SWITCH `ignore-checksum`: records are loaded by their length fields
    /// alone, whatever their checksums say.
    pub check_checksums: bool,
}

impl Default for Durability {
    fn default() -> Self {
        Durability {
            forget_vote: false,
            fsync_interval: None,
            dir_fsync: true,
            check_checksums: true,
        }
    }
}

/// Why the durable state could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The file system refused an operation.
    #[error("{path}: {source}")]
    Io {
        /// File or directory concerned.
        path: PathBuf,
        /// The OS error for that path (e.g. no space left, permission denied).
        source: io::Error,
    },
    /// A record in the middle of a file is damaged: starting anyway could lose or invent
    /// acknowledged writes, so the server refuses.
    #[error("{path}: corrupt record at byte offset {offset}: {reason}; refusing to start")]
    Corrupt {
        /// The damaged file, `wal` or `snapshot`, in the data directory.
        path: PathBuf,
        /// Byte offset of the bad record.
        offset: u64,
        /// What the check found: a checksum mismatch, a record that does not decode, entries out of
        /// sequence.
        reason: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What was on disk at startup.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    /// Last persisted term and vote.
    pub hard_state: HardState,
    /// The snapshot file's contents, `None` if none was ever taken; `entries` start right after its
    /// index (older ones are dropped on load).
    pub snapshot: Option<Snapshot>,
    /// Entries after the snapshot.
    pub entries: Vec<Entry>,
    /// Bytes cut from a torn tail, if any (reported in the log).
    pub torn_bytes: u64,
    /// Damaged records loaded anyway, in file order; only the `ignore-checksum` bug produces
    /// any (the correct server refuses to start instead). Each is reported in the log, so a
    /// run's node log shows where the divergence came from.
    pub ignored_damage: Vec<IgnoredDamage>,
}

/// A record that failed a check on load and was used (or skipped) anyway, under the
/// `ignore-checksum` bug.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IgnoredDamage {
    /// `wal` or `snapshot`.
    pub file: &'static str,
    /// Byte offset of the record in that file.
    pub offset: u64,
    /// What was wrong and what was made of it, e.g. "checksum mismatch; used as decoded".
    pub what: String,
}

/// How many fsyncs the storage issued, by kind; tests use them to tell an fsync that was
/// skipped from one that happened (the file contents cannot show the difference).
#[derive(Debug, Default)]
struct SyncCounts {
    /// `sync_data` calls on the log file (on persist, or from the `ack-before-fsync` timer).
    wal: AtomicU64,
    /// fsyncs of the data directory.
    dir: AtomicU64,
}

/// The open data directory.
pub struct Storage {
    /// The node's `--data-dir`, holding `wal` and `snapshot`; fsynced after every rename in it.
    dir: PathBuf,
    /// The log file, opened for appending; shared with the `ack-before-fsync` timer thread,
    /// which must sync the current file after a compaction replaced it.
    wal: Arc<Mutex<File>>,
    /// What to skip, for the storage bug switches.
    durability: Durability,
    /// Reused encoding buffer, so a batch costs one allocation-free write.
    buf: Vec<u8>,
    /// The latest hard state handed to us, rewritten into every new log file.
    hard_state: HardState,
    /// fsyncs issued so far.
    syncs: Arc<SyncCounts>,
    /// Under `ack-before-fsync`: dropping it (with the Storage) disconnects the timer thread's
    /// channel, which ends the thread at its next wait rather than leaving it to run forever.
    _stop_timer: Option<mpsc::Sender<()>>,
}

fn encode(buf: &mut Vec<u8>, rec: &WalRecord) {
    let payload = serde_json::to_vec(rec).expect("WalRecord always serializes");
    let len = (payload.len() as u32).to_le_bytes();
    buf.extend_from_slice(&len);
    buf.extend_from_slice(&crc32fast::hash(&len).to_le_bytes());
    buf.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    buf.extend_from_slice(&payload);
}

/// The file lock, even if a thread panicked holding it: a `File` has no invariant to break.
fn lock(wal: &Mutex<File>) -> MutexGuard<'_, File> {
    wal.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Start the `ack-before-fsync` timer: every `every`, fsync whatever file `wal` holds then.
/// It syncs a duplicate of the handle so that a persist never waits for the timer, and it
/// ends once `Storage` drops the returned sender.
fn spawn_fsync_timer(
    wal: Arc<Mutex<File>>,
    path: PathBuf,
    every: Duration,
    syncs: Arc<SyncCounts>,
) -> io::Result<mpsc::Sender<()>> {
    let (stop, stopped) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("wal-fsync-timer".into())
        .spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                let synced = lock(&wal).try_clone().and_then(|f| f.sync_data());
                syncs.wal.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = synced {
                    // Keep going, like a server that fsyncs in the background: the next
                    // tick may succeed, and nothing waits for this one.
                    tracing::error!(path = %path.display(), "periodic fsync of the log failed: {e}");
                }
            }
        })?;
    Ok(stop)
}

impl Storage {
    /// Open (creating if needed) the data directory and load what it holds.
    pub fn open(dir: &Path, durability: Durability) -> Result<(Storage, Loaded), StorageError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut ignored_damage = Vec::new();
        let snapshot = load_snapshot(dir, durability.check_checksums, &mut ignored_damage)?;
        let wal_path = dir.join("wal");
        let mut loaded = Loaded {
            snapshot,
            ignored_damage,
            ..Default::default()
        };
        if wal_path.exists() {
            load_wal(&wal_path, &mut loaded, durability.check_checksums)?;
        }
        let snap_index = loaded.snapshot.as_ref().map_or(0, |s| s.last_index);
        loaded.entries.retain(|e| e.index > snap_index);
        if let Some(first) = loaded.entries.first() {
            if first.index != snap_index + 1 {
                return Err(StorageError::Corrupt {
                    path: wal_path,
                    offset: 0,
                    reason: format!(
                        "log starts at index {} but the snapshot ends at {snap_index}",
                        first.index
                    ),
                });
            }
        }
        let wal = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&wal_path)
            .map_err(io_err(&wal_path))?;
        let hard_state = loaded.hard_state.clone();
        let mut storage = Storage {
            dir: dir.to_path_buf(),
            wal: Arc::new(Mutex::new(wal)),
            durability,
            buf: Vec::new(),
            hard_state,
            syncs: Arc::default(),
            _stop_timer: None,
        };
        storage.fsync_dir()?;
        if let Some(every) = durability.fsync_interval {
            let stop = spawn_fsync_timer(
                storage.wal.clone(),
                wal_path.clone(),
                every,
                storage.syncs.clone(),
            )
            .map_err(io_err(&wal_path))?;
            storage._stop_timer = Some(stop);
        }
        Ok((storage, loaded))
    }

    /// Make a [`Ready`]'s snapshot, hard state and entries durable (one fsync for the log;
    /// only written, under `ack-before-fsync`). Must return before any of the Ready's messages
    /// is sent.
    pub fn persist(&mut self, rd: &Ready) -> Result<(), StorageError> {
        if let Some(hs) = &rd.hard_state {
            self.hard_state = hs.clone();
        }
        if let Some(snap) = &rd.snapshot {
            self.save_snapshot(snap)?;
            // The snapshot replaces the whole log; keep only the current hard state.
            self.rewrite_wal(&[])?;
        } else if let Some(hs) = &rd.hard_state {
            if !self.durability.forget_vote {
                encode(&mut self.buf, &WalRecord::HardState(hs.clone()));
            }
        }
        if let Some(from) = rd.truncate_from {
            encode(&mut self.buf, &WalRecord::Truncate(from));
        }
        for e in &rd.entries {
            encode(&mut self.buf, &WalRecord::Entry(e.clone()));
        }
        self.flush()
    }

    /// After the application took a snapshot: store it atomically, then rewrite the log
    /// without the compacted prefix (also atomically).
    pub fn compact(&mut self, snap: &Snapshot, rest: &[Entry]) -> Result<(), StorageError> {
        self.save_snapshot(snap)?;
        self.rewrite_wal(rest)
    }

    fn flush(&mut self) -> Result<(), StorageError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let path = self.dir.join("wal");
        let mut wal = lock(&self.wal);
        wal.write_all(&self.buf).map_err(io_err(&path))?;
        self.buf.clear();
        if self.durability.fsync_interval.is_some() {
            // BUG SWITCH ack-before-fsync: the timer thread will sync it, some time later.
            return Ok(());
        }
        wal.sync_data().map_err(io_err(&path))?;
        self.syncs.wal.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// fsync the data directory, so that a file created or renamed in it survives a power loss.
    fn fsync_dir(&self) -> Result<(), StorageError> {
        if !self.durability.dir_fsync {
            // BUG SWITCH no-dir-fsync.
            return Ok(());
        }
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&self.dir))?;
        self.syncs.dir.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Write `bytes` to `dir/name` atomically: tmp file, fsync, rename, fsync the directory.
    /// The file fsync stays even under `ack-before-fsync`: these writes are rare (one per
    /// snapshot), and the bug is about the per-request path.
    fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
        let tmp = self.dir.join(format!("{name}.tmp"));
        let dst = self.dir.join(name);
        let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(bytes).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
        fs::rename(&tmp, &dst).map_err(io_err(&dst))?;
        self.fsync_dir()
    }

    fn save_snapshot(&mut self, snap: &Snapshot) -> Result<(), StorageError> {
        let payload = serde_json::to_vec(snap).expect("Snapshot always serializes");
        let mut bytes = Vec::with_capacity(payload.len() + 8);
        bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        bytes.extend_from_slice(&payload);
        self.write_atomic("snapshot", &bytes)
    }

    fn rewrite_wal(&mut self, rest: &[Entry]) -> Result<(), StorageError> {
        let mut bytes = Vec::new();
        if !self.durability.forget_vote {
            encode(&mut bytes, &WalRecord::HardState(self.hard_state.clone()));
        }
        for e in rest {
            encode(&mut bytes, &WalRecord::Entry(e.clone()));
        }
        self.write_atomic("wal", &bytes)?;
        let path = self.dir.join("wal");
        *lock(&self.wal) = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        Ok(())
    }

    /// `sync_data` calls on the log so far.
    #[cfg(test)]
    fn wal_syncs(&self) -> u64 {
        self.syncs.wal.load(Ordering::Relaxed)
    }

    /// Directory fsyncs so far.
    #[cfg(test)]
    fn dir_syncs(&self) -> u64 {
        self.syncs.dir.load(Ordering::Relaxed)
    }
}

fn load_snapshot(
    dir: &Path,
    check_checksums: bool,
    ignored: &mut Vec<IgnoredDamage>,
) -> Result<Option<Snapshot>, StorageError> {
    let path = dir.join("snapshot");
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::Io { path, source: e }),
    };
    let corrupt = |reason: &str| StorageError::Corrupt {
        path: path.clone(),
        offset: 0,
        reason: reason.to_string(),
    };
    if bytes.len() < 8 {
        return Err(corrupt("snapshot file shorter than its header"));
    }
    let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let crc = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    let payload = &bytes[8..];
    let crc_ok = crc32fast::hash(payload) == crc;
    // The length frames the snapshot even under ignore-checksum; only the CRC is trusted less.
    if payload.len() != len || (check_checksums && !crc_ok) {
        return Err(corrupt("snapshot length or checksum mismatch"));
    }
    let snap = serde_json::from_slice(payload)
        .map_err(|e| corrupt(&format!("snapshot does not decode: {e}")))?;
    if !crc_ok {
        ignored.push(IgnoredDamage {
            file: "snapshot",
            offset: 0,
            what: "checksum mismatch; snapshot used as decoded".into(),
        });
    }
    Ok(Some(snap))
}

/// Under `ignore-checksum`: what a server that trusts its framing makes of a record whose
/// checksums may be wrong. A record that decodes is taken as it reads; one that does not is
/// taken as an entry it cannot read, a no-op after the entry before it (in the log, or the
/// snapshot's last), and is dropped only when nothing comes before it.
fn trust_record(
    payload: &[u8],
    checksums_ok: bool,
    offset: usize,
    loaded: &mut Loaded,
) -> Option<WalRecord> {
    let mut note = |what: String| {
        loaded.ignored_damage.push(IgnoredDamage {
            file: "wal",
            offset: offset as u64,
            what,
        })
    };
    match serde_json::from_slice(payload) {
        Ok(rec) => {
            if !checksums_ok {
                note("checksum mismatch; record used as decoded".into());
            }
            Some(rec)
        }
        Err(e) => {
            let prev: Option<(Index, Term)> = loaded
                .entries
                .last()
                .map(|e| (e.index, e.term))
                .or_else(|| {
                    loaded
                        .snapshot
                        .as_ref()
                        .map(|s| (s.last_index, s.last_term))
                });
            let bad = if checksums_ok {
                "record does not decode"
            } else {
                "checksum mismatch and record does not decode"
            };
            match prev {
                Some((index, term)) => {
                    note(format!(
                        "{bad} ({e}); used as a no-op entry at index {} term {term}",
                        index + 1
                    ));
                    Some(WalRecord::Entry(Entry {
                        term,
                        index: index + 1,
                        data: EntryData::Noop,
                    }))
                }
                None => {
                    note(format!("{bad} ({e}); skipped, no entry before it"));
                    None
                }
            }
        }
    }
}

fn load_wal(path: &Path, loaded: &mut Loaded, check_checksums: bool) -> Result<(), StorageError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(io_err(path))?;
    let total = bytes.len();
    let mut off = 0usize;
    let corrupt = |offset: usize, reason: String| StorageError::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason,
    };
    let torn_at = loop {
        if off == total {
            break None;
        }
        let rest = &bytes[off..];
        if rest.len() < HEADER {
            break Some(off);
        }
        let len_bytes = [rest[0], rest[1], rest[2], rest[3]];
        let len = u32::from_le_bytes(len_bytes);
        let hcrc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        let pcrc = u32::from_le_bytes([rest[8], rest[9], rest[10], rest[11]]);
        let header_ok = crc32fast::hash(&len_bytes) == hcrc;
        if check_checksums {
            if !header_ok || len > MAX_RECORD {
                if rest.iter().all(|&b| b == 0) {
                    break Some(off);
                }
                return Err(corrupt(off, "record header checksum mismatch".into()));
            }
        } else if len == 0 || len > MAX_RECORD {
            // BUG SWITCH ignore-checksum: the length alone frames a record, and one no writer
            // produces (a zero-filled tail reads as length 0) ends the log like a torn write.
            break Some(off);
        }
        let end = HEADER + len as usize;
        if end > rest.len() {
            break Some(off);
        }
        let payload = &rest[HEADER..end];
        let payload_ok = crc32fast::hash(payload) == pcrc;
        let rec = if check_checksums {
            if !payload_ok {
                // A crash leaves the last record short, or with its tail still zero (the file
                // grew but the block was never written). A complete record whose JSON payload
                // does not end in zero was written whole and then damaged: refusing it keeps
                // a node from quietly forgetting an entry it acknowledged.
                if end == rest.len() && payload.last() == Some(&0) {
                    break Some(off);
                }
                return Err(corrupt(off, "record checksum mismatch".into()));
            }
            serde_json::from_slice(payload)
                .map_err(|e| corrupt(off, format!("record does not decode: {e}")))?
        } else {
            match trust_record(payload, header_ok && payload_ok, off, loaded) {
                Some(rec) => rec,
                None => {
                    off += end;
                    continue;
                }
            }
        };
        match rec {
            WalRecord::HardState(hs) => loaded.hard_state = hs,
            WalRecord::Truncate(i) => loaded.entries.retain(|e| e.index < i),
            WalRecord::Entry(e) => {
                // A rewritten index supersedes the old suffix (normally nothing to drop).
                while loaded.entries.last().is_some_and(|x| x.index >= e.index) {
                    loaded.entries.pop();
                }
                if let Some(last) = loaded.entries.last() {
                    if last.index + 1 != e.index {
                        return Err(corrupt(
                            off,
                            format!("entry {} does not follow entry {}", e.index, last.index),
                        ));
                    }
                }
                loaded.entries.push(e);
            }
        }
        off += end;
    };
    if let Some(at) = torn_at {
        loaded.torn_bytes = (total - at) as u64;
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io_err(path))?;
        f.set_len(at as u64).map_err(io_err(path))?;
        f.sync_all().map_err(io_err(path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::EntryData;

    fn forget() -> Durability {
        Durability {
            forget_vote: true,
            ..Durability::default()
        }
    }

    fn entry(index: Index, term: u64) -> Entry {
        Entry {
            term,
            index,
            data: EntryData::Command(format!("c{index}")),
        }
    }

    fn ready(hs: Option<HardState>, entries: Vec<Entry>) -> Ready {
        Ready {
            hard_state: hs,
            entries,
            ..Default::default()
        }
    }

    #[test]
    fn round_trip_with_truncation_and_snapshot() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (mut st, loaded) = Storage::open(dir.path(), Durability::default()).expect("open");
            assert!(loaded.entries.is_empty());
            let hs = HardState {
                term: 2,
                vote: Some(3),
            };
            st.persist(&ready(Some(hs), (1..=5).map(|i| entry(i, 1)).collect()))
                .expect("persist");
            // Conflict at 4: truncate and replace with term-2 entries.
            let rd = Ready {
                truncate_from: Some(4),
                entries: vec![entry(4, 2)],
                ..Default::default()
            };
            st.persist(&rd).expect("persist");
        }
        let (mut st, loaded) = Storage::open(dir.path(), Durability::default()).expect("reopen");
        assert_eq!(
            loaded.hard_state,
            HardState {
                term: 2,
                vote: Some(3)
            }
        );
        let terms: Vec<_> = loaded.entries.iter().map(|e| (e.index, e.term)).collect();
        assert_eq!(terms, vec![(1, 1), (2, 1), (3, 1), (4, 2)]);
        let snap = Snapshot {
            last_index: 3,
            last_term: 1,
            members: Default::default(),
            data: "{}".into(),
        };
        st.compact(&snap, &loaded.entries[3..]).expect("compact");
        drop(st);
        let (_, loaded) = Storage::open(dir.path(), Durability::default()).expect("reopen");
        assert_eq!(loaded.snapshot, Some(snap));
        assert_eq!(loaded.entries, vec![entry(4, 2)]);
        assert_eq!(loaded.hard_state.term, 2);
    }

    #[test]
    fn torn_tail_is_truncated() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (mut st, _) = Storage::open(dir.path(), Durability::default()).expect("open");
            st.persist(&ready(None, (1..=3).map(|i| entry(i, 1)).collect()))
                .expect("persist");
        }
        let wal = dir.path().join("wal");
        let len = fs::metadata(&wal).expect("meta").len();
        // Cut the last record in half, as a crash during the write would.
        let f = OpenOptions::new().write(true).open(&wal).expect("open");
        f.set_len(len - 7).expect("truncate");
        drop(f);
        let (mut st, loaded) =
            Storage::open(dir.path(), Durability::default()).expect("torn tail is not fatal");
        assert_eq!(loaded.entries.len(), 2);
        assert!(loaded.torn_bytes > 0);
        // The file was cut back to a record boundary: appending again works.
        st.persist(&ready(None, vec![entry(3, 2)]))
            .expect("persist");
        drop(st);
        let (_, loaded) = Storage::open(dir.path(), Durability::default()).expect("reopen");
        assert_eq!(loaded.entries.last(), Some(&entry(3, 2)));
        assert_eq!(loaded.torn_bytes, 0);
    }

    #[test]
    fn zero_filled_tail_is_a_torn_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (mut st, _) = Storage::open(dir.path(), Durability::default()).expect("open");
            st.persist(&ready(None, vec![entry(1, 1)]))
                .expect("persist");
        }
        let wal = dir.path().join("wal");
        let mut f = OpenOptions::new().append(true).open(&wal).expect("open");
        f.write_all(&[0u8; 100]).expect("write");
        drop(f);
        let (_, loaded) = Storage::open(dir.path(), Durability::default()).expect("open");
        assert_eq!(loaded.entries.len(), 1);
        assert_eq!(loaded.torn_bytes, 100);
    }

    #[test]
    fn a_damaged_last_record_is_refused_and_a_zero_tailed_one_is_torn() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (mut st, _) = Storage::open(dir.path(), Durability::default()).expect("open");
            st.persist(&ready(None, (1..=3).map(|i| entry(i, 1)).collect()))
                .expect("persist");
        }
        let wal = dir.path().join("wal");
        let good = fs::read(&wal).expect("read");
        let mut flipped = good.clone();
        let at = flipped.len() - 3;
        flipped[at] ^= 0x04;
        fs::write(&wal, &flipped).expect("write");
        let err = Storage::open(dir.path(), Durability::default())
            .err()
            .expect("a bit flip in the last complete record must be refused");
        assert!(err.to_string().contains("checksum"), "{err}");

        let mut zero_tail = good;
        let n = zero_tail.len();
        zero_tail[n - 5..].fill(0);
        fs::write(&wal, &zero_tail).expect("write");
        let (_, loaded) =
            Storage::open(dir.path(), Durability::default()).expect("a zero tail is torn");
        assert_eq!(loaded.entries.len(), 2);
        assert!(loaded.torn_bytes > 0);
    }

    #[test]
    fn corruption_in_the_middle_refuses_to_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (mut st, _) = Storage::open(dir.path(), Durability::default()).expect("open");
            st.persist(&ready(None, (1..=3).map(|i| entry(i, 1)).collect()))
                .expect("persist");
        }
        let wal = dir.path().join("wal");
        let mut bytes = fs::read(&wal).expect("read");
        // Flip a payload byte of the first record.
        bytes[HEADER + 2] ^= 0x55;
        fs::write(&wal, &bytes).expect("write");
        let err = Storage::open(dir.path(), Durability::default())
            .err()
            .expect("must refuse");
        let msg = err.to_string();
        assert!(
            msg.contains("wal") && msg.contains("offset 0"),
            "unclear error: {msg}"
        );
    }

    #[test]
    fn corrupt_snapshot_refuses_to_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("snapshot"), b"garbage!garbage").expect("write");
        let err = Storage::open(dir.path(), Durability::default())
            .err()
            .expect("must refuse");
        assert!(err.to_string().contains("snapshot"), "{err}");
    }

    #[test]
    fn loading_a_long_log_is_not_quadratic() {
        // Regression: replay used to `retain` the whole vector for every record, so a
        // 90k-entry log took seconds to load and a restarted node missed its election.
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (mut st, _) = Storage::open(dir.path(), Durability::default()).expect("open");
            st.persist(&ready(None, (1..=60_000).map(|i| entry(i, 1)).collect()))
                .expect("persist");
        }
        let t = std::time::Instant::now();
        let (_, loaded) = Storage::open(dir.path(), Durability::default()).expect("open");
        assert_eq!(loaded.entries.len(), 60_000);
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "load took {:?}",
            t.elapsed()
        );
    }

    #[test]
    fn forget_vote_never_writes_the_hard_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (mut st, _) = Storage::open(dir.path(), forget()).expect("open");
            st.persist(&ready(
                Some(HardState {
                    term: 5,
                    vote: Some(1),
                }),
                vec![entry(1, 5)],
            ))
            .expect("persist");
        }
        let (_, loaded) = Storage::open(dir.path(), forget()).expect("open");
        assert_eq!(loaded.hard_state, HardState::default());
        assert_eq!(loaded.entries.len(), 1);
    }

    #[test]
    fn ack_before_fsync_leaves_fsyncs_to_the_timer_which_stops_with_the_storage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = Durability {
            fsync_interval: Some(Duration::from_millis(20)),
            ..Durability::default()
        };
        let (mut st, _) = Storage::open(dir.path(), d).expect("open");
        let before = st.wal_syncs();
        st.persist(&ready(None, vec![entry(1, 1)]))
            .expect("persist");
        // persist returned without an fsync of its own: only the timer counts up, later.
        let t = std::time::Instant::now();
        while st.wal_syncs() == before && t.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(st.wal_syncs() > before, "the timer never synced");
        let syncs = st.syncs.clone();
        drop(st);
        std::thread::sleep(Duration::from_millis(100));
        let after_drop = syncs.wal.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            syncs.wal.load(Ordering::Relaxed),
            after_drop,
            "timer outlived Storage"
        );
        // The correct server syncs in persist itself.
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut st, _) = Storage::open(dir.path(), Durability::default()).expect("open");
        st.persist(&ready(None, vec![entry(1, 1)]))
            .expect("persist");
        assert_eq!(st.wal_syncs(), 1);
    }

    #[test]
    fn no_dir_fsync_never_syncs_the_directory() {
        let snap = Snapshot {
            last_index: 1,
            last_term: 1,
            members: Default::default(),
            data: "{}".into(),
        };
        for (d, expect_syncs) in [
            (Durability::default(), true),
            (
                Durability {
                    dir_fsync: false,
                    ..Durability::default()
                },
                false,
            ),
        ] {
            let dir = tempfile::tempdir().expect("tempdir");
            let (mut st, _) = Storage::open(dir.path(), d).expect("open");
            st.persist(&ready(None, vec![entry(1, 1), entry(2, 1)]))
                .expect("persist");
            st.compact(&snap, &[entry(2, 1)]).expect("compact");
            assert_eq!(st.dir_syncs() > 0, expect_syncs);
            drop(st);
            let (_, loaded) = Storage::open(dir.path(), d).expect("reopen");
            assert_eq!(loaded.entries, vec![entry(2, 1)]);
        }
    }

    /// A wal of three entries whose middle record's payload is changed by `edit`.
    fn damaged_wal(edit: impl Fn(&mut Vec<u8>, usize)) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (mut st, _) = Storage::open(dir.path(), Durability::default()).expect("open");
            st.persist(&ready(None, (1..=3).map(|i| entry(i, 1)).collect()))
                .expect("persist");
        }
        let wal = dir.path().join("wal");
        let mut bytes = fs::read(&wal).expect("read");
        let first = HEADER + u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        edit(&mut bytes, first + HEADER);
        fs::write(&wal, &bytes).expect("write");
        dir
    }

    #[test]
    fn ignore_checksum_uses_a_damaged_record_the_correct_server_refuses() {
        let ignore = Durability {
            check_checksums: false,
            ..Durability::default()
        };
        // "c2" -> "c3": still decodes, to a different command.
        let dir = damaged_wal(|b, payload| {
            let at = payload
                + b[payload..]
                    .windows(2)
                    .position(|w| w == b"c2")
                    .expect("the command text");
            b[at + 1] = b'3';
        });
        assert!(Storage::open(dir.path(), Durability::default()).is_err());
        let (_, loaded) = Storage::open(dir.path(), ignore).expect("the bug loads it");
        assert_eq!(loaded.entries.len(), 3);
        assert_eq!(loaded.entries[1].data, EntryData::Command("c3".into()));
        assert_eq!(loaded.ignored_damage.len(), 1);
        // A payload that no longer decodes becomes a no-op at its index.
        let dir = damaged_wal(|b, payload| b[payload] = b'#');
        assert!(Storage::open(dir.path(), Durability::default()).is_err());
        let (_, loaded) = Storage::open(dir.path(), ignore).expect("the bug loads it");
        let got: Vec<_> = loaded
            .entries
            .iter()
            .map(|e| (e.index, e.data.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, EntryData::Command("c1".into())),
                (2, EntryData::Noop),
                (3, EntryData::Command("c3".into())),
            ]
        );
        // A torn tail is a torn tail either way.
        for d in [Durability::default(), ignore] {
            let dir = tempfile::tempdir().expect("tempdir");
            {
                let (mut st, _) = Storage::open(dir.path(), d).expect("open");
                st.persist(&ready(None, (1..=3).map(|i| entry(i, 1)).collect()))
                    .expect("persist");
            }
            let wal = dir.path().join("wal");
            let len = fs::metadata(&wal).expect("meta").len();
            OpenOptions::new()
                .write(true)
                .open(&wal)
                .expect("open")
                .set_len(len - 5)
                .expect("cut");
            let (_, loaded) = Storage::open(dir.path(), d).expect("torn tail");
            assert_eq!(loaded.entries.len(), 2);
        }
    }
}
