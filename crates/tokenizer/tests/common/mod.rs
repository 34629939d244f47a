//! Shared test helpers: paths to the shared tokenizer files and the reference fixture.

#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::Value;

/// A file in the project's shared data directory.
pub fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(name)
}

/// The reference fixture written by tests/fixtures/make_fixture.py.
pub fn fixture() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fixture.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A JSON array of integers as token ids.
pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// Decodes ids one at a time through a `StreamDecoder`, concatenating the pieces.
pub fn stream_decode<T: tokenizer::Tokenizer>(tok: &T, ids: &[u32]) -> String {
    let mut decoder = tokenizer::StreamDecoder::new(tok);
    let mut text = String::new();
    for &id in ids {
        text.push_str(&decoder.push(id).unwrap());
    }
    text + &decoder.finish()
}
