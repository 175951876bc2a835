//! Where a node runs: the small [`Host`] trait (start a process, run a command in the node's
//! network context) and its two implementations on this machine, plain loopback and a network
//! namespace. A future SSH host is one more implementation; nothing above `cluster/` changes.

use super::process::{spawn_node, NodeProcess, SpawnSpec};
use super::ClusterError;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Output, Stdio};

/// One node's place: its name, its address, and how to run things there. Hosts are built by
/// [`super::net::Network`], one per node, and shared (`Arc<dyn Host>`) with the nemesis and the
/// runner.
pub trait Host: Send + Sync {
    /// The node's name, `n1`, `n2`, ...
    fn name(&self) -> &str;

    /// The node's IP: its own address in netns mode, 127.0.0.1 in loopback mode.
    fn ip(&self) -> IpAddr;

    /// Start a node process here. In a namespace the argv is prefixed with
    /// `ip netns exec NS`, which execs in place, so the returned pid is the server itself.
    fn spawn(&self, spec: &SpawnSpec) -> Result<NodeProcess, ClusterError>;

    /// Run a command to completion in this host's network context (for example iptables inside
    /// its namespace). A non-zero exit is [`ClusterError::Command`] carrying stderr.
    fn exec(&self, argv: &[&str]) -> Result<Output, ClusterError>;

    /// The network namespace this host lives in, if any (tests and diagnostics use it).
    fn netns(&self) -> Option<&str> {
        None
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

    fn spawn(&self, spec: &SpawnSpec) -> Result<NodeProcess, ClusterError> {
        spawn_node(spec, &[])
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

    fn spawn(&self, spec: &SpawnSpec) -> Result<NodeProcess, ClusterError> {
        spawn_node(spec, &["ip", "netns", "exec", &self.netns])
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
