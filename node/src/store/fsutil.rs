//! Durable file operations. A file becomes visible under its final name only
//! once its bytes are on disk (write to a temporary name, fsync, rename);
//! a rename or a new directory entry is durable only once its directory is
//! fsynced, which callers do after each batch of renames.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::store::error::StoreError;

/// Prefix and suffix of temporary files. Dot-names are never a handle, an
/// upload id or a final file name, so a temporary file left by a crash is
/// never mistaken for data.
const TEMP_PREFIX: &str = ".";
const TEMP_SUFFIX: &str = ".tmp";

/// Whether `name` is one of our temporary (or otherwise hidden) names.
pub(crate) fn is_hidden(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX)
}

/// Writes `dir/name` atomically: `write` fills a temporary file in the same
/// directory, which is fsynced and renamed over `name`. The caller fsyncs
/// `dir` to make the rename durable.
pub(crate) fn write_atomic(
    dir: &Path,
    name: &str,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<PathBuf, StoreError> {
    let temp = dir.join(format!("{TEMP_PREFIX}{name}{TEMP_SUFFIX}"));
    let path = dir.join(name);
    // `create` truncates: a temporary file left by a crash is overwritten.
    let mut file = File::create(&temp).map_err(StoreError::io(&temp))?;
    write(&mut file)
        .and_then(|()| file.flush())
        .and_then(|()| file.sync_all())
        .map_err(StoreError::io(&temp))?;
    drop(file);
    fs::rename(&temp, &path).map_err(StoreError::io(&path))?;
    Ok(path)
}

/// Writes `bytes` to `dir/name` atomically (see [`write_atomic`]).
pub(crate) fn write_bytes_atomic(
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> Result<PathBuf, StoreError> {
    write_atomic(dir, name, |file| file.write_all(bytes))
}

/// Makes the entries of directory `dir` (creations, renames, removals)
/// durable.
#[cfg(unix)]
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StoreError::io(dir))
}

/// Directories cannot be opened for fsync off unix; NTFS journals renames.
#[cfg(not(unix))]
pub(crate) fn sync_dir(_dir: &Path) -> Result<(), StoreError> {
    Ok(())
}

/// Creates directory `dir` if it does not exist; whether it did.
pub(crate) fn ensure_dir(dir: &Path) -> Result<bool, StoreError> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(false),
        Err(e) => Err(StoreError::Io {
            path: dir.to_owned(),
            source: e,
        }),
    }
}

/// Reads a small file (a manifest or record), distinguishing "missing".
pub(crate) fn read_small(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// An entry of a directory.
pub(crate) struct Entry {
    /// Its name, if it is UTF-8 (everything the store writes is).
    pub(crate) name: Option<String>,
    /// Its path.
    pub(crate) path: PathBuf,
}

/// The entries of `dir`.
pub(crate) fn entries(dir: &Path) -> Result<Vec<Entry>, StoreError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(StoreError::io(dir))? {
        let entry = entry.map_err(StoreError::io(dir))?;
        out.push(Entry {
            name: entry.file_name().into_string().ok(),
            path: entry.path(),
        });
    }
    Ok(out)
}
