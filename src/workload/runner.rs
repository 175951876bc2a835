//! Client workers: issue ops from the generator at the workload's pace, record each invoke
//! before it is sent and each completion after it arrives.
//!
//! Worker i talks to node i mod n (the adapter follows one redirect to the leader for that op
//! only), because bugs such as stale follower reads show only when ops reach those nodes. A
//! process whose op ended `info` never issues another op (it might still be running, as far as
//! the checker knows): the worker continues as process `p + concurrency`, Jepsen's rule.

use super::{Generator, Shared};
use crate::client::{Adapter, Completion, Request};
use crate::history::{Event, EventType, Fun, Value};
use crate::store::JsonlSink;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Live op counters, read by the progress bar.
#[derive(Default)]
pub struct Counters {
    /// Ops completed ok so far, all workers together.
    pub ok: AtomicU64,
    /// Ops that ended fail so far, a cas whose compare failed included.
    pub fail: AtomicU64,
    /// Ops that ended info so far (timeouts, lost answers); each retires its process.
    pub info: AtomicU64,
}

/// Pokes the monitor when clients see a leader change: with an adapter whose writes are
/// acknowledged only by the leader (raftkv), a write acknowledged by a different node than the
/// previous one means leadership moved, or that an old leader is still acknowledging, which is
/// exactly the short window in which a second leader could be sampled.
pub struct LeaderHint {
    last: AtomicUsize,
    wake: tokio::sync::Notify,
}

impl Default for LeaderHint {
    fn default() -> Self {
        LeaderHint {
            last: AtomicUsize::new(usize::MAX),
            wake: tokio::sync::Notify::new(),
        }
    }
}

impl LeaderHint {
    /// Wait until a write is acknowledged by another node than the one before (a poke made
    /// while nobody waits is kept for the next wait).
    pub async fn changed(&self) {
        self.wake.notified().await
    }

    /// Note that `node` acknowledged a write, cas or append; wakes the monitor when it is not the
    /// node that acknowledged the one before.
    pub(crate) fn write_acknowledged_by(&self, node: usize) {
        let prev = self.last.swap(node, Ordering::Relaxed);
        if prev != node && prev != usize::MAX {
            self.wake.notify_one();
        }
    }
}

/// What every worker shares.
#[derive(Clone)]
pub struct Ctx {
    /// Speaks the cluster's protocol: every op goes through it, within `op_timeout`.
    pub adapter: Arc<dyn Adapter>,
    /// The history.jsonl sink: each op's invoke is appended before it is sent, its completion after
    /// the answer.
    pub history: Arc<JsonlSink>,
    /// Unique values and recent values per key.
    pub shared: Arc<Shared>,
    /// Ok / fail / info counts so far, for the progress bar.
    pub counters: Arc<Counters>,
    /// Node names by index, for the history's `node` field.
    pub node_names: Vec<String>,
    /// How long one op may take in total, a redirect included, before it ends `info` (the
    /// workload's `op_timeout_secs`).
    pub op_timeout: Duration,
    /// Set to stop issuing new ops (end of the phase, Ctrl-C).
    pub stop: Arc<AtomicBool>,
    /// Told which node acknowledged each write, when the adapter says only leaders do.
    pub leader_hint: Option<Arc<LeaderHint>>,
}

impl Ctx {
    fn record(
        &self,
        kind: EventType,
        process: u64,
        req: &Request,
        value: Value,
        node: usize,
        error: Option<String>,
    ) {
        let node = self.node_names.get(node).cloned();
        self.history.append(|index, time| Event {
            index,
            kind,
            process,
            f: req.f,
            key: req.key.clone(),
            value,
            time,
            node,
            error,
        });
    }

