//! `raftcheck clean`: remove what dead runs left behind, and nothing of a run still going.
//!
//! A run killed with SIGKILL cannot tear down its network, and its nodes survive it if their
//! parent-death signal could not fire. Every resource carries the run id (see [`super::net`]
//! for the names), so leftovers are found by name, never guessed: processes whose environment
//! has `RAFTCHECK_RUN_ID`, processes inside namespaces named `rcXXXX-nK`, those namespaces,
//! links named `rcXXXX-br` / `rcXXXX-vK`, and root iptables rules commented `raftcheck:rcXXXX`.
//!
//! # Live runs are left alone
//!
//! Two CI jobs on one runner, or a cleanup step beside another job, must not turn into a false
//! "node n1 crashed on its own". So each run id found is judged first, from the run's lock file
//! ([`super::runlock`]):
//! - lock held, or lock free but the recorded controller still running (same pid and start
//!   time, same boot): **live**. Nothing of it is touched; the report lists it as skipped with
//!   what it kept. `force` overrides that (the run's controller itself is never killed; it will
//!   see its nodes and network vanish and report so).
//! - lock free and the controller gone (exited, pid recycled, earlier boot, or the file is
//!   unreadable text): **stale**. Everything of it is removed, the lock file last, and only if
//!   everything else went.
//! - a lock file that cannot even be opened (permissions): taken for live; clean does not guess.
//! - **no lock file at all.** A run of this raftcheck makes its lock before its first resource
//!   and removes it after its last, so this is a run that ended but whose teardown failed (the
//!   run said so and pointed at `clean`), a run whose lock file someone deleted, or a run of an
//!   older raftcheck, which made no locks and may still be going. Such a run is taken for live
//!   if one of its processes still has a parent that is not init and does not carry the run's
//!   id: a node's parent is the raftcheck that started it, and a node whose controller died is
//!   killed by its parent-death signal or re-parented. Otherwise it is stale. (A process
//!   re-parented to a subreaper other than init looks live: it is skipped and listed, and
//!   `--force` removes it; an older raftcheck between making its namespaces and starting its
//!   nodes looks stale. Neither can happen to runs of this raftcheck.)
//!
//! Resources are listed before lock files are read: a run makes its lock before anything else,
//! so every resource listed belongs to a run whose lock file, if it has one, is already there.
//!
//! # What the caller learns
//!
//! A [`CleanReport`]: what was removed, which live runs were skipped (and what they kept), which
//! were removed anyway (`force`), and what could not be removed and why (without root,
//! namespaces, links and rules cannot be removed; a kill can fail). Things clean could not even
//! look at (iptables without root, other users' processes) are listed apart: they are not known
//! to exist. [`CleanReport::exit_code`] is 2 when anything could not be removed.

use super::host::run;
use super::net::{
    comment_of, delete_argv, delete_link, is_run_id, kill_netns_pids, list_links, list_netns,
    list_rules, lock_dir, netns_pids, remove_stale_locks, run_id_of, RULE_COMMENT_PREFIX,
};
use super::process::RUN_ID_ENV;
use super::runlock::{self, LockState, StaleLock};
use super::ClusterError;
use nix::fcntl::Flock;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::File;
use std::path::PathBuf;

/// The root chains a run adds rules to.
const ROOT_CHAINS: [&str; 3] = ["FORWARD", "INPUT", "OUTPUT"];

/// Which runs `clean` may touch: by default every stale run on the machine and no live one.
#[derive(Clone, Debug, Default)]
pub struct CleanOptions {
    /// Remove live runs' resources too (`raftcheck clean --force`).
    pub force: bool,
    /// Only this run id (tests, and callers that know which run is theirs).
    pub only: Option<String>,
}

