//! The per-run lock: how `raftcheck clean` tells a run that is still going from one that died.
//!
//! A run takes its lock when its run id is made ([`super::net::new_run_id`]), before it creates
//! any resource, and holds it until it has torn everything down. The lock is a file,
//! `<lock dir>/raftcheck-run-<run id>.lock` (the lock dir is the subnet locks' one: `/run/lock`,
//! else the temp dir), that
//! - is `flock`ed exclusively by the controller for the run's whole life. The kernel drops an
//!   flock when the last descriptor of it closes, so a run killed with SIGKILL releases it at
//!   once. The file is opened close-on-exec, so node processes never inherit the descriptor
//!   (a node outliving its controller would otherwise keep a dead run looking alive);
//! - records the controller's pid and start time (field 22 of `/proc/PID/stat`, clock ticks
//!   since boot) and the boot id, so that a pid the kernel recycled for another process is not
//!   mistaken for the run.
//!
//! A run is **live** if its lock is held, or, failing that, if the recorded pid runs with the
//! recorded start time (in this boot). Otherwise it is **stale**: a run killed with SIGKILL
//! keeps its lock file, but the flock is gone and the pid is dead.
//!
//! The file appears atomically and complete: it is written and locked under a temporary name,
//! then hard-linked into place (which fails if the name exists, so two runs never share an id),
//! and the temporary name is removed. A reader never sees a half-written or unlocked lock file
//! of a run that is starting. [`RunLock`]'s `Drop` removes the file, on every path out of a run
//! (errors and panics included); only SIGKILL (or a crash of the machine) leaves one behind.

use super::net::{is_run_id, random_run_id};
use super::ClusterError;
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Lock files are `raftcheck-run-<run id>.lock`.
const LOCK_PREFIX: &str = "raftcheck-run-";

const LOCK_SUFFIX: &str = ".lock";

/// The temporary name a lock file is written under before it is linked into place.
const TMP_SUFFIX: &str = ".tmp";

/// How many fresh ids to try before giving up (the id space holds 36^4 ids: reaching this
/// means the lock dir is full of lock files, which deserves an error, not a loop).
const CLAIM_TRIES: usize = 1000;

/// Where `run_id`'s lock file is on this machine (for messages, and for tests that check a run
/// left none behind).
pub fn lock_file(run_id: &str) -> PathBuf {
    lock_path(&super::net::lock_dir(), run_id)
}

/// The path of `run_id`'s lock file in `dir`.
pub(crate) fn lock_path(dir: &Path, run_id: &str) -> PathBuf {
    dir.join(format!("{LOCK_PREFIX}{run_id}{LOCK_SUFFIX}"))
}

/// A run's claim on its id, held for the run's life. Dropping it removes the lock file (if it
/// is still ours) and then releases the flock.
#[derive(Debug)]
pub struct RunLock {
    /// The id no other run can take while this lock lives.
    run_id: String,
    /// `<lock dir>/raftcheck-run-<run id>.lock`; removed on drop only if the path still names our
    /// file.
    path: PathBuf,
    /// The flock; released when this field drops, after `drop` removed the file.
    lock: Flock<File>,
}

impl RunLock {
    /// A fresh run id, locked in `dir`: ids whose lock file exists (live or stale; a stale
    /// run's leftovers still carry its id) are passed over.
    pub(crate) fn claim_in(dir: &Path) -> Result<RunLock, ClusterError> {
        Self::claim_with(dir, &mut random_run_id)
    }

