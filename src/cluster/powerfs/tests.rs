//! The layer against real mounts (root and /dev/fuse; skipped with a message otherwise, failed
//! under RAFTCHECK_REQUIRE_ALL=1), and against a model of the durability rules over random
//! operation sequences.

use super::*;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};

/// A mounted layer in a temp dir; `None` (after saying why) where FUSE cannot run.
fn layer(tag: &str) -> Option<(tempfile::TempDir, PowerFs, PathBuf)> {
    if let Err(e) = available() {
        if std::env::var("RAFTCHECK_REQUIRE_ALL").as_deref() == Ok("1") {
            panic!("RAFTCHECK_REQUIRE_ALL=1 but {e}");
        }
        eprintln!("SKIPPED: {e}");
        return None;
    }
    let d = tempfile::tempdir().unwrap();
    let mp = d.path().join("data");
    let fs = PowerFs::mount(
        &mp,
        &d.path().join("disk"),
        &d.path().join("disk-trash"),
        &format!("raftcheck-test-{tag}-{}", std::process::id()),
        if tag == "journaled" {
            DirModel::Journaled
        } else {
            DirModel::Posix
        },
    )
    .unwrap();
    Some((d, fs, mp))
}

fn sync_dir(p: &Path) {
    File::open(p).unwrap().sync_all().unwrap();
}

fn listing(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().unwrap().is_file() {
            out.insert(
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            );
        }
    }
    out
}

#[test]
fn unsynced_data_and_entries_are_lost_synced_ones_stay() {
    let Some((_d, mut fs, mp)) = layer("basic") else {
        return;
    };
    // Durable: a file written, fsynced, and its directory fsynced.
    let mut f = File::create(mp.join("wal")).unwrap();
    f.write_all(b"durable;").unwrap();
    f.sync_all().unwrap();
    sync_dir(&mp);
    // Not durable: an append after the fsync, an overwrite of a durable byte.
    f.write_all(b"lost").unwrap();
    f.write_all_at(b"D", 0).unwrap();
    // A new file fsynced but its directory not: the name is lost.
    let mut g = File::create(mp.join("segment-2")).unwrap();
    g.write_all(b"x").unwrap();
    g.sync_all().unwrap();
    drop((f, g));
    assert_eq!(fs::read(mp.join("wal")).unwrap(), b"Durable;lost");
    let lost = fs.power_loss(None).unwrap();
    assert_eq!(fs::read(mp.join("wal")).unwrap(), b"durable;");
    assert!(!mp.join("segment-2").exists());
    assert_eq!(lost.dir_ops, vec!["created segment-2".to_string()]);
    let wal = lost.files.iter().find(|f| f.file == "wal").unwrap();
    assert_eq!((wal.bytes, wal.len_before, wal.len_after), (5, 12, 8));
    // The remounted layer works and a second loss with nothing unsynced says so.
    let again = fs.power_loss(None).unwrap();
    assert!(again.is_empty(), "{again:?}");
    assert!(again.summary().contains("nothing"));
}

#[test]
fn an_atomic_replace_without_a_directory_fsync_is_undone() {
    let Some((_d, mut fs, mp)) = layer("rename") else {
        return;
    };
    fs::write(mp.join("snapshot"), b"old").unwrap();
    File::open(mp.join("snapshot")).unwrap().sync_all().unwrap();
    sync_dir(&mp);
    let mut t = File::create(mp.join("snapshot.tmp")).unwrap();
    t.write_all(b"new").unwrap();
    t.sync_all().unwrap();
    drop(t);
    fs::rename(mp.join("snapshot.tmp"), mp.join("snapshot")).unwrap();
    assert_eq!(fs::read(mp.join("snapshot")).unwrap(), b"new");
    let lost = fs.power_loss(None).unwrap();
    assert_eq!(
        listing(&mp),
        BTreeMap::from([("snapshot".into(), b"old".to_vec())])
    );
    assert_eq!(
        lost.dir_ops,
        vec!["renamed snapshot.tmp -> snapshot", "created snapshot.tmp"]
    );
    // With the directory fsync the replace survives.
    let mut t = File::create(mp.join("snapshot.tmp")).unwrap();
    t.write_all(b"new").unwrap();
    t.sync_all().unwrap();
    drop(t);
    fs::rename(mp.join("snapshot.tmp"), mp.join("snapshot")).unwrap();
    sync_dir(&mp);
    fs.power_loss(None).unwrap();
    assert_eq!(
        listing(&mp),
        BTreeMap::from([("snapshot".into(), b"new".to_vec())])
    );
}

