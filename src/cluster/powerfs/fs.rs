//! The FUSE side of the power-loss layer: a passthrough filesystem over a backing directory
//! that remembers, while it passes every operation through, how to undo what has not been made
//! durable yet.
//!
//! The backing directory always holds what a process on the mount sees (the "page cache"
//! view). Beside it the state keeps the undo information:
//! - per file (by inode): its length at the last `fsync`/`fdatasync` and the old bytes of every
//!   region of that durable length overwritten, truncated or punched since (pre-images);
//! - per directory: the entries created, removed and renamed since the last fsync of that
//!   directory, in order. A removed entry is moved into a trash directory beside the backing
//!   one, so undoing the removal can put it back;
//! - the last write not made durable, so a power loss can keep a torn prefix of it.
//!
//! One request is served at a time (one session thread, one lock), so the undo information
//! always matches the backing files.

pub use crate::spec::nemesis::DirModel;
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long the kernel may cache names and attributes. Only this filesystem changes the
/// backing files while it is mounted (a power loss rolls them back unmounted), so the cache
/// cannot go stale.
const TTL: Duration = Duration::from_secs(1);

/// The undo information for one file written since its last fsync.
pub(super) struct FileUndo {
    /// The backing inode, opened when the file was first dirtied, so the undo reaches it
    /// after renames and unlinks.
    pub file: Arc<File>,
    /// Where the file lives now (absolute, in the backing or trash directory), for reports.
    pub path: PathBuf,
    /// The file's length when it was last made durable.
    pub durable_len: u64,
    /// Old contents of overwritten regions below `durable_len`, by offset, not overlapping.
    pub saved: BTreeMap<u64, Vec<u8>>,
    /// Writes, truncations and allocations since the last fsync. A torn write is kept only
    /// when the torn write was the one change: keeping part of a later write while an earlier
    /// one is lost would be a reordering, which the model does not make.
    pub changes: u64,
}

impl FileUndo {
    /// The parts of `[start, end)` below the durable length not saved yet.
    fn gaps(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        let end = end.min(self.durable_len);
        let mut out = Vec::new();
        if start >= end {
            return out;
        }
        let mut cur = start;
        for (&s, v) in self.saved.range(..end) {
            let e = s + v.len() as u64;
            if e <= cur {
                continue;
            }
            if s > cur {
                out.push((cur, s));
            }
            cur = cur.max(e);
            if cur >= end {
                break;
            }
        }
        if cur < end {
            out.push((cur, end));
        }
        out
    }

    /// Save the old bytes of `[start, end)` (below the durable length) before they change.
    fn save(&mut self, start: u64, end: u64) -> io::Result<()> {
        for (s, e) in self.gaps(start, end) {
            let mut buf = vec![0u8; (e - s) as usize];
            read_full(&self.file, &mut buf, s)?;
            self.saved.insert(s, buf);
        }
        Ok(())
    }
}

/// A directory operation not yet made durable by an fsync of its directory.
pub(super) enum DirOp {
    /// A file, directory or symlink was created as `name` in `parent`.
    Created { parent: u64, name: OsString },
    /// `name` was removed from `parent`; the entry waits in the trash at `trash`.
    Removed {
        parent: u64,
        name: OsString,
        trash: PathBuf,
    },
    /// An entry moved; `replaced` is the trash path of what the destination held before.
    Renamed {
        from: (u64, OsString),
        to: (u64, OsString),
        replaced: Option<PathBuf>,
    },
}

impl DirOp {
    /// Whether an fsync of directory `dir` makes this operation durable. A rename between two
    /// directories counts as durable when either is synced (journalling file systems commit it
    /// as one transaction).
    fn synced_by(&self, dir: u64) -> bool {
        match self {
            DirOp::Created { parent, .. } | DirOp::Removed { parent, .. } => *parent == dir,
            DirOp::Renamed { from, to, .. } => from.0 == dir || to.0 == dir,
        }
    }
}

/// The last write since its file's fsync: what a torn write keeps a prefix of.
pub(super) struct LastWrite {
    /// Inode written.
    pub ino: u64,
    /// Offset of the write.
    pub offset: u64,
    /// What was written (at most [`LAST_WRITE_MAX`] bytes are kept).
    pub data: Vec<u8>,
}

