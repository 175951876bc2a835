//! `--join-via ADDR`: a node that asks to be added, as servers that bootstrap from one node
//! expect (rqlite's `-join`, Consul's `retry_join`). The node starts outside the configuration
//! (as with `--join`) and asks ADDR, or the leader ADDR names, to add it with POST /admin/add
//! until a leader says yes. Replication is unchanged: this is only who asks for the change;
//! raftcheck's tests use it to exercise specs whose first node starts alone.

use std::net::SocketAddr;
use std::time::Duration;

use crate::raft::NodeId;

/// Time between two attempts.
const RETRY_EVERY: Duration = Duration::from_millis(300);
/// Give up after this many attempts (10 minutes): a node that was never added says so in its
/// log instead of asking forever.
const MAX_ATTEMPTS: u32 = 2_000;

/// Ask `via` (then the leader it names) to add server `id` at `listen`, until the change is
/// accepted. Run in the background once the node's own port is open; adding a member that is
/// already one is accepted, so a restarted node asks again harmlessly.
pub async fn ask_to_join(via: String, id: NodeId, listen: SocketAddr) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(%e, "--join-via: cannot build an HTTP client");
            return;
        }
    };
    let body = serde_json::json!({ "id": id, "addr": listen.to_string() });
    let mut target = via.clone();
    for attempt in 1..=MAX_ATTEMPTS {
        let url = format!("http://{target}/admin/add");
        match client.post(&url).json(&body).send().await {
            Ok(r) if r.status().is_success() => {
                tracing::info!(via = %target, attempt, "joined the cluster");
                return;
            }
            Ok(r) if r.status().as_u16() == 421 => {
                // Not the leader: ask the one it names, or start over at `via`.
                let named = r
                    .json::<serde_json::Value>()
                    .await
                    .ok()
                    .and_then(|v| v.get("leader_addr")?.as_str().map(str::to_string));
                target = named.unwrap_or_else(|| via.clone());
            }
            Ok(r) => {
                tracing::debug!(status = r.status().as_u16(), via = %target, "join refused; retrying");
                target = via.clone();
            }
            Err(e) => {
                tracing::debug!(%e, via = %target, "join request failed; retrying");
                target = via.clone();
            }
        }
        tokio::time::sleep(RETRY_EVERY).await;
    }
    tracing::error!(via = %via, "--join-via: never added to the cluster; giving up");
}
