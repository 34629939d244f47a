//! Token files: u16 (llama2.c) and u32 round trips, format detection and error cases.

use std::fs;

use train::{write_tokens, TokenFile, TokenFormat};

#[test]
fn u16_file_is_headerless_little_endian_and_round_trips() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("data.bin");
    let tokens = vec![0u32, 1, 258, 65535, 7];
    assert_eq!(
        write_tokens(&path, &tokens, 65536).expect("write"),
        TokenFormat::U16
    );
    let bytes = fs::read(&path).expect("read");
    // Exactly what llama2.c's pretokenizer writes: np.uint16 tokens, nothing else.
    assert_eq!(bytes, [0, 0, 1, 0, 2, 1, 255, 255, 7, 0]);
    let file = TokenFile::open(&path).expect("open");
    assert_eq!(file.format(), TokenFormat::U16);
    assert_eq!(file.len(), 5);
    assert_eq!(file.to_vec().unwrap(), tokens);
    assert_eq!(file.to_vec().unwrap()[2], 258);
    assert_eq!(file.vocab_size(), None);
}

#[test]
fn u32_file_has_ortk_header_and_round_trips() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("data.bin");
    let tokens = vec![70_000u32, 3, 151_935, 65_536];
    assert_eq!(
        write_tokens(&path, &tokens, 151_936).expect("write"),
        TokenFormat::U32
    );
    let bytes = fs::read(&path).expect("read");
    assert_eq!(&bytes[..4], b"ORTK");
    assert_eq!(
        u32::from_le_bytes(bytes[4..8].try_into().expect("4")),
        1,
        "version"
    );
    assert_eq!(
        u32::from_le_bytes(bytes[8..12].try_into().expect("4")),
        4,
        "width"
    );
    assert_eq!(
        u32::from_le_bytes(bytes[12..16].try_into().expect("4")),
        151_936,
        "vocab"
    );
    assert_eq!(bytes.len(), 16 + 4 * tokens.len());
    assert_eq!(
        u32::from_le_bytes(bytes[16..20].try_into().expect("4")),
        70_000
    );
    let file = TokenFile::open(&path).expect("open");
    assert_eq!(file.format(), TokenFormat::U32);
    assert_eq!(file.vocab_size(), Some(151_936));
    assert_eq!(file.to_vec().unwrap(), tokens);
    let mut window = [0u32; 2];
    file.copy_window(1, &mut window).unwrap();
    assert_eq!(window, [3, 151_935]);
}

#[test]
fn writing_rejects_ids_outside_vocabulary_and_empty_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.bin");
    let err = write_tokens(&path, &[1, 2, 300], 256).expect_err("id 300 >= 256");
    let msg = err.to_string();
    assert!(msg.contains("300") && msg.contains("position 2"), "{msg}");
    assert!(!path.exists(), "nothing written on error");
    assert!(write_tokens(&path, &[], 256).is_err());
    assert!(write_tokens(&path, &[0], 0).is_err());
}

#[test]
fn opening_rejects_empty_odd_and_ragged_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty.bin");
    fs::write(&empty, b"").expect("write");
    assert!(TokenFile::open(&empty)
        .expect_err("empty")
        .to_string()
        .contains("empty"));

    let odd = dir.path().join("odd.bin");
    fs::write(&odd, [1u8, 0, 2]).expect("write");
    assert!(TokenFile::open(&odd)
        .expect_err("odd")
        .to_string()
        .contains("odd"));

    let ragged = dir.path().join("ragged.bin");
    let mut bytes = b"ORTK".to_vec();
    bytes.extend(1u32.to_le_bytes());
    bytes.extend(4u32.to_le_bytes());
    bytes.extend(100_000u32.to_le_bytes());
    bytes.extend([1, 2, 3, 4, 5, 6]);
    fs::write(&ragged, &bytes).expect("write");
    let msg = TokenFile::open(&ragged).expect_err("ragged").to_string();
    assert!(msg.contains("multiple of 4"), "{msg}");

    let missing = dir.path().join("missing.bin");
    assert!(TokenFile::open(&missing)
        .expect_err("missing")
        .to_string()
        .contains("missing.bin"));
}

#[test]
fn check_vocab_names_first_out_of_range_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("d.bin");
    write_tokens(&path, &[5, 9, 50_000, 12], 65_536).expect("write");
    let file = TokenFile::open(&path).expect("open");
    file.check_vocab(50_001).expect("all below 50001");
    let msg = file
        .check_vocab(32_000)
        .expect_err("50000 >= 32000")
        .to_string();
    assert!(
        msg.contains("50000") && msg.contains("position 2") && msg.contains("d.bin"),
        "{msg}"
    );
}

#[test]
fn open_as_u16_reads_a_file_that_looks_like_a_u32_header() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tricky.bin");
    let mut bytes = b"ORTK".to_vec();
    bytes.extend(1u32.to_le_bytes());
    bytes.extend(4u32.to_le_bytes());
    bytes.extend(9u32.to_le_bytes());
    bytes.extend(7u32.to_le_bytes());
    fs::write(&path, &bytes).expect("write");
    assert_eq!(TokenFile::open(&path).expect("auto").to_vec().unwrap(), [7]);
    let forced = TokenFile::open_as(&path, TokenFormat::U16).expect("u16");
    assert_eq!(forced.len(), 10);
    assert_eq!(
        forced.to_vec().unwrap()[0],
        u16::from_le_bytes(*b"OR") as u32
    );
    let not_u32 = dir.path().join("plain.bin");
    fs::write(&not_u32, [1u8, 0, 2, 0]).expect("write");
    assert!(TokenFile::open_as(&not_u32, TokenFormat::U32).is_err());
}

#[test]
fn rewriting_replaces_atomically_without_leftover_temp_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("data.bin");
    write_tokens(&path, &[1, 2, 3], 10).expect("first");
    let reader = TokenFile::open(&path).expect("open");
    write_tokens(&path, &[4, 5], 10).expect("second");
    assert_eq!(
        reader.to_vec().unwrap(),
        [1, 2, 3],
        "an open map keeps the old contents"
    );
    assert_eq!(
        TokenFile::open(&path).expect("reopen").to_vec().unwrap(),
        [4, 5]
    );
    let names: Vec<String> = fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["data.bin"]);
}

#[test]
fn a_file_truncated_while_in_use_gives_a_read_error_and_the_loader_keeps_its_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("data.bin");
    let tokens: Vec<u32> = (0..40_000).map(|i| i % 300).collect();
    write_tokens(&path, &tokens, 300).expect("write");
    let file = TokenFile::open(&path).expect("open");
    let mut batcher =
        train::Batcher::new(file, 4, 64, train::DataOrder::Sequential).expect("batcher");
    batcher.next_batch().expect("first batch");
    // Another process cuts the file down in place (a memory map would now SIGBUS).
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_len(100))
        .expect("truncate");
    let err = batcher.next_batch().expect_err("read past the new end");
    let msg = err.to_string();
    assert!(
        msg.contains("data.bin") && msg.contains("truncated or replaced"),
        "{msg}"
    );
}

#[test]
fn a_directory_is_named_as_such() {
    let dir = tempfile::tempdir().expect("tempdir");
    let msg = TokenFile::open(dir.path())
        .expect_err("a directory")
        .to_string();
    assert!(msg.contains("this is a directory"), "{msg}");
}
