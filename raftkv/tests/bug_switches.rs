//! Each `--bug` switch changes observable behaviour in the way README.md says, and the
//! correct server does not: followers are paused with SIGSTOP to cut the leader off.

mod cluster;

use std::time::Duration;

use cluster::{signal, wait_until, Cluster, Paused};
use serde_json::{json, Value};

fn flags(bug: Option<&str>) -> Vec<&str> {
    let mut f = vec![
        "--election-timeout-min-ms",
        "150",
        "--election-timeout-max-ms",
        "300",
        "--heartbeat-ms",
        "30",
        "--request-timeout-ms",
        "1000",
    ];
    if let Some(b) = bug {
        f.extend_from_slice(&["--bug", b]);
    }
    f
}

async fn put(c: &Cluster, id: u64, key: &str, v: i64) -> u16 {
    c.http
        .put(format!("http://{}/kv/{key}", c.addr(id)))
        .json(&json!({ "value": v }))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

async fn get(c: &Cluster, id: u64, key: &str) -> (u16, Value) {
    match c
        .http
        .get(format!("http://{}/kv/{key}", c.addr(id)))
        .send()
        .await
    {
        Ok(r) => {
            let s = r.status().as_u16();
            (s, r.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

/// Pause both followers of the current leader; returns (leader, guard).
async fn isolate_leader(c: &Cluster) -> (u64, Paused<'_>) {
    let leader = c.wait_leader(Duration::from_secs(10)).await;
    let followers: Vec<u64> = (1..=3).filter(|&i| i != leader).collect();
    for &f in &followers {
        signal(c, f, "STOP");
    }
    (leader, Paused(c, followers))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correct_server_refuses_to_guess_without_a_majority() {
    let c = Cluster::start(3, &flags(None)).await;
    let leader = c.wait_leader(Duration::from_secs(10)).await;
    assert_eq!(put(&c, leader, "k", 1).await, 200);
    let (leader, _guard) = isolate_leader(&c).await;
    // A write cannot commit: 503 (unknown), never 200.
    assert_eq!(put(&c, leader, "k", 2).await, 503);
    // A read cannot confirm leadership: 503, or 421 once check-quorum made it step down.
    let (s, _) = get(&c, leader, "k").await;
    assert!(
        s == 503 || s == 421,
        "isolated leader answered a read with {s}"
    );
    wait_until(
        Duration::from_secs(5),
        "isolated leader steps down (check-quorum)",
        || {
            let c = &c;
            async move {
                c.status(leader)
                    .await
                    .is_some_and(|s| s["role"] != "leader")
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bug_stale_read_lets_followers_answer_reads() {
    let c = Cluster::start(3, &flags(Some("stale-read"))).await;
    let leader = c.wait_leader(Duration::from_secs(10)).await;
    let follower = (1..=3).find(|&i| i != leader).expect("follower");
    let (s, _) = get(&c, follower, "k").await;
    assert_eq!(s, 200, "a follower should serve the read under stale-read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bug_leader_local_read_serves_reads_while_isolated() {
    let c = Cluster::start(3, &flags(Some("leader-local-read"))).await;
    let leader = c.wait_leader(Duration::from_secs(10)).await;
    assert_eq!(put(&c, leader, "k", 1).await, 200);
    let (leader, _guard) = isolate_leader(&c).await;
    // Well past the election timeout: without check-quorum it still believes it leads.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (s, v) = get(&c, leader, "k").await;
    assert_eq!(
        (s, v["value"].clone()),
        (200, json!(1)),
        "isolated leader should read locally"
    );
    assert_eq!(c.status(leader).await.expect("status")["role"], "leader");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bug_ack_before_commit_acknowledges_uncommitted_writes() {
    let c = Cluster::start(3, &flags(Some("ack-before-commit"))).await;
    let (leader, _guard) = isolate_leader(&c).await;
    assert_eq!(
        put(&c, leader, "k", 7).await,
        200,
        "write acknowledged without a majority"
    );
    let s = c.status(leader).await.expect("status");
    assert!(
        s["commit_index"].as_u64() < s["last_index"].as_u64(),
        "the acknowledged write is not committed: {s}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bug_forget_vote_leaves_no_term_on_disk() {
    let mut c = Cluster::start(3, &flags(Some("forget-vote"))).await;
    let leader = c.wait_leader(Duration::from_secs(10)).await;
    assert_eq!(put(&c, leader, "k", 1).await, 200);
    for id in 1..=3 {
        c.kill(id);
        let wal = std::fs::read(c.proc(id).dir.join("wal")).expect("wal exists");
        let text = String::from_utf8_lossy(&wal);
        assert!(!text.contains("HardState"), "node {id} wrote its term/vote");
        assert!(text.contains("Entry"), "node {id} wrote no entries");
    }
}
