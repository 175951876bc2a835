//! `raftcheck run --hosts` against hosts reached only over SSH: each host is a network
//! namespace this test creates with `tools/ssh-standin.sh`, running its own sshd (Debian's
//! openssh-server) on its own address with a key made for the test. raftcheck never enters
//! the namespaces; it sees addresses, a key and a known_hosts file, as with real machines.
//!
//! Needs root, ip, iptables, ssh, ssh-keygen and /usr/sbin/sshd: without them each test prints
//! "SKIPPED: ..." and passes, and fails instead under RAFTCHECK_REQUIRE_ALL=1. Runs are
//! serialised and bounded by the harness's time limits plus a watchdog; every stand-in is torn
//! down by a Drop guard, so a failing test leaves nothing behind.

mod support;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use support::{have, raftcheck, results_json, text};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether the stand-in can be built here; prints SKIPPED (or panics under
/// RAFTCHECK_REQUIRE_ALL=1) when not.
fn standin_possible() -> bool {
    let missing: Vec<&str> = [
        (nix::unistd::geteuid().is_root(), "root"),
        (have("ip"), "ip"),
        (have("iptables"), "iptables"),
        (have("ssh"), "ssh (openssh-client)"),
        (have("ssh-keygen"), "ssh-keygen"),
        (
            Path::new("/usr/sbin/sshd").is_file(),
            "/usr/sbin/sshd (openssh-server)",
        ),
        (
            raftcheck::cluster::find_binary("raftkv").is_ok_and(|p| !p.starts_with("/usr")),
            "the raftkv binary built next to raftcheck",
        ),
    ]
    .into_iter()
    .filter(|(ok, _)| !ok)
    .map(|(_, what)| what)
    .collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!("the SSH stand-in needs {}", missing.join(", "));
    if std::env::var("RAFTCHECK_REQUIRE_ALL").as_deref() == Ok("1") {
        panic!("required but unavailable: {why}");
    }
    eprintln!("SKIPPED: {why}");
    false
}

/// N hosts behind sshd, torn down on drop. Holds the test lock: stand-ins and runs are one at
/// a time.
struct StandIn {
    tag: String,
    octet: u8,
    dir: tempfile::TempDir,
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl StandIn {
    /// Take the test lock and bring up `n` hosts; `None` (after SKIPPED, or a panic under
    /// RAFTCHECK_REQUIRE_ALL=1) when the stand-in cannot be built here.
    fn start(n: usize) -> Option<StandIn> {
        let serial = serial();
        standin_possible().then(|| StandIn::up(n, serial))
    }

    fn up(n: usize, serial: std::sync::MutexGuard<'static, ()>) -> StandIn {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/ssh-standin.sh");
        let used = String::from_utf8_lossy(
            &Command::new("ip")
                .args(["-br", "addr"])
                .output()
                .expect("ip addr")
                .stdout,
        )
        .into_owned();
        let pid = std::process::id();
        let octet = (0..100u32)
            .map(|k| 100 + ((pid + k) % 100) as u8)
            .find(|o| !used.contains(&format!("10.232.{o}.")))
            .expect("a free 10.232.X.0/24");
        // Unique per stand-in, so one never meets what an earlier one is still tearing down.
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tag = format!("{:02x}{:02x}", pid & 0xff, seq & 0xff);
        let dir = tempfile::tempdir().expect("tempdir");
        let s = StandIn {
            tag,
            octet,
            dir,
            _serial: serial,
        };
        let o = Command::new(&script)
            .arg("up")
            .arg(&s.tag)
            .arg(n.to_string())
            .arg(octet.to_string())
            .arg(s.dir.path())
            .output()
            .expect("run ssh-standin.sh");
        assert!(
            o.status.success(),
            "stand-in did not come up: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        s
    }

    fn hosts(&self) -> PathBuf {
        self.dir.path().join("hosts.toml")
    }

    /// Where a test's runs put their results (on the controller, not on the hosts).
    fn results(&self) -> PathBuf {
        self.dir.path().join("results")
    }

    /// The hosts' shared run directory (their `dir`).
    fn fs(&self) -> PathBuf {
        self.dir.path().join("fs")
    }

    fn addr(&self, i: usize) -> String {
        format!("10.232.{}.{}", self.octet, 10 + i)
    }

    /// A hosts file like the stand-in's, with `extra` lines after the defaults and hosts
    /// `addrs` instead.
    fn hosts_with(&self, extra: &str, addrs: &[String]) -> PathBuf {
        let text = std::fs::read_to_string(self.hosts()).expect("hosts.toml");
        let overridden = extra.split('=').next().unwrap_or("").trim().to_string();
        let head: String = text
            .lines()
            .take_while(|l| !l.starts_with("[[host]]"))
            .filter(|l| overridden.is_empty() || !l.starts_with(&format!("{overridden} ")))
            .map(|l| format!("{l}\n"))
            .collect();
        let mut out = format!("{head}{extra}\n");
        for a in addrs {
            out.push_str(&format!("[[host]]\naddress = \"{a}\"\n"));
        }
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let k = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = self.dir.path().join(format!("hosts-{k}.toml"));
        std::fs::write(&p, out).expect("write hosts");
        p
    }

    /// What a run left on the hosts: files under their dir, processes carrying `run_id`, and
    /// iptables rules in their namespaces.
    fn leftovers(&self, run_id: &str, n: usize) -> Vec<String> {
        let mut left: Vec<String> = std::fs::read_dir(self.fs())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| format!("file {}", e.path().display()))
            .collect();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let env = std::fs::read(entry.path().join("environ")).unwrap_or_default();
            let needle = format!("RAFTCHECK_RUN_ID={run_id}");
            if env.split(|&b| b == 0).any(|kv| kv == needle.as_bytes()) {
                left.push(format!("process {}", entry.file_name().to_string_lossy()));
            }
            let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmd).contains(&format!("/{run_id}/")) {
                left.push(format!(
                    "process {} (by path)",
                    entry.file_name().to_string_lossy()
                ));
            }
        }
        for i in 1..=n {
            let ns = format!("ssb-{}-h{i}", self.tag);
            let o = Command::new("ip")
                .args(["netns", "exec", &ns, "iptables", "-w", "5", "-S"])
                .output()
                .expect("iptables");
            for l in String::from_utf8_lossy(&o.stdout).lines() {
                if l.contains("raftcheck:") {
                    left.push(format!("rule on h{i}: {l}"));
                }
            }
        }
        left
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/ssh-standin.sh");
        let _ = Command::new(script)
            .arg("down")
            .arg(&self.tag)
            .arg(self.dir.path())
            .status();
    }
}

