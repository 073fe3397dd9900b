//! The `triad-node` commands: `init` makes this node's keys, certificate and
//! configuration on its own host; `add-peer` pins another node's
//! certificate and operator key; `roles` edits, signs and installs the
//! roles document (the users, signed by all three operators); `check`
//! validates a configuration and the data directory and asks the running
//! peers for their versions and roles document; `rotate-cert` makes this
//! node a new key and certificate; `recover` marks a node that lost its
//! disk to be rebuilt from the other two; `run` serves.

// Store errors name table, column and file by value (see `store`); they
// sit on cold paths, and boxing them would only hide them from matching.
#![allow(clippy::result_large_err)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use triad_auth::{
    DeploymentId, Digest, RoleUser, RolesDocument, SignedRoles, UserKey, UserPublicKey,
};
use triad_net::NodeIdentity;

use crate::config::{Config, ConfigError, ConfigFile, Limits, PeerEntry, Role, Threads};
use crate::server::{Node, NodeError};
use crate::store::Store;

/// The commands.
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Make this node's key pair, certificate and configuration file.
    Init(InitArgs),
    /// Pin another node's certificate and address.
    AddPeer(AddPeerArgs),
    /// Edit, sign and install the roles document.
    #[command(subcommand)]
    Roles(RolesCommand),
    /// Validate the configuration, keys, certificates and stored tables,
    /// and compare versions and roles documents with the running peers.
    Check(CheckArgs),
    /// Make this node a new key and certificate (the old pair is kept as
    /// `<certificate>.old` and `<key>.old`); the peers must pin the new one.
    RotateCert(ConfigArg),
    /// Mark this node's data directory to be rebuilt from the other two
    /// nodes when it next runs (after losing its disk; see the operator
    /// guide). Again on a rebuilt node, it fetches the tables still missing.
    Recover(ConfigArg),
    /// Run the node until it is stopped.
    Run(ConfigArg),
    /// Check the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
}

/// `audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify this node's audit chain and, given the other nodes' audit
    /// directories, every head each node recorded from the others.
    Verify(AuditVerifyArgs),
}

/// `audit verify`.
#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    /// This node's configuration file.
    #[arg(long)]
    pub config: PathBuf,
    /// Another node's audit directory (`<data_dir>/audit`, copied from its
    /// host) as NODE=DIR; repeat for both. A directory holding only
    /// `peer-heads.jsonl` checks this node's log against what that node
    /// recorded.
    #[arg(long = "peer-dir", value_parser = parse_peer_dir)]
    pub peer_dirs: Vec<(u8, PathBuf)>,
}

fn parse_peer_dir(text: &str) -> Result<(u8, PathBuf), String> {
    let (node, dir) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not NODE=DIR"))?;
    match node.parse::<u8>() {
        Ok(node) if node <= 2 => Ok((node, PathBuf::from(dir))),
        _ => Err(format!("{node:?} is not 0, 1 or 2")),
    }
}

/// `init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// This node's index: 0, 1 or 2.
    #[arg(long)]
    pub node: usize,
    /// Address the other nodes connect to.
    #[arg(long)]
    pub listen: SocketAddr,
    /// Address clients connect to.
    #[arg(long)]
    pub client_listen: SocketAddr,
    /// Directory for the key, certificate, configuration and data.
    #[arg(long)]
    pub dir: PathBuf,
    /// The deployment id (64 hex) agreed by the three operators; a fresh
    /// one is made if absent (give it to the other two).
    #[arg(long)]
    pub deployment: Option<String>,
}

/// `add-peer`.
#[derive(Debug, Args)]
pub struct AddPeerArgs {
    /// The configuration file to change.
    #[arg(long)]
    pub config: PathBuf,
    /// The peer's index.
    #[arg(long)]
    pub node: usize,
    /// The peer's node-to-node address.
    #[arg(long)]
    pub address: SocketAddr,
    /// The peer's certificate (PEM), as its operator sent it.
    #[arg(long)]
    pub certificate: PathBuf,
    /// The peer operator's public key (64 hex, its `operator.pub`), as its
    /// operator sent it.
    #[arg(long)]
    pub operator_key: String,
}

/// `roles`: the roles document's life, from an empty document to one
/// installed on all three nodes. Every edit drops the signatures (they
/// covered the old content) and raises the serial, so that a node never
/// goes back to an older document.
#[derive(Debug, Subcommand)]
pub enum RolesCommand {
    /// Write an empty, unsigned document (serial 1).
    New(RolesNewArgs),
    /// Add a user, or change the name and roles of the user with that key.
    AddUser(RolesAddUserArgs),
    /// Revoke a user key.
    RevokeKey(RolesRevokeKeyArgs),
    /// Withdraw an approval.
    RevokeApproval(RolesRevokeApprovalArgs),
    /// Sign the document with this node's operator key.
    Sign(RolesConfigArgs),
    /// Verify the document and make it this node's.
    Install(RolesConfigArgs),
}

