//! The declarative `http` adapter: [`schema`] (the spec section as written), [`plan`] (the
//! section checked once), [`answer`] (reading answers), and the adapter itself, here. Request
//! templates and answer matchers are shared by the declarative adapters
//! (`crate::client::template`, `crate::client::outcome`).
//!
//! The declarative adapter exists so that a user can test a server that speaks plain HTTP
//! without writing Rust: the cluster spec's `[http]` section says, per operation, which request
//! to send and how to read the answer, for servers as they are: JSON, text or form bodies,
//! query strings, values as JSON, as strings inside JSON or as text, errors told by status or by
//! the answer's words. docs/http-adapter.md documents every field with three complete
//! examples; `clusters/raftkv-http.toml` reaches raftkv through it, and
//! `tests/fixtures/specs/raftkv-text.toml` reaches raftkv `--text-api`, which answers every
//! request with 200 and a text body.
//!
//! Schema (every table rejects unknown fields):
//! ```toml
//! [http]
//! default_key = "r"                 # key used when the workload has none (single register)
//! headers = { "X-Token" = "t" }     # optional, sent with every request
//! [http.read]                       # required; also [http.write] (required),
//! method = "GET"                    # [http.cas], [http.cas_absent] and [http.append]
//! path = "/kv/{key}?q=1"            # placeholders {key} {value} {from} {to}, per op;
//!                                   # values percent-encoded, the template's ? & = kept
//! body = '{"value": {value}}'       # optional template
//! body_format = "json"              # json (default) | text | form: how values are written
//!                                   # in the body, and the Content-Type sent
//! value = "/value"                  # read only: JSON pointer ("" = the whole body)
//! value_form = "json"               # read only: json | string (a string in JSON holds the
//!                                   # value's text) | text (the whole body is the text)
//! match = [                         # tried on the body before the status lists
//!   { regex = "^Error: compare failed", outcome = "mismatch" },
//!   { pointer = "/errorCode", equals = 100, outcome = "not-found" },
//! ]                                 # outcomes: ok fail info, not-found (read), mismatch (cas)
//! ok = [200]                        # default [200]
//! fail = [400]                      # default [400]; certainly did nothing
//! not_found = [404]                 # read only: the key is absent, the read returns null
//! mismatch = [409]                  # cas only: the compare failed
//! applied = "/succeeded"            # cas only: on an ok status, true = applied, false = mismatch
//! [http.cas_absent]                 # optional: the cas sent when the expected value is null
//! method = "PUT"                    # ("the key must be absent"); {key} and {to} only
//! path = "/v2/keys/{key}?prevExist=false"
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
//! An answer is classified by a redirect status first, then by the first matcher that matches,
//! then by the status lists; a status no list names is `info` (the op may or may not have
//! happened). A server that answers errors with 200 needs matchers: by status alone its refused
//! writes would be recorded as acknowledged (docs/http-adapter.md, "The unsafe default").
//!
//! A cas whose expected value is null goes through `[http.cas_absent]` when the spec has one;
//! without it, a `[http.cas]` that writes `{from}` as text (path, text or form body) is not sent
//! at all (a plain `fail`): null as the text "null" would be compared as a string, and the
//! server's "compare failed" recorded as an observation it never made.

mod answer;
mod plan;
pub mod schema;

pub(crate) use schema::parse_spec;
pub use schema::HttpSpec;

