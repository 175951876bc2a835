//! The report files a run produces (issue 6): every file exists and parses; report.html is
//! well formed, references only files that exist or embedded data, and renders in a real
//! browser without console errors or failed loads; junit.xml parses; and the plot data of a
//! fixed recorded run matches its golden file.
//!
//! The fixture (tests/fixtures/run-stale-read) is a real 12 s run of raftkv with its
//! stale-read bug under an isolate-leader partition, thinned by tests/fixtures/trim.py: one
//! partition, one leader change, an invalid register with a three-op counterexample.
//!
//! A counterexample must be readable (issue 12): a ~300-op witness with long values over many
//! processes and the fixture's three-op one are loaded at 1280x900 in headless chromium, and
//! JavaScript in the page checks that no two texts of a timeline overlap and that the page
//! does not scroll sideways; a projected witness must say so on the page, in the terminal
//! summary and in junit.xml.
//!
//! Tests that need something this machine may lack print "SKIPPED: ..." and pass, and fail
//! instead under RAFTCHECK_REQUIRE_ALL=1: the real run needs the raftkv binary built next to
//! raftcheck; the browser test needs Debian's chromium at /usr/bin/chromium.
//! Set RAFTCHECK_UPDATE_GOLDEN=1 to rewrite the golden file after a deliberate change.

use raftcheck::report::html::read_run;
use raftcheck::report::plots::{self, PlotData};
use raftcheck::report::{render_run, write_index, write_junit};
use raftcheck::store::Unavailability;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One cluster or browser at a time on a 2-core machine.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn require(ok: bool, why: &str) -> bool {
    if ok {
        return true;
    }
    if std::env::var("RAFTCHECK_REQUIRE_ALL").as_deref() == Ok("1") {
        panic!("required but unavailable: {why}");
    }
    eprintln!("SKIPPED: {why}");
    false
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/run-stale-read")
}

/// Copy a dir tree (small: a fixture) into `to`.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// The fixture copied into `root` where a run would put it: `root/<names>/<timestamp>/`.
fn fixture_run(root: &Path) -> PathBuf {
    let dir = root
        .join("raftkv-register-isolate-leader")
        .join("20261123T201702.608Z");
    copy_tree(&fixture(), &dir);
    std::fs::remove_file(dir.join("plot-data.golden")).unwrap();
    std::fs::remove_file(dir.join("README.md")).ok();
    dir
}

// ---------------------------------------------------------------------------------------------
// Checks of the files themselves.

/// PNG signature, IHDR first, and its size.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(
        bytes.len() > 33,
        "too short for a PNG: {} bytes",
        bytes.len()
    );
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR", "IHDR is the first chunk");
    let be = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    (be(16), be(20))
}

fn check_png(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (w, h) = png_size(&bytes);
    assert!(w >= 400 && h >= 100, "{}: {w}x{h}", path.display());
    (w, h)
}

const VOID: [&str; 8] = ["meta", "link", "img", "br", "hr", "input", "source", "wbr"];

