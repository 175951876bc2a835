//! Where a node runs: the small [`Host`] trait and its implementations: plain loopback and a
//! network namespace on this machine, and a machine reached over SSH ([`super::ssh`]).
//!
//! A further backend (`docker exec`, `kubectl exec`) implements the same trait: `spawn` (start
//! the server detached, return a [`NodeProc`] that can signal it and learn its exit), `exec`
//! (run iptables where the node's network is), and, when the node's files are not on this
//! machine, the file methods ([`Host::install`], [`Host::prepare`], [`Host::tail`],
//! [`Host::wipe`], [`Host::collect`], and for corrupt faults [`Host::fetch_data`],
//! [`Host::write_back`], [`Host::restore_data`]). Nothing above `cluster/` changes.

use super::damage::DirCopy;
use super::process::{spawn_node, NodeProc, SpawnSpec};
use super::ClusterError;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Where a node's files are, as the node sees them (on its host).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeFiles {
    /// Its data dir, `{data_dir}` in the cluster spec.
    pub data: PathBuf,
    /// The file its stdout and stderr are appended to.
    pub log: PathBuf,
}

/// One node's place: its name, its address, and how to run things there. Hosts are built by
/// [`super::net::Network`], one per node, and shared (`Arc<dyn Host>`) with the nemesis and the
/// runner.
pub trait Host: Send + Sync {
    /// The node's name, `n1`, `n2`, ...
    fn name(&self) -> &str;

    /// The node's IP: its own address in netns mode, 127.0.0.1 in loopback mode, the host's
    /// address over SSH.
    fn ip(&self) -> IpAddr;

    /// Start a node process here. In a namespace the argv is prefixed with
    /// `ip netns exec NS`, which execs in place, so the returned pid is the server itself.
    fn spawn(&self, spec: &SpawnSpec) -> Result<Box<dyn NodeProc>, ClusterError>;

    /// Run a command to completion in this host's network context (for example iptables inside
    /// its namespace). A non-zero exit is [`ClusterError::Command`] carrying stderr.
    fn exec(&self, argv: &[&str]) -> Result<Output, ClusterError>;

    /// The network namespace this host lives in, if any (tests and diagnostics use it).
    fn netns(&self) -> Option<&str> {
        None
    }

    /// Make the DROP rules tagged `comment` in this host's INPUT chain exactly one per address
    /// of `sources` (none: heal). Hosts that pay a round trip per command override it to do it
    /// in one.
    fn replace_drops(&self, comment: &str, sources: &[IpAddr]) -> Result<(), ClusterError> {
        let exec = |argv: &[&str]| self.exec(argv);
        let (_, bad) = super::net::delete_rules(&exec, &["INPUT", "OUTPUT"], &|c| c == comment);
        if !bad.is_empty() {
            return Err(ClusterError::Other(bad.join("; ")));
        }
        for src in sources {
            let src = src.to_string();
            self.exec(&[
                "iptables",
                "-w",
                super::net::IPTABLES_WAIT,
                "-A",
                "INPUT",
                "-s",
                &src,
                "-j",
                "DROP",
                "-m",
                "comment",
                "--comment",
                comment,
            ])?;
        }
        Ok(())
    }

    /// Whether the node's files are on this machine, at the paths [`Host::prepare`] returns.
    /// The power-loss layer needs that (it serves the data dir from this machine); corrupt
    /// faults work either way, through [`Host::fetch_data`], [`Host::write_back`] and
    /// [`Host::restore_data`].
    fn files_are_local(&self) -> bool {
        true
    }

    /// A local directory holding what the stopped node's data dir holds now, for a corrupt
    /// fault to copy and damage. Locally that is the data dir itself; a remote host brings it
    /// into `scratch` (emptied first).
    fn fetch_data(&self, files: &NodeFiles, _scratch: &Path) -> Result<PathBuf, ClusterError> {
        Ok(files.data.clone())
    }

    /// Put the damaged file `rel` of `from` (the directory [`Host::fetch_data`] returned) into
    /// the stopped node's data dir. Locally `from` is the data dir: nothing to do.
    fn write_back(
        &self,
        _files: &NodeFiles,
        _from: &Path,
        _rel: &Path,
    ) -> Result<(), ClusterError> {
        Ok(())
    }

    /// Make the stopped node's data dir hold exactly what `copy` holds (a node that refused its
    /// damaged data, repaired as an operator would).
    fn restore_data(&self, files: &NodeFiles, copy: &DirCopy) -> Result<(), ClusterError> {
        super::damage::restore_dir(copy, &files.data).map_err(|e| ClusterError::Node {
            node: self.name().to_string(),
            msg: format!("repairing the damaged data dir: {e}"),
        })
    }

    /// Make the server binary runnable here and return its path on this host. Locally the
    /// binary is used where it is.
    fn install(&self, binary: &Path) -> Result<PathBuf, ClusterError> {
        Ok(binary.to_path_buf())
    }

