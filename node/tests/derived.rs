//! Query inputs and results on the store, without a network: the table
//! source hands the executor exactly the columns it asks for, query
//! results lay out as share columns with a row mask, and derived tables
//! commit, reopen and refuse tampering like uploads.

mod common;

use std::collections::BTreeSet;

use common::{Trio, deal, reconstruct, upload_id};
use triad_exec::{ExecError, SecretColumn, SecretTable, TableSource};
use triad_node::server::query::{
    ReadError, StoreTables, derived_table, share_columns, table_schema,
};
use triad_node::store::{
    ColumnSchema, ComponentKeys, Digest, MASK_COLUMN, ManifestProblem, Store, StoreError,
    TableInfo, Upload, combine, derived_handle, derived_upload_id,
};
use triad_plan::{ColumnInfo, Ty};
use triad_ring::{Arith, PartyId};

const CREATED_AT: u64 = 1_700_000_000;

fn column(name: &str, tag: &str, nullable: bool) -> ColumnSchema {
    ColumnSchema {
        name: name.to_owned(),
        type_tag: tag.to_owned(),
        min: 0,
        max: 1_000_000,
        nullable,
    }
}

/// A table with an int, a nullable int and a two-limb string column,
/// uploaded to three stores; returns each party's table info.
fn upload_mixed(trio: &Trio, id: &str) -> [TableInfo; 3] {
    let columns = [
        ("n", vec![1u64, 2, 3, 4]),
        ("m", vec![10, 0, 30, 0]),
        ("m#valid", vec![1, 0, 1, 0]),
        ("s#0", vec![0x6f6c6c6568, 0x6e, 0, 7]),
        ("s#1", vec![0, 0, 0, 9]),
    ];
    let mut uploads = deal(id, 4, &columns, 5);
    for upload in &mut uploads {
        upload.schema = vec![
            column("n", "int", false),
            column("m", "int", true),
            column("s", "string(16)", false),
        ];
    }
    trio.upload(&uploads, CREATED_AT)
}

fn names(table: &SecretTable) -> Vec<&str> {
    table.columns.iter().map(|c| c.info.name.as_str()).collect()
}

/// Reconstructs the first limb of column `name` from three parties'
/// tables.
fn open(tables: &[SecretTable; 3], name: &str, limb: usize) -> Vec<u64> {
    let shares = [0, 1, 2].map(|i| &tables[i].column(name).expect(name).limbs[limb]);
    reconstruct(shares)
}

#[test]
fn share_columns_follow_the_client_layout() {
    let info = |ty, nullable| ColumnInfo {
        name: "c".into(),
        ty,
        min: 0,
        max: 1,
        nullable,
    };
    assert_eq!(share_columns(&info(Ty::Int, false)), ["c"]);
    assert_eq!(share_columns(&info(Ty::Fixed(2), true)), ["c", "c#valid"]);
    // A string is in limbs even when one limb holds it.
    assert_eq!(share_columns(&info(Ty::String(8), false)), ["c#0"]);
    assert_eq!(
        share_columns(&info(Ty::String(17), true)),
        ["c#0", "c#1", "c#2", "c#valid"]
    );
}

