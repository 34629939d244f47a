//! Loading llama2.c's `tokenizer.bin` as a SentencePiece model.
//!
//! The format is little-endian: `i32` max token length, then for each token an `f32` score, an
//! `i32` byte length and the token's bytes. llama2.c's exporter wrote every piece of the Llama
//! SentencePiece model in id order with its score, replacing `▁` by a space and writing BOS and
//! EOS as `"\n<s>\n"` and `"\n</s>\n"`. The mapping back is: id 0 is the unknown piece `<unk>`,
//! ids 1 and 2 are the control pieces `<s>` and `</s>`, `<0xXX>` tokens are byte pieces, and every
//! other token is a normal piece with spaces turned back into `▁`. The model is BPE with byte
//! fallback, the identity normalizer and a dummy prefix, as Llama's `tokenizer.model` is, so the
//! result encodes exactly like `sentencepiece`.
//!
//! llama2.c's own `encode` in `run.c` is a different algorithm over the same vocabulary: byte
//! fallback before merging, then repeated greedy merges of the highest-scoring adjacent pair
//! (leftmost on ties), looking merged strings up among *all* tokens. On this vocabulary it picks
//! the same ids as `sentencepiece`: the greedy order equals SentencePiece's, no reserved token
//! (`<unk>`, `<s>`, `</s>`, `<0xXX>`) is the concatenation of two tokens, and no token contains a
//! byte token's text. The one divergence is that `run.c` takes a C string, so it stops at the
//! first NUL character; `tests/fixtures/make_fixture.py` ports `run.c` and records it.

use std::path::Path;

use crate::error::{format_error, read_file};
use crate::sentencepiece::{byte_piece_value, ModelSpec, Piece, PieceType, MODEL_TYPE_BPE};
use crate::{Result, SentencePieceTokenizer};

/// Reads a little-endian 4-byte field at `pos`.
fn word(data: &[u8], pos: usize) -> Option<[u8; 4]> {
    data.get(pos..pos + 4).and_then(|b| b.try_into().ok())
}

impl SentencePieceTokenizer {
    /// Loads llama2.c's `tokenizer.bin`, mapping it onto the SentencePiece model it came from.
    pub fn from_llama2c_bin(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let data = read_file(path)?;
        let bad =
            |reason: String| format_error(path, format!("not a llama2.c tokenizer: {reason}"));
        let max_len = word(&data, 0)
            .map(i32::from_le_bytes)
            .ok_or_else(|| bad("empty file".into()))?;
        if max_len <= 0 {
            return Err(bad(format!("max token length {max_len} is not positive")));
        }
        let mut pieces = Vec::new();
        let mut pos = 4;
        while pos < data.len() {
            let id = pieces.len();
            let truncated = || bad(format!("truncated in token {id} at byte {pos}"));
            let score = f32::from_le_bytes(word(&data, pos).ok_or_else(truncated)?);
            let len = i32::from_le_bytes(word(&data, pos + 4).ok_or_else(truncated)?);
            let len = usize::try_from(len)
                .ok()
                .filter(|&l| l <= max_len as usize)
                .ok_or_else(|| bad(format!("token {id} has length {len}, max is {max_len}")))?;
            let bytes = data.get(pos + 8..pos + 8 + len).ok_or_else(truncated)?;
            let text =
                std::str::from_utf8(bytes).map_err(|_| bad(format!("token {id} is not UTF-8")))?;
            pieces.push(piece(id, text, score));
            pos += 8 + len;
        }
        if pieces.len() < 3 + 256 {
            return Err(bad(format!("only {} tokens", pieces.len())));
        }
        let spec = ModelSpec {
            pieces,
            model_type: MODEL_TYPE_BPE,
            byte_fallback: true,
            normalizer: "identity".to_string(),
            remove_extra_whitespaces: false,
            ..ModelSpec::default()
        };
        Self::from_spec(spec, path)
    }
}

/// The SentencePiece piece behind llama2.c token `id`.
fn piece(id: usize, text: &str, score: f32) -> Piece {
    let (text, kind) = match id {
        0 => (text.to_string(), PieceType::Unknown),
        1 => ("<s>".to_string(), PieceType::Control),
        2 => ("</s>".to_string(), PieceType::Control),
        _ if byte_piece_value(text).is_some() => (text.to_string(), PieceType::Byte),
        _ => (text.replace(' ', "\u{2581}"), PieceType::Normal),
    };
    Piece { text, score, kind }
}
