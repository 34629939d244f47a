//! The runtime session: runs programs on any [`Device`] by name, so that what the hardware
//! gets silently wrong cannot happen.
//!
//! - Surfaces are bound **by name**: the session sorts names itself (C3/C13).
//! - All input surfaces of a program share one allocation size, as do all outputs, and none is
//!   under 49,152 bytes (C2/C4/C12); tensors are written packed from the start (C14).
//! - Host tensors in `[S, C]` layout convert to and from the device's `[1, C, 1, S]`.
//! - Compiled programs are cached by [`ProgramKey`] with least-recently-used eviction (which
//!   unloads, keeping under C23), and the compile budget (C5) is checked before compiling.

use crate::device::{Device, ProgramHandle, Surface};
use crate::emulate::MIN_SURFACE_BYTES;
use crate::error::{Error, Result};
use half::f16;
use half::slice::HalfFloatSliceExt;
use mil::bundle::ProgramBundle;
use mil::DType;
use std::collections::HashMap;

/// Identifies a compiled program in the cache: kernel, layer, weights and sequence bucket.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProgramKey {
    pub kernel: String,
    pub layer: usize,
    /// Identifies the weights baked into the program (0 for dynamic-weight programs).
    pub weights_id: u64,
    pub bucket: usize,
}

/// A tensor on the host: f32 values in the MIL shape's row-major order.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl HostTensor {
    /// A tensor from a shape and values.
    pub fn new(shape: impl Into<Vec<usize>>, data: Vec<f32>) -> Self {
        HostTensor {
            shape: shape.into(),
            data,
        }
    }

    /// Converts host `[S, C]` (row per position) to device `[1, C, 1, S]`.
    pub fn from_seq(s: usize, c: usize, rows: &[f32]) -> Self {
        let mut data = vec![0.0; s * c];
        for (p, row) in rows.chunks_exact(c).enumerate().take(s) {
            for (ch, &v) in row.iter().enumerate() {
                data[ch * s + p] = v;
            }
        }
        HostTensor::new(vec![1, c, 1, s], data)
    }

    /// Converts a device `[1, C, 1, S]` tensor to host `[S, C]` rows.
    pub fn to_seq(&self) -> Result<Vec<f32>> {
        let (c, s) = match self.shape[..] {
            [1, c, 1, s] => (c, s),
            ref other => {
                return Err(Error::Binding(format!(
                    "expected a [1, C, 1, S] tensor, found {other:?}"
                )))
            }
        };
        let mut rows = vec![0.0; s * c];
        for ch in 0..c {
            for p in 0..s {
                rows[p * c + ch] = self.data[ch * s + p];
            }
        }
        Ok(rows)
    }
}

/// A borrowed tensor: MIL shape and row-major f32 values.
#[derive(Clone, Copy, Debug)]
pub struct TensorView<'a> {
    pub shape: &'a [usize],
    pub data: &'a [f32],
}

/// One program input or output as the session sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
}

impl TensorSpec {
    fn packed_bytes(&self) -> usize {
        self.shape.iter().product::<usize>() * self.dtype.size_bytes().unwrap_or(0)
    }
}

/// A program's interface, read from its MIL text; both sides sorted by name (binding order).
#[derive(Clone, Debug, PartialEq)]
pub struct Interface {
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

impl Interface {
    /// Reads the interface of a bundle's `main` function.
    pub fn of(bundle: &ProgramBundle) -> Result<Interface> {
        let program =
            mil::parse::parse_program(&bundle.mil).map_err(|e| Error::Compile(e.to_string()))?;
        let types = program
            .main()
            .ok_or_else(|| Error::Compile("the program has no main function".to_string()))
            .and_then(|f| {
                mil::verify::value_types(f)
                    .map_err(|d| Error::Compile(d.to_string()))
                    .map(|t| (f, t))
            })?;
        let (main, types) = types;
        let spec = |name: &str| -> Result<TensorSpec> {
            let ty = types
                .get(name)
                .ok_or_else(|| Error::Compile(format!("{name} has no type")))?;
            if !ty.dtype().is_float() {
                return Err(Error::Compile(format!(
                    "{name}: surfaces carry fp16 or fp32, not {}",
                    ty.dtype()
                )));
            }
            Ok(TensorSpec {
                name: name.to_string(),
                dtype: ty.dtype(),
                shape: ty.shape().to_vec(),
            })
        };
        let mut inputs = main
            .inputs
            .iter()
            .map(|p| spec(&p.name))
            .collect::<Result<Vec<_>>>()?;
        let mut outputs = main
            .outputs
            .iter()
            .map(|n| spec(n))
            .collect::<Result<Vec<_>>>()?;
        inputs.sort_by(|a, b| a.name.cmp(&b.name));
        outputs.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Interface { inputs, outputs })
    }
}

