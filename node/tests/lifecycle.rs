//! The upload lifecycle: staging is invisible and cleaned up, commits
//! survive a crash after staging, and every misuse is a typed error.

mod common;

use std::fs;
use std::time::{Duration, SystemTime};

use common::{Rng, Trio, client_agreed, deal, store_one, upload_id};
use triad_node::store::{
    Location, ManifestProblem, MetadataProblem, Mismatch, STORE_FORMAT_VERSION, Store, StoreError,
    combine,
};
use triad_ring::PartyId;

const CREATED_AT: u64 = 1_700_000_000;
const HOUR: Duration = Duration::from_secs(3600);

fn small(id: &str, seed: u64) -> [triad_node::store::Upload; 3] {
    let mut rng = Rng::new(seed);
    deal(id, 5, &[("a", rng.words(5)), ("b", rng.words(5))], seed)
}

#[test]
fn staged_uploads_are_invisible_and_cleaned_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), PartyId::P0).expect("open");
    let uploads = small("pending", 1);
    let report = store.stage(&uploads[0]).expect("stage");
    assert_eq!(report.party, PartyId::P0);
    assert!(store.tables().is_empty());
    assert_eq!(
        store.staged_uploads().expect("list"),
        vec![upload_id("pending")]
    );

    // The store reads no clock; the test passes "now" in.
    let now = SystemTime::now();
    assert!(
        store
            .cleanup_staging(HOUR, now)
            .expect("cleanup")
            .is_empty()
    );
    let removed = store
        .cleanup_staging(HOUR, now + 2 * HOUR)
        .expect("cleanup");
    assert_eq!(removed, vec![upload_id("pending")]);
    assert!(store.staged_uploads().expect("list").is_empty());
    assert!(matches!(
        store.commit(&client_agreed(&uploads), CREATED_AT),
        Err(StoreError::UnknownUpload { .. })
    ));
    // The id is free again.
    store_one(&store, &uploads, CREATED_AT);
}

#[test]
fn commit_works_after_a_crash_between_stage_and_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trio = Trio::open(dir.path());
    let uploads = small("crash", 2);
    let reports: Vec<_> = trio
        .stores
        .iter()
        .zip(&uploads)
        .map(|(s, u)| s.stage(u).expect("stage"))
        .collect();
    // Node 1 dies after staging and comes back.
    let Trio {
        stores: [s0, s1, s2],
    } = trio;
    drop(s1);
    let s1 = Store::open(dir.path().join("p1"), PartyId::P1).expect("reopen");
    assert!(s1.tables().is_empty());
    // It recovers its report from disk to redo the cross-check.
    let recovered = s1.staged(&upload_id("crash")).expect("staged");
    assert_eq!(recovered, reports[1]);
    let agreed = combine([&reports[0], &recovered, &reports[2]]).expect("cross-check");
    let infos: Vec<_> = [&s0, &s1, &s2]
        .iter()
        .map(|s| s.commit(&agreed, CREATED_AT).expect("commit"))
        .collect();
    assert_eq!(infos[0], infos[1]);
    let read = s1.read_column(&infos[1].handle, "b").expect("read");
    assert!(read == uploads[1].columns[1].1);
}

#[test]
fn an_interrupted_stage_cannot_be_committed_and_is_cleaned_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), PartyId::P2).expect("open");
    let uploads = small("torn", 3);
    store.stage(&uploads[2]).expect("stage");
    // As if the node died after the column files, before the record.
    fs::remove_file(dir.path().join("staging/torn/staged.json")).expect("remove");
    let store = {
        drop(store);
        Store::open(dir.path(), PartyId::P2).expect("reopen")
    };
    assert!(matches!(
        store.commit(&client_agreed(&uploads), CREATED_AT),
        Err(StoreError::UploadIncomplete { ref upload_id, .. }) if upload_id.as_str() == "torn"
    ));
    assert!(matches!(
        store.stage(&uploads[2]),
        Err(StoreError::UploadExists { .. })
    ));
    let removed = store
        .cleanup_staging(HOUR, SystemTime::now() + 2 * HOUR)
        .expect("cleanup");
    assert_eq!(removed, vec![upload_id("torn")]);
    store_one(&store, &uploads, CREATED_AT);
}

