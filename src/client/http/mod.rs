//! The declarative `http` adapter: [`schema`] (the spec section as written), [`template`]
//! (request templates), [`plan`] (the section checked once), [`answer`] (reading answers), and
//! the adapter itself, here.
//!
//! The declarative adapter exists so that a user can test a server that speaks plain HTTP
//! without writing Rust: the cluster spec's `[http]` section says, per operation, which request
//! to send and how to read the answer. docs/http-adapter.md documents the section with a
//! complete example; `clusters/raftkv-http.toml` reaches raftkv through it.
//!
//! Schema (every table rejects unknown fields):
//! ```toml
//! [http]
//! default_key = "r"                 # key used when the workload has none (single register)
//! headers = { "X-Token" = "t" }     # optional, sent with every request
//! [http.read]                       # required; also [http.write] (required),
//! method = "GET"                    # [http.cas] and [http.append] (optional)
//! path = "/kv/{key}"                # placeholders {key} {value} {from} {to}, per op
//! body = '{"value": {value}}'       # optional JSON template, values inserted as JSON
//! value = "/value"                  # read only: JSON pointer ("" = the whole body)
//! ok = [200]                        # default [200]
//! fail = [400]                      # default [400]; certainly did nothing
//! not_found = [404]                 # read only: the key is absent, the read returns null
//! mismatch = [409]                  # cas only: the compare failed
//! applied = "/succeeded"            # cas only: on an ok status, true = applied, false = mismatch
//! [http.redirect]                   # optional: "not the leader, ask that one"
//! status = [421]
//! leader_id = "/leader"             # JSON pointer to the leader's id, and/or
//! leader_addr = "/leader_addr"      # JSON pointer to its host:port (or URL), and/or
//! location = false                  # the Location header names it
//! [http.status]                     # optional: role, term and leader for the monitor
//! method = "GET"
//! path = "/status"
//! role = "/role"
//! term = "/term"
//! leader_id = "/leader"             # and/or leader_addr
//! leader_roles = ["leader"]
//! follower_roles = ["follower"]
//! candidate_roles = ["candidate"]
//! ```
//! Any status no list names is `info` (the op may or may not have happened).

mod answer;
mod plan;
pub mod schema;

pub(crate) use schema::parse_spec;
pub use schema::HttpSpec;

use super::transport::*;
use super::{Adapter, ClientError, Completion, Endpoint, NodeStatus, Request};
use crate::history::{Fun, Value};
use async_trait::async_trait;
use plan::*;
#[allow(unused_imports)]
use schema::*;
use std::time::Duration;
use crate::client::template::*;

/// The declarative adapter: requests and answers as the `[http]` section describes them.
pub struct HttpAdapter {
    client: reqwest::Client,
    endpoints: Vec<Endpoint>,
    plan: Plan,
}

impl HttpAdapter {
    /// Build from a cluster spec's `[http]` section; errors name the bad field.
    pub fn new(section: &toml::Value, endpoints: Vec<Endpoint>) -> Result<Self, ClientError> {
        let spec = parse_spec(section)?;
        Ok(HttpAdapter {
            client: new_client()?,
            endpoints,
            plan: Plan::new(&spec)?,
        })
    }

    async fn once(&self, op: &OpPlan, node: usize, req: &Request) -> Step {
        let Some(ep) = self.endpoints.get(node) else {
            return Step::Done(Completion::Fail {
                error: format!("no node {node}"),
                node,
            });
        };
        let null = Value::Null;
        let (from, to) = cas_pair(&req.value).unwrap_or((&null, &null));
        let vars = Vars {
            key: key_of(req, &self.plan.default_key),
            value: &req.value,
            from,
            to,
        };
        let url = format!("{}{}", base_url(&ep.addr), op.path.fill(&vars, Encoding::Url));
        let mut rb = self
            .client
            .request(op.method.clone(), url)
            .headers(self.plan.headers.clone());
        if let Some(b) = &op.body {
            if !self
                .plan
                .headers
                .contains_key(reqwest::header::CONTENT_TYPE)
            {
                rb = rb.header(reqwest::header::CONTENT_TYPE, "application/json");
            }
            rb = rb.body(b.fill(&vars, Encoding::Json));
        }
        match exchange(rb).await {
            Ok(a) => self.plan.interpret(op, req, &a, node, &self.endpoints),
            Err(e) => Step::Done(send_failed(e, node)),
        }
    }

    async fn run(&self, node: usize, req: &Request, track: &Tracker) -> Completion {
        let Some(op) = self.plan.op(req.f) else {
            return Completion::Fail {
                error: format!(
                    "the cluster spec has no [http.{}] section for this op",
                    req.f.name()
                ),
                node,
            };
        };
        if req.f == Fun::Cas && cas_pair(&req.value).is_none() {
            return Completion::Fail {
                error: format!("cas value must be [expected, new], got {}", req.value),
                node,
            };
        }
        follow_one_redirect(node, track, |n| self.once(op, n, req)).await
    }
}

