//! The ring's [`Transport`] over the formed mesh.
//!
//! Per peer, a writer task drains an unbounded queue onto our stream (so
//! `send` never waits for the peer) and a reader task parses frames off the
//! peer's stream into a channel that `recv` blocks on. Frames travel as raw
//! little-endian words: on little-endian hosts the frame's own buffer is
//! handed to quinn and the receiver reads straight into an aligned
//! `Vec<u64>`, so no frame is re-encoded. A frame the protocol streams
//! (`send_parts`) is queued part by part as each is computed, and the
//! reader gathers the parts into the one frame `recv` returns.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use bytes::Bytes;
use quinn::{Connection, ConnectionError, Endpoint, ReadError, ReadExactError, VarInt};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::task::JoinHandle;
use triad_ring::{PartyId, Transport, TransportError};

use crate::config::MeshConfig;
use crate::error::NetError;
use crate::mesh::{Link, MeshListener, close_code};
use crate::wire::{self, HEADER_BYTES};

/// What a reader task hands to `recv`: a frame, or why the link failed.
type Incoming = Result<Vec<u64>, io::Error>;

/// What `send` hands a writer task: some words of a frame of `frame` words.
struct Part {
    words: Vec<u64>,
    frame: usize,
}

/// One party's end of the QUIC mesh; see the crate docs.
pub struct QuicTransport {
    party: PartyId,
    local_addr: SocketAddr,
    links: [Option<PeerLink>; 3],
    recv_timeout: Option<Duration>,
    close_timeout: Duration,
    part_words: usize,
    endpoint: Option<Endpoint>,
    runtime: Option<tokio::runtime::Runtime>,
}

/// The channels and tasks of the link to one peer.
struct PeerLink {
    /// One queue per lane; the writer of each drains it onto that lane's
    /// stream.
    outgoing: Vec<UnboundedSender<Part>>,
    /// The lane of the next part (parts go to the lanes in turn).
    next_lane: usize,
    incoming: Receiver<Incoming>,
    /// One connection per lane.
    connections: Vec<Connection>,
    writers: Vec<JoinHandle<()>>,
    reader: JoinHandle<()>,
}

impl fmt::Debug for QuicTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let peers: Vec<(usize, SocketAddr)> = self
            .links
            .iter()
            .enumerate()
            .filter_map(|(i, l)| {
                l.as_ref()
                    .and_then(|l| l.connections.first())
                    .map(|c| (i, c.remote_address()))
            })
            .collect();
        f.debug_struct("QuicTransport")
            .field("party", &self.party)
            .field("local_addr", &self.local_addr)
            .field("peers", &peers)
            .finish_non_exhaustive()
    }
}

impl QuicTransport {
    /// Binds `config.listen`, forms the mesh (see [`MeshConfig`] for who
    /// dials whom) and returns the transport. Blocks until both peers are
    /// connected or `connect_timeout` passes, so it refuses to run inside an
    /// async runtime ([`NetError::AsyncContext`]).
    pub fn connect_mesh(config: MeshConfig) -> Result<QuicTransport, NetError> {
        MeshListener::bind(config)?.connect()
    }

    /// This node's party.
    pub fn party(&self) -> PartyId {
        self.party
    }

    /// The address this node is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Closes the transport: frames already sent are delivered (up to
    /// `close_timeout`), the streams end, the connections close. Dropping
    /// the transport does the same; this names the moment.
    pub fn close(mut self) {
        self.shutdown(true);
    }

    /// Closes every connection at once, dropping frames not yet delivered,
    /// as a crashing node would. Peers see `TransportError::Closed`.
    pub fn abort(mut self) {
        self.shutdown(false);
    }

