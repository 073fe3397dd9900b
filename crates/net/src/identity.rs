//! A node's TLS identity: a self-signed certificate and its private key.
//! Peers pin the certificate itself, so no certificate authority is
//! involved: operators exchange certificate files (public) out of band and
//! keep key files (secret) on the host that made them.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::error::NetError;

/// Name in the certificate. Peers do not check it (the certificate is pinned
/// byte for byte); it only makes the file recognisable.
const CERTIFICATE_NAME: &str = "triad-node";

/// A node's certificate and private key. `Debug` shows the certificate's
/// fingerprint and never the key.
pub struct NodeIdentity {
    certificate: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

impl fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("certificate", &fingerprint(&self.certificate))
            .finish_non_exhaustive()
    }
}

impl Clone for NodeIdentity {
    fn clone(&self) -> Self {
        NodeIdentity {
            certificate: self.certificate.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl NodeIdentity {
    /// A fresh ECDSA P-256 key pair from the OS generator and a self-signed
    /// certificate for it.
    pub fn generate() -> Result<NodeIdentity, NetError> {
        let key_pair = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(vec![CERTIFICATE_NAME.to_string()])?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, CERTIFICATE_NAME);
        let certificate = params.self_signed(&key_pair)?;
        Ok(NodeIdentity {
            certificate: certificate.der().clone(),
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialize_der())),
        })
    }

    /// Reads an identity saved by [`NodeIdentity::save`] (or any PEM
    /// certificate and matching PEM private key; rustls checks that they
    /// match when the mesh starts).
    pub fn load(certificate_path: &Path, key_path: &Path) -> Result<NodeIdentity, NetError> {
        let certificate = load_certificate(certificate_path)?;
        let key = PrivateKeyDer::from_pem_file(key_path).map_err(|error| match error {
            rustls::pki_types::pem::Error::Io(source) => NetError::File {
                path: key_path.to_path_buf(),
                source,
            },
            _ => NetError::KeyFile {
                path: key_path.to_path_buf(),
            },
        })?;
        Ok(NodeIdentity { certificate, key })
    }

    /// Writes the certificate and the key as PEM. The key file is created
    /// readable by its owner only (mode 0600 on Unix).
    pub fn save(&self, certificate_path: &Path, key_path: &Path) -> Result<(), NetError> {
        let certificate = pem::encode(&pem::Pem::new("CERTIFICATE", self.certificate.to_vec()));
        write_file(certificate_path, certificate.as_bytes(), false)?;
        let label = match &self.key {
            PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
            PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
            _ => "PRIVATE KEY",
        };
        let key = pem::encode(&pem::Pem::new(label, self.key.secret_der().to_vec()));
        write_file(key_path, key.as_bytes(), true)
    }

    /// The certificate (DER), to give to the peers for pinning.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.certificate
    }

    /// The certificate's fingerprint, for logs and for operators comparing
    /// files.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.certificate)
    }

    pub(crate) fn key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }
}

/// Reads a PEM certificate, typically a peer's, for pinning.
pub fn load_certificate(path: &Path) -> Result<CertificateDer<'static>, NetError> {
    CertificateDer::from_pem_file(path).map_err(|error| match error {
        rustls::pki_types::pem::Error::Io(source) => NetError::File {
            path: path.to_path_buf(),
            source,
        },
        source => NetError::CertificateFile {
            path: path.to_path_buf(),
            source,
        },
    })
}

/// A short, stable name for a certificate: the first 16 bytes of its BLAKE3
/// hash in hex. Certificates are public, so this may be logged.
pub fn fingerprint(certificate: &CertificateDer<'_>) -> String {
    let hash = blake3::hash(certificate.as_ref());
    hash.as_bytes()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn write_file(path: &Path, contents: &[u8], secret: bool) -> Result<(), NetError> {
    let error = |source| NetError::File {
        path: path.to_path_buf(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(error)?;
    // The mode above applies only to a new file: tighten an existing one
    // before writing the key into it.
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(error)?;
    }
    #[cfg(not(unix))]
    let _ = secret;
    file.write_all(contents).map_err(error)?;
    file.sync_all().map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("triad-net-{name}-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn save_and_load_round_trip_with_private_key_file() {
        let dir = temp_dir("identity");
        let identity = NodeIdentity::generate().unwrap();
        let (cert, key) = (dir.join("node.cert.pem"), dir.join("node.key.pem"));
        identity.save(&cert, &key).unwrap();
        let loaded = NodeIdentity::load(&cert, &key).unwrap();
        assert_eq!(loaded.certificate(), identity.certificate());
        assert_eq!(loaded.key.secret_der(), identity.key.secret_der());
        assert_eq!(&load_certificate(&cert).unwrap(), identity.certificate());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // A certificate is not a key, and the error does not quote the file.
        let error = NodeIdentity::load(&cert, &cert).unwrap_err();
        assert!(matches!(error, NetError::KeyFile { .. }), "{error}");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let a = NodeIdentity::generate().unwrap();
        let b = NodeIdentity::generate().unwrap();
        let mixed = NodeIdentity {
            certificate: a.certificate.clone(),
            key: b.key.clone_key(),
        };
        let peer = NodeIdentity::generate().unwrap().certificate().clone();
        assert!(matches!(
            crate::tls::server_config(&mixed, vec![peer.clone()]),
            Err(NetError::Tls(_))
        ));
        assert!(matches!(
            crate::tls::client_config(&mixed, peer),
            Err(NetError::Tls(_))
        ));
    }

    #[test]
    fn debug_never_shows_the_key() {
        let identity = NodeIdentity::generate().unwrap();
        let shown = format!("{identity:?}");
        assert!(shown.contains(&identity.fingerprint()));
        let key_hex: String = identity.key.secret_der()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(!shown.contains(&key_hex));
        assert!(!shown.to_lowercase().contains("key:"));
        assert_ne!(
            NodeIdentity::generate().unwrap().certificate(),
            identity.certificate()
        );
    }
}
