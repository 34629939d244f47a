//! Rendering byte sequences that may not be valid UTF-8, the way each reference decoder does.

/// The policy for bytes that do not form valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidUtf8 {
    /// One U+FFFD per maximal invalid subpart (Rust's `from_utf8_lossy`, HF `tokenizers`).
    MaximalSubpart,
    /// One U+FFFD per invalid byte (`sentencepiece`'s decoder).
    PerByte,
}

impl InvalidUtf8 {
    /// Renders `bytes` as text under this policy.
    pub fn decode(self, bytes: &[u8]) -> String {
        match self {
            InvalidUtf8::MaximalSubpart => String::from_utf8_lossy(bytes).into_owned(),
            InvalidUtf8::PerByte => decode_per_byte(bytes),
        }
    }
}

/// Replaces each byte that does not start a valid UTF-8 character with U+FFFD.
fn decode_per_byte(mut bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    while !bytes.is_empty() {
        match std::str::from_utf8(bytes) {
            Ok(s) => {
                out.push_str(s);
                break;
            }
            Err(e) => {
                let (valid, rest) = bytes.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                out.push(char::REPLACEMENT_CHARACTER);
                bytes = &rest[1..];
            }
        }
    }
    out
}

/// Length of the prefix of `bytes` that cannot be changed by bytes appended later: everything
/// except a trailing incomplete (but so far valid) UTF-8 character.
pub(crate) fn settled_len(bytes: &[u8]) -> usize {
    let tail_start = bytes.len().saturating_sub(3);
    for start in (tail_start..bytes.len()).rev() {
        let lead = bytes[start];
        if lead & 0xC0 == 0x80 {
            continue;
        }
        let width = match lead {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => return bytes.len(),
        };
        let tail = &bytes[start..];
        let incomplete = tail.len() < width
            && matches!(std::str::from_utf8(tail), Err(e) if e.error_len().is_none());
        return if incomplete { start } else { bytes.len() };
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_byte_replaces_each_byte_of_a_truncated_character() {
        assert_eq!(
            InvalidUtf8::PerByte.decode(b"a\xE6\x86b"),
            "a\u{FFFD}\u{FFFD}b"
        );
        assert_eq!(
            InvalidUtf8::MaximalSubpart.decode(b"a\xE6\x86b"),
            "a\u{FFFD}b"
        );
    }

    #[test]
    fn settled_len_holds_back_only_an_incomplete_trailing_character() {
        assert_eq!(settled_len(b"ab\xE2\x82"), 2);
        assert_eq!(settled_len("ab€".as_bytes()), 5);
        assert_eq!(settled_len(b"ab\xE2\x41"), 4);
        assert_eq!(settled_len(b"\xF0\x9F\x98"), 0);
        assert_eq!(settled_len(b"\xFF"), 1);
    }
}
