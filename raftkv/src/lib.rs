//! raftkv: the reference Raft key-value server of raftcheck, with deliberate bug switches.
//!
//! Map of the crate:
//! - [`raft`]: the consensus core, pure and deterministic (events in, a `Ready` of commands
//!   out: persist, send, apply). Tested by simulation in `tests/raft_sim.rs` and against the
//!   paper's figures in `tests/raft_scenarios.rs`.
//! - [`storage`]: the durable term/vote/log (a write-ahead log of CRC-checked records) and
//!   the snapshot file.
//! - [`kv`]: the replicated state machine (integer registers and lists) and its commands.
//! - [`config`]: command-line flags, validated into a plan; the bug switches.
//! - [`node`]: the runtime thread that drives the core, the disk and the state machine.
//! - [`http`]: the client API and peer RPC over HTTP/JSON (the client API in plain text under
//!   `--text-api`).
//! - [`join`]: `--join-via`, a node asking to be added (bootstrap-from-one-node servers).
//!
//! The server is started by `main.rs`; the harness reaches it only through HTTP.

#![warn(missing_docs)]

pub mod config;
pub mod http;
pub mod join;
pub mod kv;
pub mod node;
pub mod raft;
pub mod storage;
