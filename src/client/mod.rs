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

pub mod command;
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

/// Bad adapter configuration (unknown adapter name, bad `http` or `command` section).
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
    /// The cluster spec section that describes it (`http` for `[http]`), for the declarative
    /// adapters, which cannot work without one; a spec with that section and another `client`
    /// is refused, since the section would be silently ignored.
    pub section: Option<&'static str>,
    /// Check a section without building anything, when the spec loads.
    check: Option<Check>,
    /// Build it for a cluster from its own section (if it has one) and the nodes.
    build: Build,
}

/// How an [`AdapterKind`] is built: from its own spec section (if any) and the nodes.
type Build = fn(Option<&toml::Value>, Vec<Endpoint>) -> Result<Arc<dyn Adapter>, ClientError>;

/// How an [`AdapterKind`]'s section is checked when the spec loads.
type Check = fn(&toml::Value) -> Result<(), ClientError>;

/// The adapters' sections of one cluster spec, by section name (`http`, `command`), as written.
pub type Sections<'a> = std::collections::BTreeMap<&'static str, &'a toml::Value>;

/// The section `kind` needs, or an error saying where it is documented.
fn needed<'a>(
    kind: &str,
    section: Option<&'a toml::Value>,
    doc: &str,
) -> Result<&'a toml::Value, ClientError> {
    section.ok_or_else(|| {
        ClientError(format!(
            "client = \"{kind}\" needs {} [{kind}] section describing the operations (see {doc})",
            article(kind)
        ))
    })
}

/// "an [http]", "a [command]": section names are read out as words.
fn article(section: &str) -> &'static str {
    if section.starts_with(['a', 'e', 'h', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// The one list of adapters: a spec naming one not here is refused when it loads.
pub(crate) const ADAPTERS: &[AdapterKind] = &[
    AdapterKind {
        name: "raftkv",
        membership: true,
        section: None,
        check: None,
        build: |_, eps| Ok(Arc::new(raftkv::RaftkvAdapter::new(eps)?)),
    },
    AdapterKind {
        name: "etcd",
        membership: false,
        section: None,
        check: None,
        build: |_, eps| Ok(Arc::new(etcd::EtcdAdapter::new(eps)?)),
    },
    AdapterKind {
        name: "http",
        membership: false,
        section: Some("http"),
        check: Some(|s| http::parse_spec(s).map(drop)),
        build: |section, eps| {
            let section = needed("http", section, "docs/http-adapter.md")?;
            Ok(Arc::new(http::HttpAdapter::new(section, eps)?))
        },
    },
    AdapterKind {
        name: "command",
        membership: false,
        section: Some("command"),
        check: Some(|s| command::parse_spec(s).map(drop)),
        build: |section, eps| {
            let section = needed("command", section, "docs/command-adapter.md")?;
            Ok(Arc::new(command::CommandAdapter::new(section, eps)?))
        },
    },
    AdapterKind {
        name: "null",
        membership: false,
        section: None,
        check: None,
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

/// The adapter whose section is `[section]`, if any adapter reads one by that name.
pub(crate) fn section_owner(section: &str) -> Option<&'static AdapterKind> {
    ADAPTERS.iter().find(|k| k.section == Some(section))
}

/// Check the adapter sections of a cluster spec whose `client` is `client`, as the spec loads:
/// every section must belong to that adapter, the adapter's own section must be there if it
/// needs one, and it must be valid. The error names the section (`Err((section, message))`).
pub(crate) fn check_sections(
    client: &str,
    sections: &Sections,
) -> Result<(), (&'static str, ClientError)> {
    for (&name, &section) in sections {
        let owner = section_owner(name).map_or("?", |k| k.name);
        if owner != client {
            return Err((
                name,
                ClientError(format!(
                    "{} [{name}] section needs client = \"{owner}\", not {client:?}",
                    article(name)
                )),
            ));
        }
        if let Some(check) = adapter_kind(client).and_then(|k| k.check) {
            check(section).map_err(|e| (name, e))?;
        }
    }
    if let Some(own) = adapter_kind(client).and_then(|k| k.section) {
        if !sections.contains_key(own) {
            return Err((
                own,
                ClientError(format!(
                    "client = \"{client}\" needs {} [{own}] section",
                    article(own)
                )),
            ));
        }
    }
    Ok(())
}

/// Build the adapter named `client` (see [`ADAPTERS`]) for `endpoints`; `sections` are the
/// cluster spec's adapter sections (`[http]`, `[command]`), each read only by its own adapter.
/// Errors here are configuration errors, reported before any node starts.
pub fn make(
    client: &str,
    sections: &Sections,
    endpoints: Vec<Endpoint>,
) -> Result<Arc<dyn Adapter>, ClientError> {
    for &name in sections.keys() {
        let owner = section_owner(name).map_or("?", |k| k.name);
        if owner != client {
            return Err(ClientError(format!(
                "{} [{name}] section is only read with client = \"{owner}\" (this spec has client = {client:?})",
                article(name)
            )));
        }
    }
    let kind = adapter_kind(client).ok_or_else(|| {
        ClientError(format!(
            "unknown client adapter {client:?} (expected {})",
            adapter_names()
        ))
    })?;
    let own = kind.section.and_then(|s| sections.get(s).copied());
    (kind.build)(own, endpoints)
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
