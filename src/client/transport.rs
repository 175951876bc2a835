//! The HTTP plumbing every adapter shares: one client configuration, one exchange that reads a
//! whole answer and classifies transport errors (refused before sending: fail; lost after:
//! info), the op tracker that turns a timeout into the right completion, the one redirect
//! policy (follow at most one, for this op only), and the one status call with its timeout.

use super::{ClientError, Completion, Endpoint, Request};
use crate::history::Value;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// The key single-register workloads use (they send `key: None`), unless a spec says otherwise.
pub(crate) const DEFAULT_KEY: &str = "r";

/// How long a TCP connect may take; loopback and bridge handshakes take microseconds.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Longest server message kept in an error string: errors go into every history line.
pub(crate) const MAX_ERROR_TEXT: usize = 120;

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
    /// The HTTP status code, which the adapter maps to ok, fail, info or a redirect.
    pub status: u16,
    /// The `Location` header, if any (for redirects).
    pub location: Option<String>,
    /// The whole body, read before the answer is classified (a body lost mid-read makes the op
    /// `info`).
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

/// The completion for a transport error: `fail` when nothing was sent (connection refused), `info`
/// when the request may have arrived.
pub(crate) fn send_failed(e: SendError, node: usize) -> Completion {
    match e {
        SendError::Refused(error) => Completion::Fail { error, node },
        SendError::Unknown(error) => Completion::Info { error, node },
    }
}

/// The key an op works on; `default`, the adapter's fixed key, for a single-register workload's
/// keyless ops.
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

/// What one attempt on one node produced.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Step {
    /// The op ended on this node (ok, fail or info); no further attempt.
    Done(Completion),
    /// "Not the leader": the leader is this node, if the answer named one we know.
    Redirect(Option<usize>),
}

/// The one redirect policy of every adapter (DESIGN.md): try `node`; if it names another node
/// as the leader, try that one once, for this op only. A second redirect, or one that names
/// nobody we know, ends the op as a definite `fail`: a node that says "not the leader" did
/// not apply it. Ops reach followers on purpose (stale reads show only there), so the policy
/// never remembers a leader across ops.
pub(crate) async fn follow_one_redirect<F, Fut>(
    node: usize,
    track: &Tracker,
    attempt: F,
) -> Completion
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Step>,
{
    match attempt(node).await {
        Step::Done(c) => c,
        Step::Redirect(Some(leader)) if leader != node => {
            track.set_node(leader);
            match attempt(leader).await {
                Step::Done(c) => c,
                Step::Redirect(_) => Completion::Fail {
                    error: "not the leader (after one redirect)".into(),
                    node: leader,
                },
            }
        }
        Step::Redirect(_) => Completion::Fail {
            error: "not the leader; leader unknown".into(),
            node,
        },
    }
}

/// Why a node's status could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StatusError {
    /// No answer within the time given.
    #[error("no answer within {0:?}")]
    NoAnswer(Duration),
    /// The request could not be sent or its answer was lost.
    #[error("{0}")]
    Transport(String),
    /// The node answered, but not with a status this adapter can read.
    #[error("{0}")]
    Unreadable(String),
    /// This adapter has no way to ask (an http spec without `[http.status]`).
    #[error("{0}")]
    Unsupported(String),
}

impl From<SendError> for StatusError {
    fn from(e: SendError) -> Self {
        match e {
            SendError::Refused(m) | SendError::Unknown(m) => StatusError::Transport(m),
        }
    }
}

/// The one status call: `fetch` bounded by `timeout`, a timeout said as such.
pub(crate) async fn status_within<T, F>(timeout: Duration, fetch: F) -> Result<T, StatusError>
where
    F: std::future::Future<Output = Result<T, StatusError>>,
{
    tokio::time::timeout(timeout, fetch)
        .await
        .map_err(|_| StatusError::NoAnswer(timeout))?
}

/// Send a status request and insist on a 2xx answer, the first half of every adapter's status
/// call; `what` names the endpoint in the error ("/status answered 503: ...").
pub(crate) async fn fetch_ok(
    rb: reqwest::RequestBuilder,
    what: &str,
) -> Result<Answer, StatusError> {
    let a = exchange(rb).await?;
    if !(200..300).contains(&a.status) {
        return Err(StatusError::Unreadable(format!(
            "{what} answered {}: {}",
            a.status,
            snippet(&a.body)
        )));
    }
    Ok(a)
}

#[cfg(test)]
impl Answer {
    /// An answer with no Location header, for adapters' unit tests.
    pub(crate) fn of(status: u16, body: &str) -> Answer {
        Answer {
            status,
            location: None,
            body: body.as_bytes().to_vec(),
        }
    }
}
