//! The declarative `command` adapter: [`schema`] (the spec section as written), [`plan`] (the
//! section checked once), [`answer`] (what a process's end means), and the adapter itself,
//! here: one process per operation, run from an argv template (never a shell).
//!
//! It exists because every server that ships a CLI can then be tested from a spec file alone,
//! even one whose wire protocol the harness does not speak (etcd's gRPC through `etcdctl`).
//! The price is a process per op (a few milliseconds each; docs/command-adapter.md has the
//! measured figures), so runs through it are slower than through a native adapter.
//!
//! Schema (every table rejects unknown fields):
//! ```toml
//! [command]
//! default_key = "r"                 # key used when the workload has none (single register)
//! timeout_ms = 1900                 # optional cap per process, below the op's timeout
//! env = { ETCDCTL_API = "3" }       # optional, on top of the harness's environment
//! [command.read]                    # required; also [command.write] (required),
//! argv = ["etcdctl", "--endpoints={endpoint}", "get", "{key}", "--print-value-only"]
//! value_form = "text"               # read only: text (default), json or string
//! value = "/value"                  # read only, json/string forms: JSON pointer
//! ok = [0]                          # exit codes; default [0]
//! fail = []                         # default []; certainly did nothing
//! not_found = []                    # read only: the key is absent
//! mismatch = []                     # cas only: the compare failed
//! match = [{ regex = "^FAILURE", stream = "stdout", outcome = "mismatch" }]
//! [command.cas]                     # optional: [command.cas], [command.cas_absent] (a cas
//! argv = ["etcdctl", "txn"]         # whose expected value is null), [command.append]
//! stdin = "value(\"{key}\") = \"{from}\"\n\nput {key} {to}\n\n\n"
//! ```
//! Placeholders: `{key}` `{value}` `{from}` `{to}` per op, and the node's `{endpoint}`
//! (host:port), `{host}`, `{port}`, `{endpoints}` (every node's host:port, joined by `,`),
//! `{id}`, `{name}`. Values are written as text (a string as itself, anything else as its JSON).
//!
//! Never a retry: each op is one process on the node the worker chose, bounded by the op's
//! timeout (and `timeout_ms`); a process still running then is killed with its process group
//! and the op is `info`.

mod answer;
mod plan;
pub mod schema;

pub(crate) use schema::parse_spec;
pub use schema::CommandSpec;

use super::template::{Encoding, Template, Vars};
use super::transport::{cas_pair, key_of};
use super::{Adapter, ClientError, Completion, Endpoint, NodeStatus, Request, StatusError};
use crate::history::{Fun, Value};
use answer::{Output, Ran};
use async_trait::async_trait;
use plan::{OpPlan, Plan, ProgramLookup};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// The most of each stream (stdout, stderr) that is kept. An op's answer is a value or a
/// one-line status; a process that writes more is either not the command the spec meant or
/// is dumping logs, and its op ends `info` rather than growing the harness's memory.
pub(crate) const MAX_OUTPUT: usize = 1 << 20;

/// The adapter: processes and their ends as the `[command]` section describes them.
pub struct CommandAdapter {
    endpoints: Vec<Endpoint>,
    plan: Plan,
}

/// One process to run, filled in for an op on a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Invocation {
    /// The program, as found when the spec loaded.
    pub(crate) program: PathBuf,
    /// Its arguments after argv[0].
    pub(crate) args: Vec<String>,
    /// Extra environment.
    pub(crate) env: Vec<(String, String)>,
    /// Written to stdin, then closed; `None`: stdin is empty (/dev/null).
    pub(crate) stdin: Option<String>,
}

impl CommandAdapter {
    /// Build from a cluster spec's `[command]` section; errors name the bad field.
    pub fn new(section: &toml::Value, endpoints: Vec<Endpoint>) -> Result<Self, ClientError> {
        let spec = parse_spec(section)?;
        Ok(CommandAdapter {
            endpoints,
            plan: Plan::new(&spec, &ProgramLookup::Search)?,
        })
    }

    /// Which table serves `req`, or the completion of an op that is not run at all.
    fn choose(&self, req: &Request, node: usize) -> Result<&OpPlan, Completion> {
        let missing = |table: &str, why: &str| Completion::Fail {
            error: format!("the cluster spec has no [command.{table}]{why}"),
            node,
        };
        let Some(op) = self.plan.op(req.f) else {
            return Err(missing(req.f.name(), " section for this op"));
        };
        if req.f != Fun::Cas {
            return Ok(op);
        }
        let Some((from, _)) = cas_pair(&req.value) else {
            return Err(Completion::Fail {
                error: format!("cas value must be [expected, new], got {}", req.value),
                node,
            });
        };
        if !from.is_null() {
            return Ok(op);
        }
        match &self.plan.cas_absent {
            Some(absent) => Ok(absent),
            // [command.cas] would compare with the text "null", which is not "absent": not run.
            None if op.uses("from") => Err(missing(
                "cas_absent",
                " for a cas whose expected value is null (the key must be absent); not run",
            )),
            None => Ok(op),
        }
    }

