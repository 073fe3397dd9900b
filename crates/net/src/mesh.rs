//! Forming the mesh: bind, dial the lower-index peers, accept the
//! higher-index ones, and exchange hellos on one unidirectional stream per
//! direction.

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
use crate::wire::{self, HELLO_BYTES, NET_PROTOCOL_VERSION};

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

/// One peer's connection and the two streams on it, after the hellos.
pub(crate) struct Link {
    pub(crate) peer: PartyId,
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
        let endpoint = endpoint.clone();
        let peer = peer.party;
        tasks.spawn(async move {
            let link = dial(&endpoint, client, me, peer, address, version, deadline).await?;
            Ok(vec![link])
        });
    }
    if !accepted.is_empty() {
        let endpoint = endpoint.clone();
        tasks.spawn(async move {
            accept(&endpoint, &loopback_server, me, accepted, version, deadline).await
        });
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
        Err(NetError::ConnectTimeout {
            missing,
            timeout_ms,
        })
    }
}

/// Dials `peer` until it answers or the deadline passes, then exchanges
/// hellos (ours first).
async fn dial(
    endpoint: &Endpoint,
    client: quinn::ClientConfig,
    me: PartyId,
    peer: PartyId,
    address: SocketAddr,
    version: u32,
    deadline: Instant,
) -> Result<Link, NetError> {
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
            .map_err(|source| lost(peer, source, version))?;
        send.write_all(&wire::hello(version, me))
            .await
            .map_err(|source| match source {
                quinn::WriteError::ConnectionLost(source) => lost(peer, source, version),
                source => NetError::Write { peer, source },
            })?;
        let mut recv = connection
            .accept_uni()
            .await
            .map_err(|source| lost(peer, source, version))?;
        let hello = read_hello(&mut recv, peer, version).await?;
        Ok::<_, NetError>((send, recv, hello))
    };
    let (send, recv, hello) = match timeout_at(deadline, exchange).await {
        Ok(result) => result?,
        Err(_) => return Err(timeout()),
    };
    if let Err(error) = wire::check_hello(&hello, version, peer) {
        refuse(&connection, &error, version);
        return Err(error);
    }
    tracing::info!(peer = peer.index(), %address, "dialed");
    Ok(Link {
        peer,
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
    me: PartyId,
    expected: Vec<(PartyId, CertificateDer<'static>)>,
    version: u32,
    deadline: Instant,
) -> Result<Vec<Link>, NetError> {
    let mut links: Vec<Link> = Vec::new();
    let missing = |links: &[Link]| NetError::ConnectTimeout {
        missing: expected
            .iter()
            .map(|(p, _)| *p)
            .filter(|p| links.iter().all(|l| l.peer != *p))
            .collect(),
        timeout_ms: 0,
    };
    while links.len() < expected.len() {
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
        if links.iter().any(|l| l.peer == peer) {
            tracing::warn!(peer = peer.index(), %remote, "second connection refused");
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
            let hello = read_hello(&mut recv, peer, version).await?;
            if let Err(error) = wire::check_hello(&hello, version, peer) {
                refuse(&connection, &error, version);
                return Err(error);
            }
            let mut send = connection
                .open_uni()
                .await
                .map_err(|source| NetError::Connection { peer, source })?;
            send.write_all(&wire::hello(version, me))
                .await
                .map_err(|source| NetError::Write { peer, source })?;
            Ok((send, recv))
        };
        let hello_deadline = deadline.min(Instant::now() + HELLO_MAX);
        match timeout_at(hello_deadline, exchange).await {
            Ok(Ok((send, recv))) => {
                tracing::info!(peer = peer.index(), %remote, "accepted");
                links.push(Link {
                    peer,
                    connection,
                    send,
                    recv,
                });
            }
            Ok(Err(
                error @ (NetError::VersionMismatch { .. }
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

async fn read_hello(
    recv: &mut RecvStream,
    peer: PartyId,
    version: u32,
) -> Result<[u8; HELLO_BYTES], NetError> {
    let mut hello = [0u8; HELLO_BYTES];
    recv.read_exact(&mut hello)
        .await
        .map_err(|source| match source {
            quinn::ReadExactError::ReadError(quinn::ReadError::ConnectionLost(source)) => {
                lost(peer, source, version)
            }
            quinn::ReadExactError::FinishedEarly(_) => NetError::BadHello { peer },
            source => NetError::Read { peer, source },
        })?;
    Ok(hello)
}

/// Closes a connection whose hello was refused, telling the peer why.
fn refuse(connection: &Connection, error: &NetError, version: u32) {
    let code = match error {
        NetError::VersionMismatch { .. } => close_code::VERSION,
        _ => close_code::PROTOCOL,
    };
    connection.close(VarInt::from_u32(code), &wire::version_reason(version));
}

/// The error for a connection lost during the hellos: a version refusal by
/// the peer becomes a [`NetError::VersionMismatch`] naming both versions.
fn lost(peer: PartyId, source: ConnectionError, version: u32) -> NetError {
    match &source {
        ConnectionError::ApplicationClosed(close)
            if close.error_code == VarInt::from_u32(close_code::VERSION) =>
        {
            NetError::VersionMismatch {
                peer,
                ours: version,
                theirs: wire::version_from_reason(&close.reason),
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
