//! A real node facing hostile peers: this test starts node 1 and plays
//! nodes 0 and 2 itself, over the real mesh (QUIC, pinned certificates),
//! speaking the engine's messages by their bincode encoding. A request
//! announced that the node never received gets an answer ("missing"), not a
//! wait; an unknown message kind, a frame whose length disagrees with its
//! bytes and a key frame of the wrong length make the node drop the mesh
//! and form it again: never a panic (the node would not come back) and
//! never a hang (every receive here has a timeout).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use triad_auth::Digest as AuthDigest;
use triad_net::{MeshConfig, MeshListener, NodeIdentity, PeerConfig, QuicTransport};
use triad_node::api;
use triad_node::config::{Config, ConfigFile};
use triad_node::server::Node;
use triad_node::store::Handle;
use triad_ring::{PartyId, Transport, TransportError};

mod common;

use common::operators::{free_loopback, init_three, install_roles, signed_roles};

/// How long the node waits for a request it is told to run (shortened
/// from the default so that the test does not wait ten seconds).
const AGREE_TIMEOUT_MS: u64 = 300;

/// How long the test waits for anything from the node.
const RECV_TIMEOUT: Duration = Duration::from_secs(20);

/// Three initialised node directories sharing one signed roles document.
struct Deployment {
    _root: tempfile::TempDir,
    configs: Vec<PathBuf>,
    listen: [SocketAddr; 3],
}

fn deployment() -> Deployment {
    let root = tempfile::tempdir().expect("temp dir");
    let listen = [(); 3].map(|_| free_loopback());
    let clients = [(); 3].map(|_| free_loopback());
    let (configs, deployment) = init_three(root.path(), listen, clients);
    let roles = root.path().join("roles-draft.toml");
    signed_roles(&roles, &deployment, &[], &configs);
    for path in &configs {
        install_roles(path, &roles);
    }
    let mut file = ConfigFile::read(&configs[1]).expect("config");
    file.limits.agree_timeout_ms = AGREE_TIMEOUT_MS;
    Config::save(&file, &configs[1]).expect("save");
    Deployment {
        _root: root,
        configs: configs.into(),
        listen,
    }
}

/// The mesh configuration of node `me`, played by the test.
fn mesh_config(deployment: &Deployment, me: PartyId) -> MeshConfig {
    let dir = |node: usize| deployment.configs[node].parent().expect("node dir");
    let certificate = |node: usize| {
        triad_net::load_certificate(&dir(node).join("node.crt")).expect("certificate")
    };
    let identity = NodeIdentity::load(
        &dir(me.index()).join("node.crt"),
        &dir(me.index()).join("node.key"),
    )
    .expect("identity");
    let peers = PartyId::ALL
        .into_iter()
        .filter(|p| *p != me)
        .map(|p| PeerConfig {
            party: p,
            address: Some(deployment.listen[p.index()]),
            certificate: certificate(p.index()),
        })
        .collect::<Vec<_>>()
        .try_into()
        .expect("two peers");
    let mut config = MeshConfig::new(me, deployment.listen[me.index()], identity, peers);
    config.connect_timeout = Duration::from_secs(30);
    config.recv_timeout = Some(RECV_TIMEOUT);
    config
}

/// Nodes 0 and 2 as the test plays them.
struct Peers {
    p0: QuicTransport,
    p2: QuicTransport,
}

/// A message as the engine frames it: the byte length, then the bytes
/// packed into little-endian words.
fn frame(bytes: &[u8]) -> Vec<u64> {
    let mut words = vec![bytes.len() as u64];
    words.extend(bytes.chunks(8).map(|chunk| {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        u64::from_le_bytes(word)
    }));
    words
}

fn unframe(words: &[u64]) -> Vec<u8> {
    let (len, rest) = words.split_first().expect("a length word");
    let mut bytes: Vec<u8> = rest.iter().flat_map(|w| w.to_le_bytes()).collect();
    bytes.truncate(*len as usize);
    bytes
}

/// The engine's control messages, by their encoding: a variant index, then
/// the digest's 32 bytes.
fn control_run(digest: [u8; 32]) -> Vec<u8> {
    [&[1u8][..], &digest].concat()
}

const CONTROL_TICK: [u8; 1] = [0];
const ACK_TICK: [u8; 1] = [0];

fn ack_missing(digest: [u8; 32]) -> Vec<u8> {
    [&[2u8][..], &digest].concat()
}

impl Peers {
    fn transport(&mut self, party: PartyId) -> &mut QuicTransport {
        match party {
            PartyId::P0 => &mut self.p0,
            _ => &mut self.p2,
        }
    }

    fn send(&mut self, from: PartyId, bytes: &[u8]) {
        self.send_words(from, frame(bytes));
    }

    fn send_words(&mut self, from: PartyId, words: Vec<u64>) {
        self.transport(from)
            .send(PartyId::P1, words)
            .expect("sending to node 1");
    }

    fn recv(&mut self, at: PartyId) -> Vec<u8> {
        let words = self
            .transport(at)
            .recv(PartyId::P1)
            .unwrap_or_else(|e| panic!("node 1 to {at}: {e}"));
        unframe(&words)
    }

