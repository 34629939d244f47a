//! Times the work after backward in a training step (gradient zeroing, unscaling, overflow
//! count, sanitization, global norm, clipping, AdamW) on GPT-2 124M shapes: the separate passes
//! `Run::step` used to make against the fused ones it makes now. First checks, step by step
//! over a mix of settings, that both leave bit-identical parameters and moments and report the
//! same norm, count and skip decision, on 2 threads and on 1; then measures how often the
//! blocked norm differs from the old single serial f64 sum on random gradients.
//!
//! `cargo run -p train --release --example step_bench [reps]` prints one JSON line.

use std::time::Instant;

use models::gpt2;
use models::load::LoadedModel;
use models::rng::Rng;
use rayon::prelude::*;
use train::clip::{clip_coefficient, grad_norm, grad_stats, zero_grads, GradStats};
use train::optim::{AdamW, AdamWConfig, GradPrep, ParamSpec};
use train::params::{named_shapes, tensors};
use train::{LossScaleConfig, LossScaler, StepDecision};

/// The settings of one simulated step.
#[derive(Clone, Copy, Debug)]
struct Setting {
    /// Take the loss scale from the dynamic scaler (else 1, as on the fp32 path).
    scaler: bool,
    sanitize: bool,
    /// Norm limit; 0 disables clipping.
    clip: f32,
    /// Plant NaN and ±Inf values in the gradients.
    poison: bool,
}

/// Micro-batches per step, as `RunConfig::accumulation`.
const ACCUMULATION: usize = 2;

/// What a step reported.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Outcome {
    norm_bits: u32,
    nan_count: usize,
    skipped: bool,
    scale: f32,
}

/// Milliseconds spent in the parts of one step.
#[derive(Clone, Copy, Debug, Default)]
struct Times {
    zero: f64,
    scan: f64,
    update: f64,
}

impl Times {
    fn total(&self) -> f64 {
        self.zero + self.scan + self.update
    }
}

fn ms(clock: Instant) -> f64 {
    clock.elapsed().as_secs_f64() * 1e3
}

/// What a micro-batch's backward would leave: `source` added to the gradients, then the
/// planted non-finite values.
fn backward(grads: &mut [Vec<f32>], source: &[Vec<f32>], poison: bool) {
    grads.par_iter_mut().zip(source).for_each(|(g, s)| {
        g.par_chunks_mut(1 << 15)
            .zip(s.par_chunks(1 << 15))
            .for_each(|(g, s)| g.iter_mut().zip(s).for_each(|(g, s)| *g += s));
    });
    if poison {
        let n = grads.len();
        grads[0][7] = f32::NAN;
        grads[n / 2][100] = f32::INFINITY;
        grads[n - 3][1] = f32::NEG_INFINITY;
    }
}

/// The loss-scale factor of a step.
fn loss_scale(scaler: &LossScaler, setting: Setting) -> f32 {
    if setting.scaler {
        scaler.scale()
    } else {
        1.0
    }
}

/// The scaler's decision, consulted only when the step uses it.
fn decide(scaler: &mut LossScaler, setting: Setting, nan_count: usize) -> StepDecision {
    if setting.scaler {
        scaler.update(nan_count > 0)
    } else {
        StepDecision::Apply
    }
}

/// The step as `Run::step` did it before the passes were fused, kept verbatim.
struct Reference {
    params: Vec<Vec<f32>>,
    grads: Vec<Vec<f32>>,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    decay: Vec<bool>,
    config: AdamWConfig,
    steps: u64,
    scaler: LossScaler,
}

impl Reference {
    fn step(&mut self, source: &[Vec<f32>], setting: Setting, lr: f64) -> (Outcome, Times) {
        let mut times = Times::default();
        let clock = Instant::now();
        for g in self.grads.iter_mut() {
            g.fill(0.0);
        }
        times.zero = ms(clock);
        backward(&mut self.grads, source, setting.poison);
        let clock = Instant::now();
        let scale = loss_scale(&self.scaler, setting);
        let unscale = 1.0 / (scale * ACCUMULATION as f32);
        let grads = &mut self.grads;
        grads
            .iter_mut()
            .for_each(|g| g.iter_mut().for_each(|v| *v *= unscale));
        let nan_count = if setting.sanitize {
            grads.iter_mut().map(|g| sanitize_slice(g)).sum()
        } else {
            grads
                .iter()
                .map(|g| g.iter().filter(|v| !v.is_finite()).count())
                .sum()
        };
        let decision = decide(&mut self.scaler, setting, nan_count);
        let norm = if setting.clip > 0.0 {
            clip_grad_norm_serial(grads, setting.clip)
        } else {
            grad_norm_serial(grads)
        };
        times.scan = ms(clock);
        let skipped = decision == StepDecision::Skip;
        let clock = Instant::now();
        if !skipped {
            self.adamw(lr);
        }
        times.update = ms(clock);
        let outcome = Outcome {
            norm_bits: norm.to_bits(),
            nan_count,
            skipped,
            scale: self.scaler.scale(),
        };
        (outcome, times)
    }

