//! SentencePiece BPE as Llama uses it, matching the `sentencepiece` package byte for byte.
//!
//! Encoding: spaces become `▁`, a dummy `▁` is prepended, the text is split into characters
//! (user-defined pieces are kept whole), and adjacent symbols whose concatenation is a piece are
//! merged, highest score first and leftmost on ties. A final symbol that is not a piece becomes
//! its UTF-8 bytes as `<0xXX>` pieces when the model has byte fallback, otherwise `<unk>`.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::path::Path;

use crate::error::{format_error, read_file};
use crate::{proto, Error, InvalidUtf8, Result, Tokenizer};

/// SentencePiece's visible space, `▁` (U+2581).
const SPACE: char = '\u{2581}';

/// The role of a piece in the vocabulary (`ModelProto.SentencePiece.Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceType {
    /// An ordinary piece that merges can produce.
    Normal,
    /// The unknown-token piece.
    Unknown,
    /// A control piece such as `<s>`; it decodes to nothing.
    Control,
    /// A piece matched verbatim in the input before merging.
    UserDefined,
    /// A piece the encoder must not emit (not supported: treated as non-mergeable).
    Unused,
    /// A byte-fallback piece `<0xXX>`.
    Byte,
}

impl PieceType {
    /// Maps the protobuf enum value.
    pub(crate) fn from_proto(v: u64) -> Option<Self> {
        Some(match v {
            1 => PieceType::Normal,
            2 => PieceType::Unknown,
            3 => PieceType::Control,
            4 => PieceType::UserDefined,
            5 => PieceType::Unused,
            6 => PieceType::Byte,
            _ => return None,
        })
    }
}

/// One vocabulary entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Piece {
    pub(crate) text: String,
    pub(crate) score: f32,
    pub(crate) kind: PieceType,
}

/// The parts of a `ModelProto` the tokenizer uses, with the protobuf defaults.
#[derive(Debug, Clone)]
pub(crate) struct ModelSpec {
    pub(crate) pieces: Vec<Piece>,
    pub(crate) model_type: u64,
    pub(crate) byte_fallback: bool,
    pub(crate) whitespace_as_suffix: bool,
    pub(crate) unk_id: Option<u32>,
    pub(crate) bos_id: Option<u32>,
    pub(crate) eos_id: Option<u32>,
    pub(crate) unk_surface: String,
    pub(crate) normalizer: String,
    pub(crate) has_charsmap: bool,
    pub(crate) add_dummy_prefix: bool,
    pub(crate) remove_extra_whitespaces: bool,
    pub(crate) escape_whitespaces: bool,
}

/// `TrainerSpec.ModelType.BPE`.
pub(crate) const MODEL_TYPE_BPE: u64 = 2;

impl Default for ModelSpec {
    fn default() -> Self {
        ModelSpec {
            pieces: Vec::new(),
            model_type: 1,
            byte_fallback: false,
            whitespace_as_suffix: false,
            unk_id: Some(0),
            bos_id: Some(1),
            eos_id: Some(2),
            unk_surface: " \u{2047} ".to_string(),
            normalizer: String::new(),
            has_charsmap: false,
            add_dummy_prefix: true,
            remove_extra_whitespaces: true,
            escape_whitespaces: true,
        }
    }
}

/// A SentencePiece BPE tokenizer (Llama's `tokenizer.model`).
#[derive(Debug, Clone)]
pub struct SentencePieceTokenizer {
    spec: ModelSpec,
    /// Pieces merges may produce (normal and user-defined) to id.
    mergeable: HashMap<String, u32>,
    /// Every other piece to id.
    reserved: HashMap<String, u32>,
    /// User-defined pieces, longest first.
    user_defined: Vec<String>,
    /// Id of the `<0xXX>` piece of each byte, when the model has byte fallback.
    byte_ids: Option<Vec<u32>>,
    /// Decoded bytes of each piece, indexed by id.
    piece_bytes: Vec<Vec<u8>>,
    /// No mergeable piece contains `▁` right after another character, so merges never cross
    /// the start of a `▁` run and words can be encoded (and cached) one at a time.
    words_independent: bool,
}

/// Whether `text` has a `▁` directly after some other character.
fn space_after_other(text: &str) -> bool {
    text.chars()
        .zip(text.chars().skip(1))
        .any(|(a, b)| a != SPACE && b == SPACE)
}

