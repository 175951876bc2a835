//! The checked plan the adapter runs from: the section validated once, before any node starts
//! (programs found, templates parsed, exit-code lists that do not overlap, matchers compiled).

use super::schema::{bad, CommandSpec, OpSpec};
use crate::client::outcome::{matchers, Class, Matcher, ValueForm};
use crate::client::template::{Template, NODE_PLACEHOLDERS};
use crate::client::ClientError;
use crate::history::Fun;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How programs named in argv are found when the plan is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProgramLookup {
    /// As a path (a name with a `/`) or on `PATH`; a program not found is a spec error.
    Search,
    /// Taken as written, found at run time or not: only for checking a shipped spec's other
    /// fields on a machine without its CLI.
    #[cfg_attr(not(test), allow(dead_code))]
    AsWritten,
}

/// Which table of the section an op plan comes from: it decides the placeholders and the
/// outcomes the op may have, and names the table in messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Table {
    Read,
    Write,
    Cas,
    CasAbsent,
    Append,
}

impl Table {
    pub(super) fn name(self) -> &'static str {
        match self {
            Table::Read => "read",
            Table::Write => "write",
            Table::Cas => "cas",
            Table::CasAbsent => "cas_absent",
            Table::Append => "append",
        }
    }

    /// The op placeholders of this table (the node placeholders are always allowed).
    fn op_placeholders(self) -> &'static [&'static str] {
        match self {
            Table::Read => &["key"],
            Table::Write | Table::Append => &["key", "value"],
            Table::Cas => &["key", "from", "to"],
            // The expected value is null by definition: {from} would only ever say "null".
            Table::CasAbsent => &["key", "to"],
        }
    }

    /// The outcomes a matcher may give this op.
    fn classes(self) -> &'static [Class] {
        match self {
            Table::Read => &[Class::Ok, Class::Fail, Class::Info, Class::NotFound],
            Table::Write | Table::Append => &[Class::Ok, Class::Fail, Class::Info],
            Table::Cas | Table::CasAbsent => {
                &[Class::Ok, Class::Fail, Class::Info, Class::Mismatch]
            }
        }
    }

    fn is_cas(self) -> bool {
        matches!(self, Table::Cas | Table::CasAbsent)
    }
}

/// One op, checked and ready to run.
#[derive(Clone, Debug)]
pub(super) struct OpPlan {
    /// Which table it was written in.
    pub(super) table: Table,
    /// The program, as found when the spec loaded.
    pub(super) program: PathBuf,
    /// argv after the program.
    pub(super) args: Vec<Template>,
    /// What to write to stdin, if anything.
    pub(super) stdin: Option<Template>,
    /// Reads: how stdout holds the value.
    pub(super) value_form: ValueForm,
    /// Reads in a JSON form: where the value is.
    pub(super) value: String,
    pub(super) ok: BTreeSet<i32>,
    pub(super) fail: BTreeSet<i32>,
    pub(super) not_found: BTreeSet<i32>,
    pub(super) mismatch: BTreeSet<i32>,
    /// Tried in order before any exit-code list.
    pub(super) matchers: Vec<Matcher>,
}

impl OpPlan {
    /// Whether `{name}` appears in argv or stdin.
    pub(super) fn uses(&self, name: &str) -> bool {
        self.args.iter().any(|t| t.uses(name)) || self.stdin.as_ref().is_some_and(|t| t.uses(name))
    }
}

/// The whole section, checked.
#[derive(Clone, Debug)]
pub(super) struct Plan {
    pub(super) default_key: String,
    /// The cap on one process's run time, if the spec sets one.
    pub(super) timeout: Option<Duration>,
    /// Extra environment, values filled per node.
    pub(super) env: Vec<(String, Template)>,
    pub(super) read: OpPlan,
    pub(super) write: OpPlan,
    pub(super) cas: Option<OpPlan>,
    pub(super) cas_absent: Option<OpPlan>,
    pub(super) append: Option<OpPlan>,
}