#[test]
fn lifecycle_misuse_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), PartyId::P1).expect("open");
    let uploads = small("once", 4);
    let agreed = client_agreed(&uploads);

    assert!(matches!(
        store.commit(&agreed, CREATED_AT),
        Err(StoreError::UnknownUpload { .. })
    ));
    store.stage(&uploads[1]).expect("stage");
    assert!(matches!(
        store.stage(&uploads[1]),
        Err(StoreError::UploadExists { .. })
    ));

    // An agreed upload that is not what this node staged.
    let mut other = agreed.clone();
    other.columns[0].digests[1] = other.columns[0].digests[0];
    assert!(matches!(
        store.commit(&other, CREATED_AT),
        Err(StoreError::NotAsStaged {
            problem: Mismatch::Staged { component: 1, .. },
            ..
        })
    ));
    let mut other = agreed.clone();
    other.rows += 1;
    assert!(matches!(
        store.commit(&other, CREATED_AT),
        Err(StoreError::NotAsStaged {
            problem: Mismatch::Metadata { .. },
            ..
        })
    ));

    let info = store.commit(&agreed, CREATED_AT).expect("commit");
    for result in [
        store.commit(&agreed, CREATED_AT).map(drop),
        store.stage(&uploads[1]).map(drop),
        store.abort(&agreed.upload_id),
    ] {
        assert!(matches!(
            result,
            Err(StoreError::AlreadyCommitted { ref handle, .. }) if *handle == info.handle
        ));
    }

    let aborted = small("aborted", 5);
    store.stage(&aborted[1]).expect("stage");
    store.abort(&aborted[1].upload_id).expect("abort");
    assert!(store.staged_uploads().expect("list").is_empty());
    assert!(matches!(
        store.abort(&aborted[1].upload_id),
        Err(StoreError::UnknownUpload { .. })
    ));
}

#[test]
fn inconsistent_uploads_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), PartyId::P0).expect("open");
    let base = small("bad", 6);

    let mut short = base[0].clone();
    short.rows = 6;
    let mut duplicate = base[0].clone();
    duplicate.columns[1].0 = "a".to_owned();
    let mut inverted = base[0].clone();
    inverted.schema[0].min = 10;
    inverted.schema[0].max = -10;
    let mut none = base[0].clone();
    none.columns.clear();
    let cases = [
        (
            short,
            MetadataProblem::ColumnLength {
                column: "a".into(),
                length: 5,
                rows: 6,
            },
        ),
        (
            duplicate,
            MetadataProblem::DuplicateColumnName { name: "a".into() },
        ),
        (
            inverted,
            MetadataProblem::InvertedRange {
                column: "a".into(),
                min: 10,
                max: -10,
            },
        ),
        (none, MetadataProblem::NoColumns),
    ];
    for (upload, expected) in cases {
        match store.stage(&upload) {
            Err(StoreError::InvalidUpload { problem, .. }) => assert_eq!(problem, expected),
            other => panic!("expected {expected:?}, got {other:?}"),
        }
    }
    // Nothing was staged by the refused uploads.
    assert!(store.staged_uploads().expect("list").is_empty());
}

