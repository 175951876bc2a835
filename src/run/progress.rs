//! The progress bar: elapsed/total, ops ok/fail/info, ops/s, leader and term, active fault.
//! indicatif draws nothing when stderr is not a terminal.

use super::monitor::Monitor;
use crate::workload::runner::Counters;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(super) fn start(
    enabled: bool,
    total: Duration,
    counters: Arc<Counters>,
    mon: Arc<Monitor>,
    start: Instant,
) -> Option<ProgressBar> {
    if !enabled {
        return None;
    }
    let bar = ProgressBar::with_draw_target(Some(total.as_secs()), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{elapsed_precise}/{len}s [{bar:30}] {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    let b = bar.clone();
    tokio::spawn(async move {
        while !b.is_finished() {
            let (ok, fail, info) = (
                counters.ok.load(Ordering::Relaxed),
                counters.fail.load(Ordering::Relaxed),
                counters.info.load(Ordering::Relaxed),
            );
            let secs = start.elapsed().as_secs_f64().max(0.001);
            let leader = mon
                .leader()
                .map_or("none".to_string(), |(n, t)| format!("{n} term {t}"));
            b.set_position(start.elapsed().as_secs().min(total.as_secs()));
            b.set_message(format!(
                "ok {ok} fail {fail} info {info} | {:.0} ops/s | leader {leader} | fault: {}",
                (ok + fail + info) as f64 / secs,
                mon.fault().unwrap_or_else(|| "none".into())
            ));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    Some(bar)
}

pub(super) fn finish(bar: Option<ProgressBar>, msg: &'static str) {
    if let Some(b) = bar {
        b.finish_with_message(msg);
    }
}
