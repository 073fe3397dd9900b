//! Restoring a table this party lost, from the components the other two
//! parties send: the store side of rebuilding a node from its peers.
//!
//! Party `i` holds components `i` and `i + 1` of every column. Its
//! predecessor holds component `i` (as its `next`) and its successor
//! component `i + 1` (as its `own`), so between them the other two hold
//! exactly what this party lost, each sending one component and never
//! learning the other. The public metadata comes from the peers too; the
//! caller compares the two copies before it gets here.
//!
//! A restored table is staged under its upload id and committed with one
//! atomic rename, like an upload, so a crash leaves it either wholly there
//! or wholly absent; the column files and manifest it writes are the ones
//! the lost node had, byte for byte (the same party, components and
//! metadata give the same files).
//!
//! What this cannot check: that a peer sent the component it holds rather
//! than another vector of the right length. The keyed digests in the
//! metadata need keys only the client and the component's holders had,
//! and the client never wrote them anywhere. Under the semi-honest model a
//! peer sends what it holds; a deviating one could corrupt the restored
//! table, as it could corrupt any result.

use std::fs;
use std::io;
use std::path::PathBuf;

use triad_ring::Arith;

use crate::store::column;
use crate::store::error::StoreError;
use crate::store::fsutil;
use crate::store::ids::Digest;
use crate::store::manifest::{self, MANIFEST_FILE, Manifest, TableInfo};
use crate::store::{RestoreProblem, Store};

/// A table being restored: its columns are written one at a time, as they
/// arrive, and the table appears on [`Restoring::commit`]. Dropped before
/// that, it leaves nothing behind.
#[derive(Debug)]
pub struct Restoring<'a> {
    store: &'a Store,
    info: TableInfo,
    dir: PathBuf,
    checksums: Vec<Digest>,
    committed: bool,
}

impl Store {
    /// Starts restoring table `info` as this party held it. Refuses
    /// metadata that does not check (schema, column names, a handle that
    /// does not follow from the contents) and a table or upload this store
    /// already holds.
    pub fn begin_restore(&self, info: TableInfo) -> Result<Restoring<'_>, StoreError> {
        let handle = info.handle;
        manifest::check_info(&info).map_err(|problem| StoreError::Restore {
            handle,
            problem: RestoreProblem::Metadata(problem),
        })?;
        let dir = self.upload_dir(&info.upload_id);
        {
            // As in `stage`: the check and the claim under one lock.
            let state = self.write_state();
            if state.tables.contains_key(&handle) || self.table_dir(&handle).exists() {
                return Err(StoreError::HandleExists { handle });
            }
            if let Some(committed) = state.uploads.get(&info.upload_id) {
                return Err(StoreError::AlreadyCommitted {
                    upload_id: info.upload_id.clone(),
                    handle: *committed,
                });
            }
            match fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(StoreError::UploadExists {
                        upload_id: info.upload_id.clone(),
                    });
                }
                Err(e) => return Err(StoreError::io(&dir)(e)),
            }
        }
        fsutil::sync_dir(&self.staging_dir())?;
        let columns = info.columns.len();
        Ok(Restoring {
            store: self,
            info,
            dir,
            checksums: Vec::with_capacity(columns),
            committed: false,
        })
    }
}

impl Restoring<'_> {
    /// The table being restored.
    pub fn info(&self) -> &TableInfo {
        &self.info
    }

    /// Writes the next column, in manifest order, durably.
    pub fn column(&mut self, shares: &Arith) -> Result<(), StoreError> {
        let index = self.checksums.len();
        let fail = |problem| StoreError::Restore {
            handle: self.info.handle,
            problem,
        };
        let Some(column) = self.info.columns.get(index) else {
            return Err(fail(RestoreProblem::ExtraColumn {
                columns: self.info.columns.len(),
            }));
        };
        if shares.len() as u64 != self.info.rows {
            return Err(fail(RestoreProblem::Rows {
                column: column.name.clone(),
                expected: self.info.rows,
                found: shares.len() as u64,
            }));
        }
        let checksum = column::write_column_file(
            &self.dir,
            &column::file_name(index),
            self.store.party,
            shares,
        )?;
        self.checksums.push(checksum);
        Ok(())
    }

    /// Writes the manifest and makes the table visible with one atomic
    /// rename. Every column must have been written.
    pub fn commit(mut self) -> Result<TableInfo, StoreError> {
        let handle = self.info.handle;
        if self.checksums.len() != self.info.columns.len() {
            return Err(StoreError::Restore {
                handle,
                problem: RestoreProblem::MissingColumns {
                    expected: self.info.columns.len(),
                    written: self.checksums.len(),
                },
            });
        }
        let store = self.store;
        fsutil::sync_dir(&self.dir)?;
        let manifest = Manifest {
            party: store.party,
            info: self.info.clone(),
            checksums: std::mem::take(&mut self.checksums),
        };
        fsutil::write_bytes_atomic(&self.dir, MANIFEST_FILE, &manifest.encode())?;
        fsutil::sync_dir(&self.dir)?;
        let mut state = store.write_state();
        let target = store.table_dir(&handle);
        if state.tables.contains_key(&handle) || target.exists() {
            return Err(StoreError::HandleExists { handle });
        }
        fs::rename(&self.dir, &target).map_err(StoreError::io(&self.dir))?;
        self.committed = true;
        state.insert(manifest);
        drop(state);
        fsutil::sync_dir(&store.tables_dir())?;
        fsutil::sync_dir(&store.staging_dir())?;
        // Read back as a query would: a file the disk mangled on the way
        // is found now, not at the first query.
        store.verify_table(&handle)?;
        tracing::info!(
            party = store.party.index(),
            handle = %handle,
            rows = self.info.rows,
            columns = self.info.columns.len(),
            "table restored"
        );
        Ok(self.info.clone())
    }
}

impl Drop for Restoring<'_> {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        let trashed = {
            let _state = self.store.write_state();
            self.store
                .trash_rename(&self.dir, &format!("restore-{}", self.info.handle))
        };
        if let Ok(trashed) = trashed {
            self.store.remove_trashed(&trashed);
        }
    }
}
