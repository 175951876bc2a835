//! The power-loss layer: each node's data dir mounted on a FUSE passthrough filesystem that
//! raftcheck serves itself, so a `power-loss` fault can make the dir look as it would after a
//! power cut.
//!
//! What it models (POSIX's promises, the pessimistic reading ALICE and LazyFS use):
//! - a file's data and length are durable only up to its last `fsync`/`fdatasync` (or a write
//!   through an `O_SYNC`/`O_DSYNC` handle); `close` makes nothing durable;
//! - a directory entry created, removed or renamed is durable only once that directory is
//!   fsynced (a rename between two directories, once either is); fsyncing a new file does not
//!   make its name durable. That is POSIX's promise ([`DirModel::Posix`], the default). Real
//!   journalling file systems (ext4 data=ordered, XFS) commit every earlier directory operation
//!   with any fsync; [`DirModel::Journaled`] models that, for telling a server's reliance on
//!   the journal from a bug that loses data on ext4 too;
//! - at a power loss every file goes back to its durable contents and length, every directory
//!   operation not yet durable is undone (newest first), and optionally the last write not yet
//!   durable survives as a torn prefix cut at a seeded byte, when it was the only change to
//!   its file since the file's fsync (keeping part of it while an earlier write is lost would
//!   reorder the writes, which the model does not do).
//!
//! What it does not model: a disk's own write cache lying about fsync, reordering of writes
//! within one fsync interval (everything since the fsync is lost together, except the torn
//! prefix), sector-sized tearing or garbage in torn sectors, hard links (refused with EPERM),
//! and metadata such as permissions and times (kept as they are).
//!
//! The backing directory sits beside the mount (`nodes/nK/disk`, removed entries wait in
//! `nodes/nK/disk-trash`); after a run it holds the node's data. A power loss unmounts the
//! filesystem (the node is dead by then), rolls the backing directory back, and mounts a fresh
//! session, so no kernel cache survives it. Mounts are named `raftcheck-<run id>-<node>` so
//! `raftcheck clean` can find the ones a killed harness left.

mod fs;

pub use fs::DirModel;
use fs::{remove_any, DirOp, PowerLossFs, State};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why the layer could not be set up or rolled back.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// This machine cannot serve the layer (not root, no /dev/fuse).
    #[error("the power-loss layer needs {0}")]
    Unavailable(String),
    /// A filesystem operation on the backing or mount directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DiskError + '_ {
    move |source| DiskError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What one file lost at a power loss.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileLoss {
    /// Path relative to the data dir (`(removed) N` for a file whose name was already gone).
    pub file: String,
    /// Bytes whose contents changed back: written past the durable length, plus durable bytes
    /// overwritten since the last fsync.
    pub bytes: u64,
    /// Length before and after.
    pub len_before: u64,
    /// Length after the rollback (and the torn prefix, if any).
    pub len_after: u64,
    /// Set when the file's last write survived as a torn prefix: (offset, bytes kept, of).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torn: Option<(u64, u64, u64)>,
}

/// What a power loss discarded on one node, for nemesis.jsonl and the report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discarded {
    /// Files whose unsynced data was dropped.
    pub files: Vec<FileLoss>,
    /// Directory operations undone, newest first: `created wal.tmp`, `renamed a -> b`.
    pub dir_ops: Vec<String>,
}

impl Discarded {
    /// Total bytes discarded over all files.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }

    /// True when the power loss found nothing unsynced: everything was already durable.
    pub fn is_empty(&self) -> bool {
        self.files.iter().all(|f| f.bytes == 0) && self.dir_ops.is_empty()
    }

    /// One line for logs and the report: `3 files, 12,345 bytes, 2 dir ops (torn: wal at 77)`.
    pub fn summary(&self) -> String {
        if self.is_empty() {
            return "nothing to discard: everything was durable".into();
        }
        let torn: Vec<String> = self
            .files
            .iter()
            .filter_map(|f| {
                f.torn
                    .map(|(o, k, n)| format!("{} at {o}, kept {k} of {n}", f.file))
            })
            .collect();
        let mut s = format!(
            "{} file(s), {} byte(s), {} directory op(s) undone",
            self.files.iter().filter(|f| f.bytes > 0).count(),
            self.bytes(),
            self.dir_ops.len()
        );
        if !torn.is_empty() {
            s.push_str(&format!("; torn write: {}", torn.join(", ")));
        }
        s
    }
}