/// A loaded program with its surfaces, allocated once at the uniform padded sizes.
#[derive(Debug)]
struct Loaded {
    handle: ProgramHandle,
    interface: Interface,
    inputs: Vec<Surface>,
    outputs: Vec<Surface>,
    last_used: u64,
}

/// Uniform allocation for a set of tensors: the largest packed size, at least the minimum.
fn uniform_alloc(specs: &[TensorSpec]) -> usize {
    specs
        .iter()
        .map(TensorSpec::packed_bytes)
        .max()
        .unwrap_or(0)
        .max(MIN_SURFACE_BYTES)
}

/// Time spent in one kernel's evaluations (all layers and buckets together).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KernelTime {
    pub evals: usize,
    /// Seconds in the device's eval, surfaces written and read included.
    pub seconds: f64,
}

/// Runs programs on a device by name, with a program cache.
pub struct Session<D: Device> {
    device: D,
    cache: HashMap<ProgramKey, Loaded>,
    capacity: usize,
    clock: u64,
    times: HashMap<String, KernelTime>,
    compile_seconds: f64,
}

/// Default number of programs the session keeps loaded (under the device's C23 limit).
pub const DEFAULT_CACHE_CAPACITY: usize = 96;

impl<D: Device> Session<D> {
    /// A session over `device` with the default cache capacity.
    pub fn new(device: D) -> Self {
        Session::with_capacity(device, DEFAULT_CACHE_CAPACITY)
    }

    /// A session keeping at most `capacity` programs loaded.
    pub fn with_capacity(device: D, capacity: usize) -> Self {
        Session {
            device,
            cache: HashMap::new(),
            capacity: capacity.max(1),
            clock: 0,
            times: HashMap::new(),
            compile_seconds: 0.0,
        }
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.device
    }