impl Plan {
    pub(super) fn new(spec: &CommandSpec, lookup: &ProgramLookup) -> Result<Plan, ClientError> {
        if spec.default_key.is_empty() {
            return Err(bad("default_key", "must not be empty"));
        }
        let timeout = match spec.timeout_ms {
            Some(0) => return Err(bad("timeout_ms", "must be positive")),
            Some(ms) => Some(Duration::from_millis(ms)),
            None => None,
        };
        let mut env = Vec::new();
        for (k, v) in &spec.env {
            if k.is_empty() || k.contains('=') || k.contains('\0') {
                return Err(bad(
                    &format!("env.{k}"),
                    "not a valid environment variable name",
                ));
            }
            if v.contains('\0') {
                return Err(bad(&format!("env.{k}"), "contains a NUL byte"));
            }
            let t =
                Template::parse(v, &NODE_PLACEHOLDERS).map_err(|e| bad(&format!("env.{k}"), e))?;
            env.push((k.clone(), t));
        }
        let op = |s: &OpSpec, t: Table| OpPlan::new(s, t, lookup);
        let opt = |s: &Option<OpSpec>, t: Table| s.as_ref().map(|s| op(s, t)).transpose();
        // In the order of the file, so the first error reported is the first one written.
        let read = op(&spec.read, Table::Read)?;
        let write = op(&spec.write, Table::Write)?;
        let cas = opt(&spec.cas, Table::Cas)?;
        let cas_absent = opt(&spec.cas_absent, Table::CasAbsent)?;
        if cas_absent.is_some() && cas.is_none() {
            return Err(bad(
                "cas_absent",
                "is only used together with [command.cas] (for the cas ops whose expected value is null)",
            ));
        }
        Ok(Plan {
            default_key: spec.default_key.clone(),
            timeout,
            env,
            read,
            write,
            cas,
            cas_absent,
            append: opt(&spec.append, Table::Append)?,
        })
    }

    /// The plan of the table that serves `f` (for cas: the one for a non-null expected value).
    pub(super) fn op(&self, f: Fun) -> Option<&OpPlan> {
        match f {
            Fun::Read => Some(&self.read),
            Fun::Write => Some(&self.write),
            Fun::Cas => self.cas.as_ref(),
            Fun::Append => self.append.as_ref(),
        }
    }
}

