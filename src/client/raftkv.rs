//! The `raftkv` adapter: raftkv's HTTP/JSON client API (DESIGN.md, "raftkv").
//!
//! ```text
//! GET  /kv/{key}                        200 {"value": v|null}
//! PUT  /kv/{key}        {"value": v}    200
//! POST /kv/{key}/cas    {"from","to"}   200 | 409 (compare failed)
//! POST /kv/{key}/append {"value": x}    200 | 409 (the key holds a register)
//! GET  /status                          {"id","role","term","leader",...}
//! 421 {"leader": id|null, "leader_addr": "host:port"|null}   not the leader
//! 503 the node could not complete (outcome unknown); 400/413 malformed request
//! ```
//! A 421 is followed once, to the node it names, so that a worker pinned to a follower still
//! gets its op served (by the leader) and the history records who served it.

use super::transport::{
    base_url, bounded, cas_pair, endpoint_by_addr, endpoint_by_id, exchange, fetch_ok,
    follow_one_redirect, key_of, new_client, send_failed, snippet, status_within, Answer,
    SendError, StatusError, Step, Tracker, DEFAULT_KEY,
};
use super::{
    Adapter, ClientError, Completion, Endpoint, Membership, MembershipError, NodeStatus, Request,
    Role,
};
use crate::history::{Fun, Value, MISMATCH};
use async_trait::async_trait;
use serde_json::json;
use std::time::Duration;

/// The adapter for raftkv, the reference server.
pub struct RaftkvAdapter {
    client: reqwest::Client,
    endpoints: Vec<Endpoint>,
}

impl RaftkvAdapter {
    /// An adapter reaching `endpoints` (one HTTP client shared by all requests).
    pub fn new(endpoints: Vec<Endpoint>) -> Result<Self, ClientError> {
        Ok(RaftkvAdapter {
            client: new_client()?,
            endpoints,
        })
    }

    async fn once(&self, node: usize, req: &Request) -> Step {
        let Some(ep) = self.endpoints.get(node) else {
            return Step::Done(Completion::Fail {
                error: format!("no node {node}"),
                node,
            });
        };
        let base = base_url(&ep.addr);
        let key = crate::client::template::encode_url(key_of(req, DEFAULT_KEY));
        let rb = match req.f {
            Fun::Read => self.client.get(format!("{base}/kv/{key}")),
            Fun::Write => self
                .client
                .put(format!("{base}/kv/{key}"))
                .json(&json!({ "value": req.value })),
            Fun::Cas => {
                let Some((from, to)) = cas_pair(&req.value) else {
                    return Step::Done(Completion::Fail {
                        error: format!("cas value must be [expected, new], got {}", req.value),
                        node,
                    });
                };
                self.client
                    .post(format!("{base}/kv/{key}/cas"))
                    .json(&json!({ "from": from, "to": to }))
            }
            Fun::Append => self
                .client
                .post(format!("{base}/kv/{key}/append"))
                .json(&json!({ "value": req.value })),
        };
        match exchange(rb).await {
            Ok(a) => interpret(req, &a, node, &self.endpoints),
            Err(e) => Step::Done(send_failed(e, node)),
        }
    }

    /// POST an admin change to `via`, following one redirect. `already` is the text of the
    /// 400 that means the change is already in place.
    async fn admin(
        &self,
        via: usize,
        path: &str,
        body: Value,
        already: &str,
        timeout: Duration,
    ) -> Result<(), MembershipError> {
        let attempt = async {
            let mut node = via;
            for _ in 0..2 {
                let ep = self.endpoints.get(node).ok_or(format!("no node {node}"))?;
                let rb = self
                    .client
                    .post(format!("{}{path}", base_url(&ep.addr)))
                    .json(&body);
                let a = exchange(rb).await.map_err(|e| match e {
                    SendError::Refused(m) | SendError::Unknown(m) => m,
                })?;
                match admin_step(&a, node, already, &self.endpoints)? {
                    None => return Ok(()),
                    Some(leader) => node = leader,
                }
            }
            Err("not the leader (after one redirect)".to_string())
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(done) => done.map_err(MembershipError),
            Err(_) => Err(MembershipError(format!("no answer within {timeout:?}"))),
        }
    }

    async fn run(&self, node: usize, req: &Request, track: &Tracker) -> Completion {
        follow_one_redirect(node, track, |n| self.once(n, req)).await
    }
}