    /// Evaluation time per kernel name, sorted by name.
    pub fn kernel_times(&self) -> Vec<(String, KernelTime)> {
        let mut v: Vec<(String, KernelTime)> = self
            .times
            .iter()
            .map(|(k, t)| (k.clone(), t.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Seconds spent in the device's compile (and load) calls.
    pub fn compile_seconds(&self) -> f64 {
        self.compile_seconds
    }

    /// Compiles left before the device's budget (C5) is spent.
    pub fn compiles_left(&self) -> usize {
        self.device
            .compile_budget()
            .saturating_sub(self.device.compiles_used())
    }

    /// True when the program for `key` is compiled and loaded.
    pub fn is_loaded(&self, key: &ProgramKey) -> bool {
        self.cache.contains_key(key)
    }

    /// Compiles and loads `bundle` under `key` unless it is cached; returns its interface.
    pub fn load(&mut self, key: &ProgramKey, bundle: &ProgramBundle) -> Result<&Interface> {
        self.clock += 1;
        if !self.cache.contains_key(key) {
            if self.compiles_left() == 0 {
                return Err(Error::Budget {
                    used: self.device.compiles_used(),
                    budget: self.device.compile_budget(),
                });
            }
            let interface = Interface::of(bundle)?;
            while self.cache.len() >= self.capacity {
                self.evict_oldest()?;
            }
            let started = std::time::Instant::now();
            let handle = self.device.compile(bundle)?;
            self.compile_seconds += started.elapsed().as_secs_f64();
            let (ia, oa) = (
                uniform_alloc(&interface.inputs),
                uniform_alloc(&interface.outputs),
            );
            let loaded = Loaded {
                handle,
                inputs: interface.inputs.iter().map(|_| Surface::new(ia)).collect(),
                outputs: interface.outputs.iter().map(|_| Surface::new(oa)).collect(),
                interface,
                last_used: self.clock,
            };
            self.cache.insert(key.clone(), loaded);
        }
        let entry = self.cache.get_mut(key).expect("inserted above");
        entry.last_used = self.clock;
        Ok(&entry.interface)
    }

    fn evict_oldest(&mut self) -> Result<()> {
        let oldest = self
            .cache
            .iter()
            .min_by_key(|(_, l)| l.last_used)
            .map(|(k, _)| k.clone());
        if let Some(k) = oldest {
            let loaded = self.cache.remove(&k).expect("key from the cache");
            self.device.unload(loaded.handle)?;
        }
        Ok(())
    }

    /// Unloads every cached program.
    pub fn clear(&mut self) -> Result<()> {
        for (_, loaded) in self.cache.drain() {
            self.device.unload(loaded.handle)?;
        }
        Ok(())
    }

    /// Runs the program loaded under `key` on named inputs; returns every output by name.
    pub fn run(
        &mut self,
        key: &ProgramKey,
        inputs: &[(&str, &HostTensor)],
    ) -> Result<HashMap<String, HostTensor>> {
        let views: Vec<(&str, TensorView)> = inputs
            .iter()
            .map(|(n, t)| {
                (
                    *n,
                    TensorView {
                        shape: &t.shape,
                        data: &t.data,
                    },
                )
            })
            .collect();
        self.run_views(key, &views)
    }

    /// Like [`Session::run`], with inputs borrowed (no copy of large weights).
    pub fn run_views(
        &mut self,
        key: &ProgramKey,
        inputs: &[(&str, TensorView<'_>)],
    ) -> Result<HashMap<String, HostTensor>> {
        let started = std::time::Instant::now();
        self.clock += 1;
        let clock = self.clock;
        let loaded = self
            .cache
            .get_mut(key)
            .ok_or_else(|| Error::Binding(format!("program {key:?} is not loaded")))?;
        loaded.last_used = clock;
        for (name, _) in inputs {
            if !loaded.interface.inputs.iter().any(|s| s.name == *name) {
                let known: Vec<&str> = loaded
                    .interface
                    .inputs
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect();
                return Err(Error::Binding(format!(
                    "{} has no input {name}; its inputs: {known:?}",
                    key.kernel
                )));
            }
        }
        for (spec, surface) in loaded.interface.inputs.iter().zip(loaded.inputs.iter_mut()) {
            let tensor = inputs
                .iter()
                .find(|(n, _)| *n == spec.name)
                .map(|(_, t)| t)
                .ok_or_else(|| {
                    Error::Binding(format!("{}: input {} was not given", key.kernel, spec.name))
                })?;
            write_packed(spec, tensor, surface)?;
        }
        let ins: Vec<&Surface> = loaded.inputs.iter().collect();
        self.device
            .eval(&loaded.handle, &ins, &mut loaded.outputs)?;
        let outputs = loaded
            .interface
            .outputs
            .iter()
            .zip(&loaded.outputs)
            .map(|(spec, s)| (spec.name.clone(), read_packed(spec, s)))
            .collect();
        let time = self.times.entry(key.kernel.clone()).or_default();
        time.evals += 1;
        time.seconds += started.elapsed().as_secs_f64();
        Ok(outputs)
    }
}

/// Writes `t` packed at the start of `surface` in the spec's dtype (C14).
fn write_packed(spec: &TensorSpec, t: &TensorView<'_>, surface: &mut Surface) -> Result<()> {
    if t.shape != spec.shape || t.data.len() != spec.shape.iter().product::<usize>() {
        return Err(Error::Binding(format!(
            "input {} is {:?} ({} values), the program declares {:?}",
            spec.name,
            t.shape,
            t.data.len(),
            spec.shape
        )));
    }
    let out = surface.bytes_mut();
    match spec.dtype {
        DType::Fp16 => {
            let mut halves = vec![f16::ZERO; t.data.len()];
            halves.convert_from_f32_slice(t.data);
            for (dst, h) in out.chunks_exact_mut(2).zip(halves) {
                dst.copy_from_slice(&h.to_le_bytes());
            }
        }
        DType::Fp32 => {
            for (dst, v) in out.chunks_exact_mut(4).zip(t.data) {
                dst.copy_from_slice(&v.to_le_bytes());
            }
        }
        other => {
            return Err(Error::Binding(format!(
                "input {}: unsupported surface dtype {other}",
                spec.name
            )))
        }
    }
    Ok(())
}

/// Reads a packed tensor of the spec's dtype from the start of `surface`.
fn read_packed(spec: &TensorSpec, surface: &Surface) -> HostTensor {
    let n = spec.shape.iter().product::<usize>();
    let bytes = surface.bytes();
    let data = match spec.dtype {
        DType::Fp16 => {
            let halves: Vec<f16> = bytes[..2 * n]
                .chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]))
                .collect();
            let mut out = vec![0.0; n];
            halves.convert_to_f32_slice(&mut out);
            out
        }
        _ => bytes[..4 * n]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    };
    HostTensor::new(spec.shape.clone(), data)
}