    /// The AdamW step as it was: one parallel split per tensor.
    fn adamw(&mut self, lr: f64) {
        self.steps += 1;
        let c = self.config;
        let t = self.steps as i32;
        let bias1 = 1.0 - c.beta1.powi(t);
        let bias2_sqrt = (1.0 - c.beta2.powi(t)).sqrt();
        let k = Scalars {
            decay: (1.0 - lr * c.weight_decay) as f32,
            one_minus_beta1: (1.0 - c.beta1) as f32,
            beta1: c.beta1 as f32,
            beta2: c.beta2 as f32,
            one_minus_beta2: (1.0 - c.beta2) as f32,
            bias2_sqrt: bias2_sqrt as f32,
            eps: c.eps as f32,
            neg_step_size: (-(lr / bias1)) as f32,
        };
        for (i, (p, g)) in self.params.iter_mut().zip(&self.grads).enumerate() {
            let decay = self.decay[i] && c.weight_decay != 0.0;
            p.par_chunks_mut(1 << 15)
                .zip(g.par_chunks(1 << 15))
                .zip(self.m[i].par_chunks_mut(1 << 15))
                .zip(self.v[i].par_chunks_mut(1 << 15))
                .for_each(|(((p, g), m), v)| update(p, g, m, v, &k, decay));
        }
    }
}

/// The old sanitization of one tensor.
fn sanitize_slice(grad: &mut [f32]) -> usize {
    let mut count = 0;
    for g in grad.iter_mut() {
        if !g.is_finite() {
            *g = 0.0;
            count += 1;
        }
    }
    count
}

/// The old norm: one serial f64 sum over all values in order.
fn grad_norm_serial(grads: &[Vec<f32>]) -> f32 {
    let sum: f64 = grads
        .iter()
        .flat_map(|g| g.iter())
        .map(|&x| x as f64 * x as f64)
        .sum();
    sum.sqrt() as f32
}

/// The old clipping: a serial norm, then a serial scaling pass.
fn clip_grad_norm_serial(grads: &mut [Vec<f32>], max_norm: f32) -> f32 {
    let norm = grad_norm_serial(grads);
    let coeff = max_norm / (norm + 1e-6);
    if norm.is_finite() && coeff < 1.0 {
        for g in grads.iter_mut() {
            for x in g.iter_mut() {
                *x *= coeff;
            }
        }
    }
    norm
}

/// The old per-step AdamW scalars.
struct Scalars {
    decay: f32,
    one_minus_beta1: f32,
    beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    bias2_sqrt: f32,
    eps: f32,
    neg_step_size: f32,
}

/// The old AdamW inner loop.
fn update(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: &Scalars, decay: bool) {
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        if decay {
            *p *= k.decay;
        }
        *m = if k.one_minus_beta1 < 0.5 {
            *m + k.one_minus_beta1 * (g - *m)
        } else {
            g - (g - *m) * k.beta1
        };
        *v = *v * k.beta2 + k.one_minus_beta2 * g * g;
        let denom = v.sqrt() / k.bias2_sqrt + k.eps;
        *p += k.neg_step_size * (*m / denom);
    }
}

/// The step as `Run::step` does it now.
struct Fused {
    params: Vec<Vec<f32>>,
    grads: Vec<Vec<f32>>,
    optimizer: AdamW,
    scaler: LossScaler,
}

