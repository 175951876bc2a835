//! Damage to a stopped node's data dir, for the `corrupt` fault: truncate a file's tail, flip
//! bits in one chunk of it, or put back a copy of it taken earlier in the run (the kinds of
//! Jepsen's file nemesis).
//!
//! Different nodes get different damage, as in Jepsen's "helix": a file is cut into chunks,
//! and node k of n may only flip bits in chunks whose index is k modulo n, so no chunk of a
//! same-named file is damaged on two nodes; truncations cut node-distinct byte counts. The
//! corrupt fault hits a minority by default, since a replicated server need only survive
//! damage it can repair from the other replicas.
//!
//! The caller kills the node first, takes a [`copy_dir`] (the repair copy, and the copy a
//! later rollback uses), calls [`choose_and_apply`], and restarts the node. If the node
//! refuses its damaged data, [`restore_dir`] puts the copy back, as an operator would.
//! Everything is a pure function of the files and the seeded RNG: the same seed and the same
//! files give the same damage.

use crate::spec::nemesis::DamageKind;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Chunk size of the helix: bit flips stay inside one chunk of the node's stripe.
pub(crate) const CHUNK: u64 = 4096;

/// Why the damage (or a copy, or a repair) could not be done.
#[derive(Debug, thiserror::Error)]
pub enum DamageError {
    /// A filesystem operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> DamageError + '_ {
    move |source| DamageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Exactly what was done to one file, for nemesis.jsonl.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Damage {
    /// Path relative to the data dir.
    pub file: String,
    /// What was done.
    pub kind: DamageKind,
    /// Start of the damaged region: the chunk for a bitflip, the new end for a truncation, 0
    /// for a rollback.
    pub offset: u64,
    /// Length of the region: the chunk, the bytes cut, the restored file's length.
    pub length: u64,
    /// For a bitflip: the absolute bit positions flipped (byte * 8 + bit).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bits: Vec<u64>,
    /// The file's size before.
    pub size_before: u64,
    /// The file's size after.
    pub size_after: u64,
    /// For a rollback: which copy was put back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy: Option<String>,
}

impl Damage {
    /// One line for the fault log: `bitflip wal at 8192+4096 (3 bits)`.
    pub fn summary(&self) -> String {
        match self.kind {
            DamageKind::Bitflip => format!(
                "bitflip {} at {}+{} ({} bit{})",
                self.file,
                self.offset,
                self.length,
                self.bits.len(),
                if self.bits.len() == 1 { "" } else { "s" }
            ),
            DamageKind::Truncate => format!(
                "truncate {} by {} bytes ({} -> {})",
                self.file, self.length, self.size_before, self.size_after
            ),
            DamageKind::Rollback => format!(
                "rollback {} to the {} ({} -> {} bytes)",
                self.file,
                self.copy.as_deref().unwrap_or("earlier copy"),
                self.size_before,
                self.size_after
            ),
        }
    }
}

/// A copy of a data dir's regular files, taken while the node was stopped.
#[derive(Clone, Debug)]
pub struct DirCopy {
    /// When it was taken, for the fault log ("copy taken at 12.3 s").
    pub label: String,
    /// Where the copy lives.
    pub root: PathBuf,
    /// Relative path -> size of every file copied.
    pub files: BTreeMap<String, u64>,
}

/// What a corrupt fault may do on one node.
#[derive(Clone, Debug)]
pub struct DamagePlan {
    /// Allowed kinds; one is drawn.
    pub kinds: Vec<DamageKind>,
    /// This node's index, `0..nodes`: picks its stripe of chunks.
    pub node: usize,
    /// How many nodes the cluster has.
    pub nodes: usize,
    /// Files that may be damaged (relative to the data dir); empty: any.
    pub paths: Vec<glob::Pattern>,
}

/// Regular files under `dir`, relative with '/', sorted, with their sizes. Symlinks are not
/// followed.
fn files_of(dir: &Path) -> Result<BTreeMap<String, u64>, DamageError> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).map_err(io_err(&d))? {
            let e = e.map_err(io_err(&d))?;
            let p = e.path();
            let ft = e.file_type().map_err(io_err(&p))?;
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                let len = e.metadata().map_err(io_err(&p))?.len();
                if let Ok(rel) = p.strip_prefix(dir) {
                    let rel: Vec<String> = rel
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect();
                    out.insert(rel.join("/"), len);
                }
            }
        }
    }
    Ok(out)
}