    /// Both test nodes send `bytes` to node 1 and get its message back.
    fn exchange(&mut self, bytes: &[u8]) -> [Vec<u8>; 2] {
        self.send(PartyId::P0, bytes);
        self.send(PartyId::P2, bytes);
        [self.recv(PartyId::P0), self.recv(PartyId::P2)]
    }

    /// Waits until node 1 drops its links to both test nodes.
    fn expect_dropped(mut self, why: &str) {
        let started = Instant::now();
        for at in [PartyId::P0, PartyId::P2] {
            loop {
                match self.transport(at).recv(PartyId::P1) {
                    // Frames node 1 sent before it noticed are drained.
                    Ok(_) => continue,
                    Err(TransportError::Closed { .. } | TransportError::Io { .. }) => break,
                    Err(error) => panic!("{why}: node 1 neither answered nor left: {error}"),
                }
            }
        }
        assert!(started.elapsed() < RECV_TIMEOUT, "{why}");
        self.p0.abort();
        self.p2.abort();
    }
}

/// Forms the mesh with node 1 and agrees the pairwise keys, then what a
/// new mesh starts with: the roles document, whether any node waits to be
/// rebuilt, the unconfirmed commits and the tables held (none here).
/// `key_words` is what node 0 sends as its key (4 words when honest).
fn form(deployment: &Deployment, key_words: usize) -> Option<Peers> {
    let [l0, l2] = [PartyId::P0, PartyId::P2]
        .map(|p| MeshListener::bind(mesh_config(deployment, p)).expect("bind"));
    let (p0, p2) = std::thread::scope(|scope| {
        let p0 = scope.spawn(|| l0.connect());
        let p2 = scope.spawn(|| l2.connect());
        (p0.join().expect("no panic"), p2.join().expect("no panic"))
    });
    let mut peers = Peers {
        p0: p0.expect("node 1 dials node 0"),
        p2: p2.expect("node 2 dials node 1"),
    };
    // PairKeys::establish: node 1 sends its key to node 2 and expects
    // node 0's, four words each.
    peers.send_words(PartyId::P0, vec![7; key_words]);
    let key = peers
        .transport(PartyId::P2)
        .recv(PartyId::P1)
        .expect("node 1's key");
    assert_eq!(key.len(), 4);
    if key_words != 4 {
        peers.expect_dropped("a key frame of the wrong length");
        return None;
    }
    let config = Config::load(&deployment.configs[1]).expect("config");
    let roles: (AuthDigest, u64) = (config.roles.digest(), config.roles.serial());
    for answer in peers.exchange(&api::encode(&roles)) {
        assert_eq!(api::decode::<(AuthDigest, u64)>(&answer).ok(), Some(roles));
    }
    // Neither test node waits to be rebuilt, nor does node 1.
    for answer in peers.exchange(&api::encode(&false)) {
        assert_eq!(api::decode::<bool>(&answer).ok(), Some(false));
    }
    for _ in ["unconfirmed", "held"] {
        for answer in peers.exchange(&api::encode(&Vec::<Handle>::new())) {
            assert_eq!(api::decode::<Vec<Handle>>(&answer).ok(), Some(Vec::new()));
        }
    }
    Some(peers)
}

/// Node 0 announces a tick; all three acknowledge it.
fn tick(peers: &mut Peers) {
    peers.send(PartyId::P0, &CONTROL_TICK);
    for answer in peers.exchange(&ACK_TICK) {
        assert_eq!(answer, ACK_TICK);
    }
}

#[test]
fn a_hostile_peer_gets_answers_or_a_dropped_mesh_never_a_panic_or_a_hang() {
    let deployment = deployment();
    let _node = Node::start(Config::load(&deployment.configs[1]).expect("config")).expect("start");

    // A request node 1 never received: after the agreement timeout it says
    // so, and stays in step.
    let mut peers = form(&deployment, 4).expect("formed");
    tick(&mut peers);
    let unknown = [0xab; 32];
    let started = Instant::now();
    peers.send(PartyId::P0, &control_run(unknown));
    for answer in peers.exchange(&ack_missing(unknown)) {
        assert_eq!(answer, ack_missing(unknown));
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(AGREE_TIMEOUT_MS) && waited < RECV_TIMEOUT,
        "answered after {waited:?}"
    );
    tick(&mut peers);

    // An unknown kind of control message.
    peers.send(PartyId::P0, &[9, 1, 2, 3]);
    peers.expect_dropped("an unknown message kind");

    // A frame announcing more bytes than it carries.
    let mut peers = form(&deployment, 4).expect("formed again");
    tick(&mut peers);
    let mut words = frame(&CONTROL_TICK);
    words[0] = 1 << 40;
    peers.send_words(PartyId::P0, words);
    peers.expect_dropped("a frame of the wrong length");

    // A key of the wrong length when the mesh forms.
    assert!(form(&deployment, 3).is_none());

    // After all of that the node is still there and in step.
    let mut peers = form(&deployment, 4).expect("formed once more");
    tick(&mut peers);
    tick(&mut peers);
    peers.p0.abort();
    peers.p2.abort();
}
