//! The three spec files a run is made of, as data: cluster specs (this module: how to start
//! node i of any server binary, and which client adapter speaks to it), [`workload`] specs and
//! [`nemesis`] specs; how a name is found and how a file is loaded, with errors that name the
//! file and the field. Specs import nothing of the harness above them but the checker's model
//! names and the adapter registry (which checks the declarative adapters' sections).
//!
//! A cluster spec:
//!
//! ```toml
//! binary = "raftkv"                 # a path, a name found next to raftcheck, or on PATH
//! args = ["--id", "{id}", "--listen", "{ip}:{client_port}", "--peers", "{peers}",
//!         "--data-dir", "{data_dir}"]
//! nodes = 3
//! client = "raftkv"                 # adapter: raftkv, etcd, http or command
//! client_port = 7000
//! peer_port = 7100
//! peers_entry = "{id}={ip}:{client_port}"            # one entry of {peers}, joined by ","
//! initial_cluster_entry = "{name}=http://{ip}:{peer_port}"  # one entry of {initial_cluster}
//! ready_timeout_secs = 30
//! ```
//!
//! Placeholders: `{id}` (1-based), `{name}` (`n1`...), `{ip}`, `{client_port}`, `{peer_port}`,
//! `{data_dir}`, `{peers}`, `{initial_cluster}`, `{run_id}`. In netns mode every node has its
//! own IP and uses the spec's ports; in loopback mode all nodes share 127.0.0.1 and node i gets
//! `port + i - 1` (the run shifts the bases to free ports if needed).

//!
//! Imports [`crate::checker`] (model names) and [`crate::client`] (the adapter registry, which
//! checks the declarative adapters' sections), nothing that runs.

pub mod hosts;
pub mod nemesis;
pub mod workload;

use serde::Deserialize;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// A bad spec file or value; the message names the file and the field.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The spec file, as given or as found from its name; the message starts with it.
        path: PathBuf,
        /// Why reading it failed (no such file, permission denied), printed after the path.
        source: std::io::Error,
    },
    /// TOML syntax, an unknown field, a wrong type.
    #[error("{path}: {msg}")]
    Parse {
        /// The spec file that is not valid TOML for its kind; the message starts with it.
        path: PathBuf,
        /// toml's message (it names the line and the field).
        msg: String,
    },
    /// A value that parses but makes no sense.
    #[error("{path}: field `{field}`: {msg}")]
    Invalid {
        /// The spec file holding the bad value.
        path: PathBuf,
        /// The field as written in the file, or a path into it: `args[0]`,
        /// `row stale-read: expect`.
        field: String,
        /// What the value must be, usually with the value found (`must be 1 to 9, got 12`).
        msg: String,
    },
    /// A name that matches no file.
    #[error("no {kind} named {name:?}: looked for {tried}")]
    NotFound {
        /// cluster, workload or nemesis.
        kind: &'static str,
        /// The name or path exactly as the user gave it (a flag, a matrix row).
        name: String,
        /// Every path looked at, joined by `, `, so the user sees where the file was expected.
        tried: String,
    },
}

/// Parse a TOML spec file into `T`, with errors that name the file.
pub(crate) fn load_toml<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, SpecError> {
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| SpecError::Parse {
        path: path.to_path_buf(),
        msg: e.to_string().trim_end().to_string(),
    })
}

/// The environment variable naming directories searched for named specs before the defaults:
/// one or more directories, `:`-separated as in `PATH`, each laid out like the repository
/// (`clusters/`, `workloads/`, `nemesis/`, `matrix.toml`). It lets an install or a CI job point
/// raftcheck at its own specs without changing directory, and still find the shipped ones.
pub const SPECS_ENV: &str = "RAFTCHECK_SPECS";

/// How many directories above the executable's own are searched. Three reach a checkout's root
/// from `target/release/raftcheck` (two up) and from test binaries in `target/release/deps/`
/// (three up), without wandering far up an unrelated tree.
const EXE_ANCESTORS: usize = 3;

