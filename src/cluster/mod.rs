//! Clusters: specs, where nodes run (network namespaces or loopback), process supervision.
//!
//! Where a node runs is hidden behind the small [`host::Host`] trait: a network namespace on
//! this machine, plain loopback, or another machine over SSH ([`ssh`]). Nothing above this
//! module knows which.
//!
//! Imports [`crate::client`] (endpoints) and [`crate::spec`] (how to start a node).

pub mod clean;
pub mod damage;
pub mod host;
pub mod net;
pub mod powerfs;
pub mod process;
pub mod runlock;
pub mod ssh;
pub mod supervisor;

use std::path::{Path, PathBuf};

/// Something about the cluster's environment went wrong (binary missing, namespace setup failed,
/// a node never became ready). Always exit code 2 at the binary's edge.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The server binary could not be found.
    #[error("binary {name:?} not found: looked in {tried}")]
    BinaryNotFound {
        /// The name or path the spec gave.
        name: String,
        /// Where we looked.
        tried: String,
    },
    /// A command the harness runs (ip, iptables) failed.
    #[error("`{cmd}` failed: {msg}")]
    Command {
        /// The argv joined by spaces (no shell quoting), e.g. `ip netns add rc7f3a-n1`.
        cmd: String,
        /// stderr or the OS error.
        msg: String,
    },
    /// Starting or signalling a node failed.
    #[error("node {node}: {msg}")]
    Node {
        /// The node concerned (`n1`, ...), first in the message.
        node: String,
        /// What failed, usually naming the path or giving the OS error (`not running`,
        /// `creating DIR: ...`).
        msg: String,
    },
    /// Anything else, with context.
    #[error("{0}")]
    Other(String),
}

/// Find a server binary: an explicit path as given; otherwise a file of that name next to the
/// running executable (and its parent, for test binaries in `target/<profile>/deps/`), then on
/// PATH. This is how `target/release/raftcheck run` finds `target/release/raftkv` without the
/// user naming a path.
pub fn find_binary(name: &str) -> Result<PathBuf, ClusterError> {
    let mut tried = Vec::new();
    if name.contains('/') {
        let p = PathBuf::from(name);
        if is_executable(&p) {
            return Ok(p);
        }
        return Err(ClusterError::BinaryNotFound {
            name: name.into(),
            tried: p.display().to_string(),
        });
    }
    if let Ok(exe) = std::env::current_exe() {
        let mut dir = exe.parent().map(Path::to_path_buf);
        for _ in 0..2 {
            let Some(d) = dir else { break };
            let p = d.join(name);
            if is_executable(&p) {
                return Ok(p);
            }
            tried.push(p.display().to_string());
            dir = d.parent().map(Path::to_path_buf);
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            let p = d.join(name);
            if is_executable(&p) {
                return Ok(p);
            }
        }
        tried.push("$PATH".into());
    }
    Err(ClusterError::BinaryNotFound {
        name: name.into(),
        tried: tried.join(", "),
    })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binary_says_where_it_looked() {
        let e = find_binary("no-such-server-binary")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no-such-server-binary") && e.contains("$PATH"),
            "{e}"
        );
    }

    #[test]
    fn binaries_on_path_are_found() {
        assert!(find_binary("sh").is_ok());
    }
}
