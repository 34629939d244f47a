//! `orion data prepare`: text files to a token file for `orion train`.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use tokenizer::{Gpt2Tokenizer, SentencePieceTokenizer, Tokenizer};
use train::corpus::ByteTokenizer;
use train::write_tokens;

#[derive(clap::Subcommand)]
pub enum Data {
    /// Tokenize text files into one token file (llama2.c u16 format, or u32 with a header
    /// when the vocabulary exceeds 65,536).
    Prepare(PrepareArgs),
}

#[derive(clap::Args)]
pub struct PrepareArgs {
    /// Tokenizer: `bytes` (the tiny preset's byte tokens), a tokenizer.json, a
    /// SentencePiece tokenizer.model, a llama2.c tokenizer.bin, or a directory with
    /// vocab.json + merges.txt.
    #[arg(long)]
    tokenizer: String,
    /// Text files; each becomes one document, followed by the end-of-text token.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// The token file to write.
    #[arg(long, short)]
    out: PathBuf,
}

/// Text to token ids.
type Encoder = Box<dyn Fn(&str) -> Vec<u32>>;

/// Runs a data subcommand.
pub fn run(data: Data) -> Result<()> {
    let Data::Prepare(args) = data;
    let (encode, vocab, eos): (Encoder, usize, Option<u32>) = if args.tokenizer == "bytes" {
        (
            Box::new(|t| ByteTokenizer.encode(t)),
            ByteTokenizer::VOCAB_SIZE,
            Some(ByteTokenizer::END_OF_TEXT),
        )
    } else {
        let path = PathBuf::from(&args.tokenizer);
        let tok: Box<dyn Tokenizer> = match path.extension().and_then(|e| e.to_str()) {
            Some("json") => Box::new(Gpt2Tokenizer::from_tokenizer_json(&path)?),
            Some("model") => Box::new(SentencePieceTokenizer::from_model(&path)?),
            Some("bin") => Box::new(SentencePieceTokenizer::from_llama2c_bin(&path)?),
            _ if path.is_dir() => Box::new(Gpt2Tokenizer::from_files(path.join("vocab.json"), path.join("merges.txt"))?),
            _ => bail!("{}: not a tokenizer (bytes, .json, .model, .bin, or a vocab.json + merges.txt directory)", path.display()),
        };
        let (vocab, eos) = (tok.vocab_size(), tok.eos());
        (Box::new(move |t| tok.encode(t)), vocab, eos)
    };
    let mut tokens = Vec::new();
    for input in &args.inputs {
        let text = std::fs::read_to_string(input)
            .with_context(|| format!("reading {}", input.display()))?;
        tokens.extend(encode(&text));
        tokens.extend(eos);
        eprintln!("{}: {} tokens so far", input.display(), tokens.len());
    }
    let format = write_tokens(&args.out, &tokens, vocab)?;
    println!(
        "wrote {} ({} tokens, {format:?}, vocabulary {vocab})",
        args.out.display(),
        tokens.len()
    );
    Ok(())
}
