//! Harness throughput: the generator and history recorder with a null adapter (no server), so
//! the figure is the harness's own ceiling. `cargo bench --bench harness`.

use raftcheck::client::{Adapter, NullAdapter};
use raftcheck::spec::workload::{KeyDist, Mix, WorkloadSpec};
use raftcheck::store::JsonlSink;
use raftcheck::workload::runner::{worker, Counters, Ctx};
use raftcheck::workload::{Generator, Shared};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    for concurrency in [10usize, 50] {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = WorkloadSpec {
            model: "kv".into(),
            mix: Mix {
                read: 2,
                write: 1,
                cas: 1,
                append: 0,
            },
            keys: 10,
            key_distribution: KeyDist::Uniform,
            concurrency,
            rate: 0.0,
            op_timeout_secs: 1.0,
            duration_secs: 3.0,
            min_ok_ops: 0,
        };
        let start = Instant::now();
        let history = JsonlSink::create(&dir.path().join("history.jsonl"), start).expect("sink");
        let adapter: Arc<dyn Adapter> = Arc::new(NullAdapter);
        let ctx = Arc::new(Ctx {
            adapter,
            history: history.clone(),
            shared: Arc::new(Shared::default()),
            counters: Arc::new(Counters::default()),
            node_names: vec!["n1".into(), "n2".into(), "n3".into()],
            op_timeout: Duration::from_secs(1),
            stop: Arc::new(AtomicBool::new(false)),
            leader_hint: None,
        });
        let until = start + Duration::from_secs(3);
        let ops: u64 = rt.block_on(async {
            let mut tasks = Vec::new();
            for i in 0..concurrency {
                let g = Generator::new(&spec, 1, i);
                tasks.push(tokio::spawn(worker(
                    ctx.clone(),
                    g,
                    i,
                    concurrency,
                    Duration::ZERO,
                    until,
                )));
            }
            let mut total = 0;
            for t in tasks {
                total += t.await.unwrap_or(0);
            }
            total
        });
        history.finish().expect("flush");
        let secs = start.elapsed().as_secs_f64();
        let bytes = std::fs::metadata(dir.path().join("history.jsonl"))
            .map(|m| m.len())
            .unwrap_or(0);
        println!(
            "null adapter, concurrency {concurrency}: {ops} ops in {secs:.2} s = {:.0} ops/s recorded \
             ({} events, {:.1} MiB of history), ok {}",
            ops as f64 / secs,
            history.len(),
            bytes as f64 / (1 << 20) as f64,
            ctx.counters.ok.load(Ordering::Relaxed)
        );
    }
}