    pub(crate) fn start(
        config: &MeshConfig,
        runtime: tokio::runtime::Runtime,
        endpoint: Endpoint,
        links: Vec<Link>,
    ) -> QuicTransport {
        let mut by_peer: [Vec<Link>; 3] = Default::default();
        for link in links {
            by_peer[link.peer.index()].push(link);
        }
        let mut peers: [Option<PeerLink>; 3] = Default::default();
        for (lanes, slot) in by_peer.into_iter().zip(&mut peers) {
            let Some(peer) = lanes.first().map(|l| l.peer) else {
                continue;
            };
            let mut lanes = lanes;
            lanes.sort_by_key(|l| l.lane);
            let mut outgoing = Vec::with_capacity(lanes.len());
            let mut writers = Vec::with_capacity(lanes.len());
            let mut streams = Vec::with_capacity(lanes.len());
            let mut connections = Vec::with_capacity(lanes.len());
            for link in lanes {
                let (sender, queue) = unbounded_channel();
                outgoing.push(sender);
                writers.push(runtime.spawn(write_frames(
                    peer,
                    link.send,
                    queue,
                    config.close_timeout,
                )));
                streams.push(link.recv);
                connections.push(link.connection);
            }
            let (deliver, incoming) = std::sync::mpsc::channel();
            let reader = runtime.spawn(read_frames(
                peer,
                streams,
                connections.clone(),
                deliver,
                config.frame_words_max,
            ));
            *slot = Some(PeerLink {
                outgoing,
                next_lane: 0,
                incoming,
                connections,
                writers,
                reader,
            });
        }
        let local_addr = endpoint.local_addr().unwrap_or(config.listen);
        QuicTransport {
            party: config.party,
            local_addr,
            links: peers,
            recv_timeout: config.recv_timeout,
            close_timeout: config.close_timeout,
            part_words: config.part_words,
            endpoint: Some(endpoint),
            runtime: Some(runtime),
        }
    }

    /// The current path MTU of each link (tests check discovery).
    #[cfg(test)]
    pub(crate) fn path_mtus(&self) -> Vec<u16> {
        self.links
            .iter()
            .flatten()
            .flat_map(|l| &l.connections)
            .map(|c| c.stats().path.current_mtu)
            .collect()
    }

    /// Connections to each peer (tests check the lanes formed).
    #[cfg(test)]
    pub(crate) fn lane_counts(&self) -> Vec<usize> {
        self.links
            .iter()
            .flatten()
            .map(|l| l.connections.len())
            .collect()
    }

    fn link(&self, peer: PartyId) -> Result<&PeerLink, TransportError> {
        self.links[peer.index()]
            .as_ref()
            .ok_or(TransportError::SelfMessage { party: self.party })
    }

    /// Queues `part` for `to` on the next lane.
    fn queue(&mut self, to: PartyId, part: Part) -> Result<(), TransportError> {
        let link = self.links[to.index()]
            .as_mut()
            .ok_or(TransportError::SelfMessage { party: self.party })?;
        let lane = link.next_lane;
        link.next_lane = (lane + 1) % link.outgoing.len();
        link.outgoing[lane]
            .send(part)
            .map_err(|_| TransportError::Closed { peer: to })
    }

    /// Ends every link; `graceful` first lets the writers deliver what was
    /// queued and waits for the peers' acknowledgements.
    fn shutdown(&mut self, graceful: bool) {
        let Some(runtime) = self.runtime.take() else {
            return;
        };
        let links: Vec<PeerLink> = self.links.iter_mut().filter_map(Option::take).collect();
        let endpoint = self.endpoint.take();
        if tokio::runtime::Handle::try_current().is_ok() {
            // Inside some async runtime we may not block: stop at once.
            tracing::warn!("QuicTransport dropped inside an async runtime; closing abruptly");
            drop((links, endpoint));
            runtime.shutdown_background();
            return;
        }
        let close_timeout = self.close_timeout;
        runtime.block_on(async move {
            let deadline = tokio::time::Instant::now() + close_timeout;
            let mut tasks = Vec::new();
            for link in links {
                let PeerLink {
                    outgoing,
                    connections,
                    writers,
                    reader,
                    ..
                } = link;
                // Closing the queues tells the writers to finish the streams.
                drop(outgoing);
                tasks.push((connections, writers, reader));
            }
            if graceful {
                for (_, writers, _) in &mut tasks {
                    for writer in writers {
                        let _ = tokio::time::timeout_at(deadline, writer).await;
                    }
                }
            }
            for (connections, writers, reader) in tasks {
                for (lane, connection) in connections.iter().enumerate() {
                    // Enough to tell a link that lost packets or never found
                    // a large MTU from a healthy one.
                    let stats = connection.stats();
                    tracing::debug!(
                        remote = %connection.remote_address(),
                        lane,
                        mtu = stats.path.current_mtu,
                        rtt_us = stats.path.rtt.as_micros() as u64,
                        cwnd = stats.path.cwnd,
                        lost_packets = stats.path.lost_packets,
                        datagrams_sent = stats.udp_tx.datagrams,
                        datagrams_received = stats.udp_rx.datagrams,
                        "link statistics"
                    );
                    connection.close(VarInt::from_u32(close_code::DONE), b"closed");
                }
                for writer in writers {
                    writer.abort();
                }
                reader.abort();
            }
            if let Some(endpoint) = endpoint {
                // Wait until the close frames are out.
                let _ = tokio::time::timeout_at(deadline, endpoint.wait_idle()).await;
            }
        });
        runtime.shutdown_timeout(Duration::from_millis(100));
    }
}