/// A small HTML checker: every non-void element is closed in order, and every href/src is a
/// data: URI (PNGs must decode to a PNG header), an anchor that exists on the page, or a
/// relative path to a file that exists. No http(s) resource. Returns the links.
fn check_html(path: &Path) -> Vec<String> {
    let html = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let dir = path.parent().unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"), "doctype");
    let mut stack: Vec<String> = Vec::new();
    let mut ids = BTreeSet::new();
    let mut refs: Vec<String> = Vec::new();
    let mut i = 0;
    let mut guard = 0;
    while let Some(off) = html[i..].find('<') {
        guard += 1;
        assert!(guard < 1_000_000, "runaway parse");
        i += off;
        if html[i..].starts_with("<!--") {
            i += html[i..].find("-->").expect("unclosed comment") + 3;
            continue;
        }
        let end = i + html[i..].find('>').expect("unclosed tag");
        let tag = &html[i + 1..end];
        i = end + 1;
        if tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let name = name.trim().to_ascii_lowercase();
            let open = stack
                .pop()
                .unwrap_or_else(|| panic!("</{name}> closes nothing"));
            assert_eq!(open, name, "</{name}> closes <{open}> (byte {end})");
            continue;
        }
        let self_closing = tag.ends_with('/');
        let tag = tag.trim_end_matches('/');
        let name_end = tag.find(|c: char| c.is_whitespace()).unwrap_or(tag.len());
        let name = tag[..name_end].to_ascii_lowercase();
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric()),
            "bad tag <{tag}>"
        );
        // Attributes: name="value" pairs (the writer always quotes with ").
        let mut rest = &tag[name_end..];
        for _ in 0..1000 {
            rest = rest.trim_start();
            let Some(eq) = rest.find("=\"") else { break };
            let attr = rest[..eq].trim().to_ascii_lowercase();
            let vstart = eq + 2;
            let vend = vstart + rest[vstart..].find('"').expect("unclosed attribute");
            let value = rest[vstart..vend].replace("&amp;", "&");
            assert!(!value.contains('<'), "raw < in attribute of <{name}>");
            match attr.as_str() {
                "id" => {
                    assert!(ids.insert(value.clone()), "duplicate id {value}");
                }
                "href" | "src" => refs.push(value),
                _ => {}
            }
            rest = &rest[vend + 1..];
        }
        if name == "style" || name == "script" {
            let close = format!("</{name}>");
            i += html[i..].find(&close).expect("unclosed raw-text element") + close.len();
            continue;
        }
        if !self_closing && !VOID.contains(&name.as_str()) {
            stack.push(name);
        }
    }
    assert!(stack.is_empty(), "unclosed elements: {stack:?}");
    for r in &refs {
        assert!(
            !r.starts_with("http:") && !r.starts_with("https:") && !r.starts_with("//"),
            "{}: external reference {r}",
            path.display()
        );
        if let Some(data) = r.strip_prefix("data:") {
            if let Some(b64) = data.strip_prefix("image/png;base64,") {
                use base64::Engine;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .expect("embedded PNG is base64");
                png_size(&bytes);
            }
        } else if let Some(anchor) = r.strip_prefix('#') {
            assert!(ids.contains(anchor), "link to missing anchor #{anchor}");
        } else {
            let rel = percent_decode(r);
            assert!(
                dir.join(&rel).exists(),
                "{}: link to {r}, which does not exist",
                path.display()
            );
        }
    }
    refs
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).expect("utf-8 path")
}

/// junit.xml parses as XML; returns (testcases, failures, errors) as counted in the document,
/// after checking the root's totals agree with them.
fn check_junit(path: &Path) -> (usize, usize, usize) {
    use quick_xml::events::Event;
    let text = std::fs::read_to_string(path).unwrap();
    let mut reader = quick_xml::Reader::from_str(&text);
    let (mut cases, mut failures, mut errors) = (0, 0, 0);
    let mut root_counts = None;
    let mut depth = 0i32;
    for _ in 0..1_000_000 {
        match reader.read_event() {
            Ok(Event::Eof) => break,
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) if e.name().as_ref() == b"testsuites" => {
                let get = |k: &[u8]| -> usize {
                    e.attributes()
                        .flatten()
                        .find(|a| a.key.as_ref() == k)
                        .and_then(|a| String::from_utf8(a.value.to_vec()).ok())
                        .and_then(|v| v.parse().ok())
                        .expect("count attribute")
                };
                root_counts = Some((get(b"tests"), get(b"failures"), get(b"errors")));
                depth += 1;
            }
            Ok(Event::Start(e)) => {
                depth += 1;
                match e.name().as_ref() {
                    b"testcase" => cases += 1,
                    b"failure" => failures += 1,
                    b"error" => errors += 1,
                    _ => {}
                }
            }
            Ok(Event::Empty(e)) => match e.name().as_ref() {
                b"testcase" => cases += 1,
                b"failure" => failures += 1,
                b"error" => errors += 1,
                _ => {}
            },
            Ok(Event::End(_)) => depth -= 1,
            Ok(_) => {}
            Err(e) => panic!("{}: not XML: {e}", path.display()),
        }
    }
    assert_eq!(depth, 0, "unbalanced XML");
    assert_eq!(root_counts, Some((cases, failures, errors)), "root totals");
    (cases, failures, errors)
}

/// The checks every rendered run dir must pass; returns the report.html path.
fn check_run_dir(dir: &Path, written: &[PathBuf]) -> PathBuf {
    for name in [
        "latency.png",
        "rate.png",
        "leader-changes.png",
        "report.html",
    ] {
        assert!(
            written.contains(&dir.join(name)),
            "render_run did not report {name}: {written:?}"
        );
        assert!(dir.join(name).is_file(), "{name} missing");
    }
    assert_eq!(check_png(&dir.join("latency.png")), (1280, 560));
    assert_eq!(check_png(&dir.join("rate.png")), (1280, 440));
    check_png(&dir.join("leader-changes.png"));
    let report = dir.join("report.html");
    let refs = check_html(&report);
    for must in ["results.json", "history.jsonl", "nemesis.jsonl"] {
        assert!(
            refs.iter().any(|r| r == must),
            "no link to {must}: {refs:?}"
        );
    }
    assert!(
        refs.iter()
            .filter(|r| r.starts_with("data:image/png;base64,"))
            .count()
            == 3,
        "three embedded plots"
    );
    report
}

