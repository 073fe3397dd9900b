//! Rebuilding a node that lost its disk from the other two.
//!
//! Party `i` holds components `i` and `i + 1` of every column. Its
//! predecessor holds component `i` (as its `next`), its successor component
//! `i + 1` (as its `own`): each survivor sends the one component it shares
//! with the lost node, so neither sends anything the lost node did not
//! hold, and no node ever holds all three.
//!
//! The operator of the rebuilt node gives it a new key and certificate
//! (`triad-node init`), the other two pin them (`triad-node add-peer`), and
//! `triad-node recover` marks its data directory ([`MARKER_FILE`]). At the
//! next formation of the mesh, right after the roles check, the three say
//! whether they wait to be rebuilt; with exactly one waiting:
//!
//! 1. each survivor offers the public metadata of every table it holds,
//!    its job records, and the latest audit head it recorded from the lost
//!    node (`Offer`);
//! 2. the lost node asks for the tables both offered identically that it
//!    does not hold yet (a table one of them lacks cannot be rebuilt, and
//!    is named in the log);
//! 3. column by column, in chunks, each survivor sends its component; the
//!    lost node writes each table and commits it with one rename
//!    ([`Store::begin_restore`](crate::store::Store::begin_restore));
//! 4. the lost node keeps the job records both sent identically, continues
//!    its new audit log from the head the survivors recorded (so their
//!    records of its log stay monotonic), and all three log the recovery
//!    and exchange heads as after a request;
//! 5. the marker is removed and the node serves.
//!
//! A mesh lost on the way re-forms and starts again from step 1; tables
//! already restored are not asked for again. Two nodes waiting at once
//! cannot be rebuilt (each component they lack was on the other), which
//! the three refuse loudly rather than serve.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use triad_ring::{Arith, PartyId, Transport};

use super::{Mesh, MeshLost, Shared, append_and_exchange, hex, now_secs};
use crate::audit::{AuditEntry, Head, RECOVER_KIND};
use crate::store::fsutil;
use crate::store::{Handle, StoreError, TableInfo};

/// The file in the data directory that says this node waits to be rebuilt.
pub const MARKER_FILE: &str = "recover.json";

/// Words per frame of a column: a column of any length goes in frames the
/// mesh accepts whatever the memory budget.
const CHUNK_WORDS: usize = 1 << 20;

#[derive(Serialize, Deserialize)]
struct Marker {
    format: String,
    requested_at: u64,
}

/// Marks the data directory `data_dir` (of an opened store) to be rebuilt
/// from the other two nodes at the next start; returns the marker's path.
pub fn mark(data_dir: &Path, now: u64) -> Result<PathBuf, StoreError> {
    let marker = Marker {
        format: "triad-node recovery".into(),
        requested_at: now,
    };
    // Two plain fields: serialisation cannot fail.
    let bytes = serde_json::to_vec_pretty(&marker).unwrap_or_default();
    let path = fsutil::write_bytes_atomic(data_dir, MARKER_FILE, &bytes)?;
    fsutil::sync_dir(data_dir)?;
    Ok(path)
}

/// Whether `data_dir` waits to be rebuilt.
pub fn is_marked(data_dir: &Path) -> bool {
    data_dir.join(MARKER_FILE).is_file()
}

/// What a survivor offers the node being rebuilt: all public.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Offer {
    tables: Vec<TableInfo>,
    jobs: Vec<(String, Vec<u8>)>,
    head: Option<Head>,
}

/// Whether a column's frames follow.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
enum Column {
    Follows { words: u64 },
    Unreadable,
}

/// Runs the rebuild if exactly one of the three waits for it (`waiting`,
/// by party); fails if more than one does.
pub(super) fn recover(
    shared: &Shared,
    mesh: &mut Mesh,
    waiting: [bool; 3],
) -> Result<(), MeshLost> {
    let parties: Vec<PartyId> = PartyId::ALL
        .into_iter()
        .filter(|p| waiting[p.index()])
        .collect();
    let lost = match parties.as_slice() {
        [] => return Ok(()),
        [lost] => *lost,
        _ => return Err(MeshLost::CannotRebuild { waiting: parties }),
    };
    if lost == mesh.me {
        rebuild(shared, mesh)
    } else {
        send_components(shared, mesh, lost)
    }
}