/// `roles new`.
#[derive(Debug, Args)]
pub struct RolesNewArgs {
    /// The deployment id (64 hex).
    #[arg(long)]
    pub deployment: String,
    /// The file to write; must not exist.
    #[arg(long)]
    pub out: PathBuf,
}

/// `roles add-user`.
#[derive(Debug, Args)]
pub struct RolesAddUserArgs {
    /// The roles document to change.
    #[arg(long)]
    pub roles: PathBuf,
    /// A name for logs; unique in the document.
    #[arg(long)]
    pub name: String,
    /// The user's ed25519 public key (hex), from `triad keygen`.
    #[arg(long)]
    pub public_key: String,
    /// Roles: owner, analyst, approver.
    #[arg(long = "role", value_parser = parse_role, required = true)]
    pub role: Vec<Role>,
}

/// `roles revoke-key`.
#[derive(Debug, Args)]
pub struct RolesRevokeKeyArgs {
    /// The roles document to change.
    #[arg(long)]
    pub roles: PathBuf,
    /// The key to revoke (hex).
    #[arg(long)]
    pub public_key: String,
}

/// `roles revoke-approval`.
#[derive(Debug, Args)]
pub struct RolesRevokeApprovalArgs {
    /// The roles document to change.
    #[arg(long)]
    pub roles: PathBuf,
    /// The approval's digest (64 hex).
    #[arg(long)]
    pub digest: String,
}

/// `roles sign` and `roles install`.
#[derive(Debug, Args)]
pub struct RolesConfigArgs {
    /// This node's configuration file.
    #[arg(long)]
    pub config: PathBuf,
    /// The roles document.
    #[arg(long)]
    pub roles: PathBuf,
}

fn parse_role(text: &str) -> Result<Role, String> {
    text.parse()
        .map_err(|e: triad_auth::AuthError| e.to_string())
}

/// A command taking only the configuration file.
#[derive(Debug, Args)]
pub struct ConfigArg {
    /// The configuration file.
    #[arg(long)]
    pub config: PathBuf,
}

/// `check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The configuration file.
    #[arg(long)]
    pub config: PathBuf,
    /// Check only this host (configuration, keys, certificates, roles
    /// document, stored tables), not the peers: for a start-up check,
    /// which must not wait for the other nodes.
    #[arg(long)]
    pub offline: bool,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// Configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Running.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// Identity files.
    #[error(transparent)]
    Net(#[from] triad_net::NetError),
    /// Storage.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Keys and the roles document.
    #[error(transparent)]
    Auth(#[from] triad_auth::AuthError),
    /// The audit log.
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    /// Anything else, explained.
    #[error("{0}")]
    Other(String),
}

/// The file name `init` gives the configuration.
pub const CONFIG_FILE: &str = "triad-node.toml";

/// The file name `init` gives the operator key.
pub const OPERATOR_KEY_FILE: &str = "operator.key";

/// The file `init` writes the operator's public key to, for sending.
pub const OPERATOR_PUBLIC_FILE: &str = "operator.pub";

/// Where a node's installed roles document lives, next to its
/// configuration.
pub const ROLES_FILE: &str = "roles.toml";

/// Runs one command.
pub fn run_command(command: NodeCommand) -> Result<(), CliError> {
    match command {
        NodeCommand::Init(args) => {
            let path = init(&args)?;
            let config = Config::load_partial(&path)?;
            let identity = NodeIdentity::load(&config.certificate, &config.key)?;
            let operator = UserKey::load(&config.operator_key)?.public();
            println!(
                "node {} initialised: {}\n  certificate {} (send node.crt to the other operators)\n  \
                 operator key {operator} (in operator.pub; send it to the other operators)\n  deployment {}",
                args.node,
                path.display(),
                identity.fingerprint(),
                config.file.deployment
            );
            Ok(())
        }
        NodeCommand::AddPeer(args) => add_peer(&args),
        NodeCommand::Roles(command) => {
            let report = match command {
                RolesCommand::New(args) => roles_new(&args)?,
                RolesCommand::AddUser(args) => roles_add_user(&args)?,
                RolesCommand::RevokeKey(args) => roles_revoke_key(&args)?,
                RolesCommand::RevokeApproval(args) => roles_revoke_approval(&args)?,
                RolesCommand::Sign(args) => roles_sign(&args)?,
                RolesCommand::Install(args) => roles_install(&args)?,
            };
            print!("{report}");
            Ok(())
        }
        NodeCommand::Check(args) => check(&args),
        NodeCommand::RotateCert(args) => {
            print!("{}", rotate_cert(&args.config)?);
            Ok(())
        }
        NodeCommand::Recover(args) => {
            print!("{}", recover(&args.config)?);
            Ok(())
        }
        NodeCommand::Run(args) => {
            let config = Config::load(&args.config)?;
            let node = Node::start(config)?;
            node.wait();
            Ok(())
        }
        NodeCommand::Audit(AuditCommand::Verify(args)) => audit_verify(&args),
    }
}

/// `init`: returns the configuration file's path.
pub fn init(args: &InitArgs) -> Result<PathBuf, CliError> {
    if args.node > 2 {
        return Err(CliError::Other(format!(
            "--node {} is not 0, 1 or 2",
            args.node
        )));
    }
    std::fs::create_dir_all(&args.dir).map_err(|source| ConfigError::Io {
        path: args.dir.clone(),
        source,
    })?;
    let config_path = args.dir.join(CONFIG_FILE);
    if config_path.exists() {
        return Err(CliError::Other(format!(
            "{} exists; refusing to replace this node's identity",
            config_path.display()
        )));
    }
    let deployment = match &args.deployment {
        Some(d) => d.clone(),
        None => {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes)
                .map_err(|e| CliError::Other(format!("OS random generator: {e}")))?;
            crate::server::hex(&bytes)
        }
    };
    let identity = NodeIdentity::generate()?;
    identity.save(&args.dir.join("node.crt"), &args.dir.join("node.key"))?;
    // Made here, like the node key, so that it never leaves this host.
    let operator = UserKey::generate()?;
    operator.save(&args.dir.join(OPERATOR_KEY_FILE))?;
    let public = args.dir.join(OPERATOR_PUBLIC_FILE);
    std::fs::write(&public, format!("{}\n", operator.public())).map_err(|source| {
        ConfigError::Io {
            path: public.clone(),
            source,
        }
    })?;
    let file = ConfigFile {
        node: args.node,
        deployment,
        data_dir: PathBuf::from("data"),
        listen: args.listen,
        client_listen: args.client_listen,
        metrics_listen: None,
        certificate: PathBuf::from("node.crt"),
        key: PathBuf::from("node.key"),
        operator_key: PathBuf::from(OPERATOR_KEY_FILE),
        roles: PathBuf::from(ROLES_FILE),
        threads: Threads::default(),
        mesh: Default::default(),
        limits: Limits::default(),
        release: Default::default(),
        #[cfg(feature = "fault-injection")]
        faults: Default::default(),
        peers: Vec::new(),
    };
    // Validate before writing, so a bad deployment id is caught here.
    Config::from_file(&config_path, file.clone(), false)?;
    Config::save(&file, &config_path)?;
    Ok(config_path)
}