#[async_trait]
impl Adapter for HttpAdapter {
    async fn invoke(&self, node: usize, req: &Request, timeout: Duration) -> Completion {
        let track = Tracker::new(node);
        bounded(timeout, &track, self.run(node, req, &track)).await
    }

    fn reports_roles(&self) -> bool {
        self.plan.status.is_some()
    }

    async fn status(&self, node: usize, timeout: Duration) -> Result<NodeStatus, StatusError> {
        let s = self.plan.status.as_ref().ok_or_else(|| {
            StatusError::Unsupported("the cluster spec has no [http.status] section".into())
        })?;
        let ep = self
            .endpoints
            .get(node)
            .ok_or_else(|| StatusError::Unsupported(format!("no node {node}")))?;
        let rb = self
            .client
            .request(
                s.method.clone(),
                format!("{}{}", base_url(&ep.addr), s.path),
            )
            .headers(self.plan.headers.clone());
        let answer = status_within(timeout, fetch_ok(rb, &s.path)).await?;
        Plan::read_status(s, &answer.body, &self.endpoints).map_err(StatusError::Unreadable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Role;
    use crate::history::MISMATCH;

    fn eps() -> Vec<Endpoint> {
        crate::client::test_endpoints(7001, 1)
    }

    fn section(text: &str) -> toml::Value {
        let v: toml::Value = toml::from_str(text).expect("test TOML");
        v.get("http").cloned().expect("an [http] table")
    }

    const MINIMAL: &str = r#"
[http.read]
method = "GET"
path = "/kv/{key}"
value = "/value"
not_found = [404]
[http.write]
method = "PUT"
path = "/kv/{key}"
body = '{"value": {value}}'
[http.cas]
method = "POST"
path = "/kv/{key}/cas"
body = '{"from": {from}, "to": {to}}'
mismatch = [409]
[http.redirect]
status = [421]
leader_id = "/leader"
leader_addr = "/leader_addr"
[http.status]
path = "/status"
role = "/role"
term = "/term"
leader_id = "/leader"
"#;

    fn plan(text: &str) -> Plan {
        Plan::new(&parse_spec(&section(text)).expect("valid spec")).expect("valid plan")
    }

    fn err(text: &str) -> String {
        parse_spec(&section(text)).expect_err("must be refused").0
    }

    fn answer(status: u16, body: &str) -> Answer {
        Answer::of(status, body)
    }

    fn req(f: Fun, value: Value) -> Request {
        Request {
            f,
            key: Some("k 1".into()),
            value,
        }
    }

    #[test]
    fn minimal_spec_parses_with_defaults() {
        let p = plan(MINIMAL);
        assert_eq!(p.default_key, "r");
        assert!(p.read.ok.contains(&200) && p.read.fail.contains(&400));
        assert!(p.append.is_none());
        assert_eq!(p.write.method, reqwest::Method::PUT);
    }

    #[test]
    fn spec_errors_name_the_field() {
        let e = err(&MINIMAL.replace("method = \"GET\"", "methd = \"GET\""));
        assert!(e.contains("http.read") && e.contains("methd"), "{e}");
        let e = err(&MINIMAL.replace("not_found = [404]", "not_found = [\"x\"]"));
        assert!(e.contains("http.read.not_found"), "{e}");
        let e = err(&MINIMAL.replace("mismatch = [409]", "mismatch = [400]"));
        assert!(e.contains("http.cas") && e.contains("400"), "{e}");
        let e = err(&MINIMAL.replace("mismatch = [409]", "mismatch = [421]"));
        assert!(e.contains("redirect.status"), "{e}");
        let e = err(&MINIMAL.replace(r#"'{"value": {value}}'"#, r#"'{"value": "{value}"}'"#));
        assert!(
            e.contains("http.write.body") && e.contains("not JSON"),
            "{e}"
        );
        let e = err(&MINIMAL.replace("value = \"/value\"", "value = \"value\""));
        assert!(
            e.contains("http.read.value") && e.contains("JSON pointer"),
            "{e}"
        );
        let e = err(&MINIMAL.replace("[http.redirect]", "[http.redirect]\nbogus = 1"));
        assert!(e.contains("http.redirect") && e.contains("bogus"), "{e}");
        let e = err(&MINIMAL.replace("not_found = [404]", "not_found = [404]\nmismatch = [409]"));
        assert!(e.contains("http.read.mismatch"), "{e}");
        let e = err(&MINIMAL.replace("method = \"PUT\"", "method = \"P T\""));
        assert!(e.contains("http.write.method"), "{e}");
        let e = err(&MINIMAL.replace("not_found = [404]", "not_found = [1000]"));
        assert!(
            e.contains("http.read.not_found") && e.contains("1000"),
            "{e}"
        );
        let e = err("[http.read]\nmethod = \"GET\"\npath = \"/x\"\n");
        assert!(e.contains("write"), "{e}");
    }

    #[test]
    fn answers_are_classified() {
        let p = plan(MINIMAL);
        let e = eps();
        let read = req(Fun::Read, Value::Null);
        let r = |a: Answer| p.interpret(&p.read, &read, &a, 0, &e);
        assert_eq!(
            r(answer(200, r#"{"value": 7}"#)),
            Step::Done(Completion::Ok {
                value: Value::from(7),
                node: 0
            })
        );
        assert_eq!(
            r(answer(200, r#"{"value": null}"#)),
            Step::Done(Completion::Ok {
                value: Value::Null,
                node: 0
            })
        );
        assert_eq!(
            r(answer(404, "")),
            Step::Done(Completion::Ok {
                value: Value::Null,
                node: 0
            })
        );
        assert!(matches!(
            r(answer(200, "{}")),
            Step::Done(Completion::Info { .. })
        ));
        assert!(matches!(
            r(answer(200, "nope")),
            Step::Done(Completion::Info { .. })
        ));
        assert!(matches!(
            r(answer(503, "x")),
            Step::Done(Completion::Info { .. })
        ));
        assert!(matches!(
            r(answer(400, "x")),
            Step::Done(Completion::Fail { .. })
        ));
        assert_eq!(
            r(answer(421, r#"{"leader": 3, "leader_addr": null}"#)),
            Step::Redirect(Some(2))
        );
        assert_eq!(
            r(answer(
                421,
                r#"{"leader": null, "leader_addr": "127.0.0.1:7002"}"#
            )),
            Step::Redirect(Some(1))
        );
        assert_eq!(r(answer(421, r#"{"leader": null}"#)), Step::Redirect(None));
        assert_eq!(r(answer(421, "garbage")), Step::Redirect(None));

        let cas = req(Fun::Cas, serde_json::json!([1, 2]));
        let c = |a: Answer| p.interpret(p.cas.as_ref().unwrap(), &cas, &a, 1, &e);
        assert_eq!(
            c(answer(409, "")),
            Step::Done(Completion::Fail {
                error: MISMATCH.into(),
                node: 1
            })
        );
        assert_eq!(
            c(answer(200, "{}")),
            Step::Done(Completion::Ok {
                value: serde_json::json!([1, 2]),
                node: 1
            })
        );
    }

    #[test]
    fn cas_applied_pointer() {
        let p = plan(&MINIMAL.replace("mismatch = [409]", "applied = \"\""));
        let cas = req(Fun::Cas, serde_json::json!([null, 2]));
        let c = |b: &str| p.interpret(p.cas.as_ref().unwrap(), &cas, &answer(200, b), 0, &[]);
        assert!(matches!(c("true"), Step::Done(Completion::Ok { .. })));
        assert_eq!(
            c("false"),
            Step::Done(Completion::Fail {
                error: MISMATCH.into(),
                node: 0
            })
        );
        assert!(matches!(c("maybe"), Step::Done(Completion::Info { .. })));
    }

    #[test]
    fn status_is_read() {
        let p = plan(MINIMAL);
        let s = p.status.as_ref().unwrap();
        let st = Plan::read_status(s, br#"{"role":"leader","term":4,"leader":1}"#, &eps()).unwrap();
        assert_eq!(
            st,
            NodeStatus {
                role: Role::Leader,
                term: 4,
                leader: Some(0)
            }
        );
        let st = Plan::read_status(
            s,
            br#"{"role":"precandidate","term":"5","leader":null}"#,
            &eps(),
        )
        .unwrap();
        assert_eq!(
            st,
            NodeStatus {
                role: Role::Other,
                term: 5,
                leader: None
            }
        );
        assert!(Plan::read_status(s, br#"{"role":"leader"}"#, &eps()).is_err());
    }

    #[test]
    fn leaders_are_found_by_id_name_and_address() {
        let e = eps();
        assert_eq!(endpoint_by_id(&e, &Value::from(2)), Some(1));
        assert_eq!(endpoint_by_id(&e, &Value::from("3")), Some(2));
        assert_eq!(endpoint_by_id(&e, &Value::from("n1")), Some(0));
        assert_eq!(endpoint_by_id(&e, &Value::from(9)), None);
        assert_eq!(endpoint_by_addr(&e, "http://127.0.0.1:7003/kv/x"), Some(2));
        assert_eq!(endpoint_by_addr(&e, "localhost:7001"), Some(0));
        assert_eq!(endpoint_by_addr(&e, "10.0.0.1:7001"), None);
    }

    #[test]
    fn shipped_raftkv_http_spec_is_valid() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/clusters/raftkv-http.toml");
        let text = std::fs::read_to_string(path).expect("clusters/raftkv-http.toml");
        let p = plan(&text);
        assert!(p.cas.is_some() && p.append.is_some() && p.status.is_some());
    }

    #[test]
    fn snippets_prefer_the_message() {
        assert_eq!(
            snippet(br#"{"error":"x","message":"timed out"}"#),
            "timed out"
        );
        assert_eq!(snippet(b"plain"), "plain");
        assert!(snippet(&[b'a'; 500]).chars().count() <= MAX_ERROR_TEXT + 1);
    }
}
