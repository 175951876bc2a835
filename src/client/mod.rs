//! Client adapters: one per protocol. An adapter turns an operation into a request to one node
//! and the answer into ok / fail / info, and reports a node's (role, term, leader).
//!
//! The rule every adapter keeps (DESIGN.md): never retry silently past the op's timeout; a
//! definite refusal (the request certainly changed nothing: connection refused before sending,
//! a failed cas compare, "not the leader") is `fail`; anything uncertain (timeout, connection
//! lost after sending, a 5xx) is `info`.
//!
//! Imports only [`crate::history`]: adapters know operations and nodes' addresses, never cluster
//! specs or the run.

pub mod etcd;
pub mod http;
pub mod outcome;
pub mod raftkv;
pub(crate) mod template;
pub(crate) mod transport;

pub use transport::StatusError;

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

/// What a worker asks an adapter to do; the invoke event records the same f, key and value (null
/// for a read).
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// Which function to apply; it decides what `value` holds.
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
        /// For a read, the value read (a list for list reads, null if absent); otherwise the
        /// request's value.
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
    /// Campaigning: it asked for votes in its current term and has neither won nor heard of a
    /// leader.
    Candidate,
    /// Anything else the server reports (learner, pre-candidate ...).
    Other,
}

/// What a node says about itself.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeStatus {
    /// The role it claims; the monitor takes the leader to be whoever claims leadership in the
    /// highest term.
    pub role: Role,
    /// The current term it reports, whatever its role; leaders.jsonl keeps it for the term checks.
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
    async fn status(&self, node: usize, timeout: Duration) -> Result<NodeStatus, StatusError>;

    /// Whether [`Adapter::status`] can ever answer. A server with no status endpoint is still
    /// testable, but the run must know up front: readiness is then judged by reads, the leader
    /// timeline and the Raft-invariant checks are "not observed" (never an empty plot that reads
    /// as "no leader changes"), and `leader` fault targets fall back to random nodes.
    fn reports_roles(&self) -> bool;

    /// True if only the leader ever acknowledges a write (no follower forwarding), so that a
    /// change in which node acknowledges writes is a leader change the monitor should sample.
    fn writes_acknowledged_by_leader(&self) -> bool {
        false
    }

    /// The membership capability, for adapters whose server can add and remove members.
    fn membership(&self) -> Option<&dyn Membership> {
        None
    }
}

/// A membership change that did not certainly happen: refused, lost, or not confirmed in time.
/// The change may or may not have taken effect, so the membership nemesis must not wipe the
/// node on this.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MembershipError(pub String);

/// Adding and removing members: a capability of its own, so that an adapter without it has
/// nothing to implement and the harness knows up front (from [`AdapterKind::membership`]).
#[async_trait]
pub trait Membership: Send + Sync {
    /// Remove server `id` from the configuration, asking node `via` (and the leader it names).
    /// `Ok` only once the server says the change committed, or that `id` is not a member.
    async fn remove_member(
        &self,
        via: usize,
        id: u64,
        timeout: Duration,
    ) -> Result<(), MembershipError>;

    /// Add server `id` at `addr`, asking node `via` (and the leader it names). `Ok` once the
    /// change committed, or if `id` already is a member at `addr`.
    async fn add_member(
        &self,
        via: usize,
        id: u64,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<(), MembershipError>;
}

/// An adapter the harness knows, under the name cluster specs give it (`client = "..."`): the
/// one list of adapters, read by spec validation, by the membership check and by [`make`].
pub struct AdapterKind {
    /// What a cluster spec's `client` field says to pick this adapter (`raftkv`, `etcd`, `http`).
    pub name: &'static str,
    /// Whether it implements [`Membership`] (checked before any node starts, so a nemesis
    /// that needs it is refused, or left out of "all", up front).
    pub membership: bool,
    /// Build it for a cluster; `http` is the spec's `[http]` section, if any.
    build: Build,
}

/// How an [`AdapterKind`] is built: from the spec's `[http]` section (if any) and the nodes.
type Build = fn(Option<&toml::Value>, Vec<Endpoint>) -> Result<Arc<dyn Adapter>, ClientError>;

/// The one list of adapters: a spec naming one not here is refused when it loads.
pub(crate) const ADAPTERS: &[AdapterKind] = &[
    AdapterKind {
        name: "raftkv",
        membership: true,
        build: |_, eps| Ok(Arc::new(raftkv::RaftkvAdapter::new(eps)?)),
    },
    AdapterKind {
        name: "etcd",
        membership: false,
        build: |_, eps| Ok(Arc::new(etcd::EtcdAdapter::new(eps)?)),
    },
    AdapterKind {
        name: "http",
        membership: false,
        build: |section, eps| {
            let section = section.ok_or_else(|| {
                ClientError(
                    "client = \"http\" needs an [http] section describing the requests \
                     (see docs/http-adapter.md)"
                        .into(),
                )
            })?;
            Ok(Arc::new(http::HttpAdapter::new(section, eps)?))
        },
    },
    AdapterKind {
        name: "null",
        membership: false,
        build: |_, _| Ok(Arc::new(NullAdapter)),
    },
];

/// The adapter named `name`, if the harness has one.
pub(crate) fn adapter_kind(name: &str) -> Option<&'static AdapterKind> {
    ADAPTERS.iter().find(|k| k.name == name)
}

/// The names of every adapter, for messages ("raftkv, etcd, http or null").
pub(crate) fn adapter_names() -> String {
    let names: Vec<&str> = ADAPTERS.iter().map(|k| k.name).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.join(""),
    }
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

    fn reports_roles(&self) -> bool {
        true
    }

    async fn status(&self, node: usize, _timeout: Duration) -> Result<NodeStatus, StatusError> {
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

/// Build the adapter named `client` (see [`ADAPTERS`]) for `endpoints`; `http` is the cluster
/// spec's `[http]` section, read only by the `http` adapter. Errors here are configuration
/// errors, reported before any node starts.
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
    let kind = adapter_kind(client).ok_or_else(|| {
        ClientError(format!(
            "unknown client adapter {client:?} (expected {})",
            adapter_names()
        ))
    })?;
    (kind.build)(http, endpoints)
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
