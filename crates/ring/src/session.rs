//! One party's view of a protocol run: the transport, the per-session PRG
//! keys, a step counter that gives every sub-protocol its own id and PRG
//! stream, the thread pool for local work, and communication statistics.

use crate::error::{Error, ProtocolProblem};
use crate::party::PartyId;
use crate::prg::{self, PairKeys, SessionKeys};
use crate::transport::Transport;

/// Wire version of the message header; bump on any change of framing.
pub const PROTOCOL_VERSION: u8 = 1;

/// Frame trailer: version (low byte) and round stamp (high half) in one
/// word, then the step, then the payload length in words.
const TRAILER_WORDS: usize = 3;

/// How a session runs.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Epoch of the pairwise keys; a new connection epoch gives new streams.
    pub epoch: u64,
    /// Query id; every query gets streams no other query uses.
    pub query: u64,
    /// Threads for local work. Three parties sharing a machine should split
    /// its cores between them.
    pub threads: usize,
    /// Keep a [`Transcript`] of every message (tests of the parties' view).
    pub record_transcript: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            epoch: 0,
            query: 0,
            threads: 1,
            record_transcript: false,
        }
    }
}

/// Communication counted by one party.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Payload bytes this party sent (headers excluded).
    pub bytes_sent: u64,
    /// Messages this party sent.
    pub messages_sent: u64,
    /// Depth of the longest chain of dependent messages that ends at this
    /// party: the number of communication rounds.
    pub rounds: u32,
}

/// What a party saw on the wire, for tests that the view does not depend on
/// secret inputs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Transcript {
    /// Events in the order they happened.
    pub events: Vec<Event>,
}

/// One entry of a [`Transcript`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A message sent.
    Sent {
        /// Receiver.
        to: PartyId,
        /// Protocol step.
        step: u64,
        /// Elements sent.
        words: usize,
        /// Round stamp.
        round: u32,
    },
    /// A message received, with its payload.
    Received {
        /// Sender.
        from: PartyId,
        /// Protocol step.
        step: u64,
        /// Round stamp.
        round: u32,
        /// The payload, for statistical tests of what a party learns.
        payload: Vec<u64>,
    },
    /// A permutation opened inside a sort or shuffle-based protocol.
    RevealedPermutation(Vec<u32>),
}

/// One party's side of a protocol run. All protocol operations are methods
/// on it; the three parties must call the same operations in the same order.
pub struct Session<T: Transport> {
    id: PartyId,
    transport: T,
    keys: SessionKeys,
    step: u64,
    depth: u32,
    stats: Stats,
    pool: rayon::ThreadPool,
    transcript: Option<Transcript>,
}

