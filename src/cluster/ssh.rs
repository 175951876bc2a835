//! Nodes on other machines, reached over SSH: the [`Host`] for `raftcheck run --hosts`.
//!
//! Built on the system OpenSSH client through the `openssh` crate, with one multiplexed
//! master connection per host (ControlMaster; every command is a new channel on it, no new
//! handshake). OpenSSH rather than a pure-Rust client because it is what the user's machines
//! are already set up for: their `~/.ssh/config`, agent, known_hosts, ProxyJump and key types
//! all work unchanged, and raftcheck carries no SSH or crypto code of its own.
//!
//! On the host, run `R` (its run id) keeps everything under `<dir>/R/`: `controller` (which
//! machine and process started it, for `raftcheck clean --hosts`), and per node `nK/` with the
//! uploaded binary (`bin/`), `data/`, `log`, and one `inc-<k>/` per incarnation holding `pid`
//! and, once it has ended, `status`. A node is started detached from the SSH session:
//!
//! ```text
//! setsid sh -c 'setsid "$@" >>log 2>&1 </dev/null & echo $! >pid; wait $!; echo $? >status' \
//!     _ env RAFTCHECK_RUN_ID=R ... server args... &
//! ```
//!
//! The outer `sh` outlives the session and records the exit status; the server leads its own
//! session and process group, so signals go to `-pid` as they do locally. A watcher channel
//! per incarnation waits on the host for `status` and reports the exit (crash detection works
//! as locally, some tens of milliseconds later). A signal is sent only while `status` does not
//! exist, so a recycled pid is never hit.
//!
//! Times are all the controller's: the checker never sees a host's clock, so clock skew
//! between hosts cannot change a verdict.

use super::damage::DirCopy;
use super::host::{Host, NodeFiles};
use super::process::{NodeProc, SpawnSpec, NODE_ENV, RUN_ID_ENV};
use super::ClusterError;
use crate::spec::hosts::{HostEntry, HostKeyCheck};
use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder, Stdio};
use std::borrow::Cow;
use std::future::Future;
use std::net::IpAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long one remote command may take before it counts as failed (uploads excepted).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`NodeProc::kill`] waits for the exit to be reported after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// A watcher that loses its channel tries again this many times, a second apart.
const WATCH_RETRIES: u32 = 30;
/// Where the master connections' control sockets live (a short path: socket paths are limited
/// to 108 bytes).
const CONTROL_DIR: &str = "/tmp/raftcheck-ssh";

/// The runtime every SSH future runs on, apart from the run's own: the supervisor's methods
/// are blocking and are called from the run's async tasks as well as from plain threads, and
/// blocking on a separate runtime is safe from both.
static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();

fn runtime() -> Result<&'static tokio::runtime::Runtime, ClusterError> {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("raftcheck-ssh")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the SSH runtime: {e}"))
        })
        .as_ref()
        .map_err(|e| ClusterError::Other(e.clone()))
}

fn block<F>(fut: F) -> Result<F::Output, ClusterError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    runtime()?.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv()
        .map_err(|_| ClusterError::Other("the SSH runtime stopped".into()))
}

fn spawn_task<F>(fut: F) -> Result<tokio::task::AbortHandle, ClusterError>
where
    F: Future<Output = ()> + Send + 'static,
{
    Ok(runtime()?.spawn(fut).abort_handle())
}

/// An error and its sources, one line: openssh's own messages are generic ("the master
/// connection failed") and the cause is in the chain.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Quote one word for a POSIX shell.
pub(crate) fn quote(s: &str) -> String {
    shell_escape::unix::escape(Cow::Borrowed(s)).into_owned()
}

