//! Client adapters: one per protocol. An adapter turns an operation into a request to one node
//! and the answer into ok / fail / info, and reports a node's (role, term, leader).
//!
//! The rule every adapter keeps (DESIGN.md): never retry silently past the op's timeout; a
//! definite refusal (the request certainly changed nothing: connection refused before sending,
//! a failed cas compare, "not the leader") is `fail`; anything uncertain (timeout, connection
//! lost after sending, a 5xx) is `info`.

pub mod etcd;
pub mod http;
pub mod raftkv;

use crate::history::{Fun, Value};
use async_trait::async_trait;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Where a node's client API is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Position in the cluster, 0-based.
    pub index: usize,
    /// 1-based id as the server knows it.
    pub id: u64,
    /// `n1`, `n2`, ...
    pub name: String,
    /// Client API address.
    pub addr: SocketAddr,
}

/// One operation to perform.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// The function.
    pub f: Fun,
    /// The key; `None` for single-register workloads (adapters then use a fixed key).
    pub key: Option<String>,
    /// write: the value; cas: `[expected, new]`; append: the element; read: null.
    pub value: Value,
}

/// How an operation ended, as the history records it.
#[derive(Clone, Debug, PartialEq)]
pub enum Completion {
    /// Took effect. `value`: for reads the value read (a list for list reads, null if absent),
    /// otherwise the request's value.
    Ok {
        /// Result value.
        value: Value,
        /// Index of the node that finally served it (after a redirect, the leader).
        node: usize,
    },
    /// Certainly took no effect.
    Fail {
        /// Why; `"mismatch"` for a cas whose compare failed.
        error: String,
        /// Index of the node that answered.
        node: usize,
    },
    /// May or may not have taken effect.
    Info {
        /// Why (timeout, connection lost, 5xx ...).
        error: String,
        /// Index of the node it was sent to last.
        node: usize,
    },
}

/// A node's view of the cluster, sampled by the monitor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Believes it is the leader.
    Leader,
    /// Follows a leader (or waits for one).
    Follower,
    /// Campaigning.
    Candidate,
    /// Anything else the server reports (learner, pre-candidate ...).
    Other,
}

/// What a node says about itself.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeStatus {
    /// Its role.
    pub role: Role,
    /// Its current term.
    pub term: u64,
    /// Index of the node it believes leads, if any.
    pub leader: Option<usize>,
}

/// Bad adapter configuration (unknown adapter name, bad `http` section).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ClientError(pub String);

/// The protocol side of a cluster.
#[async_trait]
pub trait Adapter: Send + Sync {
    /// Perform `req` on node `node` (following at most one redirect to the leader, for this op
    /// only), within `timeout` in total.
    async fn invoke(&self, node: usize, req: &Request, timeout: Duration) -> Completion;

    /// Ask node `node` for its role, term and leader.
    async fn status(&self, node: usize, timeout: Duration) -> Result<NodeStatus, String>;

    /// True if only the leader ever acknowledges a write (no follower forwarding), so that a
    /// change in which node acknowledges writes is a leader change the monitor should sample.
    fn writes_acknowledged_by_leader(&self) -> bool {
        false
    }

    /// Remove server `id` from the configuration, asking node `via` (and the leader it names).
    /// `Ok` only once the server says the change committed, or that `id` is not a member;
    /// an error leaves the outcome open, so the membership nemesis must not wipe the node.
    async fn remove_member(&self, via: usize, id: u64, timeout: Duration) -> Result<(), String> {
        let _ = (via, id, timeout);
        Err("this adapter cannot change membership".into())
    }

    /// Add server `id` at `addr`, asking node `via` (and the leader it names). `Ok` once the
    /// change committed, or if `id` already is a member at `addr`.
    async fn add_member(
        &self,
        via: usize,
        id: u64,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<(), String> {
        let _ = (via, id, addr, timeout);
        Err("this adapter cannot change membership".into())
    }
}

/// Whether the adapter named `client` implements [`Adapter::remove_member`] and
/// [`Adapter::add_member`]; known before any node starts, so a nemesis that needs them is
/// refused (or left out of "all") up front.
pub fn supports_membership(client: &str) -> bool {
    client == "raftkv"
}

/// A null adapter: every op succeeds at once without a server. It exists to measure the
/// harness itself (generator and recorder throughput), never to test a system.
pub struct NullAdapter;

#[async_trait]
impl Adapter for NullAdapter {
    async fn invoke(&self, node: usize, req: &Request, _timeout: Duration) -> Completion {
        Completion::Ok {
            value: if req.f == Fun::Read {
                Value::Null
            } else {
                req.value.clone()
            },
            node,
        }
    }

    async fn status(&self, node: usize, _timeout: Duration) -> Result<NodeStatus, String> {
        Ok(NodeStatus {
            role: if node == 0 {
                Role::Leader
            } else {
                Role::Follower
            },
            term: 1,
            leader: Some(0),
        })
    }
}

/// Build the adapter a cluster spec names (`client`): `raftkv`, `etcd`, `http` (declarative,
/// configured by the spec's `[http]` section) or `null` (no server; for benchmarking the
/// harness). Errors here are configuration errors, reported before any node starts.
pub fn make(
    client: &str,
    http: Option<&toml::Value>,
    endpoints: Vec<Endpoint>,
) -> Result<Arc<dyn Adapter>, ClientError> {
    if client != "http" && http.is_some() {
        return Err(ClientError(format!(
            "an [http] section is only read with client = \"http\" (this spec has client = {client:?})"
        )));
    }
    Ok(match client {
        "raftkv" => Arc::new(raftkv::RaftkvAdapter::new(endpoints)?),
        "etcd" => Arc::new(etcd::EtcdAdapter::new(endpoints)?),
        "http" => {
            let section = http.ok_or_else(|| {
                ClientError(
                    "client = \"http\" needs an [http] section describing the requests \
                     (see docs/http-adapter.md)"
                        .into(),
                )
            })?;
            Arc::new(http::HttpAdapter::new(section, endpoints)?)
        }
        "null" => Arc::new(NullAdapter),
        other => {
            return Err(ClientError(format!(
                "unknown client adapter {other:?} (expected raftkv, etcd, http or null)"
            )))
        }
    })
}

/// Endpoints n1..n3 on 127.0.0.1 at `base`, `base + step`, ... for adapter unit tests.
#[cfg(test)]
pub(crate) fn test_endpoints(base: u16, step: u16) -> Vec<Endpoint> {
    (0..3u16)
        .map(|i| Endpoint {
            index: i as usize,
            id: i as u64 + 1,
            name: format!("n{}", i + 1),
            addr: SocketAddr::from(([127, 0, 0, 1], base + step * i)),
        })
        .collect()
}
