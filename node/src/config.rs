//! The node's configuration file (TOML). Relative paths are relative to
//! the file's directory, so a node directory can be moved as a whole.
//!
//! ```toml
//! node = 0                              # this node's index, 0..=2
//! deployment = "<64 hex>"               # the same on all three nodes
//! data_dir = "data"
//! listen = "0.0.0.0:7000"               # the other nodes connect here
//! client_listen = "0.0.0.0:7100"        # clients connect here
//! certificate = "node.crt"
//! key = "node.key"
//!
//! [[peer]]
//! node = 1
//! address = "10.0.0.2:7000"
//! certificate = "peer1.crt"             # pinned, byte for byte
//!
//! [[user]]
//! name = "alice"
//! public_key = "<64 hex>"
//! roles = ["owner"]
//! ```
//!
//! Every other key has a default; see [`Limits`] and [`Threads`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use triad_auth::{DeploymentId, UserPublicKey};
use triad_ring::PartyId;

/// A configuration problem, naming the file and the key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (names the key and line).
        message: String,
    },
    /// A value is not acceptable.
    #[error("{path}: {key}: {problem}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// What is wrong.
        problem: String,
    },
}

/// Thread counts. Three nodes sharing a small machine must not each take
/// every core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Threads {
    /// tokio workers of the node-to-node network.
    pub network: usize,
    /// tokio workers serving clients.
    pub client: usize,
    /// rayon workers for local computation.
    pub compute: usize,
}

impl Default for Threads {
    fn default() -> Threads {
        Threads {
            network: 1,
            client: 1,
            compute: 1,
        }
    }
}

/// Limits and timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// The most memory one request may need for shares (estimated before
    /// it runs; a request above it is refused).
    pub memory_budget_bytes: u64,
    /// Staged uploads older than this are removed.
    pub staging_timeout_secs: u64,
    /// Requests issued longer ago than this (or this far in the future)
    /// are refused; nonces are remembered for at least as long.
    pub request_max_age_secs: u64,
    /// How long a node waits for a peer's message inside a request.
    pub peer_timeout_ms: u64,
    /// A link with no traffic for this long is considered dead.
    pub idle_timeout_ms: u64,
    /// How long a node waits for the other two to receive a request the
    /// first node has scheduled.
    pub agree_timeout_ms: u64,
    /// The most rows an upload may have.
    pub rows_max: u64,
    /// The smallest threshold any query aggregate gets, whatever the query
    /// asks: a gate counting fewer selected rows refuses the aggregate
    /// (`ThresholdNotMet`). Values below 1 act as 1.
    pub min_threshold: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            memory_budget_bytes: 4 << 30,
            staging_timeout_secs: 600,
            request_max_age_secs: 300,
            peer_timeout_ms: 60_000,
            idle_timeout_ms: 10_000,
            agree_timeout_ms: 10_000,
            rows_max: 1 << 32,
            min_threshold: 3,
        }
    }
}

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Uploads tables, deletes and queries its own.
    Owner,
    /// Runs approved analyses (enforced from the approvals issue on).
    Analyst,
    /// Signs approvals.
    Approver,
}

/// A known user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    /// For logs and listings.
    pub name: String,
    /// Ed25519 public key, hex.
    pub public_key: String,
    /// Roles.
    pub roles: Vec<Role>,
}

/// A pinned peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerEntry {
    /// Its index.
    pub node: usize,
    /// Where it listens for nodes.
    pub address: SocketAddr,
    /// Its certificate file (PEM).
    pub certificate: PathBuf,
}

/// The configuration file as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// This node's index.
    pub node: usize,
    /// The deployment id, 64 hex.
    pub deployment: String,
    /// Where shares live.
    pub data_dir: PathBuf,
    /// Node-to-node address.
    pub listen: SocketAddr,
    /// Client address.
    pub client_listen: SocketAddr,
    /// This node's certificate (PEM).
    pub certificate: PathBuf,
    /// This node's private key (PEM, mode 0600).
    pub key: PathBuf,
    /// Thread counts.
    #[serde(default)]
    pub threads: Threads,
    /// Limits.
    #[serde(default)]
    pub limits: Limits,
    /// The two other nodes.
    #[serde(default, rename = "peer")]
    pub peers: Vec<PeerEntry>,
    /// Known users.
    #[serde(default, rename = "user")]
    pub users: Vec<UserEntry>,
}

