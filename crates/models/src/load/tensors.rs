//! Memory-mapped safetensors files: named tensors read as f32, and f32 tensors written out.

use crate::error::{Error, Result};
use memmap2::Mmap;
use safetensors::tensor::{Dtype, Metadata, TensorInfo};
use safetensors::SafeTensors;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// One memory-mapped safetensors file and its parsed header.
struct MappedFile {
    path: PathBuf,
    mmap: Mmap,
    /// Byte offset of the data section (8 + header length).
    data_start: usize,
    metadata: Metadata,
}

impl MappedFile {
    /// Maps `path` and validates its header against the file's length.
    fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the map is read-only and lives as long as this value; a checkpoint being
        // rewritten underneath a running process is outside what a loader can guard against.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let len = mmap.len();
        let bad = |message: String| Error::format(path, message);
        let header_len = match mmap.get(..8) {
            Some(b) => u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            None => {
                return Err(bad(format!(
                    "truncated safetensors: {len} bytes, no header"
                )))
            }
        };
        if header_len > (len as u64).saturating_sub(8) {
            return Err(bad(format!(
                "truncated safetensors: header length {header_len} runs past the end of the \
                 {len}-byte file"
            )));
        }
        let data_start = 8 + header_len as usize;
        let (_, metadata) = SafeTensors::read_metadata(&mmap).map_err(|e| {
            let data_len = len - data_start;
            match e {
                safetensors::SafeTensorError::MetadataIncompleteBuffer => bad(format!(
                    "truncated safetensors: the header's tensors do not match the {data_len} \
                     bytes of data in the file"
                )),
                other => bad(format!("bad safetensors header: {other}")),
            }
        })?;
        Ok(MappedFile {
            path: path.to_path_buf(),
            mmap,
            data_start,
            metadata,
        })
    }
}

/// The tensors of a checkpoint, possibly sharded over several files.
pub struct TensorStore {
    files: Vec<MappedFile>,
    /// Tensor name → index into `files`.
    index: HashMap<String, usize>,
}

impl TensorStore {
    /// Opens one safetensors file.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_shards(&[path.to_path_buf()])
    }

    /// Opens a sharded checkpoint from its `model.safetensors.index.json`.
    pub fn open_index(index_path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(index_path).map_err(|e| Error::io(index_path, e))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::format(index_path, format!("invalid JSON: {e}")))?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| Error::format(index_path, "no \"weight_map\" object"))?;
        let dir = index_path.parent().unwrap_or(Path::new("."));
        let mut shards: Vec<PathBuf> = Vec::new();
        for file in map.values() {
            let name = file.as_str().ok_or_else(|| {
                Error::format(index_path, "\"weight_map\" values must be file names")
            })?;
            let path = dir.join(name);
            if !shards.contains(&path) {
                shards.push(path);
            }
        }
        Self::open_shards(&shards)
    }

    fn open_shards(paths: &[PathBuf]) -> Result<Self> {
        let mut files = Vec::with_capacity(paths.len());
        let mut index = HashMap::new();
        for path in paths {
            let file = MappedFile::open(path)?;
            for name in file.metadata.tensors().keys() {
                index.insert(name.clone(), files.len());
            }
            files.push(file);
        }
        Ok(TensorStore { files, index })
    }

    /// Bytes of tensor data across every file.
    pub fn data_bytes(&self) -> u64 {
        self.files
            .iter()
            .map(|f| (f.mmap.len() - f.data_start) as u64)
            .sum()
    }

    /// The file a tensor is read from (the first file when the tensor is absent).
    pub fn path_of(&self, name: &str) -> &Path {
        let i = self.index.get(name).copied().unwrap_or(0);
        &self.files[i].path
    }

    /// Whether the checkpoint holds a tensor called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    fn info(&self, name: &str) -> Result<(&MappedFile, &TensorInfo)> {
        let missing = || Error::MissingTensor {
            path: self.path_of(name).to_path_buf(),
            name: name.to_string(),
        };
        let file = &self.files[*self.index.get(name).ok_or_else(missing)?];
        Ok((file, file.metadata.info(name).ok_or_else(missing)?))
    }

    /// Tensor `name` as f32, checking its shape is `expected`.
    pub fn f32(&self, name: &str, expected: &[usize]) -> Result<Vec<f32>> {
        let (file, info) = self.info(name)?;
        if info.shape != expected {
            return Err(Error::Shape {
                path: file.path.clone(),
                name: name.to_string(),
                expected: expected.to_vec(),
                found: info.shape.clone(),
            });
        }
        let (start, end) = info.data_offsets;
        let bytes = &file.mmap[file.data_start + start..file.data_start + end];
        decode(bytes, info.dtype).ok_or_else(|| {
            Error::format(
                &file.path,
                format!(
                    "tensor {name} has dtype {:?}; supported: F32, F16, BF16",
                    info.dtype
                ),
            )
        })
    }
}