/// Whether this machine can serve the layer: root (to mount without fusermount) and
/// `/dev/fuse`. The error says what is missing.
pub fn available() -> Result<(), DiskError> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err(DiskError::Unavailable(
            "root (it mounts a FUSE filesystem with mount(2))".into(),
        ));
    }
    if !Path::new("/dev/fuse").exists() {
        return Err(DiskError::Unavailable(
            "/dev/fuse (load the fuse kernel module, or give the container the device)".into(),
        ));
    }
    Ok(())
}

/// The mount's source name in /proc/mounts: `raftcheck-<run id>-<node>`.
pub fn fs_name(run_id: &str, node: &str) -> String {
    format!("raftcheck-{run_id}-{node}")
}

/// The prefix of every mount source the layer uses (see [`fs_name`]).
pub const FS_PREFIX: &str = "raftcheck-";

/// One node's data dir on the layer. Dropping it unmounts.
pub struct PowerFs {
    mountpoint: PathBuf,
    backing: PathBuf,
    trash: PathBuf,
    fsname: String,
    model: DirModel,
    state: Arc<Mutex<State>>,
    session: Option<fuser::BackgroundSession>,
}

impl PowerFs {
    /// Mount the layer on `mountpoint` (created if missing), storing files in `backing`
    /// (created if missing; existing files count as durable) and removed entries in `trash`
    /// (which must be on the same filesystem as `backing`).
    pub fn mount(
        mountpoint: &Path,
        backing: &Path,
        trash: &Path,
        fsname: &str,
        model: DirModel,
    ) -> Result<PowerFs, DiskError> {
        available()?;
        for d in [mountpoint, backing, trash] {
            std::fs::create_dir_all(d).map_err(io_err(d))?;
        }
        let backing = std::fs::canonicalize(backing).map_err(io_err(backing))?;
        let trash = std::fs::canonicalize(trash).map_err(io_err(trash))?;
        let mut p = PowerFs {
            mountpoint: mountpoint.to_path_buf(),
            state: Arc::new(Mutex::new(State::new(
                backing.clone(),
                trash.clone(),
                model,
            ))),
            backing,
            trash,
            fsname: fsname.to_string(),
            model,
            session: None,
        };
        p.start_session()?;
        Ok(p)
    }