use super::transport::*;
use super::{Adapter, ClientError, Completion, Endpoint, NodeStatus, Request};
use crate::client::template::*;
use crate::history::{Fun, Value};
use async_trait::async_trait;
use plan::*;
use std::time::Duration;

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
        let filled = op.fill(&vars);
        let url = format!("{}{}", base_url(&ep.addr), filled.path);
        let mut rb = self
            .client
            .request(op.method.clone(), url)
            .headers(self.plan.headers.clone());
        if let Some((body, content_type)) = filled.body {
            // A Content-Type the spec gives in `headers` wins: the server knows best.
            if !self
                .plan
                .headers
                .contains_key(reqwest::header::CONTENT_TYPE)
            {
                rb = rb.header(reqwest::header::CONTENT_TYPE, content_type);
            }
            rb = rb.body(body);
        }
        match exchange(rb).await {
            Ok(a) => self.plan.interpret(op, req, &a, node, &self.endpoints),
            Err(e) => Step::Done(send_failed(e, node)),
        }
    }

    async fn run(&self, node: usize, req: &Request, track: &Tracker) -> Completion {
        let null = Value::Null;
        let from = match req.f {
            Fun::Cas => match cas_pair(&req.value) {
                Some((from, _)) => from,
                None => {
                    return Completion::Fail {
                        error: format!("cas value must be [expected, new], got {}", req.value),
                        node,
                    }
                }
            },
            _ => &null,
        };
        let op = match self.plan.choose(req.f, from) {
            Ok(op) => op,
            Err(error) => return Completion::Fail { error, node },
        };
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
    use crate::client::outcome::ValueForm;
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

    /// The `[http]` section of tests/fixtures/specs/raftkv-text.toml (raftkv --text-api).
    fn text_spec() -> String {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/specs/raftkv-text.toml"
        );
        std::fs::read_to_string(path).expect("tests/fixtures/specs/raftkv-text.toml")
    }

    /// The same spec with every `match = [...]` list removed: status codes alone decide.
    fn without_matchers(text: &str) -> String {
        let mut out = String::new();
        let mut skipping = false;
        for line in text.lines() {
            if line.starts_with("match = [") {
                skipping = true;
            }
            if !skipping {
                out.push_str(line);
                out.push('\n');
            }
            if skipping && line.starts_with(']') {
                skipping = false;
            }
        }
        out
    }

    fn done(s: Step) -> Completion {
        match s {
            Step::Done(c) => c,
            other => panic!("expected a completion, got {other:?}"),
        }
    }

    fn is_info(c: &Completion) -> bool {
        matches!(c, Completion::Info { .. })
    }

    fn is_plain_fail(c: &Completion) -> bool {
        matches!(c, Completion::Fail { error, .. } if error != MISMATCH)
    }

    #[test]
    fn a_text_server_answering_errors_with_200_is_classified_by_its_matchers() {
        let p = plan(&text_spec());
        let cas = req(Fun::Cas, serde_json::json!([1, 2]));
        let c = |body: &str| {
            done(p.interpret(p.cas.as_ref().unwrap(), &cas, &answer(200, body), 0, &[]))
        };
        assert_eq!(
            c("Error: compare failed\n"),
            Completion::Fail {
                error: MISMATCH.into(),
                node: 0
            }
        );
        assert_eq!(
            c("OK\n"),
            Completion::Ok {
                value: serde_json::json!([1, 2]),
                node: 0
            }
        );
        let nl = c("Error: not the leader (leader: n2 at 127.0.0.1:7002)\n");
        assert!(is_plain_fail(&nl), "{nl:?}");
        let Completion::Fail { error, .. } = &nl else {
            unreachable!()
        };
        assert!(
            error.contains("not the leader") && error.contains("matched regex"),
            "the error names the server's words and the matcher: {error}"
        );
        assert!(is_info(&c("Error: timed out (outcome unknown)\n")));
        assert!(is_info(&c(
            "Error: unavailable (leadership lost; outcome unknown)\n"
        )));
        assert!(is_plain_fail(&c(
            "Error: bad request: `to`: \"x\" is not an integer\n"
        )));

        let write = req(Fun::Write, Value::from(5));
        let w = |body: &str| done(p.interpret(&p.write, &write, &answer(200, body), 0, &[]));
        assert!(is_info(&w("Error: timed out (outcome unknown)\n")));
        assert!(is_plain_fail(&w(
            "Error: not the leader (leader unknown)\n"
        )));
        assert!(matches!(w("OK\n"), Completion::Ok { .. }));

        let read = req(Fun::Read, Value::Null);
        let r = |body: &str| done(p.interpret(&p.read, &read, &answer(200, body), 0, &[]));
        assert_eq!(
            r("42\n"),
            Completion::Ok {
                value: Value::from(42),
                node: 0
            }
        );
        assert_eq!(
            r(""),
            Completion::Ok {
                value: Value::Null,
                node: 0
            }
        );
        assert_eq!(
            r("[1,2]\n"),
            Completion::Ok {
                value: serde_json::json!([1, 2]),
                node: 0
            }
        );
        assert!(is_info(&r("Error: unavailable (node is shutting down)\n")));
        assert!(is_plain_fail(&r(
            "Error: not the leader (leader: n1 at 127.0.0.1:7001)\n"
        )));
    }

    /// The unsafe default, pinned: the same spec without matchers reads `200 Error: compare
    /// failed` as an applied cas and `200 Error: timed out` as an acknowledged write, and a read
    /// of an error as a value nobody wrote. docs/http-adapter.md ("The unsafe default") explains
    /// why and how matchers fix it.
    #[test]
    fn without_matchers_an_error_answered_with_200_is_taken_for_success() {
        let text = without_matchers(&text_spec());
        assert!(!text.contains("regex"), "every matcher removed:\n{text}");
        let p = plan(&text);
        let cas = req(Fun::Cas, serde_json::json!([1, 2]));
        assert_eq!(
            done(p.interpret(
                p.cas.as_ref().unwrap(),
                &cas,
                &answer(200, "Error: compare failed\n"),
                0,
                &[]
            )),
            Completion::Ok {
                value: serde_json::json!([1, 2]),
                node: 0
            }
        );
        let write = req(Fun::Write, Value::from(5));
        assert!(matches!(
            done(p.interpret(&p.write, &write, &answer(200, "Error: timed out\n"), 0, &[])),
            Completion::Ok { .. }
        ));
        let read = req(Fun::Read, Value::Null);
        assert_eq!(
            done(p.interpret(&p.read, &read, &answer(200, "Error: unavailable\n"), 0, &[])),
            Completion::Ok {
                value: Value::from("Error: unavailable"),
                node: 0
            }
        );
    }

    #[test]
    fn matchers_come_after_redirects_and_before_status_lists() {
        let spec = MINIMAL.replace(
            "mismatch = [409]",
            "mismatch = [409]\nmatch = [\n  { pointer = \"/error\", equals = \"busy\", outcome = \"info\" },\n  { regex = \"gone\", outcome = \"ok\" },\n]",
        );
        let p = plan(&spec);
        let cas = req(Fun::Cas, serde_json::json!([1, 2]));
        let op = p.cas.as_ref().unwrap();
        let e = eps();
        let c = |a: Answer| p.interpret(op, &cas, &a, 0, &e);
        // A listed status loses to a matcher ...
        assert!(is_info(&done(c(answer(409, r#"{"error": "busy"}"#)))));
        assert!(matches!(
            done(c(answer(400, "gone"))),
            Completion::Ok { .. }
        ));
        // ... but a redirect status is a redirect whatever the body says.
        assert_eq!(
            c(answer(421, r#"{"error": "busy", "leader": 2}"#)),
            Step::Redirect(Some(1))
        );
        // No matcher matches: the status lists decide, as before.
        assert_eq!(
            done(c(answer(409, r#"{"error": "precondition failed"}"#))),
            Completion::Fail {
                error: MISMATCH.into(),
                node: 0
            }
        );
    }

    #[test]
    fn a_read_that_a_matcher_calls_ok_still_needs_its_value() {
        let spec = MINIMAL.replace(
            "not_found = [404]",
            "not_found = [404]\nmatch = [{ regex = \"^fine\", outcome = \"ok\" }, { regex = \"^none\", outcome = \"not-found\" }]",
        );
        let p = plan(&spec);
        let read = req(Fun::Read, Value::Null);
        let r = |status: u16, body: &str| {
            done(p.interpret(&p.read, &read, &answer(status, body), 0, &[]))
        };
        let c = r(503, "fine, but no JSON");
        assert!(
            is_info(&c),
            "a value that cannot be extracted is unknown: {c:?}"
        );
        assert_eq!(
            r(500, "none here"),
            Completion::Ok {
                value: Value::Null,
                node: 0
            }
        );
    }

    #[test]
    fn bodies_are_written_in_their_format_and_query_strings_survive() {
        let spec = r#"
[http.read]
method = "GET"
path = "/v2/keys/{key}?quorum=true&x=a=b"
[http.write]
method = "PUT"
path = "/v2/keys/{key}"
body = "value={value}"
body_format = "form"
[http.cas]
method = "PUT"
path = "/v2/keys/{key}?prevValue={from}&recursive=false"
body = "{to}"
body_format = "text"
[http.append]
method = "POST"
path = "/l/{key}"
body = '{"v": {value}, "k": {key}}'
"#;
        let p = plan(spec);
        let (key, v, from, to) = (
            "a b/c",
            Value::from("x&y=z"),
            Value::from(41),
            Value::from(42),
        );
        let vars = Vars {
            key,
            value: &v,
            from: &from,
            to: &to,
        };
        assert_eq!(
            p.read.fill(&vars),
            Filled {
                path: "/v2/keys/a%20b%2Fc?quorum=true&x=a=b".into(),
                body: None
            }
        );
        assert_eq!(
            p.write.fill(&vars),
            Filled {
                path: "/v2/keys/a%20b%2Fc".into(),
                body: Some((
                    "value=x%26y%3Dz".into(),
                    "application/x-www-form-urlencoded"
                ))
            }
        );
        assert_eq!(
            p.cas.as_ref().unwrap().fill(&vars),
            Filled {
                path: "/v2/keys/a%20b%2Fc?prevValue=41&recursive=false".into(),
                body: Some(("42".into(), "text/plain; charset=utf-8"))
            }
        );
        assert_eq!(
            p.append.as_ref().unwrap().fill(&vars),
            Filled {
                path: "/l/a%20b%2Fc".into(),
                body: Some((r#"{"v": "x&y=z", "k": "a b/c"}"#.into(), "application/json"))
            }
        );
    }

    /// etcd's v2 keys API: form bodies, `prevValue` in the query, string values inside JSON,
    /// 412 errorCode 101 for a failed compare, 404 errorCode 100 for a key that is absent (a
    /// read of nothing, or a compare that failed because there is nothing), and `prevExist=false`
    /// for "the key must be absent" (412 errorCode 105 when it is not). The answers are copied
    /// from etcd 3.4.23 with --enable-v2.
    const ETCD_V2: &str = r#"
[http.read]
method = "GET"
path = "/v2/keys/{key}?quorum=true"
value = "/node/value"
value_form = "string"
not_found = [404]
[http.write]
method = "PUT"
path = "/v2/keys/{key}"
body = "value={value}"
body_format = "form"
ok = [200, 201]
[http.cas]
method = "PUT"
path = "/v2/keys/{key}?prevValue={from}"
body = "value={to}"
body_format = "form"
match = [
  { pointer = "/errorCode", equals = 101, outcome = "mismatch" },
  { pointer = "/errorCode", equals = 100, outcome = "mismatch" },
]
[http.cas_absent]
method = "PUT"
path = "/v2/keys/{key}?prevExist=false"
body = "value={to}"
body_format = "form"
ok = [201]
match = [{ pointer = "/errorCode", equals = 105, outcome = "mismatch" }]
"#;

    #[test]
    fn etcd_v2_shaped_answers() {
        let p = plan(ETCD_V2);
        let read = req(Fun::Read, Value::Null);
        let r = |s: u16, b: &str| done(p.interpret(&p.read, &read, &answer(s, b), 0, &[]));
        assert_eq!(
            r(
                200,
                r#"{"action":"get","node":{"key":"/r","value":"42","modifiedIndex":5}}"#
            ),
            Completion::Ok {
                value: Value::from(42),
                node: 0
            }
        );
        assert_eq!(
            r(
                404,
                r#"{"errorCode":100,"message":"Key not found","cause":"/r","index":3}"#
            ),
            Completion::Ok {
                value: Value::Null,
                node: 0
            }
        );
        assert!(is_info(&r(
            200,
            r#"{"action":"get","node":{"key":"/r","dir":true}}"#
        )));
        assert!(
            is_info(&r(200, r#"{"node":{"value":42}}"#)),
            "a number where a string must be"
        );

        let cas = req(Fun::Cas, serde_json::json!([41, 43]));
        let op = p.choose(Fun::Cas, &Value::from(41)).expect("cas");
        assert!(op.path.uses("from"));
        let c = |s: u16, b: &str| done(p.interpret(op, &cas, &answer(s, b), 0, &[]));
        let mismatch = Completion::Fail {
            error: MISMATCH.into(),
            node: 0,
        };
        assert_eq!(
            c(
                412,
                r#"{"errorCode":101,"message":"Compare failed","cause":"[41 != 42]","index":5}"#
            ),
            mismatch
        );
        assert_eq!(
            c(
                404,
                r#"{"errorCode":100,"message":"Key not found","cause":"/nokey","index":6}"#
            ),
            mismatch
        );
        assert!(matches!(
            c(
                200,
                r#"{"action":"compareAndSwap","node":{"key":"/r","value":"43"}}"#
            ),
            Completion::Ok { .. }
        ));
        assert!(is_info(&c(
            500,
            r#"{"errorCode":300,"message":"Raft Internal Error"}"#
        )));

        let absent = req(Fun::Cas, serde_json::json!([null, 44]));
        let op = p.choose(Fun::Cas, &Value::Null).expect("cas_absent");
        assert!(op.path.uses("key") && !op.path.uses("from"));
        let a = |s: u16, b: &str| done(p.interpret(op, &absent, &answer(s, b), 0, &[]));
        assert_eq!(
            a(
                412,
                r#"{"errorCode":105,"message":"Key already exists","cause":"/r","index":6}"#
            ),
            mismatch
        );
        assert!(matches!(
            a(
                201,
                r#"{"action":"create","node":{"key":"/new","value":"44"}}"#
            ),
            Completion::Ok { .. }
        ));
        let vars = Vars {
            key: "new",
            value: &Value::Null,
            from: &Value::Null,
            to: &Value::from(44),
        };
        assert_eq!(op.fill(&vars).path, "/v2/keys/new?prevExist=false");
    }

    #[test]
    fn a_cas_expecting_absence_without_cas_absent_is_not_sent_when_from_is_text() {
        // {from} in the query: null would be sent as the text "null".
        let p = plan(ETCD_V2.split("[http.cas_absent]").next().unwrap());
        assert!(p.cas_absent.is_none());
        let e = p
            .choose(Fun::Cas, &Value::Null)
            .expect_err("must not be sent");
        assert!(e.contains("[http.cas_absent]") && e.contains("null"), "{e}");
        assert!(p.choose(Fun::Cas, &Value::from(1)).is_ok());
        // {from} in a form body: the same.
        let form = MINIMAL.replace(
            r#"body = '{"from": {from}, "to": {to}}'"#,
            "body = \"from={from}&to={to}\"\nbody_format = \"form\"",
        );
        assert!(plan(&form).choose(Fun::Cas, &Value::Null).is_err());
        // {from} in a JSON body: null is JSON null, sent as ever.
        let p = plan(MINIMAL);
        assert!(std::ptr::eq(
            p.choose(Fun::Cas, &Value::Null).unwrap(),
            p.cas.as_ref().unwrap()
        ));
    }

    #[tokio::test]
    async fn the_not_sent_cas_completes_as_a_plain_fail() {
        let cut = ETCD_V2.split("[http.cas_absent]").next().unwrap();
        // Port 1 on loopback: nothing listens, so an op that were sent would fail to connect.
        let a = HttpAdapter::new(&section(cut), eps()).expect("adapter");
        let c = a
            .invoke(
                0,
                &req(Fun::Cas, serde_json::json!([null, 3])),
                Duration::from_secs(2),
            )
            .await;
        match c {
            Completion::Fail { error, node: 0 } => {
                assert!(
                    error.contains("no [http.cas_absent]") && !error.contains("connect"),
                    "{error}"
                );
            }
            other => panic!("expected a plain fail, got {other:?}"),
        }
    }

    #[test]
    fn new_fields_are_checked_when_the_spec_loads() {
        let with = |old: &str, new: &str| {
            assert!(MINIMAL.contains(old), "{old}");
            let e = err(&MINIMAL.replacen(old, new, 1));
            assert!(
                !e.contains("Some(") && !e.contains("\\\"") && !e.contains("Error {"),
                "no Debug output in messages: {e}"
            );
            e
        };
        let e = with(
            "body = '{\"value\": {value}}'",
            "body = '{\"value\": {value}}'\nmatch = [{ regex = \"a\", outcome = \"info\" }, { regex = \"(\", outcome = \"fail\" }]",
        );
        assert!(
            e.starts_with("[http] field `http.write.match[1]`: regex \"(\" does not compile"),
            "{e}"
        );
        let e = with(
            "body = '{\"value\": {value}}'",
            "body = '{\"value\": {value}}'\nmatch = [{ regex = \"a\", outcome = \"not-found\" }]",
        );
        assert!(
            e.contains("http.write.match[0]") && e.contains("ok, fail, info"),
            "{e}"
        );
        let e = with(
            "mismatch = [409]",
            "mismatch = [409]\nmatch = [{ regex = \"a\", outcome = \"not-found\" }]",
        );
        assert!(
            e.contains("http.cas.match[0]") && e.contains("mismatch"),
            "{e}"
        );
        let e = with(
            "not_found = [404]",
            "not_found = [404]\nmatch = [{ regex = \"a\", outcome = \"mismatch\" }]",
        );
        assert!(
            e.contains("http.read.match[0]") && e.contains("not-found"),
            "{e}"
        );
        let e = with(
            "not_found = [404]",
            "not_found = [404]\nmatch = [{ regex = \"a\", outcome = \"maybe\" }]",
        );
        assert!(e.contains("http.read.match") && e.contains("maybe"), "{e}");
        let e = with(
            "not_found = [404]",
            "not_found = [404]\nmatch = [{ pointer = \"/a\", stream = \"stderr\", outcome = \"info\" }]",
        );
        assert!(
            e.contains("http.read.match[0]") && e.contains("stream"),
            "{e}"
        );
        let e = with(
            "body = '{\"value\": {value}}'",
            "body = \"value={value} \"\nbody_format = \"form\"",
        );
        assert!(e.contains("http.write.body") && e.contains("form"), "{e}");
        let e = with(
            "body = '{\"value\": {value}}'",
            "body = \"{value}\"\nbody_format = \"form\"",
        );
        assert!(
            e.contains("http.write.body") && e.contains("name={value}"),
            "{e}"
        );
        let e = with("body = '{\"value\": {value}}'", "body_format = \"text\"");
        assert!(
            e.contains("http.write.body_format") && e.contains("no `body`"),
            "{e}"
        );
        let e = with(
            "body = '{\"value\": {value}}'",
            "body = \"{value}\"\nbody_format = \"yaml\"",
        );
        assert!(
            e.contains("http.write.body_format") && e.contains("yaml"),
            "{e}"
        );
        let e = with(
            "not_found = [404]",
            "not_found = [404]\nvalue_form = \"text\"",
        );
        assert!(
            e.contains("http.read.value") && e.contains("value_form"),
            "{e}"
        );
        let e = with(
            "not_found = [404]",
            "not_found = [404]\nvalue_form = \"xml\"",
        );
        assert!(e.contains("http.read.value_form"), "{e}");
        let e = with(
            "mismatch = [409]",
            "mismatch = [409]\nvalue_form = \"string\"",
        );
        assert!(
            e.contains("http.cas.value_form") && e.contains("only [http.read]"),
            "{e}"
        );
        let absent = "\n[http.cas_absent]\nmethod = \"PUT\"\npath = \"/kv/{key}?prev={from}\"\n";
        let e = err(&format!("{MINIMAL}{absent}"));
        assert!(
            e.contains("http.cas_absent.path") && e.contains("{from}"),
            "{e}"
        );
        let absent =
            "\n[http.cas_absent]\nmethod = \"PUT\"\npath = \"/kv/{key}\"\nmismatch = [421]\n";
        let e = err(&format!("{MINIMAL}{absent}"));
        assert!(
            e.contains("http.cas_absent.mismatch") && e.contains("redirect"),
            "{e}"
        );
        let no_cas = MINIMAL.replace("[http.cas]", "[http.cas_absent]");
        let e = err(&no_cas);
        assert!(
            e.contains("http.cas_absent") && e.contains("[http.cas]"),
            "{e}"
        );
    }

    #[test]
    fn the_text_spec_fixture_is_valid() {
        let p = plan(&text_spec());
        assert_eq!(p.read.value_form, ValueForm::Text);
        assert!(p.cas_absent.is_some() && p.append.is_some() && p.status.is_some());
        assert!(p.redirect.is_none());
        assert!(p.cas.as_ref().unwrap().from_as_text);
    }

    /// Every complete `[http]` example in docs/http-adapter.md loads, and the text server's
    /// example is the fixture the tests run.
    #[test]
    fn the_documented_examples_are_valid() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/http-adapter.md");
        let doc = std::fs::read_to_string(path).expect("docs/http-adapter.md");
        let fixture = section(&text_spec());
        let mut checked = 0;
        let mut text_example = false;
        for block in doc.split("```toml").skip(1) {
            let block = block.split("```").next().unwrap_or("");
            if !block.contains("[http.read]") {
                continue;
            }
            let v: toml::Value = toml::from_str(block)
                .unwrap_or_else(|e| panic!("a docs example is not TOML: {e}\n{block}"));
            let section = v.get("http").cloned().expect("an [http] table");
            if let Err(e) = parse_spec(&section) {
                panic!("a docs example is refused: {e}\n{block}");
            }
            if block.contains("value_form = \"text\"") {
                assert_eq!(
                    section, fixture,
                    "docs example differs from raftkv-text.toml"
                );
                text_example = true;
            }
            checked += 1;
        }
        assert!(
            checked >= 3,
            "expected the raftkv, text and etcd v2 examples, found {checked}"
        );
        assert!(text_example, "the text server example is missing");
    }

    /// Every field the `[http]` section accepts is in docs/http-adapter.md's reference tables.
    #[test]
    fn every_field_is_documented() {
        let src = include_str!("schema.rs");
        let outcome = include_str!("../outcome.rs");
        let doc = include_str!("../../../docs/http-adapter.md");
        let fields_of = |src: &str, name: &str| -> Vec<String> {
            let body = src
                .split(&format!("pub struct {name} {{"))
                .nth(1)
                .and_then(|b| b.split("\n}\n").next())
                .unwrap_or_else(|| panic!("struct {name}"));
            let mut rename = None;
            let mut out = Vec::new();
            for l in body.lines().map(str::trim) {
                if let Some(r) = l.split("rename = \"").nth(1) {
                    rename = r.split('"').next().map(str::to_string);
                }
                if let Some(f) = l.strip_prefix("pub ").and_then(|l| l.split(':').next()) {
                    out.push(rename.take().unwrap_or_else(|| f.to_string()));
                }
            }
            out
        };
        let mut all = Vec::new();
        for name in ["HttpSpec", "OpSpec", "RedirectSpec", "StatusSpec"] {
            all.extend(fields_of(src, name));
        }
        all.extend(fields_of(outcome, "MatchSpec"));
        assert!(all.len() >= 35, "{all:?}");
        assert!(all.contains(&"match".to_string()), "{all:?}");
        for f in all {
            let tick = format!("`{f}`");
            let in_table = doc.lines().any(|l| {
                l.starts_with("| ") && l.split('|').nth(1).is_some_and(|c| c.contains(&tick))
            });
            assert!(
                in_table || f == "stream",
                "docs/http-adapter.md lacks `{f}`"
            );
        }
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
