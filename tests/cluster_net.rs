//! End-to-end tests of the cluster layer with real processes, real namespaces and real iptables:
//! no mocks.
//!
//! Tests marked "netns" need root with `ip` and `iptables`. Without them they print
//! `SKIPPED: <why>` to stderr and pass, unless `RAFTCHECK_REQUIRE_ALL=1`, where they fail.
//!
//! Traffic only ever goes to loopback or to addresses inside namespaces these tests create, and
//! every address is checked to be routed to the test's own bridge before the first packet.
//!
//! Helper processes are this test binary re-invoked with `RAFTCHECK_TEST_HELPER` set (see
//! [`helper_entry`]): a tiny TCP "pong" server to place in a namespace, and a stand-in harness
//! for the parent-death test. Nothing depends on nc, ping or python being installed.

use nix::sched::{setns, CloneFlags};
use raftcheck::cluster::clean::{clean, clean_run, CleanOptions, CleanReport, Item, Live, Stale};
use raftcheck::cluster::host::{Host, LocalHost};
use raftcheck::cluster::net::{
    bridge_name, new_run_id, rule_comment, run_id_of, Grudge, NetMode, Network,
};
use raftcheck::cluster::process::{NodeProc, SpawnSpec};
use raftcheck::cluster::runlock::{lock_file, RunLock, StaleLock};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Set in a re-invoked copy of this binary to make it a helper instead of a test run.
const HELPER_ENV: &str = "RAFTCHECK_TEST_HELPER";

/// The port the pong helper listens on in every namespace.
const PONG_PORT: u16 = 7000;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Not a real test: when this binary is re-invoked with `RAFTCHECK_TEST_HELPER`, this is the
/// helper's main. Without the variable it does nothing.
#[test]
fn helper_entry() {
    let Ok(mode) = std::env::var(HELPER_ENV) else {
        return;
    };
    // Whatever happens, a helper never outlives 60 s.
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(60));
        std::process::exit(0);
    });
    if let Some(addr) = mode.strip_prefix("listen=") {
        pong_server(addr);
    } else if let Some(run_id) = mode.strip_prefix("pdeathsig=") {
        stand_in_harness(run_id);
    } else if mode == "controller" {
        stand_in_controller();
    }
    std::process::exit(0);
}

/// Answer "pong\n" to every connection on `addr`.
fn pong_server(addr: &str) {
    let listener = TcpListener::bind(addr).expect("helper: bind");
    for mut conn in listener.incoming().flatten() {
        let _ = conn.write_all(b"pong\n");
    }
}

/// A stand-in harness: start a node from a thread that then exits (the trap a naive
/// implementation falls into: PDEATHSIG would fire right then), report its pid, and wait to be
/// killed. Nothing but the parent-death signal may kill the node, so its handle is forgotten.
fn stand_in_harness(run_id: &str) {
    let spec = SpawnSpec {
        argv: vec!["sleep".into(), "50".into()],
        env: vec![],
        log: std::env::temp_dir().join(format!("{run_id}-pdeathsig.log")),
        run_id: run_id.into(),
        node: "n1".into(),
    };
    let node = std::thread::spawn(move || LocalHost::new("n1").spawn(&spec))
        .join()
        .expect("spawning thread")
        .expect("spawn");
    println!("CHILD {}", node.pid());
    std::io::stdout().flush().expect("flush");
    std::mem::forget(node);
    std::thread::sleep(Duration::from_secs(50));
}

/// A stand-in run controller: take a run lock as a run does, start one node of that run,
/// report "RUN <run id> <node pid>", and wait to be killed.
fn stand_in_controller() {
    let lock = new_run_id().expect("helper: run id");
    let rid = lock.run_id().to_string();
    let node = LocalHost::new("n1")
        .spawn(&SpawnSpec {
            argv: vec!["sleep".into(), "50".into()],
            env: vec![],
            log: std::env::temp_dir().join(format!("{rid}-controller.log")),
            run_id: rid.clone(),
            node: "n1".into(),
        })
        .expect("helper: spawn");
    println!("RUN {rid} {}", node.pid());
    std::io::stdout().flush().expect("flush");
    std::thread::sleep(Duration::from_secs(50));
    drop(node);
    drop(lock);
}

/// argv that re-invokes this test binary as a helper (the mode goes in the environment).
fn helper_argv() -> Vec<String> {
    let exe = std::env::current_exe().expect("current_exe");
    vec![
        exe.display().to_string(),
        "helper_entry".into(),
        "--exact".into(),
        "--nocapture".into(),
        "--test-threads=1".into(),
        "-q".into(),
    ]
}

/// Whether netns tests can run here; prints SKIPPED (or panics under RAFTCHECK_REQUIRE_ALL=1).
fn netns_available() -> bool {
    let (mode, why) = Network::detect();
    if mode == NetMode::Netns {
        return true;
    }
    if std::env::var("RAFTCHECK_REQUIRE_ALL").as_deref() == Ok("1") {
        panic!("netns test cannot run and RAFTCHECK_REQUIRE_ALL=1: {why}");
    }
    // Straight to the process's stderr: libtest captures `eprintln!` of passing tests, and a
    // skip should be visible in CI logs.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
    false
}