/// The survivor's side.
fn send_components(shared: &Shared, mesh: &mut Mesh, lost: PartyId) -> Result<(), MeshLost> {
    tracing::info!(
        node = lost.index(),
        "node waits to be rebuilt; sending it its components"
    );
    let jobs = shared.job_records.export().unwrap_or_else(|error| {
        tracing::warn!(%error, "job records cannot be read; the rebuilt node gets none");
        Vec::new()
    });
    let head = shared
        .audit
        .lock()
        .ok()
        .and_then(|log| log.peer_head(lost.index() as u8));
    let offer = Offer {
        tables: shared.store.tables(),
        jobs,
        head,
    };
    mesh.send(lost, &offer)?;
    let wanted: Vec<Handle> = mesh.recv(lost)?;
    // The lost node's `own` is its predecessor's `next`; its `next` is its
    // successor's `own`.
    let send_next = mesh.me == lost.prev();
    let mut columns = 0u64;
    for handle in &wanted {
        // Tables change only on this thread, so what was offered is here.
        let Some(info) = offer.tables.iter().find(|t| t.handle == *handle) else {
            return Err(MeshLost::OutOfStep { peer: lost });
        };
        for column in &info.columns {
            match shared.store.read_column(handle, &column.name) {
                Ok(shares) => {
                    let (own, next) = shares.components();
                    let words = if send_next { next } else { own };
                    mesh.send(
                        lost,
                        &Column::Follows {
                            words: words.len() as u64,
                        },
                    )?;
                    for chunk in words.chunks(CHUNK_WORDS) {
                        mesh.transport.send(lost, chunk.to_vec())?;
                    }
                    columns += 1;
                }
                Err(error) => {
                    tracing::error!(%handle, column = %column.name, %error,
                        "cannot send a column to the node being rebuilt");
                    mesh.send(lost, &Column::Unreadable)?;
                }
            }
        }
    }
    let component = if send_next {
        lost.index()
    } else {
        lost.next().index()
    };
    let entry = recovery_entry(
        shared,
        lost,
        &wanted,
        format!(
            "component {component} of {columns} columns of {} tables to node {}",
            wanted.len(),
            lost.index()
        ),
        "ok".into(),
    );
    append_and_exchange(shared, mesh, entry)?;
    tracing::info!(
        node = lost.index(),
        tables = wanted.len(),
        columns,
        "sent the node being rebuilt its components"
    );
    Ok(())
}