impl OpPlan {
    fn new(spec: &OpSpec, table: Table, lookup: &ProgramLookup) -> Result<OpPlan, ClientError> {
        let name = table.name();
        let field = |s: &str| format!("{name}.{s}");
        let mut allowed: Vec<&str> = table.op_placeholders().to_vec();
        allowed.extend(NODE_PLACEHOLDERS);

        let Some((program, rest)) = spec.argv.split_first() else {
            return Err(bad(&field("argv"), "must name a program (argv[0])"));
        };
        let program = find_program(program, lookup).map_err(|e| bad(&field("argv[0]"), e))?;
        let mut args = Vec::new();
        for (i, a) in rest.iter().enumerate() {
            let f = field(&format!("argv[{}]", i + 1));
            if a.contains('\0') {
                return Err(bad(&f, "contains a NUL byte"));
            }
            args.push(Template::parse(a, &allowed).map_err(|e| bad(&f, e))?);
        }
        let stdin = spec
            .stdin
            .as_deref()
            .map(|s| Template::parse(s, &allowed).map_err(|e| bad(&field("stdin"), e)))
            .transpose()?;

        let only = |present: bool, what: &str, ok: bool, tables: &str| -> Result<(), ClientError> {
            if present && !ok {
                Err(bad(&field(what), format!("only {tables} takes `{what}`")))
            } else {
                Ok(())
            }
        };
        let read = table == Table::Read;
        only(
            spec.value_form.is_some(),
            "value_form",
            read,
            "[command.read]",
        )?;
        only(spec.value.is_some(), "value", read, "[command.read]")?;
        only(
            !spec.not_found.is_empty(),
            "not_found",
            read,
            "[command.read]",
        )?;
        only(
            !spec.mismatch.is_empty(),
            "mismatch",
            table.is_cas(),
            "[command.cas] or [command.cas_absent]",
        )?;
        let value_form = spec.value_form.unwrap_or(ValueForm::Text);
        let value = match (&spec.value, value_form) {
            (Some(_), ValueForm::Text) => {
                return Err(bad(
                    &field("value"),
                    "is a JSON pointer, read only with value_form = \"json\" or \"string\" \
                     (with \"text\" the whole stdout is the value)",
                ))
            }
            (Some(p), _) => {
                crate::client::outcome::check_pointer(p).map_err(|e| bad(&field("value"), e))?
            }
            (None, _) => String::new(),
        };

        let ok = exit_codes(&spec.ok, &field("ok"))?;
        let fail = exit_codes(&spec.fail, &field("fail"))?;
        let not_found = exit_codes(&spec.not_found, &field("not_found"))?;
        let mismatch = exit_codes(&spec.mismatch, &field("mismatch"))?;
        let lists: [(&str, &BTreeSet<i32>); 4] = [
            ("ok", &ok),
            ("fail", &fail),
            ("not_found", &not_found),
            ("mismatch", &mismatch),
        ];
        for (i, (a, sa)) in lists.iter().enumerate() {
            for (b, sb) in &lists[i + 1..] {
                if let Some(c) = sa.intersection(sb).next() {
                    return Err(bad(
                        &field(a),
                        format!(
                            "exit code {c} is also listed in `command.{}`; an exit code has one meaning",
                            field(b)
                        ),
                    ));
                }
            }
        }
        // `matchers` says `match[i]: why`; the field is then `read.match[i]`.
        let matchers = matchers(&spec.matchers, table.classes(), true).map_err(|e| {
            let (at, why) = e.split_once(": ").unwrap_or(("match", e.as_str()));
            bad(&field(at), why)
        })?;
        if ok.is_empty() && !matchers.iter().any(|m| m.class == Class::Ok) {
            return Err(bad(
                &field("ok"),
                "nothing can make this op ok: list an exit code in `ok` or give a matcher with \
                 outcome = \"ok\"",
            ));
        }
        Ok(OpPlan {
            table,
            program,
            args,
            stdin,
            value_form,
            value,
            ok,
            fail,
            not_found,
            mismatch,
            matchers,
        })
    }
}

/// Exit codes from a spec, checked to be ones a process can exit with.
fn exit_codes(list: &[i64], field: &str) -> Result<BTreeSet<i32>, ClientError> {
    let mut set = BTreeSet::new();
    for &c in list {
        let code = u8::try_from(c)
            .map_err(|_| bad(field, format!("{c} is not an exit code (0 to 255)")))?;
        set.insert(i32::from(code));
    }
    Ok(set)
}

/// Find the program argv[0] names: a name with a `/` is a path (relative to the current
/// directory), anything else is looked up on `PATH`, as a shell would. The error is the
/// message alone.
pub(super) fn find_program(name: &str, lookup: &ProgramLookup) -> Result<PathBuf, String> {
    if name.trim().is_empty() {
        return Err("must name a program, got an empty string".into());
    }
    if name.contains('{') && Template::parse(name, &[]).is_err() {
        return Err(format!(
            "the program {name:?} may not use placeholders: it is found once, when the spec loads"
        ));
    }
    if *lookup == ProgramLookup::AsWritten {
        return Ok(PathBuf::from(name));
    }
    if name.contains('/') {
        let p = PathBuf::from(name);
        return if is_executable(&p) {
            Ok(p)
        } else {
            Err(format!(
                "program {name:?} not found or not executable (install it, or fix the path)"
            ))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for d in std::env::split_paths(&path) {
        let p = d.join(name);
        if is_executable(&p) {
            return Ok(p);
        }
    }
    Err(format!(
        "program {name:?} not found on PATH ({}); install it, or give its path",
        std::env::var("PATH").unwrap_or_default()
    ))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
