//! Node processes: start a server process so that it dies with the harness, signal its whole
//! process group, and learn when it exits.
//!
//! Three things make this harder than `Command::spawn` (DESIGN.md, "Known traps"):
//! - `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, not the process.
//!   Tokio's blocking threads exit after idling, so a node spawned from one would be killed a few
//!   seconds later for no visible reason. Every node is therefore forked by one long-lived
//!   spawner thread that lives as long as the harness.
//! - A SIGSTOPped process keeps SIGTERM pending, so stopping a paused node sends SIGCONT first.
//! - A server may fork helpers; every signal goes to the node's process group (the node is its
//!   leader), so a kill leaves nothing behind.
//!
//! A reaper thread per node waits for its exit with `waitid(WNOWAIT)`: it learns the status
//! without reaping, so the node's pid (= its process group id) stays reserved as a zombie until
//! the [`NodeProcess`] is dropped. Signalling the group can therefore never hit an unrelated
//! process that happened to get the recycled pid.

use super::ClusterError;
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The environment variable every node gets, holding its run id: `raftcheck clean` finds the
/// processes of an interrupted run by scanning `/proc/*/environ` for it.
pub(crate) const RUN_ID_ENV: &str = "RAFTCHECK_RUN_ID";

/// The environment variable every node gets, holding its node name (`n1`), so that `clean` can
/// say which node a stray process was.
pub(crate) const NODE_ENV: &str = "RAFTCHECK_NODE";

/// How long [`NodeProcess::kill`] waits for the group leader to exit after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// How to start one node process. Built by the run from the cluster spec; a [`super::host::Host`]
/// turns it into a process in the right network context.
#[derive(Clone, Debug)]
pub struct SpawnSpec {
    /// The program and its arguments (no shell is involved).
    pub argv: Vec<String>,
    /// Extra environment, on top of the harness's own.
    pub env: Vec<(String, String)>,
    /// The node's log file: stdout and stderr are appended to it, so a restart keeps the log of
    /// the previous incarnation above the new one.
    pub log: PathBuf,
    /// The run id, exported as `RAFTCHECK_RUN_ID` so `clean` can find strays.
    pub run_id: String,
    /// The node's name (`n1`), for messages and `RAFTCHECK_NODE`.
    pub node: String,
}

/// What the supervisor needs of a node process wherever it runs: a child of this harness
/// ([`NodeProcess`]) or a process on another machine (the SSH backend). Every method is
/// blocking and safe to call from any thread.
pub trait NodeProc: Send + Sync + std::fmt::Debug {
    /// The process id on its host (also its process group id there).
    fn pid(&self) -> u32;
    /// The exit status if it has exited, without blocking.
    fn exited(&self) -> Option<ExitStatus>;
    /// Wait up to `timeout` for it to exit; its status if it did.
    fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus>;
    /// SIGSTOP to its group; refused once it has exited.
    fn pause(&self) -> Result<(), ClusterError>;
    /// SIGCONT to its group.
    fn resume(&self) -> Result<(), ClusterError>;
    /// SIGCONT and SIGKILL to its group, then wait for the exit.
    fn kill(&self) -> Result<(), ClusterError>;
    /// SIGCONT, SIGTERM, `grace`, then SIGKILL.
    fn stop(&self, grace: Duration) -> Result<(), ClusterError>;
}

impl NodeProc for NodeProcess {
    fn pid(&self) -> u32 {
        NodeProcess::pid(self)
    }
    fn exited(&self) -> Option<ExitStatus> {
        NodeProcess::exited(self)
    }
    fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        NodeProcess::wait_exit(self, timeout)
    }
    fn pause(&self) -> Result<(), ClusterError> {
        NodeProcess::pause(self)
    }
    fn resume(&self) -> Result<(), ClusterError> {
        NodeProcess::resume(self)
    }
    fn kill(&self) -> Result<(), ClusterError> {
        NodeProcess::kill(self)
    }
    fn stop(&self, grace: Duration) -> Result<(), ClusterError> {
        NodeProcess::stop(self, grace)
    }
}

/// A running node process. It is the leader of its own process group, dies with the harness
/// (parent-death signal from the spawner thread), and is killed with its whole group when
/// dropped.
#[derive(Debug)]
pub struct NodeProcess {
    /// The node's name, for messages.
    node: String,
    /// The process id, which is also its process group id.
    pid: u32,
    /// Exit status and reaping state, shared with the reaper thread.
    shared: Arc<Shared>,
}

/// What the reaper thread and the owner share.
#[derive(Debug, Default)]
struct Shared {
    /// Exit status and who reaps the zombie; the reaper thread and `Drop` both update it, and
    /// whichever comes second reaps.
    state: Mutex<ReapState>,
    /// Notified when the exit status becomes known.
    exited: Condvar,
}