// ---------------------------------------------------------------------------------------------
// The browser.

const CHROMIUM: &str = "/usr/bin/chromium";

/// Injected into a copy of the page (never into the report itself, which has no script):
/// logs every resource that fails to load, and every image that did not decode, as console
/// errors, then a marker proving the page finished loading with the probe running.
const PROBE: &str = "<script>window.addEventListener('error',function(e){var t=e.target;\
if(t&&t!==window){console.error('Failed to load resource: '+(t.src||t.href||t.tagName));}},true);\
window.addEventListener('load',function(){document.querySelectorAll('img').forEach(function(i){\
if(!i.complete||i.naturalWidth===0){console.error('Failed to load image: '+i.src.slice(0,80));}});\
console.log('raftcheck-probe: loaded '+document.images.length+' images');});</script>";

/// Load `report` headless, screenshot it, and fail on console errors or failed loads.
fn check_in_browser(report: &Path) {
    let dir = report.parent().unwrap();
    let html = std::fs::read_to_string(report).unwrap();
    let probe_page = dir.join(".report-probe.html");
    std::fs::write(
        &probe_page,
        html.replacen("<head>", &format!("<head>{PROBE}"), 1),
    )
    .unwrap();
    let profile = tempfile::tempdir().unwrap();
    let shot = dir.join(".report-screenshot.png");
    let child = headless_chromium(profile.path(), 1280, 2000)
        .arg("--enable-logging=stderr")
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", probe_page.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let out = wait_with_deadline(child, Duration::from_secs(90));
    let (status, log) = (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    std::fs::remove_file(&probe_page).ok();
    let console: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE")).collect();
    let bad: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains("Uncaught")
                || l.contains("ERR_FILE_NOT_FOUND")
                || l.contains("Failed to load")
                || (l.contains("CONSOLE") && !l.contains("raftcheck-probe"))
        })
        .collect();
    assert!(
        bad.is_empty(),
        "browser reported problems:\n{}",
        bad.join("\n")
    );
    assert!(status.success(), "chromium exited with {status}\n{log}");
    assert!(
        console
            .iter()
            .any(|l| l.contains("raftcheck-probe: loaded 3 images")),
        "the probe did not report a finished load:\n{}",
        console.join("\n")
    );
    let (w, h) = check_png(&shot);
    assert_eq!((w, h), (1280, 2000), "screenshot size");
    eprintln!("screenshot: {}", shot.display());
}

/// Debian's chromium, headless, with its own profile and no network (the report must need
/// none), at a `width` x `height` window.
fn headless_chromium(profile: &Path, width: u32, height: u32) -> Command {
    let mut c = Command::new(CHROMIUM);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-default-apps",
        "--no-first-run",
        "--host-resolver-rules=MAP * ~NOTFOUND",
    ])
    .arg(format!("--window-size={width},{height}"))
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

fn chromium_present() -> bool {
    require(
        Path::new(CHROMIUM).is_file(),
        "Debian's chromium is not installed (apt-get install chromium): report.html not loaded in a browser",
    )
}

// ---------------------------------------------------------------------------------------------
// Golden plot data.

/// One item per line so a diff shows exactly which point, interval or line moved.
fn golden_text(d: &PlotData, u: &Unavailability) -> String {
    let j = |v: &dyn erased::Ser| v.json();
    let mut s = String::new();
    s.push_str(&format!(
        "end {}\nbucket {}\npoints {} of {}\n",
        d.end,
        d.bucket,
        d.points.len(),
        d.total_points
    ));
    s.push_str("# faults\n");
    for f in &d.faults {
        s.push_str(&j(f));
        s.push('\n');
    }
    s.push_str("# not installed\n");
    for f in &d.not_installed {
        s.push_str(f);
        s.push('\n');
    }
    s.push_str("# initial leader\n");
    s.push_str(&j(&d.initial_leader));
    s.push_str("\n# leader changes\n");
    for l in &d.leaders {
        s.push_str(&j(l));
        s.push('\n');
    }
    s.push_str("# unavailability\n");
    s.push_str(&j(u));
    s.push_str("\n# rate\n");
    for r in &d.rate {
        s.push_str(&format!("{} {}", r.f.name(), r.class.name()));
        for (t, v) in &r.points {
            s.push_str(&format!(" {t}:{v}"));
        }
        s.push('\n');
    }
    s.push_str("# windows\n");
    for w in &d.windows {
        s.push_str(&format!(
            "{} points {}\nok_rate",
            j(&w.change),
            w.points.len()
        ));
        for (t, v) in &w.ok_rate {
            s.push_str(&format!(" {t:.1}:{v}"));
        }
        s.push('\n');
    }
    s.push_str("# points\n");
    for p in &d.points {
        s.push_str(&j(p));
        s.push('\n');
    }
    s
}