/// A fresh run id with its lock held (as a run holds it), so that a `raftcheck clean` going
/// on meanwhile leaves this test's resources alone. Keep the lock alive as long as the id.
fn run_id() -> (RunLock, String) {
    let lock = new_run_id().expect("run id");
    let rid = lock.run_id().to_string();
    (lock, rid)
}

/// Poll `cond` every 50 ms until it holds or `timeout` passes; panic with `what` if it never does.
fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    for _ in 0..10_000 {
        if cond() {
            return;
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {timeout:?} waiting until {what}");
}

/// A process's state letter from /proc (R, S, T, Z, ...), `None` if it is gone.
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

/// Alive = exists and is not a zombie.
fn alive(pid: u32) -> bool {
    !matches!(proc_state(pid), None | Some('Z') | Some('X'))
}

/// Live processes (not zombies) in process group `pgid`.
fn live_group_members(pgid: u32) -> Vec<u32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        // fields after the name: state, ppid, pgrp
        if f.len() > 2 && f[2] == pgid.to_string() && f[0] != "Z" {
            v.push(pid);
        }
    }
    v
}

/// Kills a pid on drop: a test that fails half-way must not leave a helper running.
struct KillOnDrop(Vec<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for &p in &self.0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn spec(run_id: &str, node: &str, log: &Path, argv: &[&str]) -> SpawnSpec {
    SpawnSpec {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: vec![],
        log: log.to_path_buf(),
        run_id: run_id.into(),
        node: node.into(),
    }
}

/// Connect, expect "pong". False on any failure (refused, timed out, wrong answer).
fn pong(addr: SocketAddr, timeout: Duration) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(timeout));
    let mut buf = String::new();
    s.read_to_string(&mut buf).is_ok() && buf == "pong\n"
}

/// [`pong`] from inside namespace `ns`: a fresh thread joins the namespace (setns affects only
/// the calling thread) and connects from there.
fn pong_from(ns: &str, addr: SocketAddr, timeout: Duration) -> bool {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let f = std::fs::File::open(&path).expect("open netns");
        setns(&f, CloneFlags::CLONE_NEWNET).expect("setns");
        pong(addr, timeout)
    })
    .join()
    .expect("pong thread")
}

/// Safety net: `ip` must route `ip` through our own bridge, never out of the machine.
fn assert_on_bridge(ip: IpAddr, bridge: &str) {
    let out = Command::new("ip")
        .args(["route", "get", &ip.to_string()])
        .output()
        .expect("ip route get");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("dev {bridge} ")),
        "{ip} is not routed to {bridge}: {text}"
    );
}

/// Everything of run `run_id` still present: namespaces, links, root iptables rules.
fn leftovers(run_id: &str) -> Vec<String> {
    let text = |args: &[&str]| {
        let out = Command::new(args[0])
            .args(&args[1..])
            .output()
            .expect("run");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mut left = Vec::new();
    for l in text(&["ip", "netns", "list"]).lines() {
        let name = l.split_whitespace().next().unwrap_or("");
        if run_id_of(name) == Some(run_id) {
            left.push(format!("namespace {name}"));
        }
    }
    for l in text(&["ip", "-o", "link", "show"]).lines() {
        let name = l
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .trim_end_matches(':');
        let name = name.split('@').next().unwrap_or("");
        if run_id_of(name) == Some(run_id) {
            left.push(format!("link {name}"));
        }
    }
    let comment = rule_comment(run_id);
    for l in text(&["iptables", "-w", "10", "-S"]).lines() {
        if l.contains(&format!("\"{comment}\"")) || l.ends_with(&comment) {
            left.push(format!("rule {l}"));
        }
    }
    left
}

/// Node `i` isolated from all others (both directions).
fn isolate(i: usize, n: usize) -> Grudge {
    let mut g = Grudge::new();
    for j in (0..n).filter(|&j| j != i) {
        g.entry(i).or_default().insert(j);
        g.entry(j).or_default().insert(i);
    }
    g
}

/// Our rules in one node's INPUT chain.
fn drop_rules(h: &dyn Host, run_id: &str) -> Vec<String> {
    let out = h
        .exec(&["iptables", "-w", "10", "-S", "INPUT"])
        .expect("iptables -S");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&rule_comment(run_id)))
        .map(String::from)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Network: namespaces, connectivity, partitions
// ---------------------------------------------------------------------------------------------

