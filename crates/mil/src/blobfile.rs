//! BLOBFILE weights: the coremltools "MIL blob storage v2" file that a MIL
//! `BLOBFILE(path=..., offset=uint64(N))` literal points into (`spec/ane.md` §3).
//!
//! # Layout
//!
//! Everything is little-endian and every structure is 64 bytes:
//!
//! ```text
//! 0     file header   u32 blob count, u32 version = 2, 56 zero bytes
//! 64    record 0      u32 magic 0xDEADBEEF, u32 dtype code, u64 data size in bytes,
//!                     u64 absolute data offset, u64 padding bits, 32 reserved bytes
//! 128   data 0        row-major elements, size bytes
//!       zero padding  up to the next multiple of 64
//! R1    record 1      data offset R1 + 64
//! R1+64 data 1
//! ...                 (no padding after the last blob's data)
//! ```
//!
//! Records and data are interleaved: coremltools (`MILBlob/Blob/StorageWriter.cpp`, checked
//! empirically against coremltools 9.0) appends each blob as its record at the next 64-byte
//! boundary followed directly by its data, and enumerates blobs the same way: the first record
//! is at 64 and the record after a blob is at its data end rounded up to 64. The `offset` of a
//! MIL `BLOBFILE` reference is the offset of the blob's RECORD (64 for the first blob), not of
//! its data.
//!
//! The padding field (record bytes 24..32) counts the unused high bits of the last byte of a
//! sub-byte blob (e.g. 4 for three int4 values in two bytes); elements of sub-byte types are
//! packed least-significant bit first. coremltools before iOS 18 left the record's reserved
//! bytes, and the padding field of whole-byte types, uninitialized, so the reader ignores them.
//!
//! # Dtype codes (`MILBlob/Blob/BlobDataType.hpp`)
//!
//! | code | dtype | bits | | code | dtype | bits |
//! |---|---|---|---|---|---|---|
//! | 1 | fp16 | 16 | | 10 | uint2 | 2 |
//! | 2 | fp32 | 32 | | 11 | uint4 | 4 |
//! | 3 | uint8 | 8 | | 12 | uint3 | 3 |
//! | 4 | int8 | 8 | | 13 | uint6 | 6 |
//! | 5 | bf16 | 16 | | 14 | int32 | 32 |
//! | 6 | int16 | 16 | | 15 | uint32 | 32 |
//! | 7 | uint16 | 16 | | 16 | fp8e4m3fn | 8 |
//! | 8 | int4 | 4 | | 17 | fp8e5m2 | 8 |
//! | 9 | uint1 | 1 | | | | |
//!
//! # Validation
//!
//! [`BlobFile::parse`] walks the records the way coremltools enumerates them and checks, up
//! front: the file holds the header; the version is 2 and header bytes 8..64 are zero; the count
//! fits the file; every record lies inside the file, opens with the magic and names a known
//! dtype; every blob is non-empty, 64-byte aligned, starts after its own record, ends inside the
//! file without overflow and holds whole elements (sub-byte padding below 8 bits); and nothing
//! but zero padding to a 64-byte boundary follows the last blob. Afterwards only asking for an
//! offset or a type the file does not have can fail.

use std::fmt;
use std::path::Path;

use half::{bf16, f16};

use crate::ast::DType;
use crate::error::{Error, Result};

/// Size of the file header in bytes.
pub const HEADER_SIZE: u64 = 64;
/// Size of one blob record in bytes.
pub const RECORD_SIZE: u64 = 64;
/// Alignment of every record and every blob's data.
pub const ALIGNMENT: u64 = 64;
/// The only file version this module reads and writes.
pub const VERSION: u32 = 2;
/// The magic number that opens every blob record.
pub const RECORD_MAGIC: u32 = 0xDEAD_BEEF;

/// How many valid offsets an "offset not at a record" error lists.
const LISTED_OFFSETS: usize = 10;

/// The element type of a blob, with coremltools' numeric codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlobDType {
    Fp16 = 1,
    Fp32 = 2,
    UInt8 = 3,
    Int8 = 4,
    BFloat16 = 5,
    Int16 = 6,
    UInt16 = 7,
    Int4 = 8,
    UInt1 = 9,
    UInt2 = 10,
    UInt4 = 11,
    UInt3 = 12,
    UInt6 = 13,
    Int32 = 14,
    UInt32 = 15,
    Fp8E4M3FN = 16,
    Fp8E5M2 = 17,
}

