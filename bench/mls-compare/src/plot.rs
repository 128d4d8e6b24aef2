//! The SVG plot: one panel per operation, CPU time against group size, both
//! axes logarithmic.

use plotters::prelude::*;

use crate::{IMPLS, OPS, Row};

const COLORS: [RGBColor; 3] = [
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
];

/// Draws `rows` to `path`.
pub fn draw(path: &str, rows: &[Row], sizes: &[usize]) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (1000, 760)).into_drawing_area();
    root.fill(&WHITE)?;
    let (title, body) = root.split_vertically(40);
    title.draw(&Text::new(
        "CPU time per operation (ms, median, one thread) against group size",
        (20, 12),
        ("sans-serif", 20),
    ))?;
    let panels = body.split_evenly((2, 2));
    let x_min = sizes.iter().copied().min().unwrap_or(1) as f64;
    let x_max = sizes.iter().copied().max().unwrap_or(2) as f64;
    let (x_lo, x_hi) = (x_min / 1.3, x_max * 1.3);
    for (panel, op) in panels.iter().zip(OPS) {
        let points: Vec<(usize, Vec<(f64, f64)>)> = IMPLS
            .iter()
            .enumerate()
            .map(|(k, imp)| {
                let mut pts: Vec<(f64, f64)> = rows
                    .iter()
                    .filter(|r| r.op == op && r.imp == *imp)
                    .map(|r| (r.n as f64, r.median_cpu().as_secs_f64() * 1e3))
                    .collect();
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                (k, pts)
            })
            .collect();
        let ys = points.iter().flat_map(|(_, p)| p.iter().map(|q| q.1));
        let (y_min, y_max) = ys.fold((f64::MAX, f64::MIN), |(a, b), y| (a.min(y), b.max(y)));
        if y_min > y_max {
            continue;
        }
        let mut chart = ChartBuilder::on(panel)
            .caption(op, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(
                (x_lo..x_hi)
                    .log_scale()
                    .with_key_points(sizes.iter().map(|&n| n as f64).collect()),
                (y_min / 2.0..y_max * 2.0)
                    .log_scale()
                    .with_key_points(ticks(y_min / 2.0, y_max * 2.0)),
            )?;
        chart
            .configure_mesh()
            .max_light_lines(0)
            .x_desc("members n")
            .y_desc("ms")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| {
                if *y >= 1.0 {
                    format!("{y:.0}")
                } else {
                    format!("{y:.1}")
                }
            })
            .draw()?;
        for (k, pts) in points {
            let color = COLORS[k];
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
                .label(IMPLS[k])
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            chart.draw_series(pts.iter().map(|p| Circle::new(*p, 3, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// 1, 2, 5 times the powers of ten within `lo..hi`.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut decade = 10f64.powi(lo.log10().floor() as i32);
    while decade <= hi {
        for m in [1.0, 2.0, 5.0] {
            let t = decade * m;
            if t >= lo && t <= hi {
                out.push(t);
            }
        }
        decade *= 10.0;
    }
    out
}
