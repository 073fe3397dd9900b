//! What an operator runs beside the node: the Prometheus endpoint,
//! `triad-node check` against the running peers, and `rotate-cert`. Three
//! in-process nodes over loopback, set up the way three operators would
//! (`init`, `add-peer`, one roles document signed by all three).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use triad_auth::{
    DeploymentId, Mode, Nonce, REQUEST_VERSION, Request, ResultSecret, SignedRoles, UserKey,
};
use triad_net::{NodeIdentity, NodeLink};
use triad_node::api::{
    self, Body, CallHeader, ComponentSource, ErrorKind, Reply, UploadBody, UploadPayload,
};
use triad_node::cli::{
    AddPeerArgs, CheckArgs, InitArgs, add_peer, check, check_peers, init, rotate_cert,
};
use triad_node::config::{Config, ConfigFile, Role};
use triad_node::server::Node;

mod common;

use common::operators::{
    connect_links, free_loopback, init_three, install_roles, show_logs, signed_roles,
};
use triad_node::store::{ColumnSchema, Handle};

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap()
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Three configured node directories (not yet running) and a data owner.
struct Setup {
    root: PathBuf,
    configs: [PathBuf; 3],
    clients: [SocketAddr; 3],
    metrics: [SocketAddr; 3],
    deployment: DeploymentId,
    owner: UserKey,
}