    fn start_session(&mut self) -> Result<(), DiskError> {
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            fuser::MountOption::FSName(self.fsname.clone()),
            fuser::MountOption::Subtype("raftcheck".into()),
        ];
        config.acl = fuser::SessionACL::All;
        let fs = PowerLossFs {
            state: self.state.clone(),
        };
        let s =
            fuser::spawn_mount(fs, &self.mountpoint, &config).map_err(io_err(&self.mountpoint))?;
        self.session = Some(s);
        Ok(())
    }

    /// Detach the mount and end the session. Nodes started with `ip netns exec` live in mount
    /// namespaces that copied every mount there was when they started (this machine's `/` is
    /// private, so nothing propagates): a copy of this mount can outlive our unmount there,
    /// keeping the FUSE connection alive. With our mount detached, fuser's own unmount then
    /// finds nothing at the mount point and returns at once, and the old session idles on an
    /// empty state until those copies go; it can never unmount the next session's mount.
    fn stop_session(&mut self) {
        let Some(s) = self.session.take() else {
            return;
        };
        detach(&self.mountpoint);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(s.umount_and_join());
        });
        if rx.recv_timeout(Duration::from_secs(10)).is_err() {
            tracing::warn!(
                "{}: the FUSE session did not end within 10 s of unmounting (a process of \
                 raftcheck's still has a file open on it)",
                self.mountpoint.display()
            );
        }
    }

    /// Give the next session a state of its own and return the old one, emptied out of its
    /// shared cell: a session that outlived its unmount (a process still holding a file open)
    /// then finds no handles and cannot touch the files being rolled back.
    fn fresh_state(&mut self) -> State {
        let blank = || State::new(self.backing.clone(), self.trash.clone(), self.model);
        let old = std::mem::replace(&mut self.state, Arc::new(Mutex::new(blank())));
        let mut guard = old.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *guard, blank())
    }

    /// The directory the node's files really live in.
    pub fn backing(&self) -> &Path {
        &self.backing
    }

    /// Cut the power: the node using the mount must be dead. Unmounts, rolls the files back
    /// to what was durable (keeping a torn prefix of the last unsynced write when `torn_seed` is
    /// given), and mounts again.
    pub fn power_loss(&mut self, torn_seed: Option<u64>) -> Result<Discarded, DiskError> {
        self.stop_session();
        let state = self.fresh_state();
        let out = roll_back(state, torn_seed);
        // Whatever happened, serve the dir again so the node can restart on it.
        let again = self.start_session();
        let out = out?;
        again?;
        Ok(out)
    }

    /// Replace the node's disk with an empty one (the membership fault's wipe): unmount,
    /// empty the backing directory, mount again.
    pub fn wipe(&mut self) -> Result<(), DiskError> {
        self.stop_session();
        drop(self.fresh_state());
        let res = empty_dir(&self.backing).and_then(|()| empty_dir(&self.trash));
        let again = self.start_session();
        res?;
        again
    }

    /// fsyncs (file and directory) the filesystem has served since it was last mounted.
    pub fn fsyncs(&self) -> u64 {
        self.state.lock().map(|s| s.fsyncs).unwrap_or(0)
    }
}

impl Drop for PowerFs {
    fn drop(&mut self) {
        self.stop_session();
    }
}

/// Lazily unmount `path` (MNT_DETACH: works even while something still has it open).
pub fn detach(path: &Path) {
    if let Err(e) = nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH) {
        if e != nix::errno::Errno::EINVAL && e != nix::errno::Errno::ENOENT {
            tracing::warn!("unmounting {}: {e}", path.display());
        }
    }
}

fn empty_dir(dir: &Path) -> Result<(), DiskError> {
    for e in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let p = e.map_err(io_err(dir))?.path();
        remove_any(&p).map_err(io_err(&p))?;
    }
    Ok(())
}

/// Apply a power loss to the backing directory: file data first (through the inodes' own
/// handles, so renamed and removed files are reached too), then the torn prefix, then the
/// directory operations newest first, then the trash is emptied.
fn roll_back(mut s: State, torn_seed: Option<u64>) -> Result<Discarded, DiskError> {
    let mut out = Discarded::default();
    let rel = |s: &State, p: &Path| -> String {
        match p.strip_prefix(&s.backing) {
            Ok(r) => r.display().to_string(),
            Err(_) => format!(
                "(removed) {}",
                p.file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default()
            ),
        }
    };
    let mut inos: Vec<u64> = s.dirty.keys().copied().collect();
    inos.sort_unstable();
    let torn = s.last_write.take();
    for ino in inos {
        let Some(u) = s.dirty.remove(&ino) else {
            continue;
        };
        let path = u.path.clone();
        let len_before = u.file.metadata().map_err(io_err(&path))?.len();
        let mut bytes = len_before.saturating_sub(u.durable_len);
        for (off, old) in &u.saved {
            u.file.write_all_at(old, *off).map_err(io_err(&path))?;
            bytes += old.len() as u64;
        }
        u.file.set_len(u.durable_len).map_err(io_err(&path))?;
        let mut kept = None;
        if let (Some(w), Some(seed)) = (&torn, torn_seed) {
            let cuts = sector_cuts(w.offset, w.data.len() as u64);
            if w.ino == ino && cuts > 0 && u.changes == 1 {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let first = (w.offset / SECTOR + 1) * SECTOR;
                let k = (first + SECTOR * rng.random_range(0..cuts) - w.offset) as usize;
                u.file
                    .write_all_at(&w.data[..k], w.offset)
                    .map_err(io_err(&path))?;
                kept = Some((w.offset, k as u64, w.data.len() as u64));
            }
        }
        u.file.sync_all().map_err(io_err(&path))?;
        let len_after = u.file.metadata().map_err(io_err(&path))?.len();
        out.files.push(FileLoss {
            file: rel(&s, &path),
            bytes,
            len_before,
            len_after,
            torn: kept,
        });
    }
    let ops = std::mem::take(&mut s.dir_ops);
    for op in ops.into_iter().rev() {
        let name_of =
            |s: &State, dir: u64, name: &std::ffi::OsStr| s.dir_path(dir).map(|d| d.join(name));
        match op {
            DirOp::Created { parent, name } => {
                if let Some(p) = name_of(&s, parent, &name) {
                    out.dir_ops.push(format!("created {}", rel(&s, &p)));
                    remove_any(&p).map_err(io_err(&p))?;
                }
            }
            DirOp::Removed {
                parent,
                name,
                trash,
            } => {
                if let Some(p) = name_of(&s, parent, &name) {
                    out.dir_ops.push(format!("removed {}", rel(&s, &p)));
                    restore(&mut s, &trash, &p)?;
                }
            }
            DirOp::Renamed { from, to, replaced } => {
                if let (Some(a), Some(b)) = (name_of(&s, from.0, &from.1), name_of(&s, to.0, &to.1))
                {
                    out.dir_ops
                        .push(format!("renamed {} -> {}", rel(&s, &a), rel(&s, &b)));
                    restore(&mut s, &b, &a)?;
                    if let Some(t) = replaced {
                        restore(&mut s, &t, &b)?;
                    }
                }
            }
        }
    }
    empty_dir(&s.trash)?;
    sync_tree(&s.backing);
    Ok(out)
}

