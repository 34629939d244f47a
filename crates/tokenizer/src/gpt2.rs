//! GPT-2 byte-level BPE: the pre-tokenizer splits text into words, each word's UTF-8 bytes are
//! mapped to printable characters, and ranked merges join adjacent symbols, lowest rank first.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::path::Path;

use crate::error::{format_error, read_file};
use crate::{pretokenize, Error, InvalidUtf8, Result, Tokenizer};

/// The end-of-text token, GPT-2's only special token.
const END_OF_TEXT: &str = "<|endoftext|>";

/// A GPT-2 byte-level BPE tokenizer.
///
/// `encode` treats all text as ordinary text: `<|endoftext|>` in the input is split like any
/// other characters, as HF `tokenizers` does without registered special tokens. `decode`
/// renders `<|endoftext|>` as its text, like HF `decode(ids, skip_special_tokens=False)`.
#[derive(Debug, Clone)]
pub struct Gpt2Tokenizer {
    /// Token string (in the byte-to-character alphabet) to id.
    vocab: HashMap<String, u32>,
    /// Decoded bytes of each token, indexed by id.
    token_bytes: Vec<Vec<u8>>,
    /// (left id, right id) to (merge rank, merged id).
    merges: HashMap<(u32, u32), (u32, u32)>,
    /// The id of each byte's single-character token.
    byte_ids: [u32; 256],
    end_of_text: Option<u32>,
}

/// GPT-2's reversible map from bytes to printable characters.
fn byte_to_char() -> [char; 256] {
    let mut map = ['\0'; 256];
    let mut extra = 0u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        map[b as usize] = if printable {
            char::from(b)
        } else {
            extra += 1;
            char::from_u32(255 + extra).unwrap_or('\0')
        };
    }
    map
}

impl Gpt2Tokenizer {
    /// Loads the OpenAI release files `vocab.json` and `merges.txt`.
    pub fn from_files(vocab_json: impl AsRef<Path>, merges_txt: impl AsRef<Path>) -> Result<Self> {
        let (vocab_path, merges_path) = (vocab_json.as_ref(), merges_txt.as_ref());
        let json = parse_json(vocab_path)?;
        let vocab = vocab_from_json(vocab_path, &json)?;
        let text = String::from_utf8(read_file(merges_path)?)
            .map_err(|_| format_error(merges_path, "merges file is not UTF-8 text"))?;
        let mut merges = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.is_empty() || (n == 0 && line.starts_with("#version")) {
                continue;
            }
            let pair = line.split_once(' ').filter(|(_, b)| !b.contains(' '));
            let (a, b) = pair.ok_or_else(|| {
                format_error(
                    merges_path,
                    format!("line {}: expected two tokens: {line:?}", n + 1),
                )
            })?;
            merges.push((a.to_string(), b.to_string()));
        }
        Self::build(vocab, &merges, merges_path)
    }

    /// Loads a Hugging Face `tokenizer.json` whose model is byte-level BPE.
    pub fn from_tokenizer_json(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let json = parse_json(path)?;
        let model = &json["model"];
        if model["type"] != "BPE" {
            return Err(format_error(path, "model.type is not \"BPE\"".to_string()));
        }
        let mut vocab = vocab_from_json(path, &model["vocab"])?;
        let added = json["added_tokens"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        for token in added {
            if let (Some(content), Some(id)) = (token["content"].as_str(), token["id"].as_u64()) {
                let id = u32::try_from(id)
                    .map_err(|_| format_error(path, format!("added token id {id} too large")))?;
                vocab.insert(content.to_string(), id);
            }
        }
        let list = model["merges"]
            .as_array()
            .ok_or_else(|| format_error(path, "model.merges is missing or not a list"))?;
        let mut merges = Vec::with_capacity(list.len());
        for (n, item) in list.iter().enumerate() {
            let pair = match item {
                serde_json::Value::String(s) => s.split_once(' '),
                serde_json::Value::Array(v) if v.len() == 2 => v[0].as_str().zip(v[1].as_str()),
                _ => None,
            };
            let (a, b) =
                pair.ok_or_else(|| format_error(path, format!("model.merges[{n}] is not a pair")))?;
            merges.push((a.to_string(), b.to_string()));
        }
        Self::build(vocab, &merges, path)
    }

    fn build(
        vocab: HashMap<String, u32>,
        merges: &[(String, String)],
        path: &Path,
    ) -> Result<Self> {
        let size = vocab.values().max().map_or(0, |&m| m as usize + 1);
        if size != vocab.len() {
            return Err(format_error(
                path,
                "vocabulary ids are not contiguous from 0",
            ));
        }
        let chars = byte_to_char();
        let char_to_byte: HashMap<char, u8> = (0..=255u8).map(|b| (chars[b as usize], b)).collect();
        let mut token_bytes = vec![Vec::new(); size];
        for (token, &id) in &vocab {
            let mapped: Option<Vec<u8>> = token
                .chars()
                .map(|c| char_to_byte.get(&c).copied())
                .collect();
            token_bytes[id as usize] = mapped.unwrap_or_else(|| token.as_bytes().to_vec());
        }
        let mut byte_ids = [0u32; 256];
        for (b, c) in chars.iter().enumerate() {
            byte_ids[b] = *vocab.get(&c.to_string()).ok_or_else(|| {
                format_error(
                    path,
                    format!("vocabulary lacks the token for byte {b:#04x}"),
                )
            })?;
        }
        let mut merge_map = HashMap::with_capacity(merges.len());
        for (rank, (a, b)) in merges.iter().enumerate() {
            let lookup = |s: &str| {
                vocab.get(s).copied().ok_or_else(|| {
                    format_error(
                        path,
                        format!(
                            "merge {} uses {s:?}, which is not in the vocabulary",
                            rank + 1
                        ),
                    )
                })
            };
            let (left, right, merged) = (lookup(a)?, lookup(b)?, lookup(&format!("{a}{b}"))?);
            merge_map
                .entry((left, right))
                .or_insert((rank as u32, merged));
        }
        let end_of_text = vocab.get(END_OF_TEXT).copied();
        Ok(Gpt2Tokenizer {
            vocab,
            token_bytes,
            merges: merge_map,
            byte_ids,
            end_of_text,
        })
    }

    /// The id of a token string (in GPT-2's byte-to-character alphabet), if present.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.vocab.get(token).copied()
    }

    /// Applies the merges to one pre-tokenized word.
    fn encode_word(&self, word: &str, out: &mut Vec<u32>) {
        let mut ids: Vec<u32> = word.bytes().map(|b| self.byte_ids[b as usize]).collect();
        if ids.len() > 1 {
            merge_all(&self.merges, &mut ids);
        }
        out.extend_from_slice(&ids);
    }
}

