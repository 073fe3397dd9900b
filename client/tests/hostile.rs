//! The client's decoders of files and of the words nodes reveal, on hostile
//! input: arbitrary bytes and edited valid files (which reach much further
//! than random bytes) are an error or a value, never a panic; what parses
//! reads back as itself; an edited recording or approved script never loads
//! as another script; answers of any words decode or are refused.

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use triad_auth::{
    Approval, ApprovedScript, DeploymentId, SCRIPT_VERSION, Script, ScriptStep, UserKey,
};
use triad_client::ConnectionFile;
use triad_client::answer::{decode_aggregation, decode_group_by};
use triad_client::schema::Schema;
use triad_client::script::{
    ApprovedFile, RECORDING_FORMAT, Recording, StepView, render_plan, write_approved,
};
use triad_plan::{Agg, Aggregation, ColumnInfo, Frame, GroupForm, MAX_SCALE, Output, Query, Ty};

/// One edit of a file's bytes.
#[path = "../../testkit/mutate.rs"]
mod mutate;
use mutate::{apply, edits};

/// `bytes` as the file `name` in a fresh directory.
fn file_in_dir(name: &str, bytes: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("write");
    (dir, path)
}

const CONNECTION: &str = r#"
deployment = "3b1f0c5d8e2a4f6b9c7d1e0f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d"
key = "alice.key"

[[node]]
index = 1
address = "127.0.0.1:7101"
certificate = "node1.crt"

[[node]]
index = 0
address = "[::1]:7100"
certificate = "/etc/triad/node0.crt"

[[node]]
index = 2
address = "10.0.0.3:7102"
certificate = "node2.crt"
"#;

const SCHEMA: &str = r#"
[[column]]
name = "id"
type = "int"
min = -9223372036854775808
max = 9223372036854775807

[[column]]
name = "year"
type = "int"
min = -5
max = 2030
nullable = true

[[column]]
name = "smokes"
type = "bool"

[[column]]
name = "visit"
type = "date"
min = "1900-01-01"
max = "2024-12-31"

[[column]]
name = "dose"
type = "fixed"
scale = 2
min = "-100.00"
max = 100

[[column]]
name = "article"
type = "string"
width = 12
nullable = true
"#;

/// A connection file that loads names nodes 0, 1 and 2 once each.
fn connection_loads_whole(bytes: &[u8]) -> Result<(), TestCaseError> {
    let (_dir, path) = file_in_dir("triad.conn", bytes);
    if let Ok(file) = ConnectionFile::load(&path) {
        let indices: Vec<usize> = file.nodes.iter().map(|n| n.index).collect();
        prop_assert_eq!(indices, vec![0, 1, 2]);
    }
    Ok(())
}

/// A schema that parses must write out and parse to itself.
fn schema_round_trips(bytes: &[u8]) -> Result<(), TestCaseError> {
    let text = String::from_utf8_lossy(bytes);
    if let Ok(schema) = Schema::from_toml_str(&text, "hostile.toml") {
        let again = Schema::from_toml_str(&schema.to_toml_string(), "again.toml")
            .map_err(|e| TestCaseError::fail(format!("re-parsing: {e}")))?;
        prop_assert_eq!(again, schema);
    }
    Ok(())
}

/// A recorded and approved one-step script, as files.
struct Recorded {
    script: Script,
    approved: ApprovedScript,
    recording: Vec<u8>,
    approved_file: Vec<u8>,
}

