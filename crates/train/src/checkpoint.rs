//! Checkpoints: everything needed to continue a run bit-exactly, in one verified file.
//!
//! Layout (all integers little-endian):
//! ```text
//! 0       magic  b"ORIONCKP"                         8 bytes
//! 8       format version (u32, currently 1)          4 bytes
//! 12      header length H (u64)                      8 bytes
//! 20      header: UTF-8 JSON, H bytes — CheckpointHeader fields plus
//!         "tensors": [{name, shape, dtype: "f32", offset, len}] (offset in bytes from D)
//! 20+H    zero padding up to D, the next multiple of 64
//! D       tensor data, f32, in header order, each `len` elements
//! end−4   CRC-32 (IEEE) of every byte before it (u32)
//! ```
//! Files are written atomically (temp file beside the target, fsync, rename, fsync of the
//! directory), so an interrupted save leaves the previous checkpoint intact; loading checks
//! magic, version, size and checksum before trusting anything.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::atomic::write_atomic;
use crate::error::{Error, Result};
use crate::loader::LoaderState;
use crate::loss_scale::LossScaleState;
use crate::optim::{AdamW, AdamWState};
use crate::rng::RngState;

/// The magic that starts a checkpoint.
pub const MAGIC: [u8; 8] = *b"ORIONCKP";
/// The checkpoint format version this build writes and reads.
pub const VERSION: u32 = 1;
/// Tensor data starts at a multiple of this many bytes.
const ALIGN: usize = 64;
/// Magic, version and header length.
const PREFIX_LEN: usize = 20;
/// Name prefixes of the optimizer's moment tensors.
const M_PREFIX: &str = "optim.m.";
const V_PREFIX: &str = "optim.v.";

/// The run state stored in a checkpoint's JSON header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointHeader {
    /// Optimizer steps completed.
    pub step: u64,
    /// The run configuration, opaque to this crate.
    pub config: Value,
    /// The data loader's position.
    pub data: Option<LoaderState>,
    /// The training RNG (sampling, dropout) state.
    pub rng: Option<RngState>,
    /// The loss scaler's state.
    pub loss_scale: Option<LossScaleState>,
    /// The optimizer's state apart from its moment tensors.
    pub optimizer: Option<AdamWState>,
    /// Free-form information (tool version, timing, metrics so far).
    pub metadata: Value,
}

/// A named f32 tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// The name, unique within the checkpoint.
    pub name: String,
    /// The shape.
    pub shape: Vec<usize>,
    /// The values, row-major. (product of shape)
    pub data: Vec<f32>,
}

/// Where one tensor sits in the data section, as recorded in the header.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TensorEntry {
    name: String,
    shape: Vec<usize>,
    dtype: String,
    offset: usize,
    len: usize,
}

/// The header as stored: the run state plus the tensor index.
#[derive(Debug, Serialize, Deserialize)]
struct StoredHeader {
    #[serde(flatten)]
    header: CheckpointHeader,
    tensors: Vec<TensorEntry>,
}

/// A checkpoint in memory: the run state and its tensors (weights, optimizer moments).
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The run state.
    pub header: CheckpointHeader,
    /// Weights first, then the optimizer's moments (`optim.m.<name>`, `optim.v.<name>`).
    pub tensors: Vec<Tensor>,
}

/// Appends every byte written to a CRC-32.
struct Hashing<'a, W: Write> {
    out: &'a mut W,
    crc: crc32fast::Hasher,
}

impl<W: Write> Hashing<'_, W> {
    /// Writes and hashes `bytes`.
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.crc.update(bytes);
        self.out.write_all(bytes)
    }
}

impl Checkpoint {
    /// An empty checkpoint at `step` with the run configuration `config`.
    pub fn new(step: u64, config: Value) -> Self {
        Checkpoint {
            header: CheckpointHeader {
                step,
                config,
                data: None,
                rng: None,
                loss_scale: None,
                optimizer: None,
                metadata: Value::Null,
            },
            tensors: Vec::new(),
        }
    }

