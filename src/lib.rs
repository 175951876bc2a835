//! raftcheck: a Jepsen-style linearizability test harness for Raft servers.
//!
//! The map, lowest layer first. Each module may import only the modules above it in this list
//! (the dependency rule; `tests/layers.rs` reads the `use` lines and keeps it true):
//! - [`history`]: operation records; `history.jsonl` and Jepsen EDN in and out. Imports nothing.
//! - [`checker`]: the linearizability checker (models, search, partitioning, counterexamples).
//!   Imports history.
//! - [`client`]: one adapter per protocol (raftkv, etcd, declarative http, declarative command:
//!   a process per op), and the role a node
//!   reports. Imports history; knows nothing of cluster specs.
//! - [`spec`]: cluster, workload and nemesis specs as data, found by name and loaded with
//!   errors that name the file and field. Imports checker (model names) and client (the
//!   adapter registry, which checks the declarative adapters' sections).
//! - [`cluster`]: where nodes run (netns or loopback), process supervision, cleanup.
//! - [`nemesis`]: grudges (partitions as data) and the seeded fault schedule.
//! - [`store`]: everything in a run directory: the JSONL sinks, typed nemesis events and
//!   samples, results.json, the matrix's records, and the one reader of a finished run.
//! - [`analysis`]: what the records mean: the verdict rules, latency, leader changes,
//!   unavailability, Raft invariants, first violation. Pure functions of the store's records.
//! - [`workload`]: the seeded op generator and the client workers.
//! - [`report`]: the terminal summary, report.html, PNG plots, junit.xml, the results index;
//!   reads only what the store and analysis give it.
//! - [`run`]: one run: a validated plan, then its execution (nodes, workers, nemesis, monitor,
//!   final phase), then judging what was recorded.
//! - [`matrix`]: the bug-detection matrix (bug switches vs. controls, several seeds each).
//!
//! history, checker, store and analysis never import run, report or matrix, so the pure parts
//! stay testable without a cluster.
//!
//! The binary (`src/main.rs`) only parses flags, calls into these modules and maps the verdict
//! to an exit code: 0 valid, 1 invalid, 2 bad input, 3 unknown.

#![warn(missing_docs)]

/// The git commit this build of raftcheck was made from, captured by `build.rs`: 12 hex digits,
/// `-dirty` appended when tracked files differed from it, or `unknown` when not built from a git
/// checkout. Recorded with every matrix run and shown by `raftcheck --version`, so a result
/// names the code that produced it rather than whatever checkout is current when it runs.
pub const BUILD_COMMIT: &str = env!("RAFTCHECK_BUILD_COMMIT");

pub mod analysis;
pub mod checker;
pub mod client;
pub mod cluster;
pub mod history;
pub mod matrix;
pub mod nemesis;
pub mod report;
pub mod run;
pub mod spec;
pub mod store;
pub mod workload;