/// One thing clean removed or tried to remove.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A process found by its `RAFTCHECK_RUN_ID`.
    Process {
        /// The pid clean kills (SIGCONT first, so a paused node dies too).
        pid: i32,
        /// Its command name from `/proc/PID/comm` (at most 15 bytes; `?` once it is gone), for
        /// messages.
        comm: String,
        /// The run id its `RAFTCHECK_RUN_ID` variable carries.
        run_id: String,
    },
    /// A process found inside one of a run's namespaces.
    NetnsProcess {
        /// The pid of a process inside the run's namespace (from `ip netns pids`), whatever its
        /// environment.
        pid: i32,
        /// Its command name from `/proc/PID/comm` (at most 15 bytes; `?` once it is gone), for
        /// messages.
        comm: String,
        /// The run's namespace it was found in (`<run id>-nK`).
        namespace: String,
    },
    /// A run's network namespace, `<run id>-nK`; removing it needs root.
    Namespace(String),
    /// A bridge or veth in the root namespace.
    Link(String),
    /// A root-namespace iptables rule, as `iptables -S` prints it.
    Rule(String),
    /// A dead run's lock file (or the temporary file one was written under).
    RunLock(PathBuf),
    /// A subnet lock file nobody holds.
    SubnetLock(PathBuf),
    /// A data dir mounted on the power-loss layer (source `raftcheck-<run id>-nK`), lazily
    /// unmounted; its files stay in the run's `nodes/nK/disk`.
    Mount(PathBuf),
}

impl Item {
    /// The line saying this was removed ("killed process ...", "removed namespace ...").
    pub fn removed_line(&self) -> String {
        match self {
            Item::Process { .. } | Item::NetnsProcess { .. } => format!("killed {self}"),
            _ => format!("removed {self}"),
        }
    }
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Item::Process { pid, comm, run_id } => {
                write!(f, "process {pid} ({comm}) of run {run_id}")
            }
            Item::NetnsProcess {
                pid,
                comm,
                namespace,
            } => write!(f, "process {pid} ({comm}) in namespace {namespace}"),
            Item::Namespace(n) => write!(f, "namespace {n}"),
            Item::Link(l) => write!(f, "link {l}"),
            Item::Rule(r) => write!(f, "iptables rule: {r}"),
            Item::RunLock(p) => write!(f, "stale run lock {}", p.display()),
            Item::SubnetLock(p) => write!(f, "stale subnet lock {}", p.display()),
            Item::Mount(p) => write!(f, "FUSE mount {}", p.display()),
        }
    }
}

/// Something clean meant to remove and could not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The process, namespace, link, rule or lock file still there.
    pub item: Item,
    /// What kept it, in words (`needs root`, `still running 2 s after SIGKILL`, the OS's message).
    pub why: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = match self.item {
            Item::Process { .. } | Item::NetnsProcess { .. } => "kill",
            _ => "remove",
        };
        write!(f, "could not {verb} {}: {}", self.item, self.why)
    }
}

/// Why a run was taken for live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Live {
    /// Its controller holds its lock.
    LockHeld {
        /// The controller's pid, as the lock file records it.
        pid: Option<i32>,
    },
    /// Its lock is free, but the recorded controller still runs (same pid and start time).
    ControllerRunning {
        /// The controller's pid, running with the start time its lock file recorded.
        pid: i32,
    },
    /// Its lock file exists but cannot be opened: clean does not guess.
    LockUnreadable {
        /// The run's lock file, which exists but could not be opened (permissions).
        path: PathBuf,
        /// Why opening it failed, as the OS said.
        error: String,
    },
    /// No lock file, but one of its processes still has its parent (an older raftcheck).
    ParentAlive {
        /// The run's process.
        pid: i32,
        /// Its parent's pid: alive, not init, and not itself a process of the run, so most likely
        /// the raftcheck that started it.
        parent: i32,
        /// The parent's command name.
        parent_comm: String,
    },
}

