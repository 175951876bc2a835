//! raftcheck: a Jepsen-style linearizability test harness for Raft servers.
//!
//! The map:
//! - [`history`]: operation records; `history.jsonl` and Jepsen EDN in and out.
//! - [`checker`]: the linearizability checker (models, search, partitioning, counterexamples).
//! - [`cluster`]: cluster specs, where nodes run (netns or loopback), process supervision.
//! - [`client`]: one adapter per protocol (raftkv, etcd, declarative http).
//! - [`workload`]: workload specs, the seeded op generator, client workers, the history recorder.
//! - [`nemesis`]: fault specs, grudges (partitions as data), the seeded fault schedule.
//! - [`run`]: one run end to end: nodes, workers, nemesis, monitor, final phase, verdict.
//! - [`matrix`]: the bug-detection matrix (bug switches vs. controls, several seeds each).
//! - [`report`]: results.json, the terminal summary, results directories.
//!
//! The binary (`src/main.rs`) only parses flags, calls into these modules and maps the verdict
//! to an exit code: 0 valid, 1 invalid, 2 bad input, 3 unknown.

/// The git commit this build of raftcheck was made from, captured by `build.rs`: 12 hex digits,
/// `-dirty` appended when tracked files differed from it, or `unknown` when not built from a git
/// checkout. Recorded with every matrix run and shown by `raftcheck --version`, so a result
/// names the code that produced it rather than whatever checkout is current when it runs.
pub const BUILD_COMMIT: &str = env!("RAFTCHECK_BUILD_COMMIT");

pub mod checker;
pub mod client;
pub mod cluster;
pub mod history;
pub mod matrix;
pub mod nemesis;
pub mod report;
pub mod run;
pub mod workload;