#[test]
fn the_source_loads_only_requested_columns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trio = Trio::open(dir.path());
    let infos = upload_mixed(&trio, "mixed");
    let handle = infos[0].handle.to_string();
    let schema = table_schema(&infos[0]).expect("schema");
    assert_eq!(schema.rows, 4);
    assert_eq!(schema.columns[2].ty, Ty::String(16));

    // The table appears twice in the plan: the first load copies, the
    // second takes, and a third is refused.
    let mut sources: Vec<StoreTables> = (0..3)
        .map(|i| {
            let inputs = vec![
                (handle.clone(), infos[i].clone()),
                (handle.clone(), infos[i].clone()),
            ];
            StoreTables::read(&trio.stores[i], &inputs, &Default::default()).expect("read")
        })
        .collect();
    let want =
        |names: &[&str]| -> BTreeSet<String> { names.iter().map(|n| (*n).to_owned()).collect() };
    let first: Vec<SecretTable> = sources
        .iter_mut()
        .map(|s| s.load(&handle, &want(&["m", "s"])).expect("load"))
        .collect();
    let first: [SecretTable; 3] = first.try_into().expect("three");
    assert_eq!(names(&first[0]), ["m", "s"]);
    assert!(first[0].mask.is_none());
    assert_eq!(first[0].rows, 4);
    let m = first[0].column("m").expect("m");
    assert_eq!(m.limbs.len(), 1);
    assert!(m.valid.is_some());
    assert_eq!(first[0].column("s").expect("s").limbs.len(), 2);
    assert_eq!(open(&first, "m", 0), [10, 0, 30, 0]);
    assert_eq!(open(&first, "s", 0), [0x6f6c6c6568, 0x6e, 0, 7]);
    assert_eq!(open(&first, "s", 1), [0, 0, 0, 9]);
    let valid = [0, 1, 2].map(|i| first[i].column("m").and_then(|c| c.valid.as_ref()));
    assert_eq!(reconstruct(valid.map(Option::unwrap)), [1, 0, 1, 0]);

    let second: Vec<SecretTable> = sources
        .iter_mut()
        .map(|s| s.load(&handle, &want(&["n"])).expect("load"))
        .collect();
    let second: [SecretTable; 3] = second.try_into().expect("three");
    assert_eq!(names(&second[0]), ["n"]);
    assert_eq!(open(&second, "n", 0), [1, 2, 3, 4]);
    assert!(matches!(
        sources[0].load(&handle, &want(&["n"])),
        Err(ExecError::Table { .. })
    ));

    // A column the schema lacks is named.
    let mut source = StoreTables::read(
        &trio.stores[0],
        &[(handle.clone(), infos[0].clone())],
        &Default::default(),
    )
    .expect("read");
    match source.load(&handle, &want(&["zz"])) {
        Err(ExecError::Table { handle: h, reason }) => {
            assert_eq!(h, handle);
            assert!(reason.contains("zz"), "{reason}");
        }
        other => panic!("expected a table error, got {other:?}"),
    }
}

#[test]
fn tables_that_do_not_fit_their_schema_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trio = Trio::open(dir.path());
    // The schema says nullable, but there is no validity column.
    let mut uploads = deal("novalid", 2, &[("a", vec![1, 2])], 3);
    for upload in &mut uploads {
        upload.schema = vec![column("a", "int", true)];
    }
    let infos = trio.upload(&uploads, CREATED_AT);
    let handle = infos[0].handle.to_string();
    match StoreTables::read(
        &trio.stores[0],
        &[(handle.clone(), infos[0].clone())],
        &Default::default(),
    ) {
        Err(ReadError::MissingShareColumn { share_column, .. }) => {
            assert_eq!(share_column, "a#valid")
        }
        other => panic!("expected a missing share column, got {other:?}"),
    }
    // A type tag queries do not know.
    let mut uploads = deal("oldtag", 2, &[("a", vec![1, 2])], 4);
    for upload in &mut uploads {
        upload.schema = vec![column("a", "i64", false)];
    }
    let infos = trio.upload(&uploads, CREATED_AT);
    let error = table_schema(&infos[0]).expect_err("unknown tag");
    assert!(error.contains("\"i64\""), "{error}");
    let handle = infos[0].handle.to_string();
    assert!(matches!(
        StoreTables::read(
            &trio.stores[0],
            &[(handle, infos[0].clone())],
            &Default::default(),
        ),
        Err(ReadError::Schema(_))
    ));
}