    /// Adds a tensor.
    pub fn push(&mut self, name: impl Into<String>, shape: Vec<usize>, data: Vec<f32>) {
        self.tensors.push(Tensor {
            name: name.into(),
            shape,
            data,
        });
    }

    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Stores the optimizer: its state in the header, its moments as tensors.
    pub fn set_optimizer(&mut self, optimizer: &AdamW) {
        self.header.optimizer = Some(optimizer.state());
        for (p, m, v) in optimizer.moments() {
            self.push(format!("{M_PREFIX}{}", p.name), p.shape.clone(), m.to_vec());
            self.push(format!("{V_PREFIX}{}", p.name), p.shape.clone(), v.to_vec());
        }
    }

    /// The optimizer stored by [`Self::set_optimizer`], if any.
    pub fn optimizer(&self) -> Result<Option<AdamW>> {
        let Some(state) = self.header.optimizer.clone() else {
            return Ok(None);
        };
        let moment = |prefix: &str, name: &str| {
            self.tensor(&format!("{prefix}{name}"))
                .map(|t| t.data.clone())
                .ok_or_else(|| Error::Optimizer(format!("checkpoint has no tensor {prefix}{name}")))
        };
        let mut m = Vec::with_capacity(state.params.len());
        let mut v = Vec::with_capacity(state.params.len());
        for p in &state.params {
            m.push(moment(M_PREFIX, &p.name)?);
            v.push(moment(V_PREFIX, &p.name)?);
        }
        AdamW::from_state(state, m, v).map(Some)
    }

    /// Writes the checkpoint to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let fail = |message: String| Error::Checkpoint {
            path: path.display().to_string(),
            message,
        };
        let mut entries = Vec::with_capacity(self.tensors.len());
        let mut offset = 0;
        for t in &self.tensors {
            if t.shape.iter().product::<usize>() != t.data.len() {
                return Err(fail(format!(
                    "tensor {} has shape {:?} but {} values",
                    t.name,
                    t.shape,
                    t.data.len()
                )));
            }
            entries.push(TensorEntry {
                name: t.name.clone(),
                shape: t.shape.clone(),
                dtype: "f32".into(),
                offset,
                len: t.data.len(),
            });
            offset += 4 * t.data.len();
        }
        let stored = StoredHeader {
            header: self.header.clone(),
            tensors: entries,
        };
        let json = serde_json::to_vec(&stored).map_err(|e| fail(e.to_string()))?;
        let padding = data_start(json.len()) - PREFIX_LEN - json.len();
        write_atomic(path, |out| {
            let mut w = Hashing {
                out,
                crc: crc32fast::Hasher::new(),
            };
            w.put(&MAGIC)?;
            w.put(&VERSION.to_le_bytes())?;
            w.put(&(json.len() as u64).to_le_bytes())?;
            w.put(&json)?;
            w.put(&vec![0u8; padding])?;
            let mut bytes = vec![0u8; 4 << 16];
            for t in &self.tensors {
                for chunk in t.data.chunks(1 << 16) {
                    let bytes = &mut bytes[..4 * chunk.len()];
                    for (b, x) in bytes.chunks_exact_mut(4).zip(chunk) {
                        b.copy_from_slice(&x.to_le_bytes());
                    }
                    w.put(bytes)?;
                }
            }
            let crc = w.crc.finalize();
            w.out.write_all(&crc.to_le_bytes())
        })
    }

    /// Reads and verifies the checkpoint at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes).map_err(|message| Error::Checkpoint {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parses and verifies a whole checkpoint file held in memory.
    fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        const RESUME: &str = "resume from an earlier checkpoint";
        if bytes.len() < PREFIX_LEN + 4 {
            return Err(format!(
                "truncated: only {} bytes, too short for a checkpoint; {RESUME}",
                bytes.len()
            ));
        }
        if bytes[..8] != MAGIC {
            return Err(format!(
                "not an Orion checkpoint: starts with {:?}, expected {:?}",
                String::from_utf8_lossy(&bytes[..8]),
                "ORIONCKP"
            ));
        }
        // The checksum covers every byte before it: verify it before interpreting any of
        // them, so that damage is reported as damage, not as a strange version or size.
        let body = &bytes[..bytes.len() - 4];
        let tail = &bytes[bytes.len() - 4..];
        let stored_crc = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
        let crc = crc32fast::hash(body);
        if crc != stored_crc {
            // A readable header describing another length tells a cut or extended file apart
            // from one with damaged bytes.
            match layout(bytes) {
                Ok((_, _, expected)) if expected != bytes.len() => {
                    let what = if bytes.len() < expected {
                        "truncated"
                    } else {
                        "has trailing bytes"
                    };
                    return Err(format!(
                        "{what}: the file has {} bytes but its header describes {expected} (an \
                         interrupted write or a damaged copy); {RESUME}",
                        bytes.len()
                    ));
                }
                Err(e) if e.starts_with("truncated") => return Err(e),
                _ => {}
            }
            return Err(format!(
                "checksum mismatch (stored {stored_crc:08x}, computed {crc:08x}): the file is \
                 corrupted; {RESUME}"
            ));
        }
        let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if version != VERSION {
            return Err(format!(
                "format version {version}, but this build reads version {VERSION}; load it \
                 with the orion build that wrote it"
            ));
        }
        let (stored, start, expected) = layout(bytes)?;
        if expected != bytes.len() {
            return Err(format!(
                "the header describes {expected} bytes but the file has {}; {RESUME}",
                bytes.len()
            ));
        }
        let data_len = expected - 4 - start;
        let data = &bytes[start..start + data_len];
        let tensors = stored
            .tensors
            .into_iter()
            .map(|e| read_tensor(e, data))
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Checkpoint {
            header: stored.header,
            tensors,
        })
    }
}