fn load_file(path: &Path) -> Result<ConfigFile, CliError> {
    Ok(ConfigFile::read(path)?)
}

/// `add-peer`.
pub fn add_peer(args: &AddPeerArgs) -> Result<(), CliError> {
    let mut file = load_file(&args.config)?;
    // Parse it now: a file that is not a certificate is refused here, not
    // at the first connection.
    let certificate = triad_net::load_certificate(&args.certificate)?;
    let operator: UserPublicKey = args
        .operator_key
        .trim()
        .parse()
        .map_err(|e| CliError::Other(format!("--operator-key: {e}")))?;
    let name = format!("peer{}.crt", args.node);
    let dir = args.config.parent().unwrap_or(Path::new("."));
    let target = dir.join(&name);
    if std::fs::canonicalize(&args.certificate).ok() != std::fs::canonicalize(&target).ok() {
        std::fs::copy(&args.certificate, &target).map_err(|source| ConfigError::Io {
            path: target.clone(),
            source,
        })?;
    }
    // Pinning again (a rotated certificate) keeps the peer's client
    // address, which only the configuration file sets.
    let client_address = file
        .peers
        .iter()
        .find(|p| p.node == args.node)
        .and_then(|p| p.client_address);
    file.peers.retain(|p| p.node != args.node);
    file.peers.push(PeerEntry {
        node: args.node,
        address: args.address,
        certificate: PathBuf::from(name),
        operator_public_key: operator.to_string(),
        client_address,
    });
    file.peers.sort_by_key(|p| p.node);
    Config::from_file(&args.config, file.clone(), false)?;
    Config::save(&file, &args.config)?;
    tracing::info!(
        node = args.node,
        address = %args.address,
        certificate = %triad_net::fingerprint(&certificate),
        operator = %operator.fingerprint(),
        "peer pinned"
    );
    Ok(())
}

