//! Reading answers: an answer to an op becomes ok, fail, info or a redirect; an answer to the
//! status request becomes a role, term and leader. Pure, so unit-tested without a server.

use super::plan::*;
use crate::client::transport::*;
use crate::client::{Completion, Endpoint, NodeStatus, Request, Role};
use crate::history::{Fun, Value, MISMATCH};

pub(super) fn parse_json(body: &[u8]) -> Option<Value> {
    serde_json::from_slice(body).ok()
}

impl Plan {
    /// Turn an answer from `node` to `req` into a step.
    pub(super) fn interpret(
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

    /// Turn a status body into a `NodeStatus` through the spec's JSON pointers; a role value in
    /// none of the lists is `Other`, and the leader is looked up by id first, then by address.
    pub(super) fn read_status(
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
pub(super) fn redirect_target(
    r: &RedirectPlan,
    answer: &Answer,
    endpoints: &[Endpoint],
) -> Option<usize> {
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