impl BlobDType {
    /// Every blob dtype, in code order.
    pub const ALL: [BlobDType; 17] = [
        BlobDType::Fp16,
        BlobDType::Fp32,
        BlobDType::UInt8,
        BlobDType::Int8,
        BlobDType::BFloat16,
        BlobDType::Int16,
        BlobDType::UInt16,
        BlobDType::Int4,
        BlobDType::UInt1,
        BlobDType::UInt2,
        BlobDType::UInt4,
        BlobDType::UInt3,
        BlobDType::UInt6,
        BlobDType::Int32,
        BlobDType::UInt32,
        BlobDType::Fp8E4M3FN,
        BlobDType::Fp8E5M2,
    ];

    /// The code stored in a record's dtype field.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The dtype with a record code, `None` for unknown codes.
    pub fn from_code(code: u32) -> Option<BlobDType> {
        BlobDType::ALL.into_iter().find(|d| d.code() == code)
    }

    /// A short lower-case name (`fp16`, `int4`, …).
    pub fn name(self) -> &'static str {
        match self {
            BlobDType::Fp16 => "fp16",
            BlobDType::Fp32 => "fp32",
            BlobDType::UInt8 => "uint8",
            BlobDType::Int8 => "int8",
            BlobDType::BFloat16 => "bf16",
            BlobDType::Int16 => "int16",
            BlobDType::UInt16 => "uint16",
            BlobDType::Int4 => "int4",
            BlobDType::UInt1 => "uint1",
            BlobDType::UInt2 => "uint2",
            BlobDType::UInt4 => "uint4",
            BlobDType::UInt3 => "uint3",
            BlobDType::UInt6 => "uint6",
            BlobDType::Int32 => "int32",
            BlobDType::UInt32 => "uint32",
            BlobDType::Fp8E4M3FN => "fp8e4m3fn",
            BlobDType::Fp8E5M2 => "fp8e5m2",
        }
    }

    /// Bits per element.
    pub fn bits(self) -> u32 {
        match self {
            BlobDType::UInt1 => 1,
            BlobDType::UInt2 => 2,
            BlobDType::UInt3 => 3,
            BlobDType::Int4 | BlobDType::UInt4 => 4,
            BlobDType::UInt6 => 6,
            BlobDType::UInt8 | BlobDType::Int8 | BlobDType::Fp8E4M3FN | BlobDType::Fp8E5M2 => 8,
            BlobDType::Fp16 | BlobDType::BFloat16 | BlobDType::Int16 | BlobDType::UInt16 => 16,
            BlobDType::Fp32 | BlobDType::Int32 | BlobDType::UInt32 => 32,
        }
    }

    /// True for types narrower than a byte, which are stored bit-packed.
    pub fn is_sub_byte(self) -> bool {
        self.bits() < 8
    }

    /// The MIL dtype with the same elements, where MIL has one.
    pub fn to_mil(self) -> Option<DType> {
        match self {
            BlobDType::Fp16 => Some(DType::Fp16),
            BlobDType::Fp32 => Some(DType::Fp32),
            BlobDType::UInt8 => Some(DType::UInt8),
            BlobDType::Int8 => Some(DType::Int8),
            BlobDType::Int32 => Some(DType::Int32),
            _ => None,
        }
    }

    /// The blob dtype that stores a MIL dtype, where one exists.
    pub fn from_mil(dtype: DType) -> Option<BlobDType> {
        BlobDType::ALL
            .into_iter()
            .find(|d| d.to_mil() == Some(dtype))
    }

    /// Bytes that `numel` elements occupy, padded to whole bytes; `None` on overflow.
    fn bytes_for(self, numel: usize) -> Option<usize> {
        numel
            .checked_mul(self.bits() as usize)
            .and_then(|bits| bits.checked_add(7))
            .map(|bits| bits / 8)
    }
}

impl fmt::Display for BlobDType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A blob error without a path; callers attach the path with [`Error::with_blob_path`].
fn blob_error(message: impl Into<String>) -> Error {
    Error::Blob {
        path: None,
        message: message.into(),
    }
}