/// Merges adjacent symbols in rank order (leftmost first on ties) until no merge applies.
fn merge_all(merges: &HashMap<(u32, u32), (u32, u32)>, ids: &mut Vec<u32>) {
    const NONE: usize = usize::MAX;
    let n = ids.len();
    let mut next: Vec<usize> = (1..=n).map(|i| if i == n { NONE } else { i }).collect();
    let mut prev: Vec<usize> = (0..n).map(|i| if i == 0 { NONE } else { i - 1 }).collect();
    let mut alive = vec![true; n];
    let mut heap = BinaryHeap::new();
    let push = |heap: &mut BinaryHeap<_>, ids: &[u32], l: usize, r: usize| {
        if let Some(&(rank, merged)) = merges.get(&(ids[l], ids[r])) {
            heap.push(Reverse((rank, l, merged)));
        }
    };
    for i in 0..n - 1 {
        push(&mut heap, ids, i, i + 1);
    }
    while let Some(Reverse((rank, l, merged))) = heap.pop() {
        let r = next[l];
        if !alive[l] || r == NONE || merges.get(&(ids[l], ids[r])) != Some(&(rank, merged)) {
            continue;
        }
        ids[l] = merged;
        alive[r] = false;
        next[l] = next[r];
        if next[r] != NONE {
            prev[next[r]] = l;
            push(&mut heap, ids, l, next[r]);
        }
        if prev[l] != NONE {
            push(&mut heap, ids, prev[l], l);
        }
    }
    let mut k = 0;
    let mut out = Vec::new();
    while k != NONE {
        out.push(ids[k]);
        k = next[k];
    }
    *ids = out;
}

fn parse_json(path: &Path) -> Result<serde_json::Value> {
    serde_json::from_slice(&read_file(path)?)
        .map_err(|e| format_error(path, format!("not valid JSON: {e}")))
}

fn vocab_from_json(path: &Path, json: &serde_json::Value) -> Result<HashMap<String, u32>> {
    let object = json
        .as_object()
        .ok_or_else(|| format_error(path, "vocabulary is not a JSON object of token to id"))?;
    object
        .iter()
        .map(|(token, id)| {
            let id = id
                .as_u64()
                .and_then(|id| u32::try_from(id).ok())
                .ok_or_else(|| {
                    format_error(
                        path,
                        format!("token {token:?} has id {id}, not a non-negative integer"),
                    )
                })?;
            Ok((token.clone(), id))
        })
        .collect()
}

impl Tokenizer for Gpt2Tokenizer {
    fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids = Vec::with_capacity(text.len() / 3);
        let mut cache: HashMap<&str, (usize, usize)> = HashMap::new();
        for word in pretokenize::split(text) {
            if let Some(&(start, len)) = cache.get(word) {
                ids.extend_from_within(start..start + len);
                continue;
            }
            let start = ids.len();
            self.encode_word(word, &mut ids);
            cache.insert(word, (start, ids.len() - start));
        }
        ids
    }

    fn decode_token(&self, id: u32, _at_start: bool) -> Result<Cow<'_, [u8]>> {
        self.token_bytes
            .get(id as usize)
            .map(|b| Cow::Borrowed(b.as_slice()))
            .ok_or(Error::UnknownId {
                id,
                vocab_size: self.token_bytes.len(),
            })
    }

    fn is_control(&self, _id: u32) -> bool {
        false
    }

    fn invalid_utf8(&self) -> InvalidUtf8 {
        InvalidUtf8::MaximalSubpart
    }

    fn vocab_size(&self) -> usize {
        self.token_bytes.len()
    }

    fn bos(&self) -> Option<u32> {
        self.end_of_text
    }

    fn eos(&self) -> Option<u32> {
        self.end_of_text
    }
}
