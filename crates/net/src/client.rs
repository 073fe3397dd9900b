//! The link between a client and one node: QUIC with TLS 1.3, the node's
//! certificate pinned by the client, no client certificate (clients prove
//! who they are by signing each request, not at the TLS layer).
//!
//! One request is one bidirectional stream (a [`Call`]): the client writes
//! its messages and finishes its side, the node answers and finishes its
//! side. A message is a little-endian `u32` byte length and the bytes; bulk
//! share vectors follow a message as raw little-endian words, with their
//! length announced in the message before them. Every length is checked
//! against a bound before anything is allocated for it.
//!
//! Unlike the mesh this API is async: both the node's request handling and
//! the client library run on tokio.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::{Connection, Endpoint, RecvStream, SendStream, VarInt};
use rustls::pki_types::CertificateDer;

use crate::identity::NodeIdentity;
use crate::tls;

/// ALPN of client links; a mesh peer dialing the client port is refused.
const CLIENT_ALPN: &[u8] = b"triad-client/1";

/// Why a client link or call failed. Carries no message contents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The TLS or QUIC configuration could not be built.
    #[error("client link setup: {0}")]
    Setup(String),
    /// The UDP socket could not be bound.
    #[error("binding {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The node could not be reached or refused the handshake (a wrong
    /// pinned certificate ends here).
    #[error("connecting to {address}: {reason}")]
    Connect {
        /// The node's address.
        address: SocketAddr,
        /// What went wrong.
        reason: String,
    },
    /// No answer within the timeout.
    #[error("{address} did not answer within {seconds} s")]
    Timeout {
        /// The node's address.
        address: SocketAddr,
        /// The timeout.
        seconds: u64,
    },
    /// The connection or stream broke.
    #[error("link to {address}: {reason}")]
    Broken {
        /// The peer's address.
        address: SocketAddr,
        /// What went wrong.
        reason: String,
    },
    /// A length announced by the peer exceeds the bound.
    #[error("{address} announced {what} of {len}, above the limit of {max}")]
    TooLarge {
        /// The peer's address.
        address: SocketAddr,
        /// What was announced.
        what: &'static str,
        /// The announced length.
        len: u64,
        /// The bound.
        max: u64,
    },
}

fn transport(idle: Duration, window_bytes: u64) -> Result<quinn::TransportConfig, LinkError> {
    let window = VarInt::from_u64(window_bytes).map_err(|_| {
        LinkError::Setup(format!(
            "window of {window_bytes} bytes is not a QUIC integer"
        ))
    })?;
    let idle_duration = idle;
    let idle = quinn::IdleTimeout::try_from(idle)
        .map_err(|_| LinkError::Setup("idle timeout out of range".into()))?;
    let mut config = quinn::TransportConfig::default();
    config
        .stream_receive_window(window)
        .receive_window(VarInt::from_u64(window_bytes.saturating_mul(2)).unwrap_or(VarInt::MAX))
        .send_window(window_bytes.saturating_mul(2))
        .max_concurrent_bidi_streams(VarInt::from_u32(64))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .max_idle_timeout(Some(idle))
        // A query can run longer than the idle timeout with nothing to say
        // on the client's link; keep-alives hold it open while both ends
        // live, and a dead end is still noticed after the timeout.
        .keep_alive_interval(Some(idle_duration / 3));
    Ok(config)
}

/// Sizes and timeouts of client links.
#[derive(Debug, Clone, Copy)]
pub struct LinkConfig {
    /// A connection with no traffic for this long is closed.
    pub idle_timeout: Duration,
    /// Per-stream receive window; the connection gets twice this.
    pub window_bytes: u64,
}

impl Default for LinkConfig {
    fn default() -> LinkConfig {
        LinkConfig {
            idle_timeout: Duration::from_secs(30),
            window_bytes: 32 << 20,
        }
    }
}