impl Error {
    /// Names the file of a [`Error::Blob`] that has no path yet; other errors pass through.
    pub fn with_blob_path(self, path: impl Into<String>) -> Error {
        match self {
            Error::Blob {
                path: None,
                message,
            } => Error::Blob {
                path: Some(path.into()),
                message,
            },
            other => other,
        }
    }
}

/// Builds a BLOBFILE in memory, laying blobs out exactly as coremltools does.
#[derive(Clone, Debug)]
pub struct BlobWriter {
    bytes: Vec<u8>,
    count: u32,
}

impl Default for BlobWriter {
    fn default() -> Self {
        BlobWriter::new()
    }
}

impl BlobWriter {
    /// An empty file: just the header.
    pub fn new() -> Self {
        let mut bytes = vec![0; HEADER_SIZE as usize];
        bytes[4..8].copy_from_slice(&VERSION.to_le_bytes());
        BlobWriter { bytes, count: 0 }
    }

    /// Appends a blob of row-major little-endian elements and returns its record offset.
    ///
    /// Sub-byte dtypes take packed data whose every bit is an element (see [`Self::add_packed`]).
    ///
    /// # Panics
    /// If `data` is empty or not a whole number of elements: both are caller bugs.
    pub fn add(&mut self, dtype: BlobDType, data: &[u8]) -> u64 {
        let bits = dtype.bits() as usize;
        assert!(
            !data.is_empty() && (data.len() * 8).is_multiple_of(bits),
            "a {dtype} blob needs a non-empty whole number of elements, got {} bytes",
            data.len()
        );
        self.push(dtype, data, 0)
    }

    /// Appends `numel` bit-packed sub-byte elements and returns the record offset.
    ///
    /// # Panics
    /// If `dtype` is not sub-byte, `numel` is 0, or `packed` is not exactly the bytes needed.
    pub fn add_packed(&mut self, dtype: BlobDType, packed: &[u8], numel: usize) -> u64 {
        assert!(dtype.is_sub_byte(), "{dtype} is not a sub-byte dtype");
        assert!(
            numel > 0 && dtype.bytes_for(numel) == Some(packed.len()),
            "{numel} {dtype} elements do not pack into {} bytes",
            packed.len()
        );
        let padding = packed.len() * 8 - numel * dtype.bits() as usize;
        self.push(dtype, packed, padding as u64)
    }

    /// Appends an fp16 blob and returns its record offset.
    pub fn add_f16(&mut self, values: &[f16]) -> u64 {
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.add(BlobDType::Fp16, &data)
    }

    /// Appends an fp32 blob and returns its record offset.
    pub fn add_f32(&mut self, values: &[f32]) -> u64 {
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.add(BlobDType::Fp32, &data)
    }

    /// Number of blobs added so far.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True before the first blob is added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The finished file's bytes.
    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }

    /// Writes the file to `path` atomically (see [`files::write`]).
    pub fn write_to(self, path: &Path) -> Result<()> {
        files::write_bytes(path, &self.bytes).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// Appends a record at the next aligned offset, its data right after it, and bumps the count.
    fn push(&mut self, dtype: BlobDType, data: &[u8], padding_bits: u64) -> u64 {
        self.count = self
            .count
            .checked_add(1)
            .expect("a blob file holds at most u32::MAX blobs");
        let record = self.bytes.len().next_multiple_of(ALIGNMENT as usize);
        self.bytes.resize(record, 0);
        let record_offset = record as u64;
        let mut record_bytes = [0u8; RECORD_SIZE as usize];
        record_bytes[0..4].copy_from_slice(&RECORD_MAGIC.to_le_bytes());
        record_bytes[4..8].copy_from_slice(&dtype.code().to_le_bytes());
        record_bytes[8..16].copy_from_slice(&(data.len() as u64).to_le_bytes());
        record_bytes[16..24].copy_from_slice(&(record_offset + RECORD_SIZE).to_le_bytes());
        record_bytes[24..32].copy_from_slice(&padding_bits.to_le_bytes());
        self.bytes.extend_from_slice(&record_bytes);
        self.bytes.extend_from_slice(data);
        self.bytes[0..4].copy_from_slice(&self.count.to_le_bytes());
        record_offset
    }
}