    /// [`RunLock::claim_in`] with the ids to try coming from `next_id` (tests choose them).
    fn claim_with(
        dir: &Path,
        next_id: &mut dyn FnMut() -> String,
    ) -> Result<RunLock, ClusterError> {
        let io_err = |p: &Path, e: std::io::Error| {
            ClusterError::Other(format!("run lock {}: {e}", p.display()))
        };
        let me = std::process::id() as i32;
        let start_time = start_time_of(me).ok_or_else(|| {
            ClusterError::Other("cannot read this process's start time from /proc".into())
        })?;
        for _ in 0..CLAIM_TRIES {
            let run_id = next_id();
            let path = lock_path(dir, &run_id);
            if path.symlink_metadata().is_ok() {
                continue;
            }
            let tmp = dir.join(format!("{LOCK_PREFIX}{run_id}.{me}{TMP_SUFFIX}"));
            // std opens every file close-on-exec: node processes never inherit this one.
            let file = match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&tmp)
            {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err(&tmp, e)),
            };
            let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(l) => l,
                Err((_, e)) => {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(io_err(&tmp, e.into()));
                }
            };
            let record = LockRecord {
                run_id: run_id.clone(),
                pid: me,
                start_time,
                boot_id: boot_id(),
            };
            if let Err(e) = (&*lock).write_all(record.render().as_bytes()) {
                let _ = std::fs::remove_file(&tmp);
                return Err(io_err(&tmp, e));
            }
            // The lock file appears complete and locked, or not at all.
            let linked = std::fs::hard_link(&tmp, &path);
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Ok(()) => return Ok(RunLock { run_id, path, lock }),
                // AlreadyExists: the id was taken meanwhile. NotFound: a clean removed our
                // temporary file before we locked it (it waits a minute; see remove_stale_tmp).
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::AlreadyExists | std::io::ErrorKind::NotFound
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(io_err(&path, e)),
            }
        }
        Err(ClusterError::Other(format!(
            "no free run id after {CLAIM_TRIES} tries: {} is full of raftcheck lock files \
             (`raftcheck clean` removes stale ones)",
            dir.display()
        )))
    }

    /// The run id this lock reserves, which every resource of the run (namespaces, links, rules)
    /// carries in its name.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The lock file (for messages, and for tests that check nodes do not inherit it).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Only if the path still names our file: a forced clean may have removed it, and then
        // the name could belong to someone else.
        if same_file(&self.lock, &self.path) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Whether `path` still names the file `file` has open.
fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}

/// What a lock file says about its run's controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LockRecord {
    /// The run the lock is for (must match the file name).
    pub(crate) run_id: String,
    /// The pid of the raftcheck process carrying out the run; with `start_time` and `boot_id` it
    /// tells a live controller from a recycled pid.
    pub(crate) pid: i32,
    /// The controller's start time, in clock ticks since boot (field 22 of /proc/PID/stat).
    pub(crate) start_time: u64,
    /// `/proc/sys/kernel/random/boot_id` when the lock was taken (start times restart at boot).
    pub(crate) boot_id: Option<String>,
}

/// A lock file that does not say what it should.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LockFileError {
    /// A required field is absent (an empty file, say).
    #[error("no {0} line")]
    Missing(&'static str),
    /// A field's value does not parse.
    #[error("bad {key} value {value:?}")]
    Bad {
        /// The field's key as in the file (`run_id`, `pid`, `start_time`).
        key: &'static str,
        /// The value as the file has it, quoted in the message.
        value: String,
    },
    /// A line that is not `key=value`.
    #[error("line {0:?} is not key=value")]
    NotKeyValue(String),
    /// The file could not be read as text.
    #[error("cannot read it: {0}")]
    Unreadable(String),
    /// The file names another run than its file name does.
    #[error("it names run {found}, but its file name says {expected}")]
    OtherRun {
        /// The run id in the file name.
        expected: String,
        /// The run id in the file.
        found: String,
    },
}

impl LockRecord {
    /// The file's text: `key=value` lines, with a comment saying what the file is.
    pub(crate) fn render(&self) -> String {
        let mut s = format!(
            "# raftcheck run lock: run {} is live while this file is flocked, or while pid {} \
             runs with this start time\nrun_id={}\npid={}\nstart_time={}\n",
            self.run_id, self.pid, self.run_id, self.pid, self.start_time
        );
        if let Some(b) = &self.boot_id {
            s.push_str(&format!("boot_id={b}\n"));
        }
        s
    }