impl Live {
    /// The controller's pid, when known.
    pub fn pid(&self) -> Option<i32> {
        match self {
            Live::LockHeld { pid } => *pid,
            Live::ControllerRunning { pid } => Some(*pid),
            Live::LockUnreadable { .. } => None,
            Live::ParentAlive { parent, .. } => Some(*parent),
        }
    }
}

impl fmt::Display for Live {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Live::LockHeld { pid: Some(p) } => write!(f, "pid {p}, lock held"),
            Live::LockHeld { pid: None } => write!(f, "lock held"),
            Live::ControllerRunning { pid } => {
                write!(f, "pid {pid}, lock free but that process still runs")
            }
            Live::LockUnreadable { path, error } => {
                write!(f, "lock file {} unreadable: {error}", path.display())
            }
            Live::ParentAlive {
                pid,
                parent,
                parent_comm,
            } => write!(
                f,
                "pid {parent} ({parent_comm}), no lock file but it is still the parent of the \
                 run's process {pid}: an older raftcheck?"
            ),
        }
    }
}

/// Why a run was taken for stale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stale {
    /// Its lock file says so.
    Lock(StaleLock),
    /// It has no lock file and none of its processes has a live parent of its own.
    NoLockFile,
}

impl fmt::Display for Stale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stale::Lock(StaleLock::Exited { pid }) => {
                write!(f, "lock free, its raftcheck (pid {pid}) has exited")
            }
            Stale::Lock(StaleLock::Recycled { pid }) => write!(
                f,
                "lock free, pid {pid} now belongs to another process (its start time differs)"
            ),
            Stale::Lock(StaleLock::OtherBoot { pid }) => {
                write!(f, "lock free, taken by pid {pid} before the last reboot")
            }
            Stale::Lock(StaleLock::Unparseable(e)) => {
                write!(f, "lock free, and its lock file is unusable ({e})")
            }
            Stale::NoLockFile => write!(
                f,
                "no lock file, and no process of it still has the raftcheck that started it: \
                 it ended, leaving these behind"
            ),
        }
    }
}

/// What a live run has, by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kept {
    /// Its processes (found by `RAFTCHECK_RUN_ID`).
    pub processes: Vec<i32>,
    /// Its network namespaces (`<run id>-nK`), left in place.
    pub namespaces: Vec<String>,
    /// Its bridge and veths.
    pub links: Vec<String>,
    /// Its root iptables rules.
    pub rules: Vec<String>,
    /// Its power-loss layer mounts.
    pub mounts: Vec<PathBuf>,
}

impl fmt::Display for Kept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        if !self.processes.is_empty() {
            let pids: Vec<String> = self.processes.iter().map(i32::to_string).collect();
            parts.push(format!(
                "{} ({})",
                plural(self.processes.len(), "process", "processes"),
                pids.join(" ")
            ));
        }
        if !self.namespaces.is_empty() {
            parts.push(format!(
                "{} ({})",
                plural(self.namespaces.len(), "namespace", "namespaces"),
                self.namespaces.join(" ")
            ));
        }
        if !self.links.is_empty() {
            parts.push(format!(
                "{} ({})",
                plural(self.links.len(), "link", "links"),
                self.links.join(" ")
            ));
        }
        if !self.rules.is_empty() {
            parts.push(plural(self.rules.len(), "iptables rule", "iptables rules"));
        }
        if !self.mounts.is_empty() {
            parts.push(plural(self.mounts.len(), "FUSE mount", "FUSE mounts"));
        }
        if parts.is_empty() {
            f.write_str("nothing yet")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// A live run: skipped, or (with `force`) removed anyway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveRun {
    /// The run's id (`rc7f3a`), which the names of all its resources start with.
    pub run_id: String,
    /// Why it was taken for live.
    pub why: Live,
    /// What it had when clean looked.
    pub kept: Kept,
}

impl fmt::Display for LiveRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "skipped live run {} ({}): kept {}",
            self.run_id, self.why, self.kept
        )
    }
}

