//! Restoring a lost party's tables from the components the other two hold:
//! the rebuilt files are the lost ones byte for byte, and metadata or
//! columns that do not fit are refused without leaving anything behind.

// Store errors name table, column and file by value (see the store).
#![allow(clippy::result_large_err)]

mod common;

use std::fs;
use std::path::Path;

use common::{Rng, Trio, deal, reconstruct};
use proptest::prelude::*;
use triad_node::store::{RestoreProblem, Store, StoreError, TableInfo};
use triad_ring::{Arith, PartyId};

const CREATED_AT: u64 = 1_700_000_000;

/// What `lost`'s peers send for table `info`: its predecessor's `next`
/// and its successor's `own`, per column.
fn components_for(trio: &Trio, lost: PartyId, info: &TableInfo) -> Vec<Arith> {
    let before = &trio.stores[lost.prev().index()];
    let after = &trio.stores[lost.next().index()];
    info.columns
        .iter()
        .map(|c| {
            let a = before.read_column(&info.handle, &c.name).expect("read");
            let b = after.read_column(&info.handle, &c.name).expect("read");
            Arith::from_components(a.components().1.to_vec(), b.components().0.to_vec())
                .expect("same length")
        })
        .collect()
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| {
            let e = e.expect("entry");
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).expect("read"),
            )
        })
        .collect();
    out.sort();
    out
}

fn restore(store: &Store, info: &TableInfo, columns: &[Arith]) -> Result<TableInfo, StoreError> {
    let mut restoring = store.begin_restore(info.clone())?;
    for column in columns {
        restoring.column(column)?;
    }
    restoring.commit()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Any party, any table shape (empty, one row, edge values): the
    /// restored table is the lost one, file for file.
    #[test]
    fn a_restored_table_is_the_lost_one(
        lost in 0usize..3,
        rows in prop_oneof![Just(0u64), Just(1), 2u64..40],
        seed in any::<u64>(),
    ) {
        let lost = PartyId::from_index(lost).expect("party");
        let dir = tempfile::tempdir().expect("tempdir");
        let trio = Trio::open(dir.path());
        let mut rng = Rng::new(seed);
        let mut edge = vec![0, u64::MAX, i64::MIN as u64, i64::MAX as u64, 1];
        edge.truncate(rows as usize);
        edge.extend(rng.words(rows as usize - edge.len()));
        let uploads = deal("t", rows, &[("a", edge), ("b", rng.words(rows as usize))], seed);
        let infos = trio.upload(&uploads, CREATED_AT);
        let info = infos[lost.index()].clone();
        let columns = components_for(&trio, lost, &info);

        let fresh = Store::open(dir.path().join("rebuilt"), lost).expect("open");
        let restored = restore(&fresh, &info, &columns).expect("restore");
        prop_assert_eq!(&restored, &info);
        let lost_dir = dir.path().join(format!("p{}/tables/{}", lost.index(), info.handle));
        let new_dir = dir.path().join(format!("rebuilt/tables/{}", info.handle));
        prop_assert_eq!(files(&new_dir), files(&lost_dir));
        // It reads back, also after a restart, and opens the same values.
        drop(fresh);
        let reopened = Store::open(dir.path().join("rebuilt"), lost).expect("reopen");
        for column in &info.columns {
            let mine = reopened.read_column(&info.handle, &column.name).expect("read");
            let mut shares = trio.stores.each_ref().map(|s| s.read_column(&info.handle, &column.name).expect("read"));
            shares[lost.index()] = mine;
            let expected = trio.stores.each_ref().map(|s| s.read_column(&info.handle, &column.name).expect("read"));
            prop_assert_eq!(
                reconstruct([&shares[0], &shares[1], &shares[2]]),
                reconstruct([&expected[0], &expected[1], &expected[2]])
            );
        }
    }
}

#[test]
fn what_does_not_fit_is_refused_and_leaves_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trio = Trio::open(dir.path());
    let mut rng = Rng::new(9);
    let uploads = deal("t", 6, &[("a", rng.words(6)), ("b", rng.words(6))], 9);
    let info = trio.upload(&uploads, CREATED_AT)[2].clone();
    let columns = components_for(&trio, PartyId::P2, &info);
    let fresh = Store::open(dir.path().join("rebuilt"), PartyId::P2).expect("open");

    // Metadata whose handle does not follow from it.
    let mut edited = info.clone();
    edited.rows = 7;
    let error = fresh.begin_restore(edited).expect_err("edited metadata");
    assert!(
        matches!(
            error,
            StoreError::Restore {
                problem: RestoreProblem::Metadata(_),
                ..
            }
        ),
        "{error}"
    );

    // A column of the wrong length, a missing column, an extra column.
    let short = Arith::from_components(vec![1; 5], vec![2; 5]).expect("shares");
    let mut restoring = fresh.begin_restore(info.clone()).expect("begin");
    let error = restoring.column(&short).expect_err("short column");
    assert!(
        error.to_string().contains("has 5 rows, the table 6"),
        "{error}"
    );
    restoring.column(&columns[0]).expect("column");
    let error = restoring.commit().expect_err("one column missing");
    assert!(error.to_string().contains("1 of its 2 columns"), "{error}");
    let mut restoring = fresh.begin_restore(info.clone()).expect("begin again");
    for column in &columns {
        restoring.column(column).expect("column");
    }
    assert!(restoring.column(&columns[0]).is_err(), "a third column");
    drop(restoring);

    // None of that left a table or anything in staging.
    assert!(fresh.tables().is_empty());
    assert!(fresh.staged_uploads().expect("staging").is_empty());
    restore(&fresh, &info, &columns).expect("restore");
    // Once there, the table is not restored twice.
    assert!(matches!(
        fresh.begin_restore(info.clone()),
        Err(StoreError::HandleExists { .. })
    ));
}

#[test]
fn a_restore_cut_short_by_a_crash_is_dropped_and_redone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trio = Trio::open(dir.path());
    let mut rng = Rng::new(3);
    let uploads = deal("t", 4, &[("a", rng.words(4))], 3);
    let info = trio.upload(&uploads, CREATED_AT)[0].clone();
    let columns = components_for(&trio, PartyId::P0, &info);
    let fresh = Store::open(dir.path().join("rebuilt"), PartyId::P0).expect("open");
    let mut restoring = fresh.begin_restore(info.clone()).expect("begin");
    restoring.column(&columns[0]).expect("column");
    // The process dies here: no drop, no commit.
    std::mem::forget(restoring);
    drop(fresh);
    let fresh = Store::open(dir.path().join("rebuilt"), PartyId::P0).expect("reopen");
    assert!(fresh.tables().is_empty());
    assert!(matches!(
        fresh.begin_restore(info.clone()),
        Err(StoreError::UploadExists { .. })
    ));
    assert_eq!(
        fresh.staged_uploads().expect("staging"),
        vec![info.upload_id.clone()]
    );
    fresh.abort(&info.upload_id).expect("drop the leftover");
    restore(&fresh, &info, &columns).expect("restore");
}
