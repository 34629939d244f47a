//! Weight matrices for the host path, `[rows, cols]` row-major, stored as fp16 or f32 and
//! converted once at load from the f32 weights.

use half::f16;

/// How weight matrices are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// IEEE half precision, widened to f32 inside the kernels (half the memory traffic).
    F16,
    /// Full f32.
    F32,
}

impl Precision {
    /// "f16" or "f32".
    pub fn name(self) -> &'static str {
        match self {
            Precision::F16 => "f16",
            Precision::F32 => "f32",
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = crate::Error;

    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "f16" | "fp16" => Ok(Precision::F16),
            "f32" | "fp32" => Ok(Precision::F32),
            _ => Err(crate::Error::Invalid(format!(
                "unknown precision {s:?}; known: f16, f32"
            ))),
        }
    }
}

/// The element storage of a [`Matrix`].
#[derive(Clone, Debug, PartialEq)]
pub enum Storage {
    /// fp16 bit patterns.
    F16(Vec<u16>),
    F32(Vec<f32>),
}

/// A `[rows, cols]` row-major weight matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Storage,
}

impl Matrix {
    /// Converts the row-major f32 matrix `w` of `rows` rows to `precision`.
    pub fn new(w: &[f32], rows: usize, cols: usize, precision: Precision) -> Matrix {
        Matrix::stack(&[w], rows, cols, precision)
    }

    /// Stacks row-major f32 matrices with `cols` columns (rows summing to `rows`) into one.
    pub fn stack(parts: &[&[f32]], rows: usize, cols: usize, precision: Precision) -> Matrix {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        assert_eq!(total, rows * cols, "matrix parts do not make {rows}x{cols}");
        let values = parts.iter().flat_map(|p| p.iter().copied());
        let data = match precision {
            Precision::F16 => Storage::F16(values.map(|v| f16::from_f32(v).to_bits()).collect()),
            Precision::F32 => Storage::F32(values.collect()),
        };
        Matrix { rows, cols, data }
    }

    /// The storage precision.
    pub fn precision(&self) -> Precision {
        match self.data {
            Storage::F16(_) => Precision::F16,
            Storage::F32(_) => Precision::F32,
        }
    }

    /// Bytes of weight storage.
    pub fn bytes(&self) -> usize {
        match &self.data {
            Storage::F16(v) => v.len() * 2,
            Storage::F32(v) => v.len() * 4,
        }
    }

    /// Row `r` widened to f32 into `out` (`cols` long).
    pub fn row_into(&self, r: usize, out: &mut [f32]) {
        let span = r * self.cols..(r + 1) * self.cols;
        match &self.data {
            Storage::F16(v) => super::ops::f16_to_f32(&v[span], out),
            Storage::F32(v) => out.copy_from_slice(&v[span]),
        }
    }
}
