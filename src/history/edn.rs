//! Jepsen `history.edn` import and export (placeholder, being written).
use super::{Event, HistoryError, Source};
use std::path::Path;

/// Parse an EDN history.
pub fn parse_history(_text: &str, path: &Path) -> Result<(Vec<Event>, Source), HistoryError> {
    Err(HistoryError::Parse { path: path.to_path_buf(), line: 1, msg: "EDN import not yet available".into() })
}
