//! Durable share storage: the tables this node holds shares of.
//!
//! # Layout
//!
//! ```text
//! <data dir>/
//!   store.json                 marker: format, format version, party
//!   tables/<handle>/           committed tables, one directory each
//!     manifest.json            public metadata + node-private checksums
//!     0000.col, 0001.col, ...  one file per share column (see `column`)
//!   staging/<upload id>/       uploads staged but not committed
//!     0000.col, ...            written as for a table
//!     staged.json              this party's report; written last, so an
//!                              upload without it was interrupted
//!   trash/                     directories being removed
//! ```
//!
//! A table a query stored (a *derived* table) is staged and committed the
//! same way, under an upload id and handle that follow from the digest of
//! the request that made it ([`derived_upload_id`], [`derived_handle`]);
//! its manifest records that digest, and its share columns include the
//! secret row mask [`MASK_COLUMN`].
//!
//! # Durability
//!
//! Every file is written to a temporary name, fsynced, renamed, and its
//! directory fsynced. A table becomes visible with one atomic rename of its
//! complete staging directory (manifest included) into `tables/`, and
//! disappears with one atomic rename into `trash/` before it is removed, so
//! a crash at any point leaves each table either wholly there or wholly
//! gone. Staged uploads survive restarts until committed, aborted or
//! cleaned up; `trash/` is emptied on open.
//!
//! Opening loads every manifest and checks that each column file exists
//! with the right size. Contents are verified on every read: magic,
//! version, party, exact length, the file's checksum, and that the file is
//! the one the manifest records. Any mismatch is an error naming the table,
//! the column and the file, never a wrong result.
//!
//! # Concurrency
//!
//! A [`Store`] is `Sync`: uploads with different ids stage in parallel
//! (each owns its staging directory, claimed atomically with `mkdir`);
//! commits, aborts, deletions and clean-ups are serialised by one lock and
//! are short (renames and fsyncs); reads take the lock only to look up the
//! manifest. One process per data directory: the store takes no file lock.
//!
//! The store reads no clock: commit times and the "now" of staging clean-up
//! come from the caller.

// Errors name the table, column and file by value, which makes them large;
// they are built on cold paths next to system calls, and boxing them would
// only make them harder for callers to match.
#![allow(clippy::result_large_err)]

mod column;
mod error;
pub(crate) mod fsutil;
mod ids;
mod lifecycle;
mod manifest;
mod restore;
mod upload;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use triad_ring::{Arith, PartyId};

pub use column::{COLUMN_HEADER_BYTES, COLUMN_MAGIC, decode_column, encode_column};
pub use error::{
    ColumnProblem, Location, ManifestProblem, MetadataProblem, Mismatch, RestoreProblem, StoreError,
};
pub use ids::{Digest, Handle, IdError, OwnerKey, UploadId};
pub use manifest::{ColumnInfo, ColumnSchema, Namespace, TableInfo, TablePolicy, decode_manifest};
pub use restore::Restoring;
pub use upload::{
    AgreedUpload, ComponentKeys, MASK_COLUMN, StagedColumn, StagedUpload, Upload, combine,
    component_digest, derived_handle, derived_upload_id, handle_for,
};

use manifest::{MANIFEST_FILE, MARKER_FILE, Manifest};

/// Version of the data directory's format: the marker, manifests, staging
/// records and column files all carry it. Bump on any change to any of
/// them; a node refuses a directory of another version.
pub const STORE_FORMAT_VERSION: u32 = 1;

const TABLES_DIR: &str = "tables";
const STAGING_DIR: &str = "staging";
const TRASH_DIR: &str = "trash";

/// The shares this node holds, on disk. See the [module docs](self).
pub struct Store {
    root: PathBuf,
    party: PartyId,
    state: RwLock<State>,
}

/// The committed tables, as loaded from their manifests.
#[derive(Default)]
struct State {
    tables: BTreeMap<Handle, Arc<Manifest>>,
    /// Which table each committed upload became: refuses staging or
    /// committing an upload id twice.
    uploads: HashMap<UploadId, Handle>,
}

impl State {
    fn insert(&mut self, manifest: Manifest) {
        let handle = manifest.info.handle;
        self.uploads.insert(manifest.info.upload_id.clone(), handle);
        self.tables.insert(handle, Arc::new(manifest));
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("root", &self.root)
            .field("party", &self.party)
            .field("tables", &self.read_state().tables.len())
            .finish()
    }
}