/// How an admin answer ends: done (with the idempotent 400s counted as done), refused, or
/// redirected to the leader.
fn admin_step(
    a: &Answer,
    node: usize,
    already: &str,
    endpoints: &[Endpoint],
) -> Result<Option<usize>, String> {
    match a.status {
        200 => Ok(None),
        400 if String::from_utf8_lossy(&a.body).contains(already) => Ok(None),
        421 => match redirect_target(&a.body, endpoints) {
            Some(l) if l != node => Ok(Some(l)),
            _ => Err("not the leader; leader unknown".into()),
        },
        s => Err(format!("http {s}: {}", snippet(&a.body))),
    }
}

/// Turn raftkv's answer to `req` from `node` into a step (pure, for unit tests).
fn interpret(req: &Request, a: &Answer, node: usize, endpoints: &[Endpoint]) -> Step {
    let done = Step::Done;
    match a.status {
        200 => match req.f {
            Fun::Read => match serde_json::from_slice::<Value>(&a.body)
                .ok()
                .and_then(|b| b.get("value").cloned())
            {
                Some(value) => done(Completion::Ok { value, node }),
                None => done(Completion::Info {
                    error: format!("unreadable answer: {}", snippet(&a.body)),
                    node,
                }),
            },
            _ => done(Completion::Ok {
                value: req.value.clone(),
                node,
            }),
        },
        // 409 comes after the command was applied and found the precondition false: a
        // definite no-op. For cas it is an observation ("mismatch"); for append it means the key
        // holds a register, which says nothing the checker can use.
        409 if req.f == Fun::Cas => done(Completion::Fail {
            error: MISMATCH.into(),
            node,
        }),
        409 => done(Completion::Fail {
            error: format!("conflict: {}", snippet(&a.body)),
            node,
        }),
        421 => Step::Redirect(redirect_target(&a.body, endpoints)),
        400 | 413 => done(Completion::Fail {
            error: format!("http {}: {}", a.status, snippet(&a.body)),
            node,
        }),
        s => done(Completion::Info {
            error: format!("http {s}: {}", snippet(&a.body)),
            node,
        }),
    }
}

/// The node a 421 names: by id, else by address. An unreadable body names nobody.
fn redirect_target(body: &[u8], endpoints: &[Endpoint]) -> Option<usize> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.get("leader")
        .and_then(|id| endpoint_by_id(endpoints, id))
        .or_else(|| {
            v.get("leader_addr")
                .and_then(Value::as_str)
                .and_then(|a| endpoint_by_addr(endpoints, a))
        })
}

/// Read `GET /status` (pure, for unit tests).
fn read_status(body: &[u8], endpoints: &[Endpoint]) -> Result<NodeStatus, String> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| format!("status is not JSON: {}", snippet(body)))?;
    let role = match v.get("role").and_then(Value::as_str) {
        Some("leader") => Role::Leader,
        Some("follower") => Role::Follower,
        Some("candidate") => Role::Candidate,
        Some(_) => Role::Other,
        None => return Err(format!("status has no role: {}", snippet(body))),
    };
    let term = v
        .get("term")
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("status has no term: {}", snippet(body)))?;
    let leader = v.get("leader").and_then(|id| endpoint_by_id(endpoints, id));
    Ok(NodeStatus { role, term, leader })
}

#[async_trait]
impl Adapter for RaftkvAdapter {
    async fn invoke(&self, node: usize, req: &Request, timeout: Duration) -> Completion {
        let track = Tracker::new(node);
        bounded(timeout, &track, self.run(node, req, &track)).await
    }

    fn reports_roles(&self) -> bool {
        true
    }

    async fn status(&self, node: usize, timeout: Duration) -> Result<NodeStatus, StatusError> {
        let ep = self
            .endpoints
            .get(node)
            .ok_or_else(|| StatusError::Unsupported(format!("no node {node}")))?;
        let rb = self.client.get(format!("{}/status", base_url(&ep.addr)));
        let a = status_within(timeout, fetch_ok(rb, "/status")).await?;
        read_status(&a.body, &self.endpoints).map_err(StatusError::Unreadable)
    }

    fn writes_acknowledged_by_leader(&self) -> bool {
        // Followers answer 421 and the adapter follows it, so an ok write names the leader.
        true
    }

    fn membership(&self) -> Option<&dyn Membership> {
        Some(self)
    }
}

#[async_trait]
impl Membership for RaftkvAdapter {
    async fn remove_member(
        &self,
        via: usize,
        id: u64,
        timeout: Duration,
    ) -> Result<(), MembershipError> {
        // "is not a member" counts as removed only because raftkv checks, before membership,
        // that no change is uncommitted (503 "already in progress") and that the leader has
        // committed an entry of its term (503): a leader that says it, has the removal committed.
        self.admin(
            via,
            "/admin/remove",
            json!({ "id": id }),
            "is not a member",
            timeout,
        )
        .await
    }