/// Splits normalized text before every `▁` that follows another character.
fn words(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut prev = None;
        let cut = rest.char_indices().find_map(|(i, c)| {
            let boundary = c == SPACE && prev.is_some_and(|p| p != SPACE);
            prev = Some(c);
            boundary.then_some(i)
        });
        let (word, tail) = rest.split_at(cut.unwrap_or(rest.len()));
        rest = tail;
        Some(word)
    })
}

/// Parses `<0xXX>` into its byte.
pub(crate) fn byte_piece_value(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    (hex.len() == 2)
        .then(|| u8::from_str_radix(hex, 16).ok())
        .flatten()
}

/// Rejects model features this implementation does not reproduce, and bad special ids.
fn check_supported(spec: &ModelSpec, path: &Path) -> Result<()> {
    let unsupported = |what: String| format_error(path, format!("unsupported model: {what}"));
    if spec.model_type != MODEL_TYPE_BPE {
        return Err(unsupported(format!(
            "model type {} is not BPE (2)",
            spec.model_type
        )));
    }
    if spec.has_charsmap {
        return Err(unsupported(format!(
            "normalizer {:?} rewrites text",
            spec.normalizer
        )));
    }
    if spec.whitespace_as_suffix {
        return Err(unsupported("treat_whitespace_as_suffix".to_string()));
    }
    let size = spec.pieces.len();
    for (name, id) in [
        ("unk_id", spec.unk_id),
        ("bos_id", spec.bos_id),
        ("eos_id", spec.eos_id),
    ] {
        if id.is_some_and(|id| id as usize >= size) {
            return Err(format_error(
                path,
                format!("{name} is outside the {size} pieces"),
            ));
        }
    }
    Ok(())
}

impl SentencePieceTokenizer {
    /// Loads a SentencePiece `tokenizer.model` (serialized `ModelProto`, BPE model type).
    pub fn from_model(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let data = read_file(path)?;
        let spec = proto::parse_model(&data)
            .map_err(|e| format_error(path, format!("not a valid SentencePiece model: {e}")))?;
        Self::from_spec(spec, path)
    }

    /// Builds the tokenizer from a parsed model, rejecting features it does not implement.
    pub(crate) fn from_spec(spec: ModelSpec, path: &Path) -> Result<Self> {
        check_supported(&spec, path)?;
        let size = spec.pieces.len();
        let (mut mergeable, mut reserved) = (HashMap::new(), HashMap::new());
        let mut byte_ids = vec![None; 256];
        let mut piece_bytes = Vec::with_capacity(size);
        for (id, piece) in spec.pieces.iter().enumerate() {
            let id = id as u32;
            let map = match piece.kind {
                PieceType::Normal | PieceType::UserDefined => &mut mergeable,
                _ => &mut reserved,
            };
            if map.insert(piece.text.clone(), id).is_some() {
                return Err(format_error(
                    path,
                    format!("piece {:?} is defined twice", piece.text),
                ));
            }
            let bytes = match piece.kind {
                PieceType::Control => Vec::new(),
                PieceType::Unknown => spec.unk_surface.as_bytes().to_vec(),
                PieceType::Byte => {
                    let b = byte_piece_value(&piece.text).ok_or_else(|| {
                        format_error(path, format!("byte piece {:?} is not <0xXX>", piece.text))
                    })?;
                    byte_ids[b as usize] = Some(id);
                    vec![b]
                }
                _ => piece.text.replace(SPACE, " ").into_bytes(),
            };
            piece_bytes.push(bytes);
        }
        let byte_ids = if spec.byte_fallback {
            let ids: Option<Vec<u32>> = byte_ids.into_iter().collect();
            Some(
                ids.ok_or_else(|| format_error(path, "byte fallback without all 256 byte pieces"))?,
            )
        } else {
            None
        };
        if !spec.byte_fallback && spec.unk_id.is_none() {
            return Err(format_error(
                path,
                "model has neither byte fallback nor an unknown piece",
            ));
        }
        let mut user_defined: Vec<String> = spec
            .pieces
            .iter()
            .filter(|p| p.kind == PieceType::UserDefined && !p.text.is_empty())
            .map(|p| p.text.clone())
            .collect();
        user_defined.sort_by_key(|t| std::cmp::Reverse(t.len()));
        let words_independent = !mergeable.keys().any(|p| space_after_other(p));
        Ok(SentencePieceTokenizer {
            spec,
            mergeable,
            reserved,
            user_defined,
            byte_ids,
            piece_bytes,
            words_independent,
        })
    }

