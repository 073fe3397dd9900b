//! The portal's configuration file (TOML). Relative paths are relative to
//! the file's directory, as in the node's configuration.
//!
//! ```toml
//! listen = "127.0.0.1:8080"          # serve behind an HTTPS proxy elsewhere
//! deployment = "<64 hex>"            # the deployment the portal serves
//! roles = "roles.toml"               # the installed roles document
//! operator_public_keys = ["<64 hex>", "<64 hex>", "<64 hex>"]  # nodes 0, 1, 2
//! recordings = "recordings"          # .recording, .approved, .rejected files
//! connection = "portal.conn"         # where the nodes are (job records)
//! key = "portal.key"                 # the portal's own user key
//! # jobs_dir = "jobs"                # read job records from here instead
//! # secure_cookies = true            # when served over HTTPS
//! # session_hours = 8
//! # challenge_secs = 300
//! ```
//!
//! The roles document is the one the nodes serve: the portal loads it the
//! way a node does ([`triad_auth::SignedRoles::verify`] with the three
//! operator keys), so it admits exactly the users the nodes admit. The
//! portal's own key is a user key like any other (`triad keygen`), listed
//! in the roles document, used only to read job records from the nodes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use triad_auth::{DeploymentId, SignedRoles, UserPublicKey, VerifiedRoles};

use crate::error::PortalError;

/// The file as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Where the portal listens (HTTP/1.1).
    pub listen: SocketAddr,
    /// The deployment id (64 hex): recordings and roles documents of any
    /// other deployment are refused.
    pub deployment: String,
    /// The roles document (`roles.toml`), as installed on the nodes.
    pub roles: PathBuf,
    /// The three operators' public keys (64 hex each), by node: the roles
    /// document must carry a valid signature by each.
    pub operator_public_keys: [String; 3],
    /// The directory of recordings and of the files the portal writes
    /// beside them.
    pub recordings: PathBuf,
    /// The portal's connection file (`triad.conn` format), for fetching
    /// job records from the nodes.
    #[serde(default)]
    pub connection: Option<PathBuf>,
    /// The portal's own key file; replaces the connection file's `key`.
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// Read job records from this directory (JSON files in the nodes'
    /// format) instead of from the nodes: for demonstrations and tests.
    #[serde(default)]
    pub jobs_dir: Option<PathBuf>,
    /// Mark the session cookie `Secure`: set when the portal is served
    /// over HTTPS, which it must be anywhere but on loopback (browsers
    /// only offer WebCrypto to secure origins).
    #[serde(default)]
    pub secure_cookies: bool,
    /// How long a session lasts.
    #[serde(default = "default_session_hours")]
    pub session_hours: u64,
    /// How long a sign-in or approval challenge may be answered.
    #[serde(default = "default_challenge_secs")]
    pub challenge_secs: u64,
}

fn default_session_hours() -> u64 {
    8
}

fn default_challenge_secs() -> u64 {
    300
}

/// A validated configuration with absolute paths and the verified roles
/// document.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// As written.
    pub file: ConfigFile,
    /// The deployment.
    pub deployment: DeploymentId,
    /// The operator keys, by node.
    pub operators: [UserPublicKey; 3],
    /// The roles document's path.
    pub roles_path: PathBuf,
    /// The users all three operators admitted.
    pub roles: VerifiedRoles,
    /// The recordings directory.
    pub recordings: PathBuf,
    /// The connection file, if job records come from the nodes.
    pub connection: Option<PathBuf>,
    /// The portal's key file, if given.
    pub key: Option<PathBuf>,
    /// The job records directory, if job records come from files.
    pub jobs_dir: Option<PathBuf>,
}

impl Config {
    /// Reads, validates and resolves `path`, and loads and verifies the
    /// roles document it names.
    pub fn load(path: &Path) -> Result<Config, PortalError> {
        let text = std::fs::read_to_string(path).map_err(PortalError::io(path))?;
        let file: ConfigFile = toml::from_str(&text).map_err(|e| PortalError::Config {
            path: path.to_owned(),
            key: "file",
            problem: e.to_string(),
        })?;
        Config::from_file(path, file)
    }

