//! Jepsen `history.edn`: import (`raftcheck check run.edn`) and export.
//!
//! Jepsen users already have histories in this form, and Jepsen's tooling reads it, so raftcheck
//! takes it in and gives it back. The reader below is a small, self-contained EDN reader (there is
//! no well-kept crate for it): it knows maps, vectors, lists, sets, keywords, symbols, strings,
//! characters, integers (`N` suffix, hex, radix), floats, ratios, `nil`, booleans, comments,
//! `#_` discards and tagged literals (`#inst "..."`, `#jepsen.history.Op{...}`). Every error names
//! the file and the 1-based line of the offending form.
//!
//! Import accepts both shapes Jepsen writes: one top-level vector (or list) of op maps, and one
//! op map per line. Mapping of an op map to an [`Event`]:
//! - `:process` not an integer (`:nemesis`, or anything else) → the op is skipped;
//! - `:type` `:invoke | :ok | :fail | :info`; `:f` `:read | :write | :cas | :append`; Elle's
//!   `:txn` histories are refused, any other `:f` is an error;
//! - `:value` → JSON (keywords and symbols become strings, `nil` null, vectors/lists/sets arrays);
//! - `:time` (default 0), `:index` (default: the op's position among all ops in the file, nemesis
//!   ops included, as Jepsen numbers them), `:error` (keyword or string → string, anything else →
//!   its EDN text), `:node`.
//!
//! Jepsen (Knossos) treats a `:fail :cas` as "did nothing, saw nothing", so import keeps it a plain
//! fail; [`EdnOptions::fail_cas_is_mismatch`] opts in to reading it as a compare mismatch. An op
//! that says `:error :mismatch` (or `"mismatch"`) itself is kept as written: that is how the
//! export below writes raftcheck's own mismatch observations, so a round trip keeps them.
//!
//! Multi-key histories are recognised by the shape of Jepsen's independent checker (the rule is
//! spelled out on `is_keyed` below); their `[key value]` tuples are split into [`Event::key`]
//! (a string: integer and keyword keys are written as text) and [`Event::value`].

use super::{Carried, Event, EventType, Fun, HistoryError, Source, Value, MISMATCH};
use std::borrow::Cow;
use std::io::{BufWriter, Write};
use std::path::Path;

/// Choices for EDN import that change what an op means.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EdnOptions {
    /// Treat every `:fail` cas as a failed compare (DESIGN.md's `"error":"mismatch"`): the cas
    /// observed a value other than its expected one. Off by default because Jepsen's own clients
    /// also use `:fail` for a cas that was refused for other reasons, and Knossos drops failed ops;
    /// turn it on only for histories whose client fails a cas exactly when its compare fails.
    pub fail_cas_is_mismatch: bool,
}

/// Parse an EDN history with default options (a failed cas stays a plain fail, as in Knossos).
///
/// `path` is used only in error messages and the returned [`Source`].
pub fn parse_history(text: &str, path: &Path) -> Result<(Vec<Event>, Source), HistoryError> {
    parse_history_with(text, path, EdnOptions::default())
}

/// Parse an EDN history; see the module documentation for how op maps become events.
pub(crate) fn parse_history_with(
    text: &str,
    path: &Path,
    opts: EdnOptions,
) -> Result<(Vec<Event>, Source), HistoryError> {
    let err = |line: usize, msg: String| HistoryError::Parse {
        path: path.to_path_buf(),
        line,
        msg,
    };
    // Ops are converted as they are read, so that only one op's forms exist at a time: a
    // million-op history would otherwise hold every map's forms in memory at once.
    let mut reader = Reader::new(text);
    // Each event is built with its value whole and, when the value is tuple-shaped, the tuple's
    // key provisionally in `key`; once the whole history is read, `finish` either splits the
    // tuples or drops the provisional keys. Working in place keeps one copy of a big history.
    let mut events = Vec::new();
    let mut shapes = Vec::new();
    let mut lines = Vec::new();
    let mut carried = Vec::new();
    let mut position = 0u64;
    while let Some(op) = reader.next_op().map_err(|e| err(e.line, e.msg))? {
        let line = op.line;
        if let Some((event, shape)) = read_op(op, position, text).map_err(|m| err(line, m))? {
            events.push(event);
            carried.push(shape.carried);
            shapes.push(shape);
            lines.push(line);
        }
        position += 1;
    }
    let keyed = is_keyed(&events, &shapes);
    for ((e, shape), line) in events.iter_mut().zip(&shapes).zip(&lines) {
        finish(e, shape, keyed, opts, text).map_err(|m| err(*line, m))?;
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

/// Write events as Jepsen EDN, one op map per line (no enclosing vector), so that the file can be
/// appended to and read line by line like `history.jsonl`.
///
/// An event with a key is written in the independent checker's tuple form, `:value ["key" v]`;
/// import recognises a history as keyed only when all its invocations are tuples, so a history
/// should have keys on all events or on none. `:error` and `:node` are written as strings.
pub fn write<W: Write>(w: W, events: &[Event]) -> std::io::Result<()> {
    let mut w = BufWriter::new(w);
    for e in events {
        write!(
            w,
            "{{:index {}, :type :{}, :process {}, :f :{}, :value ",
            e.index,
            type_name(e.kind),
            e.process,
            e.f.name()
        )?;
        match &e.key {
            Some(k) => {
                w.write_all(b"[")?;
                write_string(&mut w, k)?;
                w.write_all(b" ")?;
                write_value(&mut w, &e.value)?;
                w.write_all(b"]")?;
            }
            None => write_value(&mut w, &e.value)?,
        }
        write!(w, ", :time {}", e.time)?;
        if let Some(error) = &e.error {
            w.write_all(b", :error ")?;
            write_string(&mut w, error)?;
        }
        if let Some(node) = &e.node {
            w.write_all(b", :node ")?;
            write_string(&mut w, node)?;
        }
        w.write_all(b"}\n")?;
    }
    w.flush()
}

fn type_name(t: EventType) -> &'static str {
    match t {
        EventType::Invoke => "invoke",
        EventType::Ok => "ok",
        EventType::Fail => "fail",
        EventType::Info => "info",
    }
}

/// JSON → EDN text. Numbers print the same in both (serde_json keeps a `.` or an exponent on
/// floats, so they read back as floats); objects become maps with string keys.
fn write_value<W: Write>(w: &mut W, v: &Value) -> std::io::Result<()> {
    match v {
        Value::Null => w.write_all(b"nil"),
        Value::Bool(b) => write!(w, "{b}"),
        Value::Number(n) => write!(w, "{n}"),
        Value::String(s) => write_string(w, s),
        Value::Array(items) => {
            w.write_all(b"[")?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    w.write_all(b" ")?;
                }
                write_value(w, item)?;
            }
            w.write_all(b"]")
        }
        Value::Object(map) => {
            w.write_all(b"{")?;
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    w.write_all(b", ")?;
                }
                write_string(w, k)?;
                w.write_all(b" ")?;
                write_value(w, item)?;
            }
            w.write_all(b"}")
        }
    }
}

