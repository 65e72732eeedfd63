//! Plots of a run, with fault windows shaded: the fraction of peers holding the full
//! topology over time, the broadcast latency distribution, and bytes per second.
//! SVG always; PNG when asked. The font is bundled (DejaVu Sans Mono), so plotting needs
//! no system font library.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::runner::Report;

static FONT: Once = Once::new();

pub(crate) fn register_font() {
    FONT.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../assets/DejaVuSansMono.ttf");
        // The bundled font is valid; should it not be, text is simply missing.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, bytes);
    });
}

pub(crate) type PlotResult<T> = Result<T, Box<dyn std::error::Error>>;

#[derive(Clone, Copy)]
enum Plot {
    Topology,
    Latency,
    Bytes,
}

fn render<DB: DrawingBackend>(report: &Report, root: &DrawingArea<DB, Shift>, which: Plot) -> PlotResult<()>
where
    DB::ErrorType: 'static,
{
    match which {
        Plot::Topology => topology(report, root),
        Plot::Latency => latency(report, root),
        Plot::Bytes => bytes(report, root),
    }
}

/// Writes every plot of `report` into `dir` (created if missing); returns the files.
pub fn write_all(report: &Report, dir: &Path, png: bool) -> PlotResult<Vec<PathBuf>> {
    register_font();
    std::fs::create_dir_all(dir)?;
    let mut files = Vec::new();
    for (stem, which) in [
        ("full_topology", Plot::Topology),
        ("broadcast_latency", Plot::Latency),
        ("bytes_per_second", Plot::Bytes),
    ] {
        let svg = dir.join(format!("{stem}.svg"));
        {
            let root = SVGBackend::new(&svg, (900, 500)).into_drawing_area();
            render(report, &root, which)?;
            root.present()?;
        }
        files.push(svg);
        if png {
            let path = dir.join(format!("{stem}.png"));
            {
                let root = BitMapBackend::new(&path, (900, 500)).into_drawing_area();
                render(report, &root, which)?;
                root.present()?;
            }
            files.push(path);
        }
    }
    Ok(files)
}

fn end_s(r: &Report) -> f64 {
    (r.virtual_ms as f64 / 1000.0).max(1.0)
}

/// Shades fault windows on a time chart.
fn shade<DB: DrawingBackend>(
    chart: &mut ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    r: &Report,
    top: f64,
) -> PlotResult<()>
where
    DB::ErrorType: 'static,
{
    let fill = RGBColor(230, 120, 60).mix(0.15).filled();
    for (start, end, _) in &r.series.fault_windows {
        let (a, b) = (start / 1000.0, (end / 1000.0).max(start / 1000.0 + 0.05));
        chart.draw_series(std::iter::once(Rectangle::new([(a, 0.0), (b, top)], fill)))?;
    }
    Ok(())
}

fn topology<DB: DrawingBackend>(r: &Report, root: &DrawingArea<DB, Shift>) -> PlotResult<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!("{} (seed {}): peers with the full topology", r.scenario, r.seed),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..end_s(r), 0.0..1.05)?;
    chart
        .configure_mesh()
        .x_desc("virtual time (s); shaded: faults")
        .y_desc("fraction of live peers")
        .draw()?;
    shade(&mut chart, r, 1.05)?;
    chart.draw_series(LineSeries::new(
        r.series.full_topology.iter().map(|(t, f)| (t / 1000.0, *f)),
        BLUE.stroke_width(2),
    ))?;
    Ok(())
}

fn latency<DB: DrawingBackend>(r: &Report, root: &DrawingArea<DB, Shift>) -> PlotResult<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let lat = &r.series.broadcast_latency_ms;
    let max = lat.iter().copied().fold(1.0f64, f64::max);
    let buckets = 40usize;
    let width = max / buckets as f64;
    let mut counts = vec![0u64; buckets + 1];
    for l in lat {
        counts[((l / width) as usize).min(buckets)] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(1).max(1) as f64 * 1.1;
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!("{} (seed {}): broadcast latency, {} deliveries", r.scenario, r.seed, lat.len()),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max * 1.05, 0.0..top)?;
    chart.configure_mesh().x_desc("latency (ms)").y_desc("deliveries").draw()?;
    chart.draw_series(counts.iter().enumerate().map(|(i, c)| {
        let x = i as f64 * width;
        Rectangle::new([(x, 0.0), (x + width * 0.9, *c as f64)], BLUE.mix(0.6).filled())
    }))?;
    Ok(())
}

fn bytes<DB: DrawingBackend>(r: &Report, root: &DrawingArea<DB, Shift>) -> PlotResult<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let kib: Vec<(f64, f64)> = r.series.bytes_per_sec.iter().map(|(t, b)| (t / 1000.0, b / 1024.0)).collect();
    let top = kib.iter().map(|p| p.1).fold(1.0f64, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!("{} (seed {}): bytes sent per second, all peers", r.scenario, r.seed),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..end_s(r), 0.0..top)?;
    chart.configure_mesh().x_desc("virtual time (s); shaded: faults").y_desc("KiB/s").draw()?;
    shade(&mut chart, r, top)?;
    // A filled area, not a wide line: plotters joins wide lines with unbounded miters,
    // which drew every narrow spike on through the time axis.
    chart.draw_series(AreaSeries::new(kib, 0.0, RED.mix(0.35)).border_style(RED))?;
    Ok(())
}
