//! Three real node processes on 127.0.0.1: uploads, sums, deletion,
//! restarts and the failure cases, each checked against the plaintext.

use std::path::{Path, PathBuf};
use std::time::Duration;

use triad_auth::{Mode, Nonce, REQUEST_VERSION, Request, ResultSecret, UserKey};
use triad_client::cluster::LocalCluster;
use triad_client::schema::Schema;
use triad_client::table::{EncodedTable, read_table};
use triad_client::{Client, ClientError, ConnectionFile};
use triad_net::{LinkConfig, NodeLink};
use triad_node::api::{self, Body, CallHeader, ErrorKind, Reply};
use triad_node::config::Role;

const PROGRAM: &str = env!("CARGO_BIN_EXE_triad");

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    cluster: LocalCluster,
    key_path: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let key_path = root.join("owner.key");
    let key = UserKey::generate().unwrap();
    key.save(&key_path).unwrap();
    let outsider = UserKey::generate().unwrap();
    outsider.save(&root.join("outsider.key")).unwrap();
    let analyst = UserKey::generate().unwrap();
    analyst.save(&root.join("analyst.key")).unwrap();
    let users = vec![
        ("owner".into(), key.public().to_string(), vec![Role::Owner]),
        (
            "analyst".into(),
            analyst.public().to_string(),
            vec![Role::Analyst],
        ),
    ];
    let mut cluster =
        LocalCluster::create(&root.join("cluster"), Path::new(PROGRAM), &users, &key_path).unwrap();
    cluster
        .tune(|file| {
            // Notice dead peers quickly so restarts are fast to test.
            file.limits.idle_timeout_ms = 1500;
            file.limits.agree_timeout_ms = 2000;
        })
        .unwrap();
    cluster.start(Duration::from_secs(60)).unwrap();
    Fixture {
        _dir: dir,
        root,
        cluster,
        key_path,
    }
}

impl Fixture {
    fn client(&self) -> Client {
        Client::connect_file(&self.cluster.connection_path()).unwrap()
    }

    /// A connection file like the cluster's with another key.
    fn connection_with_key(&self, key: &str) -> PathBuf {
        let mut file = ConnectionFile::load(&self.cluster.connection_path()).unwrap();
        file.key = self.root.join(key);
        let path = self.root.join(format!("{key}.conn"));
        file.save(&path).unwrap();
        path
    }

    fn table(&self, name: &str, csv: &str, schema: &str) -> EncodedTable {
        let csv_path = self.root.join(format!("{name}.csv"));
        std::fs::write(&csv_path, csv).unwrap();
        let schema = Schema::from_toml_str(schema, "test schema").unwrap();
        read_table(&csv_path, Some(&schema)).unwrap()
    }
}

const SCHEMA: &str = r#"
[[column]]
name = "id"
type = "int"
min = 0
max = 1000000

[[column]]
name = "v"
type = "int"
min = -9223372036854775808
max = 9223372036854775807

[[column]]
name = "flag"
type = "bool"
nullable = true
"#;

fn sample() -> (String, i64, u64) {
    let values: [i64; 6] = [0, -1, i64::MAX, i64::MIN, 42, -7];
    let mut csv = String::from("id,v,flag\n");
    let mut sum = 0i64;
    let mut present = 0;
    for (i, v) in values.iter().enumerate() {
        let flag = match i % 3 {
            0 => "true",
            1 => "",
            _ => "false",
        };
        if !flag.is_empty() {
            present += 1;
        }
        csv.push_str(&format!("{i},{v},{flag}\n"));
        sum = sum.wrapping_add(*v);
    }
    (csv, sum, present)
}

fn refusal(result: Result<impl std::fmt::Debug, ClientError>) -> ErrorKind {
    match result {
        Err(e) => e
            .refusal()
            .unwrap_or_else(|| panic!("expected a refusal, got {e}")),
        Ok(v) => panic!("expected a refusal, got {v:?}"),
    }
}