/// Writes longer than this are torn within their first part only (keeps memory bounded).
const LAST_WRITE_MAX: usize = 1 << 20;

struct Handle {
    file: Arc<File>,
    ino: u64,
    /// Opened with O_SYNC or O_DSYNC: every write is durable when it returns.
    sync: bool,
}

/// Everything the filesystem knows; shared with the controller, which rolls it back after a
/// power loss while the filesystem is unmounted.
pub(super) struct State {
    /// The directory holding the files.
    pub backing: PathBuf,
    /// Removed entries wait here until their removal is durable.
    pub trash: PathBuf,
    /// Inode number to current absolute path (in the backing or trash directory).
    paths: HashMap<u64, PathBuf>,
    inos: HashMap<PathBuf, u64>,
    next_ino: u64,
    handles: HashMap<u64, Handle>,
    next_fh: u64,
    /// Files written since their last fsync.
    pub dirty: HashMap<u64, FileUndo>,
    /// Directory operations since their directory's last fsync, oldest first.
    pub dir_ops: Vec<DirOp>,
    /// The last write not yet durable.
    pub last_write: Option<LastWrite>,
    trash_seq: u64,
    /// Operations served, for tests and diagnostics.
    pub fsyncs: u64,
    /// How directory operations become durable.
    pub model: DirModel,
}

impl State {
    pub(super) fn new(backing: PathBuf, trash: PathBuf, model: DirModel) -> State {
        let mut s = State {
            backing: backing.clone(),
            trash,
            paths: HashMap::new(),
            inos: HashMap::new(),
            next_ino: 2,
            handles: HashMap::new(),
            next_fh: 1,
            dirty: HashMap::new(),
            dir_ops: Vec::new(),
            last_write: None,
            trash_seq: 0,
            fsyncs: 0,
            model,
        };
        s.paths.insert(1, backing.clone());
        s.inos.insert(backing, 1);
        s
    }

    fn path(&self, ino: u64) -> Result<PathBuf, Errno> {
        self.paths.get(&ino).cloned().ok_or(Errno::ENOENT)
    }

    fn child(&self, parent: u64, name: &OsStr) -> Result<PathBuf, Errno> {
        Ok(self.path(parent)?.join(name))
    }

    /// The inode number for `path`, allocated on first sight.
    fn ino_of(&mut self, path: &Path) -> u64 {
        if let Some(&i) = self.inos.get(path) {
            return i;
        }
        let i = self.next_ino;
        self.next_ino += 1;
        self.paths.insert(i, path.to_path_buf());
        self.inos.insert(path.to_path_buf(), i);
        i
    }

    /// Re-point every inode at or under `from` to the same place under `to`.
    pub(super) fn move_paths(&mut self, from: &Path, to: &Path) {
        let moved: Vec<(u64, PathBuf)> = self
            .paths
            .iter()
            .filter_map(|(&i, p)| {
                p.strip_prefix(from).ok().map(|rest| {
                    (
                        i,
                        if rest.as_os_str().is_empty() {
                            to.to_path_buf()
                        } else {
                            to.join(rest)
                        },
                    )
                })
            })
            .collect();
        for (i, new) in moved {
            if let Some(old) = self.paths.insert(i, new.clone()) {
                self.inos.remove(&old);
            }
            self.inos.insert(new, i);
        }
        for u in self.dirty.values_mut() {
            if let Ok(rest) = u.path.strip_prefix(from) {
                u.path = if rest.as_os_str().is_empty() {
                    to.to_path_buf()
                } else {
                    to.join(rest)
                };
            }
        }
    }

    /// Move `path` into the trash (instead of deleting it), returning where it went.
    fn trash_entry(&mut self, path: &Path) -> io::Result<PathBuf> {
        self.trash_seq += 1;
        let dst = self.trash.join(format!("{}", self.trash_seq));
        fs::rename(path, &dst)?;
        self.move_paths(path, &dst);
        Ok(dst)
    }

    /// The undo record of `ino`, created (with its current length as the durable one) if the
    /// file is clean.
    fn undo_for(&mut self, ino: u64, file: &Arc<File>) -> io::Result<&mut FileUndo> {
        if !self.dirty.contains_key(&ino) {
            let len = file.metadata()?.len();
            let path = self.paths.get(&ino).cloned().unwrap_or_default();
            self.dirty.insert(
                ino,
                FileUndo {
                    file: file.clone(),
                    path,
                    durable_len: len,
                    saved: BTreeMap::new(),
                    changes: 0,
                },
            );
        }
        Ok(self.dirty.get_mut(&ino).expect("inserted above"))
    }