/// An EDN string literal; control characters are escaped so that every op stays on one line.
fn write_string<W: Write>(w: &mut W, s: &str) -> std::io::Result<()> {
    w.write_all(b"\"")?;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let esc: Option<&str> = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\t' => Some("\\t"),
            '\r' => Some("\\r"),
            _ => None,
        };
        if esc.is_none() && !c.is_control() {
            continue;
        }
        w.write_all(&s.as_bytes()[start..i])?;
        match esc {
            Some(e) => w.write_all(e.as_bytes())?,
            None => write!(w, "\\u{:04x}", c as u32)?,
        }
        start = i + c.len_utf8();
    }
    w.write_all(&s.as_bytes()[start..])?;
    w.write_all(b"\"")
}

// ---------------------------------------------------------------------------------------------
// From forms to events
// ---------------------------------------------------------------------------------------------

/// What [`finish`] needs to know about an op's value besides the value itself.
struct Shape {
    /// Where the value is written, for messages.
    value_span: Option<(usize, usize)>,
    /// The value is `[k v]` with `v` itself a 2-element vector (a keyed cas has this shape).
    pair: bool,
    /// Which optional keys the map had (`nil` counts as absent for `:index` and `:time`).
    carried: Carried,
}

/// One op map → an event with its value whole and, if the value is `[k v]` with a scalar `k`,
/// `k` provisionally as its key (see [`finish`]). `Ok(None)` for ops that are not a client's
/// (nemesis ops and any non-integer process).
fn read_op(form: Form<'_>, position: u64, text: &str) -> Result<Option<(Event, Shape)>, String> {
    let form = untag(form);
    let entries = match form.edn {
        Edn::Map(entries) => entries,
        _ => {
            return Err(format!(
                "expected an operation map, got {}",
                span_text(text, (form.start, form.end))
            ))
        }
    };
    let [mut process, mut ty, mut f, mut value, mut time, mut index, mut error, mut node] =
        [None, None, None, None, None, None, None, None];
    for (k, v) in entries {
        let Edn::Keyword(name) = k.edn else { continue };
        let slot = match name {
            "process" => &mut process,
            "type" => &mut ty,
            "f" => &mut f,
            "value" => &mut value,
            "time" => &mut time,
            "index" => &mut index,
            "error" => &mut error,
            "node" => &mut node,
            _ => continue,
        };
        *slot = Some(v);
    }
    let shown = |v: &Option<Form<'_>>| v.as_ref().map_or("nothing", |v| source_text(text, v));

    let process = match process.as_ref().map(|p| &p.edn) {
        Some(Edn::Int(n)) => u64::try_from(*n)
            .map_err(|_| format!("process {n} is not a non-negative 64-bit integer"))?,
        Some(_) => return Ok(None),
        None => return Err("operation has no :process".into()),
    };
    let kind = match ty.as_ref().and_then(name_of) {
        Some("invoke") => EventType::Invoke,
        Some("ok") => EventType::Ok,
        Some("fail") => EventType::Fail,
        Some("info") => EventType::Info,
        _ => {
            return Err(format!(
                "operation :type must be :invoke, :ok, :fail or :info, got {}",
                shown(&ty)
            ))
        }
    };
    let f = match f.as_ref().and_then(name_of) {
        Some("read") => Fun::Read,
        Some("write") => Fun::Write,
        Some("cas") => Fun::Cas,
        Some("append") => Fun::Append,
        Some("txn") => {
            return Err("Elle :txn histories are not supported: raftcheck checks \
                        single-object read/write/cas/append histories (use Elle for \
                        transactional ones)"
                .into())
        }
        _ => {
            return Err(format!(
                "unsupported :f {} (expected :read, :write, :cas or :append)",
                shown(&f)
            ))
        }
    };
    let nat = |name: &str, v: &Option<Form<'_>>, default: u64| -> Result<u64, String> {
        match v.as_ref().map(|v| &v.edn) {
            None | Some(Edn::Nil) => Ok(default),
            Some(Edn::Int(n)) => u64::try_from(*n)
                .map_err(|_| format!(":{name} {n} is not a non-negative 64-bit integer")),
            Some(_) => Err(format!(":{name} must be an integer, got {}", shown(v))),
        }
    };
    let words = |v: Option<Form<'_>>| -> Option<String> {
        let v = v?;
        match v.edn {
            Edn::Nil => None,
            Edn::Str(s) => Some(s.into_owned()),
            Edn::Keyword(s) | Edn::Symbol(s) => Some(s.to_string()),
            _ => Some(source_text(text, &v).to_string()),
        }
    };
    let (tuple_key, pair) = match value.as_ref().map(|v| &v.edn) {
        Some(Edn::Vector(t) | Edn::List(t)) if t.len() == 2 => (
            key_of(&t[0]),
            matches!(&t[1].edn, Edn::Vector(p) | Edn::List(p) if p.len() == 2),
        ),
        _ => (None, false),
    };
    let given = |v: &Option<Form<'_>>| v.as_ref().is_some_and(|v| !matches!(v.edn, Edn::Nil));
    let shape = Shape {
        value_span: value.as_ref().map(|v| (v.start, v.end)),
        pair,
        carried: Carried {
            index: given(&index),
            time: given(&time),
            value: value.is_some(),
        },
    };
    let event = Event {
        index: nat("index", &index, position)?,
        kind,
        process,
        f,
        key: tuple_key,
        value: value
            .as_ref()
            .map_or(Ok(Value::Null), |v| to_json(v, text))?,
        time: nat("time", &time, 0)?,
        node: words(node),
        error: words(error),
    };
    Ok(Some((event, shape)))
}

