//! Build script: records the git commit the binary is built from, so that a matrix line
//! (docs/matrix/runs.jsonl) and `raftcheck --version` name the code that actually ran, not
//! whatever checkout happens to be the current directory when it runs.
//!
//! Sets `RAFTCHECK_BUILD_COMMIT` for the crate's compilation to one of:
//! - the value of the environment variable `RAFTCHECK_BUILD_COMMIT` at build time, if set
//!   (a packager building from a tarball knows the commit; git does not);
//! - `git rev-parse --short=12 HEAD`, with `-dirty` appended when tracked files differ from
//!   that commit (`git status --porcelain --untracked-files=no` is not empty);
//! - `unknown` when this crate is not the top of a git work tree (a tarball or a registry
//!   copy, possibly unpacked inside some other repository) or git is missing.
//!
//! Cargo reruns this script when HEAD moves (a commit, a checkout: `HEAD`, the branch's ref file
//! and `packed-refs`) and when a file that decides what a run does changes (the harness and
//! raftkv sources, the specs, the manifests and lock file), so the dirty mark follows edits
//! there. An edit to other files (the README, say) after the last build is not seen until the
//! next rerun.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What `git` prints for `args` in `dir`, trimmed; `None` if git is missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Ask Cargo to rerun this script when `p` changes; only for paths that exist, because Cargo
/// reruns a script on every build for a watched path that is missing.
fn watch(p: &Path) {
    if p.exists() {
        println!("cargo:rerun-if-changed={}", p.display());
    }
}

/// The commit string for a crate at `root`, watching the files that move it.
fn commit(root: &Path) -> String {
    let Some(top) = git(root, &["rev-parse", "--show-toplevel"]) else {
        return "unknown".into();
    };
    let (top, here) = (
        std::fs::canonicalize(&top).ok(),
        std::fs::canonicalize(root).ok(),
    );
    if top.is_none() || top != here {
        // Unpacked inside someone else's repository: its HEAD is not ours.
        return "unknown".into();
    }
    // In a linked worktree HEAD lives in the worktree's git dir, refs and packed-refs in the
    // common dir. Not the index: `git status` rewrites it, and every rerun of this script
    // recompiles the crate.
    let abs = |p: String| {
        let p = PathBuf::from(p);
        if p.is_absolute() {
            p
        } else {
            root.join(p)
        }
    };
    if let Some(git_dir) = git(root, &["rev-parse", "--git-dir"]).map(abs) {
        watch(&git_dir.join("HEAD"));
    }
    if let Some(common) = git(root, &["rev-parse", "--git-common-dir"]).map(abs) {
        watch(&common.join("packed-refs"));
        if let Some(head_ref) = git(root, &["symbolic-ref", "-q", "HEAD"]) {
            watch(&common.join(head_ref));
        }
    }
    for p in [
        "src",
        "raftkv",
        "clusters",
        "workloads",
        "nemesis",
        "matrix.toml",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        watch(&root.join(p));
    }
    let Some(hash) = git(root, &["rev-parse", "--short=12", "HEAD"]) else {
        return "unknown".into(); // a repository without a commit yet
    };
    match git(root, &["status", "--porcelain", "--untracked-files=no"]) {
        Some(s) if s.is_empty() => hash,
        Some(_) => format!("{hash}-dirty"),
        None => format!("{hash}-unknown-state"),
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=RAFTCHECK_BUILD_COMMIT");
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let commit = match std::env::var("RAFTCHECK_BUILD_COMMIT") {
        Ok(v) if !v.trim().is_empty() => v.trim().to_string(),
        _ => commit(&root),
    };
    println!("cargo:rustc-env=RAFTCHECK_BUILD_COMMIT={commit}");
}
