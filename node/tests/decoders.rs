//! The decoders of bytes from disk and from the network never panic, on
//! arbitrary bytes or on edited valid encodings (which reach much deeper);
//! what they accept reads back as itself; a column file with any byte
//! changed never decodes, and an edited audit log never verifies as
//! something it was not; forged length prefixes are refused before
//! allocation.

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use triad_auth::{
    DeploymentId, Digest as AuthDigest, Mode, Nonce, REQUEST_VERSION, Request, UserKey,
    X25519Public,
};
use triad_node::api::{
    self, ApiError, Body, CallHeader, ComponentSource, ErrorKind, QueryStats, Reply, ResultShares,
    UploadBody, UploadPayload,
};
use triad_node::audit::{self, AuditEntry, AuditLog, Head, SignedHead};
use triad_node::config::{Config, ConfigFile};
use triad_node::jobs::{
    self, ActionView, FailReason, JobStatus, JobStep, JobStore, JobSubmission, JobView,
    Level as JobLevel, OutputView,
};
use triad_node::pending::Pending;
use triad_node::store::{
    AgreedUpload, ColumnInfo, ColumnSchema, Digest, Handle, StagedColumn, StagedUpload, UploadId,
    decode_column, decode_manifest, encode_column, handle_for,
};
use triad_plan::{Agg, Aggregation, BinOp, Expr, Frame, Output, Query};
use triad_ring::{Arith, PartyId};

fn party() -> impl Strategy<Value = PartyId> {
    (0usize..3).prop_map(|i| PartyId::from_index(i).expect("0..3"))
}

fn shares() -> impl Strategy<Value = Arith> {
    (0usize..40).prop_flat_map(|n| {
        (
            prop::collection::vec(any::<u64>(), n),
            prop::collection::vec(any::<u64>(), n),
        )
            .prop_map(|(own, next)| Arith::from_components(own, next).expect("equal lengths"))
    })
}

/// A valid manifest's bytes, written the way the store writes them.
fn manifest_bytes(rows: u64, min: i128, name: &str) -> Vec<u8> {
    let digest = |b: &[u8]| Digest::from_bytes(*blake3::hash(b).as_bytes());
    let agreed = AgreedUpload {
        upload_id: "u".parse().expect("id"),
        owner: "0a".parse().expect("owner"),
        rows,
        schema: vec![ColumnSchema {
            name: name.to_owned(),
            type_tag: "i64".into(),
            min,
            max: i128::MAX,
            nullable: true,
        }],
        columns: vec![ColumnInfo {
            name: name.to_owned(),
            digests: [digest(b"0"), digest(b"1"), digest(b"2")],
        }],
        policy: Default::default(),
    };
    let handle = handle_for(&agreed);
    // The manifest's layout, assembled from serialised parts (a
    // serde_json::Value cannot hold the i128 range bounds).
    let text = format!(
        r#"{{"format_version": 1, "party": 0, "handle": {}, "upload_id": "u", "owner": "0a",
            "created_at": 5, "rows": {rows}, "schema": {},
            "columns": [{{"name": {}, "digests": {}, "checksum": {}}}]}}"#,
        json(&handle),
        json(&agreed.schema),
        json(&name),
        json(&agreed.columns[0].digests),
        json(&digest(b"c")),
    );
    text.into_bytes()
}

fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("json")
}

proptest! {
    #[test]
    fn column_decoder_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300), p in party()) {
        let _ = decode_column(&bytes, p);
    }

    #[test]
    fn column_decoder_survives_lying_headers(
        shares in shares(),
        p in party(),
        count in any::<u64>(),
        cut in 0usize..2000,
    ) {
        let mut bytes = encode_column(p, &shares);
        bytes[16..24].copy_from_slice(&count.to_le_bytes());
        bytes.truncate(cut);
        prop_assert!(decode_column(&bytes, p).is_err() || count == shares.len() as u64);
    }

    #[test]
    fn any_changed_byte_is_caught(
        shares in shares(),
        p in party(),
        at in any::<prop::sample::Index>(),
        mask in 1u8..,
    ) {
        let mut bytes = encode_column(p, &shares);
        prop_assert_eq!(decode_column(&bytes, p).ok(), Some(shares));
        let at = at.index(bytes.len());
        bytes[at] ^= mask;
        prop_assert!(decode_column(&bytes, p).is_err());
    }

    #[test]
    fn manifest_decoder_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = decode_manifest(&bytes);
    }

    #[test]
    fn manifest_decoder_survives_mutations(
        rows in any::<u64>(),
        min in any::<i128>(),
        name in "\\PC{1,12}",
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let bytes = manifest_bytes(rows, min, &name);
        prop_assert!(decode_manifest(&bytes).is_ok());
        let mut bad = bytes.clone();
        for (at, byte) in edits {
            let at = at.index(bad.len());
            bad[at] = byte;
        }
        let _ = decode_manifest(&bad);
    }

    #[test]
    fn staged_report_decoder_never_panics(text in "\\PC{0,200}") {
        // Reports come from peers; decoding them must not panic either.
        let _ = serde_json::from_str::<StagedUpload>(&text);
    }
}