/// Settle an event once the history's keyed-ness is known: split a tuple into key and value, or
/// drop the provisional key; and apply [`EdnOptions::fail_cas_is_mismatch`].
fn finish(
    e: &mut Event,
    shape: &Shape,
    keyed: bool,
    opts: EdnOptions,
    text: &str,
) -> Result<(), String> {
    if !keyed {
        e.key = None;
    } else if e.key.is_some() {
        // A tuple-shaped value converts to a 2-element array; its second element is the op's
        // own value.
        if let Value::Array(t) = std::mem::take(&mut e.value) {
            e.value = t.into_iter().nth(1).unwrap_or_default();
        }
    } else if !(e.value.is_null() && e.kind != EventType::Invoke) {
        return Err(format!(
            "this history has [key value] tuples as values (Jepsen's independent checker), but \
             this {} {} has value {}",
            type_name(e.kind),
            e.f.name(),
            shape.value_span.map_or("nothing", |s| span_text(text, s))
        ));
    }
    if opts.fail_cas_is_mismatch && e.kind == EventType::Fail && e.f == Fun::Cas {
        e.error = Some(MISMATCH.to_string());
    }
    Ok(())
}

/// Whether a history is a multi-key history in Jepsen's independent-checker form.
///
/// A cas value `[1 4]` has the same shape as a tuple `[k v]`, so the decision is made once per
/// history, from its invocations (completions follow their invocation):
/// - every `:read`, `:write` and `:append` invocation has a 2-element vector value whose first
///   element is a scalar key (integer, string or keyword); Jepsen writes reads as `[k nil]`;
/// - every `:cas` invocation has the value `[key [from to]]`: a 2-element vector whose first
///   element is a scalar key and whose second is itself a 2-element vector;
/// - and there is at least one invocation.
///
/// A single-register history always fails this test as soon as it has one read (invoked with
/// `nil`), one cas (`[from to]` whose second element is not a pair) or one scalar write/append.
fn is_keyed(events: &[Event], shapes: &[Shape]) -> bool {
    let mut invokes = events
        .iter()
        .zip(shapes)
        .filter(|(e, _)| e.kind == EventType::Invoke)
        .peekable();
    invokes.peek().is_some()
        && invokes.all(|(e, shape)| e.key.is_some() && (e.f != Fun::Cas || shape.pair))
}

/// A scalar usable as a key, as the string raftcheck keys are.
fn key_of(form: &Form) -> Option<String> {
    match &form.edn {
        Edn::Int(n) => Some(n.to_string()),
        Edn::Str(s) => Some(s.to_string()),
        Edn::Keyword(s) => Some(s.to_string()),
        _ => None,
    }
}

/// The name of a keyword (or a string) used as an enum, e.g. `:invoke`.
fn name_of<'f>(form: &'f Form) -> Option<&'f str> {
    match &form.edn {
        Edn::Keyword(s) => Some(s),
        Edn::Str(s) => Some(s),
        _ => None,
    }
}

/// The form inside any tags: Jepsen ≥ 0.3 prints ops as `#jepsen.history.Op{...}`.
fn untag(form: Form<'_>) -> Form<'_> {
    match form.edn {
        Edn::Tagged(_, inner) => untag(*inner),
        edn => Form { edn, ..form },
    }
}

fn span_text(text: &str, (start, end): (usize, usize)) -> &str {
    text.get(start..end).unwrap_or("?")
}

/// The form exactly as written, for messages and for `:error` values that are not plain names.
fn source_text<'t>(text: &'t str, form: &Form) -> &'t str {
    span_text(text, (form.start, form.end))
}

/// EDN → JSON: keywords and symbols lose their colon, tags are dropped, sets become arrays.
fn to_json(form: &Form, text: &str) -> Result<Value, String> {
    Ok(match &form.edn {
        Edn::Nil => Value::Null,
        Edn::Bool(b) => Value::Bool(*b),
        Edn::Int(n) => {
            if let Ok(i) = i64::try_from(*n) {
                Value::from(i)
            } else if let Ok(u) = u64::try_from(*n) {
                Value::from(u)
            } else {
                return Err(format!("integer {n} does not fit in 64 bits"));
            }
        }
        Edn::Float(x) => serde_json::Number::from_f64(*x)
            .map(Value::Number)
            .ok_or_else(|| format!("{} has no JSON representation", source_text(text, form)))?,
        Edn::Str(s) => Value::String(s.to_string()),
        Edn::Keyword(s) | Edn::Symbol(s) => Value::String(s.to_string()),
        Edn::Char(c) => Value::String(c.to_string()),
        Edn::List(items) | Edn::Vector(items) | Edn::Set(items) => Value::Array(
            items
                .iter()
                .map(|i| to_json(i, text))
                .collect::<Result<_, _>>()?,
        ),
        Edn::Map(entries) => {
            let mut map = serde_json::Map::with_capacity(entries.len());
            for (k, v) in entries {
                let key = match &k.edn {
                    Edn::Str(s) => s.to_string(),
                    Edn::Keyword(s) | Edn::Symbol(s) => s.to_string(),
                    _ => source_text(text, k).to_string(),
                };
                map.insert(key, to_json(v, text)?);
            }
            Value::Object(map)
        }
        Edn::Tagged(_, inner) => to_json(inner, text)?,
    })
}

// ---------------------------------------------------------------------------------------------
// The EDN reader
// ---------------------------------------------------------------------------------------------

/// One EDN value with where it was written: its first line (for messages) and its byte span.
#[derive(Debug, Clone, PartialEq)]
struct Form<'a> {
    line: usize,
    start: usize,
    end: usize,
    edn: Edn<'a>,
}