    /// Perform one op as `process` on `node`, recording invoke and completion.
    pub(crate) async fn perform(&self, process: u64, node: usize, req: &Request) -> Completion {
        let invoke_value = if req.f == Fun::Read {
            Value::Null
        } else {
            req.value.clone()
        };
        self.record(EventType::Invoke, process, req, invoke_value, node, None);
        let c = self.adapter.invoke(node, req, self.op_timeout).await;
        match &c {
            Completion::Ok { value, node } => {
                self.counters.ok.fetch_add(1, Ordering::Relaxed);
                self.record(EventType::Ok, process, req, value.clone(), *node, None);
                if req.f != Fun::Read {
                    if let Some(h) = &self.leader_hint {
                        h.write_acknowledged_by(*node);
                    }
                }
            }
            Completion::Fail { error, node } => {
                self.counters.fail.fetch_add(1, Ordering::Relaxed);
                self.record(
                    EventType::Fail,
                    process,
                    req,
                    req.value.clone(),
                    *node,
                    Some(error.clone()),
                );
            }
            Completion::Info { error, node } => {
                self.counters.info.fetch_add(1, Ordering::Relaxed);
                self.record(
                    EventType::Info,
                    process,
                    req,
                    req.value.clone(),
                    *node,
                    Some(error.clone()),
                );
            }
        }
        c
    }
}

/// One worker: ops until `stop` is set or `until` passes. `interval` paces op starts (zero:
/// back to back). Returns the number of ops it issued.
pub async fn worker(
    ctx: Arc<Ctx>,
    mut gen: Generator,
    index: usize,
    concurrency: usize,
    interval: Duration,
    until: Instant,
) -> u64 {
    let n = ctx.node_names.len().max(1);
    let node = index % n;
    let mut process = index as u64;
    let mut next_start = Instant::now();
    let mut issued = 0;
    while !ctx.stop.load(Ordering::Relaxed) && Instant::now() < until {
        if !interval.is_zero() {
            let now = Instant::now();
            if next_start > now {
                tokio::time::sleep(next_start - now).await;
            }
            // No catch-up bursts after a slow op: pace from now.
            next_start = next_start.max(now) + interval;
            if ctx.stop.load(Ordering::Relaxed) || Instant::now() >= until {
                break;
            }
        }
        let req = gen.next(&ctx.shared);
        let c = ctx.perform(process, node, &req).await;
        issued += 1;
        match c {
            Completion::Ok { value, .. } => match req.f {
                Fun::Read if !value.is_null() && !value.is_array() => {
                    ctx.shared.saw(&req.key, &value)
                }
                Fun::Write => ctx.shared.saw(&req.key, &req.value),
                Fun::Cas => ctx.shared.saw(&req.key, &req.value[1]),
                _ => {}
            },
            Completion::Info { .. } => process += concurrency as u64,
            Completion::Fail { .. } => {}
        }
    }
    issued
}

/// The final phase's read of every key: retried (each attempt a new op in the history, by a
/// new process) on each node in turn until one succeeds or `deadline` passes. Returns the keys
/// that could not be read.
pub(crate) async fn final_reads(
    ctx: &Ctx,
    keys: &[Option<String>],
    first_process: u64,
    deadline: Instant,
) -> Vec<Option<String>> {
    let n = ctx.node_names.len().max(1);
    let mut process = first_process;
    let mut unread = Vec::new();
    for (k, key) in keys.iter().enumerate() {
        let req = Request {
            f: Fun::Read,
            key: key.clone(),
            value: Value::Null,
        };
        let mut attempt = 0;
        let done = loop {
            if Instant::now() >= deadline {
                break false;
            }
            let c = ctx.perform(process, (k + attempt) % n, &req).await;
            attempt += 1;
            match c {
                Completion::Ok { .. } => break true,
                Completion::Info { .. } => process += 1,
                Completion::Fail { .. } => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        process += 1;
        if !done {
            unread.push(key.clone());
        }
    }
    unread
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_hint_fires_only_when_another_node_acknowledges() {
        let h = LeaderHint::default();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        // A poke made before the monitor waits is kept (Notify stores one permit), so each
        // check below sees exactly what the acknowledgements since the last one asked for.
        let poked = || {
            rt.block_on(async {
                tokio::time::timeout(Duration::from_millis(20), h.wake.notified())
                    .await
                    .is_ok()
            })
        };
        h.write_acknowledged_by(0);
        h.write_acknowledged_by(0);
        assert!(!poked(), "the first node seen is not a change");
        h.write_acknowledged_by(2);
        assert!(poked(), "another node acknowledged");
        h.write_acknowledged_by(2);
        assert!(!poked(), "the same node again");
        h.write_acknowledged_by(0);
        assert!(poked());
    }
}
