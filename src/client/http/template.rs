//! Request templates: a path or body with `{key}`, `{value}`, `{from}`, `{to}` placeholders,
//! parsed once; values are inserted as JSON in bodies and percent-encoded in paths.

use super::schema::bad;
use crate::client::transport::*;
use crate::client::ClientError;
use crate::history::Value;
use std::collections::BTreeSet;

/// Every placeholder a request template may use.
pub(super) const ALL_PLACEHOLDERS: [&str; 4] = ["key", "value", "from", "to"];

/// A template cut at its placeholders: literal text, or the name of a placeholder to fill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Part {
    Lit(String),
    Var(&'static str),
}

/// A parsed path or body template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Template {
    pub(super) parts: Vec<Part>,
}

/// The values an op fills a template with.
pub(super) struct Vars<'a> {
    pub(super) key: &'a str,
    pub(super) value: &'a Value,
    pub(super) from: &'a Value,
    pub(super) to: &'a Value,
}

impl Vars<'_> {
    pub(super) fn get(&self, name: &str) -> Value {
        match name {
            "key" => Value::String(self.key.to_string()),
            "value" => self.value.clone(),
            "from" => self.from.clone(),
            _ => self.to.clone(),
        }
    }
}

impl Template {
    /// Parse `text`, allowing only `allowed` placeholders. `{` not followed by a bare word and
    /// `}` is literal text (JSON bodies are full of braces); `{word}` that is not a placeholder
    /// is an error, since it is almost certainly a typo.
    pub(super) fn parse(
        text: &str,
        allowed: &[&str],
        field: &str,
    ) -> Result<Template, ClientError> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            lit.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let word_len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            let word = &after[..word_len];
            let closed = after[word_len..].starts_with('}');
            if word.is_empty() || !closed {
                lit.push('{');
                rest = after;
                continue;
            }
            match ALL_PLACEHOLDERS.iter().find(|p| **p == word) {
                Some(p) if allowed.contains(p) => {
                    if !lit.is_empty() {
                        parts.push(Part::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(Part::Var(p));
                }
                Some(_) => {
                    return Err(bad(
                        field,
                        format!(
                            "placeholder {{{word}}} is not available here (available: {})",
                            braces(allowed)
                        ),
                    ))
                }
                None => {
                    return Err(bad(
                        field,
                        format!(
                            "unknown placeholder {{{word}}} (available: {})",
                            braces(allowed)
                        ),
                    ))
                }
            }
            rest = &after[word_len + 1..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Template { parts })
    }

    /// Fill a path: strings as their text, other values as their JSON text, percent-encoded.
    pub(super) fn path(&self, vars: &Vars) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var(name) => match vars.get(name) {
                    Value::String(s) => out.push_str(&encode_segment(&s)),
                    other => out.push_str(&encode_segment(&other.to_string())),
                },
            }
        }
        out
    }

    /// Fill a JSON body: every value as JSON (`{key}` becomes `"k1"`, `{value}` `5`).
    pub(super) fn body(&self, vars: &Vars) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var(name) => out.push_str(&vars.get(name).to_string()),
            }
        }
        out
    }
}

pub(super) fn braces(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("{{{n}}}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A JSON pointer from the spec: `""` or starting with `/`.
pub(super) fn check_pointer(p: &str, field: &str) -> Result<String, ClientError> {
    if p.is_empty() || p.starts_with('/') {
        Ok(p.to_string())
    } else {
        Err(bad(
            field,
            format!("{p:?} is not a JSON pointer (use \"\" for the whole body, or \"/{p}\")"),
        ))
    }
}

pub(super) fn check_method(m: &str, field: &str) -> Result<reqwest::Method, ClientError> {
    let up = m.trim().to_ascii_uppercase();
    if up.is_empty() || !up.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(bad(field, format!("{m:?} is not an HTTP method")));
    }
    reqwest::Method::from_bytes(up.as_bytes())
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
