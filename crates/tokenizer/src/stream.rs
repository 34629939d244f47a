//! Incremental decoding: ids in one at a time, text out as soon as it is complete.

use crate::utf8::settled_len;
use crate::{Result, Tokenizer};

/// Decodes a token stream into text, holding back a UTF-8 character split across tokens.
///
/// The concatenation of everything [`StreamDecoder::push`] returns plus [`StreamDecoder::finish`]
/// equals [`Tokenizer::decode`] of all the pushed ids.
pub struct StreamDecoder<'t, T: Tokenizer + ?Sized> {
    tokenizer: &'t T,
    pending: Vec<u8>,
    at_start: bool,
}

impl<'t, T: Tokenizer + ?Sized> StreamDecoder<'t, T> {
    /// Starts a new sequence.
    pub fn new(tokenizer: &'t T) -> Self {
        StreamDecoder {
            tokenizer,
            pending: Vec::new(),
            at_start: true,
        }
    }

    /// Adds one id and returns the text that became complete (possibly empty).
    pub fn push(&mut self, id: u32) -> Result<String> {
        let bytes = self.tokenizer.decode_token(id, self.at_start)?;
        self.at_start &= self.tokenizer.is_control(id);
        self.pending.extend_from_slice(&bytes);
        let settled = settled_len(&self.pending);
        let text = self
            .tokenizer
            .invalid_utf8()
            .decode(&self.pending[..settled]);
        self.pending.drain(..settled);
        Ok(text)
    }

    /// Ends the sequence, rendering any incomplete trailing character as the decoder would.
    pub fn finish(self) -> String {
        self.tokenizer.invalid_utf8().decode(&self.pending)
    }
}
