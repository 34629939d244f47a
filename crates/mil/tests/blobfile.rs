//! BLOBFILE reader and writer: layout, coremltools interoperability and malformed inputs.

use std::path::PathBuf;

use half::f16;
use mil::blobfile::{BlobDType, BlobFile, BlobWriter, RECORD_MAGIC};
use mil::{DType, Error};
use proptest::prelude::*;

/// A file in the coremltools fixture directory.
fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/coremltools")
        .join(name)
}

fn read_fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// One line of a `*_expected.txt` fixture.
#[derive(Debug)]
struct Expected {
    offset: u64,
    dtype: BlobDType,
    shape: Vec<usize>,
    /// fp16/fp32 as bit patterns, integers as themselves.
    values: Vec<i64>,
}

impl Expected {
    fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The values as f32, decoding float bit patterns.
    fn as_f32(&self) -> Vec<f32> {
        self.values
            .iter()
            .map(|&v| match self.dtype {
                BlobDType::Fp16 => f16::from_bits(v as u16).to_f32(),
                BlobDType::Fp32 => f32::from_bits(v as u32),
                _ => v as f32,
            })
            .collect()
    }

    /// The little-endian bytes of a whole-byte blob.
    fn as_bytes(&self) -> Vec<u8> {
        let width = self.dtype.bits() as usize / 8;
        self.values
            .iter()
            .flat_map(|v| v.to_le_bytes()[..width].to_vec())
            .collect()
    }
}

fn load_expected(name: &str) -> Vec<Expected> {
    let text = String::from_utf8(read_fixture(name)).expect("expected file is UTF-8");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut words = l.split_whitespace();
            let offset = words.next().unwrap().parse().unwrap();
            let dtype_name = words.next().unwrap();
            let dtype = BlobDType::ALL
                .into_iter()
                .find(|d| d.name() == dtype_name)
                .unwrap_or_else(|| panic!("unknown dtype {dtype_name}"));
            let shape = words
                .next()
                .unwrap()
                .split(',')
                .map(|d| d.parse().unwrap())
                .collect();
            let values = words.map(|v| v.parse().unwrap()).collect();
            Expected {
                offset,
                dtype,
                shape,
                values,
            }
        })
        .collect()
}

/// The message of a blob error, failing the test on success or any other error.
fn blob_message<T: std::fmt::Debug>(result: Result<T, Error>) -> String {
    match result {
        Err(Error::Blob {
            path: None,
            message,
        }) => message,
        other => panic!("expected a path-less blob error, got {other:?}"),
    }
}

fn parse_error(bytes: &[u8]) -> String {
    blob_message(BlobFile::parse(bytes))
}

