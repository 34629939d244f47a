//! The three inference modes as [`LanguageModel`]s: `cpu` (host only), `ane-prefill` (device
//! prefill, host decode, the KV cache handed over in between) and `ane` (device layers for both).

use crate::device::DeviceModel;
use crate::error::{Error, Result};
use crate::generate::LanguageModel;
use crate::host::{HostModel, Precision};
use crate::load::LoadedModel;
use runtime::Device;

/// Where a model runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Cpu,
    AnePrefill,
    Ane,
}

/// The host path: prefill with GEMM, decode with GEMV.
pub struct HostLm {
    model: HostModel,
    pos: usize,
}

impl HostLm {
    /// The host model of `weights`.
    pub fn new(weights: &LoadedModel, precision: Precision, threads: usize) -> Self {
        HostLm {
            model: HostModel::new(weights, precision, threads),
            pos: 0,
        }
    }
}

impl LanguageModel for HostLm {
    fn context(&self) -> usize {
        self.model.context_len()
    }

    fn prefill(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        self.model.reset();
        let logits = self.model.prefill(tokens, 0)?.to_vec();
        self.pos = tokens.len();
        Ok(logits)
    }

    fn decode(&mut self, token: u32) -> Result<Vec<f32>> {
        let logits = self.model.decode(token, self.pos)?.to_vec();
        self.pos += 1;
        Ok(logits)
    }

    fn host_decode_bytes(&mut self, pos: usize) -> Option<usize> {
        Some(self.model.decode_bytes(pos))
    }
}

/// Device prefill, then the device's KV cache copied into the host model for host decode.
pub struct SplitLm<D: Device> {
    device: DeviceModel<D>,
    host: HostLm,
}

impl<D: Device> LanguageModel for SplitLm<D> {
    fn context(&self) -> usize {
        self.device.capacity().min(self.host.context())
    }

    fn prefill(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        let logits = self.device.prefill(tokens)?;
        self.host.model.reset();
        let cpu = self.host.model.pool().cpu();
        let cache = match &mut self.host.model {
            HostModel::Gpt2(m) => m.cache_mut(),
            HostModel::Llama(m) => m.cache_mut(),
        };
        for layer in 0..self.device.layers() {
            for pos in 0..tokens.len() {
                let (k, v) = self.device.cached(layer, pos);
                cache.write(cpu, layer, pos, &k, &v);
            }
        }
        self.host.pos = tokens.len();
        Ok(logits)
    }

    fn decode(&mut self, token: u32) -> Result<Vec<f32>> {
        self.host.decode(token)
    }

    fn host_decode_bytes(&mut self, pos: usize) -> Option<usize> {
        self.host.host_decode_bytes(pos)
    }
}

/// A language model for `mode`; `device` is required for the device modes. The KV cache
/// holds `capacity` positions (device modes round it up to a bucket).
pub fn build(
    weights: &LoadedModel,
    mode: Mode,
    device: Option<Box<dyn Device>>,
    precision: Precision,
    threads: usize,
    capacity: usize,
) -> Result<Box<dyn LanguageModel>> {
    let need_device =
        || device.ok_or_else(|| Error::Invalid(format!("mode {mode:?} needs a device")));
    Ok(match mode {
        Mode::Cpu => Box::new(HostLm::new(weights, precision, threads)),
        Mode::Ane => Box::new(DeviceModel::new(weights.clone(), need_device()?, capacity)?),
        Mode::AnePrefill => Box::new(SplitLm {
            device: DeviceModel::new(weights.clone(), need_device()?, capacity)?,
            host: HostLm::new(weights, precision, threads),
        }),
    })
}
