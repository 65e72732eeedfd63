//! How a mesh's cost grows with its size: points read from `mesh-sim run --json`
//! reports (one run per size and protocol mix, each run on its own, since the large
//! ones take minutes), grouped into series, printed as a table and plotted against the
//! number of peers: bytes sent per peer, and convergence time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde_json::Value;

use crate::plot::{PlotResult, register_font};

/// One run's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// Peers in the mesh.
    pub nodes: usize,
    /// Each peer's connection limit.
    pub connection_limit: usize,
    /// Peers that offered only version 2.
    pub v2_only_peers: usize,
    /// Bytes sent per peer over the whole run.
    pub bytes_per_peer: f64,
    /// Convergence after the final heal, seconds; `None` if the run never converged.
    pub convergence_s: Option<f64>,
    /// Wall time, seconds, when the report carries it (`--timing`).
    pub wall_s: Option<f64>,
    /// Whether every invariant held.
    pub passed: bool,
}

/// Why a report could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a `mesh-sim run --json` report.
    #[error("{path} is not a mesh-sim run --json report: {why}")]
    NotAReport {
        /// The file.
        path: PathBuf,
        /// What is missing or malformed.
        why: String,
    },
}

impl Point {
    /// Reads the point of one `mesh-sim run --json` report.
    pub fn read(path: &Path) -> Result<Point, ReadError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ReadError::Io { path: path.to_owned(), source })?;
        Point::parse(&text).map_err(|why| ReadError::NotAReport { path: path.to_owned(), why })
    }

    /// The point of a report's JSON text.
    pub fn parse(text: &str) -> Result<Point, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let uint = |k: &str| v[k].as_u64().map(|n| n as usize).ok_or_else(|| format!("no {k}"));
        let bytes_per_peer = v["bytes_per_peer"].as_f64().ok_or("no bytes_per_peer")?;
        let violations = v["violations"].as_array().ok_or("no violations")?;
        Ok(Point {
            nodes: uint("nodes")?,
            connection_limit: uint("connection_limit")?,
            v2_only_peers: uint("v2_only_peers")?,
            bytes_per_peer,
            convergence_s: v["convergence_ms"].as_f64().map(|ms| ms / 1000.0),
            wall_s: v["wall"]["wall_ms"].as_f64().map(|ms| ms / 1000.0),
            passed: violations.is_empty(),
        })
    }

    /// The series the point belongs to: protocol mix and connection limit.
    pub fn series(&self) -> String {
        let mix = match self.v2_only_peers {
            0 => "version 3".to_owned(),
            n if n == self.nodes => "version 2".to_owned(),
            n => format!("{}% version 2", (n * 100 + self.nodes / 2) / self.nodes),
        };
        format!("{mix}, limit {}", self.connection_limit)
    }
}

/// Points grouped by series, each in order of size.
pub fn group(points: &[Point]) -> BTreeMap<String, Vec<Point>> {
    let mut series: BTreeMap<String, Vec<Point>> = BTreeMap::new();
    for p in points {
        series.entry(p.series()).or_default().push(p.clone());
    }
    for s in series.values_mut() {
        s.sort_by_key(|p| p.nodes);
    }
    series
}

/// The points as a table, one row per run.
pub fn table(points: &[Point]) -> String {
    let mut out = format!(
        "{:<28} {:>6} {:>16} {:>14} {:>10} {:>9}\n",
        "series", "peers", "bytes per peer", "convergence s", "wall s", "verdict"
    );
    for (name, s) in group(points) {
        for p in s {
            let conv = p.convergence_s.map_or("never".to_owned(), |c| format!("{c:.1}"));
            let wall = p.wall_s.map_or("-".to_owned(), |w| format!("{w:.0}"));
            let verdict = if p.passed { "held" } else { "VIOLATED" };
            out.push_str(&format!(
                "{name:<28} {:>6} {:>16.0} {conv:>14} {wall:>10} {verdict:>9}\n",
                p.nodes, p.bytes_per_peer
            ));
        }
    }
    out
}

const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
];

#[derive(Clone, Copy)]
enum Measure {
    Bytes,
    Convergence,
}

impl Measure {
    fn value(self, p: &Point) -> Option<f64> {
        match self {
            Measure::Bytes => Some(p.bytes_per_peer / 1e6),
            Measure::Convergence => p.convergence_s,
        }
    }
}