/// Three nodes, each a real process in its own namespace. Everyone reaches everyone; isolating
/// n1 cuts n1 off from its peers in both directions but never from the harness (the bridge's
/// address is never matched); a new grudge replaces the old one; heal restores everything.
#[test]
fn netns_partition_isolates_a_node_but_never_the_harness() {
    if !netns_available() {
        return;
    }
    let (_lock, rid) = run_id();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut net = Network::create(&rid, 3, NetMode::Netns, None).expect("create network");
    assert_eq!(net.mode(), NetMode::Netns);
    let hosts = net.hosts();
    let ns: Vec<String> = hosts
        .iter()
        .map(|h| h.netns().expect("netns").to_string())
        .collect();
    for h in &hosts {
        assert_on_bridge(h.ip(), &bridge_name(&rid));
        assert_ne!(Some(h.ip()), net.bridge_ip());
    }

    // One pong server per namespace, all on the same port: each node has its own stack.
    let nodes: Vec<Box<dyn NodeProc>> = hosts
        .iter()
        .map(|h| {
            let mut s = spec(
                &rid,
                h.name(),
                &dir.path().join(format!("{}.log", h.name())),
                &[],
            );
            s.argv = helper_argv();
            s.env = vec![(HELPER_ENV.into(), format!("listen={}:{PONG_PORT}", h.ip()))];
            h.spawn(&s).expect("spawn in namespace")
        })
        .collect();
    // `ip netns exec` execs in place: the pid we hold becomes the server itself.
    let exe = std::env::current_exe().expect("current_exe");
    for n in &nodes {
        wait_until(
            Duration::from_secs(10),
            "`ip netns exec` became the server",
            || {
                std::fs::read_link(format!("/proc/{}/exe", n.pid()))
                    .is_ok_and(|t| t.starts_with(&exe))
            },
        );
    }
    // Node interfaces carry no IPv6 address, so IPv4 rules cover every path between nodes.
    let v6 = hosts[0]
        .exec(&["ip", "-6", "addr", "show", "dev", "eth0"])
        .expect("ip -6 addr");
    assert!(
        !String::from_utf8_lossy(&v6.stdout).contains("inet6"),
        "{v6:?}"
    );
    let addr = |i: usize| SocketAddr::new(hosts[i].ip(), PONG_PORT);
    let ok = Duration::from_secs(2);
    let cut = Duration::from_millis(700);
    for (i, h) in hosts.iter().enumerate() {
        wait_until(
            Duration::from_secs(15),
            &format!("{} answers", h.name()),
            || pong(addr(i), ok),
        );
    }
    let pairs = [(0, 1), (1, 0), (0, 2), (2, 0), (1, 2), (2, 1)];
    for (a, b) in pairs {
        assert!(
            pong_from(&ns[a], addr(b), ok),
            "n{} -> n{} before any fault",
            a + 1,
            b + 1
        );
    }

    // Isolate n1: it drops n2 and n3, they drop it.
    net.partition(&isolate(0, 3)).expect("partition");
    assert_eq!(drop_rules(&*hosts[0], &rid).len(), 2);
    assert!(!pong_from(&ns[1], addr(0), cut), "n2 -> n1 must be dropped");
    assert!(
        !pong_from(&ns[0], addr(1), cut),
        "n1 -> n2: the answers are dropped"
    );
    assert!(pong_from(&ns[1], addr(2), ok), "n2 -> n3 stays connected");
    for i in 0..3 {
        assert!(
            pong(addr(i), ok),
            "the harness must always reach n{}",
            i + 1
        );
    }

    // A new grudge replaces the old one: now only n2 drops n3.
    let g: Grudge = [(1, [2].into())].into();
    net.partition(&g).expect("second partition");
    assert!(
        drop_rules(&*hosts[0], &rid).is_empty(),
        "the old grudge's rules are gone"
    );
    assert!(
        pong_from(&ns[1], addr(0), ok),
        "n2 -> n1 healed by the new grudge"
    );
    assert!(!pong_from(&ns[2], addr(1), cut), "n3 -> n2 now dropped");

    // Bad grudges are refused before anything changes.
    let bad: Grudge = [(0, [7].into())].into();
    assert!(net.partition(&bad).unwrap_err().to_string().contains('7'));

    net.heal().expect("heal");
    net.heal().expect("heal is idempotent");
    for h in &hosts {
        assert!(drop_rules(&**h, &rid).is_empty());
    }
    for (a, b) in pairs {
        assert!(
            pong_from(&ns[a], addr(b), ok),
            "n{} -> n{} after heal",
            a + 1,
            b + 1
        );
    }

    for n in &nodes {
        n.stop(Duration::from_secs(2)).expect("stop");
        assert!(n.exited().is_some());
    }
    drop(nodes);
    assert_eq!(net.teardown(), Vec::<String>::new());
    assert_eq!(
        net.teardown(),
        Vec::<String>::new(),
        "teardown is idempotent"
    );
    assert_eq!(leftovers(&rid), Vec::<String>::new());
}

