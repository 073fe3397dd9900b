//! The channel the protocols run over, and an in-memory mesh of three for
//! tests and benchmarks.
//!
//! A transport moves whole frames of 64-bit words between the three
//! parties, in order per direction; on a wire they travel as raw
//! little-endian bytes. Words rather than bytes because every payload is a
//! vector of ring elements: a socket transport reads straight into an
//! aligned `Vec<u64>` and the in-memory one moves the vector, so no frame is
//! ever re-encoded. Sends must not block on the receiver (protocols send
//! before they receive in every round); receives block until a frame
//! arrives or the peer is gone.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::Duration;

use crate::party::PartyId;

/// A blocking, ordered, reliable message channel to the two other parties.
pub trait Transport: Send {
    /// Queues the frame `message` for `to`. Must not wait for `to` to
    /// receive it.
    fn send(&mut self, to: PartyId, message: Vec<u64>) -> Result<(), TransportError>;
    /// Waits for the next frame from `from`.
    fn recv(&mut self, from: PartyId) -> Result<Vec<u64>, TransportError>;

    /// The part size, in words, in which this transport streams a large
    /// frame (see [`Transport::send_parts`]), or `None` when it gains
    /// nothing from parts and takes whole frames.
    fn part_words(&self) -> Option<usize> {
        None
    }

    /// Queues a frame of `words` words for `to`, produced part by part:
    /// `next_part` is called until the parts add up to `words`, and the
    /// receiver's `recv` returns them as one frame. A transport that
    /// streams queues each part as soon as it is produced, so the sender
    /// computes the next part while the last one is on the wire. This
    /// default gathers the parts and sends them whole.
    fn send_parts(
        &mut self,
        to: PartyId,
        words: usize,
        next_part: &mut dyn FnMut() -> Vec<u64>,
    ) -> Result<(), TransportError> {
        let mut frame = next_part();
        while frame.len() < words {
            let part = next_part();
            if part.is_empty() {
                return Err(unfinished(to, frame.len(), words));
            }
            frame.extend_from_slice(&part);
        }
        if frame.len() > words {
            return Err(unfinished(to, frame.len(), words));
        }
        self.send(to, frame)
    }
}

/// The error for a part producer that ran dry before its frame was whole,
/// or ran past it (a bug in the caller, reported rather than sent
/// malformed).
pub fn unfinished(to: PartyId, got: usize, words: usize) -> TransportError {
    TransportError::Io {
        peer: to,
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("frame parts ended after {got} of {words} words"),
        ),
    }
}

// A session can borrow a transport that outlives it (a node's mesh serves
// many queries, each with its own session).
impl<T: Transport + ?Sized> Transport for &mut T {
    fn send(&mut self, to: PartyId, message: Vec<u64>) -> Result<(), TransportError> {
        (**self).send(to, message)
    }

    fn recv(&mut self, from: PartyId) -> Result<Vec<u64>, TransportError> {
        (**self).recv(from)
    }

    fn part_words(&self) -> Option<usize> {
        (**self).part_words()
    }

    fn send_parts(
        &mut self,
        to: PartyId,
        words: usize,
        next_part: &mut dyn FnMut() -> Vec<u64>,
    ) -> Result<(), TransportError> {
        (**self).send_parts(to, words, next_part)
    }
}

/// Why a transport could not move a message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The peer closed the channel or went away.
    #[error("channel to {peer} is closed")]
    Closed {
        /// The peer.
        peer: PartyId,
    },
    /// No message arrived in time.
    #[error("no message from {peer} within {timeout_ms} ms")]
    Timeout {
        /// The peer.
        peer: PartyId,
        /// The timeout that passed.
        timeout_ms: u64,
    },
    /// An I/O error on the link to the peer.
    #[error("i/o error with {peer}: {source}")]
    Io {
        /// The peer.
        peer: PartyId,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A party tried to send to itself.
    #[error("{party} cannot message itself")]
    SelfMessage {
        /// The party.
        party: PartyId,
    },
}

/// One party's end of an in-process mesh; see [`memory_mesh`].
#[derive(Debug)]
pub struct MemoryTransport {
    id: PartyId,
    senders: [Option<Sender<Vec<u64>>>; 3],
    receivers: [Option<Receiver<Vec<u64>>>; 3],
    timeout: Option<Duration>,
    parts: Option<usize>,
}

