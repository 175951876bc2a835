//! `raftcheck clean`: remove what interrupted runs left behind.
//!
//! A run killed with SIGKILL cannot tear down its network, and its nodes survive it if their
//! parent-death signal could not fire (say, the harness was stopped by a debugger). Every
//! resource carries the run id (see [`super::net`] for the names), so leftovers are found by
//! name, never guessed: processes whose environment has `RAFTCHECK_RUN_ID`, processes inside
//! namespaces named `rcXXXX-nK`, those namespaces, links named `rcXXXX-br` / `rcXXXX-vK`, and
//! root iptables rules commented `raftcheck:rcXXXX`.

use super::host::run;
use super::net::{
    delete_link, delete_rules, is_run_id, kill_netns_pids, list_links, list_netns,
    remove_stale_locks, run_id_of, RULE_COMMENT_PREFIX,
};
use super::process::RUN_ID_ENV;
use super::ClusterError;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::BTreeSet;

/// Remove leftovers of ANY earlier run (every run on this machine, live ones included: do not
/// call it while a run you care about is going). Returns one line per thing removed, and one per
/// thing it could not remove (starting "could not"). Without root it removes the processes it
/// can and says what it could not.
pub fn clean() -> Result<Vec<String>, ClusterError> {
    clean_where(None)
}

/// Like [`clean`], but only what carries `run_id`: safe while other runs are going (the run's
/// own Ctrl-C path and the tests use it).
pub fn clean_run(run_id: &str) -> Result<Vec<String>, ClusterError> {
    if !is_run_id(run_id) {
        return Err(ClusterError::Other(format!("bad run id {run_id:?}")));
    }
    clean_where(Some(run_id))
}

fn clean_where(only: Option<&str>) -> Result<Vec<String>, ClusterError> {
    let wanted = |id: &str| match only {
        None => true,
        Some(o) => o == id,
    };
    let mut out = Vec::new();
    kill_tagged_processes(&wanted, &mut out)?;

    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let namespaces: Vec<String> = match list_netns() {
        Ok(v) => v,
        Err(e) => {
            out.push(format!("could not list namespaces: {e}"));
            Vec::new()
        }
    };
    let namespaces: Vec<String> = namespaces
        .into_iter()
        .filter(|n| run_id_of(n).is_some_and(wanted))
        .collect();
    let links: Vec<String> = match list_links() {
        Ok(v) => v,
        Err(e) => {
            out.push(format!("could not list links: {e}"));
            Vec::new()
        }
    };
    // Veths before bridges, so nothing is left enslaved to a bridge being deleted.
    let mut links: Vec<String> = links
        .into_iter()
        .filter(|n| run_id_of(n).is_some_and(wanted))
        .collect();
    links.sort_by_key(|l| l.ends_with("-br"));

    if !root {
        for ns in &namespaces {
            out.push(format!("could not remove namespace {ns}: needs root"));
        }
        for l in &links {
            out.push(format!("could not remove link {l}: needs root"));
        }
        out.push("could not look for iptables rules: needs root".into());
        return Ok(out);
    }

    for ns in &namespaces {
        for pid in kill_netns_pids(ns) {
            out.push(format!(
                "killed process {pid} ({}) in namespace {ns}",
                comm(pid)
            ));
        }
    }
    for l in &links {
        match delete_link(l) {
            Ok(()) => out.push(format!("removed link {l}")),
            Err(e) => out.push(format!("could not remove link {l}: {e}")),
        }
    }
    for ns in &namespaces {
        match run(&["ip", "netns", "delete", ns]) {
            Ok(_) => out.push(format!("removed namespace {ns}")),
            Err(e) => out.push(format!("could not remove namespace {ns}: {e}")),
        }
    }
    let pick = |c: &str| {
        c.strip_prefix(RULE_COMMENT_PREFIX)
            .is_some_and(|id| is_run_id(id) && wanted(id))
    };
    let (removed, failed) = delete_rules(&run, &["FORWARD", "INPUT", "OUTPUT"], &pick);
    out.extend(
        removed
            .into_iter()
            .map(|r| format!("removed iptables rule: {r}")),
    );
    out.extend(failed.into_iter().map(|f| format!("could not remove {f}")));
    if only.is_none() {
        // Lock files name subnets, not runs: only the global clean can tell them stale.
        for f in remove_stale_locks() {
            out.push(format!("removed stale subnet lock {f}"));
        }
    }
    Ok(out)
}

/// SIGCONT + SIGKILL every process whose environment names a wanted run id (paused nodes would
/// otherwise linger stopped). Never this process or its ancestors.
fn kill_tagged_processes(
    wanted: &dyn Fn(&str) -> bool,
    out: &mut Vec<String>,
) -> Result<(), ClusterError> {
    let protected = self_and_ancestors();
    let dir = std::fs::read_dir("/proc")
        .map_err(|e| ClusterError::Other(format!("cannot read /proc: {e}")))?;
    let key = format!("{RUN_ID_ENV}=");
    let mut unreadable = 0usize;
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        // pid 1 is the machine's (or container's) init: never ours, never to be touched.
        if pid <= 1 || protected.contains(&pid) {
            continue;
        }
        let environ = match std::fs::read(format!("/proc/{pid}/environ")) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                unreadable += 1;
                continue;
            }
            Err(_) => continue, // exited meanwhile
        };
        let run_id = environ
            .split(|&b| b == 0)
            .filter_map(|v| std::str::from_utf8(v).ok())
            .find_map(|v| v.strip_prefix(key.as_str()));
        let Some(run_id) = run_id else { continue };
        if !wanted(run_id) {
            continue;
        }
        let name = comm(pid);
        let p = Pid::from_raw(pid);
        let _ = kill(p, Signal::SIGCONT);
        match kill(p, Signal::SIGKILL) {
            Ok(()) => out.push(format!("killed process {pid} ({name}) of run {run_id}")),
            Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => out.push(format!(
                "could not kill process {pid} ({name}) of run {run_id}: {e}"
            )),
        }
    }
    // As root, an unreadable environ belongs to a process shielded from ptrace (an init, a
    // kernel-protected daemon): never one of ours, which inherit the harness's credentials.
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unreadable > 0 && unsafe { libc::geteuid() } != 0 {
        out.push(format!(
            "could not inspect {unreadable} processes of other users (not root)"
        ));
    }
    Ok(())
}

/// This process and its ancestors: never killed, even if they carry a run id.
fn self_and_ancestors() -> BTreeSet<i32> {
    let mut set = BTreeSet::new();
    let mut pid = std::process::id() as i32;
    for _ in 0..64 {
        if pid <= 1 || !set.insert(pid) {
            break;
        }
        let Some(ppid) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| parse_ppid(&s))
        else {
            break;
        };
        pid = ppid;
    }
    set
}

/// The parent pid from a `/proc/PID/stat` line (the command name may hold spaces and parens).
fn parse_ppid(stat: &str) -> Option<i32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// A process's command name, for messages.
fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppid_survives_odd_command_names() {
        assert_eq!(parse_ppid("42 (a) b) S 7 42 42 0"), Some(7));
        assert_eq!(parse_ppid("garbage"), None);
    }

    #[test]
    fn clean_never_targets_itself() {
        assert!(self_and_ancestors().contains(&(std::process::id() as i32)));
    }

    #[test]
    fn clean_run_refuses_bad_ids() {
        assert!(clean_run("etc").is_err());
    }
}
