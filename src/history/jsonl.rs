//! `history.jsonl`: one [`Event`] per line, the harness's native history format (DESIGN.md).
//!
//! Blank lines are skipped so that a file a crashed run left half-written is still readable up
//! to its last complete line; a malformed line is an error naming the file and line.

use super::{de_key, Carried, Event, EventType, Fun, HistoryError, Source, Value};
use serde::{Deserialize, Deserializer};
use std::io::Write;
use std::path::Path;

/// One line as written, before defaults: [`Event`] with its optional fields still optional, so
/// that [`Source::carried`] can say which the line really had.
#[derive(Deserialize)]
struct Line {
    index: u64,
    #[serde(rename = "type")]
    kind: EventType,
    process: u64,
    f: Fun,
    #[serde(default, deserialize_with = "de_key")]
    key: Option<String>,
    /// `Some(Null)` for `"value": null`, `None` when the field is absent.
    #[serde(default, deserialize_with = "present")]
    value: Option<Value>,
    #[serde(default)]
    time: Option<u64>,
    #[serde(default)]
    node: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// A field that is present, even as null, is `Some`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// Parse JSONL text; `path` is used only in error messages.
pub fn parse(text: &str, path: &Path) -> Result<(Vec<Event>, Source), HistoryError> {
    let mut events = Vec::new();
    let mut lines = Vec::new();
    let mut carried = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let l: Line = serde_json::from_str(trimmed).map_err(|e| HistoryError::Parse {
            path: path.to_path_buf(),
            line: i + 1,
            msg: format!("not a history event: {e}"),
        })?;
        carried.push(Carried {
            index: true,
            time: l.time.is_some(),
            value: l.value.is_some(),
        });
        events.push(Event {
            index: l.index,
            kind: l.kind,
            process: l.process,
            f: l.f,
            key: l.key,
            value: l.value.unwrap_or(Value::Null),
            time: l.time.unwrap_or(0),
            node: l.node,
            error: l.error,
        });
        lines.push(i + 1);
    }
    Ok((
        events,
        Source {
            path: path.to_path_buf(),
            lines,
            carried,
        },
    ))
}

/// Write events as JSONL, one per line.
pub fn write<W: Write>(mut w: W, events: &[Event]) -> std::io::Result<()> {
    for e in events {
        serde_json::to_writer(&mut w, e)?;
        w.write_all(b"\n")?;
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_design_example() {
        let text = r#"{"index":0,"type":"invoke","process":3,"f":"cas","key":"k2","value":[1,4],"time":1830211,"node":"n2"}
{"index":1,"type":"ok","process":3,"f":"cas","key":"k2","value":[1,4],"time":2933012,"node":"n2"}
"#;
        let (evs, src) = parse(text, Path::new("h.jsonl")).unwrap();
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].key.as_deref(), Some("k2"));
        assert_eq!(src.lines, vec![1, 2]);
    }

    #[test]
    fn malformed_line_names_file_and_line() {
        let text = "{\"index\":0,\"type\":\"invoke\",\"process\":1,\"f\":\"read\"}\n\n{oops\n";
        let e = parse(text, Path::new("h.jsonl")).unwrap_err().to_string();
        assert!(e.starts_with("h.jsonl:3:"), "{e}");
    }

    #[test]
    fn unknown_function_is_rejected() {
        let text = "{\"index\":0,\"type\":\"invoke\",\"process\":1,\"f\":\"incr\"}\n";
        let e = parse(text, Path::new("h.jsonl")).unwrap_err().to_string();
        assert!(e.contains("h.jsonl:1:") && e.contains("incr"), "{e}");
    }
}
