//! The terminal rendering of a checker result: a verdict line, the keys that were not valid,
//! and each counterexample as a short table of the ops involved.

use crate::checker::{CheckResult, Counterexample, Verdict};
use crate::history::{Fun, Op, Outcome};
use std::fmt::Write;

/// Upper-case verdict, the first word a user's eye should land on.
pub fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Valid => "VALID",
        Verdict::Invalid => "INVALID",
        Verdict::Unknown => "UNKNOWN",
    }
}

/// One line: file, verdict, model, size and check time.
pub fn verdict_line(file: &str, r: &CheckResult) -> String {
    format!(
        "{file}: {} ({}, {} ops, {} key{}, checked in {:.1} ms)",
        verdict_word(r.verdict),
        r.model.name(),
        r.ops,
        r.keys.len(),
        if r.keys.len() == 1 { "" } else { "s" },
        r.millis
    )
}

/// The keys that were not valid, with reasons and counterexamples; empty when all are valid.
/// `history` names the file the ops came from, where a projected witness's full reads are.
pub fn details(r: &CheckResult, history: &str) -> String {
    let mut out = String::new();
    if let (true, Some(why)) = (r.keys.is_empty(), &r.reason) {
        let _ = writeln!(out, "  {why}");
    }
    let valid = r
        .keys
        .iter()
        .filter(|k| k.verdict == Verdict::Valid)
        .count();
    for k in r.keys.iter().filter(|k| k.verdict != Verdict::Valid) {
        let name = k
            .key
            .as_deref()
            .map_or("(whole history)".to_string(), |k| format!("key {k}"));
        let _ = write!(out, "  {name}: {} ({} ops", verdict_word(k.verdict), k.ops);
        if let Some(reason) = &k.reason {
            let _ = write!(out, "; {reason}");
        }
        let _ = writeln!(out, ")");
        if let Some(c) = &k.counterexample {
            out.push_str(&counterexample(c, history));
        }
    }
    if valid > 0 && valid < r.keys.len() {
        let _ = writeln!(out, "  {valid} other key(s) valid");
    }
    out
}

/// An op in a few words ("cas 1 -> 2", "read -> a list of 40 ending [...]").
pub(crate) fn describe(o: &Op) -> String {
    match (o.f, o.outcome) {
        (Fun::Read, Outcome::Ok) => format!("read -> {}", crate::history::brief(&o.value)),
        (Fun::Read, _) => "read".to_string(),
        (Fun::Cas, _) => match o.value.as_array().map(|a| a.as_slice()) {
            Some([a, b]) => format!("cas {a} -> {b}"),
            _ => format!("cas {}", o.value),
        },
        (f, _) => format!("{} {}", f.name(), o.value),
    }
}

/// Elements a projection sentence names before it says "and N more": a witness is projected
/// onto two or three, so more means something unusual, and a count says it.
const MAX_PROJECTION_NAMED: usize = 10;

/// For a projected list-append witness, the sentence that keeps its reads from looking wrong:
/// they show only the projected elements, which is not what the system returned, and the
/// reader must know that this is sound and where the real reads are (`history`). `None` when
/// the witness was not projected. Every page and summary that prints a witness says it.
pub(crate) fn projection_note(c: &Counterexample, history: &str) -> Option<String> {
    let (first, rest) = c.projection.split_first()?;
    let mut named: Vec<String> = c
        .projection
        .iter()
        .take(MAX_PROJECTION_NAMED)
        .map(|v| v.to_string())
        .collect();
    if c.projection.len() > MAX_PROJECTION_NAMED {
        named.push(format!(
            "and {} more",
            c.projection.len() - MAX_PROJECTION_NAMED
        ));
    }
    let (element, them) = if rest.is_empty() {
        ("element", "it")
    } else {
        ("elements", "them")
    };
    let names = if rest.is_empty() {
        first.to_string()
    } else {
        named.join(", ")
    };
    Some(format!(
        "Reads below show only {element} {names}: the witness is the history projected onto \
         {them} (a projection of a linearizable history is linearizable, so this small one \
         proves the whole history is not). The full reads are in {history}."
    ))
}

/// How an op ended, in one or two words.
pub(crate) fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Ok => "ok",
        Outcome::Fail => "fail",
        Outcome::Mismatch => "fail (mismatch)",
        Outcome::Info => "info",
    }
}

/// A counterexample as an explanation and a table of its ops in call order; `history` names
/// the file the ops came from, where a projected witness's full reads are.
pub fn counterexample(c: &Counterexample, history: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "    {}", c.explanation);
    if let Some(note) = projection_note(c, history) {
        let _ = writeln!(out, "    {note}");
    }
    let _ = writeln!(
        out,
        "    {:>6}  {:>8}  {:<24} {:<16} {:>12} {:>12}",
        "op", "process", "operation", "outcome", "call ms", "return ms"
    );
    for o in &c.ops {
        let mut outcome = outcome_word(o.outcome).to_string();
        if c.weakened.contains(&o.id) {
            outcome = "(treated as info)".to_string();
        }
        let ret = o
            .ret_time
            .filter(|_| o.outcome != Outcome::Info)
            .map_or("-".to_string(), |t| format!("{:.3}", t as f64 / 1e6));
        let mark = if c.unplaced == Some(o.id) {
            "  <- cannot be placed"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "    {:>6}  {:>8}  {:<24} {:<16} {:>12.3} {:>12}{mark}",
            o.id,
            o.process,
            describe(o),
            outcome,
            o.call_time as f64 / 1e6,
            ret
        );
    }
    if !c.linearized.is_empty() {
        let order: Vec<String> = c.linearized.iter().map(|i| i.to_string()).collect();
        let _ = writeln!(out, "    longest legal order found: {}", order.join(", "));
    }
    out
}
