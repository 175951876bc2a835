//! Process tests: real raftkv servers on 127.0.0.1, killed with SIGKILL and restarted.

mod cluster;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cluster::{wait_until, Cluster, BIN};
use serde_json::{json, Value};

const FAST: &[&str] = &[
    "--election-timeout-min-ms",
    "150",
    "--election-timeout-max-ms",
    "300",
    "--heartbeat-ms",
    "30",
    "--request-timeout-ms",
    "2000",
];

/// Append `value` to `key` through whichever node leads, following 421 redirects. Returns
/// Some(true) if acknowledged (200), Some(false) for a definite refusal, None if unknown.
async fn append(http: &reqwest::Client, addrs: &[String], key: &str, value: i64) -> Option<bool> {
    let mut target = addrs[value as usize % addrs.len()].clone();
    for _ in 0..3 {
        let r = http
            .post(format!("http://{target}/kv/{key}/append"))
            .json(&json!({ "value": value }))
            .send()
            .await;
        let Ok(r) = r else { return None };
        match r.status().as_u16() {
            200 => return Some(true),
            421 => {
                let body: Value = r.json().await.ok()?;
                target = body["leader_addr"].as_str()?.to_string();
            }
            400 | 409 => return Some(false),
            _ => return None,
        }
    }
    None
}

