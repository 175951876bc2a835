//! What an answer means, for the declarative adapters (`http`, `command`): matchers that
//! classify an answer by its text, and the rules that turn an answer's text into a value.
//!
//! Matchers come before any status or exit-code list, because servers exist that answer
//! `200 Error: not the leader`: classified by status alone, such an answer would be an
//! acknowledged write that never happened, and the checker would report a correct server
//! INVALID. A matcher is a regex on the text, or a JSON pointer with (optionally) the value
//! expected there; the first matcher that matches decides.
//!
//! Values are never guessed: a value the answer does not hold makes the op `info`, and a text
//! value is read by one documented rule ([`parse_text_value`]).

use crate::history::Value;
use serde::Deserialize;

/// The class a matcher gives an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    /// Done: the op took effect (a read returns its value).
    Ok,
    /// Certainly not done.
    Fail,
    /// May or may not have happened.
    Info,
    /// Reads: the key is absent (the read returns null).
    NotFound,
    /// Compare-and-set: the compare failed, nothing was written.
    Mismatch,
}

impl Class {
    /// The name a spec writes (`not-found`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Class::Ok => "ok",
            Class::Fail => "fail",
            Class::Info => "info",
            Class::NotFound => "not-found",
            Class::Mismatch => "mismatch",
        }
    }
}

/// One matcher as a spec writes it (`[[http.write.match]]`, `[[command.cas.match]]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    /// A regex (Rust `regex` syntax) searched for in the text.
    #[serde(default)]
    pub regex: Option<String>,
    /// A JSON pointer into the text parsed as JSON; matches when the pointer exists (and holds
    /// `equals`, if given). Text that is not JSON never matches.
    #[serde(default)]
    pub pointer: Option<String>,
    /// The value `pointer` must hold, compared as JSON (numbers by value).
    #[serde(default)]
    pub equals: Option<toml::Value>,
    /// Command adapter only: `stdout` (default) or `stderr`.
    #[serde(default)]
    pub stream: Option<String>,
    /// What a match means.
    pub outcome: Class,
}

/// Which text a matcher reads (the command adapter has two).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

#[derive(Clone, Debug)]
enum Test {
    Regex(regex::Regex),
    Pointer {
        pointer: String,
        equals: Option<Value>,
    },
}

/// A checked matcher.
#[derive(Clone, Debug)]
pub(crate) struct Matcher {
    test: Test,
    pub(crate) stream: Stream,
    pub(crate) class: Class,
}

