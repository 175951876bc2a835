//! Durable Raft state in a data directory: the write-ahead log (`wal`) and the latest
//! snapshot (`snapshot`).
//!
//! `wal` is a sequence of records, each `[len u32][header crc u32][payload crc u32][payload]`
//! (little endian, CRC-32 from `crc32fast`), the payload a JSON [`WalRecord`]. Term/vote
//! changes, truncations and entries are appended in the order the core produced them and
//! replayed in that order on load; a [`Ready`] is written with one `write` and one fsync
//! before any of its messages is sent.
//!
//! Crash handling on load: a record cut short by the end of the file (or a zero-filled tail)
//! is a torn write from a crash and is truncated away with a warning; a bad record with valid
//! data after it is corruption, and the server refuses to start, naming the file and offset.
//!
//! `snapshot` is written as `snapshot.tmp`, fsynced, renamed over, and the directory fsynced,
//! so a crash leaves either the old or the new snapshot, never half of one. After a snapshot
//! the log is rewritten the same way (`wal.tmp` → `wal`) without the compacted prefix.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::raft::{Entry, HardState, Index, Ready, Snapshot};

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
}

/// The open data directory.
pub struct Storage {
    /// The node's `--data-dir`, holding `wal` and `snapshot`; fsynced after every rename in it.
    dir: PathBuf,
    /// The log file, opened for appending.
    wal: File,
    /// BUG SWITCH `forget-vote`: never write term and vote.
    forget_vote: bool,
    /// Reused encoding buffer, so a batch costs one allocation-free write.
    buf: Vec<u8>,
    /// The latest hard state handed to us, rewritten into every new log file.
    hard_state: HardState,
}

fn encode(buf: &mut Vec<u8>, rec: &WalRecord) {
    let payload = serde_json::to_vec(rec).expect("WalRecord always serializes");
    let len = (payload.len() as u32).to_le_bytes();
    buf.extend_from_slice(&len);
    buf.extend_from_slice(&crc32fast::hash(&len).to_le_bytes());
    buf.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    buf.extend_from_slice(&payload);
}

fn fsync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Write `bytes` to `dir/name` atomically: tmp file, fsync, rename, fsync the directory.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let dst = dir.join(name);
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(bytes).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    fs::rename(&tmp, &dst).map_err(io_err(&dst))?;
    fsync_dir(dir)
}

impl Storage {
    /// Open (creating if needed) the data directory and load what it holds.
    pub fn open(dir: &Path, forget_vote: bool) -> Result<(Storage, Loaded), StorageError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let snapshot = load_snapshot(dir)?;
        let wal_path = dir.join("wal");
        let mut loaded = Loaded {
            snapshot,
            ..Default::default()
        };
        if wal_path.exists() {
            load_wal(&wal_path, &mut loaded)?;
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
        fsync_dir(dir)?;
        let hard_state = loaded.hard_state.clone();
        Ok((
            Storage {
                dir: dir.to_path_buf(),
                wal,
                forget_vote,
                buf: Vec::new(),
                hard_state,
            },
            loaded,
        ))
    }