    async fn add_member(
        &self,
        via: usize,
        id: u64,
        addr: std::net::SocketAddr,
        timeout: Duration,
    ) -> Result<(), MembershipError> {
        // raftkv serves peers on its client port, so the client address is the peer address.
        self.admin(
            via,
            "/admin/add",
            json!({ "id": id, "addr": addr.to_string() }),
            "already a member",
            timeout,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eps() -> Vec<Endpoint> {
        crate::client::test_endpoints(7001, 1)
    }

    fn answer(status: u16, body: &str) -> Answer {
        Answer::of(status, body)
    }

    fn req(f: Fun, value: Value) -> Request {
        Request {
            f,
            key: None,
            value,
        }
    }

    #[test]
    fn answers_are_classified() {
        let e = eps();
        let read = req(Fun::Read, Value::Null);
        assert_eq!(
            interpret(&read, &answer(200, r#"{"value":[1,2]}"#), 0, &e),
            Step::Done(Completion::Ok {
                value: json!([1, 2]),
                node: 0
            })
        );
        assert_eq!(
            interpret(&read, &answer(200, r#"{"value":null}"#), 0, &e),
            Step::Done(Completion::Ok {
                value: Value::Null,
                node: 0
            })
        );
        assert!(matches!(
            interpret(&read, &answer(200, "<html>"), 0, &e),
            Step::Done(Completion::Info { .. })
        ));
        let cas = req(Fun::Cas, json!([1, 2]));
        assert_eq!(
            interpret(
                &cas,
                &answer(409, r#"{"error":"precondition failed","value":3}"#),
                1,
                &e
            ),
            Step::Done(Completion::Fail {
                error: MISMATCH.into(),
                node: 1
            })
        );
        let append = req(Fun::Append, json!(4));
        match interpret(&append, &answer(409, "{}"), 1, &e) {
            Step::Done(Completion::Fail { error, .. }) => assert_ne!(error, MISMATCH),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            interpret(
                &append,
                &answer(503, r#"{"error":"timed out; outcome unknown"}"#),
                1,
                &e
            ),
            Step::Done(Completion::Info { .. })
        ));
        assert!(matches!(
            interpret(&append, &answer(400, r#"{"error":"malformed"}"#), 1, &e),
            Step::Done(Completion::Fail { .. })
        ));
        assert_eq!(
            interpret(&append, &answer(200, "{}"), 2, &e),
            Step::Done(Completion::Ok {
                value: json!(4),
                node: 2
            })
        );
    }

    #[test]
    fn redirects_name_the_leader() {
        let e = eps();
        let r = |b: &str| interpret(&req(Fun::Read, Value::Null), &answer(421, b), 0, &e);
        assert_eq!(
            r(r#"{"leader":2,"leader_addr":"127.0.0.1:7002"}"#),
            Step::Redirect(Some(1))
        );
        assert_eq!(
            r(r#"{"leader":9,"leader_addr":"127.0.0.1:7003"}"#),
            Step::Redirect(Some(2))
        );
        assert_eq!(
            r(r#"{"leader":null,"leader_addr":null}"#),
            Step::Redirect(None)
        );
        assert_eq!(r(""), Step::Redirect(None));
    }

    #[test]
    fn admin_answers_are_classified() {
        let e = eps();
        let step = |status, body: &str| admin_step(&answer(status, body), 0, "is not a member", &e);
        assert_eq!(step(200, "{}"), Ok(None));
        assert_eq!(step(400, r#"{"error":"3 is not a member"}"#), Ok(None));
        assert!(step(400, r#"{"error":"malformed"}"#).is_err());
        assert_eq!(
            step(421, r#"{"leader":2,"leader_addr":"127.0.0.1:7002"}"#),
            Ok(Some(1))
        );
        assert!(step(421, r#"{"leader":1,"leader_addr":null}"#).is_err());
        assert!(step(421, r#"{"leader":null}"#).is_err());
        assert!(step(503, r#"{"error":"already in progress"}"#).is_err());
    }

    #[test]
    fn status_maps_leader_id_to_index() {
        let e = eps();
        let body = br#"{"id":1,"role":"follower","term":3,"leader":3,"commit_index":5,
                        "last_applied":5,"members":[]}"#;
        assert_eq!(
            read_status(body, &e).unwrap(),
            NodeStatus {
                role: Role::Follower,
                term: 3,
                leader: Some(2)
            }
        );
        let body = br#"{"id":1,"role":"precandidate","term":4,"leader":null}"#;
        assert_eq!(
            read_status(body, &e).unwrap(),
            NodeStatus {
                role: Role::Other,
                term: 4,
                leader: None
            }
        );
        assert!(read_status(b"{}", &e).is_err());
    }
}
