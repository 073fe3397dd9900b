//! Forming the mesh: bind, dial the lower-index peers, accept the
//! higher-index ones (one connection per lane), and exchange hellos on one
//! unidirectional stream per direction of each connection.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::{Connection, ConnectionError, Endpoint, RecvStream, SendStream, VarInt};
use rustls::pki_types::CertificateDer;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, timeout_at};
use triad_ring::PartyId;

use crate::config::{self, MeshConfig};
use crate::error::{ConfigProblem, NetError};
use crate::identity::fingerprint;
use crate::tls;
use crate::transport::QuicTransport;
use crate::wire::{self, HELLO_BYTES, LANE_BYTES, NET_PROTOCOL_VERSION};

/// Application close codes, seen by the peer.
pub(crate) mod close_code {
    /// Normal end of the transport.
    pub(crate) const DONE: u32 = 0;
    /// The hello carried another protocol version; the reason holds ours.
    pub(crate) const VERSION: u32 = 1;
    /// The hello was malformed or named the wrong party.
    pub(crate) const PROTOCOL: u32 = 2;
    /// A second connection from a party already connected.
    pub(crate) const DUPLICATE: u32 = 3;
    /// A frame header announced more than the receiver accepts.
    pub(crate) const FRAME_TOO_LARGE: u32 = 4;
    /// The hello carried another lane count; the reason holds ours.
    pub(crate) const LANES: u32 = 5;
}

/// Server name sent when dialing. Not checked: the certificate is pinned.
const SERVER_NAME: &str = "triad-node";

/// The longest a single dial attempt waits before starting over (a peer
/// that was not up yet does not answer the first attempt's packets).
const ATTEMPT_MAX: Duration = Duration::from_secs(4);

/// The longest an acceptor waits for the hello on a connection that
/// completed its handshake (the dialer may have given up on it and dialed
/// again), so one stale connection cannot hold up the others.
const HELLO_MAX: Duration = Duration::from_secs(5);