/// A stale run whose resources clean removed (or tried to).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaleRun {
    /// The run's id (`rc7f3a`), which the names of all its resources start with.
    pub run_id: String,
    /// Why it was taken for stale.
    pub why: Stale,
}

/// What `clean` did, by outcome. Lines for people come from the `Display` impls.
#[derive(Debug, Default)]
pub struct CleanReport {
    /// Live runs left alone.
    pub skipped: Vec<LiveRun>,
    /// Live runs removed anyway (`force`, or [`clean_run`]).
    pub forced: Vec<LiveRun>,
    /// Stale runs found, with why.
    pub stale: Vec<StaleRun>,
    /// Everything removed, processes first and lock files last; `removed_lines` gives one line
    /// each.
    pub removed: Vec<Item>,
    /// What could not be removed.
    pub failed: Vec<Failure>,
    /// What clean could not look at, so cannot say is gone (not failures: nothing is known to
    /// be there).
    pub unchecked: Vec<String>,
}

impl CleanReport {
    /// 0 when everything stale that clean found is gone, 2 when something could not be removed
    /// (the binary's "could not be carried out"). Skipped live runs are not failures.
    pub fn exit_code(&self) -> i32 {
        if self.failed.is_empty() {
            0
        } else {
            2
        }
    }

    /// One line per removed thing, for people and tests.
    pub fn removed_lines(&self) -> Vec<String> {
        self.removed.iter().map(Item::removed_line).collect()
    }

    /// Nothing removed and nothing left that should have been.
    pub fn nothing_to_clean(&self) -> bool {
        self.removed.is_empty() && self.failed.is_empty()
    }
}

/// Remove leftovers of every stale run on this machine, and of live runs too with `force`
/// (see the module doc for which is which). `only` restricts it to one run id.
pub fn clean(opts: &CleanOptions) -> Result<CleanReport, ClusterError> {
    if let Some(id) = &opts.only {
        if !is_run_id(id) {
            return Err(ClusterError::Other(format!("bad run id {id:?}")));
        }
    }
    clean_where(opts.only.as_deref(), opts.force)
}

/// Remove everything that carries `run_id`, live or not: the caller names the run, so it is
/// the run's owner (the run's own paths and the tests use it). The run's lock file stays while
/// it is held; a stale one is removed. Other runs are never touched.
pub fn clean_run(run_id: &str) -> Result<CleanReport, ClusterError> {
    clean(&CleanOptions {
        force: true,
        only: Some(run_id.to_string()),
    })
}

/// A process that carries a run id.
#[derive(Clone, Debug)]
struct Proc {
    pid: i32,
    /// Its parent's pid (0 if unknown).
    ppid: i32,
    /// From `/proc/PID/comm`, for messages; `?` if it exited meanwhile.
    comm: String,
}

/// Everything found with one run's id.
#[derive(Debug, Default)]
struct Found {
    processes: Vec<Proc>,
    namespaces: Vec<String>,
    links: Vec<String>,
    rules: Vec<String>,
    mounts: Vec<PathBuf>,
    lock: Option<PathBuf>,
}

impl Found {
    fn kept(&self) -> Kept {
        Kept {
            processes: self.processes.iter().map(|p| p.pid).collect(),
            namespaces: self.namespaces.clone(),
            links: self.links.clone(),
            rules: self.rules.clone(),
            mounts: self.mounts.clone(),
        }
    }
}

/// A run's judgement, with our flock on its stale lock file so it can be removed last.
enum Judged {
    Live(Live),
    Stale(Stale, Option<(PathBuf, Flock<File>)>),
}