/// `raftcheck run --hosts HOSTS --quiet --results RESULTS ARGS...` under a watchdog.
fn run_over(hosts: &Path, results: &Path, args: &[&str], limit: Duration) -> Output {
    let (h, r) = (
        hosts.to_str().expect("utf8"),
        results.to_str().expect("utf8"),
    );
    let mut all = vec!["run", "--hosts", h, "--quiet", "--results", r];
    all.extend_from_slice(args);
    raftcheck(&all, limit)
}

fn installed(results: &Path, fault: &str) -> usize {
    let p = results.join("latest").join("nemesis.jsonl");
    std::fs::read_to_string(&p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["event"] == "start" && l["fault"] == fault && l["outcome"] == "installed")
        .count()
}

#[test]
fn raftkv_over_ssh_under_all_is_valid_and_leaves_nothing_on_the_hosts() {
    let Some(s) = StandIn::start(3) else {
        return;
    };
    let results = s.results();
    let o = run_over(
        &s.hosts(),
        &results,
        &[
            "--workload",
            "list-append",
            "--nemesis",
            "all",
            "--time-limit",
            "40",
            "--seed",
            "3",
            "--keep-data",
        ],
        Duration::from_secs(240),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let r = results_json(&results);
    assert_eq!(r["verdict"], "valid", "{}", text(&o));
    assert_eq!(r["net_mode"], "ssh");
    let run_id = r["run_id"].as_str().expect("run_id").to_string();
    // raftkv's spec lists corrupt in survives, so `all` damages files over SSH too.
    for fault in ["kill", "pause", "partition", "corrupt"] {
        assert!(
            installed(&results, fault) >= 1,
            "no {fault} installed: {}",
            text(&o)
        );
    }
    // ... and each damage was done on a host's file and recorded exactly.
    let log =
        std::fs::read_to_string(results.join("latest").join("nemesis.jsonl")).unwrap_or_default();
    assert!(
        log.lines()
            .any(|l| l.contains("\"damage\"") && l.contains("\"bitflip\"")),
        "no damage recorded: {log}"
    );
    // Logs and (with --keep-data) data dirs came back from the hosts.
    let nodes = results.join("latest").join("nodes");
    for n in ["n1", "n2", "n3"] {
        let log = std::fs::read_to_string(nodes.join(n).join("log")).unwrap_or_default();
        assert!(log.contains("raft state"), "{n}'s log did not come back");
        assert!(
            nodes.join(n).join("data").join("wal").is_file(),
            "{n}'s data dir"
        );
    }
    let left = s.leftovers(&run_id, 3);
    assert!(left.is_empty(), "left on the hosts: {left:?}");
}

#[test]
fn a_bug_is_found_over_ssh_as_locally() {
    let Some(s) = StandIn::start(3) else {
        return;
    };
    let results = s.results();
    let o = run_over(
        &s.hosts(),
        &results,
        &[
            "--workload",
            "register",
            "--nemesis",
            "partition",
            "--node-arg=--bug=stale-read",
            "--time-limit",
            "25",
            "--seed",
            "2",
        ],
        Duration::from_secs(180),
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let r = results_json(&results);
    assert_eq!(r["verdict"], "invalid");
    let run_id = r["run_id"].as_str().expect("run_id").to_string();
    assert!(s.leftovers(&run_id, 3).is_empty());
}

#[test]
fn a_cluster_that_never_starts_over_ssh_is_exit_2_naming_its_log_copied_back() {
    let Some(s) = StandIn::start(3) else {
        return;
    };
    let results = s.results();
    let o = run_over(
        &s.hosts(),
        &results,
        &[
            "--nemesis",
            "kill",
            "--time-limit",
            "5",
            "--node-arg=--no-such-flag",
        ],
        Duration::from_secs(90),
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(err.contains("did not start"), "{err}");
    // The path named is the copy in the run dir (the host's is gone), and it holds the
    // server's own complaint.
    let named = err
        .lines()
        .find_map(|l| l.strip_prefix("--- n1 log tail ("))
        .and_then(|l| l.strip_suffix("):"))
        .unwrap_or_else(|| panic!("no log path for n1: {err}"));
    assert!(
        Path::new(named).starts_with(&results),
        "{named} is not in {}",
        results.display()
    );
    let log = std::fs::read_to_string(named).unwrap_or_default();
    assert!(log.contains("--no-such-flag"), "{named}: {log}");
    let left: Vec<_> = std::fs::read_dir(s.fs())
        .into_iter()
        .flatten()
        .flatten()
        .collect();
    assert!(left.is_empty(), "left on the hosts: {left:?}");
}

#[test]
fn host_problems_are_exit_2_naming_the_host_before_any_node_starts() {
    let Some(s) = StandIn::start(2) else {
        return;
    };
    let good = [s.addr(1), s.addr(2)];
    // A fake binary for another architecture (an ELF header that says aarch64).
    let arm = s.dir.path().join("arm-server");
    let mut elf = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0];
    elf.resize(18, 0);
    elf.extend_from_slice(&0xb7u16.to_le_bytes());
    elf.resize(64, 0);
    std::fs::write(&arm, elf).expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&arm, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let arm_spec = s.dir.path().join("arm-cluster.toml");
    std::fs::write(
        &arm_spec,
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("clusters/raftkv.toml"))
            .expect("raftkv spec")
            .replace(
                "binary = \"raftkv\"",
                &format!("binary = \"{}\"", arm.display()),
            ),
    )
    .expect("write spec");
    let other_key = s.dir.path().join("other_key");
    let kg = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other_key)
        .status()
        .expect("ssh-keygen");
    assert!(kg.success());
    let unreachable = s.addr(9);
    // (hosts file, cluster, nemesis, what stderr must say)
    let cases: Vec<(PathBuf, &str, &str, Vec<&str>)> = vec![
        (
            s.hosts_with("", &[good[0].clone(), unreachable.clone()]),
            "raftkv",
            "kill",
            vec![&unreachable, "cannot connect"],
        ),
        (
            s.hosts_with(&format!("key = \"{}\"", other_key.display()), &good),
            "raftkv",
            "kill",
            vec![&good[0], "cannot connect"],
        ),
        (
            s.hosts_with("binary = \"/nonexistent/raftkv\"", &good),
            "raftkv",
            "kill",
            vec![&good[0], "/nonexistent/raftkv"],
        ),
        (
            s.hosts_with("", &good),
            arm_spec.to_str().expect("utf8"),
            "kill",
            vec![&good[0], "aarch64"],
        ),
        (
            s.hosts_with("", &[good[0].clone()]),
            "raftkv",
            "kill",
            vec!["names 1 hosts", "2 nodes"],
        ),
        // The power-loss layer serves data dirs from this machine: refused over SSH.
        (
            s.hosts_with("", &good),
            "raftkv",
            "power-loss",
            vec!["power-loss", "over SSH"],
        ),
    ];
    let results = s.results();
    for (hosts, cluster, nemesis, wants) in cases {
        let o = run_over(
            &hosts,
            &results,
            &[
                "--cluster",
                cluster,
                "--nodes",
                "2",
                "--nemesis",
                nemesis,
                "--time-limit",
                "5",
            ],
            Duration::from_secs(60),
        );
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(
            o.status.code(),
            Some(2),
            "{}: {}",
            hosts.display(),
            text(&o)
        );
        for w in &wants {
            assert!(
                err.contains(w),
                "{}: stderr lacks {w:?}: {err}",
                hosts.display()
            );
        }
        // Early means before anything exists: no run dir here, no node dir on a host.
        assert!(!results.exists(), "a refused run left a results dir");
        let on_hosts: Vec<_> = std::fs::read_dir(s.fs())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("rc"))
            .collect();
        assert!(
            on_hosts.is_empty(),
            "a node dir was made on a host: {on_hosts:?}"
        );
    }

    // Something already accepts on the spec's client port of host 2 (a raftkv the test starts
    // in that host's namespace, standing in for another run's node): refused before any node
    // starts, naming the host and the address, since that server would take this run's ops.
    struct Squatter(std::process::Child);
    impl Drop for Squatter {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let raftkv = raftcheck::cluster::find_binary("raftkv").expect("raftkv");
    let squat_dir = s.dir.path().join("squatter");
    let listen = format!("{}:7001", good[1]);
    let _squatter = Squatter(
        Command::new("ip")
            .args(["netns", "exec", &format!("ssb-{}-h2", s.tag)])
            .arg(&raftkv)
            .args(["--id", "1", "--listen", &listen, "--peers"])
            .arg(format!("1={listen}"))
            .arg("--data-dir")
            .arg(&squat_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the squatter"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect_timeout(
        &listen.parse().expect("addr"),
        Duration::from_millis(200),
    )
    .is_err()
    {
        assert!(Instant::now() < deadline, "the squatter never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = run_over(
        &s.hosts(),
        &results,
        &["--nodes", "2", "--nemesis", "kill", "--time-limit", "5"],
        Duration::from_secs(60),
    );
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        err.contains("host 2 of 2") && err.contains(&format!("already listens on {listen}")),
        "{err}"
    );
    assert!(!results.exists(), "a refused run left a results dir");
}

#[test]
fn clean_hosts_removes_what_a_killed_run_left_and_nothing_else() {
    let Some(s) = StandIn::start(3) else {
        return;
    };
    let results = s.results();
    let mut child = Command::new(env!("CARGO_BIN_EXE_raftcheck"))
        .args(["run", "--hosts"])
        .arg(s.hosts())
        .args([
            "--workload",
            "register",
            "--nemesis",
            "partition",
            "--time-limit",
            "60",
        ])
        .args(["--seed", "5", "--quiet", "--results"])
        .arg(&results)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start raftcheck");
    // Wait (bounded) until every node runs and a partition rule is in place, then kill the
    // controller with SIGKILL: nothing of its own cleanup runs.
    let deadline = Instant::now() + Duration::from_secs(60);
    let run_id = loop {
        assert!(Instant::now() < deadline, "the run never got going");
        let ids: Vec<String> = std::fs::read_dir(s.fs())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("rc"))
            .collect();
        if let Some(id) = ids.first() {
            let rules = s
                .leftovers(id, 3)
                .iter()
                .filter(|l| l.starts_with("rule"))
                .count();
            let pids = (1..=3)
                .filter(|k| s.fs().join(id).join(format!("n{k}/inc-0/pid")).is_file())
                .count();
            if rules > 0 && pids == 3 {
                break id.clone();
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(!s.leftovers(&run_id, 3).is_empty());
    let o = raftcheck(
        &["clean", "--hosts", s.hosts().to_str().expect("utf8")],
        Duration::from_secs(60),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("run {run_id}")),
        "{}",
        text(&o)
    );
    let left = s.leftovers(&run_id, 3);
    assert!(left.is_empty(), "clean --hosts left: {left:?}");
    // A second clean finds nothing of that run.
    let again = raftcheck(
        &["clean", "--hosts", s.hosts().to_str().expect("utf8")],
        Duration::from_secs(60),
    );
    assert!(!String::from_utf8_lossy(&again.stdout).contains(&format!("run {run_id}:")));
}
