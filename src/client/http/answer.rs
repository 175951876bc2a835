//! Reading answers: an answer to an op becomes ok, fail, info or a redirect (by redirect
//! status, then by the op's matchers, then by its status lists); an answer to the status
//! request becomes a role, term and leader. Pure, so unit-tested without a server.

use super::plan::*;
use crate::client::outcome::{classify, completion, extract_value, Class};
use crate::client::transport::*;
use crate::client::{Completion, Endpoint, NodeStatus, Request, Role};
use crate::history::{Fun, Value, MISMATCH};

pub(super) fn parse_json(body: &[u8]) -> Option<Value> {
    serde_json::from_slice(body).ok()
}

impl Plan {
    /// Turn an answer from `node` to `req` into a step. Order: a redirect status first (a
    /// redirect is "not the leader; nothing done", whatever the body says), then the matchers
    /// on the body (the first match decides), then the status lists; a status no list names
    /// is `info`.
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
        let matched = classify(&op.matchers, |_| &answer.body[..]);
        let class = match matched {
            Some(m) => m.class,
            None if op.ok.contains(&status) => Class::Ok,
            None if op.not_found.contains(&status) => Class::NotFound,
            None if op.mismatch.contains(&status) => Class::Mismatch,
            None if op.fail.contains(&status) => Class::Fail,
            None => Class::Info,
        };
        // The history says which matcher decided, so a surprising outcome can be traced to
        // the spec line that made it.
        let by = matched.map(|m| format!(" (matched {})", m.describe()));
        Step::Done(complete(op, req, answer, node, class, by.as_deref()))
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

/// The completion for an answer of class `class`. An `ok` from a matcher means what an `ok`
/// status means: a read still takes its value as the spec says (and is `info` when the answer
/// holds none: it proves nothing), a cas still reads `applied`.
fn complete(
    op: &OpPlan,
    req: &Request,
    answer: &Answer,
    node: usize,
    class: Class,
    by: Option<&str>,
) -> Completion {
    let status = answer.status;
    let said = || {
        format!(
            "http {status}{}: {}",
            by.unwrap_or(""),
            snippet(&answer.body)
        )
    };
    if class == Class::Ok && req.f == Fun::Cas {
        if let Some(pointer) = op.applied.as_deref() {
            let flag =
                parse_json(&answer.body).and_then(|b| b.pointer(pointer).and_then(Value::as_bool));
            return match flag {
                Some(true) => Completion::Ok {
                    value: req.value.clone(),
                    node,
                },
                Some(false) => Completion::Fail {
                    error: MISMATCH.into(),
                    node,
                },
                None => Completion::Info {
                    error: format!("answer has no boolean at {pointer:?}"),
                    node,
                },
            };
        }
    }
    let read_value = || {
        extract_value(&answer.body, &op.value, op.value_form)
            .map_err(|e| format!("{e} (http {status}: {})", snippet(&answer.body)))
    };
    completion(class, req, node, read_value, said)
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
