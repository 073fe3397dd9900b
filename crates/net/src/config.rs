//! What a node needs to join the mesh.

use std::net::SocketAddr;
use std::time::Duration;

use quinn::{EndpointConfig, IdleTimeout, MtuDiscoveryConfig, TransportConfig, VarInt};
use rustls::pki_types::CertificateDer;
use triad_ring::PartyId;

use crate::error::{ConfigProblem, NetError};
use crate::identity::NodeIdentity;

/// One of the two other parties.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    /// Which party it is.
    pub party: PartyId,
    /// Where to dial it. Needed only for the peers this node dials (those
    /// with a lower index; see [`MeshConfig`]); a peer that dials this node
    /// is recognised by its certificate, wherever it comes from.
    pub address: Option<SocketAddr>,
    /// Its certificate (DER), exactly as it will present it: the only
    /// certificate this node accepts from that party.
    pub certificate: CertificateDer<'static>,
}

/// Configuration of one node's end of the mesh.
///
/// For each pair of parties the one with the higher index dials the one
/// with the lower index: party 2 dials 0 and 1, party 1 dials 0, party 0
/// only listens. Fields other than the party, the listen address, the
/// identity and the peers have working defaults ([`MeshConfig::new`]).
#[derive(Clone, Debug)]
pub struct MeshConfig {
    /// This node.
    pub party: PartyId,
    /// UDP address to listen on; port 0 picks a free port (read it back
    /// with [`MeshListener::local_addr`](crate::MeshListener::local_addr)).
    pub listen: SocketAddr,
    /// This node's certificate and key.
    pub identity: NodeIdentity,
    /// The two other parties, in any order.
    pub peers: [PeerConfig; 2],
    /// How long forming the mesh may take, dialing retries included: the
    /// three nodes rarely start at the same moment.
    pub connect_timeout: Duration,
    /// How long `recv` waits for a frame before reporting
    /// `TransportError::Timeout`; `None` waits until the frame comes or the
    /// peer is gone (a dead peer is still detected by `idle_timeout`).
    pub recv_timeout: Option<Duration>,
    /// How long closing the transport waits for peers to acknowledge frames
    /// still in flight, so a party that sends last and exits does not lose
    /// its last message.
    pub close_timeout: Duration,
    /// A connection silent for this long is dead. Keep-alives go out at a
    /// third of it, so a peer busy computing is not mistaken for a dead one;
    /// a peer that crashed (no close frame) is noticed after up to 4/3 of
    /// this, and then `recv` reports `TransportError::Closed`.
    pub idle_timeout: Duration,
    /// Worker threads of the network runtime. The protocol's compute runs
    /// on the caller's threads; one worker moves several Gbit/s.
    pub worker_threads: usize,
    /// Largest frame accepted from a peer, in words, checked before
    /// allocating; a larger announcement fails the link.
    pub frame_words_max: u64,
    /// Words per part when the protocol streams a large frame (the sender
    /// computes the next part while this one is on the wire); 0 sends
    /// every frame whole. Small parts start the link sooner, and each costs
    /// a wake-up of the network runtime.
    pub part_words: usize,
    /// Connections to each peer ("lanes", 1 to 16). The parts of large
    /// frames are spread over them in turn, and each connection encrypts
    /// and sends on its own task, so a link can use more than one core of
    /// the network runtime (`worker_threads`); with one worker, one lane is
    /// as fast. All three nodes must use the same count.
    pub lanes: usize,
    /// Flow-control window per stream, in bytes (the connection window and
    /// the send window are twice this). Must cover the link's
    /// bandwidth-delay product: quinn's defaults suit 100 Mbit/s.
    pub window_bytes: u64,
    /// UDP socket buffer size asked of the OS (which may cap it, see
    /// `net.core.rmem_max`); small buffers drop bursts on fast links.
    pub socket_buffer_bytes: usize,
}

impl MeshConfig {
    /// A configuration with default timeouts and sizes.
    pub fn new(
        party: PartyId,
        listen: SocketAddr,
        identity: NodeIdentity,
        peers: [PeerConfig; 2],
    ) -> MeshConfig {
        MeshConfig {
            party,
            listen,
            identity,
            peers,
            connect_timeout: Duration::from_secs(30),
            recv_timeout: None,
            close_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(10),
            worker_threads: 1,
            frame_words_max: 1 << 31,
            part_words: 1 << 16,
            lanes: 1,
            window_bytes: 64 << 20,
            socket_buffer_bytes: 4 << 20,
        }
    }

    /// Checks that the configuration describes a mesh of three: two
    /// distinct peers other than this node, three distinct certificates.
    pub(crate) fn validate(&self) -> Result<(), ConfigProblem> {
        let [a, b] = &self.peers;
        for peer in [a, b] {
            if peer.party == self.party {
                return Err(ConfigProblem::PeerIsSelf { party: peer.party });
            }
        }
        if a.party == b.party {
            return Err(ConfigProblem::DuplicatePeer { party: a.party });
        }
        let certificates = [
            (self.party, self.identity.certificate()),
            (a.party, &a.certificate),
            (b.party, &b.certificate),
        ];
        for (i, (first, x)) in certificates.iter().enumerate() {
            for (second, y) in &certificates[i + 1..] {
                if x == y {
                    return Err(ConfigProblem::SharedCertificate {
                        first: *first,
                        second: *second,
                    });
                }
            }
        }
        if self.worker_threads == 0 {
            return Err(ConfigProblem::NoWorkerThreads);
        }
        if !(1..=LANES_MAX).contains(&self.lanes) {
            return Err(ConfigProblem::Lanes { lanes: self.lanes });
        }
        self.windows()?;
        Ok(())
    }

