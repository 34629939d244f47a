//! A program bundle: MIL text plus the weight files it references, as a directory on disk
//! (`model.mil` and `weights/*.bin`) or in memory — what goes to the device's compiler.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The prefix of every weight path in MIL text.
pub const MODEL_PATH: &str = "@model_path/";

/// MIL text and the weight files it references.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProgramBundle {
    /// The MIL program text.
    pub mil: String,
    /// Weight files: path relative to the model directory (e.g. `weights/weight.bin`) and bytes.
    pub weights: Vec<(String, Vec<u8>)>,
}

impl ProgramBundle {
    /// The bytes of the weight file that the MIL reference `path` (`@model_path/…`) names.
    pub fn weight_file(&self, path: &str) -> Option<&[u8]> {
        let rel = path.strip_prefix(MODEL_PATH).unwrap_or(path);
        self.weights
            .iter()
            .find(|(p, _)| p == rel)
            .map(|(_, b)| b.as_slice())
    }

    /// Writes `model.mil` and the weight files into `dir`, creating it; each file is replaced
    /// atomically.
    pub fn write_dir(&self, dir: &Path) -> Result<()> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| Error::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mil_path = dir.join("model.mil");
        files::write_bytes(&mil_path, self.mil.as_bytes()).map_err(io(&mil_path))?;
        for (rel, bytes) in &self.weights {
            let path = safe_join(dir, rel)?;
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            files::write_bytes(&path, bytes).map_err(io(&path))?;
        }
        Ok(())
    }

    /// Reads `model.mil` from `dir` and every weight file its text references.
    pub fn read_dir(dir: &Path) -> Result<ProgramBundle> {
        let mil_path = dir.join("model.mil");
        let mil = std::fs::read_to_string(&mil_path).map_err(|source| Error::Io {
            path: mil_path.display().to_string(),
            source,
        })?;
        let mut weights: Vec<(String, Vec<u8>)> = Vec::new();
        for rel in referenced_paths(&mil) {
            if weights.iter().any(|(p, _)| *p == rel) {
                continue;
            }
            let path = safe_join(dir, &rel)?;
            let bytes = std::fs::read(&path).map_err(|source| Error::Io {
                path: path.display().to_string(),
                source,
            })?;
            weights.push((rel, bytes));
        }
        Ok(ProgramBundle { mil, weights })
    }
}

/// Relative paths of every `@model_path/…` string in MIL text, in order of appearance.
pub fn referenced_paths(mil: &str) -> Vec<String> {
    let mut out = Vec::new();
    let needle = format!("\"{MODEL_PATH}");
    let mut rest = mil;
    while let Some(start) = rest.find(&needle) {
        let after = &rest[start + needle.len()..];
        match after.find('"') {
            Some(end) => {
                out.push(after[..end].to_string());
                rest = &after[end..];
            }
            None => break,
        }
    }
    out
}

/// `dir/rel`, refusing absolute paths and `..` so a bundle cannot write outside its directory.
fn safe_join(dir: &Path, rel: &str) -> Result<PathBuf> {
    let p = Path::new(rel);
    let ok = p.components().all(|c| {
        matches!(
            c,
            std::path::Component::Normal(_) | std::path::Component::CurDir
        )
    });
    if !ok || rel.is_empty() {
        return Err(Error::Blob {
            path: Some(rel.to_string()),
            message: "weight paths must be relative and stay inside the model directory"
                .to_string(),
        });
    }
    Ok(dir.join(p))
}