/// One blob of a parsed file: its place, element type and data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobRef<'a> {
    /// Offset of the blob's record: the `offset` of a MIL `BLOBFILE` reference.
    pub record_offset: u64,
    /// Absolute offset of the data.
    pub data_offset: u64,
    /// Element type.
    pub dtype: BlobDType,
    /// Unused high bits of the last byte of a sub-byte blob; 0 otherwise.
    pub padding_bits: u8,
    /// The raw little-endian (or bit-packed) elements.
    pub data: &'a [u8],
}

impl BlobRef<'_> {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        (self.data.len() * 8 - self.padding_bits as usize) / self.dtype.bits() as usize
    }

    /// The elements as f32: exact except for int32/uint32 beyond 2^24 (rounded to nearest).
    ///
    /// Fails only for fp8 blobs, which have no conversion here.
    pub fn to_f32_vec(&self) -> Result<Vec<f32>> {
        let d = self.data;
        Ok(match self.dtype {
            BlobDType::Fp16 => le_chunks(d, |b| f16::from_le_bytes(b).to_f32()),
            BlobDType::BFloat16 => le_chunks(d, |b| bf16::from_le_bytes(b).to_f32()),
            BlobDType::Fp32 => le_chunks(d, f32::from_le_bytes),
            BlobDType::UInt8 => d.iter().map(|&b| f32::from(b)).collect(),
            BlobDType::Int8 => d.iter().map(|&b| f32::from(b as i8)).collect(),
            BlobDType::Int16 => le_chunks(d, |b| f32::from(i16::from_le_bytes(b))),
            BlobDType::UInt16 => le_chunks(d, |b| f32::from(u16::from_le_bytes(b))),
            BlobDType::Int32 => le_chunks(d, |b| i32::from_le_bytes(b) as f32),
            BlobDType::UInt32 => le_chunks(d, |b| u32::from_le_bytes(b) as f32),
            BlobDType::Int4
            | BlobDType::UInt1
            | BlobDType::UInt2
            | BlobDType::UInt3
            | BlobDType::UInt4
            | BlobDType::UInt6 => self.unpack_bits().map(|v| v as f32).collect(),
            BlobDType::Fp8E4M3FN | BlobDType::Fp8E5M2 => {
                return Err(blob_error(format!(
                    "blob at offset {}: converting {} data to f32 is not supported",
                    self.record_offset, self.dtype
                )))
            }
        })
    }

    /// The elements of a sub-byte blob, least-significant bit first, int4 sign-extended.
    fn unpack_bits(&self) -> impl Iterator<Item = i32> + '_ {
        let bits = self.dtype.bits() as usize;
        let signed = self.dtype == BlobDType::Int4;
        (0..self.numel()).map(move |i| {
            let value = (0..bits).fold(0u32, |acc, k| {
                let bit = i * bits + k;
                acc | (u32::from(self.data[bit / 8] >> (bit % 8)) & 1) << k
            });
            if signed && value >> (bits - 1) == 1 {
                value as i32 - (1 << bits)
            } else {
                value as i32
            }
        })
    }
}

/// Converts each `N`-byte little-endian chunk; the caller guarantees whole chunks.
fn le_chunks<const N: usize>(data: &[u8], f: impl Fn([u8; N]) -> f32) -> Vec<f32> {
    data.chunks_exact(N)
        .map(|c| {
            let mut b = [0; N];
            b.copy_from_slice(c);
            f(b)
        })
        .collect()
}

/// A validated BLOBFILE borrowed from its bytes.
#[derive(Clone, Debug)]
pub struct BlobFile<'a> {
    /// Every blob, by increasing record offset.
    blobs: Vec<BlobRef<'a>>,
}

