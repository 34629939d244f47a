//! The emulated Neural Engine: a [`Device`] that runs the MIL text it is given with fp16
//! numerics and fails (or silently misbehaves) exactly where the hardware does.
//!
//! | rule | what the emulator does |
//! |---|---|
//! | C1 C10 C15 C16 C17 C19 C20 | rejects the program at compile (the MIL verifier) |
//! | C2 / C12 | eval fails when output / input surfaces differ in allocation size |
//! | C3 / C13 | binds outputs / inputs in alphabetical order of their MIL names |
//! | C4 | eval fails for any surface under 49,152 bytes |
//! | C5 | compile fails once the per-process budget (default 119) is spent |
//! | C6 | the attention op ignores its mask |
//! | C7 | weights are decoded from the blob bytes at compile; nothing reads them again |
//! | C14 | surfaces are read and written packed from their start; extra bytes are ignored |
//! | C22 | every op result is rounded to fp16 (see [`Numerics`]) |
//! | C23 | at most 128 programs loaded at once (configurable) |

use crate::device::{Device, ProgramHandle, Surface};
use crate::emulator::{Numerics, Tensor};
use crate::error::{eval_err, Error, Result};
use crate::plan::{compile, IoSlot, Plan};
use half::f16;
use half::slice::HalfFloatSliceExt;
use mil::bundle::ProgramBundle;
use mil::verify::VerifyOptions;
use mil::{DType, Rule};
use std::collections::HashMap;

/// The smallest surface the device evaluates (C4).
pub const MIN_SURFACE_BYTES: usize = 49_152;
/// Default per-process compile budget (C5).
pub const DEFAULT_COMPILE_BUDGET: usize = 119;
/// Default cap on programs loaded at once (C23).
pub const DEFAULT_LOADED_LIMIT: usize = 128;

/// Emulator settings.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// Compiles allowed in this process (C5).
    pub compile_budget: usize,
    /// Programs loaded at once (C23).
    pub loaded_limit: usize,
    /// The numerics profile.
    pub numerics: Numerics,
    /// The verifier's catalog switches (C19 limit, C20).
    pub verify: VerifyOptions,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            compile_budget: DEFAULT_COMPILE_BUDGET,
            loaded_limit: DEFAULT_LOADED_LIMIT,
            numerics: Numerics::default(),
            verify: VerifyOptions::default(),
        }
    }
}

/// The emulated device.
#[derive(Debug, Default)]
pub struct Emulator {
    config: EmulatorConfig,
    programs: HashMap<u64, Plan>,
    next_id: u64,
    compiles: usize,
}

impl Emulator {
    /// An emulator with default settings.
    pub fn new() -> Self {
        Emulator::with_config(EmulatorConfig::default())
    }

    /// An emulator with the given settings.
    pub fn with_config(config: EmulatorConfig) -> Self {
        Emulator {
            config,
            programs: HashMap::new(),
            next_id: 1,
            compiles: 0,
        }
    }

    /// The settings.
    pub fn config(&self) -> &EmulatorConfig {
        &self.config
    }

    /// Programs currently loaded.
    pub fn loaded(&self) -> usize {
        self.programs.len()
    }

    fn plan(&self, h: &ProgramHandle) -> Result<&Plan> {
        self.programs.get(&h.0).ok_or(Error::Handle(h.0))
    }
}

/// Checks the surfaces of one side (inputs or outputs): count, minimum and uniform size.
fn check_surfaces(kind: &str, sizes: &[usize], expected: usize, uniform_rule: Rule) -> Result<()> {
    if sizes.len() != expected {
        return eval_err(
            None,
            format!(
                "the program has {expected} {kind}s, {} surfaces were given",
                sizes.len()
            ),
        );
    }
    if let Some((i, &s)) = sizes
        .iter()
        .enumerate()
        .find(|(_, &s)| s < MIN_SURFACE_BYTES)
    {
        return eval_err(
            Some(Rule::C4),
            format!("status 0x1d: {kind} surface {i} is {s} bytes, under the minimum of {MIN_SURFACE_BYTES}"),
        );
    }
    if sizes.iter().any(|&s| s != sizes[0]) {
        return eval_err(
            Some(uniform_rule),
            format!("status 0x1d: {kind} surfaces differ in allocation size: {sizes:?}"),
        );
    }
    Ok(())
}

/// The program's I/O slots sorted by name: the order the device binds surfaces in.
fn alphabetical(slots: &[IoSlot]) -> Vec<(usize, &IoSlot)> {
    let mut v: Vec<(usize, &IoSlot)> = slots.iter().enumerate().collect();
    v.sort_by(|a, b| a.1.name.cmp(&b.1.name));
    v
}