    /// The file is durable as it is now.
    fn synced(&mut self, ino: u64) {
        self.dirty.remove(&ino);
        if self.last_write.as_ref().is_some_and(|w| w.ino == ino) {
            self.last_write = None;
        }
    }

    fn write(&mut self, fh: u64, offset: u64, data: &[u8]) -> Result<u32, Errno> {
        let (file, ino, sync) = {
            let h = self.handles.get(&fh).ok_or(Errno::EBADF)?;
            (h.file.clone(), h.ino, h.sync)
        };
        self.undo_for(ino, &file)
            .and_then(|u| {
                u.changes += 1;
                u.save(offset, offset + data.len() as u64)
            })
            .map_err(errno)?;
        file.write_all_at(data, offset).map_err(errno)?;
        if sync {
            file.sync_data().map_err(errno)?;
            self.synced(ino);
            if self.model == DirModel::Journaled {
                self.dir_synced(None);
            }
        } else {
            let keep = data.len().min(LAST_WRITE_MAX);
            self.last_write = Some(LastWrite {
                ino,
                offset,
                data: data[..keep].to_vec(),
            });
        }
        Ok(data.len() as u32)
    }

    /// Change a file's length, saving what a shrink cuts below the durable length.
    fn set_len(&mut self, ino: u64, file: &Arc<File>, len: u64) -> Result<(), Errno> {
        let u = self.undo_for(ino, file).map_err(errno)?;
        u.changes += 1;
        u.save(len, u.durable_len).map_err(errno)?;
        file.set_len(len).map_err(errno)
    }

    fn open_file(&mut self, ino: u64, path: &Path, flags: i32) -> Result<u64, Errno> {
        let acc = flags & libc::O_ACCMODE;
        let file = OpenOptions::new()
            .read(true)
            .write(acc != libc::O_RDONLY)
            .open(path)
            .or_else(|e| {
                // A read-only file the caller only reads.
                if acc == libc::O_RDONLY {
                    OpenOptions::new().read(true).open(path)
                } else {
                    Err(e)
                }
            })
            .map_err(errno)?;
        let file = Arc::new(file);
        if flags & libc::O_TRUNC != 0 && acc != libc::O_RDONLY {
            self.set_len(ino, &file, 0)?;
        }
        let fh = self.next_fh;
        self.next_fh += 1;
        self.handles.insert(
            fh,
            Handle {
                file,
                ino,
                sync: flags & libc::O_DSYNC != 0,
            },
        );
        Ok(fh)
    }

    fn entry(&mut self, path: &Path) -> Result<FileAttr, Errno> {
        let md = fs::symlink_metadata(path).map_err(errno)?;
        let ino = self.ino_of(path);
        Ok(attr(ino, &md))
    }

    /// Mark every directory operation an fsync of `dir` makes durable (`None`: every one, a
    /// journal commit), and empty the trash of removals that are now final.
    fn dir_synced(&mut self, dir: Option<u64>) {
        let mut keep = Vec::new();
        for op in std::mem::take(&mut self.dir_ops) {
            if dir.is_some_and(|d| !op.synced_by(d)) {
                keep.push(op);
                continue;
            }
            let gone = match &op {
                DirOp::Removed { trash, .. } => Some(trash.clone()),
                DirOp::Renamed { replaced, .. } => replaced.clone(),
                DirOp::Created { .. } => None,
            };
            if let Some(t) = gone {
                // Nothing can bring it back now; open handles keep the data alive.
                let _ = remove_any(&t);
            }
        }
        self.dir_ops = keep;
    }

    fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: RenameFlags,
    ) -> Result<(), Errno> {
        if flags.bits() & !libc::RENAME_NOREPLACE != 0 {
            // RENAME_EXCHANGE and RENAME_WHITEOUT are not modelled.
            return Err(Errno::EINVAL);
        }
        let src = self.child(parent, name)?;
        let dst = self.child(newparent, newname)?;
        let src_md = fs::symlink_metadata(&src).map_err(errno)?;
        if src == dst {
            return Ok(());
        }
        let replaced = match fs::symlink_metadata(&dst) {
            Ok(md) => {
                if flags.bits() & libc::RENAME_NOREPLACE != 0 {
                    return Err(Errno::EEXIST);
                }
                if md.is_dir() {
                    if !src_md.is_dir() {
                        return Err(Errno::EISDIR);
                    }
                    if fs::read_dir(&dst).map_err(errno)?.next().is_some() {
                        return Err(Errno::ENOTEMPTY);
                    }
                } else if src_md.is_dir() {
                    return Err(Errno::ENOTDIR);
                }
                Some(self.trash_entry(&dst).map_err(errno)?)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(errno(e)),
        };
        if let Err(e) = fs::rename(&src, &dst) {
            if let Some(t) = &replaced {
                let _ = fs::rename(t, &dst);
                self.move_paths(t, &dst);
            }
            return Err(errno(e));
        }
        self.move_paths(&src, &dst);
        self.dir_ops.push(DirOp::Renamed {
            from: (parent, name.to_os_string()),
            to: (newparent, newname.to_os_string()),
            replaced,
        });
        Ok(())
    }

    fn remove(&mut self, parent: u64, name: &OsStr, dir: bool) -> Result<(), Errno> {
        let path = self.child(parent, name)?;
        let md = fs::symlink_metadata(&path).map_err(errno)?;
        if dir {
            if !md.is_dir() {
                return Err(Errno::ENOTDIR);
            }
            if fs::read_dir(&path).map_err(errno)?.next().is_some() {
                return Err(Errno::ENOTEMPTY);
            }
        } else if md.is_dir() {
            return Err(Errno::EISDIR);
        }
        let trash = self.trash_entry(&path).map_err(errno)?;
        self.dir_ops.push(DirOp::Removed {
            parent,
            name: name.to_os_string(),
            trash,
        });
        Ok(())
    }

    /// Put a new entry's creation on the record.
    fn created(&mut self, parent: u64, name: &OsStr) {
        self.dir_ops.push(DirOp::Created {
            parent,
            name: name.to_os_string(),
        });
    }

    /// The current path of directory inode `ino` during a rollback.
    pub(super) fn dir_path(&self, ino: u64) -> Option<PathBuf> {
        self.paths.get(&ino).cloned()
    }
}

/// Read exactly `buf.len()` bytes at `offset`, zero-filling past the end of the file.
fn read_full(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let n = file.read_at(&mut buf[done..], offset + done as u64)?;
        if n == 0 {
            buf[done..].fill(0);
            break;
        }
        done += n;
    }
    Ok(())
}

/// Remove a file or a whole directory tree.
pub(super) fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(md) if md.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn errno(e: io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

fn kind(ft: fs::FileType) -> FileType {
    FileType::from_std(ft).unwrap_or(FileType::RegularFile)
}

fn time(secs: i64, nsecs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nsecs.clamp(0, 999_999_999) as u32)
    } else {
        UNIX_EPOCH
    }
}

fn attr(ino: u64, md: &fs::Metadata) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: md.len(),
        blocks: md.blocks(),
        atime: time(md.atime(), md.atime_nsec()),
        mtime: time(md.mtime(), md.mtime_nsec()),
        ctime: time(md.ctime(), md.ctime_nsec()),
        crtime: UNIX_EPOCH,
        kind: kind(md.file_type()),
        perm: (md.mode() & 0o7777) as u16,
        nlink: md.nlink() as u32,
        uid: md.uid(),
        gid: md.gid(),
        rdev: md.rdev() as u32,
        blksize: md.blksize() as u32,
        flags: 0,
    }
}