#[test]
fn upload_sum_count_list_delete_restart() {
    let mut f = fixture();
    let (csv, sum, present) = sample();
    let table = f.table("t", &csv, SCHEMA);
    let client = f.client();
    let uploaded = client.upload(&table).unwrap();
    assert_eq!(uploaded.rows, 6);
    assert_eq!(client.sum(&uploaded.handle, "v").unwrap(), sum);
    assert_eq!(client.sum(&uploaded.handle, "id").unwrap(), 15);
    assert_eq!(client.count(&uploaded.handle, None).unwrap(), 6);
    assert_eq!(
        client.count(&uploaded.handle, Some("flag")).unwrap(),
        present
    );
    let listed = client.get_table(&uploaded.handle).unwrap();
    assert_eq!(listed.rows, 6);
    assert_eq!(listed.schema.len(), 3);
    assert_eq!(listed.owner, client.owner());

    // An empty table and a one-row table.
    let empty = f.table("empty", "id,v,flag\n", SCHEMA);
    let empty = client.upload(&empty).unwrap();
    assert_eq!(client.sum(&empty.handle, "v").unwrap(), 0);
    let one = f.table("one", "id,v,flag\n3,-5,\n", SCHEMA);
    let one = client.upload(&one).unwrap();
    assert_eq!(client.sum(&one.handle, "v").unwrap(), -5);
    assert_eq!(client.count(&one.handle, Some("flag")).unwrap(), 0);

    // Unknown column, unknown handle.
    assert_eq!(
        refusal(client.sum(&uploaded.handle, "nope")),
        ErrorKind::UnknownColumn
    );
    client.delete(&one.handle).unwrap();
    assert_eq!(
        refusal(client.sum(&one.handle, "v")),
        ErrorKind::UnknownHandle
    );
    assert!(
        client
            .tables()
            .unwrap()
            .iter()
            .all(|t| t.handle != one.handle)
    );
    client.close();

    // A node killed and restarted serves every committed table again.
    f.cluster.kill_node(1);
    f.cluster.start_node(1).unwrap();
    f.cluster.wait_ready(Duration::from_secs(60)).unwrap();
    let client = f.client();
    assert_eq!(client.sum(&uploaded.handle, "v").unwrap(), sum);
    assert_eq!(client.sum(&empty.handle, "v").unwrap(), 0);
    assert_eq!(client.tables().unwrap().len(), 2);
    client.close();
}