/// Quote and join an argv.
fn quote_argv<S: AsRef<str>>(argv: &[S]) -> String {
    argv.iter()
        .map(|a| quote(a.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Which way [`SshConn::stream`] moves a file.
enum Stream {
    /// The local file is the command's stdin.
    Send(PathBuf),
    /// The command's stdout becomes the local file.
    Receive(PathBuf),
}

/// A master connection to one host, shared by the node that runs there and by clean.
pub struct SshConn {
    entry: HostEntry,
    session: Arc<Session>,
}

impl std::fmt::Debug for SshConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshConn")
            .field("host", &self.entry.label())
            .finish()
    }
}

impl SshConn {
    /// Open the master connection (BatchMode: a key or agent, never a password prompt).
    pub fn connect(entry: &HostEntry) -> Result<SshConn, ClusterError> {
        let fail = |msg: String| ClusterError::Other(format!("host {}: {msg}", entry.label()));
        std::fs::create_dir_all(CONTROL_DIR)
            .map_err(|e| fail(format!("creating {CONTROL_DIR}: {e}")))?;
        let mut b = SessionBuilder::default();
        if let Some(u) = &entry.user {
            b.user(u.clone());
        }
        b.port(entry.port);
        if let Some(k) = &entry.key {
            b.keyfile(k);
        }
        b.known_hosts_check(match entry.host_key_check {
            HostKeyCheck::Strict => KnownHosts::Strict,
            HostKeyCheck::AcceptNew => KnownHosts::Add,
            HostKeyCheck::Off => KnownHosts::Accept,
        });
        if let Some(k) = &entry.known_hosts {
            b.user_known_hosts_file(k);
        }
        b.connect_timeout(Duration::from_secs(10));
        b.server_alive_interval(Duration::from_secs(5));
        b.control_directory(CONTROL_DIR);
        // A master left by a killed harness exits by itself once idle.
        if let Some(idle) = std::num::NonZeroUsize::new(120) {
            b.control_persist(ControlPersist::IdleFor(idle));
        }
        let dest = entry.address.clone();
        let session = block(async move { b.connect_mux(dest).await })?
            .map_err(|e| fail(format!("cannot connect over SSH: {}", chain(&e))))?;
        Ok(SshConn {
            entry: entry.clone(),
            session: Arc::new(session),
        })
    }

    /// The host this connection reaches.
    pub fn entry(&self) -> &HostEntry {
        &self.entry
    }

    /// The command line the host runs for `script`: `sh -c` (through `sudo -n` when the hosts
    /// file asks), so the login shell, whatever it is, only sees one quoted word.
    fn wrap(&self, script: &str) -> String {
        let sudo = if self.entry.sudo { "sudo -n " } else { "" };
        format!("{sudo}sh -c {}", quote(script))
    }

    fn err(&self, what: &str, msg: String) -> ClusterError {
        // Scripts can be long; the start says which one it was.
        let what: String = match what.char_indices().nth(72) {
            Some((i, _)) => format!("{}...", &what[..i]),
            None => what.to_string(),
        };
        ClusterError::Command {
            cmd: format!("{}: {what}", self.entry.label()),
            msg,
        }
    }

    /// Run `script` on the host and wait (at most `timeout`); a non-zero exit is an error
    /// carrying stderr.
    pub(crate) fn sh_timeout(
        &self,
        script: &str,
        timeout: Duration,
    ) -> Result<Output, ClusterError> {
        self.run_line(self.wrap(script), script, timeout)
    }

    /// Run a command line exactly as given (the login shell parses it); `script` names it in
    /// errors.
    fn run_line(
        &self,
        line: String,
        script: &str,
        timeout: Duration,
    ) -> Result<Output, ClusterError> {
        let session = self.session.clone();
        let res = block(async move {
            let mut cmd = session.arc_raw_command(line);
            cmd.stdin(Stdio::null());
            tokio::time::timeout(timeout, cmd.output()).await
        })?;
        let out = match res {
            Err(_) => {
                return Err(self.err(script, format!("no answer within {} s", timeout.as_secs())))
            }
            Ok(Err(e)) => return Err(self.err(script, chain(&e))),
            Ok(Ok(o)) => o,
        };
        if out.status.success() {
            return Ok(out);
        }
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let msg = if stderr.is_empty() {
            out.status.to_string()
        } else {
            stderr
        };
        Err(self.err(script, msg))
    }

    /// [`SshConn::sh_timeout`] with the usual timeout.
    pub(crate) fn sh(&self, script: &str) -> Result<Output, ClusterError> {
        self.sh_timeout(script, COMMAND_TIMEOUT)
    }

    /// [`SshConn::sh`], stdout as text.
    pub(crate) fn sh_stdout(&self, script: &str) -> Result<String, ClusterError> {
        self.sh(script)
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// Copy the local file `from` to `to` on the host (through a temporary name, mode 0755).
    fn upload(&self, from: &Path, to: &str) -> Result<(), ClusterError> {
        let tmp = format!("{to}.part");
        let script = format!(
            "cat > {t} && chmod 755 {t} && mv {t} {to}",
            t = quote(&tmp),
            to = quote(to)
        );
        self.stream(&script, Stream::Send(from.to_path_buf()))
            .map_err(|msg| self.err(&format!("upload to {to}"), msg))
    }

    /// Stream the output of `script` on the host into the local file `to`.
    fn download(&self, script: &str, to: &Path) -> Result<(), ClusterError> {
        self.stream(script, Stream::Receive(to.to_path_buf()))
            .map_err(|msg| self.err(script, msg))
    }

    /// Run `script` with a local file as its stdin or as where its stdout goes, without
    /// holding the file in memory (a data dir brought back can be large).
    fn stream(&self, script: &str, how: Stream) -> Result<(), String> {
        use tokio::io::AsyncWriteExt;
        let line = self.wrap(script);
        let session = self.session.clone();
        block(async move {
            let mut cmd = session.arc_raw_command(line);
            cmd.stderr(Stdio::piped());
            match &how {
                Stream::Send(_) => cmd.stdin(Stdio::piped()).stdout(Stdio::null()),
                Stream::Receive(_) => cmd.stdin(Stdio::null()).stdout(Stdio::piped()),
            };
            let mut child = cmd.spawn().await.map_err(|e| chain(&e))?;
            match &how {
                Stream::Send(from) => {
                    let mut file = tokio::fs::File::open(from)
                        .await
                        .map_err(|e| format!("reading {}: {e}", from.display()))?;
                    if let Some(mut stdin) = child.stdin().take() {
                        tokio::io::copy(&mut file, &mut stdin)
                            .await
                            .map_err(|e| format!("sending: {e}"))?;
                        let _ = stdin.shutdown().await;
                    }
                }
                Stream::Receive(to) => {
                    let mut file = tokio::fs::File::create(to)
                        .await
                        .map_err(|e| format!("creating {}: {e}", to.display()))?;
                    if let Some(mut stdout) = child.stdout().take() {
                        tokio::io::copy(&mut stdout, &mut file)
                            .await
                            .map_err(|e| format!("receiving: {e}"))?;
                    }
                }
            }
            let out = child.wait_with_output().await.map_err(|e| chain(&e))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
            }
        })
        .map_err(|e| e.to_string())?
    }

    /// Everything a run needs of the host, checked before any node starts: a shell, `setsid`
    /// and `tar`; working `sudo -n` when asked for; iptables when the nemesis partitions; the
    /// server binary on the host (or one the host can run, when it is uploaded).
    pub fn preflight(&self, binary: &Path, partitions: bool) -> Result<(), ClusterError> {
        let label = self.entry.label();
        let fail = |msg: String| ClusterError::Other(format!("host {label}: {msg}"));
        if self.entry.sudo {
            self.run_line("sudo -n true".into(), "sudo -n true", COMMAND_TIMEOUT)
                .map_err(|e| fail(format!("sudo = true, but {e}")))?;
        }
        let missing = self
            .sh_stdout(
                "for c in setsid tar tail; do command -v \"$c\" >/dev/null 2>&1 || echo \"$c\"; done",
            )
            .map_err(|e| fail(e.to_string()))?;
        let missing: Vec<&str> = missing.split_whitespace().collect();
        if !missing.is_empty() {
            return Err(fail(format!("missing commands: {}", missing.join(", "))));
        }
        self.sh(&format!(
            "mkdir -p {d} && test -w {d}",
            d = quote(&self.entry.dir)
        ))
        .map_err(|e| fail(format!("cannot use dir {}: {e}", self.entry.dir)))?;
        if partitions {
            self.sh("iptables -w 5 -S INPUT >/dev/null").map_err(|e| {
                fail(format!(
                    "partitions need iptables on the host (as root or with sudo = true): {e}"
                ))
            })?;
        }
        match &self.entry.binary {
            Some(p) => {
                self.sh(&format!("command -v {} >/dev/null", quote(p)))
                    .map_err(|_| fail(format!("binary {p} (from the hosts file) is not there")))?;
            }
            None => {
                let arch = self
                    .sh_stdout("uname -m")
                    .map_err(|e| fail(e.to_string()))?;
                let arch = arch.trim();
                if let Some(bin_arch) = elf_arch(binary) {
                    if !same_arch(bin_arch, arch) {
                        return Err(fail(format!(
                            "{} is built for {bin_arch}, and the host is {arch}: give a binary \
                             for the host, or its path there (`binary` in the hosts file)",
                            binary.display()
                        )));
                    }
                } else {
                    return Err(fail(format!(
                        "{} is not a Linux executable (ELF) to upload; give its path on the \
                         host (`binary` in the hosts file)",
                        binary.display()
                    )));
                }
            }
        }
        Ok(())
    }
}

/// The machine an ELF executable is for, in `uname -m` terms; `None` if the file is not ELF.
pub(crate) fn elf_arch(path: &Path) -> Option<&'static str> {
    use std::io::Read;
    let mut head = [0u8; 20];
    std::fs::File::open(path).ok()?.read_exact(&mut head).ok()?;
    if &head[..4] != b"\x7fELF" {
        return None;
    }
    let machine = if head[5] == 2 {
        u16::from_be_bytes([head[18], head[19]])
    } else {
        u16::from_le_bytes([head[18], head[19]])
    };
    Some(match machine {
        0x3e => "x86_64",
        0xb7 => "aarch64",
        0x28 => "arm",
        0x03 => "i686",
        0xf3 => "riscv64",
        0x15 => "ppc64",
        0x16 => "s390x",
        _ => "unknown",
    })
}

