//! Commits not yet confirmed by the other two nodes.
//!
//! A node records a handle here (durably) before it commits an upload and
//! removes it once all three reported a successful commit. If a node dies
//! in between, some nodes hold the table and others do not; when the mesh
//! forms again the three compare these records and the tables they hold,
//! keep a table that all three committed, and drop it everywhere else.
//! Only handles recorded here are ever dropped: a node that lost its disk
//! holds no records and no tables, and the others keep everything they
//! confirmed.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::store::Handle;

/// The record, kept in one small JSON file beside the store.
#[derive(Debug)]
pub struct Pending {
    path: PathBuf,
    handles: BTreeSet<Handle>,
}

/// Why the record could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct PendingError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    pub problem: String,
}

impl Pending {
    /// Opens the record in `dir` (empty if there is none yet).
    pub fn open(dir: &Path) -> Result<Pending, PendingError> {
        let path = dir.join("unconfirmed.json");
        let error = |problem: String| PendingError {
            path: path.clone(),
            problem,
        };
        let handles = match std::fs::read(&path) {
            Ok(bytes) => {
                let hex: Vec<String> =
                    serde_json::from_slice(&bytes).map_err(|e| error(e.to_string()))?;
                hex.iter()
                    .map(|h| h.parse::<Handle>().map_err(|e| error(e.to_string())))
                    .collect::<Result<_, _>>()?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
            Err(e) => return Err(error(e.to_string())),
        };
        Ok(Pending { path, handles })
    }

    /// The recorded handles.
    pub fn handles(&self) -> &BTreeSet<Handle> {
        &self.handles
    }

    /// Records `handle` durably.
    pub fn add(&mut self, handle: Handle) -> Result<(), PendingError> {
        self.handles.insert(handle);
        self.save()
    }

    /// Forgets `handles` durably.
    pub fn remove(&mut self, handles: &[Handle]) -> Result<(), PendingError> {
        for h in handles {
            self.handles.remove(h);
        }
        self.save()
    }

    fn save(&self) -> Result<(), PendingError> {
        let error = |e: std::io::Error| PendingError {
            path: self.path.clone(),
            problem: e.to_string(),
        };
        let hex: Vec<String> = self.handles.iter().map(Handle::to_string).collect();
        let bytes = serde_json::to_vec(&hex).map_err(|e| error(std::io::Error::other(e)))?;
        let tmp = self.path.with_extension("json.tmp");
        let mut file = std::fs::File::create(&tmp).map_err(error)?;
        file.write_all(&bytes).map_err(error)?;
        file.sync_all().map_err(error)?;
        std::fs::rename(&tmp, &self.path).map_err(error)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(error)?;
        }
        Ok(())
    }
}

/// What to do with each unconfirmed handle, given which nodes hold a table
/// under it: keep it (all three hold it) or drop it (some do not).
pub fn settle(
    unconfirmed: &BTreeSet<Handle>,
    held: [&BTreeSet<Handle>; 3],
) -> (Vec<Handle>, Vec<Handle>) {
    let mut keep = Vec::new();
    let mut drop = Vec::new();
    for handle in unconfirmed {
        if held.iter().all(|h| h.contains(handle)) {
            keep.push(*handle);
        } else {
            drop.push(*handle);
        }
    }
    (keep, drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(b: u8) -> Handle {
        Handle::from_bytes([b; 32])
    }

    #[test]
    fn settles_only_unconfirmed_handles() {
        let unconfirmed: BTreeSet<Handle> = [h(1), h(2), h(3)].into();
        let a: BTreeSet<Handle> = [h(1), h(2), h(9)].into();
        let b: BTreeSet<Handle> = [h(1), h(2), h(9)].into();
        let c: BTreeSet<Handle> = [h(1)].into();
        let (keep, drop) = settle(&unconfirmed, [&a, &b, &c]);
        assert_eq!(keep, vec![h(1)]);
        // h(9) is on two nodes only but was confirmed: never dropped here
        // (a node that lost its disk must not make the others drop data).
        assert_eq!(drop, vec![h(2), h(3)]);
    }

    #[test]
    fn the_record_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut pending = Pending::open(dir.path()).unwrap();
        pending.add(h(4)).unwrap();
        pending.add(h(5)).unwrap();
        pending.remove(&[h(4)]).unwrap();
        let again = Pending::open(dir.path()).unwrap();
        assert_eq!(again.handles(), &BTreeSet::from([h(5)]));
        std::fs::write(dir.path().join("unconfirmed.json"), b"[\"zz\"]").unwrap();
        let error = Pending::open(dir.path()).unwrap_err();
        assert!(error.to_string().contains("unconfirmed.json"));
    }
}
