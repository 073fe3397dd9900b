//! Changing what the store holds: staging, committing and aborting
//! uploads, cleaning up abandoned staging, deleting tables.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::store::column;
use crate::store::error::{Location, ManifestProblem, MetadataProblem, StoreError};
use crate::store::fsutil;
use crate::store::ids::{Digest, Handle, UploadId};
use crate::store::manifest::{
    self, MANIFEST_FILE, Manifest, STAGED_FILE, StagingRecord, TableInfo,
};
use crate::store::upload::{self, AgreedUpload, StagedUpload, Upload, derived_handle, handle_for};
use crate::store::{State, Store};

impl Store {
    /// Writes this party's shares of an upload into staging and returns the
    /// report the three nodes cross-check ([`combine`](crate::store::combine)).
    /// The upload is durable when this returns, but invisible until
    /// committed. Refuses an upload id that is staged or committed already.
    pub fn stage(&self, upload: &Upload) -> Result<StagedUpload, StoreError> {
        let upload_id = &upload.upload_id;
        check_upload(upload).map_err(|problem| StoreError::InvalidUpload {
            upload_id: upload_id.clone(),
            problem,
        })?;
        let dir = self.upload_dir(upload_id);
        {
            // Under the lock so that a concurrent commit of the same id
            // cannot slip between the check and the claim.
            let state = self.write_state();
            if let Some(handle) = state.uploads.get(upload_id) {
                return Err(StoreError::AlreadyCommitted {
                    upload_id: upload_id.clone(),
                    handle: *handle,
                });
            }
            // `create_dir` is the claim: it fails if another stage of the
            // same id got there first.
            match fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(StoreError::UploadExists {
                        upload_id: upload_id.clone(),
                    });
                }
                Err(e) => return Err(StoreError::io(&dir)(e)),
            }
        }
        let written =
            fsutil::sync_dir(&self.staging_dir()).and_then(|()| self.write_staged(upload, &dir));
        match written {
            Ok(staged) => {
                tracing::info!(
                    party = self.party.index(),
                    upload_id = %upload_id,
                    rows = upload.rows,
                    columns = upload.columns.len(),
                    "upload staged"
                );
                Ok(staged)
            }
            Err(error) => {
                // Free the id for a retry; if even that fails, clean-up
                // removes the directory later.
                let trashed = {
                    let _state = self.write_state();
                    self.trash_rename(&dir, &trash_name_upload(upload_id))
                };
                if let Ok(trashed) = trashed {
                    self.remove_trashed(&trashed);
                }
                Err(error)
            }
        }
    }

    fn write_staged(&self, upload: &Upload, dir: &Path) -> Result<StagedUpload, StoreError> {
        let mut columns = Vec::with_capacity(upload.columns.len());
        let mut checksums = Vec::with_capacity(upload.columns.len());
        for (index, (name, shares)) in upload.columns.iter().enumerate() {
            columns.push(upload::staged_column(
                self.party,
                &upload.keys,
                &upload.upload_id,
                name,
                shares,
            ));
            let file = column::file_name(index);
            checksums.push(column::write_column_file(dir, &file, self.party, shares)?);
        }
        // The column files' renames must be durable before the record that
        // says the upload is complete.
        fsutil::sync_dir(dir)?;
        let staged = StagedUpload {
            upload_id: upload.upload_id.clone(),
            party: self.party,
            owner: upload.owner.clone(),
            rows: upload.rows,
            schema: upload.schema.clone(),
            columns,
            policy: upload.policy.clone(),
        };
        let record = StagingRecord::new(staged.clone(), checksums);
        fsutil::write_bytes_atomic(dir, STAGED_FILE, &record.encode())?;
        fsutil::sync_dir(dir)?;
        Ok(staged)
    }

    /// This party's report for a staged upload, as [`Store::stage`]
    /// returned it: what a node needs to redo the cross-check after a
    /// restart.
    pub fn staged(&self, upload_id: &UploadId) -> Result<StagedUpload, StoreError> {
        let state = self.read_state();
        self.read_record(&state, upload_id)
            .map(|record| record.staged)
    }

    /// Uploads in staging (complete or not), by id.
    pub fn staged_uploads(&self) -> Result<Vec<UploadId>, StoreError> {
        let mut ids: Vec<UploadId> = fsutil::entries(&self.staging_dir())?
            .into_iter()
            .filter_map(|entry| entry.name?.parse().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Commits a staged upload the three nodes agreed on: checks it is
    /// what this node staged, writes the manifest, and makes the table
    /// visible with one atomic rename of its staging directory into
    /// `tables/<handle>`. `created_at` is the commit time in unix seconds,
    /// from the caller (the store reads no clock).
    pub fn commit(&self, agreed: &AgreedUpload, created_at: u64) -> Result<TableInfo, StoreError> {
        self.commit_as(agreed, handle_for(agreed), None, created_at)
    }

    /// Commits a query's result table, staged with [`Store::stage`] under
    /// [`derived_upload_id`](crate::store::derived_upload_id) and
    /// cross-checked like an upload: as [`Store::commit`], but the table's
    /// handle is [`derived_handle`] of `request` (the digest of the signed
    /// request that made it), and the manifest records `request` so that
    /// the handle can be checked on open. The column files were written
    /// durably by the stage (temporary name, fsync, rename, checksums); the
    /// table appears with one atomic rename.
    pub fn commit_derived(
        &self,
        agreed: &AgreedUpload,
        request: &Digest,
        created_at: u64,
    ) -> Result<TableInfo, StoreError> {
        self.commit_as(agreed, derived_handle(request), Some(*request), created_at)
    }

    fn commit_as(
        &self,
        agreed: &AgreedUpload,
        handle: Handle,
        derived_from: Option<Digest>,
        created_at: u64,
    ) -> Result<TableInfo, StoreError> {
        let upload_id = &agreed.upload_id;
        let mut state = self.write_state();
        if let Some(handle) = state.uploads.get(upload_id) {
            return Err(StoreError::AlreadyCommitted {
                upload_id: upload_id.clone(),
                handle: *handle,
            });
        }
        let record = self.read_record(&state, upload_id)?;
        upload::check_as_staged(&record.staged, agreed).map_err(|problem| {
            StoreError::NotAsStaged {
                upload_id: upload_id.clone(),
                problem,
            }
        })?;
        let dir = self.upload_dir(upload_id);
        for (index, staged) in record.staged.columns.iter().enumerate() {
            let path = dir.join(column::file_name(index));
            column::check_column_file(&path, agreed.rows).map_err(|problem| {
                StoreError::Column {
                    location: Location::Upload(upload_id.clone()),
                    column: staged.name.clone(),
                    path: path.clone(),
                    problem,
                }
            })?;
        }
        let target = self.table_dir(&handle);
        if state.tables.contains_key(&handle) || target.exists() {
            return Err(StoreError::HandleExists { handle });
        }
        let manifest = Manifest {
            party: self.party,
            info: TableInfo {
                handle,
                upload_id: upload_id.clone(),
                owner: agreed.owner.clone(),
                created_at,
                rows: agreed.rows,
                schema: agreed.schema.clone(),
                columns: agreed.columns.clone(),
                derived_from,
                policy: agreed.policy.clone(),
            },
            checksums: record.checksums,
        };
        // The manifest goes in before the rename, so that a visible table
        // always has one. A crash before the rename leaves the upload
        // staged; committing again rewrites it.
        fsutil::write_bytes_atomic(&dir, MANIFEST_FILE, &manifest.encode())?;
        fsutil::sync_dir(&dir)?;
        fs::rename(&dir, &target).map_err(StoreError::io(&dir))?;
        let info = manifest.info.clone();
        state.insert(manifest);
        drop(state);
        fsutil::sync_dir(&self.tables_dir())?;
        fsutil::sync_dir(&self.staging_dir())?;
        // The record has served its purpose; a leftover one is harmless.
        let record_path = target.join(STAGED_FILE);
        if let Err(error) = fs::remove_file(&record_path) {
            tracing::warn!(path = %record_path.display(), %error, "removing a staging record failed");
        }
        tracing::info!(
            party = self.party.index(),
            upload_id = %upload_id,
            handle = %handle,
            rows = info.rows,
            derived = info.derived_from.is_some(),
            "table committed"
        );
        Ok(info)
    }

    /// Drops a staged upload.
    pub fn abort(&self, upload_id: &UploadId) -> Result<(), StoreError> {
        let state = self.write_state();
        let dir = self.upload_dir(upload_id);
        if !dir.is_dir() {
            return Err(unknown_upload(&state, upload_id));
        }
        let trashed = self.trash_rename(&dir, &trash_name_upload(upload_id))?;
        drop(state);
        self.sync_trash(&self.staging_dir())?;
        self.remove_trashed(&trashed);
        tracing::info!(party = self.party.index(), upload_id = %upload_id, "upload aborted");
        Ok(())
    }

    /// Removes every staged upload (complete or not) not modified for more
    /// than `older_than` before `now`, judging by the modification times of
    /// its directory and files; returns their ids. `older_than` must be far
    /// longer than staging an upload takes: a staging still being written
    /// is not protected otherwise.
    pub fn cleanup_staging(
        &self,
        older_than: Duration,
        now: SystemTime,
    ) -> Result<Vec<UploadId>, StoreError> {
        let state = self.write_state();
        let mut removed = Vec::new();
        let mut trashed = Vec::new();
        for fsutil::Entry { name, path } in fsutil::entries(&self.staging_dir())? {
            let Some(name) = name else { continue };
            let Ok(upload_id) = name.parse::<UploadId>() else {
                if !fsutil::is_hidden(&name) {
                    tracing::warn!(path = %path.display(), "unexpected entry in staging");
                }
                continue;
            };
            let last = last_modified(&path)?;
            // A modification time in the future (clock changes) counts as
            // recent.
            let age = now.duration_since(last).unwrap_or(Duration::ZERO);
            if age > older_than {
                trashed.push(self.trash_rename(&path, &trash_name_upload(&upload_id))?);
                removed.push(upload_id);
            }
        }
        drop(state);
        if !trashed.is_empty() {
            self.sync_trash(&self.staging_dir())?;
        }
        for dir in &trashed {
            self.remove_trashed(dir);
        }
        removed.sort();
        if !removed.is_empty() {
            tracing::info!(
                party = self.party.index(),
                count = removed.len(),
                "stale staging removed"
            );
        }
        Ok(removed)
    }

    /// Deletes table `handle`: one atomic rename takes it out of `tables/`,
    /// then its files are removed. Returns its metadata.
    pub fn delete(&self, handle: &Handle) -> Result<TableInfo, StoreError> {
        let mut state = self.write_state();
        let manifest = state
            .tables
            .get(handle)
            .cloned()
            .ok_or(StoreError::UnknownTable { handle: *handle })?;
        let trashed = self.trash_rename(&self.table_dir(handle), &format!("table-{handle}"))?;
        state.tables.remove(handle);
        state.uploads.remove(&manifest.info.upload_id);
        drop(state);
        self.sync_trash(&self.tables_dir())?;
        self.remove_trashed(&trashed);
        tracing::info!(party = self.party.index(), handle = %handle, "table deleted");
        Ok(manifest.info.clone())
    }

    /// Renames `dir` into the trash as `name`; the caller holds the state
    /// lock and then calls [`Store::sync_trash`].
    pub(super) fn trash_rename(&self, dir: &Path, name: &str) -> Result<PathBuf, StoreError> {
        let target = self.trash_dir().join(name);
        if target.exists() {
            // Left by an earlier removal that failed.
            fs::remove_dir_all(&target).map_err(StoreError::io(&target))?;
        }
        fs::rename(dir, &target).map_err(StoreError::io(dir))?;
        Ok(target)
    }

    /// Makes renames from `from` into the trash durable.
    fn sync_trash(&self, from: &Path) -> Result<(), StoreError> {
        fsutil::sync_dir(from)?;
        fsutil::sync_dir(&self.trash_dir())
    }

    /// Reads and checks the staging record of `upload_id`.
    fn read_record(
        &self,
        state: &State,
        upload_id: &UploadId,
    ) -> Result<StagingRecord, StoreError> {
        let dir = self.upload_dir(upload_id);
        if !dir.is_dir() {
            return Err(unknown_upload(state, upload_id));
        }
        let path = dir.join(STAGED_FILE);
        let fail = |problem| StoreError::Manifest {
            location: Location::Upload(upload_id.clone()),
            path: path.clone(),
            problem,
        };
        let Some(bytes) = fsutil::read_small(&path).map_err(|e| fail(ManifestProblem::Io(e)))?
        else {
            return Err(StoreError::UploadIncomplete {
                upload_id: upload_id.clone(),
                path,
            });
        };
        let record = StagingRecord::decode(&bytes).map_err(fail)?;
        if record.staged.upload_id != *upload_id {
            return Err(fail(ManifestProblem::UploadMismatch {
                recorded: record.staged.upload_id,
                directory: upload_id.clone(),
            }));
        }
        if record.staged.party != self.party {
            return Err(fail(ManifestProblem::WrongParty {
                found: record.staged.party,
                expected: self.party,
            }));
        }
        Ok(record)
    }
}

/// The error for an upload id with no staging directory.
fn unknown_upload(state: &State, upload_id: &UploadId) -> StoreError {
    match state.uploads.get(upload_id) {
        Some(handle) => StoreError::AlreadyCommitted {
            upload_id: upload_id.clone(),
            handle: *handle,
        },
        None => StoreError::UnknownUpload {
            upload_id: upload_id.clone(),
        },
    }
}

/// Trash names say what was trashed; table and upload names cannot clash.
fn trash_name_upload(upload_id: &UploadId) -> String {
    format!("upload-{upload_id}")
}

/// Checks an upload's metadata and that every column has `rows` elements.
fn check_upload(upload: &Upload) -> Result<(), MetadataProblem> {
    manifest::check_schema(&upload.schema)?;
    manifest::check_column_names(upload.columns.iter().map(|(name, _)| name.as_str()))?;
    for (name, shares) in &upload.columns {
        let length = shares.len() as u64;
        if length != upload.rows {
            return Err(MetadataProblem::ColumnLength {
                column: name.clone(),
                length,
                rows: upload.rows,
            });
        }
    }
    Ok(())
}

/// The latest modification time of `dir` and its entries.
fn last_modified(dir: &Path) -> Result<SystemTime, StoreError> {
    let modified = |path: &Path| {
        fs::metadata(path)
            .and_then(|m| m.modified())
            .map_err(StoreError::io(path))
    };
    let mut last = modified(dir)?;
    for fsutil::Entry { path, .. } in fsutil::entries(dir)? {
        match modified(&path) {
            Ok(time) => last = last.max(time),
            // Renamed by a stage in progress: the directory changed now.
            Err(StoreError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    Ok(last)
}
