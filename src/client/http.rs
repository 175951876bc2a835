//! The declarative `http` adapter, and the HTTP plumbing every adapter shares.
//!
//! The declarative adapter exists so that a user can test a server that speaks plain HTTP
//! without writing Rust: the cluster spec's `[http]` section says, per operation, which request
//! to send and how to read the answer. docs/http-adapter.md documents the section with a
//! complete example; `clusters/raftkv-http.toml` reaches raftkv through it.
//!
//! Schema (every table rejects unknown fields):
//! ```toml
//! [http]
//! default_key = "r"                 # key used when the workload has none (single register)
//! headers = { "X-Token" = "t" }     # optional, sent with every request
//! [http.read]                       # required; also [http.write] (required),
//! method = "GET"                    # [http.cas] and [http.append] (optional)
//! path = "/kv/{key}"                # placeholders {key} {value} {from} {to}, per op
//! body = '{"value": {value}}'       # optional JSON template, values inserted as JSON
//! value = "/value"                  # read only: JSON pointer ("" = the whole body)
//! ok = [200]                        # default [200]
//! fail = [400]                      # default [400]; certainly did nothing
//! not_found = [404]                 # read only: the key is absent, the read returns null
//! mismatch = [409]                  # cas only: the compare failed
//! applied = "/succeeded"            # cas only: on an ok status, true = applied, false = mismatch
//! [http.redirect]                   # optional: "not the leader, ask that one"
//! status = [421]
//! leader_id = "/leader"             # JSON pointer to the leader's id, and/or
//! leader_addr = "/leader_addr"      # JSON pointer to its host:port (or URL), and/or
//! location = false                  # the Location header names it
//! [http.status]                     # optional: role, term and leader for the monitor
//! method = "GET"
//! path = "/status"
//! role = "/role"
//! term = "/term"
//! leader_id = "/leader"             # and/or leader_addr
//! leader_roles = ["leader"]
//! follower_roles = ["follower"]
//! candidate_roles = ["candidate"]
//! ```
//! Any status no list names is `info` (the op may or may not have happened).

use super::{Adapter, ClientError, Completion, Endpoint, NodeStatus, Request, Role};
use crate::history::{Fun, Value, MISMATCH};
use async_trait::async_trait;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// Plumbing shared by the raftkv, etcd and http adapters.
// ---------------------------------------------------------------------------------------------

/// The key single-register workloads use (they send `key: None`), unless a spec says otherwise.
pub(crate) const DEFAULT_KEY: &str = "r";

/// How long a TCP connect may take; loopback and bridge handshakes take microseconds.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Longest server message kept in an error string: errors go into every history line.
const MAX_ERROR_TEXT: usize = 120;

/// The one `reqwest::Client` an adapter shares across all its requests (connection reuse).
/// No proxy: nodes are always reached directly, and a proxy from the environment would turn a
/// refused connection (a definite `fail`) into a proxy's 502 (an `info`). Redirects are never
/// followed by reqwest: the adapter follows at most one, itself, and records who answered.
/// Connecting may take at most [`CONNECT_TIMEOUT`]: a handshake that does not complete (a node
/// behind a DROP partition) means nothing was sent, so it ends as a definite `fail` rather than
/// an `info` at the op's timeout. (A paused node still completes handshakes in its kernel, so
/// it is not mistaken for this: its requests time out as `info`.)
pub(crate) fn new_client() -> Result<reqwest::Client, ClientError> {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(30))
        .tcp_nodelay(true)
        .build()
        .map_err(|e| ClientError(format!("cannot build the HTTP client: {e}")))
}

/// The base URL of a node's client API.
pub(crate) fn base_url(addr: &SocketAddr) -> String {
    format!("http://{addr}")
}

/// A node's answer, read in full.
#[derive(Clone, Debug)]
pub(crate) struct Answer {
    /// HTTP status code.
    pub status: u16,
    /// The `Location` header, if any (for redirects).
    pub location: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

/// Why no answer came back, split by what it means for the operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SendError {
    /// The connection could not be made, so nothing was sent: a definite `fail`.
    Refused(String),
    /// Sent (or possibly sent) and then lost: an `info`.
    Unknown(String),
}

/// Send a request and read the whole answer, classifying transport errors.
pub(crate) async fn exchange(rb: reqwest::RequestBuilder) -> Result<Answer, SendError> {
    let resp = rb.send().await.map_err(|e| classify_send_error(&e))?;
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp.bytes().await.map_err(|e| {
        SendError::Unknown(format!("connection lost reading the answer: {}", root(&e)))
    })?;
    Ok(Answer {
        status,
        location,
        body: body.to_vec(),
    })
}

/// A connect error (refused, unreachable, connect timeout) means the request was never sent;
/// anything else may have reached the server.
fn classify_send_error(e: &reqwest::Error) -> SendError {
    if e.is_connect() && (e.is_timeout() || caused_by_elapsed(e)) {
        SendError::Refused("connect: timed out".into())
    } else if e.is_connect() {
        SendError::Refused(format!("connect: {}", root(e)))
    } else if e.is_timeout() {
        SendError::Unknown("timeout".into())
    } else {
        SendError::Unknown(format!("connection lost: {}", root(e)))
    }
}

/// Whether a tokio timer ended the attempt (reqwest's connect timeout surfaces this way).
fn caused_by_elapsed(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if c.is::<tokio::time::error::Elapsed>() {
            return true;
        }
        cur = c.source();
    }
    false
}

/// The innermost cause of an error, which is the informative part ("Connection refused").
fn root(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// A server's message, cut short for error strings.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    // Prefer a JSON "error"/"message" field when there is one.
    let msg = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| {
            ["message", "error"]
                .iter()
                .find_map(|k| v.get(k).and_then(Value::as_str).map(str::to_string))
        })
        .unwrap_or_else(|| text.to_string());
    let mut out: String = msg.chars().take(MAX_ERROR_TEXT).collect();
    if msg.chars().count() > MAX_ERROR_TEXT {
        out.push('…');
    }
    out
}

