//! A peer that sends malformed frames: the party that receives one gets a
//! protocol error naming the sender, never a panic, and no party hangs
//! (every receive has a timeout, and a party that fails drops its links so
//! the others see them closed). Party 1 runs the protocol honestly except
//! for one frame it sends, which it changes.

use std::thread;
use std::time::Duration;

use proptest::prelude::*;
use triad_ring::testing::seeded_keys;
use triad_ring::{
    Error, MemoryTransport, PartyId, ProtocolProblem, Session, SessionConfig, Transport,
    TransportError, memory_mesh,
};

/// Words after the payload in every frame: version and round, step, count.
const TRAILER_WORDS: usize = 3;

/// How party 1 changes the frame it tampers with.
#[derive(Debug, Clone)]
enum Tamper {
    /// One payload word fewer or more, with the count saying so: a vector
    /// of the wrong length.
    Resize { longer: bool },
    /// The count claims another length than the payload and step have.
    Count(u64),
    /// Another step: a message for a sub-protocol this party is not in.
    Step(u64),
    /// Another protocol version.
    Version(u8),
    /// The frame cut short by this many words.
    Truncate(usize),
    /// Words appended after the trailer.
    Append(Vec<u64>),
    /// Anything at all instead of the frame.
    Replace(Vec<u64>),
}

impl Tamper {
    /// Whether the receiver is sure to see the frame as malformed (the
    /// others may, by chance, read as a well-formed frame).
    fn always_detected(&self) -> bool {
        matches!(
            self,
            Tamper::Resize { .. } | Tamper::Count(_) | Tamper::Step(_) | Tamper::Version(_)
        )
    }

    fn apply(&self, mut frame: Vec<u64>) -> Vec<u64> {
        let payload = frame.len() - TRAILER_WORDS;
        match self {
            Tamper::Resize { longer } => {
                let mut trailer = frame.split_off(payload);
                // An empty payload can only grow.
                if *longer || frame.pop().is_none() {
                    frame.push(7);
                }
                trailer[2] = frame.len() as u64;
                frame.extend(trailer);
            }
            Tamper::Count(count) => {
                let honest = frame[payload + 2];
                frame[payload + 2] = if *count == honest { !count } else { *count };
            }
            Tamper::Step(delta) => frame[payload + 1] = frame[payload + 1].wrapping_add(*delta),
            Tamper::Version(version) => {
                frame[payload] = (frame[payload] & !0xff) | u64::from(*version);
            }
            Tamper::Truncate(words) => frame.truncate(frame.len().saturating_sub(*words)),
            Tamper::Append(words) => frame.extend(words),
            Tamper::Replace(words) => frame.clone_from(words),
        }
        frame
    }
}

fn tamper() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        any::<bool>().prop_map(|longer| Tamper::Resize { longer }),
        any::<u64>().prop_map(Tamper::Count),
        (1u64..).prop_map(Tamper::Step),
        (0u8..)
            .prop_filter("another version", |v| *v != 1)
            .prop_map(Tamper::Version),
        (1usize..6).prop_map(Tamper::Truncate),
        prop::collection::vec(any::<u64>(), 1..4).prop_map(Tamper::Append),
        prop::collection::vec(any::<u64>(), 0..12).prop_map(Tamper::Replace),
    ]
}

/// Party 1's transport: honest but for its `at`-th frame (counting frames
/// to either peer), which it changes.
struct Tampering {
    inner: MemoryTransport,
    at: usize,
    sent: usize,
    tamper: Tamper,
    /// Who received the changed frame, once it is sent.
    victim: Option<PartyId>,
}

impl Transport for Tampering {
    fn send(&mut self, to: PartyId, mut message: Vec<u64>) -> Result<(), TransportError> {
        if self.sent == self.at {
            message = self.tamper.apply(message);
            self.victim = Some(to);
        }
        self.sent += 1;
        self.inner.send(to, message)
    }

    fn recv(&mut self, from: PartyId) -> Result<Vec<u64>, TransportError> {
        self.inner.recv(from)
    }
}

/// Some of every kind of round: a multiplication, a comparison (many
/// rounds of bit operations), openings of both kinds of share.
fn protocol<T: Transport>(session: &mut Session<T>, n: usize) -> Result<Vec<u64>, Error> {
    let x = session.public(&(0..n as u64).collect::<Vec<_>>());
    let y = session.public(&(0..n as u64).map(|v| 3 * v + 1).collect::<Vec<_>>());
    let product = session.mul(&x, &y)?;
    let less = session.lt(&x, &product, 16)?;
    let mut out = session.reveal(&product)?;
    out.extend(session.reveal_bits(&less)?.into_iter().map(u64::from));
    Ok(out)
}