impl<'a> BlobFile<'a> {
    /// Validates the header and every record and blob of a file.
    pub fn parse(bytes: &'a [u8]) -> Result<BlobFile<'a>> {
        let count = parse_header(bytes)?;
        let mut blobs = Vec::with_capacity(count as usize);
        let mut record_offset = HEADER_SIZE;
        let mut end = HEADER_SIZE;
        for index in 0..count {
            let blob = parse_record(bytes, index, count, record_offset)?;
            end = blob.data_offset + blob.data.len() as u64;
            // `end` is at most the file length, so rounding it up cannot overflow.
            record_offset = end.next_multiple_of(ALIGNMENT);
            blobs.push(blob);
        }
        check_tail(bytes, end, count)?;
        Ok(BlobFile { blobs })
    }

    /// Number of blobs.
    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    /// True for a file with no blobs.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Every blob, by increasing record offset.
    pub fn blobs(&self) -> impl Iterator<Item = BlobRef<'a>> + '_ {
        self.blobs.iter().copied()
    }

    /// The blob whose record is at `record_offset` (the offset of a MIL `BLOBFILE` reference).
    pub fn blob_at(&self, record_offset: u64) -> Result<BlobRef<'a>> {
        match self
            .blobs
            .binary_search_by_key(&record_offset, |b| b.record_offset)
        {
            Ok(i) => Ok(self.blobs[i]),
            Err(_) => Err(blob_error(format!(
                "no blob record at offset {record_offset}; {}",
                self.describe_offsets()
            ))),
        }
    }

    /// The blob at `record_offset`, checked to hold `numel` elements of the MIL dtype `dtype`.
    pub fn check_type(
        &self,
        record_offset: u64,
        dtype: DType,
        numel: usize,
    ) -> Result<BlobRef<'a>> {
        let blob = self.blob_at(record_offset)?;
        let wanted = BlobDType::from_mil(dtype).ok_or_else(|| {
            blob_error(format!(
                "blob at offset {record_offset}: MIL type {dtype} cannot be stored in a blob file"
            ))
        })?;
        if blob.dtype != wanted {
            return Err(blob_error(format!(
                "blob at offset {record_offset} holds {} data but the MIL type is {dtype}",
                blob.dtype
            )));
        }
        if blob.numel() != numel {
            let declared = wanted
                .bytes_for(numel)
                .map_or_else(|| "overflowing usize".to_string(), |b| b.to_string());
            return Err(blob_error(format!(
                "blob at offset {record_offset} holds {} {dtype} elements ({} bytes) but the MIL \
                 type declares {numel} elements ({declared} bytes)",
                blob.numel(),
                blob.data.len()
            )));
        }
        Ok(blob)
    }

    /// "valid record offsets are …", listing at most [`LISTED_OFFSETS`] of them.
    fn describe_offsets(&self) -> String {
        if self.blobs.is_empty() {
            return "the file holds no blobs".to_string();
        }
        let listed: Vec<String> = self
            .blobs
            .iter()
            .take(LISTED_OFFSETS)
            .map(|b| b.record_offset.to_string())
            .collect();
        let more = if self.blobs.len() > LISTED_OFFSETS {
            format!(", … ({} in all)", self.blobs.len())
        } else {
            String::new()
        };
        format!("valid record offsets are {}{more}", listed.join(", "))
    }
}

/// Reads a little-endian u32 at `at`; the caller guarantees the bytes exist.
fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Reads a little-endian u64 at `at`; the caller guarantees the bytes exist.
fn read_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(std::array::from_fn(|k| bytes[at + k]))
}

/// Checks the header and returns the blob count.
fn parse_header(bytes: &[u8]) -> Result<u32> {
    let len = bytes.len() as u64;
    if len < HEADER_SIZE {
        return Err(blob_error(format!(
            "file is {len} bytes, shorter than the {HEADER_SIZE}-byte header"
        )));
    }
    let version = read_u32(bytes, 4);
    if version != VERSION {
        return Err(blob_error(format!(
            "header version is {version} (bytes 4..8 = {:02x?}), expected {VERSION}: not a MIL \
             blob storage v2 weight file as written by coremltools",
            &bytes[4..8]
        )));
    }
    if let Some(i) = bytes[8..HEADER_SIZE as usize].iter().position(|&b| b != 0) {
        return Err(blob_error(format!(
            "header byte {} is {:#04x}, expected 0 (header bytes 8..64 are reserved)",
            i + 8,
            bytes[i + 8]
        )));
    }
    let count = read_u32(bytes, 0);
    let room = (len - HEADER_SIZE) / RECORD_SIZE;
    if u64::from(count) > room {
        return Err(blob_error(format!(
            "header declares {count} blobs but a {len}-byte file has room for at most {room} records"
        )));
    }
    Ok(count)
}