/// What an adapter knows about an operation in flight, read when the op's timeout ends it.
/// The node is the one the op was last sent to; `noop` is true only while the adapter knows
/// that nothing it sent so far can have taken effect (so a timeout then is a `fail`).
pub(crate) struct Tracker {
    node: AtomicUsize,
    noop: AtomicBool,
}

impl Tracker {
    /// A fresh op on `node`; by default a timeout is `info`.
    pub(crate) fn new(node: usize) -> Self {
        Tracker {
            node: AtomicUsize::new(node),
            noop: AtomicBool::new(false),
        }
    }

    /// The op now talks to `node` (after a redirect).
    pub(crate) fn set_node(&self, node: usize) {
        self.node.store(node, Ordering::Relaxed);
    }

    /// Whether a timeout now would certainly leave the system unchanged.
    pub(crate) fn set_noop(&self, noop: bool) {
        self.noop.store(noop, Ordering::Relaxed);
    }

    /// The completion for an op cut off by its timeout.
    pub(crate) fn timed_out(&self) -> Completion {
        let node = self.node.load(Ordering::Relaxed);
        if self.noop.load(Ordering::Relaxed) {
            Completion::Fail {
                error: "timeout (nothing applied)".into(),
                node,
            }
        } else {
            Completion::Info {
                error: "timeout".into(),
                node,
            }
        }
    }
}

/// Run an op's whole exchange (redirect included) under its timeout.
pub(crate) async fn bounded<F>(timeout: Duration, track: &Tracker, fut: F) -> Completion
where
    F: std::future::Future<Output = Completion>,
{
    match tokio::time::timeout(timeout, fut).await {
        Ok(c) => c,
        Err(_) => track.timed_out(),
    }
}

/// The completion for a transport error.
pub(crate) fn send_failed(e: SendError, node: usize) -> Completion {
    match e {
        SendError::Refused(error) => Completion::Fail { error, node },
        SendError::Unknown(error) => Completion::Info { error, node },
    }
}

/// The key an op works on.
pub(crate) fn key_of<'a>(req: &'a Request, default: &'a str) -> &'a str {
    req.key.as_deref().unwrap_or(default)
}

/// A cas request's `[expected, new]`.
pub(crate) fn cas_pair(v: &Value) -> Option<(&Value, &Value)> {
    match v.as_array().map(Vec::as_slice) {
        Some([from, to]) => Some((from, to)),
        _ => None,
    }
}

/// Percent-encode a path segment (everything but RFC 3986 unreserved characters).
pub(crate) fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Find the endpoint a server names as its leader: by id (a number, or a string holding the id
/// or the node's name) or by address (`host:port` or a URL).
pub(crate) fn endpoint_by_id(endpoints: &[Endpoint], id: &Value) -> Option<usize> {
    let found = match id {
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| endpoints.iter().find(|e| e.id == n)),
        Value::String(s) => {
            let s = s.trim();
            endpoints
                .iter()
                .find(|e| e.name == s || s.parse::<u64>().is_ok_and(|n| n == e.id))
        }
        _ => None,
    };
    found.map(|e| e.index)
}

/// See [`endpoint_by_id`]: the address form (`10.0.0.2:7001`, `http://10.0.0.2:7001/kv/x`).
pub(crate) fn endpoint_by_addr(endpoints: &[Endpoint], addr: &str) -> Option<usize> {
    let a = parse_host_port(addr)?;
    endpoints.iter().find(|e| e.addr == a).map(|e| e.index)
}

/// `host:port` out of an address or URL; `localhost` is 127.0.0.1.
pub(crate) fn parse_host_port(s: &str) -> Option<SocketAddr> {
    let s = s.trim();
    let s = s.split_once("://").map_or(s, |(_, rest)| rest);
    let s = s.split('/').next().unwrap_or(s);
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Some(a);
    }
    let port = s.strip_prefix("localhost:")?.parse::<u16>().ok()?;
    Some(SocketAddr::from(([127, 0, 0, 1], port)))
}

// ---------------------------------------------------------------------------------------------
// The `[http]` section.
// ---------------------------------------------------------------------------------------------

/// The `[http]` section as written; see the module docs and docs/http-adapter.md.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    /// Key used by single-register workloads, which send none.
    #[serde(default = "default_key")]
    pub default_key: String,
    /// Headers sent with every request (for example an auth token).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// How to read a key (also used for list reads).
    pub read: OpSpec,
    /// How to overwrite a key.
    pub write: OpSpec,
    /// How to compare-and-set a key; needed by cas workloads only.
    #[serde(default)]
    pub cas: Option<OpSpec>,
    /// How to append to a list; needed by list-append workloads only.
    #[serde(default)]
    pub append: Option<OpSpec>,
    /// How a non-leader says who leads.
    #[serde(default)]
    pub redirect: Option<RedirectSpec>,
    /// How to ask a node for its role, term and leader.
    #[serde(default)]
    pub status: Option<StatusSpec>,
}

fn default_key() -> String {
    DEFAULT_KEY.into()
}
fn default_ok() -> Vec<u16> {
    vec![200]
}
fn default_fail() -> Vec<u16> {
    vec![400]
}
fn default_get() -> String {
    "GET".into()
}
fn default_leader_roles() -> Vec<String> {
    vec!["leader".into()]
}
fn default_follower_roles() -> Vec<String> {
    vec!["follower".into()]
}
fn default_candidate_roles() -> Vec<String> {
    vec!["candidate".into()]
}