fn recorded() -> Recorded {
    let analyst = UserKey::generate().expect("key");
    let approver = UserKey::generate().expect("key");
    let deployment = DeploymentId::from_bytes([4; 32]);
    let handle = "ab".repeat(32);
    let plan = Query::new(
        vec![Frame::Table {
            handle: handle.clone(),
        }],
        Output::Aggregate {
            frame: 0,
            aggregation: Aggregation {
                agg: Agg::Count,
                column: None,
            },
            threshold: Some(5),
        },
    );
    let script = Script {
        version: SCRIPT_VERSION,
        deployment,
        analyst: analyst.public(),
        name: "count".into(),
        steps: vec![ScriptStep {
            plan: plan.encode(),
            allow_errors: false,
        }],
    };
    let recording = Recording {
        format: RECORDING_FORMAT.into(),
        name: script.name.clone(),
        deployment: deployment.to_string(),
        analyst: analyst.public().to_string(),
        digest: script.digest().to_string(),
        script: hex::encode(script.encode()),
        steps: vec![StepView {
            step: 0,
            allow_errors: false,
            inputs: vec![handle.clone()],
            plan: render_plan(&plan),
            dummy_output: serde_json::json!({"count": 12}),
        }],
    };
    let approval = Approval {
        version: SCRIPT_VERSION,
        script: script.digest(),
        analyst: analyst.public(),
        handles: vec![handle],
        deployment,
        expires_at: 2_000_000_000,
        approver: approver.public(),
    }
    .sign(&approver)
    .expect("approver");
    let approved = ApprovedScript {
        script: script.clone(),
        approvals: vec![approval],
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("count.approved");
    write_approved(&path, recording.clone(), &approved).expect("write");
    Recorded {
        script,
        approved,
        recording: serde_json::to_vec_pretty(&recording).expect("json"),
        approved_file: std::fs::read(&path).expect("read"),
    }
}

fn recordings() -> &'static Recorded {
    static RECORDED: std::sync::OnceLock<Recorded> = std::sync::OnceLock::new();
    RECORDED.get_or_init(recorded)
}

/// What the script files load as: the script they were made from, or an
/// error.
fn script_files_load_as(
    recording: &[u8],
    approved: &[u8],
    expected: Option<&Recorded>,
) -> Result<(), TestCaseError> {
    let (_dir, path) = file_in_dir("count.recording", recording);
    if let Ok((_, script)) = Recording::load(&path) {
        let expected = expected.ok_or_else(|| TestCaseError::fail("random bytes loaded"))?;
        prop_assert_eq!(&script, &expected.script);
    }
    let (_dir, path) = file_in_dir("count.approved", approved);
    if let Ok((_, loaded, bytes)) = ApprovedFile::load(&path) {
        let expected = expected.ok_or_else(|| TestCaseError::fail("random bytes loaded"))?;
        prop_assert_eq!(&loaded, &expected.approved);
        prop_assert_eq!(bytes, expected.approved.encode());
    }
    Ok(())
}

/// Column descriptions of every type the plan checker hands out.
fn column() -> impl Strategy<Value = ColumnInfo> {
    let ty = prop_oneof![
        Just(Ty::Int),
        Just(Ty::Bool),
        Just(Ty::Date),
        (0..=MAX_SCALE).prop_map(Ty::Fixed),
        (1u32..64).prop_map(Ty::String),
    ];
    (ty, any::<i64>(), any::<i64>(), any::<bool>()).prop_map(|(ty, a, b, nullable)| ColumnInfo {
        name: "c".into(),
        ty,
        min: i128::from(a.min(b)),
        max: i128::from(a.max(b)),
        nullable,
    })
}

fn aggregation() -> impl Strategy<Value = (Aggregation, Option<ColumnInfo>)> {
    let agg = prop::sample::select(vec![
        Agg::Sum,
        Agg::Count,
        Agg::Mean,
        Agg::Var,
        Agg::Min,
        Agg::Max,
    ]);
    (agg, prop::option::of(column())).prop_map(|(agg, column)| {
        (
            Aggregation {
                agg,
                column: column.as_ref().map(|c| c.name.clone()),
            },
            column,
        )
    })
}

/// Words as the nodes reveal them: extreme values are the likeliest to
/// break arithmetic.
fn word() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        prop::sample::select(vec![
            0,
            1,
            2,
            u64::MAX,
            i64::MAX as u64,
            i64::MIN as u64,
            (i64::MIN + 1) as u64,
        ]),
    ]
}

