//! Damaged files give typed errors naming the table, the column and the
//! file: never a wrong result, never a panic.

mod common;

use std::fs::{self, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use common::{Rng, deal, store_one};
use triad_node::store::{
    COLUMN_HEADER_BYTES, ColumnProblem, Handle, Location, ManifestProblem, Store, StoreError,
    TableInfo, encode_column,
};
use triad_ring::PartyId;

const ROWS: usize = 100;

/// What a damaged byte must be reported as.
type Expected = fn(&ColumnProblem) -> bool;

/// A store (party 1) holding one table with columns "a" and "b".
fn setup() -> (tempfile::TempDir, Store, TableInfo) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), PartyId::P1).expect("open");
    let mut rng = Rng::new(11);
    let uploads = deal(
        "victim",
        ROWS as u64,
        &[("a", rng.words(ROWS)), ("b", rng.words(ROWS))],
        11,
    );
    let info = store_one(&store, &uploads, 1);
    (dir, store, info)
}

fn flip(path: &Path, at: u64) {
    let mut bytes = fs::read(path).expect("read");
    bytes[at as usize] ^= 0x01;
    fs::write(path, bytes).expect("write");
}

/// Reads column "a" and checks the error names table, column and file,
/// returning the problem.
fn read_problem(store: &Store, handle: &Handle, path: &PathBuf) -> ColumnProblem {
    let error = store.read_column(handle, "a").expect_err("must fail");
    let text = error.to_string();
    assert!(text.contains(&handle.to_string()), "{text}");
    assert!(text.contains("\"a\""), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
    match error {
        StoreError::Column {
            location: Location::Table(h),
            column,
            path: p,
            problem,
        } => {
            assert_eq!(h, *handle);
            assert_eq!(column, "a");
            assert_eq!(&p, path);
            problem
        }
        other => panic!("expected a column error, got {other:?}"),
    }
}

/// Reopening fails with the same kind of error naming the same file.
fn reopen_problem(dir: &Path, path: &PathBuf) -> ColumnProblem {
    match Store::open(dir, PartyId::P1) {
        Err(StoreError::Column {
            path: p, problem, ..
        }) => {
            assert_eq!(&p, path);
            problem
        }
        other => panic!("expected a column error on open, got {other:?}"),
    }
}

#[test]
fn truncated_file() {
    let (dir, store, info) = setup();
    let path = store.column_path(&info.handle, "a").expect("path");
    let len = fs::metadata(&path).expect("stat").len();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_len(len - 3))
        .expect("truncate");
    assert!(matches!(
        read_problem(&store, &info.handle, &path),
        ColumnProblem::Length { count, actual_bytes, .. } if count == ROWS as u64 && actual_bytes == len - 3
    ));
    assert!(matches!(
        reopen_problem(dir.path(), &path),
        ColumnProblem::Length { .. }
    ));
    // Shorter than a header.
    fs::write(&path, b"TRIAD").expect("write");
    assert!(matches!(
        read_problem(&store, &info.handle, &path),
        ColumnProblem::TooShort { bytes: 5, .. }
    ));
}

#[test]
fn extra_trailing_byte() {
    let (dir, store, info) = setup();
    let path = store.column_path(&info.handle, "a").expect("path");
    OpenOptions::new()
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(&[0]))
        .expect("append");
    assert!(matches!(
        read_problem(&store, &info.handle, &path),
        ColumnProblem::Length { .. }
    ));
    assert!(matches!(
        reopen_problem(dir.path(), &path),
        ColumnProblem::Length { .. }
    ));
}

#[test]
fn flipped_payload_bytes() {
    let (_dir, store, info) = setup();
    let path = store.column_path(&info.handle, "a").expect("path");
    let len = fs::metadata(&path).expect("stat").len();
    // First payload byte, one in the `next` half, the very last.
    for at in [
        COLUMN_HEADER_BYTES as u64,
        len - 8 * ROWS as u64 + 5,
        len - 1,
    ] {
        flip(&path, at);
        assert!(matches!(
            read_problem(&store, &info.handle, &path),
            ColumnProblem::Checksum
        ));
        flip(&path, at);
        store.read_column(&info.handle, "a").expect("restored");
    }
}