#[test]
fn removals_truncations_and_nested_dirs_roll_back() {
    let Some((_d, mut fs, mp)) = layer("remove") else {
        return;
    };
    fs::create_dir(mp.join("member")).unwrap();
    sync_dir(&mp);
    fs::write(mp.join("member/a"), b"0123456789").unwrap();
    File::open(mp.join("member/a")).unwrap().sync_all().unwrap();
    sync_dir(&mp.join("member"));
    // Truncated and then removed, neither durable.
    OpenOptions::new()
        .write(true)
        .open(mp.join("member/a"))
        .unwrap()
        .set_len(3)
        .unwrap();
    fs::remove_file(mp.join("member/a")).unwrap();
    // A new directory never made durable, with a durable file inside.
    fs::create_dir(mp.join("tmpdir")).unwrap();
    fs::write(mp.join("tmpdir/b"), b"b").unwrap();
    File::open(mp.join("tmpdir/b")).unwrap().sync_all().unwrap();
    sync_dir(&mp.join("tmpdir"));
    fs.power_loss(None).unwrap();
    assert_eq!(fs::read(mp.join("member/a")).unwrap(), b"0123456789");
    assert!(!mp.join("tmpdir").exists());
    assert_eq!(
        fs::read_dir(fs.backing().parent().unwrap().join("disk-trash"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn a_torn_write_keeps_a_seeded_prefix_of_the_last_unsynced_write() {
    let Some((_d, mut fs, mp)) = layer("torn") else {
        return;
    };
    let mut f = File::create(mp.join("wal")).unwrap();
    f.write_all(b"head").unwrap();
    f.sync_all().unwrap();
    sync_dir(&mp);
    f.write_all(&[7u8; 2000]).unwrap();
    drop(f);
    let lost = fs.power_loss(Some(42)).unwrap();
    let (off, kept, of) = lost.files[0].torn.unwrap();
    assert_eq!((off, of), (4, 2000));
    // Cut on a sector boundary of the file: 512, 1024 or 1536.
    assert!([508, 1020, 1532].contains(&kept), "kept {kept}");
    let data = fs::read(mp.join("wal")).unwrap();
    assert_eq!(data.len() as u64, 4 + kept);
    assert!(data[4..].iter().all(|&b| b == 7));
    assert!(lost.summary().contains("torn"));
}

#[test]
fn a_write_inside_one_sector_is_lost_whole_never_torn() {
    let Some((_d, mut fs, mp)) = layer("sector") else {
        return;
    };
    let mut f = File::create(mp.join("wal")).unwrap();
    f.write_all(b"head").unwrap();
    f.sync_all().unwrap();
    sync_dir(&mp);
    f.write_all(&[7u8; 56]).unwrap();
    drop(f);
    let lost = fs.power_loss(Some(42)).unwrap();
    assert_eq!(lost.files[0].torn, None);
    assert_eq!(fs::read(mp.join("wal")).unwrap(), b"head");
}

#[test]
fn tears_fall_only_on_sector_boundaries_inside_the_write() {
    use super::sector_cuts;
    assert_eq!(sector_cuts(0, 0), 0);
    assert_eq!(sector_cuts(4, 100), 0);
    assert_eq!(sector_cuts(0, 512), 0);
    assert_eq!(sector_cuts(0, 513), 1);
    assert_eq!(sector_cuts(170_232, 56), 0);
    assert_eq!(sector_cuts(500, 13), 1);
    assert_eq!(sector_cuts(4, 2000), 3);
    assert_eq!(sector_cuts(512, 1024), 1);
}

#[test]
fn o_dsync_writes_are_durable_when_they_return() {
    let Some((_d, mut fs, mp)) = layer("dsync") else {
        return;
    };
    File::create(mp.join("f")).unwrap();
    sync_dir(&mp);
    let mut f = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DSYNC)
        .open(mp.join("f"))
        .unwrap();
    f.write_all(b"kept").unwrap();
    drop(f);
    let lost = fs.power_loss(None).unwrap();
    assert_eq!(fs::read(mp.join("f")).unwrap(), b"kept");
    assert!(lost.is_empty(), "{lost:?}");
}

#[test]
fn the_mount_is_listed_with_its_name_and_gone_when_dropped() {
    let Some((_d, fs, mp)) = layer("listed") else {
        return;
    };
    let name = fs.fsname.clone();
    let mp = fs::canonicalize(&mp).unwrap();
    assert!(
        mounts().iter().any(|(s, p)| *s == name && *p == mp),
        "{:?}",
        mounts()
    );
    drop(fs);
    assert!(!mounts().iter().any(|(s, _)| *s == name));
}

#[test]
fn mountinfo_escapes_are_decoded() {
    assert_eq!(unescape("/tmp/a\\040b"), "/tmp/a b");
    assert_eq!(unescape("/plain"), "/plain");
    assert_eq!(unescape("\\"), "\\");
}

/// The durability rules as a model: one directory, files by inode, a name table and the
/// durable copies of both.
#[derive(Default)]
struct Model {
    names: BTreeMap<String, usize>,
    durable_names: BTreeMap<String, usize>,
    data: Vec<Vec<u8>>,
    durable_data: Vec<Vec<u8>>,
}

impl Model {
    fn after_power_loss(&self) -> BTreeMap<String, Vec<u8>> {
        self.durable_names
            .iter()
            .map(|(n, &i)| (n.clone(), self.durable_data[i].clone()))
            .collect()
    }
}

#[test]
fn random_operation_sequences_match_the_durability_model() {
    let Some((_d, mut fs, mp)) = layer("model") else {
        return;
    };
    let names = ["a", "b", "c", "d"];
    for seed in 0..25u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut m = Model::default();
        // Start from an empty, durable dir.
        for e in fs::read_dir(&mp).unwrap().flatten() {
            fs::remove_file(e.path()).unwrap();
        }
        sync_dir(&mp);
        fs.power_loss(None).unwrap();
        let mut log = Vec::new();
        for _ in 0..40 {
            let name = names[rng.random_range(0..names.len())];
            let other = names[rng.random_range(0..names.len())];
            let p = mp.join(name);
            match rng.random_range(0..7) {
                0 if !m.names.contains_key(name) => {
                    File::create(&p).unwrap();
                    m.data.push(Vec::new());
                    m.durable_data.push(Vec::new());
                    m.names.insert(name.into(), m.data.len() - 1);
                    log.push(format!("create {name}"));
                }
                1 | 2 if m.names.contains_key(name) => {
                    let i = m.names[name];
                    let len = m.data[i].len();
                    let off = rng.random_range(0..=len);
                    let n = rng.random_range(1..20);
                    let byte = rng.random_range(b'a'..=b'z');
                    let buf = vec![byte; n];
                    OpenOptions::new()
                        .write(true)
                        .open(&p)
                        .unwrap()
                        .write_all_at(&buf, off as u64)
                        .unwrap();
                    let d = &mut m.data[i];
                    if d.len() < off + n {
                        d.resize(off + n, 0);
                    }
                    d[off..off + n].copy_from_slice(&buf);
                    log.push(format!("write {name} {off}+{n}"));
                }
                3 if m.names.contains_key(name) => {
                    let i = m.names[name];
                    let cut = rng.random_range(0..=m.data[i].len());
                    OpenOptions::new()
                        .write(true)
                        .open(&p)
                        .unwrap()
                        .set_len(cut as u64)
                        .unwrap();
                    m.data[i].truncate(cut);
                    log.push(format!("truncate {name} {cut}"));
                }
                4 if m.names.contains_key(name) => {
                    File::open(&p).unwrap().sync_all().unwrap();
                    let i = m.names[name];
                    m.durable_data[i] = m.data[i].clone();
                    log.push(format!("fsync {name}"));
                }
                5 => {
                    sync_dir(&mp);
                    m.durable_names = m.names.clone();
                    log.push("fsync dir".into());
                }
                6 if m.names.contains_key(name) && name != other => {
                    if rng.random_range(0..2) == 0 {
                        fs::rename(&p, mp.join(other)).unwrap();
                        let i = m.names.remove(name).unwrap();
                        m.names.insert(other.into(), i);
                        log.push(format!("rename {name} {other}"));
                    } else {
                        fs::remove_file(&p).unwrap();
                        m.names.remove(name);
                        log.push(format!("unlink {name}"));
                    }
                }
                _ => {}
            }
        }
        let current: BTreeMap<String, Vec<u8>> = m
            .names
            .iter()
            .map(|(n, &i)| (n.clone(), m.data[i].clone()))
            .collect();
        assert_eq!(
            listing(&mp),
            current,
            "seed {seed} before the loss: {log:?}"
        );
        fs.power_loss(None).unwrap();
        assert_eq!(
            listing(&mp),
            m.after_power_loss(),
            "seed {seed} after the loss: {log:?}"
        );
    }
}

#[test]
fn a_copy_of_the_mount_in_another_namespace_neither_delays_nor_unmounts_the_next_one() {
    let Some((_d, mut fs, mp)) = layer("netnscopy") else {
        return;
    };
    fs::write(mp.join("x"), b"1").unwrap();
    // Another node's `ip netns exec` namespace, holding a copy of this mount.
    let mut other = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sleep", "30"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let t = std::time::Instant::now();
    let lost = fs.power_loss(None).unwrap();
    // Not the 10 s wait for a session that cannot end while the copy lives.
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(lost.dir_ops, vec!["created x".to_string()]);
    // The copy goes: the old session ends without touching the new mount.
    other.kill().unwrap();
    other.wait().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mpc = fs::canonicalize(&mp).unwrap();
    assert!(mounts().iter().any(|(_, p)| *p == mpc), "{:?}", mounts());
    fs::write(mp.join("y"), b"2").unwrap();
    assert_eq!(fs::read(mp.join("y")).unwrap(), b"2");
    assert!(fs.power_loss(None).unwrap().dir_ops == vec!["created y".to_string()]);
}

#[test]
fn under_the_journaled_model_any_fsync_commits_earlier_directory_operations() {
    let Some((_d, mut fs, mp)) = layer("journaled") else {
        return;
    };
    fs::create_dir(mp.join("member")).unwrap();
    let mut f = File::create(mp.join("member/wal")).unwrap();
    f.write_all(b"entry").unwrap();
    f.sync_all().unwrap();
    // Made after the last fsync: lost even here.
    File::create(mp.join("later")).unwrap();
    drop(f);
    let lost = fs.power_loss(None).unwrap();
    assert_eq!(fs::read(mp.join("member/wal")).unwrap(), b"entry");
    assert!(!mp.join("later").exists());
    assert_eq!(lost.dir_ops, vec!["created later".to_string()]);
}

#[test]
fn a_torn_write_is_kept_only_when_it_was_the_one_unsynced_change() {
    let Some((_d, mut fs, mp)) = layer("torn2") else {
        return;
    };
    let mut f = File::create(mp.join("wal")).unwrap();
    f.write_all(b"head").unwrap();
    f.sync_all().unwrap();
    sync_dir(&mp);
    // Two unsynced appends: keeping part of the second while the first is lost would leave a
    // hole of zeros before it, which no disk that writes in order produces.
    f.write_all(&[1u8; 50]).unwrap();
    f.write_all(&[2u8; 50]).unwrap();
    drop(f);
    let lost = fs.power_loss(Some(42)).unwrap();
    assert_eq!(lost.files[0].torn, None);
    assert_eq!(fs::read(mp.join("wal")).unwrap(), b"head");
}
