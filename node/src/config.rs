//! The node's configuration file (TOML). Relative paths are relative to
//! the file's directory, so a node directory can be moved as a whole.
//!
//! ```toml
//! node = 0                              # this node's index, 0..=2
//! deployment = "<64 hex>"               # the same on all three nodes
//! data_dir = "data"
//! listen = "0.0.0.0:7000"               # the other nodes connect here
//! client_listen = "0.0.0.0:7100"        # clients connect here
//! metrics_listen = "127.0.0.1:9100"     # optional: Prometheus /metrics
//! certificate = "node.crt"
//! key = "node.key"
//! operator_key = "operator.key"         # signs the roles document
//! roles = "roles.toml"                  # the installed roles document
//!
//! [[peer]]
//! node = 1
//! address = "10.0.0.2:7000"
//! certificate = "peer1.crt"             # pinned, byte for byte
//! operator_public_key = "<64 hex>"      # its operator's key
//! client_address = "10.0.0.2:7100"      # optional: for `triad-node check`
//! ```
//!
//! Users are not configured here: they are in the roles document
//! ([`triad_auth::SignedRoles`]), which all three operators sign with their
//! operator keys, so that no node's list can differ from the others'.
//!
//! Every other key has a default; see [`Limits`], [`Threads`], [`Mesh`]
//! and [`Release`]. `deploy/CONFIG.md` documents every key, and a test keeps
//! it complete.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use triad_auth::{DeploymentId, SignedRoles, UserKey, UserPublicKey, VerifiedRoles};
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
    /// The operator key or the roles document could not be loaded or
    /// verified.
    #[error("{path}: {source}")]
    Roles {
        /// The configuration file whose keys and roles document were used.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: triad_auth::AuthError,
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

/// How the node-to-node links carry large frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mesh {
    /// Connections to each peer (1 to 16); all three nodes must agree.
    pub lanes: usize,
    /// Words per part of a streamed frame; 0 sends frames whole.
    pub part_words: usize,
}