/// Who reaps the zombie: whichever of the reaper thread (which learns the status) and `Drop`
/// (which releases the pid) comes second.
#[derive(Debug, Default)]
struct ReapState {
    /// The exit status, once the process has exited.
    status: Option<ExitStatus>,
    /// The owner dropped the [`NodeProcess`]; the pid need not stay reserved any longer.
    dropped: bool,
    /// The zombie has been reaped (or was reaped by someone else).
    reaped: bool,
}

// The runner, the nemesis and the monitor share nodes across threads.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<NodeProcess>();
};

/// A spawn request for the spawner thread: the command and where to send its pid.
type Job = (Command, mpsc::Sender<io::Result<u32>>);

/// The one long-lived thread that forks every node (see the module doc for why).
static SPAWNER: OnceLock<Result<mpsc::Sender<Job>, String>> = OnceLock::new();

fn spawner() -> Result<&'static mpsc::Sender<Job>, ClusterError> {
    let s = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("raftcheck-spawner".into())
            .spawn(move || {
                // Lives as long as the process: SPAWNER holds a sender forever.
                for (mut cmd, reply) in rx {
                    // Dropping the `Child` neither kills nor reaps it: the reaper thread does.
                    let _ = reply.send(cmd.spawn().map(|c| c.id()));
                }
            })
            .map(|_| tx)
            .map_err(|e| format!("cannot start the spawner thread: {e}"))
    });
    s.as_ref().map_err(|e| ClusterError::Other(e.clone()))
}

/// Start `prefix ++ spec.argv` as a node process. `prefix` is how a host places the process
/// (`ip netns exec NS` for a namespace, nothing for loopback).
pub(crate) fn spawn_node(spec: &SpawnSpec, prefix: &[&str]) -> Result<NodeProcess, ClusterError> {
    let node_err = |msg: String| ClusterError::Node {
        node: spec.node.clone(),
        msg,
    };
    if spec.argv.is_empty() {
        return Err(node_err("empty argv".into()));
    }
    let argv: Vec<&str> = prefix
        .iter()
        .copied()
        .chain(spec.argv.iter().map(String::as_str))
        .collect();
    let (program, args) = (argv[0], &argv[1..]);
    if let Some(dir) = spec.log.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| node_err(format!("cannot create {}: {e}", dir.display())))?;
    }
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log)
        .map_err(|e| node_err(format!("cannot open log {}: {e}", spec.log.display())))?;
    // A header per incarnation, so a log spanning restarts reads as a story.
    let _ = writeln!(
        log,
        "--- raftcheck {}: starting node {} at {}: {}",
        spec.run_id,
        spec.node,
        chrono::Local::now().to_rfc3339(),
        argv.join(" ")
    );
    let stderr = log
        .try_clone()
        .map_err(|e| node_err(format!("cannot duplicate log handle: {e}")))?;

    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .env(RUN_ID_ENV, &spec.run_id)
        .env(NODE_ENV, &spec.node)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(stderr))
        .process_group(0);
    // SAFETY: the hook runs between fork and exec and only calls async-signal-safe functions.
    unsafe {
        cmd.pre_exec(crate::client::command::die_with_harness());
    }

    let (tx, rx) = mpsc::channel();
    spawner()?
        .send((cmd, tx))
        .map_err(|_| ClusterError::Other("the spawner thread is gone".into()))?;
    let pid = rx
        .recv()
        .map_err(|_| ClusterError::Other("the spawner thread is gone".into()))?
        .map_err(|e| node_err(format!("cannot start `{program}`: {e}")))?;

    let shared = Arc::new(Shared::default());
    let reaper = Arc::clone(&shared);
    let started = std::thread::Builder::new()
        .name(format!("raftcheck-reap-{}", spec.node))
        .spawn(move || reap(pid, &reaper));
    let proc = NodeProcess {
        node: spec.node.clone(),
        pid,
        shared,
    };
    if let Err(e) = started {
        // Without a reaper we could never report an exit; do not leave the node running.
        drop(proc);
        return Err(node_err(format!("cannot start reaper thread: {e}")));
    }
    tracing::debug!(node = %spec.node, pid, argv = %argv.join(" "), "node started");
    Ok(proc)
}

/// The reaper thread: wait for the exit without reaping, publish the status, and reap only if
/// the owner is already gone.
fn reap(pid: u32, shared: &Shared) {
    let p = Pid::from_raw(pid as i32);
    let (status, gone) = loop {
        match waitid(Id::Pid(p), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
            Ok(WaitStatus::Exited(_, code)) => {
                break (ExitStatus::from_raw((code & 0xff) << 8), false)
            }
            Ok(WaitStatus::Signaled(_, sig, core)) => {
                break (
                    ExitStatus::from_raw(sig as i32 | if core { 0x80 } else { 0 }),
                    false,
                )
            }
            Err(nix::errno::Errno::EINTR) => continue,
            // Not an exit (WEXITED alone reports nothing else, but never spin if it did).
            Ok(_) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => {
                // ECHILD: someone else reaped it (a stray waitpid(-1) somewhere). We no longer
                // know how it ended; report a generic failure rather than hanging forever.
                tracing::warn!(pid, error = %e, "cannot wait for node process");
                break (ExitStatus::from_raw(255 << 8), true);
            }
        }
    };
    let mut st = lock(&shared.state);
    st.status = Some(status);
    st.reaped |= gone;
    if st.dropped && !st.reaped {
        let _ = waitpid(p, None);
        st.reaped = true;
    }
    shared.exited.notify_all();
}