#[test]
fn refusals_name_the_problem() {
    let mut f = fixture();
    let (csv, sum, _) = sample();
    let table = f.table("t", &csv, SCHEMA);
    let client = f.client();
    let uploaded = client.upload(&table).unwrap();

    // A key the nodes do not know.
    let outsider = Client::connect_file(&f.connection_with_key("outsider.key")).unwrap();
    assert_eq!(refusal(outsider.tables()), ErrorKind::Unauthorized);
    // A known user without the owner role, and not the table's owner.
    let analyst = Client::connect_file(&f.connection_with_key("analyst.key")).unwrap();
    assert_eq!(refusal(analyst.upload(&table)), ErrorKind::Unauthorized);
    assert_eq!(
        refusal(analyst.sum(&uploaded.handle, "v")),
        ErrorKind::Unauthorized
    );

    // A client sending inconsistent shares: refused at the cross-check,
    // and no table appears.
    let before = client.tables().unwrap().len();
    for node in 0..3 {
        assert_eq!(
            refusal(client.upload_corrupted(&table, node)),
            ErrorKind::CrossCheckFailed,
            "corrupting node {node}'s components"
        );
    }
    assert_eq!(client.tables().unwrap().len(), before);

    // A replayed request.
    let connection = ConnectionFile::load(&f.cluster.connection_path()).unwrap();
    let key = UserKey::load(&f.key_path).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let node = &connection.nodes[0];
        let link = NodeLink::connect(
            node.address,
            triad_net::load_certificate(&node.certificate).unwrap(),
            LinkConfig::default(),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        let body = Body::ListTables;
        let request = Request {
            version: REQUEST_VERSION,
            deployment: connection.deployment.parse().unwrap(),
            mode: Mode::Authorized,
            body: body.digest(),
            approval: None,
            nonce: Nonce::generate().unwrap(),
            issued_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
            result_key: ResultSecret::generate().unwrap().public(),
            signer: key.public(),
        }
        .sign(&key)
        .unwrap();
        let send = |body: Body, request: Vec<u8>| {
            let link = &link;
            async move {
                let mut call = link.call().await.unwrap();
                let header = CallHeader {
                    api_version: api::API_VERSION,
                    request,
                    body,
                    payload: None,
                    approved: None,
                    job: None,
                };
                call.write_message(&api::encode(&header)).await.unwrap();
                call.finish().unwrap();
                let reply = call.read_message(1 << 20).await.unwrap().unwrap();
                api::decode::<Reply>(&reply).unwrap()
            }
        };
        // Sent to node 0 only: the other two never receive it, so node 0
        // refuses to run it.
        let first = send(body.clone(), request.to_bytes()).await;
        assert!(
            matches!(&first, Reply::Refused(e) if e.kind == ErrorKind::NotAgreed),
            "{first:?}"
        );
        let again = send(body.clone(), request.to_bytes()).await;
        assert!(
            matches!(&again, Reply::Refused(e) if e.kind == ErrorKind::Replayed),
            "{again:?}"
        );
        // A body that is not the one signed.
        let other = send(
            Body::Delete {
                handle: uploaded.handle,
            },
            request.to_bytes(),
        )
        .await;
        assert!(
            matches!(&other, Reply::Refused(e) if e.kind == ErrorKind::BadRequest),
            "{other:?}"
        );
        // Garbage.
        let mut call = link.call().await.unwrap();
        call.write_message(b"not a header").await.unwrap();
        call.finish().unwrap();
        let reply =
            api::decode::<Reply>(&call.read_message(1 << 20).await.unwrap().unwrap()).unwrap();
        assert!(matches!(&reply, Reply::Refused(e) if e.kind == ErrorKind::BadRequest));
        link.close().await;
    });

    // A corrupted share file: that table is refused, never a wrong sum.
    let column = f
        .root
        .join(format!("cluster/node2/data/tables/{}", uploaded.handle));
    let file = std::fs::read_dir(&column)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "col"))
        .min()
        .unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&file, bytes).unwrap();
    let refused = client.sum(&uploaded.handle, "id");
    assert_eq!(refusal(refused), ErrorKind::Storage);
    // Another column of the same table is intact... but "v" is the second
    // file only if the order holds; check the sum of v is right or refused.
    match client.sum(&uploaded.handle, "v") {
        Ok(s) => assert_eq!(s, sum),
        Err(e) => assert_eq!(e.refusal(), Some(ErrorKind::Storage)),
    }
    client.close();

    // A node that is down: a clear error, no hang.
    f.cluster.kill_node(2);
    let started = std::time::Instant::now();
    let result = Client::connect_file(&f.cluster.connection_path()).and_then(|c| c.tables());
    assert!(result.is_err());
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn wrong_certificate_is_refused() {
    let f = fixture();
    let mut file = ConnectionFile::load(&f.cluster.connection_path()).unwrap();
    // Pin node 1's certificate for node 0.
    file.nodes[0].certificate = file.nodes[1].certificate.clone();
    let path = f.root.join("wrong.conn");
    file.save(&path).unwrap();
    let started = std::time::Instant::now();
    match Client::connect_file(&path) {
        Err(ClientError::Link { node: 0, .. }) => {}
        other => panic!("expected a link error for node 0, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[test]
fn node_killed_during_upload_loses_nothing_committed() {
    let mut f = fixture();
    let (csv, sum, _) = sample();
    let small = f.table("t", &csv, SCHEMA);
    let client = f.client();
    let kept = client.upload(&small).unwrap();
    client.close();

    // A larger upload, with node 2 killed while it is under way.
    let rows = 400_000u64;
    let schema = Schema::from_toml_str(
        "[[column]]\nname = \"a\"\ntype = \"int\"\nmin = 0\nmax = 1000000\n",
        "big",
    )
    .unwrap();
    let values: Vec<u64> = (0..rows).collect();
    let big = EncodedTable {
        source: "big".into(),
        rows,
        schema,
        columns: vec![("a".into(), values)],
        warnings: Vec::new(),
    };
    let connection = f.cluster.connection_path();
    let uploader = std::thread::spawn(move || {
        let client = Client::connect_file(&connection).unwrap();
        let result = client.upload(&big).map(|u| u.handle);
        client.close();
        result
    });
    std::thread::sleep(Duration::from_millis(30));
    f.cluster.kill_node(2);
    let outcome = uploader.join().unwrap();
    f.cluster.start_node(2).unwrap();
    f.cluster.wait_ready(Duration::from_secs(60)).unwrap();
    let client = f.client();
    let tables = client.tables().unwrap();
    match outcome {
        // The kill came too late to matter: the table is whole everywhere.
        Ok(handle) => {
            assert!(tables.iter().any(|t| t.handle == handle));
            let expected = (rows * (rows - 1) / 2) as i64;
            assert_eq!(client.sum(&handle, "a").unwrap(), expected);
        }
        // No handle: nothing new is listed.
        Err(_) => assert_eq!(tables.len(), 1),
    }
    assert_eq!(client.sum(&kept.handle, "v").unwrap(), sum);
    client.close();
}

#[test]
fn commits_a_crash_left_unconfirmed_are_settled_on_reconnect() {
    let mut f = fixture();
    let (csv, sum, _) = sample();
    let table = f.table("t", &csv, SCHEMA);
    let client = f.client();
    let crashed = client.upload(&table).unwrap().handle;
    let lost_disk = client.upload(&table).unwrap().handle;
    let kept = client.upload(&table).unwrap().handle;
    client.close();
    f.cluster.stop();

    // As if node 2 died before committing `crashed` while nodes 0 and 1
    // had committed and recorded it as unconfirmed...
    let node = |i: usize| f.root.join(format!("cluster/node{i}/data"));
    for i in 0..2 {
        std::fs::write(node(i).join("unconfirmed.json"), format!("[\"{crashed}\"]")).unwrap();
    }
    std::fs::remove_dir_all(node(2).join(format!("tables/{crashed}"))).unwrap();
    // ...and as if node 2 had lost `lost_disk`, which all three had
    // confirmed: that must not make the others drop it.
    std::fs::remove_dir_all(node(2).join(format!("tables/{lost_disk}"))).unwrap();

    f.cluster.start(Duration::from_secs(60)).unwrap();
    let client = f.client();
    let listed: Vec<_> = client
        .tables()
        .unwrap()
        .into_iter()
        .map(|t| t.handle)
        .collect();
    assert_eq!(listed, vec![kept]);
    assert_eq!(client.sum(&kept, "v").unwrap(), sum);
    client.close();
    for i in 0..2 {
        assert!(!node(i).join(format!("tables/{crashed}")).exists());
        assert!(node(i).join(format!("tables/{lost_disk}")).exists());
        assert_eq!(
            std::fs::read_to_string(node(i).join("unconfirmed.json")).unwrap(),
            "[]"
        );
    }
}

#[test]
fn the_memory_budget_refuses_what_would_exceed_it() {
    let mut f = fixture();
    f.cluster.stop();
    // 100 rows x 4 share columns x 16 bytes = 6,400 bytes of shares.
    f.cluster
        .tune(|file| file.limits.memory_budget_bytes = 5_000)
        .unwrap();
    f.cluster.start(Duration::from_secs(60)).unwrap();
    let mut csv = String::from("id,v,flag\n");
    for i in 0..100 {
        csv.push_str(&format!("{i},{i},true\n"));
    }
    let big = f.table("big", &csv, SCHEMA);
    let client = f.client();
    match client.upload(&big) {
        Err(ClientError::Refused { error, .. }) => {
            assert_eq!(error.kind, ErrorKind::MemoryBudget);
            assert!(error.message.contains("5000 bytes"), "{}", error.message);
        }
        other => panic!("expected a memory budget refusal, got {other:?}"),
    }
    // Within the budget it runs.
    let small = f.table("small", "id,v,flag\n1,2,\n", SCHEMA);
    let uploaded = client.upload(&small).unwrap();
    assert_eq!(client.sum(&uploaded.handle, "v").unwrap(), 2);
    assert_eq!(client.tables().unwrap().len(), 1);
    client.close();
}
