//! Token files: the flat token streams the data loader reads.
//!
//! Two layouts, chosen by the vocabulary size when writing:
//! - **u16** (vocabulary ≤ 65,536): headerless little-endian `u16` tokens, exactly the
//!   llama2.c / TinyStories `.bin` format.
//! - **u32** (larger vocabularies): a 16-byte header — magic `b"ORTK"`, then little-endian
//!   `u32` version (1), token width in bytes (4) and vocabulary size — followed by
//!   little-endian `u32` tokens.
//!
//! [`TokenFile::open`] recognises the u32 header by its magic, version and width; a u16 file
//! would have to begin with the tokens 21071, 19284, 1, 0, 4, 0 to be mistaken for one, and
//! [`TokenFile::open_as`] forces a layout when that matters.
//!
//! An opened file is read window by window with positioned reads, not memory-mapped: a file
//! truncated or replaced in place while a run reads it gives a read error (the run saves its
//! checkpoint and stops) instead of a SIGBUS that kills the process.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use crate::atomic::write_atomic;
use crate::error::{Error, Result};

/// The magic that starts a u32 token file.
pub const U32_MAGIC: [u8; 4] = *b"ORTK";
/// The u32 token file version this build writes and reads.
pub const U32_VERSION: u32 = 1;
/// The size of the u32 token file header in bytes.
pub const U32_HEADER_LEN: usize = 16;

/// The on-disk layout of a token file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFormat {
    /// Headerless little-endian `u16` (llama2.c).
    U16,
    /// `ORTK` header, then little-endian `u32`.
    U32,
}

impl TokenFormat {
    /// The layout [`write_tokens`] uses for a vocabulary of `vocab_size` ids.
    pub fn for_vocab(vocab_size: usize) -> Self {
        if vocab_size <= 1 << 16 {
            TokenFormat::U16
        } else {
            TokenFormat::U32
        }
    }
}

/// Where the tokens live: an open file (with the byte offset of the first token) or memory.
#[derive(Debug)]
enum Storage {
    File { file: File, offset: usize },
    Owned(Vec<u32>),
}

/// Reads exactly `buf.len()` bytes at byte `at` of `file`.
fn read_at(file: &File, at: usize, buf: &mut [u8]) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, buf, at as u64)
    }
    #[cfg(not(unix))]
    {
        use std::io::{Seek, SeekFrom};
        let mut f = file;
        f.seek(SeekFrom::Start(at as u64))?;
        f.read_exact(buf)
    }
}

/// A read-only stream of tokens, read from a token file or held in memory.
#[derive(Debug)]
pub struct TokenFile {
    storage: Storage,
    format: TokenFormat,
    len: usize,
    vocab_size: Option<usize>,
    name: String,
}

/// Writes `tokens` to `path` atomically, as u16 when `vocab_size` ≤ 65,536 and u32 otherwise;
/// every id must be below `vocab_size`.
pub fn write_tokens(path: &Path, tokens: &[u32], vocab_size: usize) -> Result<TokenFormat> {
    let fail = |message: String| Error::Tokens {
        path: path.display().to_string(),
        message,
    };
    if tokens.is_empty() {
        return Err(fail("refusing to write an empty token file".into()));
    }
    if vocab_size == 0 || vocab_size > u32::MAX as usize {
        return Err(fail(format!(
            "vocabulary size {vocab_size} is out of range"
        )));
    }
    if let Some((i, &id)) = tokens
        .iter()
        .enumerate()
        .find(|(_, &id)| id as usize >= vocab_size)
    {
        return Err(fail(format!(
            "token {id} at position {i} is outside the vocabulary of {vocab_size}"
        )));
    }
    let format = TokenFormat::for_vocab(vocab_size);
    write_atomic(path, |out| match format {
        TokenFormat::U16 => {
            for chunk in tokens.chunks(1 << 16) {
                let bytes: Vec<u8> = chunk
                    .iter()
                    .flat_map(|&t| (t as u16).to_le_bytes())
                    .collect();
                out.write_all(&bytes)?;
            }
            Ok(())
        }
        TokenFormat::U32 => {
            out.write_all(&U32_MAGIC)?;
            out.write_all(&U32_VERSION.to_le_bytes())?;
            out.write_all(&4u32.to_le_bytes())?;
            out.write_all(&(vocab_size as u32).to_le_bytes())?;
            for chunk in tokens.chunks(1 << 16) {
                let bytes: Vec<u8> = chunk.iter().flat_map(|&t| t.to_le_bytes()).collect();
                out.write_all(&bytes)?;
            }
            Ok(())
        }
    })?;
    Ok(format)
}

/// Whether `bytes` start with a u32 token file header (magic, version 1, width 4).
fn has_u32_header(bytes: &[u8]) -> bool {
    bytes.len() >= U32_HEADER_LEN
        && bytes[..4] == U32_MAGIC
        && bytes[4..8] == U32_VERSION.to_le_bytes()
        && bytes[8..12] == 4u32.to_le_bytes()
}