/// A node bound to its address and ready to form the mesh. Splitting
/// [`QuicTransport::connect_mesh`] in two lets a node listen on port 0 and
/// report the port it got before the others dial it.
pub struct MeshListener {
    config: MeshConfig,
    /// Version sent in hellos; differs from the crate's only in tests.
    pub(crate) version: u32,
    /// The server side for peers dialing from this host; the endpoint's own
    /// server configuration serves the rest.
    loopback_server: Arc<quinn::ServerConfig>,
    local_addr: SocketAddr,
    endpoint: Option<Endpoint>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl fmt::Debug for MeshListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshListener")
            .field("party", &self.config.party)
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl MeshListener {
    /// Starts the network runtime and binds the UDP socket. Incoming
    /// handshakes are accepted from here on (only from pinned peers). Like
    /// everything in this crate's API it blocks, so it refuses to run inside
    /// an async runtime.
    pub fn bind(config: MeshConfig) -> Result<MeshListener, NetError> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(NetError::AsyncContext {
                call: "MeshListener::bind",
            });
        }
        config.validate()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.worker_threads)
            .thread_name(format!("triad-net-{}", config.party.index()))
            .enable_all()
            .build()
            .map_err(NetError::Runtime)?;
        let clients: Vec<CertificateDer<'static>> = config
            .peers
            .iter()
            .filter(|p| dials_us(config.party, p.party))
            .map(|p| p.certificate.clone())
            .collect();
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(tls::server_config(
            &config.identity,
            clients,
        )?));
        server.transport_config(Arc::new(config.transport(false)?));
        let mut loopback_server = server.clone();
        loopback_server.transport_config(Arc::new(config.transport(true)?));
        let socket = udp_socket(config.listen, config.socket_buffer_bytes).map_err(|source| {
            NetError::Bind {
                address: config.listen,
                source,
            }
        })?;
        let endpoint = {
            let _context = runtime.enter();
            Endpoint::new(
                config::endpoint_config(),
                Some(server),
                socket,
                Arc::new(quinn::TokioRuntime),
            )
            .map_err(|source| NetError::Bind {
                address: config.listen,
                source,
            })?
        };
        let local_addr = endpoint.local_addr().map_err(|source| NetError::Bind {
            address: config.listen,
            source,
        })?;
        tracing::info!(
            party = config.party.index(),
            %local_addr,
            certificate = %config.identity.fingerprint(),
            "listening"
        );
        Ok(MeshListener {
            config,
            version: NET_PROTOCOL_VERSION,
            loopback_server: Arc::new(loopback_server),
            local_addr,
            endpoint: Some(endpoint),
            runtime: Some(runtime),
        })
    }

    /// The address actually bound (with the port the OS picked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Sets where to dial `party`, for peers whose port became known only
    /// after the configuration was written.
    pub fn set_peer_address(
        &mut self,
        party: PartyId,
        address: SocketAddr,
    ) -> Result<(), NetError> {
        let peer = self
            .config
            .peers
            .iter_mut()
            .find(|p| p.party == party)
            .ok_or(ConfigProblem::PeerIsSelf { party })?;
        peer.address = Some(address);
        Ok(())
    }

    /// Dials the lower-index peers and accepts the higher-index ones, until
    /// both links are up or `connect_timeout` passes. Blocks, so it refuses
    /// to run inside an async runtime ([`NetError::AsyncContext`]).
    pub fn connect(mut self) -> Result<QuicTransport, NetError> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(NetError::AsyncContext {
                call: "MeshListener::connect",
            });
        }
        let me = self.config.party;
        for peer in &self.config.peers {
            if !dials_us(me, peer.party) && peer.address.is_none() {
                return Err(ConfigProblem::MissingAddress { party: peer.party }.into());
            }
        }
        let (Some(runtime), Some(endpoint)) = (self.runtime.take(), self.endpoint.take()) else {
            unreachable!("the runtime and endpoint are only taken here, which consumes self")
        };
        let formed = runtime.block_on(form(
            &self.config,
            self.version,
            endpoint.clone(),
            self.loopback_server.clone(),
        ));
        match formed {
            Ok(links) => {
                // Nobody else may join a formed mesh.
                endpoint.set_server_config(None);
                Ok(QuicTransport::start(&self.config, runtime, endpoint, links))
            }
            Err(error) => {
                // Let the close frames (with the reason for a refused hello)
                // reach the peers before the runtime stops.
                endpoint.close(VarInt::from_u32(close_code::DONE), b"mesh failed");
                let linger = self.config.close_timeout.min(Duration::from_secs(1));
                runtime.block_on(async {
                    let _ = tokio::time::timeout(linger, endpoint.wait_idle()).await;
                });
                drop(endpoint);
                runtime.shutdown_background();
                Err(error)
            }
        }
    }
}

