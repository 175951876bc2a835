//! The checked plan the adapter runs from: the section validated once (methods, status lists
//! that do not overlap, JSON pointers, templates), before any node starts.

use super::schema::*;
use crate::client::template::*;
use reqwest::Method;
use crate::client::ClientError;
use crate::history::{Fun, Value};
use std::collections::BTreeSet;

/// One op, checked and ready to run.
#[derive(Clone, Debug)]
pub(super) struct OpPlan {
    pub(super) method: reqwest::Method,
    pub(super) path: Template,
    pub(super) body: Option<Template>,
    pub(super) value: String,
    pub(super) ok: BTreeSet<u16>,
    pub(super) fail: BTreeSet<u16>,
    pub(super) not_found: BTreeSet<u16>,
    pub(super) mismatch: BTreeSet<u16>,
    pub(super) applied: Option<String>,
}

#[derive(Clone, Debug)]
pub(super) struct RedirectPlan {
    pub(super) status: BTreeSet<u16>,
    pub(super) leader_id: Option<String>,
    pub(super) leader_addr: Option<String>,
    pub(super) location: bool,
}

#[derive(Clone, Debug)]
pub(super) struct StatusPlan {
    pub(super) method: reqwest::Method,
    pub(super) path: String,
    pub(super) role: String,
    pub(super) term: String,
    pub(super) leader_id: Option<String>,
    pub(super) leader_addr: Option<String>,
    pub(super) leader_roles: Vec<String>,
    pub(super) follower_roles: Vec<String>,
    pub(super) candidate_roles: Vec<String>,
}

#[derive(Clone, Debug)]
pub(super) struct Plan {
    pub(super) default_key: String,
    pub(super) headers: reqwest::header::HeaderMap,
    pub(super) read: OpPlan,
    pub(super) write: OpPlan,
    pub(super) cas: Option<OpPlan>,
    pub(super) append: Option<OpPlan>,
    pub(super) redirect: Option<RedirectPlan>,
    pub(super) status: Option<StatusPlan>,
}

impl Plan {
    pub(super) fn new(spec: &HttpSpec) -> Result<Plan, ClientError> {
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

    pub(super) fn op(&self, f: Fun) -> Option<&OpPlan> {
        match f {
            Fun::Read => Some(&self.read),
            Fun::Write => Some(&self.write),
            Fun::Cas => self.cas.as_ref(),
            Fun::Append => self.append.as_ref(),
        }
    }
}

pub(super) fn opt_pointer(p: &Option<String>, field: &str) -> Result<Option<String>, ClientError> {
    p.as_deref().map(|p| check_pointer(p, field)).transpose()
}

impl OpPlan {
    pub(super) fn new(
        spec: &OpSpec,
        f: Fun,
        redirect: &BTreeSet<u16>,
    ) -> Result<OpPlan, ClientError> {
        let name = f.name();
        let field = |s: &str| format!("{name}.{s}");
        let allowed: &[&str] = match f {
            Fun::Read => &["key"],
            Fun::Write | Fun::Append => &["key", "value"],
            Fun::Cas => &["key", "from", "to"],
        };
        let method = check_method(&spec.method, &field("method"))?;
        check_path(&spec.path, &field("path"))?;
        let path = Template::parse(&spec.path, allowed).map_err(|e| bad(&field("path"), e))?;
        let body = match &spec.body {
            None => None,
            Some(b) => {
                let t = Template::parse(b, allowed).map_err(|e| bad(&field("body"), e))?;
                // The body must be JSON whatever the values: try it with samples.
                let samples = [Value::from(1), Value::Null, Value::from("s")];
                for s in &samples {
                    let vars = Vars {
                        key: "k",
                        value: s,
                        from: s,
                        to: s,
                    };
                    let text = t.fill(&vars, Encoding::Json);
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

pub(super) fn check_pointer(p: &str, field: &str) -> Result<String, ClientError> {
    crate::client::outcome::check_pointer(p).map_err(|e| bad(field, e))
}

pub(super) fn check_method(m: &str, field: &str) -> Result<Method, ClientError> {
    let up = m.trim().to_ascii_uppercase();
    if up.is_empty() || !up.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(bad(field, format!("{m:?} is not an HTTP method")));
    }
    Method::from_bytes(up.as_bytes()).map_err(|_| bad(field, format!("{m:?} is not an HTTP method")))
}

pub(super) fn check_statuses(list: &[u16], field: &str) -> Result<BTreeSet<u16>, ClientError> {
    let mut set = BTreeSet::new();
    for &s in list {
        if !(100..=599).contains(&s) {
            return Err(bad(field, format!("{s} is not an HTTP status (100 to 599)")));
        }
        set.insert(s);
    }
    Ok(set)
}

pub(super) fn check_path(p: &str, field: &str) -> Result<(), ClientError> {
    if p.starts_with('/') {
        Ok(())
    } else {
        Err(bad(field, format!("{p:?} must start with `/`")))
    }
}