/// Three connected in-memory transports, indexed by party. Frames are
/// moved, not copied.
pub fn memory_mesh() -> [MemoryTransport; 3] {
    let mut senders: [[Option<Sender<Vec<u64>>>; 3]; 3] = Default::default();
    let mut receivers: [[Option<Receiver<Vec<u64>>>; 3]; 3] = Default::default();
    for from in 0..3 {
        for to in 0..3 {
            if from != to {
                let (tx, rx) = channel();
                senders[from][to] = Some(tx);
                receivers[to][from] = Some(rx);
            }
        }
    }
    let [s0, s1, s2] = senders;
    let [r0, r1, r2] = receivers;
    [(s0, r0), (s1, r1), (s2, r2)]
        .into_iter()
        .zip(PartyId::ALL)
        .map(|((senders, receivers), id)| MemoryTransport {
            id,
            senders,
            receivers,
            timeout: None,
            parts: None,
        })
        .collect::<Vec<_>>()
        .try_into()
        .unwrap_or_else(|_| unreachable!("three parties give three transports"))
}

impl MemoryTransport {
    /// Makes `recv` fail with [`TransportError::Timeout`] after `timeout`
    /// instead of waiting forever; tests use it so a bug cannot hang them.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Asks senders for frames in parts of `words` words (gathered again
    /// before they are moved), so tests cover the parts a streaming
    /// transport asks for.
    pub fn with_parts(mut self, words: usize) -> Self {
        self.parts = Some(words);
        self
    }
}

impl Transport for MemoryTransport {
    fn send(&mut self, to: PartyId, message: Vec<u64>) -> Result<(), TransportError> {
        let sender = self.senders[to.index()]
            .as_ref()
            .ok_or(TransportError::SelfMessage { party: self.id })?;
        sender
            .send(message)
            .map_err(|_| TransportError::Closed { peer: to })
    }

    fn recv(&mut self, from: PartyId) -> Result<Vec<u64>, TransportError> {
        let receiver = self.receivers[from.index()]
            .as_ref()
            .ok_or(TransportError::SelfMessage { party: self.id })?;
        match self.timeout {
            None => receiver
                .recv()
                .map_err(|_| TransportError::Closed { peer: from }),
            Some(timeout) => receiver.recv_timeout(timeout).map_err(|e| match e {
                RecvTimeoutError::Timeout => TransportError::Timeout {
                    peer: from,
                    timeout_ms: timeout.as_millis() as u64,
                },
                RecvTimeoutError::Disconnected => TransportError::Closed { peer: from },
            }),
        }
    }

    fn part_words(&self) -> Option<usize> {
        self.parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mesh_delivers_in_order_and_reports_closed_peers() {
        let [mut a, mut b, c] = memory_mesh();
        a.send(PartyId::P1, vec![1]).unwrap();
        a.send(PartyId::P1, vec![2, 3]).unwrap();
        assert_eq!(b.recv(PartyId::P0).unwrap(), vec![1]);
        assert_eq!(b.recv(PartyId::P0).unwrap(), vec![2, 3]);
        assert!(matches!(
            a.send(PartyId::P0, vec![]),
            Err(TransportError::SelfMessage { .. })
        ));
        drop(c);
        assert!(matches!(
            b.recv(PartyId::P2),
            Err(TransportError::Closed { peer: PartyId::P2 })
        ));
    }

    #[test]
    fn parts_arrive_as_one_frame_and_a_dry_producer_is_an_error() {
        let [a, mut b, _c] = memory_mesh();
        let mut a = a.with_parts(2);
        assert_eq!(a.part_words(), Some(2));
        let mut parts = vec![vec![1, 2], vec![3, 4], vec![5]].into_iter();
        a.send_parts(PartyId::P1, 5, &mut || parts.next().unwrap_or_default())
            .unwrap();
        assert_eq!(b.recv(PartyId::P0).unwrap(), vec![1, 2, 3, 4, 5]);
        let mut parts = vec![vec![1, 2]].into_iter();
        let error = a
            .send_parts(PartyId::P1, 5, &mut || parts.next().unwrap_or_default())
            .unwrap_err();
        assert!(
            error.to_string().contains("i/o error with party 1"),
            "{error}"
        );
        assert!(matches!(
            error,
            TransportError::Io { ref source, .. } if source.to_string() == "frame parts ended after 2 of 5 words"
        ));
        let mut parts = vec![vec![1, 2, 3], vec![4, 5, 6]].into_iter();
        let error = a
            .send_parts(PartyId::P1, 5, &mut || parts.next().unwrap_or_default())
            .unwrap_err();
        assert!(error.to_string().contains("6 of 5 words"), "{error}");
    }

    #[test]
    fn timeout_is_reported() {
        let [a, _b, _c] = memory_mesh();
        let mut a = a.with_timeout(Duration::from_millis(5));
        assert!(matches!(
            a.recv(PartyId::P1),
            Err(TransportError::Timeout { .. })
        ));
    }
}
