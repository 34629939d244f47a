//! The metrics log and the SVG loss plot.

use std::fs;

use train::{loss_svg, plot_loss_svg, read_metrics, MetricsLog, StepMetrics};

fn metrics(step: u64, loss: f64) -> StepMetrics {
    StepMetrics {
        step,
        loss,
        lr: 1e-3,
        grad_norm: 0.5,
        tokens_per_s: 1234.5,
        nan_count: step % 2,
        loss_scale: Some(65536.0),
        elapsed_s: step as f64 * 0.1,
    }
}

#[test]
fn log_writes_one_flushed_json_object_per_step() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("metrics.jsonl");
    let mut log = MetricsLog::create(&path).expect("create");
    log.log(&metrics(0, 5.5)).expect("log");
    // Visible on disk before the log is closed.
    let text = fs::read_to_string(&path).expect("read");
    assert_eq!(text.lines().count(), 1);
    let obj: serde_json::Value = serde_json::from_str(text.trim()).expect("json");
    for key in [
        "step",
        "loss",
        "lr",
        "grad_norm",
        "tokens_per_s",
        "nan_count",
        "loss_scale",
        "elapsed_s",
    ] {
        assert!(obj.get(key).is_some(), "missing {key}: {text}");
    }
    log.log(&metrics(1, 5.0)).expect("log");
    assert_eq!(
        read_metrics(&path).expect("read back"),
        [metrics(0, 5.5), metrics(1, 5.0)]
    );
}

#[test]
fn non_finite_loss_is_logged_as_null_and_read_as_nan() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m.jsonl");
    let mut log = MetricsLog::create(&path).expect("create");
    log.log(&metrics(0, f64::NAN)).expect("log");
    assert!(fs::read_to_string(&path)
        .expect("read")
        .contains("\"loss\":null"));
    assert!(read_metrics(&path).expect("read")[0].loss.is_nan());
}

#[test]
fn resume_drops_entries_from_resumed_step_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m.jsonl");
    let mut log = MetricsLog::create(&path).expect("create");
    for s in 0..10 {
        log.log(&metrics(s, 10.0 - s as f64)).expect("log");
    }
    drop(log);
    let mut log = MetricsLog::resume(&path, 6).expect("resume");
    log.log(&metrics(6, 1.0)).expect("log");
    let steps: Vec<u64> = read_metrics(&path)
        .expect("read")
        .iter()
        .map(|m| m.step)
        .collect();
    assert_eq!(steps, [0, 1, 2, 3, 4, 5, 6]);
    assert_eq!(read_metrics(&path).expect("read")[6].loss, 1.0);
}

#[test]
fn corrupt_log_line_is_reported_with_its_number() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m.jsonl");
    fs::write(&path, "{\"step\":0}\nnot json\n").expect("write");
    let msg = read_metrics(&path).expect_err("bad").to_string();
    assert!(msg.contains("line 1") || msg.contains("line 2"), "{msg}");
}

/// Checks that every `<tag ...>` opened is closed in order (a minimal XML well-formedness test).
fn assert_balanced(svg: &str) {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = svg;
    while let Some(open) = rest.find('<') {
        let close = rest[open..].find('>').expect("unclosed <") + open;
        let tag = &rest[open + 1..close];
        assert!(!tag.contains('<'), "nested < in {tag}");
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(
                stack.pop().as_deref(),
                Some(name.trim()),
                "mismatched </{name}>"
            );
        } else if !tag.ends_with('/') {
            stack.push(tag.split_whitespace().next().expect("name").to_string());
        }
        assert_eq!(
            tag.matches('"').count() % 2,
            0,
            "unbalanced quotes in <{tag}>"
        );
        rest = &rest[close + 1..];
    }
    assert!(stack.is_empty(), "unclosed {stack:?}");
}

/// The points of the chart's polyline.
fn polyline_points(svg: &str) -> Vec<(f64, f64)> {
    let at = svg.find("<polyline").expect("polyline");
    let attr = &svg[at..];
    let start = attr.find("points=\"").expect("points") + 8;
    let end = attr[start..].find('"').expect("end") + start;
    attr[start..end]
        .split_whitespace()
        .map(|p| {
            let (x, y) = p.split_once(',').expect("x,y");
            (x.parse().expect("x"), y.parse().expect("y"))
        })
        .collect()
}

#[test]
fn svg_is_well_formed_with_axes_labels_and_all_points() {
    let points: Vec<(u64, f32)> = (0..50)
        .map(|s| (s * 10, 5.0 / (1.0 + s as f32 * 0.2)))
        .collect();
    let svg = loss_svg(&points);
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_balanced(&svg);
    for text in ["Training loss", ">step<", ">loss<", ">0<", ">5<", ">400<"] {
        assert!(svg.contains(text), "missing {text}");
    }
    let pts = polyline_points(&svg);
    assert_eq!(pts.len(), points.len());
    // Steps increase left to right; falling loss rises in SVG y (down is larger).
    assert!(
        pts.windows(2).all(|w| w[1].0 > w[0].0 && w[1].1 > w[0].1),
        "{pts:?}"
    );
    assert!(pts
        .iter()
        .all(|&(x, y)| (0.0..=720.0).contains(&x) && (0.0..=420.0).contains(&y)));
}

#[test]
fn svg_skips_non_finite_losses_and_handles_degenerate_input() {
    let svg = loss_svg(&[(0, 3.0), (1, f32::NAN), (2, f32::INFINITY), (3, 2.0)]);
    assert_balanced(&svg);
    assert_eq!(polyline_points(&svg).len(), 2);
    let single = loss_svg(&[(5, 1.5)]);
    assert_balanced(&single);
    assert_eq!(polyline_points(&single).len(), 1);
    let empty = loss_svg(&[]);
    assert_balanced(&empty);
    assert!(empty.contains("no data"));
}

#[test]
fn plot_writes_svg_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("loss.svg");
    plot_loss_svg(&path, &[(0, 4.0), (1, 3.0)]).expect("plot");
    let svg = fs::read_to_string(&path).expect("read");
    assert_eq!(svg, loss_svg(&[(0, 4.0), (1, 3.0)]));
}