/// Parallel runs pick distinct subnets; a subnet held by a live run is refused when asked for.
#[test]
fn netns_concurrent_networks_get_distinct_subnets() {
    if !netns_available() {
        return;
    }
    let made: Vec<(RunLock, Network)> = (0..3)
        .map(|_| {
            std::thread::spawn(|| {
                let (lock, rid) = run_id();
                let net = Network::create(&rid, 1, NetMode::Netns, None).expect("create");
                (lock, net)
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect();
    let subnets: std::collections::BTreeSet<String> = made
        .iter()
        .map(|(_, n)| n.subnet().expect("subnet"))
        .collect();
    assert_eq!(subnets.len(), 3, "{subnets:?}");
    for (_, n) in &made {
        let s = n.subnet().expect("subnet");
        assert!(s.starts_with("10.231.") && s.ends_with(".0/24"), "{s}");
        let h = &n.hosts()[0];
        assert_eq!(h.ip().to_string(), s.replace(".0/24", ".11"), "n1 is .11");
    }

    let taken = made[0].1.subnet().expect("subnet");
    let (_lock, rid) = run_id();
    let e = Network::create(&rid, 1, NetMode::Netns, Some(&taken)).unwrap_err();
    assert!(e.to_string().contains("in use"), "{e}");
    assert!(Network::create(&rid, 1, NetMode::Netns, Some("10.231.1.7/24")).is_err());

    // An explicit free subnet is used as given.
    let mut given = None;
    for c in 200..230 {
        let s = format!("10.231.{c}.0/24");
        if let Ok(n) = Network::create(&rid, 2, NetMode::Netns, Some(&s)) {
            assert_eq!(n.subnet().as_deref(), Some(s.as_str()));
            assert_eq!(n.hosts()[1].ip().to_string(), format!("10.231.{c}.12"));
            given = Some(n);
            break;
        }
    }
    assert!(
        given.is_some(),
        "no explicit subnet in 10.231.200-229 could be used"
    );
    let ids: Vec<String> = made.iter().map(|(r, _)| r.run_id().to_string()).collect();
    drop(made);
    drop(given);
    for rid in ids {
        assert_eq!(leftovers(&rid), Vec::<String>::new());
    }
    // The subnets' lock files go with their networks.
    for s in subnets {
        let lock = format!(
            "/run/lock/raftcheck-subnet-{}.lock",
            s.trim_end_matches("/24")
        );
        assert!(!Path::new(&lock).exists(), "{lock} left behind");
    }
}

/// A test that panics half-way still leaves nothing behind: the network's and the node's
/// guards run during unwinding.
#[test]
fn netns_teardown_leaves_nothing_even_after_a_panic() {
    if !netns_available() {
        return;
    }
    let (_lock, rid) = run_id();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("n1.log");
    let pid = std::sync::Mutex::new(0u32);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let net = Network::create(&rid, 2, NetMode::Netns, None).expect("create");
        let node = net.hosts()[0]
            .spawn(&spec(&rid, "n1", &log, &["sleep", "30"]))
            .expect("spawn");
        *pid.lock().unwrap_or_else(|e| e.into_inner()) = node.pid();
        net.partition(&isolate(0, 2)).expect("partition");
        assert!(leftovers(&rid).len() >= 6, "{:?}", leftovers(&rid));
        panic!("deliberate panic with a network up");
    }));
    assert!(r.is_err());
    assert_eq!(leftovers(&rid), Vec::<String>::new());
    let pid = *pid.lock().unwrap_or_else(|e| e.into_inner());
    assert!(pid != 0 && !alive(pid), "node {pid} survived the panic");
}

/// A run that vanished without teardown (here: handles forgotten) is removed by `clean_run`:
/// its processes (found by RAFTCHECK_RUN_ID, and inside its namespaces), namespaces, links and
/// FORWARD rule. `clean_run` is `clean` restricted to one run id, so parallel tests are safe.
#[test]
fn netns_clean_removes_a_leaked_network() {
    if !netns_available() {
        return;
    }
    let (_lock, rid) = run_id();
    let dir = tempfile::tempdir().expect("tempdir");
    let (report, pids) = leak_a_run(&rid, dir.path(), || clean_run(&rid).expect("clean_run"));
    check_cleaned(&rid, &report, &pids);
}

/// The global `clean` (every stale run on the machine). Ignored by default because it also
/// removes the leftovers of other stale runs and of tests going on in parallel that hold no
/// run lock; run it alone with `cargo test --test cluster_net -- --ignored`.
#[test]
#[ignore = "removes every stale raftcheck run on this machine; run alone with --ignored"]
fn netns_global_clean_removes_a_leaked_network() {
    if !netns_available() {
        return;
    }
    let (lock, rid) = run_id();
    let dir = tempfile::tempdir().expect("tempdir");
    // A subnet lock file of a run that died: nobody holds it.
    let stale = format!("/run/lock/raftcheck-subnet-{rid}.lock");
    let stale = Path::new(&stale);
    if Path::new("/run/lock").is_dir() {
        std::fs::write(stale, b"").expect("write stale lock");
    }
    let (report, pids) = leak_a_run(&rid, dir.path(), || {
        // The run "dies": its lock is released but its lock file stays, naming a dead pid.
        drop(lock);
        write_stale_lock(&rid);
        clean(&CleanOptions::default()).expect("clean")
    });
    check_cleaned(&rid, &report, &pids);
    assert!(!stale.exists(), "{:?}", report.removed_lines());
    assert!(!lock_file(&rid).exists(), "{:?}", report.removed_lines());
}

/// Write the lock file a run killed with SIGKILL leaves: nobody holds it, its pid is dead.
fn write_stale_lock(rid: &str) {
    let pid_max: i32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4_194_304);
    std::fs::write(
        lock_file(rid),
        format!("run_id={rid}\npid={pid_max}\nstart_time=1\n"),
    )
    .expect("write a stale run lock");
}

