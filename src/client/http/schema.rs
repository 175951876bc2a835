//! The `[http]` section of a cluster spec, as written: every table rejects unknown fields, and
//! [`parse_spec`] names the field of any error (`http.read.ok`).

use super::plan::Plan;
use crate::client::outcome::{MatchSpec, ValueForm};
use crate::client::transport::*;
use crate::client::ClientError;
use serde::Deserialize;
use std::collections::BTreeMap;

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
    /// The compare-and-set to send when the expected value is null ("the key must be absent"),
    /// for servers that say "absent" with another request (etcd v2: `?prevExist=false`) rather
    /// than with a null in a JSON body. Placeholders `{key}` and `{to}` only.
    #[serde(default)]
    pub cas_absent: Option<OpSpec>,
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
    /// Body template with placeholders, filled as `body_format` says.
    #[serde(default)]
    pub body: Option<String>,
    /// How the body is written: servers take JSON, plain text or HTML form bodies, and a value
    /// must be encoded the way the server decodes it (`"42"` in JSON is a string, not 42).
    /// Default JSON.
    #[serde(default)]
    pub body_format: Option<BodyFormat>,
    /// Reads: JSON pointer to the value in the answer; `""` is the whole body.
    #[serde(default)]
    pub value: Option<String>,
    /// Reads: how the answer holds the value (JSON, a string inside JSON, or the whole body as
    /// text); default JSON.
    #[serde(default)]
    pub value_form: Option<ValueForm>,
    /// Matchers on the answer's body, tried before any status list, first match wins: servers
    /// that answer `200 Error: ...` cannot be described by status codes alone.
    #[serde(default, rename = "match")]
    pub matchers: Vec<MatchSpec>,
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

/// How a request body is written, and the Content-Type sent with it (unless `headers` names
/// one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyFormat {
    /// Placeholders become JSON values; `application/json`.
    #[default]
    Json,
    /// Placeholders become their text (`42`, `k1`); `text/plain; charset=utf-8`.
    Text,
    /// `name=value&...` with each value percent-encoded; `application/x-www-form-urlencoded`.
    Form,
}

impl BodyFormat {
    /// The Content-Type a body of this format is sent with.
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            BodyFormat::Json => "application/json",
            BodyFormat::Text => "text/plain; charset=utf-8",
            BodyFormat::Form => "application/x-www-form-urlencoded",
        }
    }

    /// The name a spec writes.
    pub(crate) fn name(self) -> &'static str {
        match self {
            BodyFormat::Json => "json",
            BodyFormat::Text => "text",
            BodyFormat::Form => "form",
        }
    }
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
pub(crate) fn parse_spec(v: &toml::Value) -> Result<HttpSpec, ClientError> {
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

pub(super) fn bad(field: &str, msg: impl std::fmt::Display) -> ClientError {
    ClientError(format!("[http] field `http.{field}`: {msg}"))
}