/// A node's endpoint for clients. Must be created inside a tokio runtime.
#[derive(Debug)]
pub struct ClientListener {
    endpoint: Endpoint,
}

impl ClientListener {
    /// Binds `address` and accepts TLS handshakes presenting `identity`.
    pub fn bind(
        address: SocketAddr,
        identity: &NodeIdentity,
        link: LinkConfig,
    ) -> Result<ClientListener, LinkError> {
        let crypto = tls::server_config_anonymous(identity, CLIENT_ALPN)
            .map_err(|e| LinkError::Setup(e.to_string()))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        server.transport_config(Arc::new(transport(link.idle_timeout, link.window_bytes)?));
        let endpoint = Endpoint::server(server, address)
            .map_err(|source| LinkError::Bind { address, source })?;
        Ok(ClientListener { endpoint })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr, LinkError> {
        self.endpoint
            .local_addr()
            .map_err(|source| LinkError::Setup(source.to_string()))
    }

    /// The next client connection whose handshake completed; `None` once
    /// the listener is closed. Failed handshakes are logged and skipped.
    pub async fn accept(&self) -> Option<ClientConnection> {
        loop {
            let incoming = self.endpoint.accept().await?;
            let address = incoming.remote_address();
            match incoming.await {
                Ok(connection) => {
                    return Some(ClientConnection {
                        connection,
                        address,
                    });
                }
                Err(error) => {
                    tracing::info!(%address, %error, "client handshake failed");
                }
            }
        }
    }

    /// Stops accepting and closes every connection.
    pub fn close(&self) {
        self.endpoint.close(VarInt::from_u32(0), b"node stopping");
    }
}

/// A connection from one client, as the node sees it.
#[derive(Debug, Clone)]
pub struct ClientConnection {
    connection: Connection,
    address: SocketAddr,
}

impl ClientConnection {
    /// The client's address.
    pub fn remote_address(&self) -> SocketAddr {
        self.address
    }

    /// The next request stream; `None` when the client closed the
    /// connection.
    pub async fn accept_call(&self) -> Option<Call> {
        let (send, recv) = self.connection.accept_bi().await.ok()?;
        Some(Call {
            send,
            recv,
            address: self.address,
        })
    }
}

/// A client's connection to one node, with that node's certificate
/// pinned.
#[derive(Debug)]
pub struct NodeLink {
    endpoint: Endpoint,
    connection: Connection,
    address: SocketAddr,
}

impl NodeLink {
    /// Connects to the node at `address`, which must present exactly
    /// `certificate`. Must be called inside a tokio runtime.
    pub async fn connect(
        address: SocketAddr,
        certificate: CertificateDer<'static>,
        link: LinkConfig,
        timeout: Duration,
    ) -> Result<NodeLink, LinkError> {
        let crypto = tls::client_config_anonymous(certificate, CLIENT_ALPN)
            .map_err(|e| LinkError::Setup(e.to_string()))?;
        let mut client = quinn::ClientConfig::new(Arc::new(crypto));
        client.transport_config(Arc::new(transport(link.idle_timeout, link.window_bytes)?));
        let local: SocketAddr = if address.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from(([0u16; 8], 0))
        };
        let endpoint = Endpoint::client(local).map_err(|source| LinkError::Bind {
            address: local,
            source,
        })?;
        let connecting = endpoint
            .connect_with(client, address, "triad-node")
            .map_err(|e| LinkError::Connect {
                address,
                reason: e.to_string(),
            })?;
        let connection = match tokio::time::timeout(timeout, connecting).await {
            Err(_) => {
                return Err(LinkError::Timeout {
                    address,
                    seconds: timeout.as_secs(),
                });
            }
            Ok(Err(e)) => {
                return Err(LinkError::Connect {
                    address,
                    reason: e.to_string(),
                });
            }
            Ok(Ok(connection)) => connection,
        };
        Ok(NodeLink {
            endpoint,
            connection,
            address,
        })
    }