impl Default for Mesh {
    fn default() -> Mesh {
        Mesh {
            lanes: 1,
            part_words: 1 << 16,
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

/// The deployment's release policy (all three nodes must have the same;
/// a query is refused where they differ). Its minimum threshold is
/// `limits.min_threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Release {
    /// Counts at or below this are redacted (with the sums beside them).
    pub redact_at_most: u64,
    /// Released counts are rounded half up to a multiple of this (1: not
    /// rounded).
    pub round_to: u64,
}

impl Default for Release {
    fn default() -> Release {
        let policy = triad_exec::ReleasePolicy::default();
        Release {
            redact_at_most: policy.redact_at_most,
            round_to: policy.round_to,
        }
    }
}

impl Config {
    /// The release policy this node applies to released answers.
    pub fn release_policy(&self) -> triad_exec::ReleasePolicy {
        triad_exec::ReleasePolicy {
            min_threshold: self.file.limits.min_threshold.max(1),
            redact_at_most: self.file.release.redact_at_most,
            round_to: self.file.release.round_to,
        }
    }
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

pub use triad_auth::Role;

/// Ways a node can be told to misbehave, for tests of what the other two
/// nodes do about it. Exists only with the `fault-injection` feature.
#[cfg(feature = "fault-injection")]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Accept every query as authorized, whoever sends it.
    #[serde(default)]
    pub accept_unauthorized: bool,
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
    /// Its operator's public key (hex): one of the three keys that must
    /// have signed the roles document.
    pub operator_public_key: String,
    /// Where it listens for clients (its `client_listen`, as reachable from
    /// here). Only `triad-node check` uses it, to ask the running peer for
    /// its versions and roles document; absent, that check fails for this
    /// peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_address: Option<SocketAddr>,
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
    /// Where to serve Prometheus metrics over plain HTTP (TCP); absent, no
    /// metrics endpoint. The page carries counts and timings, never a
    /// handle, user or value, but bind it to an address only the
    /// monitoring system can reach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    /// This node's certificate (PEM).
    pub certificate: PathBuf,
    /// This node's private key (PEM, mode 0600).
    pub key: PathBuf,
    /// This node's operator key (a triad user key file, mode 0600): the
    /// operator signs the roles document with it; the node reads only its
    /// public half.
    pub operator_key: PathBuf,
    /// The installed roles document.
    #[serde(default = "default_roles")]
    pub roles: PathBuf,
    /// Thread counts.
    #[serde(default)]
    pub threads: Threads,
    /// Node-to-node links.
    #[serde(default)]
    pub mesh: Mesh,
    /// Limits.
    #[serde(default)]
    pub limits: Limits,
    /// The disclosure-control rule for released (`moderately_sensitive`)
    /// values: the answers of job requests' actions.
    #[serde(default)]
    pub release: Release,
    /// Test-only misbehaviour (feature `fault-injection`).
    #[cfg(feature = "fault-injection")]
    #[serde(default)]
    pub faults: Faults,
    /// The two other nodes.
    #[serde(default, rename = "peer")]
    pub peers: Vec<PeerEntry>,
}

fn default_roles() -> PathBuf {
    PathBuf::from("roles.toml")
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
    /// Operator key path.
    pub operator_key: PathBuf,
    /// Roles document path.
    pub roles_path: PathBuf,
    /// Peers with absolute certificate paths, in index order.
    pub peers: Vec<PeerEntry>,
    /// The users and revocations all three operators signed. Empty (admits
    /// nobody) in a configuration loaded with [`Config::load_partial`].
    pub roles: VerifiedRoles,
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::from_file(path, ConfigFile::read(path)?, true)
    }

    /// Reads `path` like [`Config::load`], allowing missing peers and
    /// skipping the roles document (a node being set up).
    pub fn load_partial(path: &Path) -> Result<Config, ConfigError> {
        Config::from_file(path, ConfigFile::read(path)?, false)
    }

    /// Validates `file` as if read from `path`. With `complete`, both peers
    /// must be present, and the roles document is loaded and verified
    /// against the three operator keys and the deployment.
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
            if let Some(address) = peer.client_address
                && (address.port() == 0 || address.ip().is_unspecified())
            {
                return Err(invalid(
                    "peer.client_address",
                    format!("node {}: {address} is not an address to dial", peer.node),
                ));
            }
            peer.certificate = resolve(&peer.certificate);
            peer.operator_public_key
                .parse::<UserPublicKey>()
                .map_err(|e| {
                    invalid(
                        "peer.operator_public_key",
                        format!("node {}: {e}", peer.node),
                    )
                })?;
        }
        let threads = file.threads;
        if threads.network == 0 || threads.client == 0 || threads.compute == 0 {
            return Err(invalid(
                "threads",
                "every thread count must be at least 1".into(),
            ));
        }
        if !(1..=triad_net::LANES_MAX).contains(&file.mesh.lanes) {
            return Err(invalid(
                "mesh.lanes",
                format!(
                    "{} connections per peer; use 1 to {}",
                    file.mesh.lanes,
                    triad_net::LANES_MAX
                ),
            ));
        }
        if let Some(address) = file.metrics_listen
            && address.port() == 0
        {
            return Err(invalid(
                "metrics_listen",
                format!("{address}: port 0 would move at every start; give a fixed port"),
            ));
        }
        let limits = file.limits;
        if limits.idle_timeout_ms < 100 || limits.peer_timeout_ms < 100 {
            return Err(invalid("limits", "timeouts below 100 ms".into()));
        }
        let release = triad_exec::ReleasePolicy {
            min_threshold: limits.min_threshold.max(1),
            redact_at_most: file.release.redact_at_most,
            round_to: file.release.round_to,
        };
        if let Err(e) = release.check() {
            return Err(invalid("release", e.to_string()));
        }
        let roles_path = resolve(&file.roles);
        let operator_key = resolve(&file.operator_key);
        let mut config = Config {
            path: path.to_owned(),
            party,
            deployment,
            data_dir: resolve(&file.data_dir),
            certificate: resolve(&file.certificate),
            key: resolve(&file.key),
            operator_key,
            roles_path,
            peers,
            roles: VerifiedRoles::none(deployment),
            file,
        };
        if complete {
            let operators = config.operator_public_keys()?;
            config.roles = SignedRoles::load(&config.roles_path)
                .and_then(|signed| signed.verify(&deployment, &operators))
                .map_err(|source| config.roles_error(source))?;
        }
        Ok(config)
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

    /// The user with this key, unless unknown or revoked.
    pub fn user(&self, key: &UserPublicKey) -> Option<&triad_auth::RoleUser> {
        self.roles.user(key)
    }

    /// The three operator keys, by node: this node's from the public half
    /// of its operator key file, the peers' as configured. Needs both peers.
    pub fn operator_public_keys(&self) -> Result<[UserPublicKey; 3], ConfigError> {
        let own = UserKey::load(&self.operator_key)
            .map_err(|source| self.roles_error(source))?
            .public();
        let mut keys = [None, None, None];
        keys[self.party.index()] = Some(own);
        for peer in &self.peers {
            let key = peer
                .operator_public_key
                .parse()
                .map_err(|e| ConfigError::Invalid {
                    path: self.path.clone(),
                    key: "peer.operator_public_key".into(),
                    problem: format!("node {}: {e}", peer.node),
                })?;
            keys[peer.node] = Some(key);
        }
        let missing = |node: usize| ConfigError::Invalid {
            path: self.path.clone(),
            key: "peer".into(),
            problem: format!(
                "node {node} is not configured, so its operator key is unknown \
                 (add it with `triad-node add-peer`)"
            ),
        };
        Ok([
            keys[0].ok_or_else(|| missing(0))?,
            keys[1].ok_or_else(|| missing(1))?,
            keys[2].ok_or_else(|| missing(2))?,
        ])
    }

    fn roles_error(&self, source: triad_auth::AuthError) -> ConfigError {
        ConfigError::Roles {
            path: self.path.clone(),
            source,
        }
    }

    /// Peer timeout.
    pub fn peer_timeout(&self) -> Duration {
        Duration::from_millis(self.file.limits.peer_timeout_ms)
    }
}