#[test]
fn cross_check_names_the_disagreeing_component() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trio = Trio::open(dir.path());
    let mut uploads = small("mixed", 7);
    // The client sent party 2 a different component 0 (its `next`) than
    // party 0 (its `own`).
    let (own, next) = uploads[2].columns[1].1.clone().into_components();
    let mut next = next;
    next[3] ^= 1;
    uploads[2].columns[1].1 = triad_ring::Arith::from_components(own, next).expect("lengths");
    let reports: Vec<_> = trio
        .stores
        .iter()
        .zip(&uploads)
        .map(|(s, u)| s.stage(u).expect("stage"))
        .collect();
    match combine([&reports[0], &reports[1], &reports[2]]) {
        Err(StoreError::CrossCheck {
            problem:
                Mismatch::Component {
                    column,
                    component,
                    first,
                    second,
                },
            ..
        }) => {
            assert_eq!(column, "b");
            assert_eq!(component, 0);
            assert_eq!((first, second), (PartyId::P0, PartyId::P2));
        }
        other => panic!("expected a component mismatch, got {other:?}"),
    }
    // Reports out of order, or for different uploads, are refused too.
    assert!(matches!(
        combine([&reports[1], &reports[0], &reports[2]]),
        Err(StoreError::CrossCheck {
            problem: Mismatch::PartyOrder { position: 0, .. },
            ..
        })
    ));
    let mut renamed = reports[2].clone();
    renamed.upload_id = upload_id("other");
    assert!(matches!(
        combine([&reports[0], &reports[1], &renamed]),
        Err(StoreError::CrossCheck {
            problem: Mismatch::UploadId { party: PartyId::P2 },
            ..
        })
    ));
}

#[test]
fn a_data_dir_of_another_version_or_party_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(Store::open(dir.path(), PartyId::P0).expect("create"));
    assert!(matches!(
        Store::open(dir.path(), PartyId::P1),
        Err(StoreError::WrongParty {
            found: 0,
            expected: PartyId::P1,
            ..
        })
    ));
    let marker = dir.path().join("store.json");
    let text = fs::read_to_string(&marker).expect("marker");
    let newer = text.replace(
        &format!("\"format_version\": {STORE_FORMAT_VERSION}"),
        "\"format_version\": 99",
    );
    assert_ne!(text, newer);
    fs::write(&marker, newer).expect("write");
    let error = Store::open(dir.path(), PartyId::P0).expect_err("must refuse");
    assert!(matches!(
        error,
        StoreError::FormatVersion {
            found: 99,
            supported: STORE_FORMAT_VERSION,
            ..
        }
    ));
    assert!(error.to_string().contains("store.json"), "{error}");

    // A directory with someone else's files is not taken over.
    let foreign = tempfile::tempdir().expect("tempdir");
    fs::write(foreign.path().join("notes.txt"), "mine").expect("write");
    assert!(matches!(
        Store::open(foreign.path(), PartyId::P0),
        Err(StoreError::NotAStore { .. })
    ));
}

#[test]
fn unknown_handles_and_columns_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), PartyId::P0).expect("open");
    let info = store_one(&store, &small("named", 8), CREATED_AT);
    let error = store
        .read_column(&info.handle, "nope")
        .expect_err("unknown");
    assert!(matches!(&error, StoreError::UnknownColumn { column, .. } if column == "nope"));
    assert!(error.to_string().contains(&info.handle.to_string()));
    let missing = triad_node::store::Handle::from_bytes([7; 32]);
    let error = store.read_column(&missing, "a").expect_err("unknown");
    assert!(error.to_string().contains(&missing.to_string()));
}

#[test]
fn a_damaged_staging_record_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), PartyId::P0).expect("open");
    let uploads = small("garbled", 9);
    store.stage(&uploads[0]).expect("stage");
    let record = dir.path().join("staging/garbled/staged.json");
    fs::write(&record, b"{ not json").expect("write");
    match store.commit(&client_agreed(&uploads), CREATED_AT) {
        Err(StoreError::Manifest {
            location: Location::Upload(id),
            path,
            problem: ManifestProblem::Json(_),
        }) => {
            assert_eq!(id.as_str(), "garbled");
            assert_eq!(path, record);
        }
        other => panic!("expected a damaged record, got {other:?}"),
    }
}
