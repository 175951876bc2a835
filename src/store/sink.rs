//! Streaming JSONL logs: the history, the nemesis log and the leader samples.
//!
//! Every record is appended as it happens and flushed at least every 100 ms by a background
//! thread, so a harness that dies mid-run still leaves a checkable history on disk. The record's
//! index and time are taken under the same lock as the write, so file order, index order and
//! time order agree: the checker relies on file order being real-time order, and refuses a file
//! whose times go back.
//!
//! Only whole records ever reach the file: records are buffered here and written out in whole
//! batches, and when a write fails (a full disk) the file is cut back to the end of the last
//! batch that was written whole. So the file on disk is always a prefix of the history, which
//! the checker can judge soundly (an op whose completion was lost is unknown), and never ends in
//! a torn line. After a failure the sink drops further records and [`JsonlSink::failed`] says so,
//! so the run can stop at once instead of running on blind.

use serde::Serialize;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Bytes buffered before a write is forced between two flusher ticks.
const BATCH: usize = 256 << 10;

struct Inner {
    file: File,
    /// Whole records not yet written.
    buf: Vec<u8>,
    /// File length after the last batch written whole: where a failed write is cut back to.
    committed: u64,
    next_index: u64,
    error: Option<std::io::Error>,
}

impl Inner {
    fn write_out(&mut self) {
        if self.buf.is_empty() || self.error.is_some() {
            return;
        }
        match self.file.write_all(&self.buf) {
            Ok(()) => self.committed += self.buf.len() as u64,
            Err(e) => {
                // Part of the batch may be on disk: cut it off so no torn line remains.
                let _ = self.file.set_len(self.committed);
                self.error = Some(e);
            }
        }
        self.buf.clear();
    }
}

/// An append-only JSONL file with a shared run clock.
pub struct JsonlSink {
    inner: Mutex<Inner>,
    start: Instant,
    path: PathBuf,
    /// Set once a write failed; read without the lock by whoever watches the run.
    failed: AtomicBool,
}

impl JsonlSink {
    /// Create (truncate) `path`; `start` is the run's clock origin. Spawns the flusher thread,
    /// which ends when the sink is dropped.
    pub fn create(path: &Path, start: Instant) -> std::io::Result<Arc<JsonlSink>> {
        let file = File::create(path)?;
        let sink = Arc::new(JsonlSink {
            inner: Mutex::new(Inner {
                file,
                buf: Vec::with_capacity(BATCH),
                committed: 0,
                next_index: 0,
                error: None,
            }),
            start,
            path: path.to_path_buf(),
            failed: AtomicBool::new(false),
        });
        let weak: Weak<JsonlSink> = Arc::downgrade(&sink);
        std::thread::Builder::new()
            .name("jsonl-flush".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_millis(50));
                match weak.upgrade() {
                    Some(s) => s.flush(),
                    None => return,
                }
            })?;
        Ok(sink)
    }

    /// The file this sink writes, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Nanoseconds since the run started.
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Append one record built from (index, time); returns them. After a write error the
    /// record is dropped (the file keeps the prefix written before it).
    pub fn append<T: Serialize>(&self, make: impl FnOnce(u64, u64) -> T) -> (u64, u64) {
        let Ok(mut g) = self.inner.lock() else {
            return (0, 0);
        };
        let index = g.next_index;
        g.next_index += 1;
        let time = self.now();
        if g.error.is_some() {
            return (index, time);
        }
        let rec = make(index, time);
        let mark = g.buf.len();
        match serde_json::to_writer(&mut g.buf, &rec) {
            Ok(()) => g.buf.push(b'\n'),
            Err(e) => {
                g.buf.truncate(mark);
                g.error = Some(std::io::Error::other(e));
                self.failed.store(true, Ordering::Relaxed);
                return (index, time);
            }
        }
        if g.buf.len() >= BATCH {
            g.write_out();
            self.note_failure(&g);
        }
        (index, time)
    }

    fn note_failure(&self, g: &Inner) {
        if g.error.is_some() {
            self.failed.store(true, Ordering::Relaxed);
        }
    }

    /// Write buffered records to the file.
    pub fn flush(&self) {
        if let Ok(mut g) = self.inner.lock() {
            g.write_out();
            self.note_failure(&g);
        }
    }

    /// Whether a write to the file has failed (the file then holds what was written before).
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// Flush, fsync, and report the first write error, if any happened.
    pub fn finish(&self) -> std::io::Result<()> {
        self.flush();
        match self.inner.lock() {
            Ok(mut g) => match g.error.take() {
                Some(e) => Err(e),
                None => g.file.sync_data(),
            },
            Err(_) => Err(std::io::Error::other("history writer poisoned")),
        }
    }

    /// Records appended so far (including any dropped after a write error).
    pub fn len(&self) -> u64 {
        self.inner.lock().map(|g| g.next_index).unwrap_or(0)
    }

    /// True when nothing was appended.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_reach_disk_without_an_explicit_flush() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("h.jsonl");
        let sink = JsonlSink::create(&p, Instant::now()).unwrap();
        sink.append(|i, t| serde_json::json!({"index": i, "time": t}));
        // The flusher thread writes it out within 100 ms; wait up to 2 s.
        let deadline = Instant::now() + Duration::from_secs(2);
        while std::fs::read_to_string(&p).unwrap().is_empty() {
            assert!(Instant::now() < deadline, "record not flushed within 2 s");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(std::fs::read_to_string(&p).unwrap().contains("\"index\":0"));
        sink.finish().unwrap();
    }

    /// /dev/full fails every write with ENOSPC, as a full disk does.
    #[test]
    fn a_failed_write_is_reported_and_later_records_are_dropped() {
        let full = Path::new("/dev/full");
        if !full.exists() {
            eprintln!("SKIPPED: no /dev/full");
            return;
        }
        let sink = JsonlSink::create(full, Instant::now()).unwrap();
        assert!(!sink.failed());
        sink.append(|i, t| serde_json::json!({"index": i, "time": t}));
        sink.flush();
        assert!(sink.failed());
        let (i, _) = sink.append(|i, t| serde_json::json!({"index": i, "time": t}));
        assert_eq!(
            i, 1,
            "indices go on, so the run's numbering stays consistent"
        );
        let e = sink.finish().unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
        assert_eq!(sink.path(), full);
    }

    #[test]
    fn only_whole_records_reach_the_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("h.jsonl");
        let sink = JsonlSink::create(&p, Instant::now()).unwrap();
        // More than one batch, so a write is forced from append itself.
        let big = "x".repeat(1000);
        for _ in 0..600 {
            sink.append(|i, t| serde_json::json!({"index": i, "time": t, "pad": big}));
        }
        sink.finish().unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.ends_with('\n'));
        assert_eq!(text.lines().count(), 600);
    }
}
