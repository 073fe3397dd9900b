//! The network layer of triad: the ring's [`Transport`](triad_ring::Transport)
//! over QUIC (quinn), with mutual TLS 1.3 and pinned certificates.
//!
//! # What this crate owns
//!
//! - Node identities: a self-signed certificate and its key, made from the
//!   OS generator, saved and loaded as PEM ([`NodeIdentity`]).
//! - Authentication: each party pins the exact certificate of each of the
//!   two others; a handshake with any other certificate fails. There is no
//!   certificate authority to compromise and no name to spoof.
//! - The mesh: for each pair of parties the higher index dials the lower,
//!   once per lane (`MeshConfig::lanes` connections per peer); the dialer
//!   opens with a hello (wire version, party index, lane and lane count)
//!   that the acceptor checks against the certificate the dialer presented
//!   ([`MeshListener`], [`QuicTransport::connect_mesh`]).
//! - Framing: one long-lived unidirectional stream per direction per
//!   connection; a frame travels as one or more parts, spread over the
//!   lanes in turn, each a little-endian part and
//!   frame word count and then the words as raw little-endian bytes, so
//!   the protocol can stream a large vector while it computes the rest
//!   (`Transport::send_parts`); frames are bounded by a configured maximum
//!   checked before any allocation; the format has a version,
//!   [`NET_PROTOCOL_VERSION`].
//! - Client links ([`ClientListener`], [`NodeLink`]): QUIC to one node with
//!   its certificate pinned by the client; one stream per request.
//! - A blocking API over its own small tokio runtime, so the sans-IO
//!   protocol core runs unchanged on the caller's threads: `send` queues and
//!   never waits for the peer; `recv` waits, with an optional timeout.
//!
//! # What it must not do
//!
//! - No protocol logic: it moves opaque frames in order and knows nothing of
//!   shares, steps or rounds (the ring's session header does that).
//! - No secrets in logs or errors: keys never reach a `Debug` impl, a log
//!   line or an error message, and neither do frame contents. Certificates
//!   are public and appear as fingerprints.
//! - No panics on anything a peer sends: malformed hellos, oversized or
//!   truncated frames and vanished peers are errors.
//! - No randomness of its own beyond what rustls, rcgen and the OS generator
//!   provide for keys and handshakes.
//!
//! The crypto provider is *ring* rather than aws-lc-rs, which needs cmake
//! and a C toolchain to build.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod client;
mod config;
mod error;
mod identity;
pub mod join;
mod mesh;
mod tls;
mod transport;
mod wire;

pub use client::{Call, ClientConnection, ClientListener, LinkConfig, LinkError, NodeLink};
pub use config::{LANES_MAX, MeshConfig, PeerConfig};
pub use error::{ConfigProblem, NetError};
pub use identity::{NodeIdentity, fingerprint, load_certificate};
pub use mesh::MeshListener;
pub use rustls::pki_types::CertificateDer;
pub use transport::QuicTransport;
pub use wire::NET_PROTOCOL_VERSION;
