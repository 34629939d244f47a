//! Text generation: sampling (greedy, temperature, top-k, top-p, seeded) and the
//! prefill-then-decode loop over any [`LanguageModel`], streaming tokens as they come.

use crate::error::{Error, Result};
use crate::rng::Rng;
use std::time::Instant;

/// Something that turns tokens into next-token logits, keeping its own KV cache.
pub trait LanguageModel {
    /// Context length.
    fn context(&self) -> usize;
    /// Runs `tokens` from position 0 (forgetting earlier state); returns the last logits.
    fn prefill(&mut self, tokens: &[u32]) -> Result<Vec<f32>>;
    /// Appends `token` at the next position; returns its logits.
    fn decode(&mut self, token: u32) -> Result<Vec<f32>>;
    /// Bytes a decode step at position `pos` reads from host memory (weights and cached keys
    /// and values), when it decodes on the host.
    fn host_decode_bytes(&mut self, pos: usize) -> Option<usize> {
        let _ = pos;
        None
    }
}

impl<D: runtime::Device> LanguageModel for crate::device::DeviceModel<D> {
    fn context(&self) -> usize {
        self.capacity()
    }

    fn prefill(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        crate::device::DeviceModel::prefill(self, tokens)
    }

    fn decode(&mut self, token: u32) -> Result<Vec<f32>> {
        crate::device::DeviceModel::decode(self, token)
    }
}

/// How the next token is chosen.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplerConfig {
    /// 0 means greedy (argmax); otherwise logits are divided by it before the softmax.
    pub temperature: f32,
    /// Keep only the `k` most likely tokens (0 = all).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches `p` (1.0 = all).
    pub top_p: f32,
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            seed: 0,
        }
    }
}

/// Picks tokens from logits, reproducibly from its seed.
#[derive(Clone, Debug)]
pub struct Sampler {
    config: SamplerConfig,
    rng: Rng,
}

impl Sampler {
    /// A sampler; fails on a negative temperature or a top-p outside (0, 1].
    pub fn new(config: SamplerConfig) -> Result<Self> {
        if !(config.temperature >= 0.0 && config.temperature.is_finite()) {
            return Err(Error::Invalid(format!(
                "temperature must be ≥ 0, got {}",
                config.temperature
            )));
        }
        if !(config.top_p > 0.0 && config.top_p <= 1.0) {
            return Err(Error::Invalid(format!(
                "top-p must be in (0, 1], got {}",
                config.top_p
            )));
        }
        let rng = Rng::new(config.seed);
        Ok(Sampler { config, rng })
    }

    /// The next token for `logits`.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        if self.config.temperature == 0.0 {
            return argmax(logits);
        }
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_unstable_by(|&a, &b| logits[b].total_cmp(&logits[a]));
        if self.config.top_k > 0 {
            order.truncate(self.config.top_k);
        }
        let max = logits[order[0]];
        let mut probs: Vec<f32> = order
            .iter()
            .map(|&i| ((logits[i] - max) / self.config.temperature).exp())
            .collect();
        let total: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
        if self.config.top_p < 1.0 {
            let mut acc = 0.0;
            let keep = probs
                .iter()
                .position(|&p| {
                    acc += p;
                    acc >= self.config.top_p
                })
                .map_or(probs.len(), |i| i + 1);
            probs.truncate(keep);
            order.truncate(keep);
        }
        let total: f32 = probs.iter().sum();
        let mut r = self.rng.uniform() * total;
        for (&i, &p) in order.iter().zip(&probs) {
            if r < p {
                return i as u32;
            }
            r -= p;
        }
        order[probs.len() - 1] as u32
    }
}

/// The index of the largest logit (the first one on ties; NaN never wins).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] || logits[best].is_nan() {
            best = i;
        }
    }
    best as u32
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    pub sampler: SamplerConfig,
    /// Stop after producing this token (end of text).
    pub stop_token: Option<u32>,
}

