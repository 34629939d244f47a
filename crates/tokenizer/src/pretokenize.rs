//! The GPT-2 pre-tokenizer, written out by hand.
//!
//! It splits text exactly as the regular expression
//! `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
//! does under leftmost-first matching. Every character matches some alternative, so the matches
//! tile the text. `\s` is the Unicode White_Space property (`char::is_whitespace`); `\p{L}` and
//! `\p{N}` come from the generated general-category tables.

use crate::unicode_tables::{LETTER, NUMBER};

/// The character classes the pattern distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Letter,
    Number,
    Space,
    Other,
}

fn in_table(table: &[(u32, u32)], c: char) -> bool {
    let cp = c as u32;
    table
        .binary_search_by(|&(lo, hi)| {
            if hi < cp {
                std::cmp::Ordering::Less
            } else if lo > cp {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

fn class(c: char) -> Class {
    if c.is_ascii() {
        return match c {
            'a'..='z' | 'A'..='Z' => Class::Letter,
            '0'..='9' => Class::Number,
            _ if c.is_ascii_whitespace() || c == '\x0B' => Class::Space,
            _ => Class::Other,
        };
    }
    if in_table(LETTER, c) {
        Class::Letter
    } else if in_table(NUMBER, c) {
        Class::Number
    } else if c.is_whitespace() {
        Class::Space
    } else {
        Class::Other
    }
}

/// The pieces of `text` in order; their concatenation is `text`.
pub(crate) fn split(text: &str) -> Vec<&str> {
    let chars: Vec<(usize, char, Class)> =
        text.char_indices().map(|(i, c)| (i, c, class(c))).collect();
    let offset = |k: usize| chars.get(k).map_or(text.len(), |&(i, _, _)| i);
    let mut pieces = Vec::new();
    let mut k = 0;
    while k < chars.len() {
        let end = piece_end(text, &chars, k);
        pieces.push(&text[offset(k)..offset(end)]);
        k = end;
    }
    pieces
}

/// The character index where the match starting at character `k` ends.
fn piece_end(text: &str, chars: &[(usize, char, Class)], k: usize) -> usize {
    let (start, c, cls) = chars[k];
    if c == '\'' {
        let rest = &text[start + 1..];
        for suffix in ["s", "t", "re", "ve", "m", "ll", "d"] {
            if rest.starts_with(suffix) {
                return k + 1 + suffix.len();
            }
        }
    }
    let run_of = |from: usize, cls: Class| {
        let mut j = from;
        while j < chars.len() && chars[j].2 == cls {
            j += 1;
        }
        j
    };
    let body = if c == ' ' {
        chars.get(k + 1).map(|&(_, _, next)| (k + 1, next))
    } else {
        Some((k, cls))
    };
    if let Some((from, next)) = body {
        if next != Class::Space {
            return run_of(from, next);
        }
    }
    let run_end = run_of(k, Class::Space);
    if run_end == chars.len() || run_end - k == 1 {
        run_end
    } else {
        run_end - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_contractions_words_numbers_and_space_runs() {
        assert_eq!(
            split("I don't  know,  it's 3.14!\n"),
            ["I", " don", "'t", " ", " know", ",", " ", " it", "'s", " 3", ".", "14", "!", "\n"]
        );
        assert_eq!(
            split("I'LL x  \t y   "),
            ["I", "'", "LL", " x", "  \t", " y", "   "]
        );
    }

    #[test]
    fn combining_marks_are_neither_letters_nor_numbers() {
        assert_eq!(split("e\u{301}x"), ["e", "\u{301}", "x"]);
        assert_eq!(class('Ⅻ'), Class::Number);
        assert_eq!(class('\u{2028}'), Class::Space);
    }
}