    /// Make a [`Ready`]'s snapshot, hard state and entries durable (one fsync for the log).
    /// Must return before any of the Ready's messages is sent.
    pub fn persist(&mut self, rd: &Ready) -> Result<(), StorageError> {
        if let Some(hs) = &rd.hard_state {
            self.hard_state = hs.clone();
        }
        if let Some(snap) = &rd.snapshot {
            self.save_snapshot(snap)?;
            // The snapshot replaces the whole log; keep only the current hard state.
            self.rewrite_wal(&[])?;
        } else if let Some(hs) = &rd.hard_state {
            if !self.forget_vote {
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
        self.wal.write_all(&self.buf).map_err(io_err(&path))?;
        self.buf.clear();
        self.wal.sync_data().map_err(io_err(&path))
    }

    fn save_snapshot(&mut self, snap: &Snapshot) -> Result<(), StorageError> {
        let payload = serde_json::to_vec(snap).expect("Snapshot always serializes");
        let mut bytes = Vec::with_capacity(payload.len() + 8);
        bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        bytes.extend_from_slice(&payload);
        write_atomic(&self.dir, "snapshot", &bytes)
    }

    fn rewrite_wal(&mut self, rest: &[Entry]) -> Result<(), StorageError> {
        let mut bytes = Vec::new();
        if !self.forget_vote {
            encode(&mut bytes, &WalRecord::HardState(self.hard_state.clone()));
        }
        for e in rest {
            encode(&mut bytes, &WalRecord::Entry(e.clone()));
        }
        write_atomic(&self.dir, "wal", &bytes)?;
        let path = self.dir.join("wal");
        self.wal = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        Ok(())
    }
}

fn load_snapshot(dir: &Path) -> Result<Option<Snapshot>, StorageError> {
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
    if payload.len() != len || crc32fast::hash(payload) != crc {
        return Err(corrupt("snapshot length or checksum mismatch"));
    }
    serde_json::from_slice(payload)
        .map(Some)
        .map_err(|e| corrupt(&format!("snapshot does not decode: {e}")))
}

fn load_wal(path: &Path, loaded: &mut Loaded) -> Result<(), StorageError> {
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
        if crc32fast::hash(&len_bytes) != hcrc || len > MAX_RECORD {
            if rest.iter().all(|&b| b == 0) {
                break Some(off);
            }
            return Err(corrupt(off, "record header checksum mismatch".into()));
        }
        let end = HEADER + len as usize;
        if end > rest.len() {
            break Some(off);
        }
        let payload = &rest[HEADER..end];
        if crc32fast::hash(payload) != pcrc {
            if end == rest.len() {
                break Some(off);
            }
            return Err(corrupt(off, "record checksum mismatch".into()));
        }
        let rec: WalRecord = serde_json::from_slice(payload)
            .map_err(|e| corrupt(off, format!("record does not decode: {e}")))?;
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
            let (mut st, loaded) = Storage::open(dir.path(), false).expect("open");
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
        let (mut st, loaded) = Storage::open(dir.path(), false).expect("reopen");
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
        let (_, loaded) = Storage::open(dir.path(), false).expect("reopen");
        assert_eq!(loaded.snapshot, Some(snap));
        assert_eq!(loaded.entries, vec![entry(4, 2)]);
        assert_eq!(loaded.hard_state.term, 2);
    }

    #[test]
    fn torn_tail_is_truncated() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (mut st, _) = Storage::open(dir.path(), false).expect("open");
            st.persist(&ready(None, (1..=3).map(|i| entry(i, 1)).collect()))
                .expect("persist");
        }
        let wal = dir.path().join("wal");
        let len = fs::metadata(&wal).expect("meta").len();
        // Cut the last record in half, as a crash during the write would.
        let f = OpenOptions::new().write(true).open(&wal).expect("open");
        f.set_len(len - 7).expect("truncate");
        drop(f);
        let (mut st, loaded) = Storage::open(dir.path(), false).expect("torn tail is not fatal");
        assert_eq!(loaded.entries.len(), 2);
        assert!(loaded.torn_bytes > 0);
        // The file was cut back to a record boundary: appending again works.
        st.persist(&ready(None, vec![entry(3, 2)]))
            .expect("persist");
        drop(st);
        let (_, loaded) = Storage::open(dir.path(), false).expect("reopen");
        assert_eq!(loaded.entries.last(), Some(&entry(3, 2)));
        assert_eq!(loaded.torn_bytes, 0);
    }

    #[test]
    fn zero_filled_tail_is_a_torn_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (mut st, _) = Storage::open(dir.path(), false).expect("open");
            st.persist(&ready(None, vec![entry(1, 1)]))
                .expect("persist");
        }
        let wal = dir.path().join("wal");
        let mut f = OpenOptions::new().append(true).open(&wal).expect("open");
        f.write_all(&[0u8; 100]).expect("write");
        drop(f);
        let (_, loaded) = Storage::open(dir.path(), false).expect("open");
        assert_eq!(loaded.entries.len(), 1);
        assert_eq!(loaded.torn_bytes, 100);
    }

    #[test]
    fn corruption_in_the_middle_refuses_to_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (mut st, _) = Storage::open(dir.path(), false).expect("open");
            st.persist(&ready(None, (1..=3).map(|i| entry(i, 1)).collect()))
                .expect("persist");
        }
        let wal = dir.path().join("wal");
        let mut bytes = fs::read(&wal).expect("read");
        // Flip a payload byte of the first record.
        bytes[HEADER + 2] ^= 0x55;
        fs::write(&wal, &bytes).expect("write");
        let err = Storage::open(dir.path(), false).err().expect("must refuse");
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
        let err = Storage::open(dir.path(), false).err().expect("must refuse");
        assert!(err.to_string().contains("snapshot"), "{err}");
    }

    #[test]
    fn loading_a_long_log_is_not_quadratic() {
        // Regression: replay used to `retain` the whole vector for every record, so a
        // 90k-entry log took seconds to load and a restarted node missed its election.
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (mut st, _) = Storage::open(dir.path(), false).expect("open");
            st.persist(&ready(None, (1..=60_000).map(|i| entry(i, 1)).collect()))
                .expect("persist");
        }
        let t = std::time::Instant::now();
        let (_, loaded) = Storage::open(dir.path(), false).expect("open");
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
            let (mut st, _) = Storage::open(dir.path(), true).expect("open");
            st.persist(&ready(
                Some(HardState {
                    term: 5,
                    vote: Some(1),
                }),
                vec![entry(1, 5)],
            ))
            .expect("persist");
        }
        let (_, loaded) = Storage::open(dir.path(), true).expect("open");
        assert_eq!(loaded.hard_state, HardState::default());
        assert_eq!(loaded.entries.len(), 1);
    }
}
