//! raftcheck
pub mod history;