#[test]
fn flipped_header_bytes() {
    let (_dir, store, info) = setup();
    let path = store.column_path(&info.handle, "a").expect("path");
    let cases: [(u64, Expected); 5] = [
        (0, |p| matches!(p, ColumnProblem::BadMagic)),
        (8, |p| matches!(p, ColumnProblem::UnsupportedVersion { .. })),
        (16, |p| matches!(p, ColumnProblem::RowCount { .. })),
        (24, |p| matches!(p, ColumnProblem::Checksum)),
        (55, |p| matches!(p, ColumnProblem::Checksum)),
    ];
    for (at, expected) in cases {
        flip(&path, at);
        let problem = read_problem(&store, &info.handle, &path);
        assert!(expected(&problem), "byte {at}: {problem:?}");
        flip(&path, at);
    }
    store.read_column(&info.handle, "a").expect("restored");
}

#[test]
fn wrong_party_index() {
    let (_dir, store, info) = setup();
    let path = store.column_path(&info.handle, "a").expect("path");
    // The party field alone changed...
    let mut file = OpenOptions::new().write(true).open(&path).expect("open");
    file.seek(SeekFrom::Start(12)).expect("seek");
    file.write_all(&2u32.to_le_bytes()).expect("write");
    drop(file);
    assert!(matches!(
        read_problem(&store, &info.handle, &path),
        ColumnProblem::WrongParty {
            found: 2,
            expected: PartyId::P1
        }
    ));
    // ...or a whole, intact file of another party put in its place.
    let shares = store.read_column(&info.handle, "b").expect("b");
    fs::write(&path, encode_column(PartyId::P0, &shares)).expect("write");
    assert!(matches!(
        read_problem(&store, &info.handle, &path),
        ColumnProblem::WrongParty {
            found: 0,
            expected: PartyId::P1
        }
    ));
}

#[test]
fn intact_file_of_another_column() {
    let (_dir, store, info) = setup();
    let a = store.column_path(&info.handle, "a").expect("path");
    let b = store.column_path(&info.handle, "b").expect("path");
    fs::copy(&b, &a).expect("copy");
    assert!(matches!(
        read_problem(&store, &info.handle, &a),
        ColumnProblem::NotInManifest
    ));
}

#[test]
fn missing_file() {
    let (dir, store, info) = setup();
    let path = store.column_path(&info.handle, "a").expect("path");
    fs::remove_file(&path).expect("remove");
    assert!(matches!(
        read_problem(&store, &info.handle, &path),
        ColumnProblem::Missing
    ));
    assert!(matches!(
        reopen_problem(dir.path(), &path),
        ColumnProblem::Missing
    ));
}

#[test]
fn damaged_manifest_is_named_on_open() {
    let (dir, store, info) = setup();
    drop(store);
    let path = dir
        .path()
        .join("tables")
        .join(info.handle.to_string())
        .join("manifest.json");
    let text = fs::read_to_string(&path).expect("read");
    let edited = text.replace(&format!("\"rows\": {ROWS}"), "\"rows\": 99");
    assert_ne!(text, edited);
    fs::write(&path, edited).expect("write");
    match Store::open(dir.path(), PartyId::P1) {
        Err(StoreError::Manifest {
            location: Location::Table(h),
            path: p,
            problem: ManifestProblem::HandleMismatch { .. },
        }) => {
            assert_eq!(h, info.handle);
            assert_eq!(p, path);
        }
        other => panic!("expected a manifest error, got {other:?}"),
    }
    fs::write(&path, b"\x00\xff garbage").expect("write");
    assert!(matches!(
        Store::open(dir.path(), PartyId::P1),
        Err(StoreError::Manifest {
            problem: ManifestProblem::Json(_),
            ..
        })
    ));
}