    /// Validates `file` as if read from `path`.
    pub fn from_file(path: &Path, file: ConfigFile) -> Result<Config, PortalError> {
        let invalid = |key: &'static str, problem: String| PortalError::Config {
            path: path.to_owned(),
            key,
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
        let deployment: DeploymentId = file
            .deployment
            .parse()
            .map_err(|e| invalid("deployment", format!("{e}")))?;
        let mut operators = Vec::new();
        for (node, text) in file.operator_public_keys.iter().enumerate() {
            let key: UserPublicKey = text
                .parse()
                .map_err(|e| invalid("operator_public_keys", format!("node {node}: {e}")))?;
            operators.push(key);
        }
        let operators: [UserPublicKey; 3] = [operators[0], operators[1], operators[2]];
        if file.session_hours == 0 || file.session_hours > 24 * 7 {
            return Err(invalid(
                "session_hours",
                format!("{} is not between 1 and 168", file.session_hours),
            ));
        }
        if !(30..=3600).contains(&file.challenge_secs) {
            return Err(invalid(
                "challenge_secs",
                format!("{} is not between 30 and 3600", file.challenge_secs),
            ));
        }
        let roles_path = resolve(&file.roles);
        let roles = SignedRoles::load(&roles_path)
            .and_then(|signed| signed.verify(&deployment, &operators))
            .map_err(|source| PortalError::Roles {
                path: roles_path.clone(),
                source,
            })?;
        let recordings = resolve(&file.recordings);
        if !recordings.is_dir() {
            return Err(invalid(
                "recordings",
                format!("{} is not a directory", recordings.display()),
            ));
        }
        Ok(Config {
            path: path.to_owned(),
            deployment,
            operators,
            roles_path,
            roles,
            recordings,
            connection: file.connection.as_deref().map(resolve),
            key: file.key.as_deref().map(resolve),
            jobs_dir: file.jobs_dir.as_deref().map(resolve),
            file,
        })
    }
}

#[cfg(test)]
mod tests {
    use triad_auth::{RolesDocument, UserKey};

    use super::*;

    fn write_roles(dir: &Path, deployment: DeploymentId, operators: &[UserKey; 3]) {
        let mut signed = SignedRoles::unsigned(RolesDocument::new(deployment, 1));
        for (node, key) in operators.iter().enumerate() {
            signed.sign(node as u8, key);
        }
        signed.save(&dir.join("roles.toml")).unwrap();
    }

    fn file(deployment: DeploymentId, operators: &[UserKey; 3]) -> ConfigFile {
        ConfigFile {
            listen: "127.0.0.1:0".parse().unwrap(),
            deployment: deployment.to_string(),
            roles: "roles.toml".into(),
            operator_public_keys: [0, 1, 2].map(|i| operators[i].public().to_string()),
            recordings: "recordings".into(),
            connection: Some("portal.conn".into()),
            key: None,
            jobs_dir: None,
            secure_cookies: false,
            session_hours: 8,
            challenge_secs: 300,
        }
    }

    #[test]
    fn a_config_resolves_paths_and_verifies_the_roles_document() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("recordings")).unwrap();
        let deployment = DeploymentId::from_bytes([7; 32]);
        let operators = [0, 1, 2].map(|_| UserKey::generate().unwrap());
        write_roles(dir.path(), deployment, &operators);
        let path = dir.path().join("portal.toml");
        std::fs::write(
            &path,
            toml::to_string(&file(deployment, &operators)).unwrap(),
        )
        .unwrap();
        let config = Config::load(&path).unwrap();
        assert_eq!(config.recordings, dir.path().join("recordings"));
        assert_eq!(config.connection, Some(dir.path().join("portal.conn")));
        assert_eq!(config.roles.serial(), 1);

        // Another operator key than the one that signed: refused, naming
        // the roles file.
        let mut other = file(deployment, &operators);
        other.operator_public_keys[2] = UserKey::generate().unwrap().public().to_string();
        let error = Config::from_file(&path, other).unwrap_err();
        assert!(matches!(error, PortalError::Roles { .. }), "{error}");
        assert!(error.to_string().contains("roles.toml"), "{error}");

        // Another deployment: refused.
        let error = Config::from_file(&path, file(DeploymentId::from_bytes([8; 32]), &operators))
            .unwrap_err();
        assert!(error.to_string().contains("deployment"), "{error}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("portal.toml");
        let operators = [0, 1, 2].map(|_| UserKey::generate().unwrap());
        let mut bad = file(DeploymentId::from_bytes([7; 32]), &operators);
        bad.deployment = "zz".into();
        let error = Config::from_file(&path, bad).unwrap_err();
        assert!(error.to_string().contains("deployment"), "{error}");
        let mut bad = file(DeploymentId::from_bytes([7; 32]), &operators);
        bad.challenge_secs = 5;
        let error = Config::from_file(&path, bad).unwrap_err();
        assert!(error.to_string().contains("challenge_secs"), "{error}");
        std::fs::write(&path, "listen = 3").unwrap();
        let error = Config::load(&path).unwrap_err();
        assert!(
            matches!(error, PortalError::Config { key: "file", .. }),
            "{error}"
        );
    }
}
