//! Tables go in and come out unchanged, survive reopening, agree across the
//! three nodes, and go away when deleted.

mod common;

use std::collections::BTreeSet;

use common::{Rng, Trio, client_agreed, deal, reconstruct, store_one};
use triad_node::store::{Handle, Store, StoreError, handle_for};
use triad_ring::PartyId;

const CREATED_AT: u64 = 1_700_000_000;

/// Upload id, row count, and plaintext columns by name.
type Case = (&'static str, u64, Vec<(&'static str, Vec<u64>)>);

/// Checks that every column of `uploads` reads back from `store` as this
/// party's shares.
fn assert_reads_back(store: &Store, handle: &Handle, uploads: &[triad_node::store::Upload; 3]) {
    let mine = &uploads[store.party().index()];
    for (name, shares) in &mine.columns {
        let read = store.read_column(handle, name).expect("read");
        assert!(read == *shares, "column {name} differs");
    }
}

#[test]
fn columns_of_every_size_roundtrip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), PartyId::P1).expect("open");
    let mut rng = Rng::new(1);
    let cases: Vec<Case> = vec![
        ("empty", 0, vec![("a", vec![]), ("b", vec![])]),
        ("one-row", 1, vec![("only", vec![u64::MAX])]),
        (
            "several",
            1000,
            vec![
                ("age", rng.words(1000)),
                ("income", rng.words(1000)),
                ("name é/../x", rng.words(1000)),
            ],
        ),
        ("million", 1_000_000, vec![("big", rng.words(1_000_000))]),
    ];
    for (seed, (id, rows, columns)) in cases.iter().enumerate() {
        let uploads = deal(id, *rows, columns, seed as u64);
        let info = store_one(&store, &uploads, CREATED_AT);
        assert_eq!(info.rows, *rows);
        assert_eq!(info.created_at, CREATED_AT);
        assert_eq!(info.handle, handle_for(&client_agreed(&uploads)));
        assert_eq!(store.table(&info.handle).expect("table"), info);
        assert_reads_back(&store, &info.handle, &uploads);
        store.verify_table(&info.handle).expect("verify");
    }
    assert_eq!(store.tables().len(), cases.len());
}

#[test]
fn reopening_serves_every_committed_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng::new(2);
    let uploads: Vec<_> = (0..4)
        .map(|t| {
            let rows = [0, 1, 17, 5000][t];
            let columns = vec![("x", rng.words(rows)), ("y", rng.words(rows))];
            deal(&format!("t{t}"), rows as u64, &columns, t as u64)
        })
        .collect();
    let before = {
        let store = Store::open(dir.path(), PartyId::P2).expect("open");
        for upload in &uploads {
            store_one(&store, upload, CREATED_AT);
        }
        store.tables()
    };
    let store = Store::open(dir.path(), PartyId::P2).expect("reopen");
    assert_eq!(store.tables(), before);
    for upload in &uploads {
        let handle = handle_for(&client_agreed(upload));
        assert_reads_back(&store, &handle, upload);
    }
}

#[test]
fn three_nodes_agree_and_the_shares_reconstruct() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trio = Trio::open(dir.path());
    let mut rng = Rng::new(3);
    let values = rng.words(300);
    let flags: Vec<u64> = values.iter().map(|v| v & 1).collect();
    let uploads = deal(
        "joint",
        300,
        &[("v", values.clone()), ("flag", flags.clone())],
        3,
    );
    let infos = trio.upload(&uploads, CREATED_AT);
    assert_eq!(infos[0], infos[1]);
    assert_eq!(infos[1], infos[2]);
    // The client computes the same handle from its keys and shares.
    assert_eq!(infos[0].handle, handle_for(&client_agreed(&uploads)));
    for (name, expected) in [("v", &values), ("flag", &flags)] {
        let shares = trio
            .stores
            .each_ref()
            .map(|s| s.read_column(&infos[0].handle, name).expect("read"));
        assert_eq!(&reconstruct(shares.each_ref()), expected);
    }
}

#[test]
fn deleted_tables_stay_gone_after_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng::new(4);
    let keep = deal("keep", 10, &[("a", rng.words(10))], 1);
    let drop_it = deal("drop", 10, &[("a", rng.words(10))], 2);
    let (kept, dropped) = {
        let store = Store::open(dir.path(), PartyId::P0).expect("open");
        let kept = store_one(&store, &keep, CREATED_AT);
        let dropped = store_one(&store, &drop_it, CREATED_AT);
        assert_eq!(store.delete(&dropped.handle).expect("delete"), dropped);
        assert!(matches!(
            store.read_column(&dropped.handle, "a"),
            Err(StoreError::UnknownTable { handle }) if handle == dropped.handle
        ));
        assert!(matches!(
            store.delete(&dropped.handle),
            Err(StoreError::UnknownTable { .. })
        ));
        (kept, dropped)
    };
    let store = Store::open(dir.path(), PartyId::P0).expect("reopen");
    assert_eq!(store.tables(), vec![kept.clone()]);
    assert!(matches!(
        store.table(&dropped.handle),
        Err(StoreError::UnknownTable { .. })
    ));
    assert_reads_back(&store, &kept.handle, &keep);
    // Nothing of it is left on disk, in the tables or the trash.
    let trash = std::fs::read_dir(dir.path().join("trash")).expect("trash");
    assert_eq!(trash.count(), 0);
    assert!(
        !dir.path()
            .join("tables")
            .join(dropped.handle.to_string())
            .exists()
    );
}

#[test]
fn concurrent_uploads_do_not_interfere() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), PartyId::P1).expect("open");
    let uploads: Vec<_> = (0..8u64)
        .map(|t| {
            let mut rng = Rng::new(100 + t);
            let rows = 1000 + t as usize;
            deal(
                &format!("c{t}"),
                rows as u64,
                &[("a", rng.words(rows)), ("b", rng.words(rows))],
                t,
            )
        })
        .collect();
    let handles: BTreeSet<Handle> = std::thread::scope(|scope| {
        let workers: Vec<_> = uploads
            .iter()
            .map(|upload| scope.spawn(|| store_one(&store, upload, CREATED_AT).handle))
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("worker"))
            .collect()
    });
    assert_eq!(handles.len(), uploads.len());
    assert_eq!(store.tables().len(), uploads.len());
    for upload in &uploads {
        assert_reads_back(&store, &handle_for(&client_agreed(upload)), upload);
    }
    assert!(store.staged_uploads().expect("staging").is_empty());
}