impl Fused {
    fn step(&mut self, source: &[Vec<f32>], setting: Setting, lr: f64) -> (Outcome, Times) {
        let mut times = Times::default();
        backward(&mut self.grads, source, setting.poison);
        let clock = Instant::now();
        let scale = loss_scale(&self.scaler, setting);
        let unscale = 1.0 / (scale * ACCUMULATION as f32);
        let GradStats { non_finite, norm } = grad_stats(&self.grads, unscale, setting.sanitize);
        let decision = decide(&mut self.scaler, setting, non_finite);
        let clip = if setting.clip > 0.0 {
            clip_coefficient(norm, setting.clip)
        } else {
            None
        };
        times.scan = ms(clock);
        let skipped = decision == StepDecision::Skip;
        let clock = Instant::now();
        if skipped {
            zero_grads(&mut self.grads);
        } else {
            let prep = GradPrep {
                unscale,
                sanitize: setting.sanitize,
                clip,
            };
            self.optimizer
                .step_and_zero(&mut self.params, &mut self.grads, lr, prep)
                .expect("shapes match");
        }
        times.update = ms(clock);
        let outcome = Outcome {
            norm_bits: norm.to_bits(),
            nan_count: non_finite,
            skipped,
            scale: self.scaler.scale(),
        };
        (outcome, times)
    }
}

fn bits(t: &[Vec<f32>]) -> impl Iterator<Item = u32> + '_ {
    t.iter().flat_map(|x| x.iter().map(|v| v.to_bits()))
}

/// Whether the fused state is bit for bit the reference state, and its gradients are zero.
fn same_state(r: &Reference, f: &Fused) -> bool {
    let (m, v): (Vec<Vec<f32>>, Vec<Vec<f32>>) = f
        .optimizer
        .moments()
        .map(|(_, m, v)| (m.to_vec(), v.to_vec()))
        .unzip();
    bits(&r.params).eq(bits(&f.params))
        && bits(&r.m).eq(bits(&m))
        && bits(&r.v).eq(bits(&v))
        && f.grads.iter().all(|g| g.iter().all(|&x| x.to_bits() == 0))
}

/// The settings of the checked steps: fp16 with clipping, an overflow, fp32 without clipping,
/// a clip limit that does not bite, sanitized poison on fp32, unsanitized poison.
fn check_settings() -> Vec<Setting> {
    let fp16 = Setting {
        scaler: true,
        sanitize: true,
        clip: 1.0,
        poison: false,
    };
    vec![
        fp16,
        Setting {
            poison: true,
            ..fp16
        },
        fp16,
        Setting {
            scaler: false,
            clip: 0.0,
            sanitize: false,
            ..fp16
        },
        Setting { clip: 1e6, ..fp16 },
        Setting {
            scaler: false,
            poison: true,
            ..fp16
        },
        Setting {
            scaler: false,
            sanitize: false,
            poison: true,
            ..fp16
        },
    ]
}

/// The learning rate of checked step `i`.
fn check_lr(i: usize) -> f64 {
    6e-4 * (i + 1) as f64
}

/// Runs the checked steps on both pipelines and returns how many matched bit for bit.
fn check(reference: &mut Reference, fused: &mut Fused, source: &[Vec<f32>]) -> usize {
    let mut matched = 0;
    for (i, setting) in check_settings().into_iter().enumerate() {
        let (want, _) = reference.step(source, setting, check_lr(i));
        let (got, _) = fused.step(source, setting, check_lr(i));
        let same = same_state(reference, fused) && outcomes_match(&want, &got);
        if !same {
            eprintln!("step {i} {setting:?}: reference {want:?}, fused {got:?}");
        }
        matched += usize::from(same);
    }
    matched
}

/// Runs the checked steps on the fused pipeline alone; returns a digest of its final state.
fn fused_digest(fused: &mut Fused, source: &[Vec<f32>]) -> u64 {
    for (i, setting) in check_settings().into_iter().enumerate() {
        fused.step(source, setting, check_lr(i));
    }
    state_digest(fused)
}

/// Outcomes agree, a NaN norm matching any NaN norm.
fn outcomes_match(a: &Outcome, b: &Outcome) -> bool {
    let nan = |o: &Outcome| f32::from_bits(o.norm_bits).is_nan();
    let norms = a.norm_bits == b.norm_bits || (nan(a) && nan(b));
    norms && a.nan_count == b.nan_count && a.skipped == b.skipped && a.scale == b.scale
}

/// A hash of the fused parameters and moments.
fn state_digest(f: &Fused) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut eat = |x: u32| h = (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3);
    bits(&f.params).for_each(&mut eat);
    for (_, m, v) in f.optimizer.moments() {
        m.iter().chain(v).for_each(|x| eat(x.to_bits()));
    }
    h
}