fn lock(m: &Mutex<ReapState>) -> std::sync::MutexGuard<'_, ReapState> {
    // A poisoned lock only means another thread panicked while holding it; the state is a few
    // plain fields that are always consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl NodeProcess {
    /// The node's pid: with `ip netns exec` (which execs in place) this is the server itself.
    /// It is also the process group id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The node's name (`n1`).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The exit status if the node has exited, without blocking. A node that exits when the
    /// nemesis did not kill it is a finding (a crash).
    pub fn exited(&self) -> Option<ExitStatus> {
        lock(&self.shared.state).status
    }

    /// Wait up to `timeout` for the node to exit; its status if it did.
    pub fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let mut st = lock(&self.shared.state);
        loop {
            if st.status.is_some() {
                return st.status;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            st = self
                .shared
                .exited
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Send `sig` to the node's process group. Refused once the node has exited, so that a
    /// nemesis never believes it paused a dead node.
    pub fn signal(&self, sig: Signal) -> Result<(), ClusterError> {
        if let Some(st) = self.exited() {
            return Err(self.err(format!("cannot send {sig}: already exited ({st})")));
        }
        self.signal_group(sig).map_err(|e| {
            self.err(format!(
                "cannot send {sig} to process group {}: {e}",
                self.pid
            ))
        })
    }

    /// Pause the node (SIGSTOP to its group).
    pub fn pause(&self) -> Result<(), ClusterError> {
        self.signal(Signal::SIGSTOP)
    }

    /// Resume a paused node (SIGCONT to its group).
    pub fn resume(&self) -> Result<(), ClusterError> {
        self.signal(Signal::SIGCONT)
    }

    /// Crash the node: SIGCONT then SIGKILL to its group, and wait up to 5 s for the exit.
    /// (SIGKILL alone ends stopped processes too; the SIGCONT keeps every fault path in the same
    /// order.) Killing a node that already exited is not an error.
    pub fn kill(&self) -> Result<(), ClusterError> {
        let _ = self.signal_group(Signal::SIGCONT);
        let _ = self.signal_group(Signal::SIGKILL);
        match self.wait_exit(KILL_WAIT) {
            Some(_) => Ok(()),
            None => Err(self.err(format!(
                "still running {} s after SIGKILL (pid {})",
                KILL_WAIT.as_secs(),
                self.pid
            ))),
        }
    }

    /// Stop the node politely: SIGCONT (a paused process keeps SIGTERM pending), SIGTERM, wait up
    /// to `grace`, then SIGKILL. Idempotent: stopping an exited node only sweeps its group.
    pub fn stop(&self, grace: Duration) -> Result<(), ClusterError> {
        if self.exited().is_none() {
            let _ = self.signal_group(Signal::SIGCONT);
            let _ = self.signal_group(Signal::SIGTERM);
            if self.wait_exit(grace).is_none() {
                return self.kill();
            }
        }
        // Helpers the server forked may outlive it; the zombie leader keeps the group id ours.
        let _ = self.signal_group(Signal::SIGKILL);
        Ok(())
    }

    /// killpg, unless the pid was released (then the group id may belong to someone else).
    fn signal_group(&self, sig: Signal) -> nix::Result<()> {
        let st = lock(&self.shared.state);
        if st.reaped {
            return Err(nix::errno::Errno::ESRCH);
        }
        killpg(Pid::from_raw(self.pid as i32), sig)
    }

    fn err(&self, msg: String) -> ClusterError {
        ClusterError::Node {
            node: self.node.clone(),
            msg,
        }
    }
}

impl Drop for NodeProcess {
    /// Kill the whole group if anything of it still runs, then release the pid.
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.signal_group(Signal::SIGCONT);
            let _ = self.signal_group(Signal::SIGKILL);
            if self.wait_exit(KILL_WAIT).is_none() {
                tracing::warn!(node = %self.node, pid = self.pid, "node survived SIGKILL");
            }
        } else {
            let _ = self.signal_group(Signal::SIGKILL);
        }
        let mut st = lock(&self.shared.state);
        st.dropped = true;
        if st.status.is_some() && !st.reaped {
            let _ = waitpid(Pid::from_raw(self.pid as i32), Some(WaitPidFlag::WNOHANG));
            st.reaped = true;
        }
    }
}