/// Append `value` to `key` exactly once, through whichever node leads now. A definite refusal
/// is retried; after an unknown outcome the list is read first, so the value is never added
/// twice. Bounded: 30 attempts.
async fn append_once(c: &Cluster, key: &str, value: i64) {
    for _ in 0..30 {
        let leader = c.wait_leader(Duration::from_secs(10)).await;
        match append(&c.http, &[c.addr(leader)], key, value).await {
            Some(true) => return,
            Some(false) => {}
            None => {
                if read_list(c, key).await.contains(&value) {
                    return;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("append {value} to {key} never succeeded in 30 attempts");
}

async fn read_list(c: &Cluster, key: &str) -> Vec<i64> {
    let leader = c.wait_leader(Duration::from_secs(10)).await;
    for _ in 0..20 {
        let leader_now = c.leader().await.unwrap_or(leader);
        let r = c
            .http
            .get(format!("http://{}/kv/{key}", c.addr(leader_now)))
            .send()
            .await;
        if let Ok(r) = r {
            if r.status() == 200 {
                let v: Value = r.json().await.expect("json");
                return v["value"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_i64).collect())
                    .unwrap_or_default();
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("could not read {key} from the leader");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_repeatedly_loses_no_acknowledged_write() {
    let mut flags = FAST.to_vec();
    flags.extend_from_slice(&["--snapshot-threshold", "40"]);
    let mut c = Cluster::start(3, &flags).await;
    let addrs: Vec<String> = (1..=3).map(|id| c.addr(id)).collect();
    let stop = Arc::new(AtomicBool::new(false));
    // Acknowledged appends per key, and appends whose outcome is unknown.
    let acked: Arc<Mutex<BTreeMap<String, Vec<i64>>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..4i64 {
        let (stop, acked, addrs, http) =
            (stop.clone(), acked.clone(), addrs.clone(), c.http.clone());
        writers.push(tokio::spawn(async move {
            let key = format!("list{w}");
            // Bounded: at most 100k ops, and stopped by the flag.
            for i in 0..100_000i64 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let value = w * 1_000_000 + i;
                if append(&http, &addrs, &key, value).await == Some(true) {
                    acked
                        .lock()
                        .expect("lock")
                        .entry(key.clone())
                        .or_default()
                        .push(value);
                } else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    for round in 0..5 {
        let before: usize = acked.lock().expect("lock").values().map(Vec::len).sum();
        wait_until(
            Duration::from_secs(10),
            "writes progress before the kill",
            || {
                let acked = acked.clone();
                async move {
                    acked
                        .lock()
                        .expect("lock")
                        .values()
                        .map(Vec::len)
                        .sum::<usize>()
                        > before + 20
                }
            },
        )
        .await;
        let leader = c.wait_leader(Duration::from_secs(10)).await;
        c.kill(leader);
        let c_ref = &c;
        wait_until(
            Duration::from_secs(10),
            "a new leader after the kill",
            || async move { c_ref.leader().await.is_some_and(|l| l != leader) },
        )
        .await;
        let after_kill: usize = acked.lock().expect("lock").values().map(Vec::len).sum();
        wait_until(
            Duration::from_secs(10),
            "writes resume on the new leader",
            || {
                let acked = acked.clone();
                async move {
                    acked
                        .lock()
                        .expect("lock")
                        .values()
                        .map(Vec::len)
                        .sum::<usize>()
                        > after_kill + 10
                }
            },
        )
        .await;
        c.spawn(leader);
        eprintln!("round {round}: killed leader {leader}, restarted it");
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.expect("writer task");
    }
    // Every node comes back and converges.
    let leader = c.wait_leader(Duration::from_secs(10)).await;
    let commit = c.status(leader).await.expect("status")["commit_index"]
        .as_u64()
        .unwrap_or(0);
    for id in 1..=3 {
        let c_ref = &c;
        wait_until(
            Duration::from_secs(15),
            "every node applies the final commit index",
            || async move {
                c_ref
                    .status(id)
                    .await
                    .is_some_and(|s| s["last_applied"].as_u64().unwrap_or(0) >= commit)
            },
        )
        .await;
    }
    let acked = acked.lock().expect("lock").clone();
    let total: usize = acked.values().map(Vec::len).sum();
    assert!(total > 150, "only {total} acknowledged appends");
    for (key, values) in &acked {
        let list = read_list(&c, key).await;
        let mut seen = std::collections::BTreeSet::new();
        for v in &list {
            assert!(seen.insert(*v), "{key}: element {v} appears twice");
        }
        for v in values {
            assert!(
                list.contains(v),
                "{key}: acknowledged append {v} is missing after kills"
            );
        }
        // Acknowledged appends of one sequential writer appear in order.
        let positions: Vec<usize> = values
            .iter()
            .map(|v| list.iter().position(|x| x == v).expect("present"))
            .collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "{key}: acknowledged order broken"
        );
    }
    eprintln!("{total} acknowledged appends, all present after 5 leader kills");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_fell_behind_catches_up_through_a_snapshot() {
    // Slower elections than FAST: on a loaded 2-core CI machine the lone follower must not
    // take over mid-test (the appends below still cope with it if it does).
    let flags = [
        "--election-timeout-min-ms",
        "600",
        "--election-timeout-max-ms",
        "1200",
        "--heartbeat-ms",
        "50",
        "--request-timeout-ms",
        "3000",
        "--snapshot-threshold",
        "20",
    ];
    let mut c = Cluster::start(3, &flags).await;
    let leader = c.wait_leader(Duration::from_secs(10)).await;
    let lagger = (1..=3).find(|&i| i != leader).expect("a follower");
    c.kill(lagger);
    for i in 0..120 {
        append_once(&c, "k", i).await;
    }
    let leader = c.wait_leader(Duration::from_secs(10)).await;
    let snap = c.status(leader).await.expect("status")["snapshot_index"]
        .as_u64()
        .unwrap_or(0);
    assert!(snap >= 100, "leader compacted only to {snap}");
    c.spawn(lagger);
    let c_ref = &c;
    wait_until(
        Duration::from_secs(15),
        "restarted node applies everything",
        || async move {
            c_ref
                .status(lagger)
                .await
                .is_some_and(|s| s["last_applied"].as_u64().unwrap_or(0) >= snap)
        },
    )
    .await;
    assert!(
        c.log_text(lagger)
            .contains("installed snapshot from leader"),
        "node {lagger} did not catch up through InstallSnapshot"
    );
    // The caught-up node holds the data: make it leader's only partner and read through it.
    let other = (1..=3)
        .find(|&i| i != leader && i != lagger)
        .expect("third");
    c.kill(other);
    let list = read_list(&c, "k").await;
    assert_eq!(list, (0..120).collect::<Vec<i64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_add_then_leader_removes_itself() {
    let mut c = Cluster::start(3, FAST).await;
    // A fourth node joins.
    let port = cluster::free_port();
    c.procs.push(cluster::Proc {
        id: 4,
        port,
        dir: c.tmp.path().join("n4"),
        log: c.tmp.path().join("n4.log"),
        child: None,
        extra: vec!["--join".into()],
    });
    c.peers = format!("{},4=127.0.0.1:{port}", c.peers);
    c.spawn(4);
    let leader = c.wait_leader(Duration::from_secs(10)).await;
    let r = c
        .http
        .post(format!("http://{}/admin/add", c.addr(leader)))
        .json(&json!({ "id": 4, "addr": format!("127.0.0.1:{port}") }))
        .send()
        .await
        .expect("admin add");
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let c_ref = &c;
    wait_until(
        Duration::from_secs(10),
        "node 4 sees itself as a member",
        || async move {
            c_ref.status(4).await.is_some_and(|s| {
                s["members"]
                    .as_array()
                    .is_some_and(|m| m.iter().any(|x| x["id"] == 4))
            })
        },
    )
    .await;
    // The leader removes itself; the others elect a new leader and keep serving.
    let r = c
        .http
        .post(format!("http://{}/admin/remove", c.addr(leader)))
        .json(&json!({ "id": leader }))
        .send()
        .await
        .expect("admin remove");
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    wait_until(
        Duration::from_secs(10),
        "a new leader without the old one",
        || async move { c_ref.leader().await.is_some_and(|l| l != leader) },
    )
    .await;
    let new = c.leader().await.expect("leader");
    let addrs = vec![c.addr(new)];
    assert_eq!(append(&c.http, &addrs, "after", 1).await, Some(true));
    let s = c.status(new).await.expect("status");
    let ids: Vec<u64> = s["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["id"].as_u64())
        .collect();
    assert!(
        !ids.contains(&leader) && ids.contains(&4),
        "members now {ids:?}"
    );
}

#[test]
fn bad_flags_and_bad_data_dir_fail_clearly() {
    let out = std::process::Command::new(BIN)
        .args([
            "--id",
            "1",
            "--listen",
            "127.0.0.1:1",
            "--peers",
            "1=127.0.0.1:1",
        ])
        .args(["--data-dir", "/tmp/x", "--election-timeout-min-ms", "500"])
        .args(["--election-timeout-max-ms", "100"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("must exceed"));
    let out = std::process::Command::new(BIN)
        .args([
            "--id",
            "1",
            "--listen",
            "127.0.0.1:1",
            "--peers",
            "1=127.0.0.1:1",
        ])
        .args(["--data-dir", "/tmp/x", "--bug", "no-such-bug"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    // A data dir that is a regular file.
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("file");
    std::fs::write(&file, "x").expect("write");
    let port = cluster::free_port();
    let out = std::process::Command::new(BIN)
        .args(["--id", "1", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--peers", &format!("1=127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(&file)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot use data dir"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_api_shapes() {
    let c = Cluster::start(3, FAST).await;
    let leader = c.wait_leader(Duration::from_secs(10)).await;
    let base = format!("http://{}", c.addr(leader));
    let h = &c.http;
    let r = h.get(format!("{base}/kv/x")).send().await.expect("get");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({ "value": null })
    );
    let r = h
        .put(format!("{base}/kv/x"))
        .json(&json!({ "value": 1 }))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 200);
    let r = h
        .post(format!("{base}/kv/x/cas"))
        .json(&json!({ "from": 7, "to": 8 }))
        .send()
        .await
        .expect("cas");
    assert_eq!(r.status(), 409);
    assert_eq!(r.json::<Value>().await.expect("json")["value"], 1);
    let r = h
        .post(format!("{base}/kv/x/cas"))
        .json(&json!({ "from": 1, "to": 8 }))
        .send()
        .await
        .expect("cas");
    assert_eq!(r.status(), 200);
    let r = h
        .put(format!("{base}/kv/x"))
        .body("{\"value\": \"nope\"}")
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 400);
    let r = h
        .put(format!("{base}/kv/x"))
        .body(vec![b'1'; 70_000])
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 413);
    let follower = (1..=3).find(|&i| i != leader).expect("follower");
    let r = h
        .get(format!("http://{}/kv/x", c.addr(follower)))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 421);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["leader"], leader);
    assert_eq!(body["leader_addr"], c.addr(leader));
    let s = c.status(follower).await.expect("status");
    for k in [
        "id",
        "role",
        "term",
        "leader",
        "commit_index",
        "last_applied",
        "members",
    ] {
        assert!(s.get(k).is_some(), "/status lacks {k}: {s}");
    }
}

/// `--text-api` changes only how the server talks: every /kv answer is 200 with a text body,
/// one distinct `Error:` reason per meaning, and parameters may come as a query string, a form
/// body, a text body or JSON. raftcheck's declarative adapter is tested against this shape
/// (tests/fixtures/specs/raftkv-text.toml), so the exact words are pinned here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_api_answers_200_with_text() {
    let mut flags = FAST.to_vec();
    flags.push("--text-api");
    let c = Cluster::start(3, &flags).await;
    let leader = c.wait_leader(Duration::from_secs(10)).await;
    let base = format!("http://{}", c.addr(leader));
    let h = &c.http;
    // One request, its status and its body; every /kv answer must be 200 and text/plain.
    let send = |rb: reqwest::RequestBuilder| async move {
        let r = rb.send().await.expect("request");
        assert_eq!(r.status(), 200, "text mode answers 200");
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        assert!(ct.starts_with("text/plain"), "content-type {ct:?}");
        r.text().await.expect("body")
    };
    let form = |rb: reqwest::RequestBuilder, body: &str| {
        rb.header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_string())
    };
    assert_eq!(send(h.get(format!("{base}/kv/x"))).await, "");
    assert_eq!(send(h.put(format!("{base}/kv/x")).body("1")).await, "OK\n");
    assert_eq!(send(h.get(format!("{base}/kv/x"))).await, "1\n");
    let cas = format!("{base}/kv/x/cas");
    assert_eq!(
        send(form(h.post(format!("{cas}?from=7")), "to=8")).await,
        "Error: compare failed\n"
    );
    assert_eq!(
        send(form(h.post(format!("{cas}?from=1")), "to=8")).await,
        "OK\n"
    );
    assert_eq!(send(h.get(format!("{base}/kv/x"))).await, "8\n");
    // `from` left out: the key must be absent.
    let cas_y = format!("{base}/kv/y/cas");
    assert_eq!(send(form(h.post(&cas_y), "to=5")).await, "OK\n");
    assert_eq!(
        send(form(h.post(&cas_y), "to=6")).await,
        "Error: compare failed\n"
    );
    assert_eq!(
        send(form(h.post(&cas_y), "from=null&to=6")).await,
        "Error: bad request: `from`: \"null\" is not an integer\n"
    );
    assert_eq!(
        send(h.put(format!("{base}/kv/x")).json(&json!({ "value": 3 }))).await,
        "OK\n"
    );
    assert_eq!(send(h.put(format!("{base}/kv/x?value=4"))).await, "OK\n");
    assert_eq!(send(h.get(format!("{base}/kv/x"))).await, "4\n");
    assert_eq!(
        send(h.put(format!("{base}/kv/x?value=4")).body("5")).await,
        "Error: bad request: parameter `value` given twice\n"
    );
    assert_eq!(
        send(form(h.put(format!("{base}/kv/x")), "value=1&bogus=2")).await,
        "Error: bad request: unknown parameter `bogus`\n"
    );
    for x in ["10", "11"] {
        let r = send(form(
            h.post(format!("{base}/kv/l/append")),
            &format!("value={x}"),
        ))
        .await;
        assert_eq!(r, "OK\n");
    }
    assert_eq!(send(h.get(format!("{base}/kv/l"))).await, "[10,11]\n");
    assert_eq!(
        send(form(h.post(format!("{base}/kv/x/append")), "value=1")).await,
        "Error: the key holds a register, not a list\n"
    );
    let big = send(h.put(format!("{base}/kv/x")).body(vec![b'1'; 70_000])).await;
    assert!(big.starts_with("Error: bad request"), "{big}");
    let follower = (1..=3).find(|&i| i != leader).expect("follower");
    assert_eq!(
        send(h.get(format!("http://{}/kv/x", c.addr(follower)))).await,
        format!(
            "Error: not the leader (leader: n{leader} at {})\n",
            c.addr(leader)
        )
    );
    // /status is not part of the client API: still JSON.
    let s = c.status(follower).await.expect("status");
    assert_eq!(s["leader"], leader);
}

/// `--no-status` removes GET /status (404), as on servers that have none; the client API and
/// the admin API still answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_status_answers_404_and_the_rest_still_works() {
    let mut flags = FAST.to_vec();
    flags.push("--no-status");
    let c = Cluster::spawn_all(1, &flags);
    let base = format!("http://{}", c.addr(1));
    let h = c.http.clone();
    let url = format!("{base}/kv/x");
    wait_until(
        Duration::from_secs(15),
        "a write succeeds on the one node",
        || {
            let (h, url) = (h.clone(), url.clone());
            async move {
                let r = h.put(url).json(&json!({ "value": 1 })).send().await;
                r.is_ok_and(|r| r.status() == 200)
            }
        },
    )
    .await;
    let r = h
        .get(format!("{base}/status"))
        .send()
        .await
        .expect("status");
    assert_eq!(r.status(), 404);
    let r = h.get(&url).send().await.expect("get");
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({ "value": 1 })
    );
    let r = h
        .post(format!("{base}/admin/add"))
        .body("{}")
        .send()
        .await
        .expect("admin");
    assert_eq!(r.status(), 400, "the admin API is still served");
}
