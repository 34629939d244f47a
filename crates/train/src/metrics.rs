//! The metrics log (JSONL, one object per optimizer step, flushed as written) and the loss
//! curve plot (a self-contained SVG line chart).

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::atomic::write_atomic;
use crate::error::{Error, Result};

/// What one optimizer step reports. Non-finite floats are written as `null` and read back
/// as NaN.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// The 0-based optimizer step.
    pub step: u64,
    /// Mean training loss over the step's micro-batches.
    #[serde(serialize_with = "finite_or_null", deserialize_with = "null_as_nan")]
    pub loss: f64,
    /// The learning rate used.
    pub lr: f64,
    /// The global gradient norm before clipping.
    #[serde(serialize_with = "finite_or_null", deserialize_with = "null_as_nan")]
    pub grad_norm: f64,
    /// Training throughput.
    pub tokens_per_s: f64,
    /// Gradient values that were NaN or ±Inf and were zeroed.
    pub nan_count: u64,
    /// The loss scale, when loss scaling is on.
    pub loss_scale: Option<f64>,
    /// Seconds since the run started.
    pub elapsed_s: f64,
}

/// Writes a finite float as a number and anything else as `null`.
fn finite_or_null<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
    if x.is_finite() {
        s.serialize_f64(*x)
    } else {
        s.serialize_none()
    }
}

/// Reads a number, or `null` as NaN.
fn null_as_nan<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// An open metrics log that appends one JSON line per step.
#[derive(Debug)]
pub struct MetricsLog {
    file: File,
    path: PathBuf,
}