/// Whether a binary for `bin` runs on a host whose `uname -m` is `host`.
fn same_arch(bin: &str, host: &str) -> bool {
    match bin {
        "arm" => host.starts_with("arm"),
        "i686" => matches!(host, "i386" | "i486" | "i586" | "i686" | "x86_64"),
        "ppc64" => host.starts_with("ppc64"),
        _ => bin == host,
    }
}

/// One node on one host.
pub(crate) struct SshHost {
    conn: Arc<SshConn>,
    name: String,
    /// `<dir>/<run id>`.
    run_dir: String,
    /// `<dir>/<run id>/<node>`.
    node_dir: String,
    /// Numbers the incarnations' directories.
    incarnation: AtomicU64,
}

impl SshHost {
    /// Node `name` of run `run_id` on `conn`'s host.
    pub(crate) fn new(conn: Arc<SshConn>, name: &str, run_id: &str) -> SshHost {
        let run_dir = format!("{}/{run_id}", conn.entry.dir);
        SshHost {
            node_dir: format!("{run_dir}/{name}"),
            run_dir,
            conn,
            name: name.to_string(),
            incarnation: AtomicU64::new(0),
        }
    }

    fn fail(&self, msg: String) -> ClusterError {
        ClusterError::Node {
            node: format!("{} on {}", self.name, self.conn.entry.label()),
            msg,
        }
    }