// ---------------------------------------------------------------------------
// Messages from the network: what clients send a node (call headers), what
// a node answers (replies, read by clients), and what nodes send each other
// over the mesh, all through `api::decode`. Whatever decodes must survive
// re-encoding unchanged, so no two nodes can read one message differently.

/// One edit of an encoding: what a fuzzer does to a valid input to reach
/// past its first field.
#[path = "../../testkit/mutate.rs"]
mod mutate;
use mutate::{apply, edits};

/// Decodes `bytes` as a `T` and says whether that worked; a value that
/// decodes must re-encode to bytes that decode to the same encoding again.
fn decodes_stably<T>(bytes: &[u8]) -> Result<bool, TestCaseError>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let Ok(value) = api::decode::<T>(bytes) else {
        return Ok(false);
    };
    let encoded = api::encode(&value);
    let again: T =
        api::decode(&encoded).map_err(|e| TestCaseError::fail(format!("re-decoding: {e}")))?;
    prop_assert_eq!(api::encode(&again), encoded);
    Ok(true)
}

type Decoder = fn(&[u8]) -> Result<bool, TestCaseError>;

/// Every type decoded from the network with `api::decode`: call headers
/// and their parts (from clients), replies (from nodes, read by clients),
/// and the public types nodes exchange over the mesh (roles digests,
/// handle lists, staging reports, signed audit heads, statuses, keys).
const NETWORK_DECODERS: &[(&str, Decoder)] = &[
    ("CallHeader", decodes_stably::<CallHeader>),
    ("Body", decodes_stably::<Body>),
    ("UploadPayload", decodes_stably::<UploadPayload>),
    ("JobSubmission", decodes_stably::<JobSubmission>),
    ("Reply", decodes_stably::<Reply>),
    ("ResultShares", decodes_stably::<ResultShares>),
    ("roles digest", decodes_stably::<(AuthDigest, u64)>),
    ("handles", decodes_stably::<Vec<Handle>>),
    (
        "staging report",
        decodes_stably::<Result<StagedUpload, ApiError>>,
    ),
    ("signed head", decodes_stably::<SignedHead>),
    ("status", decodes_stably::<Result<(), String>>),
    ("digest status", decodes_stably::<Result<[u8; 32], String>>),
    ("key", decodes_stably::<[u8; 32]>),
];

fn user_key() -> &'static UserKey {
    static KEY: std::sync::OnceLock<UserKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| UserKey::generate().expect("OS generator"))
}

fn signed_request(body: &Body) -> Vec<u8> {
    let key = user_key();
    Request {
        version: REQUEST_VERSION,
        deployment: DeploymentId::from_bytes([3; 32]),
        mode: Mode::Design,
        body: body.digest(),
        approval: None,
        nonce: Nonce::from_bytes([1; 16]),
        issued_at: 1_700_000_000,
        result_key: X25519Public::from_bytes([9; 32]),
        signer: key.public(),
    }
    .sign(key)
    .expect("signer")
    .to_bytes()
}

fn plan() -> Query {
    Query::new(
        vec![
            Frame::Table {
                handle: "ab".repeat(32),
            },
            Frame::Filter {
                input: 0,
                predicate: Expr::Binary {
                    op: BinOp::Lt,
                    left: Box::new(Expr::Column("age".into())),
                    right: Box::new(Expr::Literal {
                        value: 40,
                        scale: 0,
                    }),
                },
                threshold: Some(5),
            },
        ],
        Output::GroupBy {
            frame: 1,
            keys: vec!["zip".into()],
            aggregations: vec![Aggregation {
                agg: Agg::Mean,
                column: Some("cost".into()),
            }],
            threshold: None,
        },
    )
}