/// Make a 2-node network with a node in n2, a partition, and a stray loopback process of the
/// same run; forget every handle; then run `cleaner`. Returns its lines and the node pids.
fn leak_a_run(
    rid: &str,
    dir: &Path,
    cleaner: impl FnOnce() -> CleanReport,
) -> (CleanReport, Vec<u32>) {
    let net = Network::create(rid, 2, NetMode::Netns, None).expect("create");
    let in_ns = net.hosts()[1]
        .spawn(&spec(rid, "n2", &dir.join("n2.log"), &["sleep", "30"]))
        .expect("spawn in namespace");
    let stray = LocalHost::new("n3")
        .spawn(&spec(rid, "n3", &dir.join("n3.log"), &["sleep", "30"]))
        .expect("spawn on loopback");
    in_ns.pause().expect("pause");
    net.partition(&isolate(0, 2)).expect("partition");
    let pids = vec![in_ns.pid(), stray.pid()];
    let _guard = KillOnDrop(pids.clone());
    std::mem::forget(in_ns);
    std::mem::forget(stray);
    std::mem::forget(net);
    assert!(!leftovers(rid).is_empty());
    (cleaner(), pids)
}

fn check_cleaned(rid: &str, report: &CleanReport, pids: &[u32]) {
    let all = report.removed_lines().join("\n");
    for want in [
        format!("removed namespace {rid}-n1"),
        format!("removed namespace {rid}-n2"),
        format!("removed link {rid}-br"),
        "removed iptables rule".to_string(),
        format!("of run {rid}"),
    ] {
        assert!(all.contains(&want), "missing {want:?} in:\n{all}");
    }
    assert!(report.failed.is_empty(), "{:?}\n{all}", report.failed);
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    for &p in pids {
        wait_until(
            Duration::from_secs(5),
            &format!("stray {p} is dead"),
            || !alive(p),
        );
    }
    assert_eq!(leftovers(rid), Vec::<String>::new());
    let again = clean_run(rid).expect("second clean");
    assert!(again.nothing_to_clean(), "clean is idempotent: {again:?}");
}

// ---------------------------------------------------------------------------------------------
// Processes (loopback: no root needed)
// ---------------------------------------------------------------------------------------------

/// pause = SIGSTOP (state T), resume = SIGCONT, kill = SIGKILL; `exited` reports each.
#[test]
fn pause_resume_and_kill() {
    let (_lock, rid) = run_id();
    let dir = tempfile::tempdir().expect("tempdir");
    let h = LocalHost::new("n1");
    let node = h
        .spawn(&spec(
            &rid,
            "n1",
            &dir.path().join("n1.log"),
            &["sleep", "30"],
        ))
        .expect("spawn");
    let pid = node.pid();
    assert!(node.exited().is_none());
    node.pause().expect("pause");
    wait_until(Duration::from_secs(5), "the node is stopped", || {
        proc_state(pid) == Some('T')
    });
    node.resume().expect("resume");
    wait_until(Duration::from_secs(5), "the node runs again", || {
        proc_state(pid) == Some('S')
    });
    node.kill().expect("kill");
    let st = node.exited().expect("kill waits for the exit");
    assert_eq!(st.signal(), Some(9), "{st}");
    // A dead node cannot be paused: the nemesis must not believe it did.
    assert!(node.pause().is_err());
    node.kill().expect("killing a dead node is not an error");
}

/// Stopping a paused node still ends it with SIGTERM (SIGCONT first: a stopped process keeps
/// SIGTERM pending), and quickly.
#[test]
fn stop_continues_a_paused_node_before_terminating_it() {
    let (_lock, rid) = run_id();
    let dir = tempfile::tempdir().expect("tempdir");
    let node = LocalHost::new("n1")
        .spawn(&spec(
            &rid,
            "n1",
            &dir.path().join("n1.log"),
            &["sleep", "30"],
        ))
        .expect("spawn");
    node.pause().expect("pause");
    wait_until(Duration::from_secs(5), "the node is stopped", || {
        proc_state(node.pid()) == Some('T')
    });
    let t = Instant::now();
    node.stop(Duration::from_secs(10)).expect("stop");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "stop waited {:?}",
        t.elapsed()
    );
    assert_eq!(node.exited().and_then(|s| s.signal()), Some(15));
    node.stop(Duration::from_secs(1))
        .expect("stop is idempotent");
}