/// Copy every regular file of `dir` into `into` (created; must not hold anything yet).
pub fn copy_dir(dir: &Path, into: &Path, label: &str) -> Result<DirCopy, DamageError> {
    let files = files_of(dir)?;
    fs::create_dir_all(into).map_err(io_err(into))?;
    for rel in files.keys() {
        let src = dir.join(rel);
        let dst = into.join(rel);
        if let Some(parent) = dst.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        fs::copy(&src, &dst).map_err(io_err(&src))?;
    }
    Ok(DirCopy {
        label: label.to_string(),
        root: into.to_path_buf(),
        files,
    })
}

/// Make `dir` hold exactly the files of `copy`: files and directories not in it removed, the
/// others rewritten; each written file and every directory is fsynced, so the repair is
/// durable (also on the power-loss layer).
pub fn restore_dir(copy: &DirCopy, dir: &Path) -> Result<(), DamageError> {
    let now = files_of(dir)?;
    for rel in now.keys().filter(|r| !copy.files.contains_key(*r)) {
        let p = dir.join(rel);
        fs::remove_file(&p).map_err(io_err(&p))?;
    }
    for rel in copy.files.keys() {
        let src = copy.root.join(rel);
        let dst = dir.join(rel);
        if let Some(parent) = dst.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        fs::copy(&src, &dst).map_err(io_err(&dst))?;
        File::open(&dst)
            .and_then(|f| f.sync_all())
            .map_err(io_err(&dst))?;
    }
    remove_empty_dirs(dir, copy)?;
    sync_dirs(dir)
}

/// Remove directories under `dir` that hold no file of the copy.
fn remove_empty_dirs(dir: &Path, copy: &DirCopy) -> Result<(), DamageError> {
    let mut dirs = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).map_err(io_err(&d))?.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(e.path());
                stack.push(e.path());
            }
        }
    }
    // Deepest first.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for d in dirs {
        let rel = d
            .strip_prefix(dir)
            .map(|r| r.to_string_lossy().replace('\\', "/"))
            .unwrap_or_default();
        let needed = copy.files.keys().any(|f| f.starts_with(&format!("{rel}/")));
        if !needed {
            fs::remove_dir_all(&d).map_err(io_err(&d))?;
        }
    }
    Ok(())
}

fn sync_dirs(dir: &Path) -> Result<(), DamageError> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        File::open(&d)
            .and_then(|f| f.sync_all())
            .map_err(io_err(&d))?;
        for e in fs::read_dir(&d).map_err(io_err(&d))?.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    Ok(())
}

/// Pick a file, weighted by size, among the non-empty ones the plan's patterns allow.
fn pick_file(
    files: &BTreeMap<String, u64>,
    plan: &DamagePlan,
    rng: &mut ChaCha8Rng,
) -> Option<(String, u64)> {
    let allowed: Vec<(&String, u64)> = files
        .iter()
        .filter(|(_, &len)| len > 0)
        .filter(|(rel, _)| plan.paths.is_empty() || plan.paths.iter().any(|p| p.matches(rel)))
        .map(|(r, &l)| (r, l))
        .collect();
    let total: u64 = allowed.iter().map(|(_, l)| *l).sum();
    if total == 0 {
        return None;
    }
    let mut at = rng.random_range(0..total);
    for (rel, len) in allowed {
        if at < len {
            return Some((rel.clone(), len));
        }
        at -= len;
    }
    None
}

/// The chunk size for a file of `len` bytes on `nodes` nodes.
fn chunk_size(len: u64, nodes: u64) -> u64 {
    if len >= nodes * CHUNK {
        CHUNK
    } else {
        (len / nodes).max(1)
    }
}

