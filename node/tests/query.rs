//! Query plans on three in-process nodes over loopback QUIC: tables
//! uploaded through the node API, merged, filtered and summed in MPC, and
//! the results reconstructed here and compared with plaintext.
//!
//! The tests share one cluster (starting three nodes and forming the mesh
//! is the slow part); each uses its own tables and requests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use triad_auth::{
    DeploymentId, Mode, Nonce, REQUEST_VERSION, Request, ResultContext, ResultSecret, Sealed,
    SignedRequest, UserKey, X25519Public,
};
use triad_net::NodeLink;
use triad_node::api::{
    self, ApiError, Body, CallHeader, ComponentSource, ErrorKind, Reply, ResultShares,
    TableSummary, UploadBody, UploadPayload,
};
use triad_node::config::{Config, ConfigFile, Role};
use triad_node::server::Node;
use triad_node::store::{
    AgreedUpload, ColumnInfo, ColumnSchema, Digest, Handle, UploadId, component_digest,
    derived_handle, handle_for,
};
use triad_plan::{Agg, Aggregation, BinOp, Expr, Frame, How, Output, Query};
use triad_ring::PartyId;

mod common;

use common::operators::{
    connect_links, free_loopback, init_three, install_roles, show_logs, signed_roles,
};

/// Three running nodes and the users' keys.
struct Cluster {
    _nodes: Vec<Node>,
    deployment: DeploymentId,
    addresses: [SocketAddr; 3],
    certificates: [PathBuf; 3],
    owner: UserKey,
    other_owner: UserKey,
    analyst: UserKey,
}

fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    static READY: OnceLock<()> = OnceLock::new();
    let cluster = CLUSTER.get_or_init(|| start_cluster("shared", |_, _| {}));
    READY.get_or_init(|| wait_ready(cluster));
    cluster
}