/// Checks record `index` at `at` and the data it points to.
fn parse_record(bytes: &[u8], index: u32, count: u32, at: u64) -> Result<BlobRef<'_>> {
    let len = bytes.len() as u64;
    let here = format!("record {index} of {count} at offset {at}");
    if at.checked_add(RECORD_SIZE).is_none_or(|end| end > len) {
        return Err(blob_error(format!(
            "{here}: the {RECORD_SIZE}-byte record runs past the end of the {len}-byte file \
             (truncated)"
        )));
    }
    let r = at as usize;
    let magic = read_u32(bytes, r);
    if magic != RECORD_MAGIC {
        return Err(blob_error(format!(
            "{here}: magic is {magic:#010x}, expected {RECORD_MAGIC:#010x}"
        )));
    }
    let code = read_u32(bytes, r + 4);
    let dtype = BlobDType::from_code(code).ok_or_else(|| {
        blob_error(format!(
            "{here}: unknown dtype code {code} (known codes are 1..={})",
            BlobDType::ALL.len()
        ))
    })?;
    let size = read_u64(bytes, r + 8);
    let data_offset = read_u64(bytes, r + 16);
    if size == 0 {
        return Err(blob_error(format!(
            "{here}: declares an empty {dtype} blob"
        )));
    }
    if !data_offset.is_multiple_of(ALIGNMENT) {
        return Err(blob_error(format!(
            "{here}: data offset {data_offset} is not {ALIGNMENT}-byte aligned"
        )));
    }
    if data_offset < at + RECORD_SIZE {
        return Err(blob_error(format!(
            "{here}: data offset {data_offset} overlaps the header or a record (data must start \
             at or after {})",
            at + RECORD_SIZE
        )));
    }
    let end = data_offset.checked_add(size).ok_or_else(|| {
        blob_error(format!(
            "{here}: data offset {data_offset} + size {size} overflows u64"
        ))
    })?;
    if end > len {
        return Err(blob_error(format!(
            "{here}: data {data_offset}..{end} runs past the end of the {len}-byte file (truncated)"
        )));
    }
    let padding_bits = check_elements(dtype, size, read_u64(bytes, r + 24), &here)?;
    Ok(BlobRef {
        record_offset: at,
        data_offset,
        dtype,
        padding_bits,
        data: &bytes[data_offset as usize..end as usize],
    })
}

/// Checks that `size` bytes hold whole elements and returns the padding bits that apply.
fn check_elements(dtype: BlobDType, size: u64, padding_field: u64, here: &str) -> Result<u8> {
    let bits = u64::from(dtype.bits());
    if !dtype.is_sub_byte() {
        if !(size * 8).is_multiple_of(bits) {
            return Err(blob_error(format!(
                "{here}: {size} bytes is not a whole number of {dtype} elements ({} bytes each)",
                bits / 8
            )));
        }
        return Ok(0);
    }
    if padding_field >= 8 {
        return Err(blob_error(format!(
            "{here}: {padding_field} padding bits, expected fewer than 8"
        )));
    }
    if !(size * 8 - padding_field).is_multiple_of(bits) {
        return Err(blob_error(format!(
            "{here}: {size} bytes less {padding_field} padding bits is not a whole number of \
             {bits}-bit {dtype} elements"
        )));
    }
    Ok(padding_field as u8)
}

/// Checks that nothing but zero alignment padding follows the last blob, which ends at `end`.
fn check_tail(bytes: &[u8], end: u64, count: u32) -> Result<()> {
    let len = bytes.len() as u64;
    let tail = &bytes[end as usize..];
    if len > end.next_multiple_of(ALIGNMENT) || tail.iter().any(|&b| b != 0) {
        return Err(blob_error(format!(
            "{} bytes follow the last of the {count} blobs (which ends at {end}) in a {len}-byte \
             file; only zero padding to a {ALIGNMENT}-byte boundary may (is the header count too \
             small?)",
            tail.len()
        )));
    }
    Ok(())
}