impl Drop for QuicTransport {
    fn drop(&mut self) {
        self.shutdown(true);
    }
}

impl Transport for QuicTransport {
    fn send(&mut self, to: PartyId, message: Vec<u64>) -> Result<(), TransportError> {
        let frame = message.len();
        self.queue(
            to,
            Part {
                words: message,
                frame,
            },
        )
    }

    fn part_words(&self) -> Option<usize> {
        (self.part_words > 0).then_some(self.part_words)
    }

    fn send_parts(
        &mut self,
        to: PartyId,
        words: usize,
        next_part: &mut dyn FnMut() -> Vec<u64>,
    ) -> Result<(), TransportError> {
        self.link(to)?;
        let mut sent = 0;
        while sent < words || words == 0 {
            let part = next_part();
            if part.is_empty() && words > 0 {
                return Err(triad_ring::transport::unfinished(to, sent, words));
            }
            if part.len() > words - sent {
                return Err(triad_ring::transport::unfinished(
                    to,
                    sent + part.len(),
                    words,
                ));
            }
            sent += part.len();
            self.queue(
                to,
                Part {
                    words: part,
                    frame: words,
                },
            )?;
            if words == 0 {
                break;
            }
        }
        Ok(())
    }

    fn recv(&mut self, from: PartyId) -> Result<Vec<u64>, TransportError> {
        let timeout = self.recv_timeout;
        let incoming = &self.link(from)?.incoming;
        let item = match timeout {
            None => incoming
                .recv()
                .map_err(|_| TransportError::Closed { peer: from })?,
            Some(timeout) => incoming.recv_timeout(timeout).map_err(|e| match e {
                RecvTimeoutError::Timeout => TransportError::Timeout {
                    peer: from,
                    timeout_ms: timeout.as_millis() as u64,
                },
                RecvTimeoutError::Disconnected => TransportError::Closed { peer: from },
            })?,
        };
        item.map_err(|source| TransportError::Io { peer: from, source })
    }
}

/// A frame's words as bytes for quinn, without copying on little-endian
/// hosts.
fn frame_bytes(frame: Vec<u64>) -> Bytes {
    /// Owns the words while quinn holds the bytes.
    struct Words(Vec<u64>);
    impl AsRef<[u8]> for Words {
        fn as_ref(&self) -> &[u8] {
            bytemuck::cast_slice(&self.0)
        }
    }
    if cfg!(target_endian = "little") {
        Bytes::from_owner(Words(frame))
    } else {
        Bytes::from(
            frame
                .iter()
                .flat_map(|w| w.to_le_bytes())
                .collect::<Vec<u8>>(),
        )
    }
}

/// Writes every queued frame to the peer; when the queue closes, ends the
/// stream and waits until the peer has acknowledged all of it.
async fn write_frames(
    peer: PartyId,
    mut stream: quinn::SendStream,
    mut queue: UnboundedReceiver<Part>,
    close_timeout: Duration,
) {
    while let Some(Part { words, frame }) = queue.recv().await {
        let header = Bytes::copy_from_slice(&wire::header(words.len(), frame));
        let mut chunks = [header, frame_bytes(words)];
        if let Err(error) = stream.write_all_chunks(&mut chunks).await {
            // `send` reports Closed from now on; `recv` says why, if the
            // connection is gone.
            tracing::debug!(peer = peer.index(), %error, "writing stopped");
            return;
        }
    }
    if stream.finish().is_ok() {
        let _ = tokio::time::timeout(close_timeout, stream.stopped()).await;
    }
}

