//! Device selection: `auto` picks the Neural Engine where it is available, else the emulator.

use crate::device::Device;
use crate::emulate::Emulator;
use crate::error::Result;

/// Which device to run programs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    /// The Neural Engine if it can be opened, otherwise the emulator.
    Auto,
    /// The Neural Engine; an error where it is not available.
    Ane,
    /// The emulator.
    Emulator,
}

/// Opens the chosen device; returns it with a one-line description of what was chosen and why.
pub fn open_device(choice: DeviceChoice) -> Result<(Box<dyn Device>, String)> {
    match choice {
        DeviceChoice::Emulator => Ok((
            Box::new(Emulator::new()),
            "device: emulator (requested)".to_string(),
        )),
        DeviceChoice::Ane => {
            let ane = crate::ane::AppleNeuralEngine::open()?;
            Ok((
                Box::new(ane),
                "device: Apple Neural Engine (requested)".to_string(),
            ))
        }
        DeviceChoice::Auto => match crate::ane::AppleNeuralEngine::open() {
            Ok(ane) => Ok((
                Box::new(ane),
                "device: Apple Neural Engine (auto)".to_string(),
            )),
            Err(e) => Ok((
                Box::new(Emulator::new()),
                format!("device: emulator (auto; {e})"),
            )),
        },
    }
}
