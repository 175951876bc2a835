//! The client adapters against real servers: a 1-node etcd (Debian's etcd-server), a 3-node
//! etcd reached through etcdctl (Debian's etcd-client) by the declarative `command` adapter
//! built from clusters/etcd-ctl.toml, and a 3-node raftkv cluster (this workspace's binary),
//! the latter reached through both the `raftkv` adapter and the declarative `http` adapter
//! built from clusters/raftkv-http.toml.
//!
//! A missing server binary skips its test with a message on stderr, unless
//! RAFTCHECK_REQUIRE_ALL=1 (CI), where it fails. Every process is killed by a Drop guard, so a
//! failing assertion leaves nothing running; every wait is bounded in count and time.

use raftcheck::client::{Adapter, Completion, Endpoint, NodeStatus, Request, Role};
use raftcheck::history::{Fun, Value};
use raftcheck::spec::ClusterSpec;
use serde_json::json;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Op timeout for every request (below etcd's own 7 s, as DESIGN.md asks).
const OP_TIMEOUT: Duration = Duration::from_secs(5);

fn require_all() -> bool {
    std::env::var("RAFTCHECK_REQUIRE_ALL").as_deref() == Ok("1")
}

/// Skip (or, under RAFTCHECK_REQUIRE_ALL=1, fail) a test whose server is not available.
fn skip(msg: &str) {
    if require_all() {
        panic!("RAFTCHECK_REQUIRE_ALL=1 but {msg}");
    }
    eprintln!("SKIPPED: {msg}");
}

/// `n` distinct free ports on 127.0.0.1 (all listeners held until every port is picked).
fn free_ports(n: usize) -> Vec<u16> {
    let ls: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    ls.iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Server processes, killed (SIGKILL) and reaped on drop, even when the test panics.
struct Procs {
    children: Vec<Option<Child>>,
    logs: Vec<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Procs {
    fn new(dir: tempfile::TempDir) -> Self {
        Procs {
            children: Vec::new(),
            logs: Vec::new(),
            _dir: dir,
        }
    }

    fn dir(&self) -> &Path {
        self._dir.path()
    }

    fn spawn(&mut self, bin: &Path, args: &[String], log_name: &str) {
        let log = self.dir().join(log_name);
        let out = std::fs::File::create(&log).expect("create log file");
        let err = out.try_clone().expect("clone log file");
        let child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        self.children.push(Some(child));
        self.logs.push(log);
    }

    fn signal(&self, i: usize, sig: nix::sys::signal::Signal) {
        if let Some(Some(c)) = self.children.get(i) {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(c.id()).expect("pid fits i32"));
            nix::sys::signal::kill(pid, sig).expect("signal a test server");
            if sig == nix::sys::signal::Signal::SIGSTOP {
                // SIGSTOP is asynchronous: a thread running on another core may still answer
                // one request. Wait (bounded) until every thread is stopped.
                let deadline = Instant::now() + Duration::from_secs(3);
                while !all_threads_stopped(c.id()) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children.get_mut(i).and_then(Option::take) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The last lines of every log, for failure messages.
    fn log_tails(&self) -> String {
        let mut out = String::new();
        for l in &self.logs {
            let text = std::fs::read_to_string(l).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(15)..].join("\n");
            out.push_str(&format!("--- {}\n{tail}\n", l.display()));
        }
        out
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
    }
}

fn req(f: Fun, key: Option<&str>, value: Value) -> Request {
    Request {
        f,
        key: key.map(str::to_string),
        value,
    }
}

fn ok_value(c: &Completion, what: &str) -> Value {
    match c {
        Completion::Ok { value, .. } => value.clone(),
        other => panic!("{what}: expected ok, got {other:?}"),
    }
}

fn node_of(c: &Completion) -> usize {
    match c {
        Completion::Ok { node, .. }
        | Completion::Fail { node, .. }
        | Completion::Info { node, .. } => *node,
    }
}

/// The op sequence every adapter must get right. Keys are prefixed so that several adapters
/// can share one cluster. `served_by`, when given, is the node every op must end on (the
/// leader, when `node` is a follower: the adapter followed the redirect). `lists`: the adapter
/// can append (etcd-ctl cannot).
async fn exercise(
    a: &dyn Adapter,
    node: usize,
    prefix: &str,
    served_by: Option<usize>,
    lists: bool,
) {
    let k = format!("{prefix}-a");
    let kn = format!("{prefix}-b");
    let kl = format!("{prefix}-list");
    let check = |c: &Completion, what: &str| {
        if let Some(n) = served_by {
            assert_eq!(node_of(c), n, "{what}: served by the wrong node: {c:?}");
        }
    };
    let run = |r: Request| async move { a.invoke(node, &r, OP_TIMEOUT).await };

    let c = run(req(Fun::Read, Some(&k), Value::Null)).await;
    check(&c, "read absent");
    assert_eq!(ok_value(&c, "read absent"), Value::Null);

    let c = run(req(Fun::Write, Some(&k), json!(1))).await;
    check(&c, "write");
    assert_eq!(ok_value(&c, "write"), json!(1));

    let c = run(req(Fun::Read, Some(&k), Value::Null)).await;
    assert_eq!(ok_value(&c, "read after write"), json!(1));

    let c = run(req(Fun::Cas, Some(&k), json!([1, 2]))).await;
    check(&c, "cas");
    assert_eq!(ok_value(&c, "cas 1→2"), json!([1, 2]));

    let c = run(req(Fun::Cas, Some(&k), json!([1, 3]))).await;
    check(&c, "cas mismatch");
    match &c {
        Completion::Fail { error, .. } => assert_eq!(error, "mismatch", "{c:?}"),
        other => panic!("cas 1→3 on 2: expected fail mismatch, got {other:?}"),
    }

    let c = run(req(Fun::Read, Some(&k), Value::Null)).await;
    assert_eq!(ok_value(&c, "read after cas"), json!(2));

    let c = run(req(Fun::Cas, Some(&kn), json!([null, 5]))).await;
    assert_eq!(ok_value(&c, "cas from null"), json!([null, 5]));
    let c = run(req(Fun::Cas, Some(&kn), json!([null, 6]))).await;
    assert!(
        matches!(&c, Completion::Fail { error, .. } if error == "mismatch"),
        "cas from null on a present key: {c:?}"
    );
    let c = run(req(Fun::Read, Some(&kn), Value::Null)).await;
    assert_eq!(ok_value(&c, "read after cas from null"), json!(5));

    if !lists {
        let c = run(req(Fun::Append, Some(&kl), json!(10))).await;
        assert!(
            matches!(&c, Completion::Fail { .. }),
            "append without a way to append: {c:?}"
        );
    }
    let c = run(req(Fun::Read, Some(&kl), Value::Null)).await;
    let absent = ok_value(&c, "list read absent");
    assert!(absent.is_null() || absent == json!([]), "{absent}");
    if lists {
        for x in [10, 11] {
            let c = run(req(Fun::Append, Some(&kl), json!(x))).await;
            check(&c, "append");
            assert_eq!(ok_value(&c, "append"), json!(x));
        }
        let c = run(req(Fun::Read, Some(&kl), Value::Null)).await;
        assert_eq!(ok_value(&c, "list read"), json!([10, 11]));
    }

    // Single-register workloads send no key: the adapter uses its fixed key.
    let v = json!(prefix.len() * 1000 + 7);
    let c = run(req(Fun::Write, None, v.clone())).await;
    assert_eq!(ok_value(&c, "write without key"), v);
    let c = run(req(Fun::Read, None, Value::Null)).await;
    assert_eq!(ok_value(&c, "read without key"), v);
}

/// Poll `status` on every node until one says it leads and every node agrees, bounded.
async fn wait_for_leader(a: &dyn Adapter, n: usize, procs: &Procs) -> (usize, Vec<NodeStatus>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = Vec::new();
    for _ in 0..300 {
        if Instant::now() > deadline {
            break;
        }
        last.clear();
        for i in 0..n {
            last.push(a.status(i, Duration::from_secs(1)).await);
        }
        let leaders: Vec<usize> = last
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s, Ok(s) if s.role == Role::Leader))
            .map(|(i, _)| i)
            .collect();
        if let [l] = leaders[..] {
            let all_agree = last
                .iter()
                .all(|s| matches!(s, Ok(s) if s.leader == Some(l) && s.term >= 1));
            if all_agree {
                let st = last.iter().filter_map(|s| s.clone().ok()).collect();
                return (l, st);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "no agreed leader within 30 s; last statuses: {last:?}\n{}",
        procs.log_tails()
    );
}

/// An op under [`OP_TIMEOUT`], with a guard of one more second in case the adapter's own bound
/// failed: the outcome or a panic, never a hung test.
async fn bounded_invoke(a: &dyn Adapter, node: usize, r: Request) -> Completion {
    let guard = OP_TIMEOUT + Duration::from_secs(1);
    tokio::time::timeout(guard, a.invoke(node, &r, OP_TIMEOUT))
        .await
        .unwrap_or_else(|_| panic!("the op outlived its timeout by more than 1 s"))
}

fn cluster_spec(text: &str) -> ClusterSpec {
    toml::from_str(text).expect("test cluster spec")
}

#[test]
fn make_refuses_bad_configuration_clearly() {
    let base = "binary = \"x\"\nclient_port = 1\n";
    let eps = vec![Endpoint {
        index: 0,
        id: 1,
        name: "n1".into(),
        addr: addr(1),
    }];
    let err = |text: &str| match cluster_spec(text).adapter(eps.clone()) {
        Ok(_) => panic!("accepted: {text}"),
        Err(e) => e.to_string(),
    };
    let e = err(&format!("{base}client = \"grpc\"\n"));
    assert!(e.contains("grpc") && e.contains("raftkv"), "{e}");
    let e = err(&format!("{base}client = \"http\"\n"));
    assert!(e.contains("[http]"), "{e}");
    let e = err(&format!(
        "{base}client = \"raftkv\"\n[http]\ndefault_key = \"x\"\n"
    ));
    assert!(e.contains("client = \"http\""), "{e}");
    let e = err(&format!(
        "{base}client = \"http\"\n[http.read]\nmethod = \"GET\"\npath = \"/kv/{{key}}\"\n\
         value = \"/value\"\nok = [200]\n[http.write]\nmethod = \"PUT\"\npath = \"/kv/{{key}}\"\n\
         body = '{{\"value\": {{value}}}}'\nstatuses = [200]\n"
    ));
    assert!(e.contains("http.write") && e.contains("statuses"), "{e}");
    let e = err(&format!("{base}client = \"command\"\n"));
    assert!(e.contains("[command]"), "{e}");
    let e = err(&format!(
        "{base}client = \"etcd\"\n[command.read]\nargv = [\"/bin/true\"]\n"
    ));
    assert!(
        e.contains("[command]") && e.contains("client = \"command\""),
        "{e}"
    );
    let e = err(&format!(
        "{base}client = \"command\"\n[command.read]\nargv = [\"/bin/true\"]\n\
         [command.write]\nargv = [\"no-such-cli-7q\", \"{{key}}\"]\n"
    ));
    assert!(
        e.contains("command.write.argv[0]") && e.contains("no-such-cli-7q"),
        "{e}"
    );
    for client in ["raftkv", "etcd", "null"] {
        let spec = cluster_spec(&format!("{base}client = \"{client}\"\n"));
        assert!(spec.adapter(eps.clone()).is_ok(), "{client}");
    }
}

/// A connect that never completes (a node behind a DROP partition looks like this) sent
/// nothing: the op must end as a definite fail after the adapters' connect timeout (1 s), not
/// as info at the op's timeout. A listener whose accept queue is full drops further SYNs, which
/// reproduces this on loopback without iptables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_that_never_completes_is_a_fail() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let a = listener.local_addr().expect("local addr");
    let mut held = Vec::new();
    let mut full = false;
    for _ in 0..600 {
        match tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(a),
        )
        .await
        {
            Ok(Ok(s)) => held.push(s),
            _ => {
                full = true;
                break;
            }
        }
    }
    if !full {
        eprintln!("SKIPPED: could not fill the accept queue of a loopback listener");
        return;
    }
    let eps = vec![Endpoint {
        index: 0,
        id: 1,
        name: "n1".into(),
        addr: a,
    }];
    let spec = cluster_spec("binary = \"x\"\nclient = \"raftkv\"\nclient_port = 1\n");
    let adapter = spec.adapter(eps).expect("raftkv adapter");
    let t0 = Instant::now();
    let c = adapter
        .invoke(0, &req(Fun::Write, Some("k"), json!(1)), OP_TIMEOUT)
        .await;
    assert!(
        matches!(&c, Completion::Fail { error, .. } if error.contains("connect")),
        "{c:?}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t0.elapsed()
    );
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_adapter_against_a_real_etcd() {
    let Ok(etcd) = raftcheck::cluster::find_binary("etcd") else {
        skip("etcd not installed (Debian package etcd-server)");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut procs = Procs::new(dir);
    let ports = free_ports(2);
    let (cp, pp) = (ports[0], ports[1]);
    let data = procs.dir().join("data");
    let args: Vec<String> = [
        "--name",
        "n1",
        "--data-dir",
        &data.display().to_string(),
        "--listen-client-urls",
        &format!("http://127.0.0.1:{cp}"),
        "--advertise-client-urls",
        &format!("http://127.0.0.1:{cp}"),
        "--listen-peer-urls",
        &format!("http://127.0.0.1:{pp}"),
        "--initial-advertise-peer-urls",
        &format!("http://127.0.0.1:{pp}"),
        "--initial-cluster",
        &format!("n1=http://127.0.0.1:{pp}"),
        "--initial-cluster-state",
        "new",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    procs.spawn(&etcd, &args, "etcd.log");

    let eps = vec![Endpoint {
        index: 0,
        id: 1,
        name: "n1".into(),
        addr: addr(cp),
    }];
    let spec = cluster_spec("binary = \"etcd\"\nclient = \"etcd\"\nclient_port = 2379\n");
    let a = spec.adapter(eps).expect("etcd adapter");
    let (leader, st) = wait_for_leader(a.as_ref(), 1, &procs).await;
    assert_eq!(leader, 0);
    assert!(st[0].term >= 1, "{st:?}");

    exercise(a.as_ref(), 0, "etcd", Some(0), true).await;

    // Concurrent appends to one key: the MOD-guarded retry loop must apply each exactly once.
    let k = "etcd-concurrent";
    let tasks: Vec<_> = (0..8)
        .map(|x| {
            let a = Arc::clone(&a);
            tokio::spawn(async move {
                a.invoke(0, &req(Fun::Append, Some(k), json!(x)), OP_TIMEOUT)
                    .await
            })
        })
        .collect();
    for t in tasks {
        let c = t.await.expect("append task");
        assert!(
            matches!(c, Completion::Ok { .. }),
            "concurrent append: {c:?}"
        );
    }
    let c = a
        .invoke(0, &req(Fun::Read, Some(k), Value::Null), OP_TIMEOUT)
        .await;
    let mut got: Vec<i64> = ok_value(&c, "concurrent list read")
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(Value::as_i64)
        .collect();
    got.sort_unstable();
    assert_eq!(got, (0..8).collect::<Vec<i64>>());

    // Right after the kill, an op may still go out on a pooled keep-alive connection the
    // client has not yet seen closed: it may end as info (the bytes were written), never as ok,
    // and never later than its timeout.
    procs.kill(0);
    let c = bounded_invoke(a.as_ref(), 0, req(Fun::Write, Some("etcd-a"), json!(8))).await;
    assert!(
        matches!(&c, Completion::Fail { .. } | Completion::Info { .. }),
        "write just after the kill: {c:?}"
    );
    // With no connection to reuse, a stopped server refuses the connection: a definite fail,
    // and a quick one.
    let eps = vec![Endpoint {
        index: 0,
        id: 1,
        name: "n1".into(),
        addr: addr(cp),
    }];
    let a = spec.adapter(eps).expect("etcd adapter");
    let t0 = Instant::now();
    let c = a
        .invoke(0, &req(Fun::Write, Some("etcd-a"), json!(9)), OP_TIMEOUT)
        .await;
    assert!(
        matches!(&c, Completion::Fail { error, node: 0 } if error.contains("connect")),
        "write to a stopped etcd: {c:?}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t0.elapsed()
    );
    let c = a
        .invoke(
            0,
            &req(Fun::Append, Some("etcd-list"), json!(12)),
            OP_TIMEOUT,
        )
        .await;
    assert!(
        matches!(c, Completion::Fail { .. }),
        "append to a stopped etcd: {c:?}"
    );
    assert!(a.status(0, Duration::from_secs(1)).await.is_err());
}

/// Start an `n`-node etcd cluster on free loopback ports; its client endpoints.
fn start_etcd(procs: &mut Procs, etcd: &Path, n: usize) -> Vec<Endpoint> {
    let ports = free_ports(2 * n);
    let (client, peer) = ports.split_at(n);
    let initial = (0..n)
        .map(|i| format!("n{}=http://127.0.0.1:{}", i + 1, peer[i]))
        .collect::<Vec<_>>()
        .join(",");
    for i in 0..n {
        let name = format!("n{}", i + 1);
        let data = procs.dir().join(&name);
        let args: Vec<String> = [
            "--name",
            &name,
            "--data-dir",
            &data.display().to_string(),
            "--listen-client-urls",
            &format!("http://127.0.0.1:{}", client[i]),
            "--advertise-client-urls",
            &format!("http://127.0.0.1:{}", client[i]),
            "--listen-peer-urls",
            &format!("http://127.0.0.1:{}", peer[i]),
            "--initial-advertise-peer-urls",
            &format!("http://127.0.0.1:{}", peer[i]),
            "--initial-cluster",
            &initial,
            "--initial-cluster-state",
            "new",
            "--heartbeat-interval",
            "100",
            "--election-timeout",
            "1000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        procs.spawn(etcd, &args, &format!("{name}.log"));
    }
    (0..n)
        .map(|i| Endpoint {
            index: i,
            id: i as u64 + 1,
            name: format!("n{}", i + 1),
            addr: addr(client[i]),
        })
        .collect()
}

/// etcd reached only through etcdctl, from the shipped spec file: every op on every node of a
/// real 3-node cluster, checked against the native etcd adapter on the same store, then a
/// paused node (info: it may have got the request) and a stopped one (a put that never found
/// a connection is a fail; a txn, which etcdctl never times out, is info at the op's timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_adapter_drives_a_real_etcd_cluster_through_etcdctl() {
    let Ok(etcd) = raftcheck::cluster::find_binary("etcd") else {
        skip("etcd not installed (Debian package etcd-server)");
        return;
    };
    if raftcheck::cluster::find_binary("etcdctl").is_err() {
        skip("etcdctl not installed (Debian package etcd-client)");
        return;
    }
    let mut procs = Procs::new(tempfile::tempdir().expect("tempdir"));
    let eps = start_etcd(&mut procs, &etcd, 3);
    let root = env!("CARGO_MANIFEST_DIR");
    let spec = ClusterSpec::load(&Path::new(root).join("clusters/etcd-ctl.toml"))
        .expect("clusters/etcd-ctl.toml");
    assert_eq!(
        spec.client, "command",
        "etcd-ctl.toml must use only the command adapter"
    );
    let ctl = spec.adapter(eps.clone()).expect("command adapter");
    let native = cluster_spec("binary = \"etcd\"\nclient = \"etcd\"\nclient_port = 2379\n")
        .adapter(eps.clone())
        .expect("etcd adapter");
    // The command adapter cannot ask for a role; the native one says when the cluster is up.
    let (leader, _) = wait_for_leader(native.as_ref(), 3, &procs).await;
    assert!(matches!(
        ctl.status(0, Duration::from_secs(1)).await,
        Err(raftcheck::client::StatusError::Unsupported(_))
    ));

    // Followers forward to the leader inside etcd: every op ends on the node it was sent to.
    for node in 0..3 {
        exercise(
            ctl.as_ref(),
            node,
            &format!("ctl-{node}"),
            Some(node),
            false,
        )
        .await;
    }

    // One store: what one adapter wrote, the other reads, and cas sees it.
    let c = ctl
        .invoke(1, &req(Fun::Write, Some("shared"), json!(41)), OP_TIMEOUT)
        .await;
    ok_value(&c, "write through etcdctl");
    let c = native
        .invoke(2, &req(Fun::Read, Some("shared"), Value::Null), OP_TIMEOUT)
        .await;
    assert_eq!(ok_value(&c, "read through the gateway"), json!(41));
    let c = native
        .invoke(
            0,
            &req(Fun::Cas, Some("shared"), json!([41, 42])),
            OP_TIMEOUT,
        )
        .await;
    ok_value(&c, "cas through the gateway");
    let c = ctl
        .invoke(2, &req(Fun::Read, Some("shared"), Value::Null), OP_TIMEOUT)
        .await;
    assert_eq!(ok_value(&c, "read through etcdctl"), json!(42));

    // A paused follower accepts the TCP connection in its kernel and never answers: etcdctl
    // gives up at its --command-timeout with a plain deadline error, which is info.
    let other = (leader + 1) % 3;
    procs.signal(other, nix::sys::signal::Signal::SIGSTOP);
    let t0 = Instant::now();
    let c = ctl
        .invoke(
            other,
            &req(Fun::Write, Some("paused"), json!(1)),
            OP_TIMEOUT,
        )
        .await;
    assert!(
        matches!(&c, Completion::Info { node, .. } if *node == other),
        "write to a paused node: {c:?}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t0.elapsed()
    );
    procs.signal(other, nix::sys::signal::Signal::SIGCONT);

    // A stopped node: put and get find no connection before their deadline (never sent: fail);
    // txn waits for one forever, so the adapter kills it at the op's timeout (info).
    procs.kill(other);
    let short = Duration::from_millis(2500);
    for (f, v) in [(Fun::Write, json!(9)), (Fun::Read, Value::Null)] {
        let t0 = Instant::now();
        let c = ctl.invoke(other, &req(f, Some("dead"), v), short).await;
        assert!(
            matches!(&c, Completion::Fail { node, error }
                if *node == other && error.starts_with("exit 1: code = DeadlineExceeded")),
            "{f:?} on a stopped node: {c:?}"
        );
        assert!(t0.elapsed() < short, "took {:?}", t0.elapsed());
    }
    let t0 = Instant::now();
    let c = ctl
        .invoke(
            other,
            &req(Fun::Cas, Some("dead"), json!([1, 2])),
            Duration::from_millis(800),
        )
        .await;
    assert_eq!(
        c,
        Completion::Info {
            error: "timeout".into(),
            node: other
        }
    );
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t0.elapsed()
    );
    // The two live nodes still form a quorum and serve through etcdctl.
    let live = (other + 1) % 3;
    let c = ctl
        .invoke(
            live,
            &req(Fun::Read, Some("shared"), Value::Null),
            OP_TIMEOUT,
        )
        .await;
    assert_eq!(ok_value(&c, "read with one node down"), json!(42));
}

/// A 3-node raftkv cluster on loopback with `extra` flags, and its endpoints.
fn raftkv_cluster(raftkv: &Path, extra: &[&str]) -> (Procs, Vec<Endpoint>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut procs = Procs::new(dir);
    let ports = free_ports(3);
    let peers = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    for (i, p) in ports.iter().enumerate() {
        let data = procs.dir().join(format!("n{}", i + 1));
        let mut args: Vec<String> = vec![
            "--id".into(),
            (i + 1).to_string(),
            "--listen".into(),
            format!("127.0.0.1:{p}"),
            "--peers".into(),
            peers.clone(),
            "--data-dir".into(),
            data.display().to_string(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        procs.spawn(raftkv, &args, &format!("n{}.log", i + 1));
    }
    let eps: Vec<Endpoint> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| Endpoint {
            index: i,
            id: i as u64 + 1,
            name: format!("n{}", i + 1),
            addr: addr(*p),
        })
        .collect();
    (procs, eps)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raftkv_and_http_adapters_against_a_raftkv_cluster() {
    let Ok(raftkv) = raftcheck::cluster::find_binary("raftkv") else {
        skip("raftkv binary not found next to the test executable: build the workspace first (cargo build --workspace)");
        return;
    };
    let (mut procs, eps) = raftkv_cluster(&raftkv, &[]);

    let root = env!("CARGO_MANIFEST_DIR");
    let raftkv_spec = ClusterSpec::load(&Path::new(root).join("clusters/raftkv.toml"))
        .expect("clusters/raftkv.toml");
    let http_spec = ClusterSpec::load(&Path::new(root).join("clusters/raftkv-http.toml"))
        .expect("clusters/raftkv-http.toml");
    assert_eq!(
        http_spec.client, "http",
        "raftkv-http.toml must use only the http adapter"
    );
    let native = raftkv_spec.adapter(eps.clone()).expect("raftkv adapter");
    let declarative = http_spec.adapter(eps.clone()).expect("http adapter");

    let (leader, st) = wait_for_leader(native.as_ref(), 3, &procs).await;
    assert!(st.iter().all(|s| s.term >= 1), "{st:?}");
    // The http adapter's status endpoint reads the same thing.
    let (leader2, _) = wait_for_leader(declarative.as_ref(), 3, &procs).await;
    assert_eq!(leader, leader2);

    // Sent to the leader, and to a follower (the 421 redirect is followed once).
    let follower = (leader + 1) % 3;
    for (name, a) in [("raftkv", &native), ("http", &declarative)] {
        exercise(a.as_ref(), leader, &format!("{name}-l"), Some(leader), true).await;
        exercise(
            a.as_ref(),
            follower,
            &format!("{name}-f"),
            Some(leader),
            true,
        )
        .await;
    }

    // The two adapters see one store: what one wrote, the other reads.
    let c = native
        .invoke(
            follower,
            &req(Fun::Write, Some("shared"), json!(77)),
            OP_TIMEOUT,
        )
        .await;
    ok_value(&c, "shared write");
    let c = declarative
        .invoke(
            follower,
            &req(Fun::Read, Some("shared"), Value::Null),
            OP_TIMEOUT,
        )
        .await;
    assert_eq!(ok_value(&c, "shared read"), json!(77));

    // A paused node (SIGSTOP) accepts the connection in its kernel and never answers: the op
    // may have been received, so it ends as info at the op's timeout, not later.
    let other = (leader + 2) % 3;
    procs.signal(other, nix::sys::signal::Signal::SIGSTOP);
    for a in [&native, &declarative] {
        let t0 = Instant::now();
        let c = a
            .invoke(
                other,
                &req(Fun::Write, Some("paused"), json!(1)),
                Duration::from_millis(700),
            )
            .await;
        assert!(
            matches!(&c, Completion::Info { error, node } if error == "timeout" && *node == other),
            "write to a paused node: {c:?}"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "took {:?}",
            t0.elapsed()
        );
    }
    procs.signal(other, nix::sys::signal::Signal::SIGCONT);

    // A stopped node: an op on a pooled connection the client has not yet seen closed may end
    // as info, never ok; with no connection to reuse, the refused connection is a definite,
    // quick fail through both adapters.
    procs.kill(other);
    for a in [&native, &declarative] {
        let c = bounded_invoke(a.as_ref(), other, req(Fun::Write, Some("dead"), json!(0))).await;
        assert!(
            matches!(&c, Completion::Fail { .. } | Completion::Info { .. }),
            "write just after the kill: {c:?}"
        );
    }
    let native = raftkv_spec.adapter(eps.clone()).expect("raftkv adapter");
    let declarative = http_spec.adapter(eps.clone()).expect("http adapter");
    for a in [&native, &declarative] {
        let t0 = Instant::now();
        let c = a
            .invoke(other, &req(Fun::Write, Some("dead"), json!(1)), OP_TIMEOUT)
            .await;
        assert!(
            matches!(&c, Completion::Fail { node, .. } if *node == other),
            "write to a stopped node: {c:?}"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "took {:?}",
            t0.elapsed()
        );
        assert!(a.status(other, Duration::from_secs(1)).await.is_err());
    }
}

/// tests/fixtures/specs/raftkv-text.toml against raftkv --text-api, which answers every
/// request with 200 and a text body (`Error: compare failed`, `Error: not the leader ...`):
/// the matchers, text and form bodies, query strings, text values and `[http.cas_absent]`
/// must record each outcome as it happened. The same spec without its matchers is then shown
/// to take a refused write for an acknowledged one (the unsafe default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_adapter_describes_a_text_server_that_answers_errors_with_200() {
    let Ok(raftkv) = raftcheck::cluster::find_binary("raftkv") else {
        skip("raftkv binary not found next to the test executable: build the workspace first (cargo build --workspace)");
        return;
    };
    let (procs, eps) = raftkv_cluster(&raftkv, &["--text-api"]);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/specs/raftkv-text.toml");
    let spec = ClusterSpec::load(&path).expect("tests/fixtures/specs/raftkv-text.toml");
    assert!(
        spec.args.iter().any(|a| a == "--text-api"),
        "the spec starts raftkv in text mode"
    );
    let text = spec.adapter(eps.clone()).expect("http adapter");
    let (leader, _) = wait_for_leader(text.as_ref(), 3, &procs).await;
    let follower = (leader + 1) % 3;

    // On the leader: read values as text, cas mismatches, cas from null through cas_absent,
    // form appends and list reads, all recorded as they happened.
    exercise(text.as_ref(), leader, "text", Some(leader), true).await;

    // On a follower, every op is answered `200 Error: not the leader ...` and nothing is done:
    // a definite fail, never ok, and never a mismatch (which would claim an observation).
    let ops = [
        req(Fun::Read, Some("text-a"), Value::Null),
        req(Fun::Write, Some("text-f"), json!(9001)),
        req(Fun::Cas, Some("text-a"), json!([2, 9002])),
        req(Fun::Cas, Some("text-new"), json!([null, 9003])),
        req(Fun::Append, Some("text-list"), json!(9004)),
    ];
    for r in &ops {
        let c = text.invoke(follower, r, OP_TIMEOUT).await;
        assert!(
            matches!(&c, Completion::Fail { error, node } if error.contains("not the leader") && *node == follower),
            "{:?} on a follower: {c:?}",
            r.f
        );
    }
    let c = text
        .invoke(
            leader,
            &req(Fun::Read, Some("text-f"), Value::Null),
            OP_TIMEOUT,
        )
        .await;
    assert_eq!(ok_value(&c, "the follower wrote nothing"), Value::Null);

    // The unsafe default: without matchers, the 200 makes the refused write look acknowledged.
    let mut bare = String::new();
    let mut in_match = false;
    for line in std::fs::read_to_string(&path).expect("spec text").lines() {
        in_match |= line.starts_with("match = [");
        if !in_match {
            bare.push_str(line);
            bare.push('\n');
        }
        in_match &= !line.starts_with(']');
    }
    assert!(!bare.contains("regex"), "{bare}");
    let unsafe_spec: ClusterSpec = toml::from_str(&bare).expect("the spec without matchers");
    let unsafe_adapter = unsafe_spec.adapter(eps.clone()).expect("http adapter");
    let c = unsafe_adapter
        .invoke(
            follower,
            &req(Fun::Write, Some("text-f"), json!(9005)),
            OP_TIMEOUT,
        )
        .await;
    assert!(
        matches!(c, Completion::Ok { .. }),
        "without matchers a 200 'Error: not the leader' reads as ok: {c:?}"
    );
    let c = text
        .invoke(
            leader,
            &req(Fun::Read, Some("text-f"), Value::Null),
            OP_TIMEOUT,
        )
        .await;
    assert_eq!(
        ok_value(&c, "yet nothing was written"),
        Value::Null,
        "{}",
        procs.log_tails()
    );
}

/// True when every thread of `pid` is in state T (stopped), per /proc.
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|t| {
        std::fs::read_to_string(t.path().join("stat"))
            .ok()
            .and_then(|st| {
                st.rsplit(')')
                    .next()
                    .map(|rest| rest.trim_start().starts_with('T'))
            })
            .unwrap_or(false)
    })
}