/// Reads frames from the peer into `deliver` until its streams end: part
/// `k` from lane `k mod lanes`, as the peer sent them.
async fn read_frames(
    peer: PartyId,
    mut streams: Vec<quinn::RecvStream>,
    connections: Vec<Connection>,
    deliver: Sender<Incoming>,
    words_max: u64,
) {
    let lanes = streams.len();
    let mut lane = 0;
    let fail = |error: NetError| {
        let kind = match error {
            NetError::TruncatedFrame { .. } => io::ErrorKind::UnexpectedEof,
            NetError::FrameTooLarge { .. } | NetError::BadPart { .. } => io::ErrorKind::InvalidData,
            _ => io::ErrorKind::Other,
        };
        tracing::warn!(peer = peer.index(), %error, "link failed");
        let _ = deliver.send(Err(io::Error::new(kind, error)));
    };
    loop {
        let mut frame: Vec<u64> = Vec::new();
        let mut expected = None;
        // Gather parts until the frame is whole (an empty frame is one
        // empty part).
        while expected.is_none_or(|n| frame.len() < n) {
            let stream = &mut streams[lane];
            lane = (lane + 1) % lanes;
            let mut header = [0u8; HEADER_BYTES];
            match stream.read_exact(&mut header).await {
                Ok(()) => {}
                // The peer ended its stream between frames: it closed.
                Err(ReadExactError::FinishedEarly(0)) if expected.is_none() => return,
                Err(ReadExactError::FinishedEarly(_)) => {
                    return fail(NetError::TruncatedFrame { peer });
                }
                Err(ReadExactError::ReadError(error)) => return read_failed(peer, error, fail),
            }
            let in_progress = expected.map(|n| (frame.len(), n));
            let (part, n) = match wire::part_words(header, in_progress, words_max, peer) {
                Ok(counts) => counts,
                Err(error) => {
                    // The stream cannot be resynchronised: end the link.
                    for connection in &connections {
                        connection.close(
                            VarInt::from_u32(close_code::FRAME_TOO_LARGE),
                            b"bad frame header",
                        );
                    }
                    return fail(error);
                }
            };
            if expected.is_none() {
                expected = Some(n);
                frame.reserve_exact(n);
            }
            match read_words(stream, &mut frame, part).await {
                Ok(true) => {}
                Ok(false) => return fail(NetError::TruncatedFrame { peer }),
                Err(error) => return read_failed(peer, error, fail),
            }
        }
        if deliver.send(Ok(frame)).is_err() {
            // The transport is gone; nobody reads any more.
            return;
        }
    }
}

/// Appends `words` little-endian words off `stream` to `frame`, or says
/// `false` if the stream ends first. The words are copied once, straight
/// from quinn's received chunks into the frame, whose spare capacity is
/// never zeroed first (zeroing a frame of a million words costs as much as
/// copying it); a word split between two chunks is carried over.
async fn read_words(
    stream: &mut quinn::RecvStream,
    frame: &mut Vec<u64>,
    words: usize,
) -> Result<bool, ReadError> {
    let end = frame.len() + words;
    let mut carry = [0u8; 8];
    let mut carried = 0usize;
    while frame.len() < end {
        let wanted = (end - frame.len()) * 8 - carried;
        let Some(chunk) = stream.read_chunk(wanted, true).await? else {
            return Ok(false);
        };
        let mut bytes: &[u8] = &chunk.bytes;
        if carried > 0 {
            let take = (8 - carried).min(bytes.len());
            carry[carried..carried + take].copy_from_slice(&bytes[..take]);
            carried += take;
            bytes = &bytes[take..];
            if carried < 8 {
                continue;
            }
            frame.push(u64::from_le_bytes(carry));
        }
        let whole = bytes.chunks_exact(8);
        let rest = whole.remainder();
        frame.extend(
            whole.map(|w| u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]])),
        );
        carry[..rest.len()].copy_from_slice(rest);
        carried = rest.len();
    }
    Ok(true)
}

/// A peer that closed, reset or timed out is gone (`recv` reports Closed
/// once the frames before are consumed); a protocol violation is an error.
fn read_failed(peer: PartyId, error: ReadError, fail: impl FnOnce(NetError)) {
    match error {
        ReadError::ConnectionLost(
            ref lost @ (ConnectionError::TransportError(_) | ConnectionError::VersionMismatch),
        ) => fail(NetError::Connection {
            peer,
            source: lost.clone(),
        }),
        ReadError::ConnectionLost(ConnectionError::ApplicationClosed(ref close))
            if close.error_code == VarInt::from_u32(close_code::FRAME_TOO_LARGE) =>
        {
            fail(NetError::Read {
                peer,
                source: ReadExactError::ReadError(error.clone()),
            })
        }
        error => tracing::debug!(peer = peer.index(), %error, "peer gone"),
    }
}