impl MetricsLog {
    /// Starts a new, empty log at `path` (replacing an old one atomically).
    pub fn create(path: &Path) -> Result<Self> {
        write_atomic(path, |_| Ok(()))?;
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(MetricsLog {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Reopens the log of a run resumed at `step`: entries for `step` and later (written after
    /// the checkpoint) are dropped, then new entries append.
    pub fn resume(path: &Path, step: u64) -> Result<Self> {
        let kept: Vec<StepMetrics> = if path.exists() {
            read_metrics(path)?
                .into_iter()
                .filter(|m| m.step < step)
                .collect()
        } else {
            Vec::new()
        };
        write_atomic(path, |out| {
            for m in &kept {
                serde_json::to_writer(&mut *out, m)?;
                out.write_all(b"\n")?;
            }
            Ok(())
        })?;
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(MetricsLog {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Appends one step and flushes it.
    pub fn log(&mut self, metrics: &StepMetrics) -> Result<()> {
        let mut line = serde_json::to_vec(metrics).map_err(|e| Error::Metrics {
            path: self.path.display().to_string(),
            message: e.to_string(),
        })?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| self.file.flush())
            .map_err(|e| Error::io(&self.path, e))
    }
}

/// Every step recorded in the log at `path`.
pub fn read_metrics(path: &Path) -> Result<Vec<StepMetrics>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| Error::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let m = serde_json::from_str(&line).map_err(|e| Error::Metrics {
            path: path.display().to_string(),
            message: format!("line {}: {e}", i + 1),
        })?;
        out.push(m);
    }
    Ok(out)
}

/// Chart geometry, in SVG user units.
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 55.0;

/// Writes the loss curve `(step, loss)` to `path` as an SVG line chart, atomically.
pub fn plot_loss_svg(path: &Path, points: &[(u64, f32)]) -> Result<()> {
    let svg = loss_svg(points);
    write_atomic(path, |out| out.write_all(svg.as_bytes()))
}

/// Ticks at 1, 2 or 5 × 10ᵏ spacing covering `[lo, hi]`: `(first, spacing, count)`.
fn ticks(lo: f64, hi: f64) -> (f64, f64, usize) {
    let raw = (hi - lo) / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let spacing = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|k| k * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / spacing).ceil() * spacing;
    let count = ((hi - first) / spacing + 1e-9).floor() as usize + 1;
    (first, spacing, count)
}

/// A tick label with as many decimals as the spacing needs.
fn label(value: f64, spacing: f64) -> String {
    let decimals = (-spacing.log10().floor()).max(0.0) as usize;
    format!("{value:.decimals$}")
}

/// The smallest and largest of `values`, widened when they are (nearly) equal.
fn span(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    if hi - lo < 1e-9 {
        (lo - 1.0, hi + 1.0)
    } else {
        (lo, hi)
    }
}

/// The data ranges shown and their mapping into the plot area.
struct Frame {
    /// Step range on the x axis.
    steps: (f64, f64),
    /// Loss range on the y axis.
    losses: (f64, f64),
}

impl Frame {
    /// The SVG x of `step`.
    fn x(&self, step: f64) -> f64 {
        let (lo, hi) = self.steps;
        LEFT + (step - lo) / (hi - lo) * (WIDTH - RIGHT - LEFT)
    }

    /// The SVG y of `loss` (larger losses higher up).
    fn y(&self, loss: f64) -> f64 {
        let (lo, hi) = self.losses;
        HEIGHT - BOTTOM - (loss - lo) / (hi - lo) * (HEIGHT - BOTTOM - TOP)
    }
}

/// Appends the grid, the axes, their tick labels and the axis titles.
fn axes(svg: &mut String, frame: &Frame) {
    let (x0, x1, y0, y1) = (LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM, TOP);
    let tick_values = |(lo, hi)| {
        let (first, spacing, count) = ticks(lo, hi);
        let values: Vec<f64> = (0..count).map(|i| first + i as f64 * spacing).collect();
        (values, spacing)
    };
    let (xticks, xspacing) = tick_values(frame.steps);
    let (yticks, yspacing) = tick_values(frame.losses);
    let _ = writeln!(svg, "<g stroke=\"#e5e5e5\" stroke-width=\"1\">");
    for &t in &xticks {
        let x = frame.x(t);
        let _ = writeln!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{y1}\" x2=\"{x:.1}\" y2=\"{y0}\"/>"
        );
    }
    for &t in &yticks {
        let y = frame.y(t);
        let _ = writeln!(
            svg,
            "<line x1=\"{x0}\" y1=\"{y:.1}\" x2=\"{x1}\" y2=\"{y:.1}\"/>"
        );
    }
    let _ = write!(
        svg,
        "</g>\n<g stroke=\"black\" stroke-width=\"1\">\n\
         <line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x1}\" y2=\"{y0}\"/>\n\
         <line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x0}\" y2=\"{y1}\"/>\n</g>\n"
    );
    for &t in &xticks {
        let (x, y) = (frame.x(t), y0 + 18.0);
        let text = label(t, xspacing);
        let _ = writeln!(
            svg,
            "<text x=\"{x:.1}\" y=\"{y}\" text-anchor=\"middle\">{text}</text>"
        );
    }
    for &t in &yticks {
        let (x, y) = (x0 - 6.0, frame.y(t) + 4.0);
        let text = label(t, yspacing);
        let _ = writeln!(
            svg,
            "<text x=\"{x}\" y=\"{y:.1}\" text-anchor=\"end\">{text}</text>"
        );
    }
    let (mx, my) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
    let _ = write!(
        svg,
        "<text x=\"{mx}\" y=\"{}\" text-anchor=\"middle\">step</text>\n\
         <text x=\"18\" y=\"{my}\" text-anchor=\"middle\" transform=\"rotate(-90 18 {my})\">loss</text>\n",
        HEIGHT - 12.0
    );
}

/// The loss curve `(step, loss)` as an SVG document; non-finite losses are left out.
pub fn loss_svg(points: &[(u64, f32)]) -> String {
    let pts: Vec<(f64, f64)> = points
        .iter()
        .filter(|(_, l)| l.is_finite())
        .map(|&(s, l)| (s as f64, l as f64))
        .collect();
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"24\" text-anchor=\"middle\" font-size=\"16\">Training loss</text>\n",
        WIDTH / 2.0
    );
    if pts.is_empty() {
        let (x, y) = (WIDTH / 2.0, HEIGHT / 2.0);
        let _ = writeln!(
            svg,
            "<text x=\"{x}\" y=\"{y}\" text-anchor=\"middle\">no data</text>\n</svg>"
        );
        return svg;
    }
    let (lo, hi) = span(pts.iter().map(|p| p.1));
    let pad = 0.05 * (hi - lo);
    let frame = Frame {
        steps: span(pts.iter().map(|p| p.0)),
        losses: (lo - pad, hi + pad),
    };
    axes(&mut svg, &frame);
    let coords: Vec<String> = pts
        .iter()
        .map(|&(s, l)| format!("{:.2},{:.2}", frame.x(s), frame.y(l)))
        .collect();
    let _ = writeln!(
        svg,
        "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"{}\"/>\n</svg>",
        coords.join(" ")
    );
    svg
}