/// Runs `f` on a thread with a quarter of a tokio worker's stack: a stack
/// overflow aborts the test process.
fn on_small_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .stack_size(512 << 10)
            .spawn_scoped(scope, f)
            .expect("spawn")
            .join()
            .expect("no panic")
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn connection_files_of_arbitrary_bytes_are_refused(
        bytes in prop::collection::vec(any::<u8>(), 0..2000),
    ) {
        connection_loads_whole(&bytes)?;
    }

    #[test]
    fn edited_connection_files_load_whole_or_are_refused(edits in edits()) {
        let mut bytes = CONNECTION.as_bytes().to_vec();
        apply(&mut bytes, &edits);
        connection_loads_whole(&bytes)?;
    }

    #[test]
    fn schemas_of_arbitrary_bytes_parse_to_themselves_or_not_at_all(
        bytes in prop::collection::vec(any::<u8>(), 0..2000),
    ) {
        schema_round_trips(&bytes)?;
    }

    #[test]
    fn edited_schemas_parse_to_themselves_or_not_at_all(edits in edits()) {
        let mut bytes = SCHEMA.as_bytes().to_vec();
        apply(&mut bytes, &edits);
        schema_round_trips(&bytes)?;
    }

    #[test]
    fn script_files_of_arbitrary_bytes_are_refused(
        bytes in prop::collection::vec(any::<u8>(), 0..2000),
    ) {
        script_files_load_as(&bytes, &bytes, None)?;
    }

    #[test]
    fn edited_script_files_load_only_as_the_recorded_script(
        recording_edits in edits(),
        approved_edits in edits(),
    ) {
        let recorded = recordings();
        let mut recording = recorded.recording.clone();
        let mut approved = recorded.approved_file.clone();
        apply(&mut recording, &recording_edits);
        apply(&mut approved, &approved_edits);
        script_files_load_as(&recording, &approved, Some(recorded))?;
    }

    #[test]
    fn any_words_decode_as_an_aggregate_or_are_refused(
        (aggregation, column) in aggregation(),
        words in prop::collection::vec(word(), 0..5),
    ) {
        let decoded = decode_aggregation(&aggregation, column.as_ref(), &words);
        prop_assert_eq!(decoded.is_ok(), words.len() == aggregation.agg.words());
    }

    #[test]
    fn any_words_decode_as_groups_or_are_refused(
        keys in prop::collection::vec(column(), 0..3),
        aggregations in prop::collection::vec(aggregation(), 0..3),
        combinations in prop::option::of(prop::collection::vec(
            prop::collection::vec(any::<i64>(), 0..3),
            0..6,
        )),
        passed in prop::collection::vec(any::<bool>(), 0..6),
        words in prop::collection::vec(word(), 0..24),
    ) {
        let form = match combinations {
            Some(combinations) => GroupForm::Domain { combinations },
            None => GroupForm::Sorted,
        };
        if let Ok(groups) = decode_group_by(&keys, &aggregations, &form, &passed, &words) {
            prop_assert_eq!(groups.len(), passed.iter().filter(|p| **p).count());
            for group in groups {
                prop_assert_eq!(group.values.len(), aggregations.len());
            }
        }
    }
}

#[test]
fn the_valid_files_load() {
    let (_dir, path) = file_in_dir("triad.conn", CONNECTION.as_bytes());
    ConnectionFile::load(&path).expect("connection");
    Schema::from_toml_str(SCHEMA, "schema.toml").expect("schema");
    let recorded = recordings();
    let (_dir, path) = file_in_dir("count.recording", &recorded.recording);
    Recording::load(&path).expect("recording");
    let (_dir, path) = file_in_dir("count.approved", &recorded.approved_file);
    ApprovedFile::load(&path).expect("approved");
}

/// TOML and JSON nested far deeper than any file needs: an error, on a
/// small stack.
#[test]
fn deeply_nested_files_are_refused_on_a_small_stack() {
    let depth = 100_000;
    let toml = format!("deployment = {}", "[".repeat(depth));
    let inline = format!("a = {}", "{b = ".repeat(depth));
    let json = "[".repeat(depth);
    on_small_stack(|| {
        for text in [&toml, &inline] {
            assert!(Schema::from_toml_str(text, "deep.toml").is_err());
            let (_dir, path) = file_in_dir("deep.conn", text.as_bytes());
            assert!(ConnectionFile::load(&path).is_err());
        }
        let (_dir, path) = file_in_dir("deep.recording", json.as_bytes());
        assert!(Recording::load(&path).is_err());
        assert!(ApprovedFile::load(&path).is_err());
    });
}
