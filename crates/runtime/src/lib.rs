//! Devices that run MIL programs: the emulator, the Apple Neural Engine bridge and the session.

pub mod ane;
pub mod device;
pub mod emulate;
pub mod emulator;
pub mod error;
pub mod plan;
pub mod select;
pub mod session;

pub use ane::AppleNeuralEngine;
pub use device::{Device, ProgramHandle, Surface};
pub use emulate::{Emulator, EmulatorConfig};
pub use error::{Error, Result};
pub use session::{HostTensor, Interface, KernelTime, ProgramKey, Session, TensorView};