/// A node that ignores SIGTERM is SIGKILLed after the grace period, with its whole process
/// group (here a child `sleep` the shell forked).
#[test]
fn stop_kills_the_whole_group_after_the_grace_period() {
    let (_lock, rid) = run_id();
    let dir = tempfile::tempdir().expect("tempdir");
    let node = LocalHost::new("n1")
        .spawn(&spec(
            &rid,
            "n1",
            &dir.path().join("n1.log"),
            &["sh", "-c", "trap '' TERM; sleep 30 & echo started; wait"],
        ))
        .expect("spawn");
    let pgid = node.pid();
    wait_until(Duration::from_secs(5), "the shell forked its child", || {
        live_group_members(pgid).len() >= 2
    });
    let t = Instant::now();
    node.stop(Duration::from_millis(300)).expect("stop");
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(node.exited().and_then(|s| s.signal()), Some(9));
    wait_until(
        Duration::from_secs(5),
        "no member of the group is left",
        || live_group_members(pgid).is_empty(),
    );
}

/// A node that exits by itself is reported by `exited` (the runner calls that a crash), with its
/// exit code; its output and the run id are in its log.
#[test]
fn exited_reports_a_crash_and_the_log_keeps_the_output() {
    let (_lock, rid) = run_id();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("logs").join("n2.log");
    let node = LocalHost::new("n2")
        .spawn(&spec(
            &rid,
            "n2",
            &log,
            &[
                "sh",
                "-c",
                "echo out-$RAFTCHECK_RUN_ID-$RAFTCHECK_NODE; echo err >&2; exit 3",
            ],
        ))
        .expect("spawn");
    let st = node
        .wait_exit(Duration::from_secs(10))
        .expect("the node exits");
    assert_eq!(st.code(), Some(3));
    assert_eq!(node.exited(), Some(st));
    assert!(
        node.pause().is_err(),
        "signalling an exited node is refused"
    );
    node.stop(Duration::from_secs(1))
        .expect("stopping a crashed node is fine");
    // A restart appends to the same log.
    let again = LocalHost::new("n2")
        .spawn(&spec(&rid, "n2", &log, &["sh", "-c", "echo second"]))
        .expect("restart");
    again.wait_exit(Duration::from_secs(10)).expect("exits");
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.contains(&format!("out-{rid}-n2")), "{text}");
    assert!(
        text.contains("err\n") && text.contains("second\n"),
        "{text}"
    );
    assert_eq!(text.matches("starting node n2").count(), 2, "{text}");
}

/// A binary that does not exist is an error naming the node, not a process.
#[test]
fn a_missing_binary_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_lock, rid) = run_id();
    let e = LocalHost::new("n1")
        .spawn(&spec(
            &rid,
            "n1",
            &dir.path().join("n1.log"),
            &["/nonexistent/raftkv"],
        ))
        .unwrap_err()
        .to_string();
    assert!(e.contains("n1") && e.contains("/nonexistent/raftkv"), "{e}");
}

/// Dropping the handle kills the node: a run that unwinds leaves no process behind.
#[test]
fn dropping_a_node_kills_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_lock, rid) = run_id();
    let node = LocalHost::new("n1")
        .spawn(&spec(
            &rid,
            "n1",
            &dir.path().join("n1.log"),
            &["sleep", "30"],
        ))
        .expect("spawn");
    let pid = node.pid();
    let _guard = KillOnDrop(vec![pid]);
    assert!(alive(pid));
    let shared: Arc<Box<dyn NodeProc>> = Arc::new(node);
    let t = std::thread::spawn({
        let s = Arc::clone(&shared);
        move || s.exited().is_none()
    });
    assert!(t.join().expect("thread"), "NodeProcess is Send + Sync");
    drop(shared);
    wait_until(Duration::from_secs(5), "the dropped node is dead", || {
        !alive(pid)
    });
}

/// Nodes die with the harness: a stand-in harness (this binary re-invoked) starts a node from a
/// short-lived thread, then is SIGKILLed. The node must outlive the spawning thread (the
/// PDEATHSIG trap) but not the harness.
#[test]
fn nodes_die_with_the_harness() {
    let (_lock, rid) = run_id();
    let argv = helper_argv();
    let mut harness = Command::new(&argv[0])
        .args(&argv[1..])
        .env(HELPER_ENV, format!("pdeathsig={rid}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the stand-in harness");
    let mut guard = KillOnDrop(vec![harness.id()]);
    let stdout = harness.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(pid) = line
                .strip_prefix("CHILD ")
                .and_then(|p| p.trim().parse().ok())
            {
                let _ = tx.send(pid);
                return;
            }
        }
    });
    let child: u32 = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the helper's node pid");
    guard.0.push(child);
    // The spawning thread has exited by now; the node must still be running.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        alive(child),
        "the node died with the thread that spawned it"
    );
    harness.kill().expect("SIGKILL the stand-in harness");
    harness.wait().expect("reap it");
    wait_until(
        Duration::from_secs(5),
        "the node died with its harness",
        || !alive(child),
    );
    let _ = std::fs::remove_file(std::env::temp_dir().join(format!("{rid}-pdeathsig.log")));
}