/// The directories in which named specs are looked up, in order (the first that has the file
/// wins):
///
/// 1. every directory in `$RAFTCHECK_SPECS`;
/// 2. the current directory;
/// 3. the running executable's directory;
/// 4. `../share/raftcheck` beside it (an install: `PREFIX/bin/raftcheck` and
///    `PREFIX/share/raftcheck/clusters/`);
/// 5. up to three directories above the executable's (a checkout: `target/release/raftcheck`
///    finds the checkout's `clusters/` two levels up).
///
/// Never the source tree the binary was compiled in: a shipped binary must not depend on a
/// checkout that may be gone or be a different version. A directory reached twice (the current
/// directory is often the checkout) is searched, and listed, once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecRoots {
    /// The directories, in search order, without duplicates.
    roots: Vec<PathBuf>,
}

impl SpecRoots {
    /// The roots of this process: `$RAFTCHECK_SPECS`, the current directory, the executable.
    pub fn from_env() -> Self {
        let exe = std::env::current_exe().ok();
        Self::new(
            std::env::var_os(SPECS_ENV).as_deref(),
            Path::new("."),
            exe.as_deref(),
        )
    }

    /// The roots for a given `$RAFTCHECK_SPECS` value, current directory and executable path.
    /// It reads nothing of the process (only the file system, to tell duplicates apart), so the
    /// order is tested with made-up layouts.
    pub fn new(specs_env: Option<&OsStr>, cwd: &Path, exe: Option<&Path>) -> Self {
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(v) = specs_env {
            candidates.extend(std::env::split_paths(v).filter(|p| !p.as_os_str().is_empty()));
        }
        candidates.push(cwd.to_path_buf());
        if let Some(dir) = exe.and_then(Path::parent) {
            candidates.push(dir.to_path_buf());
            if let Some(prefix) = dir.parent() {
                candidates.push(prefix.join("share").join("raftcheck"));
            }
            candidates.extend(
                dir.ancestors()
                    .skip(1)
                    .take(EXE_ANCESTORS)
                    .map(Path::to_path_buf),
            );
        }
        let mut seen = Vec::new();
        let mut roots = Vec::new();
        for c in candidates {
            // Compare existing directories by their canonical form ("." and the checkout are
            // the same place); one that does not exist is kept as written and still listed.
            let key = std::fs::canonicalize(&c).unwrap_or_else(|_| c.clone());
            if !seen.contains(&key) {
                seen.push(key);
                roots.push(c);
            }
        }
        SpecRoots { roots }
    }

    /// The directories, in search order.
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// `ROOT/rel` for the first root where that is a file; otherwise every path tried, in order.
    pub fn find(&self, rel: &Path) -> Result<PathBuf, Vec<PathBuf>> {
        let mut tried = Vec::new();
        for root in &self.roots {
            let p = root.join(rel);
            if p.is_file() {
                return Ok(p);
            }
            tried.push(p);
        }
        Err(tried)
    }
}

/// Whether a spec argument is a path rather than a name: it names a directory (`/`) or a file
/// (`.toml`), so it is taken as given, relative to the current directory, and never searched.
fn is_path(arg: &str) -> bool {
    arg.ends_with(".toml") || arg.contains('/')
}

/// Find a cluster, workload or nemesis spec given as a path or as a name under `dir` (e.g.
/// `clusters/`), searching the [`SpecRoots`] of this process.
pub fn resolve(kind: &'static str, dir: &str, name: &str) -> Result<PathBuf, SpecError> {
    resolve_in(&SpecRoots::from_env(), kind, dir, name)
}

/// [`resolve`] with given roots: a path (see `is_path`) is used as is; a name is
/// `ROOT/dir/NAME.toml` in the first root that has it. Not found names every path tried.
pub fn resolve_in(
    roots: &SpecRoots,
    kind: &'static str,
    dir: &str,
    name: &str,
) -> Result<PathBuf, SpecError> {
    if is_path(name) {
        return direct(kind, name);
    }
    roots
        .find(&Path::new(dir).join(format!("{name}.toml")))
        .map_err(|tried| not_found(kind, name, &tried))
}

/// Find a spec file given by file name (the matrix's `matrix.toml`): a value with a `/` is a path
/// used as is; a bare file name is `ROOT/NAME` in the first of the [`SpecRoots`] that has it.
pub fn resolve_file(kind: &'static str, name: &str) -> Result<PathBuf, SpecError> {
    resolve_file_in(&SpecRoots::from_env(), kind, name)
}