/// `roles new`: writes an empty, unsigned document. Returns the report to
/// print.
pub fn roles_new(args: &RolesNewArgs) -> Result<String, CliError> {
    let deployment: DeploymentId = args
        .deployment
        .trim()
        .parse()
        .map_err(|e| CliError::Other(format!("--deployment: {e}")))?;
    if args.out.exists() {
        return Err(CliError::Other(format!(
            "{} exists; refusing to replace a roles document with an empty one",
            args.out.display()
        )));
    }
    let signed = SignedRoles::unsigned(RolesDocument::new(deployment, 1));
    signed.save(&args.out)?;
    Ok(format!(
        "{}: an empty roles document for deployment {deployment}, serial 1, unsigned\n",
        args.out.display()
    ))
}

/// `roles add-user`: adds the user, or changes the name and roles of the
/// user with that key. A name already used by another key is refused: a
/// new key for a user is a revocation and a new entry, so that the old key
/// is refused even if someone restores it.
pub fn roles_add_user(args: &RolesAddUserArgs) -> Result<String, CliError> {
    let key: UserPublicKey = args
        .public_key
        .trim()
        .parse()
        .map_err(|e| CliError::Other(format!("--public-key: {e}")))?;
    let mut roles = Vec::new();
    for role in &args.role {
        if !roles.contains(role) {
            roles.push(*role);
        }
    }
    edit_roles(&args.roles, |document| {
        if document.revoked_keys.contains(&key) {
            return Err(CliError::Other(format!(
                "key {} is revoked; a revoked key cannot be admitted again",
                key.fingerprint()
            )));
        }
        if let Some(other) = document
            .users
            .iter()
            .find(|user| user.name == args.name && user.public_key != key)
        {
            return Err(CliError::Other(format!(
                "the name {:?} belongs to key {}; revoke that key or choose another name",
                args.name,
                other.public_key.fingerprint()
            )));
        }
        let user = RoleUser {
            name: args.name.clone(),
            public_key: key,
            roles: roles.clone(),
        };
        let shown = roles
            .iter()
            .map(|role| role.name())
            .collect::<Vec<_>>()
            .join(", ");
        match document.users.iter_mut().find(|u| u.public_key == key) {
            Some(existing) => {
                *existing = user;
                Ok(format!(
                    "user {:?} ({key}) now has roles {shown}",
                    args.name
                ))
            }
            None => {
                document.users.push(user);
                Ok(format!(
                    "added user {:?} ({key}) with roles {shown}",
                    args.name
                ))
            }
        }
    })
}

/// `roles revoke-key`: the key is refused from this document on, whatever
/// the user list says.
pub fn roles_revoke_key(args: &RolesRevokeKeyArgs) -> Result<String, CliError> {
    let key: UserPublicKey = args
        .public_key
        .trim()
        .parse()
        .map_err(|e| CliError::Other(format!("--public-key: {e}")))?;
    edit_roles(&args.roles, |document| {
        if document.revoked_keys.contains(&key) {
            return Err(CliError::Other(format!(
                "key {} is already revoked",
                key.fingerprint()
            )));
        }
        document.revoked_keys.push(key);
        let whose = document
            .users
            .iter()
            .find(|user| user.public_key == key)
            .map(|user| format!(" (user {:?})", user.name))
            .unwrap_or_default();
        Ok(format!("revoked key {key}{whose}"))
    })
}

/// `roles revoke-approval`.
pub fn roles_revoke_approval(args: &RolesRevokeApprovalArgs) -> Result<String, CliError> {
    let digest: Digest = args
        .digest
        .trim()
        .parse()
        .map_err(|e| CliError::Other(format!("--digest: {e}")))?;
    edit_roles(&args.roles, |document| {
        if document.revoked_approvals.contains(&digest) {
            return Err(CliError::Other(format!(
                "approval {digest} is already revoked"
            )));
        }
        document.revoked_approvals.push(digest);
        Ok(format!("revoked approval {digest}"))
    })
}

/// Applies `edit` to the document in `path`, raises the serial, drops the
/// signatures and saves. `edit` says what it did, or refuses (and nothing
/// is written).
fn edit_roles(
    path: &Path,
    edit: impl FnOnce(&mut RolesDocument) -> Result<String, CliError>,
) -> Result<String, CliError> {
    let signed = SignedRoles::load(path)?;
    let mut document = signed.document;
    let what = edit(&mut document)?;
    document.serial = document
        .serial
        .checked_add(1)
        .ok_or_else(|| CliError::Other(format!("{}: the serial cannot grow", path.display())))?;
    document
        .validate()
        .map_err(|e| CliError::Other(format!("{}: {e}", path.display())))?;
    let edited = SignedRoles::unsigned(document);
    edited.save(path)?;
    let mut report = format!(
        "{}: {what}\n  serial {}, digest {}\n",
        path.display(),
        edited.document.serial,
        edited.document.digest()
    );
    if !signed.signatures.is_empty() {
        report.push_str(&format!(
            "  dropped {} signature(s): they covered the previous content; \
             all three operators must sign again (`triad-node roles sign`)\n",
            signed.signatures.len()
        ));
    }
    Ok(report)
}

