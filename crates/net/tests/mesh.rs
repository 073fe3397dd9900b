//! Three real QUIC nodes on loopback, each in its own thread: a protocol
//! run checked against plaintext, large frames, pinning, timeouts and
//! vanished peers.

use std::io;
use std::thread;
use std::time::{Duration, Instant};

use triad_net::{MeshConfig, MeshListener, NetError, NodeIdentity, PeerConfig, QuicTransport};
use triad_ring::{PairKeys, PartyId, Session, SessionConfig, Transport, TransportError};

/// SplitMix64: a seeded stream of test values.
fn values(seed: u64, n: usize) -> Vec<u64> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        })
        .collect()
}

fn identities() -> [NodeIdentity; 3] {
    [(); 3].map(|_| NodeIdentity::generate().expect("key generation"))
}

/// Configurations for the three parties, each pinning the others' real
/// certificates, listening on loopback port 0.
fn configs(identities: &[NodeIdentity; 3]) -> [MeshConfig; 3] {
    PartyId::ALL.map(|me| {
        let peers: Vec<PeerConfig> = PartyId::ALL
            .into_iter()
            .filter(|p| *p != me)
            .map(|p| PeerConfig {
                party: p,
                address: None,
                certificate: identities[p.index()].certificate().clone(),
            })
            .collect();
        let peers: [PeerConfig; 2] = peers.try_into().expect("two peers");
        let mut config = MeshConfig::new(
            me,
            "127.0.0.1:0".parse().expect("address"),
            identities[me.index()].clone(),
            peers,
        );
        config.connect_timeout = Duration::from_secs(10);
        // A bug must fail the test, not hang it.
        config.recv_timeout = Some(Duration::from_secs(60));
        config
    })
}

/// Binds every given configuration, tells each node the others' ports, and
/// connects them all concurrently. Parties given `None` never start.
fn connect(configs: [Option<MeshConfig>; 3]) -> [Option<Result<QuicTransport, NetError>>; 3] {
    let mut listeners =
        configs.map(|c| c.map(|c| MeshListener::bind(c).expect("bind on loopback")));
    let addresses = listeners
        .each_ref()
        .map(|l| l.as_ref().map(MeshListener::local_addr));
    for (me, listener) in listeners.iter_mut().enumerate() {
        let Some(listener) = listener else { continue };
        for (p, address) in addresses.iter().enumerate() {
            if let (Some(address), true) = (address, p != me) {
                let party = PartyId::from_index(p).expect("index");
                listener.set_peer_address(party, *address).expect("peer");
            }
        }
    }
    thread::scope(|s| {
        let handles = listeners.map(|l| l.map(|l| s.spawn(move || l.connect())));
        handles.map(|h| h.map(|h| h.join().expect("connect thread")))
    })
}

fn mesh(tweak: impl Fn(&mut MeshConfig)) -> [QuicTransport; 3] {
    let mut configs = configs(&identities());
    configs.iter_mut().for_each(&tweak);
    connect(configs.map(Some)).map(|r| r.expect("started").expect("mesh formed"))
}

