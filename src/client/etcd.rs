//! The `etcd` adapter: etcd v3's HTTP/JSON gateway (checked against Debian's etcd 3.4.23).
//!
//! Every endpoint is POST; keys and values are base64; int64 fields come back as strings.
//! Values are stored as JSON text (so integers and lists round-trip exactly, and a cas compare on
//! the JSON text of the expected value is a compare on the value).
//! - read: `/v3/kv/range {"key"}` (linearizable by default); an absent key has no `kvs`.
//! - write: `/v3/kv/put {"key","value"}`.
//! - cas: `/v3/kv/txn` comparing VALUE EQUAL (for an expected null: MOD == 0, i.e. absent),
//!   success put, failure range; `succeeded` absent or false is a compare mismatch.
//! - append: read the list and its mod_revision, then a txn guarded by MOD == that revision puts
//!   the list plus the element; a guard that fails is a definite no-op, retried while the op's
//!   time lasts.
//! - status: `GET /debug/vars` → `raft.status` (raftState, term, lead in hex), with member ids
//!   mapped to endpoints through `/v3/cluster/member/list` (cached). Not
//!   `/v3/maintenance/status`: its `raftTerm` is the term of the last applied entry, which would
//!   show false "two leaders in one term".
//!
//! Any member serves any request (etcd forwards to its leader itself), so there is no redirect.
//! With quorum lost etcd answers after its own 7 s with 503 (code 14) or 500 (code 2): `info`,
//! like every status but 400 (a malformed request, never executed), which is `fail`.

use super::transport::{
    base_url, bounded, cas_pair, exchange, fetch_ok, key_of, new_client, parse_host_port,
    send_failed, snippet, status_within, Answer, StatusError, Tracker, DEFAULT_KEY,
};
use super::{Adapter, ClientError, Completion, Endpoint, NodeStatus, Request, Role};
use crate::history::{Fun, Value, MISMATCH};
use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// How many read-modify-write rounds one append may take before giving up (the op's timeout
/// usually ends it first; this bounds the loop even for a generous timeout).
const MAX_APPEND_ATTEMPTS: u32 = 1000;

/// The adapter for etcd v3 (HTTP/JSON gateway).
pub struct EtcdAdapter {
    client: reqwest::Client,
    endpoints: Vec<Endpoint>,
    /// etcd member id → endpoint index, learned from the member list.
    members: Mutex<HashMap<u64, usize>>,
}

/// A key's current value and its mod_revision (absent keys are `None`).
#[derive(Clone, Debug, PartialEq)]
struct Entry {
    value: Value,
    mod_revision: i64,
}

/// What `raft.status` in `/debug/vars` says.
#[derive(Clone, Debug, PartialEq, Eq)]
struct RaftStatus {
    role: Role,
    term: u64,
    /// The leader's member id; 0 when there is none.
    lead: u64,
}

fn b64(s: &str) -> String {
    B64.encode(s.as_bytes())
}

/// A value as stored: its JSON text, base64-encoded.
fn encode_value(v: &Value) -> String {
    b64(&v.to_string())
}

