//! Instruction-set levels: what this CPU has, which level the kernels run at (the best one,
//! or the one `ORION_CPU` names), and the [`Cpu`] handle that proves a level is usable.

use std::fmt;
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// The environment variable that forces a level: `portable`, `avx2`, `avx512` or `neon`.
pub const ENV: &str = "ORION_CPU";

/// A family of kernel instantiations, from slowest to fastest on its architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    /// Plain Rust in 8-lane arrays, on any CPU (the compiler vectorizes what it can).
    Portable,
    /// x86-64 with AVX2, FMA and F16C: 8 f32 lanes, fused multiply-add, fp16 conversion.
    Avx2,
    /// x86-64 with AVX-512F (and AVX2, FMA, F16C): 16 f32 lanes.
    Avx512,
    /// aarch64 Advanced SIMD: 8 f32 lanes as two 128-bit registers, fused multiply-add,
    /// fp16 conversion.
    Neon,
}

impl Level {
    /// Every level, in order.
    pub const ALL: [Level; 4] = [Level::Portable, Level::Avx2, Level::Avx512, Level::Neon];

    /// The name `ORION_CPU` takes.
    pub fn name(self) -> &'static str {
        match self {
            Level::Portable => "portable",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
            Level::Neon => "neon",
        }
    }

    /// What this level needs of the CPU, in words.
    pub fn requirement(self) -> &'static str {
        match self {
            Level::Portable => "any CPU",
            Level::Avx2 => "x86-64 with AVX2, FMA and F16C",
            Level::Avx512 => "x86-64 with AVX-512F, AVX2, FMA and F16C",
            Level::Neon => "aarch64 (Advanced SIMD)",
        }
    }

    /// True when this CPU can run the level's kernels.
    pub fn supported(self) -> bool {
        match self {
            Level::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => {
                is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
                    && is_x86_feature_detected!("f16c")
            }
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => Level::Avx2.supported() && is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "aarch64")]
            Level::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Level {
    type Err = Error;

    fn from_str(s: &str) -> Result<Level> {
        Level::ALL
            .into_iter()
            .find(|l| l.name() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| Error::UnknownLevel(s.to_string()))
    }
}

/// A level this CPU supports: the handle every kernel takes. It can only be made for a
/// supported level, which is what makes running that level's instructions sound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cpu {
    level: Level,
}

impl Cpu {
    /// The portable level, available everywhere.
    pub const PORTABLE: Cpu = Cpu {
        level: Level::Portable,
    };

    /// The handle for `level`, or an error naming what the CPU lacks.
    pub fn new(level: Level) -> Result<Cpu> {
        if level.supported() {
            Ok(Cpu { level })
        } else {
            Err(Error::Unsupported {
                level,
                requirement: level.requirement(),
            })
        }
    }

    /// The fastest level this CPU supports.
    pub fn best() -> Cpu {
        Cpu::available().into_iter().last().unwrap_or(Cpu::PORTABLE)
    }

    /// Every level this CPU supports, slowest first (portable is always there).
    pub fn available() -> Vec<Cpu> {
        Level::ALL
            .into_iter()
            .filter(|l| l.supported())
            .map(|level| Cpu { level })
            .collect()
    }

    /// The level the process runs at: `ORION_CPU` when set, else [`Cpu::best`]. Decided
    /// once; an `ORION_CPU` this CPU cannot honour is an error (every later call repeats it).
    pub fn init() -> Result<Cpu> {
        static ACTIVE: OnceLock<Result<Cpu>> = OnceLock::new();
        ACTIVE.get_or_init(from_env).clone()
    }

    /// The process's level, as [`Cpu::init`] decides it.
    ///
    /// # Panics
    /// If `ORION_CPU` names a level this CPU lacks or no level at all; programs call
    /// [`Cpu::init`] first to report that as an error.
    pub fn active() -> Cpu {
        Cpu::init().unwrap_or_else(|e| panic!("{e}"))
    }

    /// The instruction-set level.
    pub fn level(self) -> Level {
        self.level
    }

    /// True when the bf16 matrix product runs on the CPU's own bf16 dot-product instructions
    /// (AVX-512 BF16) at this level; otherwise it rounds inputs to bf16 and uses f32 FMA.
    pub fn bf16_dot(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        if self.level == Level::Avx512 {
            return is_x86_feature_detected!("avx512bw") && is_x86_feature_detected!("avx512bf16");
        }
        false
    }

    /// The level and the optional instructions that matter to it, e.g.
    /// `avx512 (+avx512bf16)` or `neon (fp16, bf16 present, not used)`.
    pub fn describe(self) -> String {
        let mut used: Vec<&str> = Vec::new();
        if self.bf16_dot() {
            used.push("+avx512bf16");
        }
        #[allow(unused_mut)]
        let mut idle: Vec<&str> = Vec::new();
        #[cfg(target_arch = "aarch64")]
        if self.level == Level::Neon {
            if std::arch::is_aarch64_feature_detected!("fp16") {
                idle.push("fp16");
            }
            if std::arch::is_aarch64_feature_detected!("bf16") {
                idle.push("bf16");
            }
        }
        let mut notes = used.join(", ");
        if !idle.is_empty() {
            if !notes.is_empty() {
                notes.push_str("; ");
            }
            notes.push_str(&format!("{} present, not used", idle.join(", ")));
        }
        if notes.is_empty() {
            self.level.name().to_string()
        } else {
            format!("{} ({notes})", self.level.name())
        }
    }
}

/// The level `ORION_CPU` asks for, or the best one.
fn from_env() -> Result<Cpu> {
    match std::env::var(ENV) {
        Ok(name) if !name.trim().is_empty() => Cpu::new(name.parse()?),
        _ => Ok(Cpu::best()),
    }
}

impl fmt::Display for Cpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}
