//! Draws `benches/benchmarks.png` (the plot in `BENCHMARKS.md`) from the CSV files the
//! benchmarks leave in `$CARGO_TARGET_DIR/smobject-bench/`: every figure with a goal, and
//! every ping-pong median, as its ratio to the baseline of the same run (log scale), with the
//! goal marked.
//!
//! `cargo run -p smobject-benches --features plot --bin smobject-bench-plot -- [OUT.png]`

use plotters::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "benches/benchmarks.png".into());
    let font = std::fs::read("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
        .map_err(|e| format!("DejaVuSans.ttf (apt-get install fonts-dejavu-core): {e}"))?;
    plotters::style::register_font("sans-serif", FontStyle::Normal, Box::leak(font.into()))
        .map_err(|_| "invalid font file")?;
    let bars = load();
    if bars.is_empty() {
        return Err("no results to plot".into());
    }
    draw(&bars, &out)?;
    println!("wrote {out}");
    Ok(())
}

/// (label, ratio, goal as a ratio, met).
type Bar = (String, f64, Option<f64>, Option<bool>);

fn load() -> Vec<Bar> {
    let dir = smobject_benches::report::results_dir();
    let mut bars: Vec<Bar> = Vec::new();
    for name in ["inproc", "xproc"] {
        let Ok(text) = std::fs::read_to_string(dir.join(format!("{name}.csv"))) else {
            eprintln!(
                "no {name}.csv in {}: run that benchmark first",
                dir.display()
            );
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            if f.len() < 9 {
                continue;
            }
            let (figure, value, base, ratio, goal, met) = (f[1], f[2], f[4], f[5], f[6], f[7]);
            let (Ok(value), Ok(base), Ok(ratio)) = (
                value.parse::<f64>(),
                base.parse::<f64>(),
                ratio.parse::<f64>(),
            ) else {
                continue;
            };
            let goal_ratio = if let Some(r) = goal.strip_prefix("ratio<=") {
                r.parse().ok()
            } else if let Some(ns) = goal.strip_prefix("extra<=") {
                ns.parse::<f64>().ok().map(|ns| (base + ns) / base)
            } else {
                None
            };
            let pingpong_p50 = f[0] == "ping-pong" && figure.contains("RT p50");
            if (goal_ratio.is_none() && !pingpong_p50) || !ratio.is_finite() || value <= 0.0 {
                continue;
            }
            let met = match met {
                "met" => Some(true),
                "missed" => Some(false),
                _ => None,
            };
            let label = if f[0] == "ping-pong" {
                format!("{figure} vs {}", f[3])
            } else {
                format!("{}: {figure}", f[0])
            };
            bars.push((
                label.replace('`', "").replace(';', ","),
                ratio,
                goal_ratio,
                met,
            ));
        }
    }
    bars
}

#[allow(clippy::cast_precision_loss)] // row counts
fn draw(bars: &[Bar], out: &str) -> Result<(), Box<dyn std::error::Error>> {
    let n = bars.len();
    let height = 60 + 22 * n as u32;
    let root = BitMapBackend::new(out, (1000, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let (x_min, x_max) = (0.5f64, 5000f64);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "smobject / baseline of the same run (log scale; black tick = goal; green met, red missed, grey no goal)",
            ("sans-serif", 15),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(10)
        .build_cartesian_2d((x_min..x_max).log_scale(), 0f64..n as f64)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .x_label_style(("sans-serif", 12))
        .x_desc("ratio to the baseline (1 = as fast as the baseline)")
        .draw()?;
    for (i, (label, ratio, goal, met)) in bars.iter().enumerate() {
        let y = (n - 1 - i) as f64;
        let color = match met {
            Some(true) => RGBColor(60, 160, 80),
            Some(false) => RGBColor(210, 60, 50),
            None => RGBColor(150, 150, 170),
        };
        let r = ratio.clamp(x_min, x_max);
        chart.draw_series(std::iter::once(Rectangle::new(
            [(x_min, y + 0.15), (r, y + 0.85)],
            color.filled(),
        )))?;
        if let Some(g) = goal {
            chart.draw_series(std::iter::once(Rectangle::new(
                [(*g, y), (*g * 1.03, y + 1.0)],
                BLACK.filled(),
            )))?;
        }
        let end = r.max(goal.unwrap_or(0.0)) * 1.08;
        chart.draw_series(std::iter::once(Text::new(
            format!("{ratio:.2}x  {label}"),
            (end, y + 0.75),
            ("sans-serif", 12).into_font(),
        )))?;
    }
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(1.0, 0.0), (1.0, n as f64)],
        BLACK.stroke_width(1),
    )))?;
    root.present()?;
    Ok(())
}