/// An int64 as etcd's gateway writes it: a decimal string (or a number, from expvar).
fn int64(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

fn parse_body(a: &Answer) -> Result<Value, String> {
    serde_json::from_slice(&a.body).map_err(|_| format!("unreadable answer: {}", snippet(&a.body)))
}

/// The first kv of a range answer (`/v3/kv/range`, or a txn's `response_range`).
fn decode_range(v: &Value) -> Result<Option<Entry>, String> {
    let Some(kv) = v
        .get("kvs")
        .and_then(Value::as_array)
        .and_then(|k| k.first())
    else {
        return Ok(None);
    };
    // An empty value is omitted by the gateway; we never store one, but read it as "".
    let raw = kv.get("value").and_then(Value::as_str).unwrap_or("");
    let bytes = B64
        .decode(raw)
        .map_err(|e| format!("value is not base64: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|_| "value is not UTF-8".to_string())?;
    let value = serde_json::from_str(&text).map_err(|_| {
        format!(
            "value is not JSON text: {:?}",
            text.chars().take(60).collect::<String>()
        )
    })?;
    let mod_revision = int64(kv.get("mod_revision")).ok_or("kv has no mod_revision".to_string())?;
    Ok(Some(Entry {
        value,
        mod_revision,
    }))
}

/// Whether a txn answer says the compare held (`succeeded` is omitted when false).
fn decode_txn(v: &Value) -> bool {
    v.get("succeeded").and_then(Value::as_bool).unwrap_or(false)
}

/// `raft.status` out of `/debug/vars`.
fn decode_debug_vars(body: &[u8]) -> Result<RaftStatus, String> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| format!("/debug/vars is not JSON: {}", snippet(body)))?;
    let rs = v
        .get("raft.status")
        .ok_or("/debug/vars has no raft.status")?;
    let role = match rs.get("raftState").and_then(Value::as_str) {
        Some("StateLeader") => Role::Leader,
        Some("StateFollower") => Role::Follower,
        Some("StateCandidate") => Role::Candidate,
        Some(_) => Role::Other,
        None => return Err("raft.status has no raftState".into()),
    };
    let term = int64(rs.get("term"))
        .and_then(|t| u64::try_from(t).ok())
        .ok_or("raft.status has no term")?;
    let lead = match rs.get("lead") {
        Some(Value::String(h)) => {
            u64::from_str_radix(h, 16).map_err(|_| format!("raft.status lead {h:?} is not hex"))?
        }
        _ => 0,
    };
    Ok(RaftStatus { role, term, lead })
}

/// member id → endpoint index, matching each member's clientURLs against the endpoints.
fn decode_members(v: &Value, endpoints: &[Endpoint]) -> Result<HashMap<u64, usize>, String> {
    let members = v
        .get("members")
        .and_then(Value::as_array)
        .ok_or("member list has no members")?;
    let mut out = HashMap::new();
    for m in members {
        // IDs are uint64 as decimal strings.
        let id = match m.get("ID") {
            Some(Value::String(s)) => s.parse::<u64>().ok(),
            Some(Value::Number(n)) => n.as_u64(),
            _ => None,
        };
        let Some(id) = id else { continue };
        let urls = m.get("clientURLs").and_then(Value::as_array);
        let found = urls
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .find_map(|u| {
                let a = parse_host_port(u)?;
                endpoints.iter().find(|e| e.addr == a).map(|e| e.index)
            });
        if let Some(i) = found {
            out.insert(id, i);
        }
    }
    Ok(out)
}

/// What one request to etcd came back with.
enum Reply {
    /// 200 with a JSON body.
    Body(Value),
    /// The op ended without a usable answer.
    End(Completion),
}

impl EtcdAdapter {
    /// An adapter reaching `endpoints` (one HTTP client shared by all requests).
    pub fn new(endpoints: Vec<Endpoint>) -> Result<Self, ClientError> {
        Ok(EtcdAdapter {
            client: new_client()?,
            endpoints,
            members: Mutex::new(HashMap::new()),
        })
    }

    /// POST `body` to `path` on `node`: a 200 body, or the completion the failure means.
    async fn post(&self, node: usize, path: &str, body: &Value) -> Reply {
        let Some(ep) = self.endpoints.get(node) else {
            return Reply::End(Completion::Fail {
                error: format!("no node {node}"),
                node,
            });
        };
        let rb = self
            .client
            .post(format!("{}{path}", base_url(&ep.addr)))
            .json(body);
        match exchange(rb).await {
            Err(e) => Reply::End(send_failed(e, node)),
            Ok(a) if a.status == 200 => match parse_body(&a) {
                Ok(v) => Reply::Body(v),
                Err(error) => Reply::End(Completion::Info { error, node }),
            },
            Ok(a) => Reply::End(classify_error(&a, node)),
        }
    }

    async fn run(&self, node: usize, req: &Request, track: &Tracker) -> Completion {
        let key = b64(key_of(req, DEFAULT_KEY));
        match req.f {
            Fun::Read => match self
                .post(node, "/v3/kv/range", &json!({ "key": key }))
                .await
            {
                Reply::End(c) => c,
                Reply::Body(v) => match decode_range(&v) {
                    Ok(e) => Completion::Ok {
                        value: e.map_or(Value::Null, |e| e.value),
                        node,
                    },
                    Err(error) => Completion::Info { error, node },
                },
            },
            Fun::Write => {
                let body = json!({ "key": key, "value": encode_value(&req.value) });
                match self.post(node, "/v3/kv/put", &body).await {
                    Reply::End(c) => c,
                    Reply::Body(_) => Completion::Ok {
                        value: req.value.clone(),
                        node,
                    },
                }
            }
            Fun::Cas => {
                let Some((from, to)) = cas_pair(&req.value) else {
                    return Completion::Fail {
                        error: format!("cas value must be [expected, new], got {}", req.value),
                        node,
                    };
                };
                match self
                    .post(node, "/v3/kv/txn", &cas_txn(&key, from, to))
                    .await
                {
                    Reply::End(c) => c,
                    Reply::Body(v) if decode_txn(&v) => Completion::Ok {
                        value: req.value.clone(),
                        node,
                    },
                    Reply::Body(_) => Completion::Fail {
                        error: MISMATCH.into(),
                        node,
                    },
                }
            }
            Fun::Append => self.append(node, &key, &req.value, track).await,
        }
    }

    /// Read-modify-write guarded by the key's mod_revision, retried while the guard fails.
    /// Every failed guard is a definite no-op, so retrying is safe. An attempt whose outcome is
    /// unknown ends the op at once as `info`: retrying after it could append the element twice.
    async fn append(&self, node: usize, key: &str, elem: &Value, track: &Tracker) -> Completion {
        // Until a txn is in flight, a timeout leaves the key untouched: `fail`.
        track.set_noop(true);
        let mut attempt: u32 = 0;
        loop {
            attempt = attempt.saturating_add(1);
            if attempt > MAX_APPEND_ATTEMPTS {
                // Every earlier attempt's guard failed: nothing was applied.
                return Completion::Fail {
                    error: format!("append: the key kept changing ({MAX_APPEND_ATTEMPTS} tries)"),
                    node,
                };
            }
            let current = match self
                .post(node, "/v3/kv/range", &json!({ "key": key }))
                .await
            {
                // A read that failed either way changed nothing, and neither did anything before.
                Reply::End(Completion::Info { error, node } | Completion::Fail { error, node }) => {
                    return Completion::Fail {
                        error: format!("append: reading the list: {error}"),
                        node,
                    }
                }
                Reply::End(c) => return c,
                Reply::Body(v) => match decode_range(&v) {
                    Ok(e) => e,
                    Err(error) => {
                        return Completion::Fail {
                            error: format!("append: {error}"),
                            node,
                        }
                    }
                },
            };
            let (mut list, rev) = match current {
                None => (Vec::new(), 0),
                Some(Entry {
                    value: Value::Array(l),
                    mod_revision,
                }) => (l, mod_revision),
                Some(Entry { value, .. }) => {
                    return Completion::Fail {
                        error: format!("append: the key holds {value}, not a list"),
                        node,
                    }
                }
            };
            list.push(elem.clone());
            let txn = json!({
                "compare": [{
                    "key": key, "target": "MOD", "result": "EQUAL",
                    "mod_revision": rev.to_string(),
                }],
                "success": [{ "request_put": {
                    "key": key, "value": encode_value(&Value::Array(list)),
                }}],
            });
            track.set_noop(false);
            match self.post(node, "/v3/kv/txn", &txn).await {
                Reply::End(c) => return c,
                Reply::Body(v) if decode_txn(&v) => {
                    return Completion::Ok {
                        value: elem.clone(),
                        node,
                    }
                }
                Reply::Body(_) => {
                    // Someone else changed the key first: nothing applied; try again.
                    track.set_noop(true);
                    let jitter_ms = {
                        use rand::RngExt as _;
                        rand::rng().random_range(0..=u64::from(attempt.min(20)))
                    };
                    tokio::time::sleep(Duration::from_millis(jitter_ms)).await;
                }
            }
        }
    }

    /// The endpoint of member `id`, refreshing the cached member list from `node` on a miss.
    async fn member_index(&self, node: usize, id: u64) -> Result<Option<usize>, String> {
        if let Some(i) = self.cached_member(id) {
            return Ok(Some(i));
        }
        let v = match self.post(node, "/v3/cluster/member/list", &json!({})).await {
            Reply::Body(v) => v,
            Reply::End(c) => return Err(format!("member list: {}", why(&c))),
        };
        let map = decode_members(&v, &self.endpoints)?;
        let found = map.get(&id).copied();
        if let Ok(mut m) = self.members.lock() {
            m.extend(map);
        }
        Ok(found)
    }

    fn cached_member(&self, id: u64) -> Option<usize> {
        self.members.lock().ok().and_then(|m| m.get(&id).copied())
    }

    async fn status_inner(&self, node: usize) -> Result<NodeStatus, StatusError> {
        let ep = self
            .endpoints
            .get(node)
            .ok_or_else(|| StatusError::Unsupported(format!("no node {node}")))?;
        let rb = self
            .client
            .get(format!("{}/debug/vars", base_url(&ep.addr)));
        let a = fetch_ok(rb, "/debug/vars").await?;
        let rs = decode_debug_vars(&a.body).map_err(StatusError::Unreadable)?;
        let leader = if rs.lead == 0 {
            None
        } else {
            self.member_index(node, rs.lead)
                .await
                .map_err(StatusError::Unreadable)?
        };
        Ok(NodeStatus {
            role: rs.role,
            term: rs.term,
            leader,
        })
    }
}

/// The error text of a completion that ended a status query early.
fn why(c: &Completion) -> &str {
    match c {
        Completion::Fail { error, .. } | Completion::Info { error, .. } => error,
        Completion::Ok { .. } => "no answer",
    }
}

/// The txn of a cas: compare the stored JSON text with the expected value's (or, for an
/// expected null, that the key is absent: MOD == 0, since a VALUE compare on an absent key
/// always fails), put on success, read on failure.
fn cas_txn(key: &str, from: &Value, to: &Value) -> Value {
    let compare = if from.is_null() {
        json!({ "key": key, "target": "MOD", "result": "EQUAL", "mod_revision": "0" })
    } else {
        json!({ "key": key, "target": "VALUE", "result": "EQUAL", "value": encode_value(from) })
    };
    json!({
        "compare": [compare],
        "success": [{ "request_put": { "key": key, "value": encode_value(to) } }],
        "failure": [{ "request_range": { "key": key } }],
    })
}

/// A non-200 answer: 400 is a request etcd refused to execute (`fail`); everything else,
/// notably 503 code 14 and 500 code 2 when quorum is lost, may have been applied (`info`).
fn classify_error(a: &Answer, node: usize) -> Completion {
    let code = serde_json::from_slice::<Value>(&a.body)
        .ok()
        .and_then(|v| v.get("code").and_then(Value::as_i64));
    let code = code.map(|c| format!(" code {c}")).unwrap_or_default();
    let error = format!("http {}{code}: {}", a.status, snippet(&a.body));
    if a.status == 400 {
        Completion::Fail { error, node }
    } else {
        Completion::Info { error, node }
    }
}

#[async_trait]
impl Adapter for EtcdAdapter {
    async fn invoke(&self, node: usize, req: &Request, timeout: Duration) -> Completion {
        let track = Tracker::new(node);
        bounded(timeout, &track, self.run(node, req, &track)).await
    }

    fn reports_roles(&self) -> bool {
        true
    }

    async fn status(&self, node: usize, timeout: Duration) -> Result<NodeStatus, StatusError> {
        status_within(timeout, self.status_inner(node)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eps() -> Vec<Endpoint> {
        crate::client::test_endpoints(2379, 10)
    }

    #[test]
    fn range_answers_decode() {
        // Real answers from etcd 3.4.23's gateway.
        let absent: Value = serde_json::from_str(
            r#"{"header":{"cluster_id":"1","member_id":"2","revision":"1","raft_term":"2"}}"#,
        )
        .unwrap();
        assert_eq!(decode_range(&absent).unwrap(), None);
        let present: Value = serde_json::from_str(&format!(
            r#"{{"header":{{"revision":"2"}},"kvs":[{{"key":"cg==","create_revision":"2",
               "mod_revision":"7","version":"1","value":"{}"}}],"count":"1"}}"#,
            encode_value(&json!([1, 2]))
        ))
        .unwrap();
        assert_eq!(
            decode_range(&present).unwrap(),
            Some(Entry {
                value: json!([1, 2]),
                mod_revision: 7
            })
        );
        let garbage: Value =
            serde_json::from_str(r#"{"kvs":[{"value":"bm90IGpzb24=","mod_revision":"3"}]}"#)
                .unwrap();
        assert!(decode_range(&garbage).is_err());
    }

    #[test]
    fn txn_success_flag() {
        let ok: Value = serde_json::from_str(r#"{"header":{},"succeeded":true}"#).unwrap();
        let failed: Value = serde_json::from_str(r#"{"header":{},"responses":[]}"#).unwrap();
        assert!(decode_txn(&ok));
        assert!(!decode_txn(&failed));
    }

    #[test]
    fn cas_txn_shapes() {
        let t = cas_txn("cg==", &Value::Null, &json!(3));
        assert_eq!(t["compare"][0]["target"], "MOD");
        assert_eq!(t["compare"][0]["mod_revision"], "0");
        let t = cas_txn("cg==", &json!(1), &json!(3));
        assert_eq!(t["compare"][0]["target"], "VALUE");
        assert_eq!(t["compare"][0]["value"], "MQ==");
        assert_eq!(t["success"][0]["request_put"]["value"], "Mw==");
    }

    #[test]
    fn debug_vars_decode() {
        let body = br#"{"cmdline":["etcd"],"raft.status":{"id":"bdae9bbc11dd390d","term":2,
            "vote":"bdae9bbc11dd390d","commit":8,"lead":"bdae9bbc11dd390d",
            "raftState":"StateLeader","applied":8,"progress":{},"leadtransferee":"0"}}"#;
        assert_eq!(
            decode_debug_vars(body).unwrap(),
            RaftStatus {
                role: Role::Leader,
                term: 2,
                lead: 0xbdae9bbc11dd390d
            }
        );
        let body = br#"{"raft.status":{"term":"5","lead":"0","raftState":"StatePreCandidate"}}"#;
        assert_eq!(
            decode_debug_vars(body).unwrap(),
            RaftStatus {
                role: Role::Other,
                term: 5,
                lead: 0
            }
        );
        assert!(decode_debug_vars(b"{}").is_err());
    }

    #[test]
    fn members_map_by_client_url() {
        let v: Value = serde_json::from_str(
            r#"{"members":[
              {"ID":"13668033151171901709","name":"n1","clientURLs":["http://127.0.0.1:2379"]},
              {"ID":"42","name":"n3","clientURLs":["http://127.0.0.1:2399/"]},
              {"ID":"7","name":"x","clientURLs":["http://10.9.9.9:2379"]},
              {"ID":"8","name":"learner"}]}"#,
        )
        .unwrap();
        let m = decode_members(&v, &eps()).unwrap();
        assert_eq!(m.get(&13668033151171901709), Some(&0));
        assert_eq!(m.get(&42), Some(&2));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn errors_classify() {
        let a = |status, body: &str| Answer {
            status,
            location: None,
            body: body.as_bytes().to_vec(),
        };
        let c = classify_error(
            &a(
                503,
                r#"{"error":"etcdserver: request timed out","code":14}"#,
            ),
            1,
        );
        match c {
            Completion::Info { error, node: 1 } => assert!(error.contains("code 14"), "{error}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify_error(
                &a(500, r#"{"error":"context deadline exceeded","code":2}"#),
                0
            ),
            Completion::Info { .. }
        ));
        assert!(matches!(
            classify_error(&a(400, r#"{"error":"illegal base64","code":3}"#), 0),
            Completion::Fail { .. }
        ));
    }

    #[test]
    fn int64_strings() {
        assert_eq!(int64(Some(&json!("12"))), Some(12));
        assert_eq!(int64(Some(&json!(12))), Some(12));
        assert_eq!(int64(Some(&json!("x"))), None);
        assert_eq!(int64(None), None);
    }
}