/// The lost node's side.
fn rebuild(shared: &Shared, mesh: &mut Mesh) -> Result<(), MeshLost> {
    let started = std::time::Instant::now();
    let me = mesh.me;
    // `from_own` sends this node's `own` component, `from_next` its `next`.
    let (from_own, from_next) = (me.prev(), me.next());
    tracing::info!("rebuilding this node from the other two");
    let offer_own: Offer = mesh.recv(from_own)?;
    let offer_next: Offer = mesh.recv(from_next)?;
    let wanted = choose_tables(&offer_own, &offer_next, |h| shared.store.table(h).is_ok());
    let handles: Vec<Handle> = wanted.iter().map(|t| t.handle).collect();
    mesh.send(from_own, &handles)?;
    mesh.send(from_next, &handles)?;

    // A rebuild cut short by a crash leaves its table's staging directory;
    // nothing else stages under a committed table's upload id (the other
    // two refuse it), so such a directory is dropped.
    let staged = shared.store.staged_uploads().unwrap_or_default();
    let mut failed = Vec::new();
    for info in &wanted {
        let handle = info.handle;
        if staged.contains(&info.upload_id)
            && let Err(error) = shared.store.abort(&info.upload_id)
        {
            tracing::warn!(%handle, %error, "cannot drop an interrupted restore");
        }
        let mut restoring = match shared.store.begin_restore(info.clone()) {
            Ok(restoring) => Some(restoring),
            Err(error) => {
                tracing::error!(%handle, %error, "cannot restore a table");
                None
            }
        };
        for column in &info.columns {
            let own = receive_column(mesh, from_own, info.rows)?;
            let next = receive_column(mesh, from_next, info.rows)?;
            let Some(writer) = restoring.as_mut() else {
                continue;
            };
            let written = match (own, next) {
                (Some(own), Some(next)) => Arith::from_components(own, next)
                    .map_err(|e| e.to_string())
                    .and_then(|shares| writer.column(&shares).map_err(|e| e.to_string())),
                _ => Err("a node could not read it".into()),
            };
            if let Err(error) = written {
                tracing::error!(%handle, column = %column.name, %error, "cannot restore a column");
                restoring = None;
            }
        }
        match restoring.map(|r| r.commit()) {
            Some(Ok(_)) => {}
            Some(Err(error)) => {
                tracing::error!(%handle, %error, "cannot restore a table");
                failed.push(handle);
            }
            None => failed.push(handle),
        }
    }

    let mut jobs = 0;
    for (name, bytes) in &offer_own.jobs {
        let same = offer_next.jobs.iter().any(|(n, b)| n == name && b == bytes);
        if !same {
            tracing::warn!(file = %name, "the two nodes hold different job records; not restored");
            continue;
        }
        match shared.job_records.import(name, bytes) {
            Ok(()) => jobs += 1,
            Err(error) => tracing::warn!(file = %name, %error, "job record not restored"),
        }
    }

    let head = [offer_own.head, offer_next.head]
        .into_iter()
        .flatten()
        .max_by_key(|h| h.seq);
    if let (Some(head), Ok(mut log)) = (head, shared.audit.lock())
        && log.head().seq == 0
        && let Err(error) = log.continue_from(head)
    {
        tracing::error!(%error, "cannot continue the audit log from the peers' record");
    }
    let status = if failed.is_empty() {
        "ok".to_owned()
    } else {
        format!("{} of {} tables not restored", failed.len(), wanted.len())
    };
    let entry = recovery_entry(
        shared,
        me,
        &handles,
        format!(
            "nothing; received components of {} tables and {jobs} job records from nodes {} and {}",
            wanted.len(),
            from_own.index(),
            from_next.index()
        ),
        status,
    );
    append_and_exchange(shared, mesh, entry)?;
    let marker = shared.config.data_dir.join(MARKER_FILE);
    if let Err(error) = std::fs::remove_file(&marker) {
        tracing::error!(path = %marker.display(), %error, "cannot remove the recovery marker");
    }
    if failed.is_empty() {
        tracing::info!(
            tables = wanted.len(),
            jobs,
            seconds = started.elapsed().as_secs_f64(),
            "rebuilt from the other two nodes"
        );
    } else {
        for handle in &failed {
            tracing::error!(%handle, "table not rebuilt; queries reading it will be refused");
        }
        tracing::error!(
            restored = wanted.len() - failed.len(),
            failed = failed.len(),
            "rebuilt from the other two nodes with tables missing; `triad-node recover` again to retry them"
        );
    }
    Ok(())
}

/// The tables both survivors offered with the same metadata and this node
/// lacks, in handle order. A table only one offers, or that they describe
/// differently, cannot be rebuilt: it is named in the log and skipped.
fn choose_tables(a: &Offer, b: &Offer, held: impl Fn(&Handle) -> bool) -> Vec<TableInfo> {
    let in_b: BTreeMap<Handle, &TableInfo> = b.tables.iter().map(|t| (t.handle, t)).collect();
    let in_a: BTreeMap<Handle, &TableInfo> = a.tables.iter().map(|t| (t.handle, t)).collect();
    let mut wanted = Vec::new();
    for (handle, info) in &in_a {
        if held(handle) {
            continue;
        }
        match in_b.get(handle) {
            Some(other) if *other == *info => wanted.push((*info).clone()),
            Some(_) => {
                tracing::error!(%handle, "the two nodes describe this table differently; not rebuilt")
            }
            None => tracing::error!(%handle, "only one node holds this table; not rebuilt"),
        }
    }
    for handle in in_b.keys().filter(|h| !in_a.contains_key(h) && !held(h)) {
        tracing::error!(%handle, "only one node holds this table; not rebuilt");
    }
    wanted
}