/// What an operator is asked to sign or install: everything the document
/// grants, with full keys to compare against what users sent.
pub fn roles_summary(document: &RolesDocument) -> String {
    let mut text = format!(
        "roles document for deployment {}\n  serial {}, digest {}\n  users ({}):\n",
        document.deployment,
        document.serial,
        document.digest(),
        document.users.len()
    );
    for user in &document.users {
        let roles = user
            .roles
            .iter()
            .map(|role| role.name())
            .collect::<Vec<_>>();
        let revoked = if document.revoked_keys.contains(&user.public_key) {
            " (revoked)"
        } else {
            ""
        };
        text.push_str(&format!(
            "    {:?} {} {}{revoked}\n",
            user.name,
            user.public_key,
            roles.join(", ")
        ));
    }
    text.push_str(&format!(
        "  revoked keys ({}):\n",
        document.revoked_keys.len()
    ));
    for key in &document.revoked_keys {
        text.push_str(&format!("    {key}\n"));
    }
    text.push_str(&format!(
        "  revoked approvals ({}):\n",
        document.revoked_approvals.len()
    ));
    for digest in &document.revoked_approvals {
        text.push_str(&format!("    {digest}\n"));
    }
    text
}

/// `roles sign`: this node's operator signs the document (after checking
/// that it is for this deployment and valid) and the report shows what was
/// signed and which signatures the document now carries.
pub fn roles_sign(args: &RolesConfigArgs) -> Result<String, CliError> {
    let config = Config::load_partial(&args.config)?;
    let mut signed = SignedRoles::load(&args.roles)?;
    let in_file =
        |e: triad_auth::AuthError| CliError::Other(format!("{}: {e}", args.roles.display()));
    if signed.document.deployment != config.deployment {
        return Err(in_file(triad_auth::AuthError::RolesDeployment {
            expected: config.deployment,
            actual: signed.document.deployment,
        }));
    }
    signed.document.validate().map_err(in_file)?;
    let key = UserKey::load(&config.operator_key)?;
    let node = config.party.index() as u8;
    signed.sign(node, &key);
    signed.save(&args.roles)?;
    let mut report = roles_summary(&signed.document);
    report.push_str(&format!(
        "signed as node {node}'s operator ({}) in {}\n",
        key.public().fingerprint(),
        args.roles.display()
    ));
    let digest = signed.document.digest();
    for other in 0..3u8 {
        let operator = if other == node {
            Some(key.public())
        } else {
            config
                .peers
                .iter()
                .find(|peer| peer.node == usize::from(other))
                .and_then(|peer| peer.operator_public_key.parse::<UserPublicKey>().ok())
        };
        let status = match (signed.signature(other), operator) {
            (None, _) => "missing",
            (Some(_), None) => "present (its operator key is not configured here)",
            (Some(signature), Some(operator)) => {
                match operator.verify_in_domain(
                    triad_auth::ROLES_SIGNATURE_DOMAIN,
                    digest.as_bytes(),
                    signature,
                ) {
                    Ok(()) => "valid",
                    Err(_) => "does NOT verify under its configured operator key",
                }
            }
        };
        report.push_str(&format!("  node {other}: {status}\n"));
    }
    Ok(report)
}

/// `roles install`: verifies the document against this node's deployment
/// and the three operator keys, refuses to go back to an older serial (or
/// to another document with the installed serial), and copies it
/// atomically to the configured roles path. A running node reads it when
/// it starts.
pub fn roles_install(args: &RolesConfigArgs) -> Result<String, CliError> {
    let config = Config::load_partial(&args.config)?;
    let operators = config.operator_public_keys()?;
    let signed = SignedRoles::load(&args.roles)?;
    let verified = signed
        .verify(&config.deployment, &operators)
        .map_err(|e| CliError::Other(format!("{}: {e}", args.roles.display())))?;
    if config.roles_path.exists() {
        let installed = SignedRoles::load(&config.roles_path)?.document;
        let rollback = verified.serial() < installed.serial
            || (verified.serial() == installed.serial && verified.digest() != installed.digest());
        if rollback {
            return Err(CliError::Other(format!(
                "{} has serial {} (digest {}); the installed {} has serial {} (digest {}): \
                 a node only moves to a newer document, so that a revocation cannot be undone \
                 by reinstalling an older one",
                args.roles.display(),
                verified.serial(),
                verified.digest(),
                config.roles_path.display(),
                installed.serial,
                installed.digest()
            )));
        }
    }
    signed.save(&config.roles_path)?;
    Ok(format!(
        "installed {}: serial {}, {} users, digest {}\n  restart the node to serve it\n",
        config.roles_path.display(),
        verified.serial(),
        verified.users().count(),
        verified.digest()
    ))
}

