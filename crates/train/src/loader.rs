//! The data loader: batches of `B` windows of `T + 1` tokens from a token stream, in a
//! reproducible random order or in file order, with a state a checkpoint can resume from.
//!
//! - [`DataOrder::Random`]: each window start is `rng.below(N - T)` — uniform over
//!   `[0, N − T − 1]` — drawn from [`Rng`] seeded with `seed`, one draw per window, batch
//!   rows in draw order.
//! - [`DataOrder::Sequential`]: window `i` is tokens `[i·T, i·T + T + 1)`. There are
//!   `W = ⌊(N − 1) / T⌋` full windows; after window `W − 1` the order wraps to window 0, so
//!   the `k`-th window drawn (counting from 0 over the whole run) is window `k mod W`.
//!
//! In both orders, row `b` of a batch holds inputs `window[0..T]` and targets
//! `window[1..T+1]`.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::rng::{Rng, RngState};
use crate::tokens::TokenFile;

/// How windows are taken from the token stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataOrder {
    /// Uniformly random window starts from a seeded generator.
    Random { seed: u64 },
    /// Consecutive, non-overlapping windows in file order, wrapping at the end.
    Sequential,
}

/// Where a [`Batcher`] is in its stream; restoring it continues bit-exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "order", rename_all = "snake_case")]
pub enum LoaderState {
    /// Random order: the seed, the generator state and the windows drawn so far.
    Random {
        seed: u64,
        rng: RngState,
        windows: u64,
        seq_len: usize,
        tokens: usize,
    },
    /// Sequential order: the number of windows drawn so far (the next window index).
    Sequential {
        next_window: u64,
        seq_len: usize,
        tokens: usize,
    },
}

/// One batch: `B` rows of `T` input tokens and the `T` targets that follow them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// Input tokens, row-major. (B, T)
    pub inputs: Vec<u32>,
    /// Target tokens: the inputs shifted left by one. (B, T)
    pub targets: Vec<u32>,
    /// The start position of each row's window in the token stream. (B)
    pub starts: Vec<usize>,
}

/// Yields batches of windows from a token stream.
#[derive(Debug)]
pub struct Batcher {
    tokens: TokenFile,
    batch_size: usize,
    seq_len: usize,
    order: DataOrder,
    rng: Rng,
    /// Windows drawn so far over the whole run.
    windows: u64,
    window: Vec<u32>,
}

impl Batcher {
    /// A loader of `batch_size` windows of `seq_len + 1` tokens, at the start of its stream.
    pub fn new(
        tokens: TokenFile,
        batch_size: usize,
        seq_len: usize,
        order: DataOrder,
    ) -> Result<Self> {
        if batch_size == 0 || seq_len == 0 {
            return Err(Error::Loader(format!(
                "batch size {batch_size} and sequence length {seq_len} must both be positive"
            )));
        }
        if tokens.len() < seq_len + 1 {
            return Err(Error::Loader(format!(
                "{} tokens cannot fill one window of {} (sequence length {seq_len} + 1); \
                 use more data or a shorter sequence",
                tokens.len(),
                seq_len + 1
            )));
        }
        let seed = match order {
            DataOrder::Random { seed } => seed,
            DataOrder::Sequential => 0,
        };
        Ok(Batcher {
            tokens,
            batch_size,
            seq_len,
            order,
            rng: Rng::new(seed),
            windows: 0,
            window: vec![0; seq_len + 1],
        })
    }

    /// The token stream.
    pub fn tokens(&self) -> &TokenFile {
        &self.tokens
    }

    /// The number of windows in one sequential pass, `⌊(N − 1) / T⌋`.
    pub fn windows_per_epoch(&self) -> u64 {
        ((self.tokens.len() - 1) / self.seq_len) as u64
    }

    /// The start of the next window, advancing the order.
    fn next_start(&mut self) -> usize {
        let start = match self.order {
            DataOrder::Random { .. } => {
                self.rng.below((self.tokens.len() - self.seq_len) as u64) as usize
            }
            DataOrder::Sequential => {
                (self.windows % self.windows_per_epoch()) as usize * self.seq_len
            }
        };
        self.windows += 1;
        start
    }

    /// The next batch; an error when the token file can no longer be read (the position has
    /// then moved on: restore a saved [`Batcher::state`] to retry).
    pub fn next_batch(&mut self) -> Result<Batch> {
        let mut batch = Batch::default();
        self.fill_batch(&mut batch)?;
        Ok(batch)
    }

    /// Overwrites `batch` with the next batch, reusing its buffers.
    pub fn fill_batch(&mut self, batch: &mut Batch) -> Result<()> {
        let t = self.seq_len;
        batch.inputs.resize(self.batch_size * t, 0);
        batch.targets.resize(self.batch_size * t, 0);
        batch.starts.resize(self.batch_size, 0);
        for b in 0..self.batch_size {
            let start = self.next_start();
            self.tokens.copy_window(start, &mut self.window)?;
            batch.inputs[b * t..(b + 1) * t].copy_from_slice(&self.window[..t]);
            batch.targets[b * t..(b + 1) * t].copy_from_slice(&self.window[1..]);
            batch.starts[b] = start;
        }
        Ok(())
    }

    /// The current position, to save in a checkpoint.
    pub fn state(&self) -> LoaderState {
        let (seq_len, tokens) = (self.seq_len, self.tokens.len());
        match self.order {
            DataOrder::Random { seed } => LoaderState::Random {
                seed,
                rng: self.rng.state(),
                windows: self.windows,
                seq_len,
                tokens,
            },
            DataOrder::Sequential => LoaderState::Sequential {
                next_window: self.windows,
                seq_len,
                tokens,
            },
        }
    }

    /// Continues from a saved position; the order, sequence length and stream length must
    /// match the ones the state was taken with.
    pub fn restore(&mut self, state: &LoaderState) -> Result<()> {
        let (seq_len, tokens) = match *state {
            LoaderState::Random {
                seq_len, tokens, ..
            }
            | LoaderState::Sequential {
                seq_len, tokens, ..
            } => (seq_len, tokens),
        };
        if seq_len != self.seq_len || tokens != self.tokens.len() {
            return Err(Error::Loader(format!(
                "the saved position is for {tokens} tokens in windows of {seq_len}, but this \
                 loader reads {} tokens in windows of {}; resume with the same data file and \
                 sequence length",
                self.tokens.len(),
                self.seq_len
            )));
        }
        match (*state, self.order) {
            (
                LoaderState::Random {
                    seed, rng, windows, ..
                },
                DataOrder::Random { seed: mine },
            ) if seed == mine => {
                self.rng = Rng::from_state(rng);
                self.windows = windows;
            }
            (LoaderState::Sequential { next_window, .. }, DataOrder::Sequential) => {
                self.windows = next_window;
            }
            (saved, mine) => {
                return Err(Error::Loader(format!(
                    "the saved position is for {}, but this loader uses {mine:?}; resume with \
                     the same --data-order and seed",
                    match saved {
                        LoaderState::Random { seed, .. } => format!("random order, seed {seed}"),
                        LoaderState::Sequential { .. } => "sequential order".into(),
                    }
                )));
            }
        }
        Ok(())
    }
}
