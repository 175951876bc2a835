//! The checked plan the adapter runs from: the section validated once (methods, status lists
//! that do not overlap, JSON pointers, templates, body formats, matchers), before any node
//! starts.

use super::schema::*;
use crate::client::outcome::{matchers, Class, Matcher, ValueForm};
use crate::client::template::*;
use crate::client::ClientError;
use crate::history::{Fun, Value};
use reqwest::Method;
use std::collections::BTreeSet;

/// One op, checked and ready to run.
#[derive(Clone, Debug)]
pub(super) struct OpPlan {
    pub(super) method: reqwest::Method,
    pub(super) path: Template,
    pub(super) body: Option<Template>,
    /// How `body` is filled, and the Content-Type it is sent with.
    pub(super) body_format: BodyFormat,
    pub(super) value: String,
    /// Reads: how the answer holds the value.
    pub(super) value_form: ValueForm,
    /// Tried on the answer's body before the status lists; the first match decides.
    pub(super) matchers: Vec<Matcher>,
    pub(super) ok: BTreeSet<u16>,
    pub(super) fail: BTreeSet<u16>,
    pub(super) not_found: BTreeSet<u16>,
    pub(super) mismatch: BTreeSet<u16>,
    pub(super) applied: Option<String>,
    /// Cas: `{from}` is written as text somewhere (path, text or form body), where a null
    /// expected value would arrive as the text `null` rather than as "absent".
    pub(super) from_as_text: bool,
}

/// What to send for one op: the path (query string included) and the body with its
/// Content-Type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Filled {
    pub(super) path: String,
    pub(super) body: Option<(String, &'static str)>,
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
    /// The cas sent when the expected value is null, if the spec has one.
    pub(super) cas_absent: Option<OpPlan>,
    pub(super) append: Option<OpPlan>,
    pub(super) redirect: Option<RedirectPlan>,
    pub(super) status: Option<StatusPlan>,
}

/// The op kinds a spec describes: the four functions, and the second form of cas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum OpKind {
    Fun(Fun),
    CasAbsent,
}

impl OpKind {
    /// The table's name under `[http]`.
    fn name(self) -> &'static str {
        match self {
            OpKind::Fun(f) => f.name(),
            OpKind::CasAbsent => "cas_absent",
        }
    }

    /// The function whose answers this table reads.
    fn fun(self) -> Fun {
        match self {
            OpKind::Fun(f) => f,
            OpKind::CasAbsent => Fun::Cas,
        }
    }

    fn placeholders(self) -> &'static [&'static str] {
        match self {
            OpKind::Fun(Fun::Read) => &["key"],
            OpKind::Fun(Fun::Write | Fun::Append) => &["key", "value"],
            OpKind::Fun(Fun::Cas) => &["key", "from", "to"],
            OpKind::CasAbsent => &["key", "to"],
        }
    }

    /// The classes a matcher may give this op's answers: only a read can find a key absent,
    /// only a cas can fail its compare.
    fn classes(self) -> &'static [Class] {
        match self.fun() {
            Fun::Read => &[Class::Ok, Class::Fail, Class::Info, Class::NotFound],
            Fun::Write | Fun::Append => &[Class::Ok, Class::Fail, Class::Info],
            Fun::Cas => &[Class::Ok, Class::Fail, Class::Info, Class::Mismatch],
        }
    }
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
        let op = |spec: &OpSpec, f: Fun| OpPlan::new(spec, OpKind::Fun(f), &redirect_statuses);
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
            cas_absent: match (&spec.cas_absent, &spec.cas) {
                (None, _) => None,
                (Some(_), None) => {
                    return Err(bad(
                        "cas_absent",
                        "is the second form of [http.cas], which the section lacks",
                    ))
                }
                (Some(s), Some(_)) => Some(OpPlan::new(s, OpKind::CasAbsent, &redirect_statuses)?),
            },
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

    /// The request form for `f` with `from` as a cas's expected value: `[http.cas_absent]` when
    /// the expected value is null and the spec has one. `Err` says why the op must not be sent:
    /// a null written as text (`?prevValue=null`) would ask the server to compare with the
    /// string "null", and its "compare failed" would then be recorded as an observation the
    /// server never made.
    pub(super) fn choose(&self, f: Fun, from: &Value) -> Result<&OpPlan, String> {
        let op = self.op(f).ok_or_else(|| {
            format!(
                "the cluster spec has no [http.{}] section for this op",
                f.name()
            )
        })?;
        if f != Fun::Cas || !from.is_null() {
            return Ok(op);
        }
        match &self.cas_absent {
            Some(absent) => Ok(absent),
            None if op.from_as_text => Err(
                "not sent: the expected value is null (the key must be absent) and the cluster \
                 spec has no [http.cas_absent]; [http.cas] writes {from} as text, where null \
                 cannot mean \"absent\""
                    .into(),
            ),
            None => Ok(op),
        }
    }
}

pub(super) fn opt_pointer(p: &Option<String>, field: &str) -> Result<Option<String>, ClientError> {
    p.as_deref().map(|p| check_pointer(p, field)).transpose()
}

