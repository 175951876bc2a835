//! The PNG plots of a report (latency.png, rate.png, leader-changes.png), painted from a
//! [`PlotData`] that [`super::figures`] computed: anything a reader could argue about (which
//! fault interval, which bucket, which op counts as "after" a change) is decided there, where
//! a test can see it; here it is only drawn.
//!
//! Text is rendered with plotters' `ab_glyph` backend from a font compiled into the binary
//! (assets/fonts/DejaVuSans.ttf, Bitstream Vera licence), so a plot reads the same on a CI
//! machine with no fonts installed (DESIGN.md "Known traps").

pub use super::figures::*;
use super::ReportError;
use crate::history::{Fun, Op};
use crate::spec::nemesis::FaultKind;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

/// DejaVu Sans, bundled so that PNG text renders without system fonts.
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// The family name every plot asks for; the bundled font is registered under it.
const FAMILY: &str = "sans-serif";

/// Register the bundled font once per process; every drawing function calls this first.
fn ensure_font() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
            .map_err(|_| "the bundled font assets/fonts/DejaVuSans.ttf is not a valid font".into())
    })
    .clone()
}

/// Colour of a function: the same in every plot and in the HTML legend.
pub(crate) fn f_color(f: Fun) -> RGBColor {
    match f {
        Fun::Read => RGBColor(31, 119, 180),
        Fun::Write => RGBColor(44, 160, 44),
        Fun::Cas => RGBColor(148, 103, 189),
        Fun::Append => RGBColor(255, 127, 14),
    }
}

/// Shading of a fault kind (drawn with transparency behind the points).
pub(crate) fn fault_color(k: FaultKind) -> RGBColor {
    match k {
        FaultKind::Kill => RGBColor(214, 39, 40),
        FaultKind::Pause => RGBColor(230, 171, 2),
        FaultKind::Partition => RGBColor(90, 90, 90),
        FaultKind::Member => RGBColor(23, 190, 207),
        FaultKind::PowerLoss => RGBColor(31, 119, 180),
        FaultKind::Corrupt => RGBColor(140, 86, 75),
    }
}

const FAULT_ALPHA: f64 = 0.16;
const LEADER_COLOR: RGBColor = RGBColor(0, 0, 0);
const FUNS: [Fun; 4] = [Fun::Read, Fun::Write, Fun::Cas, Fun::Append];
const KINDS: [FaultKind; 6] = FaultKind::ALL;
const LEGEND_W: u32 = 190;

/// Axis numbers without trailing zeros ("10", "0.5", "0.01").
fn num(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

fn font(size: u32) -> TextStyle<'static> {
    (FAMILY, size).into_font().color(&BLACK)
}

/// What one legend row shows.
enum Swatch {
    Marker(RGBColor, Class),
    Line(RGBColor, Class),
    Area(RGBColor),
    Vertical,
    /// A heading row with no swatch.
    Heading,
}

type DrawResult = Result<(), String>;

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Draw one op marker: filled circle for ok, cross for fail, hollow triangle for info.
fn marker<DB: DrawingBackend>(
    c: (i32, i32),
    color: RGBColor,
    class: Class,
) -> DynElement<'static, DB, (i32, i32)> {
    match class {
        Class::Ok => Circle::new(c, 2, color.filled()).into_dyn(),
        Class::Fail => Cross::new(c, 4, color.stroke_width(2)).into_dyn(),
        Class::Info => TriangleMarker::new(c, 5, color.stroke_width(1)).into_dyn(),
    }
}

