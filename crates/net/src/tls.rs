//! Mutual TLS 1.3 with pinned certificates.
//!
//! There is no certificate authority: each party knows the exact
//! certificate of each peer, and a handshake succeeds only if the peer
//! presents that certificate (compared byte for byte) and proves possession
//! of its key with a valid handshake signature. Names, validity dates and
//! chains play no part; a chain with anything besides the pinned
//! certificate is refused. Session resumption is off, so every connection
//! runs the full certificate check.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, PeerIncompatible, SignatureScheme,
};

use crate::error::NetError;
use crate::identity::{NodeIdentity, fingerprint};

/// ALPN name of the node-to-node protocol. Unversioned: the version is in
/// the hello, which gives a clearer error than a failed ALPN negotiation.
pub(crate) const ALPN: &[u8] = b"triad-net";

/// The crypto provider: *ring* (aws-lc-rs would need cmake to build),
/// preferring AES-128-GCM. Every byte between the nodes is encrypted, and
/// AES-128 takes 10 rounds to AES-256's 14: on these links the cipher is
/// a tenth of a multiplication's time. AES-128-GCM is TLS 1.3's
/// mandatory suite and QUIC's own for its initial packets; the other
/// suites stay accepted, so peers need not agree on the preference.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    use rustls::crypto::ring::cipher_suite;
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = vec![
        cipher_suite::TLS13_AES_128_GCM_SHA256,
        cipher_suite::TLS13_AES_256_GCM_SHA384,
        cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    ];
    Arc::new(provider)
}

/// Accepts exactly one of a set of pinned certificates.
struct Pinned {
    certificates: Vec<CertificateDer<'static>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl std::fmt::Debug for Pinned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fingerprints: Vec<String> = self.certificates.iter().map(fingerprint).collect();
        f.debug_struct("Pinned")
            .field("certificates", &fingerprints)
            .finish_non_exhaustive()
    }
}

impl Pinned {
    fn new(certificates: Vec<CertificateDer<'static>>, provider: &CryptoProvider) -> Pinned {
        Pinned {
            certificates,
            algorithms: provider.signature_verification_algorithms,
        }
    }

    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<(), rustls::Error> {
        let pinned = self
            .certificates
            .iter()
            .any(|c| c.as_ref() == end_entity.as_ref());
        if pinned && intermediates.is_empty() {
            Ok(())
        } else {
            tracing::warn!(
                certificate = %fingerprint(end_entity),
                intermediates = intermediates.len(),
                "refusing a certificate that is not pinned"
            );
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls13(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, certificate, dss, &self.algorithms)
    }

    fn schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Client side: the server (the party this node dials) must present the
/// one certificate pinned for it.
#[derive(Debug)]
pub(crate) struct PinnedServerVerifier(Pinned);

impl ServerCertVerifier for PinnedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.0.check(end_entity, intermediates)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _certificate: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(PeerIncompatible::Tls13RequiredForQuic.into())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13(message, certificate, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.schemes()
    }
}

/// Server side: a client (a party that dials this node) must present one of
/// the certificates pinned for the parties that dial here; which one tells
/// the node who connected.
#[derive(Debug)]
pub(crate) struct PinnedClientVerifier(Pinned);

impl ClientCertVerifier for PinnedClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.0.check(end_entity, intermediates)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _certificate: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(PeerIncompatible::Tls13RequiredForQuic.into())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13(message, certificate, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.schemes()
    }
}

/// TLS for the connections this node accepts: only clients presenting one
/// of `clients` get through.
pub(crate) fn server_config(
    identity: &NodeIdentity,
    clients: Vec<CertificateDer<'static>>,
) -> Result<quinn::crypto::rustls::QuicServerConfig, NetError> {
    let provider = provider();
    let verifier = PinnedClientVerifier(Pinned::new(clients, &provider));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(vec![identity.certificate().clone()], identity.key())?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config.max_early_data_size = 0;
    quinn::crypto::rustls::QuicServerConfig::try_from(config)
        .map_err(|_| NetError::NoQuicCipherSuite)
}

/// TLS for dialing one peer: the server must present `server`.
pub(crate) fn client_config(
    identity: &NodeIdentity,
    server: CertificateDer<'static>,
) -> Result<quinn::crypto::rustls::QuicClientConfig, NetError> {
    let provider = provider();
    let verifier = PinnedServerVerifier(Pinned::new(vec![server], &provider));
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(vec![identity.certificate().clone()], identity.key())?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.resumption = rustls::client::Resumption::disabled();
    config.enable_early_data = false;
    quinn::crypto::rustls::QuicClientConfig::try_from(config)
        .map_err(|_| NetError::NoQuicCipherSuite)
}

/// TLS for the client port: the node presents `identity`, clients present
/// nothing (they sign their requests instead).
pub(crate) fn server_config_anonymous(
    identity: &NodeIdentity,
    alpn: &[u8],
) -> Result<quinn::crypto::rustls::QuicServerConfig, NetError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![identity.certificate().clone()], identity.key())?;
    config.alpn_protocols = vec![alpn.to_vec()];
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config.max_early_data_size = 0;
    quinn::crypto::rustls::QuicServerConfig::try_from(config)
        .map_err(|_| NetError::NoQuicCipherSuite)
}

/// TLS for a client dialing a node: the node must present `server`.
pub(crate) fn client_config_anonymous(
    server: CertificateDer<'static>,
    alpn: &[u8],
) -> Result<quinn::crypto::rustls::QuicClientConfig, NetError> {
    let provider = provider();
    let verifier = PinnedServerVerifier(Pinned::new(vec![server], &provider));
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    config.resumption = rustls::client::Resumption::disabled();
    config.enable_early_data = false;
    quinn::crypto::rustls::QuicClientConfig::try_from(config)
        .map_err(|_| NetError::NoQuicCipherSuite)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_pinned_certificate_alone_passes() {
        let a = NodeIdentity::generate().unwrap();
        let b = NodeIdentity::generate().unwrap();
        let pinned = Pinned::new(vec![a.certificate().clone()], &provider());
        assert!(pinned.check(a.certificate(), &[]).is_ok());
        assert!(pinned.check(b.certificate(), &[]).is_err());
        assert!(
            pinned
                .check(a.certificate(), &[b.certificate().clone()])
                .is_err()
        );
        let mut flipped = a.certificate().to_vec();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(pinned.check(&CertificateDer::from(flipped), &[]).is_err());
        assert!(!pinned.schemes().is_empty());
    }

    #[test]
    fn configs_build_for_quic() {
        let a = NodeIdentity::generate().unwrap();
        let b = NodeIdentity::generate().unwrap();
        server_config(&a, vec![b.certificate().clone()]).unwrap();
        client_config(&a, b.certificate().clone()).unwrap();
    }
}
