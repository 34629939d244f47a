//! The learning-rate schedule against values from tests/fixtures/make_schedule.py.

use serde_json::Value;
use train::LrSchedule;

#[test]
fn schedule_matches_python_formula_at_key_steps() {
    let fixture: Value =
        serde_json::from_str(include_str!("fixtures/schedule.json")).expect("fixture");
    let mut checked = 0;
    for case in fixture.as_array().expect("cases") {
        let sched = LrSchedule {
            max_lr: case["max_lr"].as_f64().expect("max_lr"),
            min_lr: case["min_lr"].as_f64().expect("min_lr"),
            warmup_steps: case["warmup_steps"].as_u64().expect("warmup"),
            total_steps: case["total_steps"].as_u64().expect("total"),
        };
        for point in case["points"].as_array().expect("points") {
            let step = point[0].as_u64().expect("step");
            let want = point[1].as_f64().expect("lr");
            let got = sched.lr(step);
            assert!(
                (got - want).abs() <= 1e-12 * sched.max_lr,
                "{sched:?} step {step}: got {got}, want {want}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 25, "only {checked} points checked");
}

#[test]
fn schedule_peaks_after_warmup_and_decreases_monotonically() {
    let s = LrSchedule {
        max_lr: 1.0,
        min_lr: 0.1,
        warmup_steps: 5,
        total_steps: 20,
    };
    assert_eq!(s.lr(4), 1.0);
    assert_eq!(s.lr(5), 1.0);
    for step in 5..25 {
        assert!(s.lr(step + 1) <= s.lr(step), "rises at {step}");
    }
    assert_eq!(s.lr(20), 0.1);
    assert_eq!(s.lr(1000), 0.1);
}