    /// Opens a request stream.
    pub async fn call(&self) -> Result<Call, LinkError> {
        let (send, recv) = self
            .connection
            .open_bi()
            .await
            .map_err(|e| LinkError::Broken {
                address: self.address,
                reason: e.to_string(),
            })?;
        Ok(Call {
            send,
            recv,
            address: self.address,
        })
    }

    /// The node's address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Closes the connection and waits briefly for the close to be sent.
    pub async fn close(self) {
        self.connection.close(VarInt::from_u32(0), b"done");
        let _ = tokio::time::timeout(Duration::from_secs(1), self.endpoint.wait_idle()).await;
    }
}

/// One request and its answer: a bidirectional stream.
#[derive(Debug)]
pub struct Call {
    send: SendStream,
    recv: RecvStream,
    address: SocketAddr,
}

impl Call {
    fn broken(&self, reason: impl ToString) -> LinkError {
        LinkError::Broken {
            address: self.address,
            reason: reason.to_string(),
        }
    }

    /// Writes one message.
    pub async fn write_message(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        let len = u32::try_from(bytes.len()).map_err(|_| LinkError::TooLarge {
            address: self.address,
            what: "a message",
            len: bytes.len() as u64,
            max: u64::from(u32::MAX),
        })?;
        self.send
            .write_all(&len.to_le_bytes())
            .await
            .map_err(|e| self.broken(e))?;
        self.send.write_all(bytes).await.map_err(|e| self.broken(e))
    }

    /// Writes raw words (the length must have been announced before).
    pub async fn write_words(&mut self, words: &[u64]) -> Result<(), LinkError> {
        // Large writes in pieces keep the per-write copy inside quinn small.
        for chunk in words.chunks(1 << 17) {
            let bytes = words_as_le_bytes(chunk);
            self.send
                .write_all(&bytes)
                .await
                .map_err(|e| self.broken(e))?;
        }
        Ok(())
    }

    /// Ends this side of the call.
    pub fn finish(&mut self) -> Result<(), LinkError> {
        self.send.finish().map_err(|e| self.broken(e))
    }

    /// Reads one message of at most `max` bytes; `Ok(None)` if the peer
    /// finished its side before starting another message.
    pub async fn read_message(&mut self, max: usize) -> Result<Option<Vec<u8>>, LinkError> {
        let mut len = [0u8; 4];
        match self.recv.read_exact(&mut len).await {
            Ok(()) => {}
            Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
            Err(e) => return Err(self.broken(e)),
        }
        let len = u32::from_le_bytes(len) as usize;
        if len > max {
            return Err(LinkError::TooLarge {
                address: self.address,
                what: "a message",
                len: len as u64,
                max: max as u64,
            });
        }
        let mut bytes = vec![0u8; len];
        self.recv
            .read_exact(&mut bytes)
            .await
            .map_err(|e| self.broken(e))?;
        Ok(Some(bytes))
    }

    /// Reads exactly `len` raw words, refusing more than `max`.
    pub async fn read_words(&mut self, len: u64, max: u64) -> Result<Vec<u64>, LinkError> {
        if len > max {
            return Err(LinkError::TooLarge {
                address: self.address,
                what: "a share vector",
                len,
                max,
            });
        }
        let mut words = vec![0u64; len as usize];
        self.recv
            .read_exact(bytemuck::cast_slice_mut(&mut words))
            .await
            .map_err(|e| self.broken(e))?;
        if cfg!(target_endian = "big") {
            for w in &mut words {
                *w = u64::from_le(*w);
            }
        }
        Ok(words)
    }

    /// The peer's address.
    pub fn remote_address(&self) -> SocketAddr {
        self.address
    }
}

fn words_as_le_bytes(words: &[u64]) -> Vec<u8> {
    if cfg!(target_endian = "little") {
        bytemuck::cast_slice(words).to_vec()
    } else {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }
}