const RECV_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the protocol with party 1 tampering as told; returns the three
/// results and who received the changed frame.
fn run(n: usize, at: usize, tamper: Tamper) -> ([Result<Vec<u64>, Error>; 3], Option<PartyId>) {
    let keys = seeded_keys(7);
    let [t0, t1, t2] = memory_mesh().map(|t| t.with_timeout(RECV_TIMEOUT));
    let config = SessionConfig::default();
    thread::scope(|scope| {
        let honest = |transport: MemoryTransport, id: PartyId| {
            let (keys, config) = (&keys, &config);
            scope.spawn(move || {
                let mut session = Session::new(id, transport, &keys[id.index()], config)?;
                protocol(&mut session, n)
            })
        };
        let p0 = honest(t0, PartyId::P0);
        let p2 = honest(t2, PartyId::P2);
        let p1 = {
            let (keys, config) = (&keys, &config);
            scope.spawn(move || {
                let tampering = Tampering {
                    inner: t1,
                    at,
                    sent: 0,
                    tamper,
                    victim: None,
                };
                let mut session = Session::new(PartyId::P1, tampering, &keys[1], config)?;
                let result = protocol(&mut session, n);
                let victim = session.into_transport().victim;
                Ok((result, victim))
            })
        };
        let (r0, r2) = (join(p0), join(p2));
        let (r1, victim) = match join(p1) {
            Ok((result, victim)) => (result, victim),
            Err(error) => (Err(error), None),
        };
        ([r0, r1, r2], victim)
    })
}

/// A panic in any party fails the test here.
fn join<T>(handle: thread::ScopedJoinHandle<'_, T>) -> T {
    handle.join().expect("no party panics")
}

/// Frames party 1 sends in an honest run of `protocol` on `n` values.
fn honest_frames(n: usize) -> usize {
    let keys = seeded_keys(7);
    let config = SessionConfig::default();
    let [t0, t1, t2] = memory_mesh().map(|t| t.with_timeout(RECV_TIMEOUT));
    let counted = thread::scope(|scope| {
        let handles: Vec<_> = [(t0, PartyId::P0), (t1, PartyId::P1), (t2, PartyId::P2)]
            .into_iter()
            .map(|(transport, id)| {
                let (keys, config) = (&keys, &config);
                scope.spawn(move || {
                    let counting = Tampering {
                        inner: transport,
                        at: usize::MAX,
                        sent: 0,
                        tamper: Tamper::Truncate(0),
                        victim: None,
                    };
                    let mut session =
                        Session::new(id, counting, &keys[id.index()], config).expect("session");
                    protocol(&mut session, n).expect("honest run");
                    session.into_transport().sent
                })
            })
            .collect();
        handles.into_iter().map(join).collect::<Vec<_>>()
    });
    counted[1]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_tampered_frame_is_a_protocol_error_for_its_receiver(
        n in 1usize..40,
        at in any::<prop::sample::Index>(),
        tamper in tamper(),
    ) {
        let frames = honest_frames(n);
        let at = at.index(frames);
        // A party that waited for a frame that never came would fail with
        // a timeout, which is not among the outcomes allowed below.
        let (results, victim) = run(n, at, tamper.clone());
        let victim = victim.expect("party 1 sends the tampered frame");
        let received = &results[victim.index()];
        if tamper.always_detected() {
            let detected = matches!(
                received,
                Err(Error::Protocol { peer: PartyId::P1, .. })
            );
            prop_assert!(detected, "{:?} to {:?}: {:?}", tamper, victim, received);
        }
        for (party, result) in results.iter().enumerate() {
            match result {
                Ok(_)
                | Err(Error::Protocol { .. })
                | Err(Error::Inconsistent { .. })
                | Err(Error::Transport(TransportError::Closed { .. })) => {}
                Err(other) => prop_assert!(false, "party {}: {}", party, other),
            }
        }
    }
}

#[test]
fn each_kind_of_malformed_frame_is_named() {
    let frames = honest_frames(5);
    type Case = (Tamper, fn(&ProtocolProblem) -> bool);
    let cases: [Case; 4] = [
        (Tamper::Resize { longer: false }, |p| {
            matches!(p, ProtocolProblem::WrongLength { .. })
        }),
        (Tamper::Count(1 << 40), |p| {
            matches!(p, ProtocolProblem::WrongLength { .. })
        }),
        (Tamper::Step(1000), |p| {
            matches!(p, ProtocolProblem::WrongStep { .. })
        }),
        (Tamper::Version(2), |p| {
            matches!(p, ProtocolProblem::Version { got: 2, .. })
        }),
    ];
    for at in [0, frames - 1] {
        for (tamper, check) in &cases {
            let (results, victim) = run(5, at, tamper.clone());
            let victim = victim.expect("tampered");
            match &results[victim.index()] {
                Err(Error::Protocol {
                    peer: PartyId::P1,
                    problem,
                    ..
                }) => assert!(check(problem), "{tamper:?}: {problem:?}"),
                other => panic!("{tamper:?} at frame {at}: {other:?}"),
            }
        }
    }
}

/// A frame that never comes is a timeout, not a hang.
#[test]
fn a_withheld_frame_is_a_timeout() {
    let [t0, _t1, _t2] = memory_mesh();
    let mut session = Session::new(
        PartyId::P0,
        t0.with_timeout(Duration::from_millis(50)),
        &seeded_keys(7)[0],
        &SessionConfig::default(),
    )
    .expect("session");
    let x = session.public(&[1, 2, 3]);
    assert!(matches!(
        session.reveal(&x),
        Err(Error::Transport(TransportError::Timeout { .. }))
    ));
}
