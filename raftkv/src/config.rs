//! Command-line flags and their validation into a [`Plan`]: raw flags → a checked plan,
//! so everything after parsing works on values that make sense together.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use crate::raft::{Members, NodeId};

/// A deliberate, documented safety bug (see README.md). Off unless `--bug` names one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Bug {
    /// Every node, followers included, answers reads from its local state.
    StaleRead,
    /// The leader answers reads from local state without confirming leadership; check-quorum
    /// step-down is off so an isolated leader keeps believing it leads.
    LeaderLocalRead,
    /// The leader acknowledges put/append once appended to its own log, before commit.
    AckBeforeCommit,
    /// Votes skip the §5.4.1 up-to-date check; pre-vote and leader stickiness are off.
    VoteWithoutLogCheck,
    /// Term and vote are never written to disk.
    ForgetVote,
    /// The log is written on every request but fsynced only by a timer (`--fsync-interval-ms`),
    /// and everything is acknowledged before it is durable (NATS JetStream's default).
    AckBeforeFsync,
    /// The data directory is never fsynced: the log's creation and every compaction's renames
    /// are not durable.
    NoDirFsync,
    /// Log records are loaded by their length fields alone: a record whose checksum fails is
    /// used as it decodes, and one that does not decode becomes a no-op entry.
    IgnoreChecksum,
}

/// raftkv: a Raft key-value server (the reference system under test of raftcheck).
///
/// Clients and peers share the one HTTP port given by --listen: the client API is under
/// /kv, /status and /admin, peer RPC under /raft.
#[derive(Debug, Parser)]
#[command(name = "raftkv", version)]
pub struct Flags {
    /// This server's id (a positive integer, one of the ids in --peers).
    #[arg(long)]
    pub id: NodeId,
    /// Address to serve the client API and peer RPC on, e.g. 127.0.0.1:7001.
    #[arg(long)]
    pub listen: SocketAddr,
    /// Every member of the initial cluster including this one: id=host:port,...
    #[arg(long)]
    pub peers: String,
    /// Directory for the write-ahead log and snapshot (created if missing).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Lower bound of the randomized election timeout.
    #[arg(long, default_value_t = 300)]
    pub election_timeout_min_ms: u64,
    /// Upper bound of the randomized election timeout.
    #[arg(long, default_value_t = 600)]
    pub election_timeout_max_ms: u64,
    /// Leader heartbeat interval in ms; must be below --election-timeout-min-ms.
    #[arg(long, default_value_t = 50)]
    pub heartbeat_ms: u64,
    /// Take a snapshot and compact the log after this many applied entries.
    #[arg(long, default_value_t = 10_000)]
    pub snapshot_threshold: u64,
    /// How long a client request may wait for commit/apply before answering 503.
    #[arg(long, default_value_t = 5_000)]
    pub request_timeout_ms: u64,
    /// Start outside the configuration and wait to be added with POST /admin/add on the
    /// leader (--peers then only serves as an address book).
    #[arg(long)]
    pub join: bool,
    /// Like --join, and ask this address (host:port; or the leader it names) to add this
    /// server, as servers that bootstrap from one node expect. Changes only who asks for the
    /// membership change, not how the cluster replicates.
    #[arg(long, value_name = "ADDR")]
    pub join_via: Option<String>,
    /// Switch on one deliberate safety bug (see README.md).
    #[arg(long, value_enum)]
    pub bug: Option<Bug>,
    /// With `--bug ack-before-fsync`: how often the timer fsyncs the log, in ms.
    #[arg(long, default_value_t = 1000)]
    pub fsync_interval_ms: u64,
    /// Answer every client API request (/kv) with status 200 and a text body: a value as text,
    /// `OK`, or `Error: <reason>` (see README.md); parameters may also come as a text body, a
    /// form body or a query string. Changes only how the server talks, never how it
    /// replicates; used by raftcheck's tests for the kinds of server it must describe.
    #[arg(long)]
    pub text_api: bool,
    /// Serve no GET /status (it answers 404), like a server without a status endpoint.
    /// Changes only how the server talks, never how it replicates; used by raftcheck's tests
    /// for the kinds of server it must describe.
    #[arg(long)]
    pub no_status: bool,
}