/// Reads a tensor packed from the start of a surface (C14).
fn read_surface(io: &IoSlot, s: &Surface) -> Result<Tensor> {
    let need = io.packed_bytes();
    if s.alloc_size() < need {
        return eval_err(
            None,
            format!(
                "input {} needs {need} bytes, its surface has {}",
                io.name,
                s.alloc_size()
            ),
        );
    }
    let bytes = &s.bytes()[..need];
    let data: Vec<f32> = match io.dtype {
        DType::Fp16 => {
            let halves: Vec<f16> = bytes
                .chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]))
                .collect();
            let mut out = vec![0.0; halves.len()];
            halves.convert_to_f32_slice(&mut out);
            out
        }
        DType::Fp32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        other => {
            return eval_err(
                None,
                format!(
                    "input {}: surfaces carry fp16 or fp32, not {other}",
                    io.name
                ),
            )
        }
    };
    Tensor::new(io.dtype, io.shape.clone(), data).map_err(|e| Error::Eval {
        rule: None,
        message: e.to_string(),
    })
}

/// Writes a tensor packed at the start of a surface, leaving the rest as it was (C14).
fn write_surface(io: &IoSlot, t: &Tensor, s: &mut Surface) -> Result<()> {
    let need = io.packed_bytes();
    if s.alloc_size() < need {
        return eval_err(
            None,
            format!(
                "output {} needs {need} bytes, its surface has {}",
                io.name,
                s.alloc_size()
            ),
        );
    }
    let out = &mut s.bytes_mut()[..need];
    match io.dtype {
        DType::Fp16 => {
            for (dst, v) in out.chunks_exact_mut(2).zip(t.to_f16()) {
                dst.copy_from_slice(&v.to_le_bytes());
            }
        }
        DType::Fp32 => {
            for (dst, v) in out.chunks_exact_mut(4).zip(&t.data) {
                dst.copy_from_slice(&v.to_le_bytes());
            }
        }
        other => {
            return eval_err(
                None,
                format!(
                    "output {}: surfaces carry fp16 or fp32, not {other}",
                    io.name
                ),
            )
        }
    }
    Ok(())
}

impl Device for Emulator {
    fn name(&self) -> &'static str {
        "emulator"
    }

    fn compile(&mut self, program: &ProgramBundle) -> Result<ProgramHandle> {
        if self.compiles >= self.config.compile_budget {
            return Err(Error::Budget {
                used: self.compiles,
                budget: self.config.compile_budget,
            });
        }
        if self.programs.len() >= self.config.loaded_limit {
            return Err(Error::Loaded {
                loaded: self.programs.len(),
                limit: self.config.loaded_limit,
            });
        }
        self.compiles += 1;
        let plan = compile(program, &self.config.verify, self.config.numerics)?;
        let id = self.next_id;
        self.next_id += 1;
        self.programs.insert(id, plan);
        Ok(ProgramHandle(id))
    }

    fn eval(
        &mut self,
        program: &ProgramHandle,
        inputs: &[&Surface],
        outputs: &mut [Surface],
    ) -> Result<()> {
        let nx = self.config.numerics;
        let plan = self.plan(program)?;
        let in_sizes: Vec<usize> = inputs.iter().map(|s| s.alloc_size()).collect();
        let out_sizes: Vec<usize> = outputs.iter().map(|s| s.alloc_size()).collect();
        check_surfaces("input", &in_sizes, plan.inputs.len(), Rule::C12)?;
        check_surfaces("output", &out_sizes, plan.outputs.len(), Rule::C2)?;
        let mut tensors: Vec<Option<Tensor>> = vec![None; plan.inputs.len()];
        for (surface, (index, io)) in inputs.iter().zip(alphabetical(&plan.inputs)) {
            let mut t = read_surface(io, surface)?;
            nx.admit_input(t.dtype, &mut t.data);
            tensors[index] = Some(t);
        }
        let results = plan.run(
            tensors
                .into_iter()
                .map(|t| t.expect("every input bound"))
                .collect(),
            nx,
        )?;
        for (surface, (index, io)) in outputs.iter_mut().zip(alphabetical(&plan.outputs)) {
            write_surface(io, &results[index], surface)?;
        }
        Ok(())
    }

    fn unload(&mut self, program: ProgramHandle) -> Result<()> {
        self.programs
            .remove(&program.0)
            .map(|_| ())
            .ok_or(Error::Handle(program.0))
    }

    fn compiles_used(&self) -> usize {
        self.compiles
    }

    fn compile_budget(&self) -> usize {
        self.config.compile_budget
    }
}