    /// Read a lock file's text. Unknown keys are ignored (a newer raftcheck may add some);
    /// blank lines and `#` comments are skipped.
    pub(crate) fn parse(text: &str) -> Result<LockRecord, LockFileError> {
        let (mut run_id, mut pid, mut start_time, mut boot) = (None, None, None, None);
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| LockFileError::NotKeyValue(line.to_string()))?;
            let bad = |key: &'static str| LockFileError::Bad {
                key,
                value: v.to_string(),
            };
            match k.trim() {
                "run_id" if is_run_id(v) => run_id = Some(v.to_string()),
                "run_id" => return Err(bad("run_id")),
                "pid" => {
                    pid = Some(
                        v.parse::<i32>()
                            .ok()
                            .filter(|&p| p > 0)
                            .ok_or_else(|| bad("pid"))?,
                    )
                }
                "start_time" => start_time = Some(v.parse::<u64>().map_err(|_| bad("start_time"))?),
                "boot_id" if !v.is_empty() => boot = Some(v.to_string()),
                _ => {}
            }
        }
        Ok(LockRecord {
            run_id: run_id.ok_or(LockFileError::Missing("run_id"))?,
            pid: pid.ok_or(LockFileError::Missing("pid"))?,
            start_time: start_time.ok_or(LockFileError::Missing("start_time"))?,
            boot_id: boot,
        })
    }
}

/// What a lock file, probed by `clean`, says about its run.
#[derive(Debug)]
pub(crate) enum LockState {
    /// Someone holds the flock: the run is live. The record, if it could be read, names the pid.
    Held(Option<LockRecord>),
    /// Nobody holds the flock, but the recorded controller still runs (same pid, same start
    /// time, same boot).
    ControllerRunning(LockRecord),
    /// Nobody holds the flock and the controller is gone (or the file says nothing usable).
    Stale(StaleLock),
}

/// Why a lock nobody holds is stale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StaleLock {
    /// The recorded pid no longer exists (or is a zombie).
    Exited {
        /// The pid the lock file recorded, no longer running.
        pid: i32,
    },
    /// The recorded pid runs, but started at another time: the kernel gave it to another
    /// process.
    Recycled {
        /// The pid the lock file recorded, now another process's.
        pid: i32,
    },
    /// The lock was taken in an earlier boot.
    OtherBoot {
        /// The pid the lock file recorded in that earlier boot, meaningless in this one.
        pid: i32,
    },
    /// The file says nothing usable.
    Unparseable(LockFileError),
}

/// A probed lock file, with our own flock on it when nobody else held it, so the file can be
/// removed knowing no run took it meanwhile.
#[derive(Debug)]
pub(crate) struct Probe {
    /// Whether the run is live (flock held, or its controller still running) or stale, and why.
    pub(crate) state: LockState,
    /// Our flock, for a stale lock only.
    pub(crate) guard: Option<Flock<File>>,
}

/// Probe `run_id`'s lock file at `path`. `Ok(None)` if there is none.
pub(crate) fn probe(path: &Path, run_id: &str) -> std::io::Result<Option<Probe>> {
    // Read-only is enough for flock, and lets a user probe root's lock files.
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let read_record = |mut f: &File| -> Result<LockRecord, LockFileError> {
        let mut text = String::new();
        f.read_to_string(&mut text)
            .map_err(|e| LockFileError::Unreadable(e.to_string()))?;
        let r = LockRecord::parse(&text)?;
        if r.run_id != run_id {
            return Err(LockFileError::OtherRun {
                expected: run_id.to_string(),
                found: r.run_id,
            });
        }
        Ok(r)
    };
    let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((file, nix::errno::Errno::EWOULDBLOCK)) => {
            return Ok(Some(Probe {
                state: LockState::Held(read_record(&file).ok()),
                guard: None,
            }))
        }
        Err((_, e)) => return Err(e.into()),
    };
    let record = match read_record(&lock) {
        Ok(r) => r,
        Err(e) => {
            return Ok(Some(Probe {
                state: LockState::Stale(StaleLock::Unparseable(e)),
                guard: Some(lock),
            }))
        }
    };
    let pid = record.pid;
    let stale = match controller(&record) {
        Controller::Running => {
            return Ok(Some(Probe {
                state: LockState::ControllerRunning(record),
                guard: None,
            }))
        }
        Controller::Exited => StaleLock::Exited { pid },
        Controller::Recycled => StaleLock::Recycled { pid },
        Controller::OtherBoot => StaleLock::OtherBoot { pid },
    };
    Ok(Some(Probe {
        state: LockState::Stale(stale),
        guard: Some(lock),
    }))
}