fn clean_where(only: Option<&str>, force: bool) -> Result<CleanReport, ClusterError> {
    let wanted = |id: &str| only.is_none_or(|o| o == id);
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let mut report = CleanReport::default();
    let mut runs: BTreeMap<String, Found> = BTreeMap::new();

    // 1. Resources, namespaces and links before processes (an older raftcheck makes its
    //    namespaces before it starts its nodes), everything before lock files (see module doc).
    match list_netns() {
        Ok(v) => {
            for ns in v {
                if let Some(id) = run_id_of(&ns).filter(|id| wanted(id)) {
                    runs.entry(id.to_string()).or_default().namespaces.push(ns);
                }
            }
        }
        Err(e) => report
            .unchecked
            .push(format!("namespaces not checked: {e}")),
    }
    match list_links() {
        Ok(v) => {
            for l in v {
                if let Some(id) = run_id_of(&l).filter(|id| wanted(id)) {
                    runs.entry(id.to_string()).or_default().links.push(l);
                }
            }
        }
        Err(e) => report.unchecked.push(format!("links not checked: {e}")),
    }
    if root {
        for chain in ROOT_CHAINS {
            match list_rules(chain) {
                Ok(rules) => {
                    for r in rules {
                        let id = comment_of(&r)
                            .and_then(|c| c.strip_prefix(RULE_COMMENT_PREFIX))
                            .filter(|id| is_run_id(id) && wanted(id))
                            .map(String::from);
                        if let Some(id) = id {
                            runs.entry(id).or_default().rules.push(r);
                        }
                    }
                }
                Err(e) => {
                    // No iptables (a loopback-only machine): once is enough.
                    report
                        .unchecked
                        .push(format!("iptables rules not checked: {e}"));
                    break;
                }
            }
        }
    } else {
        report
            .unchecked
            .push("iptables rules not checked: that needs root".into());
    }
    for (source, mountpoint) in super::powerfs::mounts() {
        let id = source
            .strip_prefix(super::powerfs::FS_PREFIX)
            .and_then(run_id_of)
            .filter(|id| wanted(id))
            .map(String::from);
        if let Some(id) = id {
            runs.entry(id).or_default().mounts.push(mountpoint);
        }
    }
    let protected = self_and_ancestors();
    let tagged = tagged_processes(&protected, &mut report)?;
    for (pid, (id, ppid)) in &tagged {
        if wanted(id) {
            runs.entry(id.clone()).or_default().processes.push(Proc {
                pid: *pid,
                ppid: *ppid,
                comm: comm(*pid),
            });
        }
    }
    let dir = lock_dir();
    match only {
        Some(id) => {
            let path = runlock::lock_path(&dir, id);
            if path.exists() {
                runs.entry(id.to_string()).or_default().lock = Some(path);
            }
        }
        None => {
            for (id, path) in runlock::lock_files(&dir) {
                runs.entry(id).or_default().lock = Some(path);
            }
        }
    }

    for found in runs.values_mut() {
        found.namespaces.sort();
        found.links.sort();
    }

    // 2. Judge each run, then remove what should go.
    for (id, found) in &runs {
        let lock = match judge(id, found, &tagged) {
            Judged::Live(why) => {
                let live = LiveRun {
                    run_id: id.clone(),
                    why,
                    kept: found.kept(),
                };
                if force {
                    report.forced.push(live);
                } else {
                    report.skipped.push(live);
                    continue;
                }
                None
            }
            Judged::Stale(why, lock) => {
                report.stale.push(StaleRun {
                    run_id: id.clone(),
                    why,
                });
                lock
            }
        };
        remove_run(id, found, root, &protected, lock, &mut report);
    }

    if only.is_none() {
        // Subnet lock files name subnets, not runs: only the global clean can tell them stale.
        for f in remove_stale_locks() {
            report.removed.push(Item::SubnetLock(f.into()));
        }
        let (removed, failed) = runlock::remove_stale_tmp(&dir);
        report
            .removed
            .extend(removed.into_iter().map(Item::RunLock));
        report
            .failed
            .extend(failed.into_iter().map(|(p, e)| Failure {
                item: Item::RunLock(p),
                why: e.to_string(),
            }));
    }
    Ok(report)
}