impl Setup {
    /// Three nodes under a fresh directory named `name`, each with its
    /// peers' client addresses and a metrics port.
    fn new(name: &str) -> Setup {
        show_logs();
        let root = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("triad-node-operator-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let listen = [(); 3].map(|_| free_loopback());
        let clients = [(); 3].map(|_| free_loopback());
        let metrics = [(); 3].map(|_| loopback(free_tcp_port()));
        let (configs, deployment) = init_three(&root, listen, clients);
        for (node, path) in configs.iter().enumerate() {
            let mut file = ConfigFile::read(path).unwrap();
            for peer in &mut file.peers {
                peer.client_address = Some(clients[peer.node]);
            }
            file.metrics_listen = Some(metrics[node]);
            Config::save(&file, path).unwrap();
        }
        let owner = UserKey::generate().unwrap();
        let setup = Setup {
            root,
            configs,
            clients,
            metrics,
            deployment: deployment.parse().unwrap(),
            owner,
        };
        let roles = setup.roles_document("roles-draft.toml", &[]);
        for node in 0..3 {
            setup.install(node, &roles);
        }
        setup
    }

    /// A roles document admitting the owner and `others`, signed by the
    /// three operators.
    fn roles_document(&self, name: &str, others: &[&UserKey]) -> PathBuf {
        let roles = self.root.join(name);
        let users: Vec<(String, &UserKey, Role)> = std::iter::once(&self.owner)
            .chain(others.iter().copied())
            .enumerate()
            .map(|(i, key)| (format!("user{i}"), key, Role::Owner))
            .collect();
        signed_roles(&roles, &self.deployment.to_string(), &users, &self.configs);
        roles
    }

    fn install(&self, node: usize, roles: &Path) {
        install_roles(&self.configs[node], roles);
    }

    fn start(&self) -> Vec<Node> {
        self.configs
            .iter()
            .map(|path| Node::start(Config::load(path).unwrap()).unwrap())
            .collect()
    }

    fn config(&self, node: usize) -> Config {
        Config::load(&self.configs[node]).unwrap()
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Signed calls from one key to all three nodes.
struct TestClient {
    runtime: tokio::runtime::Runtime,
    links: Vec<NodeLink>,
    deployment: DeploymentId,
}

impl TestClient {
    fn connect(setup: &Setup) -> TestClient {
        let certificates = [0, 1, 2].map(|i| setup.root.join(format!("node{i}/node.crt")));
        let (runtime, links) = connect_links(&setup.clients, &certificates);
        TestClient {
            runtime,
            links,
            deployment: setup.deployment,
        }
    }

    fn header(&self, key: &UserKey, body: &Body) -> CallHeader {
        let request = Request {
            version: REQUEST_VERSION,
            deployment: self.deployment,
            mode: Mode::Authorized,
            body: body.digest(),
            approval: None,
            nonce: Nonce::generate().unwrap(),
            issued_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs(),
            result_key: ResultSecret::generate().unwrap().public(),
            signer: key.public(),
        }
        .sign(key)
        .unwrap();
        CallHeader {
            api_version: api::API_VERSION,
            request: request.to_bytes(),
            body: body.clone(),
            payload: None,
            approved: None,
            job: None,
        }
    }

    /// Sends one header to each node at once (a node waits for the others
    /// to receive a request before it answers).
    fn call_all(&self, headers: [CallHeader; 3]) -> Vec<Reply> {
        std::thread::scope(|scope| {
            let threads: Vec<_> = self
                .links
                .iter()
                .zip(headers)
                .map(|(link, header)| {
                    let runtime = &self.runtime;
                    scope.spawn(move || runtime.block_on(call(link, &header)))
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        })
    }

    fn call_one(&self, node: usize, header: &CallHeader) -> Reply {
        self.runtime.block_on(call(&self.links[node], header))
    }

    fn same_to_all(&self, key: &UserKey, body: &Body) -> Vec<Reply> {
        let header = self.header(key, body);
        self.call_all([header.clone(), header.clone(), header])
    }

    /// Uploads five rows of one column, every component expanded from a
    /// seed on the nodes; returns the handle.
    fn upload(&self, key: &UserKey) -> Handle {
        let seeds = [[1u8; 32], [2u8; 32], [3u8; 32]];
        let keys = [[4u8; 32], [5u8; 32], [6u8; 32]];
        let body = Body::Upload(UploadBody {
            upload_id: format!("metrics-{}", std::process::id()).parse().unwrap(),
            schema: vec![ColumnSchema {
                name: "x".into(),
                type_tag: "int".into(),
                min: 0,
                max: 100,
                nullable: false,
            }],
            rows: 5,
            columns: vec!["x".into()],
            dummy_for: None,
            approvers: Vec::new(),
        });
        // One signed request; each node gets its own components.
        let header = self.header(key, &body);
        let headers = [0, 1, 2].map(|i| {
            let next = (i + 1) % 3;
            CallHeader {
                payload: Some(UploadPayload {
                    own_key: keys[i],
                    next_key: keys[next],
                    columns: vec![(
                        ComponentSource::Seed(seeds[i]),
                        ComponentSource::Seed(seeds[next]),
                    )],
                }),
                ..header.clone()
            }
        });
        let replies = self.call_all(headers);
        let handles: Vec<Handle> = replies
            .iter()
            .map(|reply| match reply {
                Reply::Uploaded { handle, .. } => *handle,
                other => panic!("upload: {other:?}"),
            })
            .collect();
        assert!(handles.iter().all(|h| *h == handles[0]), "{handles:?}");
        handles[0]
    }

    /// Waits until all three nodes report the mesh up (a call that only
    /// some of them accept would wait for the others' copy until the
    /// request expires), then until a listing goes through on all three.
    fn wait_ready(&self, setup: &Setup, key: &UserKey) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !setup
            .metrics
            .iter()
            .all(|address| value(&scrape(*address), "triad_mesh_up") == Some(1.0))
        {
            assert!(Instant::now() < deadline, "the mesh did not form");
            std::thread::sleep(Duration::from_millis(100));
        }
        loop {
            let replies = self.same_to_all(key, &Body::ListTables);
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
}

async fn call(link: &NodeLink, header: &CallHeader) -> Reply {
    let mut call = link.call().await.unwrap();
    call.write_message(&api::encode(header)).await.unwrap();
    call.finish().unwrap();
    let reply = call
        .read_message(api::REPLY_BYTES_MAX)
        .await
        .unwrap()
        .unwrap();
    api::decode::<Reply>(&reply).unwrap()
}

/// One HTTP exchange over a plain TCP stream: the whole response.
fn http(address: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

fn scrape(address: SocketAddr) -> String {
    let response = http(
        address,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: text/plain\r\n\r\n",
    );
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    body.to_owned()
}

/// The value of the series `series` (name and labels, exactly), if shown.
fn value(page: &str, series: &str) -> Option<f64> {
    page.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().unwrap())
    })
}

#[test]
fn metrics_count_requests_and_never_show_a_handle() {
    let setup = Setup::new("metrics");
    let _nodes = setup.start();
    let client = TestClient::connect(&setup);
    client.wait_ready(&setup, &setup.owner);
    let before = scrape(setup.metrics[0]);
    let uploads = |page: &str| {
        value(page, "triad_requests_total{kind=\"upload\",status=\"ok\"}").unwrap_or(0.0)
    };
    assert_eq!(uploads(&before), 0.0);
    assert_eq!(value(&before, "triad_tables_stored"), Some(0.0));

    let handle = client.upload(&setup.owner);
    // A refusal that names the handle in its message.
    let missing: Handle = "ab".repeat(32).parse().unwrap();
    let replies = client.same_to_all(
        &setup.owner,
        &Body::Count {
            handle: missing,
            column: None,
        },
    );
    assert!(
        replies
            .iter()
            .all(|r| matches!(r, Reply::Refused(e) if e.kind == ErrorKind::UnknownHandle)),
        "{replies:?}"
    );

    let page = scrape(setup.metrics[0]);
    assert_eq!(uploads(&page), 1.0, "{page}");
    assert!(
        value(&page, "triad_requests_total{kind=\"tables\",status=\"ok\"}").unwrap() >= 1.0,
        "{page}"
    );
    assert_eq!(
        value(
            &page,
            "triad_requests_total{kind=\"count\",status=\"UnknownHandle\"}"
        ),
        Some(1.0),
        "{page}"
    );
    assert_eq!(value(&page, "triad_tables_stored"), Some(1.0), "{page}");
    assert_eq!(value(&page, "triad_mesh_up"), Some(1.0), "{page}");
    // The nodes tick every second while idle, so both links carried frames.
    for peer in [1, 2] {
        for direction in ["sent", "received"] {
            let series = format!("triad_peer_bytes_{direction}_total{{peer=\"{peer}\"}}");
            assert!(value(&page, &series).unwrap() > 0.0, "{series}: {page}");
        }
    }
    assert!(!page.contains("peer=\"0\""), "{page}");
    assert!(page.contains("triad_build_info{version=\""), "{page}");
    // Nothing that names what the node holds or who asked.
    let secrets = [
        handle.to_string(),
        missing.to_string(),
        setup.owner.public().to_string(),
        "user0".to_owned(),
    ];
    for secret in &secrets {
        assert!(!page.contains(secret.as_str()), "{secret} in\n{page}");
    }
    // Any other path or method is not found; the connection is closed
    // after each answer (read_to_string returned).
    for request in [
        "GET / HTTP/1.1\r\n\r\n",
        "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    ] {
        let response = http(setup.metrics[0], request);
        assert!(response.starts_with("HTTP/1.1 404 "), "{response}");
    }
    // Each node counts its own calls.
    let other = scrape(setup.metrics[2]);
    assert_eq!(uploads(&other), 1.0, "{other}");
    assert!(!other.contains("peer=\"2\""), "{other}");
}

#[test]
fn check_reaches_both_peers_and_names_the_one_that_is_down() {
    let setup = Setup::new("check");
    let mut nodes = setup.start();
    let client = TestClient::connect(&setup);
    client.wait_ready(&setup, &setup.owner);
    let config = setup.config(0);

    let started = Instant::now();
    let peers = check_peers(&config).unwrap();
    eprintln!("check with both peers up: {:?}", started.elapsed());
    assert_eq!(peers.len(), 2);
    for peer in &peers {
        assert!(peer.problems().is_empty(), "{peer}");
        let status = peer.theirs.as_ref().unwrap();
        assert_eq!(usize::from(status.node), peer.node);
        assert_eq!(status.roles_digest, config.roles.digest());
        assert!(status.mesh_up);
        let shown = peer.to_string();
        assert!(shown.contains("versions equal"), "{shown}");
        assert!(shown.contains("roles document equal"), "{shown}");
    }
    check(&CheckArgs {
        config: setup.configs[0].clone(),
        offline: false,
    })
    .unwrap();

    // Users cannot probe: the status is for the operators' keys.
    let header = client.header(&setup.owner, &Body::Status);
    match client.call_one(1, &header) {
        Reply::Refused(error) => assert_eq!(error.kind, ErrorKind::Unauthorized, "{error}"),
        other => panic!("a user's status probe was answered: {other:?}"),
    }

    // Node 2 stops: the check fails and says which peer.
    drop(nodes.pop());
    let started = Instant::now();
    let error = check(&CheckArgs {
        config: setup.configs[0].clone(),
        offline: false,
    })
    .unwrap_err()
    .to_string();
    eprintln!("check with node 2 down: {:?}: {error}", started.elapsed());
    assert!(error.contains("node 2 unreachable"), "{error}");
    assert!(!error.contains("node 1"), "{error}");
    // Offline, only this host is checked.
    check(&CheckArgs {
        config: setup.configs[0].clone(),
        offline: true,
    })
    .unwrap();
}

#[test]
fn check_names_both_roles_digests_when_a_peer_serves_another_document() {
    let setup = Setup::new("roles");
    let ours = SignedRoles::load(&setup.config(0).roles_path)
        .unwrap()
        .document
        .digest();
    // Node 1 alone moves to a document admitting one more user.
    let extra = UserKey::generate().unwrap();
    let newer = setup.roles_document("roles-newer.toml", &[&extra]);
    setup.install(1, &newer);
    let theirs = SignedRoles::load(&newer).unwrap().document.digest();
    assert_ne!(ours, theirs);
    // The mesh never forms (the nodes refuse each other); the probes are
    // answered all the same.
    let _nodes = setup.start();
    let error = check(&CheckArgs {
        config: setup.configs[0].clone(),
        offline: false,
    })
    .unwrap_err()
    .to_string();
    assert!(error.contains("node 1 serves roles document"), "{error}");
    assert!(error.contains(&ours.to_string()), "{error}");
    assert!(error.contains(&theirs.to_string()), "{error}");
    assert!(!error.contains("node 2"), "{error}");
    let peers = check_peers(&setup.config(0)).unwrap();
    let shown = peers[0].to_string();
    assert!(shown.contains("roles document DIFFERS"), "{shown}");
    assert!(peers[1].problems().is_empty(), "{}", peers[1]);
}

#[test]
fn rotate_cert_keeps_the_old_pair_and_peers_pin_the_new_one() {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("triad-node-operator-{}-rotate", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let paths: Vec<PathBuf> = (0..2)
        .map(|node| {
            init(&InitArgs {
                node,
                listen: loopback(7000 + node as u16),
                client_listen: loopback(7100 + node as u16),
                dir: root.join(format!("node{node}")),
                deployment: Some("ab".repeat(32)),
            })
            .unwrap()
        })
        .collect();
    let dir = root.join("node1");
    let before = NodeIdentity::load(&dir.join("node.crt"), &dir.join("node.key")).unwrap();
    let report = rotate_cert(&paths[1]).unwrap();
    let after = NodeIdentity::load(&dir.join("node.crt"), &dir.join("node.key")).unwrap();
    assert_ne!(before.fingerprint(), after.fingerprint());
    assert!(report.contains(&after.fingerprint()), "{report}");
    let kept = NodeIdentity::load(&dir.join("node.crt.old"), &dir.join("node.key.old")).unwrap();
    assert_eq!(kept.certificate(), before.certificate());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for key in ["node.key", "node.key.old"] {
            let mode = std::fs::metadata(dir.join(key))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{key} is readable by others: {mode:o}");
        }
    }
    // A second rotation would lose the pair the peers still pin.
    let error = rotate_cert(&paths[1]).unwrap_err().to_string();
    assert!(error.contains("node.crt.old"), "{error}");

    // Node 0 pins node 1's certificate, with a client address set by hand;
    // pinning the rotated certificate keeps that address.
    let pin = || {
        add_peer(&AddPeerArgs {
            config: paths[0].clone(),
            node: 1,
            address: loopback(7001),
            certificate: dir.join("node.crt"),
            operator_key: std::fs::read_to_string(dir.join("operator.pub")).unwrap(),
        })
        .unwrap()
    };
    pin();
    let mut file = ConfigFile::read(&paths[0]).unwrap();
    file.peers[0].client_address = Some(loopback(7101));
    Config::save(&file, &paths[0]).unwrap();
    std::fs::remove_file(dir.join("node.crt.old")).unwrap();
    std::fs::remove_file(dir.join("node.key.old")).unwrap();
    rotate_cert(&paths[1]).unwrap();
    pin();
    let config = Config::load_partial(&paths[0]).unwrap();
    assert_eq!(config.peers[0].client_address, Some(loopback(7101)));
    let pinned = triad_net::load_certificate(&config.peers[0].certificate).unwrap();
    let current = triad_net::load_certificate(&dir.join("node.crt")).unwrap();
    assert_eq!(pinned, current);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_version_difference_is_a_problem_naming_both_versions() {
    use triad_node::api::NodeStatus;
    use triad_node::cli::PeerCheck;

    let ours = NodeStatus {
        node: 0,
        version: "0.1.0".into(),
        api_version: 3,
        net_protocol_version: 1,
        roles_serial: 2,
        roles_digest: "cd".repeat(32).parse().unwrap(),
        mesh_up: false,
        waiting_to_be_rebuilt: false,
    };
    let theirs = NodeStatus {
        node: 2,
        version: "0.2.0".into(),
        net_protocol_version: 2,
        mesh_up: false,
        ..ours.clone()
    };
    let peer = PeerCheck {
        node: 2,
        ours,
        theirs: Ok(theirs),
    };
    let problems = peer.problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("triad-node 0.2.0, API 3, net protocol 2")
            && problems[0].contains("triad-node 0.1.0, API 3, net protocol 1"),
        "{problems:?}"
    );
    assert!(peer.to_string().contains("versions DIFFER"), "{peer}");
}