#[test]
fn three_parties_multiply_and_compare_over_quic() {
    let seed = 0x7472_6961_6401;
    println!("seed {seed:#x}");
    let n = 10_000;
    // Values in [-2^62, 2^62), so that lt's bound |a - b| < 2^63 holds.
    let center = |v: Vec<u64>| -> Vec<u64> {
        v.into_iter()
            .map(|x| (x >> 1).wrapping_sub(1 << 62))
            .collect()
    };
    let a = center(values(seed, n));
    let b = center(values(seed + 1, n));
    let big = 1 << 20;

    // Parts of 1000 words over two connections per peer: the
    // multiplication's and comparison's frames travel in parts, spread over
    // the lanes, and are gathered again.
    let transports = mesh(|c| {
        c.part_words = 1000;
        c.lanes = 2;
    });
    let results: Vec<(Vec<u64>, Vec<bool>)> = thread::scope(|s| {
        let handles: Vec<_> = transports
            .into_iter()
            .zip(PartyId::ALL)
            .map(|(mut transport, id)| {
                let (a, b) = (&a, &b);
                s.spawn(move || {
                    // Real keys from the OS generator, agreed over QUIC.
                    let keys = PairKeys::establish(id, &mut transport).expect("keys");
                    let mut session = Session::new(id, transport, &keys, &SessionConfig::default())
                        .expect("session");
                    let x = session
                        .input(PartyId::P0, (id == PartyId::P0).then_some(a), n)
                        .expect("input a");
                    let y = session
                        .input(PartyId::P1, (id == PartyId::P1).then_some(b), n)
                        .expect("input b");
                    let product = session.mul(&x, &y).expect("mul");
                    let less = session.lt(&x, &y, 63).expect("lt");
                    let product = session.reveal(&product).expect("reveal");
                    let less = session.reveal_bits(&less).expect("reveal bits");

                    // Large frames, an empty one and a small one in a row,
                    // to both peers, with the sender's pattern.
                    let mut transport = session.into_transport();
                    let pattern = |from: PartyId, len: usize| {
                        values(seed ^ ((from.index() as u64 + 1) << 40), len)
                    };
                    for to in [id.next(), id.prev()] {
                        transport.send(to, pattern(id, big)).expect("send big");
                        transport.send(to, Vec::new()).expect("send empty");
                        transport.send(to, pattern(id, 3)).expect("send small");
                    }
                    for from in [id.prev(), id.next()] {
                        let frame = transport.recv(from).expect("recv big");
                        assert_eq!(frame.len(), big);
                        assert!(
                            frame == pattern(from, big),
                            "big frame from {from} corrupted"
                        );
                        assert_eq!(transport.recv(from).expect("recv empty"), Vec::<u64>::new());
                        assert_eq!(transport.recv(from).expect("recv small"), pattern(from, 3));
                    }
                    (product, less)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("party thread"))
            .collect()
    });
    let product: Vec<u64> = a.iter().zip(&b).map(|(x, y)| x.wrapping_mul(*y)).collect();
    let less: Vec<bool> = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (*x as i64) < (*y as i64))
        .collect();
    for (id, (p, l)) in PartyId::ALL.iter().zip(results) {
        assert!(p == product, "{id}: product differs from plaintext");
        assert!(l == less, "{id}: comparison differs from plaintext");
    }
}

#[test]
fn a_dialer_with_an_unpinned_certificate_is_refused() {
    let ids = identities();
    let [mut c0, mut c1, _] = configs(&ids);
    // Party 1 presents a certificate party 0 has not pinned.
    c1.identity = NodeIdentity::generate().expect("key generation");
    c0.connect_timeout = Duration::from_secs(2);
    c1.connect_timeout = Duration::from_secs(2);
    let start = Instant::now();
    let [r0, r1, _] = connect([Some(c0), Some(c1), None]);
    match r1.expect("started") {
        Err(NetError::Connection {
            peer: PartyId::P0, ..
        }) => {}
        other => panic!("party 1 should be refused by party 0: {other:?}"),
    }
    match r0.expect("started") {
        Err(NetError::ConnectTimeout { missing, .. }) => {
            assert_eq!(missing, vec![PartyId::P1, PartyId::P2]);
        }
        other => panic!("party 0 should not accept party 1: {other:?}"),
    }
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn an_acceptor_with_an_unpinned_certificate_is_refused() {
    let ids = identities();
    let [mut c0, mut c1, _] = configs(&ids);
    // Party 0 presents a certificate party 1 (which dials it) has not pinned.
    c0.identity = NodeIdentity::generate().expect("key generation");
    c0.connect_timeout = Duration::from_secs(2);
    c1.connect_timeout = Duration::from_secs(2);
    let [r0, r1, _] = connect([Some(c0), Some(c1), None]);
    match r1.expect("started") {
        Err(NetError::Connection {
            peer: PartyId::P0,
            source,
        }) => {
            // The dialer's own verifier refused it.
            assert!(source.to_string().contains("certificate"), "{source}");
        }
        other => panic!("party 1 should refuse party 0: {other:?}"),
    }
    assert!(matches!(
        r0.expect("started"),
        Err(NetError::ConnectTimeout { .. })
    ));
}

#[test]
fn recv_times_out_when_the_peer_sends_nothing() {
    let [mut t0, mut t1, _t2] = mesh(|c| c.recv_timeout = Some(Duration::from_millis(300)));
    let start = Instant::now();
    match t0.recv(PartyId::P1) {
        Err(TransportError::Timeout {
            peer: PartyId::P1,
            timeout_ms: 300,
        }) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    // The link still works afterwards.
    t1.send(PartyId::P0, vec![7, 8]).expect("send");
    assert_eq!(t0.recv(PartyId::P1).expect("recv"), vec![7, 8]);
    assert!(matches!(
        t0.send(PartyId::P0, vec![]),
        Err(TransportError::SelfMessage { .. })
    ));
}

#[test]
fn a_peer_that_closes_delivers_its_last_frames_then_reads_as_closed() {
    let [mut t0, mut t1, t2] = mesh(|c| c.recv_timeout = Some(Duration::from_secs(30)));
    let last = values(3, 1 << 20);
    t1.send(PartyId::P0, last.clone()).expect("send");
    // Party 1 exits right after sending: the frame must still arrive.
    let closer = thread::spawn(move || t1.close());
    thread::sleep(Duration::from_millis(50));
    assert!(t0.recv(PartyId::P1).expect("last frame") == last);
    let start = Instant::now();
    match t0.recv(PartyId::P1) {
        Err(TransportError::Closed { peer: PartyId::P1 }) => {}
        other => panic!("expected Closed, got {other:?}"),
    }
    assert!(start.elapsed() < Duration::from_secs(10));
    closer.join().expect("closer");

    // Sending to the gone peer fails soon (the first sends may be queued
    // before the writer learns the connection is closed).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match t0.send(PartyId::P1, vec![1]) {
            Err(TransportError::Closed { peer: PartyId::P1 }) => break,
            Ok(()) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            other => panic!("expected Closed, got {other:?}"),
        }
    }

    // A peer that vanishes without closing its streams reads as closed too.
    t2.abort();
    match t0.recv(PartyId::P2) {
        Err(TransportError::Closed { peer: PartyId::P2 }) => {}
        other => panic!("expected Closed, got {other:?}"),
    }
}

/// Frames of random lengths (empty ones too) cut into parts of random
/// lengths, over three connections per peer, both directions at once,
/// arrive whole and in order; a producer
/// that runs dry or past the frame is refused at the sender.
#[test]
fn frames_sent_in_parts_arrive_whole_and_in_order() {
    let seed = 0x7061_7274_7301;
    println!("seed {seed:#x}");
    let [mut t0, mut t1, _t2] = mesh(|c| {
        c.recv_timeout = Some(Duration::from_secs(30));
        c.lanes = 3;
    });
    assert_eq!(t0.part_words(), Some(1 << 16));
    let frames: Vec<(Vec<u64>, Vec<usize>)> = (0..300u64)
        .map(|case| {
            let r = values(seed ^ case, 4);
            let len = match case % 4 {
                0 => 0,
                1 => (r[0] % 8) as usize,
                _ => (r[0] % 200_000) as usize,
            };
            let mut cuts = Vec::new();
            let mut left = len;
            let mut i = 0;
            while left > 0 {
                let cut = 1 + (values(r[1] ^ i, 1)[0] as usize % left.clamp(1, 70_000));
                cuts.push(cut.min(left));
                left -= cut.min(left);
                i += 1;
            }
            (values(r[2], len), cuts)
        })
        .collect();
    let send_all = |t: &mut QuicTransport, to: PartyId| {
        for (frame, cuts) in &frames {
            let mut offset = 0;
            let mut cuts = cuts.iter();
            t.send_parts(to, frame.len(), &mut || {
                let cut = cuts.next().copied().unwrap_or(0);
                offset += cut;
                frame[offset - cut..offset].to_vec()
            })
            .expect("send parts");
        }
    };
    thread::scope(|s| {
        s.spawn(|| send_all(&mut t0, PartyId::P1));
        s.spawn(|| send_all(&mut t1, PartyId::P0));
    });
    for (t, from) in [(&mut t1, PartyId::P0), (&mut t0, PartyId::P1)] {
        for (case, (frame, _)) in frames.iter().enumerate() {
            let got = t.recv(from).expect("recv");
            assert!(
                got == *frame,
                "case {case}: frame of {} words differs",
                frame.len()
            );
        }
    }
    let mut dry = vec![vec![1u64, 2]].into_iter();
    let error = t0
        .send_parts(PartyId::P1, 5, &mut || dry.next().unwrap_or_default())
        .unwrap_err();
    assert!(
        error.to_string().contains("ended after 2 of 5 words"),
        "{error}"
    );
    let mut long = vec![vec![1u64; 6]].into_iter();
    let error = t0
        .send_parts(PartyId::P1, 5, &mut || long.next().unwrap_or_default())
        .unwrap_err();
    assert!(error.to_string().contains("6 of 5 words"), "{error}");
}

#[test]
fn an_oversized_frame_is_refused_before_allocation() {
    let [mut t0, mut t1, _t2] = mesh(|c| c.frame_words_max = 1000);
    t1.send(PartyId::P0, vec![0; 1000]).expect("send");
    t1.send(PartyId::P0, vec![0; 1001]).expect("send");
    assert_eq!(t0.recv(PartyId::P1).expect("at the limit").len(), 1000);
    match t0.recv(PartyId::P1) {
        Err(TransportError::Io { peer, source }) => {
            assert_eq!(peer, PartyId::P1);
            assert_eq!(source.kind(), io::ErrorKind::InvalidData);
            assert!(source.to_string().contains("1001"), "{source}");
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
    assert!(matches!(
        t0.recv(PartyId::P1),
        Err(TransportError::Closed { peer: PartyId::P1 })
    ));
}