fn put_u32(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(bytes: &mut [u8], at: usize, v: u64) {
    bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// A valid 578-byte file: fp16 ×3 at record 64, fp32 ×20 at 192, int8 ×5 at 384, uint4 ×3 at 512.
fn sample_file() -> Vec<u8> {
    let mut w = BlobWriter::new();
    w.add_f16(&[
        f16::from_f32(1.0),
        f16::from_f32(-2.5),
        f16::from_f32(0.125),
    ]);
    w.add_f32(&(0..20).map(|i| i as f32).collect::<Vec<_>>());
    w.add(BlobDType::Int8, &[1, 2, 3, 0xff, 0x80]);
    w.add_packed(BlobDType::UInt4, &[0x21, 0x03], 3);
    w.finish()
}

// ---- layout and round trip -------------------------------------------------------------

#[test]
fn first_blob_record_is_at_64_and_its_data_at_128() {
    let mut w = BlobWriter::new();
    assert_eq!(w.add_f16(&[f16::ONE; 3]), 64);
    assert_eq!(w.add_f32(&[1.0]), 192);
    let bytes = w.finish();
    assert_eq!(&bytes[0..8], &[2, 0, 0, 0, 2, 0, 0, 0]);
    assert_eq!(&bytes[64..68], &RECORD_MAGIC.to_le_bytes());
    assert_eq!(&bytes[80..88], &128u64.to_le_bytes());
    assert_eq!(bytes.len(), 192 + 64 + 4, "no padding after the last blob");
    let file = BlobFile::parse(&bytes).unwrap();
    let blob = file.blob_at(64).unwrap();
    assert_eq!(
        (blob.data_offset, blob.dtype, blob.numel()),
        (128, BlobDType::Fp16, 3)
    );
}

#[test]
fn header_only_file_has_no_blobs() {
    let w = BlobWriter::new();
    assert!(w.is_empty());
    let bytes = w.finish();
    assert_eq!(bytes.len(), 64);
    let file = BlobFile::parse(&bytes).unwrap();
    assert!(file.is_empty());
    assert!(blob_message(file.blob_at(64)).contains("holds no blobs"));
}

/// A whole-byte dtype and a non-empty payload of whole elements.
fn blob_strategy() -> impl Strategy<Value = (BlobDType, Vec<u8>)> {
    let dtypes: Vec<BlobDType> = BlobDType::ALL
        .into_iter()
        .filter(|d| !d.is_sub_byte())
        .collect();
    (proptest::sample::select(dtypes), 1usize..40).prop_flat_map(|(dtype, numel)| {
        let len = numel * dtype.bits() as usize / 8;
        (Just(dtype), proptest::collection::vec(any::<u8>(), len))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn random_blobs_round_trip_at_aligned_offsets(
        blobs in proptest::collection::vec(blob_strategy(), 0..8)
    ) {
        let mut w = BlobWriter::new();
        let offsets: Vec<u64> = blobs.iter().map(|(d, data)| w.add(*d, data)).collect();
        prop_assert_eq!(w.len(), blobs.len());
        let bytes = w.finish();
        let file = BlobFile::parse(&bytes).unwrap();
        prop_assert_eq!(file.len(), blobs.len());
        let mut expected_record = 64;
        for ((dtype, data), (offset, blob)) in blobs.iter().zip(offsets.iter().zip(file.blobs())) {
            prop_assert_eq!(*offset, expected_record);
            prop_assert_eq!(blob.record_offset, *offset);
            prop_assert_eq!(blob.data_offset, offset + 64);
            prop_assert_eq!(blob.data_offset % 64, 0);
            prop_assert_eq!(blob.dtype, *dtype);
            prop_assert_eq!(blob.data, &data[..]);
            prop_assert_eq!(file.blob_at(*offset).unwrap(), blob);
            expected_record = (blob.data_offset + data.len() as u64).next_multiple_of(64);
        }
    }
}

#[test]
fn add_packed_records_the_unused_bits() {
    let mut w = BlobWriter::new();
    let offset = w.add_packed(BlobDType::Int4, &[0xe1, 0x03], 3);
    let bytes = w.finish();
    assert_eq!(
        &bytes[offset as usize + 24..offset as usize + 32],
        &4u64.to_le_bytes()
    );
    let blob = BlobFile::parse(&bytes).unwrap().blob_at(offset).unwrap();
    assert_eq!((blob.padding_bits, blob.numel()), (4, 3));
    assert_eq!(blob.to_f32_vec().unwrap(), [1.0, -2.0, 3.0]);
}

#[test]
#[should_panic(expected = "whole number of elements")]
fn add_panics_on_a_partial_element() {
    BlobWriter::new().add(BlobDType::Fp16, &[1, 2, 3]);
}

#[test]
fn dtype_codes_round_trip_and_map_to_mil() {
    for d in BlobDType::ALL {
        assert_eq!(BlobDType::from_code(d.code()), Some(d));
    }
    assert_eq!(BlobDType::from_code(0), None);
    assert_eq!(BlobDType::from_code(18), None);
    assert_eq!(BlobDType::Fp16.code(), 1);
    assert_eq!(BlobDType::UInt8.code(), 3);
    assert_eq!(BlobDType::Int8.code(), 4);
    assert_eq!(BlobDType::Int32.code(), 14);
    for d in DType::ALL {
        match BlobDType::from_mil(d) {
            Some(b) => assert_eq!(b.to_mil(), Some(d)),
            None => assert!(matches!(d, DType::Bool | DType::String | DType::UInt64)),
        }
    }
    assert_eq!(BlobDType::BFloat16.to_mil(), None);
}

#[test]
fn to_f32_vec_decodes_bf16_and_wide_integers() {
    let mut w = BlobWriter::new();
    let bf = w.add(BlobDType::BFloat16, &[0xc0, 0x3f, 0x80, 0xbf]);
    let u16s = w.add(BlobDType::UInt16, &[0xff, 0xff]);
    let i32s = w.add(BlobDType::Int32, &(-7i32).to_le_bytes());
    let bytes = w.finish();
    let file = BlobFile::parse(&bytes).unwrap();
    assert_eq!(file.blob_at(bf).unwrap().to_f32_vec().unwrap(), [1.5, -1.0]);
    assert_eq!(file.blob_at(u16s).unwrap().to_f32_vec().unwrap(), [65535.0]);
    assert_eq!(file.blob_at(i32s).unwrap().to_f32_vec().unwrap(), [-7.0]);
}

#[test]
fn fp8_blobs_have_no_f32_conversion() {
    let mut w = BlobWriter::new();
    let offset = w.add(BlobDType::Fp8E4M3FN, &[0x38]);
    let bytes = w.finish();
    let blob = BlobFile::parse(&bytes).unwrap().blob_at(offset).unwrap();
    assert!(blob_message(blob.to_f32_vec()).contains("fp8e4m3fn"));
}

#[test]
fn write_to_leaves_exactly_the_finished_bytes() {
    let dir = std::env::temp_dir().join(format!("orion-blobfile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("weight.bin");
    let mut w = BlobWriter::new();
    w.add_f32(&[3.0, 4.0]);
    let expected = w.clone().finish();
    w.write_to(&path).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), expected);
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "temporary file left behind"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---- coremltools interoperability -------------------------------------------------------

#[test]
fn coremltools_blob_writer_file_holds_the_expected_arrays() {
    let bytes = read_fixture("coremltools_weight.bin");
    let file = BlobFile::parse(&bytes).unwrap();
    let expected = load_expected("coremltools_expected.txt");
    assert_eq!(file.len(), expected.len());
    for (want, blob) in expected.iter().zip(file.blobs()) {
        assert_eq!(blob.record_offset, want.offset, "{want:?}");
        assert_eq!(blob.dtype, want.dtype, "at {}", want.offset);
        assert_eq!(blob.numel(), want.numel(), "at {}", want.offset);
        assert_eq!(
            blob.to_f32_vec().unwrap(),
            want.as_f32(),
            "at {}",
            want.offset
        );
        if !want.dtype.is_sub_byte() {
            assert_eq!(blob.data, want.as_bytes(), "at {}", want.offset);
        }
    }
    let dtypes: Vec<BlobDType> = file.blobs().map(|b| b.dtype).collect();
    assert!(dtypes.contains(&BlobDType::UInt6) && dtypes.contains(&BlobDType::Int32));
}

#[test]
fn mlpackage_weights_resolve_the_programs_blobfile_offsets() {
    let bytes = read_fixture("mlpackage_weight.bin");
    let file = BlobFile::parse(&bytes).unwrap();
    let expected = load_expected("mlpackage_expected.txt");
    assert_eq!(file.len(), expected.len());
    for want in &expected {
        let mil_dtype = want.dtype.to_mil().unwrap();
        let blob = file
            .check_type(want.offset, mil_dtype, want.numel())
            .unwrap();
        assert_eq!(blob.data, want.as_bytes(), "at {}", want.offset);
    }
}

#[test]
fn writer_reproduces_coremltools_files_byte_for_byte() {
    for name in ["coremltools_weight.bin", "mlpackage_weight.bin"] {
        let bytes = read_fixture(name);
        let file = BlobFile::parse(&bytes).unwrap();
        let mut w = BlobWriter::new();
        for blob in file.blobs() {
            let offset = if blob.dtype.is_sub_byte() {
                w.add_packed(blob.dtype, blob.data, blob.numel())
            } else {
                w.add(blob.dtype, blob.data)
            };
            assert_eq!(offset, blob.record_offset, "{name}");
        }
        assert!(
            w.finish() == bytes,
            "{name}: our bytes differ from coremltools'"
        );
    }
}

/// The blobs of `orion_weight.bin`; make_fixture.py recomputes the same values with numpy.
fn orion_file() -> Vec<u8> {
    let mut w = BlobWriter::new();
    let fp16 = |xs: Vec<f32>| xs.into_iter().map(f16::from_f32).collect::<Vec<_>>();
    w.add_f16(&fp16((0..13).map(|i| (i - 6) as f32 * 0.375).collect()));
    w.add_f32(&(0..9).map(|i| i as f32 * 0.25 - 2.0).collect::<Vec<_>>());
    let int8: Vec<u8> = (0..11).map(|i| (i * 19 - 100) as i8 as u8).collect();
    w.add(BlobDType::Int8, &int8);
    let uint8: Vec<u8> = (0..70).map(|i| (i * 37 % 256) as u8).collect();
    w.add(BlobDType::UInt8, &uint8);
    w.add_f16(&fp16((0..33).map(|i| i as f32 * 0.5).collect()));
    w.finish()
}

/// Re-bless with `ORION_BLESS=1`, then run make_fixture.py to check it with coremltools.
#[test]
fn writer_output_matches_committed_orion_file() {
    let bytes = orion_file();
    if std::env::var_os("ORION_BLESS").is_some() {
        std::fs::write(fixture("orion_weight.bin"), &bytes).unwrap();
    }
    assert!(
        bytes == read_fixture("orion_weight.bin"),
        "writer output changed"
    );
}

// ---- malformed input, one test per error class -------------------------------------------

#[test]
fn file_shorter_than_header_is_rejected() {
    assert!(parse_error(&[2, 0, 0, 0]).contains("shorter than the 64-byte header"));
}

#[test]
fn wrong_version_says_what_was_found_and_expected() {
    let mut bytes = sample_file();
    put_u32(&mut bytes, 4, 1);
    let msg = parse_error(&bytes);
    assert!(
        msg.contains("version is 1") && msg.contains("expected 2"),
        "{msg}"
    );
}

#[test]
fn nonzero_reserved_header_byte_is_rejected() {
    let mut bytes = sample_file();
    bytes[40] = 7;
    assert!(parse_error(&bytes).contains("header byte 40 is 0x07"));
}

#[test]
fn count_too_large_for_the_file_is_rejected() {
    let mut bytes = sample_file();
    put_u32(&mut bytes, 0, 1000);
    let msg = parse_error(&bytes);
    assert!(
        msg.contains("declares 1000 blobs") && msg.contains("at most"),
        "{msg}"
    );
}

#[test]
fn record_past_end_of_file_is_rejected() {
    let mut w = BlobWriter::new();
    w.add(BlobDType::UInt8, &[1; 200]);
    let mut bytes = w.finish();
    put_u32(&mut bytes, 0, 2);
    let msg = parse_error(&bytes);
    assert!(
        msg.contains("record 1 of 2 at offset 384") && msg.contains("truncated"),
        "{msg}"
    );
}

#[test]
fn bad_record_magic_is_rejected() {
    let mut bytes = sample_file();
    put_u32(&mut bytes, 192, 0xCAFE_BABE);
    let msg = parse_error(&bytes);
    assert!(
        msg.contains("offset 192") && msg.contains("0xcafebabe"),
        "{msg}"
    );
    assert!(msg.contains("expected 0xdeadbeef"), "{msg}");
}

#[test]
fn unknown_dtype_code_is_rejected() {
    let mut bytes = sample_file();
    put_u32(&mut bytes, 64 + 4, 99);
    assert!(parse_error(&bytes).contains("unknown dtype code 99"));
}

#[test]
fn truncated_data_is_rejected() {
    let bytes = sample_file();
    let msg = parse_error(&bytes[..bytes.len() - 1]);
    assert!(
        msg.contains("runs past the end") && msg.contains("truncated"),
        "{msg}"
    );
}

#[test]
fn data_overlapping_its_record_is_rejected() {
    let mut bytes = sample_file();
    put_u64(&mut bytes, 192 + 16, 192);
    assert!(parse_error(&bytes).contains("overlaps the header or a record"));
}

#[test]
fn misaligned_data_is_rejected() {
    let mut bytes = sample_file();
    put_u64(&mut bytes, 64 + 16, 130);
    assert!(parse_error(&bytes).contains("not 64-byte aligned"));
}

#[test]
fn overflowing_data_end_is_rejected() {
    let mut bytes = sample_file();
    put_u64(&mut bytes, 64 + 8, u64::MAX - 64);
    assert!(parse_error(&bytes).contains("overflows u64"));
}

#[test]
fn partial_element_is_rejected() {
    let mut bytes = sample_file();
    put_u64(&mut bytes, 64 + 8, 5);
    assert!(parse_error(&bytes).contains("not a whole number of fp16 elements"));
}

#[test]
fn empty_blob_is_rejected() {
    let mut bytes = sample_file();
    put_u64(&mut bytes, 64 + 8, 0);
    assert!(parse_error(&bytes).contains("empty fp16 blob"));
}

#[test]
fn inconsistent_sub_byte_padding_is_rejected() {
    let mut bytes = sample_file();
    put_u64(&mut bytes, 512 + 24, 8);
    assert!(parse_error(&bytes).contains("expected fewer than 8"));
    put_u64(&mut bytes, 512 + 24, 2);
    assert!(parse_error(&bytes).contains("not a whole number of 4-bit uint4"));
}

#[test]
fn trailing_bytes_after_the_last_blob_are_rejected() {
    let mut bytes = sample_file();
    put_u32(&mut bytes, 0, 3);
    let msg = parse_error(&bytes);
    assert!(msg.contains("follow the last of the 3 blobs"), "{msg}");
    let mut padded = sample_file();
    padded.resize(padded.len().next_multiple_of(64), 0);
    assert!(
        BlobFile::parse(&padded).is_ok(),
        "zero padding to 64 is allowed"
    );
    padded.push(0);
    assert!(parse_error(&padded).contains("follow the last"));
}

#[test]
fn offset_not_at_a_record_lists_the_valid_offsets() {
    let bytes = sample_file();
    let file = BlobFile::parse(&bytes).unwrap();
    let msg = blob_message(file.blob_at(128));
    assert!(msg.contains("no blob record at offset 128"), "{msg}");
    assert!(
        msg.contains("valid record offsets are 64, 192, 384, 512"),
        "{msg}"
    );
}

#[test]
fn check_type_rejects_another_dtype_or_element_count() {
    let bytes = sample_file();
    let file = BlobFile::parse(&bytes).unwrap();
    assert_eq!(file.check_type(192, DType::Fp32, 20).unwrap().numel(), 20);
    let msg = blob_message(file.check_type(64, DType::Fp32, 3));
    assert!(
        msg.contains("holds fp16 data but the MIL type is fp32"),
        "{msg}"
    );
    let msg = blob_message(file.check_type(64, DType::Fp16, 4));
    assert!(msg.contains("holds 3 fp16 elements (6 bytes)"), "{msg}");
    assert!(msg.contains("declares 4 elements (8 bytes)"), "{msg}");
    let msg = blob_message(file.check_type(384, DType::Bool, 5));
    assert!(msg.contains("bool cannot be stored"), "{msg}");
}

#[test]
fn with_blob_path_names_the_file_in_the_message() {
    let err = BlobFile::parse(&[])
        .unwrap_err()
        .with_blob_path("w/weight.bin");
    let text = err.to_string();
    assert!(
        text.starts_with("blob file w/weight.bin: file is 0 bytes"),
        "{text}"
    );
}

// ---- no input panics --------------------------------------------------------------------

/// Exercises every accessor of whatever `bytes` parses to.
fn poke(bytes: &[u8], probe: u64) {
    if let Ok(file) = BlobFile::parse(bytes) {
        for blob in file.blobs() {
            let _ = blob.to_f32_vec();
            for dtype in DType::ALL {
                let _ = file.check_type(blob.record_offset, dtype, blob.numel());
            }
        }
        let _ = file.blob_at(probe);
        let _ = file.check_type(probe, DType::Fp16, probe as usize);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]
    #[test]
    fn random_bytes_never_panic(
        mut bytes in proptest::collection::vec(any::<u8>(), 0..600),
        valid_header in any::<bool>(),
        probe in any::<u64>(),
    ) {
        if valid_header && bytes.len() >= 64 {
            bytes[4..64].fill(0);
            bytes[4] = 2;
        }
        poke(&bytes, probe);
    }

    #[test]
    fn corrupted_valid_files_never_panic(
        edits in proptest::collection::vec((0usize..600, any::<u64>(), 0u8..3), 1..4),
        cut in 0usize..700,
        probe in 0u64..600,
    ) {
        let mut bytes = sample_file();
        for (at, value, width) in edits {
            let at = at % bytes.len();
            match width {
                0 => bytes[at] = value as u8,
                1 if at + 4 <= bytes.len() => put_u32(&mut bytes, at, value as u32),
                _ if at + 8 <= bytes.len() => put_u64(&mut bytes, at, value),
                _ => bytes[at] ^= 0xff,
            }
        }
        bytes.truncate(cut);
        poke(&bytes, probe);
    }
}