/// One operation's request and how to read its answer.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpSpec {
    /// HTTP method (GET, PUT, POST, ...).
    pub method: String,
    /// Path template, starting with `/`.
    pub path: String,
    /// Body template: JSON text with placeholders, each replaced by the JSON of its value.
    #[serde(default)]
    pub body: Option<String>,
    /// Reads: JSON pointer to the value in the answer; `""` is the whole body.
    #[serde(default)]
    pub value: Option<String>,
    /// Statuses meaning "done".
    #[serde(default = "default_ok")]
    pub ok: Vec<u16>,
    /// Statuses meaning "certainly not done".
    #[serde(default = "default_fail")]
    pub fail: Vec<u16>,
    /// Reads: statuses meaning "absent" (the read returns null).
    #[serde(default)]
    pub not_found: Vec<u16>,
    /// Cas: statuses meaning "the compare failed".
    #[serde(default)]
    pub mismatch: Vec<u16>,
    /// Cas: JSON pointer to a boolean in an ok answer: true applied, false compare failed.
    #[serde(default)]
    pub applied: Option<String>,
}

/// How a non-leader points at the leader.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectSpec {
    /// Statuses meaning "not the leader; nothing done".
    pub status: Vec<u16>,
    /// JSON pointer to the leader's id in the answer.
    #[serde(default)]
    pub leader_id: Option<String>,
    /// JSON pointer to the leader's `host:port` (or URL) in the answer.
    #[serde(default)]
    pub leader_addr: Option<String>,
    /// Take the leader's address from the `Location` header.
    #[serde(default)]
    pub location: bool,
}

/// How to read a node's role, term and leader.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusSpec {
    /// HTTP method (default GET).
    #[serde(default = "default_get")]
    pub method: String,
    /// Path, starting with `/` (no placeholders).
    pub path: String,
    /// JSON pointer to the role.
    pub role: String,
    /// JSON pointer to the term (a number or a decimal string).
    pub term: String,
    /// JSON pointer to the leader's id.
    #[serde(default)]
    pub leader_id: Option<String>,
    /// JSON pointer to the leader's `host:port` (or URL).
    #[serde(default)]
    pub leader_addr: Option<String>,
    /// Role values that mean leader (non-string roles compare by their JSON text).
    #[serde(default = "default_leader_roles")]
    pub leader_roles: Vec<String>,
    /// Role values that mean follower.
    #[serde(default = "default_follower_roles")]
    pub follower_roles: Vec<String>,
    /// Role values that mean candidate. Anything unlisted is `other`.
    #[serde(default = "default_candidate_roles")]
    pub candidate_roles: Vec<String>,
}

/// Parse and check an `[http]` section. Errors name the field (`http.cas.mismatch`).
pub fn parse_spec(v: &toml::Value) -> Result<HttpSpec, ClientError> {
    let spec: HttpSpec = v.clone().try_into().map_err(|e: toml::de::Error| {
        // toml says "<message>\nin `read.ok`"; turn that into the field's full name.
        let text = e.to_string();
        let text = text.trim();
        match text.rsplit_once("\nin `") {
            Some((msg, path)) => ClientError(format!(
                "[http] field `http.{}`: {}",
                path.trim_end_matches('`'),
                msg.trim()
            )),
            None => ClientError(format!("[http]: {text}")),
        }
    })?;
    Plan::new(&spec)?;
    Ok(spec)
}

fn bad(field: &str, msg: impl std::fmt::Display) -> ClientError {
    ClientError(format!("[http] field `http.{field}`: {msg}"))
}

// ---------------------------------------------------------------------------------------------
// Templates.
// ---------------------------------------------------------------------------------------------

/// Every placeholder a request template may use.
const ALL_PLACEHOLDERS: [&str; 4] = ["key", "value", "from", "to"];

/// One piece of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Lit(String),
    Var(&'static str),
}

/// A parsed path or body template.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Template {
    parts: Vec<Part>,
}

/// The values an op fills a template with.
struct Vars<'a> {
    key: &'a str,
    value: &'a Value,
    from: &'a Value,
    to: &'a Value,
}

impl Vars<'_> {
    fn get(&self, name: &str) -> Value {
        match name {
            "key" => Value::String(self.key.to_string()),
            "value" => self.value.clone(),
            "from" => self.from.clone(),
            _ => self.to.clone(),
        }
    }
}

impl Template {
    /// Parse `text`, allowing only `allowed` placeholders. `{` not followed by a bare word and
    /// `}` is literal text (JSON bodies are full of braces); `{word}` that is not a placeholder
    /// is an error, since it is almost certainly a typo.
    fn parse(text: &str, allowed: &[&str], field: &str) -> Result<Template, ClientError> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            lit.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let word_len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            let word = &after[..word_len];
            let closed = after[word_len..].starts_with('}');
            if word.is_empty() || !closed {
                lit.push('{');
                rest = after;
                continue;
            }
            match ALL_PLACEHOLDERS.iter().find(|p| **p == word) {
                Some(p) if allowed.contains(p) => {
                    if !lit.is_empty() {
                        parts.push(Part::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(Part::Var(p));
                }
                Some(_) => {
                    return Err(bad(
                        field,
                        format!(
                            "placeholder {{{word}}} is not available here (available: {})",
                            braces(allowed)
                        ),
                    ))
                }
                None => {
                    return Err(bad(
                        field,
                        format!(
                            "unknown placeholder {{{word}}} (available: {})",
                            braces(allowed)
                        ),
                    ))
                }
            }
            rest = &after[word_len + 1..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Template { parts })
    }

    /// Fill a path: strings as their text, other values as their JSON text, percent-encoded.
    fn path(&self, vars: &Vars) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var(name) => match vars.get(name) {
                    Value::String(s) => out.push_str(&encode_segment(&s)),
                    other => out.push_str(&encode_segment(&other.to_string())),
                },
            }
        }
        out
    }

    /// Fill a JSON body: every value as JSON (`{key}` becomes `"k1"`, `{value}` `5`).
    fn body(&self, vars: &Vars) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var(name) => out.push_str(&vars.get(name).to_string()),
            }
        }
        out
    }
}