fn header(body: Body, payload: Option<UploadPayload>) -> CallHeader {
    CallHeader {
        api_version: api::API_VERSION,
        request: signed_request(&body),
        body,
        payload,
        approved: Some(vec![7; 20]),
        job: Some(JobStep {
            job: "0123456789abcdef".into(),
            action: "clean".into(),
        }),
    }
}

fn signed_head(node: u8) -> SignedHead {
    SignedHead::sign(
        Head {
            deployment: DeploymentId::from_bytes([3; 32]),
            node,
            seq: 12,
            hash: [node; 32],
        },
        user_key(),
    )
}

fn staged_report() -> StagedUpload {
    StagedUpload {
        upload_id: "u-1".parse().expect("id"),
        party: PartyId::P1,
        owner: "0a1b".parse().expect("owner"),
        rows: 300,
        schema: vec![ColumnSchema {
            name: "age".into(),
            type_tag: "i64".into(),
            min: -5,
            max: 1 << 70,
            nullable: true,
        }],
        columns: vec![StagedColumn {
            name: "age".into(),
            own: Digest::from_bytes([1; 32]),
            next: Digest::from_bytes([2; 32]),
        }],
        policy: Default::default(),
    }
}

/// Valid encodings of each network message kind, with their decoder.
fn network_messages() -> Vec<(&'static str, Vec<u8>, Decoder)> {
    let handle = Handle::from_bytes([4; 32]);
    let upload = UploadBody {
        upload_id: "u-2".parse().expect("id"),
        schema: staged_report().schema,
        rows: 10,
        columns: vec!["age".into()],
        dummy_for: Some(handle),
        approvers: vec!["cd".repeat(32)],
    };
    let payload = UploadPayload {
        own_key: [5; 32],
        next_key: [6; 32],
        columns: vec![(ComponentSource::Seed([8; 32]), ComponentSource::Explicit)],
    };
    let submission = JobSubmission {
        workspace: "ws".into(),
        pipeline: "version: 1\nactions: {}\n".into(),
        scripts: vec![("a.approved".into(), vec![1, 2, 3])],
        actions: vec!["clean".into()],
        force_run_dependencies: true,
    };
    let stats = QueryStats {
        seconds: 1.5,
        bytes_sent: 1 << 20,
        rounds: 17,
    };
    vec![
        (
            "query header",
            api::encode(&header(Body::Query { plan: plan() }, None)),
            decodes_stably::<CallHeader>,
        ),
        (
            "upload header",
            api::encode(&header(Body::Upload(upload), Some(payload))),
            decodes_stably::<CallHeader>,
        ),
        (
            "job header",
            api::encode(&header(Body::SubmitJob(submission), None)),
            decodes_stably::<CallHeader>,
        ),
        (
            "answer",
            api::encode(&Reply::Answer {
                passed: vec![true, false, true],
                rule: Some("redact at most 7".into()),
                ephemeral_public: [2; 32],
                ciphertext: vec![9; 40],
                stats,
                audit: vec![signed_head(0), signed_head(1), signed_head(2)],
            }),
            decodes_stably::<Reply>,
        ),
        (
            "stored",
            api::encode(&Reply::Stored {
                handle,
                rows: 3,
                stats,
                audit: vec![signed_head(1)],
            }),
            decodes_stably::<Reply>,
        ),
        (
            "refusal",
            api::encode(&Reply::Refused(ApiError::new(
                ErrorKind::ThresholdNotMet,
                "too few rows",
            ))),
            decodes_stably::<Reply>,
        ),
        (
            "result shares",
            api::encode(&ResultShares {
                own: vec![1, u64::MAX, 3],
                next: vec![4, 5, 1 << 40],
            }),
            decodes_stably::<ResultShares>,
        ),
        (
            "roles digest",
            api::encode(&(AuthDigest::of(b"roles"), 9u64)),
            decodes_stably::<(AuthDigest, u64)>,
        ),
        (
            "handles",
            api::encode(&vec![handle, Handle::from_bytes([5; 32])]),
            decodes_stably::<Vec<Handle>>,
        ),
        (
            "staging report",
            api::encode(&Ok::<_, ApiError>(staged_report())),
            decodes_stably::<Result<StagedUpload, ApiError>>,
        ),
        (
            "signed head",
            api::encode(&signed_head(2)),
            decodes_stably::<SignedHead>,
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn network_messages_from_arbitrary_bytes_decode_stably_or_not_at_all(
        bytes in prop::collection::vec(any::<u8>(), 0..2000),
    ) {
        for (_, decode) in NETWORK_DECODERS {
            decode(&bytes)?;
        }
    }

    #[test]
    fn edited_network_messages_decode_stably_or_not_at_all(
        which in any::<prop::sample::Index>(),
        edits in edits(),
    ) {
        let messages = network_messages();
        let (what, mut bytes, decode) = messages[which.index(messages.len())].clone();
        prop_assert!(decode(&bytes)?, "{} does not decode", what);
        apply(&mut bytes, &edits);
        decode(&bytes)?;
    }

    #[test]
    fn an_edited_peer_head_never_verifies_as_another(edits in edits()) {
        let signed = signed_head(1);
        let mut bytes = api::encode(&signed);
        apply(&mut bytes, &edits);
        if let Ok(decoded) = api::decode::<SignedHead>(&bytes)
            && decoded != signed
        {
            prop_assert!(decoded.verify(&user_key().public()).is_err());
        }
    }

    #[test]
    fn store_ids_from_arbitrary_text(text in "\\PC{0,80}") {
        if let Ok(handle) = text.parse::<Handle>() {
            prop_assert_eq!(handle.to_string(), text.clone());
        }
        if let Ok(id) = text.parse::<UploadId>() {
            prop_assert_eq!(id.as_str(), text.as_str());
        }
        if let Ok(owner) = text.parse::<triad_node::store::OwnerKey>() {
            prop_assert_eq!(owner.as_str(), text.as_str());
        }
        let _ = text.parse::<Digest>();
    }
}

/// A length prefix of 2^60 where a call header's signed request starts, or
/// a reply's table list: refused at once, nothing of that size allocated.
#[test]
fn forged_length_prefixes_are_refused_before_allocation() {
    let huge = |prefix: &[u8]| {
        // bincode's varint for a u64: 253, then eight bytes.
        let mut bytes = prefix.to_vec();
        bytes.push(253);
        bytes.extend_from_slice(&(1u64 << 60).to_le_bytes());
        bytes.extend_from_slice(&[0; 64]);
        bytes
    };
    let version = u8::try_from(api::API_VERSION).expect("a one-byte varint");
    let started = std::time::Instant::now();
    // Reply::Tables is variant 1.
    let refused = [
        (
            "call header",
            api::decode::<CallHeader>(&huge(&[version])).is_err(),
        ),
        ("reply", api::decode::<Reply>(&huge(&[1])).is_err()),
        (
            "result shares",
            api::decode::<ResultShares>(&huge(&[])).is_err(),
        ),
        ("handles", api::decode::<Vec<Handle>>(&huge(&[])).is_err()),
    ];
    for (what, refused) in refused {
        assert!(refused, "{what}");
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}

// ---------------------------------------------------------------------------
// Files a node reads back: its configuration, audit log, job records and
// the record of unconfirmed commits.

fn example_config() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/example-node.toml"
    ))
    .expect("the example configuration")
}

