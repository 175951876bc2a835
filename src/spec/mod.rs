//! The three spec files a run is made of, as data: cluster specs (this module: how to start
//! node i of any server binary, and which client adapter speaks to it), [`workload`] specs and
//! [`nemesis`] specs; how a name is found and how a file is loaded, with errors that name the
//! file and the field. Specs import nothing of the harness above them but the checker's model
//! names and the http adapter's schema.
//!
//! A cluster spec:
//!
//! ```toml
//! binary = "raftkv"                 # a path, a name found next to raftcheck, or on PATH
//! args = ["--id", "{id}", "--listen", "{ip}:{client_port}", "--peers", "{peers}",
//!         "--data-dir", "{data_dir}"]
//! nodes = 3
//! client = "raftkv"                 # adapter: raftkv, etcd or http
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
//! Imports [`crate::checker`] (model names) and [`crate::client`] (the http adapter's schema and
//! the adapter registry), nothing that runs.

pub mod nemesis;
pub mod workload;

use serde::Deserialize;
use std::collections::BTreeMap;
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

/// Find a spec by path or by name under `dir` (e.g. `clusters/`), looking in the current
/// directory and next to the executable's workspace.
pub(crate) fn resolve(kind: &'static str, dir: &str, name: &str) -> Result<PathBuf, SpecError> {
    let direct = PathBuf::from(name);
    if name.ends_with(".toml") || name.contains('/') {
        return if direct.is_file() {
            Ok(direct)
        } else {
            Err(SpecError::NotFound {
                kind,
                name: name.to_string(),
                tried: direct.display().to_string(),
            })
        };
    }
    let mut tried = Vec::new();
    for root in spec_roots() {
        let p = root.join(dir).join(format!("{name}.toml"));
        if p.is_file() {
            return Ok(p);
        }
        tried.push(p.display().to_string());
    }
    Err(SpecError::NotFound {
        kind,
        name: name.to_string(),
        tried: tried.join(", "),
    })
}

/// Where named specs live: the current directory, then the source tree the binary was built
/// from (so `target/release/raftcheck run` works from anywhere inside a checkout).
fn spec_roots() -> Vec<PathBuf> {
    let mut roots = vec![PathBuf::from(".")];
    if let Ok(exe) = std::env::current_exe() {
        // target/<profile>/raftcheck -> the workspace root.
        if let Some(root) = exe.parent().and_then(Path::parent).and_then(Path::parent) {
            roots.push(root.to_path_buf());
        }
    }
    roots.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    roots
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
    /// Extra environment for every node.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Number of nodes (default 3).
    #[serde(default = "default_nodes")]
    pub nodes: usize,
    /// The client adapter: raftkv, etcd or http.
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
    /// Extra args (with placeholders) for a node whose data dir the membership nemesis wiped:
    /// it must start outside the configuration and wait to be added back (raftkv: `--join`),
    /// or it would bootstrap a fresh cluster of its own. Empty: no membership fault.
    #[serde(default)]
    pub rejoin_args: Vec<String>,
}

fn default_nodes() -> usize {
    3
}
fn default_peers_entry() -> String {
    "{id}={ip}:{client_port}".into()
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
        crate::client::make(&self.client, self.http.as_ref(), endpoints)
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
        for (field, list) in [("args", &spec.args), ("rejoin_args", &spec.rejoin_args)] {
            for (i, a) in list.iter().enumerate() {
                if let Err(p) = check_placeholders(a) {
                    return Err(bad(
                        &format!("{field}[{i}]"),
                        format!("unknown placeholder {{{p}}}"),
                    ));
                }
            }
        }
        match (&spec.http, spec.client.as_str()) {
            (Some(section), "http") => {
                crate::client::http::parse_spec(section).map_err(|e| bad("http", e.to_string()))?;
            }
            (None, "http") => {
                return Err(bad(
                    "http",
                    "client = \"http\" needs an [http] section".into(),
                ))
            }
            (Some(_), other) => {
                return Err(bad(
                    "http",
                    format!("an [http] section needs client = \"http\", not {other:?}"),
                ))
            }
            (None, _) => {}
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
pub(crate) const PLACEHOLDERS: [&str; 9] = [
    "id",
    "name",
    "ip",
    "client_port",
    "peer_port",
    "data_dir",
    "peers",
    "initial_cluster",
    "run_id",
];

fn check_placeholders(s: &str) -> Result<(), String> {
    let mut rest = s;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            return Ok(());
        };
        let name = &rest[open + 1..open + close];
        if !PLACEHOLDERS.contains(&name) {
            return Err(name.to_string());
        }
        rest = &rest[open + close + 1..];
    }
    Ok(())
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
        for name in ["raftkv", "etcd", "raftkv-http"] {
            let p = resolve("cluster", "clusters", name).unwrap();
            ClusterSpec::load(&p).unwrap();
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
