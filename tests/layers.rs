//! The dependency rule of lib.rs, kept true: each top-level module imports only the modules
//! below it, so there is no cycle and the pure parts (history, checker, store, analysis) never
//! reach up into what runs or renders. Read from the source: every `crate::NAME` path outside
//! comments and `#[cfg(test)]` code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What each module may import. Keep in step with the map in src/lib.rs.
const ALLOWED: &[(&str, &[&str])] = &[
    ("history", &[]),
    ("checker", &["history"]),
    ("client", &["history"]),
    ("spec", &["checker", "client"]),
    ("cluster", &["client", "spec"]),
    ("nemesis", &["cluster", "spec"]),
    (
        "store",
        &["history", "checker", "client", "cluster", "spec"],
    ),
    (
        "analysis",
        &["history", "checker", "client", "cluster", "spec", "store"],
    ),
    ("workload", &["history", "client", "spec", "store"]),
    (
        "report",
        &["history", "checker", "spec", "store", "analysis"],
    ),
    (
        "run",
        &[
            "history", "checker", "client", "spec", "cluster", "nemesis", "store", "analysis",
            "workload", "report",
        ],
    ),
    (
        "matrix",
        &["history", "checker", "spec", "store", "analysis", "run"],
    ),
];

/// The source of a module (`src/NAME.rs` or every file under `src/NAME/`), without comments
/// and without test code (everything from a `#[cfg(test)]` line to the end of its file: tests
/// sit at the bottom of each file here).
fn code_of(module: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let single = root.join(format!("{module}.rs"));
    if single.is_file() {
        files.push(single);
    }
    let mut stack = vec![root.join(module)];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    assert!(!files.is_empty(), "no source for module {module}");
    let mut code = String::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read source");
        for line in text.lines() {
            let t = line.trim_start();
            if t.starts_with("#[cfg(test)]") {
                break;
            }
            if t.starts_with("//") {
                continue;
            }
            code.push_str(line);
            code.push('\n');
        }
    }
    code
}

/// The top-level modules a piece of code names through `crate::`, including those inside a
/// `crate::{a, b::c}` group.
fn imports(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

#[test]
fn every_module_imports_only_what_the_dependency_rule_allows() {
    let allowed: BTreeMap<&str, BTreeSet<&str>> = ALLOWED
        .iter()
        .map(|(m, deps)| (*m, deps.iter().copied().collect()))
        .collect();
    let mut broken = Vec::new();
    for (module, ok) in &allowed {
        for dep in imports(&code_of(module)) {
            // Items at the crate root (`crate::BUILD_COMMIT`) belong to no layer.
            if !allowed.contains_key(dep.as_str()) {
                continue;
            }
            if dep != *module && !ok.contains(dep.as_str()) {
                broken.push(format!("{module} imports {dep}"));
            }
        }
    }
    assert!(broken.is_empty(), "dependency rule broken: {broken:?}");
}

#[test]
fn the_rule_names_every_module_of_the_library_and_has_no_cycle() {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"))
        .expect("lib.rs");
    let declared: BTreeSet<&str> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    let ruled: BTreeSet<&str> = ALLOWED.iter().map(|(m, _)| *m).collect();
    assert_eq!(declared, ruled, "lib.rs's modules and the rule's");
    for (module, _) in ALLOWED {
        assert!(
            lib.contains(&format!("[`{module}`]")),
            "lib.rs's map does not describe {module}"
        );
    }
    // Each module may import only modules listed before it: an order exists, so no cycle.
    for (i, (module, deps)) in ALLOWED.iter().enumerate() {
        let earlier: BTreeSet<&str> = ALLOWED[..i].iter().map(|(m, _)| *m).collect();
        for d in *deps {
            assert!(
                earlier.contains(d),
                "{module} may import {d}, listed after it"
            );
        }
    }
}

#[test]
fn the_import_reader_sees_groups_and_ignores_comments_and_tests() {
    let code = "use crate::a::X;\nuse crate::{b::Y, c};\nlet z = crate::d::f();\n";
    let got: Vec<String> = imports(code).into_iter().collect();
    assert_eq!(got, ["a", "b", "c", "d"]);
}
