//! NumPy `.npy` files (format 1.0–3.0, little-endian fp16/fp32, C order) for `orion eval`.

use anyhow::{bail, Context, Result};
use half::f16;
use std::path::Path;

const MAGIC: &[u8] = b"\x93NUMPY";

/// Element type of an array file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NpyDType {
    F16,
    F32,
}

impl NpyDType {
    fn descr(self) -> &'static str {
        match self {
            NpyDType::F16 => "<f2",
            NpyDType::F32 => "<f4",
        }
    }
}

/// An array read from or written to a `.npy` file; values held as f32.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    pub dtype: NpyDType,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Reads a `.npy` file.
pub fn read(path: &Path) -> Result<Array> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&bytes).with_context(|| format!("{} is not a usable .npy file", path.display()))
}

/// Parses `.npy` bytes.
pub fn parse(bytes: &[u8]) -> Result<Array> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        bail!("missing the \\x93NUMPY magic");
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => bail!("unsupported format version {v}"),
    };
    let end = start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .context("truncated header")?;
    let header = std::str::from_utf8(&bytes[start..end]).context("header is not text")?;
    let descr = dict_value(header, "descr").context("header has no 'descr'")?;
    let dtype = match descr.trim_matches(|c| c == '\'' || c == '"') {
        "<f2" => NpyDType::F16,
        "<f4" => NpyDType::F32,
        other => bail!("dtype {other} is not supported; save float16 ('<f2') or float32 ('<f4')"),
    };
    if dict_value(header, "fortran_order").map(str::trim) != Some("False") {
        bail!("Fortran-order arrays are not supported; save with np.ascontiguousarray");
    }
    let shape_text = dict_value(header, "shape").context("header has no 'shape'")?;
    let shape = shape_text
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .with_context(|| format!("bad dimension {s:?}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let width = if dtype == NpyDType::F16 { 2 } else { 4 };
    let needed = shape
        .iter()
        .try_fold(width, |a: usize, &d| a.checked_mul(d))
        .with_context(|| format!("shape {shape:?} describes more data than any file holds"))?;
    let body = &bytes[end..];
    if body.len() != needed {
        bail!(
            "shape {shape:?} needs {needed} data bytes, the file has {}",
            body.len()
        );
    }
    let data = match dtype {
        NpyDType::F16 => body
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        NpyDType::F32 => body
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    };
    Ok(Array { dtype, shape, data })
}

/// The text after `'key':` up to the next top-level comma or closing brace.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header.find(&format!("'{key}'"))?;
    let rest = header[at + key.len() + 2..]
        .trim_start()
        .strip_prefix(':')?
        .trim_start();
    let mut depth = 0;
    for (i, c) in rest.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' | '}' if depth == 0 => return Some(&rest[..i]),
            _ => {}
        }
    }
    None
}

/// Serializes an array as `.npy` format 1.0.
pub fn to_bytes(a: &Array) -> Vec<u8> {
    let dims: Vec<String> = a.shape.iter().map(|d| d.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}",
        a.dtype.descr()
    );
    // Pad so the data starts on a 64-byte boundary, ending the header with a newline.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + a.data.len() * 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for &v in &a.data {
        match a.dtype {
            NpyDType::F16 => out.extend_from_slice(&f16::from_f32(v).to_le_bytes()),
            NpyDType::F32 => out.extend_from_slice(&v.to_le_bytes()),
        }
    }
    out
}

/// Writes an array to a `.npy` file.
pub fn write(path: &Path, a: &Array) -> Result<()> {
    files::write_bytes(path, &to_bytes(a)).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_fp16_and_fp32() {
        for dtype in [NpyDType::F16, NpyDType::F32] {
            let a = Array {
                dtype,
                shape: vec![1, 3, 1, 2],
                data: vec![0.5, -1.0, 2.0, 65504.0, 0.25, -0.125],
            };
            let bytes = to_bytes(&a);
            assert_eq!(
                (bytes.len() - a.data.len() * if dtype == NpyDType::F16 { 2 } else { 4 }) % 64,
                0
            );
            assert_eq!(parse(&bytes).unwrap(), a);
        }
    }

    #[test]
    fn rejects_bad_files_with_a_reason() {
        assert!(parse(b"hello").unwrap_err().to_string().contains("magic"));
        let mut a = to_bytes(&Array {
            dtype: NpyDType::F32,
            shape: vec![4],
            data: vec![1.0; 4],
        });
        a.truncate(a.len() - 1);
        assert!(parse(&a).unwrap_err().to_string().contains("data bytes"));
        let f64_header = b"\x93NUMPY\x01\x00\x46\x00{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }                      \n";
        assert!(parse(f64_header).unwrap_err().to_string().contains("<f8"));
    }

    #[test]
    fn a_shape_whose_byte_count_overflows_is_an_error_not_a_wrap() {
        // 2^62 elements of 4 bytes: the element count fits a usize, the byte count does not.
        let header = format!(
            "{{'descr': '<f4', 'fortran_order': False, 'shape': ({},), }}",
            1u64 << 62
        );
        let mut bytes = MAGIC.to_vec();
        bytes.extend([1, 0]);
        bytes.extend((header.len() as u16).to_le_bytes());
        bytes.extend(header.as_bytes());
        let msg = format!("{:#}", parse(&bytes).unwrap_err());
        assert!(msg.contains("more data than any file holds"), "{msg}");
    }
}