    /// Stream and connection windows as QUIC integers.
    fn windows(&self) -> Result<(VarInt, VarInt), ConfigProblem> {
        let bad = ConfigProblem::Window {
            bytes: self.window_bytes,
        };
        if self.window_bytes == 0 {
            return Err(bad);
        }
        let stream = VarInt::from_u64(self.window_bytes).map_err(|_| bad.clone())?;
        let connection =
            VarInt::from_u64(self.window_bytes.saturating_mul(2)).unwrap_or(VarInt::MAX);
        Ok((stream, connection))
    }

    /// QUIC transport parameters for the mesh's connections; `loopback`
    /// for a peer on this host (see [`LOOPBACK_MTU`]).
    pub(crate) fn transport(&self, loopback: bool) -> Result<TransportConfig, NetError> {
        let (stream, connection) = self.windows()?;
        let idle =
            IdleTimeout::try_from(self.idle_timeout).unwrap_or(IdleTimeout::from(VarInt::MAX));
        let mut transport = TransportConfig::default();
        transport
            .stream_receive_window(stream)
            .receive_window(connection)
            .send_window(self.window_bytes.saturating_mul(2))
            // One unidirectional stream per direction; nothing else.
            .max_concurrent_uni_streams(VarInt::from_u32(1))
            .max_concurrent_bidi_streams(VarInt::from_u32(0))
            .datagram_receive_buffer_size(None)
            .max_idle_timeout(Some(idle))
            .keep_alive_interval(Some(self.idle_timeout / 3));
        if loopback {
            // Start at the safe default and let path-MTU discovery climb to
            // the loopback bound within a few round trips of the handshake
            // (a 60,000-byte initial MTU was seen to break the handshake).
            let mut mtu = MtuDiscoveryConfig::default();
            mtu.upper_bound(LOOPBACK_MTU);
            transport
                .mtu_discovery_config(Some(mtu))
                // quinn batches up to ten MTU-sized datagrams per GSO send,
                // and the kernel refuses batches over 64 KiB (silently, as
                // quinn sees it: the packets are just lost). At this MTU one
                // datagram per system call is what GSO would give anyway.
                .enable_segmentation_offload(false);
        }
        Ok(transport)
    }
}

/// Most connections to one peer.
pub const LANES_MAX: usize = 16;

/// Largest UDP payload used towards a peer on this host. Loopback's MTU is
/// 64 KiB, and per-packet work (header protection, AEAD setup, frame
/// parsing, acknowledgements, one system call each side) dominates QUIC's
/// cost on it: 64 KiB datagrams move a bulk frame in about 1/45 of the
/// packets of Ethernet-sized ones. Below both the IPv4 bound (65,507) and
/// the IPv6 one on a 65,536-byte link (65,488), so no discovery probe is
/// refused and the search ends within a few round trips.
pub(crate) const LOOPBACK_MTU: u16 = 65_000;

/// Endpoint parameters: peers on this host may send us datagrams up to
/// [`LOOPBACK_MTU`]. This is the half that matters: quinn's default of 1,472
/// is sent as a transport parameter and caps the peer's MTU discovery,
/// whatever bound the peer configured (which is why raising only the bound
/// changed nothing). Peers elsewhere keep quinn's default discovery bound,
/// so nothing changes for them.
pub(crate) fn endpoint_config() -> EndpointConfig {
    let mut endpoint = EndpointConfig::default();
    endpoint
        .max_udp_payload_size(LOOPBACK_MTU)
        .expect("LOOPBACK_MTU lies in QUIC's 1200..=65527");
    endpoint
}

/// Whether `address` is on this host, where [`LOOPBACK_MTU`] applies.
pub(crate) fn is_loopback(address: std::net::SocketAddr) -> bool {
    address.ip().to_canonical().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> MeshConfig {
        let peer = |party| PeerConfig {
            party,
            address: None,
            certificate: NodeIdentity::generate().unwrap().certificate().clone(),
        };
        MeshConfig::new(
            PartyId::P0,
            "127.0.0.1:0".parse().unwrap(),
            NodeIdentity::generate().unwrap(),
            [peer(PartyId::P1), peer(PartyId::P2)],
        )
    }

    #[test]
    fn validation_names_the_problem() {
        let good = config();
        good.validate().unwrap();
        good.transport(false).unwrap();
        good.transport(true).unwrap();
        endpoint_config();

        let mut c = good.clone();
        c.peers[1].party = PartyId::P0;
        assert_eq!(
            c.validate(),
            Err(ConfigProblem::PeerIsSelf { party: PartyId::P0 })
        );
        let mut c = good.clone();
        c.peers[1].party = PartyId::P1;
        assert_eq!(
            c.validate(),
            Err(ConfigProblem::DuplicatePeer { party: PartyId::P1 })
        );
        let mut c = good.clone();
        c.peers[1].certificate = c.peers[0].certificate.clone();
        assert_eq!(
            c.validate(),
            Err(ConfigProblem::SharedCertificate {
                first: PartyId::P1,
                second: PartyId::P2
            })
        );
        let mut c = good.clone();
        c.worker_threads = 0;
        assert_eq!(c.validate(), Err(ConfigProblem::NoWorkerThreads));
        let mut c = good;
        c.window_bytes = 0;
        assert_eq!(c.validate(), Err(ConfigProblem::Window { bytes: 0 }));
    }
}