    /// Encodes text and prepends the BOS id (what Llama models expect as the first token).
    pub fn encode_with_bos(&self, text: &str) -> Vec<u32> {
        let mut ids: Vec<u32> = self.spec.bos_id.into_iter().collect();
        ids.extend(self.encode(text));
        ids
    }

    /// The text, score and type of piece `id`.
    pub fn piece(&self, id: u32) -> Option<(&str, f32, PieceType)> {
        self.spec
            .pieces
            .get(id as usize)
            .map(|p| (p.text.as_str(), p.score, p.kind))
    }

    /// The id of a piece (in `▁` form), if present.
    pub fn piece_id(&self, piece: &str) -> Option<u32> {
        self.reserved
            .get(piece)
            .or_else(|| self.mergeable.get(piece))
            .copied()
    }

    /// Applies the normalizer: whitespace cleanup, `▁` escaping and the dummy prefix.
    fn normalize(&self, text: &str) -> String {
        let collapsed;
        let text = if self.spec.remove_extra_whitespaces {
            collapsed = text
                .split(' ')
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            collapsed.as_str()
        } else {
            text
        };
        let mut out = String::with_capacity(text.len() + 3);
        if text.is_empty() {
            return out;
        }
        let space = if self.spec.escape_whitespaces {
            SPACE
        } else {
            ' '
        };
        if self.spec.add_dummy_prefix {
            out.push(space);
        }
        out.extend(text.chars().map(|c| if c == ' ' { space } else { c }));
        out
    }

    /// Splits normalized text into initial symbols: user-defined pieces whole, else characters.
    /// Returns (byte end of each symbol, whether it is frozen).
    fn initial_symbols(&self, text: &str) -> Vec<(usize, bool)> {
        let mut symbols = Vec::with_capacity(text.len());
        let mut pos = 0;
        while pos < text.len() {
            let rest = &text[pos..];
            let user = self
                .user_defined
                .iter()
                .find(|u| rest.starts_with(u.as_str()));
            let (len, frozen) = match user {
                Some(u) => (u.len(), true),
                None => (rest.chars().next().map_or(1, char::len_utf8), false),
            };
            pos += len;
            symbols.push((pos, frozen));
        }
        symbols
    }

    /// Emits the id(s) of one final symbol.
    fn emit(&self, symbol: &str, out: &mut Vec<u32>) {
        if let Some(id) = self.piece_id(symbol) {
            out.push(id);
        } else if let Some(byte_ids) = &self.byte_ids {
            out.extend(symbol.bytes().map(|b| byte_ids[b as usize]));
        } else {
            out.extend(self.spec.unk_id);
        }
    }
}

/// A candidate merge of the symbol at `left` with its right neighbour.
#[derive(Debug, PartialEq)]
struct Candidate {
    score: f32,
    left: usize,
    /// Byte length of the merged piece, to detect stale candidates.
    len: usize,
}

impl Eq for Candidate {}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The linked list of symbols being merged; symbol `i` spans `text[start[i]..end[i]]`.
struct Symbols<'a> {
    text: &'a str,
    start: Vec<usize>,
    end: Vec<usize>,
    next: Vec<usize>,
    prev: Vec<usize>,
    frozen: Vec<bool>,
}

const NONE: usize = usize::MAX;

impl SentencePieceTokenizer {
    fn candidate(&self, s: &Symbols, left: usize) -> Option<Candidate> {
        let right = s.next[left];
        if right == NONE || s.frozen[left] || s.frozen[right] {
            return None;
        }
        let merged = &s.text[s.start[left]..s.end[right]];
        let id = *self.mergeable.get(merged)?;
        let score = self.spec.pieces[id as usize].score;
        Some(Candidate {
            score,
            left,
            len: merged.len(),
        })
    }

    /// Encodes normalized text word by word, reusing the ids of repeated words.
    fn encode_words(&self, text: &str) -> Vec<u32> {
        let mut ids = Vec::with_capacity(text.len() / 3);
        let mut cache: HashMap<&str, (usize, usize)> = HashMap::new();
        for word in words(text) {
            if let Some(&(start, len)) = cache.get(word) {
                ids.extend_from_within(start..start + len);
                continue;
            }
            let start = ids.len();
            ids.extend(self.encode_normalized(word));
            cache.insert(word, (start, ids.len() - start));
        }
        ids
    }

