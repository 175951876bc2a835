//! Streaming JSONL logs: the history, the nemesis log and the leader samples.
//!
//! Every record is appended as it happens and flushed at least every 100 ms by a background
//! thread, so a harness that dies mid-run still leaves a checkable history on disk. The record's
//! index and time are taken under the same lock as the write, so file order, index order and
//! time order agree: the checker relies on file order being real-time order.

use serde::Serialize;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

struct Inner {
    out: BufWriter<File>,
    next_index: u64,
    error: Option<std::io::Error>,
}

/// An append-only JSONL file with a shared run clock.
pub struct JsonlSink {
    inner: Mutex<Inner>,
    start: Instant,
}

impl JsonlSink {
    /// Create (truncate) `path`; `start` is the run's clock origin. Spawns the flusher thread,
    /// which ends when the sink is dropped.
    pub fn create(path: &Path, start: Instant) -> std::io::Result<Arc<JsonlSink>> {
        let file = File::create(path)?;
        let sink = Arc::new(JsonlSink {
            inner: Mutex::new(Inner {
                out: BufWriter::with_capacity(256 << 10, file),
                next_index: 0,
                error: None,
            }),
            start,
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

    /// Nanoseconds since the run started.
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Append one record built from (index, time); returns them.
    pub fn append<T: Serialize>(&self, make: impl FnOnce(u64, u64) -> T) -> (u64, u64) {
        let Ok(mut g) = self.inner.lock() else {
            return (0, 0);
        };
        let index = g.next_index;
        g.next_index += 1;
        let time = self.now();
        let rec = make(index, time);
        let res = serde_json::to_writer(&mut g.out, &rec)
            .map_err(std::io::Error::other)
            .and_then(|_| g.out.write_all(b"\n"));
        if let Err(e) = res {
            g.error.get_or_insert(e);
        }
        (index, time)
    }

    /// Flush buffered records to the file.
    pub fn flush(&self) {
        if let Ok(mut g) = self.inner.lock() {
            if let Err(e) = g.out.flush() {
                g.error.get_or_insert(e);
            }
        }
    }

    /// Flush and report the first write error, if any happened.
    pub fn finish(&self) -> std::io::Result<()> {
        self.flush();
        match self.inner.lock() {
            Ok(mut g) => match g.error.take() {
                Some(e) => Err(e),
                None => g.out.get_ref().sync_data(),
            },
            Err(_) => Err(std::io::Error::other("history writer poisoned")),
        }
    }

    /// Records written so far.
    pub fn len(&self) -> u64 {
        self.inner.lock().map(|g| g.next_index).unwrap_or(0)
    }

    /// True when nothing was written.
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
}