/// `check`: this host's configuration, keys, certificates, roles document
/// and stored tables ([`check_local`]), then, unless `--offline`, each
/// peer ([`check_peers`]). Fails on any problem, naming it.
pub fn check(args: &CheckArgs) -> Result<(), CliError> {
    let config = Config::load(&args.config)?;
    print!("{}", check_local(&config)?);
    if args.offline {
        println!("peers not checked (--offline)");
        return Ok(());
    }
    let peers = check_peers(&config)?;
    let mut problems = Vec::new();
    for peer in &peers {
        println!("{peer}");
        problems.extend(peer.problems());
    }
    if problems.is_empty() {
        println!("check: no problems found");
        Ok(())
    } else {
        Err(CliError::Other(format!(
            "check: {} problem(s): {}",
            problems.len(),
            problems.join("; ")
        )))
    }
}

/// Everything that can be checked without the other nodes; returns the
/// report to print.
pub fn check_local(config: &Config) -> Result<String, CliError> {
    let identity = NodeIdentity::load(&config.certificate, &config.key)?;
    for peer in &config.peers {
        let certificate = triad_net::load_certificate(&peer.certificate)?;
        if &certificate == identity.certificate() {
            return Err(CliError::Other(format!(
                "peer {} has this node's own certificate",
                peer.node
            )));
        }
    }
    let store = Store::open(&config.data_dir, config.party)?;
    let tables = store.tables();
    for table in &tables {
        store.verify_table(&table.handle)?;
    }
    let mut report = format!(
        "node {}: configuration valid, certificate {}, {} peers, {} tables verified\n\
         roles document {}: serial {}, {} users, digest {}\n\
         versions: {}\n",
        config.party.index(),
        identity.fingerprint(),
        config.peers.len(),
        tables.len(),
        config.roles_path.display(),
        config.roles.serial(),
        config.roles.users().count(),
        config.roles.digest(),
        own_status(config).versions()
    );
    if own_status(config).waiting_to_be_rebuilt {
        report.push_str(
            "waiting to be rebuilt from the other two (`triad-node recover`): \
             it asks them for its tables when it next connects\n",
        );
    }
    Ok(report)
}

/// What this node would answer to a status probe (with the mesh down).
fn own_status(config: &Config) -> crate::api::NodeStatus {
    crate::api::NodeStatus {
        // PartyId indexes are 0..=2.
        node: config.party.index() as u8,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        api_version: crate::api::API_VERSION,
        net_protocol_version: triad_net::NET_PROTOCOL_VERSION,
        roles_serial: config.roles.serial(),
        roles_digest: config.roles.digest(),
        mesh_up: false,
        waiting_to_be_rebuilt: crate::server::recovery::is_marked(&config.data_dir),
    }
}

/// How long `check` waits for a peer to answer.
pub const PEER_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// One peer as `check` found it.
#[derive(Debug, Clone)]
pub struct PeerCheck {
    /// The peer's index.
    pub node: usize,
    /// This node's own versions and roles document.
    pub ours: crate::api::NodeStatus,
    /// The peer's answer, or why there is none.
    pub theirs: Result<crate::api::NodeStatus, String>,
}

impl PeerCheck {
    /// What is wrong, one line each; empty if nothing.
    pub fn problems(&self) -> Vec<String> {
        let node = self.node;
        let theirs = match &self.theirs {
            Ok(theirs) => theirs,
            Err(error) => return vec![format!("node {node} unreachable: {error}")],
        };
        let mut problems = Vec::new();
        if usize::from(theirs.node) != node {
            problems.push(format!("node {node} answered as node {}", theirs.node));
        }
        if !self.ours.same_versions(theirs) {
            problems.push(format!(
                "node {node} runs {}, this node {}",
                theirs.versions(),
                self.ours.versions()
            ));
        }
        if (theirs.roles_digest, theirs.roles_serial)
            != (self.ours.roles_digest, self.ours.roles_serial)
        {
            problems.push(format!(
                "node {node} serves roles document {} (serial {}), this node {} (serial {})",
                theirs.roles_digest,
                theirs.roles_serial,
                self.ours.roles_digest,
                self.ours.roles_serial
            ));
        }
        problems
    }
}

