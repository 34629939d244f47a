//! Text tokenizers for the models Orion runs: GPT-2 byte-level BPE and Llama SentencePiece BPE.
//!
//! Both encoders are byte-exact with their reference implementations (HF `tokenizers` for GPT-2,
//! the `sentencepiece` package for Llama); `tests/fixtures/make_fixture.py` writes the evidence.
//! [`StreamDecoder`] turns ids into text one token at a time, holding back a UTF-8 character
//! split across tokens until it is complete.

mod error;
mod gpt2;
mod llama2c;
mod pretokenize;
mod proto;
mod sentencepiece;
mod stream;
mod unicode_tables;
mod utf8;

pub use error::{Error, Result};
pub use gpt2::Gpt2Tokenizer;
pub use sentencepiece::{PieceType, SentencePieceTokenizer};
pub use stream::StreamDecoder;
pub use utf8::InvalidUtf8;

use std::borrow::Cow;

/// A text tokenizer: text to token ids and back.
pub trait Tokenizer {
    /// Encodes text to token ids, without BOS/EOS and without parsing special tokens in the text.
    fn encode(&self, text: &str) -> Vec<u32>;

    /// The bytes token `id` contributes to decoded text; `at_start` is true while only control
    /// ids have come before it (SentencePiece drops the dummy-prefix space there).
    fn decode_token(&self, id: u32, at_start: bool) -> Result<Cow<'_, [u8]>>;

    /// Whether `id` is a control token that decodes to nothing (SentencePiece `<s>`, `</s>`).
    fn is_control(&self, id: u32) -> bool;

    /// How byte sequences that are not valid UTF-8 are rendered by [`Tokenizer::decode`].
    fn invalid_utf8(&self) -> InvalidUtf8;

    /// Number of token ids.
    fn vocab_size(&self) -> usize;

    /// The beginning-of-sequence id, if the vocabulary has one.
    fn bos(&self) -> Option<u32>;

    /// The end-of-sequence id, if the vocabulary has one.
    fn eos(&self) -> Option<u32>;

    /// Decodes ids to text exactly as the reference implementation does.
    fn decode(&self, ids: &[u32]) -> Result<String> {
        let mut bytes = Vec::new();
        let mut at_start = true;
        for &id in ids {
            bytes.extend_from_slice(&self.decode_token(id, at_start)?);
            at_start &= self.is_control(id);
        }
        Ok(self.invalid_utf8().decode(&bytes))
    }
}
