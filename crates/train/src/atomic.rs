//! Atomic file replacement through the `files` crate, with this crate's error type.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use crate::error::{Error, Result};

/// Replaces `path` with what `fill` writes, atomically (see [`files::write`]).
pub(crate) fn write_atomic(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    files::write(path, fill).map_err(|e| Error::io(path, e))
}