/// Is the run live? By its lock file; without one, by whether a process of it still has a
/// parent that is not init and not of the run itself (see the module doc).
fn judge(id: &str, found: &Found, tagged: &BTreeMap<i32, (String, i32)>) -> Judged {
    let path = found
        .lock
        .clone()
        .unwrap_or_else(|| runlock::lock_path(&lock_dir(), id));
    match runlock::probe(&path, id) {
        Err(e) => Judged::Live(Live::LockUnreadable {
            path,
            error: e.to_string(),
        }),
        Ok(Some(p)) => match p.state {
            LockState::Held(rec) => Judged::Live(Live::LockHeld {
                pid: rec.map(|r| r.pid),
            }),
            LockState::ControllerRunning(rec) => {
                Judged::Live(Live::ControllerRunning { pid: rec.pid })
            }
            LockState::Stale(why) => Judged::Stale(Stale::Lock(why), p.guard.map(|g| (path, g))),
        },
        Ok(None) => {
            let parent = found.processes.iter().find_map(|p| {
                let ours = tagged
                    .get(&p.ppid)
                    .is_some_and(|(pid_run, _)| pid_run == id);
                let alive = std::path::Path::new(&format!("/proc/{}", p.ppid)).exists();
                (p.ppid > 1 && !ours && alive).then_some((p.pid, p.ppid))
            });
            match parent {
                Some((pid, parent)) => Judged::Live(Live::ParentAlive {
                    pid,
                    parent,
                    parent_comm: comm(parent),
                }),
                None => Judged::Stale(Stale::NoLockFile, None),
            }
        }
    }
}

