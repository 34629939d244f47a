//! Missing, truncated and wrong-format files give one error naming the file and the problem.

mod common;

use std::path::{Path, PathBuf};

use common::data;
use tokenizer::{Error, Gpt2Tokenizer, SentencePieceTokenizer};

/// A scratch file holding `bytes`, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str, bytes: &[u8]) -> Self {
        let path =
            std::env::temp_dir().join(format!("tokenizer-test-{}-{name}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn prefix(path: &Path, len: usize) -> Vec<u8> {
    std::fs::read(path).unwrap()[..len].to_vec()
}

/// Asserts a format error naming `path` whose message contains `needle`.
fn assert_format_error(result: Result<impl std::fmt::Debug, Error>, path: &Path, needle: &str) {
    let err = result.unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::Format { .. }), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains(needle), "{message:?} lacks {needle:?}");
}

#[test]
fn missing_files_are_io_errors_naming_the_file() {
    let missing = data("no-such-tokenizer.model");
    for result in [
        SentencePieceTokenizer::from_model(&missing).map(|_| ()),
        SentencePieceTokenizer::from_llama2c_bin(&missing).map(|_| ()),
        Gpt2Tokenizer::from_files(&missing, data("gpt2-merges.txt")).map(|_| ()),
        Gpt2Tokenizer::from_tokenizer_json(&missing).map(|_| ()),
    ] {
        let err = result.unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");
        assert!(err.to_string().contains("no-such-tokenizer.model"), "{err}");
    }
}

#[test]
fn truncated_sentencepiece_model_is_rejected() {
    let file = Scratch::new(
        "truncated.model",
        &prefix(&data("llama2-tokenizer.model"), 1000),
    );
    assert_format_error(
        SentencePieceTokenizer::from_model(&file.0),
        &file.0,
        "past the end",
    );
}

#[test]
fn non_protobuf_model_is_rejected() {
    let file = Scratch::new("text.model", b"this is not a protobuf\n");
    assert_format_error(
        SentencePieceTokenizer::from_model(&file.0),
        &file.0,
        "SentencePiece",
    );
}

#[test]
fn gpt2_vocab_given_as_sentencepiece_model_is_rejected() {
    let path = data("gpt2-vocab.json");
    assert_format_error(
        SentencePieceTokenizer::from_model(&path),
        &path,
        "SentencePiece",
    );
}

#[test]
fn truncated_llama2c_bin_is_rejected() {
    let file = Scratch::new(
        "truncated.bin",
        &prefix(&data("llama2c-tokenizer.bin"), 5000),
    );
    assert_format_error(
        SentencePieceTokenizer::from_llama2c_bin(&file.0),
        &file.0,
        "truncated",
    );
}

#[test]
fn sentencepiece_model_given_as_llama2c_bin_is_rejected() {
    let path = data("llama2-tokenizer.model");
    assert_format_error(
        SentencePieceTokenizer::from_llama2c_bin(&path),
        &path,
        "llama2.c",
    );
}

#[test]
fn truncated_gpt2_vocab_is_rejected() {
    let file = Scratch::new("truncated.json", &prefix(&data("gpt2-vocab.json"), 4000));
    let result = Gpt2Tokenizer::from_files(&file.0, data("gpt2-merges.txt"));
    assert_format_error(result, &file.0, "not valid JSON");
}

#[test]
fn merges_with_unknown_tokens_are_rejected() {
    let file = Scratch::new("merges.txt", "#version: 0.2\nĠ t\nzzqq xxyy\n".as_bytes());
    let result = Gpt2Tokenizer::from_files(data("gpt2-vocab.json"), &file.0);
    assert_format_error(result, &file.0, "not in the vocabulary");
}

#[test]
fn swapped_gpt2_files_are_rejected() {
    let merges = data("gpt2-merges.txt");
    let result = Gpt2Tokenizer::from_files(&merges, data("gpt2-vocab.json"));
    assert_format_error(result, &merges, "not valid JSON");
}

#[test]
fn tokenizer_json_with_a_non_bpe_model_is_rejected() {
    let file = Scratch::new(
        "wordpiece.json",
        br#"{"model": {"type": "WordPiece", "vocab": {}}}"#,
    );
    assert_format_error(Gpt2Tokenizer::from_tokenizer_json(&file.0), &file.0, "BPE");
}

#[test]
fn unigram_sentencepiece_model_is_rejected_as_unsupported() {
    // ModelProto { pieces: [{ piece: "a" }], trainer_spec: { model_type: UNIGRAM } }
    let bytes = [0x0A, 0x03, 0x0A, 0x01, b'a', 0x12, 0x02, 0x18, 0x01];
    let file = Scratch::new("unigram.model", &bytes);
    let result = SentencePieceTokenizer::from_model(&file.0);
    assert_format_error(result, &file.0, "model type 1 is not BPE");
}
