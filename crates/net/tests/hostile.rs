//! The network crate's public decoders on hostile input: certificate and
//! key files of arbitrary or edited bytes are an error or a certificate,
//! never a panic; and on a client link, a length a client announces beyond
//! the reader's bound is refused from the announcement alone. The hello and
//! frame-header decoders are private: their properties are in `wire.rs`.

use std::fs;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use triad_net::{
    ClientListener, LinkConfig, LinkError, NetError, NodeIdentity, NodeLink, load_certificate,
};

/// One edit of a file's bytes.
#[path = "../../../testkit/mutate.rs"]
mod mutate;
use mutate::{apply, edit};

/// A saved identity: (certificate PEM, key PEM), and the directory.
fn saved_identity() -> (Vec<u8>, Vec<u8>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let identity = NodeIdentity::generate().expect("identity");
    let (certificate, key) = (dir.path().join("node.crt"), dir.path().join("node.key"));
    identity.save(&certificate, &key).expect("save");
    (
        fs::read(&certificate).expect("read"),
        fs::read(&key).expect("read"),
        dir,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn certificate_files_of_arbitrary_bytes_are_refused(
        bytes in prop::collection::vec(any::<u8>(), 0..2000),
    ) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("peer.crt");
        fs::write(&path, &bytes).expect("write");
        // Random bytes hold no PEM certificate block.
        let result = load_certificate(&path);
        prop_assert!(
            matches!(result, Err(NetError::CertificateFile { .. })),
            "{:?}",
            result
        );
    }

    #[test]
    fn edited_identity_files_load_or_are_refused(
        edit_certificate in prop::collection::vec(edit(), 0..4),
        edit_key in prop::collection::vec(edit(), 0..4),
    ) {
        let (mut certificate, mut key, dir) = saved_identity();
        apply(&mut certificate, &edit_certificate);
        apply(&mut key, &edit_key);
        let (certificate_path, key_path) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        fs::write(&certificate_path, &certificate).expect("write");
        fs::write(&key_path, &key).expect("write");
        // PEM decoding only: whether the DER inside is a certificate is
        // rustls's question when the mesh starts, and pinning compares
        // bytes. Either way, no panic.
        if let Ok(loaded) = load_certificate(&certificate_path) {
            prop_assert_eq!(triad_net::fingerprint(&loaded).len(), 32);
        }
        match NodeIdentity::load(&certificate_path, &key_path) {
            Ok(identity) => prop_assert_eq!(identity.fingerprint().len(), 32),
            Err(NetError::CertificateFile { .. } | NetError::KeyFile { .. }) => {}
            Err(other) => prop_assert!(false, "unexpected error {}", other),
        }
    }
}

/// A node's client port and one client connected to it, on loopback.
fn link_pair(
    runtime: &tokio::runtime::Runtime,
) -> (ClientListener, NodeLink, triad_net::ClientConnection) {
    let identity = NodeIdentity::generate().expect("identity");
    let address: SocketAddr = "127.0.0.1:0".parse().expect("address");
    runtime.block_on(async {
        let listener =
            ClientListener::bind(address, &identity, LinkConfig::default()).expect("bind");
        let address = listener.local_addr().expect("address");
        let certificate = identity.certificate().clone();
        let connecting = tokio::spawn(NodeLink::connect(
            address,
            certificate,
            LinkConfig::default(),
            Duration::from_secs(10),
        ));
        let connection = listener.accept().await;
        let link = connecting.await.expect("connect task");
        (
            listener,
            link.expect("connect"),
            connection.expect("accepted"),
        )
    })
}

/// A client announcing a 4 GiB message (or a 2^40-word share vector) gets
/// a refusal from the announcement, without the node waiting for or
/// allocating what was announced.
#[test]
fn lengths_announced_beyond_the_bound_are_refused_before_allocation() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (_listener, link, connection) = link_pair(&runtime);
    runtime.block_on(async {
        let mut call = link.call().await.expect("call");
        // Raw words carry no length of their own: the first four bytes
        // become the message length the node reads, 2^32 - 1.
        call.write_words(&[u64::MAX]).await.expect("write");
        let mut incoming = connection.accept_call().await.expect("incoming call");
        let started = Instant::now();
        match incoming.read_message(4 << 20).await {
            Err(LinkError::TooLarge { len, max, .. }) => {
                assert_eq!((len, max), (u64::from(u32::MAX), 4 << 20));
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        match incoming.read_words(1 << 40, 1 << 32).await {
            Err(LinkError::TooLarge { len, .. }) => assert_eq!(len, 1 << 40),
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(1));
        link.close().await;
    });
}