/// `bytes` as the file `name` in a fresh directory.
fn file_in_dir(name: &str, bytes: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("write");
    (dir, path)
}

/// A configuration that parses must write back and parse to itself.
fn config_round_trips(bytes: &[u8]) -> Result<(), TestCaseError> {
    let (dir, path) = file_in_dir("triad-node.toml", bytes);
    if let Ok(file) = ConfigFile::read(&path) {
        let again = dir.path().join("again.toml");
        Config::save(&file, &again).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let reread = ConfigFile::read(&again).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(reread, file);
    }
    Ok(())
}

fn audit_entry(n: u64) -> AuditEntry {
    AuditEntry {
        time: 1_700_000_000 + n,
        user: "ab".repeat(32),
        request: format!("{n:064x}"),
        kind: "query".into(),
        mode: "design".into(),
        script: (n % 2 == 1).then(|| "cd".repeat(32)),
        step: Some(n as u32),
        plan: Some("ef".repeat(32)),
        revealed: format!("{n} sealed bytes"),
        status: "ok".into(),
    }
}

/// An honest log of a few entries: its bytes and the head after each
/// prefix (the empty log first).
fn honest_log() -> (Vec<u8>, Vec<(u64, [u8; 32])>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut log =
        AuditLog::open(dir.path(), DeploymentId::from_bytes([3; 32]), 1).expect("a new log");
    let mut heads = vec![(0, [0; 32])];
    for n in 0..4 {
        let head = log.append(audit_entry(n)).expect("append");
        heads.push((head.seq, head.hash));
    }
    let bytes = std::fs::read(dir.path().join(audit::LOG_FILE)).expect("the log");
    (bytes, heads)
}