/// Trials of random gradient sets where the blocked norm and the old serial norm differ.
fn norm_disagreements(trials: usize) -> usize {
    let mut rng = Rng::new(77);
    (0..trials)
        .filter(|_| {
            let tensors = 1 + (rng.next_u64() % 6) as usize;
            let grads: Vec<Vec<f32>> = (0..tensors)
                .map(|_| {
                    let n = 1 + (rng.next_u64() % 400_000) as usize;
                    let scale = (rng.normal() * 6.0).exp();
                    (0..n)
                        .map(|_| rng.normal() * (rng.normal() * 2.0).exp() * scale)
                        .collect()
                })
                .collect();
            grad_norm(&grads).to_bits() != grad_norm_serial(&grads).to_bits()
        })
        .count()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Times `reps` steps of each pipeline in the fp16-with-clipping setting: medians per part,
/// and the fastest total.
fn time(reference: &mut Reference, fused: &mut Fused, source: &[Vec<f32>], reps: usize) -> String {
    let setting = check_settings()[0];
    let (mut r, mut f) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        r.push(reference.step(source, setting, 6e-4).1);
        f.push(fused.step(source, setting, 6e-4).1);
    }
    let part = |ts: &[Times], get: fn(&Times) -> f64| median(ts.iter().map(get).collect());
    let json = |ts: &[Times]| {
        format!(
            "{{\"total\":{:.1},\"min_total\":{:.1},\"zero\":{:.1},\"scan\":{:.1},\"update\":{:.1}}}",
            part(ts, Times::total),
            ts.iter().map(Times::total).fold(f64::INFINITY, f64::min),
            part(ts, |t| t.zero),
            part(ts, |t| t.scan),
            part(ts, |t| t.update)
        )
    };
    format!("\"reference_ms\":{},\"fused_ms\":{}", json(&r), json(&f))
}

fn main() {
    let reps = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(7);
    let config = gpt2::Config::gpt2_124m();
    let model = LoadedModel::Gpt2(gpt2::Weights::random(&config, 1));
    let specs: Vec<ParamSpec> = named_shapes(&model)
        .into_iter()
        .map(|(n, s)| ParamSpec::new(n, s))
        .collect();
    let params: Vec<Vec<f32>> = tensors(&model).into_iter().cloned().collect();
    drop(model);
    // Raw gradients: std 0.02 after unscaling (a norm near 220, so clipping bites), offset
    // so that the zero-initialized biases get gradients too.
    let raw_scale = 1024.0 * ACCUMULATION as f32;
    let source: Vec<Vec<f32>> = tensors(&LoadedModel::Gpt2(gpt2::Weights::random(&config, 2)))
        .into_iter()
        .map(|t| t.iter().map(|x| (x + 1e-3) * raw_scale).collect())
        .collect();
    let scaler = LossScaler::new(LossScaleConfig {
        init_scale: 1024.0,
        ..LossScaleConfig::default()
    });
    let zeros: Vec<Vec<f32>> = params.iter().map(|p| vec![0.0; p.len()]).collect();
    let adamw = AdamWConfig::default();
    let new_fused = || Fused {
        params: params.clone(),
        grads: zeros.clone(),
        optimizer: AdamW::new(adamw, specs.clone()),
        scaler: scaler.clone(),
    };
    let mut reference = Reference {
        params: params.clone(),
        grads: zeros.clone(),
        m: zeros.clone(),
        v: zeros.clone(),
        decay: specs.iter().map(|s| s.decay).collect(),
        config: adamw,
        steps: 0,
        scaler: scaler.clone(),
    };
    let mut fused = new_fused();
    let matched = check(&mut reference, &mut fused, &source);
    let timings = time(&mut reference, &mut fused, &source, reps);
    drop((reference, fused));
    let threads = rayon::current_num_threads();
    let digest = fused_digest(&mut new_fused(), &source);
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("thread pool")
        .install(|| fused_digest(&mut new_fused(), &source));
    let trials = 200;
    let disagreements = norm_disagreements(trials);
    println!(
        "{{\"params\":{},\"threads\":{threads},\"reps\":{reps},{timings},\"checked_steps\":{},\"bit_identical_steps\":{matched},\"same_on_1_and_{threads}_threads\":{},\"norm_trials\":{trials},\"norm_differs_from_serial_sum\":{disagreements}}}",
        params.iter().map(Vec::len).sum::<usize>(),
        check_settings().len(),
        digest == one_thread
    );
}