impl OpPlan {
    pub(super) fn new(
        spec: &OpSpec,
        kind: OpKind,
        redirect: &BTreeSet<u16>,
    ) -> Result<OpPlan, ClientError> {
        let name = kind.name();
        let f = kind.fun();
        let field = |s: &str| format!("{name}.{s}");
        let allowed = kind.placeholders();
        let method = check_method(&spec.method, &field("method"))?;
        check_path(&spec.path, &field("path"))?;
        let path = Template::parse(&spec.path, allowed).map_err(|e| bad(&field("path"), e))?;
        let body_format = spec.body_format.unwrap_or_default();
        let body = match &spec.body {
            None => {
                if let Some(fmt) = spec.body_format {
                    return Err(bad(
                        &field("body_format"),
                        format!("is {:?} but there is no `body`", fmt.name()),
                    ));
                }
                None
            }
            Some(b) => {
                let t = Template::parse(b, allowed).map_err(|e| bad(&field("body"), e))?;
                check_body(&t, body_format).map_err(|e| bad(&field("body"), e))?;
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
        only(spec.value_form.is_some(), "value_form", Fun::Read)?;
        only(!spec.not_found.is_empty(), "not_found", Fun::Read)?;
        only(!spec.mismatch.is_empty(), "mismatch", Fun::Cas)?;
        only(spec.applied.is_some(), "applied", Fun::Cas)?;
        let value_form = spec.value_form.unwrap_or_default();
        let value = check_pointer(spec.value.as_deref().unwrap_or(""), &field("value"))?;
        if value_form == ValueForm::Text && !value.is_empty() {
            return Err(bad(
                &field("value"),
                format!(
                    "is {value:?}, but value_form = \"text\" reads the whole body as the value; \
                     leave `value` out"
                ),
            ));
        }
        // `matchers` names the failing one as "match[i]: why"; fold that into the field name.
        let matchers = matchers(&spec.matchers, kind.classes(), false).map_err(|e| {
            match e.split_once(": ") {
                Some((at, why)) => bad(&format!("{name}.{at}"), why),
                None => bad(&field("match"), e),
            }
        })?;
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
        let from_as_text = path.uses("from")
            || (body_format != BodyFormat::Json && body.as_ref().is_some_and(|b| b.uses("from")));
        Ok(OpPlan {
            method,
            path,
            body,
            body_format,
            value,
            value_form,
            matchers,
            ok,
            fail,
            not_found,
            mismatch,
            applied: opt_pointer(&spec.applied, &field("applied"))?,
            from_as_text,
        })
    }

    /// The request for one op: values percent-encoded in the path (the template's own `?`,
    /// `&` and `=` stay as written, so query strings work), and in the body as `body_format`
    /// says.
    pub(super) fn fill(&self, vars: &Vars) -> Filled {
        Filled {
            path: self.path.fill(vars, Encoding::Url),
            body: self.body.as_ref().map(|b| {
                let enc = match self.body_format {
                    BodyFormat::Json => Encoding::Json,
                    BodyFormat::Text => Encoding::Text,
                    BodyFormat::Form => Encoding::Url,
                };
                (b.fill(vars, enc), self.body_format.content_type())
            }),
        }
    }
}

/// Check a body template against its format with sample values (a number, null, a string
/// with spaces and form delimiters, a list), so that a body that only works for some values is
/// refused when the spec loads, not in the middle of a run.
fn check_body(t: &Template, format: BodyFormat) -> Result<(), String> {
    let samples = [
        Value::from(1),
        Value::Null,
        Value::from("a b&c=d"),
        serde_json::json!([1, 2]),
    ];
    for s in &samples {
        let vars = Vars {
            key: "k",
            value: s,
            from: s,
            to: s,
        };
        match format {
            BodyFormat::Json => {
                let text = t.fill(&vars, Encoding::Json);
                if let Err(e) = serde_json::from_str::<Value>(&text) {
                    return Err(format!(
                        "is not JSON once filled in ({e}); placeholders are replaced by JSON \
                         values, so write {{\"value\": {{value}}}}, not \
                         {{\"value\": \"{{value}}\"}} (or set body_format = \"text\" or \"form\")"
                    ));
                }
            }
            BodyFormat::Text => {}
            BodyFormat::Form => {
                let text = t.fill(&vars, Encoding::Url);
                let well_formed = !text.is_empty()
                    && text.split('&').all(|pair| {
                        pair.split_once('=')
                            .is_some_and(|(name, value)| !name.is_empty() && !value.contains('='))
                    })
                    && !text.chars().any(char::is_whitespace);
                if !well_formed {
                    return Err(format!(
                        "is not a form body once filled in ({text:?}); body_format = \"form\" \
                         needs name={{value}}&other={{to}}, with no spaces or line breaks \
                         (values are percent-encoded)"
                    ));
                }
            }
        }
    }
    Ok(())
}

pub(super) fn check_pointer(p: &str, field: &str) -> Result<String, ClientError> {
    crate::client::outcome::check_pointer(p).map_err(|e| bad(field, e))
}

pub(super) fn check_method(m: &str, field: &str) -> Result<Method, ClientError> {
    let up = m.trim().to_ascii_uppercase();
    if up.is_empty() || !up.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(bad(field, format!("{m:?} is not an HTTP method")));
    }
    Method::from_bytes(up.as_bytes())
        .map_err(|_| bad(field, format!("{m:?} is not an HTTP method")))
}

pub(super) fn check_statuses(list: &[u16], field: &str) -> Result<BTreeSet<u16>, ClientError> {
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

pub(super) fn check_path(p: &str, field: &str) -> Result<(), ClientError> {
    if p.starts_with('/') {
        Ok(())
    } else {
        Err(bad(field, format!("{p:?} must start with `/`")))
    }
}