fn system_time(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

/// The filesystem served on a node's data dir.
pub(super) struct PowerLossFs {
    pub state: Arc<Mutex<State>>,
}

impl PowerLossFs {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Filesystem for PowerLossFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut s = self.state();
        match s.child(parent.0, name).and_then(|p| s.entry(&p)) {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let s = self.state();
        let md = match fh.and_then(|f| s.handles.get(&f.0)) {
            Some(h) => h.file.metadata(),
            None => match s.path(ino.0) {
                Ok(p) => fs::symlink_metadata(p),
                Err(e) => return reply.error(e),
            },
        };
        match md {
            Ok(md) => reply.attr(&TTL, &attr(ino.0, &md)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut s = self.state();
        let res = (|| -> Result<FileAttr, Errno> {
            let path = s.path(ino.0)?;
            if let Some(m) = mode {
                fs::set_permissions(&path, fs::Permissions::from_mode(m & 0o7777))
                    .map_err(errno)?;
            }
            if uid.is_some() || gid.is_some() {
                std::os::unix::fs::lchown(&path, uid, gid).map_err(errno)?;
            }
            let handle = fh.and_then(|f| s.handles.get(&f.0)).map(|h| h.file.clone());
            if let Some(len) = size {
                let file = match &handle {
                    Some(f) => f.clone(),
                    None => Arc::new(OpenOptions::new().write(true).open(&path).map_err(errno)?),
                };
                s.set_len(ino.0, &file, len)?;
            }
            if atime.is_some() || mtime.is_some() {
                let file = match &handle {
                    Some(f) => f.clone(),
                    None => Arc::new(File::open(&path).map_err(errno)?),
                };
                let mut t = fs::FileTimes::new();
                if let Some(a) = atime {
                    t = t.set_accessed(system_time(a));
                }
                if let Some(m) = mtime {
                    t = t.set_modified(system_time(m));
                }
                file.set_times(t).map_err(errno)?;
            }
            let md = fs::symlink_metadata(&path).map_err(errno)?;
            Ok(attr(ino.0, &md))
        })();
        match res {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let s = self.state();
        match s.path(ino.0).and_then(|p| fs::read_link(p).map_err(errno)) {
            Ok(t) => reply.data(t.as_os_str().as_encoded_bytes()),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc::S_IFMT != libc::S_IFREG {
            return reply.error(Errno::EPERM);
        }
        let mut s = self.state();
        let res = (|| {
            let path = s.child(parent.0, name)?;
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode & !umask & 0o7777)
                .open(&path)
                .map_err(errno)?;
            s.created(parent.0, name);
            s.entry(&path)
        })();
        let _ = req;
        match res {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let mut s = self.state();
        let res = (|| {
            let path = s.child(parent.0, name)?;
            fs::DirBuilder::new()
                .mode(mode & !umask & 0o7777)
                .create(&path)
                .map_err(errno)?;
            s.created(parent.0, name);
            s.entry(&path)
        })();
        match res {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.state().remove(parent.0, name, false) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.state().remove(parent.0, name, true) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn symlink(
        &self,
        _req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let mut s = self.state();
        let res = (|| {
            let path = s.child(parent.0, link_name)?;
            std::os::unix::fs::symlink(target, &path).map_err(errno)?;
            s.created(parent.0, link_name);
            s.entry(&path)
        })();
        match res {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        match self
            .state()
            .rename(parent.0, name, newparent.0, newname, flags)
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        // Hard links are not modelled: one inode, one name.
        reply.error(Errno::EPERM);
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let mut s = self.state();
        let res = s.path(ino.0).and_then(|p| s.open_file(ino.0, &p, flags.0));
        match res {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let s = self.state();
        let Some(h) = s.handles.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let mut buf = vec![0u8; size as usize];
        let mut done = 0;
        while done < buf.len() {
            match h.file.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return reply.error(errno(e)),
            }
        }
        reply.data(&buf[..done]);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.state().write(fh.0, offset, data) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close() makes nothing durable.
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.state().handles.remove(&fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut s = self.state();
        let Some(file) = s.handles.get(&fh.0).map(|h| h.file.clone()) else {
            return reply.error(Errno::EBADF);
        };
        let r = if datasync {
            file.sync_data()
        } else {
            file.sync_all()
        };
        match r {
            Ok(()) => {
                s.fsyncs += 1;
                s.synced(ino.0);
                if s.model == DirModel::Journaled {
                    s.dir_synced(None);
                }
                reply.ok()
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let s = self.state();
        match s.path(ino.0) {
            Ok(p) if p.is_dir() => reply.opened(FileHandle(0), FopenFlags::empty()),
            Ok(_) => reply.error(Errno::ENOTDIR),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let mut s = self.state();
        let dir = match s.path(ino.0) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let mut names: Vec<(OsString, FileType)> = match fs::read_dir(&dir) {
            Ok(rd) => rd
                .flatten()
                .map(|e| {
                    let k = e.file_type().map(kind).unwrap_or(FileType::RegularFile);
                    (e.file_name(), k)
                })
                .collect(),
            Err(e) => return reply.error(errno(e)),
        };
        names.sort_by(|a, b| a.0.cmp(&b.0));
        let parent = dir
            .parent()
            .filter(|_| ino.0 != 1)
            .map(|p| s.ino_of(p))
            .unwrap_or(1);
        let mut all: Vec<(u64, FileType, OsString)> = vec![
            (ino.0, FileType::Directory, ".".into()),
            (parent, FileType::Directory, "..".into()),
        ];
        for (name, k) in names {
            let i = s.ino_of(&dir.join(&name));
            all.push((i, k, name));
        }
        for (i, (child, k, name)) in all.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), i as u64 + 1, k, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut s = self.state();
        let r = s
            .path(ino.0)
            .and_then(|p| File::open(p).and_then(|d| d.sync_all()).map_err(errno));
        match r {
            Ok(()) => {
                s.fsyncs += 1;
                let model = s.model;
                s.dir_synced((model == DirModel::Posix).then_some(ino.0));
                reply.ok()
            }
            Err(e) => reply.error(e),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let backing = self.state().backing.clone();
        match nix::sys::statvfs::statvfs(&backing) {
            Ok(v) => reply.statfs(
                v.blocks(),
                v.blocks_free(),
                v.blocks_available(),
                v.files(),
                v.files_free(),
                v.block_size() as u32,
                v.name_max() as u32,
                v.fragment_size() as u32,
            ),
            Err(e) => reply.error(Errno::from_i32(e as i32)),
        }
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut s = self.state();
        let res = (|| {
            let path = s.child(parent.0, name)?;
            let existed = fs::symlink_metadata(&path).is_ok();
            if existed && flags & libc::O_EXCL != 0 {
                return Err(Errno::EEXIST);
            }
            if !existed {
                OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(mode & !umask & 0o7777)
                    .open(&path)
                    .map_err(errno)?;
                s.created(parent.0, name);
            }
            let a = s.entry(&path)?;
            let fh = s.open_file(a.ino.0, &path, flags)?;
            Ok((a, fh))
        })();
        match res {
            Ok((a, fh)) => {
                reply.created(&TTL, &a, Generation(0), FileHandle(fh), FopenFlags::empty())
            }
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let mut s = self.state();
        let Some(file) = s.handles.get(&fh.0).map(|h| h.file.clone()) else {
            return reply.error(Errno::EBADF);
        };
        let res = (|| {
            let u = s.undo_for(ino.0, &file).map_err(errno)?;
            u.changes += 1;
            if mode & (libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_ZERO_RANGE) != 0 {
                u.save(offset, offset + length).map_err(errno)?;
            }
            // SAFETY: fallocate on an fd this struct owns; no memory is passed.
            let r = unsafe {
                libc::fallocate(
                    file.as_raw_fd(),
                    mode,
                    offset as libc::off_t,
                    length as libc::off_t,
                )
            };
            if r != 0 {
                return Err(errno(io::Error::last_os_error()));
            }
            Ok(())
        })();
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn lseek(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        let s = self.state();
        let Some(h) = s.handles.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        // SAFETY: lseek on an fd this struct owns; SEEK_DATA/SEEK_HOLE only read the layout.
        let r = unsafe { libc::lseek(h.file.as_raw_fd(), offset as libc::off_t, whence) };
        if r < 0 {
            reply.error(errno(io::Error::last_os_error()))
        } else {
            reply.offset(r)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn undo(durable: u64, saved: &[(u64, usize)]) -> FileUndo {
        let f = tempfile::tempfile().unwrap();
        FileUndo {
            file: Arc::new(f),
            path: PathBuf::new(),
            durable_len: durable,
            saved: saved.iter().map(|&(o, n)| (o, vec![0; n])).collect(),
            changes: 0,
        }
    }

    #[test]
    fn gaps_skip_saved_regions_and_stop_at_the_durable_length() {
        let u = undo(100, &[(10, 10), (30, 5)]);
        assert_eq!(u.gaps(0, 50), vec![(0, 10), (20, 30), (35, 50)]);
        assert_eq!(u.gaps(12, 18), vec![]);
        assert_eq!(u.gaps(90, 200), vec![(90, 100)]);
        assert_eq!(u.gaps(100, 200), vec![]);
        assert_eq!(undo(0, &[]).gaps(0, 10), vec![]);
    }
}