/// Party `party`'s share of `values`, dealt with fixed randomness.
fn dealt(values: &[u64], seed: u64) -> [Arith; 3] {
    let x0: Vec<u64> = values.iter().map(|v| v ^ seed).collect();
    let x1: Vec<u64> = values.iter().map(|v| v.rotate_left(7) ^ seed).collect();
    let x2: Vec<u64> = values
        .iter()
        .zip(x0.iter().zip(&x1))
        .map(|(v, (a, b))| v.wrapping_sub(*a).wrapping_sub(*b))
        .collect();
    let parts = [x0, x1, x2];
    [0, 1, 2].map(|i| {
        Arith::from_components(parts[i].clone(), parts[(i + 1) % 3].clone()).expect("lengths")
    })
}

/// A query result as three parties hold it: an int column, a nullable
/// column without a validity (stored as all present), a string column,
/// and a row mask.
fn result_tables(mask: bool) -> [SecretTable; 3] {
    let n = dealt(&[5, 6, 7], 1);
    let s0 = dealt(&[8, 9, 10], 2);
    let m = dealt(&[0, 1, 0], 3);
    [0, 1, 2].map(|i| SecretTable {
        rows: 3,
        columns: vec![
            SecretColumn {
                info: ColumnInfo {
                    name: "n".into(),
                    ty: Ty::Int,
                    min: 0,
                    max: 10,
                    nullable: true,
                },
                limbs: vec![n[i].clone()],
                valid: None,
            },
            SecretColumn {
                info: ColumnInfo {
                    name: "s".into(),
                    ty: Ty::String(4),
                    min: 0,
                    max: i128::from(u32::MAX),
                    nullable: false,
                },
                limbs: vec![s0[i].clone()],
                valid: None,
            },
        ],
        mask: mask.then(|| m[i].clone()),
    })
}

#[test]
fn results_lay_out_as_share_columns_with_a_mask() {
    let tables = result_tables(false);
    let laid: Vec<_> = tables
        .into_iter()
        .zip(PartyId::ALL)
        .map(|(t, p)| derived_table(t, p).expect("layout"))
        .collect();
    let names: Vec<&str> = laid[0].columns.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["n", "n#valid", "s#0", MASK_COLUMN]);
    assert_eq!(laid[0].rows, 3);
    assert_eq!(laid[0].schema[0].type_tag, "int");
    assert!(laid[0].schema[0].nullable);
    assert_eq!(laid[1].schema[1].type_tag, "string(4)");
    // No mask and no validity: public ones.
    for index in [1, 3] {
        let shares = [0, 1, 2].map(|i| &laid[i].columns[index].1);
        assert_eq!(reconstruct(shares), [1, 1, 1]);
    }
    let shares = [0, 1, 2].map(|i| &laid[i].columns[0].1);
    assert_eq!(reconstruct(shares), [5, 6, 7]);

    // A column with the wrong number of limbs is refused.
    let mut bad = result_tables(true);
    bad[0].columns[1].limbs.push(Arith::zeros(3));
    let error = derived_table(bad.into_iter().next().expect("one"), PartyId::P0)
        .expect_err("two limbs for a string(4)");
    assert!(error.contains("\"s\""), "{error}");
}

/// Stages `tables` (a query result) on three stores as the engine does and
/// commits it under `request`.
fn store_result(trio: &Trio, tables: [SecretTable; 3], request: &Digest) -> [TableInfo; 3] {
    let keys = [[1u8; 32], [2u8; 32], [3u8; 32]];
    let reports: Vec<_> = tables
        .into_iter()
        .zip(PartyId::ALL)
        .map(|(table, party)| {
            let laid = derived_table(table, party).expect("layout");
            let upload = Upload {
                upload_id: derived_upload_id(request),
                owner: "00aa".parse().expect("owner"),
                schema: laid.schema,
                rows: laid.rows,
                policy: Default::default(),
                keys: ComponentKeys {
                    own: keys[party.index()],
                    next: keys[party.next().index()],
                },
                columns: laid.columns,
            };
            trio.stores[party.index()].stage(&upload).expect("stage")
        })
        .collect();
    let agreed = combine([&reports[0], &reports[1], &reports[2]]).expect("cross-check");
    [0, 1, 2].map(|i| {
        trio.stores[i]
            .commit_derived(&agreed, request, CREATED_AT)
            .expect("commit")
    })
}