impl Store {
    /// Opens the store in `data_dir` for `party`, creating the directory
    /// and the layout if needed. Refuses a directory of another format
    /// version or party, and a non-empty directory that is not a store.
    /// Loads every committed table's manifest and checks that its column
    /// files exist with the right sizes; empties `trash/`.
    pub fn open(data_dir: impl AsRef<Path>, party: PartyId) -> Result<Store, StoreError> {
        let root = data_dir.as_ref().to_owned();
        fs::create_dir_all(&root).map_err(StoreError::io(&root))?;
        check_marker(&root, party)?;
        let mut created = false;
        for dir in [TABLES_DIR, STAGING_DIR, TRASH_DIR] {
            created |= fsutil::ensure_dir(&root.join(dir))?;
        }
        if created {
            fsutil::sync_dir(&root)?;
        }
        let store = Store {
            root,
            party,
            state: RwLock::new(State::default()),
        };
        store.empty_trash()?;
        let mut state = State::default();
        for manifest in store.load_tables()? {
            state.insert(manifest);
        }
        tracing::info!(
            party = party.index(),
            tables = state.tables.len(),
            root = %store.root.display(),
            "store opened"
        );
        *store.write_state() = state;
        Ok(store)
    }

    /// The party whose shares this store holds.
    pub fn party(&self) -> PartyId {
        self.party
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.root
    }

    /// Public metadata of every committed table, by handle.
    pub fn tables(&self) -> Vec<TableInfo> {
        self.read_state()
            .tables
            .values()
            .map(|m| m.info.clone())
            .collect()
    }

    /// Public metadata of table `handle`.
    pub fn table(&self, handle: &Handle) -> Result<TableInfo, StoreError> {
        self.manifest(handle).map(|m| m.info.clone())
    }

    /// Path of the file holding column `column` of table `handle` (for
    /// operators and tools; reads go through [`Store::read_column`]).
    pub fn column_path(&self, handle: &Handle, column: &str) -> Result<PathBuf, StoreError> {
        let manifest = self.manifest(handle)?;
        let index = column_index(&manifest, column)?;
        Ok(self.table_dir(handle).join(column::file_name(index)))
    }

    /// This party's shares of column `column` of table `handle`, verified
    /// against the file's checksum and the manifest.
    pub fn read_column(&self, handle: &Handle, column: &str) -> Result<Arith, StoreError> {
        let manifest = self.manifest(handle)?;
        let index = column_index(&manifest, column)?;
        let path = self.table_dir(handle).join(column::file_name(index));
        // In range: a manifest has one checksum per column (built by
        // zipping them in `Manifest::decode`, checked against the staged
        // columns in `commit`).
        let read = column::read_column_file(
            &path,
            self.party,
            manifest.info.rows,
            &manifest.checksums[index],
        );
        read.map_err(|problem| {
            // A delete between the lookup and the read removes the file:
            // that is an unknown table, not a damaged one.
            if matches!(problem, ColumnProblem::Missing)
                && !self.read_state().tables.contains_key(handle)
            {
                return StoreError::UnknownTable { handle: *handle };
            }
            StoreError::Column {
                location: Location::Table(*handle),
                column: column.to_owned(),
                path,
                problem,
            }
        })
    }

    /// Reads and verifies every column of table `handle` (a full scrub;
    /// reads verify anyway, this finds damage before a query does).
    pub fn verify_table(&self, handle: &Handle) -> Result<(), StoreError> {
        let manifest = self.manifest(handle)?;
        for column in &manifest.info.columns {
            self.read_column(handle, &column.name)?;
        }
        Ok(())
    }

    fn manifest(&self, handle: &Handle) -> Result<Arc<Manifest>, StoreError> {
        self.read_state()
            .tables
            .get(handle)
            .cloned()
            .ok_or(StoreError::UnknownTable { handle: *handle })
    }

