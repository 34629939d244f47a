//! Weight matrices, `[rows, cols]` row-major, stored as fp16 or f32 and converted once at
//! load from f32; and the buffers that hold them (huge pages where the system has them).

use half::f16;

use crate::error::{Error, Result};
use crate::simd::Element;
use crate::Cpu;

/// How weight matrices are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// IEEE half precision, widened to f32 inside the kernels (half the memory traffic);
    /// the host key/value cache is held in fp16 too.
    F16,
    /// Full f32, weights and key/value cache alike: exact.
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
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f16" | "fp16" => Ok(Precision::F16),
            "f32" | "fp32" => Ok(Precision::F32),
            _ => Err(Error::UnknownPrecision(s.to_string())),
        }
    }
}

/// The element storage of a [`Matrix`].
#[derive(Clone, Debug, PartialEq)]
pub enum Storage {
    /// fp16 bit patterns.
    F16(Buffer<u16>),
    F32(Buffer<f32>),
}

/// Weight and key/value cache memory. Large buffers are anonymous mappings advised to use
/// transparent huge pages (on Linux), which saves the page walks of streaming a whole model per token and lets the
/// hardware prefetchers run across 2 MB instead of 4 KB; the heap is the fallback.
pub enum Buffer<T: Element> {
    /// `len` elements from byte `offset` (the first 2 MB boundary) of `map`.
    Mapped {
        map: memmap2::MmapMut,
        offset: usize,
        len: usize,
    },
    Heap(Vec<T>),
}

/// Buffers at least this large are mapped.
const MAP_BYTES: usize = 1 << 20;

/// The huge page size the mapped data starts on.
const HUGE_PAGE: usize = 2 << 20;

impl<T: Element> Buffer<T> {
    /// A buffer holding `values` (exactly `len` of them).
    pub fn collect(len: usize, values: impl Iterator<Item = T>) -> Buffer<T> {
        let bytes = len * std::mem::size_of::<T>();
        let Some(mut map) = (bytes >= MAP_BYTES)
            .then(|| memmap2::MmapMut::map_anon(bytes + HUGE_PAGE).ok())
            .flatten()
        else {
            return Buffer::Heap(values.take(len).collect());
        };
        #[cfg(target_os = "linux")]
        {
            // Only advice: without huge pages the buffer works the same, a little slower.
            let _ = map.advise(memmap2::Advice::HugePage);
        }
        let offset = map.as_ptr().align_offset(HUGE_PAGE);
        // SAFETY: the mapping is page-aligned, zero-filled and `bytes` long past `offset`
        // (< HUGE_PAGE), and every bit pattern is a valid `T` (`Element`).
        let slots = unsafe {
            std::slice::from_raw_parts_mut(map.as_mut_ptr().add(offset).cast::<T>(), len)
        };
        for (slot, v) in slots.iter_mut().zip(values) {
            *slot = v;
        }
        Buffer::Mapped { map, offset, len }
    }
}

impl<T: Element> std::ops::Deref for Buffer<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match self {
            // SAFETY: as in `collect`; the mapping lives as long as `self`.
            Buffer::Mapped { map, offset, len } => unsafe {
                std::slice::from_raw_parts(map.as_ptr().add(*offset).cast::<T>(), *len)
            },
            Buffer::Heap(v) => v,
        }
    }
}

impl<T: Element> std::ops::DerefMut for Buffer<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match self {
            // SAFETY: as in `collect`; the mapping is writable and borrowed mutably with `self`.
            Buffer::Mapped { map, offset, len } => unsafe {
                std::slice::from_raw_parts_mut(map.as_mut_ptr().add(*offset).cast::<T>(), *len)
            },
            Buffer::Heap(v) => v,
        }
    }
}

impl<T: Element> Clone for Buffer<T> {
    fn clone(&self) -> Self {
        Buffer::collect(self.len(), self.iter().copied())
    }
}

impl<T: Element> PartialEq for Buffer<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: Element> std::fmt::Debug for Buffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Buffer({} elements)", self.len())
    }
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
            Precision::F16 => Storage::F16(Buffer::collect(
                total,
                values.map(|v| f16::from_f32(v).to_bits()),
            )),
            Precision::F32 => Storage::F32(Buffer::collect(total, values)),
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
    pub fn row_into(&self, cpu: Cpu, r: usize, out: &mut [f32]) {
        let span = r * self.cols..(r + 1) * self.cols;
        match &self.data {
            Storage::F16(v) => crate::convert::f16_to_f32(cpu, &v[span], out),
            Storage::F32(v) => out.copy_from_slice(&v[span]),
        }
    }
}