/// Three nodes under `name`, each configuration edited by `tune` (with the
/// node's index) before it starts.
fn start_cluster(name: &str, tune: impl Fn(usize, &mut ConfigFile)) -> Cluster {
    show_logs();
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    remove_stale(tmp);
    let root = tmp.join(format!("triad-node-query-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let owner = UserKey::generate().unwrap();
    let other_owner = UserKey::generate().unwrap();
    let analyst = UserKey::generate().unwrap();
    let users = [
        ("owner".to_owned(), &owner, Role::Owner),
        ("other".to_owned(), &other_owner, Role::Owner),
        ("analyst".to_owned(), &analyst, Role::Analyst),
    ];
    let listen = [(); 3].map(|_| free_loopback());
    let client = [(); 3].map(|_| free_loopback());
    let (configs, deployment) = init_three(&root, listen, client);
    // One roles document, signed by the three operators, installed on all.
    let roles = root.join("roles-draft.toml");
    signed_roles(&roles, &deployment, &users, &configs);
    for path in &configs {
        install_roles(path, &roles);
    }
    for (node, path) in configs.iter().enumerate() {
        let mut file = ConfigFile::read(path).unwrap();
        tune(node, &mut file);
        Config::save(&file, path).unwrap();
    }
    let nodes: Vec<Node> = configs
        .iter()
        .map(|path| Node::start(Config::load(path).unwrap()).unwrap())
        .collect();
    Cluster {
        _nodes: nodes,
        deployment: deployment.parse().unwrap(),
        addresses: client,
        certificates: [0, 1, 2].map(|i| root.join(format!("node{i}/node.crt"))),
        owner,
        other_owner,
        analyst,
    }
}

/// Removes the clusters of earlier runs (the shared cluster lives in a
/// static, which is never dropped) whose process is gone.
fn remove_stale(tmp: &Path) {
    let proc = Path::new("/proc");
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("triad-node-query-") else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or_default();
        if proc.is_dir() && !pid.is_empty() && !proc.join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Waits until a listing goes through on all three nodes (the mesh is up).
fn wait_ready(cluster: &'static Cluster) {
    let client = TestClient::connect(cluster, &cluster.owner);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, _, replies) = client.call_all(&Body::ListTables, Default::default());
        if replies.iter().all(|r| matches!(r, Reply::Tables(_))) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the mesh did not form: {replies:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A minimal client: signs requests, deals uploads, opens results.
struct TestClient {
    runtime: tokio::runtime::Runtime,
    links: Vec<NodeLink>,
    key: &'static UserKey,
    deployment: DeploymentId,
}

/// Per node: the upload payload and the explicit words after the header.
type Parts = [(Option<UploadPayload>, Vec<Vec<u64>>); 3];

/// What a query returned, checked to be the same on all three nodes.
#[derive(Debug)]
enum Answer {
    Words { passed: Vec<bool>, words: Vec<u64> },
    Stored { handle: Handle, rows: u64 },
}

static UPLOADS: AtomicU64 = AtomicU64::new(0);

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn random_words(n: usize) -> Vec<u64> {
    let mut bytes = vec![0u8; 8 * n];
    getrandom::fill(&mut bytes).unwrap();
    bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).unwrap();
    key
}

/// The first refusal, after checking that all three nodes refused alike.
fn refusal(replies: &[Reply; 3]) -> Option<ApiError> {
    let kinds: Vec<Option<ErrorKind>> = replies
        .iter()
        .map(|r| match r {
            Reply::Refused(e) => Some(e.kind),
            _ => None,
        })
        .collect();
    let first = replies.iter().find_map(|r| match r {
        Reply::Refused(e) => Some(e.clone()),
        _ => None,
    })?;
    assert!(
        kinds.iter().all(|k| *k == Some(first.kind)),
        "the nodes answered differently: {replies:?}"
    );
    Some(first)
}

impl TestClient {
    fn connect(cluster: &Cluster, key: &'static UserKey) -> TestClient {
        let (runtime, links) = connect_links(&cluster.addresses, &cluster.certificates);
        TestClient {
            runtime,
            links,
            key,
            deployment: cluster.deployment,
        }
    }

    fn sign(&self, body: &Body) -> (SignedRequest, ResultSecret) {
        let secret = ResultSecret::generate().unwrap();
        let request = Request {
            version: REQUEST_VERSION,
            deployment: self.deployment,
            mode: Mode::Authorized,
            body: body.digest(),
            approval: None,
            nonce: Nonce::generate().unwrap(),
            issued_at: now_secs(),
            result_key: secret.public(),
            signer: self.key.public(),
        };
        (request.sign(self.key).unwrap(), secret)
    }

    fn call_all(&self, body: &Body, parts: Parts) -> (SignedRequest, ResultSecret, [Reply; 3]) {
        let (request, secret) = self.sign(body);
        let bytes = request.to_bytes();
        // Concurrently (a node waits for the others to receive the request
        // before it answers): one thread per node, each driving its call.
        let replies: Vec<Reply> = std::thread::scope(|scope| {
            let threads: Vec<_> = self
                .links
                .iter()
                .zip(parts)
                .map(|(link, (payload, words))| {
                    let header = CallHeader {
                        api_version: api::API_VERSION,
                        request: bytes.clone(),
                        body: body.clone(),
                        payload,
                        approved: None,
                        job: None,
                    };
                    let runtime = &self.runtime;
                    scope.spawn(move || {
                        runtime.block_on(async move {
                            let mut call = link.call().await.unwrap();
                            call.write_message(&api::encode(&header)).await.unwrap();
                            for w in &words {
                                call.write_words(w).await.unwrap();
                            }
                            call.finish().unwrap();
                            let reply = call
                                .read_message(api::REPLY_BYTES_MAX)
                                .await
                                .unwrap()
                                .unwrap();
                            api::decode::<Reply>(&reply).unwrap()
                        })
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let replies: [Reply; 3] = replies.try_into().unwrap();
        (request, secret, replies)
    }

    /// Uploads plaintext `columns` (share columns in order) under
    /// `schema`; returns the handle, checked against the one computed here.
    fn upload(
        &self,
        schema: Vec<ColumnSchema>,
        columns: Vec<(&str, Vec<u64>)>,
    ) -> Result<Handle, ApiError> {
        let rows = columns.first().map_or(0, |(_, v)| v.len() as u64);
        let n = UPLOADS.fetch_add(1, Ordering::SeqCst);
        let upload_id: UploadId = format!("q{}-{n}-{}", std::process::id(), now_secs())
            .parse()
            .unwrap();
        let keys = [random_key(), random_key(), random_key()];
        let mut components: Vec<[Vec<u64>; 3]> = Vec::new();
        let mut infos = Vec::new();
        for (name, values) in &columns {
            let x0 = random_words(values.len());
            let x1 = random_words(values.len());
            let x2: Vec<u64> = values
                .iter()
                .zip(x0.iter().zip(&x1))
                .map(|(v, (a, b))| v.wrapping_sub(*a).wrapping_sub(*b))
                .collect();
            let parts = [x0, x1, x2];
            infos.push(ColumnInfo {
                name: (*name).to_owned(),
                digests: PartyId::ALL.map(|c| {
                    component_digest(&keys[c.index()], &upload_id, name, c, &parts[c.index()])
                }),
            });
            components.push(parts);
        }
        let owner = api::owner_key(&self.key.public());
        let expected = handle_for(&AgreedUpload {
            upload_id: upload_id.clone(),
            owner,
            rows,
            schema: schema.clone(),
            columns: infos,
            policy: Default::default(),
        });
        let body = Body::Upload(UploadBody {
            upload_id,
            schema,
            rows,
            columns: columns.iter().map(|(n, _)| (*n).to_owned()).collect(),
            dummy_for: None,
            approvers: Vec::new(),
        });
        let parts: Parts = [0, 1, 2].map(|i| {
            let next = (i + 1) % 3;
            let payload = UploadPayload {
                own_key: keys[i],
                next_key: keys[next],
                columns: columns
                    .iter()
                    .map(|_| (ComponentSource::Explicit, ComponentSource::Explicit))
                    .collect(),
            };
            let words = components
                .iter()
                .flat_map(|c| [c[i].clone(), c[next].clone()])
                .collect();
            (Some(payload), words)
        });
        let (_, _, replies) = self.call_all(&body, parts);
        if let Some(error) = refusal(&replies) {
            return Err(error);
        }
        for reply in &replies {
            match reply {
                Reply::Uploaded { handle, .. } => assert_eq!(*handle, expected),
                other => panic!("unexpected reply to an upload: {other:?}"),
            }
        }
        Ok(expected)
    }

    fn tables(&self) -> Vec<TableSummary> {
        let (_, _, replies) = self.call_all(&Body::ListTables, Default::default());
        let lists: Vec<Vec<TableSummary>> = replies
            .into_iter()
            .map(|r| match r {
                Reply::Tables(mut t) => {
                    t.sort_by_key(|t| t.handle);
                    t
                }
                other => panic!("unexpected reply to a listing: {other:?}"),
            })
            .collect();
        assert_eq!(lists[0], lists[1]);
        assert_eq!(lists[0], lists[2]);
        lists[0].clone()
    }

    /// Runs `plan`; returns what it gave and the request digest.
    fn query(&self, plan: &Query) -> Result<(Answer, Digest), ApiError> {
        let body = Body::Query { plan: plan.clone() };
        let (request, secret, replies) = self.call_all(&body, Default::default());
        if let Some(error) = refusal(&replies) {
            return Err(error);
        }
        let digest = Digest::from_bytes(*request.digest().as_bytes());
        match &replies[0] {
            Reply::Stored { handle, rows, .. } => {
                for reply in &replies {
                    assert!(
                        matches!(reply, Reply::Stored { handle: h, rows: r, .. } if h == handle && r == rows),
                        "{replies:?}"
                    );
                }
                Ok((
                    Answer::Stored {
                        handle: *handle,
                        rows: *rows,
                    },
                    digest,
                ))
            }
            Reply::Answer { passed, .. } => {
                let passed = passed.clone();
                let mut shares = Vec::new();
                for (node, reply) in replies.into_iter().enumerate() {
                    let Reply::Answer {
                        passed: p,
                        ephemeral_public,
                        ciphertext,
                        ..
                    } = reply
                    else {
                        panic!("node {node} answered differently");
                    };
                    assert_eq!(p, passed);
                    let context = ResultContext {
                        request: request.digest(),
                        node: node as u32,
                        output: 0,
                    };
                    let sealed = Sealed {
                        ephemeral_public: X25519Public::from_bytes(ephemeral_public),
                        ciphertext,
                    };
                    let plain = triad_auth::open(&secret, &context.to_bytes(), &sealed).unwrap();
                    shares.push(api::decode::<ResultShares>(&plain).unwrap());
                }
                // Component c is node c's own and node c - 1's next.
                for c in 0..3 {
                    assert_eq!(shares[c].own, shares[(c + 2) % 3].next);
                }
                let words = (0..shares[0].own.len())
                    .map(|i| {
                        shares[0].own[i]
                            .wrapping_add(shares[1].own[i])
                            .wrapping_add(shares[2].own[i])
                    })
                    .collect();
                Ok((Answer::Words { passed, words }, digest))
            }
            other => panic!("unexpected reply to a query: {other:?}"),
        }
    }
}

fn int(name: &str, min: i128, max: i128, nullable: bool) -> ColumnSchema {
    ColumnSchema {
        name: name.to_owned(),
        type_tag: "int".to_owned(),
        min,
        max,
        nullable,
    }
}

/// `people`: id, age, score (nullable). `visits`: id, cost.
struct Data {
    people: Vec<(i64, i64, Option<i64>)>,
    visits: Vec<(i64, i64)>,
}

fn data(shift: i64) -> Data {
    let people = (0..10)
        .map(|i| {
            let score = if i % 4 == 1 { None } else { Some(i * 7 - 30) };
            (i + shift, 18 + (i * 13) % 60, score)
        })
        .collect();
    // Ids 3..=14 shifted: some match people, some do not.
    let visits = (3..15).map(|i| (i + shift, 100 + i * i * 11)).collect();
    Data { people, visits }
}

impl Data {
    /// Sum of cost over people of age >= `age` with a visit.
    fn merged_cost(&self, age: i64) -> i64 {
        self.people
            .iter()
            .filter(|(_, a, _)| *a >= age)
            .filter_map(|(id, _, _)| self.visits.iter().find(|(v, _)| v == id))
            .map(|(_, cost)| cost)
            .sum()
    }

    fn upload(&self, client: &TestClient) -> (Handle, Handle) {
        let people = client
            .upload(
                vec![
                    int("id", 0, 1000, false),
                    int("age", 0, 150, false),
                    int("score", -100, 100, true),
                ],
                vec![
                    ("id", self.people.iter().map(|p| p.0 as u64).collect()),
                    ("age", self.people.iter().map(|p| p.1 as u64).collect()),
                    (
                        "score",
                        self.people
                            .iter()
                            .map(|p| p.2.unwrap_or(0) as u64)
                            .collect(),
                    ),
                    (
                        "score#valid",
                        self.people.iter().map(|p| p.2.is_some() as u64).collect(),
                    ),
                ],
            )
            .unwrap();
        let visits = client
            .upload(
                vec![int("id", 0, 1000, false), int("cost", 0, 10_000, false)],
                vec![
                    ("id", self.visits.iter().map(|v| v.0 as u64).collect()),
                    ("cost", self.visits.iter().map(|v| v.1 as u64).collect()),
                ],
            )
            .unwrap();
        (people, visits)
    }
}

fn table(handle: &Handle) -> Frame {
    Frame::Table {
        handle: handle.to_string(),
    }
}

fn column(name: &str) -> Box<Expr> {
    Box::new(Expr::Column(name.to_owned()))
}

fn literal(value: i64) -> Box<Expr> {
    Box::new(Expr::Literal { value, scale: 0 })
}

fn compare(op: BinOp, name: &str, value: i64) -> Expr {
    Expr::Binary {
        op,
        left: column(name),
        right: literal(value),
    }
}

fn merge(left: u32, right: u32) -> Frame {
    Frame::Merge {
        left,
        right,
        how: How::Inner,
        left_on: vec!["id".into()],
        right_on: vec!["id".into()],
        suffixes: ["_x".into(), "_y".into()],
    }
}

fn filter(input: u32, predicate: Expr) -> Frame {
    Frame::Filter {
        input,
        predicate,
        threshold: None,
    }
}

fn aggregate(frame: u32, agg: Agg, name: &str) -> Output {
    Output::Aggregate {
        frame,
        aggregation: Aggregation {
            agg,
            column: Some(name.to_owned()),
        },
        threshold: None,
    }
}

fn words(answer: Answer) -> Vec<u64> {
    match answer {
        Answer::Words { passed, words } => {
            assert_eq!(passed, vec![true]);
            words
        }
        other => panic!("expected words, got {other:?}"),
    }
}

#[test]
fn merge_filter_sum_matches_plaintext() {
    let cluster = cluster();
    let client = TestClient::connect(cluster, &cluster.owner);
    let data = data(0);
    let (people, visits) = data.upload(&client);
    let plan = Query::new(
        vec![
            table(&people),
            table(&visits),
            merge(0, 1),
            filter(2, compare(BinOp::Ge, "age", 30)),
        ],
        aggregate(3, Agg::Sum, "cost"),
    );
    let (answer, _) = client.query(&plan).unwrap();
    assert_eq!(words(answer), vec![data.merged_cost(30) as u64]);

    // A count and a mean of a nullable column on one table, unmerged.
    let plan = Query::new(
        vec![table(&people), filter(0, compare(BinOp::Lt, "age", 60))],
        Output::Aggregate {
            frame: 1,
            aggregation: Aggregation {
                agg: Agg::Mean,
                column: Some("score".into()),
            },
            threshold: None,
        },
    );
    let selected: Vec<i64> = data
        .people
        .iter()
        .filter(|p| p.1 < 60)
        .filter_map(|p| p.2)
        .collect();
    let (answer, _) = client.query(&plan).unwrap();
    assert_eq!(
        words(answer),
        vec![selected.iter().sum::<i64>() as u64, selected.len() as u64]
    );

    // Neither an analyst without an approved script nor another owner
    // may query the owner's tables.
    for user in [&cluster.analyst, &cluster.other_owner] {
        let error = TestClient::connect(cluster, user)
            .query(&Query::new(
                vec![table(&visits)],
                aggregate(0, Agg::Sum, "cost"),
            ))
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::NoMatchingAuthorization, "{error}");
    }
}

#[test]
fn stored_merge_can_be_queried() {
    let cluster = cluster();
    let client = TestClient::connect(cluster, &cluster.owner);
    let data = data(100);
    let (people, visits) = data.upload(&client);
    let plan = Query::new(
        vec![table(&people), table(&visits), merge(0, 1)],
        Output::Store { frame: 2 },
    );
    let (answer, digest) = client.query(&plan).unwrap();
    let Answer::Stored { handle, rows } = answer else {
        panic!("expected a stored table, got {answer:?}");
    };
    assert_eq!(handle, derived_handle(&digest));
    assert_eq!(rows, (data.people.len() + data.visits.len()) as u64);

    // Listed with its public schema (no mask), owned by the requester.
    let listed = client
        .tables()
        .into_iter()
        .find(|t| t.handle == handle)
        .expect("the stored table is listed");
    assert_eq!(listed.rows, rows);
    assert_eq!(
        listed.owner,
        api::owner_key(&cluster.owner.public()).as_str()
    );
    let names: Vec<&str> = listed.schema.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "age", "score", "cost"]);
    assert!(listed.schema[2].nullable);
    assert_eq!(listed.schema[0].type_tag, "int");

    // Querying the stored table gives what the merge gave.
    let plan = Query::new(
        vec![table(&handle), filter(0, compare(BinOp::Ge, "age", 40))],
        aggregate(1, Agg::Sum, "cost"),
    );
    let (answer, _) = client.query(&plan).unwrap();
    assert_eq!(words(answer), vec![data.merged_cost(40) as u64]);
    let plan = Query::new(
        vec![table(&handle)],
        Output::Aggregate {
            frame: 0,
            aggregation: Aggregation {
                agg: Agg::Count,
                column: None,
            },
            threshold: None,
        },
    );
    let matched = data.merged_cost(0);
    let matches = data
        .people
        .iter()
        .filter(|p| data.visits.iter().any(|v| v.0 == p.0))
        .count();
    assert!(matched > 0);
    let (answer, _) = client.query(&plan).unwrap();
    assert_eq!(words(answer), vec![matches as u64]);

    // A plain sum or column count would see unselected rows: refused. The
    // row count is public.
    let (_, _, replies) = client.call_all(
        &Body::Sum {
            handle,
            column: "cost".into(),
        },
        Default::default(),
    );
    let error = refusal(&replies).expect("refused");
    assert_eq!(error.kind, ErrorKind::BadRequest, "{error}");
    let (_, _, replies) = client.call_all(
        &Body::Count {
            handle,
            column: Some("score".into()),
        },
        Default::default(),
    );
    assert_eq!(
        refusal(&replies).expect("refused").kind,
        ErrorKind::BadRequest
    );
    let (_, _, replies) = client.call_all(
        &Body::Count {
            handle,
            column: None,
        },
        Default::default(),
    );
    assert!(
        replies
            .iter()
            .all(|r| matches!(r, Reply::Count(n) if *n == rows))
    );

    // Another owner cannot query it; its owner can delete it.
    let other = TestClient::connect(cluster, &cluster.other_owner);
    let error = other.query(&plan).unwrap_err();
    assert_eq!(error.kind, ErrorKind::NoMatchingAuthorization);
    let (_, _, replies) = client.call_all(&Body::Delete { handle }, Default::default());
    assert!(
        replies.iter().all(|r| matches!(r, Reply::Deleted)),
        "{replies:?}"
    );
    let error = client.query(&plan).unwrap_err();
    assert_eq!(error.kind, ErrorKind::UnknownHandle);
}

#[test]
fn refusals_are_typed() {
    let cluster = cluster();
    let client = TestClient::connect(cluster, &cluster.owner);
    let data = data(200);
    let (people, visits) = data.upload(&client);

    // One person selected: below the deployment's minimum threshold of 3.
    let plan = Query::new(
        vec![
            table(&people),
            table(&visits),
            merge(0, 1),
            filter(2, compare(BinOp::Eq, "id", 205)),
        ],
        aggregate(3, Agg::Sum, "cost"),
    );
    let error = client.query(&plan).unwrap_err();
    assert_eq!(error.kind, ErrorKind::ThresholdNotMet, "{error}");
    // The query's own threshold applies too.
    let plan = Query::new(
        vec![table(&visits)],
        Output::Aggregate {
            frame: 0,
            aggregation: Aggregation {
                agg: Agg::Sum,
                column: Some("cost".into()),
            },
            threshold: Some(100),
        },
    );
    let error = client.query(&plan).unwrap_err();
    assert_eq!(error.kind, ErrorKind::ThresholdNotMet, "{error}");

    // A column the table does not have.
    let plan = Query::new(vec![table(&visits)], aggregate(0, Agg::Sum, "nope"));
    let error = client.query(&plan).unwrap_err();
    assert_eq!(error.kind, ErrorKind::BadPlan, "{error}");
    assert!(error.message.contains("nope"), "{error}");

    // Unknown and malformed handles.
    let unknown = Handle::from_bytes([7; 32]);
    let plan = Query::new(vec![table(&unknown)], aggregate(0, Agg::Sum, "cost"));
    let error = client.query(&plan).unwrap_err();
    assert_eq!(error.kind, ErrorKind::UnknownHandle, "{error}");
    assert!(error.message.contains(&unknown.to_string()), "{error}");
    let plan = Query::new(
        vec![Frame::Table {
            handle: "not-a-handle".into(),
        }],
        aggregate(0, Agg::Sum, "cost"),
    );
    let error = client.query(&plan).unwrap_err();
    assert_eq!(error.kind, ErrorKind::BadRequest, "{error}");

    // Duplicate keys on both sides of a merge (the table merged with
    // itself): refused, revealing only that.
    let dups = client
        .upload(
            vec![int("id", 0, 10, false), int("cost", 0, 10, false)],
            vec![
                ("id", vec![1, 1, 2, 2, 3, 3]),
                ("cost", vec![1, 2, 3, 4, 5, 6]),
            ],
        )
        .unwrap();
    let plan = Query::new(
        vec![table(&dups), table(&dups), merge(0, 1)],
        aggregate(2, Agg::Sum, "cost_x"),
    );
    let error = client.query(&plan).unwrap_err();
    assert_eq!(error.kind, ErrorKind::NotUnique, "{error}");

    // Share column names starting with '#' are reserved.
    let error = client
        .upload(
            vec![int("id", 0, 10, false)],
            vec![("id", vec![1, 2]), ("#mask", vec![1, 1])],
        )
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::BadRequest, "{error}");

    // The cluster still answers after all of that.
    let (answer, _) = client
        .query(&Query::new(
            vec![table(&visits)],
            aggregate(0, Agg::Sum, "cost"),
        ))
        .unwrap();
    let total: i64 = data.visits.iter().map(|v| v.1).sum();
    assert_eq!(words(answer), vec![total as u64]);
}

#[test]
fn each_node_enforces_its_limits() {
    // Node 2 has a small memory budget, node 1 a high minimum threshold:
    // all three refuse together, and the largest minimum applies.
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    let cluster = CLUSTER.get_or_init(|| {
        start_cluster("limits", |node, file| match node {
            1 => file.limits.min_threshold = 20,
            2 => file.limits.memory_budget_bytes = 15_000,
            _ => {}
        })
    });
    wait_ready(cluster);
    let client = TestClient::connect(cluster, &cluster.owner);
    let data = data(300);
    let (people, visits) = data.upload(&client);
    // (10 x (4 + 2) + 12 x (2 + 2)) x 16 x 12 bytes: above node 2's budget.
    let plan = Query::new(
        vec![table(&people), table(&visits), merge(0, 1)],
        aggregate(2, Agg::Sum, "cost"),
    );
    let error = client.query(&plan).unwrap_err();
    assert_eq!(error.kind, ErrorKind::MemoryBudget, "{error}");
    assert!(error.message.starts_with("node 2:"), "{error}");
    // 12 x 4 x 16 x 12 bytes fit, but 12 rows are below node 1's minimum.
    let plan = Query::new(vec![table(&visits)], aggregate(0, Agg::Sum, "cost"));
    let error = client.query(&plan).unwrap_err();
    assert_eq!(error.kind, ErrorKind::ThresholdNotMet, "{error}");
    assert!(error.message.contains("20"), "{error}");
}