impl Drop for MeshListener {
    fn drop(&mut self) {
        drop(self.endpoint.take());
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Whether `peer` dials `me` (rather than `me` dialing it): the higher
/// index dials the lower.
fn dials_us(me: PartyId, peer: PartyId) -> bool {
    peer.index() > me.index()
}

/// A UDP socket with large buffers, bound to `address`.
fn udp_socket(address: SocketAddr, buffer_bytes: usize) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(address),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    // Best effort: the OS caps these, and a smaller buffer still works.
    if let Err(error) = socket.set_recv_buffer_size(buffer_bytes) {
        tracing::debug!(%error, "cannot set the UDP receive buffer size");
    }
    if let Err(error) = socket.set_send_buffer_size(buffer_bytes) {
        tracing::debug!(%error, "cannot set the UDP send buffer size");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    Ok(socket.into())
}

/// One connection to a peer and the two streams on it, after the hellos.
pub(crate) struct Link {
    pub(crate) peer: PartyId,
    /// Which of the peer's connections this is.
    pub(crate) lane: usize,
    pub(crate) connection: Connection,
    pub(crate) send: SendStream,
    pub(crate) recv: RecvStream,
}

/// What forming one part of the mesh gave.
type Part = Result<Vec<Link>, NetError>;

async fn form(
    config: &MeshConfig,
    version: u32,
    endpoint: Endpoint,
    loopback_server: Arc<quinn::ServerConfig>,
) -> Result<Vec<Link>, NetError> {
    let me = config.party;
    let deadline = Instant::now() + config.connect_timeout;
    let timeout_ms = config.connect_timeout.as_millis() as u64;
    let mut tasks: JoinSet<Part> = JoinSet::new();
    let transport = Arc::new(config.transport(false)?);
    let loopback_transport = Arc::new(config.transport(true)?);
    let mut accepted = Vec::new();
    for peer in &config.peers {
        if dials_us(me, peer.party) {
            accepted.push((peer.party, peer.certificate.clone()));
            continue;
        }
        let address = peer
            .address
            .ok_or(ConfigProblem::MissingAddress { party: peer.party })?;
        let crypto = tls::client_config(&config.identity, peer.certificate.clone())?;
        let mut client = quinn::ClientConfig::new(Arc::new(crypto));
        client.transport_config(if config::is_loopback(address) {
            loopback_transport.clone()
        } else {
            transport.clone()
        });
        for lane in 0..config.lanes {
            let endpoint = endpoint.clone();
            let client = client.clone();
            let hello = Hello {
                me,
                version,
                lane,
                lanes: config.lanes,
            };
            let peer = peer.party;
            tasks.spawn(async move {
                let link = dial(&endpoint, client, hello, peer, address, deadline).await?;
                Ok(vec![link])
            });
        }
    }
    if !accepted.is_empty() {
        let endpoint = endpoint.clone();
        let hello = Hello {
            me,
            version,
            lane: 0,
            lanes: config.lanes,
        };
        tasks.spawn(
            async move { accept(&endpoint, &loopback_server, hello, accepted, deadline).await },
        );
    }
    let mut links = Vec::new();
    let mut missing = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(part)) => links.extend(part),
            // Keep waiting for the other parts, to name every missing peer.
            Ok(Err(NetError::ConnectTimeout { missing: m, .. })) => missing.extend(m),
            // Anything else is a configuration or identity problem that
            // waiting will not fix; dropping the set aborts the rest.
            Ok(Err(error)) => return Err(error),
            Err(join) => {
                // Only a panic in the task (a bug) gets here.
                tracing::error!(error = %join, "mesh task failed");
                return Err(NetError::ConnectTimeout {
                    missing: PartyId::ALL.into_iter().filter(|p| *p != me).collect(),
                    timeout_ms,
                });
            }
        }
    }
    if missing.is_empty() {
        Ok(links)
    } else {
        missing.sort();
        missing.dedup();
        Err(NetError::ConnectTimeout {
            missing,
            timeout_ms,
        })
    }
}

/// What this node says in its hellos: who it is, the protocol version, and
/// which lane of how many (the acceptor answers on the dialer's lane).
#[derive(Clone, Copy, Debug)]
struct Hello {
    me: PartyId,
    version: u32,
    lane: usize,
    lanes: usize,
}

impl Hello {
    fn bytes(&self) -> [u8; HELLO_BYTES + LANE_BYTES] {
        let mut bytes = [0u8; HELLO_BYTES + LANE_BYTES];
        bytes[..HELLO_BYTES].copy_from_slice(&wire::hello(self.version, self.me));
        bytes[HELLO_BYTES..].copy_from_slice(&wire::lane(self.lane, self.lanes));
        bytes
    }
}