fn draw_legend(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    rows: &[(String, Swatch)],
) -> DrawResult {
    let mut y = 40;
    for (text, sw) in rows.iter().take(40) {
        let (x0, x1, ym) = (8, 36, y + 7);
        match sw {
            Swatch::Marker(c, class) => {
                let e = match class {
                    Class::Ok => Circle::new((22, ym), 3, c.filled()).into_dyn(),
                    Class::Fail => Cross::new((22, ym), 4, c.stroke_width(2)).into_dyn(),
                    Class::Info => TriangleMarker::new((22, ym), 5, c.stroke_width(1)).into_dyn(),
                };
                area.draw(&e).map_err(err)?;
            }
            Swatch::Line(c, class) => {
                let style = c.stroke_width(if *class == Class::Ok { 2 } else { 1 });
                let segs: Vec<(i32, i32)> = match class {
                    Class::Ok => vec![(x0, x1)],
                    Class::Fail => vec![(x0, x0 + 8), (x0 + 12, x0 + 20), (x0 + 24, x1)],
                    Class::Info => (0..7).map(|i| (x0 + i * 4, x0 + i * 4 + 1)).collect(),
                };
                for (a, b) in segs {
                    area.draw(&PathElement::new(vec![(a, ym), (b, ym)], style))
                        .map_err(err)?;
                }
            }
            Swatch::Area(c) => {
                area.draw(&Rectangle::new(
                    [(x0, y + 1), (x1, y + 13)],
                    c.mix(FAULT_ALPHA * 1.6).filled(),
                ))
                .map_err(err)?;
            }
            Swatch::Heading => {}
            Swatch::Vertical => {
                area.draw(&PathElement::new(
                    vec![(22, y), (22, y + 14)],
                    LEADER_COLOR.stroke_width(1),
                ))
                .map_err(err)?;
            }
        }
        let tx = if matches!(sw, Swatch::Heading) {
            x0
        } else {
            x1 + 8
        };
        area.draw(&Text::new(text.clone(), (tx, y), font(13)))
            .map_err(err)?;
        y += 19;
    }
    Ok(())
}

fn legend_rows(data: &PlotData, markers: bool) -> Vec<(String, Swatch)> {
    let mut rows = Vec::new();
    if markers {
        let seen: std::collections::BTreeSet<(Fun, Class)> =
            data.points.iter().map(|p| (p.f, p.class)).collect();
        for (f, class) in seen {
            rows.push((
                format!("{} {}", f.name(), class.name()),
                Swatch::Marker(f_color(f), class),
            ));
        }
    } else {
        for s in &data.rate {
            rows.push((
                format!("{} {}", s.f.name(), s.class.name()),
                Swatch::Line(f_color(s.f), s.class),
            ));
        }
    }
    for k in KINDS {
        if data.faults.iter().any(|f| f.kind == k) {
            rows.push((
                format!("{} in force", k.name()),
                Swatch::Area(fault_color(k)),
            ));
        }
    }
    if !data.leaders.is_empty() {
        rows.push(("leader change".into(), Swatch::Vertical));
    }
    rows
}

/// Split the canvas into the chart and a legend column on the right, so the legend never
/// hides a point.
type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

fn split<'a>(root: &Area<'a>) -> (Area<'a>, Area<'a>) {
    let (w, _) = root.dim_in_pixel();
    root.split_horizontally(w.saturating_sub(LEGEND_W))
}

/// Shade faults and draw leader lines on a chart whose y axis spans `y`.
fn backdrop<Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<
        '_,
        BitMapBackend<'_>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, Y>,
    >,
    data: &PlotData,
    y: (f64, f64),
) -> DrawResult {
    for f in &data.faults {
        let c = fault_color(f.kind).mix(FAULT_ALPHA).filled();
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(f.start, y.0), (f.end, y.1)],
                c,
            )))
            .map_err(err)?;
    }
    for l in &data.leaders {
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(l.t, y.0), (l.t, y.1)],
                LEADER_COLOR.mix(0.7).stroke_width(1),
            )))
            .map_err(err)?;
    }
    Ok(())
}

/// Leader labels along the top of the plotting area (pixel space, so they sit above the data
/// whatever the y scale), staggered when two changes are close.
fn leader_labels(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    to_px: impl Fn(f64) -> i32,
    leaders: &[LeaderLine],
    top: i32,
) -> DrawResult {
    let mut last_x: Option<i32> = None;
    let mut row = 0;
    for l in leaders.iter().take(200) {
        let x = to_px(l.t);
        row = match last_x {
            Some(prev) if x.saturating_sub(prev) < 60 => (row + 1) % 3,
            _ => 0,
        };
        last_x = Some(x);
        area.draw(&Text::new(
            l.label.clone(),
            (x + 3, top + 2 + row * 14),
            font(12),
        ))
        .map_err(err)?;
    }
    Ok(())
}

fn log_range(points: &[LatencyPoint]) -> (f64, f64) {
    let lo = points
        .iter()
        .map(|p| p.ms)
        .fold(f64::INFINITY, f64::min)
        .max(0.01);
    let hi = points.iter().map(|p| p.ms).fold(0.0, f64::max);
    if !lo.is_finite() || hi <= lo {
        return (0.1, 1000.0);
    }
    (lo / 1.5, hi * 2.0)
}

