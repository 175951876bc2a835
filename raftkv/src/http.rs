//! The HTTP/JSON surface: the client API (`/kv`, `/status`, `/admin`) and peer RPC
//! (`/raft/msgs`) on one port. Handlers only translate: they hand an [`Event`] to the node
//! thread and map its [`Reply`] to a status code.
//!
//! Bodies are parsed by hand from bytes so that every malformed body is a 400 (axum's `Json`
//! extractor would answer 415/422 for some), and client bodies are capped at 64 KiB (413).
//!
//! `--text-api` changes how the client API talks, nothing else: every `/kv` answer is status
//! 200 with a text body (a value as text, `OK`, or `Error: <reason>`), and parameters may come
//! as a query string, a form body or a text body as well as JSON. Real servers talk like that,
//! and raftcheck's declarative adapter must be able to describe them; see [`text_reply`].
//! `--no-status` removes `GET /status`.

use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::oneshot;

use crate::config::Talk;
use crate::kv::Command;
use crate::node::{Event, Reply};
use crate::raft::{ConfigChange, Message, NodeId};

/// Client request bodies larger than this are refused with 413.
pub const CLIENT_BODY_LIMIT: usize = 64 * 1024;
/// Peer batches (which may carry a whole snapshot) may be this large.
pub const PEER_BODY_LIMIT: usize = 512 * 1024 * 1024;

/// What every handler needs.
#[derive(Clone)]
pub struct AppState {
    /// The node thread's inbox. A std `Mutex` around the `Sender`, not a tokio one, because
    /// nothing is awaited while it is held (and `Sender::send` never blocks).
    tx: Arc<Mutex<Sender<Event>>>,
    /// How long a client request may wait for the node.
    timeout: Duration,
    /// How the client API talks (`--text-api`, `--no-status`).
    talk: Talk,
}

impl AppState {
    /// State for a node thread reachable through `tx`.
    pub fn new(tx: Sender<Event>, timeout: Duration) -> Self {
        AppState {
            tx: Arc::new(Mutex::new(tx)),
            timeout,
            talk: Talk::default(),
        }
    }

    /// The same state, talking as `talk` says.
    pub fn talking(mut self, talk: Talk) -> Self {
        self.talk = talk;
        self
    }

    fn submit(&self, ev: Event) -> bool {
        self.tx
            .lock()
            .map(|tx| tx.send(ev).is_ok())
            .unwrap_or(false)
    }

    async fn ask(&self, make: impl FnOnce(oneshot::Sender<Reply>) -> Event) -> Reply {
        let (tx, rx) = oneshot::channel();
        if !self.submit(make(tx)) {
            return Reply::Unavailable("node is shutting down".into());
        }
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Reply::Unavailable("request dropped; outcome unknown".into()),
            Err(_) => Reply::Unavailable("timed out; outcome unknown".into()),
        }
    }
}

/// Every route on the one port: the client API (`/kv`, `/status`, `/admin`) and peer RPC
/// (`/raft/msgs`), each with its own body limit.
pub fn router(state: AppState) -> Router {
    let mut client = Router::new()
        .route("/kv/{key}", get(get_key).put(put_key))
        .route("/kv/{key}/cas", post(cas_key))
        .route("/kv/{key}/append", post(append_key));
    if !state.talk.no_status {
        client = client.route("/status", get(status));
    }
    let client = client
        .route("/admin/add", post(admin_add))
        .route("/admin/remove", post(admin_remove))
        .layer(DefaultBodyLimit::max(CLIENT_BODY_LIMIT));
    let peer = Router::new()
        .route("/raft/msgs", post(raft_msgs))
        .layer(DefaultBodyLimit::max(PEER_BODY_LIMIT));
    client.merge(peer).with_state(state)
}

fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, Reply> {
    serde_json::from_slice(body).map_err(|e| Reply::Invalid(format!("malformed request: {e}")))
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        match self {
            Reply::Value(v) => (StatusCode::OK, Json(json!({ "value": v }))).into_response(),
            Reply::Done => (StatusCode::OK, Json(json!({}))).into_response(),
            Reply::Mismatch(v) => (
                StatusCode::CONFLICT,
                Json(json!({ "error": "precondition failed", "value": v })),
            )
                .into_response(),
            Reply::NotLeader { leader, addr } => (
                StatusCode::MISDIRECTED_REQUEST,
                Json(json!({ "error": "not the leader", "leader": leader, "leader_addr": addr })),
            )
                .into_response(),
            Reply::Unavailable(why) => (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "error": why })),
            )
                .into_response(),
            Reply::Invalid(why) => {
                (StatusCode::BAD_REQUEST, Json(json!({ "error": why }))).into_response()
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ValueBody {
    value: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CasBody {
    from: Option<i64>,
    to: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    id: NodeId,
    addr: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveBody {
    id: NodeId,
}

/// Which client operation a reply answers: text mode words a 409 by what was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Read,
    Write,
    Cas,
    Append,
}

async fn get_key(State(st): State<AppState>, Path(key): Path<String>) -> Response {
    let reply = st.ask(|tx| Event::Read(key, tx)).await;
    st.answer(Op::Read, reply)
}

/// The one value of a write or an append: `{"value": v}` in JSON, or under `--text-api` a
/// `value` parameter (query, form) or the text body itself.
fn value_param(
    st: &AppState,
    query: Option<String>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<i64, Refusal> {
    if st.talk.text_api {
        text_params(query.as_deref(), headers, body, "value")
            .and_then(|p| p.only(&["value"]).and_then(|p| p.required("value")))
    } else {
        json_body::<ValueBody>(body).map(|b| b.value)
    }
}

async fn put_key(
    State(st): State<AppState>,
    Path(key): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match value_param(&st, query, &headers, body) {
        Ok(value) => {
            let reply = st
                .ask(|tx| Event::Write(Command::Put { key, value }, tx))
                .await;
            st.answer(Op::Write, reply)
        }
        Err(e) => st.refuse(e),
    }
}

async fn cas_key(
    State(st): State<AppState>,
    Path(key): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    // In text mode `from` left out means "the key must be absent", as `"from": null` does in
    // JSON; `from=null` is not an integer and is refused.
    let pair = if st.talk.text_api {
        text_params(query.as_deref(), &headers, body, "to").and_then(|p| {
            let p = p.only(&["from", "to"])?;
            Ok((p.optional("from"), p.required("to")?))
        })
    } else {
        json_body::<CasBody>(body).map(|b| (b.from, b.to))
    };
    match pair {
        Ok((from, to)) => {
            let reply = st
                .ask(|tx| Event::Write(Command::Cas { key, from, to }, tx))
                .await;
            st.answer(Op::Cas, reply)
        }
        Err(e) => st.refuse(e),
    }
}

async fn append_key(
    State(st): State<AppState>,
    Path(key): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match value_param(&st, query, &headers, body) {
        Ok(value) => {
            let reply = st
                .ask(|tx| Event::Write(Command::Append { key, value }, tx))
                .await;
            st.answer(Op::Append, reply)
        }
        Err(e) => st.refuse(e),
    }
}

/// Why a client request was refused before it reached the node.
enum Refusal {
    /// The body could not be read (too large: 413).
    Body(BytesRejection),
    /// The request is malformed (400).
    Invalid(String),
}

impl AppState {
    /// The answer to a client op, as the API talks.
    fn answer(&self, op: Op, reply: Reply) -> Response {
        if self.talk.text_api {
            text_reply(op, reply)
        } else {
            reply.into_response()
        }
    }

    /// The answer to a request refused before it reached the node.
    fn refuse(&self, r: Refusal) -> Response {
        match (r, self.talk.text_api) {
            (Refusal::Body(rej), false) => rej.into_response(),
            (Refusal::Invalid(why), false) => Reply::Invalid(why).into_response(),
            (Refusal::Body(rej), true) => {
                text_answer(format!("Error: bad request: {}", rej.body_text().trim()))
            }
            (Refusal::Invalid(why), true) => text_answer(format!("Error: bad request: {why}")),
        }
    }
}

fn json_body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, Refusal> {
    let body = body.map_err(Refusal::Body)?;
    serde_json::from_slice(&body).map_err(|e| Refusal::Invalid(format!("malformed request: {e}")))
}

/// A text-mode answer: always 200, one line of text.
fn text_answer(line: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{line}\n"),
    )
        .into_response()
}

/// `--text-api`'s answers, all status 200: a read answers its value as text (`42`, a list as
/// `[1,2]`) or an empty body for an absent key; a write, append or successful cas answers `OK`;
/// everything else `Error: <reason>`, with one reason per meaning so that a client can tell a
/// definite refusal (`compare failed`, `not the leader`, `bad request`, `the key holds a
/// register`) from an unknown outcome (`timed out`, `unavailable`).
fn text_reply(op: Op, reply: Reply) -> Response {
    let line = match reply {
        Reply::Value(None) => String::new(),
        Reply::Value(Some(v)) => serde_json::to_string(&v).unwrap_or_default(),
        Reply::Done => "OK".into(),
        Reply::Mismatch(_) if op == Op::Cas => "Error: compare failed".into(),
        Reply::Mismatch(_) => "Error: the key holds a register, not a list".into(),
        Reply::NotLeader { leader, addr } => match (leader, addr) {
            (Some(l), Some(a)) => format!("Error: not the leader (leader: n{l} at {a})"),
            (Some(l), None) => format!("Error: not the leader (leader: n{l})"),
            _ => "Error: not the leader (leader unknown)".into(),
        },
        Reply::Unavailable(why) if why.starts_with("timed out") => {
            "Error: timed out (outcome unknown)".into()
        }
        Reply::Unavailable(why) => format!("Error: unavailable ({why})"),
        Reply::Invalid(why) => format!("Error: bad request: {why}"),
    };
    if op == Op::Read && line.is_empty() {
        // An absent key: an empty body, not an empty line.
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "",
        )
            .into_response();
    }
    text_answer(line)
}

/// The named integer parameters of a text-mode request, gathered from the query string and the
/// body. A name given twice is refused, so a request never means two things.
struct Params(Vec<(String, i64)>);

impl Params {
    /// Refuse any parameter not in `names` (as the JSON bodies refuse unknown fields).
    fn only(self, names: &[&str]) -> Result<Params, Refusal> {
        match self.0.iter().find(|(n, _)| !names.contains(&n.as_str())) {
            Some((n, _)) => Err(Refusal::Invalid(format!("unknown parameter `{n}`"))),
            None => Ok(self),
        }
    }

    fn optional(&self, name: &str) -> Option<i64> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }

    fn required(&self, name: &str) -> Result<i64, Refusal> {
        self.optional(name)
            .ok_or_else(|| Refusal::Invalid(format!("missing parameter `{name}`")))
    }
}