fn braces(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("{{{n}}}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A JSON pointer from the spec: `""` or starting with `/`.
fn check_pointer(p: &str, field: &str) -> Result<String, ClientError> {
    if p.is_empty() || p.starts_with('/') {
        Ok(p.to_string())
    } else {
        Err(bad(
            field,
            format!("{p:?} is not a JSON pointer (use \"\" for the whole body, or \"/{p}\")"),
        ))
    }
}

fn check_method(m: &str, field: &str) -> Result<reqwest::Method, ClientError> {
    let up = m.trim().to_ascii_uppercase();
    if up.is_empty() || !up.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(bad(field, format!("{m:?} is not an HTTP method")));
    }
    reqwest::Method::from_bytes(up.as_bytes())
        .map_err(|_| bad(field, format!("{m:?} is not an HTTP method")))
}

fn check_statuses(list: &[u16], field: &str) -> Result<BTreeSet<u16>, ClientError> {
    let mut set = BTreeSet::new();
    for &s in list {
        if !(100..=599).contains(&s) {
            return Err(bad(
                field,
                format!("{s} is not an HTTP status (100 to 599)"),
            ));
        }
        set.insert(s);
    }
    Ok(set)
}

fn check_path(p: &str, field: &str) -> Result<(), ClientError> {
    if p.starts_with('/') {
        Ok(())
    } else {
        Err(bad(field, format!("{p:?} must start with `/`")))
    }
}

// ---------------------------------------------------------------------------------------------
// The checked plan the adapter runs from.
// ---------------------------------------------------------------------------------------------

/// One op, checked and ready to run.
#[derive(Clone, Debug)]
struct OpPlan {
    method: reqwest::Method,
    path: Template,
    body: Option<Template>,
    value: String,
    ok: BTreeSet<u16>,
    fail: BTreeSet<u16>,
    not_found: BTreeSet<u16>,
    mismatch: BTreeSet<u16>,
    applied: Option<String>,
}

#[derive(Clone, Debug)]
struct RedirectPlan {
    status: BTreeSet<u16>,
    leader_id: Option<String>,
    leader_addr: Option<String>,
    location: bool,
}

#[derive(Clone, Debug)]
struct StatusPlan {
    method: reqwest::Method,
    path: String,
    role: String,
    term: String,
    leader_id: Option<String>,
    leader_addr: Option<String>,
    leader_roles: Vec<String>,
    follower_roles: Vec<String>,
    candidate_roles: Vec<String>,
}

#[derive(Clone, Debug)]
struct Plan {
    default_key: String,
    headers: reqwest::header::HeaderMap,
    read: OpPlan,
    write: OpPlan,
    cas: Option<OpPlan>,
    append: Option<OpPlan>,
    redirect: Option<RedirectPlan>,
    status: Option<StatusPlan>,
}

impl Plan {
    fn new(spec: &HttpSpec) -> Result<Plan, ClientError> {
        if spec.default_key.is_empty() {
            return Err(bad("default_key", "must not be empty"));
        }
        let mut headers = reqwest::header::HeaderMap::new();
        for (k, v) in &spec.headers {
            let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| bad(&format!("headers.{k}"), "not a valid header name"))?;
            let value = reqwest::header::HeaderValue::from_str(v)
                .map_err(|_| bad(&format!("headers.{k}"), "not a valid header value"))?;
            headers.insert(name, value);
        }
        let redirect = match &spec.redirect {
            None => None,
            Some(r) => {
                let status = check_statuses(&r.status, "redirect.status")?;
                if status.is_empty() {
                    return Err(bad("redirect.status", "must list at least one status"));
                }
                if r.leader_id.is_none() && r.leader_addr.is_none() && !r.location {
                    return Err(bad(
                        "redirect",
                        "say where the leader is: leader_id, leader_addr or location = true",
                    ));
                }
                Some(RedirectPlan {
                    status,
                    leader_id: opt_pointer(&r.leader_id, "redirect.leader_id")?,
                    leader_addr: opt_pointer(&r.leader_addr, "redirect.leader_addr")?,
                    location: r.location,
                })
            }
        };
        let redirect_statuses = redirect
            .as_ref()
            .map(|r| r.status.clone())
            .unwrap_or_default();
        let op = |spec: &OpSpec, f: Fun| OpPlan::new(spec, f, &redirect_statuses);
        let status = match &spec.status {
            None => None,
            Some(s) => {
                check_path(&s.path, "status.path")?;
                Some(StatusPlan {
                    method: check_method(&s.method, "status.method")?,
                    path: s.path.clone(),
                    role: check_pointer(&s.role, "status.role")?,
                    term: check_pointer(&s.term, "status.term")?,
                    leader_id: opt_pointer(&s.leader_id, "status.leader_id")?,
                    leader_addr: opt_pointer(&s.leader_addr, "status.leader_addr")?,
                    leader_roles: s.leader_roles.clone(),
                    follower_roles: s.follower_roles.clone(),
                    candidate_roles: s.candidate_roles.clone(),
                })
            }
        };
        Ok(Plan {
            default_key: spec.default_key.clone(),
            headers,
            read: op(&spec.read, Fun::Read)?,
            write: op(&spec.write, Fun::Write)?,
            cas: spec.cas.as_ref().map(|s| op(s, Fun::Cas)).transpose()?,
            append: spec
                .append
                .as_ref()
                .map(|s| op(s, Fun::Append))
                .transpose()?,
            redirect,
            status,
        })
    }

    fn op(&self, f: Fun) -> Option<&OpPlan> {
        match f {
            Fun::Read => Some(&self.read),
            Fun::Write => Some(&self.write),
            Fun::Cas => self.cas.as_ref(),
            Fun::Append => self.append.as_ref(),
        }
    }
}