impl std::fmt::Display for PeerCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let theirs = match &self.theirs {
            Ok(theirs) => theirs,
            Err(error) => return write!(f, "peer {}: UNREACHABLE: {error}", self.node),
        };
        let ours = &self.ours;
        write!(
            f,
            "peer {}: reachable, {}",
            self.node,
            if theirs.mesh_up {
                "connected to both other nodes"
            } else {
                "not connected to both other nodes"
            }
        )?;
        if theirs.waiting_to_be_rebuilt {
            write!(f, ", waiting to be rebuilt from the other two")?;
        }
        if ours.same_versions(theirs) {
            write!(f, "\n  versions equal: {}", ours.versions())?;
        } else {
            write!(
                f,
                "\n  versions DIFFER: peer {}; this node {}",
                theirs.versions(),
                ours.versions()
            )?;
        }
        if (theirs.roles_digest, theirs.roles_serial) == (ours.roles_digest, ours.roles_serial) {
            write!(
                f,
                "\n  roles document equal: serial {}, digest {}",
                ours.roles_serial, ours.roles_digest
            )
        } else {
            write!(
                f,
                "\n  roles document DIFFERS: peer serial {} digest {}; this node serial {} digest {}",
                theirs.roles_serial, theirs.roles_digest, ours.roles_serial, ours.roles_digest
            )
        }
    }
}

/// Asks each running peer, on its client port (`client_address` in its
/// `[[peer]]` entry) with its pinned certificate, which versions it runs
/// and which roles document it serves. The probe is signed with this
/// node's operator key, which the peers know. Both peers are asked at
/// once; each gets [`PEER_CHECK_TIMEOUT`].
pub fn check_peers(config: &Config) -> Result<Vec<PeerCheck>, CliError> {
    let operator = UserKey::load(&config.operator_key)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Other(format!("starting a runtime: {e}")))?;
    let ours = own_status(config);
    let probes = config.peers.iter().map(|peer| {
        let (operator, ours) = (&operator, &ours);
        async move {
            let theirs = match tokio::time::timeout(
                PEER_CHECK_TIMEOUT * 2,
                probe_peer(config, peer, operator),
            )
            .await
            {
                Ok(answer) => answer,
                Err(_) => Err(format!(
                    "no answer within {} s",
                    (PEER_CHECK_TIMEOUT * 2).as_secs()
                )),
            };
            PeerCheck {
                node: peer.node,
                ours: ours.clone(),
                theirs,
            }
        }
    });
    Ok(runtime.block_on(triad_net::join::join_all(probes.collect())))
}

/// One status probe; the error says what failed, for people.
async fn probe_peer(
    config: &Config,
    peer: &PeerEntry,
    operator: &UserKey,
) -> Result<crate::api::NodeStatus, String> {
    use crate::api::{self, Body, CallHeader, Reply};

    let Some(address) = peer.client_address else {
        return Err(format!(
            "its client address is not configured: add `client_address = \"HOST:PORT\"` \
             (its client_listen) to its [[peer]] entry in {}",
            config.path.display()
        ));
    };
    let certificate = triad_net::load_certificate(&peer.certificate).map_err(|e| e.to_string())?;
    let body = Body::Status;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let request = triad_auth::Request {
        version: triad_auth::REQUEST_VERSION,
        deployment: config.deployment,
        mode: triad_auth::Mode::Authorized,
        body: body.digest(),
        approval: None,
        nonce: triad_auth::Nonce::generate().map_err(|e| e.to_string())?,
        issued_at: now,
        // Nothing is sealed to it; a request names one all the same.
        result_key: triad_auth::ResultSecret::generate()
            .map_err(|e| e.to_string())?
            .public(),
        signer: operator.public(),
    }
    .sign(operator)
    .map_err(|e| e.to_string())?;
    let header = CallHeader {
        api_version: api::API_VERSION,
        request: request.to_bytes(),
        body,
        payload: None,
        approved: None,
        job: None,
    };
    let link = triad_net::NodeLink::connect(
        address,
        certificate,
        triad_net::LinkConfig::default(),
        PEER_CHECK_TIMEOUT,
    )
    .await
    .map_err(|e| e.to_string())?;
    let exchange = async {
        let mut call = link.call().await.map_err(|e| e.to_string())?;
        call.write_message(&api::encode(&header))
            .await
            .map_err(|e| e.to_string())?;
        call.finish().map_err(|e| e.to_string())?;
        call.read_message(api::REPLY_BYTES_MAX)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "it closed the call without answering".to_owned())
    };
    let answer = exchange.await;
    link.close().await;
    let reply: Reply = api::decode(&answer?)
        .map_err(|e| format!("its answer is not one this version reads (another release?): {e}"))?;
    match reply {
        Reply::Status(status) => Ok(status),
        Reply::Refused(error) => Err(format!("it refused the probe ({:?}): {error}", error.kind)),
        other => Err(format!("unexpected answer: {other:?}")),
    }
}