/// One column's component from `from`: `None` if that node could not read
/// it. A frame of another length than announced, or an announcement of
/// another length than the table's, breaks the mesh.
fn receive_column(mesh: &mut Mesh, from: PartyId, rows: u64) -> Result<Option<Vec<u64>>, MeshLost> {
    let words = match mesh.recv::<Column>(from)? {
        Column::Unreadable => return Ok(None),
        Column::Follows { words } if words == rows => words,
        Column::Follows { .. } => return Err(MeshLost::Malformed { peer: from }),
    };
    let total = usize::try_from(words).map_err(|_| MeshLost::Malformed { peer: from })?;
    let mut out = Vec::new();
    while out.len() < total {
        let chunk = mesh.transport.recv(from)?;
        if chunk.is_empty() || chunk.len() > CHUNK_WORDS || out.len() + chunk.len() > total {
            return Err(MeshLost::Malformed { peer: from });
        }
        if out.is_empty() {
            out.reserve_exact(total);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Some(out))
}

/// The audit entry each of the three writes for a rebuild of `lost`. The
/// request field is the same on all three, so the logs line up.
fn recovery_entry(
    shared: &Shared,
    lost: PartyId,
    handles: &[Handle],
    revealed: String,
    status: String,
) -> AuditEntry {
    let mut hasher = blake3::Hasher::new_derive_key("triad-node recovery v1");
    hasher.update(&[lost.index() as u8]);
    for handle in handles {
        hasher.update(handle.as_bytes());
    }
    AuditEntry {
        time: now_secs(),
        user: shared.operator.public().to_string(),
        request: hex(hasher.finalize().as_bytes()),
        kind: RECOVER_KIND.into(),
        mode: "operator".into(),
        script: None,
        step: None,
        plan: None,
        revealed,
        status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(byte: u8, rows: u64) -> TableInfo {
        TableInfo {
            handle: Handle::from_bytes([byte; 32]),
            upload_id: format!("u{byte}").parse().unwrap(),
            owner: "00".repeat(32).parse().unwrap(),
            created_at: 7,
            rows,
            schema: Vec::new(),
            columns: Vec::new(),
            derived_from: None,
            policy: Default::default(),
        }
    }

    fn offer(tables: Vec<TableInfo>) -> Offer {
        Offer {
            tables,
            jobs: Vec::new(),
            head: None,
        }
    }

    #[test]
    fn only_tables_both_describe_alike_and_missing_here_are_asked_for() {
        let a = offer(vec![table(1, 5), table(2, 5), table(3, 5), table(4, 5)]);
        let b = offer(vec![table(1, 5), table(2, 6), table(4, 5), table(5, 5)]);
        let held = |h: &Handle| *h == Handle::from_bytes([4; 32]);
        let wanted: Vec<Handle> = choose_tables(&a, &b, held)
            .iter()
            .map(|t| t.handle)
            .collect();
        // 2 differs, 3 and 5 are on one node only, 4 is held already.
        assert_eq!(wanted, vec![Handle::from_bytes([1; 32])]);
        assert!(choose_tables(&offer(Vec::new()), &b, |_| false).is_empty());
    }

    #[test]
    fn the_marker_is_written_and_seen() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        assert!(!is_marked(&data));
        let path = mark(&data, 5).unwrap();
        assert!(is_marked(&data));
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.contains("\"requested_at\": 5"), "{text}");
    }
}
