//! The connection file: where the three nodes are, the certificates the
//! client pins, the deployment, and the user's key file (like crandas'
//! `.vdlconn`).
//!
//! ```toml
//! deployment = "<64 hex>"
//! key = "alice.key"               # relative to this file
//!
//! [[node]]
//! index = 0
//! address = "127.0.0.1:7100"      # the node's client address
//! certificate = "node0.crt"       # pinned, byte for byte
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::ClientError;

/// One node as the connection file lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeEntry {
    /// The node's index, 0..=2.
    pub index: usize,
    /// Its client address.
    pub address: SocketAddr,
    /// Its certificate (PEM).
    pub certificate: PathBuf,
}

/// The file as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionFile {
    /// The deployment id.
    pub deployment: String,
    /// The user's key file.
    pub key: PathBuf,
    /// The three nodes.
    #[serde(rename = "node")]
    pub nodes: Vec<NodeEntry>,
}

impl ConnectionFile {
    /// Reads `path`; relative paths in it become relative to its directory.
    pub fn load(path: &Path) -> Result<ConnectionFile, ClientError> {
        let text = std::fs::read_to_string(path).map_err(|source| ClientError::File {
            path: path.to_owned(),
            source,
        })?;
        let mut file: ConnectionFile =
            toml::from_str(&text).map_err(|e| ClientError::Connection {
                path: path.to_owned(),
                problem: e.to_string(),
            })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_owned()
            } else {
                base.join(p)
            }
        };
        file.key = resolve(&file.key);
        for node in &mut file.nodes {
            node.certificate = resolve(&node.certificate);
        }
        file.nodes.sort_by_key(|n| n.index);
        let indices: Vec<usize> = file.nodes.iter().map(|n| n.index).collect();
        if indices != [0, 1, 2] {
            return Err(ClientError::Connection {
                path: path.to_owned(),
                problem: format!("needs nodes 0, 1 and 2 exactly once, found {indices:?}"),
            });
        }
        Ok(file)
    }

    /// Writes the file.
    pub fn save(&self, path: &Path) -> Result<(), ClientError> {
        let text = toml::to_string_pretty(self).map_err(|e| ClientError::Connection {
            path: path.to_owned(),
            problem: e.to_string(),
        })?;
        std::fs::write(path, text).map_err(|source| ClientError::File {
            path: path.to_owned(),
            source,
        })
    }
}