    fn read_state(&self) -> RwLockReadGuard<'_, State> {
        // The state is only changed by single inserts and removals after
        // the disk operations succeeded, so a panic elsewhere cannot leave
        // it half-updated.
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_state(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn tables_dir(&self) -> PathBuf {
        self.root.join(TABLES_DIR)
    }

    fn table_dir(&self, handle: &Handle) -> PathBuf {
        self.tables_dir().join(handle.to_string())
    }

    fn staging_dir(&self) -> PathBuf {
        self.root.join(STAGING_DIR)
    }

    fn upload_dir(&self, upload_id: &UploadId) -> PathBuf {
        self.staging_dir().join(upload_id.as_str())
    }

    fn trash_dir(&self) -> PathBuf {
        self.root.join(TRASH_DIR)
    }

    /// Removes a directory already in the trash; failure only costs space
    /// until the next open, so it is logged, not returned.
    fn remove_trashed(&self, dir: &Path) {
        if let Err(error) = fs::remove_dir_all(dir) {
            tracing::warn!(path = %dir.display(), %error, "removing a trashed directory failed");
        }
    }

    fn empty_trash(&self) -> Result<(), StoreError> {
        for fsutil::Entry { path, .. } in fsutil::entries(&self.trash_dir())? {
            let removed = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            if let Err(error) = removed {
                tracing::warn!(path = %path.display(), %error, "emptying the trash failed");
            }
        }
        Ok(())
    }

    /// Loads and checks every table in `tables/`.
    fn load_tables(&self) -> Result<Vec<Manifest>, StoreError> {
        let mut manifests = Vec::new();
        for fsutil::Entry { name, path } in fsutil::entries(&self.tables_dir())? {
            let Some(name) = name else {
                return Err(StoreError::UnexpectedEntry { path });
            };
            if fsutil::is_hidden(&name) {
                continue;
            }
            let handle: Handle = match name.parse() {
                Ok(handle) if path.is_dir() => handle,
                _ => return Err(StoreError::UnexpectedEntry { path }),
            };
            manifests.push(self.load_table(handle, &path)?);
        }
        Ok(manifests)
    }

    fn load_table(&self, handle: Handle, dir: &Path) -> Result<Manifest, StoreError> {
        let path = dir.join(MANIFEST_FILE);
        let fail = |problem| StoreError::Manifest {
            location: Location::Table(handle),
            path: path.clone(),
            problem,
        };
        let bytes = fsutil::read_small(&path)
            .map_err(|e| fail(ManifestProblem::Io(e)))?
            .ok_or_else(|| fail(ManifestProblem::Missing))?;
        let manifest = Manifest::decode(&bytes).map_err(fail)?;
        if manifest.info.handle != handle {
            return Err(fail(ManifestProblem::DirectoryMismatch {
                recorded: manifest.info.handle,
                directory: handle,
            }));
        }
        if manifest.party != self.party {
            return Err(fail(ManifestProblem::WrongParty {
                found: manifest.party,
                expected: self.party,
            }));
        }
        for (index, column) in manifest.info.columns.iter().enumerate() {
            let path = dir.join(column::file_name(index));
            column::check_column_file(&path, manifest.info.rows).map_err(|problem| {
                StoreError::Column {
                    location: Location::Table(handle),
                    column: column.name.clone(),
                    path: path.clone(),
                    problem,
                }
            })?;
        }
        Ok(manifest)
    }
}

fn column_index(manifest: &Manifest, column: &str) -> Result<usize, StoreError> {
    manifest
        .info
        .columns
        .iter()
        .position(|c| c.name == column)
        .ok_or_else(|| StoreError::UnknownColumn {
            handle: manifest.info.handle,
            column: column.to_owned(),
        })
}

/// Checks the marker of `root`, or writes one if `root` is empty.
fn check_marker(root: &Path, party: PartyId) -> Result<(), StoreError> {
    let path = root.join(MARKER_FILE);
    let fail = |problem| StoreError::Marker {
        path: path.clone(),
        problem,
    };
    match fsutil::read_small(&path).map_err(|e| fail(ManifestProblem::Io(e)))? {
        Some(bytes) => {
            let marker = manifest::decode_marker(&bytes).map_err(fail)?;
            if marker.format_version != STORE_FORMAT_VERSION {
                return Err(StoreError::FormatVersion {
                    path,
                    found: marker.format_version,
                    supported: STORE_FORMAT_VERSION,
                });
            }
            if marker.party as usize != party.index() {
                return Err(StoreError::WrongParty {
                    path,
                    found: marker.party,
                    expected: party,
                });
            }
            Ok(())
        }
        None => {
            // Only an empty directory becomes a store (hidden entries may
            // be a marker write interrupted by a crash).
            let foreign = fsutil::entries(root)?
                .into_iter()
                .any(|entry| entry.name.is_none_or(|name| !fsutil::is_hidden(&name)));
            if foreign {
                return Err(StoreError::NotAStore {
                    path: root.to_owned(),
                });
            }
            fsutil::write_bytes_atomic(root, MARKER_FILE, &manifest::encode_marker(party))?;
            fsutil::sync_dir(root)
        }
    }
}