mod erased {
    /// Serialize anything to one line of JSON.
    pub trait Ser {
        fn json(&self) -> String;
    }
    impl<T: serde::Serialize> Ser for T {
        fn json(&self) -> String {
            serde_json::to_string(self).expect("serializable")
        }
    }
}

#[test]
fn plot_data_of_the_recorded_run_matches_the_golden_file() {
    let inputs = read_run(&fixture()).expect("fixture reads");
    assert!(
        inputs.ops.len() > 200,
        "fixture has {} ops",
        inputs.ops.len()
    );
    let data = plots::plot_data(&inputs.ops, &inputs.nemesis, &inputs.results.leader_changes);
    let u = raftcheck::analysis::unavailability(&inputs.ops, &inputs.results.leader_changes);

    // What a reader of the plots would check by eye, stated outright:
    // one partition, shaded from its install to its heal;
    assert_eq!(data.faults.len(), 1);
    let f = &data.faults[0];
    assert_eq!(f.label, "partition isolate-leader");
    assert!(!f.unhealed);
    assert!((f.start - 1.549805833).abs() < 1e-9 && (f.end - 6.449332329).abs() < 1e-9);
    // the first leader is not a change; one change, to n3 in term 2, inside the partition;
    assert_eq!(
        data.initial_leader.as_ref().map(|l| l.label.as_str()),
        Some("n1 t1")
    );
    assert_eq!(data.leaders.len(), 1);
    assert_eq!(data.leaders[0].label, "n3 t2");
    assert!(data.leaders[0].t > f.start && data.leaders[0].t < f.end);
    // its window is drawn, and writes were unavailable around it for a measurable time.
    assert_eq!(data.windows.len(), 1);
    assert_eq!(u.windows.len(), 1);
    let gap = u.windows[0].ms.expect("writes before and after the change");
    assert!(gap > 0.0 && u.median_ms == Some(gap) && u.max_ms == Some(gap));
    // Every op with a completion time is a point (the fixture is far below the thinning cap).
    assert_eq!(data.points.len(), data.total_points);

    let got = golden_text(&data, &u);
    let path = fixture().join("plot-data.golden");
    if std::env::var("RAFTCHECK_UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::write(&path, &got).unwrap();
        eprintln!("rewrote {}", path.display());
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (RAFTCHECK_UPDATE_GOLDEN=1 writes it)",
            path.display()
        )
    });
    if got != want {
        let (n, (g, w)) = got
            .lines()
            .zip(want.lines())
            .enumerate()
            .find(|(_, (g, w))| g != w)
            .unwrap_or((
                got.lines().count().min(want.lines().count()),
                ("<end>", "<end>"),
            ));
        panic!(
            "plot data differs from {} at line {}:\n  got:  {g}\n  want: {w}\n\
             (if the change is deliberate, rerun with RAFTCHECK_UPDATE_GOLDEN=1)",
            path.display(),
            n + 1
        );
    }
}

#[test]
fn the_recorded_run_renders_every_file_and_they_parse() {
    let root = tempfile::tempdir().unwrap();
    let dir = fixture_run(root.path());
    let written = render_run(&dir).expect("render");
    let report = check_run_dir(&dir, &written);
    let html = std::fs::read_to_string(&report).unwrap();
    // Verdict first, and the counterexample as a timeline with the unplaced op marked.
    let verdict_at = html.find("<h1>INVALID</h1>").expect("verdict heading");
    assert!(verdict_at < html.find("id=\"reproduce\"").unwrap());
    assert!(html.contains("<svg"), "timeline");
    assert!(html.contains("cannot be placed"));
    assert!(html.contains("nodes/n1/log"), "node log links");
    assert!(html.contains("partition isolate-leader"));
    // Self-contained and small.
    assert!(!html.contains("<script"), "no script");
    let size = std::fs::metadata(&report).unwrap().len();
    assert!(size < 2_000_000, "report.html is {size} bytes");

    // JUnit: an invalid run has a test case per key; the register's fails.
    let results = read_run(&dir).unwrap().results;
    let junit = root.path().join("ci").join("junit.xml");
    write_junit(&junit, &[(&dir, &results)]).expect("junit");
    let (cases, failures, errors) = check_junit(&junit);
    assert!(
        cases >= 1 && failures >= 1,
        "{cases} cases, {failures} failures"
    );
    assert_eq!(errors, 0);

    let index = write_index(root.path()).expect("index");
    assert_eq!(index, root.path().join("index.html"));
    let refs = check_html(&index);
    assert!(
        refs.iter()
            .any(|r| r.ends_with("20261123T201702.608Z/report.html")),
        "{refs:?}"
    );
}