    /// Fill `op`'s templates for `req` on node `ep`.
    fn invocation(&self, op: &OpPlan, ep: &Endpoint, req: &Request) -> Invocation {
        let null = Value::Null;
        let (from, to) = cas_pair(&req.value).unwrap_or((&null, &null));
        let vars = Vars {
            key: key_of(req, &self.plan.default_key),
            value: &req.value,
            from,
            to,
        };
        let node = |name: &'static str| node_text(name, ep, &self.endpoints);
        let fill = |t: &Template| t.fill_for_node(&vars, Encoding::Text, node);
        Invocation {
            program: op.program.clone(),
            args: op.args.iter().map(fill).collect(),
            env: self
                .plan
                .env
                .iter()
                .map(|(k, t)| (k.clone(), fill(t)))
                .collect(),
            stdin: op.stdin.as_ref().map(fill),
        }
    }
}

/// The text of a node placeholder for node `ep`.
fn node_text(name: &str, ep: &Endpoint, all: &[Endpoint]) -> String {
    match name {
        "endpoint" => ep.addr.to_string(),
        "host" => ep.addr.ip().to_string(),
        "port" => ep.addr.port().to_string(),
        "endpoints" => all
            .iter()
            .map(|e| e.addr.to_string())
            .collect::<Vec<_>>()
            .join(","),
        "id" => ep.id.to_string(),
        "name" => ep.name.clone(),
        // Templates are parsed against the known names, so nothing else reaches here.
        _ => String::new(),
    }
}

#[async_trait]
impl Adapter for CommandAdapter {
    async fn invoke(&self, node: usize, req: &Request, timeout: Duration) -> Completion {
        let Some(ep) = self.endpoints.get(node) else {
            return Completion::Fail {
                error: format!("no node {node}"),
                node,
            };
        };
        let op = match self.choose(req, node) {
            Ok(op) => op,
            Err(c) => return c,
        };
        let limit = self.plan.timeout.map_or(timeout, |t| t.min(timeout));
        let ran = run(&self.invocation(op, ep, req), limit).await;
        op.interpret(req, &ran, node)
    }

    fn reports_roles(&self) -> bool {
        false
    }

    async fn status(&self, _node: usize, _timeout: Duration) -> Result<NodeStatus, StatusError> {
        Err(StatusError::Unsupported(
            "the command adapter does not ask nodes for their role and term".into(),
        ))
    }
}

/// A `pre_exec` hook that makes the child die (SIGKILL) when the thread that forked it dies, and
/// refuses to start it if the harness is already gone: a node or a CLI must never outlive the
/// harness. It only calls async-signal-safe functions (prctl, getppid) and does not allocate.
/// Used by every process the harness starts (nodes, the command adapter's CLIs).
pub(crate) fn die_with_harness() -> impl FnMut() -> std::io::Result<()> + Send + Sync + 'static {
    let parent = std::process::id() as libc::pid_t;
    move || {
        // SAFETY: prctl and getppid are async-signal-safe and touch no Rust state.
        unsafe {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The harness may have died between fork and prctl: then nobody would kill us.
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
        }
        Ok(())
    }
}

/// Run one process to its end within `limit`, never longer: at the limit its whole process
/// group is killed (a wrapper script's children too) and the run is [`Ran::TimedOut`].
///
/// The child gets its own process group and dies with the harness (`PR_SET_PDEATHSIG`), so a
/// CLI that would wait forever (etcdctl's `txn` has no timeout of its own) is never left behind.
pub(crate) async fn run(inv: &Invocation, limit: Duration) -> Ran {
    let mut cmd = tokio::process::Command::new(&inv.program);
    cmd.args(&inv.args)
        .envs(inv.env.iter().map(|(k, v)| (k, v)))
        .stdin(if inv.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    // SAFETY: the hook runs between fork and exec and only calls async-signal-safe functions.
    unsafe {
        cmd.pre_exec(die_with_harness());
    }
    // Any spawn error (ENOENT, EACCES, EAGAIN, a NUL in an argument, pre_exec failing) comes
    // before the program's first instruction: nothing ran.
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Ran::NotStarted(format!("{}: {e}", inv.program.display())),
    };
    let pid = child.id();
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let input = inv.stdin.clone();
    let collect = async {
        let write = async {
            match (stdin, input) {
                (Some(mut pipe), Some(text)) => {
                    let r = pipe.write_all(text.as_bytes()).await;
                    drop(pipe);
                    r
                }
                _ => Ok(()),
            }
        };
        let (w, out, err) = tokio::join!(write, read_capped(stdout), read_capped(stderr));
        let status = child.wait().await;
        (w, out, err, status)
    };
    match tokio::time::timeout(limit, collect).await {
        Err(_) => {
            // The child is not reaped yet (wait() had not returned), so its pid still names
            // its process group: killing the group cannot hit an unrelated one.
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            // Dropping the child kills it too (kill_on_drop) and leaves the reaping to tokio,
            // so the op ends now, not after the kill.
            Ran::TimedOut(limit)
        }
        Ok((w, out, err, status)) => {
            let status = match status {
                Ok(s) => s,
                Err(e) => return Ran::Lost(format!("cannot wait for the process: {e}")),
            };
            if let Err(e) = w {
                // A CLI that read only part of its input may have acted on that part.
                return Ran::Lost(format!("stdin not fully written ({e}); {status}"));
            }
            let ((stdout, t1), (stderr, t2)) = match (out, err) {
                (Ok(o), Ok(e)) => (o, e),
                (Err(e), _) | (_, Err(e)) => {
                    return Ran::Lost(format!("output lost: {e}; {status}"))
                }
            };
            Ran::Exited(Output {
                code: status.code(),
                signal: status.signal(),
                stdout,
                stderr,
                truncated: t1 || t2,
            })
        }
    }
}