/// [`resolve_file`] with given roots.
pub fn resolve_file_in(
    roots: &SpecRoots,
    kind: &'static str,
    name: &str,
) -> Result<PathBuf, SpecError> {
    if name.contains('/') {
        return direct(kind, name);
    }
    roots
        .find(Path::new(name))
        .map_err(|tried| not_found(kind, name, &tried))
}

/// A spec given by path: that file, or an error naming it.
fn direct(kind: &'static str, path: &str) -> Result<PathBuf, SpecError> {
    let p = PathBuf::from(path);
    if p.is_file() {
        Ok(p)
    } else {
        Err(SpecError::NotFound {
            kind,
            name: path.to_string(),
            tried: p.display().to_string(),
        })
    }
}

fn not_found(kind: &'static str, name: &str, tried: &[PathBuf]) -> SpecError {
    let list: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
    SpecError::NotFound {
        kind,
        name: name.to_string(),
        tried: format!(
            "{} (give a path, or set {SPECS_ENV} to a directory holding the specs)",
            list.join(", ")
        ),
    }
}

/// How to start and reach the nodes of one server.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    /// The server binary: a path, a name next to raftcheck's executable, or a name on PATH.
    pub binary: String,
    /// argv after the binary, with placeholders.
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra argv for the first node only (after `args`): servers whose first node bootstraps
    /// the cluster alone (`--bootstrap`, `--initial-cluster-state new`).
    #[serde(default)]
    pub first_args: Vec<String>,
    /// Extra argv for every node but the first (after `args`): servers whose other nodes join
    /// the first (`--join {join}`). When given, the first node starts alone and must be ready
    /// before the others start.
    #[serde(default)]
    pub join_args: Vec<String>,
    /// Template for `{join}`, filled in for the first node: the address the others join.
    #[serde(default = "default_join_entry")]
    pub join_entry: String,
    /// Extra environment for every node.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Number of nodes (default 3).
    #[serde(default = "default_nodes")]
    pub nodes: usize,
    /// The client adapter: raftkv, etcd, http or command.
    pub client: String,
    /// Client port (netns: every node; loopback: base).
    pub client_port: u16,
    /// Peer port (netns: every node; loopback: base). Defaults to client_port + 100.
    #[serde(default)]
    pub peer_port: Option<u16>,
    /// Template for one node's entry in `{peers}`, filled in per node; the entries are joined by
    /// `,`.
    #[serde(default = "default_peers_entry")]
    pub peers_entry: String,
    /// Template for one node's entry in `{initial_cluster}` (etcd's `--initial-cluster`), filled in
    /// per node and joined by `,`.
    #[serde(default = "default_initial_cluster_entry")]
    pub initial_cluster_entry: String,
    /// How long the cluster may take to elect a leader and answer, at start and after faults.
    #[serde(default = "default_ready")]
    pub ready_timeout_secs: f64,
    /// Restart every dead node at once rather than one by one (etcd needs this: a restarted
    /// member opens its client port only after it rejoins a quorum).
    #[serde(default = "yes")]
    pub restart_together: bool,
    /// The declarative `http` adapter's description, when `client = "http"`.
    #[serde(default)]
    pub http: Option<toml::Value>,
    /// The declarative `command` adapter's description (a process per op), when
    /// `client = "command"`.
    #[serde(default)]
    pub command: Option<toml::Value>,
    /// Extra args (with placeholders) for a node whose data dir the membership nemesis wiped:
    /// it must start outside the configuration and wait to be added back (raftkv: `--join`),
    /// or it would bootstrap a fresh cluster of its own. Empty: no membership fault.
    #[serde(default)]
    pub rejoin_args: Vec<String>,
    /// Storage faults the server promises to survive, which a nemesis's "all" then includes:
    /// `power-loss` (unsynced writes lost) and `corrupt` (one file of a minority's data dirs
    /// damaged). A nemesis that names one runs it whatever this says. Empty: "all" has neither.
    #[serde(default)]
    pub survives: Vec<nemesis::FaultKind>,
    /// Which files of a data dir the corrupt fault may damage: glob patterns relative to the
    /// data dir (`wal`, `member/wal/*.wal`). Empty: any file.
    #[serde(default)]
    pub corrupt_paths: Vec<String>,
}

