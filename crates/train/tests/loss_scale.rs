//! Dynamic loss scaling: growth after clean steps, backoff and skip on overflow, bounds, state.

use train::{LossScaleConfig, LossScaler, StepDecision};

fn config(growth_interval: u32) -> LossScaleConfig {
    LossScaleConfig {
        growth_interval,
        ..LossScaleConfig::default()
    }
}

#[test]
fn default_starts_at_two_to_the_sixteen() {
    assert_eq!(LossScaler::new(LossScaleConfig::default()).scale(), 65536.0);
}

#[test]
fn scale_doubles_after_interval_of_clean_steps() {
    let mut s = LossScaler::new(config(3));
    for _ in 0..2 {
        assert_eq!(s.update(false), StepDecision::Apply);
        assert_eq!(s.scale(), 65536.0);
    }
    assert_eq!(s.update(false), StepDecision::Apply);
    assert_eq!(s.scale(), 131072.0);
    assert_eq!(s.state().clean_steps, 0);
}

#[test]
fn overflow_halves_scale_skips_step_and_resets_count() {
    let mut s = LossScaler::new(config(3));
    s.update(false);
    s.update(false);
    assert_eq!(s.update(true), StepDecision::Skip);
    assert_eq!(s.scale(), 32768.0);
    assert_eq!(s.state().skipped_steps, 1);
    s.update(false);
    s.update(false);
    assert_eq!(
        s.scale(),
        32768.0,
        "the clean count restarted after the overflow"
    );
    s.update(false);
    assert_eq!(s.scale(), 65536.0);
}

#[test]
fn scale_stays_within_bounds() {
    let mut s = LossScaler::new(LossScaleConfig {
        init_scale: 4.0,
        min_scale: 1.0,
        max_scale: 8.0,
        ..config(1)
    });
    for _ in 0..5 {
        s.update(true);
    }
    assert_eq!(s.scale(), 1.0);
    for _ in 0..10 {
        s.update(false);
    }
    assert_eq!(s.scale(), 8.0);
}

#[test]
fn unscale_divides_and_counts_overflow() {
    let s = LossScaler::new(LossScaleConfig {
        init_scale: 1024.0,
        ..config(10)
    });
    let mut grads = vec![vec![2048.0f32, -512.0], vec![f32::INFINITY]];
    assert_eq!(s.unscale(&mut grads), 1);
    assert_eq!(grads[0], [2.0, -0.5]);
    let mut clean = vec![vec![1024.0f32]];
    assert_eq!(s.unscale(&mut clean), 0);
}

#[test]
fn restored_state_continues_identically() {
    let mut a = LossScaler::new(config(4));
    for i in 0..7 {
        a.update(i == 2);
    }
    let json = serde_json::to_string(&a.state()).expect("ser");
    let mut b = LossScaler::from_state(serde_json::from_str(&json).expect("de"));
    for i in 0..12 {
        assert_eq!(a.update(i % 5 == 0), b.update(i % 5 == 0));
        assert_eq!(a.state(), b.state());
    }
}