/// How the server talks to clients: the `--text-api` and `--no-status` switches. They change
/// answers and request parsing only, never replication, so raftcheck can test its declarative
/// adapter against servers shaped like real ones on a server whose correctness is known.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Talk {
    /// `--text-api`: status 200 and a text body for every client API answer.
    pub text_api: bool,
    /// `--no-status`: GET /status answers 404.
    pub no_status: bool,
}

/// Validated configuration of one server.
#[derive(Clone, Debug)]
pub struct Plan {
    /// This server's id from `--id`: positive, and one of `peers` unless joining.
    pub id: NodeId,
    /// Where the HTTP server binds; the client API and peer RPC share this one port.
    pub listen: SocketAddr,
    /// Address book from --peers (initial members, or just addresses when joining).
    pub peers: Members,
    /// The configuration to bootstrap with: `peers`, or empty when joining.
    pub bootstrap: Members,
    /// Holds `wal` and `snapshot`; created if missing.
    pub data_dir: PathBuf,
    /// Milliseconds per core tick: the heartbeat or a tenth of the minimum election timeout,
    /// whichever is shorter, clamped to 1–10 ms.
    pub tick_ms: u64,
    /// The election timeout's (min, max) from the ms flags, in ticks of `tick_ms` (at least 1
    /// each).
    pub election_ticks: (u32, u32),
    /// The heartbeat interval from `--heartbeat-ms`, in ticks of `tick_ms` (at least 1).
    pub heartbeat_ticks: u32,
    /// Applied entries after which the server snapshots its state and compacts the log.
    pub snapshot_threshold: u64,
    /// How long a client request may wait for commit or apply before it is answered 503 (outcome
    /// unknown), in ms.
    pub request_timeout_ms: u64,
    /// `--join-via`: whom to ask to be added once the node serves.
    pub join_via: Option<String>,
    /// The deliberate safety bug `--bug` switched on, if any; `None` in every correct run.
    pub bug: Option<Bug>,
    /// `--fsync-interval-ms`: the `ack-before-fsync` timer's period.
    pub fsync_interval_ms: u64,
    /// How the client API talks (`--text-api`, `--no-status`).
    pub talk: Talk,
}

impl Plan {
    /// How carefully storage makes state durable: the correct server, or the storage bug
    /// switch `--bug` names.
    pub fn durability(&self) -> crate::storage::Durability {
        let mut d = crate::storage::Durability::default();
        match self.bug {
            Some(Bug::ForgetVote) => d.forget_vote = true,
            Some(Bug::AckBeforeFsync) => {
                d.fsync_interval = Some(std::time::Duration::from_millis(self.fsync_interval_ms))
            }
            Some(Bug::NoDirFsync) => d.dir_fsync = false,
            Some(Bug::IgnoreChecksum) => d.check_checksums = false,
            _ => {}
        }
        d
    }
}

/// Parse `id=host:port,...`.
pub fn parse_peers(s: &str) -> Result<Members, String> {
    let mut out = Members::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('=')
            .ok_or_else(|| format!("--peers: `{part}` is not id=host:port"))?;
        let id: NodeId = id
            .trim()
            .parse()
            .map_err(|_| format!("--peers: `{id}` is not a positive integer id"))?;
        let addr = addr.trim();
        if addr
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .is_none()
        {
            return Err(format!("--peers: `{addr}` is not host:port"));
        }
        if id == 0 {
            return Err("--peers: id 0 is reserved".into());
        }
        if out.insert(id, addr.to_string()).is_some() {
            return Err(format!("--peers: id {id} appears twice"));
        }
    }
    if out.is_empty() {
        return Err("--peers: no members given".into());
    }
    Ok(out)
}