impl ConfigFile {
    /// Reads and parses `path` without validating it.
    pub fn read(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }
}

/// A validated configuration with absolute paths.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// As written (relative paths kept, for rewriting).
    pub file: ConfigFile,
    /// This node.
    pub party: PartyId,
    /// The deployment.
    pub deployment: DeploymentId,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Certificate path.
    pub certificate: PathBuf,
    /// Key path.
    pub key: PathBuf,
    /// Peers with absolute certificate paths, in index order.
    pub peers: Vec<PeerEntry>,
    /// Users with parsed keys.
    pub users: Vec<(UserEntry, UserPublicKey)>,
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::from_file(path, ConfigFile::read(path)?, true)
    }

    /// Reads `path` like [`Config::load`], allowing missing peers (a node
    /// being set up).
    pub fn load_partial(path: &Path) -> Result<Config, ConfigError> {
        Config::from_file(path, ConfigFile::read(path)?, false)
    }

    /// Validates `file` as if read from `path`. With `complete`, both peers
    /// must be present.
    pub fn from_file(path: &Path, file: ConfigFile, complete: bool) -> Result<Config, ConfigError> {
        let invalid = |key: &str, problem: String| ConfigError::Invalid {
            path: path.to_owned(),
            key: key.to_owned(),
            problem,
        };
        let base = path.parent().unwrap_or(Path::new(".")).to_owned();
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_owned()
            } else {
                base.join(p)
            }
        };
        let party = PartyId::from_index(file.node)
            .ok_or_else(|| invalid("node", format!("{} is not 0, 1 or 2", file.node)))?;
        let deployment: DeploymentId = file
            .deployment
            .parse()
            .map_err(|e| invalid("deployment", format!("{e}")))?;
        let mut peers = file.peers.clone();
        peers.sort_by_key(|p| p.node);
        for (i, peer) in peers.iter().enumerate() {
            if peer.node > 2 || peer.node == file.node {
                return Err(invalid(
                    "peer.node",
                    format!("{} is not another node's index", peer.node),
                ));
            }
            if i > 0 && peers[i - 1].node == peer.node {
                return Err(invalid(
                    "peer.node",
                    format!("node {} listed twice", peer.node),
                ));
            }
        }
        if complete && peers.len() != 2 {
            return Err(invalid(
                "peer",
                format!(
                    "{} of the 2 other nodes configured (add them with `triad-node add-peer`)",
                    peers.len()
                ),
            ));
        }
        for peer in &mut peers {
            peer.certificate = resolve(&peer.certificate);
        }
        let threads = file.threads;
        if threads.network == 0 || threads.client == 0 || threads.compute == 0 {
            return Err(invalid(
                "threads",
                "every thread count must be at least 1".into(),
            ));
        }
        let limits = file.limits;
        if limits.idle_timeout_ms < 100 || limits.peer_timeout_ms < 100 {
            return Err(invalid("limits", "timeouts below 100 ms".into()));
        }
        let mut users = Vec::new();
        for user in &file.users {
            let key: UserPublicKey = user.public_key.parse().map_err(|e| {
                invalid(
                    "user.public_key",
                    format!("user {:?}: not an ed25519 public key: {e}", user.name),
                )
            })?;
            if users.iter().any(|(_, k)| *k == key) {
                return Err(invalid(
                    "user.public_key",
                    format!("user {:?}: key listed twice", user.name),
                ));
            }
            users.push((user.clone(), key));
        }
        Ok(Config {
            path: path.to_owned(),
            party,
            deployment,
            data_dir: resolve(&file.data_dir),
            certificate: resolve(&file.certificate),
            key: resolve(&file.key),
            peers,
            users,
            file,
        })
    }

    /// Writes the file form back to `self.path` (atomically).
    pub fn save(file: &ConfigFile, path: &Path) -> Result<(), ConfigError> {
        let text = toml::to_string_pretty(file).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let tmp = path.with_extension("toml.tmp");
        let io = |source| ConfigError::Io {
            path: path.to_owned(),
            source,
        };
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// The user with this key, if known.
    pub fn user(&self, key: &UserPublicKey) -> Option<&UserEntry> {
        self.users.iter().find(|(_, k)| k == key).map(|(u, _)| u)
    }

    /// Peer timeout.
    pub fn peer_timeout(&self) -> Duration {
        Duration::from_millis(self.file.limits.peer_timeout_ms)
    }
}
