//! Atomic file replacement, the one routine every Orion writer uses (checkpoints, token files,
//! metrics, model directories, compiled programs, `.npy` outputs): the new contents go to a
//! temporary file beside the target, which is flushed and fsynced, renamed over the target,
//! and then the directory is fsynced. A crash or kill at any moment leaves either the old file
//! or the new one, never a mix, and the rename survives a power loss once this returns.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// The temporary file [`write`] uses for `path`: `.<name>.tmp` in the same directory (the
/// same file system, so the rename is atomic). The name is fixed, so the next write replaces
/// what a killed writer left behind.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

/// Replaces `path` with what `fill` writes, atomically. On an error the target is untouched
/// and the temporary file removed.
pub fn write(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> io::Result<()> {
    let tmp = temp_path(path);
    let result = (|| {
        let file = File::create(&tmp)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        fill(&mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Replaces `path` with `bytes`, atomically.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write(path, |out| out.write_all(bytes))
}

/// Flushes the directory entry of `path` to disk (a no-op where directories cannot be opened
/// or synced, as on some platforms).
fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    match File::open(dir) {
        Ok(d) => d.sync_all().or(Ok(())),
        Err(_) => Ok(()),
    }
}