/// Gather a text-mode request's parameters: the query string (`?from=1`), then the body by its
/// Content-Type: JSON as in the JSON API (`null` leaves the parameter out), a form
/// (`to=2&from=1`), or else plain text, which is the value of `text_name` (`42`; an empty body
/// gives nothing).
fn text_params(
    query: Option<&str>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    text_name: &str,
) -> Result<Params, Refusal> {
    let body = body.map_err(Refusal::Body)?;
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let Some(q) = query {
        pairs.extend(form_pairs(q)?);
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let text =
        std::str::from_utf8(&body).map_err(|_| Refusal::Invalid("the body is not UTF-8".into()))?;
    if content_type.starts_with("application/json") {
        let obj: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
            .map_err(|e| Refusal::Invalid(format!("malformed JSON: {e}")))?;
        for (k, v) in obj {
            if !v.is_null() {
                pairs.push((k, v.to_string()));
            }
        }
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        pairs.extend(form_pairs(text.trim_end())?);
    } else if !text.trim().is_empty() {
        pairs.push((text_name.to_string(), text.trim().to_string()));
    }
    let mut out: Vec<(String, i64)> = Vec::new();
    for (name, raw) in pairs {
        if out.iter().any(|(n, _)| *n == name) {
            return Err(Refusal::Invalid(format!("parameter `{name}` given twice")));
        }
        let v = raw
            .trim()
            .parse::<i64>()
            .map_err(|_| Refusal::Invalid(format!("`{name}`: {raw:?} is not an integer")))?;
        out.push((name, v));
    }
    Ok(Params(out))
}

/// `a=1&b=2`, percent-decoded (`+` is a space), as an HTML form or a query string writes it.
fn form_pairs(text: &str) -> Result<Vec<(String, String)>, Refusal> {
    let mut out = Vec::new();
    for part in text.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = part
            .split_once('=')
            .ok_or_else(|| Refusal::Invalid(format!("`{part}` is not name=value")))?;
        out.push((percent_decode(name)?, percent_decode(value)?));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Result<String, Refusal> {
    let bad = || Refusal::Invalid(format!("`{s}` is not percent-encoded UTF-8"));
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return Err(bad());
                }
                let digits = std::str::from_utf8(hex).map_err(|_| bad())?;
                out.push(u8::from_str_radix(digits, 16).map_err(|_| bad())?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| bad())
}

async fn status(State(st): State<AppState>) -> Response {
    let (tx, rx) = oneshot::channel();
    if !st.submit(Event::Status(tx)) {
        return Reply::Unavailable("node is shutting down".into()).into_response();
    }
    match tokio::time::timeout(st.timeout, rx).await {
        Ok(Ok(s)) => (StatusCode::OK, Json(s)).into_response(),
        _ => Reply::Unavailable("node did not answer".into()).into_response(),
    }
}

async fn admin_add(State(st): State<AppState>, body: Bytes) -> Response {
    let b: AddBody = match parse(&body) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    if b.id == 0
        || b.addr
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .is_none()
    {
        return Reply::Invalid("id must be positive and addr host:port".into()).into_response();
    }
    st.ask(|tx| Event::Config(ConfigChange::Add(b.id, b.addr), tx))
        .await
        .into_response()
}

async fn admin_remove(State(st): State<AppState>, body: Bytes) -> Response {
    let b: RemoveBody = match parse(&body) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    st.ask(|tx| Event::Config(ConfigChange::Remove(b.id), tx))
        .await
        .into_response()
}

async fn raft_msgs(State(st): State<AppState>, body: Bytes) -> Response {
    let msgs: Vec<Message> = match parse(&body) {
        Ok(m) => m,
        Err(r) => return r.into_response(),
    };
    if st.submit(Event::Peer(msgs)) {
        StatusCode::OK.into_response()
    } else {
        StatusCode::SERVICE_UNAVAILABLE.into_response()
    }
}