/// `rotate-cert`: a new key pair and certificate for this node, made here
/// from the OS generator. The old pair is kept beside the new one as
/// `<certificate>.old` and `<key>.old` (mode 0600), so that the rotation
/// can be undone until the peers pin the new certificate; a second
/// rotation is refused while they exist. Returns the report to print, with
/// the new fingerprint to compare over a second channel.
pub fn rotate_cert(path: &Path) -> Result<String, CliError> {
    let config = Config::load_partial(path)?;
    // The current pair must load: rotating a node whose identity is
    // already broken would hide the problem.
    let old = NodeIdentity::load(&config.certificate, &config.key)?;
    let beside = |file: &Path, suffix: &str| {
        let mut name = file.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    let (old_certificate, old_key) = (
        beside(&config.certificate, ".old"),
        beside(&config.key, ".old"),
    );
    for kept in [&old_certificate, &old_key] {
        if kept.exists() {
            return Err(CliError::Other(format!(
                "{} exists from an earlier rotation; remove it once the peers pin the current \
                 certificate, then rotate again",
                kept.display()
            )));
        }
    }
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ConfigError::Io { path, source }
    };
    // Copies keep the key file's mode.
    std::fs::copy(&config.certificate, &old_certificate).map_err(io(&old_certificate))?;
    std::fs::copy(&config.key, &old_key).map_err(io(&old_key))?;
    let (new_certificate, new_key) = (
        beside(&config.certificate, ".new"),
        beside(&config.key, ".new"),
    );
    let identity = NodeIdentity::generate()?;
    identity.save(&new_certificate, &new_key)?;
    std::fs::rename(&new_key, &config.key).map_err(io(&config.key))?;
    std::fs::rename(&new_certificate, &config.certificate).map_err(io(&config.certificate))?;
    let reloaded = NodeIdentity::load(&config.certificate, &config.key)?;
    Ok(format!(
        "node {}: new certificate {} in {}\n  \
         the old pair ({}) is kept as {} and {}\n  \
         send {} to the other two operators; each pins it with `triad-node add-peer`, \
         then all three nodes restart\n",
        config.party.index(),
        reloaded.fingerprint(),
        config.certificate.display(),
        old.fingerprint(),
        old_certificate.display(),
        old_key.display(),
        config.certificate.display()
    ))
}

/// `recover`: marks the data directory to be rebuilt from the other two
/// nodes at the next start. Returns the report to print.
pub fn recover(path: &Path) -> Result<String, CliError> {
    // Complete: the node must be able to run as configured, with both
    // peers pinned, before anything waits on it.
    let config = Config::load(path)?;
    let identity = NodeIdentity::load(&config.certificate, &config.key)?;
    let store = Store::open(&config.data_dir, config.party)?;
    let held = store.tables().len();
    drop(store);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let marker = crate::server::recovery::mark(&config.data_dir, now)?;
    Ok(format!(
        "node {}: marked to be rebuilt from the other two nodes ({})\n  \
         it holds {held} tables now; it asks for the others when it next runs\n  \
         its certificate is {}: both other nodes must pin it (`triad-node add-peer`) \
         before they send it anything\n",
        config.party.index(),
        marker.display(),
        identity.fingerprint(),
    ))
}

/// `audit verify`: this node's chain, then, when the operator keys are
/// configured, every recorded head against the chains at hand. Fails if
/// anything does not verify.
pub fn audit_verify(args: &AuditVerifyArgs) -> Result<(), CliError> {
    use crate::audit::{audit_dir, cross_verify, verify_chain};

    let config = Config::load_partial(&args.config)?;
    // PartyId indexes are 0..=2.
    let node = config.party.index() as u8;
    let own = audit_dir(&config.data_dir);
    let chain = verify_chain(&own)?;
    println!(
        "node {node}: chain verified, {}",
        chain.head(config.deployment, node)
    );
    if chain.torn_tail_bytes > 0 {
        println!(
            "  a torn final line of {} bytes (a crash mid-append) will be cut when the node starts",
            chain.torn_tail_bytes
        );
    }
    let operators = match config.operator_public_keys() {
        Ok(operators) => operators,
        Err(error) if args.peer_dirs.is_empty() => {
            println!("  recorded peer heads not checked: {error}");
            return Ok(());
        }
        Err(error) => return Err(error.into()),
    };
    let mut logs = vec![(node, own)];
    logs.extend(args.peer_dirs.iter().cloned());
    let report = cross_verify(config.deployment, &logs, &operators)?;
    for node in &report.nodes {
        match (&node.chain, node.log_absent) {
            (Some(chain), _) => print!("node {}: {} entries", node.node, chain.entries),
            (None, true) => print!("node {}: no log given", node.node),
            (None, false) => print!("node {}: log broken", node.node),
        }
        println!(
            "; {} of its heads recorded by the others match, {} unchecked; {} heads of the others recorded",
            node.peer_heads_checked, node.peer_heads_unchecked, node.heads_recorded
        );
    }
    for note in report.notes() {
        println!("NOTE {note}");
    }
    let mut problems = 0;
    for problem in report.problems() {
        println!("PROBLEM {problem}");
        problems += 1;
    }
    if problems > 0 {
        return Err(CliError::Other(format!("audit: {problems} problems found")));
    }
    println!("audit: no problems found");
    Ok(())
}
