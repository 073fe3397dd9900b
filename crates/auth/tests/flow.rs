//! The whole path through the public API, as a client and three nodes use
//! it: keys, a signed request on the wire, replay checks, sealed results.

use std::fs;
use std::path::PathBuf;

use triad_auth::{
    AuthError, DeploymentId, Digest, Mode, Nonce, NonceStore, REQUEST_VERSION, Request,
    ResultContext, ResultSecret, SignedRequest, UserKey, UserPublicKey, open, seal,
};

const NOW: u64 = 1_750_000_000;
const WINDOW: u64 = 120;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("triad-auth-it-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_client_request_runs_once_on_three_nodes_and_only_the_client_reads_the_result() {
    let dir = temp_dir("flow");

    // The user makes a key on their machine; the operators learn only its
    // public half, as text.
    let key_path = dir.join("analyst.key");
    UserKey::generate().unwrap().save(&key_path).unwrap();
    let key = UserKey::load(&key_path).unwrap();
    let registered: UserPublicKey = key.public().to_string().parse().unwrap();

    // The client builds, signs and sends a request.
    let result_secret = ResultSecret::generate().unwrap();
    let plan = b"canonical plan bytes";
    let request = Request {
        version: REQUEST_VERSION,
        deployment: DeploymentId::from_bytes([0x5a; 32]),
        mode: Mode::Design,
        body: Digest::of(plan),
        approval: None,
        nonce: Nonce::generate().unwrap(),
        issued_at: NOW,
        result_key: result_secret.public(),
        signer: key.public(),
    }
    .sign(&key)
    .unwrap();
    let wire = request.to_bytes();

    // Each node decodes, checks the signer and the replay window, and the
    // three compare digests before running anything.
    let mut digests = Vec::new();
    let mut sealed = Vec::new();
    for node in 0..3u32 {
        let received = SignedRequest::from_bytes(&wire).unwrap();
        assert_eq!(received.request.signer, registered);
        assert_eq!(received.request.body, Digest::of(plan));
        let mut store = NonceStore::open(&dir.join(format!("node{node}"))).unwrap();
        store.check_and_record(&received, NOW + 2, WINDOW).unwrap();
        digests.push(received.digest());
        let context = ResultContext {
            request: received.digest(),
            node,
            output: 0,
        };
        let share = format!("share from node {node}");
        sealed.push(
            seal(
                &received.request.result_key,
                &context.to_bytes(),
                share.as_bytes(),
            )
            .unwrap(),
        );
    }
    assert!(digests.iter().all(|digest| *digest == request.digest()));

    // The client opens each node's result with the context it expects.
    for (node, sealed) in sealed.iter().enumerate() {
        let context = ResultContext {
            request: request.digest(),
            node: node as u32,
            output: 0,
        };
        let share = open(&result_secret, &context.to_bytes(), sealed).unwrap();
        assert_eq!(share, format!("share from node {node}").as_bytes());
        // Passed off as another node's result, it does not open.
        let other = ResultContext {
            node: (node as u32 + 1) % 3,
            ..context
        };
        assert!(matches!(
            open(&result_secret, &other.to_bytes(), sealed),
            Err(AuthError::SealOpen)
        ));
    }

    // Sent again after the nodes restart, the request is refused.
    for node in 0..3 {
        let mut store = NonceStore::open(&dir.join(format!("node{node}"))).unwrap();
        let error = store
            .check_and_record(&SignedRequest::from_bytes(&wire).unwrap(), NOW + 5, WINDOW)
            .unwrap_err();
        assert!(matches!(error, AuthError::Replay { .. }), "{error}");
    }
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn errors_show_fingerprints_not_secrets() {
    let key = UserKey::generate().unwrap();
    let dir = temp_dir("errors");
    let path = dir.join("user.key");
    key.save(&path).unwrap();
    let file = fs::read_to_string(&path).unwrap();
    let secret_line = file
        .lines()
        .find_map(|line| line.strip_prefix("secret "))
        .unwrap()
        .to_string();

    let mut request = Request {
        version: REQUEST_VERSION,
        deployment: DeploymentId::from_bytes([1; 32]),
        mode: Mode::Authorized,
        body: Digest::of(b"x"),
        approval: None,
        nonce: Nonce::generate().unwrap(),
        issued_at: NOW,
        result_key: ResultSecret::generate().unwrap().public(),
        signer: key.public(),
    }
    .sign(&key)
    .unwrap();
    request.request.issued_at += 1;
    let error = request.verify().unwrap_err();
    let shown = format!("{error} {error:?} {key:?}");
    assert!(shown.contains(&key.public().fingerprint()), "{shown}");
    assert!(!shown.contains(&secret_line[..16]), "{shown}");
    fs::remove_dir_all(dir).unwrap();
}