fn default_nodes() -> usize {
    3
}
fn default_peers_entry() -> String {
    "{id}={ip}:{client_port}".into()
}
fn default_join_entry() -> String {
    "{ip}:{client_port}".into()
}
fn default_initial_cluster_entry() -> String {
    "{name}=http://{ip}:{peer_port}".into()
}
fn default_ready() -> f64 {
    30.0
}
fn yes() -> bool {
    true
}

impl ClusterSpec {
    /// The client adapter this spec names, talking to `endpoints`.
    pub fn adapter(
        &self,
        endpoints: Vec<crate::client::Endpoint>,
    ) -> Result<std::sync::Arc<dyn crate::client::Adapter>, crate::client::ClientError> {
        crate::client::make(&self.client, &self.sections(), endpoints)
    }

    /// The adapter sections this spec has (`[http]`, `[command]`), each for its own adapter.
    pub fn sections(&self) -> crate::client::Sections<'_> {
        [("http", &self.http), ("command", &self.command)]
            .into_iter()
            .filter_map(|(name, s)| s.as_ref().map(|s| (name, s)))
            .collect()
    }
}

impl ClusterSpec {
    /// Load and validate a cluster spec file.
    pub fn load(path: &Path) -> Result<ClusterSpec, SpecError> {
        let spec: ClusterSpec = load_toml(path)?;
        let bad = |field: &str, msg: String| SpecError::Invalid {
            path: path.to_path_buf(),
            field: field.to_string(),
            msg,
        };
        if spec.nodes == 0 || spec.nodes > 9 {
            return Err(bad("nodes", format!("must be 1 to 9, got {}", spec.nodes)));
        }
        if spec.binary.trim().is_empty() {
            return Err(bad("binary", "must not be empty".into()));
        }
        if spec.ready_timeout_secs.is_nan() || spec.ready_timeout_secs <= 0.0 {
            return Err(bad("ready_timeout_secs", "must be positive".into()));
        }
        for (field, list) in [
            ("args", &spec.args),
            ("first_args", &spec.first_args),
            ("join_args", &spec.join_args),
            ("rejoin_args", &spec.rejoin_args),
        ] {
            for (i, a) in list.iter().enumerate() {
                if let Err(p) = check_placeholders(a) {
                    return Err(bad(
                        &format!("{field}[{i}]"),
                        format!("unknown placeholder {{{p}}}"),
                    ));
                }
            }
        }
        for (field, entry) in [
            ("peers_entry", &spec.peers_entry),
            ("initial_cluster_entry", &spec.initial_cluster_entry),
            ("join_entry", &spec.join_entry),
        ] {
            // An entry describes one node among the others: the lists and the node's own data
            // dir are not defined inside it.
            match check_placeholders(entry) {
                Err(p) | Ok(Some(p)) => {
                    return Err(bad(
                        field,
                        format!(
                            "placeholder {{{p}}} is not available in an entry; use {}",
                            ENTRY_PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ")
                        ),
                    ))
                }
                Ok(None) => {}
            }
        }
        for (i, k) in spec.survives.iter().enumerate() {
            if !matches!(
                k,
                nemesis::FaultKind::PowerLoss | nemesis::FaultKind::Corrupt
            ) {
                return Err(bad(
                    &format!("survives[{i}]"),
                    format!(
                        "{:?} is not a storage fault; survives lists power-loss and corrupt \
                         (every server is expected to survive the others)",
                        k.name()
                    ),
                ));
            }
        }
        for (i, p) in spec.corrupt_paths.iter().enumerate() {
            if let Err(e) = glob::Pattern::new(p) {
                return Err(bad(
                    &format!("corrupt_paths[{i}]"),
                    format!("{p:?} is not a glob pattern: {e}"),
                ));
            }
            if p.starts_with('/') {
                return Err(bad(
                    &format!("corrupt_paths[{i}]"),
                    format!("{p:?} must be relative to the data dir"),
                ));
            }
        }
        if crate::client::adapter_kind(&spec.client).is_some() {
            crate::client::check_sections(&spec.client, &spec.sections())
                .map_err(|(section, e)| bad(section, e.to_string()))?;
        }
        if crate::client::adapter_kind(&spec.client).is_none() {
            return Err(bad(
                "client",
                format!(
                    "unknown adapter {:?}; expected {}",
                    spec.client,
                    crate::client::adapter_names()
                ),
            ));
        }
        Ok(spec)
    }