/// `clean_run` kills the stray processes of one run (found by RAFTCHECK_RUN_ID, paused or not)
/// and leaves other runs' processes alone. Needs no root.
#[test]
fn clean_kills_the_stray_processes_of_a_run() {
    let ((_lock, rid), (_other_lock, other)) = (run_id(), run_id());
    let dir = tempfile::tempdir().expect("tempdir");
    let h = LocalHost::new("n1");
    let mine = h
        .spawn(&spec(
            &rid,
            "n1",
            &dir.path().join("a.log"),
            &["sleep", "30"],
        ))
        .expect("spawn");
    let theirs = h
        .spawn(&spec(
            &other,
            "n1",
            &dir.path().join("b.log"),
            &["sleep", "30"],
        ))
        .expect("spawn");
    mine.pause().expect("pause");
    let (p, q) = (mine.pid(), theirs.pid());
    let _guard = KillOnDrop(vec![p]);
    std::mem::forget(mine);
    let lines = clean_run(&rid).expect("clean_run").removed_lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("killed process {p} (sleep) of run {rid}"))),
        "{lines:?}"
    );
    wait_until(Duration::from_secs(5), "the stray is dead", || !alive(p));
    assert!(alive(q), "another run's process was killed");
    drop(theirs);
}

/// `clean` restricted to one run id (so tests going on in parallel are never touched).
fn clean_only(rid: &str, force: bool) -> CleanReport {
    clean(&CleanOptions {
        force,
        only: Some(rid.to_string()),
    })
    .expect("clean")
}

/// A live run (a stand-in controller in another process, holding its run lock) is skipped by
/// `clean` and listed with its pid and what it kept; once the controller is killed with SIGKILL
/// the same run is stale: its lock file stays behind (the flock went with the process, the pid
/// is dead), and `clean` removes it. Needs no root.
#[test]
fn clean_skips_a_live_run_and_removes_it_once_its_controller_is_killed() {
    let argv = helper_argv();
    let mut harness = Command::new(&argv[0])
        .args(&argv[1..])
        .env(HELPER_ENV, "controller")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the stand-in controller");
    let mut guard = KillOnDrop(vec![harness.id()]);
    let stdout = harness.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some((rid, pid)) = line.strip_prefix("RUN ").and_then(|r| r.split_once(' ')) {
                if let Ok(pid) = pid.trim().parse::<u32>() {
                    let _ = tx.send((rid.to_string(), pid));
                    return;
                }
            }
        }
    });
    let (rid, node) = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the controller's run id and node pid");
    guard.0.push(node);
    let controller = harness.id() as i32;

    let r = clean_only(&rid, false);
    assert!(r.nothing_to_clean(), "{r:?}");
    assert_eq!(r.skipped.len(), 1, "{r:?}");
    assert_eq!(r.skipped[0].run_id, rid);
    assert_eq!(
        r.skipped[0].why,
        Live::LockHeld {
            pid: Some(controller)
        }
    );
    assert_eq!(r.skipped[0].kept.processes, vec![node as i32]);
    assert_eq!(
        r.skipped[0].to_string(),
        format!("skipped live run {rid} (pid {controller}, lock held): kept 1 process ({node})")
    );
    assert!(alive(node), "clean killed a live run's node");

    harness.kill().expect("SIGKILL the controller");
    harness.wait().expect("reap it");
    wait_until(Duration::from_secs(5), "the node died with it", || {
        !alive(node)
    });
    assert!(lock_file(&rid).exists(), "SIGKILL leaves the lock file");
    let r = clean_only(&rid, false);
    assert!(r.skipped.is_empty(), "{r:?}");
    assert_eq!(r.stale.len(), 1, "{r:?}");
    assert_eq!(
        r.stale[0].why,
        Stale::Lock(StaleLock::Exited { pid: controller })
    );
    assert_eq!(r.removed, vec![Item::RunLock(lock_file(&rid))]);
    assert!(r.failed.is_empty(), "{r:?}");
    assert!(!lock_file(&rid).exists());
    let _ = std::fs::remove_file(std::env::temp_dir().join(format!("{rid}-controller.log")));
}