fn job_view() -> JobView {
    JobView {
        id: "0123456789abcdef".into(),
        workspace: "ws".into(),
        requester: "ab".repeat(32),
        requester_name: "alice".into(),
        pipeline: "version: 1\n".into(),
        pipeline_digest: "cd".repeat(32),
        requested: vec!["sums".into()],
        force_run_dependencies: false,
        status: JobStatus::Running,
        reason: None,
        created_at: 1_700_000_000,
        started_at: Some(1_700_000_001),
        finished_at: None,
        actions: vec![ActionView {
            name: "sums".into(),
            needs: vec!["merge".into()],
            script: "ef".repeat(32),
            digest: "01".repeat(32),
            status: JobStatus::Failed,
            reason: Some(FailReason::DependencyFailed),
            message: Some("merge failed".into()),
            steps: 3,
            steps_done: 1,
            started_at: Some(1_700_000_002),
            finished_at: Some(1_700_000_003),
            outputs: vec![OutputView {
                name: "sums".into(),
                level: JobLevel::ModeratelySensitive,
                handle: Some(Handle::from_bytes([7; 32])),
                sealed: vec!["23".repeat(32)],
                rule: Some("round to 5".into()),
            }],
            stored: [(1, Handle::from_bytes([8; 32]))].into(),
            inputs: [("merged".to_owned(), "merge.merged".to_owned())].into(),
        }],
    }
}

/// A job record that reads must be the same record when written again.
fn job_record_round_trips(bytes: &[u8]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = JobStore::open(dir.path()).expect("job store");
    let id = "0123456789abcdef";
    std::fs::write(dir.path().join(format!("{id}.json")), bytes).expect("write");
    if let Ok(view) = store.get(id) {
        let json = serde_json::to_vec(&view).expect("json");
        prop_assert_eq!(serde_json::from_slice::<JobView>(&json).ok(), Some(view));
    }
    let _ = store.list();
    Ok(())
}