#[derive(Debug, Clone, PartialEq)]
enum Edn<'a> {
    Nil,
    Bool(bool),
    Int(i128),
    Float(f64),
    /// Borrowed from the text unless it had escapes.
    Str(Cow<'a, str>),
    Char(char),
    /// Without the leading colon; `:foo/bar` is `foo/bar`.
    Keyword(&'a str),
    Symbol(&'a str),
    List(Vec<Form<'a>>),
    Vector(Vec<Form<'a>>),
    Map(Vec<(Form<'a>, Form<'a>)>),
    Set(Vec<Form<'a>>),
    Tagged(&'a str, Box<Form<'a>>),
}

#[derive(Debug)]
struct ReadError {
    line: usize,
    msg: String,
}

/// Nesting deeper than this is refused rather than risking the stack; histories nest 3 or 4 deep.
const MAX_DEPTH: usize = 128;

struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    line: usize,
    depth: usize,
    /// The closer and opening line of the top-level vector or list being read, if any.
    top: Option<(u8, usize)>,
}

fn is_delimiter(b: u8) -> bool {
    matches!(
        b,
        b'(' | b')' | b'[' | b']' | b'{' | b'}' | b'"' | b';' | b','
    ) || b.is_ascii_whitespace()
}

impl<'a> Reader<'a> {
    fn new(text: &'a str) -> Self {
        let pos = if text.starts_with('\u{feff}') { 3 } else { 0 };
        Reader {
            text,
            bytes: text.as_bytes(),
            pos,
            line: 1,
            depth: 0,
            top: None,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn error(&self, msg: impl Into<String>) -> ReadError {
        ReadError {
            line: self.line,
            msg: msg.into(),
        }
    }

    /// One level deeper (collections, tags, discards): refuse input nested so deep that the
    /// recursive reader, [`to_json`] or dropping the forms could overflow the stack.
    fn enter(&mut self) -> Result<(), ReadError> {
        if self.depth >= MAX_DEPTH {
            return Err(self.error(format!("forms nested more than {MAX_DEPTH} deep")));
        }
        self.depth += 1;
        Ok(())
    }

    /// The next op form: a top-level form, or an element of a top-level vector or list (a
    /// history written as one vector of maps). `None` at the end of the text.
    fn next_op(&mut self) -> Result<Option<Form<'a>>, ReadError> {
        loop {
            self.skip_ws()?;
            let c = self.peek();
            match (self.top, c) {
                (None, None) => return Ok(None),
                (Some((_, open_line)), None) => {
                    return Err(ReadError {
                        line: open_line,
                        msg: "unterminated history vector: nothing closes the one opened here"
                            .into(),
                    })
                }
                (Some((close, _)), Some(c)) if c == close => {
                    self.pos += 1;
                    self.depth -= 1;
                    self.top = None;
                }
                (None, Some(open @ (b'[' | b'('))) => {
                    self.enter()?;
                    self.pos += 1;
                    let close = if open == b'[' { b']' } else { b')' };
                    self.top = Some((close, self.line));
                }
                (_, Some(c @ (b')' | b']' | b'}'))) => {
                    return Err(self.error(format!("unmatched '{}'", c as char)))
                }
                (_, Some(_)) => return self.read_form().map(Some),
            }
        }
    }

    /// Skip whitespace, commas, `;` comments and `#_` discarded forms.
    fn skip_ws(&mut self) -> Result<(), ReadError> {
        while let Some(b) = self.peek() {
            match b {
                b'\n' => {
                    self.line += 1;
                    self.pos += 1;
                }
                b',' => self.pos += 1,
                _ if b.is_ascii_whitespace() => self.pos += 1,
                b';' => {
                    while self.peek().is_some_and(|c| c != b'\n') {
                        self.pos += 1;
                    }
                }
                b'#' if self.bytes.get(self.pos + 1) == Some(&b'_') => {
                    self.pos += 2;
                    self.enter()?;
                    self.skip_ws()?;
                    match self.peek() {
                        None | Some(b')' | b']' | b'}') => {
                            return Err(self.error("#_ is not followed by a form to discard"))
                        }
                        Some(_) => {
                            self.read_form()?;
                        }
                    }
                    self.depth -= 1;
                }
                _ => break,
            }
        }
        Ok(())
    }

    /// Read one form; the caller has skipped whitespace and checked that one starts here.
    fn read_form(&mut self) -> Result<Form<'a>, ReadError> {
        let start = self.pos;
        let line = self.line;
        let Some(c) = self.peek() else {
            return Err(self.error("unexpected end of input"));
        };
        let edn = match c {
            b'(' => Edn::List(self.read_seq(b')', "list", line)?),
            b'[' => Edn::Vector(self.read_seq(b']', "vector", line)?),
            b'{' => self.read_map(line)?,
            b'"' => Edn::Str(self.read_string()?),
            b'\\' => Edn::Char(self.read_char()?),
            b'#' => self.read_dispatch(line)?,
            b')' | b']' | b'}' => return Err(self.error(format!("unmatched '{}'", c as char))),
            b':' => {
                self.pos += 1;
                let name = self.token();
                if name.is_empty() {
                    return Err(self.error("':' is not followed by a keyword name"));
                }
                Edn::Keyword(name)
            }
            _ => {
                let tok = self.token();
                atom(tok).map_err(|m| ReadError { line, msg: m })?
            }
        };
        Ok(Form {
            line,
            start,
            end: self.pos,
            edn,
        })
    }

    /// A symbol, number or keyword name: everything up to the next delimiter. Never empty when
    /// called on a non-delimiter, and always ends on a character boundary (delimiters are ASCII).
    fn token(&mut self) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(|b| !is_delimiter(b)) {
            self.pos += 1;
        }
        &self.text[start..self.pos]
    }

    /// Elements up to `close`, which is consumed. `pos` is on the opening delimiter.
    fn read_seq(
        &mut self,
        close: u8,
        what: &str,
        open_line: usize,
    ) -> Result<Vec<Form<'a>>, ReadError> {
        self.enter()?;
        // Skip the opening delimiter: one byte, or two for `#{`.
        self.pos += if self.peek() == Some(b'#') { 2 } else { 1 };
        let mut items = Vec::new();
        loop {
            self.skip_ws()?;
            match self.peek() {
                None => {
                    return Err(ReadError {
                        line: open_line,
                        msg: format!(
                            "unterminated {what}: no '{}' closes the one opened here",
                            close as char
                        ),
                    })
                }
                Some(c) if c == close => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(items);
                }
                Some(c @ (b')' | b']' | b'}')) => {
                    return Err(self.error(format!(
                    "'{}' where '{}' was expected to close the {what} opened on line {open_line}",
                    c as char, close as char
                )))
                }
                Some(_) => items.push(self.read_form()?),
            }
        }
    }

    fn read_map(&mut self, open_line: usize) -> Result<Edn<'a>, ReadError> {
        let items = self.read_seq(b'}', "map", open_line)?;
        let n = items.len();
        let mut entries = Vec::with_capacity(n / 2);
        let mut it = items.into_iter();
        while let Some(k) = it.next() {
            let Some(v) = it.next() else {
                return Err(ReadError {
                    line: open_line,
                    msg: format!("map has an odd number of forms ({n}): a key without a value"),
                });
            };
            entries.push((k, v));
        }
        Ok(Edn::Map(entries))
    }

    /// `#{...}` sets, `##Inf`-style symbolic values and `#tag form` tagged literals.
    fn read_dispatch(&mut self, line: usize) -> Result<Edn<'a>, ReadError> {
        match self.bytes.get(self.pos + 1) {
            Some(b'{') => Ok(Edn::Set(self.read_seq(b'}', "set", line)?)),
            Some(b'#') => {
                self.pos += 2;
                match self.token() {
                    "Inf" => Ok(Edn::Float(f64::INFINITY)),
                    "-Inf" => Ok(Edn::Float(f64::NEG_INFINITY)),
                    "NaN" => Ok(Edn::Float(f64::NAN)),
                    other => Err(self.error(format!("unknown symbolic value ##{other}"))),
                }
            }
            Some(b) if !is_delimiter(*b) && *b != b'#' => {
                self.pos += 1;
                let tag = self.token();
                self.enter()?;
                self.skip_ws()?;
                let inner = match self.peek() {
                    None | Some(b')' | b']' | b'}') => {
                        return Err(self.error(format!("tag #{tag} is not followed by a form")))
                    }
                    Some(_) => self.read_form()?,
                };
                self.depth -= 1;
                Ok(Edn::Tagged(tag, Box::new(inner)))
            }
            _ => Err(self.error("'#' is not followed by a set, a tag or a discard")),
        }
    }

    /// A string literal with Clojure's escapes; `pos` is on the opening quote.
    fn read_string(&mut self) -> Result<Cow<'a, str>, ReadError> {
        let open_line = self.line;
        self.pos += 1;
        // Most strings have no escapes and are borrowed; `owned` starts at the first escape.
        // `run` is where the text not yet copied into `owned` starts. Runs begin and end next to
        // ASCII bytes (quotes, backslashes, escape letters and digits), so on char boundaries.
        let mut owned: Option<String> = None;
        let mut run = self.pos;
        loop {
            let Some(b) = self.peek() else {
                return Err(ReadError {
                    line: open_line,
                    msg: "unterminated string".into(),
                });
            };
            match b {
                b'"' => {
                    let tail = &self.text[run..self.pos];
                    self.pos += 1;
                    return Ok(match owned {
                        None => Cow::Borrowed(tail),
                        Some(mut s) => {
                            s.push_str(tail);
                            Cow::Owned(s)
                        }
                    });
                }
                b'\\' => {
                    let s = owned.get_or_insert_with(String::new);
                    s.push_str(&self.text[run..self.pos]);
                    self.pos += 1;
                    s.push(self.read_escape()?);
                    run = self.pos;
                }
                b'\n' => {
                    self.line += 1;
                    self.pos += 1;
                }
                _ => self.pos += 1,
            }
        }
    }

    /// The character after a backslash inside a string; `pos` is just past the backslash.
    fn read_escape(&mut self) -> Result<char, ReadError> {
        let Some(b) = self.peek() else {
            return Err(self.error("unterminated string"));
        };
        self.pos += 1;
        Ok(match b {
            b'n' => '\n',
            b't' => '\t',
            b'r' => '\r',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'"' => '"',
            b'\\' => '\\',
            b'u' => {
                let hi = self.hex4()?;
                if (0xD800..0xDC00).contains(&hi) && self.bytes[self.pos..].starts_with(b"\\u") {
                    self.pos += 2;
                    let lo = self.hex4()?;
                    let c = 0x10000 + ((hi - 0xD800) << 10) + lo.wrapping_sub(0xDC00);
                    if !(0xDC00..0xE000).contains(&lo) {
                        return Err(self.error("unpaired surrogate in \\u escape"));
                    }
                    char::from_u32(c).ok_or_else(|| self.error("bad \\u escape"))?
                } else {
                    char::from_u32(hi)
                        .ok_or_else(|| self.error("unpaired surrogate in \\u escape"))?
                }
            }
            b'0'..=b'7' => {
                let mut n = u32::from(b - b'0');
                for _ in 0..2 {
                    match self.peek() {
                        Some(d @ b'0'..=b'7') => {
                            n = n * 8 + u32::from(d - b'0');
                            self.pos += 1;
                        }
                        _ => break,
                    }
                }
                if n > 0o377 {
                    return Err(self.error("octal escape larger than \\377"));
                }
                char::from_u32(n).ok_or_else(|| self.error("bad octal escape"))?
            }
            _ => {
                let c = self.text[self.pos - 1..].chars().next().unwrap_or('?');
                return Err(self.error(format!("unknown escape \\{c} in string")));
            }
        })
    }

    fn hex4(&mut self) -> Result<u32, ReadError> {
        let digits = self
            .text
            .get(self.pos..self.pos + 4)
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| self.error("\\u must be followed by four hex digits"))?;
        self.pos += 4;
        u32::from_str_radix(digits, 16).map_err(|_| self.error("bad \\u escape"))
    }

    /// A character literal: `\a`, `\newline`, `\space`, `\tab`, `\u0041`, `\o101`, ...
    fn read_char(&mut self) -> Result<char, ReadError> {
        self.pos += 1;
        let start = self.pos;
        let Some(first) = self.text[start..].chars().next() else {
            return Err(self.error("'\\' at end of input"));
        };
        self.pos += first.len_utf8();
        if first == '\n' {
            self.line += 1;
        }
        while self.peek().is_some_and(|b| b.is_ascii_alphanumeric()) {
            self.pos += 1;
        }
        let name = &self.text[start..self.pos];
        let code = |digits: &str, radix: u32| {
            u32::from_str_radix(digits, radix)
                .ok()
                .and_then(char::from_u32)
        };
        let c = match name {
            _ if name.len() == first.len_utf8() => Some(first),
            "newline" => Some('\n'),
            "space" => Some(' '),
            "tab" => Some('\t'),
            "return" => Some('\r'),
            "backspace" => Some('\u{8}'),
            "formfeed" => Some('\u{c}'),
            _ if name.len() == 5 && name.starts_with('u') => code(&name[1..], 16),
            _ if name.len() > 1 && name.len() <= 4 && name.starts_with('o') => code(&name[1..], 8),
            _ => None,
        };
        c.ok_or_else(|| self.error(format!("unknown character literal \\{name}")))
    }
}