impl Matcher {
    /// Check one matcher. `allowed` lists the classes this op may produce (a write cannot be
    /// `not-found`); `streams` says whether `stream` may be given. Errors are messages; the
    /// caller names the field.
    pub(crate) fn new(spec: &MatchSpec, allowed: &[Class], streams: bool) -> Result<Self, String> {
        if !allowed.contains(&spec.outcome) {
            return Err(format!(
                "outcome {:?} is not possible for this operation (possible: {})",
                spec.outcome.name(),
                allowed
                    .iter()
                    .map(|c| c.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let stream = match (spec.stream.as_deref(), streams) {
            (None, _) => Stream::Stdout,
            (Some("stdout"), true) => Stream::Stdout,
            (Some("stderr"), true) => Stream::Stderr,
            (Some(other), true) => {
                return Err(format!(
                    "stream {other:?} is neither \"stdout\" nor \"stderr\""
                ))
            }
            (Some(_), false) => {
                return Err("`stream` is only read by the command adapter".into());
            }
        };
        let test = match (&spec.regex, &spec.pointer) {
            (Some(_), Some(_)) => {
                return Err("give `regex` or `pointer`, not both".into());
            }
            (None, None) => return Err("give `regex` or `pointer`".into()),
            (Some(r), None) => {
                if spec.equals.is_some() {
                    return Err("`equals` goes with `pointer`, not with `regex`".into());
                }
                let re = regex::Regex::new(r)
                    .map_err(|e| format!("regex {r:?} does not compile: {}", one_line(&e)))?;
                Test::Regex(re)
            }
            (None, Some(p)) => {
                let pointer = check_pointer(p)?;
                let equals = spec
                    .equals
                    .as_ref()
                    .map(|v| {
                        serde_json::to_value(v)
                            .map_err(|e| format!("`equals` is not a JSON value: {e}"))
                    })
                    .transpose()?;
                Test::Pointer { pointer, equals }
            }
        };
        Ok(Matcher {
            test,
            stream,
            class: spec.outcome,
        })
    }

    /// Whether the matcher matches `text`.
    pub(crate) fn matches(&self, text: &[u8]) -> bool {
        match &self.test {
            Test::Regex(re) => re.is_match(&String::from_utf8_lossy(text)),
            Test::Pointer { pointer, equals } => {
                let Ok(v) = serde_json::from_slice::<Value>(text) else {
                    return false;
                };
                match (v.pointer(pointer), equals) {
                    (None, _) => false,
                    (Some(_), None) => true,
                    (Some(found), Some(want)) => json_equal(found, want),
                }
            }
        }
    }

    /// What the matcher saw in `text`, for an error message: a regex's match and the rest of
    /// the line it ends on (the words that decided the outcome, which are often not the last
    /// line a CLI printed), or what a pointer matcher tests. `None` if it does not match.
    pub(crate) fn found(&self, text: &[u8]) -> Option<String> {
        match &self.test {
            Test::Regex(re) => {
                let text = String::from_utf8_lossy(text);
                let m = re.find(&text)?;
                let end = text[m.end()..]
                    .find('\n')
                    .map_or(text.len(), |i| m.end() + i);
                Some(text[m.start()..end].to_string())
            }
            Test::Pointer { .. } => self.matches(text).then(|| self.describe()),
        }
    }

    /// What the matcher tests, for an error message (`regex "^Error"`).
    pub(crate) fn describe(&self) -> String {
        match &self.test {
            Test::Regex(re) => format!("regex {:?}", re.as_str()),
            Test::Pointer {
                pointer,
                equals: None,
            } => format!("pointer {pointer:?}"),
            Test::Pointer {
                pointer,
                equals: Some(v),
            } => format!("pointer {pointer:?} = {v}"),
        }
    }
}

/// Check a list of matchers, naming the failing one (`match[1]: ...`).
pub(crate) fn matchers(
    specs: &[MatchSpec],
    allowed: &[Class],
    streams: bool,
) -> Result<Vec<Matcher>, String> {
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| Matcher::new(s, allowed, streams).map_err(|e| format!("match[{i}]: {e}")))
        .collect()
}

/// The first matcher that matches: `text(stream)` gives the text each reads.
pub(crate) fn classify<'m>(
    list: &'m [Matcher],
    text: impl Fn(Stream) -> &'m [u8],
) -> Option<&'m Matcher> {
    list.iter().find(|m| m.matches(text(m.stream)))
}

/// The completion an answer of class `class` gives `req` on `node`: the one mapping from a class
/// to what the history records, shared by the declarative adapters because it is what soundness
/// rests on. `ok` on a read takes its value from `read_value` (an answer that holds none is
/// `info`: it proves nothing, and `Err` carries the whole message); `not-found` is a read of
/// null; `mismatch` is the fail the checker reads as "the value was not the expected one";
/// `fail` and `info` carry `said()`.
pub(crate) fn completion(
    class: Class,
    req: &crate::client::Request,
    node: usize,
    read_value: impl FnOnce() -> Result<Value, String>,
    said: impl FnOnce() -> String,
) -> crate::client::Completion {
    use crate::client::Completion;
    match class {
        Class::Ok if req.f == crate::history::Fun::Read => match read_value() {
            Ok(value) => Completion::Ok { value, node },
            Err(error) => Completion::Info { error, node },
        },
        Class::Ok => Completion::Ok {
            value: req.value.clone(),
            node,
        },
        Class::NotFound => Completion::Ok {
            value: Value::Null,
            node,
        },
        Class::Mismatch => Completion::Fail {
            error: crate::history::MISMATCH.into(),
            node,
        },
        Class::Fail => Completion::Fail {
            error: said(),
            node,
        },
        Class::Info => Completion::Info {
            error: said(),
            node,
        },
    }
}

/// JSON equality with numbers compared by value (`1` equals `1.0`), since TOML and servers
/// write numbers differently.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

fn one_line(e: &impl std::fmt::Display) -> String {
    e.to_string()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A JSON pointer from a spec: `""` (the whole document) or starting with `/`.
pub(crate) fn check_pointer(p: &str) -> Result<String, String> {
    if p.is_empty() || p.starts_with('/') {
        Ok(p.to_string())
    } else {
        Err(format!(
            "{p:?} is not a JSON pointer (use \"\" for the whole body, or \"/{p}\")"
        ))
    }
}

/// How an answer holds a read's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ValueForm {
    /// The answer is JSON and the value is the JSON at the pointer, as it is.
    #[default]
    Json,
    /// The answer is JSON and the value is a string at the pointer holding the value's text
    /// (etcd's v2 API: `{"node": {"value": "42"}}`), read by [`parse_text_value`].
    String,
    /// The answer is the value's text (`42\n`), read by [`parse_text_value`].
    Text,
}

/// Read a value's text: surrounding whitespace is dropped; empty text is null (absent); text
/// that is a JSON document (`42`, `[1,2]`, `null`, `"s"`) is that value; any other text is
/// itself, as a string. The workloads write integers and lists of integers, so each one
/// round-trips, and an answer the workload never wrote stays visible in the history as it was.
pub(crate) fn parse_text_value(text: &str) -> Value {
    let t = text.trim();
    if t.is_empty() {
        return Value::Null;
    }
    serde_json::from_str(t).unwrap_or_else(|_| Value::String(t.to_string()))
}

/// Extract a read's value from an answer body. `Err` says why the answer holds none (the op is
/// then `info`: the answer was not understood, so it proves nothing).
pub(crate) fn extract_value(body: &[u8], pointer: &str, form: ValueForm) -> Result<Value, String> {
    if form == ValueForm::Text {
        return std::str::from_utf8(body)
            .map(parse_text_value)
            .map_err(|_| "answer is not UTF-8 text".to_string());
    }
    let doc: Value = serde_json::from_slice(body).map_err(|_| "answer is not JSON".to_string())?;
    let v = doc
        .pointer(pointer)
        .ok_or_else(|| format!("answer has no value at {pointer:?}"))?;
    match (form, v) {
        (ValueForm::String, Value::String(s)) => Ok(parse_text_value(s)),
        (ValueForm::String, Value::Null) => Ok(Value::Null),
        (ValueForm::String, other) => Err(format!(
            "answer holds {other} at {pointer:?}, not a string (value_form = \"string\")"
        )),
        _ => Ok(v.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(toml_text: &str) -> MatchSpec {
        toml::from_str(toml_text).unwrap()
    }
    const ALL: [Class; 5] = [
        Class::Ok,
        Class::Fail,
        Class::Info,
        Class::NotFound,
        Class::Mismatch,
    ];

    #[test]
    fn regex_and_pointer_matchers() {
        let m = Matcher::new(&spec("regex = '^Error'\noutcome = 'info'"), &ALL, false).unwrap();
        assert!(m.matches(b"Error: not the leader"));
        assert!(!m.matches(b"42"));
        let m = Matcher::new(
            &spec("pointer = '/errorCode'\nequals = 101\noutcome = 'mismatch'"),
            &ALL,
            false,
        )
        .unwrap();
        assert!(m.matches(br#"{"errorCode": 101, "message": "Compare failed"}"#));
        assert!(m.matches(br#"{"errorCode": 101.0}"#));
        assert!(!m.matches(br#"{"errorCode": 100}"#));
        assert!(!m.matches(b"Compare failed"));
        let m = Matcher::new(&spec("pointer = '/error'\noutcome = 'fail'"), &ALL, false).unwrap();
        assert!(m.matches(br#"{"error": null}"#));
        assert!(!m.matches(br#"{"value": 1}"#));
    }

    #[test]
    fn the_first_match_decides() {
        let list = matchers(
            &[
                spec("regex = 'compare'\noutcome = 'mismatch'"),
                spec("regex = 'rror'\noutcome = 'info'"),
            ],
            &ALL,
            false,
        )
        .unwrap();
        let text: &[u8] = b"Error: compare failed";
        assert_eq!(
            classify(&list, |_| text).map(|m| m.class),
            Some(Class::Mismatch)
        );
        let text: &[u8] = b"Error: timeout";
        assert_eq!(
            classify(&list, |_| text).map(|m| m.class),
            Some(Class::Info)
        );
        let text: &[u8] = b"OK";
        assert!(classify(&list, |_| text).is_none());
    }

    #[test]
    fn bad_matchers_say_what_is_wrong() {
        let e = |t: &str, allowed: &[Class], streams| {
            Matcher::new(&spec(t), allowed, streams).unwrap_err()
        };
        assert!(e("regex = '('\noutcome = 'info'", &ALL, false).contains("does not compile"));
        assert!(e("outcome = 'info'", &ALL, false).contains("regex"));
        assert!(
            e("regex = 'a'\npointer = '/a'\noutcome = 'info'", &ALL, false).contains("not both")
        );
        assert!(e("pointer = 'a'\noutcome = 'info'", &ALL, false).contains("JSON pointer"));
        assert!(e("regex = 'a'\nequals = 1\noutcome = 'info'", &ALL, false).contains("equals"));
        let x = e(
            "regex = 'a'\noutcome = 'not-found'",
            &[Class::Ok, Class::Info],
            false,
        );
        assert!(x.contains("not-found") && x.contains("ok, info"), "{x}");
        assert!(e(
            "regex = 'a'\nstream = 'stderr'\noutcome = 'info'",
            &ALL,
            false
        )
        .contains("command adapter"));
        assert!(e("regex = 'a'\nstream = 'err'\noutcome = 'info'", &ALL, true).contains("stderr"));
        let m = Matcher::new(
            &spec("regex = 'a'\nstream = 'stderr'\noutcome = 'info'"),
            &ALL,
            true,
        )
        .unwrap();
        assert_eq!(m.stream, Stream::Stderr);
        assert!(toml::from_str::<MatchSpec>("regex = 'a'\noutcome = 'maybe'").is_err());
    }

    #[test]
    fn text_values_round_trip_and_unknown_text_stays_visible() {
        for v in [0i64, 5, 42, -3, 1_000_000] {
            assert_eq!(parse_text_value(&format!("{v}\n")), Value::from(v));
            assert_eq!(parse_text_value(&format!("  {v}")), Value::from(v));
        }
        assert_eq!(parse_text_value("[1, 2]"), serde_json::json!([1, 2]));
        assert_eq!(parse_text_value(""), Value::Null);
        assert_eq!(parse_text_value(" \n"), Value::Null);
        assert_eq!(parse_text_value("null"), Value::Null);
        assert_eq!(parse_text_value("Error: x"), Value::from("Error: x"));
        assert_eq!(parse_text_value("042"), Value::from("042"));
    }

    #[test]
    fn values_are_extracted_in_each_form() {
        let etcd = br#"{"action":"get","node":{"key":"/r","value":"42"}}"#;
        assert_eq!(
            extract_value(etcd, "/node/value", ValueForm::String),
            Ok(Value::from(42))
        );
        assert!(extract_value(etcd, "/node/value", ValueForm::Json) == Ok(Value::from("42")));
        assert!(extract_value(etcd, "/node/nope", ValueForm::String).is_err());
        assert!(extract_value(br#"{"v": 4}"#, "/v", ValueForm::String).is_err());
        assert_eq!(
            extract_value(b"7\n", "", ValueForm::Text),
            Ok(Value::from(7))
        );
        assert!(extract_value(b"7\n", "", ValueForm::Json) == Ok(Value::from(7)));
        assert!(extract_value(b"Error", "", ValueForm::Json).is_err());
        assert!(extract_value(&[0xff, 0xfe], "", ValueForm::Text).is_err());
    }
}
