//! The device interface: compile MIL bundles, evaluate them on flat surfaces, unload them.

use crate::error::Result;
use mil::bundle::ProgramBundle;

/// A flat byte buffer with an allocation size, like an IOSurface of `Height = 1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Surface {
    bytes: Vec<u8>,
}

impl Surface {
    /// A zeroed surface of `alloc` bytes.
    pub fn new(alloc: usize) -> Self {
        Surface {
            bytes: vec![0; alloc],
        }
    }

    /// A surface holding `bytes` (its allocation size is their length).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Surface { bytes }
    }

    /// The allocation size in bytes.
    pub fn alloc_size(&self) -> usize {
        self.bytes.len()
    }

    /// The contents.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The contents, writable.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }
}

/// A compiled, loaded program on one device.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ProgramHandle(pub(crate) u64);

impl ProgramHandle {
    /// The device's identifier for the program.
    pub fn id(&self) -> u64 {
        self.0
    }
}

/// Something that runs MIL programs: the emulator or the Apple Neural Engine.
///
/// Like the hardware, a device binds surfaces **by position in alphabetical name order**
/// (inputs by parameter name, outputs by returned name; C3/C13) and checks nothing a real
/// device would not; the runtime session above it binds by name.
pub trait Device {
    /// A short name for messages ("emulator", "ane").
    fn name(&self) -> &'static str;
    /// Compiles and loads a program (MIL text + weight files). Counts against the compile budget.
    fn compile(&mut self, program: &ProgramBundle) -> Result<ProgramHandle>;
    /// Evaluates a program: inputs and outputs in alphabetical order of their MIL names.
    fn eval(
        &mut self,
        program: &ProgramHandle,
        inputs: &[&Surface],
        outputs: &mut [Surface],
    ) -> Result<()>;
    /// Unloads a program and frees it.
    fn unload(&mut self, program: ProgramHandle) -> Result<()>;
    /// Compiles made by this process so far.
    fn compiles_used(&self) -> usize;
    /// Compiles allowed per process (C5).
    fn compile_budget(&self) -> usize;
}

impl<D: Device + ?Sized> Device for Box<D> {
    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn compile(&mut self, program: &ProgramBundle) -> Result<ProgramHandle> {
        (**self).compile(program)
    }

    fn eval(
        &mut self,
        program: &ProgramHandle,
        inputs: &[&Surface],
        outputs: &mut [Surface],
    ) -> Result<()> {
        (**self).eval(program, inputs, outputs)
    }

    fn unload(&mut self, program: ProgramHandle) -> Result<()> {
        (**self).unload(program)
    }

    fn compiles_used(&self) -> usize {
        (**self).compiles_used()
    }

    fn compile_budget(&self) -> usize {
        (**self).compile_budget()
    }
}