impl Flags {
    /// Check the flags against each other and derive the plan.
    pub fn plan(self) -> Result<Plan, String> {
        if self.id == 0 {
            return Err("--id must be a positive integer".into());
        }
        let peers = parse_peers(&self.peers)?;
        let joining = self.join || self.join_via.is_some();
        if let Some(v) = &self.join_via {
            if v.rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok())
                .is_none()
            {
                return Err(format!("--join-via: `{v}` is not host:port"));
            }
        }
        if !joining && !peers.contains_key(&self.id) {
            return Err(format!(
                "--id {} is not among --peers (use --join to join later)",
                self.id
            ));
        }
        let (min, max, hb) = (
            self.election_timeout_min_ms,
            self.election_timeout_max_ms,
            self.heartbeat_ms,
        );
        if hb == 0 || min == 0 {
            return Err("--heartbeat-ms and --election-timeout-min-ms must be positive".into());
        }
        if max <= min {
            return Err(format!(
                "--election-timeout-max-ms ({max}) must exceed --election-timeout-min-ms ({min})"
            ));
        }
        if hb >= min {
            return Err(format!(
                "--heartbeat-ms ({hb}) must be below --election-timeout-min-ms ({min})"
            ));
        }
        if self.snapshot_threshold == 0 {
            return Err("--snapshot-threshold must be positive".into());
        }
        if self.request_timeout_ms == 0 {
            return Err("--request-timeout-ms must be positive".into());
        }
        if self.fsync_interval_ms == 0 {
            return Err("--fsync-interval-ms must be positive".into());
        }
        // A tick fine enough to honour both the heartbeat and the election range.
        let tick_ms = hb.min(min / 10).clamp(1, 10);
        let ticks = |ms: u64| ((ms / tick_ms).max(1)).min(u32::MAX as u64) as u32;
        let bootstrap = if joining {
            Members::new()
        } else {
            peers.clone()
        };
        Ok(Plan {
            id: self.id,
            listen: self.listen,
            peers,
            bootstrap,
            data_dir: self.data_dir,
            tick_ms,
            election_ticks: (ticks(min), ticks(max)),
            heartbeat_ticks: ticks(hb),
            snapshot_threshold: self.snapshot_threshold,
            request_timeout_ms: self.request_timeout_ms,
            join_via: self.join_via,
            bug: self.bug,
            fsync_interval_ms: self.fsync_interval_ms,
            talk: Talk {
                text_api: self.text_api,
                no_status: self.no_status,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(extra: &[&str]) -> Result<Plan, String> {
        let mut args = vec![
            "raftkv",
            "--id",
            "1",
            "--listen",
            "127.0.0.1:7001",
            "--peers",
            "1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003",
            "--data-dir",
            "/tmp/x",
        ];
        args.extend_from_slice(extra);
        Flags::try_parse_from(args)
            .map_err(|e| e.to_string())?
            .plan()
    }

    #[test]
    fn good_flags_make_a_plan() {
        let p = flags(&[]).expect("valid");
        assert_eq!(p.peers.len(), 3);
        assert_eq!(p.tick_ms, 10);
        assert_eq!(p.election_ticks, (30, 60));
        assert_eq!(p.heartbeat_ticks, 5);
        assert_eq!(p.talk, Talk::default());
        let p = flags(&["--text-api", "--no-status"]).expect("valid");
        assert!(p.talk.text_api && p.talk.no_status);
    }

    #[test]
    fn bad_flags_are_refused_with_a_reason() {
        let e = flags(&["--election-timeout-max-ms", "100"]).expect_err("max < min");
        assert!(e.contains("must exceed"), "{e}");
        let e = flags(&["--heartbeat-ms", "400"]).expect_err("hb >= min");
        assert!(e.contains("heartbeat"), "{e}");
        assert!(flags(&["--bug", "nonsense"]).is_err());
        assert!(parse_peers("1=a:1,1=b:2").is_err());
        assert!(parse_peers("x=a:1").is_err());
        assert!(parse_peers("1=nohost").is_err());
    }
}