/// Remove one run's processes, namespaces, links and rules, then its stale lock file if
/// everything else went.
fn remove_run(
    id: &str,
    found: &Found,
    root: bool,
    protected: &BTreeSet<i32>,
    lock: Option<(PathBuf, Flock<File>)>,
    report: &mut CleanReport,
) {
    let failures_before = report.failed.len();
    let mut killed = BTreeSet::new();
    for p in &found.processes {
        if protected.contains(&p.pid) {
            continue;
        }
        let item = Item::Process {
            pid: p.pid,
            comm: p.comm.clone(),
            run_id: id.to_string(),
        };
        let pid = Pid::from_raw(p.pid);
        // SIGCONT first, as every stop of a node does (a paused node is SIGSTOPped).
        let _ = kill(pid, Signal::SIGCONT);
        match kill(pid, Signal::SIGKILL) {
            Ok(()) => {
                killed.insert(p.pid);
                report.removed.push(item);
            }
            Err(nix::errno::Errno::ESRCH) => {} // exited meanwhile
            Err(e) => report.failed.push(Failure {
                item,
                why: e.desc().to_string(),
            }),
        }
    }
    // Mounts once their nodes are dead, before the namespaces those nodes ran in.
    for m in &found.mounts {
        if !root {
            report.failed.push(Failure {
                item: Item::Mount(m.clone()),
                why: "needs root".into(),
            });
            continue;
        }
        match nix::mount::umount2(m.as_path(), nix::mount::MntFlags::MNT_DETACH) {
            Ok(()) => report.removed.push(Item::Mount(m.clone())),
            Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => report.failed.push(Failure {
                item: Item::Mount(m.clone()),
                why: e.desc().to_string(),
            }),
        }
    }
    if !root {
        for ns in &found.namespaces {
            report.failed.push(Failure {
                item: Item::Namespace(ns.clone()),
                why: "needs root".into(),
            });
        }
        for l in &found.links {
            report.failed.push(Failure {
                item: Item::Link(l.clone()),
                why: "needs root".into(),
            });
        }
    } else {
        for ns in &found.namespaces {
            for pid in kill_netns_pids(ns) {
                if killed.insert(pid) {
                    report.removed.push(Item::NetnsProcess {
                        pid,
                        comm: comm(pid),
                        namespace: ns.clone(),
                    });
                }
            }
            for pid in netns_pids(ns) {
                report.failed.push(Failure {
                    item: Item::NetnsProcess {
                        pid,
                        comm: comm(pid),
                        namespace: ns.clone(),
                    },
                    why: "still running 2 s after SIGKILL".into(),
                });
            }
        }
        // Veths before bridges, so nothing is left enslaved to a bridge being deleted.
        let mut links = found.links.clone();
        links.sort_by_key(|l| l.ends_with("-br"));
        for l in links {
            match delete_link(&l) {
                Ok(()) => report.removed.push(Item::Link(l)),
                Err(e) => report.failed.push(Failure {
                    item: Item::Link(l),
                    why: e.to_string(),
                }),
            }
        }
        for ns in &found.namespaces {
            match run(&["ip", "netns", "delete", ns]) {
                Ok(_) => report.removed.push(Item::Namespace(ns.clone())),
                // Gone meanwhile (its run's own teardown got there first): not a failure.
                Err(_) if list_netns().is_ok_and(|v| !v.contains(ns)) => {}
                Err(e) => report.failed.push(Failure {
                    item: Item::Namespace(ns.clone()),
                    why: e.to_string(),
                }),
            }
        }
        for rule in &found.rules {
            let Some(argv) = delete_argv(rule) else {
                continue;
            };
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            match run(&argv) {
                Ok(_) => report.removed.push(Item::Rule(rule.clone())),
                Err(_) if !rule_present(rule) => {}
                Err(e) => report.failed.push(Failure {
                    item: Item::Rule(rule.clone()),
                    why: e.to_string(),
                }),
            }
        }
    }
    if let Some((path, guard)) = lock {
        if report.failed.len() == failures_before {
            match runlock::remove_locked(&path, &guard) {
                Ok(()) => report.removed.push(Item::RunLock(path)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => report.failed.push(Failure {
                    item: Item::RunLock(path),
                    why: e.to_string(),
                }),
            }
        }
    }
}

/// Whether a root rule (an `iptables -S` line) is still there.
fn rule_present(rule: &str) -> bool {
    ROOT_CHAINS
        .iter()
        .any(|c| list_rules(c).is_ok_and(|rs| rs.iter().any(|r| r == rule)))
}

/// Every process whose environment carries a run id, as pid -> (run id, parent pid). Never this
/// process or its ancestors.
fn tagged_processes(
    protected: &BTreeSet<i32>,
    report: &mut CleanReport,
) -> Result<BTreeMap<i32, (String, i32)>, ClusterError> {
    let dir = std::fs::read_dir("/proc")
        .map_err(|e| ClusterError::Other(format!("cannot read /proc: {e}")))?;
    let key = format!("{RUN_ID_ENV}=");
    let mut unreadable = 0usize;
    let mut found = BTreeMap::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        // pid 1 is the machine's (or container's) init: never ours, never to be touched.
        if pid <= 1 || protected.contains(&pid) {
            continue;
        }
        let environ = match std::fs::read(format!("/proc/{pid}/environ")) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                unreadable += 1;
                continue;
            }
            Err(_) => continue, // exited meanwhile
        };
        let run_id = environ
            .split(|&b| b == 0)
            .filter_map(|v| std::str::from_utf8(v).ok())
            .find_map(|v| v.strip_prefix(key.as_str()))
            .filter(|id| is_run_id(id));
        let Some(run_id) = run_id else { continue };
        let ppid = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| parse_ppid(&s))
            .unwrap_or(0);
        found.insert(pid, (run_id.to_string(), ppid));
    }
    // As root, an unreadable environ belongs to a process shielded from ptrace (an init, a
    // kernel-protected daemon): never one of ours, which inherit the harness's credentials.
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unreadable > 0 && unsafe { libc::geteuid() } != 0 {
        report.unchecked.push(format!(
            "{unreadable} processes of other users not checked: that needs root"
        ));
    }
    Ok(found)
}