    /// Bring the host's directory `remote` into the local directory `into` (created): one tar
    /// stream, staged in `into.tar` beside it, so nothing large is held in memory.
    fn download_dir(&self, remote: &Path, into: &Path) -> Result<(), ClusterError> {
        let tar = into.with_extension("tar");
        let r = self
            .conn
            .download(
                &format!("tar -C {} -cf - .", quote(&remote.display().to_string())),
                &tar,
            )
            .and_then(|()| untar(&tar, into));
        let _ = std::fs::remove_file(&tar);
        r
    }
}

/// Where a controller process is: this machine's boot id and the pid, written into a run's
/// directory on every host so that `clean --hosts` can tell whose run it is.
pub(crate) fn controller_record() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    format!("{} {}", boot.trim(), std::process::id())
}

impl Host for SshHost {
    fn name(&self) -> &str {
        &self.name
    }

    fn ip(&self) -> IpAddr {
        self.conn.entry.ip
    }

    fn spawn(&self, spec: &SpawnSpec) -> Result<Box<dyn NodeProc>, ClusterError> {
        if spec.argv.is_empty() {
            return Err(self.fail("empty argv".into()));
        }
        let k = self.incarnation.fetch_add(1, Ordering::Relaxed);
        let inc = format!("{}/inc-{k}", self.node_dir);
        let mut env = vec![
            format!("{RUN_ID_ENV}={}", spec.run_id),
            format!("{NODE_ENV}={}", spec.node),
        ];
        env.extend(spec.env.iter().map(|(k, v)| format!("{k}={v}")));
        let inner = format!(
            "setsid \"$@\" >> {log} 2>&1 < /dev/null & echo $! > pid.tmp && mv pid.tmp pid; \
             wait $!; echo $? > status.tmp; mv status.tmp status",
            log = quote(&spec.log.display().to_string())
        );
        let script = format!(
            "mkdir -p {inc} && cd {inc} && \
             setsid sh -c {inner} raftcheck-node env {env} {argv} > /dev/null 2>&1 < /dev/null & \
             i=0; while [ ! -s {inc}/pid ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; \
             cat {inc}/pid",
            inc = quote(&inc),
            inner = quote(&inner),
            env = quote_argv(&env),
            argv = quote_argv(&spec.argv),
        );
        let out = self.conn.sh_stdout(&script)?;
        let pid: u32 = out
            .trim()
            .parse()
            .map_err(|_| self.fail(format!("did not start (no pid within 10 s): {out:?}")))?;
        Ok(Box::new(RemoteProcess::start(
            self.conn.clone(),
            &self.name,
            pid,
            inc,
        )))
    }

    fn exec(&self, argv: &[&str]) -> Result<Output, ClusterError> {
        self.conn.sh(&quote_argv(argv))
    }

    fn files_are_local(&self) -> bool {
        false
    }

    fn replace_drops(&self, comment: &str, sources: &[IpAddr]) -> Result<(), ClusterError> {
        let srcs: Vec<String> = sources.iter().map(IpAddr::to_string).collect();
        set_drops(&self.conn, comment, &srcs)
    }

