//! Request templates shared by the declarative adapters: a path, body, argv element or stdin
//! text with `{key}`, `{value}`, `{from}`, `{to}` placeholders (and, for the command adapter,
//! the node's `{endpoint}` and friends), parsed once when the spec loads.
//!
//! Where a value goes decides how it is written ([`Encoding`]): as JSON in a JSON body, as its
//! text in a text body or an argv element, percent-encoded in a URL or a form body. A value is
//! inserted once and never expanded again, so a value that looks like a placeholder stays text.

use crate::history::Value;

/// Every placeholder a request template may use.
pub(crate) const ALL_PLACEHOLDERS: [&str; 4] = ["key", "value", "from", "to"];

/// The placeholders that describe the node an op goes to rather than the op: the command
/// adapter names the node in argv (`--endpoints={endpoint}`), where the http adapter puts it in
/// the URL itself. An adapter allows them only where it can fill them.
pub(crate) const NODE_PLACEHOLDERS: [&str; 6] =
    ["endpoint", "host", "port", "endpoints", "id", "name"];

/// A template cut at its placeholders: literal text, or the name of a placeholder to fill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    Lit(String),
    Var(&'static str),
}

/// How a value is written where a template puts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// The JSON encoding of the value: `"k1"`, `5`, `null`, `[1,2]` (JSON bodies).
    Json,
    /// Strings as their text, everything else as its JSON text: `k1`, `5`, `[1,2]` (text
    /// bodies, argv elements, stdin).
    Text,
    /// [`Encoding::Text`], then percent-encoded (paths, query strings, form bodies).
    Url,
}

/// A parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Template {
    pub(crate) parts: Vec<Part>,
}

/// The values an op fills a template with.
pub(crate) struct Vars<'a> {
    pub(crate) key: &'a str,
    pub(crate) value: &'a Value,
    pub(crate) from: &'a Value,
    pub(crate) to: &'a Value,
}

impl Vars<'_> {
    pub(crate) fn get(&self, name: &str) -> Value {
        match name {
            "key" => Value::String(self.key.to_string()),
            "value" => self.value.clone(),
            "from" => self.from.clone(),
            _ => self.to.clone(),
        }
    }
}

/// A value as text: a string is its own text, anything else its JSON text.
pub(crate) fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Template {
    /// Parse `text`, allowing only `allowed` placeholders. `{` not followed by a bare word and
    /// `}` is literal text (JSON bodies are full of braces); `{word}` that is not a placeholder
    /// is an error, since it is almost certainly a typo. The error is the message alone; the
    /// caller names the field.
    pub(crate) fn parse(text: &str, allowed: &[&str]) -> Result<Template, String> {
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
            let mut known = ALL_PLACEHOLDERS.iter().chain(NODE_PLACEHOLDERS.iter());
            match known.find(|p| **p == word) {
                Some(p) if allowed.contains(p) => {
                    if !lit.is_empty() {
                        parts.push(Part::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(Part::Var(p));
                }
                Some(_) => {
                    return Err(format!(
                        "placeholder {{{word}}} is not available here (available: {})",
                        braces(allowed)
                    ))
                }
                None => {
                    return Err(format!(
                        "unknown placeholder {{{word}}} (available: {})",
                        braces(allowed)
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

    /// Whether the template uses placeholder `name`.
    pub(crate) fn uses(&self, name: &str) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Var(v) if *v == name))
    }

    /// Fill a template that may use node placeholders ([`NODE_PLACEHOLDERS`]): op values as
    /// `enc` says, node placeholders with the text `node(name)` gives, as it is.
    pub(crate) fn fill_for_node(
        &self,
        vars: &Vars,
        enc: Encoding,
        node: impl Fn(&'static str) -> String,
    ) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var(name) if NODE_PLACEHOLDERS.contains(name) => out.push_str(&node(name)),
                Part::Var(name) => out.push_str(&var_text(vars, name, enc)),
            }
        }
        out
    }

    /// Fill the template, writing every value as `enc` says.
    pub(crate) fn fill(&self, vars: &Vars, enc: Encoding) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var(name) => out.push_str(&var_text(vars, name, enc)),
            }
        }
        out
    }
}

/// An op placeholder's value, written as `enc` says.
fn var_text(vars: &Vars, name: &str, enc: Encoding) -> String {
    let v = vars.get(name);
    match enc {
        Encoding::Json => v.to_string(),
        Encoding::Text => value_text(&v),
        Encoding::Url => encode_url(&value_text(&v)),
    }
}

/// Percent-encode every byte but the unreserved ones (RFC 3986), so that a value can sit in a
/// path segment, a query string or a form body without changing its structure (`&`, `=`, `/`,
/// `+`, space are all encoded).
pub(crate) fn encode_url(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `{a} {b}` for messages.
pub(crate) fn braces(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("{{{n}}}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(key: &'a str, value: &'a Value, from: &'a Value, to: &'a Value) -> Vars<'a> {
        Vars {
            key,
            value,
            from,
            to,
        }
    }

    #[test]
    fn values_are_written_as_the_slot_needs() {
        let t = Template::parse("/kv/{key}?prev={from}&v={to}", &["key", "from", "to"]).unwrap();
        let (one, two) = (Value::from(1), Value::from("a b&c=d"));
        let v = vars("a/b c", &Value::Null, &one, &two);
        assert_eq!(
            t.fill(&v, Encoding::Url),
            "/kv/a%2Fb%20c?prev=1&v=a%20b%26c%3Dd"
        );
        assert_eq!(t.fill(&v, Encoding::Text), "/kv/a/b c?prev=1&v=a b&c=d");
        let b = Template::parse(r#"{"from": {from}, "k": {key}}"#, &["key", "from"]).unwrap();
        assert_eq!(b.fill(&v, Encoding::Json), r#"{"from": 1, "k": "a/b c"}"#);
        let list = serde_json::json!([1, 2]);
        let v = vars("k", &list, &Value::Null, &Value::Null);
        let t = Template::parse("{value}", &["value"]).unwrap();
        assert_eq!(t.fill(&v, Encoding::Text), "[1,2]");
        assert_eq!(t.fill(&v, Encoding::Url), "%5B1%2C2%5D");
    }

    #[test]
    fn a_value_that_looks_like_a_placeholder_is_not_expanded() {
        let sneaky = Value::from("{key}");
        let t = Template::parse(r#"{"v": {value}}"#, &["key", "value"]).unwrap();
        let v = vars("k", &sneaky, &Value::Null, &Value::Null);
        assert_eq!(t.fill(&v, Encoding::Json), r#"{"v": "{key}"}"#);
        assert_eq!(t.fill(&v, Encoding::Text), r#"{"v": {key}}"#);
    }

    #[test]
    fn braces_that_are_not_placeholders_are_text_and_typos_are_refused() {
        let t = Template::parse("{ {x {}", &["key"]).unwrap();
        assert_eq!(t.parts, vec![Part::Lit("{ {x {}".into())]);
        let e = Template::parse("/kv/{kee}", &["key"]).unwrap_err();
        assert!(e.contains("unknown") && e.contains("{kee}"), "{e}");
        let e = Template::parse("/kv/{value}", &["key"]).unwrap_err();
        assert!(e.contains("not available") && e.contains("{key}"), "{e}");
        assert!(Template::parse("{from}", &["from"]).unwrap().uses("from"));
        assert!(!Template::parse("{to}", &["to"]).unwrap().uses("from"));
    }
}