impl TokenFile {
    /// Opens a token file, telling u32 files from u16 ones by their header.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, None)
    }

    /// Opens a token file as the given layout, whatever its first bytes look like.
    pub fn open_as(path: &Path, format: TokenFormat) -> Result<Self> {
        Self::open_with(path, Some(format))
    }

    /// Opens `path` and checks its length and header against `format` (detected when `None`).
    fn open_with(path: &Path, format: Option<TokenFormat>) -> Result<Self> {
        let fail = |message: String| Error::Tokens {
            path: path.display().to_string(),
            message,
        };
        if path.is_dir() {
            return Err(fail(
                "this is a directory; give a token file (`orion data prepare --out FILE`)".into(),
            ));
        }
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        let size = file.metadata().map_err(|e| Error::io(path, e))?.len() as usize;
        if size == 0 {
            return Err(fail("the file is empty".into()));
        }
        let mut head = Vec::with_capacity(U32_HEADER_LEN);
        (&mut file)
            .take(U32_HEADER_LEN as u64)
            .read_to_end(&mut head)
            .map_err(|e| Error::io(path, e))?;
        let format = format.unwrap_or(if has_u32_header(&head) {
            TokenFormat::U32
        } else {
            TokenFormat::U16
        });
        let (offset, len, vocab_size) = match format {
            TokenFormat::U16 => {
                if !size.is_multiple_of(2) {
                    return Err(fail(format!(
                        "{size} bytes is odd, so this is not a u16 token file (truncated copy?)"
                    )));
                }
                (0, size / 2, None)
            }
            TokenFormat::U32 => {
                if !has_u32_header(&head) {
                    return Err(fail(format!(
                        "expected the u32 header {:?} version {U32_VERSION} width 4, found {:?}",
                        "ORTK", &head
                    )));
                }
                let body = size - U32_HEADER_LEN;
                if body == 0 || !body.is_multiple_of(4) {
                    return Err(fail(format!(
                        "the u32 body is {body} bytes, which is not a positive multiple of 4"
                    )));
                }
                let vocab = u32::from_le_bytes([head[12], head[13], head[14], head[15]]) as usize;
                (U32_HEADER_LEN, body / 4, Some(vocab))
            }
        };
        Ok(TokenFile {
            storage: Storage::File { file, offset },
            format,
            len,
            vocab_size,
            name: path.display().to_string(),
        })
    }

    /// A token stream held in memory (the built-in corpus, tests).
    pub fn from_tokens(tokens: Vec<u32>) -> Self {
        TokenFile {
            len: tokens.len(),
            storage: Storage::Owned(tokens),
            format: TokenFormat::U32,
            vocab_size: None,
            name: "(in memory)".into(),
        }
    }

    /// The number of tokens.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no tokens (never true for an opened file).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The layout the tokens were read from.
    pub fn format(&self) -> TokenFormat {
        self.format
    }

    /// The vocabulary size recorded in a u32 header (u16 files do not record one).
    pub fn vocab_size(&self) -> Option<usize> {
        self.vocab_size
    }

    /// Copies tokens `[start, start + out.len())` into `out`; an error when the file no
    /// longer holds them (truncated or replaced while in use).
    ///
    /// # Panics
    /// If the window lies past the end of the stream as opened (a caller bug).
    pub fn copy_window(&self, start: usize, out: &mut [u32]) -> Result<()> {
        assert!(start + out.len() <= self.len, "window past the end");
        let (file, offset) = match &self.storage {
            Storage::Owned(v) => {
                out.copy_from_slice(&v[start..start + out.len()]);
                return Ok(());
            }
            Storage::File { file, offset } => (file, *offset),
        };
        let width = match self.format {
            TokenFormat::U16 => 2,
            TokenFormat::U32 => 4,
        };
        let mut bytes = vec![0u8; width * out.len()];
        read_at(file, offset + width * start, &mut bytes).map_err(|e| Error::Tokens {
            path: self.name.clone(),
            message: format!(
                "cannot read tokens {start}..{} of the {} it held when opened: {e} (was the \
                 file truncated or replaced while in use?)",
                start + out.len(),
                self.len
            ),
        })?;
        for (o, b) in out.iter_mut().zip(bytes.chunks_exact(width)) {
            *o = match self.format {
                TokenFormat::U16 => u16::from_le_bytes([b[0], b[1]]) as u32,
                TokenFormat::U32 => u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            };
        }
        Ok(())
    }

    /// All tokens, copied into memory.
    pub fn to_vec(&self) -> Result<Vec<u32>> {
        let mut out = vec![0; self.len];
        self.copy_window(0, &mut out)?;
        Ok(out)
    }

    /// Checks that every token is below `vocab_size`, naming the first one that is not.
    pub fn check_vocab(&self, vocab_size: usize) -> Result<()> {
        let mut buf = vec![0u32; 1 << 16];
        let mut start = 0;
        while start < self.len {
            let n = buf.len().min(self.len - start);
            self.copy_window(start, &mut buf[..n])?;
            if let Some(i) = buf[..n].iter().position(|&t| t as usize >= vocab_size) {
                return Err(Error::Tokens {
                    path: self.name.clone(),
                    message: format!(
                        "token {} at position {} is outside the vocabulary of {vocab_size}; \
                         was the file prepared with another tokenizer?",
                        buf[i],
                        start + i
                    ),
                });
            }
            start += n;
        }
        Ok(())
    }
}
