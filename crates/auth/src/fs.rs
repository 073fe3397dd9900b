//! Durable file writes: fsync the data, rename into place, fsync the
//! directory so the rename itself survives a crash.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::AuthError;

/// Maps an I/O error to [`AuthError::File`] for `path`.
pub(crate) fn file_error(path: &Path) -> impl FnOnce(io::Error) -> AuthError + '_ {
    move |source| AuthError::File {
        path: path.to_path_buf(),
        source,
    }
}

/// Options that create files readable by their owner only (on Unix) when
/// `secret` is set.
fn options(secret: bool) -> OpenOptions {
    let mut options = OpenOptions::new();
    options.write(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    options
}

/// Creates `path`, which must not exist, with `contents`, and syncs it. A
/// failed write removes the partial file, so a half-written key is never
/// left behind under the real name.
pub(crate) fn write_new(path: &Path, contents: &[u8], secret: bool) -> Result<(), AuthError> {
    let mut file = options(secret)
        .create_new(true)
        .open(path)
        .map_err(|source| match source.kind() {
            io::ErrorKind::AlreadyExists => AuthError::KeyFileExists {
                path: path.to_path_buf(),
            },
            _ => file_error(path)(source),
        })?;
    let written = file.write_all(contents).and_then(|()| file.sync_all());
    if let Err(source) = written {
        drop(file);
        // Best effort: the write error is the one worth reporting.
        let _ = fs::remove_file(path);
        return Err(file_error(path)(source));
    }
    sync_parent(path)
}

/// Replaces (or creates) `path` atomically: a reader sees the old contents
/// or the new, never a mixture, even across a crash.
pub(crate) fn write_atomic(path: &Path, contents: &[u8], secret: bool) -> Result<(), AuthError> {
    let temp = temp_path(path);
    let mut file = options(secret)
        .create(true)
        .truncate(true)
        .open(&temp)
        .map_err(file_error(&temp))?;
    // A stale temporary file left by a crash keeps its old mode when
    // reopened: tighten it before the secret goes in.
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(file_error(&temp))?;
    }
    let written = file.write_all(contents).and_then(|()| file.sync_all());
    drop(file);
    if let Err(source) = written.and_then(|()| fs::rename(&temp, path)) {
        let _ = fs::remove_file(&temp);
        return Err(file_error(path)(source));
    }
    sync_parent(path)
}

/// The temporary name [`write_atomic`] writes to before renaming: beside the
/// target, so the rename stays within one file system.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Makes a just-created or just-renamed entry in `path`'s directory
/// durable. Only Unix can open and sync a directory; elsewhere this is a
/// no-op.
pub(crate) fn sync_parent(path: &Path) -> Result<(), AuthError> {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        fs::File::open(parent)
            .and_then(|dir| dir.sync_all())
            .map_err(file_error(parent))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// A fresh, empty directory for one test, named after it and the process.
#[cfg(test)]
pub(crate) fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("triad-auth-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