proptest! {
    // Each case touches the file system: fewer of them.
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn configuration_files_of_arbitrary_bytes_parse_to_themselves_or_not_at_all(
        bytes in prop::collection::vec(any::<u8>(), 0..2000),
    ) {
        config_round_trips(&bytes)?;
    }

    #[test]
    fn edited_configuration_files_parse_to_themselves_or_not_at_all(edits in edits()) {
        let mut bytes = example_config();
        apply(&mut bytes, &edits);
        config_round_trips(&bytes)?;
    }

    #[test]
    fn audit_logs_of_arbitrary_bytes_are_refused(
        bytes in prop::collection::vec(any::<u8>(), 0..2000),
        peer_heads in any::<bool>(),
    ) {
        let name = if peer_heads { audit::PEER_HEADS_FILE } else { audit::LOG_FILE };
        let (dir, _) = file_in_dir(name, &bytes);
        if !peer_heads && let Ok(report) = audit::verify_chain(dir.path()) {
            // Only a log of no complete line verifies: random bytes are
            // never a hash chain.
            prop_assert_eq!(report.entries, 0);
        }
        let _ = AuditLog::open(dir.path(), DeploymentId::from_bytes([3; 32]), 0);
    }

    #[test]
    fn an_edited_audit_log_verifies_only_as_a_prefix_of_the_honest_one(edits in edits()) {
        let (mut bytes, heads) = honest_log();
        apply(&mut bytes, &edits);
        let (dir, _) = file_in_dir(audit::LOG_FILE, &bytes);
        if let Ok(report) = audit::verify_chain(dir.path()) {
            prop_assert!(
                heads.contains(&(report.entries, report.hash)),
                "verified as {} entries that the honest log never had",
                report.entries
            );
        }
        if let Ok(log) = AuditLog::open(dir.path(), DeploymentId::from_bytes([3; 32]), 1) {
            let head = log.head();
            prop_assert!(heads.contains(&(head.seq, head.hash)));
        }
    }

    #[test]
    fn job_records_of_arbitrary_bytes_read_to_themselves_or_not_at_all(
        bytes in prop::collection::vec(any::<u8>(), 0..2000),
    ) {
        job_record_round_trips(&bytes)?;
    }

    #[test]
    fn edited_job_records_read_to_themselves_or_not_at_all(edits in edits()) {
        let mut bytes = serde_json::to_vec_pretty(&job_view()).expect("json");
        apply(&mut bytes, &edits);
        job_record_round_trips(&bytes)?;
    }

    #[test]
    fn unconfirmed_commit_records_of_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
    ) {
        let (dir, _) = file_in_dir("unconfirmed.json", &bytes);
        if let Ok(pending) = Pending::open(dir.path()) {
            // Only a JSON list of handles opens.
            let listed: Vec<String> = serde_json::from_slice(&bytes).expect("a JSON list");
            let parsed: Result<std::collections::BTreeSet<Handle>, _> =
                listed.iter().map(|h| h.parse::<Handle>()).collect();
            prop_assert_eq!(parsed.ok(), Some(pending.handles().clone()));
        }
    }

    #[test]
    fn job_submissions_of_arbitrary_content_are_refused(
        pipeline in "\\PC{0,400}",
        script in prop::collection::vec(any::<u8>(), 0..400),
        workspace in "[a-z_-]{1,8}",
    ) {
        let submission = JobSubmission {
            workspace,
            pipeline,
            scripts: vec![("a.approved".into(), script)],
            actions: vec!["a".into()],
            force_run_dependencies: false,
        };
        // Random scripts are never approved scripts.
        prop_assert!(jobs::decode(&submission).is_err());
    }
}

/// The configuration in the repository parses, so the edits above start
/// from a valid file.
#[test]
fn the_example_configuration_parses() {
    let (_dir, path) = file_in_dir("triad-node.toml", &example_config());
    ConfigFile::read(&path).expect("the example parses");
}

/// bincode allocates a string's announced length before reading it, after
/// checking it against the limit: a string announced longer than sixteen
/// times the message (the most decoding counts per byte read) is refused
/// by the limit, so nothing of its size is allocated.
#[test]
fn announced_strings_are_bounded_by_the_message_size() {
    for announced in [1u64 << 20, 60 << 20] {
        let mut bytes = vec![253];
        bytes.extend_from_slice(&announced.to_le_bytes());
        let error = api::decode::<String>(&bytes).unwrap_err();
        assert!(error.message.contains("LimitExceeded"), "{error}");
        // The same inside a refusal (variant 10, kind 0), which clients
        // decode.
        let error = api::decode::<Reply>(&[&[10, 0][..], &bytes].concat()).unwrap_err();
        assert!(error.message.contains("LimitExceeded"), "{error}");
    }
}

/// Messages of every size decode, whichever limit their size selects, with
/// the values that count the most against it.
#[test]
fn valid_messages_of_every_size_decode() {
    for words in [0, 1, 255, 4000, 4200, 30_000, 300_000] {
        for value in [0, u64::MAX] {
            let shares = ResultShares {
                own: vec![value; words],
                next: vec![1; words],
            };
            let bytes = api::encode(&shares);
            assert_eq!(
                api::decode::<ResultShares>(&bytes).ok().as_ref(),
                Some(&shares),
                "{words} words of {value}, {} bytes",
                bytes.len()
            );
        }
        let text = "x".repeat(words);
        assert_eq!(api::decode::<String>(&api::encode(&text)).ok(), Some(text));
        let wide = vec![1u128; words];
        assert_eq!(
            api::decode::<Vec<u128>>(&api::encode(&wide)).ok(),
            Some(wide)
        );
    }
}