fn opt_pointer(p: &Option<String>, field: &str) -> Result<Option<String>, ClientError> {
    p.as_deref().map(|p| check_pointer(p, field)).transpose()
}

impl OpPlan {
    fn new(spec: &OpSpec, f: Fun, redirect: &BTreeSet<u16>) -> Result<OpPlan, ClientError> {
        let name = f.name();
        let field = |s: &str| format!("{name}.{s}");
        let allowed: &[&str] = match f {
            Fun::Read => &["key"],
            Fun::Write | Fun::Append => &["key", "value"],
            Fun::Cas => &["key", "from", "to"],
        };
        let method = check_method(&spec.method, &field("method"))?;
        check_path(&spec.path, &field("path"))?;
        let path = Template::parse(&spec.path, allowed, &field("path"))?;
        let body = match &spec.body {
            None => None,
            Some(b) => {
                let t = Template::parse(b, allowed, &field("body"))?;
                // The body must be JSON whatever the values: try it with samples.
                let samples = [Value::from(1), Value::Null, Value::from("s")];
                for s in &samples {
                    let vars = Vars {
                        key: "k",
                        value: s,
                        from: s,
                        to: s,
                    };
                    let text = t.body(&vars);
                    if let Err(e) = serde_json::from_str::<Value>(&text) {
                        return Err(bad(
                            &field("body"),
                            format!(
                                "is not JSON once filled in ({e}); placeholders are replaced by \
                                 JSON values, so write {{\"value\": {{value}}}}, not \
                                 {{\"value\": \"{{value}}\"}}"
                            ),
                        ));
                    }
                }
                Some(t)
            }
        };
        let only = |present: bool, what: &str, f_ok: Fun| -> Result<(), ClientError> {
            if present && f != f_ok {
                Err(bad(
                    &field(what),
                    format!("only [http.{}] takes `{what}`", f_ok.name()),
                ))
            } else {
                Ok(())
            }
        };
        only(spec.value.is_some(), "value", Fun::Read)?;
        only(!spec.not_found.is_empty(), "not_found", Fun::Read)?;
        only(!spec.mismatch.is_empty(), "mismatch", Fun::Cas)?;
        only(spec.applied.is_some(), "applied", Fun::Cas)?;
        let ok = check_statuses(&spec.ok, &field("ok"))?;
        if ok.is_empty() {
            return Err(bad(&field("ok"), "must list at least one status"));
        }
        let fail = check_statuses(&spec.fail, &field("fail"))?;
        let not_found = check_statuses(&spec.not_found, &field("not_found"))?;
        let mismatch = check_statuses(&spec.mismatch, &field("mismatch"))?;
        let lists: [(&str, &BTreeSet<u16>); 5] = [
            ("ok", &ok),
            ("fail", &fail),
            ("not_found", &not_found),
            ("mismatch", &mismatch),
            ("redirect.status", redirect),
        ];
        for (i, (a, sa)) in lists.iter().enumerate() {
            for (b, sb) in &lists[i + 1..] {
                if let Some(s) = sa.intersection(sb).next() {
                    let b = if *b == "redirect.status" {
                        "http.redirect.status".to_string()
                    } else {
                        format!("http.{}", field(b))
                    };
                    return Err(bad(
                        &field(a),
                        format!("status {s} is also listed in `{b}`; a status has one meaning"),
                    ));
                }
            }
        }
        Ok(OpPlan {
            method,
            path,
            body,
            value: check_pointer(spec.value.as_deref().unwrap_or(""), &field("value"))?,
            ok,
            fail,
            not_found,
            mismatch,
            applied: opt_pointer(&spec.applied, &field("applied"))?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Reading answers (pure, so unit-testable).
// ---------------------------------------------------------------------------------------------

/// What one answer means.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    /// The op ended.
    Done(Completion),
    /// Not the leader; the leader is this node if known.
    Redirect(Option<usize>),
}

fn parse_json(body: &[u8]) -> Option<Value> {
    serde_json::from_slice(body).ok()
}

impl Plan {
    /// Turn an answer from `node` to `req` into a step.
    fn interpret(
        &self,
        op: &OpPlan,
        req: &Request,
        answer: &Answer,
        node: usize,
        endpoints: &[Endpoint],
    ) -> Step {
        let status = answer.status;
        if let Some(r) = &self.redirect {
            if r.status.contains(&status) {
                return Step::Redirect(redirect_target(r, answer, endpoints));
            }
        }
        let done = |c| Step::Done(c);
        if op.ok.contains(&status) {
            match req.f {
                Fun::Read => {
                    let Some(body) = parse_json(&answer.body) else {
                        return done(Completion::Info {
                            error: format!(
                                "answer {status} is not JSON: {}",
                                snippet(&answer.body)
                            ),
                            node,
                        });
                    };
                    match body.pointer(&op.value) {
                        Some(v) => done(Completion::Ok {
                            value: v.clone(),
                            node,
                        }),
                        None => done(Completion::Info {
                            error: format!("answer has no {:?}", op.value),
                            node,
                        }),
                    }
                }
                Fun::Cas if op.applied.is_some() => {
                    let pointer = op.applied.as_deref().unwrap_or("");
                    let flag = parse_json(&answer.body)
                        .and_then(|b| b.pointer(pointer).and_then(Value::as_bool));
                    match flag {
                        Some(true) => done(Completion::Ok {
                            value: req.value.clone(),
                            node,
                        }),
                        Some(false) => done(Completion::Fail {
                            error: MISMATCH.into(),
                            node,
                        }),
                        None => done(Completion::Info {
                            error: format!("answer has no boolean at {pointer:?}"),
                            node,
                        }),
                    }
                }
                _ => done(Completion::Ok {
                    value: req.value.clone(),
                    node,
                }),
            }
        } else if op.not_found.contains(&status) {
            done(Completion::Ok {
                value: Value::Null,
                node,
            })
        } else if op.mismatch.contains(&status) {
            done(Completion::Fail {
                error: MISMATCH.into(),
                node,
            })
        } else if op.fail.contains(&status) {
            done(Completion::Fail {
                error: format!("http {status}: {}", snippet(&answer.body)),
                node,
            })
        } else {
            done(Completion::Info {
                error: format!("http {status}: {}", snippet(&answer.body)),
                node,
            })
        }
    }

    /// Read a status answer.
    fn read_status(
        s: &StatusPlan,
        body: &[u8],
        endpoints: &[Endpoint],
    ) -> Result<NodeStatus, String> {
        let v = parse_json(body).ok_or_else(|| format!("status is not JSON: {}", snippet(body)))?;
        let role_v = v
            .pointer(&s.role)
            .ok_or_else(|| format!("status has no role at {:?}", s.role))?;
        let role_text = match role_v {
            Value::String(t) => t.clone(),
            other => other.to_string(),
        };
        let has = |list: &[String]| list.contains(&role_text);
        let role = if has(&s.leader_roles) {
            Role::Leader
        } else if has(&s.follower_roles) {
            Role::Follower
        } else if has(&s.candidate_roles) {
            Role::Candidate
        } else {
            Role::Other
        };
        let term = match v.pointer(&s.term) {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(t)) => t.trim().parse().ok(),
            _ => None,
        }
        .ok_or_else(|| {
            format!(
                "status has no term (a non-negative integer) at {:?}",
                s.term
            )
        })?;
        let by_id = s
            .leader_id
            .as_ref()
            .and_then(|p| v.pointer(p))
            .and_then(|id| endpoint_by_id(endpoints, id));
        let by_addr = || {
            s.leader_addr
                .as_ref()
                .and_then(|p| v.pointer(p))
                .and_then(Value::as_str)
                .and_then(|a| endpoint_by_addr(endpoints, a))
        };
        Ok(NodeStatus {
            role,
            term,
            leader: by_id.or_else(by_addr),
        })
    }
}

/// Where a redirect answer points: the id first, then the address, then `Location`.
fn redirect_target(r: &RedirectPlan, answer: &Answer, endpoints: &[Endpoint]) -> Option<usize> {
    let body = parse_json(&answer.body);
    let at = |p: &Option<String>| {
        p.as_ref()
            .and_then(|p| body.as_ref().and_then(|b| b.pointer(p)).cloned())
    };
    if let Some(i) = at(&r.leader_id).and_then(|id| endpoint_by_id(endpoints, &id)) {
        return Some(i);
    }
    if let Some(i) = at(&r.leader_addr)
        .as_ref()
        .and_then(Value::as_str)
        .and_then(|a| endpoint_by_addr(endpoints, a))
    {
        return Some(i);
    }
    if r.location {
        return answer
            .location
            .as_deref()
            .and_then(|l| endpoint_by_addr(endpoints, l));
    }
    None
}

// ---------------------------------------------------------------------------------------------
// The adapter.
// ---------------------------------------------------------------------------------------------

/// The declarative adapter: requests and answers as the `[http]` section describes them.
pub struct HttpAdapter {
    client: reqwest::Client,
    endpoints: Vec<Endpoint>,
    plan: Plan,
}

impl HttpAdapter {
    /// Build from a cluster spec's `[http]` section; errors name the bad field.
    pub fn new(section: &toml::Value, endpoints: Vec<Endpoint>) -> Result<Self, ClientError> {
        let spec = parse_spec(section)?;
        Ok(HttpAdapter {
            client: new_client()?,
            endpoints,
            plan: Plan::new(&spec)?,
        })
    }

    async fn once(&self, op: &OpPlan, node: usize, req: &Request) -> Step {
        let Some(ep) = self.endpoints.get(node) else {
            return Step::Done(Completion::Fail {
                error: format!("no node {node}"),
                node,
            });
        };
        let null = Value::Null;
        let (from, to) = cas_pair(&req.value).unwrap_or((&null, &null));
        let vars = Vars {
            key: key_of(req, &self.plan.default_key),
            value: &req.value,
            from,
            to,
        };
        let url = format!("{}{}", base_url(&ep.addr), op.path.path(&vars));
        let mut rb = self
            .client
            .request(op.method.clone(), url)
            .headers(self.plan.headers.clone());
        if let Some(b) = &op.body {
            if !self
                .plan
                .headers
                .contains_key(reqwest::header::CONTENT_TYPE)
            {
                rb = rb.header(reqwest::header::CONTENT_TYPE, "application/json");
            }
            rb = rb.body(b.body(&vars));
        }
        match exchange(rb).await {
            Ok(a) => self.plan.interpret(op, req, &a, node, &self.endpoints),
            Err(e) => Step::Done(send_failed(e, node)),
        }
    }

    async fn run(&self, node: usize, req: &Request, track: &Tracker) -> Completion {
        let Some(op) = self.plan.op(req.f) else {
            return Completion::Fail {
                error: format!(
                    "the cluster spec has no [http.{}] section for this op",
                    req.f.name()
                ),
                node,
            };
        };
        if req.f == Fun::Cas && cas_pair(&req.value).is_none() {
            return Completion::Fail {
                error: format!("cas value must be [expected, new], got {}", req.value),
                node,
            };
        }
        match self.once(op, node, req).await {
            Step::Done(c) => c,
            Step::Redirect(target) => match target {
                Some(t) if t != node => {
                    track.set_node(t);
                    match self.once(op, t, req).await {
                        Step::Done(c) => c,
                        Step::Redirect(_) => Completion::Fail {
                            error: "not the leader (after one redirect)".into(),
                            node: t,
                        },
                    }
                }
                _ => Completion::Fail {
                    error: "not the leader; leader unknown".into(),
                    node,
                },
            },
        }
    }
}

#[async_trait]
impl Adapter for HttpAdapter {
    async fn invoke(&self, node: usize, req: &Request, timeout: Duration) -> Completion {
        let track = Tracker::new(node);
        bounded(timeout, &track, self.run(node, req, &track)).await
    }

    async fn status(&self, node: usize, timeout: Duration) -> Result<NodeStatus, String> {
        let s = self
            .plan
            .status
            .as_ref()
            .ok_or("the cluster spec has no [http.status] section")?;
        let ep = self.endpoints.get(node).ok_or(format!("no node {node}"))?;
        let rb = self
            .client
            .request(
                s.method.clone(),
                format!("{}{}", base_url(&ep.addr), s.path),
            )
            .headers(self.plan.headers.clone());
        let answer = tokio::time::timeout(timeout, exchange(rb))
            .await
            .map_err(|_| "timeout".to_string())?
            .map_err(|e| match e {
                SendError::Refused(m) | SendError::Unknown(m) => m,
            })?;
        if !(200..300).contains(&answer.status) {
            return Err(format!(
                "status answered {}: {}",
                answer.status,
                snippet(&answer.body)
            ));
        }
        Plan::read_status(s, &answer.body, &self.endpoints)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eps() -> Vec<Endpoint> {
        crate::client::test_endpoints(7001, 1)
    }

    fn section(text: &str) -> toml::Value {
        let v: toml::Value = toml::from_str(text).expect("test TOML");
        v.get("http").cloned().expect("an [http] table")
    }

    const MINIMAL: &str = r#"
[http.read]
method = "GET"
path = "/kv/{key}"
value = "/value"
not_found = [404]
[http.write]
method = "PUT"
path = "/kv/{key}"
body = '{"value": {value}}'
[http.cas]
method = "POST"
path = "/kv/{key}/cas"
body = '{"from": {from}, "to": {to}}'
mismatch = [409]
[http.redirect]
status = [421]
leader_id = "/leader"
leader_addr = "/leader_addr"
[http.status]
path = "/status"
role = "/role"
term = "/term"
leader_id = "/leader"
"#;

    fn plan(text: &str) -> Plan {
        Plan::new(&parse_spec(&section(text)).expect("valid spec")).expect("valid plan")
    }

    fn err(text: &str) -> String {
        parse_spec(&section(text)).expect_err("must be refused").0
    }

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status,
            location: None,
            body: body.as_bytes().to_vec(),
        }
    }

    fn req(f: Fun, value: Value) -> Request {
        Request {
            f,
            key: Some("k 1".into()),
            value,
        }
    }

    #[test]
    fn templates_fill_paths_and_bodies() {
        let t = Template::parse("/kv/{key}/cas", &["key", "from", "to"], "x").unwrap();
        let b = Template::parse(
            r#"{"from": {from}, "to": {to}, "k": {key}}"#,
            &["key", "from", "to"],
            "x",
        )
        .unwrap();
        let one = Value::from(1);
        let vars = Vars {
            key: "a/b c",
            value: &Value::Null,
            from: &Value::Null,
            to: &one,
        };
        assert_eq!(t.path(&vars), "/kv/a%2Fb%20c/cas");
        assert_eq!(b.body(&vars), r#"{"from": null, "to": 1, "k": "a/b c"}"#);
        // A value that looks like a placeholder is not expanded again.
        let sneaky = Value::from("{key}");
        let t = Template::parse(r#"{"v": {value}}"#, &["key", "value"], "x").unwrap();
        let vars = Vars {
            key: "k",
            value: &sneaky,
            from: &Value::Null,
            to: &Value::Null,
        };
        assert_eq!(t.body(&vars), r#"{"v": "{key}"}"#);
    }

    #[test]
    fn template_errors_name_the_field() {
        let e = Template::parse("/kv/{kee}", &["key"], "read.path")
            .unwrap_err()
            .0;
        assert!(e.contains("http.read.path") && e.contains("{kee}"), "{e}");
        let e = Template::parse("/kv/{value}", &["key"], "read.path")
            .unwrap_err()
            .0;
        assert!(e.contains("not available") && e.contains("{key}"), "{e}");
    }

    #[test]
    fn minimal_spec_parses_with_defaults() {
        let p = plan(MINIMAL);
        assert_eq!(p.default_key, "r");
        assert!(p.read.ok.contains(&200) && p.read.fail.contains(&400));
        assert!(p.append.is_none());
        assert_eq!(p.write.method, reqwest::Method::PUT);
    }

    #[test]
    fn spec_errors_name_the_field() {
        let e = err(&MINIMAL.replace("method = \"GET\"", "methd = \"GET\""));
        assert!(e.contains("http.read") && e.contains("methd"), "{e}");
        let e = err(&MINIMAL.replace("not_found = [404]", "not_found = [\"x\"]"));
        assert!(e.contains("http.read.not_found"), "{e}");
        let e = err(&MINIMAL.replace("mismatch = [409]", "mismatch = [400]"));
        assert!(e.contains("http.cas") && e.contains("400"), "{e}");
        let e = err(&MINIMAL.replace("mismatch = [409]", "mismatch = [421]"));
        assert!(e.contains("redirect.status"), "{e}");
        let e = err(&MINIMAL.replace(r#"'{"value": {value}}'"#, r#"'{"value": "{value}"}'"#));
        assert!(
            e.contains("http.write.body") && e.contains("not JSON"),
            "{e}"
        );
        let e = err(&MINIMAL.replace("value = \"/value\"", "value = \"value\""));
        assert!(
            e.contains("http.read.value") && e.contains("JSON pointer"),
            "{e}"
        );
        let e = err(&MINIMAL.replace("[http.redirect]", "[http.redirect]\nbogus = 1"));
        assert!(e.contains("http.redirect") && e.contains("bogus"), "{e}");
        let e = err(&MINIMAL.replace("not_found = [404]", "not_found = [404]\nmismatch = [409]"));
        assert!(e.contains("http.read.mismatch"), "{e}");
        let e = err(&MINIMAL.replace("method = \"PUT\"", "method = \"P T\""));
        assert!(e.contains("http.write.method"), "{e}");
        let e = err(&MINIMAL.replace("not_found = [404]", "not_found = [1000]"));
        assert!(
            e.contains("http.read.not_found") && e.contains("1000"),
            "{e}"
        );
        let e = err("[http.read]\nmethod = \"GET\"\npath = \"/x\"\n");
        assert!(e.contains("write"), "{e}");
    }

    #[test]
    fn answers_are_classified() {
        let p = plan(MINIMAL);
        let e = eps();
        let read = req(Fun::Read, Value::Null);
        let r = |a: Answer| p.interpret(&p.read, &read, &a, 0, &e);
        assert_eq!(
            r(answer(200, r#"{"value": 7}"#)),
            Step::Done(Completion::Ok {
                value: Value::from(7),
                node: 0
            })
        );
        assert_eq!(
            r(answer(200, r#"{"value": null}"#)),
            Step::Done(Completion::Ok {
                value: Value::Null,
                node: 0
            })
        );
        assert_eq!(
            r(answer(404, "")),
            Step::Done(Completion::Ok {
                value: Value::Null,
                node: 0
            })
        );
        assert!(matches!(
            r(answer(200, "{}")),
            Step::Done(Completion::Info { .. })
        ));
        assert!(matches!(
            r(answer(200, "nope")),
            Step::Done(Completion::Info { .. })
        ));
        assert!(matches!(
            r(answer(503, "x")),
            Step::Done(Completion::Info { .. })
        ));
        assert!(matches!(
            r(answer(400, "x")),
            Step::Done(Completion::Fail { .. })
        ));
        assert_eq!(
            r(answer(421, r#"{"leader": 3, "leader_addr": null}"#)),
            Step::Redirect(Some(2))
        );
        assert_eq!(
            r(answer(
                421,
                r#"{"leader": null, "leader_addr": "127.0.0.1:7002"}"#
            )),
            Step::Redirect(Some(1))
        );
        assert_eq!(r(answer(421, r#"{"leader": null}"#)), Step::Redirect(None));
        assert_eq!(r(answer(421, "garbage")), Step::Redirect(None));

        let cas = req(Fun::Cas, serde_json::json!([1, 2]));
        let c = |a: Answer| p.interpret(p.cas.as_ref().unwrap(), &cas, &a, 1, &e);
        assert_eq!(
            c(answer(409, "")),
            Step::Done(Completion::Fail {
                error: MISMATCH.into(),
                node: 1
            })
        );
        assert_eq!(
            c(answer(200, "{}")),
            Step::Done(Completion::Ok {
                value: serde_json::json!([1, 2]),
                node: 1
            })
        );
    }

    #[test]
    fn cas_applied_pointer() {
        let p = plan(&MINIMAL.replace("mismatch = [409]", "applied = \"\""));
        let cas = req(Fun::Cas, serde_json::json!([null, 2]));
        let c = |b: &str| p.interpret(p.cas.as_ref().unwrap(), &cas, &answer(200, b), 0, &[]);
        assert!(matches!(c("true"), Step::Done(Completion::Ok { .. })));
        assert_eq!(
            c("false"),
            Step::Done(Completion::Fail {
                error: MISMATCH.into(),
                node: 0
            })
        );
        assert!(matches!(c("maybe"), Step::Done(Completion::Info { .. })));
    }

    #[test]
    fn status_is_read() {
        let p = plan(MINIMAL);
        let s = p.status.as_ref().unwrap();
        let st = Plan::read_status(s, br#"{"role":"leader","term":4,"leader":1}"#, &eps()).unwrap();
        assert_eq!(
            st,
            NodeStatus {
                role: Role::Leader,
                term: 4,
                leader: Some(0)
            }
        );
        let st = Plan::read_status(
            s,
            br#"{"role":"precandidate","term":"5","leader":null}"#,
            &eps(),
        )
        .unwrap();
        assert_eq!(
            st,
            NodeStatus {
                role: Role::Other,
                term: 5,
                leader: None
            }
        );
        assert!(Plan::read_status(s, br#"{"role":"leader"}"#, &eps()).is_err());
    }

    #[test]
    fn leaders_are_found_by_id_name_and_address() {
        let e = eps();
        assert_eq!(endpoint_by_id(&e, &Value::from(2)), Some(1));
        assert_eq!(endpoint_by_id(&e, &Value::from("3")), Some(2));
        assert_eq!(endpoint_by_id(&e, &Value::from("n1")), Some(0));
        assert_eq!(endpoint_by_id(&e, &Value::from(9)), None);
        assert_eq!(endpoint_by_addr(&e, "http://127.0.0.1:7003/kv/x"), Some(2));
        assert_eq!(endpoint_by_addr(&e, "localhost:7001"), Some(0));
        assert_eq!(endpoint_by_addr(&e, "10.0.0.1:7001"), None);
    }

    #[test]
    fn shipped_raftkv_http_spec_is_valid() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/clusters/raftkv-http.toml");
        let text = std::fs::read_to_string(path).expect("clusters/raftkv-http.toml");
        let p = plan(&text);
        assert!(p.cas.is_some() && p.append.is_some() && p.status.is_some());
    }

    #[test]
    fn snippets_prefer_the_message() {
        assert_eq!(
            snippet(br#"{"error":"x","message":"timed out"}"#),
            "timed out"
        );
        assert_eq!(snippet(b"plain"), "plain");
        assert!(snippet(&[b'a'; 500]).chars().count() <= MAX_ERROR_TEXT + 1);
    }
}