/// Dials lane `hello.lane` to `peer` until it answers or the deadline
/// passes, then exchanges hellos (ours first).
async fn dial(
    endpoint: &Endpoint,
    client: quinn::ClientConfig,
    hello: Hello,
    peer: PartyId,
    address: SocketAddr,
    deadline: Instant,
) -> Result<Link, NetError> {
    let Hello { version, lanes, .. } = hello;
    let timeout = || NetError::ConnectTimeout {
        missing: vec![peer],
        timeout_ms: 0,
    };
    let mut attempt = Duration::from_millis(500);
    let connection = loop {
        let connecting = endpoint
            .connect_with(client.clone(), address, SERVER_NAME)
            .map_err(|source| NetError::Connect {
                peer,
                address,
                source,
            })?;
        let attempt_deadline = deadline.min(Instant::now() + attempt);
        match timeout_at(attempt_deadline, connecting).await {
            Ok(Ok(connection)) => break connection,
            Ok(Err(error)) if retryable(&error) => {
                tracing::debug!(peer = peer.index(), %error, "dial failed; retrying");
                // A refusal comes back at once: do not spin.
                if timeout_at(deadline, sleep(Duration::from_millis(100)))
                    .await
                    .is_err()
                {
                    return Err(timeout());
                }
            }
            Ok(Err(source)) => return Err(NetError::Connection { peer, source }),
            Err(_) if Instant::now() >= deadline => return Err(timeout()),
            Err(_) => tracing::debug!(peer = peer.index(), "no answer yet; dialing again"),
        }
        attempt = (attempt * 2).min(ATTEMPT_MAX);
    };
    let exchange = async {
        let mut send = connection
            .open_uni()
            .await
            .map_err(|source| lost(peer, source, hello))?;
        send.write_all(&hello.bytes())
            .await
            .map_err(|source| match source {
                quinn::WriteError::ConnectionLost(source) => lost(peer, source, hello),
                source => NetError::Write { peer, source },
            })?;
        let mut recv = connection
            .accept_uni()
            .await
            .map_err(|source| lost(peer, source, hello))?;
        let theirs = read_greeting::<HELLO_BYTES>(&mut recv, peer, hello).await?;
        if let Err(error) = wire::check_hello(&theirs, version, peer) {
            refuse(&connection, &error, hello);
            return Err(error);
        }
        let lane = read_greeting::<LANE_BYTES>(&mut recv, peer, hello).await;
        match lane.and_then(|bytes| wire::check_lane(bytes, lanes, peer)) {
            Ok(lane) if lane == hello.lane => Ok((send, recv)),
            Ok(_) => {
                let error = NetError::BadHello { peer };
                refuse(&connection, &error, hello);
                Err(error)
            }
            Err(error) => {
                refuse(&connection, &error, hello);
                Err(error)
            }
        }
    };
    let (send, recv) = match timeout_at(deadline, exchange).await {
        Ok(result) => result?,
        Err(_) => return Err(timeout()),
    };
    tracing::info!(peer = peer.index(), lane = hello.lane, %address, "dialed");
    Ok(Link {
        peer,
        lane: hello.lane,
        connection,
        send,
        recv,
    })
}

/// Whether dialing again may help: the peer may not be up yet.
fn retryable(error: &ConnectionError) -> bool {
    match error {
        ConnectionError::TimedOut | ConnectionError::Reset => true,
        ConnectionError::ConnectionClosed(close) => {
            close.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED
        }
        _ => false,
    }
}

