//! What a process's run means: how it ended (exit code or signal, stdout, stderr, or why it
//! never ran) becomes ok, fail or info. Pure, so unit-tested without a process.
//!
//! The order is fixed: a run that certainly did not start is `fail`; a run whose end is not
//! known (killed at the timeout, output lost or cut, stdin not fully written) is `info`;
//! otherwise the first matcher that matches decides, then the exit-code lists, and an exit code
//! no list names is `info`.

use super::plan::OpPlan;
use crate::client::outcome::{classify, completion, extract_value, Class, Stream};
use crate::client::transport::MAX_ERROR_TEXT;
use crate::client::{Completion, Request};
use std::time::Duration;

/// How one process ended, as far as the adapter saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Ran {
    /// The process ran to its end.
    Exited(Output),
    /// It was still running at the time limit and was killed: it may have acted.
    TimedOut(Duration),
    /// It never started (spawn failed: no such program, no process slot, an argument holding
    /// a NUL byte): nothing ran, so nothing changed.
    NotStarted(String),
    /// It started, but its end could not be read (a pipe error, stdin not fully written): it
    /// may have acted on what it got.
    Lost(String),
}

/// What a process that ran to its end left behind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Output {
    /// The exit code; `None` if a signal ended it.
    pub(crate) code: Option<i32>,
    /// The signal that ended it, if one did.
    pub(crate) signal: Option<i32>,
    /// Its standard output, at most the adapter's cap.
    pub(crate) stdout: Vec<u8>,
    /// Its standard error, at most the adapter's cap.
    pub(crate) stderr: Vec<u8>,
    /// Whether either stream was longer than the cap (so what was kept is not all it said).
    pub(crate) truncated: bool,
}

impl Output {
    fn text(&self, s: Stream) -> &[u8] {
        match s {
            Stream::Stdout => &self.stdout,
            Stream::Stderr => &self.stderr,
        }
    }

    /// How it ended, for messages: `exit 1`, `killed by signal 9`.
    fn ending(&self) -> String {
        match (self.code, self.signal) {
            (Some(c), _) => format!("exit {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            (None, None) => "ended without an exit code".into(),
        }
    }

    /// `exit 1: Error: context deadline exceeded`: how it ended and the last line it wrote
    /// (CLIs put the reason last; the lines above are often logs).
    fn describe(&self) -> String {
        let line = last_line(&self.stderr).or_else(|| last_line(&self.stdout));
        match line {
            Some(l) => format!("{}: {l}", self.ending()),
            None => self.ending(),
        }
    }
}

/// The last non-empty line of `text`, cut short for an error string.
pub(crate) fn last_line(text: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(text);
    let line = text.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    Some(brief(line))
}

/// `text` on one line (runs of whitespace, newlines included, become one space), cut short for
/// an error string: errors go into every history line.
fn brief(text: &str) -> String {
    let one = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = one.chars().take(MAX_ERROR_TEXT).collect();
    if one.chars().count() > MAX_ERROR_TEXT {
        out.push('…');
    }
    out
}

impl OpPlan {
    /// Turn how a process for `req` on `node` ended into the op's completion.
    pub(super) fn interpret(&self, req: &Request, ran: &Ran, node: usize) -> Completion {
        let out = match ran {
            Ran::NotStarted(why) => {
                return Completion::Fail {
                    error: format!("not started: {why}"),
                    node,
                }
            }
            Ran::TimedOut(_) => {
                return Completion::Info {
                    error: "timeout".into(),
                    node,
                }
            }
            Ran::Lost(why) => {
                return Completion::Info {
                    error: why.clone(),
                    node,
                }
            }
            Ran::Exited(out) => out,
        };
        if out.truncated {
            // A matcher (or the value) may sit in the part that was not kept.
            return Completion::Info {
                error: format!("{}, output longer than the adapter keeps", out.ending()),
                node,
            };
        }
        let matched = classify(&self.matchers, |s| out.text(s));
        let class = match matched {
            Some(m) => {
                // Which matcher decided, for whoever is debugging a spec (RUST_LOG=debug).
                tracing::debug!(
                    table = self.table.name(),
                    matcher = %m.describe(),
                    outcome = m.class.name(),
                    "command output matched"
                );
                m.class
            }
            None => match out.code {
                Some(c) if self.ok.contains(&c) => Class::Ok,
                Some(c) if self.not_found.contains(&c) => Class::NotFound,
                Some(c) if self.mismatch.contains(&c) => Class::Mismatch,
                Some(c) if self.fail.contains(&c) => Class::Fail,
                _ => Class::Info,
            },
        };
        let read_value = || {
            extract_value(&out.stdout, &self.value, self.value_form)
                .map_err(|why| format!("{}, but {why}", out.ending()))
        };
        // Say what decided a fail or info: the matcher's find, else the last line written.
        let said = || match matched.and_then(|m| m.found(out.text(m.stream))) {
            Some(found) => format!("{}: {}", out.ending(), brief(&found)),
            None => out.describe(),
        };
        completion(class, req, node, read_value, said)
    }
}