/// Remove a stale lock file we hold the flock of, if the path still names that file.
pub(crate) fn remove_locked(path: &Path, guard: &Flock<File>) -> std::io::Result<()> {
    if same_file(guard, path) {
        std::fs::remove_file(path)
    } else {
        Ok(())
    }
}

/// The run lock files in `dir`, as (run id, path).
pub(crate) fn lock_files(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(id) = name
            .strip_prefix(LOCK_PREFIX)
            .and_then(|n| n.strip_suffix(LOCK_SUFFIX))
            .filter(|id| is_run_id(id))
        {
            found.push((id.to_string(), entry.path()));
        }
    }
    found.sort();
    found
}

/// How old a temporary lock file must be before `clean` takes it for a leftover: a claim holds
/// one for microseconds, but has not locked it yet in the instant after creating it.
const TMP_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

/// Delete temporary lock files nobody holds and nobody has touched for [`TMP_GRACE`]: left by a
/// run killed in the instant between writing its lock and linking it into place. Returns
/// (removed, failures).
pub(crate) fn remove_stale_tmp(dir: &Path) -> (Vec<PathBuf>, Vec<(PathBuf, std::io::Error)>) {
    remove_stale_tmp_older(dir, TMP_GRACE)
}

/// [`remove_stale_tmp`] with the grace period given (tests use zero).
fn remove_stale_tmp_older(
    dir: &Path,
    grace: std::time::Duration,
) -> (Vec<PathBuf>, Vec<(PathBuf, std::io::Error)>) {
    let (mut removed, mut failed) = (Vec::new(), Vec::new());
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.starts_with(LOCK_PREFIX) && name.ends_with(TMP_SUFFIX)) {
            continue;
        }
        let young = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_none_or(|age| age < grace);
        if young {
            continue;
        }
        let path = entry.path();
        let Ok(file) = File::open(&path) else {
            continue;
        };
        let Ok(lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else {
            continue; // a run is writing it right now
        };
        match remove_locked(&path, &lock) {
            Ok(()) => removed.push(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => failed.push((path, e)),
        }
    }
    (removed, failed)
}

/// Whether the process a record names is still the one that took the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Controller {
    /// Same pid, same start time, same boot.
    Running,
    /// No such process (or a zombie: it has exited and closed its files).
    Exited,
    /// A process with that pid runs, but started at another time.
    Recycled,
    /// The record is from an earlier boot.
    OtherBoot,
}

fn controller(r: &LockRecord) -> Controller {
    if let (Some(then), Some(now)) = (&r.boot_id, boot_id()) {
        if *then != now {
            return Controller::OtherBoot;
        }
    }
    match std::fs::read_to_string(format!("/proc/{}/stat", r.pid))
        .ok()
        .and_then(|s| stat_state_and_start(&s))
    {
        None => Controller::Exited,
        Some(('Z' | 'X', _)) => Controller::Exited,
        Some((_, t)) if t == r.start_time => Controller::Running,
        Some(_) => Controller::Recycled,
    }
}

