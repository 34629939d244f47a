//! The MIL lexer: splits text into identifiers, numbers, strings and punctuation with 1-based
//! line:col positions, skipping whitespace and `//` comments.

use crate::error::{Error, Result};

/// What a token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `[A-Za-z_][A-Za-z0-9_]*`.
    Ident,
    /// Starts with a digit (or `.digit`); the raw text is interpreted by the parser.
    Number,
    /// A double-quoted string; `text` is the raw content between the quotes, escapes unprocessed.
    Str,
    /// One of `( ) [ ] { } < > , = ; : - +`.
    Punct(u8),
    /// `->`.
    Arrow,
    /// End of input.
    Eof,
}

/// One token with its raw text and start position.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Token<'a> {
    pub kind: Kind,
    pub text: &'a str,
    pub line: u32,
    pub col: u32,
}

impl Token<'_> {
    /// True when this token is the punctuation `c`.
    pub fn is_punct(&self, c: u8) -> bool {
        self.kind == Kind::Punct(c)
    }

    /// True when this token is the identifier `word`.
    pub fn is_ident(&self, word: &str) -> bool {
        self.kind == Kind::Ident && self.text == word
    }

    /// A short description for error messages, e.g. `';'` or `identifier 'x'`.
    pub fn describe(&self) -> String {
        match self.kind {
            Kind::Ident => format!("identifier '{}'", self.text),
            Kind::Number => format!("number '{}'", self.text),
            Kind::Str => {
                let shown: String = self.text.chars().take(40).collect();
                format!("string \"{shown}\"")
            }
            Kind::Punct(c) => format!("'{}'", c as char),
            Kind::Arrow => "'->'".to_string(),
            Kind::Eof => "end of input".to_string(),
        }
    }
}

/// A streaming lexer over MIL text.
pub(crate) struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    line: u32,
    col: u32,
}

impl<'a> Lexer<'a> {
    /// A lexer at the start of `src`.
    pub fn new(src: &'a str) -> Self {
        Lexer {
            src,
            pos: 0,
            line: 1,
            col: 1,
        }
    }

    fn peek_byte(&self, ahead: usize) -> Option<u8> {
        self.src.as_bytes().get(self.pos + ahead).copied()
    }

    /// Consumes one byte, keeping line and column (counted in characters) up to date.
    fn advance(&mut self) {
        if let Some(b) = self.peek_byte(0) {
            self.pos += 1;
            if b == b'\n' {
                self.line = self.line.saturating_add(1);
                self.col = 1;
            } else if b & 0xC0 != 0x80 {
                self.col = self.col.saturating_add(1);
            }
        }
    }

    fn skip_trivia(&mut self) {
        while let Some(b) = self.peek_byte(0) {
            if b.is_ascii_whitespace() {
                self.advance();
            } else if b == b'/' && self.peek_byte(1) == Some(b'/') {
                while !matches!(self.peek_byte(0), None | Some(b'\n')) {
                    self.advance();
                }
            } else {
                break;
            }
        }
    }

    /// The next token, or a parse error for an unexpected character or unterminated string.
    pub fn next_token(&mut self) -> Result<Token<'a>> {
        self.skip_trivia();
        let (line, col, start) = (self.line, self.col, self.pos);
        let Some(b) = self.peek_byte(0) else {
            return Ok(self.token(Kind::Eof, start, line, col));
        };
        let kind = if b.is_ascii_alphabetic() || b == b'_' {
            while matches!(self.peek_byte(0), Some(c) if c.is_ascii_alphanumeric() || c == b'_') {
                self.advance();
            }
            Kind::Ident
        } else if b.is_ascii_digit()
            || (b == b'.' && matches!(self.peek_byte(1), Some(c) if c.is_ascii_digit()))
        {
            self.number();
            Kind::Number
        } else if b == b'"' {
            return self.string(line, col);
        } else if b == b'-' && self.peek_byte(1) == Some(b'>') {
            self.advance();
            self.advance();
            Kind::Arrow
        } else if b"()[]{}<>,=;:-+".contains(&b) {
            self.advance();
            Kind::Punct(b)
        } else {
            let c = self.src[self.pos..].chars().next().unwrap_or('?');
            return Err(Error::Parse {
                line,
                col,
                message: format!("unexpected character {c:?}"),
            });
        };
        Ok(self.token(kind, start, line, col))
    }

    fn token(&self, kind: Kind, start: usize, line: u32, col: u32) -> Token<'a> {
        Token {
            kind,
            text: &self.src[start..self.pos],
            line,
            col,
        }
    }

    /// Consumes a number: alphanumerics, `_` and `.`, plus a sign right after an exponent
    /// marker (`e` for decimal, `p` for hex).
    fn number(&mut self) {
        let hex = self.peek_byte(0) == Some(b'0') && matches!(self.peek_byte(1), Some(b'x' | b'X'));
        let mut prev = 0u8;
        while let Some(c) = self.peek_byte(0) {
            let exp_sign = matches!(c, b'+' | b'-')
                && if hex {
                    matches!(prev, b'p' | b'P')
                } else {
                    matches!(prev, b'e' | b'E')
                };
            if !(c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || exp_sign) {
                break;
            }
            prev = c;
            self.advance();
        }
    }

    /// Consumes a double-quoted string; escapes are skipped over, not decoded.
    fn string(&mut self, line: u32, col: u32) -> Result<Token<'a>> {
        self.advance();
        let start = self.pos;
        loop {
            match self.peek_byte(0) {
                None => {
                    return Err(Error::Parse {
                        line,
                        col,
                        message: "unterminated string literal, expected '\"'".to_string(),
                    })
                }
                Some(b'"') => break,
                Some(b'\\') => {
                    self.advance();
                    self.advance();
                }
                Some(_) => self.advance(),
            }
        }
        let text = &self.src[start..self.pos];
        self.advance();
        Ok(Token {
            kind: Kind::Str,
            text,
            line,
            col,
        })
    }
}

/// Decodes the escapes of a string token's raw text (`\" \\ \n \t \r \0 \' \u{…}`).
pub(crate) fn unescape(raw: &str) -> std::result::Result<String, String> {
    if !raw.contains('\\') {
        return Ok(raw.to_string());
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = chars.next().ok_or("string ends in a lone '\\'")?;
        out.push(match e {
            '"' => '"',
            '\\' => '\\',
            '\'' => '\'',
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            '0' => '\0',
            'u' => unicode_escape(&mut chars)?,
            other => return Err(format!("unknown escape '\\{other}' in string")),
        });
    }
    Ok(out)
}

fn unicode_escape(chars: &mut std::str::Chars<'_>) -> std::result::Result<char, String> {
    const BAD: &str = "expected '\\u{hex}' escape with 1 to 6 hex digits";
    if chars.next() != Some('{') {
        return Err(BAD.to_string());
    }
    let mut code: u32 = 0;
    for n in 0..=6 {
        match chars.next() {
            Some('}') if n > 0 => {
                return char::from_u32(code)
                    .ok_or_else(|| format!("'\\u{{{code:x}}}' is not a Unicode scalar value"))
            }
            Some(h) if n < 6 && h.is_ascii_hexdigit() => {
                code = code * 16 + h.to_digit(16).unwrap_or(0);
            }
            _ => break,
        }
    }
    Err(BAD.to_string())
}