    fn install(&self, binary: &Path) -> Result<PathBuf, ClusterError> {
        if let Some(p) = &self.conn.entry.binary {
            return Ok(PathBuf::from(p));
        }
        let name = binary
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "server".into());
        let bin_dir = format!("{}/bin", self.node_dir);
        self.conn.sh(&format!("mkdir -p {}", quote(&bin_dir)))?;
        let to = format!("{bin_dir}/{name}");
        self.conn.upload(binary, &to)?;
        Ok(PathBuf::from(to))
    }

    fn prepare(&self, _node_dir: &Path) -> Result<NodeFiles, ClusterError> {
        let data = format!("{}/data", self.node_dir);
        let log = format!("{}/log", self.node_dir);
        self.conn.sh(&format!(
            "mkdir -p {data} && : >> {log} && printf '%s\\n' {who} > {run}/controller",
            data = quote(&data),
            log = quote(&log),
            who = quote(&controller_record()),
            run = quote(&self.run_dir),
        ))?;
        Ok(NodeFiles {
            data: PathBuf::from(data),
            log: PathBuf::from(log),
        })
    }

    fn tail(&self, files: &NodeFiles, lines: usize) -> String {
        self.conn
            .sh_stdout(&format!(
                "tail -n {lines} {}",
                quote(&files.log.display().to_string())
            ))
            .unwrap_or_else(|e| format!("(log not read: {e})"))
    }

    fn wipe(&self, files: &NodeFiles) -> Result<(), ClusterError> {
        let d = quote(&files.data.display().to_string());
        self.conn.sh(&format!("rm -rf {d} && mkdir -p {d}"))?;
        Ok(())
    }

    fn fetch_data(&self, files: &NodeFiles, scratch: &Path) -> Result<PathBuf, ClusterError> {
        let _ = std::fs::remove_dir_all(scratch);
        self.download_dir(&files.data, scratch)?;
        Ok(scratch.to_path_buf())
    }

    fn write_back(&self, files: &NodeFiles, from: &Path, rel: &Path) -> Result<(), ClusterError> {
        // Rewritten in place (same inode and mode), then flushed: what a disk that damaged the
        // file would leave.
        let to = format!("{}/{}", files.data.display(), rel.display());
        let script = format!("cat > {t} && sync", t = quote(&to));
        self.conn
            .stream(&script, Stream::Send(from.join(rel)))
            .map_err(|msg| self.fail(format!("writing {to}: {msg}")))
    }

    fn restore_data(&self, files: &NodeFiles, copy: &DirCopy) -> Result<(), ClusterError> {
        let data = files.data.display().to_string();
        let tar = copy.root.with_extension("restore.tar");
        let (f, t) = (copy.root.display().to_string(), tar.display().to_string());
        super::host::run(&["tar", "-C", &f, "-cf", &t, "."])?;
        let d = quote(&data);
        let script = format!("rm -rf {d} && mkdir -p {d} && tar -C {d} -xf - && sync");
        let r = self
            .conn
            .stream(&script, Stream::Send(tar.clone()))
            .map_err(|msg| self.fail(format!("restoring {data}: {msg}")));
        let _ = std::fs::remove_file(&tar);
        r
    }

    fn collect(
        &self,
        files: &NodeFiles,
        node_dir: &Path,
        keep_data: bool,
    ) -> Result<(), ClusterError> {
        std::fs::create_dir_all(node_dir)
            .map_err(|e| self.fail(format!("creating {}: {e}", node_dir.display())))?;
        let log = quote(&files.log.display().to_string());
        let got_log = self
            .conn
            .download(&format!("cat {log}"), &node_dir.join("log"));
        let got_data = if keep_data {
            self.download_dir(&files.data, &node_dir.join("data"))
        } else {
            Ok(())
        };
        // Remove the node's files, after killing any incarnation still running (the supervisor
        // stopped them; this is the safety net); the run's directory goes with its last node.
        let removed = self.conn.sh(&format!(
            "for p in {node}/inc-*/pid; do [ -e \"$p\" ] || continue; \
             [ -e \"${{p%pid}}status\" ] || kill -s KILL -- \"-$(cat \"$p\")\" 2>/dev/null; \
             done; rm -rf {node} && cd {run} && if [ -z \"$(ls -A | grep -vx controller)\" ]; then \
             cd / && rm -rf {run}; fi",
            node = quote(&self.node_dir),
            run = quote(&self.run_dir),
        ));
        got_log.and(got_data).and(removed).map(|_| ())
    }
}

fn untar(tar: &Path, into: &Path) -> Result<(), ClusterError> {
    std::fs::create_dir_all(into)
        .map_err(|e| ClusterError::Other(format!("{}: {e}", into.display())))?;
    let (t, i) = (tar.display().to_string(), into.display().to_string());
    super::host::run(&["tar", "-C", &i, "-xf", &t]).map(|_| ())
}

/// How a status file's number reads as an exit status: `sh`'s `$?` is 128 + n for a process
/// killed by signal n.
fn exit_status_of(code: i32) -> ExitStatus {
    if (129..=128 + 64).contains(&code) {
        ExitStatus::from_raw(code - 128)
    } else {
        ExitStatus::from_raw((code & 0xff) << 8)
    }
}