/// The state (field 3) and start time (field 22) of a `/proc/PID/stat` line. The command name
/// (field 2) may hold spaces and parentheses, so fields are counted after its last `)`.
pub(crate) fn stat_state_and_start(stat: &str) -> Option<(char, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

/// A live process's start time, in clock ticks since boot.
pub(crate) fn start_time_of(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_state_and_start(&stat).map(|(_, t)| t)
}

/// This boot's id, if the kernel exposes it.
fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn state(dir: &Path, id: &str) -> LockState {
        probe(&lock_path(dir, id), id)
            .expect("probe")
            .expect("a lock file")
            .state
    }

    fn me() -> LockRecord {
        let pid = std::process::id() as i32;
        LockRecord {
            run_id: "rcab12".into(),
            pid,
            start_time: start_time_of(pid).expect("own start time"),
            boot_id: boot_id(),
        }
    }

    /// A pid no process can have: pids are below pid_max.
    fn dead_pid() -> i32 {
        std::fs::read_to_string("/proc/sys/kernel/pid_max")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(4_194_304)
    }

    #[test]
    fn a_held_lock_is_live_and_its_record_names_the_controller() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lock = RunLock::claim_in(dir.path()).expect("claim");
        assert!(is_run_id(lock.run_id()));
        match state(dir.path(), lock.run_id()) {
            LockState::Held(Some(r)) => {
                assert_eq!(r.pid, std::process::id() as i32);
                assert_eq!(r.run_id, lock.run_id());
            }
            other => panic!("{other:?}"),
        }
        let path = lock.path().to_path_buf();
        drop(lock);
        assert!(!path.exists(), "the lock file goes with the lock");
        assert!(std::fs::read_dir(dir.path()).expect("dir").next().is_none());
    }

    #[test]
    fn the_lock_is_close_on_exec() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lock = RunLock::claim_in(dir.path()).expect("claim");
        // SAFETY: F_GETFD on a descriptor we own has no preconditions.
        let flags = unsafe { libc::fcntl(lock.lock.as_raw_fd(), libc::F_GETFD) };
        assert!(flags >= 0 && flags & libc::FD_CLOEXEC != 0, "{flags}");
    }

    #[test]
    fn a_free_lock_whose_controller_runs_is_live() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(lock_path(dir.path(), "rcab12"), me().render()).expect("write");
        assert!(
            matches!(state(dir.path(), "rcab12"), LockState::ControllerRunning(r) if r == me())
        );
    }

    #[test]
    fn a_recycled_pid_is_stale() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut r = me();
        r.start_time += 1;
        std::fs::write(lock_path(dir.path(), "rcab12"), r.render()).expect("write");
        let pid = r.pid;
        assert!(matches!(
            state(dir.path(), "rcab12"),
            LockState::Stale(StaleLock::Recycled { pid: p }) if p == pid
        ));
    }

    #[test]
    fn a_dead_pid_is_stale() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut r = me();
        r.pid = dead_pid();
        std::fs::write(lock_path(dir.path(), "rcab12"), r.render()).expect("write");
        let p = state_removable(dir.path(), "rcab12");
        assert!(matches!(p, StaleLock::Exited { .. }), "{p:?}");
        assert!(!lock_path(dir.path(), "rcab12").exists());
    }

    /// Probe a stale lock, remove it under our flock, and say why it was stale.
    fn state_removable(dir: &Path, id: &str) -> StaleLock {
        let path = lock_path(dir, id);
        let p = probe(&path, id).expect("probe").expect("a lock file");
        let LockState::Stale(why) = p.state else {
            panic!("not stale: {:?}", p.state)
        };
        remove_locked(&path, p.guard.as_ref().expect("our flock")).expect("remove");
        why
    }

    #[test]
    fn a_lock_from_another_boot_is_stale() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut r = me();
        if r.boot_id.is_none() {
            eprintln!("SKIPPED: no /proc/sys/kernel/random/boot_id");
            return;
        }
        r.boot_id = Some("00000000-0000-0000-0000-000000000000".into());
        std::fs::write(lock_path(dir.path(), "rcab12"), r.render()).expect("write");
        assert!(matches!(
            state(dir.path(), "rcab12"),
            LockState::Stale(StaleLock::OtherBoot { .. })
        ));
    }

    #[test]
    fn an_unreadable_free_lock_is_stale_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (text, want) in [
            ("", LockFileError::Missing("run_id")),
            ("garbage", LockFileError::NotKeyValue("garbage".into())),
            (
                "run_id=rcother\npid=1\nstart_time=1\n",
                LockFileError::OtherRun {
                    expected: "rcab12".into(),
                    found: "rcother".into(),
                },
            ),
        ] {
            std::fs::write(lock_path(dir.path(), "rcab12"), text).expect("write");
            assert_eq!(
                state_removable(dir.path(), "rcab12"),
                StaleLock::Unparseable(want)
            );
        }
        assert!(probe(&lock_path(dir.path(), "rcab12"), "rcab12")
            .expect("probe")
            .is_none());
    }

    #[test]
    fn lock_files_parse_back() {
        let r = me();
        assert_eq!(LockRecord::parse(&r.render()), Ok(r.clone()));
        let plain = "run_id=rc7f3a\npid=42\nstart_time=99\nfuture_key=x\n\n# note\n";
        assert_eq!(
            LockRecord::parse(plain),
            Ok(LockRecord {
                run_id: "rc7f3a".into(),
                pid: 42,
                start_time: 99,
                boot_id: None
            })
        );
        let bad = |text: &str| LockRecord::parse(text).unwrap_err();
        assert_eq!(
            bad("run_id=rc7f3a\nstart_time=1"),
            LockFileError::Missing("pid")
        );
        assert_eq!(
            bad("run_id=rc7f3a\npid=1"),
            LockFileError::Missing("start_time")
        );
        assert!(matches!(
            bad("run_id=rc7f3a\npid=-3\nstart_time=1"),
            LockFileError::Bad { key: "pid", .. }
        ));
        assert!(matches!(
            bad("run_id=rc7f3a\npid=3\nstart_time=soon"),
            LockFileError::Bad {
                key: "start_time",
                ..
            }
        ));
        assert!(matches!(
            bad("run_id=../etc\npid=3\nstart_time=1"),
            LockFileError::Bad { key: "run_id", .. }
        ));
    }

    #[test]
    fn stat_fields_survive_odd_command_names() {
        let mut line = String::from("42 (a) b) S 7");
        for f in 5..=21 {
            line.push_str(&format!(" {f}"));
        }
        line.push_str(" 123456 99");
        assert_eq!(stat_state_and_start(&line), Some(('S', 123456)));
        assert_eq!(stat_state_and_start("garbage"), None);
        assert!(start_time_of(std::process::id() as i32).is_some());
    }

    #[test]
    fn a_claim_never_hands_out_an_id_that_has_a_lock_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let live = RunLock::claim_with(dir.path(), &mut || "rcaaaa".to_string()).expect("claim");
        let mut stale = me();
        stale.run_id = "rcbbbb".into();
        stale.pid = dead_pid();
        std::fs::write(lock_path(dir.path(), "rcbbbb"), stale.render()).expect("write");
        let mut ids = ["rcaaaa", "rcbbbb", "rccccc"].into_iter().map(String::from);
        let next =
            RunLock::claim_with(dir.path(), &mut || ids.next().unwrap_or_default()).expect("claim");
        assert_eq!(next.run_id(), "rccccc");
        assert_eq!(live.run_id(), "rcaaaa");
        // Only ever taken ids: the claim gives up instead of looping forever.
        let e = RunLock::claim_with(dir.path(), &mut || "rcaaaa".to_string()).unwrap_err();
        assert!(e.to_string().contains("no free run id"), "{e}");
    }

    #[test]
    fn claims_skip_ids_with_lock_files_and_tmp_leftovers_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = RunLock::claim_in(dir.path()).expect("claim");
        let b = RunLock::claim_in(dir.path()).expect("claim");
        assert_ne!(a.run_id(), b.run_id());
        let ids: Vec<String> = lock_files(dir.path()).into_iter().map(|(i, _)| i).collect();
        let mut want = vec![a.run_id().to_string(), b.run_id().to_string()];
        want.sort();
        assert_eq!(ids, want);
        let tmp = dir
            .path()
            .join(format!("{LOCK_PREFIX}rcab12.1{TMP_SUFFIX}"));
        std::fs::write(&tmp, "").expect("write");
        let (removed, failed) = remove_stale_tmp(dir.path());
        assert!(
            removed.is_empty() && failed.is_empty(),
            "a young one may be a claim's"
        );
        let (removed, failed) = remove_stale_tmp_older(dir.path(), std::time::Duration::ZERO);
        assert_eq!(removed, vec![tmp]);
        assert!(failed.is_empty());
    }
}