/// Read a stream to its end, keeping at most [`MAX_OUTPUT`] bytes (and saying whether there
/// was more). Reading goes on past the cap so that the process is never blocked on a full pipe.
async fn read_capped<R: AsyncRead + Unpin>(r: Option<R>) -> std::io::Result<(Vec<u8>, bool)> {
    let Some(mut r) = r else {
        return Ok((Vec::new(), false));
    };
    let mut kept = Vec::new();
    let mut truncated = false;
    let mut chunk = [0u8; 8192];
    loop {
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Ok((kept, truncated));
        }
        let room = MAX_OUTPUT - kept.len();
        if n > room {
            truncated = true;
        }
        kept.extend_from_slice(&chunk[..n.min(room)]);
    }
}

#[cfg(test)]
mod tests {
    use super::schema::parse_with;
    use super::*;
    use crate::history::MISMATCH;
    use serde_json::json;

    fn eps() -> Vec<Endpoint> {
        crate::client::test_endpoints(7001, 1)
    }

    fn section(text: &str) -> toml::Value {
        let v: toml::Value = toml::from_str(text).expect("test TOML");
        v.get("command").cloned().expect("a [command] table")
    }

    /// A tiny store in files under a directory, driven by /bin/sh: enough to run every
    /// op of the adapter through real processes without a server.
    const SH_STORE: &str = r#"
[command]
default_key = "r"
env = { STORE = "DIR", NODE = "{name}" }
[command.read]
argv = ["/bin/sh", "-c", 'cat "$STORE/$0" 2>/dev/null; exit 0', "{key}"]
[command.write]
argv = ["/bin/sh", "-c", 'printf %s "$1" > "$STORE/$0"', "{key}", "{value}"]
[command.cas]
argv = ["/bin/sh", "-c", 'read want; if [ "$(cat "$STORE/$0" 2>/dev/null)" = "$want" ]; then printf %s "$1" > "$STORE/$0"; echo SUCCESS; else echo FAILURE; fi', "{key}", "{to}"]
stdin = "{from}\n"
ok = []
match = [{ regex = '\ASUCCESS', outcome = "ok" }, { regex = '\AFAILURE', outcome = "mismatch" }]
[command.cas_absent]
argv = ["/bin/sh", "-c", 'if [ -e "$STORE/$0" ]; then echo FAILURE; else printf %s "$1" > "$STORE/$0"; echo SUCCESS; fi', "{key}", "{to}"]
ok = []
match = [{ regex = '\ASUCCESS', outcome = "ok" }, { regex = '\AFAILURE', outcome = "mismatch" }]
"#;

    const MINIMAL: &str = r#"
[command.read]
argv = ["/bin/sh", "-c", "echo 7", "{key}", "{endpoint}"]
[command.write]
argv = ["/bin/sh", "-c", "true", "{key}", "{value}"]
[command.cas]
argv = ["/bin/sh", "-c", "true"]
stdin = "{from} {to}"
ok = []
match = [{ regex = '^SUCCESS', outcome = "ok" }, { regex = '^FAILURE', outcome = "mismatch" }]
"#;

    fn plan(text: &str) -> Plan {
        let spec = parse_spec(&section(text)).expect("valid spec");
        Plan::new(&spec, &ProgramLookup::Search).expect("valid plan")
    }

    fn err(text: &str) -> String {
        parse_spec(&section(text)).expect_err("must be refused").0
    }

    fn req(f: Fun, value: Value) -> Request {
        Request {
            f,
            key: Some("k1".into()),
            value,
        }
    }

    fn exited(code: i32, stdout: &str, stderr: &str) -> Ran {
        Ran::Exited(Output {
            code: Some(code),
            signal: None,
            stdout: stdout.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
            truncated: false,
        })
    }

    fn is_info(c: &Completion) -> bool {
        matches!(c, Completion::Info { .. })
    }

    #[test]
    fn minimal_spec_parses_with_defaults() {
        let p = plan(&format!("[command]\n{MINIMAL}"));
        assert_eq!(p.default_key, "r");
        assert!(p.read.ok.contains(&0) && p.read.fail.is_empty());
        assert_eq!(p.read.value_form, crate::client::outcome::ValueForm::Text);
        assert_eq!(p.read.program, PathBuf::from("/bin/sh"));
        assert!(p.append.is_none() && p.cas_absent.is_none() && p.timeout.is_none());
        assert!(p
            .cas
            .as_ref()
            .is_some_and(|c| c.uses("from") && c.ok.is_empty()));
    }