fn render<DB: DrawingBackend>(
    points: &[Point],
    root: &DrawingArea<DB, plotters::coord::Shift>,
    m: Measure,
) -> PlotResult<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let series = group(points);
    let values = || points.iter().filter_map(|p| m.value(p)).filter(|v| *v > 0.0);
    let (lo, hi) = (values().fold(f64::MAX, f64::min).min(1.0), values().fold(0.0f64, f64::max).max(1.0));
    let max_n = points.iter().map(|p| p.nodes).max().unwrap_or(100).max(100) as f64;
    let min_n = points.iter().map(|p| p.nodes).min().unwrap_or(10).clamp(1, 100) as f64;
    let (caption, y_desc) = match m {
        Measure::Bytes => ("bytes sent per peer against mesh size", "MB per peer (log)"),
        Measure::Convergence => ("convergence time against mesh size", "seconds to converge (log)"),
    };
    let mut chart = ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((min_n * 0.8..max_n * 1.25).log_scale(), (lo * 0.5..hi * 2.0).log_scale())?;
    // Label only the round sizes: a log axis puts a key point at every hundred, and
    // near a thousand their labels run into each other.
    let round = |x: &f64| {
        let n = x.round() as u64;
        let lead = n / 10u64.pow(n.max(1).ilog10());
        let exact = n == lead * 10u64.pow(n.max(1).ilog10());
        if exact && matches!(lead, 1 | 2 | 5) { n.to_string() } else { String::new() }
    };
    chart.configure_mesh().x_desc("peers (log)").y_desc(y_desc).x_label_formatter(&round).draw()?;
    for (i, (name, s)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let line: Vec<(f64, f64)> =
            s.iter().filter_map(|p| m.value(p).filter(|v| *v > 0.0).map(|v| (p.nodes as f64, v))).collect();
        chart
            .draw_series(LineSeries::new(line.clone(), colour.stroke_width(2)))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
        chart.draw_series(line.into_iter().map(|p| Circle::new(p, 4, colour.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// Writes `scaling_bytes_per_peer` and `scaling_convergence` (SVG, and PNG if asked)
/// into `dir`; returns the files.
pub fn write_plots(points: &[Point], dir: &Path, png: bool) -> PlotResult<Vec<PathBuf>> {
    register_font();
    std::fs::create_dir_all(dir)?;
    let mut files = Vec::new();
    for (stem, m) in
        [("scaling_bytes_per_peer", Measure::Bytes), ("scaling_convergence", Measure::Convergence)]
    {
        let svg = dir.join(format!("{stem}.svg"));
        {
            let root = SVGBackend::new(&svg, (900, 560)).into_drawing_area();
            render(points, &root, m)?;
            root.present()?;
        }
        files.push(svg);
        if png {
            let path = dir.join(format!("{stem}.png"));
            {
                let root = BitMapBackend::new(&path, (900, 560)).into_drawing_area();
                render(points, &root, m)?;
                root.present()?;
            }
            files.push(path);
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(nodes: usize, v2: usize, bytes: f64, conv: Option<u64>) -> String {
        serde_json::json!({
            "nodes": nodes, "connection_limit": 64, "v2_only_peers": v2,
            "bytes_per_peer": bytes, "convergence_ms": conv, "violations": [],
        })
        .to_string()
    }

    #[test]
    fn reports_become_series_in_size_order() {
        let points: Vec<Point> = [
            report(200, 200, 6.5e7, Some(9000)),
            report(100, 0, 1.0e6, Some(4000)),
            report(100, 100, 2.0e7, Some(5000)),
            report(1000, 100, 3.0e7, None),
        ]
        .iter()
        .map(|t| Point::parse(t).unwrap())
        .collect();
        let g = group(&points);
        assert_eq!(
            g.keys().collect::<Vec<_>>(),
            ["10% version 2, limit 64", "version 2, limit 64", "version 3, limit 64"]
        );
        assert_eq!(g["version 2, limit 64"].iter().map(|p| p.nodes).collect::<Vec<_>>(), [100, 200]);
        assert_eq!(g["10% version 2, limit 64"][0].convergence_s, None);
        let t = table(&points);
        assert!(t.contains("never") && t.contains("65000000"), "{t}");
    }

    #[test]
    fn a_file_that_is_not_a_report_is_refused_with_what_is_missing() {
        assert_eq!(
            Point::parse("{\"nodes\": 3, \"bytes_per_peer\": 1.0, \"violations\": []}").unwrap_err(),
            "no connection_limit"
        );
        assert!(Point::parse("not json").is_err());
    }

    #[test]
    fn plots_are_written() {
        let dir = std::env::temp_dir().join(format!("mesh-sim-scaling-{}", std::process::id()));
        let points: Vec<Point> = [report(100, 0, 1.0e6, Some(4000)), report(500, 0, 9.0e6, Some(28000))]
            .iter()
            .map(|t| Point::parse(t).unwrap())
            .collect();
        let files = write_plots(&points, &dir, false).unwrap();
        assert_eq!(files.len(), 2);
        for f in &files {
            let svg = std::fs::read_to_string(f).unwrap();
            assert!(svg.contains("version 3, limit 64"), "legend missing in {}", f.display());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
