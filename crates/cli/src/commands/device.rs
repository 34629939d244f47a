//! The `--device` flag shared by every command that runs programs.

use anyhow::Result;
use runtime::select::{open_device, DeviceChoice};
use runtime::Device;

/// Which device runs the programs.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum DeviceKind {
    /// The Neural Engine where available, otherwise the emulator.
    Auto,
    /// The Apple Neural Engine (macOS on Apple silicon).
    Ane,
    /// The faithful emulator (any machine).
    Emulator,
}

/// `--device auto|ane|emulator`.
#[derive(clap::Args, Clone, Debug)]
pub struct DeviceArg {
    /// Device that runs the programs.
    #[arg(long, value_enum, default_value_t = DeviceKind::Auto)]
    pub device: DeviceKind,
}

impl DeviceArg {
    /// Opens the device and says on stderr which one was chosen.
    pub fn open(&self) -> Result<Box<dyn Device>> {
        let choice = match self.device {
            DeviceKind::Auto => DeviceChoice::Auto,
            DeviceKind::Ane => DeviceChoice::Ane,
            DeviceKind::Emulator => DeviceChoice::Emulator,
        };
        let (device, why) = open_device(choice)?;
        eprintln!("{why}");
        Ok(device)
    }
}