/// `force` removes a live run's processes too, and says so; the lock, still held by its run,
/// stays. A run with no lock file is judged by its processes: while one still has its parent
/// (here, this test), it is taken for live. Needs no root.
#[test]
fn clean_force_removes_a_live_run_and_a_lockless_run_is_judged_by_its_parent() {
    let (lock, rid) = run_id();
    let dir = tempfile::tempdir().expect("tempdir");
    let h = LocalHost::new("n1");
    let node = h
        .spawn(&spec(
            &rid,
            "n1",
            &dir.path().join("a.log"),
            &["sleep", "30"],
        ))
        .expect("spawn");
    let me = std::process::id() as i32;
    let r = clean_only(&rid, false);
    assert!(r.nothing_to_clean(), "{r:?}");
    assert_eq!(r.skipped.len(), 1, "{r:?}");
    assert_eq!(r.skipped[0].why, Live::LockHeld { pid: Some(me) });
    assert!(alive(node.pid()));

    let r = clean_only(&rid, true);
    assert!(r.skipped.is_empty(), "{r:?}");
    assert_eq!(r.forced.len(), 1, "{r:?}");
    assert_eq!(
        r.removed,
        vec![Item::Process {
            pid: node.pid() as i32,
            comm: "sleep".into(),
            run_id: rid.clone()
        }]
    );
    assert!(r.failed.is_empty(), "{r:?}");
    wait_until(Duration::from_secs(5), "the forced node is dead", || {
        !alive(node.pid())
    });
    assert!(lock_file(&rid).exists(), "a held lock is never removed");
    drop(node);

    drop(lock);
    assert!(
        !lock_file(&rid).exists(),
        "the lock file goes with the lock"
    );
    let orphan = h
        .spawn(&spec(
            &rid,
            "n1",
            &dir.path().join("b.log"),
            &["sleep", "30"],
        ))
        .expect("spawn");
    let r = clean_only(&rid, false);
    assert!(r.nothing_to_clean(), "{r:?}");
    assert_eq!(r.skipped.len(), 1, "{r:?}");
    assert!(
        matches!(r.skipped[0].why, Live::ParentAlive { pid, parent, .. }
            if pid == orphan.pid() as i32 && parent == me),
        "{r:?}"
    );
    assert!(alive(orphan.pid()));
}

/// The same in netns mode: a live run's namespaces, links, rule and node are all kept (and
/// listed), `force` removes them; a network left by a run that ended without its lock file and
/// with no process left is stale and removed.
#[test]
fn netns_clean_skips_a_live_network_and_force_removes_it() {
    if !netns_available() {
        return;
    }
    let (lock, rid) = run_id();
    let dir = tempfile::tempdir().expect("tempdir");
    let net = Network::create(&rid, 2, NetMode::Netns, None).expect("create");
    let node = net.hosts()[0]
        .spawn(&spec(
            &rid,
            "n1",
            &dir.path().join("n1.log"),
            &["sleep", "30"],
        ))
        .expect("spawn");
    net.partition(&isolate(0, 2)).expect("partition");
    let before = leftovers(&rid);
    let r = clean_only(&rid, false);
    assert!(r.nothing_to_clean(), "{r:?}");
    assert_eq!(r.skipped.len(), 1, "{r:?}");
    let kept = &r.skipped[0].kept;
    assert_eq!(kept.processes, vec![node.pid() as i32]);
    assert_eq!(
        kept.namespaces,
        vec![format!("{rid}-n1"), format!("{rid}-n2")]
    );
    let mut links = kept.links.clone();
    links.sort();
    assert_eq!(
        links,
        vec![
            format!("{rid}-br"),
            format!("{rid}-v1"),
            format!("{rid}-v2")
        ]
    );
    assert_eq!(kept.rules.len(), 1, "the FORWARD rule: {kept:?}");
    assert_eq!(leftovers(&rid), before, "clean touched a live run");
    assert!(alive(node.pid()));

    let r = clean_only(&rid, true);
    assert_eq!(r.forced.len(), 1, "{r:?}");
    let all = r.removed_lines().join("\n");
    for want in [
        format!("removed namespace {rid}-n1"),
        format!("removed namespace {rid}-n2"),
        format!("removed link {rid}-br"),
        "removed iptables rule".to_string(),
        format!("killed process {} (sleep) of run {rid}", node.pid()),
    ] {
        assert!(all.contains(&want), "missing {want:?} in:\n{all}");
    }
    assert!(r.failed.is_empty(), "{r:?}");
    wait_until(Duration::from_secs(5), "the forced node is dead", || {
        !alive(node.pid())
    });
    assert_eq!(leftovers(&rid), Vec::<String>::new());
    drop(node);
    drop(net);
    drop(lock);

    // A run that ended with its network left behind (teardown failed) has no lock file.
    let (lock, rid) = run_id();
    let net = Network::create(&rid, 1, NetMode::Netns, None).expect("create");
    std::mem::forget(net);
    drop(lock);
    let r = clean_only(&rid, false);
    assert!(r.skipped.is_empty(), "{r:?}");
    assert_eq!(r.stale.len(), 1, "{r:?}");
    assert_eq!(r.stale[0].why, Stale::NoLockFile);
    assert!(
        r.removed_lines()
            .contains(&format!("removed namespace {rid}-n1")),
        "{r:?}"
    );
    assert!(r.failed.is_empty(), "{r:?}");
    assert_eq!(leftovers(&rid), Vec::<String>::new());
}

/// detect explains its choice; as root with ip and iptables it picks netns.
#[test]
fn detect_says_why() {
    let (mode, why) = Network::detect();
    assert!(why.starts_with(mode.as_str()), "{why}");
}