/// The header of a checkpoint whose prefix has been checked for length and magic, the offset
/// of its data section, and the file length it describes (sizes in checked arithmetic: a
/// hostile header cannot overflow them).
fn layout(bytes: &[u8]) -> Result<(StoredHeader, usize, usize), String> {
    const RESUME: &str = "resume from an earlier checkpoint";
    let mut h = [0u8; 8];
    h.copy_from_slice(&bytes[12..20]);
    let header_len = usize::try_from(u64::from_le_bytes(h)).unwrap_or(usize::MAX);
    if header_len > bytes.len() - PREFIX_LEN {
        return Err(format!(
            "truncated: the header alone needs {header_len} bytes but the file has {}; {RESUME}",
            bytes.len()
        ));
    }
    let json = &bytes[PREFIX_LEN..PREFIX_LEN + header_len];
    let stored: StoredHeader = serde_json::from_slice(json)
        .map_err(|e| format!("the header is not valid ({e}): the file is corrupted; {RESUME}"))?;
    let start = data_start(header_len);
    let expected = stored
        .tensors
        .iter()
        .try_fold(start, |n, t| {
            t.len.checked_mul(4).and_then(|b| n.checked_add(b))
        })
        .and_then(|n| n.checked_add(4))
        .ok_or_else(|| format!("the header describes more data than any file holds; {RESUME}"))?;
    Ok((stored, start, expected))
}

/// The byte offset of the data section after a header of `header_len` bytes.
fn data_start(header_len: usize) -> usize {
    (PREFIX_LEN + header_len).div_ceil(ALIGN) * ALIGN
}

/// Decodes one tensor from the data section, checking its entry.
fn read_tensor(e: TensorEntry, data: &[u8]) -> Result<Tensor, String> {
    if e.dtype != "f32" {
        return Err(format!(
            "tensor {} has dtype {}, expected f32",
            e.name, e.dtype
        ));
    }
    let count = e.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    if count != Some(e.len) {
        return Err(format!(
            "tensor {} has shape {:?} but {} values",
            e.name, e.shape, e.len
        ));
    }
    let bytes = e
        .offset
        .checked_add(e.len.saturating_mul(4))
        .and_then(|end| data.get(e.offset..end))
        .ok_or_else(|| format!("tensor {} lies outside the data section", e.name))?;
    let values = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(Tensor {
        name: e.name,
        shape: e.shape,
        data: values,
    })
}