#[test]
fn junit_counts_a_valid_and_an_unknown_run() {
    let mut valid = read_run(&fixture()).unwrap().results;
    valid.verdict = raftcheck::checker::Verdict::Valid;
    valid.reasons.clear();
    let mut unknown = valid.clone();
    unknown.verdict = raftcheck::checker::Verdict::Unknown;
    unknown.reasons = vec!["only 3 ops succeeded <below the floor> & more".into()];
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("junit.xml");
    write_junit(
        &path,
        &[(Path::new("a"), &valid), (Path::new("b"), &unknown)],
    )
    .unwrap();
    assert_eq!(check_junit(&path), (2, 0, 1));
}

#[test]
fn the_report_renders_in_a_real_browser() {
    if !chromium_present() {
        return;
    }
    let _one = serial();
    let root = tempfile::tempdir().unwrap();
    let dir = fixture_run(root.path());
    render_run(&dir).expect("render");
    check_in_browser(&dir.join("report.html"));
}

fn raftkv_built() -> bool {
    raftcheck::cluster::find_binary("raftkv").is_ok_and(|p| !p.starts_with("/usr"))
}

#[test]
fn a_short_real_run_renders_a_report_that_parses_and_loads() {
    if !require(
        raftkv_built(),
        "raftkv is not built next to raftcheck (cargo build --workspace): no real run to report on",
    ) {
        return;
    }
    let _one = serial();
    let root = tempfile::tempdir().unwrap();
    let results = root.path().join("results");
    let mut child = Command::new(env!("CARGO_BIN_EXE_raftcheck"))
        .args(["run", "--time-limit", "8", "--nemesis", "kill", "--quiet"])
        .arg("--results")
        .arg(&results)
        .args(["--net", "loopback"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start raftcheck");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("raftcheck run outlived 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let code = out.status.code();
    assert!(
        matches!(code, Some(0 | 1 | 3)),
        "raftcheck run failed ({code:?}):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = std::fs::canonicalize(results.join("latest")).expect("results/latest");
    let written = render_run(&dir).expect("render_run on a real run");
    let report = check_run_dir(&dir, &written);
    let inputs = read_run(&dir).unwrap();
    let junit = dir.join("junit.xml");
    write_junit(&junit, &[(&dir, &inputs.results)]).unwrap();
    let (cases, _, _) = check_junit(&junit);
    assert!(cases >= 1);
    // Render again now that junit.xml exists: the page links it.
    render_run(&dir).unwrap();
    assert!(check_html(&report).iter().any(|r| r == "junit.xml"));
    let index = write_index(&results).unwrap();
    check_html(&index);
    if Path::new(CHROMIUM).is_file() {
        check_in_browser(&report);
    } else {
        chromium_present();
    }
}

#[test]
fn check_out_renders_a_page_and_a_latency_plot_per_history() {
    use raftcheck::analysis::op_counts;
    use raftcheck::report::{render_check, CheckReport, Conclusion, HistoryCheck};
    let inputs = read_run(&fixture()).unwrap();
    let check = raftcheck::checker::check(&inputs.ops, &Default::default()).expect("checkable");
    assert_eq!(check.verdict, raftcheck::checker::Verdict::Invalid);
    let file = fixture().join("history.jsonl").display().to_string();
    let report = CheckReport {
        verdict: Conclusion::Error,
        histories: vec![
            HistoryCheck {
                file: file.clone(),
                verdict: check.verdict.into(),
                error: None,
                op_counts: op_counts(&inputs.ops),
                check: Some(check),
            },
            HistoryCheck {
                file: "missing.jsonl".into(),
                verdict: Conclusion::Error,
                error: Some("missing.jsonl: No such file or directory".into()),
                op_counts: Default::default(),
                check: None,
            },
        ],
    };
    let out = tempfile::tempdir().unwrap();
    let ops_by_file = std::collections::BTreeMap::from([(file, inputs.ops.clone())]);
    let written = render_check(out.path(), &report, &ops_by_file).expect("render_check");
    assert_eq!(
        written,
        [
            out.path().join("latency-1.png"),
            out.path().join("report.html")
        ]
    );
    check_png(&out.path().join("latency-1.png"));
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert!(html.contains("<h1>ERROR</h1>") && html.contains(">INVALID</span>"));
    assert!(html.contains(">ERROR</span>") && html.contains("some could not be checked"));
    assert!(html.contains("cannot be placed"));
    check_html(&out.path().join("report.html"));
}

#[test]
#[should_panic(expected = "does not exist")]
fn the_html_checker_catches_a_link_to_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("p.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html>\n<html><body><a href=\"nodes/n9/log\">x</a></body></html>\n",
    )
    .unwrap();
    check_html(&page);
}

// ---------------------------------------------------------------------------------------------
// A counterexample a person can read (issue 12): labels that never overlap, no horizontal
// scroll, and a projected witness that says it is one.

/// A list-append witness as big and as awkward as a real one can get: `n` ops over
/// `processes` processes with process numbers of every width, every third op a read of a list
/// of `long` elements, appends of long strings, a few unknown outcomes, one op that cannot be
/// placed and a projection onto elements 17 and 23. Deterministic, so a failure reproduces.
fn list_witness(n: usize, processes: u64, long: usize) -> raftcheck::checker::Counterexample {
    use raftcheck::history::{Fun, Op, Outcome};
    let ops: Vec<Op> = (0..n)
        .map(|i| {
            let slot = i as u64 % processes;
            let round = i as u64 / processes;
            let call_time = 5_000_000_000 + round * 9_000_000 + slot * 370_000;
            let (f, value) = match i % 3 {
                0 => (
                    Fun::Read,
                    serde_json::json!((i..i + long).collect::<Vec<usize>>()),
                ),
                1 => (Fun::Append, serde_json::json!(i)),
                _ => (
                    Fun::Append,
                    serde_json::json!(format!("element-{i}-{}", "x".repeat(60))),
                ),
            };
            Op {
                id: i,
                process: 10u64.pow((slot % 7) as u32) + slot,
                f,
                key: Some("k".into()),
                value,
                outcome: if i % 17 == 5 {
                    Outcome::Info
                } else {
                    Outcome::Ok
                },
                call: 2 * i,
                ret: Some(2 * i + 1),
                call_time,
                ret_time: Some(call_time + 2_000_000 + (i as u64 % 5) * 1_300_000),
                node: Some(format!("n{}", i % 3 + 1)),
            }
        })
        .collect();
    raftcheck::checker::Counterexample {
        weakened: ops
            .iter()
            .filter(|o| o.id % 23 == 4)
            .map(|o| o.id)
            .collect(),
        projection: vec![serde_json::json!(17), serde_json::json!(23)],
        linearized: ops.iter().take(n / 2).map(|o| o.id).collect(),
        state: serde_json::json!((0..long).collect::<Vec<usize>>()),
        unplaced: ops.get(n * 2 / 3).map(|o| o.id),
        candidates: vec![],
        explanation: format!(
            "{} of {n} ops linearized; the next cannot take effect",
            n / 2
        ),
        ops,
    }
}

/// A key name with no place to break it, longer than any column.
fn long_key() -> String {
    format!("tenant/{}/orders", "0123456789abcdef".repeat(8))
}

/// The fixture's run, re-rendered with its results made as hard to lay out as possible: a
/// ~300-op counterexample under a long key name beside the fixture's own three-op one, long
/// unbroken reasons, spec values, fault-log details and unread keys.
fn awkward_run(root: &Path) -> PathBuf {
    use raftcheck::checker::Verdict;
    let dir = fixture_run(root);
    let mut rec = read_run(&dir).unwrap();
    let r = &mut rec.results;
    let blob = format!("/var/lib/raftcheck/{}", "unbroken-".repeat(40));
    let mut big = r.check.keys[0].clone();
    big.key = Some(long_key());
    big.ops = 300;
    big.counterexample = Some(list_witness(300, 12, 200));
    r.check.keys[0].key = Some("k2".into());
    r.check.keys.insert(0, big);
    r.check.verdict = Verdict::Invalid;
    r.reasons
        .push(format!("a reason naming a long path: {blob}"));
    r.unread_keys.push(Some(long_key()));
    r.nemesis_spec.faults.push(blob.clone());
    r.exercised
        .unsupported
        .insert("membership".into(), blob.clone());
    r.command = format!("{} --results {blob}", r.command);
    raftcheck::report::write_json(&dir.join("results.json"), &rec.results).unwrap();
    let nemesis = dir.join("nemesis.jsonl");
    let mut lines: Vec<serde_json::Value> = std::fs::read_to_string(&nemesis)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    lines[0]["reason"] = serde_json::json!(blob);
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&nemesis, text).unwrap();
    render_run(&dir).expect("render the awkward run");
    dir.join("report.html")
}

/// `raftcheck check --out` over the same two counterexamples, plus a file that could not be
/// read with a long error and a long path.
fn awkward_check(out: &Path) -> PathBuf {
    use raftcheck::report::{render_check, CheckReport, Conclusion, HistoryCheck};
    let inputs = read_run(&fixture()).unwrap();
    let mut check = inputs.results.check.clone();
    let mut big = check.keys[0].clone();
    big.key = Some(long_key());
    big.ops = 300;
    big.counterexample = Some(list_witness(300, 40, 200));
    check.keys.insert(0, big);
    let long_path = format!("/data/{}/history.jsonl", "deeply-nested-".repeat(20));
    let report = CheckReport {
        verdict: Conclusion::Error,
        histories: vec![
            HistoryCheck {
                file: long_path.clone(),
                verdict: Conclusion::Invalid,
                error: None,
                op_counts: Default::default(),
                check: Some(check),
            },
            HistoryCheck {
                file: format!("{long_path}.missing"),
                verdict: Conclusion::Error,
                error: Some(format!(
                    "{long_path}.missing: {}",
                    "no-such-file-".repeat(30)
                )),
                op_counts: Default::default(),
                check: None,
            },
        ],
    };
    render_check(out, &report, &Default::default()).expect("render_check");
    out.join("report.html")
}

/// Injected before `</body>` of a copy of the page: once loaded, measures every text of
/// every SVG and the page's width, and leaves the answer in the DOM for `--dump-dom` to
/// print, percent-encoded so no HTML escaping can garble it.
const LAYOUT_PROBE: &str = r#"<script>window.addEventListener('load',function(){
var de=document.documentElement,out={innerWidth:innerWidth,clientWidth:de.clientWidth,
scrollWidth:de.scrollWidth,svgs:0,texts:0,overlaps:0,pairs:[],wide:[]};
document.querySelectorAll('svg').forEach(function(svg,si){out.svgs++;var b=[];
svg.querySelectorAll('text').forEach(function(t){var r=t.getBoundingClientRect();
if(r.width>0&&r.height>0){b.push({r:r,s:t.textContent});}});out.texts+=b.length;
for(var i=0;i<b.length;i++){for(var j=i+1;j<b.length;j++){var p=b[i].r,q=b[j].r;
if(p.left<q.right&&q.left<p.right&&p.top<q.bottom&&q.top<p.bottom){out.overlaps++;
if(out.pairs.length<12){out.pairs.push('svg '+si+': ['+b[i].s+'] '+Math.round(p.left)+'..'+
Math.round(p.right)+','+Math.round(p.top)+' over ['+b[j].s+'] '+Math.round(q.left)+'..'+
Math.round(q.right)+','+Math.round(q.top));}}}}});
document.querySelectorAll('body *').forEach(function(e){var r=e.getBoundingClientRect();
if(r.right>de.clientWidth+0.5&&out.wide.length<12){out.wide.push(e.tagName+' right '+
Math.round(r.right)+': '+(e.textContent||'').slice(0,60));}});
var pre=document.createElement('pre');pre.id='raftcheck-layout';
pre.textContent=encodeURIComponent(JSON.stringify(out));document.body.appendChild(pre);});
</script>"#;