#[test]
fn derived_tables_commit_reopen_and_read_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trio = Trio::open(dir.path());
    let request = Digest::from_bytes([9; 32]);
    let infos = store_result(&trio, result_tables(true), &request);
    let handle = derived_handle(&request);
    for info in &infos {
        assert_eq!(info.handle, handle);
        assert_eq!(info.derived_from, Some(request));
        assert!(info.is_derived());
        assert_eq!(info.upload_id, derived_upload_id(&request));
        // The mask is a share column, not a schema column.
        assert!(info.columns.iter().any(|c| c.name == MASK_COLUMN));
        assert!(info.schema.iter().all(|c| !c.name.starts_with('#')));
    }
    assert_eq!(
        upload_id("query-09090909090909090909090909090909"),
        infos[0].upload_id
    );

    // The source reads it back with its mask.
    let text = handle.to_string();
    let tables: Vec<SecretTable> = (0..3)
        .map(|i| {
            let mut source = StoreTables::read(
                &trio.stores[i],
                &[(text.clone(), infos[i].clone())],
                &Default::default(),
            )
            .expect("read");
            source.load(&text, &["n".to_owned()].into()).expect("load")
        })
        .collect();
    let masks = [0, 1, 2].map(|i| tables[i].mask.as_ref().expect("a mask"));
    assert_eq!(reconstruct(masks), [0, 1, 0]);
    let valid = [0, 1, 2].map(|i| tables[i].columns[0].valid.as_ref().expect("valid"));
    assert_eq!(reconstruct(valid), [1, 1, 1]);

    // Committing the same result again is refused.
    let again = store_result_error(&trio, &request);
    assert!(
        matches!(again, StoreError::AlreadyCommitted { .. }),
        "{again:?}"
    );

    // Reopened, the table is there; with its request digest edited, the
    // manifest no longer matches its handle.
    let root = dir.path().to_owned();
    drop(trio);
    let store = Store::open(root.join("p1"), PartyId::P1).expect("reopen");
    assert_eq!(
        store.table(&handle).expect("table").derived_from,
        Some(request)
    );
    drop(store);
    let manifest = root
        .join("p1/tables")
        .join(handle.to_string())
        .join("manifest.json");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    assert!(text.contains(&request.to_string()));
    let edited = text.replace(
        &request.to_string(),
        &Digest::from_bytes([8; 32]).to_string(),
    );
    std::fs::write(&manifest, edited).expect("write");
    match Store::open(root.join("p1"), PartyId::P1) {
        Err(StoreError::Manifest {
            problem: ManifestProblem::HandleMismatch { .. },
            ..
        }) => {}
        other => panic!("expected a handle mismatch, got {other:?}"),
    }
}

fn store_result_error(trio: &Trio, request: &Digest) -> StoreError {
    let laid = derived_table(
        result_tables(false).into_iter().next().expect("one"),
        PartyId::P0,
    )
    .expect("layout");
    let upload = Upload {
        upload_id: derived_upload_id(request),
        owner: "00aa".parse().expect("owner"),
        schema: laid.schema,
        rows: laid.rows,
        policy: Default::default(),
        keys: ComponentKeys {
            own: [1; 32],
            next: [2; 32],
        },
        columns: laid.columns,
    };
    trio.stores[0]
        .stage(&upload)
        .expect_err("already committed")
}

#[test]
fn uploads_keep_their_manifest_format() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trio = Trio::open(dir.path());
    let infos = trio.upload(&deal("plain", 2, &[("a", vec![1, 2])], 8), CREATED_AT);
    assert!(!infos[0].is_derived());
    let manifest = dir
        .path()
        .join("p0/tables")
        .join(infos[0].handle.to_string())
        .join("manifest.json");
    let text = std::fs::read_to_string(manifest).expect("manifest");
    assert!(!text.contains("derived_from"), "{text}");
}