    /// Create the node's data dir for a run whose local record of the node is `node_dir`
    /// (`results/.../nodes/nK`), and say where its files are.
    fn prepare(&self, node_dir: &Path) -> Result<NodeFiles, ClusterError> {
        let data = node_dir.join("data");
        std::fs::create_dir_all(&data).map_err(|e| ClusterError::Node {
            node: self.name().to_string(),
            msg: format!("creating {}: {e}", data.display()),
        })?;
        let data = std::fs::canonicalize(&data).unwrap_or(data);
        Ok(NodeFiles {
            data,
            log: node_dir.join("log"),
        })
    }

    /// The last `lines` lines of the node's log (empty if it cannot be read).
    fn tail(&self, files: &NodeFiles, lines: usize) -> String {
        let text = std::fs::read_to_string(&files.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Empty the node's data dir (the membership nemesis's wipe).
    fn wipe(&self, files: &NodeFiles) -> Result<(), ClusterError> {
        let fail = |e: std::io::Error| ClusterError::Node {
            node: self.name().to_string(),
            msg: format!("wiping {}: {e}", files.data.display()),
        };
        std::fs::remove_dir_all(&files.data).map_err(fail)?;
        std::fs::create_dir_all(&files.data).map_err(fail)
    }

    /// After the node has stopped for good: bring its log (and, with `keep_data`, its data dir)
    /// into `node_dir` and remove what the run put on the host. Locally there is nothing to do.
    fn collect(
        &self,
        _files: &NodeFiles,
        _node_dir: &Path,
        _keep_data: bool,
    ) -> Result<(), ClusterError> {
        Ok(())
    }
}

/// A node on the harness's own network stack (loopback mode): every node is 127.0.0.1 and is
/// told apart by its ports.
#[derive(Clone, Debug)]
pub struct LocalHost {
    /// The node's name (`n1`).
    name: String,
}

impl LocalHost {
    /// A loopback host named `name`.
    pub fn new(name: &str) -> LocalHost {
        LocalHost { name: name.into() }
    }
}

impl Host for LocalHost {
    fn name(&self) -> &str {
        &self.name
    }

    fn ip(&self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    }

    fn spawn(&self, spec: &SpawnSpec) -> Result<Box<dyn NodeProc>, ClusterError> {
        Ok(Box::new(spawn_node(spec, &[])?))
    }

    fn exec(&self, argv: &[&str]) -> Result<Output, ClusterError> {
        run(argv)
    }
}

/// A node in its own network namespace on the run's bridge (netns mode).
#[derive(Clone, Debug)]
pub(crate) struct NetnsHost {
    /// The node's name (`n1`).
    name: String,
    /// The namespace, `<run_id>-n<k>`.
    netns: String,
    /// The node's address on the bridge.
    ip: Ipv4Addr,
}

impl NetnsHost {
    /// A host in namespace `netns` with address `ip`. The namespace must exist (the
    /// [`super::net::Network`] creates it).
    pub fn new(name: &str, netns: &str, ip: Ipv4Addr) -> NetnsHost {
        NetnsHost {
            name: name.into(),
            netns: netns.into(),
            ip,
        }
    }
}

impl Host for NetnsHost {
    fn name(&self) -> &str {
        &self.name
    }

    fn ip(&self) -> IpAddr {
        IpAddr::V4(self.ip)
    }

    fn spawn(&self, spec: &SpawnSpec) -> Result<Box<dyn NodeProc>, ClusterError> {
        Ok(Box::new(spawn_node(
            spec,
            &["ip", "netns", "exec", &self.netns],
        )?))
    }

    fn exec(&self, argv: &[&str]) -> Result<Output, ClusterError> {
        let full: Vec<&str> = ["ip", "netns", "exec", &self.netns]
            .into_iter()
            .chain(argv.iter().copied())
            .collect();
        run(&full)
    }

    fn netns(&self) -> Option<&str> {
        Some(&self.netns)
    }
}

/// Run `argv` (no shell) to completion with stdin closed; a non-zero exit or a failure to start
/// is [`ClusterError::Command`] with the command line and its stderr.
pub(crate) fn run(argv: &[&str]) -> Result<Output, ClusterError> {
    let cmd = argv.join(" ");
    let Some((program, args)) = argv.split_first() else {
        return Err(ClusterError::Command {
            cmd,
            msg: "empty command".into(),
        });
    };
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| ClusterError::Command {
            cmd: cmd.clone(),
            msg: e.to_string(),
        })?;
    if out.status.success() {
        Ok(out)
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let msg = if stderr.is_empty() {
            out.status.to_string()
        } else {
            stderr
        };
        Err(ClusterError::Command { cmd, msg })
    }
}

/// [`run`], returning stdout as text.
pub(crate) fn run_stdout(argv: &[&str]) -> Result<String, ClusterError> {
    run(argv).map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
}