/// What [`LAYOUT_PROBE`] measured.
#[derive(serde::Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct Layout {
    inner_width: f64,
    client_width: f64,
    scroll_width: f64,
    svgs: usize,
    texts: usize,
    overlaps: usize,
    pairs: Vec<String>,
    wide: Vec<String>,
}

/// Load a copy of `report` with [`LAYOUT_PROBE`] in headless chromium at 1280x900 and return
/// what it measured. `--dump-dom` prints the DOM after the load handlers ran, so the answer
/// comes back on stdout with no debugging protocol.
fn layout_in_browser(report: &Path) -> Layout {
    let html = std::fs::read_to_string(report).unwrap();
    assert!(
        html.contains("</body>"),
        "no </body> to put the probe before"
    );
    let probe_page = report.with_file_name(".layout-probe.html");
    std::fs::write(
        &probe_page,
        html.replacen("</body>", &format!("{LAYOUT_PROBE}</body>"), 1),
    )
    .unwrap();
    let profile = tempfile::tempdir().unwrap();
    let child = headless_chromium(profile.path(), 1280, 900)
        .arg("--dump-dom")
        .arg(format!("file://{}", probe_page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let out = wait_with_deadline(child, Duration::from_secs(60));
    std::fs::remove_file(&probe_page).ok();
    let dom = String::from_utf8_lossy(&out.stdout);
    let start = dom
        .find("<pre id=\"raftcheck-layout\">")
        .unwrap_or_else(|| {
            panic!(
                "the layout probe left no answer (chromium {}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        })
        + "<pre id=\"raftcheck-layout\">".len();
    let end = start + dom[start..].find("</pre>").expect("the answer's </pre>");
    let json = percent_decode(&dom[start..end]);
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("probe answer {json}: {e}"))
}

/// `wait_with_output` that kills the child past `limit` instead of hanging the suite.
fn wait_with_deadline(mut child: std::process::Child, limit: Duration) -> std::process::Output {
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::process::Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// Read a child's pipe to its end on a thread of its own, so a full pipe cannot stall it.
fn drain<R: std::io::Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut v);
        }
        v
    })
}