    /// Runs the BPE merges over normalized text and returns the final ids.
    fn encode_normalized(&self, text: &str) -> Vec<u32> {
        let initial = self.initial_symbols(text);
        let n = initial.len();
        let mut s = Symbols {
            text,
            start: std::iter::once(0)
                .chain(initial.iter().map(|&(e, _)| e))
                .take(n)
                .collect(),
            end: initial.iter().map(|&(e, _)| e).collect(),
            next: (1..=n).map(|i| if i == n { NONE } else { i }).collect(),
            prev: (0..n).map(|i| if i == 0 { NONE } else { i - 1 }).collect(),
            frozen: initial.iter().map(|&(_, f)| f).collect(),
        };
        let mut heap: BinaryHeap<Candidate> =
            (0..n).filter_map(|i| self.candidate(&s, i)).collect();
        while let Some(top) = heap.pop() {
            let (left, right) = (top.left, s.next[top.left]);
            if s.end[left] == s.start[left]
                || right == NONE
                || s.end[right] - s.start[left] != top.len
            {
                continue;
            }
            s.end[left] = s.end[right];
            s.start[right] = s.end[right];
            s.next[left] = s.next[right];
            if s.next[right] != NONE {
                s.prev[s.next[right]] = left;
            }
            heap.extend(self.candidate(&s, left));
            if s.prev[left] != NONE {
                heap.extend(self.candidate(&s, s.prev[left]));
            }
        }
        let mut ids = Vec::with_capacity(n);
        let mut k = if n == 0 { NONE } else { 0 };
        while k != NONE {
            self.emit(&text[s.start[k]..s.end[k]], &mut ids);
            k = s.next[k];
        }
        ids
    }
}

impl Tokenizer for SentencePieceTokenizer {
    fn encode(&self, text: &str) -> Vec<u32> {
        let normalized = self.normalize(text);
        let mut ids = if self.words_independent {
            self.encode_words(&normalized)
        } else {
            self.encode_normalized(&normalized)
        };
        if self.byte_ids.is_none() {
            // Without byte fallback, a run of unknown symbols becomes one unknown id.
            let unk = self.spec.unk_id;
            ids.dedup_by(|a, b| Some(*a) == unk && Some(*b) == unk);
        }
        ids
    }

    fn decode_token(&self, id: u32, at_start: bool) -> Result<Cow<'_, [u8]>> {
        let vocab_size = self.piece_bytes.len();
        let bytes = self
            .piece_bytes
            .get(id as usize)
            .ok_or(Error::UnknownId { id, vocab_size })?;
        let piece = &self.spec.pieces[id as usize];
        let strips = matches!(
            piece.kind,
            PieceType::Normal | PieceType::UserDefined | PieceType::Unused
        ) && (self.spec.add_dummy_prefix || self.spec.remove_extra_whitespaces)
            && piece.text.starts_with(SPACE);
        Ok(Cow::Borrowed(if at_start && strips {
            &bytes[1..]
        } else {
            bytes
        }))
    }

    fn is_control(&self, id: u32) -> bool {
        self.piece(id).is_some_and(|p| p.2 == PieceType::Control)
    }

    fn invalid_utf8(&self) -> InvalidUtf8 {
        InvalidUtf8::PerByte
    }

    fn vocab_size(&self) -> usize {
        self.piece_bytes.len()
    }

    fn bos(&self) -> Option<u32> {
        self.spec.bos_id
    }

    fn eos(&self) -> Option<u32> {
        self.spec.eos_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn llama() -> &'static SentencePieceTokenizer {
        static TOK: std::sync::OnceLock<SentencePieceTokenizer> = std::sync::OnceLock::new();
        TOK.get_or_init(|| {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
            SentencePieceTokenizer::from_model(
                dir.join("../../../shared/data/llama2-tokenizer.model"),
            )
            .unwrap()
        })
    }

    #[test]
    fn words_split_before_each_space_run() {
        let got: Vec<&str> = words("▁a▁▁bc▁▁▁d▁").collect();
        assert_eq!(got, ["▁a", "▁▁bc", "▁▁▁d", "▁"]);
        assert!(llama().words_independent);
    }

    proptest! {
        #[test]
        fn word_by_word_encoding_equals_merging_the_whole_text(text in "[ a-z'’é中😀\t\n]{0,40}") {
            let normalized = llama().normalize(&text);
            prop_assert_eq!(llama().encode_words(&normalized), llama().encode_normalized(&normalized));
        }
    }
}