/// Damage one file of `dir` as `plan` allows, fsyncing it. `earlier` is a copy from earlier in
/// the run, for a rollback. `Ok(None)`: no non-empty file matches, or only rollback is allowed
/// and it is impossible.
pub fn choose_and_apply(
    dir: &Path,
    plan: &DamagePlan,
    rng: &mut ChaCha8Rng,
    earlier: Option<&DirCopy>,
) -> Result<Option<Damage>, DamageError> {
    if plan.kinds.is_empty() {
        return Ok(None);
    }
    let files = files_of(dir)?;
    let Some((rel, size)) = pick_file(&files, plan, rng) else {
        return Ok(None);
    };
    let path = dir.join(&rel);
    let drawn = plan.kinds[rng.random_range(0..plan.kinds.len())];
    // Rollback needs an older, different copy of this very file; otherwise the next allowed
    // kind (in the plan's order) is done instead.
    let old = match (drawn, earlier) {
        (DamageKind::Rollback, Some(c)) if c.files.contains_key(&rel) => {
            let bytes = fs::read(c.root.join(&rel)).map_err(io_err(&c.root))?;
            let now = fs::read(&path).map_err(io_err(&path))?;
            (bytes != now).then_some((bytes, c.label.clone()))
        }
        _ => None,
    };
    let kind = if drawn == DamageKind::Rollback && old.is_none() {
        match plan
            .kinds
            .iter()
            .copied()
            .find(|k| *k != DamageKind::Rollback)
        {
            Some(k) => k,
            None => return Ok(None),
        }
    } else {
        drawn
    };
    let nodes = plan.nodes.max(1) as u64;
    let node = (plan.node as u64) % nodes;
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io_err(&path))?;
    let damage = match kind {
        DamageKind::Bitflip => {
            let chunk = chunk_size(size, nodes);
            let chunks = size.div_ceil(chunk);
            // Node k's stripe: chunk indices k, k+n, k+2n, ...
            let stripe: Vec<u64> = if chunks > node {
                (node..chunks).step_by(nodes as usize).collect()
            } else {
                vec![node % chunks]
            };
            let c = stripe[rng.random_range(0..stripe.len())];
            let start = c * chunk;
            let len = chunk.min(size - start);
            let flips = rng.random_range(1..=8u64).min(len * 8);
            let mut bits: Vec<u64> = Vec::new();
            let mut tries = 0;
            while (bits.len() as u64) < flips && tries < 1000 {
                tries += 1;
                let b = start * 8 + rng.random_range(0..len * 8);
                if !bits.contains(&b) {
                    bits.push(b);
                }
            }
            bits.sort_unstable();
            let mut buf = vec![0u8; len as usize];
            f.read_exact_at(&mut buf, start).map_err(io_err(&path))?;
            for b in &bits {
                buf[(b / 8 - start) as usize] ^= 1 << (b % 8);
            }
            f.write_all_at(&buf, start).map_err(io_err(&path))?;
            Damage {
                file: rel,
                kind,
                offset: start,
                length: len,
                bits,
                size_before: size,
                size_after: size,
                copy: None,
            }
        }
        DamageKind::Truncate => {
            // base * n + k: two nodes never cut the same number of bytes (before clamping).
            let base = rng.random_range(1..=CHUNK);
            let cut = (base * nodes + node).clamp(1, size.min(4 * CHUNK));
            f.set_len(size - cut).map_err(io_err(&path))?;
            Damage {
                file: rel,
                kind,
                offset: size - cut,
                length: cut,
                bits: Vec::new(),
                size_before: size,
                size_after: size - cut,
                copy: None,
            }
        }
        DamageKind::Rollback => {
            let (bytes, label) = old.unwrap_or_default();
            f.set_len(0).map_err(io_err(&path))?;
            f.write_all_at(&bytes, 0).map_err(io_err(&path))?;
            Damage {
                file: rel,
                kind,
                offset: 0,
                length: bytes.len() as u64,
                bits: Vec::new(),
                size_before: size,
                size_after: bytes.len() as u64,
                copy: Some(label),
            }
        }
    };
    f.sync_all().map_err(io_err(&path))?;
    Ok(Some(damage))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rng(seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed)
    }

    fn plan(kinds: &[DamageKind], node: usize, nodes: usize) -> DamagePlan {
        DamagePlan {
            kinds: kinds.to_vec(),
            node,
            nodes,
            paths: vec![],
        }
    }

    fn dir_with(files: &[(&str, usize)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (name, len) in files {
            let p = d.path().join(name);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            let bytes: Vec<u8> = (0..*len).map(|i| (i * 7 % 251) as u8).collect();
            fs::write(p, bytes).unwrap();
        }
        d
    }

    #[test]
    fn the_same_seed_and_files_give_the_same_damage() {
        let a = dir_with(&[("wal", 50_000), ("snapshot", 3000)]);
        let b = dir_with(&[("wal", 50_000), ("snapshot", 3000)]);
        let kinds = [DamageKind::Bitflip, DamageKind::Truncate];
        for seed in 0..10 {
            let da = choose_and_apply(a.path(), &plan(&kinds, 1, 3), &mut rng(seed), None)
                .unwrap()
                .unwrap();
            let db = choose_and_apply(b.path(), &plan(&kinds, 1, 3), &mut rng(seed), None)
                .unwrap()
                .unwrap();
            assert_eq!(da, db);
        }
        assert_eq!(
            fs::read(a.path().join("wal")).unwrap(),
            fs::read(b.path().join("wal")).unwrap()
        );
    }

    #[test]
    fn bitflips_change_exactly_the_listed_bits_in_the_nodes_own_stripe() {
        let mut seen: Vec<(usize, u64)> = Vec::new();
        for seed in 0..200 {
            for node in 0..2 {
                let d = dir_with(&[("wal", 40_000)]);
                let before = fs::read(d.path().join("wal")).unwrap();
                let dmg = choose_and_apply(
                    d.path(),
                    &plan(&[DamageKind::Bitflip], node, 3),
                    &mut rng(seed),
                    None,
                )
                .unwrap()
                .unwrap();
                let after = fs::read(d.path().join("wal")).unwrap();
                let changed: Vec<u64> = (0..before.len() as u64 * 8)
                    .filter(|b| {
                        let i = (b / 8) as usize;
                        (before[i] ^ after[i]) & (1 << (b % 8)) != 0
                    })
                    .collect();
                assert_eq!(changed, dmg.bits, "seed {seed}");
                assert!((1..=8).contains(&dmg.bits.len()));
                let chunk = dmg.offset / CHUNK;
                assert_eq!(chunk % 3, node as u64, "seed {seed}: chunk {chunk}");
                assert!(dmg
                    .bits
                    .iter()
                    .all(|b| b / 8 >= dmg.offset && b / 8 < dmg.offset + dmg.length));
                seen.push((node, chunk));
            }
        }
        let of = |n: usize| seen.iter().filter(move |(k, _)| *k == n).map(|(_, c)| *c);
        assert!(of(0).all(|c| !of(1).any(|d| d == c)));
    }

    #[test]
    fn truncations_cut_node_distinct_counts_within_bounds() {
        for seed in 0..50 {
            let mut cuts = Vec::new();
            for node in 0..3 {
                let d = dir_with(&[("wal", 100_000)]);
                let dmg = choose_and_apply(
                    d.path(),
                    &plan(&[DamageKind::Truncate], node, 3),
                    &mut rng(seed),
                    None,
                )
                .unwrap()
                .unwrap();
                assert_eq!(dmg.size_after, 100_000 - dmg.length);
                assert_eq!(
                    fs::metadata(d.path().join("wal")).unwrap().len(),
                    dmg.size_after
                );
                assert!((1..=4 * CHUNK).contains(&dmg.length));
                cuts.push(dmg.length);
            }
            cuts.dedup();
            assert_eq!(cuts.len(), 3, "seed {seed}: {cuts:?}");
        }
        // A tiny file loses at most all of itself.
        let d = dir_with(&[("wal", 3)]);
        let dmg = choose_and_apply(
            d.path(),
            &plan(&[DamageKind::Truncate], 0, 3),
            &mut rng(1),
            None,
        )
        .unwrap()
        .unwrap();
        assert!(dmg.size_after < 3);
    }

    #[test]
    fn rollback_puts_back_the_earlier_copy_or_falls_back() {
        let d = dir_with(&[("wal", 100_000)]);
        let copies = tempfile::tempdir().unwrap();
        let c = copy_dir(d.path(), &copies.path().join("0"), "copy taken at 1.0 s").unwrap();
        let old = fs::read(d.path().join("wal")).unwrap();
        // Identical now: impossible, so the other allowed kind is done.
        let kinds = [DamageKind::Rollback, DamageKind::Truncate];
        let mut r = rng(3);
        let mut dmg = None;
        for _ in 0..20 {
            let x = choose_and_apply(d.path(), &plan(&kinds, 0, 3), &mut r, Some(&c))
                .unwrap()
                .unwrap();
            if x.kind == DamageKind::Rollback {
                dmg = Some(x);
                break;
            }
        }
        let dmg = dmg.expect("a rollback once the file differs from the copy");
        assert_eq!(fs::read(d.path().join("wal")).unwrap(), old);
        assert_eq!(dmg.copy.as_deref(), Some("copy taken at 1.0 s"));
        // Only rollback allowed and no copy: nothing done.
        let d2 = dir_with(&[("wal", 10)]);
        assert!(choose_and_apply(
            d2.path(),
            &plan(&[DamageKind::Rollback], 0, 3),
            &mut rng(1),
            None
        )
        .unwrap()
        .is_none());
    }

    #[test]
    fn patterns_choose_files_and_empty_dirs_give_nothing() {
        let d = dir_with(&[
            ("wal", 100),
            ("snapshot", 100_000),
            ("member/wal/0.wal", 100),
        ]);
        for seed in 0..30 {
            let mut p = plan(&[DamageKind::Bitflip], 0, 3);
            p.paths = vec![glob::Pattern::new("member/wal/*.wal").unwrap()];
            let dmg = choose_and_apply(d.path(), &p, &mut rng(seed), None)
                .unwrap()
                .unwrap();
            assert_eq!(dmg.file, "member/wal/0.wal");
            p.paths = vec![glob::Pattern::new("wal").unwrap()];
            let dmg = choose_and_apply(d.path(), &p, &mut rng(seed), None)
                .unwrap()
                .unwrap();
            assert_eq!(dmg.file, "wal");
        }
        let empty = tempfile::tempdir().unwrap();
        assert!(choose_and_apply(
            empty.path(),
            &plan(&[DamageKind::Bitflip], 0, 3),
            &mut rng(1),
            None
        )
        .unwrap()
        .is_none());
    }

    #[test]
    fn bigger_files_are_chosen_more_often() {
        let d = dir_with(&[("big", 90_000), ("small", 10_000)]);
        let mut big = 0;
        for seed in 0..200 {
            let files = files_of(d.path()).unwrap();
            if pick_file(&files, &plan(&[DamageKind::Bitflip], 0, 3), &mut rng(seed))
                .unwrap()
                .0
                == "big"
            {
                big += 1;
            }
        }
        assert!((150..=195).contains(&big), "{big}");
    }

    #[test]
    fn restore_makes_the_dir_hold_exactly_the_copy() {
        let d = dir_with(&[("wal", 500), ("member/snap/db", 300)]);
        let copies = tempfile::tempdir().unwrap();
        let c = copy_dir(d.path(), &copies.path().join("0"), "c").unwrap();
        fs::write(d.path().join("wal"), b"changed").unwrap();
        fs::write(d.path().join("extra"), b"x").unwrap();
        fs::create_dir_all(d.path().join("newdir/deep")).unwrap();
        fs::write(d.path().join("newdir/deep/f"), b"x").unwrap();
        fs::remove_file(d.path().join("member/snap/db")).unwrap();
        restore_dir(&c, d.path()).unwrap();
        assert_eq!(files_of(d.path()).unwrap(), c.files);
        assert!(!d.path().join("newdir").exists());
        assert_eq!(
            fs::read(d.path().join("wal")).unwrap(),
            fs::read(copies.path().join("0/wal")).unwrap()
        );
    }
}