/// Accepts connections until every peer in `expected` has connected and
/// sent a good hello. Handshakes that fail (an unpinned certificate) are
/// logged and skipped: a stranger cannot stop the mesh from forming, only
/// a pinned peer with a bad hello can.
async fn accept(
    endpoint: &Endpoint,
    loopback_server: &Arc<quinn::ServerConfig>,
    ours: Hello,
    expected: Vec<(PartyId, CertificateDer<'static>)>,
    deadline: Instant,
) -> Result<Vec<Link>, NetError> {
    let Hello { version, lanes, .. } = ours;
    let mut links: Vec<Link> = Vec::new();
    let count = |links: &[Link], peer: PartyId| links.iter().filter(|l| l.peer == peer).count();
    let missing = |links: &[Link]| NetError::ConnectTimeout {
        missing: expected
            .iter()
            .map(|(p, _)| *p)
            .filter(|p| count(links, *p) < lanes)
            .collect(),
        timeout_ms: 0,
    };
    while links.len() < expected.len() * lanes {
        let incoming = match timeout_at(deadline, endpoint.accept()).await {
            Ok(Some(incoming)) => incoming,
            Ok(None) | Err(_) => return Err(missing(&links)),
        };
        let remote = incoming.remote_address();
        let connecting = if config::is_loopback(remote) {
            incoming.accept_with(loopback_server.clone())
        } else {
            incoming.accept()
        };
        let connecting = match connecting {
            Ok(connecting) => connecting,
            Err(error) => {
                tracing::warn!(%remote, %error, "refused a connection");
                continue;
            }
        };
        let connection = match timeout_at(deadline, connecting).await {
            Ok(Ok(connection)) => connection,
            Ok(Err(error)) => {
                tracing::warn!(%remote, %error, "refused a connection");
                continue;
            }
            Err(_) => return Err(missing(&links)),
        };
        let Some(peer) = identify(&connection, &expected) else {
            // The verifier admits only pinned certificates; be safe anyway.
            connection.close(VarInt::from_u32(close_code::PROTOCOL), b"unknown peer");
            continue;
        };
        if count(&links, peer) >= lanes {
            tracing::warn!(peer = peer.index(), %remote, "connection beyond the lanes refused");
            connection.close(
                VarInt::from_u32(close_code::DUPLICATE),
                b"already connected",
            );
            continue;
        }
        let exchange = async {
            let mut recv = connection
                .accept_uni()
                .await
                .map_err(|source| NetError::Connection { peer, source })?;
            let theirs = read_greeting::<HELLO_BYTES>(&mut recv, peer, ours).await?;
            if let Err(error) = wire::check_hello(&theirs, version, peer) {
                refuse(&connection, &error, ours);
                return Err(error);
            }
            let lane = read_greeting::<LANE_BYTES>(&mut recv, peer, ours)
                .await
                .and_then(|bytes| wire::check_lane(bytes, lanes, peer));
            let lane = match lane {
                Ok(lane) => lane,
                Err(error) => {
                    refuse(&connection, &error, ours);
                    return Err(error);
                }
            };
            let mut send = connection
                .open_uni()
                .await
                .map_err(|source| NetError::Connection { peer, source })?;
            send.write_all(&Hello { lane, ..ours }.bytes())
                .await
                .map_err(|source| NetError::Write { peer, source })?;
            Ok((send, recv, lane))
        };
        let hello_deadline = deadline.min(Instant::now() + HELLO_MAX);
        match timeout_at(hello_deadline, exchange).await {
            Ok(Ok((_, _, lane))) if links.iter().any(|l| l.peer == peer && l.lane == lane) => {
                tracing::warn!(peer = peer.index(), lane, %remote, "second connection refused");
                connection.close(
                    VarInt::from_u32(close_code::DUPLICATE),
                    b"already connected",
                );
            }
            Ok(Ok((send, recv, lane))) => {
                tracing::info!(peer = peer.index(), lane, %remote, "accepted");
                links.push(Link {
                    peer,
                    lane,
                    connection,
                    send,
                    recv,
                });
            }
            Ok(Err(
                error @ (NetError::VersionMismatch { .. }
                | NetError::LanesMismatch { .. }
                | NetError::WrongParty { .. }
                | NetError::BadHello { .. }),
            )) => return Err(error),
            Ok(Err(error)) => tracing::warn!(peer = peer.index(), %error, "hello failed"),
            Err(_) if Instant::now() >= deadline => return Err(missing(&links)),
            Err(_) => {
                tracing::warn!(peer = peer.index(), %remote, "no hello; dropping the connection");
                connection.close(VarInt::from_u32(close_code::PROTOCOL), b"no hello");
            }
        }
    }
    Ok(links)
}

/// Which expected party a connection's (already verified) certificate
/// belongs to.
fn identify(
    connection: &Connection,
    expected: &[(PartyId, CertificateDer<'static>)],
) -> Option<PartyId> {
    let identity = connection.peer_identity()?;
    let chain = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    let presented = chain.first()?;
    let found = expected
        .iter()
        .find(|(_, c)| c == presented)
        .map(|(p, _)| *p);
    if found.is_none() {
        tracing::warn!(certificate = %fingerprint(presented), "certificate of no expected peer");
    }
    found
}

/// Reads the next `N` bytes of a peer's greeting (its hello, then its lane
/// words).
async fn read_greeting<const N: usize>(
    recv: &mut RecvStream,
    peer: PartyId,
    ours: Hello,
) -> Result<[u8; N], NetError> {
    let mut bytes = [0u8; N];
    recv.read_exact(&mut bytes)
        .await
        .map_err(|source| match source {
            quinn::ReadExactError::ReadError(quinn::ReadError::ConnectionLost(source)) => {
                lost(peer, source, ours)
            }
            quinn::ReadExactError::FinishedEarly(_) => NetError::BadHello { peer },
            source => NetError::Read { peer, source },
        })?;
    Ok(bytes)
}

/// Closes a connection whose hello was refused, telling the peer why (a
/// version or lane count mismatch carries ours).
fn refuse(connection: &Connection, error: &NetError, ours: Hello) {
    let (code, said) = match error {
        NetError::VersionMismatch { .. } => (close_code::VERSION, ours.version),
        NetError::LanesMismatch { .. } => (close_code::LANES, ours.lanes as u32),
        _ => (close_code::PROTOCOL, ours.version),
    };
    connection.close(VarInt::from_u32(code), &wire::version_reason(said));
}

/// The error for a connection lost during the hellos: a version or lane
/// count refusal by the peer becomes a mismatch naming both values.
fn lost(peer: PartyId, source: ConnectionError, ours: Hello) -> NetError {
    match &source {
        ConnectionError::ApplicationClosed(close)
            if close.error_code == VarInt::from_u32(close_code::VERSION) =>
        {
            NetError::VersionMismatch {
                peer,
                ours: ours.version,
                theirs: wire::version_from_reason(&close.reason),
            }
        }
        ConnectionError::ApplicationClosed(close)
            if close.error_code == VarInt::from_u32(close_code::LANES) =>
        {
            NetError::LanesMismatch {
                peer,
                ours: ours.lanes,
                theirs: wire::version_from_reason(&close.reason) as usize,
            }
        }
        _ => NetError::Connection { peer, source },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PeerConfig;
    use crate::identity::NodeIdentity;

    /// Three listeners on loopback port 0 with each other's addresses.
    fn listeners() -> [MeshListener; 3] {
        listeners_with(|_, _| {})
    }

    /// As [`listeners`], with each party's configuration adjusted.
    fn listeners_with(tweak: impl Fn(PartyId, &mut MeshConfig)) -> [MeshListener; 3] {
        let identities = [(); 3].map(|_| NodeIdentity::generate().unwrap());
        let mut listeners = PartyId::ALL.map(|me| {
            let peers = PartyId::ALL
                .into_iter()
                .filter(|p| *p != me)
                .map(|p| PeerConfig {
                    party: p,
                    address: None,
                    certificate: identities[p.index()].certificate().clone(),
                })
                .collect::<Vec<_>>();
            let peers: [PeerConfig; 2] = peers.try_into().unwrap();
            let mut config = MeshConfig::new(
                me,
                "127.0.0.1:0".parse().unwrap(),
                identities[me.index()].clone(),
                peers,
            );
            config.connect_timeout = Duration::from_secs(5);
            tweak(me, &mut config);
            MeshListener::bind(config).unwrap()
        });
        let addresses = listeners.each_ref().map(|l| l.local_addr());
        for listener in &mut listeners {
            for p in PartyId::ALL {
                if p != listener.config.party {
                    listener.set_peer_address(p, addresses[p.index()]).unwrap();
                }
            }
        }
        listeners
    }

    #[test]
    fn a_version_mismatch_is_refused_with_both_versions_named() {
        let [l0, l1, mut l2] = listeners();
        l2.version = NET_PROTOCOL_VERSION + 1;
        let results = std::thread::scope(|s| {
            let handles = [l0, l1, l2].map(|l| s.spawn(move || l.connect()));
            handles.map(|h| h.join().unwrap())
        });
        let [r0, r1, r2] = results;
        // Party 2 dials 0 and 1 with the newer version and gives up at the
        // first refusal, so the other acceptor may see the dial dropped
        // before the hello and time out instead. Both must fail, and at
        // least one must name party 2 and both versions.
        let mut named = 0;
        for (party, result) in [(0, r0), (1, r1)] {
            match result {
                Err(NetError::VersionMismatch {
                    peer: PartyId::P2,
                    ours,
                    theirs,
                }) => {
                    assert_eq!(
                        (ours, theirs),
                        (NET_PROTOCOL_VERSION, NET_PROTOCOL_VERSION + 1)
                    );
                    named += 1;
                }
                Err(_) => {}
                Ok(_) => panic!("party {party} formed a mesh with a mismatched party 2"),
            }
        }
        assert!(named >= 1, "no acceptor reported the version mismatch");
        match r2 {
            Err(NetError::VersionMismatch { ours, theirs, .. }) => {
                assert_eq!(
                    (ours, theirs),
                    (NET_PROTOCOL_VERSION + 1, NET_PROTOCOL_VERSION)
                );
            }
            other => panic!("party 2: {other:?}"),
        }
    }

    /// With three lanes every peer is linked by three connections, and
    /// frames whole and in parts, spread over them, arrive whole and in
    /// order.
    #[test]
    fn three_lanes_carry_frames_whole_and_in_parts() {
        use triad_ring::Transport;
        let results = std::thread::scope(|s| {
            let handles = listeners_with(|_, c| {
                c.lanes = 3;
                c.part_words = 1000;
            })
            .map(|l| s.spawn(move || l.connect()));
            handles.map(|h| h.join().unwrap())
        });
        let mut transports = results.map(|r| r.unwrap());
        for t in &transports {
            assert_eq!(t.lane_counts(), vec![3, 3]);
        }
        let frame = |from: PartyId, len: usize| -> Vec<u64> {
            (0..len as u64)
                .map(|i| i * 7 + from.index() as u64)
                .collect()
        };
        // Lengths that leave the next part on every lane in turn.
        let lengths = [0usize, 1, 2500, 7, 10_000, 3, 1000, 0, 4001];
        for t in &mut transports {
            let me = t.party();
            for peer in PartyId::ALL.into_iter().filter(|p| *p != me) {
                for (i, len) in lengths.into_iter().enumerate() {
                    let words = frame(me, len);
                    if i % 2 == 0 {
                        t.send(peer, words).unwrap();
                    } else {
                        let mut parts = words.chunks(999).map(<[u64]>::to_vec);
                        t.send_parts(peer, len, &mut || parts.next().unwrap_or_default())
                            .unwrap();
                    }
                }
            }
        }
        for t in &mut transports {
            let me = t.party();
            for peer in PartyId::ALL.into_iter().filter(|p| *p != me) {
                for len in lengths {
                    assert_eq!(t.recv(peer).unwrap(), frame(peer, len), "{len} words");
                }
            }
        }
    }

    #[test]
    fn a_lane_count_mismatch_is_refused_with_both_counts_named() {
        let results = std::thread::scope(|s| {
            let handles = listeners_with(|me, c| {
                c.lanes = if me == PartyId::P2 { 2 } else { 1 };
            })
            .map(|l| s.spawn(move || l.connect()));
            handles.map(|h| h.join().unwrap())
        });
        let [r0, r1, r2] = results;
        // Parties 0 and 1 agree with each other; either may see party 2's
        // dial dropped before its hello, but one must name the counts.
        let mut named = 0;
        for result in [r0, r1] {
            match result {
                Err(NetError::LanesMismatch {
                    peer: PartyId::P2,
                    ours: 1,
                    theirs: 2,
                }) => named += 1,
                Err(_) => {}
                Ok(_) => panic!("a mesh formed with mismatched lanes"),
            }
        }
        assert!(named >= 1, "no acceptor reported the lane counts");
        match r2 {
            Err(NetError::LanesMismatch {
                ours: 2, theirs: 1, ..
            }) => {}
            other => panic!("party 2: {other:?}"),
        }
    }

    #[test]
    fn loopback_links_discover_a_large_mtu() {
        use triad_ring::Transport;
        let results = std::thread::scope(|s| {
            let handles = listeners().map(|l| s.spawn(move || l.connect()));
            handles.map(|h| h.join().unwrap())
        });
        let mut transports = results.map(|r| r.unwrap());
        // Bulk traffic in both directions on every link, as a protocol
        // round does; discovery runs alongside it.
        let frame: Vec<u64> = (0..1u64 << 17).collect();
        for _ in 0..4 {
            for t in &mut transports {
                let me = t.party();
                for peer in PartyId::ALL.into_iter().filter(|p| *p != me) {
                    t.send(peer, frame.clone()).unwrap();
                }
            }
            for t in &mut transports {
                let me = t.party();
                for peer in PartyId::ALL.into_iter().filter(|p| *p != me) {
                    assert_eq!(t.recv(peer).unwrap(), frame);
                }
            }
        }
        for t in &transports {
            for mtu in t.path_mtus() {
                assert!(
                    mtu > 16_000,
                    "path MTU {mtu} on loopback: discovery did not climb"
                );
            }
        }
    }
}
