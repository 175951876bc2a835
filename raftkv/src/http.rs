//! The HTTP/JSON surface: the client API (`/kv`, `/status`, `/admin`) and peer RPC
//! (`/raft/msgs`) on one port. Handlers only translate: they hand an [`Event`] to the node
//! thread and map its [`Reply`] to a status code.
//!
//! Bodies are parsed by hand from bytes so that every malformed body is a 400 (axum's `Json`
//! extractor would answer 415/422 for some), and client bodies are capped at 64 KiB (413).

use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::oneshot;

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
}

impl AppState {
    /// State for a node thread reachable through `tx`.
    pub fn new(tx: Sender<Event>, timeout: Duration) -> Self {
        AppState {
            tx: Arc::new(Mutex::new(tx)),
            timeout,
        }
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
    let client = Router::new()
        .route("/kv/{key}", get(get_key).put(put_key))
        .route("/kv/{key}/cas", post(cas_key))
        .route("/kv/{key}/append", post(append_key))
        .route("/status", get(status))
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

async fn get_key(State(st): State<AppState>, Path(key): Path<String>) -> Response {
    st.ask(|tx| Event::Read(key, tx)).await.into_response()
}

async fn put_key(State(st): State<AppState>, Path(key): Path<String>, body: Bytes) -> Response {
    let b: ValueBody = match parse(&body) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    st.ask(|tx| {
        Event::Write(
            Command::Put {
                key,
                value: b.value,
            },
            tx,
        )
    })
    .await
    .into_response()
}

async fn cas_key(State(st): State<AppState>, Path(key): Path<String>, body: Bytes) -> Response {
    let b: CasBody = match parse(&body) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    st.ask(|tx| {
        Event::Write(
            Command::Cas {
                key,
                from: b.from,
                to: b.to,
            },
            tx,
        )
    })
    .await
    .into_response()
}

async fn append_key(State(st): State<AppState>, Path(key): Path<String>, body: Bytes) -> Response {
    let b: ValueBody = match parse(&body) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    st.ask(|tx| {
        Event::Write(
            Command::Append {
                key,
                value: b.value,
            },
            tx,
        )
    })
    .await
    .into_response()
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