/// Why `report` is not readable in a browser at 1280 px, if it is not: text of a timeline
/// overlapping other text, or a page wider than the viewport.
fn unreadable(report: &Path, timelines: usize) -> Option<String> {
    let l = layout_in_browser(report);
    eprintln!("{}: {l:?}", report.display());
    // The window size took effect, and the timelines were drawn with text to compare.
    assert_eq!(l.inner_width, 1280.0, "viewport: {l:?}");
    assert_eq!(l.svgs, timelines, "timelines on the page: {l:?}");
    assert!(
        l.texts > 20 * timelines,
        "too few texts to mean anything: {l:?}"
    );
    let mut why = Vec::new();
    if l.overlaps > 0 {
        why.push(format!(
            "{} pairs of timeline texts overlap, e.g.\n{}",
            l.overlaps,
            l.pairs.join("\n")
        ));
    }
    if l.scroll_width > l.client_width || l.scroll_width > 1280.0 {
        why.push(format!(
            "the page scrolls sideways ({} px wide in a {} px viewport); too wide:\n{}",
            l.scroll_width,
            l.client_width,
            l.wide.join("\n")
        ));
    }
    (!why.is_empty()).then(|| format!("{}:\n{}", report.display(), why.join("\n")))
}

#[test]
fn a_large_and_a_small_counterexample_read_without_overlap_or_sideways_scroll() {
    if !chromium_present() {
        return;
    }
    let _one = serial();
    let root = tempfile::tempdir().unwrap();
    let run = unreadable(&awkward_run(root.path()), 2);
    let check = unreadable(&awkward_check(&root.path().join("check")), 2);
    let problems: Vec<String> = run.into_iter().chain(check).collect();
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[test]
fn a_projected_witness_says_so_on_the_page_in_the_summary_and_in_junit() {
    let root = tempfile::tempdir().unwrap();
    let run_page = awkward_run(root.path());
    check_html(&run_page);
    let page = std::fs::read_to_string(&run_page).unwrap();
    let sentence =
        "Reads below show only elements 17, 23: the witness is the history projected onto them";
    assert_eq!(
        page.matches(sentence).count(),
        1,
        "once, for the projected key only"
    );
    assert!(page.contains("The full reads are in history.jsonl."));
    // Under the key's heading, above its timeline.
    let heading = page
        .find(&format!("Key {}", long_key()))
        .expect("the big key's heading");
    let said = page.find(sentence).unwrap();
    let drawn = heading + page[heading..].find("<svg").expect("its timeline");
    assert!(
        heading < said && said < drawn,
        "the sentence sits between heading and timeline"
    );

    let check_page = awkward_check(&root.path().join("check"));
    check_html(&check_page);
    let check = std::fs::read_to_string(&check_page).unwrap();
    assert!(check.contains(sentence), "the check page does not say it");
    assert!(
        check.contains("The full reads are in /data/deeply-nested-"),
        "the check page does not name the history file"
    );

    let results = read_run(
        &root
            .path()
            .join("raftkv-register-isolate-leader/20261123T201702.608Z"),
    )
    .unwrap()
    .results;
    let text = raftcheck::report::text::details(&results.check, "history.jsonl");
    assert!(text.contains(sentence), "{text}");
    let junit = root.path().join("junit.xml");
    write_junit(&junit, &[(Path::new("run"), &results)]).unwrap();
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains(sentence),
        "junit.xml does not say the witness is projected"
    );
}