    #[test]
    fn spec_errors_name_the_field() {
        let m = MINIMAL;
        let e = err(&m.replace(
            r#"["/bin/sh", "-c", "true"]"#,
            r#"["no-such-cli-x9", "txn"]"#,
        ));
        assert!(
            e.contains("command.cas.argv[0]") && e.contains("no-such-cli-x9"),
            "{e}"
        );
        assert!(e.contains("not found on PATH"), "{e}");
        let e = err(&m.replace(r#"["/bin/sh", "-c", "true"]"#, r#"["/nonexistent/cli"]"#));
        assert!(
            e.contains("command.cas.argv[0]") && e.contains("/nonexistent/cli"),
            "{e}"
        );
        let e = err(&m.replace("'^SUCCESS'", "'^(SUCCESS'"));
        assert!(
            e.contains("[command] field `command.cas.match[0]`: regex"),
            "{e}"
        );
        assert!(e.contains("does not compile"), "{e}");
        let e = err(&m.replace("{endpoint}", "{endpiont}"));
        assert!(
            e.contains("command.read.argv[4]") && e.contains("unknown placeholder {endpiont}"),
            "{e}"
        );
        let e = err(&m.replace(r#""{key}", "{value}""#, r#""{key}", "{from}""#));
        assert!(
            e.contains("command.write.argv[4]") && e.contains("not available"),
            "{e}"
        );
        let e = err(&m.replace("{from} {to}", "{value}"));
        assert!(
            e.contains("command.cas.stdin") && e.contains("{value}"),
            "{e}"
        );
        let e = err(&m.replace(
            "outcome = \"mismatch\" }",
            "outcome = \"mismatch\", stream = \"err\" }",
        ));
        assert!(
            e.contains("command.cas.match[1]") && e.contains("stderr"),
            "{e}"
        );
        let e = err(&m.replace("outcome = \"mismatch\"", "outcome = \"not-found\""));
        assert!(
            e.contains("command.cas.match[1]") && e.contains("not-found"),
            "{e}"
        );
        let e = err(&m.replace(
            "[command.write]\n",
            "[command.write]\nvalue_form = \"json\"\n",
        ));
        assert!(
            e.contains("command.write.value_form") && e.contains("[command.read]"),
            "{e}"
        );
        let e = err(&m.replace("[command.read]\n", "[command.read]\nvalue = \"/v\"\n"));
        assert!(
            e.contains("command.read.value") && e.contains("value_form"),
            "{e}"
        );
        let e = err(&m.replace(
            "[command.read]\n",
            "[command.read]\nvalue_form = \"json\"\nvalue = \"v\"\n",
        ));
        assert!(
            e.contains("command.read.value") && e.contains("JSON pointer"),
            "{e}"
        );
        let e = err(&m.replace("[command.write]\n", "[command.write]\nnot_found = [1]\n"));
        assert!(e.contains("command.write.not_found"), "{e}");
        let e = err(&m.replace("[command.read]\n", "[command.read]\nmismatch = [1]\n"));
        assert!(e.contains("command.read.mismatch"), "{e}");
        let e = err(&m.replace("[command.read]\n", "[command.read]\nfail = [0]\n"));
        assert!(
            e.contains("command.read.ok")
                && e.contains("exit code 0 is also listed in `command.read.fail`"),
            "{e}"
        );
        let e = err(&m.replace("[command.read]\n", "[command.read]\nfail = [256]\n"));
        assert!(e.contains("command.read.fail") && e.contains("256"), "{e}");
        let e = err(&m.replace(
            "ok = []\nmatch = [{ regex = '^SUCCESS', outcome = \"ok\" }, ",
            "ok = []\nmatch = [",
        ));
        assert!(
            e.contains("command.cas.ok") && e.contains("nothing can make this op ok"),
            "{e}"
        );
        let e = err(&m.replace("[command.read]\n", "[command.read]\nargs = []\n"));
        assert!(e.contains("command.read") && e.contains("args"), "{e}");
        let e = err(&m.replace(r#"["/bin/sh", "-c", "true"]"#, "[]"));
        assert!(
            e.contains("command.cas.argv") && e.contains("program"),
            "{e}"
        );
        let e = err(&m.replace(r#"["/bin/sh", "-c", "true"]"#, r#"["/bin/{name}"]"#));
        assert!(
            e.contains("command.cas.argv[0]") && e.contains("placeholders"),
            "{e}"
        );
        let e = err(&format!("[command]\ntimeout_ms = 0\n{m}"));
        assert!(e.contains("command.timeout_ms"), "{e}");
        let e = err(&format!("[command]\nenv = {{ \"A=B\" = \"x\" }}\n{m}"));
        assert!(e.contains("command.env.A=B"), "{e}");
        let e = err(&format!("[command]\nenv = {{ A = \"{{key}}\" }}\n{m}"));
        assert!(e.contains("command.env.A") && e.contains("{key}"), "{e}");
        let e = err(&format!(
            "{m}[command.cas_absent]\nargv = [\"/bin/sh\"]\nstdin = \"{{from}}\"\n"
        ));
        assert!(
            e.contains("command.cas_absent.stdin") && e.contains("{from}"),
            "{e}"
        );
        let no_cas = &m[..m.find("[command.cas]").unwrap()];
        let e = err(&format!(
            "{no_cas}[command.cas_absent]\nargv = [\"/bin/sh\"]\n"
        ));
        assert!(
            e.contains("command.cas_absent") && e.contains("[command.cas]"),
            "{e}"
        );
        let e = err("[command.read]\nargv = [\"/bin/sh\"]\n");
        assert!(e.contains("write"), "{e}");
    }

    #[test]
    fn exit_codes_decide_when_no_matcher_matches() {
        let p = plan(&format!(
            "[command]\n{}",
            MINIMAL.replace("[command.write]\n", "[command.write]\nfail = [3]\n")
        ));
        let w = req(Fun::Write, json!(5));
        let r = |ran: Ran| p.write.interpret(&w, &ran, 1);
        assert_eq!(
            r(exited(0, "OK\n", "")),
            Completion::Ok {
                value: json!(5),
                node: 1
            }
        );
        assert_eq!(
            r(exited(3, "", "log line\nError: no such thing\n")),
            Completion::Fail {
                error: "exit 3: Error: no such thing".into(),
                node: 1
            }
        );
        let c = r(exited(1, "", "Error: context deadline exceeded\n"));
        assert_eq!(
            c,
            Completion::Info {
                error: "exit 1: Error: context deadline exceeded".into(),
                node: 1
            }
        );
        let killed = Ran::Exited(Output {
            signal: Some(9),
            ..Output::default()
        });
        assert!(
            matches!(r(killed), Completion::Info { error, .. } if error == "killed by signal 9")
        );
        let long = "x".repeat(500);
        match r(exited(1, "", &long)) {
            Completion::Info { error, .. } => assert!(error.chars().count() < 140, "{error}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn matchers_come_first_and_read_their_stream() {
        let text = format!(
            "[command]\n{}",
            MINIMAL.replace(
                "[command.write]\n",
                "[command.write]\nmatch = [{ regex = 'refused', stream = \"stderr\", outcome = \"fail\" }, \
                 { regex = 'Error', outcome = \"info\" }]\n"
            )
        );
        let p = plan(&text);
        let w = req(Fun::Write, json!(5));
        let r = |ran: Ran| p.write.interpret(&w, &ran, 0);
        // exit 0 is ok by the list, but a matcher said otherwise first.
        assert_eq!(
            r(exited(0, "Error: not the leader\nmore\n", "")),
            Completion::Info {
                error: "exit 0: Error: not the leader".into(),
                node: 0
            }
        );
        assert!(matches!(
            r(exited(0, "", "connection refused\n")),
            Completion::Fail { .. }
        ));
        // "refused" on stdout is not what the stderr matcher reads.
        assert!(matches!(
            r(exited(0, "refused\n", "")),
            Completion::Ok { .. }
        ));
        let cas = req(Fun::Cas, json!([1, 2]));
        let c = p.cas.as_ref().unwrap();
        let r = |ran: Ran| c.interpret(&cas, &ran, 2);
        assert_eq!(
            r(exited(0, "SUCCESS\n\nOK\n", "")),
            Completion::Ok {
                value: json!([1, 2]),
                node: 2
            }
        );
        assert_eq!(
            r(exited(0, "FAILURE\n", "")),
            Completion::Fail {
                error: MISMATCH.into(),
                node: 2
            }
        );
        // ok = [] : exit 0 with neither line proves nothing.
        assert!(is_info(&r(exited(0, "", ""))));
    }

    #[test]
    fn read_values_are_parsed_from_stdout() {
        let p = plan(&format!(
            "[command]\n{}",
            MINIMAL.replace("[command.read]\n", "[command.read]\nnot_found = [4]\n")
        ));
        let rd = req(Fun::Read, Value::Null);
        let r = |ran: Ran| p.read.interpret(&rd, &ran, 0);
        assert_eq!(
            r(exited(0, "42\n", "")),
            Completion::Ok {
                value: json!(42),
                node: 0
            }
        );
        assert_eq!(
            r(exited(0, "", "")),
            Completion::Ok {
                value: Value::Null,
                node: 0
            }
        );
        assert_eq!(
            r(exited(0, "[1,2]\n", "")),
            Completion::Ok {
                value: json!([1, 2]),
                node: 0
            }
        );
        assert_eq!(
            r(exited(4, "", "no key")),
            Completion::Ok {
                value: Value::Null,
                node: 0
            }
        );
        assert!(is_info(&r(Ran::Exited(Output {
            code: Some(0),
            stdout: vec![0xff, 0xfe],
            ..Output::default()
        }))));
        let p = plan(&format!(
            "[command]\n{}",
            MINIMAL.replace(
                "[command.read]\n",
                "[command.read]\nvalue_form = \"json\"\nvalue = \"/v\"\n"
            )
        ));
        let r = |ran: Ran| p.read.interpret(&rd, &ran, 0);
        assert_eq!(
            r(exited(0, r#"{"v": 3}"#, "")),
            Completion::Ok {
                value: json!(3),
                node: 0
            }
        );
        assert_eq!(
            r(exited(0, r#"{"v": null}"#, "")),
            Completion::Ok {
                value: Value::Null,
                node: 0
            }
        );
        assert!(is_info(&r(exited(0, r#"{"w": 3}"#, ""))));
        assert!(is_info(&r(exited(0, "3", ""))));
        let p = plan(&format!(
            "[command]\n{}",
            MINIMAL.replace(
                "[command.read]\n",
                "[command.read]\nvalue_form = \"string\"\nvalue = \"/node/value\"\n"
            )
        ));
        let r = |ran: Ran| p.read.interpret(&rd, &ran, 0);
        assert_eq!(
            r(exited(0, r#"{"node": {"value": "8"}}"#, "")),
            Completion::Ok {
                value: json!(8),
                node: 0
            }
        );
    }

    #[test]
    fn runs_that_did_not_end_normally() {
        let p = plan(&format!("[command]\n{MINIMAL}"));
        let w = req(Fun::Write, json!(5));
        let r = |ran: Ran| p.write.interpret(&w, &ran, 1);
        assert_eq!(
            r(Ran::TimedOut(Duration::from_secs(2))),
            Completion::Info {
                error: "timeout".into(),
                node: 1
            }
        );
        assert!(
            matches!(r(Ran::NotStarted("ENOENT".into())), Completion::Fail { error, node: 1 } if error.contains("ENOENT"))
        );
        assert!(is_info(&r(Ran::Lost("stdin not fully written".into()))));
        let cut = Ran::Exited(Output {
            code: Some(0),
            truncated: true,
            ..Output::default()
        });
        assert!(is_info(&r(cut)));
    }

    fn adapter(text: &str) -> CommandAdapter {
        CommandAdapter::new(&section(text), eps()).expect("valid adapter")
    }

    #[test]
    fn cas_from_null_uses_cas_absent_or_is_not_run() {
        let a = adapter(SH_STORE);
        let chosen = |v: Value| a.choose(&req(Fun::Cas, v), 0).map(|op| op.table);
        assert_eq!(chosen(json!([null, 3])), Ok(plan::Table::CasAbsent));
        assert_eq!(chosen(json!([1, 3])), Ok(plan::Table::Cas));
        let cut = &SH_STORE[..SH_STORE.find("[command.cas_absent]").unwrap()];
        let a = adapter(cut);
        match a.choose(&req(Fun::Cas, json!([null, 3])), 2) {
            Err(Completion::Fail { error, node: 2 }) => {
                assert!(
                    error.contains("[command.cas_absent]") && error.contains("not run"),
                    "{error}"
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            a.choose(&req(Fun::Cas, json!(3)), 0),
            Err(Completion::Fail { .. })
        ));
        assert!(matches!(
            a.choose(&req(Fun::Append, json!(3)), 0),
            Err(Completion::Fail { error, .. }) if error.contains("[command.append]")
        ));
        // A cas that does not name {from} is run as it is for a null expected value too.
        let a = adapter(&format!(
            "[command]\n{}",
            MINIMAL.replace("{from} {to}", "{to}")
        ));
        assert!(a.choose(&req(Fun::Cas, json!([null, 3])), 0).is_ok());
    }

    #[test]
    fn placeholders_are_filled_as_text() {
        let a = adapter(&format!(
            "[command]\nenv = {{ EP = \"{{endpoints}}\" }}\n{}",
            MINIMAL.replace(
                r#""{key}", "{endpoint}""#,
                r#""{key}", "{endpoint}", "{host}:{port}", "{id}-{name}""#
            )
        ));
        let inv = a.invocation(&a.plan.read, &a.endpoints[1], &req(Fun::Read, Value::Null));
        assert_eq!(
            inv.args,
            [
                "-c",
                "echo 7",
                "k1",
                "127.0.0.1:7002",
                "127.0.0.1:7002",
                "2-n2"
            ]
        );
        assert_eq!(
            inv.env,
            [(
                "EP".to_string(),
                "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003".to_string()
            )]
        );
        assert_eq!(inv.stdin, None);
        let keyless = Request {
            f: Fun::Write,
            key: None,
            value: json!([1, 2]),
        };
        let inv = a.invocation(&a.plan.write, &a.endpoints[0], &keyless);
        assert_eq!(inv.args[2..], ["r", "[1,2]"]);
        let cas = a.plan.cas.as_ref().unwrap();
        let inv = a.invocation(cas, &a.endpoints[0], &req(Fun::Cas, json!(["a b", 2])));
        assert_eq!(inv.stdin.as_deref(), Some("a b 2"));
    }

    fn inv(script: &str, stdin: Option<&str>) -> Invocation {
        Invocation {
            program: PathBuf::from("/bin/sh"),
            args: vec!["-c".into(), script.into()],
            env: vec![("RC_TEST".into(), "x y".into())],
            stdin: stdin.map(str::to_string),
        }
    }

    #[tokio::test]
    async fn processes_are_run_and_read() {
        let t = Duration::from_secs(10);
        let ran = run(
            &inv("echo out; echo err >&2; echo \"$RC_TEST\"; exit 3", None),
            t,
        )
        .await;
        let Ran::Exited(o) = ran else {
            panic!("{ran:?}")
        };
        assert_eq!((o.code, o.signal, o.truncated), (Some(3), None, false));
        assert_eq!(o.stdout, b"out\nx y\n");
        assert_eq!(o.stderr, b"err\n");
        let ran = run(&inv("cat", Some("put k 1\n\n")), t).await;
        assert!(
            matches!(&ran, Ran::Exited(o) if o.stdout == b"put k 1\n\n" && o.code == Some(0)),
            "{ran:?}"
        );
        // Without a stdin template the process reads an empty stdin, never the harness's.
        let ran = run(&inv("cat", None), t).await;
        assert!(
            matches!(&ran, Ran::Exited(o) if o.stdout.is_empty()),
            "{ran:?}"
        );
        let ran = run(&inv("kill -9 $$", None), t).await;
        assert!(
            matches!(&ran, Ran::Exited(o) if o.signal == Some(9) && o.code.is_none()),
            "{ran:?}"
        );
        let ran = run(&inv("head -c 3000000 /dev/zero", None), t).await;
        assert!(
            matches!(&ran, Ran::Exited(o) if o.truncated && o.stdout.len() == MAX_OUTPUT),
            "{ran:?}"
        );
        let missing = Invocation {
            program: PathBuf::from("/nonexistent/cli"),
            ..inv("", None)
        };
        let ran = run(&missing, t).await;
        assert!(
            matches!(&ran, Ran::NotStarted(why) if why.contains("/nonexistent/cli")),
            "{ran:?}"
        );
        let nul = Invocation {
            args: vec!["a\0b".into()],
            ..inv("", None)
        };
        assert!(matches!(run(&nul, t).await, Ran::NotStarted(_)));
    }

    #[tokio::test]
    async fn a_process_past_its_limit_is_killed_with_its_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pidfile = dir.path().join("pid");
        // A wrapper whose child outlives it would hold the pipes open: the group kill ends both.
        let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let t0 = std::time::Instant::now();
        let ran = run(&inv(&script, None), Duration::from_millis(300)).await;
        assert_eq!(ran, Ran::TimedOut(Duration::from_millis(300)));
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .expect("pid file")
            .trim()
            .parse()
            .expect("a pid");
        let gone = (0..100).any(|_| {
            let alive = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                !s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            });
            if alive {
                std::thread::sleep(Duration::from_millis(20));
            }
            !alive
        });
        assert!(gone, "the wrapper's child {pid} survived the kill");
    }

    #[tokio::test]
    async fn every_op_through_real_processes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = adapter(&SH_STORE.replace("DIR", &dir.path().display().to_string()));
        let t = Duration::from_secs(10);
        let go = |f: Fun, v: Value| {
            let a = &a;
            async move { a.invoke(1, &req(f, v), t).await }
        };
        assert_eq!(
            go(Fun::Read, Value::Null).await,
            Completion::Ok {
                value: Value::Null,
                node: 1
            }
        );
        assert_eq!(
            go(Fun::Cas, json!([null, 4])).await,
            Completion::Ok {
                value: json!([null, 4]),
                node: 1
            }
        );
        assert_eq!(
            go(Fun::Cas, json!([null, 5])).await,
            Completion::Fail {
                error: MISMATCH.into(),
                node: 1
            }
        );
        assert_eq!(
            go(Fun::Read, Value::Null).await,
            Completion::Ok {
                value: json!(4),
                node: 1
            }
        );
        assert_eq!(
            go(Fun::Write, json!(6)).await,
            Completion::Ok {
                value: json!(6),
                node: 1
            }
        );
        assert_eq!(
            go(Fun::Cas, json!([6, 7])).await,
            Completion::Ok {
                value: json!([6, 7]),
                node: 1
            }
        );
        assert_eq!(
            go(Fun::Cas, json!([6, 8])).await,
            Completion::Fail {
                error: MISMATCH.into(),
                node: 1
            }
        );
        assert_eq!(
            go(Fun::Read, Value::Null).await,
            Completion::Ok {
                value: json!(7),
                node: 1
            }
        );
        assert!(matches!(
            go(Fun::Append, json!(1)).await,
            Completion::Fail { .. }
        ));
        assert!(matches!(
            a.status(0, t).await,
            Err(StatusError::Unsupported(_))
        ));
        // The spec's timeout_ms caps a process below the op's timeout.
        let slow = adapter(&format!(
            "[command]\ntimeout_ms = 200\n{}",
            MINIMAL.replace("\"echo 7\"", "\"sleep 5\"")
        ));
        let t0 = std::time::Instant::now();
        let c = slow.invoke(0, &req(Fun::Read, Value::Null), t).await;
        assert_eq!(
            c,
            Completion::Info {
                error: "timeout".into(),
                node: 0
            }
        );
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    }

    fn etcd_ctl() -> Plan {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/clusters/etcd-ctl.toml");
        let text = std::fs::read_to_string(path).expect("clusters/etcd-ctl.toml");
        // The shipped spec is checked on machines without etcdctl too: programs as written.
        let spec = parse_with(&section(&text), &ProgramLookup::AsWritten).expect("valid spec");
        Plan::new(&spec, &ProgramLookup::AsWritten).expect("valid plan")
    }

    /// etcdctl 3.4.23's own words, captured from runs against a real etcd (docs/command-adapter.md).
    #[test]
    fn shipped_etcd_ctl_spec_classifies_what_etcdctl_prints() {
        let p = etcd_ctl();
        assert!(
            p.append.is_none(),
            "etcd-ctl has no sound single-command append"
        );
        let never_sent = "{\"level\":\"warn\",\"ts\":\"2026-12-02T05:09:41.890Z\",\"caller\":\"clientv3/retry_interceptor.go:62\",\
            \"msg\":\"retrying of unary invoker failed\",\"target\":\"endpoint://client-3fc5/127.0.0.1:1\",\"attempt\":0,\
            \"error\":\"rpc error: code = DeadlineExceeded desc = latest balancer error: all SubConns are in TransientFailure\"}\n\
            Error: context deadline exceeded\n";
        let sent =
            "{\"level\":\"warn\",\"msg\":\"retrying of unary invoker failed\",\"attempt\":0,\
            \"error\":\"rpc error: code = DeadlineExceeded desc = context deadline exceeded\"}\n\
            Error: context deadline exceeded\n";
        let w = req(Fun::Write, json!(3));
        assert_eq!(
            p.write.interpret(&w, &exited(0, "OK\n", ""), 0),
            Completion::Ok {
                value: json!(3),
                node: 0
            }
        );
        match p.write.interpret(&w, &exited(1, "", never_sent), 0) {
            Completion::Fail { error, .. } => assert!(
                error.starts_with("exit 1: code = DeadlineExceeded desc = latest balancer error")
                    && error.contains("TransientFailure"),
                "{error}"
            ),
            other => panic!("{other:?}"),
        }
        assert!(is_info(&p.write.interpret(&w, &exited(1, "", sent), 0)));
        // A later attempt that may have been sent, after one that was not: not a fail.
        let both = format!("{}\n{sent}", never_sent.lines().next().unwrap_or(""));
        assert!(is_info(&p.write.interpret(&w, &exited(1, "", &both), 0)));
        for e in [
            "Error: etcdserver: request timed out\n",
            "Error: etcdserver: leader changed\n",
            "Error: rpc error: code = Unavailable desc = transport is closing\n",
        ] {
            assert!(is_info(&p.write.interpret(&w, &exited(1, "", e), 0)), "{e}");
        }
        let rd = req(Fun::Read, Value::Null);
        assert_eq!(
            p.read.interpret(&rd, &exited(0, "17\n", ""), 0),
            Completion::Ok {
                value: json!(17),
                node: 0
            }
        );
        assert_eq!(
            p.read.interpret(&rd, &exited(0, "", ""), 0),
            Completion::Ok {
                value: Value::Null,
                node: 0
            }
        );
        let cas = p.cas.as_ref().unwrap();
        let absent = p.cas_absent.as_ref().unwrap();
        for op in [cas, absent] {
            let c = req(Fun::Cas, json!([1, 2]));
            assert!(matches!(
                op.interpret(&c, &exited(0, "SUCCESS\n\nOK\n", ""), 0),
                Completion::Ok { .. }
            ));
            assert_eq!(
                op.interpret(&c, &exited(0, "FAILURE\n\n", ""), 0),
                Completion::Fail {
                    error: MISMATCH.into(),
                    node: 0
                }
            );
            assert!(is_info(&op.interpret(&c, &exited(0, "", ""), 0)));
            assert!(is_info(&op.interpret(&c, &exited(1, "", sent), 0)));
        }
        let a = CommandAdapter {
            endpoints: eps(),
            plan: p,
        };
        let inv = a.invocation(
            a.plan.cas.as_ref().unwrap(),
            &a.endpoints[2],
            &req(Fun::Cas, json!([5, 6])),
        );
        assert_eq!(
            inv.stdin.as_deref(),
            Some("value(\"k1\") = \"5\"\n\nput -- k1 6\n\n\n")
        );
        assert!(
            inv.args.contains(&"--endpoints=127.0.0.1:7003".to_string()),
            "{:?}",
            inv.args
        );
        let inv = a.invocation(
            a.plan.cas_absent.as_ref().unwrap(),
            &a.endpoints[0],
            &req(Fun::Cas, json!([null, 6])),
        );
        assert_eq!(
            inv.stdin.as_deref(),
            Some("create(\"k1\") = \"0\"\n\nput -- k1 6\n\n\n")
        );
    }
}
