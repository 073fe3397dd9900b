use std::net::SocketAddr;
use std::path::PathBuf;

use triad_ring::PartyId;

/// Everything setting up or running the QUIC mesh can fail with. No variant
/// carries key material or frame contents, so errors can be logged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The configuration cannot describe a mesh of three.
    #[error("invalid mesh configuration: {0}")]
    Config(#[from] ConfigProblem),
    /// Generating a key pair or self-signed certificate failed.
    #[error("generating the node certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// Reading or writing an identity or certificate file failed.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// A certificate file holds no usable PEM certificate.
    #[error("{path}: not a PEM certificate: {source}")]
    CertificateFile {
        /// The file.
        path: PathBuf,
        /// The parse error (certificates are public, so details are kept).
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// A private key file holds no usable PEM private key. Deliberately
    /// without the parser's message, which may quote the file.
    #[error("{path}: not a PEM private key")]
    KeyFile {
        /// The file.
        path: PathBuf,
    },
    /// rustls refused the TLS configuration (for example a key that does not
    /// match the certificate).
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The TLS configuration has no TLS 1.3 suite QUIC can start with.
    #[error("TLS configuration has no cipher suite usable for QUIC")]
    NoQuicCipherSuite,
    /// A blocking call was made from inside an async runtime, where it
    /// would stall the runtime's worker; call it from a plain thread (for
    /// example through `spawn_blocking`).
    #[error("{call} blocks and cannot be called from inside an async runtime")]
    AsyncContext {
        /// The call.
        call: &'static str,
    },
    /// The tokio runtime could not be started.
    #[error("starting the network runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The UDP socket could not be bound.
    #[error("binding {address}: {source}")]
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// quinn refused to start a connection (bad address, endpoint closed).
    #[error("connecting to {peer} at {address}: {source}")]
    Connect {
        /// The peer.
        peer: PartyId,
        /// Its address.
        address: SocketAddr,
        /// What went wrong.
        #[source]
        source: quinn::ConnectError,
    },
    /// A connection to a peer failed or was closed during set-up (including
    /// a TLS handshake refused because a certificate is not the pinned one).
    #[error("connection with {peer}: {source}")]
    Connection {
        /// The peer.
        peer: PartyId,
        /// What went wrong.
        #[source]
        source: quinn::ConnectionError,
    },
    /// Writing to a peer's stream failed.
    #[error("writing to {peer}: {source}")]
    Write {
        /// The peer.
        peer: PartyId,
        /// What went wrong.
        #[source]
        source: quinn::WriteError,
    },
    /// Reading from a peer's stream failed.
    #[error("reading from {peer}: {source}")]
    Read {
        /// The peer.
        peer: PartyId,
        /// What went wrong.
        #[source]
        source: quinn::ReadExactError,
    },
    /// The peers did not all connect in time.
    #[error("mesh not complete after {timeout_ms} ms: no connection with {missing:?}")]
    ConnectTimeout {
        /// Peers still missing.
        missing: Vec<PartyId>,
        /// The timeout that passed.
        timeout_ms: u64,
    },
    /// The peer speaks another version of this crate's wire protocol.
    #[error(
        "{peer} speaks triad-net protocol version {theirs}, this node speaks {ours}; \
         upgrade the older node"
    )]
    VersionMismatch {
        /// The peer.
        peer: PartyId,
        /// This node's version.
        ours: u32,
        /// The peer's version (0 when the peer did not say).
        theirs: u32,
    },
    /// The peer's hello is not a triad-net hello.
    #[error("{peer} sent a malformed hello")]
    BadHello {
        /// The peer.
        peer: PartyId,
    },
    /// The peer links with another number of connections than this node.
    #[error(
        "{peer} links with {theirs} connections, this node with {ours}; set the same `lanes` on all three nodes"
    )]
    LanesMismatch {
        /// The peer.
        peer: PartyId,
        /// This node's lane count.
        ours: usize,
        /// The peer's.
        theirs: usize,
    },
    /// The peer's hello names another party than its certificate.
    #[error("{peer} (by its certificate) claims to be party {claimed}")]
    WrongParty {
        /// The party its pinned certificate belongs to.
        peer: PartyId,
        /// The party index its hello claims.
        claimed: u32,
    },
    /// A peer announced a frame longer than the configured maximum.
    #[error("{peer} announced a frame of {words} words; the maximum is {words_max}")]
    FrameTooLarge {
        /// The peer.
        peer: PartyId,
        /// Words announced.
        words: u64,
        /// The configured maximum.
        words_max: u64,
    },
    /// The peer's stream ended in the middle of a frame.
    #[error("{peer} closed its stream in the middle of a frame")]
    TruncatedFrame {
        /// The peer.
        peer: PartyId,
    },
    /// A part header that does not continue the frame in progress: empty,
    /// past the frame's end, or announcing another frame length.
    #[error(
        "{peer} sent a part of {part} words for a frame of {frame} words with {received} of {expected} received"
    )]
    BadPart {
        /// The peer.
        peer: PartyId,
        /// Words the part announced.
        part: u64,
        /// Frame length the part announced.
        frame: u64,
        /// Words of the frame in progress received so far.
        received: u64,
        /// Length of the frame in progress (the part's own for a new one).
        expected: u64,
    },
}

/// What is wrong with a [`MeshConfig`](crate::MeshConfig).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigProblem {
    /// A peer entry names this party.
    #[error("{party} is this node, not a peer")]
    PeerIsSelf {
        /// The party.
        party: PartyId,
    },
    /// Both peer entries name the same party.
    #[error("{party} is listed twice")]
    DuplicatePeer {
        /// The party.
        party: PartyId,
    },
    /// Two parties have the same certificate, so a certificate would not
    /// identify a party.
    #[error("{first} and {second} have the same certificate")]
    SharedCertificate {
        /// One party.
        first: PartyId,
        /// The other.
        second: PartyId,
    },
    /// This node dials the peer but has no address for it.
    #[error("no address to dial {party} at")]
    MissingAddress {
        /// The party.
        party: PartyId,
    },
    /// The network runtime needs at least one worker thread.
    #[error("the network runtime needs at least one worker thread")]
    NoWorkerThreads,
    /// The lane count is outside 1 to 16.
    #[error("lanes = {lanes}: links to a peer need 1 to 16 connections")]
    Lanes {
        /// The count configured.
        lanes: usize,
    },
    /// A flow-control window is zero or too large for QUIC.
    #[error("flow-control window of {bytes} bytes is not in 1..2^62")]
    Window {
        /// The configured window.
        bytes: u64,
    },
}