fn caption(data: &PlotData, what: &str) -> String {
    format!(
        "{what}{}",
        if data.total_points > data.points.len() {
            format!(
                " ({} of {} ops drawn; every fail and info op kept)",
                data.points.len(),
                data.total_points
            )
        } else {
            String::new()
        }
    )
}

/// latency.png: every op's latency over time, log scale, colour by f, marker by outcome,
/// faults shaded, leader changes as labelled vertical lines.
pub(crate) fn draw_latency(path: &Path, data: &PlotData) -> DrawResult {
    ensure_font()?;
    let root = BitMapBackend::new(path, (1280, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (main, side) = split(&root);
    let (lo, hi) = log_range(&data.points);
    let mut chart = ChartBuilder::on(&main)
        .caption(caption(data, "Latency of every op"), font(20))
        .margin(12)
        .margin_top(30)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..data.end, (lo..hi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("time since start (s)")
        .y_desc("latency (ms, log)")
        .label_style(font(13))
        .axis_desc_style(font(14))
        .light_line_style(TRANSPARENT)
        .x_label_formatter(&|v| num(*v))
        .y_label_formatter(&|v| num(*v))
        .draw()
        .map_err(err)?;
    backdrop(&mut chart, data, (lo, hi))?;
    for class in [Class::Ok, Class::Info, Class::Fail] {
        for f in FUNS {
            chart
                .draw_series(
                    data.points
                        .iter()
                        .filter(|p| p.f == f && p.class == class)
                        .map(|p| EmptyElement::at((p.t, p.ms)) + marker((0, 0), f_color(f), class)),
                )
                .map_err(err)?;
        }
    }
    let top = chart.plotting_area().get_pixel_range().1.start;
    let to_px = |t: f64| chart.backend_coord(&(t, hi)).0;
    leader_labels(&main, to_px, &data.leaders, top)?;
    draw_legend(&side, &legend_rows(data, true))?;
    root.present().map_err(err)
}

/// rate.png: throughput over time by f and outcome, with the same shading and lines.
pub(crate) fn draw_rate(path: &Path, data: &PlotData) -> DrawResult {
    ensure_font()?;
    let root = BitMapBackend::new(path, (1280, 440)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (main, side) = split(&root);
    let hi = data
        .rate
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(1.0, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(&main)
        .caption(
            format!(
                "Throughput by function and outcome ({} s buckets, by completion time)",
                data.bucket
            ),
            font(20),
        )
        .margin(12)
        .margin_top(30)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..data.end, 0f64..hi)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("time since start (s)")
        .y_desc("ops/s")
        .label_style(font(13))
        .axis_desc_style(font(14))
        .light_line_style(TRANSPARENT)
        .x_label_formatter(&|v| num(*v))
        .y_label_formatter(&|v| num(*v))
        .draw()
        .map_err(err)?;
    backdrop(&mut chart, data, (0.0, hi))?;
    for s in &data.rate {
        let c = f_color(s.f);
        let pts = s.points.iter().copied();
        match s.class {
            Class::Ok => chart
                .draw_series(LineSeries::new(pts, c.stroke_width(2)))
                .map(|_| ()),
            Class::Fail => chart
                .draw_series(DashedLineSeries::new(pts, 8, 4, c.stroke_width(1)))
                .map(|_| ()),
            Class::Info => chart
                .draw_series(DashedLineSeries::new(pts, 2, 3, c.stroke_width(1)))
                .map(|_| ()),
        }
        .map_err(err)?;
    }
    let top = chart.plotting_area().get_pixel_range().1.start;
    let to_px = |t: f64| chart.backend_coord(&(t, hi)).0;
    leader_labels(&main, to_px, &data.leaders, top)?;
    draw_legend(&side, &legend_rows(data, false))?;
    root.present().map_err(err)
}

/// A palette for telling leader changes apart in the window plot.
fn palette(i: usize) -> RGBColor {
    const P: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(255, 127, 14),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(23, 190, 207),
    ];
    P[i % P.len()]
}

/// leader-changes.png: latency (top) and ok throughput (bottom) in a window around each leader
/// change, all aligned at t = 0, so the unavailability window shows at a glance. With no
/// change, a short note says so (the file always exists, so links to it never break).
pub(crate) fn draw_leader_changes(path: &Path, data: &PlotData) -> DrawResult {
    ensure_font()?;
    if data.windows.is_empty() {
        let root = BitMapBackend::new(path, (1280, 120)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        root.draw(&Text::new(
            "No leader change was observed in this run: nothing to align.".to_string(),
            (40, 30),
            font(22),
        ))
        .map_err(err)?;
        if let Some(l) = &data.initial_leader {
            root.draw(&Text::new(
                format!("Leader throughout: {} (term {}).", l.node, l.term),
                (40, 70),
                font(18),
            ))
            .map_err(err)?;
        }
        return root.present().map_err(err);
    }
    let root = BitMapBackend::new(path, (1280, 720)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (main, side) = split(&root);
    let (top_area, bottom_area) = main.split_vertically(400);
    let (lo, hi) = WINDOW;
    let all: Vec<LatencyPoint> = data
        .windows
        .iter()
        .flat_map(|w| w.points.iter().cloned())
        .collect();
    let (ylo, yhi) = log_range(&all);
    let mut top = ChartBuilder::on(&top_area)
        .caption(
            format!(
                "Around {} leader change{} (aligned at the change, t = 0)",
                data.windows.len(),
                if data.windows.len() == 1 { "" } else { "s" }
            ),
            font(20),
        )
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(lo..hi, (ylo..yhi).log_scale())
        .map_err(err)?;
    top.configure_mesh()
        .y_desc("latency (ms, log)")
        .label_style(font(13))
        .axis_desc_style(font(14))
        .light_line_style(TRANSPARENT)
        .x_label_formatter(&|v| num(*v))
        .y_label_formatter(&|v| num(*v))
        .draw()
        .map_err(err)?;
    top.draw_series(std::iter::once(PathElement::new(
        vec![(0.0, ylo), (0.0, yhi)],
        LEADER_COLOR.stroke_width(2),
    )))
    .map_err(err)?;
    for class in [Class::Ok, Class::Info, Class::Fail] {
        for f in FUNS {
            top.draw_series(
                all.iter()
                    .filter(|p| p.f == f && p.class == class)
                    .map(|p| EmptyElement::at((p.t, p.ms)) + marker((0, 0), f_color(f), class)),
            )
            .map_err(err)?;
        }
    }
    let rhi = data
        .windows
        .iter()
        .flat_map(|w| w.ok_rate.iter().map(|p| p.1))
        .fold(1.0, f64::max)
        * 1.1;
    let mut bottom = ChartBuilder::on(&bottom_area)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(lo..hi, 0f64..rhi)
        .map_err(err)?;
    bottom
        .configure_mesh()
        .x_desc("seconds from the leader change (when the monitor first saw the new leader)")
        .y_desc("ok ops/s")
        .label_style(font(13))
        .axis_desc_style(font(14))
        .light_line_style(TRANSPARENT)
        .x_label_formatter(&|v| num(*v))
        .y_label_formatter(&|v| num(*v))
        .draw()
        .map_err(err)?;
    bottom
        .draw_series(std::iter::once(PathElement::new(
            vec![(0.0, 0.0), (0.0, rhi)],
            LEADER_COLOR.stroke_width(2),
        )))
        .map_err(err)?;
    for (i, w) in data.windows.iter().enumerate() {
        bottom
            .draw_series(LineSeries::new(
                w.ok_rate.iter().copied(),
                palette(i).stroke_width(2),
            ))
            .map_err(err)?;
    }
    let mut rows: Vec<(String, Swatch)> = Vec::new();
    let seen: std::collections::BTreeSet<(Fun, Class)> =
        all.iter().map(|p| (p.f, p.class)).collect();
    for (f, class) in seen {
        rows.push((
            format!("{} {}", f.name(), class.name()),
            Swatch::Marker(f_color(f), class),
        ));
    }
    rows.push(("ok ops/s around:".into(), Swatch::Heading));
    for (i, w) in data.windows.iter().enumerate().take(20) {
        rows.push((
            format!("{} at {:.1} s", w.change.label, w.change.t),
            Swatch::Line(palette(i), Class::Ok),
        ));
    }
    if data.leaders.len() > data.windows.len() {
        rows.push((
            format!("(first {} of {})", data.windows.len(), data.leaders.len()),
            Swatch::Heading,
        ));
    }
    draw_legend(&side, &rows)?;
    root.present().map_err(err)
}

/// Draw all three plots of a run into `dir`; returns the files written. A file that could not
/// be drawn is an error naming it.
/// Without observed roles, leader-changes.png is not drawn: an empty plot would read as "no
/// leader changes".
pub(crate) fn draw_all(
    dir: &Path,
    data: &PlotData,
    roles_observed: bool,
) -> Result<Vec<std::path::PathBuf>, ReportError> {
    type Draw = fn(&Path, &PlotData) -> DrawResult;
    let plots: [(&str, Draw); 3] = [
        ("latency.png", draw_latency),
        ("rate.png", draw_rate),
        ("leader-changes.png", draw_leader_changes),
    ];
    let mut out = Vec::new();
    let wanted = plots
        .into_iter()
        .filter(|(name, _)| roles_observed || *name != "leader-changes.png");
    for (name, draw) in wanted {
        let path = dir.join(name);
        draw(&path, data).map_err(|msg| ReportError::Plot {
            path: path.clone(),
            msg,
        })?;
        out.push(path);
    }
    Ok(out)
}

/// Draw only latency.png-style plot for a checked history (no faults, no leaders): used by
/// `raftcheck check --out`.
pub(crate) fn draw_latency_only(path: &Path, ops: &[Op]) -> Result<(), ReportError> {
    let data = plot_data(ops, &[], &[]);
    draw_latency(path, &data).map_err(|msg| ReportError::Plot {
        path: path.to_path_buf(),
        msg,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Outcome;
    use crate::history::Value;
    use crate::store::{LeaderChange, NemesisEvent};

    fn op(id: usize, f: Fun, outcome: Outcome, call_ms: u64, ret_ms: Option<u64>) -> Op {
        Op {
            id,
            process: id as u64,
            f,
            key: None,
            value: Value::Null,
            outcome,
            call: id * 2,
            ret: ret_ms.map(|_| id * 2 + 1),
            call_time: call_ms * 1_000_000,
            ret_time: ret_ms.map(|r| r * 1_000_000),
            node: None,
        }
    }

    fn change(ms: u64, node: &str, term: u64) -> LeaderChange {
        LeaderChange {
            time: ms * 1_000_000,
            node: node.into(),
            term,
        }
    }

    fn ev(ms: u64, event: &str, fault: FaultKind, label: &str, outcome: &str) -> NemesisEvent {
        NemesisEvent {
            index: 0,
            time: ms * 1_000_000,
            event: serde_json::from_value(serde_json::json!(event)).expect("a phase"),
            fault,
            label: label.into(),
            nodes: vec!["n1".into()],
            grudge: None,
            outcome: serde_json::from_value(serde_json::json!(outcome)).expect("an outcome"),
            reason: None,
            storage: Vec::new(),
        }
    }

    #[test]
    fn unavailability_spans_last_ack_before_to_first_ack_after() {
        let ops = vec![
            op(0, Fun::Write, Outcome::Ok, 0, Some(100)),
            op(1, Fun::Read, Outcome::Ok, 150, Some(1900)), // reads do not count
            op(2, Fun::Cas, Outcome::Ok, 200, Some(300)),
            op(3, Fun::Write, Outcome::Info, 400, Some(2400)), // unknown does not count
            op(4, Fun::Cas, Outcome::Mismatch, 500, Some(600)), // a mismatch changed nothing
            op(5, Fun::Append, Outcome::Ok, 900, Some(1500)),
            op(6, Fun::Write, Outcome::Ok, 2000, Some(2100)),
        ];
        let changes = vec![
            change(1, "n1", 1),
            change(1000, "n2", 2),
            change(3000, "n3", 3),
        ];
        let u = crate::analysis::unavailability(&ops, &changes);
        assert_eq!(u.windows.len(), 2, "the initial leader is not a change");
        assert_eq!(u.windows[0].last_ok_before, Some(300_000_000));
        assert_eq!(u.windows[0].first_ok_after, Some(1_500_000_000));
        assert_eq!(u.windows[0].ms, Some(1200.0));
        assert_eq!(u.windows[1].last_ok_before, Some(2_100_000_000));
        assert_eq!(
            u.windows[1].first_ok_after, None,
            "no write after the last change"
        );
        assert_eq!(u.windows[1].ms, None);
        assert_eq!(u.median_ms, Some(1200.0));
        assert_eq!(u.max_ms, Some(1200.0));
    }

    #[test]
    fn unavailability_median_of_even_count_is_the_mean_of_the_middle_two() {
        let ops: Vec<Op> = [100, 300, 1300, 2000, 2300, 3500]
            .iter()
            .enumerate()
            .map(|(i, &t)| op(i, Fun::Write, Outcome::Ok, t - 50, Some(t)))
            .collect();
        let changes = vec![
            change(0, "n1", 1),
            change(200, "n2", 2),
            change(2200, "n3", 3),
        ];
        let u = crate::analysis::unavailability(&ops, &changes);
        // 100 -> 300 = 200 ms; 2000 -> 2300 = 300 ms.
        assert_eq!(u.median_ms, Some(250.0));
        assert_eq!(u.max_ms, Some(300.0));
    }

    #[test]
    fn fault_intervals_pair_starts_with_stops_and_leave_unhealed_open() {
        let evs = vec![
            ev(1000, "start", FaultKind::Kill, "kill leader", "installed"),
            ev(2000, "stop", FaultKind::Kill, "kill leader", "healed"),
            ev(
                3000,
                "start",
                FaultKind::Partition,
                "partition bridge",
                "skipped",
            ),
            ev(4000, "start", FaultKind::Pause, "pause random", "installed"),
        ];
        let (iv, skipped) = fault_intervals(&evs, 9.0);
        assert_eq!(iv.len(), 2);
        assert_eq!((iv[0].start, iv[0].end, iv[0].unhealed), (1.0, 2.0, false));
        assert_eq!((iv[1].start, iv[1].end, iv[1].unhealed), (4.0, 9.0, true));
        assert_eq!(skipped.len(), 1);
        assert!(
            skipped[0].contains("partition bridge: skipped"),
            "{skipped:?}"
        );
    }

    #[test]
    fn a_staggered_kill_is_healed_by_its_first_steps_stop() {
        // As nemesis_loop logs it: the second step's start has its own label, and one stop
        // (with every node) heals both.
        let evs = vec![
            ev(
                1500,
                "start",
                FaultKind::Kill,
                "kill staggered",
                "installed",
            ),
            ev(
                2900,
                "start",
                FaultKind::Kill,
                "kill staggered (rest)",
                "installed",
            ),
            ev(4400, "stop", FaultKind::Kill, "kill staggered", "healed"),
            ev(6000, "start", FaultKind::Kill, "kill leader", "installed"),
            ev(
                6500,
                "start",
                FaultKind::Partition,
                "partition halves",
                "installed",
            ),
            ev(
                8000,
                "stop",
                FaultKind::Partition,
                "partition halves",
                "healed",
            ),
            ev(9000, "stop", FaultKind::Kill, "kill leader", "healed"),
        ];
        let (iv, _) = fault_intervals(&evs, 20.0);
        let spans: Vec<(&str, f64, f64)> = iv
            .iter()
            .map(|i| (i.label.as_str(), i.start, i.end))
            .collect();
        assert_eq!(
            spans,
            [
                ("kill staggered", 1.5, 4.4),
                ("kill staggered (rest)", 2.9, 4.4),
                ("kill leader", 6.0, 9.0),
                ("partition halves", 6.5, 8.0),
            ]
        );
        assert!(iv.iter().all(|i| !i.unhealed));
    }

    #[test]
    fn thinning_keeps_every_fail_and_info_op() {
        let mut ops: Vec<Op> = (0..1000)
            .map(|i| op(i, Fun::Read, Outcome::Ok, i as u64, Some(i as u64 + 1)))
            .collect();
        ops.push(op(1000, Fun::Write, Outcome::Info, 5, Some(2005)));
        ops.push(op(1001, Fun::Write, Outcome::Fail, 6, Some(7)));
        let (pts, total) = latency_points(&ops, 100);
        assert_eq!(total, 1002);
        assert!(pts.len() <= 100, "{}", pts.len());
        assert_eq!(pts.iter().filter(|p| p.class != Class::Ok).count(), 2);
    }

    #[test]
    fn rate_buckets_count_by_completion_and_keep_empty_buckets() {
        let ops = vec![
            op(0, Fun::Read, Outcome::Ok, 0, Some(100)),
            op(1, Fun::Read, Outcome::Ok, 0, Some(400)),
            op(2, Fun::Read, Outcome::Ok, 0, Some(1600)),
            op(3, Fun::Read, Outcome::Info, 0, None), // never completed: not counted
        ];
        let s = rate_series(&ops, 2.0, 0.5);
        assert_eq!(s.len(), 1);
        assert_eq!(
            s[0].points,
            vec![(0.25, 4.0), (0.75, 0.0), (1.25, 0.0), (1.75, 2.0)]
        );
    }

    #[test]
    fn bucket_width_is_round() {
        assert_eq!(bucket_width(8.0), 0.2);
        assert_eq!(bucket_width(20.0), 0.5);
        assert_eq!(bucket_width(600.0), 10.0);
    }
}