/// A drive writes a sector whole or not at all, so a torn write keeps the sectors before some
/// boundary and loses the rest; a write inside one sector cannot tear. (A cut at an arbitrary
/// byte would leave records no real power cut leaves: etcd rightly refuses a complete-length
/// WAL record whose tail is zero within a sector as corruption.)
pub(crate) const SECTOR: u64 = 512;

/// How many sector boundaries lie strictly inside a write of `len` bytes at `offset`: the
/// places it can tear.
pub(crate) fn sector_cuts(offset: u64, len: u64) -> u64 {
    if len == 0 {
        return 0;
    }
    let end = offset + len;
    let first = (offset / SECTOR + 1) * SECTOR;
    if first >= end {
        0
    } else {
        (end - 1 - first) / SECTOR + 1
    }
}

/// Move `from` back to `to` during a rollback, if it still exists.
fn restore(s: &mut State, from: &Path, to: &Path) -> Result<(), DiskError> {
    if std::fs::symlink_metadata(from).is_err() {
        return Ok(());
    }
    remove_any(to).map_err(io_err(to))?;
    std::fs::rename(from, to).map_err(io_err(to))?;
    s.move_paths(from, to);
    Ok(())
}

/// fsync every directory under `root`, so the rolled-back state is itself durable.
fn sync_tree(root: &Path) {
    let mut stack = vec![root.to_path_buf()];
    let mut seen = 0;
    while let Some(d) = stack.pop() {
        seen += 1;
        if seen > 100_000 {
            break;
        }
        if let Ok(f) = std::fs::File::open(&d) {
            let _ = f.sync_all();
        }
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
}

/// Mounts of this layer in /proc/self/mountinfo (FUSE mounts whose source starts with
/// [`FS_PREFIX`]): (source name, mount point).
pub fn mounts() -> Vec<(String, PathBuf)> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines() {
        // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mut r = right.split_whitespace();
        let (Some(ty), Some(src)) = (r.next(), r.next()) else {
            continue;
        };
        if !ty.starts_with("fuse") || !src.starts_with(FS_PREFIX) {
            continue;
        }
        if let Some(mp) = left.split_whitespace().nth(4) {
            out.push((src.to_string(), PathBuf::from(unescape(mp))));
        }
    }
    out
}

/// mountinfo escapes space, tab, newline and backslash as `\NNN` (octal).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let code = std::str::from_utf8(&b[i + 1..i + 4])
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok());
            if let Some(v) = code {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests;
