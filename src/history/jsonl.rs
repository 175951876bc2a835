//! `history.jsonl`: one [`Event`] per line, the harness's native history format (DESIGN.md).
//!
//! Blank lines are skipped so that a file a crashed run left half-written is still readable up
//! to its last complete line; a malformed line is an error naming the file and line.

use super::{Event, HistoryError, Source};
use std::io::Write;
use std::path::Path;

/// Parse JSONL text; `path` is used only in error messages.
pub fn parse(text: &str, path: &Path) -> Result<(Vec<Event>, Source), HistoryError> {
    let mut events = Vec::new();
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let ev: Event = serde_json::from_str(trimmed).map_err(|e| HistoryError::Parse {
            path: path.to_path_buf(),
            line: i + 1,
            msg: format!("not a history event: {e}"),
        })?;
        events.push(ev);
        lines.push(i + 1);
    }
    Ok((
        events,
        Source {
            path: path.to_path_buf(),
            lines,
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