/// Little-endian F32/F16/BF16 bytes as f32; `None` for other dtypes.
fn decode(bytes: &[u8], dtype: Dtype) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        _ => return None,
    })
}

/// The element type weights are written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveDtype {
    F32,
    F16,
}

impl SaveDtype {
    /// The name config.json's `torch_dtype` uses.
    pub fn torch_name(self) -> &'static str {
        match self {
            SaveDtype::F32 => "float32",
            SaveDtype::F16 => "float16",
        }
    }
}

/// An f32 tensor to be written, converted to the save dtype as it is serialized.
pub struct OutTensor<'a> {
    pub shape: Vec<usize>,
    pub values: Cow<'a, [f32]>,
    pub dtype: SaveDtype,
}

impl OutTensor<'_> {
    fn byte_len(&self) -> usize {
        self.values.len()
            * match self.dtype {
                SaveDtype::F32 => 4,
                SaveDtype::F16 => 2,
            }
    }

    fn write_to(&self, out: &mut impl Write) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(4 * 4096);
        for chunk in self.values.chunks(4096) {
            buf.clear();
            match self.dtype {
                SaveDtype::F32 => buf.extend(chunk.iter().flat_map(|v| v.to_le_bytes())),
                SaveDtype::F16 => buf.extend(
                    chunk
                        .iter()
                        .flat_map(|&v| half::f16::from_f32(v).to_le_bytes()),
                ),
            }
            out.write_all(&buf)?;
        }
        Ok(())
    }
}

/// The JSON header of a safetensors file holding `tensors` in order, padded with spaces to a
/// multiple of 8 bytes, with the `{"format": "pt"}` metadata transformers expects.
fn header(tensors: &[(String, OutTensor<'_>)]) -> Vec<u8> {
    let mut map = serde_json::Map::new();
    map.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
    let mut offset = 0;
    for (name, t) in tensors {
        let dtype = match t.dtype {
            SaveDtype::F32 => "F32",
            SaveDtype::F16 => "F16",
        };
        let end = offset + t.byte_len();
        map.insert(
            name.clone(),
            serde_json::json!({"dtype": dtype, "shape": t.shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut bytes = serde_json::Value::Object(map).to_string().into_bytes();
    bytes.resize(bytes.len().next_multiple_of(8), b' ');
    bytes
}

/// Writes `tensors` (sorted by name) to `path` as safetensors, atomically: a temporary file
/// in the same directory, synced, then renamed over `path`.
pub fn write(path: &Path, mut tensors: Vec<(String, OutTensor<'_>)>) -> Result<()> {
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let header = header(&tensors);
    write_atomic(path, |out| {
        out.write_all(&(header.len() as u64).to_le_bytes())?;
        out.write_all(&header)?;
        for (_, t) in &tensors {
            t.write_to(out)?;
        }
        Ok(())
    })
}

/// Replaces `path` with what `fill` writes, atomically (see [`files::write`]).
pub fn write_atomic(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    files::write(path, fill).map_err(|e| Error::io(path, e))
}