/// This process and its ancestors: never killed, even if they carry a run id.
fn self_and_ancestors() -> BTreeSet<i32> {
    let mut set = BTreeSet::new();
    let mut pid = std::process::id() as i32;
    for _ in 0..64 {
        if pid <= 1 || !set.insert(pid) {
            break;
        }
        let Some(ppid) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| parse_ppid(&s))
        else {
            break;
        };
        pid = ppid;
    }
    set
}

/// The parent pid from a `/proc/PID/stat` line (the command name may hold spaces and parens).
fn parse_ppid(stat: &str) -> Option<i32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// A process's command name, for messages.
fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppid_survives_odd_command_names() {
        assert_eq!(parse_ppid("42 (a) b) S 7 42 42 0"), Some(7));
        assert_eq!(parse_ppid("garbage"), None);
    }

    #[test]
    fn clean_never_targets_itself() {
        assert!(self_and_ancestors().contains(&(std::process::id() as i32)));
    }

    #[test]
    fn clean_run_refuses_bad_ids() {
        assert!(clean_run("etc").is_err());
        assert!(clean(&CleanOptions {
            force: false,
            only: Some("../x".into())
        })
        .is_err());
    }

    fn failure() -> Failure {
        Failure {
            item: Item::Namespace("rcab12-n1".into()),
            why: "needs root".into(),
        }
    }

    fn live() -> LiveRun {
        LiveRun {
            run_id: "rcab12".into(),
            why: Live::LockHeld { pid: Some(42) },
            kept: Kept {
                processes: vec![43, 44],
                namespaces: vec!["rcab12-n1".into()],
                links: vec!["rcab12-br".into(), "rcab12-v1".into()],
                rules: vec!["-A FORWARD ...".into()],
                mounts: vec![],
            },
        }
    }

    #[test]
    fn exit_code_is_2_only_when_something_could_not_be_removed() {
        let mut r = CleanReport::default();
        assert_eq!(r.exit_code(), 0, "nothing to clean");
        assert!(r.nothing_to_clean());
        r.skipped.push(live());
        r.unchecked
            .push("iptables rules not checked: that needs root".into());
        assert_eq!(r.exit_code(), 0, "a skipped live run is not a failure");
        assert!(r.nothing_to_clean());
        r.removed.push(Item::Link("rcab12-br".into()));
        assert_eq!(r.exit_code(), 0);
        assert!(!r.nothing_to_clean());
        r.failed.push(failure());
        assert_eq!(r.exit_code(), 2);
        let r = CleanReport {
            failed: vec![failure()],
            ..Default::default()
        };
        assert_eq!(r.exit_code(), 2);
        assert!(!r.nothing_to_clean());
    }

    #[test]
    fn lines_say_what_happened_and_never_removed_for_a_failure() {
        assert_eq!(
            live().to_string(),
            "skipped live run rcab12 (pid 42, lock held): kept 2 processes (43 44), \
             1 namespace (rcab12-n1), 2 links (rcab12-br rcab12-v1), 1 iptables rule"
        );
        assert_eq!(
            failure().to_string(),
            "could not remove namespace rcab12-n1: needs root"
        );
        let p = Item::Process {
            pid: 7,
            comm: "raftkv".into(),
            run_id: "rcab12".into(),
        };
        assert_eq!(p.removed_line(), "killed process 7 (raftkv) of run rcab12");
        assert_eq!(
            Item::Namespace("rcab12-n1".into()).removed_line(),
            "removed namespace rcab12-n1"
        );
        let empty = LiveRun {
            kept: Kept::default(),
            ..live()
        };
        assert!(empty.to_string().ends_with("kept nothing yet"), "{empty}");
    }
}