/// A token that is not a keyword: `nil`, a boolean, a number or a symbol.
fn atom(tok: &str) -> Result<Edn<'_>, String> {
    let b = tok.as_bytes();
    let numeric = match b {
        [d, ..] if d.is_ascii_digit() => true,
        [b'+' | b'-', d, ..] if d.is_ascii_digit() => true,
        _ => false,
    };
    Ok(match tok {
        "nil" => Edn::Nil,
        "true" => Edn::Bool(true),
        "false" => Edn::Bool(false),
        _ if numeric => number(tok)?,
        _ => Edn::Symbol(tok),
    })
}

/// Clojure number syntax: `42`, `-7`, `42N`, `0x2A`, `2r101010`, `1.5`, `1e9`, `1.5M`, `1/3`.
fn number(tok: &str) -> Result<Edn<'static>, String> {
    let bad = || format!("invalid number {tok}");
    let (neg, body) = match tok.as_bytes()[0] {
        b'-' => (true, &tok[1..]),
        b'+' => (false, &tok[1..]),
        _ => (false, tok),
    };
    let int = |digits: &str, radix: u32| -> Result<Edn<'static>, String> {
        if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
            return Err(bad());
        }
        let n = i128::from_str_radix(digits, radix)
            .map_err(|_| format!("integer {tok} is out of range"))?;
        Ok(Edn::Int(if neg { -n } else { n }))
    };
    let float = |s: &str| -> Result<Edn<'static>, String> {
        s.parse::<f64>().map(Edn::Float).map_err(|_| bad())
    };
    if let Some(digits) = body.strip_suffix('N') {
        return int(digits, 10);
    }
    if let Some(decimal) = tok.strip_suffix('M') {
        return float(decimal);
    }
    if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        return int(hex, 16);
    }
    if let Some((radix, digits)) = body.split_once(['r', 'R']) {
        return match radix.parse::<u32>() {
            Ok(r) if (2..=36).contains(&r) => int(digits, r),
            _ => Err(bad()),
        };
    }
    if let Some((n, d)) = tok.split_once('/') {
        let (Ok(n), Ok(d)) = (n.parse::<f64>(), d.parse::<f64>()) else {
            return Err(bad());
        };
        return Ok(Edn::Float(n / d));
    }
    if body.contains(['.', 'e', 'E']) {
        return float(tok);
    }
    int(body, 10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{pair, Outcome};
    use serde_json::json;

    fn parse(text: &str) -> Vec<Event> {
        parse_history(text, Path::new("h.edn")).unwrap().0
    }

    fn parse_err(text: &str) -> String {
        parse_history(text, Path::new("h.edn"))
            .unwrap_err()
            .to_string()
    }

    /// Every top-level form, without `next_op`'s descent into a top-level vector.
    fn read_all(text: &str) -> Result<Vec<Form<'_>>, ReadError> {
        let mut reader = Reader::new(text);
        let mut forms = Vec::new();
        loop {
            reader.skip_ws()?;
            if reader.peek().is_none() {
                return Ok(forms);
            }
            forms.push(reader.read_form()?);
        }
    }

    fn read_one(text: &str) -> Edn<'_> {
        let mut forms = read_all(text).unwrap();
        assert_eq!(forms.len(), 1, "{text}");
        forms.remove(0).edn
    }

    #[test]
    fn vector_of_maps() {
        let text = "[{:type :invoke, :f :write, :value 3, :process 0, :time 10, :index 0}\n \
                    {:type :ok, :f :write, :value 3, :process 0, :time 20, :index 1}\n \
                    {:type :invoke, :f :read, :value nil, :process 1, :time 30, :index 2}\n \
                    {:type :ok, :f :read, :value 3, :process 1, :time 40, :index 3}]\n";
        let (evs, src) = parse_history(text, Path::new("h.edn")).unwrap();
        assert_eq!(evs.len(), 4);
        assert_eq!(src.lines, vec![1, 2, 3, 4]);
        assert_eq!(evs[0].kind, EventType::Invoke);
        assert_eq!(evs[0].f, Fun::Write);
        assert_eq!(evs[0].value, json!(3));
        assert_eq!(evs[3].time, 40);
        assert_eq!(evs[2].value, Value::Null);
        assert!(evs.iter().all(|e| e.key.is_none()));
        let ops = pair(&evs, &src).unwrap();
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[1].value, json!(3));
    }

    #[test]
    fn one_map_per_line_with_comments_and_commas() {
        let text = "; a Jepsen history\n\
                    {:index 0 :type :invoke :process 3 :f :cas :value [1 4] :time 1830211}, ; cas\n\
                    \n\
                    ,,{:index 1, :type :ok, :process 3, :f :cas, :value [1 4], :time 2933012 \
                    :node \"n2\"}\n";
        let (evs, src) = parse_history(text, Path::new("h.edn")).unwrap();
        assert_eq!(src.lines, vec![2, 4]);
        assert_eq!(evs[0].value, json!([1, 4]));
        assert_eq!(evs[0].key, None, "a cas pair is not a keyed tuple");
        assert_eq!(evs[1].node.as_deref(), Some("n2"));
        assert_eq!(evs[1].kind, EventType::Ok);
    }

    #[test]
    fn defaults_for_index_and_time() {
        let evs = parse("{:type :invoke :process 0 :f :read}\n{:type :ok :process 0 :f :read}");
        assert_eq!((evs[0].index, evs[1].index), (0, 1));
        assert_eq!((evs[0].time, evs[1].time), (0, 0));
        assert_eq!(evs[1].value, Value::Null);
    }

    #[test]
    fn nemesis_and_non_integer_processes_are_ignored() {
        let text = "{:type :invoke, :f :write, :value 1, :process 0}\n\
                    {:type :info, :f :start-partition, :value nil, :process :nemesis}\n\
                    {:type :info, :f :start-partition, :value [:isolated {\"n1\" #{\"n2\"}}], \
                    :process :nemesis}\n\
                    {:type :info, :f :log, :process \"logger\"}\n\
                    {:type :ok, :f :write, :value 1, :process 0}\n";
        let (evs, src) = parse_history(text, Path::new("h.edn")).unwrap();
        assert_eq!(evs.len(), 2);
        assert_eq!(src.lines, vec![1, 5]);
        // Default indexes count every op in the file, as Jepsen numbers them.
        assert_eq!(evs[1].index, 4);
    }

    #[test]
    fn keyed_tuple_histories_are_split() {
        let text = "{:type :invoke, :f :read, :value [0 nil], :process 0}\n\
                    {:type :invoke, :f :write, :value [1 5], :process 1}\n\
                    {:type :invoke, :f :cas, :value [0 [nil 2]], :process 2}\n\
                    {:type :ok, :f :read, :value [0 nil], :process 0}\n\
                    {:type :info, :f :write, :value [1 5], :process 1}\n\
                    {:type :fail, :f :cas, :value [0 [nil 2]], :process 2}\n\
                    {:type :invoke, :f :append, :value [\"k\" 7], :process 3}\n\
                    {:type :ok, :f :append, :value [:k 7], :process 3}\n";
        let evs = parse(text);
        let keys: Vec<_> = evs.iter().map(|e| e.key.as_deref()).collect();
        assert_eq!(
            keys,
            [
                Some("0"),
                Some("1"),
                Some("0"),
                Some("0"),
                Some("1"),
                Some("0"),
                Some("k"),
                Some("k")
            ]
        );
        assert_eq!(evs[0].value, Value::Null);
        assert_eq!(evs[1].value, json!(5));
        assert_eq!(evs[2].value, json!([null, 2]));
        assert_eq!(evs[5].error, None);
        assert_eq!(evs[6].value, json!(7));
    }

    #[test]
    fn a_single_register_cas_history_is_not_keyed() {
        // Every value is a 2-vector with a scalar first, but cas values are [from to] with a
        // scalar second element, and reads are invoked with nil.
        let text = "{:type :invoke, :f :cas, :value [1 4], :process 0}\n\
                    {:type :invoke, :f :write, :value [1 2], :process 1}\n";
        let evs = parse(text);
        assert!(evs.iter().all(|e| e.key.is_none()));
        assert_eq!(evs[0].value, json!([1, 4]));
    }

    #[test]
    fn keyed_history_with_a_bad_completion_names_its_line() {
        let text = "{:type :invoke, :f :write, :value [1 5], :process 1}\n\
                    {:type :ok, :f :write, :value 5, :process 1}\n";
        let e = parse_err(text);
        assert!(e.starts_with("h.edn:2:") && e.contains("tuple"), "{e}");
    }

    #[test]
    fn failed_cas_is_a_plain_fail_unless_asked() {
        let text = "{:type :invoke, :f :cas, :value [1 4], :process 0}\n\
                    {:type :fail, :f :cas, :value [1 4], :process 0}\n";
        let src = Source::memory(2);
        let evs = parse(text);
        assert_eq!(evs[1].error, None);
        assert_eq!(pair(&evs, &src).unwrap()[0].outcome, Outcome::Fail);

        let opts = EdnOptions {
            fail_cas_is_mismatch: true,
        };
        let (evs, _) = parse_history_with(text, Path::new("h.edn"), opts).unwrap();
        assert_eq!(evs[1].error.as_deref(), Some(MISMATCH));
        assert_eq!(pair(&evs, &src).unwrap()[0].outcome, Outcome::Mismatch);
    }

    #[test]
    fn errors_become_strings() {
        let text = "{:type :invoke, :f :write, :value 1, :process 0}\n\
                    {:type :info, :f :write, :value 1, :process 0, :error :timeout}\n\
                    {:type :invoke, :f :write, :value 2, :process 1}\n\
                    {:type :fail, :f :write, :value 2, :process 1, :error \"refused\"}\n\
                    {:type :invoke, :f :write, :value 3, :process 2}\n\
                    {:type :info, :f :write, :value 3, :process 2, :error [:net/timeout \"x\"]}\n";
        let evs = parse(text);
        assert_eq!(evs[1].error.as_deref(), Some("timeout"));
        assert_eq!(evs[3].error.as_deref(), Some("refused"));
        assert_eq!(evs[5].error.as_deref(), Some("[:net/timeout \"x\"]"));
    }

    #[test]
    fn txn_histories_are_refused_naming_the_line() {
        let text = "{:type :invoke, :f :read, :value nil, :process 0}\n\
                    {:type :invoke, :f :txn, :value [[:append 1 2] [:r 1 nil]], :process 1}\n";
        let e = parse_err(text);
        assert!(
            e.starts_with("h.edn:2:") && e.contains("Elle :txn histories are not supported"),
            "{e}"
        );
    }

    #[test]
    fn unknown_function_is_refused_naming_the_line_and_f() {
        let e = parse_err("\n\n{:type :invoke, :f :incr, :value 1, :process 0}");
        assert!(e.starts_with("h.edn:3:") && e.contains(":incr"), "{e}");
        let e = parse_err("{:type :invoke, :f :r, :value nil, :process 0}");
        assert!(e.contains(":r"), "{e}");
    }

    #[test]
    fn bad_fields_are_errors_naming_the_line() {
        let e = parse_err("{:type :invoke :f :read :process 0}\n{:type :done :f :read :process 0}");
        assert!(e.starts_with("h.edn:2:") && e.contains(":done"), "{e}");
        let e = parse_err("{:type :invoke :f :read}");
        assert!(e.starts_with("h.edn:1:") && e.contains(":process"), "{e}");
        let e = parse_err("{:type :invoke :f :read :process -1}");
        assert!(e.contains("process -1"), "{e}");
        let e = parse_err("{:type :invoke :f :read :process 0 :time \"soon\"}");
        assert!(e.contains(":time"), "{e}");
        let e = parse_err("[{:type :invoke :f :read :process 0}\n [:not :a :map]]");
        assert!(
            e.starts_with("h.edn:2:") && e.contains("operation map"),
            "{e}"
        );
        let e = parse_err("{:type :invoke :f :write :process 0 :value 99999999999999999999999}");
        assert!(e.contains("64 bits"), "{e}");
    }

    #[test]
    fn malformed_forms_name_their_line() {
        // An unterminated map is reported where it opens.
        let e = parse_err("{:type :invoke :f :read :process 0}\n{:type :ok :f :read\n:process 0\n");
        assert!(
            e.starts_with("h.edn:2:") && e.contains("unterminated map"),
            "{e}"
        );
        // A stray closer where it is.
        let e = parse_err("{:type :invoke :f :read :process 0}\n\n]\n");
        assert!(e.starts_with("h.edn:3:") && e.contains("unmatched"), "{e}");
        // A mismatched closer.
        let e = parse_err("[{:type :invoke :f :read :process 0)\n]");
        assert!(e.starts_with("h.edn:1:") && e.contains("expected"), "{e}");
        // An odd map.
        let e = parse_err("\n{:type :invoke :f}");
        assert!(e.starts_with("h.edn:2:") && e.contains("odd"), "{e}");
        // A bad number and a bad escape, on their own lines.
        let e = parse_err("{:type :invoke :f :write :process 0\n :value 12abc}");
        assert!(e.starts_with("h.edn:2:") && e.contains("12abc"), "{e}");
        let e = parse_err("{:type :invoke :f :write :process 0\n\n :value \"a\\qb\"}");
        assert!(e.starts_with("h.edn:3:") && e.contains("escape"), "{e}");
        // A history vector that never closes is reported where it opens.
        let e =
            parse_err("\n[{:type :invoke :f :read :process 0}\n{:type :ok :f :read :process 0}\n");
        assert!(
            e.starts_with("h.edn:2:") && e.contains("unterminated history"),
            "{e}"
        );
        let e = parse_err("[{:type :invoke :f :read :process 0}\n}");
        assert!(
            e.starts_with("h.edn:2:") && e.contains("unmatched '}'"),
            "{e}"
        );
        let e = parse_err("{:value \"abc}\n");
        assert!(
            e.starts_with("h.edn:1:") && e.contains("unterminated string"),
            "{e}"
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        for text in [
            "[".repeat(100_000),
            "#a ".repeat(100_000),
            "#_ ".repeat(100_000),
        ] {
            let e = parse_err(&text);
            assert!(e.contains("nested"), "{e}");
        }
    }

    #[test]
    fn ignored_values_may_use_any_edn() {
        let text = "#jepsen.history.Op{:index 0, :time 5, :type :invoke, :process 0, :f :write, \
                    :value 1, :extra #{1 2 #{3}}, :when #inst \"2024-01-01T00:00:00Z\", \
                    :id #uuid \"00000000-0000-0000-0000-000000000000\", :c \\a, :d \\newline, \
                    :r 1/2, :big 12345678901234567890123N, :m 1.5M, :inf ##Inf, :sym foo/bar, \
                    #_ :discarded #_ 42 :q 'x}\n";
        let evs = parse(text);
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].time, 5);
        assert_eq!(evs[0].value, json!(1));
    }

    #[test]
    fn edn_values_become_json() {
        let cases = [
            ("-7", json!(-7)),
            ("42N", json!(42)),
            ("18446744073709551615", json!(u64::MAX)),
            ("0x1F", json!(31)),
            ("2r101", json!(5)),
            ("1.5", json!(1.5)),
            ("-2e3", json!(-2000.0)),
            ("nil", Value::Null),
            ("true", json!(true)),
            (":foo/bar", json!("foo/bar")),
            ("sym", json!("sym")),
            ("\\x", json!("x")),
            (
                "\"a\\\"b\\\\c\\n\\t\\u00e9\\ud83d\\ude00\\101\"",
                json!("a\"b\\c\n\té😀A"),
            ),
            ("\"é😀\"", json!("é😀")),
            ("[1 (2 3) [] #{4}]", json!([1, [2, 3], [], [4]])),
            ("{:a 1 \"b\" [nil]}", json!({"a": 1, "b": [null]})),
            ("#inst \"2024\"", json!("2024")),
        ];
        for (edn, want) in cases {
            let text = format!("{{:type :invoke :f :write :process 0 :value {edn}}}");
            assert_eq!(parse(&text)[0].value, want, "{edn}");
        }
    }

    #[test]
    fn reader_knows_its_forms() {
        assert_eq!(read_one("-0"), Edn::Int(0));
        assert_eq!(read_one("+5"), Edn::Int(5));
        assert_eq!(read_one("-"), Edn::Symbol("-"));
        assert_eq!(read_one("\\space"), Edn::Char(' '));
        assert_eq!(read_one("\\u0041"), Edn::Char('A'));
        assert_eq!(read_one("::auto"), Edn::Keyword(":auto"));
        assert!(matches!(read_one("#_ 1 2"), Edn::Int(2)));
        assert!(matches!(read_one("1/4"), Edn::Float(x) if x == 0.25));
        assert!(matches!(read_one("##NaN"), Edn::Float(x) if x.is_nan()));
        assert!(read_all("\\").is_err());
        assert!(read_all("#").is_err());
        assert!(read_all(":").is_err());
        assert!(read_all("#_").is_err());
        assert!(read_all("#foo").is_err());
        assert!(read_all("\"\\u12\"").is_err());
        assert!(read_all("\"\\ud800\"").is_err());
        assert!(read_all("1e").is_err());
        assert!(read_all("99r1").is_err());
        assert!(read_all("\\bogus").is_err());
    }

    #[test]
    fn empty_input_is_an_empty_history() {
        assert!(parse("").is_empty());
        assert!(parse("  ; nothing\n[]\n").is_empty());
    }

    fn event(kind: EventType, process: u64, f: Fun, value: Value) -> Event {
        crate::history::test_event(kind, process, f, value)
    }

    #[test]
    fn export_matches_jepsen_layout() {
        let mut a = event(EventType::Invoke, 3, Fun::Cas, json!([1, 4]));
        a.time = 1830211;
        let mut b = event(EventType::Fail, 3, Fun::Cas, json!([1, 4]));
        b.index = 1;
        b.time = 2933012;
        b.error = Some("mismatch".into());
        b.node = Some("n2".into());
        let mut out = Vec::new();
        write(&mut out, &[a, b]).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "{:index 0, :type :invoke, :process 3, :f :cas, :value [1 4], :time 1830211}\n\
             {:index 1, :type :fail, :process 3, :f :cas, :value [1 4], :time 2933012, \
             :error \"mismatch\", :node \"n2\"}\n"
        );
    }

    #[test]
    fn export_writes_keys_as_tuples_and_reads_back() {
        let mut evs = vec![
            event(EventType::Invoke, 0, Fun::Read, Value::Null),
            event(EventType::Invoke, 1, Fun::Cas, json!([1, 2])),
            event(
                EventType::Ok,
                0,
                Fun::Read,
                json!(["a\"b\n", 1.5, {"x": true}]),
            ),
            event(EventType::Info, 1, Fun::Cas, json!([1, 2])),
        ];
        for (i, e) in evs.iter_mut().enumerate() {
            e.index = i as u64;
            e.key = Some(format!("k{}", i % 2));
        }
        let mut out = Vec::new();
        write(&mut out, &evs).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("{:index 0, :type :invoke, :process 0, :f :read, :value [\"k0\" nil]"),
            "{text}"
        );
        assert_eq!(text.lines().count(), 4);
        assert_eq!(parse(&text), evs);
    }
}