    /// Why the membership nemesis cannot run on this cluster, or `None` if it can: the
    /// adapter must be able to add and remove members, and a wiped node must know to rejoin.
    pub(crate) fn membership_unsupported(&self) -> Option<String> {
        if !crate::client::adapter_kind(&self.client).is_some_and(|k| k.membership) {
            return Some(format!(
                "the {:?} adapter cannot add or remove members",
                self.client
            ));
        }
        if self.rejoin_args.is_empty() {
            return Some(
                "the cluster spec has no rejoin_args (how a wiped node starts to be added back)"
                    .into(),
            );
        }
        None
    }

    /// `peer_port`, or `client_port + 100` when the spec leaves it out: every node's peer port in
    /// netns mode; on loopback, the base that node i's port counts up from.
    pub(crate) fn peer_port(&self) -> u16 {
        self.peer_port
            .unwrap_or(self.client_port.saturating_add(100))
    }
}

/// The placeholders a spec may use.
pub(crate) const PLACEHOLDERS: [&str; 11] = [
    "id",
    "name",
    "ip",
    "client_port",
    "peer_port",
    "data_dir",
    "peers",
    "seeds",
    "initial_cluster",
    "join",
    "run_id",
];

/// The placeholders defined inside `peers_entry`, `initial_cluster_entry` and `join_entry`: the per-node
/// values, filled in once for each node of the list.
pub(crate) const ENTRY_PLACEHOLDERS: [&str; 6] =
    ["id", "name", "ip", "client_port", "peer_port", "run_id"];

/// `Err(name)` for a placeholder no template knows; `Ok(Some(name))` for the first known one
/// that an entry template may not use.
fn check_placeholders(s: &str) -> Result<Option<String>, String> {
    let mut rest = s;
    let mut not_in_entry = None;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            return Ok(not_in_entry);
        };
        let name = &rest[open + 1..open + close];
        if !PLACEHOLDERS.contains(&name) {
            return Err(name.to_string());
        }
        if !ENTRY_PLACEHOLDERS.contains(&name) && not_in_entry.is_none() {
            not_in_entry = Some(name.to_string());
        }
        rest = &rest[open + close + 1..];
    }
    Ok(not_in_entry)
}