/// A node process on a host: its pid there, and what the watcher has learnt of its end.
struct RemoteProcess {
    conn: Arc<SshConn>,
    node: String,
    pid: u32,
    /// The incarnation's directory, holding `pid` and `status`.
    inc: String,
    shared: Arc<(Mutex<Option<ExitStatus>>, Condvar)>,
    watcher: Option<tokio::task::AbortHandle>,
}

impl std::fmt::Debug for RemoteProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteProcess")
            .field("node", &self.node)
            .field("host", &self.conn.entry.label())
            .field("pid", &self.pid)
            .finish()
    }
}

impl RemoteProcess {
    fn start(conn: Arc<SshConn>, node: &str, pid: u32, inc: String) -> RemoteProcess {
        let shared: Arc<(Mutex<Option<ExitStatus>>, Condvar)> = Arc::default();
        let status = quote(&format!("{inc}/status"));
        // Bounded: a day of 50 ms polls, and over as soon as the incarnation's directory is
        // removed (the run collected the node, or `clean` did after a killed controller).
        let wait = conn.wrap(&format!(
            "i=0; while [ ! -e {status} ] && [ -d {dir} ] && [ $i -lt 1728000 ]; do sleep 0.05; \
             i=$((i+1)); done; cat {status}",
            dir = quote(&inc)
        ));
        let (session, sh, label) = (conn.session.clone(), shared.clone(), conn.entry.label());
        let node_name = node.to_string();
        let watcher = spawn_task(async move {
            for attempt in 0..=WATCH_RETRIES {
                let mut cmd = session.clone().arc_raw_command(wait.clone());
                cmd.stdin(Stdio::null());
                match cmd.output().await {
                    Ok(o) if o.status.success() => {
                        let text = String::from_utf8_lossy(&o.stdout);
                        if let Ok(code) = text.trim().parse::<i32>() {
                            let (m, cv) = &*sh;
                            *m.lock().unwrap_or_else(|e| e.into_inner()) =
                                Some(exit_status_of(code));
                            cv.notify_all();
                            return;
                        }
                    }
                    Ok(_) | Err(_) => {}
                }
                if attempt < WATCH_RETRIES {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            tracing::warn!(node = %node_name, host = %label, "lost track of the node's process");
        });
        RemoteProcess {
            conn,
            node: node.to_string(),
            pid,
            inc,
            shared,
            // The runtime exists: the connection this node was started over was made on it.
            watcher: watcher.ok(),
        }
    }

    /// Send `sig` to the process group, unless it has ended (its status file exists).
    fn signal(&self, sig: &str) -> Result<(), ClusterError> {
        if let Some(st) = self.exited() {
            return Err(self.err(format!("cannot send SIG{sig}: already exited ({st})")));
        }
        self.conn
            .sh(&format!(
                "[ -e {s} ] || kill -s {sig} -- -{pid}",
                s = quote(&format!("{}/status", self.inc)),
                pid = self.pid
            ))
            .map(|_| ())
            .map_err(|e| self.err(format!("SIG{sig}: {e}")))
    }

    fn err(&self, msg: String) -> ClusterError {
        ClusterError::Node {
            node: format!("{} on {}", self.node, self.conn.entry.label()),
            msg,
        }
    }
}

impl NodeProc for RemoteProcess {
    fn pid(&self) -> u32 {
        self.pid
    }

    fn exited(&self) -> Option<ExitStatus> {
        *self.shared.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.shared;
        let mut st = m.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if st.is_some() {
                return *st;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            st = cv
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn pause(&self) -> Result<(), ClusterError> {
        self.signal("STOP")
    }

    fn resume(&self) -> Result<(), ClusterError> {
        self.signal("CONT")
    }

    fn kill(&self) -> Result<(), ClusterError> {
        if self.exited().is_some() {
            return Ok(());
        }
        // One round trip: a paused node gets SIGCONT first, as locally.
        let _ = self.conn.sh(&format!(
            "[ -e {s} ] || {{ kill -s CONT -- -{pid}; kill -s KILL -- -{pid}; }} 2>/dev/null; true",
            s = quote(&format!("{}/status", self.inc)),
            pid = self.pid
        ));
        match self.wait_exit(KILL_WAIT) {
            Some(_) => Ok(()),
            None => Err(self.err(format!(
                "no exit seen {} s after SIGKILL (pid {})",
                KILL_WAIT.as_secs(),
                self.pid
            ))),
        }
    }

    fn stop(&self, grace: Duration) -> Result<(), ClusterError> {
        if self.exited().is_none() {
            let _ = self.signal("CONT");
            let _ = self.signal("TERM");
            if self.wait_exit(grace).is_none() {
                return self.kill();
            }
        }
        Ok(())
    }
}

impl Drop for RemoteProcess {
    fn drop(&mut self) {
        if self.exited().is_none() {
            if let Err(e) = self.kill() {
                tracing::warn!("{e}");
            }
        }
        if let Some(w) = self.watcher.take() {
            w.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_status_numbers_read_as_exit_statuses() {
        assert_eq!(exit_status_of(0).code(), Some(0));
        assert_eq!(exit_status_of(101).code(), Some(101));
        assert_eq!(exit_status_of(137).signal(), Some(9));
        assert_eq!(exit_status_of(143).signal(), Some(15));
    }

    #[test]
    fn quoting_survives_the_shell() {
        let argv = ["printf", "%s|", "a b", "it's", "$HOME", "\"q\""];
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(quote_argv(&argv))
            .output()
            .expect("sh");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "a b|it's|$HOME|\"q\"|"
        );
    }

    #[test]
    fn this_binary_is_elf_for_this_machine() {
        let me = std::env::current_exe().expect("exe");
        let arch = elf_arch(&me).expect("elf");
        assert!(same_arch(arch, std::env::consts::ARCH), "{arch}");
        assert_eq!(elf_arch(Path::new("/etc/hostname")), None);
        assert!(!same_arch("aarch64", "x86_64"));
    }
}

/// What `raftcheck clean --hosts` did on the hosts.
#[derive(Debug, Default)]
pub struct HostsCleanReport {
    /// One line per thing removed: `host 10.0.0.1:22: run rc7f3a: killed pid 412`.
    pub removed: Vec<String>,
    /// Runs left alone, with why (still going, or started from another machine).
    pub skipped: Vec<String>,
    /// What could not be checked or removed.
    pub failed: Vec<String>,
}

/// What one host holds of one run.
#[derive(Debug, Default)]
struct Found {
    /// `<dir>/<run id>` exists.
    dir: bool,
    /// Its `controller` file.
    record: Option<String>,
    /// iptables rules carry the run id.
    rules: bool,
    /// Processes whose environment carries the run id.
    pids: Vec<u32>,
}

/// Whether run `run_id`, started by the controller `record` names (`<boot id> <pid>`, or none
/// when only rules or processes carry the id), may still be going: `Ok(Some(why))` if so,
/// `Ok(None)` if it is over, `Err(why)` if it is not ours to judge.
fn run_is_live(run_id: &str, record: Option<&str>) -> Result<Option<String>, String> {
    use super::runlock::{lock_file, probe, LockState};
    match probe(&lock_file(run_id), run_id) {
        Ok(Some(p)) if !matches!(p.state, LockState::Stale(_)) => {
            return Ok(Some("its run lock is held".into()))
        }
        Ok(_) => {}
        Err(e) => return Err(format!("its run lock cannot be probed: {e}")),
    }
    let Some(record) = record else {
        return Ok(None);
    };
    let mut words = record.split_whitespace();
    let (boot, pid) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let ours = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    if boot != ours.trim() {
        return Err(format!(
            "started from another machine or boot ({boot}); `--force` removes it anyway"
        ));
    }
    // A killed controller can linger as a zombie until its parent reaps it: not running.
    let alive = pid.parse::<i32>().is_ok_and(|p| {
        let running = std::fs::read_to_string(format!("/proc/{p}/stat"))
            .ok()
            .and_then(|st| super::runlock::stat_state_and_start(&st))
            .is_some_and(|(state, _)| state != 'Z' && state != 'X');
        running
            && std::fs::read_to_string(format!("/proc/{p}/comm"))
                .is_ok_and(|c| c.trim() == "raftcheck")
    });
    Ok(alive.then(|| format!("its controller (pid {pid}) still runs")))
}

/// Remove from every host of `hosts` what runs that are over left there: node processes (by
/// pidfile and by `RAFTCHECK_RUN_ID`), iptables rules tagged with the run id, and the run's
/// directory. A run whose controller still runs on this machine is skipped (all, with `force`).
pub fn clean_hosts(hosts: &crate::spec::hosts::HostsFile, force: bool) -> HostsCleanReport {
    let mut report = HostsCleanReport::default();
    for entry in &hosts.hosts {
        let label = entry.label();
        let conn = match SshConn::connect(entry) {
            Ok(c) => c,
            Err(e) => {
                report
                    .failed
                    .push(format!("host {label}: not checked: {e}"));
                continue;
            }
        };
        let listing = format!(
            "cd {dir} 2>/dev/null && for d in rc*; do [ -d \"$d\" ] && \
             echo \"dir $d $(cat \"$d/controller\" 2>/dev/null)\"; done; \
             for c in INPUT OUTPUT; do iptables -w 5 -S $c 2>/dev/null; done | \
             grep -o 'raftcheck:rc[a-z0-9]*' | sort -u | sed 's/^raftcheck:/rule /'; \
             for f in /proc/[0-9]*/environ; do \
             id=$(tr '\\0' '\\n' < \"$f\" 2>/dev/null | sed -n 's/^{env}=//p'); \
             [ -n \"$id\" ] && p=${{f#/proc/}} && echo \"proc ${{p%/environ}} $id\"; done; true",
            dir = quote(&entry.dir),
            env = RUN_ID_ENV,
        );
        let text = match conn.sh_stdout(&listing) {
            Ok(t) => t,
            Err(e) => {
                report
                    .failed
                    .push(format!("host {label}: not checked: {e}"));
                continue;
            }
        };
        let mut runs: std::collections::BTreeMap<String, Found> = Default::default();
        for line in text.lines() {
            let w: Vec<&str> = line.split_whitespace().collect();
            let (kind, id, rest) = match w[..] {
                ["proc", pid, id] => ("proc", id, vec![pid]),
                [kind, id, ref rest @ ..] => (kind, id, rest.to_vec()),
                _ => continue,
            };
            if !super::net::is_run_id(id) {
                continue;
            }
            let f = runs.entry(id.to_string()).or_default();
            match kind {
                "dir" => {
                    f.dir = true;
                    if !rest.is_empty() {
                        f.record = Some(rest.join(" "));
                    }
                }
                "rule" => f.rules = true,
                "proc" => f
                    .pids
                    .extend(rest.iter().filter_map(|p| p.parse::<u32>().ok())),
                _ => {}
            }
        }
        for (id, found) in runs {
            if !force {
                match run_is_live(&id, found.record.as_deref()) {
                    Ok(None) => {}
                    Ok(Some(why)) => {
                        report.skipped.push(format!(
                            "host {label}: run {id} is still going ({why}): left alone"
                        ));
                        continue;
                    }
                    Err(why) => {
                        report
                            .skipped
                            .push(format!("host {label}: run {id}: {why}"));
                        continue;
                    }
                }
            }
            let pids = found.pids;
            let run_dir = format!("{}/{id}", entry.dir);
            let kill = format!(
                "for p in {run}/*/inc-*/pid; do [ -e \"$p\" ] && \
                 kill -s KILL -- \"-$(cat \"$p\")\" 2>/dev/null; done; \
                 for p in {pids}; do kill -s CONT $p 2>/dev/null; kill -s KILL $p 2>/dev/null; \
                 done; true",
                run = quote(&run_dir),
                pids = pids
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(" "),
            );
            match conn.sh(&kill) {
                Ok(_) => report.removed.extend(
                    pids.iter()
                        .map(|p| format!("host {label}: run {id}: killed pid {p}")),
                ),
                Err(e) => report.failed.push(format!("host {label}: run {id}: {e}")),
            }
            let comment = super::net::rule_comment(&id);
            let exec = |argv: &[&str]| conn.sh(&quote_argv(argv));
            let (gone, bad) = if found.rules {
                super::net::delete_rules(&exec, &["INPUT", "OUTPUT"], &|c| c == comment)
            } else {
                Default::default()
            };
            report.removed.extend(
                gone.iter()
                    .map(|r| format!("host {label}: run {id}: removed rule {r}")),
            );
            report
                .failed
                .extend(bad.iter().map(|b| format!("host {label}: run {id}: {b}")));
            if !found.dir {
                continue;
            }
            match conn.sh(&format!("rm -rf {}", quote(&run_dir))) {
                Ok(_) => report
                    .removed
                    .push(format!("host {label}: run {id}: removed {run_dir}")),
                Err(e) => report.failed.push(format!("host {label}: run {id}: {e}")),
            }
        }
    }
    report
}

/// Replace this run's DROP rules on one host with `drops` (source addresses), in one round
/// trip: delete every INPUT rule tagged `comment`, then add one per address.
pub(crate) fn set_drops(
    conn: &SshConn,
    comment: &str,
    drops: &[String],
) -> Result<(), ClusterError> {
    // `iptables -S` prints the comment quoted (`--comment "raftcheck:rc7f3a"`), some versions
    // bare; the pattern takes both and no longer run id. The check after the deletions makes a
    // heal that removed nothing fail loudly instead of passing.
    let pattern = quote(&format!("--comment \"?{comment}\"?( |$)"));
    let mut script = format!(
        "iptables -w 10 -S INPUT | grep -E -- {pattern} | sed 's/^-A /-D /' | \
         while read -r rule; do eval \"iptables -w 10 $rule\" || exit 1; done && \
         if iptables -w 10 -S INPUT | grep -qE -- {pattern}; then \
         echo 'rules tagged {comment} are still there after deleting them' >&2; exit 1; fi",
    );
    for src in drops {
        script.push_str(&format!(
            " && iptables -w 10 -A INPUT -s {} -j DROP -m comment --comment {}",
            quote(src),
            quote(comment)
        ));
    }
    conn.sh(&script).map(|_| ())
}