impl<T: Transport> std::fmt::Debug for Session<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("step", &self.step)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<T: Transport> Session<T> {
    /// Starts a session for party `id` over `transport`.
    pub fn new(
        id: PartyId,
        transport: T,
        keys: &PairKeys,
        config: &SessionConfig,
    ) -> Result<Session<T>, Error> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(config.threads.max(1))
            .thread_name(move |i| format!("triad-{}-{i}", id.index()))
            .build()?;
        Ok(Session {
            id,
            transport,
            keys: keys.derive(config.epoch, config.query),
            step: 0,
            depth: 0,
            stats: Stats::default(),
            pool,
            transcript: config.record_transcript.then(Transcript::default),
        })
    }

    /// This party.
    pub fn id(&self) -> PartyId {
        self.id
    }

    /// Communication so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Zeroes the counters, to measure one operation. The round clock
    /// restarts too, so rounds count from here.
    pub fn reset_stats(&mut self) {
        self.stats = Stats::default();
        self.depth = 0;
    }

    /// The transcript, if the session records one.
    pub fn transcript(&self) -> Option<&Transcript> {
        self.transcript.as_ref()
    }

    /// Threads used for local work.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Ends the session and hands back the transport.
    pub fn into_transport(self) -> T {
        self.transport
    }

    /// A fresh step id: names the next message exchange and its PRG stream.
    pub(crate) fn next_step(&mut self) -> u64 {
        self.step += 1;
        self.step
    }

    /// Runs local work on this session's thread pool.
    pub(crate) fn install<R: Send>(&self, work: impl FnOnce() -> R + Send) -> R {
        self.pool.install(work)
    }

    pub(crate) fn record(&mut self, event: Event) {
        if let Some(transcript) = &mut self.transcript {
            transcript.events.push(event);
        }
    }

    /// Sends `words` to `to` as step `step`: one frame, the payload followed
    /// by a trailer (so the receiver can drop it without moving the
    /// payload). A transport that streams gets it in parts, each copied
    /// just before it is queued.
    pub(crate) fn send(&mut self, to: PartyId, step: u64, words: &[u64]) -> Result<(), Error> {
        self.send_produced(to, step, words.len(), |_, range, part| {
            part.extend_from_slice(&words[range]);
        })
    }

    /// As [`Session::send`], taking the payload by value so it becomes the
    /// frame without a copy (whole, since it is computed already).
    pub(crate) fn send_owned(
        &mut self,
        to: PartyId,
        step: u64,
        mut message: Vec<u64>,
    ) -> Result<(), Error> {
        // Already computed: streaming it would only add a copy.
        let words = message.len();
        message.extend_from_slice(&self.trailer(step, words));
        self.transport.send(to, message)?;
        self.count_sent(to, step, words);
        Ok(())
    }

    /// Computes `out` and sends it to `to` as step `step`: `fill(offset,
    /// chunk)` computes the words of `out` from `offset` on, on this
    /// session's pool. When the transport streams, `out` is filled and
    /// sent part by part, so the transport encrypts and sends one part
    /// while the next is computed; otherwise it is filled whole first.
    /// `out` keeps the words (usually they are also the sender's share).
    pub(crate) fn send_computed(
        &mut self,
        to: PartyId,
        step: u64,
        out: &mut [u64],
        fill: impl Fn(usize, &mut [u64]) + Sync,
    ) -> Result<(), Error> {
        let n = out.len();
        if self.transport.part_words().is_none() {
            self.install(|| fill(0, out));
            return self.send(to, step, out);
        }
        self.send_produced(to, step, n, |pool, range, part| {
            let start = range.start;
            let chunk = &mut out[range];
            pool.install(|| fill(start, chunk));
            part.extend_from_slice(chunk);
        })
    }

    /// Sends a payload of `n` words as step `step` in the parts the
    /// transport asks for (one when it takes whole frames): `produce`
    /// appends the words of a range to the part. The trailer ends the last
    /// part.
    fn send_produced(
        &mut self,
        to: PartyId,
        step: u64,
        n: usize,
        mut produce: impl FnMut(&rayon::ThreadPool, std::ops::Range<usize>, &mut Vec<u64>),
    ) -> Result<(), Error> {
        let trailer = self.trailer(step, n);
        let part_len = match self.transport.part_words() {
            Some(p) if p > 0 && n > p => p,
            _ => n,
        };
        let Session {
            transport, pool, ..
        } = self;
        let mut offset = 0;
        let mut next_part = || {
            let end = (offset + part_len).min(n);
            let last = end == n;
            let mut part = Vec::with_capacity(end - offset + if last { TRAILER_WORDS } else { 0 });
            produce(pool, offset..end, &mut part);
            if last {
                part.extend_from_slice(&trailer);
            }
            offset = end;
            part
        };
        transport.send_parts(to, n + TRAILER_WORDS, &mut next_part)?;
        self.count_sent(to, step, n);
        Ok(())
    }

    /// The trailer of a message of `words` words sent now as step `step`.
    fn trailer(&self, step: u64, words: usize) -> [u64; TRAILER_WORDS] {
        let round = self.depth + 1;
        [
            u64::from(PROTOCOL_VERSION) | (u64::from(round) << 32),
            step,
            words as u64,
        ]
    }

    fn count_sent(&mut self, to: PartyId, step: u64, words: usize) {
        let round = self.depth + 1;
        self.stats.bytes_sent += words as u64 * 8;
        self.stats.messages_sent += 1;
        self.stats.rounds = self.stats.rounds.max(round);
        self.record(Event::Sent {
            to,
            step,
            words,
            round,
        });
    }

    /// Receives step `step` from `from`, which must carry `expected` words.
    pub(crate) fn recv(
        &mut self,
        from: PartyId,
        step: u64,
        expected: usize,
    ) -> Result<Vec<u64>, Error> {
        let mut message = self.transport.recv(from)?;
        let bad = |problem| Error::Protocol {
            peer: from,
            step,
            problem,
        };
        let Some(payload_words) = message.len().checked_sub(TRAILER_WORDS) else {
            return Err(bad(ProtocolProblem::Truncated {
                len: message.len() * 8,
            }));
        };
        let trailer = &message[payload_words..];
        let version = (trailer[0] & 0xff) as u8;
        let round = (trailer[0] >> 32) as u32;
        let (got_step, count) = (trailer[1], trailer[2]);
        if version != PROTOCOL_VERSION {
            return Err(bad(ProtocolProblem::Version {
                expected: PROTOCOL_VERSION,
                got: version,
            }));
        }
        if got_step != step {
            return Err(bad(ProtocolProblem::WrongStep { got: got_step }));
        }
        if count != expected as u64 || payload_words as u64 != count {
            return Err(bad(ProtocolProblem::WrongLength {
                expected: expected as u64,
                got: count.min(payload_words as u64),
            }));
        }
        message.truncate(payload_words);
        self.depth = self.depth.max(round);
        self.stats.rounds = self.stats.rounds.max(round);
        if self.transcript.is_some() {
            self.record(Event::Received {
                from,
                step,
                round,
                payload: message.clone(),
            });
        }
        Ok(message)
    }

    /// Sends to one neighbour and receives from the other in one round.
    pub(crate) fn exchange(
        &mut self,
        to: PartyId,
        words: &[u64],
        from: PartyId,
        expected: usize,
    ) -> Result<Vec<u64>, Error> {
        let step = self.next_step();
        self.send(to, step, words)?;
        self.recv(from, step, expected)
    }

    /// Fills `out` with this party's own component (index `i`) of a random
    /// sharing, from `K_i` on stream `stream`.
    pub(crate) fn random_own(&self, stream: u64, out: &mut [u64]) {
        let key = self.keys.with_prev;
        self.install(|| prg::fill(&key, stream, out, true));
    }

    /// Fills `out` with component `i + 1` of a random sharing, from `K_{i+1}`.
    pub(crate) fn random_next(&self, stream: u64, out: &mut [u64]) {
        let key = self.keys.with_next;
        self.install(|| prg::fill(&key, stream, out, true));
    }

    /// Both components of a fresh random sharing of `n` elements.
    pub(crate) fn random_pair(&mut self, n: usize) -> (Vec<u64>, Vec<u64>) {
        let stream = self.next_step();
        let mut own = vec![0u64; n];
        let mut next = vec![0u64; n];
        self.random_own(stream, &mut own);
        self.random_next(stream, &mut next);
        (own, next)
    }

    /// This party's part of an additive sharing of zero (the three parts sum
    /// to zero), or of an XOR sharing of zero when `xor`.
    pub(crate) fn zero_share(&mut self, n: usize, xor: bool) -> Vec<u64> {
        let (own, mut next) = self.random_pair(n);
        self.install(|| {
            use rayon::prelude::*;
            next.par_iter_mut()
                .zip(own.par_iter())
                .with_min_len(4096)
                .for_each(|(n, o)| {
                    *n = if xor { *n ^ *o } else { n.wrapping_sub(*o) };
                });
        });
        next
    }

    /// A random ordering known to this party and one neighbour (`order[k]`
    /// is the row moved to position `k`): `with_next` selects the key shared
    /// with the next party, else with the previous.
    pub(crate) fn pair_permutation(&self, stream: u64, n: usize, with_next: bool) -> Vec<u32> {
        let key = if with_next {
            self.keys.with_next
        } else {
            self.keys.with_prev
        };
        prg::permutation(&key, stream, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::memory_mesh;

    fn session(
        transport: crate::transport::MemoryTransport,
        id: PartyId,
    ) -> Session<crate::transport::MemoryTransport> {
        let keys = PairKeys::from_bytes([1; 32], [2; 32]);
        Session::new(id, transport, &keys, &SessionConfig::default()).unwrap()
    }

    fn frame(payload: &[u64], version: u8, round: u32, step: u64, count: u64) -> Vec<u64> {
        let mut f = payload.to_vec();
        f.push(u64::from(version) | (u64::from(round) << 32));
        f.push(step);
        f.push(count);
        f
    }

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        type Case = (Vec<u64>, fn(&ProtocolProblem) -> bool);
        let cases: Vec<Case> = vec![
            (vec![], |p| matches!(p, ProtocolProblem::Truncated { .. })),
            (vec![1, 2], |p| {
                matches!(p, ProtocolProblem::Truncated { .. })
            }),
            (frame(&[7], 9, 1, 1, 1), |p| {
                matches!(p, ProtocolProblem::Version { got: 9, .. })
            }),
            (frame(&[7], PROTOCOL_VERSION, 1, 5, 1), |p| {
                matches!(p, ProtocolProblem::WrongStep { got: 5 })
            }),
            (frame(&[7, 8], PROTOCOL_VERSION, 1, 1, 2), |p| {
                matches!(p, ProtocolProblem::WrongLength { expected: 1, .. })
            }),
            (frame(&[7], PROTOCOL_VERSION, 1, 1, u64::MAX), |p| {
                matches!(p, ProtocolProblem::WrongLength { .. })
            }),
        ];
        for (bytes, check) in cases {
            let [t0, mut t1, _t2] = memory_mesh();
            t1.send(PartyId::P0, bytes).unwrap();
            let mut s0 = session(t0, PartyId::P0);
            match s0.recv(PartyId::P1, 1, 1) {
                Err(Error::Protocol { peer, problem, .. }) => {
                    assert_eq!(peer, PartyId::P1);
                    assert!(check(&problem), "unexpected problem {problem:?}");
                }
                other => panic!("expected a protocol error, got {other:?}"),
            }
        }
    }

    #[test]
    fn well_formed_frame_is_accepted_and_counted() {
        let [t0, mut t1, _t2] = memory_mesh();
        t1.send(PartyId::P0, frame(&[7, 8], PROTOCOL_VERSION, 3, 1, 2))
            .unwrap();
        let mut s0 = session(t0, PartyId::P0);
        assert_eq!(s0.recv(PartyId::P1, 1, 2).unwrap(), vec![7, 8]);
        assert_eq!(s0.stats().rounds, 3);
    }
}