/// What a generation produced, with its timings.
#[derive(Clone, Debug, PartialEq)]
pub struct Generation {
    pub generated: Vec<u32>,
    pub prefill_seconds: f64,
    pub decode_seconds: f64,
    /// Set when generation stopped at the context length before `max_new_tokens`.
    pub hit_context: bool,
}

impl Generation {
    /// Prompt tokens per second of prefill.
    pub fn prefill_tokens_per_second(&self, prompt_len: usize) -> f64 {
        prompt_len as f64 / self.prefill_seconds.max(1e-12)
    }

    /// Generated tokens per second of decode (the first token comes from the prefill).
    pub fn decode_tokens_per_second(&self) -> f64 {
        self.generated.len().saturating_sub(1) as f64 / self.decode_seconds.max(1e-12)
    }
}

/// Generates after `prompt`, calling `on_token` with each new token as soon as it is chosen.
pub fn generate(
    model: &mut dyn LanguageModel,
    prompt: &[u32],
    options: &GenerateOptions,
    mut on_token: impl FnMut(u32),
) -> Result<Generation> {
    if prompt.is_empty() {
        return Err(Error::Invalid("the prompt is empty".to_string()));
    }
    if prompt.len() > model.context() {
        return Err(Error::Invalid(format!(
            "the prompt has {} tokens, more than the context of {}",
            prompt.len(),
            model.context()
        )));
    }
    let mut sampler = Sampler::new(options.sampler.clone())?;
    let start = Instant::now();
    let mut logits = model.prefill(prompt)?;
    let prefill_seconds = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut generated = Vec::new();
    let mut hit_context = false;
    while generated.len() < options.max_new_tokens {
        let token = sampler.sample(&logits);
        generated.push(token);
        on_token(token);
        if Some(token) == options.stop_token || generated.len() == options.max_new_tokens {
            break;
        }
        if prompt.len() + generated.len() >= model.context() {
            hit_context = true;
            break;
        }
        logits = model.decode(token)?;
    }
    Ok(Generation {
        generated,
        prefill_seconds,
        decode_seconds: start.elapsed().as_secs_f64(),
        hit_context,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_picks_the_argmax_and_sampling_is_seeded() {
        let logits = [0.1, 2.0, -1.0, 1.9];
        let mut greedy = Sampler::new(SamplerConfig::default()).unwrap();
        assert_eq!(greedy.sample(&logits), 1);
        let config = SamplerConfig {
            temperature: 1.0,
            seed: 42,
            ..SamplerConfig::default()
        };
        let draw = |c: &SamplerConfig| {
            let mut s = Sampler::new(c.clone()).unwrap();
            (0..50).map(|_| s.sample(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(draw(&config), draw(&config));
        assert!(
            draw(&config).contains(&3),
            "temperature 1 samples more than the argmax"
        );
    }

    #[test]
    fn top_k_and_top_p_restrict_the_candidates() {
        let logits = [5.0, 4.9, 0.0, -3.0, 4.8];
        let top2 = SamplerConfig {
            temperature: 1.0,
            top_k: 2,
            seed: 1,
            ..SamplerConfig::default()
        };
        let mut s = Sampler::new(top2).unwrap();
        assert!((0..200).all(|_| [0, 1].contains(&s.sample(&logits))));
        let top_p = SamplerConfig {
            temperature: 1.0,
            top_p: 0.3,
            seed: 1,
            ..SamplerConfig::default()
        };
        let mut s = Sampler::new(top_p).unwrap();
        assert!(
            (0..200).all(|_| s.sample(&logits) == 0),
            "the top token alone reaches 30%"
        );
    }

    #[test]
    fn bad_settings_are_refused() {
        for (t, p) in [(-1.0, 1.0), (f32::NAN, 1.0), (1.0, 0.0), (1.0, 1.5)] {
            let c = SamplerConfig {
                temperature: t,
                top_p: p,
                ..SamplerConfig::default()
            };
            assert!(Sampler::new(c).is_err());
        }
    }
}