/// Fill `{name}` placeholders from `vars`.
pub fn fill(template: &str, vars: &BTreeMap<&str, String>) -> String {
    let mut out = template.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.toml");
        std::fs::write(&p, text).unwrap();
        (d, p)
    }

    #[test]
    fn unknown_field_names_file_and_field() {
        let (_d, p) = write("binary = \"x\"\nclient = \"raftkv\"\nclient_port = 1\nnodez = 3\n");
        let e = ClusterSpec::load(&p).unwrap_err().to_string();
        assert!(e.contains("c.toml") && e.contains("nodez"), "{e}");
    }

    #[test]
    fn unknown_placeholder_is_refused() {
        let (_d, p) =
            write("binary = \"x\"\nclient = \"raftkv\"\nclient_port = 1\nargs = [\"{port}\"]\n");
        let e = ClusterSpec::load(&p).unwrap_err().to_string();
        assert!(e.contains("args[0]") && e.contains("{port}"), "{e}");
    }

    #[test]
    fn shipped_specs_load() {
        // Every spec shipped in clusters/ and every fixture spec the tests run.
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut loaded = 0;
        for dir in ["clusters", "tests/fixtures/specs"] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let p = entry.unwrap().path();
                if p.extension().is_some_and(|e| e == "toml") {
                    match ClusterSpec::load(&p) {
                        Ok(_) => loaded += 1,
                        // A command spec names a CLI that must be installed to load (etcd-ctl:
                        // etcdctl); the rest of it is checked by the command adapter's tests.
                        Err(e)
                            if e.to_string().contains("not found on PATH")
                                && std::env::var("RAFTCHECK_REQUIRE_ALL").as_deref() != Ok("1") =>
                        {
                            eprintln!("SKIPPED: {e}");
                            loaded += 1;
                        }
                        Err(e) => panic!("{}: {e}", p.display()),
                    }
                }
            }
        }
        assert!(loaded >= 8, "{loaded}");
    }

    /// Create `root/rel` (and its directories) holding a marker naming where it is.
    fn touch(root: &Path, rel: &str) -> PathBuf {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, rel).unwrap();
        p
    }

    #[test]
    fn roots_come_in_the_documented_order() {
        let env = std::env::join_paths(["/specs/a", "/specs/b"]).unwrap();
        let roots = SpecRoots::new(
            Some(&env),
            Path::new("/work/here"),
            Some(Path::new("/opt/rc/target/release/raftcheck")),
        );
        let want: Vec<PathBuf> = [
            "/specs/a",
            "/specs/b",
            "/work/here",
            "/opt/rc/target/release",
            "/opt/rc/target/share/raftcheck",
            "/opt/rc/target",
            "/opt/rc",
            "/opt",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(roots.roots(), want.as_slice());
    }

    #[test]
    fn a_checkout_binary_finds_the_checkout_from_anywhere() {
        let t = tempfile::tempdir().unwrap();
        let want = touch(t.path(), "repo/clusters/raftkv.toml");
        let elsewhere = t.path().join("elsewhere");
        std::fs::create_dir_all(&elsewhere).unwrap();
        let exe = t.path().join("repo/target/release/raftcheck");
        let roots = SpecRoots::new(None, &elsewhere, Some(&exe));
        assert_eq!(
            resolve_in(&roots, "cluster", "clusters", "raftkv").unwrap(),
            want
        );
        // A test binary sits one level deeper, in target/release/deps/.
        let exe = t.path().join("repo/target/release/deps/spec-0123");
        let roots = SpecRoots::new(None, &elsewhere, Some(&exe));
        assert_eq!(
            resolve_in(&roots, "cluster", "clusters", "raftkv").unwrap(),
            want
        );
    }

    #[test]
    fn an_installed_binary_finds_share_raftcheck() {
        let t = tempfile::tempdir().unwrap();
        let want = touch(t.path(), "usr/share/raftcheck/workloads/kv.toml");
        let exe = t.path().join("usr/bin/raftcheck");
        let roots = SpecRoots::new(None, &t.path().join("nowhere"), Some(&exe));
        assert_eq!(
            resolve_in(&roots, "workload", "workloads", "kv").unwrap(),
            want
        );
        let m = touch(t.path(), "usr/share/raftcheck/matrix.toml");
        assert_eq!(resolve_file_in(&roots, "matrix", "matrix.toml").unwrap(), m);
    }

    #[test]
    fn the_environment_beats_the_current_directory_which_beats_the_executable() {
        let t = tempfile::tempdir().unwrap();
        let (env_dir, cwd, repo) = (
            t.path().join("env"),
            t.path().join("cwd"),
            t.path().join("repo"),
        );
        let exe = repo.join("target/release/raftcheck");
        for d in [&env_dir, &cwd, &repo] {
            touch(d, "nemesis/all.toml");
        }
        touch(&cwd, "nemesis/kill.toml");
        touch(&repo, "nemesis/kill.toml");
        touch(&repo, "nemesis/pause.toml");
        let env = env_dir.clone().into_os_string();
        let roots = SpecRoots::new(Some(&env), &cwd, Some(&exe));
        let found = |name| resolve_in(&roots, "nemesis", "nemesis", name).unwrap();
        assert_eq!(found("all"), env_dir.join("nemesis/all.toml"));
        // Names the environment's directory lacks fall through to the defaults.
        assert_eq!(found("kill"), cwd.join("nemesis/kill.toml"));
        assert_eq!(found("pause"), repo.join("nemesis/pause.toml"));
        // Without the variable the current directory comes first.
        let roots = SpecRoots::new(None, &cwd, Some(&exe));
        assert_eq!(
            resolve_in(&roots, "nemesis", "nemesis", "all").unwrap(),
            cwd.join("nemesis/all.toml")
        );
    }

    #[test]
    fn a_path_is_used_as_given_and_never_searched() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        touch(&root, "clusters/x.toml");
        let roots = SpecRoots::new(None, &root, None);
        // "x.toml" is a path relative to the process's directory, not clusters/x.toml.
        let e = resolve_in(&roots, "cluster", "clusters", "x.toml").unwrap_err();
        assert!(
            matches!(&e, SpecError::NotFound { tried, .. } if tried == "x.toml"),
            "{e}"
        );
        let given = root.join("clusters/x.toml");
        let given = given.to_str().unwrap();
        assert_eq!(
            resolve_in(&roots, "cluster", "clusters", given).unwrap(),
            PathBuf::from(given)
        );
        // A matrix spec with a '/' is a path too.
        let e = resolve_file_in(&roots, "matrix", "sub/matrix.toml").unwrap_err();
        assert!(e.to_string().contains("sub/matrix.toml"), "{e}");
    }

    #[test]
    fn not_found_lists_every_place_once_in_order() {
        let t = tempfile::tempdir().unwrap();
        let repo = t.path().join("repo");
        std::fs::create_dir_all(repo.join("target/release")).unwrap();
        // The current directory is the checkout the executable is in: listed once.
        let roots = SpecRoots::new(None, &repo, Some(&repo.join("target/release/raftcheck")));
        let e = resolve_in(&roots, "cluster", "clusters", "nope").unwrap_err();
        let SpecError::NotFound { ref tried, .. } = e else {
            panic!("{e}")
        };
        let listed = repo.join("clusters/nope.toml").display().to_string();
        assert_eq!(tried.matches(&listed).count(), 1, "{tried}");
        let order: Vec<usize> = [
            listed.clone(),
            repo.join("target/release/clusters/nope.toml")
                .display()
                .to_string(),
            repo.join("target/share/raftcheck/clusters/nope.toml")
                .display()
                .to_string(),
            repo.join("target/clusters/nope.toml").display().to_string(),
        ]
        .iter()
        .map(|p| {
            tried
                .find(p.as_str())
                .unwrap_or_else(|| panic!("{p} not in {tried}"))
        })
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{tried}");
        assert!(e.to_string().contains(SPECS_ENV), "{e}");
    }

    #[test]
    fn an_entry_template_with_a_list_placeholder_is_refused_naming_the_field() {
        let (_d, p) = write(
            "binary = \"x\"\nclient = \"raftkv\"\nclient_port = 1\n\
             peers_entry = \"{id}={peers}\"\n",
        );
        let e = ClusterSpec::load(&p).unwrap_err().to_string();
        assert!(e.contains("field `peers_entry`"), "{e}");
        assert!(e.contains("{peers} is not available in an entry"), "{e}");
        let (_d, p) = write(
            "binary = \"x\"\nclient = \"raftkv\"\nclient_port = 1\n\
             initial_cluster_entry = \"{nmae}=http://{ip}\"\n",
        );
        let e = ClusterSpec::load(&p).unwrap_err().to_string();
        assert!(e.contains("field `initial_cluster_entry`"), "{e}");
        assert!(e.contains("{nmae}"), "{e}");
    }

    /// Every field the loader accepts is documented in docs/cluster-spec.md.
    #[test]
    fn every_cluster_spec_field_is_documented() {
        let src = include_str!("mod.rs");
        let doc = include_str!("../../docs/cluster-spec.md");
        let body = src
            .split("pub struct ClusterSpec {")
            .nth(1)
            .and_then(|b| b.split("\n}\n").next())
            .unwrap();
        let fields: Vec<&str> = body
            .lines()
            .filter_map(|l| l.trim().strip_prefix("pub "))
            .filter_map(|l| l.split(':').next())
            .collect();
        assert!(fields.len() >= 13, "{fields:?}");
        for f in fields {
            assert!(
                doc.contains(&format!("| `{f}` |")),
                "docs/cluster-spec.md lacks `{f}`"
            );
        }
        for p in PLACEHOLDERS {
            assert!(
                doc.contains(&format!("`{{{p}}}`")),
                "docs/cluster-spec.md lacks {{{p}}}"
            );
        }
    }

    #[test]
    fn fill_replaces_every_placeholder() {
        let mut v = BTreeMap::new();
        v.insert("id", "2".to_string());
        v.insert("ip", "10.0.0.2".to_string());
        assert_eq!(fill("{id}={ip}:{id}", &v), "2=10.0.0.2:2");
    }
}
